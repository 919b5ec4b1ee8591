//! `flexc compile --target flexcim` and `flexc sim`: FlexCiM instruction
//! streams from `.fir` input or a whole model ([`compile`]), and their
//! simulation with baselines and reports.
//!
//! `sim` takes a stream (text `.s` or binary), a `.fir` file (lowered
//! first, then checked against the integer matmul and the reference
//! interpreter), or a model (a known name, GGUF or safetensors; see
//! [`model`]). A stream alone has no oracle and no layers to re-lower, so its
//! functional check is `skipped` and it has no baselines.

mod compile;
mod model;
mod out;

use super::error::{CliError, CliResult};
use super::models::Format;
use super::opt::{pipeline_error, print_explain};
use flexc_passes::{ManagerOptions, PassManager};
use super::source::{load_module, read_source};
use crate::output::write_atomic;
use clap::Args;
use flexc_backends::flexcim::arch::{parse_pattern, Arch, EnergyTable, Regime};
use flexc_backends::flexcim::fromir::from_ir;
use flexc_backends::flexcim::isa::{encode, print_asm, read_stream, Program};
use flexc_backends::flexcim::lower::MagnitudePrune;
use flexc_backends::flexcim::{evaluate, lower_program, report, run_program, Check, Evaluation};
use std::path::{Path, PathBuf};

/// Options shared by `compile --target flexcim` and `sim` for `.fir` input.
#[derive(Args, Debug, Clone)]
pub struct FlexcimOpts {
    /// Architecture file (default: the embedded backends/flexcim/arch.toml).
    #[arg(long)]
    pub arch: Option<PathBuf>,
    /// N:M pattern plain `tensor.matmul` weights are pruned to (magnitude rule), e.g. 2:4 or 8:8 (dense); #nm weights keep their mask, kern.dense_gemm and other encodings run dense.
    #[arg(long, default_value = "2:4")]
    pub nm: String,
    /// Value bound to symbolic dimensions (tokens per layer).
    #[arg(long, default_value_t = 8)]
    pub tokens: usize,
    /// The function to lower (default: the first).
    #[arg(long)]
    pub func: Option<String>,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Refuse `.fir` input whose tensors (symbolic dimensions = --tokens)
    /// would need more than this to evaluate: bytes, or with a K/M/G/T suffix.
    #[arg(long, default_value = "8G", value_parser = flexc_ir::limits::parse_bytes)]
    pub max_memory: u64,
}

/// Arguments of `flexc compile`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc compile smollm2-135m --target cpu --pipeline 'quantize{bits=4,group=64,method=rtn},cpu' -o smollm2-q4.flexc\n  flexc compile model.fir --target flexcim -o model.s\n  flexc compile model.fir --target flexcim --nm 2:8 -o model.bin\n  flexc compile smollm2-135m --target flexcim --tokens 1 -o smollm2.bin\n\nA model (known name, .gguf, .safetensors) runs the `flexc sim MODEL` pipeline (default: measured N:M\nat 50% over 2:8, 4:8 and dense, then prune-nm with tile-aligned masks), then every block linear and the LM head becomes one stream for --tokens\nrows of activations; the other ops are `host` instructions.")]
pub struct CompileArgs {
    /// A `.fir` file or a model (known name, .gguf, .safetensors).
    pub input: String,
    /// The target: `cpu` (a `.flexc` artifact, see `flexc run model.flexc`) or `flexcim`.
    #[arg(long)]
    pub target: String,
    /// Output: for `cpu` the `.flexc` file; for `flexcim`, `.bin` writes the binary encoding, anything else assembly text.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Passes run before lowering, e.g. `flexcim` (select-gemm and tile-gemm
    /// on the analytical macro model); default for `.fir`: none (lower the IR
    /// as written); for a model: the `flexc sim MODEL` default (measured N:M at 50%, tile-aligned prune-nm).
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Model: calibration statistics (`flexc calibrate`) for Wanda scores in flow-nm / prune-nm.
    #[arg(long, alias = "stats-file")]
    pub stats: Option<PathBuf>,
    /// Print select-gemm's and tile-gemm's choices (candidates, modelled
    /// costs, the e-graph runner) to stderr.
    #[arg(long, requires = "pipeline")]
    pub explain: bool,
    /// cpu: KV-cache capacity in tokens compiled into the artifact (default 2048).
    #[arg(long)]
    pub ctx: Option<usize>,
    #[command(flatten)]
    pub opts: FlexcimOpts,
}

/// Arguments of `flexc sim`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc sim smollm2-135m --stats stats.json --report sim.html\n  flexc sim smollm2-135m --pipeline 'flow-nm{sparsity=0.5,mode=nearest,score=magnitude},prune-nm{score=magnitude,align=pairs:32}' --format json\n  flexc sim model.fir --baseline dense,fixed-2:4 --format json\n  flexc sim model.s --report out.html\n\nA model runs every linear layer of every decoder block and the LM head for one decode token and a\nprefill of --rows rows, each phase cycle-level or, past --budget, on the analytical model.")]
pub struct SimArgs {
    /// A stream (`.s` text or binary), a `.fir` file, or a model (known name, .gguf, .safetensors, a compiled .flexc).
    pub input: String,
    /// Energy table (default: the embedded backends/flexcim/energy.toml).
    #[arg(long)]
    pub energy: Option<PathBuf>,
    /// Baselines, comma-separated: dense (a dense DCiM), fixed-N:M (that
    /// pattern and dense; other masks run dense), fixed-N:M-reprune (other
    /// sparse masks re-pruned to N:M, tile-aligned), vegeta (a VEGETA-like
    /// N:4 engine: 1:4, 2:4, dense) (default: dense,fixed-1:2,fixed-2:4; for
    /// a model dense,fixed-2:4,fixed-2:4-reprune,vegeta).
    #[arg(long)]
    pub baseline: Option<String>,
    /// `text` or `json`.
    #[arg(long, default_value = "text")]
    pub format: String,
    /// Write an HTML report here (atomically).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Model: the pass pipeline (default: measured N:M at 50% over 2:8, 4:8, dense, then prune-nm{align=pairs:32}, Wanda scores).
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Model: calibration statistics (`flexc calibrate`) for Wanda scores in
    /// flow-nm / prune-nm (default: statistics on the default calibration
    /// text, computed once and cached).
    #[arg(long, alias = "stats-file")]
    pub stats: Option<PathBuf>,
    /// Model: prefill rows simulated after the decode token (0: decode only).
    #[arg(long, default_value_t = 128)]
    pub rows: usize,
    /// Model: `auto` (cycle-level within --budget, else analytical), `cycle` or `analytical`.
    #[arg(long, default_value = "auto")]
    pub engine: String,
    /// Model: seconds of cycle-level simulation a phase may take under --engine auto.
    #[arg(long, default_value_t = 60.0)]
    pub budget: f64,
    /// Weight regime(s) reported: `resident` (weights and selects preloaded in
    /// the macros, the FlexCiM paper's assumption), `streamed` (loaded per
    /// tile, every run) or `both` (the default, resident first); see the
    /// `[memory]` section of arch.toml.
    #[arg(long, default_value = "both")]
    pub regime: String,
    #[command(flatten)]
    pub opts: FlexcimOpts,
}

/// What `sim`'s input is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Input {
    Stream,
    Fir,
    Model,
}

fn kind(input: &str) -> Input {
    let p = Path::new(input);
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    match (p.exists(), ext) {
        (_, "fir") => Input::Fir,
        (true, "gguf" | "safetensors") => Input::Model,
        (true, _) if crate::artifact::is_artifact(p) => Input::Model,
        (true, _) if p.is_dir() => Input::Model,
        (true, _) | (false, "s" | "bin" | "asm") => Input::Stream,
        (false, _) => Input::Model,
    }
}

fn baselines(args: &SimArgs, default: &str) -> Vec<String> {
    args.baseline.as_deref().unwrap_or(default).split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

fn load_energy(args: &SimArgs) -> CliResult<EnergyTable> {
    match &args.energy {
        Some(p) => EnergyTable::load(p).map_err(|e| CliError::input(format!("error: {e}"))),
        None => Ok(EnergyTable::default_table()),
    }
}

fn load_arch(opts: &FlexcimOpts) -> CliResult<Arch> {
    match &opts.arch {
        Some(p) => Arch::load(p).map_err(|e| CliError::input(format!("error: {e}"))),
        None => Ok(Arch::default_flexcim()),
    }
}

fn ir_work(path: &Path, opts: &FlexcimOpts, passes: Option<(&str, bool)>) -> CliResult<flexc_backends::flexcim::fromir::IrWork> {
    let nm = parse_pattern(&opts.nm).map_err(|e| CliError::usage(format!("error: --nm: {e}")))?;
    let src = read_source(path)?;
    let mut module = load_module(&src)?;
    if let Some((pipeline, explain)) = passes {
        let pm = PassManager::from_text(pipeline, ManagerOptions { verify_each: true, ..Default::default() }).map_err(pipeline_error)?;
        let mut pm = flexc_backends::cost::cost_models().into_iter().fold(pm, PassManager::with_cost_model);
        let report = pm.run(&mut module, &mut |_, _| {}).map_err(pipeline_error)?;
        if explain {
            print_explain(report.explain.as_ref(), Format::Text, false)?;
        }
    }
    // from_ir runs the function on random inputs: size it from the types first.
    let tokens = opts.tokens as u64;
    for f in module.funcs.values().filter(|f| opts.func.as_deref().is_none_or(|n| n == f.name)) {
        flexc_ir::limits::check_memory(f, &|_| Some(tokens), opts.max_memory).map_err(|e| CliError::input(format!("{}: error: {e}", src.name)))?;
    }
    from_ir(&module, opts.func.as_deref(), opts.tokens, &MagnitudePrune(nm), opts.seed).map_err(|e| CliError::input(format!("{}: {e}", src.name)))
}

/// Writes a stream atomically: `.bin` as the binary encoding, else assembly text.
fn write_stream(path: &Path, program: &Program) -> CliResult {
    let bytes = if path.extension().is_some_and(|e| e == "bin") { encode(program) } else { print_asm(program).into_bytes() };
    write_atomic(path, &bytes)?;
    Ok(())
}

/// Runs `flexc compile`.
pub fn compile(args: CompileArgs) -> CliResult {
    match args.target.as_str() {
        "cpu" => return super::artifact::compile_cpu(&args),
        "flexcim" if args.ctx.is_some() => return Err(CliError::usage("error: --ctx applies to --target cpu")),
        "flexcim" => {}
        t => return Err(CliError::usage(format!("error: --target {t}: use cpu (a .flexc artifact) or flexcim (an instruction stream)"))),
    }
    match kind(&args.input) {
        Input::Model => return compile::compile_model(&args),
        Input::Stream => return Err(CliError::usage(format!("error: {}: already a FlexCiM stream (compile takes a .fir file or a model)", args.input))),
        Input::Fir => {}
    }
    let arch = load_arch(&args.opts)?;
    let w = ir_work(Path::new(&args.input), &args.opts, args.pipeline.as_deref().map(|p| (p, args.explain)))?;
    let (program, _) = lower_program(&arch, &w.work, &w.host, true, &mut |_| {}).map_err(|e| CliError::input(format!("error: {e}")))?;
    write_stream(&args.output, &program)
}

/// The regimes `--regime` asks for, in report order.
pub fn regimes(args: &SimArgs) -> CliResult<Vec<Regime>> {
    match args.regime.as_str() {
        "both" => Ok(Regime::ALL.to_vec()),
        r => Regime::parse(r).map(|r| vec![r]).map_err(|e| CliError::usage(format!("error: --regime: {e}, or both"))),
    }
}

/// The evaluations `sim` prints, one per regime, from a `.fir` file or a
/// stream, and the rows (tokens) of a layer.
pub fn sim_eval(args: &SimArgs) -> CliResult<(Vec<(Regime, Evaluation)>, usize)> {
    let arch = load_arch(&args.opts)?;
    let energy = load_energy(args)?;
    let regimes = regimes(args)?;
    if kind(&args.input) == Input::Fir {
        let w = ir_work(Path::new(&args.input), &args.opts, None)?;
        let bl = baselines(args, "dense,fixed-1:2,fixed-2:4");
        let evs = regimes.iter().map(|&r| evaluate(&arch.with_regime(r), &energy, &w.work, &w.host, &bl).map(|e| (r, e))).collect::<Result<Vec<_>, _>>();
        return evs.map(|e| (e, args.opts.tokens)).map_err(|e| CliError::input(format!("error: {e}")));
    }
    let bytes = flexc_ir::limits::read_regular(Path::new(&args.input), flexc_ir::limits::MAX_TEXT_BYTES).map_err(|e| CliError::input(format!("{}: cannot read: {e}", args.input)))?;
    let prog = read_stream(&bytes).map_err(|e| CliError::input(format!("{}: {e}", args.input)))?;
    let rows = prog.instrs.iter().find_map(|i| match i { flexc_backends::flexcim::isa::Instr::Layer { tokens, .. } => Some(*tokens as usize), _ => None }).unwrap_or(0);
    let mut out = Vec::new();
    for r in regimes {
        let a = arch.with_regime(r);
        let run = run_program(&a, &format!("{} (FlexCiM-like)", a.name), prog.clone(), Vec::new()).map_err(|e| CliError::input(format!("{}: {e}", args.input)))?;
        out.push((r, Evaluation { flexcim: run, baselines: Vec::new(), check: Check::Skipped, energy: energy.clone(), mhz: a.clock.mhz }));
    }
    Ok((out, rows))
}

/// Runs `flexc sim`.
pub fn sim(args: SimArgs) -> CliResult {
    if args.format != "text" && args.format != "json" {
        return Err(CliError::usage(format!("error: --format {}: use text or json", args.format)));
    }
    regimes(&args)?;
    if kind(&args.input) == Input::Model {
        let (arch, energy) = (load_arch(&args.opts)?, load_energy(&args)?);
        return model::sim_model(&args, &arch, &energy, &baselines(&args, "dense,fixed-2:4,fixed-2:4-reprune,vegeta"));
    }
    let (evs, rows) = sim_eval(&args)?;
    let Some((_, first)) = evs.first() else { return Err(CliError::internal("internal error: no regime evaluated")) };
    let check = evs.iter().map(|e| &e.1.check).find(|c| matches!(c, Check::Failed(_))).unwrap_or(&first.check).clone();
    if let Some(p) = &args.report {
        write_atomic(p, report::html(&format!("FlexCiM-like model: {}", args.input), &evs, rows).as_bytes())?;
    }
    let h = report::headlines(&evs, rows);
    if args.format == "json" {
        let per: Vec<serde_json::Value> = evs.iter().map(|(r, ev)| {
            let speed = (ev.flexcim.sim_seconds > 0.0).then(|| ev.flexcim.result.total.macs as f64 / ev.flexcim.sim_seconds);
            report::json(ev, *r, speed)
        }).collect();
        let j = serde_json::json!({"input": args.input, "model": "FlexCiM-like model (parametric; energy table = backends/flexcim/energy.toml assumptions)", "arch": first.flexcim.name,
            "functional_check": check.label(), "headline": report::headline_json(&h, &first.energy, first.mhz), "regimes": per});
        println!("{}", serde_json::to_string_pretty(&j).unwrap_or_default());
    } else {
        println!("FlexCiM-like model ({}; energy: energy.toml assumptions) on {}; functional check {}", first.flexcim.name, args.input, check.label());
        print!("{}", report::headline_text(&h, &first.energy, first.mhz));
        for (r, ev) in &evs {
            let t = &ev.flexcim.result.total;
            let (c, e) = report::breakdown(t, &ev.energy);
            println!("{}: FlexCiM {} cycles, {:.4e} pJ, {} cell MACs; cycles / pJ by part: {}", r.label(), t.total_cycles(), t.energy_pj(&ev.energy), t.macs,
                report::PARTS.iter().zip(c.iter().zip(e)).map(|(p, (c, e))| format!("{p} {c} / {e:.4e}")).collect::<Vec<_>>().join(", "));
        }
    }
    if let Check::Failed(m) = &check {
        return Err(CliError::internal(format!("internal error: functional check failed: {m}")));
    }
    Ok(())
}
