//! Reports of an [`Evaluation`]: a JSON object and a self-contained HTML page
//! (hand-written HTML with inline SVG bar charts, no dependencies).
//!
//! Every figure is labelled "FlexCiM-like model": the energy table is an
//! assumption set (energy.toml), not the paper's.

use super::sim::{Stats, CYCLE_KINDS};
use super::{ArchRun, Check, Evaluation};
use serde_json::{json, Value};
use std::fmt::Write as _;

fn layers(run: &ArchRun) -> impl Iterator<Item = &Stats> {
    run.result.layers.iter().filter(|l| l.dense_macs > 0 || l.host_elems > 0)
}

/// The JSON report: `cycles`, `energy_pj`, `macs`, `functional_check`,
/// `baselines: [{name, cycles, energy_pj}]`, plus per-layer detail.
pub fn json(ev: &Evaluation, sim_macs_per_s: Option<f64>) -> Value {
    let e = &ev.energy;
    let t = &ev.flexcim.result.total;
    let layer_json = |run: &ArchRun| -> Vec<Value> {
        layers(run)
            .map(|l| {
                let cycles: serde_json::Map<String, Value> = CYCLE_KINDS.iter().zip(l.cycles).map(|(k, v)| (k.to_string(), json!(v))).collect();
                let energy: serde_json::Map<String, Value> = l.energy_by_event(e).into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
                json!({"name": l.name, "cycles": l.total_cycles(), "energy_pj": l.energy_pj(e), "macs": l.macs, "dense_macs": l.dense_macs,
                       "utilisation": l.utilisation(), "host_elems": l.host_elems, "cycles_by_kind": cycles, "energy_by_event_pj": energy})
            })
            .collect()
    };
    json!({
        "model": "FlexCiM-like model (parametric; energy table = backends/flexcim/energy.toml assumptions)",
        "arch": ev.flexcim.name,
        "cycles": t.total_cycles(),
        "latency_us": t.total_cycles() as f64 / ev.mhz,
        "energy_pj": t.energy_pj(e),
        "macs": t.macs,
        "dense_macs": t.dense_macs,
        "utilisation": t.utilisation(),
        "host_elems": t.host_elems,
        "instructions": ev.flexcim.program.instrs.len(),
        "functional_check": ev.check.label(),
        "functional_check_detail": match &ev.check { Check::Failed(m) => json!(m), _ => Value::Null },
        "sim_seconds": ev.flexcim.sim_seconds,
        "sim_macs_per_second": sim_macs_per_s,
        "layers": layer_json(&ev.flexcim),
        "baselines": ev.baselines.iter().map(|b| {
            let bt = &b.result.total;
            json!({"name": b.name, "cycles": bt.total_cycles(), "energy_pj": bt.energy_pj(e), "macs": bt.macs,
                   "latency_ratio_flexcim_over_baseline": t.total_cycles() as f64 / bt.total_cycles().max(1) as f64,
                   "energy_ratio_flexcim_over_baseline": t.energy_pj(e) / bt.energy_pj(e).max(f64::MIN_POSITIVE),
                   "layers": layer_json(b)})
        }).collect::<Vec<_>>(),
    })
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const COLORS: [&str; 13] = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#8c564b", "#17becf"];

/// A grouped horizontal bar chart: one group per label, one bar per series.
fn bars(title: &str, labels: &[String], series: &[(String, Vec<f64>)], unit: &str) -> String {
    let max = series.iter().flat_map(|s| s.1.iter().copied()).fold(0.0f64, f64::max).max(f64::MIN_POSITIVE);
    let bar_h = 14.0;
    let group_h = bar_h * series.len() as f64 + 10.0;
    let h = 40.0 + group_h * labels.len() as f64 + 20.0 * series.len() as f64;
    let mut s = format!("<h3>{}</h3><svg width=\"860\" height=\"{h}\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">", esc(title));
    for (li, l) in labels.iter().enumerate() {
        let y0 = 20.0 + li as f64 * group_h;
        let _ = write!(s, "<text x=\"0\" y=\"{}\">{}</text>", y0 + bar_h, esc(l));
        for (si, (_, vals)) in series.iter().enumerate() {
            let v = vals.get(li).copied().unwrap_or(0.0);
            let w = 560.0 * v / max;
            let y = y0 + si as f64 * bar_h;
            let _ = write!(s, "<rect x=\"180\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{}\">{v:.4e} {unit}</text>", bar_h - 2.0, COLORS[si % COLORS.len()], 184.0 + w, y + bar_h - 4.0);
        }
    }
    let ly = 30.0 + group_h * labels.len() as f64;
    for (si, (name, _)) in series.iter().enumerate() {
        let y = ly + si as f64 * 20.0;
        let _ = write!(s, "<rect x=\"180\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"198\" y=\"{}\">{}</text>", COLORS[si % COLORS.len()], y + 10.0, esc(name));
    }
    s + "</svg>"
}

const STYLE: &str = "<style>body{font-family:sans-serif;margin:20px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}</style>";

/// The per-layer table and the charts of one evaluation (no page around them).
pub fn html_section(ev: &Evaluation) -> String {
    let e = &ev.energy;
    let runs: Vec<&ArchRun> = std::iter::once(&ev.flexcim).chain(&ev.baselines).collect();
    let fl: Vec<&Stats> = layers(&ev.flexcim).collect();
    let labels: Vec<String> = fl.iter().map(|l| l.name.clone()).chain(std::iter::once("total".to_string())).collect();
    let per = |f: &dyn Fn(&Stats) -> f64| -> Vec<(String, Vec<f64>)> {
        runs.iter().map(|r| (r.name.clone(), layers(r).map(f).chain(std::iter::once(f(&r.result.total))).collect())).collect()
    };
    let us = |l: &Stats| l.total_cycles() as f64 / ev.mhz;
    let mut s = String::from("<h2>Per layer</h2><table><tr><th>layer</th><th>arch</th><th>cycles</th><th>latency (µs)</th><th>energy (pJ)</th><th>cell MACs</th><th>utilisation</th><th>latency ratio FlexCiM/this</th><th>energy ratio FlexCiM/this</th></tr>");
    for r in &runs {
        for (l, f) in layers(r).chain(std::iter::once(&r.result.total)).zip(fl.iter().copied().chain(std::iter::once(&ev.flexcim.result.total))) {
            let _ = write!(s, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.4e}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
                esc(&l.name), esc(&r.name), l.total_cycles(), us(l), l.energy_pj(e), l.macs, l.utilisation(),
                f.total_cycles() as f64 / l.total_cycles().max(1) as f64, f.energy_pj(e) / l.energy_pj(e).max(f64::MIN_POSITIVE));
        }
    }
    s += "</table>";
    s += &bars("Latency per layer (µs)", &labels, &per(&us), "µs");
    s += &bars("Energy per layer (pJ)", &labels, &per(&|l: &Stats| l.energy_pj(e)), "pJ");
    let kinds: Vec<String> = e.entries().iter().map(|x| x.0.to_string()).collect();
    let ebreak: Vec<(String, Vec<f64>)> = runs.iter().map(|r| (r.name.clone(), r.result.total.energy_by_event(e).iter().map(|x| x.1).collect())).collect();
    s += &bars("Energy breakdown by event, total (pJ)", &kinds, &ebreak, "pJ");
    let ckinds: Vec<String> = CYCLE_KINDS.iter().map(|k| k.to_string()).collect();
    let cbreak: Vec<(String, Vec<f64>)> = runs.iter().map(|r| (r.name.clone(), r.result.total.cycles.iter().map(|&c| c as f64).collect())).collect();
    s += &bars("Cycle breakdown, total", &ckinds, &cbreak, "cycles");
    s
}

/// A self-contained page: a heading, an introduction (HTML) and sections.
pub fn html_page(title: &str, intro: &str, sections: &[(String, String)]) -> String {
    let mut s = format!("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>flexc sim: {}</title>{STYLE}</head><body><h1>{}</h1>{intro}", esc(title), esc(title));
    for (h, body) in sections {
        let _ = write!(s, "<h2>{}</h2>{body}", esc(h));
    }
    s + "</body></html>\n"
}

/// The HTML report.
pub fn html(ev: &Evaluation) -> String {
    let intro = format!("<p>Architecture: {}. Functional check: <b>{}</b>{}. Energy: parametric table (energy.toml), not the paper's; figures are model outputs, not silicon.</p>",
        esc(&ev.flexcim.name), ev.check.label(), match &ev.check { Check::Failed(m) => format!(" ({})", esc(m)), _ => String::new() });
    html_page("FlexCiM-like model: simulation report", &intro, &[(String::from("Results"), html_section(ev))])
}
