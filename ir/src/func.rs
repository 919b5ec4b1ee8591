//! Functions: a signature, a data-flow graph, and a layout (the op order).
//!
//! A function body is one SSA region: ops in `layout` order, each using only
//! parameters and results of earlier ops, ending in `return`.

use crate::dfg::DataFlowGraph;
use crate::entity::{Op, Value};
use crate::ops::OpAttrs;
use crate::types::TensorType;
use cranelift_entity::SecondaryMap;

/// A byte range in the source text an entity came from.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// A span from byte offsets.
    pub fn new(start: usize, end: usize) -> Span {
        Span { start: start as u32, end: end as u32 }
    }
}

/// A function.
#[derive(Clone, Debug)]
pub struct Func {
    /// The symbol name (without `@`).
    pub name: String,
    /// Parameter values, in order.
    pub params: Vec<Value>,
    /// Result types, in order.
    pub results: Vec<TensorType>,
    /// Ops and values.
    pub dfg: DataFlowGraph,
    /// The op order.
    pub layout: Vec<Op>,
    /// The returned values.
    pub returns: Vec<Value>,
    /// Where each op was written in the source, when parsed from text.
    pub srclocs: SecondaryMap<Op, Span>,
    /// Where the function itself was written.
    pub span: Span,
    /// Where its `return` was written (return-count and return-type errors point here).
    pub return_span: Span,
}

impl Func {
    /// An empty function with the given parameters and result types.
    pub fn new(name: impl Into<String>, params: &[(Option<String>, TensorType)], results: Vec<TensorType>) -> Func {
        let mut dfg = DataFlowGraph::default();
        let params = params.iter().enumerate().map(|(i, (n, t))| dfg.make_param(i as u32, t.clone(), n.clone())).collect();
        Func {
            name: name.into(),
            params,
            results,
            dfg,
            layout: Vec::new(),
            returns: Vec::new(),
            srclocs: SecondaryMap::new(),
            span: Span::default(),
            return_span: Span::default(),
        }
    }

    /// Appends an op whose result type the op table infers.
    pub fn append(&mut self, attrs: impl Into<OpAttrs>, args: &[Value]) -> Result<Value, String> {
        self.append_typed(attrs, args, None)
    }

    /// Appends an op, giving its result type where the op needs it written out
    /// (`tensor.weight`, `tensor.reshape`, `tensor.cast`, `tensor.constant`).
    pub fn append_typed(&mut self, attrs: impl Into<OpAttrs>, args: &[Value], declared: Option<TensorType>) -> Result<Value, String> {
        let attrs = attrs.into();
        let ty = attrs.infer(&self.dfg.arg_types_of(args), declared.as_ref())?;
        let (op, v) = self.dfg.make_op(attrs, args, ty, None);
        self.layout.push(op);
        Ok(v)
    }

    /// Inserts an op before layout position `at`, returning its result.
    pub fn insert_at(&mut self, at: usize, attrs: OpAttrs, args: &[Value], declared: Option<TensorType>) -> Result<Value, String> {
        let ty = attrs.infer(&self.dfg.arg_types_of(args), declared.as_ref())?;
        let (op, v) = self.dfg.make_op(attrs, args, ty, None);
        self.layout.insert(at, op);
        Ok(v)
    }

    /// Redirects every use of `old` (operands and returns) to `new`.
    pub fn replace_all_uses(&mut self, old: Value, new: Value) {
        let layout = std::mem::take(&mut self.layout);
        self.dfg.replace_uses_in(&layout, old, new);
        self.layout = layout;
        for r in &mut self.returns {
            if *r == old {
                *r = new;
            }
        }
    }

    /// How many times each value is used (operands and returns).
    pub fn use_counts(&self) -> SecondaryMap<Value, u32> {
        let mut counts = SecondaryMap::new();
        for &op in &self.layout {
            for &a in &self.dfg.ops[op].args {
                counts[a] += 1;
            }
        }
        for &r in &self.returns {
            counts[r] += 1;
        }
        counts
    }
}

impl DataFlowGraph {
    /// Types of a list of values.
    pub fn arg_types_of(&self, args: &[Value]) -> Vec<&TensorType> {
        args.iter().map(|&a| self.ty(a)).collect()
    }
}
