//! flexc's tensor IR.
//!
//! A [`Module`] holds functions and a weight table. Each function is one SSA
//! region: a data-flow graph of ops over tensor values plus a layout (the op
//! order). Entities (`Value`, `Op`, `WeightId`) are small integer handles into
//! typed arenas, the way Cranelift does it, so passes never chase pointers.

pub mod quant;
