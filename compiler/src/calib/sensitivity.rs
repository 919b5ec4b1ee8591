//! Loss probes (`flexc calibrate --sensitivity`): how much the model's loss
//! grows when one group of weights alone is quantized.
//!
//! The groups are each decoder block's linears and the LM head. For each,
//! the module is quantized with the probe pass
//! (`flexc_passes::quant::loss::probe_pass`: 3-bit RTN on that group only),
//! compiled for the CPU, and its mean NLL per token on the calibration
//! windows (scored as `flexc perplexity` scores a chunk: the second half of
//! each window) is compared with the unquantized model's on the same
//! tokens. The differences are paired, so they are far less noisy than
//! either NLL. Mixed precision (`quantize{bpw=…}`) turns them into per-layer
//! loss factors (`flexc_passes::quant::loss`).
//!
//! Cost: one compile and one pass over the windows per group (31 for
//! SmolLM2-135M) plus the dense baseline.

use super::linear_ops;
use crate::eval::{perplexity, PplConfig};
use crate::generate::cpu::CpuModel;
use flexc_ir::calib::{Calibration, LossProbe};
use flexc_ir::Module;
use flexc_passes::quant::loss::probe_pass;
use flexc_passes::sparsity::block_of;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Calibration windows a probe evaluates (the first ones), and the tokens
/// of each it keeps (the first ones): 8 × 512 tokens, 2,048 scored.
pub const PROBE_WINDOWS: usize = 8;
/// Tokens per probe window.
pub const PROBE_TOKENS: usize = 512;

/// The probe windows of a calibration's windows.
pub fn probe_windows(windows: &[Vec<u32>]) -> Vec<Vec<u32>> {
    windows.iter().take(PROBE_WINDOWS).map(|w| w[..w.len().min(PROBE_TOKENS)].to_vec()).collect()
}

/// The probed groups of `m`: each block's linears (in block order), then
/// the LM head (and any other linear outside the blocks), as
/// `(weights, is_head)`.
pub fn probe_groups(m: &Module) -> Vec<(Vec<String>, bool)> {
    let mut blocks: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut head: Vec<String> = Vec::new();
    for name in linear_ops(m).into_values() {
        match block_of(&name) {
            Some(b) => blocks.entry(b).or_default().push(name),
            None => head.push(name),
        }
    }
    let mut out: Vec<(Vec<String>, bool)> = blocks.into_values().map(|mut ws| {
        ws.sort();
        ws.dedup();
        (ws, false)
    }).collect();
    head.sort();
    head.dedup();
    out.extend(head.into_iter().map(|w| (vec![w], true)));
    out
}

/// The input width (columns) of a weight of `m` (0 when unknown).
fn input_width(m: &Module, name: &str) -> usize {
    m.weights.lookup(name).and_then(|id| m.weights.get(id).ty.fixed_shape()).and_then(|s| s.get(1).copied()).map_or(0, |k| k as usize)
}

/// Mean NLL per scored token of `m` after `pipeline`, over `windows` (all of
/// one length, each scored like one perplexity chunk).
fn mean_nll(m: &Module, cal: &Arc<Calibration>, pipeline: &str, windows: &[Vec<u32>], bos: Option<u32>, threads: usize) -> Result<f64, String> {
    let mut m = m.clone();
    m.calibration = Some(cal.clone());
    crate::pipeline::run(&mut m, pipeline)?;
    let mut model = CpuModel::new(&m, threads).map_err(|e| e.to_string())?;
    let ctx = windows.first().map_or(0, Vec::len);
    let tokens: Vec<u32> = windows.concat();
    let r = perplexity(&mut model, &tokens, bos, &PplConfig { ctx, max_chunks: windows.len() }, &mut |_, _, _| {}).map_err(|e| e.to_string())?;
    Ok(r.ppl.ln())
}

/// Measures one loss probe per group of [`probe_groups`] on `windows`
/// (equal lengths; BOS `bos` put first as perplexity does), with the
/// calibration `cal` (the probe's RTN reads its importance weights).
/// `progress(done, total)` is called after the baseline and each probe.
pub fn probe_losses(m: &Module, cal: &Calibration, windows: &[Vec<u32>], bos: Option<u32>, threads: usize, progress: &mut dyn FnMut(usize, usize)) -> Result<Vec<LossProbe>, String> {
    if windows.is_empty() || windows.iter().any(|w| w.len() != windows[0].len()) {
        return Err("loss probes need calibration windows of one length".into());
    }
    let groups = probe_groups(m);
    if groups.is_empty() {
        return Err("the module has no linears to probe".into());
    }
    let cal = Arc::new(cal.clone());
    let total = groups.len() + 1;
    let base = mean_nll(m, &cal, "cpu", windows, bos, threads)?;
    progress(1, total);
    let mut out = Vec::with_capacity(groups.len());
    for (i, (weights, head)) in groups.into_iter().enumerate() {
        let widths: Vec<(String, usize)> = weights.iter().map(|w| (w.clone(), input_width(m, w))).collect();
        let pass = probe_pass(&widths, head);
        if pass.is_empty() {
            // No probe format fits these weights: mixed precision leaves them unweighted.
            progress(i + 2, total);
            continue;
        }
        let pipeline = format!("{pass},cpu");
        let nll = mean_nll(m, &cal, &pipeline, windows, bos, threads).map_err(|e| format!("loss probe of {}: {e}", weights.join(", ")))?;
        out.push(LossProbe { weights, delta_nll: nll - base });
        progress(i + 2, total);
    }
    Ok(out)
}
