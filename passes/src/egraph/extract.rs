//! Extraction: one node per GEMM e-class, counting shared LUT tables once.
//!
//! egg's greedy `Extractor` costs trees, so a `lut-precompute` read by q, k
//! and v would be charged three times, and amortising it over its possible
//! readers would undercharge it when only some of them pick LUT. The e-graph
//! here has a simple shape that allows an exact DAG extraction instead: the
//! only nodes with a run-time cost are kernel GEMMs and table precomputes
//! ([`super::cost`]), and every alternative of a GEMM class reads the same
//! activation and weight, except that a LUT alternative also reads its
//! activation's tables. So the plan's cost is
//! `Σ_GEMMs cost(choice) + Σ_{tables built} cost(tables)`, and it separates
//! per activation `x`: with `G_x` the GEMMs that could read `x`'s tables,
//! `l_g` a GEMM's LUT cost and `b_g` its best other cost, the tables are
//! built iff `P_x + Σ_{g∈G_x} min(l_g, b_g) < Σ_{g∈G_x} b_g`, and then each
//! `g` picks LUT iff `l_g ≤ b_g`. That is optimal, and linear in the size of
//! the e-graph (no ILP needed). A GEMM class with no kernel alternative the
//! target can run, or a weight-only one (computed offline, cost 0), keeps
//! its original op.
//!
//! `only = p` forces `p` wherever the e-graph offers it and the target can
//! run it, dense elsewhere: the single-primitive plans the selected plan is
//! measured against.

use super::analysis::GemmAnalysis;
use super::cost::{gemm_cost, tables_cost};
use super::explain::{Candidate, GemmExplain, TablesExplain};
use super::lang::Gemm;
use crate::target::{CostModel, Primitive};
use egg::{EGraph, Id, Language};
use std::collections::{BTreeMap, HashMap};

/// What extraction decided.
#[derive(Default)]
pub struct Plan {
    /// The chosen node of every GEMM class (canonical ids); other classes
    /// have one node.
    pub choice: HashMap<Id, Gemm>,
    /// Per GEMM, the candidates and the choice.
    pub gemms: Vec<GemmExplain>,
    /// Per activation with LUT candidates, the tables decision.
    pub tables: Vec<TablesExplain>,
}

/// One GEMM class's priced alternatives.
struct Priced {
    class: Id,
    label: String,
    /// The cheapest node of each primitive.
    best: BTreeMap<Primitive, (f64, Gemm)>,
    /// The tables class its LUT node reads.
    tables: Option<Id>,
}

impl Priced {
    /// The cheapest non-LUT primitive (first in listing order on ties).
    fn best_other(&self) -> Option<(Primitive, f64)> {
        self.best.iter().filter(|(p, _)| **p != Primitive::Lut).fold(None, |acc, (p, (c, _))| match acc {
            Some((_, best)) if best <= *c => acc,
            _ => Some((*p, *c)),
        })
    }
}

/// Decides every GEMM class of `products` (canonical ids with their labels,
/// in program order). `original` gives each class's node in the input IR;
/// `label` names any class for the explanation.
pub fn extract(
    g: &EGraph<Gemm, GemmAnalysis>,
    products: &[(Id, String)],
    original: &HashMap<Id, Gemm>,
    model: &dyn CostModel,
    rows: u64,
    only: Option<Primitive>,
    label: &dyn Fn(Id) -> String,
) -> Plan {
    let mut plan = Plan::default();
    let mut priced: Vec<Priced> = Vec::new();
    for (class, name) in products {
        let class = g.find(*class);
        if g[class].data.weight_only {
            continue;
        }
        let mut p = Priced { class, label: name.clone(), best: BTreeMap::new(), tables: None };
        for node in &g[class].nodes {
            let Some((prim, cost)) = gemm_cost(g, class, node, model, rows) else { continue };
            if p.best.get(&prim).is_none_or(|(c, _)| cost < *c) {
                p.best.insert(prim, (cost, node.clone()));
            }
        }
        priced.push(p);
    }

    // The tables each LUT candidate reads, their cost, and who shares them.
    let mut groups: BTreeMap<Id, (f64, Vec<usize>)> = BTreeMap::new();
    for (i, p) in priced.iter_mut().enumerate() {
        let Some((_, node)) = p.best.get(&Primitive::Lut) else { continue };
        let t = g.find(node.children()[0]);
        match tables_cost(g, t, model, rows) {
            Some(cost) => {
                p.tables = Some(t);
                groups.entry(t).or_insert((cost, Vec::new())).1.push(i);
            }
            None => {
                p.best.remove(&Primitive::Lut);
            }
        }
    }

    // Choose: `only` forces, otherwise the exact per-activation rule.
    let mut chosen: Vec<Option<Primitive>> = priced.iter().map(|p| p.best_other().map(|(q, _)| q)).collect();
    for (i, p) in priced.iter().enumerate() {
        if let Some(f) = only {
            let pick = [f, Primitive::Dense].into_iter().find(|q| p.best.contains_key(q));
            chosen[i] = pick.or(chosen[i]).or(p.best.keys().next().copied());
        }
    }
    for (&t, (cost, members)) in &groups {
        let lut = |i: usize| priced[i].best[&Primitive::Lut].0;
        let other = |i: usize| priced[i].best_other().map_or(f64::INFINITY, |(_, c)| c);
        let without: f64 = members.iter().map(|&i| other(i)).sum();
        let with: f64 = cost + members.iter().map(|&i| lut(i).min(other(i))).sum::<f64>();
        if only.is_none() && with < without {
            for &i in members {
                if lut(i) <= other(i) {
                    chosen[i] = Some(Primitive::Lut);
                }
            }
        }
        let users = members.iter().filter(|&&i| chosen[i] == Some(Primitive::Lut)).count();
        let x = g[t].nodes.iter().find_map(|n| if let Gemm::LutPrecompute([x, _]) = n { Some(*x) } else { None });
        plan.tables.push(TablesExplain {
            activation: x.map(label).unwrap_or_default(),
            cost: *cost,
            sharers: members.len(),
            users,
            with_tables: with,
            without_tables: without,
        });
    }

    for (i, p) in priced.iter().enumerate() {
        let share = |prim: Primitive| match (prim, p.tables) {
            (Primitive::Lut, Some(t)) => groups[&t].0 / groups[&t].1.len() as f64,
            _ => 0.0,
        };
        let candidates = p.best.iter().map(|(q, (c, _))| Candidate { primitive: q.name().into(), cost: c + share(*q) }).collect();
        let node = chosen[i].map(|q| p.best[&q].1.clone()).or_else(|| original.get(&p.class).cloned());
        let kept = node.as_ref().and_then(|n| n.to_op(|_| 0)).map(|(op, _)| op.opcode().mnemonic().to_string());
        plan.gemms.push(GemmExplain {
            op: p.label.clone(),
            candidates,
            chosen: chosen[i].map(|q| q.name().to_string()).or(kept).unwrap_or_default(),
        });
        if let Some(n) = node {
            plan.choice.insert(p.class, n);
        }
    }
    // Weight-only GEMMs and anything unpriced keep their original node.
    for (c, n) in original {
        plan.choice.entry(g.find(*c)).or_insert_with(|| n.clone());
    }
    plan
}
