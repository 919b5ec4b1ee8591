//! Reports of FlexCiM runs: the headline (latency and energy against each
//! baseline, per weight regime and phase), a latency–energy Pareto plot, the
//! breakdown (weight load, select, compute, off-chip), then per-layer detail;
//! as JSON and as a self-contained HTML page (SVG from [`crate::chart`]).
//!
//! Every ratio has one direction everywhere: baseline ÷ FlexCiM, written
//! "× faster than" (cycles) and "× less energy than" (pJ); above 1 FlexCiM
//! is better, below 1 worse. Every figure is of a "FlexCiM-like model": the
//! energy table is an assumption set (energy.toml), not the paper's.

use super::arch::{EnergyTable, Regime};
use super::sim::{Stats, CYCLE_KINDS};
use super::timing::{cy, ev};
use super::{ArchRun, Check, Evaluation};
pub use crate::chart::esc;
use crate::chart::{self, Series};
use serde_json::{json, Value};
use std::fmt::Write as _;

/// Where cycles and energy go, in [`breakdown`] order.
pub const PARTS: [&str; 4] = ["weight load", "select", "compute", "off-chip (activations, results)"];

/// Cycles and pJ by [`PARTS`]: weight load (`ldw`: array writes and the
/// weights' off-macro bytes), select (`dsel`, `cfg`, mux hops), compute
/// (issue, stalls, pipeline drain; cells, adders, FIFOs, buffers), off-chip
/// (activations in, results out).
pub fn breakdown(s: &Stats, e: &EnergyTable) -> ([f64; 4], [f64; 4]) {
    let c = &s.cycles;
    let cycles = [c[cy::WEIGHT_LOAD], c[cy::SELECT], c[cy::COMPUTE] + c[cy::STALL] + c[cy::DRAIN], c[cy::ACT_LOAD] + c[cy::WRITEBACK]].map(|v| v as f64);
    let n = |i: usize| s.events[i] as f64;
    let weight = e.weight_write * n(ev::WEIGHT_WRITE) + e.offchip_byte * s.weight_offchip_bytes as f64;
    let select = e.select_write * n(ev::SELECT_WRITE) + e.mux_hop * n(ev::MUX_HOP);
    let offchip = e.offchip_byte * (n(ev::OFFCHIP) - s.weight_offchip_bytes as f64) + e.act_buffer_write * n(ev::ACT_WRITE);
    let compute = s.energy_pj(e) - weight - select - offchip;
    (cycles, [weight, select, compute, offchip])
}

/// `base / ours`: how many times better FlexCiM is (0 when `ours` is 0).
pub fn times(base: f64, ours: f64) -> f64 {
    if ours > 0.0 { base / ours } else { 0.0 }
}

/// One headline row: FlexCiM and each baseline under one regime and phase.
#[derive(Clone, Debug)]
pub struct Headline<'a> {
    /// The weight regime.
    pub regime: Regime,
    /// `decode`, `prefill`, or `run` (a `.fir` file or stream).
    pub phase: String,
    /// Activation rows.
    pub rows: usize,
    /// FlexCiM's totals.
    pub flexcim: &'a Stats,
    /// Each baseline's name and totals.
    pub baselines: Vec<(&'a str, &'a Stats)>,
}

impl Headline<'_> {
    fn what(&self) -> String {
        format!("{} weights, {} ({} row{})", self.regime.label(), self.phase, self.rows, if self.rows == 1 { "" } else { "s" })
    }
}

/// The headline as JSON: per row, FlexCiM's latency and energy and, per
/// baseline, `speedup` ("× faster than") and `energy_saving` ("× less energy than").
pub fn headline_json(h: &[Headline<'_>], e: &EnergyTable, mhz: f64) -> Value {
    let acc = |s: &Stats| json!({"cycles": s.total_cycles(), "latency_us": s.total_cycles() as f64 / mhz, "energy_pj": s.energy_pj(e)});
    Value::Array(
        h.iter()
            .map(|r| {
                let f = r.flexcim;
                json!({"regime": r.regime.label(), "phase": r.phase, "rows": r.rows, "flexcim": acc(f),
                   "baselines": r.baselines.iter().map(|(n, b)| {
                       let mut v = acc(b);
                       v["name"] = json!(n);
                       v["speedup"] = json!(times(b.total_cycles() as f64, f.total_cycles() as f64));
                       v["energy_saving"] = json!(times(b.energy_pj(e), f.energy_pj(e)));
                       v
                   }).collect::<Vec<_>>()})
            })
            .collect(),
    )
}

/// The headline as text lines.
pub fn headline_text(h: &[Headline<'_>], e: &EnergyTable, mhz: f64) -> String {
    let mut s = String::from("headline (ratios are baseline / FlexCiM, \"x faster than\" and \"x less energy than\": above 1 FlexCiM is better):\n");
    for r in h {
        let f = r.flexcim;
        let _ = write!(s, "  {:<38} FlexCiM {:>10.3} us {:>10.4} uJ", r.what(), f.total_cycles() as f64 / mhz, f.energy_pj(e) / 1e6);
        for (n, b) in &r.baselines {
            let _ = write!(s, " | {:.3}x faster, {:.3}x less energy than {n}", times(b.total_cycles() as f64, f.total_cycles() as f64), times(b.energy_pj(e), f.energy_pj(e)));
        }
        s.push('\n');
    }
    s
}

/// The headline table (HTML).
pub fn headline_html(h: &[Headline<'_>], e: &EnergyTable, mhz: f64) -> String {
    let names: Vec<&str> = h.first().map(|r| r.baselines.iter().map(|b| b.0).collect()).unwrap_or_default();
    let mut s = String::from("<p>Ratios are baseline ÷ FlexCiM: above 1 FlexCiM is better (× faster than, × less energy than), below 1 worse.</p><table><tr><th>regime, phase</th><th>FlexCiM latency (µs)</th><th>FlexCiM energy (µJ)</th>");
    for n in &names {
        let _ = write!(s, "<th>× faster than {0}</th><th>× less energy than {0}</th>", esc(n));
    }
    s += "</tr>";
    for r in h {
        let f = r.flexcim;
        let _ = write!(s, "<tr><td>{}</td><td>{:.3}</td><td>{:.4}</td>", esc(&r.what()), f.total_cycles() as f64 / mhz, f.energy_pj(e) / 1e6);
        for (_, b) in &r.baselines {
            let (sp, en) = (times(b.total_cycles() as f64, f.total_cycles() as f64), times(b.energy_pj(e), f.energy_pj(e)));
            let cell = |v: f64| format!("<td style=\"background:{}\">{v:.3}×</td>", if v >= 1.0 { "#e3f4e3" } else { "#f8e0e0" });
            s += &cell(sp);
            s += &cell(en);
        }
        s += "</tr>";
    }
    s + "</table>"
}

/// Per regime and phase, latency against energy: one point per accelerator
/// (lower left is better; a point no other beats in both is on the front).
pub fn pareto_html(h: &[Headline<'_>], e: &EnergyTable, mhz: f64) -> String {
    let mut s = String::from("<div style=\"display:flex;flex-wrap:wrap;gap:12px\">");
    for r in h {
        let series: Vec<Series> = std::iter::once(("FlexCiM", r.flexcim))
            .chain(r.baselines.iter().copied())
            .map(|(n, st)| Series { name: n.to_string(), points: vec![(st.total_cycles() as f64 / mhz, st.energy_pj(e) / 1e6, n.to_string())], line: false })
            .collect();
        s += &chart::xy(&format!("{}: latency vs energy (lower left is better)", r.what()), "latency (µs)", "energy (µJ)", &series);
    }
    s + "</div>"
}

/// Per phase, two stacked-bar charts (cycles, energy) by [`PARTS`]: one bar
/// per regime and accelerator.
pub fn breakdown_html(h: &[Headline<'_>], e: &EnergyTable) -> String {
    let mut phases: Vec<(&str, usize)> = h.iter().map(|r| (r.phase.as_str(), r.rows)).collect();
    phases.dedup();
    let mut s = String::new();
    for (phase, rows) in phases {
        let (mut labels, mut cyc, mut nrg) = (Vec::new(), Vec::new(), Vec::new());
        for r in h.iter().filter(|r| r.phase == phase && r.rows == rows) {
            for (n, st) in std::iter::once(("FlexCiM", r.flexcim)).chain(r.baselines.iter().copied()) {
                let (c, en) = breakdown(st, e);
                labels.push(format!("{}: {n}", r.regime.label()));
                cyc.push(c.to_vec());
                nrg.push(en.iter().map(|v| v / 1e6).collect());
            }
        }
        let what = format!("{phase} ({rows} row{})", if rows == 1 { "" } else { "s" });
        s += &chart::stacked_bars(&format!("{what}: cycles by part"), &labels, &PARTS, &cyc, "cycles");
        s += &chart::stacked_bars(&format!("{what}: energy by part"), &labels, &PARTS, &nrg, "energy (µJ)");
    }
    s
}

/// The breakdown as JSON (`{"cycles": {part: n}, "energy_pj": {part: pJ}}`).
pub fn breakdown_json(s: &Stats, e: &EnergyTable) -> Value {
    let (c, en) = breakdown(s, e);
    let map = |v: [f64; 4]| PARTS.iter().zip(v).map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>();
    json!({"cycles": map(c), "energy_pj": map(en)})
}

fn layers(run: &ArchRun) -> impl Iterator<Item = &Stats> {
    run.result.layers.iter().filter(|l| l.dense_macs > 0 || l.host_elems > 0)
}

/// One evaluation (one regime) as JSON: totals, the functional check,
/// `baselines: [{name, cycles, energy_pj, speedup, energy_saving}]`, per-layer detail.
pub fn json(ev: &Evaluation, regime: Regime, sim_macs_per_s: Option<f64>) -> Value {
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
        "regime": regime.label(),
        "arch": ev.flexcim.name,
        "cycles": t.total_cycles(),
        "latency_us": t.total_cycles() as f64 / ev.mhz,
        "energy_pj": t.energy_pj(e),
        "macs": t.macs,
        "dense_macs": t.dense_macs,
        "utilisation": t.utilisation(),
        "host_elems": t.host_elems,
        "preloaded_cells": t.preloaded_cells,
        "breakdown": breakdown_json(t, e),
        "instructions": ev.flexcim.program.instrs.len(),
        "functional_check": ev.check.label(),
        "functional_check_detail": match &ev.check { Check::Failed(m) => json!(m), _ => Value::Null },
        "sim_seconds": ev.flexcim.sim_seconds,
        "sim_macs_per_second": sim_macs_per_s,
        "layers": layer_json(&ev.flexcim),
        "baselines": ev.baselines.iter().map(|b| {
            let bt = &b.result.total;
            json!({"name": b.name, "cycles": bt.total_cycles(), "energy_pj": bt.energy_pj(e), "macs": bt.macs,
                   "speedup": times(bt.total_cycles() as f64, t.total_cycles() as f64),
                   "energy_saving": times(bt.energy_pj(e), t.energy_pj(e)),
                   "breakdown": breakdown_json(bt, e),
                   "layers": layer_json(b)})
        }).collect::<Vec<_>>(),
    })
}

const STYLE: &str = "<style>body{font-family:sans-serif;margin:20px;max-width:1200px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}svg{display:block;margin:8px 0}</style>";

/// The per-layer table and charts of one evaluation (no page around them).
pub fn html_section(ev: &Evaluation) -> String {
    let e = &ev.energy;
    let runs: Vec<&ArchRun> = std::iter::once(&ev.flexcim).chain(&ev.baselines).collect();
    let fl: Vec<&Stats> = layers(&ev.flexcim).collect();
    let labels: Vec<String> = fl.iter().map(|l| l.name.clone()).chain(std::iter::once("total".to_string())).collect();
    let per = |f: &dyn Fn(&Stats) -> f64| -> Vec<(String, Vec<f64>)> {
        runs.iter().map(|r| (r.name.clone(), layers(r).map(f).chain(std::iter::once(f(&r.result.total))).collect())).collect()
    };
    let us = |l: &Stats| l.total_cycles() as f64 / ev.mhz;
    let mut s = String::from("<table><tr><th>layer</th><th>arch</th><th>cycles</th><th>latency (µs)</th><th>energy (pJ)</th><th>cell MACs</th><th>utilisation</th><th>FlexCiM × faster than this</th><th>FlexCiM × less energy than this</th></tr>");
    for r in &runs {
        for (l, f) in layers(r).chain(std::iter::once(&r.result.total)).zip(fl.iter().copied().chain(std::iter::once(&ev.flexcim.result.total))) {
            let _ = write!(s, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.4e}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
                esc(&l.name), esc(&r.name), l.total_cycles(), us(l), l.energy_pj(e), l.macs, l.utilisation(),
                times(l.total_cycles() as f64, f.total_cycles() as f64), times(l.energy_pj(e), f.energy_pj(e)));
        }
    }
    s += "</table>";
    s += &chart::horizontal_bars("Latency per layer (µs)", &labels, &per(&us), "µs");
    s += &chart::horizontal_bars("Energy per layer (pJ)", &labels, &per(&|l: &Stats| l.energy_pj(e)), "pJ");
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

/// The sections every report opens with: headline, Pareto plot, breakdown.
pub fn summary_sections(h: &[Headline<'_>], e: &EnergyTable, mhz: f64) -> Vec<(String, String)> {
    vec![
        ("Headline: FlexCiM against each baseline".to_string(), headline_html(h, e, mhz)),
        ("Pareto plot: latency and energy".to_string(), pareto_html(h, e, mhz)),
        ("Breakdown: weight load, select, compute, off-chip".to_string(), breakdown_html(h, e)),
    ]
}

/// The headline rows of evaluations of a `.fir` file or stream (phase `run`).
pub fn headlines(evs: &[(Regime, Evaluation)], rows: usize) -> Vec<Headline<'_>> {
    evs.iter()
        .map(|(r, ev)| Headline { regime: *r, phase: "run".into(), rows, flexcim: &ev.flexcim.result.total, baselines: ev.baselines.iter().map(|b| (b.name.as_str(), &b.result.total)).collect() })
        .collect()
}

/// The HTML report of a `.fir` file or stream, one evaluation per regime:
/// headline, Pareto plot, breakdown, then the per-layer detail of each regime.
pub fn html(title: &str, evs: &[(Regime, Evaluation)], rows: usize) -> String {
    let Some((_, first)) = evs.first() else { return html_page(title, "<p>No run.</p>", &[]) };
    let intro = format!("<p>Architecture: {}. Functional check: <b>{}</b>{}. Energy: parametric table (energy.toml), not the paper's; figures are model outputs, not silicon.</p>",
        esc(&first.flexcim.name), first.check.label(), match &first.check { Check::Failed(m) => format!(" ({})", esc(m)), _ => String::new() });
    let h = headlines(evs, rows);
    let mut sections = summary_sections(&h, &first.energy, first.mhz);
    sections.extend(evs.iter().map(|(r, ev)| (format!("Per layer, {} weights", r.label()), html_section(ev))));
    html_page(title, &intro, &sections)
}
