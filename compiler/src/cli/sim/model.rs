//! `flexc sim MODEL`: a whole model (known name, GGUF or safetensors) through
//! a sparsity pipeline, then every block linear and the LM head on FlexCiM
//! and its baselines for one decode token and a prefill of `--rows` rows.
//! [`prepare`] (import, pipeline, read the linears) is shared with
//! `flexc compile MODEL --target flexcim` ([`super::compile`]).
//!
//! The default pipeline is FLOW N:M at 50% then `prune-nm` with Wanda scores
//! from `--stats`, which defaults to the cached default statistics. Each phase runs cycle-level when its projected simulation
//! time (the analytical model's cell MACs at the rate measured on the first
//! block's layers, plus the interpreter run for activations) fits `--budget`, else on
//! the analytical model, which counts the same events on the real masks.

use super::super::error::{CliError, CliResult};
use super::super::import::import_model;
use super::super::models::resolve;
use super::out::{self, ModelRun};
use super::SimArgs;
use crate::frontend::decoder::ImportOptions;
use flexc_backends::flexcim::arch::{Arch, EnergyTable};
use flexc_backends::flexcim::model::{activations, cycle_work, model_layers, run_phase, Engine, Machines, ModelLayers, PhaseResult};
use flexc_ir::Module;
use flexc_passes::{ManagerOptions, PassManager};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The pipeline `flexc sim MODEL` runs without `--pipeline` (Wanda scores
/// from `--stats` or the cached default statistics): N:M per block by
/// measured sensitivity over the ratios the macro runs natively (2:8, 4:8,
/// dense), with tile-aligned masks (one kept count per pair per 32 rows, the
/// macro's column tile), so an N:M layer takes N slots per group.
pub const DEFAULT_PIPELINE: &str = "flow-nm{sparsity=0.5,candidates=2:8,4:8,8:8},prune-nm{align=pairs:32}";

fn input_err(e: impl std::fmt::Display) -> CliError {
    CliError::input(format!("error: {e}"))
}

/// A model imported, through its pipeline, with its linears read.
pub struct Prepared {
    /// The model file.
    pub path: PathBuf,
    /// The module after the pipeline.
    pub module: Module,
    /// The pipeline text run.
    pub pipeline: String,
    /// The passes' remarks.
    pub remarks: Vec<String>,
    /// The block linears, the LM head, and the host ops.
    pub layers: ModelLayers,
}

/// The most prefill rows `sim MODEL --rows` simulates (SmolLM2's context is 8192).
pub const MAX_ROWS: usize = 1 << 15;

/// A progress bar over `len` steps with a message (stderr; hidden when not a terminal).

pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(ProgressStyle::with_template(&format!("{{msg:>28}} {{bar:30}} {{pos}}/{{len}} {what}  eta {{eta}}")).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar
}

/// Imports `input` (a known name, GGUF or safetensors) for `ctx` positions,
/// runs `pipeline` (default: [`DEFAULT_PIPELINE`]; Wanda scores from `stats`,
/// else from the cached default statistics when the pipeline needs them), and
/// reads every linear of `func`.
pub fn prepare(input: &str, ctx: usize, pipeline: Option<&str>, stats: Option<&Path>, func: Option<&str>, bar: &ProgressBar) -> CliResult<Prepared> {
    let path = resolve(input)?;
    if crate::artifact::is_artifact(&path) {
        // A compiled .flexc: its module as compiled, no pass.
        let p = super::super::run::prepare(Some(input), ctx.max(1), pipeline, stats)?;
        return read_layers(p.path, p.module, p.pipeline, Vec::new(), func, bar);
    }
    let pipeline = pipeline.unwrap_or(DEFAULT_PIPELINE).to_string();
    // Checked before any (default) statistics are computed.
    let mut pm = PassManager::from_text(&pipeline, ManagerOptions::default()).map_err(|e| CliError::usage(format!("error: --pipeline: {e}")))?;
    let stats = super::super::calibrate::stats_or_default(Some(input), Some(&pipeline), stats)?;
    bar.set_message("importing");
    let mut module = import_model(&path, &ImportOptions { ctx: ctx.max(1), ..Default::default() })?;
    module.calibration = stats.as_ref().map(|s| s.calibration.clone());
    bar.set_message("measuring block costs");
    super::super::calibrate::attach_sensitivity(&mut module, &path, &pipeline, stats.as_ref())?;
    bar.set_message("running the pipeline");
    let report = pm.run(&mut module, &mut |_, _| {}).map_err(input_err)?;
    read_layers(path, module, pipeline, report.remarks, func, bar)
}

fn read_layers(path: PathBuf, module: Module, pipeline: String, remarks: Vec<String>, func: Option<&str>, bar: &ProgressBar) -> CliResult<Prepared> {
    bar.set_message("reading the linears");
    let layers = model_layers(&module, func, &mut |d, n| {
        bar.set_length(n as u64);
        bar.set_position(d as u64);
    })
    .map_err(input_err)?;
    if layers.layers.is_empty() {
        return Err(CliError::input(format!("error: {}: no linear layer with a weight-table weight to run", path.display())));
    }
    Ok(Prepared { path, module, pipeline, remarks, layers })
}

/// Chooses a phase's engine: `--engine` unless `auto`; for `auto`, cycle
/// level when the projection fits the budget. Returns it and why.
fn choose(args: &SimArgs, work: u64, rate: f64, interp: f64) -> CliResult<(Engine, String)> {
    let projected = work as f64 / rate.max(1.0) + interp;
    match args.engine.as_str() {
        "cycle" => Ok((Engine::Cycle, format!("--engine cycle (projected {projected:.1} s)"))),
        "analytical" => Ok((Engine::Analytical, "--engine analytical".into())),
        "auto" if projected <= args.budget => Ok((Engine::Cycle, format!("projected {projected:.1} s <= budget {} s", args.budget))),
        "auto" => Ok((Engine::Analytical, format!("cycle-level projected {projected:.1} s > budget {} s ({:.2e} cell MACs at {:.1} M/s)", args.budget, work as f64, rate / 1e6))),
        e => Err(CliError::usage(format!("error: --engine {e}: use auto, cycle or analytical"))),
    }
}

/// Runs `flexc sim` on a model.
pub fn sim_model(args: &SimArgs, arch: &Arch, energy: &EnergyTable, baselines: &[String]) -> CliResult {
    if !(args.budget >= 0.0) {
        return Err(CliError::usage("error: --budget must be a number of seconds >= 0"));
    }
    if !["auto", "cycle", "analytical"].contains(&args.engine.as_str()) {
        return Err(CliError::usage(format!("error: --engine {}: use auto, cycle or analytical", args.engine)));
    }
    if args.rows > MAX_ROWS {
        return Err(CliError::usage(format!("error: --rows {}: at most {MAX_ROWS} prefill rows (each is interpreted to make the activations)", args.rows)));
    }
    let regimes = super::regimes(args)?;
    let t0 = Instant::now();
    let func = args.opts.func.as_deref();
    let bar = progress_bar(0, "layers");
    let Prepared { path, module, pipeline, remarks, layers: ModelLayers { layers, skipped, .. } } = prepare(&args.input, args.rows, args.pipeline.as_deref(), args.stats.as_deref(), func, &bar)?;
    let compile_s = t0.elapsed().as_secs_f64();
    let mut phases_wanted = vec![("decode", 1usize)];
    if args.rows > 0 {
        phases_wanted.push(("prefill", args.rows));
    }
    bar.set_length((layers.len() * phases_wanted.len() * regimes.len()) as u64);
    bar.set_position(0);
    // The cycle engine's rate, measured on the first block's layers (decode, all archs).
    let on = Machines { arch, energy, baselines };
    let n_probe = layers.iter().take_while(|l| l.block == layers[0].block).count();
    let (mut acts1, mut interp1, mut rate) = (None, 0.0f64, 0.0f64);
    if args.engine != "analytical" {
        bar.set_message("interpreting 1 token");
        let t = Instant::now();
        acts1 = Some(activations(&module, func, &layers, 1, args.opts.seed).map_err(input_err)?);
        interp1 = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let probe = run_phase(on, &layers[..n_probe], "probe", 1, Engine::Cycle, acts1.as_deref(), &mut |_| {}).map_err(input_err)?;
        rate = probe.totals.iter().map(|s| s.macs).sum::<u64>() as f64 / t.elapsed().as_secs_f64().max(1e-6);
    }
    let mut phases: Vec<(PhaseResult, String)> = Vec::new();
    let mut done = 0u64;
    for &(name, rows) in &phases_wanted {
        // Every regime simulates the phase again (the same stream, other timing).
        let work = cycle_work(arch, baselines, &layers, rows).map_err(input_err)? * regimes.len() as u64;
        let interp = if rows == 1 { 0.0 } else { interp1 * rows as f64 };
        let (engine, why) = choose(args, work, rate, interp)?;
        let acts = match engine {
            Engine::Cycle if rows == 1 => acts1.take(),
            Engine::Cycle => {
                bar.set_message(format!("interpreting {rows} tokens"));
                Some(activations(&module, func, &layers, rows, args.opts.seed).map_err(input_err)?)
            }
            Engine::Analytical => None,
        };
        for &r in &regimes {
            bar.set_message(format!("{name}, {} ({})", r.label(), engine.label()));
            let a = arch.with_regime(r);
            let on = Machines { arch: &a, energy, baselines };
            let ph = run_phase(on, &layers, name, rows, engine, acts.as_deref(), &mut |d| bar.set_position(done + d as u64)).map_err(input_err)?;
            done += layers.len() as u64;
            phases.push((ph, why.clone()));
        }
    }
    bar.finish_and_clear();
    // Report order: by regime (resident first), then phase.
    phases.sort_by_key(|p| regimes.iter().position(|&r| r == p.0.regime));
    let run = ModelRun { model: path.display().to_string(), pipeline, remarks, skipped, phases, arch, energy, baselines, compile_s };
    out::emit(args, &run)
}
