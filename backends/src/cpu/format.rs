//! Weight formats the CPU GEMV/GEMM kernels read, with ggml's block geometry.
//!
//! The kernels read weights in ggml's byte layout unchanged (row-major, each
//! row a run of blocks), so a kernel can be pointed straight at a mmapped GGUF
//! tensor. This file only records the geometry the code generator and the
//! safe wrappers need (block size in elements and bytes, which activation
//! quantisation the format pairs with); the block semantics live in the code
//! generator (`codegen.rs`) and, for reference, in `flexc_ir::quant::ggml`.

use flexc_ir::quant::GgmlType;

/// A weight storage format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum WeightFormat {
    /// Plain little-endian f32, row-major.
    F32,
    /// ggml Q8_0: f16 d, 32 × i8. 34 bytes / 32.
    Q8_0,
    /// ggml Q4_0: f16 d, 16 bytes of nibbles, value (q − 8)·d. 18 bytes / 32.
    Q4_0,
    /// ggml Q4_1: f16 d, f16 m, 16 bytes of nibbles, value q·d + m. 20 bytes / 32.
    Q4_1,
    /// ggml Q5_0: f16 d, u32 qh, 16 bytes of nibbles, value (q − 16)·d. 22 bytes / 32.
    Q5_0,
    /// ggml Q5_1: f16 d, f16 m, u32 qh, 16 bytes of nibbles, value q·d + m. 24 bytes / 32.
    Q5_1,
    /// ggml Q4_K: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles. 144 bytes / 256.
    Q4_K,
    /// ggml Q6_K: 128 bytes ql, 64 bytes qh, 16 × i8 scales, f16 d. 210 bytes / 256.
    Q6_K,
    /// ggml Q2_K: 16 bytes scales/mins, 64 bytes of 2-bit codes, f16 d, f16 dmin. 84 bytes / 256.
    Q2_K,
    /// ggml TQ2_0: 64 bytes of 2-bit ternary codes, f16 d. 66 bytes / 256.
    TQ2_0,
}

/// How activations are prepared for a weight format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum ActKind {
    /// Unquantised f32.
    F32,
    /// 32-element blocks, f16 scale (ggml `quantize_row_q8_0_ref`).
    Q8_0,
    /// 256-element blocks, f32 scale, 16 i16 block sums (ggml `quantize_row_q8_K_ref`).
    Q8_K,
}

impl ActKind {
    /// The name of the activation quantization (`f32`, `q8_0`, `q8_k`: the
    /// cost table's keys).
    pub fn name(self) -> &'static str {
        match self {
            ActKind::F32 => "f32",
            ActKind::Q8_0 => "q8_0",
            ActKind::Q8_K => "q8_k",
        }
    }

    /// Elements per activation block (1 for f32).
    pub fn block_elems(self) -> usize {
        match self {
            ActKind::F32 => 1,
            ActKind::Q8_0 => 32,
            ActKind::Q8_K => 256,
        }
    }
}

impl WeightFormat {
    /// All formats, in the order of the kernel generator's priority.
    pub const ALL: [WeightFormat; 10] = [
        WeightFormat::F32,
        WeightFormat::Q8_0,
        WeightFormat::Q4_1,
        WeightFormat::Q5_0,
        WeightFormat::Q4_K,
        WeightFormat::Q6_K,
        WeightFormat::Q4_0,
        WeightFormat::Q5_1,
        WeightFormat::Q2_K,
        WeightFormat::TQ2_0,
    ];

    /// Elements per block.
    pub fn block_elems(self) -> usize {
        match self {
            WeightFormat::F32 => 1,
            WeightFormat::Q8_0
            | WeightFormat::Q4_0
            | WeightFormat::Q4_1
            | WeightFormat::Q5_0
            | WeightFormat::Q5_1 => 32,
            WeightFormat::Q4_K | WeightFormat::Q6_K | WeightFormat::Q2_K | WeightFormat::TQ2_0 => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            WeightFormat::F32 => 4,
            WeightFormat::Q8_0 => 34,
            WeightFormat::Q4_0 => 18,
            WeightFormat::Q4_1 => 20,
            WeightFormat::Q5_0 => 22,
            WeightFormat::Q5_1 => 24,
            WeightFormat::Q4_K => 144,
            WeightFormat::Q6_K => 210,
            WeightFormat::Q2_K => 84,
            WeightFormat::TQ2_0 => 66,
        }
    }

    /// The activation quantisation the kernel consumes.
    pub fn activation(self) -> ActKind {
        match self.block_elems() {
            1 => ActKind::F32,
            32 => ActKind::Q8_0,
            _ => ActKind::Q8_K,
        }
    }

    /// Bytes of one weight row of `cols` elements (`cols` must be a multiple
    /// of the block size; see [`WeightFormat::check_cols`]).
    pub fn row_bytes(self, cols: usize) -> usize {
        cols / self.block_elems() * self.block_bytes()
    }

    /// Checks that `cols` is a positive multiple of the block size.
    pub fn check_cols(self, cols: usize) -> Result<(), String> {
        let be = self.block_elems();
        if cols == 0 || !cols.is_multiple_of(be) {
            return Err(format!("{self:?}: cols = {cols} is not a positive multiple of {be}"));
        }
        Ok(())
    }

    /// The matching ggml tensor type.
    pub fn ggml_type(self) -> GgmlType {
        match self {
            WeightFormat::F32 => GgmlType::F32,
            WeightFormat::Q8_0 => GgmlType::Q8_0,
            WeightFormat::Q4_0 => GgmlType::Q4_0,
            WeightFormat::Q4_1 => GgmlType::Q4_1,
            WeightFormat::Q5_0 => GgmlType::Q5_0,
            WeightFormat::Q5_1 => GgmlType::Q5_1,
            WeightFormat::Q4_K => GgmlType::Q4_K,
            WeightFormat::Q6_K => GgmlType::Q6_K,
            WeightFormat::Q2_K => GgmlType::Q2_K,
            WeightFormat::TQ2_0 => GgmlType::TQ2_0,
        }
    }

    /// The kernel format for a ggml tensor type, if the kernels support it.
    pub fn from_ggml(ty: GgmlType) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.ggml_type() == ty)
    }

    /// The format whose blocks are the storage of `enc`, when the kernel
    /// reads that encoding as it is stored (the ggml block formats above).
    pub fn of(enc: flexc_ir::Encoding) -> Option<Self> {
        Self::ALL.into_iter().find(|&f| f != WeightFormat::F32 && flexc_ir::Encoding::from(f.ggml_type()) == enc)
    }

    /// ggml's type name (`q4_1`, `f32`, ...).
    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::F32 => "f32",
            WeightFormat::Q8_0 => "q8_0",
            WeightFormat::Q4_0 => "q4_0",
            WeightFormat::Q4_1 => "q4_1",
            WeightFormat::Q5_0 => "q5_0",
            WeightFormat::Q5_1 => "q5_1",
            WeightFormat::Q4_K => "q4_K",
            WeightFormat::Q6_K => "q6_K",
            WeightFormat::Q2_K => "q2_K",
            WeightFormat::TQ2_0 => "tq2_0",
        }
    }
}

/// What a dense GEMM (`kern.dense_gemm`) runs on a weight of type `ty`:
/// `(format, decoded)`. ggml block formats with an int-dot kernel and plain
/// f32 run on their stored bytes (`decoded = false`); every other weight
/// that can be decoded (`#gq`, `#ternary`, `#bcq`, `#nm`, ggml formats
/// without a kernel, f16/bf16) is decoded to f32 at compile time and runs
/// the f32 kernel. `None`: not a weight a dense GEMM can read (integers).
/// The runtime's lowering and the CPU cost model both ask this, so the
/// price is always that of the kernel that runs.
pub fn dense_format(ty: &flexc_ir::TensorType) -> Option<(WeightFormat, bool)> {
    use flexc_ir::types::ElemType;
    match (ty.encoding, ty.elem) {
        (Some(e), _) => Some(WeightFormat::of(e).map_or((WeightFormat::F32, true), |f| (f, false))),
        (None, ElemType::F32) => Some((WeightFormat::F32, false)),
        (None, ElemType::F16 | ElemType::BF16) => Some((WeightFormat::F32, true)),
        (None, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flexc_ir::quant::GqParams;
    use flexc_ir::types::{Dim, ElemType};
    use flexc_ir::{Encoding, TensorType};

    #[test]
    fn encodings_run_on_their_own_blocks_or_decoded() {
        for f in WeightFormat::ALL.into_iter().filter(|&f| f != WeightFormat::F32) {
            assert_eq!(WeightFormat::of(Encoding::from(f.ggml_type())), Some(f));
        }
        let gq: Encoding = GqParams { bits: 2, group: 64, zero: true }.into();
        assert_eq!(WeightFormat::of(gq), None);
        let ty = |encoding: Option<Encoding>, elem| TensorType { shape: vec![Dim::Fixed(8), Dim::Fixed(256)], elem, encoding };
        assert_eq!(dense_format(&ty(Some(GgmlType::Q4_K.into()), ElemType::F32)), Some((WeightFormat::Q4_K, false)));
        // A ggml format without an int-dot kernel, and flexc's own encodings, are decoded.
        assert_eq!(dense_format(&ty(Some(GgmlType::Q3_K.into()), ElemType::F32)), Some((WeightFormat::F32, true)));
        assert_eq!(dense_format(&ty(Some(gq), ElemType::F32)), Some((WeightFormat::F32, true)));
        assert_eq!(dense_format(&ty(None, ElemType::F32)), Some((WeightFormat::F32, false)));
        assert_eq!(ActKind::Q8_K.name(), "q8_k");
    }
}
