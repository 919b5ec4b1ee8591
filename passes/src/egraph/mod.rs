//! `select-gemm`: choose the primitive that runs each GEMM by equality
//! saturation (egg) and the target's cost model.
//!
//! The decision ops of the module (matmul, dequantize, mpgemm, the `kern.`
//! GEMMs and LUT precomputes) become one e-graph ([`convert`], language in
//! [`lang`], types and weight-only-ness in [`analysis`]); the rewrite table
//! ([`rules`]) saturates it with every equivalent way to compute each GEMM:
//! `matmul(x, dequantize(w))` ⇔ `mpgemm(x, w)` ⇔ `lut_gemm(lut_precompute(x), w)`
//! | `shiftadd_gemm(x, w)` | `sparse_gemm(x, w)` | `dense_gemm(x, w)`, each under
//! its precondition on `w`. Hash-consing makes the tables of one activation
//! a single node shared by every GEMM reading it (q/k/v, gate/up).
//! [`extract`] then picks one primitive per GEMM with the target's
//! [`CostModel`](crate::target::CostModel), exactly, counting shared tables
//! once ([`cost`] says what costs what; weight-only sub-DAGs cost 0), and
//! [`rebuild`] writes the plan back as `kern.` ops through the rewrite helper.
//! [`explain`] records the candidates, costs and runner figures for
//! `flexc opt --explain`.
//!
//! Options: `target` names the cost model the driver must provide (an error
//! otherwise); `rows` is how many activation rows a symbolic dimension
//! (`seq`) stands for when costing (1, the default, costs decode; 512 a
//! prefill chunk); `only=lut|shiftadd|sparse|dense` forces one primitive
//! where it applies (dense elsewhere), to measure single-primitive plans
//! against the selected one; `iters`, `nodes`, `time-ms` are the runner's
//! explicit limits (the rules only add a handful of nodes per GEMM and
//! saturate in a few iterations; a limit hit still leaves a sound e-graph to
//! extract from, and the stop reason is reported).

pub mod analysis;
pub mod convert;
pub mod cost;
pub mod explain;
pub mod extract;
pub mod lang;
pub mod rebuild;
pub mod rules;

#[cfg(test)]
mod tests;

use crate::pass::{Changed, Pass, PassCx, PassInfo};
use crate::options::{OptDecl, OptKind, Options};
use crate::target::Primitive;
use analysis::GemmAnalysis;
use egg::{Id, Language, Runner, SimpleScheduler, StopReason};
use explain::{Explain, RunnerExplain};
use flexc_ir::{FuncId, Module, Value};
use lang::Gemm;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// The targets that have cost models.
pub const TARGETS: [&str; 2] = ["cpu", "flexcim"];

pub(crate) const INFO: PassInfo = PassInfo {
    name: "select-gemm",
    summary: "choose each GEMM's primitive (lut, shiftadd, sparse, dense) by equality saturation and the target's cost model",
    options: &[
        OptDecl { name: "target", kind: OptKind::Str, default: "cpu", help: "whose cost model decides: cpu | flexcim" },
        OptDecl { name: "rows", kind: OptKind::Int, default: "1", help: "activation rows a symbolic dim (seq) counts as when costing: 1 = decode, 512 = prefill chunk" },
        OptDecl { name: "only", kind: OptKind::Str, default: "", help: "force lut | shiftadd | sparse | dense where it applies, dense elsewhere" },
        OptDecl { name: "iters", kind: OptKind::Int, default: "16", help: "runner iteration limit" },
        OptDecl { name: "nodes", kind: OptKind::Int, default: "100000", help: "runner e-node limit" },
        OptDecl { name: "time-ms", kind: OptKind::Int, default: "1000", help: "runner time limit (ms)" },
    ],
    make: |o| Ok(Box::new(SelectGemm::from_options(o)?)),
};

/// The `select-gemm` pass.
pub struct SelectGemm {
    target: String,
    rows: u64,
    only: Option<Primitive>,
    iters: usize,
    nodes: usize,
    time: Duration,
}

/// Checks the `target` option shared by `select-gemm` and `tile-gemm`.
pub(crate) fn target_option(o: &Options) -> Result<String, String> {
    let t = o.str("target");
    if !TARGETS.contains(&t) {
        return Err(format!("{}: unknown target '{t}' (targets: {})", o.pass(), TARGETS.join(", ")));
    }
    Ok(t.to_string())
}

/// Checks an option that must be a positive integer.
pub(crate) fn positive(o: &Options, key: &str) -> Result<u64, String> {
    let v = o.int(key);
    if v < 1 {
        return Err(format!("{}: '{key}' must be at least 1, got {v}", o.pass()));
    }
    Ok(v as u64)
}

impl SelectGemm {
    fn from_options(o: &Options) -> Result<SelectGemm, String> {
        let only = match o.str("only") {
            "" => None,
            s => Some(Primitive::from_name(s).ok_or_else(|| format!("select-gemm: unknown primitive '{s}' for only= (lut, shiftadd, sparse, dense)"))?),
        };
        Ok(SelectGemm {
            target: target_option(o)?,
            rows: positive(o, "rows")?,
            only,
            iters: positive(o, "iters")? as usize,
            nodes: positive(o, "nodes")? as usize,
            time: Duration::from_millis(positive(o, "time-ms")?),
        })
    }
}

/// The driver-provided cost model of `target`, or an error naming what was provided.
pub(crate) fn cost_model(cx: &PassCx, target: &str) -> Result<std::sync::Arc<dyn crate::target::CostModel>, String> {
    cx.cost_model(target).ok_or_else(|| {
        let have: Vec<&str> = cx.cost_models.iter().map(|m| m.target()).collect();
        format!("no cost model for target '{target}' (the driver provided: {})", if have.is_empty() { "none".into() } else { have.join(", ") })
    })
}

/// A value's name for explanations (`%q`, or `@f %q` when several functions have GEMMs).
fn value_label(m: &Module, fid: FuncId, v: Value, qualify: bool) -> String {
    let f = &m.funcs[fid];
    let name = f.dfg.values[v].name.as_ref().map_or_else(|| v.to_string(), |n| format!("%{n}"));
    if qualify { format!("@{} {name}", f.name) } else { name }
}

fn stop_reason(r: &Option<StopReason>) -> String {
    match r {
        Some(StopReason::Saturated) => "saturated".into(),
        Some(StopReason::IterationLimit(n)) => format!("iteration limit {n}"),
        Some(StopReason::NodeLimit(n)) => format!("node limit {n}"),
        Some(StopReason::TimeLimit(s)) => format!("time limit {s}s"),
        Some(StopReason::Other(s)) => s.clone(),
        None => "not run".into(),
    }
}

impl Pass for SelectGemm {
    fn name(&self) -> &'static str {
        "select-gemm"
    }

    fn run(&mut self, m: &mut Module, cx: &mut PassCx) -> Result<Changed, String> {
        let model = cost_model(cx, &self.target)?;
        let region = convert::region(m);
        let (egraph, ids) = convert::load(&region);
        let runner: Runner<Gemm, GemmAnalysis> = Runner::new(GemmAnalysis::default())
            .with_egraph(egraph)
            .with_scheduler(SimpleScheduler)
            .with_iter_limit(self.iters)
            .with_node_limit(self.nodes)
            .with_time_limit(self.time)
            .run(&rules::rules());
        let g = &runner.egraph;

        // Classes in program order: labels, the GEMMs, the original nodes.
        let qualify = region.values.iter().map(|&(f, _, _)| f).collect::<HashSet<_>>().len() > 1;
        let mut label: HashMap<Id, String> = HashMap::new();
        let mut products: Vec<(Id, String)> = Vec::new();
        let mut original: HashMap<Id, Gemm> = HashMap::new();
        for &(fid, v, i) in &region.values {
            let c = g.find(ids[usize::from(i)]);
            let node = &region.expr[i];
            label.entry(c).or_insert_with(|| value_label(m, fid, v, qualify));
            if node.is_product() && !products.iter().any(|(p, _)| *p == c) {
                products.push((c, label[&c].clone()));
            }
            if !matches!(node, Gemm::Leaf(_)) {
                original.entry(c).or_insert_with(|| node.clone().map_children(|k| g.find(ids[usize::from(k)])));
            }
        }
        let name = |c: Id| label.get(&g.find(c)).cloned().unwrap_or_else(|| format!("class {c}"));
        let plan = extract::extract(g, &products, &original, model.as_ref(), self.rows, self.only, &name);

        let mut values = rebuild::by_func(region.values.iter().map(|&(f, v, i)| (f, v, g.find(ids[usize::from(i)]))));
        let mut changed = false;
        for (fid, f) in m.funcs.iter_mut() {
            let roots: Vec<Value> = region.roots.iter().filter(|(r, _)| *r == fid).map(|&(_, v)| v).collect();
            if roots.is_empty() {
                continue;
            }
            let rb = rebuild::Rebuild { egraph: g, choice: &plan.choice, values: values.remove(&fid).unwrap_or_default(), roots };
            changed |= rb.run(f)?;
        }

        let explain = cx.explain.get_or_insert_with(Explain::default);
        explain.header = format!(
            "select-gemm: target {} ({}, costs in {}), rows = {}{}",
            model.target(),
            model.source(),
            model.unit(),
            self.rows,
            self.only.map(|p| format!(", only = {p}")).unwrap_or_default()
        );
        explain.gemms = plan.gemms;
        explain.tables = plan.tables;
        explain.runner = Some(RunnerExplain {
            stop_reason: stop_reason(&runner.stop_reason),
            iterations: runner.iterations.len(),
            nodes: g.total_number_of_nodes(),
            classes: g.number_of_classes(),
        });
        Ok(Changed::from(changed))
    }
}
