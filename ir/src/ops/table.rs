//! The macro that turns the op table (`defs.rs`) into code.
//!
//! Each op is declared once: its Rust name, its `dialect.mnemonic`, its
//! operands, its traits, its typed attributes (with defaults), its
//! result-type rule and a doc line. From that one declaration come
//! [`Opcode`](super::Opcode) (with its [`traits`](super::Opcode::traits)), the
//! typed attribute structs in [`attrs`](super::attrs), the attribute parser
//! and printer, arity checks, and type inference, so the builder, the text
//! format and the verifier cannot disagree about an op.

/// How many operands an op takes.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Arity {
    /// Exactly this many.
    Fixed(usize),
    /// At least this many (variadic).
    AtLeast(usize),
}

impl Arity {
    /// True if `n` operands are acceptable.
    pub fn accepts(self, n: usize) -> bool {
        match self {
            Arity::Fixed(k) => n == k,
            Arity::AtLeast(k) => n >= k,
        }
    }
}

impl std::fmt::Display for Arity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arity::Fixed(1) => write!(f, "1 operand"),
            Arity::Fixed(k) => write!(f, "{k} operands"),
            Arity::AtLeast(k) => write!(f, "at least {k} operand(s)"),
        }
    }
}

macro_rules! arity {
    ((.. $v:ident)) => {
        $crate::ops::Arity::AtLeast(1)
    };
    (($($o:ident),*)) => {
        $crate::ops::Arity::Fixed(0 $(+ { let _ = stringify!($o); 1 })*)
    };
}

macro_rules! field_default {
    ($t:ty;) => {
        None::<$t>
    };
    ($t:ty; $d:expr) => {
        Some::<$t>($d)
    };
}

macro_rules! define_ops {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident = $mnemonic:literal $operands:tt [$($trait:ident),*] {
            $( $(#[doc = $fdoc:literal])* $field:ident : $fty:ty $(= $default:expr)? ),* $(,)?
        } => $rule:path;
    )*) => {
        /// Every operation kind, across all dialects.
        #[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
        pub enum Opcode {
            $( $(#[doc = $doc])+ $name, )*
        }

        impl Opcode {
            /// Every opcode, in table order.
            pub const ALL: &'static [Opcode] = &[$(Opcode::$name),*];

            /// The text spelling, `dialect.mnemonic`.
            pub fn mnemonic(self) -> &'static str {
                match self { $(Opcode::$name => $mnemonic),* }
            }

            /// Looks an op up by its text spelling.
            pub fn from_mnemonic(s: &str) -> Option<Opcode> {
                match s { $($mnemonic => Some(Opcode::$name),)* _ => None }
            }

            /// The dialect prefix (`tensor`, `quant`).
            pub fn dialect(self) -> &'static str {
                let m = self.mnemonic();
                &m[..m.find('.').unwrap_or(m.len())]
            }

            /// The documentation line of the op.
            pub fn doc(self) -> &'static str {
                match self { $(Opcode::$name => concat!($($doc),+).trim_ascii()),* }
            }

            /// How many operands the op takes.
            pub fn arity(self) -> $crate::ops::Arity {
                match self { $(Opcode::$name => arity!($operands)),* }
            }

            /// The operand names, as declared (`(lhs, rhs)`).
            pub fn operand_names(self) -> &'static str {
                match self { $(Opcode::$name => stringify!($operands)),* }
            }

            /// The attribute names the op accepts.
            pub fn attr_names(self) -> &'static [&'static str] {
                match self { $(Opcode::$name => &[$(stringify!($field)),*]),* }
            }

            /// The traits the op declares (see [`OpTrait`](crate::ops::OpTrait)).
            pub fn traits(self) -> &'static [$crate::ops::OpTrait] {
                match self { $(Opcode::$name => &[$($crate::ops::OpTrait::$trait),*]),* }
            }
        }

        /// Typed attribute structs, one per op (field docs are the op table's).
        pub mod attrs {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[doc = $doc])+
                #[derive(Clone, PartialEq, Debug)]
                pub struct $name {
                    $( $(#[doc = $fdoc])* pub $field: $fty, )*
                }

                impl From<$name> for super::OpAttrs {
                    fn from(a: $name) -> super::OpAttrs {
                        super::OpAttrs::$name(a)
                    }
                }
            )*
        }

        /// The attributes of an op; the variant is the opcode.
        #[derive(Clone, PartialEq, Debug)]
        pub enum OpAttrs {
            $( $(#[doc = $doc])+ $name(attrs::$name), )*
        }

        impl OpAttrs {
            /// The opcode these attributes belong to.
            pub fn opcode(&self) -> Opcode {
                match self { $(OpAttrs::$name(_) => Opcode::$name),* }
            }

            /// Builds typed attributes from parsed `key = literal` entries:
            /// unknown, duplicate, missing or ill-typed keys are errors.
            pub fn from_entries(
                opcode: Opcode,
                entries: Vec<(String, $crate::ops::AttrLit)>,
            ) -> Result<OpAttrs, String> {
                let mut entries = $crate::ops::table::Entries::new(opcode, entries)?;
                let attrs = match opcode {
                    $(Opcode::$name => OpAttrs::$name(attrs::$name {
                        $( $field: entries.take(stringify!($field), field_default!($fty; $($default)?))?, )*
                    }),)*
                };
                entries.finish()?;
                Ok(attrs)
            }

            /// The entries to print: required fields always, defaulted fields
            /// only when they differ from their default.
            pub fn entries(&self) -> Vec<(&'static str, $crate::ops::AttrLit)> {
                #[allow(unused_mut)]
                let mut out = Vec::new();
                match self {
                    $(OpAttrs::$name(_a) => {
                        $(
                            let default = field_default!($fty; $($default)?);
                            if default.as_ref() != Some(&_a.$field) {
                                out.push((stringify!($field), $crate::ops::AttrValue::to_lit(&_a.$field)));
                            }
                        )*
                    })*
                }
                out
            }

            /// Applies the op's result-type rule to its operand types. `declared`
            /// is the type written in the text (ops such as `tensor.reshape` take
            /// their result type from it and check it).
            pub fn infer(
                &self,
                args: &[&$crate::types::TensorType],
                declared: Option<&$crate::types::TensorType>,
            ) -> Result<$crate::types::TensorType, String> {
                let opcode = self.opcode();
                if !opcode.arity().accepts(args.len()) {
                    return Err(format!(
                        "'{}' takes {} {}, got {}",
                        opcode.mnemonic(), opcode.arity(), opcode.operand_names(), args.len()
                    ));
                }
                match self {
                    $(OpAttrs::$name(a) => $rule(&$crate::ops::RuleCx { args, attrs: a, declared }),)*
                }
            }
        }
    };
}

pub(crate) use {arity, define_ops, field_default};

/// The parsed entries of one attribute dictionary while they are matched to
/// an op's fields.
pub(crate) struct Entries {
    opcode: super::Opcode,
    entries: Vec<(String, super::AttrLit)>,
}

impl Entries {
    pub(crate) fn new(
        opcode: super::Opcode,
        entries: Vec<(String, super::AttrLit)>,
    ) -> Result<Entries, String> {
        for (i, (k, _)) in entries.iter().enumerate() {
            if entries[..i].iter().any(|(k2, _)| k2 == k) {
                return Err(format!("attribute '{k}' is given twice"));
            }
        }
        Ok(Entries { opcode, entries })
    }

    pub(crate) fn take<T: super::AttrValue>(
        &mut self,
        key: &str,
        default: Option<T>,
    ) -> Result<T, String> {
        match self.entries.iter().position(|(k, _)| k == key) {
            Some(i) => {
                let (_, lit) = self.entries.remove(i);
                T::from_lit(&lit).ok_or_else(|| {
                    format!("attribute '{key}' of '{}' must be {}, got {lit}", self.opcode.mnemonic(), T::EXPECTED)
                })
            }
            None => default.ok_or_else(|| {
                format!("'{}' needs attribute '{key}' ({})", self.opcode.mnemonic(), T::EXPECTED)
            }),
        }
    }

    pub(crate) fn finish(self) -> Result<(), String> {
        match self.entries.first() {
            None => Ok(()),
            Some((k, _)) => {
                let valid = self.opcode.attr_names();
                Err(if valid.is_empty() {
                    format!("'{}' takes no attributes, got '{k}'", self.opcode.mnemonic())
                } else {
                    format!("unknown attribute '{k}' for '{}' (valid: {})", self.opcode.mnemonic(), valid.join(", "))
                })
            }
        }
    }
}
