//! `flexc sim MODEL` on the cached SmolLM2-135M (skipped with a note when it
//! is not cached): FLOW 50% + prune-nm with per-row and with tile-aligned
//! masks, the analytical engine (fast), the JSON keys, the HTML report, and
//! the alignment turning a slowdown against the dense DCiM into a speedup;
//! both weight regimes and the report order; the sparsity-report SVG.

use std::process::{Command, Output};

fn flexc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flexc")).args(args).output().expect("flexc runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const FLOW: &str = "flow-nm{method=flow-reference,sparsity=0.5,mode=nearest,score=magnitude}";

fn run(model: &str, prune: &str, extra: &[&str]) -> serde_json::Value {
    let pipeline = format!("{FLOW},{prune}");
    let mut args = vec!["sim", model, "--pipeline", &pipeline, "--engine", "analytical", "--rows", "4", "--format", "json"];
    args.extend_from_slice(extra);
    let out = flexc(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// Decode cycles on the dense DCiM over FlexCiM's, on the block linears
/// (the dense LM head, slower on FlexCiM's 8:8 mode, left out).
fn decode_speedup(j: &serde_json::Value, phase: usize) -> f64 {
    let blocks: Vec<&serde_json::Value> = j["phases"][phase]["layers"].as_array().expect("layers").iter().filter(|l| !l["block"].is_null()).collect();
    let sum = |f: &dyn Fn(&serde_json::Value) -> f64| blocks.iter().map(|l| f(l)).sum::<f64>();
    sum(&|l| l["baselines"][0]["cycles"].as_f64().expect("cycles")) / sum(&|l| l["cycles"].as_f64().expect("cycles"))
}

#[test]
fn smollm2_aligned_masks_beat_dense_per_row_masks_do_not() {
    let Some(path) = flexc_testsuite::cached("models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    let model = path.to_str().expect("utf-8 path");
    let report = std::env::temp_dir().join(format!("flexc-sim-model-{}.html", std::process::id()));
    let aligned = run(model, "prune-nm{score=magnitude,align=rows:32}", &["--report", report.to_str().expect("utf-8 path")]);
    for key in ["headline", "functional_check", "phases", "not_simulated"] {
        assert!(aligned.get(key).is_some(), "sim JSON lacks '{key}'");
    }
    assert_eq!(aligned["functional_check"], "skipped", "the analytical engine has no values to check");
    let phases = aligned["phases"].as_array().expect("phases");
    let names = |p: &serde_json::Value| (p["regime"].as_str().unwrap_or("").to_string(), p["name"].as_str().unwrap_or("").to_string(), p["rows"].as_u64().unwrap_or(0));
    let want = [("resident", "decode", 1), ("resident", "prefill", 4), ("streamed", "decode", 1), ("streamed", "prefill", 4)];
    assert_eq!(phases.iter().map(names).collect::<Vec<_>>(), want.map(|(r, n, k)| (r.to_string(), n.to_string(), k)).to_vec(), "both regimes, resident first");
    assert_eq!(aligned["headline"].as_array().map(Vec::len), Some(4));
    assert!(phases[0]["resident_macros"].as_u64().unwrap_or(0) > 100, "resident weights fill many macros");
    assert_eq!(phases[0]["breakdown"]["cycles"]["weight load"], 0.0);
    assert_eq!(phases[0]["layers"].as_array().map(Vec::len), Some(30 * 7 + 1), "every linear of every block and the LM head");
    assert_eq!(aligned["outside_blocks"], serde_json::json!(["token_embd.weight"]), "the tied LM head runs");
    assert_eq!(phases[0]["engine"], "analytical");
    let names: Vec<&str> = phases[0]["baselines"].as_array().expect("baselines").iter().map(|b| b["name"].as_str().unwrap_or("")).collect();
    assert_eq!(names, ["dense", "fixed-2:4", "fixed-2:4-reprune", "vegeta"], "the paper's baselines by default");
    assert_eq!(phases[0]["slots"], phases[0]["aligned_slots"]);
    let html = std::fs::read_to_string(&report).expect("the report is written");
    assert!(html.contains("<svg") && html.contains("decode (1 row)") && html.contains("prefill (4 rows)"));
    // The headline, then the Pareto plot, then the breakdown, and only then the per-layer detail.
    let at = |s: &str| html.find(s).unwrap_or_else(|| panic!("the report lacks {s}"));
    assert!(at("Headline") < at("Pareto plot") && at("Pareto plot") < at("Breakdown") && at("Breakdown") < at("Per layer"));
    let _ = std::fs::remove_file(&report);
    let per_row = run(model, "prune-nm{score=magnitude}", &[]);
    let (a, p) = (decode_speedup(&aligned, 2), decode_speedup(&per_row, 2));
    assert!(a > 1.3 && p < 1.0, "streamed decode speedup vs dense on the block linears: aligned {a}, per-row {p}");
    let whole = aligned["phases"][2]["baselines"][0]["speedup"].as_f64().expect("speedup");
    assert!(whole > 1.15 && whole < a, "with the dense LM head: {whole}");
    // Usage errors are exit 2, before any work.
    let out = flexc(&["sim", model, "--engine", "fast"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// `sparsity-report --svg`: the model's name in the title, both axes
/// labelled with units, a legend, and each block's N:M under it.
#[test]
fn sparsity_report_svg_has_axes_legend_and_model() {
    let Some(_) = flexc_testsuite::cached("models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    let svg = std::env::temp_dir().join(format!("flexc-sr-{}.svg", std::process::id()));
    let out = flexc(&["sparsity-report", "smollm2-135m", "--pipeline", FLOW, "--svg", svg.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = std::fs::read_to_string(&svg).expect("the SVG is written");
    for want in ["smollm2-135m: flow-nm target 0.500", "decoder block (N:M chosen below)", "percent (%)", ">legend<", "sparsity chosen (%)", "outlier ratio (% of weights)", ">2:4<"] {
        assert!(s.contains(want), "the SVG lacks {want}");
    }
    let _ = std::fs::remove_file(&svg);
}
