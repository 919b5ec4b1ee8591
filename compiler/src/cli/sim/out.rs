//! Output of `flexc sim MODEL`: the headline (per weight regime and phase,
//! FlexCiM against each baseline), the breakdown (weight load, select,
//! compute, off-chip), then a per-layer text table per phase; one JSON
//! object (`--format json`); and the HTML report (`--report`, the same
//! builders as for streams: headline, Pareto plot, breakdown, per-layer
//! detail). Ratios are "× better": baseline cycles (or energy) over
//! FlexCiM's, so above 1 means FlexCiM is faster (or spends less); in the
//! table `cyc x B` / `nrg x B` are those ratios against baseline B, and
//! `slots/align` is the slots allocated over what aligned masks need.

use super::super::error::{CliError, CliResult};
use super::SimArgs;
use crate::output::write_atomic;
use flexc_backends::flexcim::arch::{Arch, EnergyTable};
use flexc_backends::flexcim::model::{phase_evaluation, Engine, PhaseResult};
use flexc_backends::flexcim::report::{breakdown, breakdown_json, esc, headline_json, headline_text, html_page, html_section, summary_sections, Headline, PARTS};
use flexc_backends::flexcim::sim::Stats;
use flexc_backends::flexcim::Check;
use serde_json::{json, Value};

/// Everything one model run produced.
pub struct ModelRun<'a> {
    /// The model file.
    pub model: String,
    /// The pipeline text.
    pub pipeline: String,
    /// The passes' remarks.
    pub remarks: Vec<String>,
    /// GEMMs outside the blocks: (name, out, in).
    pub skipped: Vec<(String, usize, usize)>,
    /// Phases and why each engine was chosen.
    pub phases: Vec<(PhaseResult, String)>,
    /// The FlexCiM architecture.
    pub arch: &'a Arch,
    /// The energy table.
    pub energy: &'a EnergyTable,
    /// Baseline names.
    pub baselines: &'a [String],
    /// Seconds to import and run the pipeline.
    pub compile_s: f64,
}

fn ratio(base: f64, ours: f64) -> f64 {
    if ours > 0.0 { base / ours } else { 0.0 }
}

/// The overall check: failed if any cycle-level phase failed, passed if one
/// passed, skipped when every phase was analytical.
fn overall(run: &ModelRun<'_>) -> Check {
    let checks: Vec<&Check> = run.phases.iter().map(|p| &p.0.check).collect();
    checks.iter().find(|c| matches!(c, Check::Failed(_))).map(|c| (*c).clone()).unwrap_or(if checks.contains(&&Check::Passed) { Check::Passed } else { Check::Skipped })
}

/// The headline rows: one per phase (already in report order).
fn headlines<'a>(run: &'a ModelRun<'_>) -> Vec<Headline<'a>> {
    run.phases
        .iter()
        .map(|(p, _)| Headline { regime: p.regime, phase: p.name.clone(), rows: p.rows, flexcim: &p.totals[0], baselines: run.baselines.iter().enumerate().map(|(i, b)| (b.as_str(), &p.totals[i + 1])).collect() })
        .collect()
}

/// Macros (P × R × C cells each) the preloaded cells fill, for the resident regime.
fn macros(run: &ModelRun<'_>, s: &Stats) -> u64 {
    let a = &run.arch.array;
    s.preloaded_cells.div_ceil((a.sub_macros * a.rows * a.columns) as u64)
}

/// The JSON object: `headline` (per regime and phase, each baseline's
/// `speedup` and `energy_saving`, baseline ÷ FlexCiM), then `phases` in detail.
pub fn json(run: &ModelRun<'_>) -> Value {
    let e = run.energy;
    let mhz = run.arch.clock.mhz;
    let base_json = |s: &Stats, ours: &Stats, name: &str| json!({"name": name, "cycles": s.total_cycles(), "energy_pj": s.energy_pj(e),
        "speedup": ratio(s.total_cycles() as f64, ours.total_cycles() as f64), "energy_saving": ratio(s.energy_pj(e), ours.energy_pj(e)),
        "breakdown": breakdown_json(s, e), "preloaded_cells": s.preloaded_cells, "resident_macros": macros(run, s)});
    let phases: Vec<Value> = run.phases.iter().map(|(p, why)| {
        let f = &p.totals[0];
        // Cell MACs simulated (FlexCiM and every baseline) per wall-clock second of the phase.
        let speed = (p.engine == Engine::Cycle && p.seconds > 0.0).then(|| p.totals.iter().map(|t| t.macs).sum::<u64>() as f64 / p.seconds);
        json!({"name": p.name, "rows": p.rows, "regime": p.regime.label(), "engine": p.engine.label(), "engine_reason": why, "functional_check": p.check.label(), "seconds": p.seconds, "sim_macs_per_second": speed,
            "cycles": f.total_cycles(), "latency_us": f.total_cycles() as f64 / mhz, "energy_pj": f.energy_pj(e), "macs": f.macs, "dense_macs": f.dense_macs, "utilisation": f.utilisation(),
            "breakdown": breakdown_json(f, e), "preloaded_cells": f.preloaded_cells, "resident_macros": macros(run, f),
            "slots": p.layers.iter().map(|l| l.slots.0).sum::<usize>(), "aligned_slots": p.layers.iter().map(|l| l.slots.1).sum::<usize>(),
            "baselines": run.baselines.iter().enumerate().map(|(i, b)| base_json(&p.totals[i + 1], f, b)).collect::<Vec<_>>(),
            "layers": p.layers.iter().map(|l| json!({"name": l.name, "block": l.block, "nm": l.nm, "out": l.shape.0, "in": l.shape.1, "slots": l.slots.0, "aligned_slots": l.slots.1,
                "cycles": l.stats[0].total_cycles(), "energy_pj": l.stats[0].energy_pj(e), "utilisation": l.stats[0].utilisation(),
                "baselines": run.baselines.iter().enumerate().map(|(i, b)| json!({"name": b, "cycles": l.stats[i + 1].total_cycles(), "energy_pj": l.stats[i + 1].energy_pj(e)})).collect::<Vec<_>>()})).collect::<Vec<_>>()})
    }).collect();
    json!({
        "model": run.model, "pipeline": run.pipeline, "remarks": run.remarks,
        "arch": run.arch.name, "energy_model": "FlexCiM-like model (parametric; energy table = backends/flexcim/energy.toml assumptions)",
        "ratios": "baseline / FlexCiM: speedup = x faster than, energy_saving = x less energy than (above 1 FlexCiM is better)",
        "headline": headline_json(&headlines(run), e, mhz),
        "functional_check": overall(run).label(),
        "outside_blocks": lm_heads(run), "not_simulated": run.skipped.iter().map(|(n, o, i)| json!({"name": n, "out": o, "in": i, "why": "outside the decoder blocks, weight computed at run time"})).collect::<Vec<_>>(),
        "compile_seconds": run.compile_s,
        "phases": phases,
    })
}

/// The linears run outside the decoder blocks (the LM head).
fn lm_heads(run: &ModelRun<'_>) -> Vec<String> {
    run.phases.first().map(|p| p.0.layers.iter().filter(|l| l.block.is_none()).map(|l| l.name.clone()).collect()).unwrap_or_default()
}

fn text(run: &ModelRun<'_>) {
    let e = run.energy;
    println!("FlexCiM-like model ({}; energy: energy.toml assumptions) on {}", run.arch.name, run.model);
    println!("pipeline: {}{}", run.pipeline, run.remarks.iter().map(|r| format!("\n  {r}")).collect::<String>());
    for n in lm_heads(run) {
        println!("included outside the decoder blocks (LM head): {n}");
    }
    for (n, o, i) in &run.skipped {
        println!("not simulated (outside the decoder blocks, weight computed at run time): {n} {o}x{i}");
    }
    print!("\n{}", headline_text(&headlines(run), e, run.arch.clock.mhz));
    println!("\nbreakdown (cycles / energy in nJ) by part: {}", PARTS.join(", "));
    for (p, _) in &run.phases {
        for (n, st) in std::iter::once(("FlexCiM", &p.totals[0])).chain(run.baselines.iter().map(String::as_str).zip(&p.totals[1..])) {
            let (c, en) = breakdown(st, e);
            println!("  {:<9} {:<8} {:<12} {}", p.regime.label(), p.name, n, c.iter().zip(en).map(|(c, en)| format!("{c:>10} / {:>10.2}", en / 1e3)).collect::<Vec<_>>().join("  "));
        }
    }
    for (p, why) in &run.phases {
        println!("\nphase {}, {} weights ({} row{}): {} engine ({why}); functional check {}; {:.2} s", p.name, p.regime.label(), p.rows, if p.rows == 1 { "" } else { "s" }, p.engine.label(), p.check.label(), p.seconds);
        let heads: Vec<String> = run.baselines.iter().flat_map(|b| [format!("cyc x {b}"), format!("nrg x {b}")]).collect();
        let widths: Vec<usize> = heads.iter().map(|h| h.len().max(8) + 2).collect();
        println!("{:<28} {:>5} {:>11} {:>9} {:>12} {:>6} {}", "layer", "N:M", "slots/align", "cycles", "energy (nJ)", "util", heads.iter().zip(&widths).map(|(h, w)| format!("{h:>w$}")).collect::<String>());
        let row = |name: &str, nm: &str, slots: (usize, usize), st: &[Stats]| {
            let f = &st[0];
            let vals: Vec<f64> = st[1..].iter().flat_map(|b| [ratio(b.total_cycles() as f64, f.total_cycles() as f64), ratio(b.energy_pj(e), f.energy_pj(e))]).collect();
            let r: String = vals.iter().zip(&widths).map(|(v, w)| format!("{v:>w$.3}")).collect();
            println!("{name:<28} {nm:>5} {:>11.3} {:>9} {:>12.2} {:>6.3} {r}", slots.0 as f64 / slots.1.max(1) as f64, f.total_cycles(), f.energy_pj(e) / 1e3, f.utilisation());
        };
        for l in &p.layers {
            row(&l.name, &l.nm, l.slots, &l.stats);
        }
        let slots = (p.layers.iter().map(|l| l.slots.0).sum(), p.layers.iter().map(|l| l.slots.1).sum());
        row("total", "", slots, &p.totals);
    }
}

/// The HTML page: one section per phase.
pub fn html(run: &ModelRun<'_>) -> String {
    let mut intro = format!("<p>Model {}; pipeline <code>{}</code>. Energy: parametric table (energy.toml), not the paper's; figures are model outputs, not silicon. Functional check: <b>{}</b>.</p><ul>",
        esc(&run.model), esc(&run.pipeline), overall(run).label());
    for r in &run.remarks {
        intro += &format!("<li>{}</li>", esc(r));
    }
    for n in lm_heads(run) {
        intro += &format!("<li>included outside the decoder blocks (LM head): {}</li>", esc(&n));
    }
    for (n, o, i) in &run.skipped {
        intro += &format!("<li>not simulated (outside the decoder blocks, weight computed at run time): {} {o}x{i}</li>", esc(n));
    }
    intro += "</ul>";
    let mut sections = summary_sections(&headlines(run), run.energy, run.arch.clock.mhz);
    sections.extend(run.phases.iter().map(|(p, why)| {
        let ev = phase_evaluation(p, &format!("{} (FlexCiM-like)", run.arch.name), run.baselines, run.energy, run.arch.clock.mhz);
        (format!("Per layer: {} ({} rows), {} weights, {} engine", p.name, p.rows, p.regime.label(), p.engine.label()), format!("<p>{}; functional check {}.</p>{}", esc(why), p.check.label(), html_section(&ev)))
    }));
    html_page(&format!("FlexCiM-like model: {}", run.model), &intro, &sections)
}

/// Prints (text or JSON), writes the report, and fails on a failed check.
pub fn emit(args: &SimArgs, run: &ModelRun<'_>) -> CliResult {
    if let Some(p) = &args.report {
        write_atomic(p, html(run).as_bytes())?;
    }
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&json(run)).unwrap_or_default());
    } else {
        text(run);
    }
    if let Check::Failed(m) = overall(run) {
        return Err(CliError::internal(format!("internal error: functional check failed: {m}")));
    }
    Ok(())
}
