//! Entity references: small integer handles into the typed arenas of a function
//! or module. They are `Copy`, compare by index, and print in the text syntax's
//! default spelling (`%v3`, `op7`, `w2`, `fn0`) when no name is attached.

use cranelift_entity::entity_impl;

/// An SSA tensor value: a function parameter or the result of an op.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value(u32);
entity_impl!(Value, "%v");

/// An operation in a function's data-flow graph.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Op(u32);
entity_impl!(Op, "op");

/// An entry of the module's weight table.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WeightId(u32);
entity_impl!(WeightId, "w");

/// A function of a module.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FuncId(u32);
entity_impl!(FuncId, "fn");
