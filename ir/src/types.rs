//! Tensor types: `TensorType { shape, elem, encoding }`.
//!
//! The element type is the *logical* type of each entry (what arithmetic sees);
//! the optional [`Encoding`] names the *storage* scheme (ggml block formats,
//! N:M, group-wise, ternary and BCQ layouts; one registry entry each, see
//! [`crate::quant::encoding`]). An encoded `f32[4096, 4096] #q4_k` holds
//! f32 values stored as Q4_K blocks: only ops that understand the encoding
//! (`quant.dequantize`, `quant.mpgemm`, `tensor.gather`) may read it.
//!
//! Encodings print as `#name` or, with parameters, `#name<key = value, ...>`
//! (angle brackets, so a type before a function body's `{` stays unambiguous).
//!
//! Dimensions are fixed sizes or named symbols (`f32[seq, 640]`): a symbol is
//! bound to a size when a function runs, which is how one imported model
//! function serves prefill (seq = 512) and decode (seq = 1).

pub use crate::quant::encoding::Encoding;
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
        match &self.encoding {
            None => self.numel()?.checked_mul(self.elem.storage_bytes() as u64),
            Some(enc) => enc.storage(&self.fixed_shape()?).ok(),
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
