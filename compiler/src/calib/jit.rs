//! Calibration on the CPU JIT runtime.
//!
//! [`instrument`] rewrites a copy of `@forward` so that its results are the
//! inputs of the block linears to record, one result per distinct input
//! value (q/k/v read one normed activation, gate/up another), then removes
//! the dead code: the LM head and final norm, and every block after the last
//! recorded one (a truncated forward). The runtime runs that function on
//! each window and the driver adds each returned `[tokens, channels]`
//! activation to the running mean with [`ChannelStats::add_sequence`], once
//! per distinct input; the linears that share it get copies of the same
//! statistics. With Hessians asked for, each distinct input's `XᵀX` is
//! computed once ([`super::hessian::xtx`]) and shared the same way.
//!
//! A [`Cut`] can also make the residual stream entering a block a parameter
//! (so the function starts there) and return the residual stream entering a
//! later block: sequential pruning runs one block at a time this way, as
//! the reference does ([`super::sequential`]).

use flexc_backends::cpu::runtime::{CpuRuntime, Input, ParamKind, RuntimeOptions};
use flexc_ir::calib::ChannelStats;
use flexc_ir::{Func, Module, Op, OpAttrs, Value};
use flexc_passes::sparsity::block_of;
use std::collections::{BTreeMap, HashMap, HashSet};

/// One recorded activation: the weights of the linears that read it and
/// its channel count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Weight names of the linears reading this input, in program order.
    pub weights: Vec<String>,
    /// Input channels (the activation's last dimension).
    pub channels: usize,
}

/// Where an instrumented function starts and what residual it returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cut {
    /// Start at block `k`: the residual stream entering it becomes the last
    /// parameter (`f32[seq, d]`), and everything before it is dead.
    pub from: Option<usize>,
    /// Also return (first) the residual stream entering block `j`.
    pub then: Option<usize>,
    /// Keep `@forward`'s own results (the logits) first, before everything
    /// else: a forward that starts at block `from` and ends in the logits.
    pub logits: bool,
}

/// The residual stream entering block `k`: the first operand of the first
/// op that reads one of the block's weights (its input norm).
pub(crate) fn block_input(f: &Func, k: usize) -> Result<Value, String> {
    let is_block_weight = |v: Value| {
        f.dfg.def_op(v).is_some_and(|d| matches!(&f.dfg.ops[d].attrs, OpAttrs::Weight(w) if block_of(&w.name.0) == Some(k)))
    };
    f.layout
        .iter()
        .map(|&op| &f.dfg.ops[op])
        .find(|d| !matches!(d.attrs, OpAttrs::Weight(_)) && d.args.iter().any(|&a| is_block_weight(a)))
        .and_then(|d| d.args.first().copied())
        .filter(|&v| !is_block_weight(v))
        .ok_or_else(|| format!("cannot find the residual stream entering block {k}"))
}

/// A copy of `m` whose `@forward` returns the inputs of the linears `ops`
/// (matmul op → weight name), one result per [`Group`] (after the residual
/// of `cut.then`, when set), dead code removed.
pub fn instrument(m: &Module, ops: &HashMap<Op, String>, cut: Cut) -> Result<(Module, Vec<Group>), String> {
    let mut out = m.clone();
    let id = out.func("forward").ok_or("the module has no @forward function")?;
    let f = &mut out.funcs[id];
    let mut order: Vec<Value> = Vec::new();
    let mut groups: HashMap<Value, Group> = HashMap::new();
    for &op in &f.layout {
        let Some(name) = ops.get(&op) else { continue };
        let x = f.dfg.ops[op].args[0];
        let channels = f.dfg.ty(x).shape.last().and_then(|d| d.fixed()).ok_or_else(|| format!("the input of @{name} has no fixed channel dimension"))? as usize;
        groups
            .entry(x)
            .or_insert_with(|| {
                order.push(x);
                Group { weights: Vec::new(), channels }
            })
            .weights
            .push(name.clone());
    }
    let next = cut.then.map(|j| block_input(f, j)).transpose()?;
    let own: Vec<Value> = if cut.logits { f.returns.clone() } else { Vec::new() };
    let mut returns: Vec<Value> = own.into_iter().chain(next).chain(order.iter().copied()).collect();
    if let Some(k) = cut.from {
        let h = block_input(f, k)?;
        let p = f.dfg.make_param(f.params.len() as u32, f.dfg.ty(h).clone(), Some("residual".into()));
        f.params.push(p);
        let layout = f.layout.clone();
        f.dfg.replace_uses_in(&layout, h, p);
        for r in &mut returns {
            if *r == h {
                *r = p;
            }
        }
    }
    f.results = returns.iter().map(|&v| f.dfg.ty(v).clone()).collect();
    f.returns = returns;
    flexc_passes::rewrite::remove_dead_ops(f);
    let used: HashSet<String> = out
        .funcs
        .iter()
        .flat_map(|(_, f)| f.layout.iter().filter_map(|&op| match &f.dfg.ops[op].attrs {
            OpAttrs::Weight(w) => Some(w.name.0.clone()),
            _ => None,
        }))
        .collect();
    out.weights.retain(|w| used.contains(&w.name));
    let groups = order.iter().map(|v| groups.remove(v).expect("every ordered value has a group")).collect();
    Ok((out, groups))
}

/// An instrumented function compiled for the CPU runtime, fed one window
/// (and, for a [`Cut::from`] function, its residual input) at a time.
pub struct Runner {
    rt: CpuRuntime,
    kinds: Vec<ParamKind>,
    zeros: Vec<Vec<f32>>,
    ids: Vec<i32>,
    threads: usize,
}

impl Runner {
    /// Compiles `@forward` of an instrumented module for `threads` threads.
    pub fn new(m: &Module, threads: usize) -> Result<Runner, String> {
        let opts = RuntimeOptions { threads: threads.max(1), ..RuntimeOptions::default() };
        let rt = CpuRuntime::compile(m, "forward", opts).map_err(|e| e.to_string())?;
        let kinds: Vec<ParamKind> = rt.params().to_vec();
        // Cache parameters a truncated forward no longer writes are plain inputs: zeros.
        let zeros = kinds.iter().map(|p| if let ParamKind::F32 { seq: false, row } = p { vec![0.0; *row] } else { Vec::new() }).collect();
        Ok(Runner { rt, kinds, zeros, ids: Vec::new(), threads: threads.max(1) })
    }

    /// Runs one window from position 0 with empty caches; `residual` feeds
    /// the `[seq, d]` parameter of a cut function.
    pub fn run(&mut self, window: &[u32], residual: Option<&[f32]>) -> Result<(), String> {
        self.run_tail(window, residual, None)
    }

    /// [`Runner::run`], with the logits (of a [`Cut::logits`] function)
    /// computed for the last `tail` rows only (`None`: every row).
    pub fn run_tail(&mut self, window: &[u32], residual: Option<&[f32]>, tail: Option<usize>) -> Result<(), String> {
        self.ids.clear();
        for &t in window {
            self.ids.push(i32::try_from(t).map_err(|_| format!("token id {t} does not fit i32"))?);
        }
        let mut inputs: Vec<Input<'_>> = Vec::with_capacity(self.kinds.len());
        for (p, z) in self.kinds.iter().zip(&self.zeros) {
            match p {
                ParamKind::Tokens => inputs.push(Input::I32(&self.ids)),
                ParamKind::Scalar => inputs.push(Input::Scalar(0)),
                ParamKind::F32 { seq: false, .. } => inputs.push(Input::F32(z)),
                ParamKind::F32 { seq: true, .. } => inputs.push(Input::F32(residual.ok_or("this function needs a residual input")?)),
                ParamKind::State { .. } => {}
            }
        }
        self.rt.reset_state();
        self.rt.run_tail(&inputs, tail).map_err(|e| e.to_string())
    }

    /// Result `i` of the last run.
    pub fn output(&self, i: usize) -> Result<&[f32], String> {
        self.rt.output(i).ok_or_else(|| format!("the instrumented function has no result {i}"))
    }

    /// Adds result `first + g` of the last run (`tokens` rows) to `stats[g]`
    /// for every group, and with `hessian` its `XᵀX` to the Hessian.
    pub fn accumulate(&self, first: usize, groups: &[Group], tokens: usize, hessian: bool, stats: &mut [ChannelStats]) -> Result<(), String> {
        for (g, (group, s)) in groups.iter().zip(stats).enumerate() {
            let x = self.output(first + g)?;
            if x.len() != tokens * group.channels {
                return Err(format!("the input of @{} has {} values, expected {tokens} tokens × {} channels", group.weights[0], x.len(), group.channels));
            }
            if hessian {
                super::hessian::add_xtx(s, &super::hessian::xtx(x, group.channels, self.threads), group.channels);
            }
            s.add_sequence(x, group.channels);
        }
        Ok(())
    }
}

/// The statistics of every group, by weight name.
pub fn by_weight(groups: Vec<Group>, stats: Vec<ChannelStats>) -> BTreeMap<String, ChannelStats> {
    let mut layers = BTreeMap::new();
    for (group, s) in groups.into_iter().zip(stats) {
        for w in group.weights {
            layers.insert(w, s.clone());
        }
    }
    layers
}

/// Runs the instrumented `@forward` on every window with `threads` threads
/// and returns the statistics (with `hessian`, also the Hessians) of the
/// linears `ops` by weight name.
pub fn calibrate(m: &Module, ops: &HashMap<Op, String>, windows: &[Vec<u32>], threads: usize, hessian: bool, progress: &mut dyn FnMut(usize)) -> Result<BTreeMap<String, ChannelStats>, String> {
    let (inst, groups) = instrument(m, ops, Cut::default())?;
    let mut runner = Runner::new(&inst, threads)?;
    let mut stats = vec![ChannelStats::default(); groups.len()];
    for (i, w) in windows.iter().enumerate() {
        runner.run(w, None)?;
        runner.accumulate(0, &groups, w.len(), hessian, &mut stats)?;
        progress(i + 1);
    }
    Ok(by_weight(groups, stats))
}
