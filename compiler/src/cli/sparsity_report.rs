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

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A hand-written SVG: outlier ratio (bars) and normalised locality (line)
/// per block, with the chosen N:M written under each bar.
pub fn report_svg(cfg: &FlowNm, sel: &Selection) -> String {
    let n = sel.units.len().max(1);
    let (w, h, left, top, plot_h) = (60.0 + 28.0 * n as f64, 340.0, 50.0, 40.0, 220.0);
    let rmax = sel.units.iter().map(|u| u.outlier_ratio).fold(0.0, f64::max).max(1e-12);
    let lmax = sel.units.iter().map(|u| u.locality).fold(0.0, f64::max).max(1e-300);
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" font-family=\"sans-serif\" font-size=\"10\">\n");
    s += &format!("<text x=\"{left}\" y=\"18\" font-size=\"13\">{}</text>\n", esc(&format!(
        "flow-nm: target {:.3}, achieved {:.3} ({} mode); bars: outlier ratio (max {:.2}%), line: locality (max {:.3e})",
        cfg.sparsity, sel.achieved, if cfg.nearest { "nearest" } else { "reference" }, rmax, lmax)));
    s += &format!("<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n", top + plot_h, w - 10.0, top + plot_h);
    let mut pts = Vec::new();
    for (i, u) in sel.units.iter().enumerate() {
        let x = left + 28.0 * i as f64;
        let bh = plot_h * u.outlier_ratio / rmax;
        let color = match u.nm.map(|c| (c.n(), c.m())) {
            Some((a, b)) if a == b => "#999999",
            Some((_, 4)) => "#d62728",
            Some((2, 8)) => "#1f77b4",
            Some(_) => "#2ca02c",
            None => "#9467bd",
        };
        s += &format!("<rect x=\"{:.1}\" y=\"{:.1}\" width=\"20\" height=\"{bh:.1}\" fill=\"{color}\"><title>block {}: r = {:.3}%, li = {:.3e}</title></rect>\n", x, top + plot_h - bh, u.block, u.outlier_ratio, u.locality);
        let label = u.nm.map_or(format!("{:.2}", u.sparsity), |c| c.to_string());
        s += &format!("<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n", x + 10.0, top + plot_h + 14.0, esc(&label));
        s += &format!("<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#666\">{}</text>\n", x + 10.0, top + plot_h + 28.0, u.block);
        pts.push(format!("{:.1},{:.1}", x + 10.0, top + plot_h - plot_h * u.locality / lmax));
    }
    s += &format!("<polyline points=\"{}\" fill=\"none\" stroke=\"#ff7f0e\" stroke-width=\"2\"/>\n", pts.join(" "));
    s += &format!("<text x=\"{left}\" y=\"{}\">colour: grey dense (N = M), red M = 4, blue 2:8, green other M = 8; label: N:M (N kept of M); below: block</text>\n", h - 12.0);
    s += "</svg>\n";
    s
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
        write_atomic(svg, report_svg(&cfg, &sel).as_bytes())?;
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
