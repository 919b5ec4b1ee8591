//! `flexc opt`: run a pass pipeline over `.fir` text and print the result.

use super::error::{CliError, CliResult};
use super::models::Format;
use super::source::{load_module, read_source};
use crate::output::write_atomic;
use clap::Args;
use flexc_ir::text::print_module;
use flexc_passes::{presets, registry, Explain, ManagerOptions, PassManager, PipelineError, PrintAfter};
use std::path::PathBuf;

/// Arguments of `flexc opt`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc opt model.fir --passes 'canonicalize,cse,dce' -o out.fir\n  flexc opt model.fir --pipeline cleanup --print-ir-after=all\n  cat model.fir | flexc opt - --passes dce\n  flexc opt model.fir --passes 'fuse-dequant,select-gemm{target=cpu},tile-gemm' --explain -o out.fir\n  flexc opt model.fir --passes 'fuse-dequant,select-gemm{rows=512}' --explain --format json -o out.fir > plan.json\n  flexc opt --list-passes")]
pub struct OptArgs {
    /// The `.fir` file to read (`-` for stdin).
    #[arg(required_unless_present = "list_passes")]
    pub input: Option<PathBuf>,
    /// A pipeline: comma-separated passes with options, e.g. `canonicalize,cse,dce`.
    #[arg(long, conflicts_with = "pipeline")]
    pub passes: Option<String>,
    /// A named preset pipeline (see --list-passes), e.g. `cleanup` or `cpu`.
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Write the result here instead of stdout (written atomically).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Verify the IR after every pass (always on in tests).
    #[arg(long)]
    pub verify_each: bool,
    /// Print the IR to stderr after the named passes (comma-separated) or `all`.
    #[arg(long, value_name = "PASS|all")]
    pub print_ir_after: Option<String>,
    /// Stop after the first pass with this name.
    #[arg(long, value_name = "PASS")]
    pub stop_after: Option<String>,
    /// Print a table of time spent in each pass to stderr.
    #[arg(long)]
    pub time_passes: bool,
    /// Calibration statistics (`flexc calibrate`) for data-aware passes (flow-nm, prune-nm).
    #[arg(long)]
    pub stats: Option<PathBuf>,
    /// The CPU cost table select-gemm and tile-gemm read (`flexc bench
    /// kernels --write-costs FILE` measures one; default: $FLEXC_COST_TABLE,
    /// else the table shipped with flexc).
    #[arg(long, value_name = "FILE")]
    pub cost_table: Option<PathBuf>,
    /// List every pass with its options, and the presets, then exit.
    #[arg(long)]
    pub list_passes: bool,
    /// Explain select-gemm and tile-gemm: per GEMM the candidate primitives with
    /// their modelled costs and the choice, the shared LUT tables, the e-graph
    /// runner's stop reason, iterations and size, and the tiles. Text goes to
    /// stderr; with `--format json` one JSON object goes to stdout when `-o`
    /// takes the IR, to stderr otherwise. The passes' remarks (e.g. quantize's
    /// format, bytes and output error per tensor) go to stderr first.
    #[arg(long)]
    pub explain: bool,
    /// The format of `--explain`.
    #[arg(long, value_enum, default_value = "text", requires = "explain")]
    pub format: Format,
}

/// The `--list-passes` text.
pub fn list_passes() -> String {
    let mut s = String::from("Passes:\n");
    for p in registry() {
        s += &format!("  {:<16} {}\n", p.name, p.summary);
        for o in p.options {
            s += &format!("      {}={:<10} {} (default: {})\n", o.name, format!("<{:?}>", o.kind).to_lowercase(), o.help, o.default);
        }
    }
    s += "\nPresets (--pipeline NAME):\n";
    for p in presets() {
        s += &format!("  {:<16} {}\n  {:<16} = {}\n", p.name, p.summary, "", p.pipeline);
    }
    s
}

pub(super) fn pipeline_error(e: PipelineError) -> CliError {
    match e {
        PipelineError::Syntax(_) | PipelineError::UnknownPass { .. } | PipelineError::Options(_) | PipelineError::StopAfter(_) => {
            CliError::usage(format!("error: {e}"))
        }
        PipelineError::PassFailed { .. } => CliError::input(format!("error: {e}")),
        PipelineError::Verify { .. } => CliError::internal(format!("internal error: {e}")),
    }
}

/// Runs `flexc opt`.
pub fn run(args: OptArgs) -> CliResult {
    if args.list_passes {
        print!("{}", list_passes());
        return Ok(());
    }
    let input = args.input.ok_or_else(|| CliError::usage("error: an input file is required"))?;
    let text = args.passes.or(args.pipeline).unwrap_or_default();
    let opts = ManagerOptions {
        verify_each: args.verify_each || cfg!(debug_assertions),
        print_ir_after: args.print_ir_after.as_deref().map(PrintAfter::parse).unwrap_or_default(),
        stop_after: args.stop_after,
        time_passes: args.time_passes,
    };
    let mut pm = PassManager::from_text(&text, opts).map_err(pipeline_error)?;
    for model in flexc_backends::cost::cost_models_with(args.cost_table.as_deref()).map_err(|e| CliError::input(format!("error: {e}")))? {
        pm = pm.with_cost_model(model);
    }
    let src = read_source(&input)?;
    let mut module = load_module(&src)?;
    if let Some(s) = &args.stats {
        module.calibration = Some(std::sync::Arc::new(crate::calib::load(s).map_err(|e| CliError::input(format!("error: {e}")))?));
    }
    let report = pm
        .run(&mut module, &mut |pass, m| eprint!("// -----// IR after {pass} //----- //\n{}", print_module(m)))
        .map_err(pipeline_error)?;
    if args.time_passes {
        eprint!("{}", report.timing_table());
    }
    let out = print_module(&module);
    let to_file = args.output.is_some();
    match args.output {
        Some(path) => write_atomic(&path, out.as_bytes())?,
        None => print!("{out}"),
    }
    if args.explain {
        // The passes' remarks (quantize's format, bytes and error per tensor, ...).
        for r in &report.remarks {
            eprintln!("remark: {r}");
        }
        if report.explain.is_some() || report.remarks.is_empty() {
            print_explain(report.explain.as_ref(), args.format, to_file)?;
        }
    }
    Ok(())
}

/// Prints `--explain` (see its help for where each format goes).
pub(super) fn print_explain(explain: Option<&Explain>, format: Format, stdout: bool) -> CliResult {
    let Some(e) = explain else {
        eprintln!("note: --explain: the pipeline has neither select-gemm nor tile-gemm, nothing to explain");
        return Ok(());
    };
    match format {
        Format::Text => eprint!("{}", e.text()),
        Format::Json => {
            let json = serde_json::to_string_pretty(e).map_err(|err| CliError::internal(format!("internal error: --explain: {err}")))?;
            if stdout { println!("{json}") } else { eprintln!("{json}") }
        }
    }
    Ok(())
}
