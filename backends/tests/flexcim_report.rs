//! The FlexCiM report builders on a fixed small run: the text headline
//! (snapshot), the HTML order (headline, Pareto plot, breakdown, per layer),
//! one ratio direction everywhere, and the breakdown summing to the totals.

use flexc_backends::flexcim::arch::{Arch, EnergyTable, Nm, Regime};
use flexc_backends::flexcim::lower::{synthetic_layer, Rng};
use flexc_backends::flexcim::report::{breakdown, headline_json, headline_text, headlines, html};
use flexc_backends::flexcim::{evaluate, Evaluation, Workload};

fn runs() -> Vec<(Regime, Evaluation)> {
    let mut rng = Rng(3);
    let work: Vec<Workload> = [("2:4", 64, 128), ("8:8", 32, 64)]
        .iter()
        .map(|&(nm, out, inp)| {
            let layer = synthetic_layer(&format!("l{nm}"), out, inp, Nm::parse(nm).unwrap(), true, 32, &mut rng);
            Workload { layer, x: (0..2 * inp).map(|_| rng.i8()).collect(), tokens: 2, oracle: None, tile: None }
        })
        .collect();
    let arch = Arch::default_flexcim();
    let e = EnergyTable::default_table();
    Regime::ALL.iter().map(|&r| (r, evaluate(&arch.with_regime(r), &e, &work, &[], &["dense".into(), "fixed-2:4".into()]).unwrap())).collect()
}

#[test]
fn headline_text_snapshot() {
    let evs = runs();
    let h = headlines(&evs, 2);
    insta::assert_snapshot!(headline_text(&h, &evs[0].1.energy, evs[0].1.mhz));
}

#[test]
fn report_order_ratios_and_breakdown() {
    let evs = runs();
    let e = &evs[0].1.energy;
    let page = html("t", &evs, 2);
    let at = |s: &str| page.find(s).unwrap_or_else(|| panic!("no {s}"));
    assert!(at("Headline") < at("Pareto plot") && at("Pareto plot") < at("Breakdown") && at("Breakdown") < at("Per layer, resident"));
    assert!(page.contains("latency (µs)") && page.contains("energy (µJ)") && page.contains(">legend<"));
    let j = headline_json(&headlines(&evs, 2), e, evs[0].1.mhz);
    for (row, (_, ev)) in j.as_array().unwrap().iter().zip(&evs) {
        let f = &ev.flexcim.result.total;
        for (b, run) in row["baselines"].as_array().unwrap().iter().zip(&ev.baselines) {
            let want = run.result.total.total_cycles() as f64 / f.total_cycles() as f64;
            assert!((b["speedup"].as_f64().unwrap() - want).abs() < 1e-12, "speedup is baseline / FlexCiM");
        }
    }
    for (_, ev) in &evs {
        for run in std::iter::once(&ev.flexcim).chain(&ev.baselines) {
            let t = &run.result.total;
            let (c, en) = breakdown(t, e);
            assert_eq!(c.iter().sum::<f64>(), t.total_cycles() as f64, "{}", run.name);
            assert!((en.iter().sum::<f64>() - t.energy_pj(e)).abs() < 1e-6 * t.energy_pj(e), "{}", run.name);
            assert!(en.iter().all(|&v| v >= -1e-9), "{}: {en:?}", run.name);
        }
    }
}
