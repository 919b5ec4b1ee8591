//! ggml's block formats: type ids and geometry ([`GgmlType`]), the packed
//! block structs of `ggml-common.h` ([`blocks`]), and codecs that are
//! bit-exact with ggml's reference C code (`dequantize_row_*`,
//! `quantize_row_*_ref`).
//!
//! The codecs work on byte slices rather than on block structs so that they
//! can read straight out of a memory-mapped GGUF file, which gives no
//! alignment guarantee; the byte offsets they use are derived from the
//! `#[repr(C)]` structs, so the layout is written down once.
//!
//! Supported: dequantize F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K,
//! Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, TQ1_0, TQ2_0; quantize F32, F16, BF16,
//! Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_K, Q2_K, TQ1_0, TQ2_0. Everything else
//! (IQ*, Q8_1, integer types, MXFP4, Q3_K..Q6_K quantization) is reported as
//! [`QuantError::Unsupported`].

pub mod blocks;
mod dequant;
mod q1_0;
mod q2_0;
mod quantize;
mod scheme;
mod types;

pub use types::{GgmlType, ScaleField, QK_K};

/// Errors of the ggml codecs. Malformed input is reported, never panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantError {
    /// The element count is not a whole number of blocks.
    #[error("{ty}: {n} elements is not a multiple of the block size {block}")]
    NotBlockMultiple {
        /// The type.
        ty: GgmlType,
        /// The element count.
        n: u64,
        /// Its block size.
        block: usize,
    },
    /// The byte size does not fit in 64 bits.
    #[error("{ty}: byte size of {n} elements overflows")]
    Overflow {
        /// The type.
        ty: GgmlType,
        /// The element count.
        n: u64,
    },
    /// The byte buffer does not hold exactly the packed size.
    #[error("{ty}: {n_elems} elements take {expected} bytes, got {got}")]
    LengthMismatch {
        /// The type.
        ty: GgmlType,
        /// The element count.
        n_elems: usize,
        /// The packed size they need.
        expected: u64,
        /// The bytes given.
        got: usize,
    },
    /// No codec for this type and direction.
    #[error("{ty}: {op} is not supported for this type")]
    Unsupported {
        /// The type.
        ty: GgmlType,
        /// `dequantize` or `quantize`.
        op: &'static str,
    },
}

/// An fp16 stored little-endian at `at`, widened exactly to f32
/// (ggml's `GGML_FP16_TO_FP32`).
#[inline]
pub(crate) fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

/// Store `v` as fp16 (round to nearest even, ggml's `GGML_FP32_TO_FP16`) at
/// `at`; returns the stored value widened back to f32.
#[inline]
pub(crate) fn put_f16(b: &mut [u8], at: usize, v: f32) -> f32 {
    let h = half::f16::from_f32(v);
    b[at..at + 2].copy_from_slice(&h.to_bits().to_le_bytes());
    h.to_f32()
}

/// ggml's `nearest_int`: round to nearest, ties to even, via the 1.5·2²³
/// trick. Exact for |v| ≤ 4194303 (ggml asserts that in debug builds);
/// beyond that it returns what ggml's release build returns.
#[inline]
pub(crate) fn nearest_int(v: f32) -> i32 {
    let bits = (v + 12_582_912.0).to_bits() as i32;
    (bits & 0x007f_ffff) - 0x0040_0000
}

/// Whether [`dequantize`] handles `ty`.
pub fn can_dequantize(ty: GgmlType) -> bool {
    ty.dequant_fn().is_some()
}

/// Whether [`quantize`] handles `ty`.
pub fn can_quantize(ty: GgmlType) -> bool {
    ty.quant_fn().is_some()
}

/// Check that `n_elems` values of `ty` occupy exactly `n_bytes` bytes.
fn check_lengths(ty: GgmlType, n_elems: usize, n_bytes: usize) -> Result<(), QuantError> {
    let expected = ty.row_bytes(n_elems as u64)?;
    if expected != n_bytes as u64 {
        return Err(QuantError::LengthMismatch {
            ty,
            n_elems,
            expected,
            got: n_bytes,
        });
    }
    Ok(())
}

/// Decode `out.len()` values of type `ty` from `bytes` (whole blocks;
/// `bytes.len()` must be exactly the packed size of `out.len()` values).
/// Bit-exact with ggml's `dequantize_row_*`.
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let f = ty.dequant_fn().ok_or(QuantError::Unsupported {
        ty,
        op: "dequantize",
    })?;
    check_lengths(ty, out.len(), bytes.len())?;
    for (src, dst) in bytes
        .chunks_exact(ty.type_size())
        .zip(out.chunks_exact_mut(ty.block_size()))
    {
        f(src, dst);
    }
    Ok(())
}

/// [`dequantize`] into a new vector of `n_elems` values.
pub fn dequantize_to_vec(
    ty: GgmlType,
    bytes: &[u8],
    n_elems: usize,
) -> Result<Vec<f32>, QuantError> {
    // Check before allocating: `n_elems` may come from an untrusted header.
    ty.dequant_fn().ok_or(QuantError::Unsupported {
        ty,
        op: "dequantize",
    })?;
    check_lengths(ty, n_elems, bytes.len())?;
    let mut out = vec![0.0; n_elems];
    dequantize(ty, bytes, &mut out)?;
    Ok(out)
}

/// Encode `input` (whole blocks) as type `ty` into `out`, which must be
/// exactly the packed size. Bit-exact with ggml's `quantize_row_*_ref` for
/// finite inputs.
pub fn quantize(ty: GgmlType, input: &[f32], out: &mut [u8]) -> Result<(), QuantError> {
    let f = ty.quant_fn().ok_or(QuantError::Unsupported { ty, op: "quantize" })?;
    check_lengths(ty, input.len(), out.len())?;
    for (src, dst) in input
        .chunks_exact(ty.block_size())
        .zip(out.chunks_exact_mut(ty.type_size()))
    {
        f(src, dst);
    }
    Ok(())
}

/// [`quantize`] into a new byte vector.
pub fn quantize_to_vec(ty: GgmlType, input: &[f32]) -> Result<Vec<u8>, QuantError> {
    ty.quant_fn().ok_or(QuantError::Unsupported { ty, op: "quantize" })?;
    let n = ty.row_bytes(input.len() as u64)?;
    let n = usize::try_from(n).map_err(|_| QuantError::Overflow {
        ty,
        n: input.len() as u64,
    })?;
    let mut out = vec![0u8; n];
    quantize(ty, input, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        let cases = [
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (2.4999, 2),
            (-3.7, -4),
            (100.0, 100),
        ];
        for (v, want) in cases {
            assert_eq!(nearest_int(v), want, "{v}");
        }
    }

    #[test]
    fn type_table_matches_block_structs() {
        use core::mem::size_of;
        let pairs = [
            (GgmlType::Q4_0, size_of::<blocks::BlockQ4_0>()),
            (GgmlType::Q4_1, size_of::<blocks::BlockQ4_1>()),
            (GgmlType::Q5_0, size_of::<blocks::BlockQ5_0>()),
            (GgmlType::Q5_1, size_of::<blocks::BlockQ5_1>()),
            (GgmlType::Q8_0, size_of::<blocks::BlockQ8_0>()),
            (GgmlType::Q8_1, size_of::<blocks::BlockQ8_1>()),
            (GgmlType::Q2_K, size_of::<blocks::BlockQ2K>()),
            (GgmlType::Q3_K, size_of::<blocks::BlockQ3K>()),
            (GgmlType::Q4_K, size_of::<blocks::BlockQ4K>()),
            (GgmlType::Q5_K, size_of::<blocks::BlockQ5K>()),
            (GgmlType::Q6_K, size_of::<blocks::BlockQ6K>()),
            (GgmlType::Q8_K, size_of::<blocks::BlockQ8K>()),
            (GgmlType::TQ1_0, size_of::<blocks::BlockTQ1_0>()),
            (GgmlType::TQ2_0, size_of::<blocks::BlockTQ2_0>()),
        ];
        for (ty, size) in pairs {
            assert_eq!(ty.type_size(), size, "{ty}");
        }
    }

    #[test]
    fn lengths_are_checked() {
        let mut out = [0f32; 32];
        assert!(matches!(
            dequantize(GgmlType::Q4_0, &[0; 17], &mut out),
            Err(QuantError::LengthMismatch {
                expected: 18,
                got: 17,
                ..
            })
        ));
        let mut out = [0f32; 33];
        assert!(matches!(
            dequantize(GgmlType::Q4_0, &[0; 18], &mut out),
            Err(QuantError::NotBlockMultiple { .. })
        ));
        assert!(matches!(
            dequantize(GgmlType::IQ2_XXS, &[0; 66], &mut [0f32; 256]),
            Err(QuantError::Unsupported { .. })
        ));
        assert!(matches!(
            quantize_to_vec(GgmlType::Q6_K, &[0f32; 256]),
            Err(QuantError::Unsupported { .. })
        ));
        assert!(dequantize_to_vec(GgmlType::Q8_0, &[0; 34], usize::MAX).is_err());
    }

    #[test]
    fn names_and_ids_round_trip() {
        for &ty in GgmlType::ALL {
            assert_eq!(GgmlType::from_u32(ty.id()), Some(ty));
            assert_eq!(GgmlType::from_name(ty.name()), Some(ty));
        }
        assert_eq!(GgmlType::from_name("Q4_K"), Some(GgmlType::Q4_K));
        assert_eq!(GgmlType::from_u32(4), None);
        assert_eq!(GgmlType::Q4_K.row_bytes(512), Ok(288));
    }
}
