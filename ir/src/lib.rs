//! flexc's tensor IR.
//!
//! A [`Module`] holds functions and a weight table. Each function is one SSA
//! region: a data-flow graph of ops over tensor values plus a layout (the op
//! order). Entities (`Value`, `Op`, `WeightId`) are small integer handles into
//! typed arenas, the way Cranelift does it, so passes never chase pointers.
//!
//! * [`ops`]: the op table (every op declared once) and typed attributes.
//! * [`types`]: `TensorType { shape, elem, encoding }`.
//! * [`text`]: the `.fir` text format (grammar in its docs).
//! * [`verify`]: the verifier (its docs list every invariant).
//! * [`weights`]: the weight table; [`quant`]: storage codecs.
#![deny(missing_docs)]

pub mod calib;
pub mod dfg;
pub mod diag;
pub mod entity;
pub mod func;
pub mod limits;
pub mod module;
pub mod ops;
pub mod quant;
pub mod shape;
pub mod text;
pub mod types;
pub mod verify;
pub mod weights;

pub use dfg::{DataFlowGraph, ValueDef};
pub use diag::Diagnostic;
pub use entity::{FuncId, Op, Value, WeightId};
pub use func::{Func, Span};
pub use module::Module;
pub use ops::{attrs, OpAttrs, Opcode};
pub use types::{Dim, ElemType, Encoding, TensorType};
