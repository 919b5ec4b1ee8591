//! `flexc bench kernels` as users meet it, on tiny shapes with a tiny time
//! budget (no speed is asserted: the rows' structure and the consistency of
//! their ratios): the JSON array carries every field the issue asks for, for
//! every primitive, and each speedup is the quotient of its paired rows'
//! seconds; the text table and the usage errors.

use std::process::{Command, Output};

use serde_json::Value;

fn flexc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flexc")).args(args).output().expect("the flexc binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn num(r: &Value, f: &str) -> f64 {
    r[f].as_f64().unwrap_or_else(|| panic!("{f} is not a number in {r}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

#[test]
fn json_rows_have_every_field_and_ratios_match_their_pairs() {
    // 32x256: every baseline exists; 16x576: k is not a multiple of 256
    // (Q4_0 stands in for Q2_K/TQ2_0) nor of 128 (group 64).
    let out = flexc(&["bench", "kernels", "--shapes", "32x256,16x576", "--budget-ms", "1", "--bandwidth", "10", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rows: Vec<Value> = serde_json::from_slice::<Value>(&out.stdout).expect("stdout is JSON").as_array().expect("a JSON array").clone();
    let threads: Vec<u64> = (1..=std::thread::available_parallelism().map_or(1, |n| n.get()).min(2) as u64).collect();
    for (m, k) in [(32u64, 256u64), (16, 576)] {
        for &t in &threads {
            let of = |p: &str| rows.iter().filter(|r| r["m"] == m && r["k"] == k && r["threads"] == t && r["primitive"] == p).count();
            // lut 1-4 + ternary, shiftadd 1-4, sparse 2:4 4:8 2:8, dense f32, dequant q4_0 q8_0 (+ q2_K tq2_0 at k = 256).
            assert_eq!([of("lut"), of("shiftadd"), of("sparse"), of("dense"), of("dequant")], [5, 4, 3, 1, if k == 256 { 4 } else { 2 }], "{m}x{k} threads {t}");
        }
    }
    for r in &rows {
        let p = r["primitive"].as_str().expect("primitive");
        assert!(["lut", "shiftadd", "sparse", "dequant", "dense"].contains(&p), "{r}");
        for f in ["bits", "m", "k", "threads", "seconds", "weight_gb_s", "roofline_fraction"] {
            assert!(num(r, f).is_finite() && num(r, f) > 0.0, "{f} in {r}");
        }
        assert!(close(num(r, "roofline_fraction"), num(r, "weight_gb_s") / 10.0), "{r}");
        assert!(close(num(r, "weight_gb_s"), num(r, "weight_bytes") / num(r, "seconds") / 1e9), "{r}");
        assert!(r.get("speedup_vs_dequant").is_some(), "{r}");
        if p == "sparse" {
            assert_eq!(num(r, "bits"), num(r, "bits_per_weight"), "{r}");
        }
        if p == "dequant" {
            assert!(r["speedup_vs_dequant"].is_null() && r["baseline"].is_null(), "{r}");
            continue;
        }
        // Every other row has a baseline measured in the same run, and its
        // speedup is that row's seconds over this row's.
        let base = r["baseline"].as_str().unwrap_or_else(|| panic!("no baseline: {r}"));
        let want = match (p, r["scheme"].as_str().expect("scheme")) {
            ("sparse" | "dense", _) => "q8_0",
            (_, _) if r["k"] != 256 => "q4_0",
            (_, "gq4" | "bcq4-apot") => "q4_0",
            (_, "gq2" | "gq3" | "bcq2-apot" | "bcq3-apot") => "q2_K",
            _ => "tq2_0",
        };
        assert_eq!(base, want, "{r}");
        let pair = rows
            .iter()
            .find(|b| b["primitive"] == "dequant" && b["scheme"] == base && b["m"] == r["m"] && b["k"] == r["k"] && b["threads"] == r["threads"])
            .unwrap_or_else(|| panic!("baseline row {base} missing for {r}"));
        assert!(close(num(r, "speedup_vs_dequant"), num(pair, "seconds") / num(r, "seconds")), "{r} vs {pair}");
        if p == "lut" {
            let one = rows.iter().find(|b| b["scheme"] == "gq1" && b["m"] == r["m"] && b["k"] == r["k"] && b["threads"] == r["threads"]).expect("gq1 row");
            assert!(close(num(r, "t_over_t1"), num(r, "seconds") / num(one, "seconds")), "{r}");
        }
    }
}

#[test]
fn text_table_groups_by_shape_and_measures_only_what_is_asked() {
    let out = flexc(&["bench", "kernels", "--shapes", "32x256", "--threads", "1", "--budget-ms", "1", "--only", "lut"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(t.contains("roofline 1 thread(s)") && t.contains("measured"), "{t}");
    assert!(t.contains("32x256 (m 32 x k 256, batch 1)") && t.contains("t/t1"), "{t}");
    // The LUT rows and the baselines they need (Q4_0, Q2_K, TQ2_0), nothing else.
    let prims: Vec<&str> = t.lines().filter_map(|l| l.split_whitespace().nth(1)).filter(|w| ["lut", "shiftadd", "sparse", "dequant", "dense"].contains(w)).collect();
    assert_eq!(prims.iter().filter(|p| **p == "lut").count(), 5, "{t}");
    assert_eq!(prims.iter().filter(|p| **p == "dequant").count(), 3, "{t}");
    assert_eq!(prims.len(), 8, "{t}");
    assert!(text(&out.stderr).contains("load average before"), "{}", text(&out.stderr));
}

#[test]
fn bad_options_are_usage_errors() {
    for args in [["--only", "lut,bogus"], ["--shapes", "12x"], ["--shapes", "llama7b,0x8"], ["--budget-ms", "0"], ["--bandwidth", "0"], ["--bandwidth", "nan"]] {
        let out = flexc(&[&["bench", "kernels"][..], &args[..]].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.starts_with("error: ") && err.lines().count() == 1 && out.stdout.is_empty(), "{args:?}: {err}");
    }
}
