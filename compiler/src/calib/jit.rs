//! Calibration on the CPU JIT runtime.
//!
//! [`instrument`] rewrites a copy of `@forward` so that its results are the
//! inputs of the block linears to record, one result per distinct input
//! value (q/k/v read one normed activation, gate/up another), then removes
//! the dead code: the LM head and final norm, and every block after the last
//! recorded one (a truncated forward for sequential calibration). The
//! runtime runs that function on each window and the driver adds each
//! returned `[tokens, channels]` activation to the running mean with
//! [`ChannelStats::add_sequence`], once per distinct input; the linears that
//! share it get copies of the same statistics.

use flexc_backends::cpu::runtime::{CpuRuntime, Input, ParamKind, RuntimeOptions};
use flexc_ir::calib::ChannelStats;
use flexc_ir::{Module, Op, Value};
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

/// A copy of `m` whose `@forward` returns the inputs of the linears `ops`
/// (matmul op → weight name), one result per [`Group`], dead code removed.
pub fn instrument(m: &Module, ops: &HashMap<Op, String>) -> Result<(Module, Vec<Group>), String> {
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
    f.results = order.iter().map(|&v| f.dfg.ty(v).clone()).collect();
    f.returns = order.clone();
    flexc_passes::rewrite::remove_dead_ops(f);
    let used: HashSet<String> = out
        .funcs
        .iter()
        .flat_map(|(_, f)| f.layout.iter().filter_map(|&op| match &f.dfg.ops[op].attrs {
            flexc_ir::OpAttrs::Weight(w) => Some(w.name.0.clone()),
            _ => None,
        }))
        .collect();
    out.weights.retain(|w| used.contains(&w.name));
    let groups = order.iter().map(|v| groups.remove(v).expect("every ordered value has a group")).collect();
    Ok((out, groups))
}

/// Runs the instrumented `@forward` on every window with `threads` threads
/// and returns the statistics of the linears `ops` by weight name.
pub fn calibrate(m: &Module, ops: &HashMap<Op, String>, windows: &[Vec<u32>], threads: usize, progress: &mut dyn FnMut(usize)) -> Result<BTreeMap<String, ChannelStats>, String> {
    let (inst, groups) = instrument(m, ops)?;
    let opts = RuntimeOptions { threads: threads.max(1), ..RuntimeOptions::default() };
    let mut rt = CpuRuntime::compile(&inst, "forward", opts).map_err(|e| e.to_string())?;
    // Parameters a truncated forward no longer writes are plain inputs: zeros.
    let kinds: Vec<ParamKind> = rt.params().to_vec();
    let zeros: Vec<Vec<f32>> = kinds
        .iter()
        .map(|p| match p {
            ParamKind::F32 { seq: false, row } => Ok(vec![0.0; *row]),
            ParamKind::F32 { seq: true, .. } => Err("@forward takes an f32 [seq, …] input; calibration feeds only token ids".to_string()),
            _ => Ok(Vec::new()),
        })
        .collect::<Result<_, _>>()?;
    let mut stats = vec![ChannelStats::default(); groups.len()];
    let mut ids: Vec<i32> = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        ids.clear();
        for &t in w {
            ids.push(i32::try_from(t).map_err(|_| format!("token id {t} does not fit i32"))?);
        }
        let inputs: Vec<Input<'_>> = kinds
            .iter()
            .zip(&zeros)
            .filter_map(|(p, z)| match p {
                ParamKind::Tokens => Some(Input::I32(&ids)),
                ParamKind::Scalar => Some(Input::Scalar(0)),
                ParamKind::F32 { .. } => Some(Input::F32(z)),
                ParamKind::State { .. } => None,
            })
            .collect();
        rt.reset_state();
        rt.run(&inputs, false).map_err(|e| e.to_string())?;
        for (g, (group, s)) in groups.iter().zip(&mut stats).enumerate() {
            let x = rt.output(g).ok_or("the runtime returned fewer results than recorded inputs")?;
            if x.len() != w.len() * group.channels {
                return Err(format!("the input of @{} has {} values, expected {} tokens × {} channels", group.weights[0], x.len(), w.len(), group.channels));
            }
            s.add_sequence(x, group.channels);
        }
        progress(i + 1);
    }
    let mut layers = BTreeMap::new();
    for (group, s) in groups.into_iter().zip(stats) {
        for w in group.weights {
            layers.insert(w, s.clone());
        }
    }
    Ok(layers)
}
