//! E-graph → IR: materialise the extracted plan and replace the old values.
//!
//! Roots (decision values read outside the region) are rebuilt in layout
//! order. A class's value is built once per function (memoized), so the LUT
//! tables built for q are what k and v read. A chosen node that is exactly
//! an original op (same op, same operand values) defined before the current
//! root reuses that op; anything else is inserted just before the root's
//! original op, where every operand is available: equal e-classes have the
//! same leaves (every rule keeps its variables), and memoized values were
//! placed before earlier roots. Old values are then redirected with
//! [`replace_value`] and what died is removed ([`remove_dead_ops`]); a new
//! value takes the name of the value it replaced.

use super::analysis::GemmAnalysis;
use super::lang::Gemm;
use crate::rewrite::{remove_dead_ops, replace_value};
use egg::{EGraph, Id};
use flexc_ir::{Func, FuncId, Op, Value};
use std::collections::HashMap;

/// What the rebuild of one function reads.
pub struct Rebuild<'a> {
    /// The saturated e-graph.
    pub egraph: &'a EGraph<Gemm, GemmAnalysis>,
    /// The chosen node of every class that has a choice.
    pub choice: &'a HashMap<Id, Gemm>,
    /// Every value of this function in the region with its (canonical) class,
    /// leaves included, in layout order.
    pub values: Vec<(Value, Id)>,
    /// This function's roots, in layout order.
    pub roots: Vec<Value>,
}

impl Rebuild<'_> {
    /// Rewrites `f`; returns whether anything changed.
    pub fn run(&self, f: &mut Func) -> Result<bool, String> {
        let mut st = State {
            memo: HashMap::new(),
            by_class: HashMap::new(),
            class_of: self.values.iter().copied().collect(),
            position: f.layout.iter().enumerate().map(|(i, &op)| (op, i)).collect(),
            limit: 0,
            at: 0,
            inserted: 0,
        };
        for &(v, c) in &self.values {
            st.by_class.entry(c).or_default().push(v);
        }
        let mut replaced: Vec<(Value, Value)> = Vec::new();
        for &root in &self.roots {
            let op = f.dfg.def_op(root).ok_or("a root is not an op result")?;
            st.limit = st.position[&op];
            st.at = f.layout.iter().position(|&o| o == op).ok_or("a root left the layout")?;
            let class = *st.class_of.get(&root).ok_or_else(|| format!("{root} is not in the region"))?;
            let new = self.build(f, &mut st, self.egraph.find(class))?;
            if new != root {
                replace_value(f, root, new);
                replaced.push((root, new));
            }
        }
        remove_dead_ops(f);
        let live: std::collections::HashSet<Value> = f.layout.iter().map(|&o| f.dfg.ops[o].result).collect();
        for (old, new) in &replaced {
            if !live.contains(old) && f.dfg.values[*new].name.is_none() {
                f.dfg.values[*new].name = f.dfg.values[*old].name.clone();
            }
        }
        Ok(st.inserted > 0 || !replaced.is_empty())
    }

    fn build(&self, f: &mut Func, st: &mut State, c: Id) -> Result<Value, String> {
        if let Some(&v) = st.memo.get(&c) {
            return Ok(v);
        }
        let g = self.egraph;
        let node = self.choice.get(&c).unwrap_or(&g[c].nodes[0]);
        let v = if let Gemm::Leaf(_) = node {
            st.by_class.get(&c).and_then(|vs| vs.first().copied()).ok_or_else(|| format!("leaf class {c} has no value"))?
        } else {
            let attr = |id: Id| g[id].data.attr.unwrap_or(0);
            let (attrs, operands) = node.to_op(attr).ok_or("a leaf with no value")?;
            let mut args = Vec::with_capacity(operands.len());
            for a in operands {
                args.push(self.build(f, st, g.find(a))?);
            }
            let reuse = st.by_class.get(&c).into_iter().flatten().copied().find(|&v| {
                f.dfg.def_op(v).is_some_and(|op| {
                    let d = &f.dfg.ops[op];
                    st.position.get(&op).is_some_and(|&p| p <= st.limit) && d.attrs == attrs && d.args.as_slice() == args.as_slice()
                })
            });
            match reuse {
                Some(v) => v,
                None => {
                    let v = f.insert_at(st.at, attrs, &args, None)?;
                    debug_assert_eq!(Some(f.dfg.ty(v)), g[c].data.ty());
                    st.at += 1;
                    st.inserted += 1;
                    v
                }
            }
        };
        st.memo.insert(c, v);
        Ok(v)
    }
}

/// The rebuild's running state for one function.
struct State {
    /// The value built for each class.
    memo: HashMap<Id, Value>,
    /// The original values of each class.
    by_class: HashMap<Id, Vec<Value>>,
    /// The class of each original value.
    class_of: HashMap<Value, Id>,
    /// Each original op's layout index before the rebuild.
    position: HashMap<Op, usize>,
    /// Original ops up to this index (the current root's) may be reused.
    limit: usize,
    /// Where new ops go (just before the current root's op).
    at: usize,
    /// How many ops were inserted.
    inserted: usize,
}

/// Groups the region's values by function: `(func, value, class)` triples
/// in layout order.
pub fn by_func(values: impl IntoIterator<Item = (FuncId, Value, Id)>) -> HashMap<FuncId, Vec<(Value, Id)>> {
    let mut out: HashMap<FuncId, Vec<(Value, Id)>> = HashMap::new();
    for (f, v, c) in values {
        out.entry(f).or_default().push((v, c));
    }
    out
}
