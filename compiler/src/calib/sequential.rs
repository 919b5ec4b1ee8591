//! Sequential pruning (`flexc calibrate --sequential PIPELINE`): blocks are
//! pruned in order, each one scored with statistics recorded on the model
//! whose earlier blocks are already pruned, as the reference's
//! `prune_wanda`/`prune_flow` loop does.
//!
//! `PIPELINE` ends with `prune-nm{…}`; the passes before it (e.g.
//! `flow-nm{…}`) choose the plan once, from the dense model's statistics
//! (as FLOW and OWL do). Then, for every block k in order: block k's
//! linears are calibrated on the current model (blocks < k pruned, block k
//! dense), and `prune-nm{…,block=k}` prunes block k with those statistics.
//! The first block sees the dense model, so its dense statistics are reused.
//!
//! The result carries both sets: `layers` (dense) and `sequential` (per
//! block linear, what block k was pruned with). Since `prune-nm` scores with
//! the sequential statistics and `flow-nm` with the dense ones, running
//! `--stats FILE --pipeline PIPELINE` on the dense model reproduces the
//! sequentially pruned model exactly.

use super::jit::{by_weight, instrument, Cut, Runner};
use super::{block_linear_ops, calibrate, Backend, CalibOptions};
use flexc_ir::calib::{Calibration, ChannelStats};
use flexc_ir::Module;
use flexc_passes::pipeline::{parse_pipeline, PassSpec};
use flexc_passes::sparsity::linears;
use flexc_passes::{ManagerOptions, PassManager};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// The pipeline split into the plan passes (run once) and the final
/// `prune-nm` (run per block).
pub fn split_pipeline(pipeline: &str) -> Result<(Vec<PassSpec>, PassSpec), String> {
    let mut specs = parse_pipeline(pipeline).map_err(|e| format!("--sequential: {e}"))?;
    let prune = specs.pop().filter(|s| s.name == "prune-nm").ok_or("--sequential: the pipeline must end with prune-nm (e.g. 'flow-nm{sparsity=0.5},prune-nm')")?;
    if prune.options.iter().any(|(k, _)| k == "block") {
        return Err("--sequential: prune-nm must not set block= (the driver prunes block by block)".into());
    }
    if specs.iter().any(|s| s.name == "prune-nm") {
        return Err("--sequential: prune-nm may appear only once, at the end".into());
    }
    Ok((specs, prune))
}

fn run_passes(m: &mut Module, specs: &[PassSpec]) -> Result<(), String> {
    if specs.is_empty() {
        return Ok(());
    }
    let text = specs.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    let mut pm = PassManager::from_text(&text, ManagerOptions { verify_each: true, ..Default::default() }).map_err(|e| e.to_string())?;
    pm.run(m, &mut |_, _| {}).map_err(|e| e.to_string())?;
    Ok(())
}

/// The block indices of the module's block linears, in order.
pub fn blocks(m: &Module) -> Vec<usize> {
    linears(m).iter().filter_map(|l| l.block).collect::<BTreeSet<_>>().into_iter().collect()
}

/// Prunes `m` sequentially with `pipeline` (see the module header) and
/// returns the pruned module and the statistics (`dense` plus the
/// sequential ones). `progress(done, blocks)` is called after each block.
///
/// With the cpu engine each block runs on its own: the residual stream
/// entering block k is kept per window, block k's linears are recorded
/// from it, block k is pruned, and the pruned block maps it to block k+1's
/// input (two block passes per block, as the reference). The reference
/// engine reruns a forward truncated after block k instead.
pub fn prune_sequential(
    m: &Module,
    dense: &Calibration,
    pipeline: &str,
    windows: &[Vec<u32>],
    opts: &CalibOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Module, Calibration), String> {
    let (plan_passes, prune) = split_pipeline(pipeline)?;
    let mut work = m.clone();
    work.calibration = Some(Arc::new(dense.clone()));
    run_passes(&mut work, &plan_passes)?;
    let mut stats = Calibration { source: format!("{} sequential={pipeline}", dense.source), layers: dense.layers.clone(), ..Default::default() };
    let bs = blocks(&work);
    let threads = opts.threads;
    let cpu = opts.engine == Backend::Cpu;
    // Residual stream entering the current block, per window (cpu engine).
    let mut hs: Vec<Vec<f32>> = Vec::new();
    if cpu && !bs.is_empty() {
        let (inst, _) = instrument(&work, &HashMap::new(), Cut { from: None, then: Some(bs[0]), ..Cut::default() })?;
        let mut r = Runner::new(&inst, threads)?;
        for w in windows {
            r.run(w, None)?;
            hs.push(r.output(0)?.to_vec());
        }
    }
    for (i, &k) in bs.iter().enumerate() {
        if i == 0 {
            // The first block sees the dense model.
            for l in linears(&work).into_iter().filter(|l| l.block == Some(k)) {
                if let Some(s) = dense.layers.get(&l.weight) {
                    stats.sequential.insert(l.weight, s.clone());
                }
            }
        } else if cpu {
            let ops = block_linear_ops(&work, Some(&[k]));
            let (inst, groups) = instrument(&work, &ops, Cut { from: Some(k), ..Cut::default() })?;
            let mut r = Runner::new(&inst, threads)?;
            let mut st = vec![ChannelStats::default(); groups.len()];
            for (w, h) in windows.iter().zip(&hs) {
                r.run(w, Some(h))?;
                r.accumulate(0, &groups, w.len(), opts.hessian, &mut st)?;
            }
            stats.sequential.extend(by_weight(groups, st));
        } else {
            let o = CalibOptions { blocks: Some(vec![k]), ..opts.clone() };
            stats.sequential.extend(calibrate(&work, windows, String::new(), &o, &mut |_| {})?.layers);
        }
        work.calibration = Some(Arc::new(stats.clone()));
        let mut p = prune.clone();
        p.options.push(("block".into(), k.to_string()));
        run_passes(&mut work, &[p])?;
        if let (true, Some(&next)) = (cpu, bs.get(i + 1)) {
            let (inst, _) = instrument(&work, &HashMap::new(), Cut { from: Some(k), then: Some(next), ..Cut::default() })?;
            let mut r = Runner::new(&inst, threads)?;
            for (w, h) in windows.iter().zip(hs.iter_mut()) {
                r.run(w, Some(h))?;
                h.clear();
                h.extend_from_slice(r.output(0)?);
            }
        }
        progress(i + 1, bs.len());
    }
    Ok((work, stats))
}
