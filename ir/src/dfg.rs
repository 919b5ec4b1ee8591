//! The data-flow graph of a function: ops, values, and who defines what.
//!
//! Every op has exactly one result value (tensor ops are single-result).
//! Values are defined either as a function parameter or as an op's result.
//! Rewrites go through [`DataFlowGraph::replace_all_uses`] and dead-code
//! elimination, never by editing operand lists by hand.

use crate::entity::{Op, Value};
use crate::ops::OpAttrs;
use crate::types::TensorType;
use cranelift_entity::PrimaryMap;
use smallvec::SmallVec;

/// Where a value comes from.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum ValueDef {
    /// The n-th function parameter.
    Param(u32),
    /// The result of an op.
    Result(Op),
}

/// A value's record.
#[derive(Clone, Debug)]
pub struct ValueData {
    /// Its type.
    pub ty: TensorType,
    /// Its definition.
    pub def: ValueDef,
    /// The name it had in text (`%x`), kept so printing round-trips.
    pub name: Option<String>,
}

/// An op's record.
#[derive(Clone, Debug)]
pub struct OpData {
    /// Typed attributes; the variant is the opcode.
    pub attrs: OpAttrs,
    /// Operands, in order.
    pub args: SmallVec<[Value; 4]>,
    /// The result value.
    pub result: Value,
}

/// The ops and values of one function.
#[derive(Clone, Debug, Default)]
pub struct DataFlowGraph {
    /// Every op ever created (removed ops stay here but leave the layout).
    pub ops: PrimaryMap<Op, OpData>,
    /// Every value ever created.
    pub values: PrimaryMap<Value, ValueData>,
}

impl DataFlowGraph {
    /// Adds a parameter value.
    pub fn make_param(&mut self, index: u32, ty: TensorType, name: Option<String>) -> Value {
        self.values.push(ValueData { ty, def: ValueDef::Param(index), name })
    }

    /// Adds an op with its result value (not yet placed in a layout).
    pub fn make_op(&mut self, attrs: OpAttrs, args: &[Value], ty: TensorType, name: Option<String>) -> (Op, Value) {
        let op = self.ops.next_key();
        let result = self.values.push(ValueData { ty, def: ValueDef::Result(op), name });
        let op2 = self.ops.push(OpData { attrs, args: args.into(), result });
        debug_assert_eq!(op, op2);
        (op, result)
    }

    /// The type of a value.
    pub fn ty(&self, v: Value) -> &TensorType {
        &self.values[v].ty
    }

    /// The op defining a value, if it is an op result.
    pub fn def_op(&self, v: Value) -> Option<Op> {
        match self.values[v].def {
            ValueDef::Result(op) => Some(op),
            ValueDef::Param(_) => None,
        }
    }

    /// Redirects every operand use of `old` to `new` in the given ops.
    pub fn replace_uses_in(&mut self, ops: &[Op], old: Value, new: Value) {
        for &op in ops {
            for a in self.ops[op].args.iter_mut() {
                if *a == old {
                    *a = new;
                }
            }
        }
    }

    /// The types of an op's operands.
    pub fn arg_types(&self, op: Op) -> Vec<&TensorType> {
        self.ops[op].args.iter().map(|&a| self.ty(a)).collect()
    }
}
