//! Operations: the op table and everything generated from it.
//!
//! * [`defs`] declares every op once (dialect, mnemonic, operands, typed
//!   attributes, result-type rule, doc line).
//! * [`table`] is the macro that expands the declarations.
//! * [`attr`] holds attribute literal and value types.
//! * [`rules`] holds the result-type rules the verifier and builder apply.
//! * [`traits`] holds the op traits (`pure`, `elementwise`, `GEMM-like`) the
//!   table declares and passes query.

pub mod attr;
mod defs;
mod rules;
pub use rules::check_dense as rules_check_dense;
pub use rules::lut_encoding;
pub(crate) mod table;
pub mod traits;

pub use attr::{AttrLit, AttrValue, CmpPred, Dense, GeluApprox, ReduceKind, RopeMode, Symbol};
pub use defs::{attrs, OpAttrs, Opcode};
pub use table::Arity;
pub use traits::OpTrait;

use crate::types::TensorType;

/// What a result-type rule sees: the operand types, the op's typed
/// attributes, and the result type written in the text, if any.
pub struct RuleCx<'a, A> {
    /// Operand types, in order.
    pub args: &'a [&'a TensorType],
    /// The op's attributes.
    pub attrs: &'a A,
    /// The declared result type (from text or the builder), if any.
    pub declared: Option<&'a TensorType>,
}
