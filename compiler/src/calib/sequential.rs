//! Sequential pruning (`flexc calibrate --sequential PIPELINE`): blocks are
//! pruned in order, each one scored with statistics recorded on the model
//! whose earlier blocks are already pruned, as the reference's
//! `prune_wanda`/`prune_flow` loop does.
//!
//! `PIPELINE` ends with `prune-nm{…}`; the passes before it (e.g.
//! `flow-nm{…}`) choose the plan once, from the dense model's statistics
//! (as FLOW and OWL do). Then, for every block k in order: block k's
//! linears are calibrated on the current model (blocks < k pruned, block k
//! and later dense; the instrumented forward stops after block k), and
//! `prune-nm{…,block=k}` prunes block k with those statistics. The first
//! block sees the dense model, so its dense statistics are reused (no
//! forward).
//!
//! The result carries both sets: `layers` (dense) and `sequential` (per
//! block linear, what block k was pruned with). Since `prune-nm` scores with
//! the sequential statistics and `flow-nm` with the dense ones, running
//! `--stats FILE --pipeline PIPELINE` on the dense model reproduces the
//! sequentially pruned model exactly.

use super::{calibrate, CalibOptions};
use flexc_ir::calib::Calibration;
use flexc_ir::Module;
use flexc_passes::pipeline::{parse_pipeline, PassSpec};
use flexc_passes::sparsity::linears;
use flexc_passes::{ManagerOptions, PassManager};
use std::collections::BTreeSet;
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
/// sequential ones). `progress(block, window)` is called after each window
/// of each recalibrated block.
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
    let mut stats = Calibration { source: format!("{} sequential={pipeline}", dense.source), layers: dense.layers.clone(), sequential: Default::default() };
    let mut pruned_any = false; // whether an earlier block went through prune-nm
    for k in blocks(&work) {
        let names: Vec<String> = linears(&work).into_iter().filter(|l| l.block == Some(k)).map(|l| l.weight).collect();
        if pruned_any {
            let o = CalibOptions { blocks: Some(vec![k]), ..opts.clone() };
            let c = calibrate(&work, windows, String::new(), &o, &mut |w| progress(k, w))?;
            stats.sequential.extend(c.layers);
        } else {
            for n in &names {
                if let Some(s) = dense.layers.get(n) {
                    stats.sequential.insert(n.clone(), s.clone());
                }
            }
        }
        work.calibration = Some(Arc::new(stats.clone()));
        let mut p = prune.clone();
        p.options.push(("block".into(), k.to_string()));
        run_passes(&mut work, &[p])?;
        pruned_any = true;
    }
    Ok((work, stats))
}
