//! Running a pass pipeline the way every command that compiles a model does:
//! with IR verification after each pass and the backends' cost models
//! (`$FLEXC_COST_TABLE` or the shipped CPU table) for select-gemm/tile-gemm.

use flexc_ir::Module;
use flexc_passes::{ManagerOptions, PassManager, Progress, RunReport};
use indicatif::{ProgressBar, ProgressStyle};

/// A parsed pipeline with the cost models attached, and where the CPU cost
/// table came from.
pub fn manager(pipeline: &str) -> Result<(PassManager, Option<String>), String> {
    let pm = PassManager::from_text(pipeline, ManagerOptions { verify_each: true, ..Default::default() }).map_err(|e| e.to_string())?;
    with_cost_models(pm)
}

/// Attaches the backends' cost models to `pm`.
pub fn with_cost_models(pm: PassManager) -> Result<(PassManager, Option<String>), String> {
    let models = flexc_backends::cost::cost_models_with(None).map_err(|e| e.to_string())?;
    let cost_table = models.iter().find(|m| m.target() == "cpu").map(|m| m.source());
    Ok((models.into_iter().fold(pm, PassManager::with_cost_model), cost_table))
}

/// Runs `pipeline` over `m` (see the module header).
pub fn run(m: &mut Module, pipeline: &str) -> Result<RunReport, String> {
    let (mut pm, _) = manager(pipeline)?;
    pm.run(m, &mut |_, _| {}).map_err(|e| e.to_string())
}

/// A progress bar on stderr (hidden when it is not a terminal) that long
/// passes advance, e.g. `quantize` once per weight; clear it after the run.
pub fn progress_bar() -> (ProgressBar, Progress) {
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("{msg} {pos}/{len} {bar:30} eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar()));
    let b = bar.clone();
    let progress = Progress::new(move |what, done, total| {
        b.set_length(total as u64);
        b.set_position(done as u64);
        b.set_message(what.to_string());
    });
    (bar, progress)
}
