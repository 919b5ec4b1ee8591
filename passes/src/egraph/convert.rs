//! IR → e-graph: the GEMM region of a module as one `RecExpr`.
//!
//! Every decision op ([`Gemm::from_op`]) of every function becomes a node,
//! memoized by IR value; every other operand becomes a [`Gemm::Leaf`] named
//! `fn<i>:%v<j>` carrying the value's type and whether it depends on weights
//! only. The region's roots are the decision values something outside the
//! region reads (a non-decision op or a `return`): they are what the rebuild
//! must reproduce. One e-graph serves the whole module, so the runner report
//! covers every function.

use super::analysis::{GemmAnalysis, Meta};
use super::lang::Gemm;
use egg::{EGraph, Id, Language, RecExpr, Symbol};
use flexc_ir::{Func, FuncId, Module, Value};
use std::collections::{HashMap, HashSet};

/// The values of `f` that depend on weights and constants only (an op
/// with no operands, `tensor.weight` or `tensor.constant`, or an op whose
/// operands all do). Such values can be computed ahead of time.
pub fn weight_only(f: &Func) -> HashSet<Value> {
    let mut wo = HashSet::new();
    for &op in &f.layout {
        let d = &f.dfg.ops[op];
        if d.args.iter().all(|a| wo.contains(a)) {
            wo.insert(d.result);
        }
    }
    wo
}

/// The decision ops of a module as one expression.
#[derive(Default)]
pub struct Region {
    /// Every decision op and leaf, operands first.
    pub expr: RecExpr<Gemm>,
    /// The meta of every leaf (the analysis' input).
    pub leaves: HashMap<Symbol, Meta>,
    /// Every IR value in the region (leaves and decision ops) with its node
    /// in `expr`, in layout order.
    pub values: Vec<(FuncId, Value, Id)>,
    /// The decision values read outside the region, in layout order.
    pub roots: Vec<(FuncId, Value)>,
}

/// The GEMM region of `m`.
pub fn region(m: &Module) -> Region {
    let mut r = Region::default();
    let mut nums: HashMap<i64, Id> = HashMap::new();
    for (fid, f) in m.funcs.iter() {
        let wo = weight_only(f);
        let mut node_of: HashMap<Value, Id> = HashMap::new();
        let mut decision: HashSet<Value> = HashSet::new();
        for &op in &f.layout {
            let d = &f.dfg.ops[op];
            let placeholders = vec![Id::from(0); d.args.len()];
            if Gemm::from_op(&d.attrs, &placeholders, |_| Id::from(0)).is_none() {
                continue;
            }
            let args: Vec<Id> = d
                .args
                .iter()
                .map(|&a| {
                    *node_of.entry(a).or_insert_with(|| {
                        let sym = Symbol::from(format!("{fid}:{a}"));
                        r.leaves.insert(sym, Meta::tensor(f.dfg.ty(a).clone(), wo.contains(&a)));
                        let id = r.expr.add(Gemm::Leaf(sym));
                        r.values.push((fid, a, id));
                        id
                    })
                })
                .collect();
            let expr = &mut r.expr;
            let node = Gemm::from_op(&d.attrs, &args, |n| *nums.entry(n).or_insert_with(|| expr.add(Gemm::Num(n))));
            if let Some(node) = node {
                let id = r.expr.add(node);
                node_of.insert(d.result, id);
                decision.insert(d.result);
                r.values.push((fid, d.result, id));
            }
        }
        // Roots: decision values used by a non-decision op or returned.
        let mut outside: HashSet<Value> = f.returns.iter().copied().collect();
        for &op in &f.layout {
            let d = &f.dfg.ops[op];
            if !decision.contains(&d.result) {
                outside.extend(d.args.iter().copied());
            }
        }
        for &op in &f.layout {
            let v = f.dfg.ops[op].result;
            if decision.contains(&v) && outside.contains(&v) {
                r.roots.push((fid, v));
            }
        }
    }
    r
}

/// Loads a region into a fresh e-graph; returns it and the class of every
/// node of `region.expr`.
pub fn load(region: &Region) -> (EGraph<Gemm, GemmAnalysis>, Vec<Id>) {
    let mut g = EGraph::new(GemmAnalysis { leaves: region.leaves.clone() });
    let mut ids: Vec<Id> = Vec::with_capacity(region.expr.as_ref().len());
    for node in region.expr.as_ref() {
        let id = g.add(node.clone().map_children(|c| ids[usize::from(c)]));
        ids.push(id);
    }
    g.rebuild();
    (g, ids)
}
