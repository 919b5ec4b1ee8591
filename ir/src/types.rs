//! Tensor types: `TensorType { shape, elem, encoding }`.
//!
//! The element type is the *logical* type of each entry (what arithmetic sees);
//! the optional [`Encoding`] names the *storage* scheme (ggml block formats,
//! later N:M, LUT and BCQ layouts). An encoded `f32[4096, 4096] #q4_k` holds
//! f32 values stored as Q4_K blocks: only ops that understand the encoding
//! (`quant.dequantize`, `quant.mpgemm`, `tensor.gather`) may read it.
//!
//! Encodings print as `#name` or, with parameters, `#name<key = value, ...>`
//! (angle brackets, so a type before a function body's `{` stays unambiguous).
//!
//! Dimensions are fixed sizes or named symbols (`f32[seq, 640]`): a symbol is
//! bound to a size when a function runs, which is how one imported model
//! function serves prefill (seq = 512) and decode (seq = 1).

use crate::ops::AttrLit;
use crate::quant::ggml::GgmlType;
use crate::quant::lowbit::{BcqParams, GqParams, TernaryParams};
use std::fmt;
use std::sync::Arc;

/// The element type of a tensor.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum ElemType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    BF16,
    /// Signed 64-bit integer.
    I64,
    /// Signed 32-bit integer.
    I32,
    /// Signed 16-bit integer.
    I16,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 4-bit integer (−8..=7).
    I4,
    /// Unsigned 4-bit integer (0..=15).
    U4,
    /// Signed 2-bit integer (−2..=1).
    I2,
    /// Unsigned 2-bit integer (0..=3).
    U2,
    /// One bit (0 or 1).
    I1,
    /// Ternary value (−1, 0, +1).
    Ternary,
}

impl ElemType {
    /// Every element type, in text order.
    pub const ALL: [ElemType; 14] = [
        ElemType::F32,
        ElemType::F16,
        ElemType::BF16,
        ElemType::I64,
        ElemType::I32,
        ElemType::I16,
        ElemType::I8,
        ElemType::U8,
        ElemType::I4,
        ElemType::U4,
        ElemType::I2,
        ElemType::U2,
        ElemType::I1,
        ElemType::Ternary,
    ];

    /// The text spelling (`f32`, `i4`, `ternary`).
    pub fn name(self) -> &'static str {
        match self {
            ElemType::F32 => "f32",
            ElemType::F16 => "f16",
            ElemType::BF16 => "bf16",
            ElemType::I64 => "i64",
            ElemType::I32 => "i32",
            ElemType::I16 => "i16",
            ElemType::I8 => "i8",
            ElemType::U8 => "u8",
            ElemType::I4 => "i4",
            ElemType::U4 => "u4",
            ElemType::I2 => "i2",
            ElemType::U2 => "u2",
            ElemType::I1 => "i1",
            ElemType::Ternary => "ternary",
        }
    }

    /// Parses a text spelling.
    pub fn from_name(s: &str) -> Option<ElemType> {
        ElemType::ALL.into_iter().find(|e| e.name() == s)
    }

    /// True for the floating-point types.
    pub fn is_float(self) -> bool {
        matches!(self, ElemType::F32 | ElemType::F16 | ElemType::BF16)
    }

    /// The inclusive value range of an integer type, `None` for floats.
    pub fn int_range(self) -> Option<(i64, i64)> {
        Some(match self {
            ElemType::I64 => (i64::MIN, i64::MAX),
            ElemType::I32 => (i32::MIN as i64, i32::MAX as i64),
            ElemType::I16 => (i16::MIN as i64, i16::MAX as i64),
            ElemType::I8 => (-128, 127),
            ElemType::U8 => (0, 255),
            ElemType::I4 => (-8, 7),
            ElemType::U4 => (0, 15),
            ElemType::I2 => (-2, 1),
            ElemType::U2 => (0, 3),
            ElemType::I1 => (0, 1),
            ElemType::Ternary => (-1, 1),
            ElemType::F32 | ElemType::F16 | ElemType::BF16 => return None,
        })
    }

    /// Bytes per element in flexc's plain (unencoded) storage: floats keep their
    /// width; every integer type is stored widened to its byte-aligned container
    /// (sub-byte types take one byte each; packing is an encoding's job).
    pub fn storage_bytes(self) -> usize {
        match self {
            ElemType::F32 | ElemType::I32 => 4,
            ElemType::F16 | ElemType::BF16 | ElemType::I16 => 2,
            ElemType::I64 => 8,
            _ => 1,
        }
    }
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One dimension of a shape: a fixed size or a named symbol bound at run time.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Dim {
    /// A size known at compile time.
    Fixed(u64),
    /// A size named by a symbol (`seq`), equal wherever the same name appears.
    Sym(Arc<str>),
}

impl Dim {
    /// The fixed size, if any.
    pub fn fixed(&self) -> Option<u64> {
        match self {
            Dim::Fixed(n) => Some(*n),
            Dim::Sym(_) => None,
        }
    }
}

impl From<u64> for Dim {
    fn from(n: u64) -> Dim {
        Dim::Fixed(n)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Sym(s) => f.write_str(s),
        }
    }
}

/// The storage scheme of an encoded tensor.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Encoding {
    /// A ggml block format (`#q4_k`, `#q8_0`, …): rows along the last axis are
    /// runs of blocks laid out exactly as llama.cpp stores them.
    Ggml(GgmlType),
    /// N:M structured sparsity (`#nm<n = 2, m = 4>`): in every run of `m`
    /// consecutive elements along the last axis (for a weight `[out, in]`, a
    /// group of input channels within one output row) at most `n` are kept
    /// (**n kept of m**). Each group is one block: the `n` kept values as f32
    /// then their in-group indices, packed; see [`crate::quant::nm`].
    Nm {
        /// Values kept per group.
        n: u8,
        /// Group size.
        m: u8,
    },
    /// Group-wise k-bit round-to-nearest (`#gq<bits, group, zero>`, see `quant::gq`).
    Gq(GqParams),
    /// BitNet b1.58 ternary, absmean scale (`#ternary<group>`, see `quant::ternary`).
    Ternary(TernaryParams),
    /// Binary-coding quantization (`#bcq<bits, group, pot, apot>`, see `quant::bcq`).
    Bcq(BcqParams),
}

impl Encoding {
    /// Parses `#name` or `#name<key = value, ...>` (the part after `#`).
    pub fn parse(name: &str, params: &[(String, AttrLit)]) -> Result<Encoding, String> {
        if let Some(t) = GgmlType::from_name(name).filter(|&t| crate::quant::is_ggml_encoding(t)) {
            return match params.first() {
                None => Ok(Encoding::Ggml(t)),
                Some((k, _)) => Err(format!("encoding #{name} takes no parameters, got '{k}'")),
            };
        }
        if name == "nm" {
            let (mut n, mut m) = (None, None);
            for (k, v) in params {
                let AttrLit::Int(x) = v else { return Err(format!("encoding #nm: '{k}' must be an integer")) };
                match k.as_str() {
                    "n" => n = Some(*x),
                    "m" => m = Some(*x),
                    _ => return Err(format!("encoding #nm has no parameter '{k}' (it takes n, m)")),
                }
            }
            let (Some(n), Some(m)) = (n, m) else { return Err("encoding #nm needs n and m (#nm<n = 2, m = 4>)".into()) };
            if !(1..=crate::quant::nm::MAX_M as i64).contains(&m) || !(1..=m).contains(&n) {
                return Err(format!("encoding #nm<n = {n}, m = {m}>: need 1 <= n <= m <= {}", crate::quant::nm::MAX_M));
            }
            return Ok(Encoding::Nm { n: n as u8, m: m as u8 });
        }
        if let Some(r) = crate::quant::lowbit::parse(name, params) {
            return r;
        }
        Err(format!("unknown encoding #{name}"))
    }

    /// The name after `#`.
    pub fn name(&self) -> &'static str {
        match self {
            Encoding::Ggml(t) => t.name(),
            Encoding::Nm { .. } => "nm",
            Encoding::Gq(_) => "gq",
            Encoding::Ternary(_) => "ternary",
            Encoding::Bcq(_) => "bcq",
        }
    }

    /// The parameters printed in `<...>` (none for the ggml formats).
    pub fn params(&self) -> Vec<(&'static str, AttrLit)> {
        match self {
            Encoding::Ggml(_) => Vec::new(),
            Encoding::Nm { n, m } => vec![("n", AttrLit::Int(*n as i64)), ("m", AttrLit::Int(*m as i64))],
            Encoding::Gq(p) => vec![("bits", AttrLit::Int(p.bits.into())), ("group", AttrLit::Int(p.group.into())), ("zero", AttrLit::Bool(p.zero))],
            Encoding::Ternary(p) => vec![("group", AttrLit::Int(p.group.into()))],
            Encoding::Bcq(p) => {
                let shared = p.scales() != crate::quant::BcqScales::Row;
                let mut v = vec![("bits", AttrLit::Int(p.bits.into()))];
                if !shared {
                    v.push(("group", AttrLit::Int(p.group.into())));
                }
                v.push(("pot", AttrLit::Bool(p.pot)));
                if p.pot {
                    v.push(("apot", AttrLit::Int(p.apot.into())));
                }
                if shared {
                    v.push(("scales", AttrLit::Ident(p.scales().name().to_string())));
                }
                v
            }
        }
    }

    /// Elements per storage block along the last axis.
    pub fn block_elems(&self) -> u64 {
        match self {
            Encoding::Ggml(t) => t.block_size() as u64,
            Encoding::Nm { m, .. } => *m as u64,
            Encoding::Gq(p) => p.group.into(),
            Encoding::Ternary(p) => p.block_elems() as u64,
            Encoding::Bcq(p) => p.row_block_elems() as u64,
        }
    }

    /// Bytes per storage block.
    pub fn block_bytes(&self) -> u64 {
        match self {
            Encoding::Ggml(t) => t.type_size() as u64,
            Encoding::Nm { n, m } => crate::quant::nm::block_bytes(*n, *m) as u64,
            Encoding::Gq(p) => p.block_bytes() as u64,
            Encoding::Ternary(p) => p.block_bytes() as u64,
            Encoding::Bcq(p) => p.block_bytes() as u64,
        }
    }

    /// Storage bytes of `numel` elements: whole blocks, plus a trailer for
    /// per-tensor scales (`#ternary<group = 0>`); `None` if not whole blocks,
    /// and for layouts whose size depends on the shape (`#bcq` with shared
    /// scales: [`TensorType::storage_bytes`]).
    pub fn storage_bytes(&self, numel: u64) -> Option<u64> {
        if matches!(self, Encoding::Bcq(p) if p.scales() != crate::quant::BcqScales::Row) {
            return None;
        }
        let be = self.block_elems();
        if !numel.is_multiple_of(be) {
            return None;
        }
        let trailer = match self {
            Encoding::Ternary(p) => p.trailer_bytes() as u64,
            _ => 0,
        };
        (numel / be).checked_mul(self.block_bytes())?.checked_add(trailer)
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.name())?;
        let params = self.params();
        if !params.is_empty() {
            f.write_str("<")?;
            for (i, (k, v)) in params.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k} = {v}")?;
            }
            f.write_str(">")?;
        }
        Ok(())
    }
}

/// The type of every IR value: a tensor (rank 0 for scalars).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct TensorType {
    /// The dimensions, outermost first.
    pub shape: Vec<Dim>,
    /// The logical element type.
    pub elem: ElemType,
    /// The storage scheme, `None` for plain row-major storage.
    pub encoding: Option<Encoding>,
}

impl TensorType {
    /// A plain tensor type with fixed dimensions.
    pub fn new(elem: ElemType, shape: &[u64]) -> TensorType {
        TensorType { shape: shape.iter().map(|&n| Dim::Fixed(n)).collect(), elem, encoding: None }
    }

    /// The same type with another shape.
    pub fn with_shape(&self, shape: Vec<Dim>) -> TensorType {
        TensorType { shape, elem: self.elem, encoding: self.encoding }
    }

    /// The same type without an encoding (what dequantization produces).
    pub fn decoded(&self) -> TensorType {
        TensorType { shape: self.shape.clone(), elem: self.elem, encoding: None }
    }

    /// The rank.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The fixed sizes of every dimension, or `None` if any is symbolic.
    pub fn fixed_shape(&self) -> Option<Vec<u64>> {
        self.shape.iter().map(Dim::fixed).collect()
    }

    /// The element count when every dimension is fixed.
    pub fn numel(&self) -> Option<u64> {
        self.shape.iter().try_fold(1u64, |acc, d| acc.checked_mul(d.fixed()?))
    }

    /// The storage size in bytes when every dimension is fixed.
    pub fn storage_bytes(&self) -> Option<u64> {
        let n = self.numel()?;
        match &self.encoding {
            None => n.checked_mul(self.elem.storage_bytes() as u64),
            Some(Encoding::Bcq(p)) if p.scales() != crate::quant::BcqScales::Row => {
                let [rows, cols] = self.fixed_shape()?[..] else { return None };
                p.shared_bytes(rows, cols).ok()
            }
            Some(enc) => enc.storage_bytes(n),
        }
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.elem)?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")?;
        if let Some(enc) = &self.encoding {
            write!(f, " {enc}")?;
        }
        Ok(())
    }
}
