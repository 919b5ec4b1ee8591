//! Attribute values.
//!
//! In text, attributes are a dictionary after the operands:
//! `{transpose_b, eps = 1e-06, perm = [1, 0, 2], mode = neox}`. The parser
//! reads each value as a self-describing [`AttrLit`]; the op table then turns
//! the literals into a typed struct per op through [`AttrValue`], so passes
//! only ever see typed fields (`attrs.eps: f64`), never a string map.

use crate::quant::ParamValue;
use crate::types::Encoding;
use std::fmt;

/// A parsed attribute literal, before it is checked against an op's schema.
#[derive(Clone, PartialEq, Debug)]
pub enum AttrLit {
    /// A bare key (`{transpose_b}`) or `true`/`false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float (always printed with a `.` or an exponent).
    Float(f64),
    /// A bare identifier (enum cases such as `neox`).
    Ident(String),
    /// A quoted string.
    Str(String),
    /// A symbol (`@blk.0.attn_q.weight`).
    Symbol(String),
    /// A list (`[1, 0, 2]`).
    List(Vec<AttrLit>),
    /// An encoding (`#q8_0`).
    Encoding(Encoding),
    /// Dense tensor data (`dense<[1.0, 2.0]>`).
    Dense(Dense),
}

/// Inline tensor data of a constant or a small weight.
#[derive(Clone, PartialEq, Debug)]
pub enum Dense {
    /// Floating-point values (for float element types).
    Float(Vec<f64>),
    /// Integer values (for integer element types).
    Int(Vec<i64>),
    /// Raw storage bytes (for encoded tensors), printed as hex.
    Bytes(Vec<u8>),
}

impl Dense {
    /// The number of listed values (bytes for [`Dense::Bytes`]).
    pub fn len(&self) -> usize {
        match self {
            Dense::Float(v) => v.len(),
            Dense::Int(v) => v.len(),
            Dense::Bytes(v) => v.len(),
        }
    }

    /// True when nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Prints a float so that parsing it back gives the same `f64`.
pub fn fmt_float(f: &mut fmt::Formatter<'_>, x: f64) -> fmt::Result {
    if x.is_nan() {
        f.write_str("nan")
    } else if x.is_infinite() {
        f.write_str(if x > 0.0 { "inf" } else { "-inf" })
    } else {
        // `{:?}` is the shortest round-tripping form and always has `.` or `e`.
        write!(f, "{x:?}")
    }
}

impl fmt::Display for Dense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dense::Bytes(b) => {
                f.write_str("dense<\"0x")?;
                for byte in b {
                    write!(f, "{byte:02x}")?;
                }
                f.write_str("\">")
            }
            Dense::Float(v) => {
                f.write_str("dense<[")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    fmt_float(f, *x)?;
                }
                f.write_str("]>")
            }
            Dense::Int(v) => {
                f.write_str("dense<[")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str("]>")
            }
        }
    }
}

impl fmt::Display for AttrLit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrLit::Bool(b) => write!(f, "{b}"),
            AttrLit::Int(i) => write!(f, "{i}"),
            AttrLit::Float(x) => fmt_float(f, *x),
            AttrLit::Ident(s) => f.write_str(s),
            AttrLit::Str(s) => write!(f, "{s:?}"),
            AttrLit::Symbol(s) => write!(f, "@{s}"),
            AttrLit::List(items) => {
                f.write_str("[")?;
                for (i, x) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str("]")
            }
            AttrLit::Encoding(e) => write!(f, "{e}"),
            AttrLit::Dense(d) => write!(f, "{d}"),
        }
    }
}

impl AttrLit {
    /// The literal as the value of an encoding parameter (`#name<key = value>`).
    pub fn to_param(&self) -> ParamValue {
        match self {
            AttrLit::Int(i) => ParamValue::Int(*i),
            AttrLit::Bool(b) => ParamValue::Bool(*b),
            AttrLit::Ident(s) => ParamValue::Ident(s.clone()),
            other => ParamValue::Other(other.to_string()),
        }
    }
}

/// A Rust type usable as an attribute field.
pub trait AttrValue: Sized + Clone + PartialEq {
    /// What the field holds, for error messages (`an integer`).
    const EXPECTED: &'static str;
    /// Converts a literal, or says why it does not fit.
    fn from_lit(lit: &AttrLit) -> Option<Self>;
    /// Converts back to a literal for printing.
    fn to_lit(&self) -> AttrLit;
}

impl AttrValue for bool {
    const EXPECTED: &'static str = "a boolean";
    fn from_lit(lit: &AttrLit) -> Option<Self> {
        match lit {
            AttrLit::Bool(b) => Some(*b),
            _ => None,
        }
    }
    fn to_lit(&self) -> AttrLit {
        AttrLit::Bool(*self)
    }
}

impl AttrValue for i64 {
    const EXPECTED: &'static str = "an integer";
    fn from_lit(lit: &AttrLit) -> Option<Self> {
        match lit {
            AttrLit::Int(i) => Some(*i),
            _ => None,
        }
    }
    fn to_lit(&self) -> AttrLit {
        AttrLit::Int(*self)
    }
}

impl AttrValue for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_lit(lit: &AttrLit) -> Option<Self> {
        match lit {
            AttrLit::Float(x) => Some(*x),
            AttrLit::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
    fn to_lit(&self) -> AttrLit {
        AttrLit::Float(*self)
    }
}

impl AttrValue for Vec<i64> {
    const EXPECTED: &'static str = "a list of integers";
    fn from_lit(lit: &AttrLit) -> Option<Self> {
        match lit {
            AttrLit::List(items) => items.iter().map(i64::from_lit).collect(),
            _ => None,
        }
    }
    fn to_lit(&self) -> AttrLit {
        AttrLit::List(self.iter().map(|&i| AttrLit::Int(i)).collect())
    }
}

/// A symbol naming a module-level entity (a weight).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Symbol(pub String);

impl AttrValue for Symbol {
    const EXPECTED: &'static str = "a symbol (@name)";
    fn from_lit(lit: &AttrLit) -> Option<Self> {
        match lit {
            AttrLit::Symbol(s) => Some(Symbol(s.clone())),
            _ => None,
        }
    }
    fn to_lit(&self) -> AttrLit {
        AttrLit::Symbol(self.0.clone())
    }
}

impl AttrValue for Encoding {
    const EXPECTED: &'static str = "an encoding (#name)";
    fn from_lit(lit: &AttrLit) -> Option<Self> {
        match lit {
            AttrLit::Encoding(e) => Some(*e),
            _ => None,
        }
    }
    fn to_lit(&self) -> AttrLit {
        AttrLit::Encoding(*self)
    }
}

impl AttrValue for Dense {
    const EXPECTED: &'static str = "dense data (dense<[...]>)";
    fn from_lit(lit: &AttrLit) -> Option<Self> {
        match lit {
            AttrLit::Dense(d) => Some(d.clone()),
            _ => None,
        }
    }
    fn to_lit(&self) -> AttrLit {
        AttrLit::Dense(self.clone())
    }
}

/// Declares an enum attribute whose cases are bare identifiers in text.
macro_rules! attr_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $case:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
        pub enum $name { $($(#[$vm])* $case),+ }

        impl AttrValue for $name {
            const EXPECTED: &'static str = concat!("one of:" $(, " ", $text)+);
            fn from_lit(lit: &AttrLit) -> Option<Self> {
                match lit {
                    AttrLit::Ident(s) => match s.as_str() {
                        $($text => Some($name::$case),)+
                        _ => None,
                    },
                    _ => None,
                }
            }
            fn to_lit(&self) -> AttrLit {
                AttrLit::Ident(match self { $($name::$case => $text),+ }.to_string())
            }
        }
    };
}

attr_enum! {
    /// How RoPE pairs the dimensions of a head.
    RopeMode {
        /// Pairs (i, i + d/2): GPT-NeoX, Gemma, Qwen.
        Neox = "neox",
        /// Pairs (2i, 2i + 1): the original/Llama GGUF layout.
        Norm = "norm",
    }
}

attr_enum! {
    /// Which GELU formula.
    GeluApprox {
        /// The tanh approximation (Gemma's `gelu_pytorch_tanh`).
        Tanh = "tanh",
        /// The exact erf form (BERT).
        Erf = "erf",
    }
}

attr_enum! {
    /// Which reduction.
    ReduceKind {
        /// Sum.
        Sum = "sum",
        /// Arithmetic mean.
        Mean = "mean",
        /// Maximum.
        Max = "max",
    }
}

attr_enum! {
    /// Which comparison `tensor.compare` makes.
    CmpPred {
        /// a = b.
        Eq = "eq",
        /// a ≠ b.
        Ne = "ne",
        /// a < b.
        Lt = "lt",
        /// a ≤ b.
        Le = "le",
        /// a > b.
        Gt = "gt",
        /// a ≥ b.
        Ge = "ge",
    }
}
