//! `flexc sparsity-report`: per block outlier ratio, locality, chosen N:M and
//! achieved sparsity of a `flow-nm` selection, as text, JSON or an SVG plot.

use super::error::{CliError, CliResult};
use super::import::import_model;
use super::models::{resolve, Format, DEFAULT_MODEL};
use crate::frontend::decoder::ImportOptions;
use crate::output::write_atomic;
use clap::Args;
use flexc_passes::sparsity::flow_nm::{FlowNm, Selection};
use flexc_passes::sparsity::Status;
use std::path::PathBuf;

/// Arguments of `flexc sparsity-report`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc sparsity-report smollm2-135m --stats s.json\n  flexc sparsity-report smollm2-135m --stats s.json --pipeline 'flow-nm{sparsity=0.6},prune-nm{update=sparsegpt}' --format json --svg flow.svg\n\nflow-nm{method=flow} (the default) measures each block's cost with the pipeline's prune-nm\n(cached under <cache>/sensitivity/); other methods need no prune-nm.")]
pub struct ReportArgs {
    /// A model file or known name (default: smollm2-135m).
    pub model: Option<String>,
    /// Calibration statistics (`flexc calibrate`; default: the cached default
    /// statistics, computed on first use).
    #[arg(long, alias = "stats-file")]
    pub stats: Option<PathBuf>,
    /// The flow-nm invocation whose selection is reported.
    #[arg(long, default_value = "flow-nm,prune-nm")]
    pub pipeline: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also write an SVG plot (atomically).
    #[arg(long)]
    pub svg: Option<PathBuf>,
}

fn selection_of(pipeline: &str) -> CliResult<FlowNm> {
    let specs = flexc_passes::pipeline::parse_pipeline(pipeline).map_err(|e| CliError::usage(format!("error: {e}")))?;
    let spec = specs.iter().find(|s| s.name == "flow-nm").ok_or_else(|| CliError::usage("error: --pipeline must contain flow-nm{...}"))?;
    let info = flexc_passes::lookup("flow-nm").ok_or_else(|| CliError::internal("flow-nm is not registered"))?;
    let opts = flexc_passes::options::Options::check(spec, info.options).map_err(|e| CliError::usage(format!("error: {e}")))?;
    FlowNm::from_options(&opts).map_err(|e| CliError::usage(format!("error: {e}")))
}

/// The JSON report.
pub fn report_json(cfg: &FlowNm, sel: &Selection) -> serde_json::Value {
    serde_json::json!({
        "target_sparsity": cfg.sparsity,
        "achieved_sparsity": sel.achieved,
        "param_sparsity": sel.param_sparsity,
        "mode": if cfg.nearest { "nearest" } else { "reference" },
        "status": status_name(sel.status),
        "solver_ms": sel.solve_time.as_secs_f64() * 1e3,
        "blocks": sel.units.iter().map(|u| serde_json::json!({
            "block": u.block, "outlier_ratio": u.outlier_ratio, "locality": u.locality,
            "n": u.nm.map(|c| c.n()), "m": u.nm.map(|c| c.m()), "sparsity": u.sparsity,
        })).collect::<Vec<_>>(),
    })
}

/// The SVG: per block (x axis, the chosen N:M under each), three bars in
/// percent: the sparsity chosen, the outlier ratio, and the locality as a
/// percentage of the largest block's; the title names the model, the
/// pipeline's target and what was achieved.
pub fn report_svg(model: &str, cfg: &FlowNm, sel: &Selection) -> String {
    let blocks: Vec<String> = sel.units.iter().map(|u| u.block.to_string()).collect();
    let nm: Vec<String> = sel.units.iter().map(|u| u.nm.map_or("-".into(), |c| c.to_string())).collect();
    let lmax = sel.units.iter().map(|u| u.locality).fold(0.0, f64::max).max(1e-300);
    let series = vec![
        ("sparsity chosen (%)".to_string(), sel.units.iter().map(|u| 100.0 * u.sparsity).collect()),
        ("outlier ratio (% of weights)".to_string(), sel.units.iter().map(|u| u.outlier_ratio).collect()),
        (format!("locality (% of the largest, {lmax:.3e})"), sel.units.iter().map(|u| 100.0 * u.locality / lmax).collect()),
    ];
    let title = format!("{model}: flow-nm target {:.3}, achieved {:.3} ({} mode)", cfg.sparsity, sel.achieved, if cfg.nearest { "nearest" } else { "reference" });
    flexc_backends::chart::grouped_bars(&title, "decoder block (N:M chosen below)", &blocks, &nm, "percent (%)", &series) + "\n"
}

/// Runs `flexc sparsity-report`.
pub fn run(args: ReportArgs) -> CliResult {
    let cfg = selection_of(&args.pipeline)?;
    let path = resolve(args.model.as_deref().unwrap_or(DEFAULT_MODEL))?;
    // The report needs statistics unless every score is magnitude.
    let stats = super::calibrate::stats_or_default(args.model.as_deref(), Some(&args.pipeline), args.stats.as_deref())?;
    let mut module = import_model(&path, &ImportOptions { ctx: 1, ..Default::default() })?;
    module.calibration = stats.as_ref().map(|s| s.calibration.clone());
    super::calibrate::attach_sensitivity(&mut module, &path, &args.pipeline, stats.as_ref())?;
    let sel = cfg.select(&module).map_err(|e| CliError::input(format!("error: {e}")))?;
    if let Some(svg) = &args.svg {
        let name = args.model.clone().unwrap_or_else(|| DEFAULT_MODEL.to_string());
        write_atomic(svg, report_svg(&name, &cfg, &sel).as_bytes())?;
    }
    match args.format {
        Format::Json => println!("{}", report_json(&cfg, &sel)),
        Format::Text => {
            println!("target {:.4}  achieved {:.4} (mean over blocks)  params pruned {:.4}  mode {}  status {}  solver {:.3} ms",
                cfg.sparsity, sel.achieved, sel.param_sparsity, if cfg.nearest { "nearest" } else { "reference" }, status_name(sel.status), sel.solve_time.as_secs_f64() * 1e3);
            println!("{:>5}  {:>10}  {:>12}  {:>6}  {:>8}", "block", "outliers%", "locality", "N:M", "sparsity");
            for u in &sel.units {
                println!("{:>5}  {:>10.4}  {:>12.4e}  {:>6}  {:>8.4}", u.block, u.outlier_ratio, u.locality, u.nm.map_or("-".into(), |c| c.to_string()), u.sparsity);
            }
        }
    }
    Ok(())
}

/// How a selection's solver status is shown (text and JSON alike).
fn status_name(s: Option<Status>) -> &'static str {
    match s {
        Some(Status::Optimal) => "optimal",
        Some(Status::Infeasible) => "infeasible",
        Some(Status::Nearest) => "nearest",
        Some(Status::Measured) => "measured",
        None => "n/a",
    }
}
