//! The `flexc` binary as users meet it: every testsuite case through
//! `flexc opt` (valid cases round-trip byte for byte; invalid ones fail with
//! one located error line and exit 1), usage errors (exit 2), `--help` on
//! every verb, and output files that are never left half-written.

use flexc_testsuite::{cases_in, Case};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn flexc(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flexc"))
        .args(args)
        .env("FLEXC_CACHE_DIR", std::env::temp_dir().join("flexc-cli-test-empty-cache"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the flexc binary runs");
    if let Some(text) = stdin {
        // flexc may exit before reading (usage errors): a broken pipe here is fine.
        let _ = child.stdin.take().expect("stdin").write_all(text.as_bytes());
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("flexc finishes")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_no_panic(c: &str, out: &Output) {
    let err = text(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE") && out.status.code() != Some(3), "{c}: flexc crashed:\n{err}");
}

#[test]
fn valid_cases_round_trip_through_the_cli() {
    let cases: Vec<Case> = cases_in("").into_iter().filter(|c| c.errors.is_empty()).collect();
    assert!(cases.len() >= 40);
    for c in &cases {
        let out = flexc(&["opt", "-"], Some(&c.text));
        assert_no_panic(&c.name(), &out);
        assert_eq!(out.status.code(), Some(0), "{}: {}", c.name(), text(&out.stderr));
        assert_eq!(text(&out.stdout), c.canonical_text(), "{}: flexc opt does not reproduce the case", c.name());
    }
}

#[test]
fn invalid_cases_fail_cleanly_with_a_located_error() {
    let cases: Vec<Case> = cases_in("").into_iter().filter(|c| !c.errors.is_empty()).collect();
    assert!(cases.len() >= 20);
    for c in &cases {
        let out = flexc(&["opt", "-"], Some(&c.text));
        assert_no_panic(&c.name(), &out);
        assert_eq!(out.status.code(), Some(1), "{}: expected exit 1, stderr:\n{}", c.name(), text(&out.stderr));
        let err = text(&out.stderr);
        let first = err.lines().next().unwrap_or_default();
        let (line, want) = &c.errors[0];
        assert!(first.starts_with(&format!("<stdin>:{line}:")), "{}: first line does not locate the error at line {line}: {first}", c.name());
        assert!(first.contains("error: ") && first.contains(want.as_str()), "{}: {first}", c.name());
        assert!(out.stdout.is_empty(), "{}: output printed despite the error", c.name());
    }
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    for args in [
        vec!["opt", "-", "--passes", "no-such-pass"],
        vec!["opt", "-", "--passes", "dce{bogus=1}"],
        vec!["opt", "-", "--passes", "dce,,cse"],
        vec!["opt", "-", "--stop-after", "cse", "--passes", "dce"],
        vec!["frobnicate"],
        vec!["opt", "--no-such-flag"],
        vec!["pull", "no-such-model"],
        vec!["run", "-p", "x", "--temp", "nan"],
        vec!["run", "-p", "x", "--top-p", "2"],
        vec!["run", "-p", "x", "--min-p", "-0.5"],
        vec!["run", "-p", "x", "--repeat-penalty", "0"],
        vec!["run", "-p", "x", "--presence-penalty", "3"],
        vec!["run", "-p", "x", "-n", "-2"],
        vec!["run", "-p", "x", "--system", "s"],
        vec!["chat", "--frequency-penalty", "inf"],
        vec!["serve", "--top-p", "1.5"],
        vec!["serve", "--queue", "0"],
    ] {
        let out = flexc(&args, Some("func @f() {\n  return\n}\n"));
        assert_no_panic(&format!("{args:?}"), &out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("error"), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn every_verb_explains_itself() {
    let top = flexc(&["--help"], None);
    assert_eq!(top.status.code(), Some(0));
    let help = text(&top.stdout);
    let verbs: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A wrapped description continues on a more deeply indented line.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|v| v != "help")
        .collect();
    assert!(verbs.len() >= 8, "{help}");
    for v in &verbs {
        let out = flexc(&[v, "--help"], None);
        assert_eq!(out.status.code(), Some(0), "{v} --help");
        let h = text(&out.stdout);
        assert!(h.contains("Usage: flexc"), "{v}: {h}");
    }
}

#[test]
fn failed_runs_leave_no_output_file() {
    let dir = std::env::temp_dir().join(format!("flexc-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out_path = dir.join("out.fir");
    let bad = "func @f(%x: f32[2]) -> f32[2] {\n  %y = tensor.add %x, %x : f32[3]\n  return %y\n}\n";
    let out = flexc(&["opt", "-", "-o", out_path.to_str().expect("utf-8 path")], Some(bad));
    assert_eq!(out.status.code(), Some(1));
    let leftovers: Vec<_> = std::fs::read_dir(&dir).expect("read dir").flatten().map(|e| e.file_name()).collect();
    assert!(leftovers.is_empty(), "files left behind: {leftovers:?}");
    let good = "func @f(%x: f32[2]) -> f32[2] {\n  return %x\n}\n";
    let out = flexc(&["opt", "-", "-o", out_path.to_str().expect("utf-8 path")], Some(good));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&out_path).expect("output written"), good);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exec_runs_a_function() {
    let src = "func @add(%x: f32[3], %y: f32[3]) -> f32[3] {\n  %z = tensor.add %x, %y : f32[3]\n  return %z\n}\n";
    let out = flexc(&["exec", "-", "--input", "x=1,2,3", "--input", "y=10,20,30"], Some(src));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "result 0: f32[3] = [11, 22, 33]\n");
    let out = flexc(&["exec", "-", "--input", "x=1,2"], Some(src));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn imported_models_re_read_through_opt() {
    for name in ["models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf", "models/gemma3-270m/gemma-3-270m-q4_k_m.gguf", "models/minilm-l6/model.safetensors"] {
        let Some(path) = flexc_testsuite::cached(name) else { continue };
        let dir = std::env::temp_dir().join(format!("flexc-import-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let fir = dir.join("model.fir");
        let out = flexc(&["import", path.to_str().expect("utf-8 path"), "--ctx", "64", "-o", fir.to_str().expect("utf-8 path")], None);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        let printed = std::fs::read_to_string(&fir).expect("import wrote the file");
        let out = flexc(&["opt", fir.to_str().expect("utf-8 path"), "--pipeline", "cleanup"], None);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        let again = flexc(&["opt", fir.to_str().expect("utf-8 path")], None);
        assert_eq!(text(&again.stdout), printed, "{name}: the imported text does not round-trip");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A small dense linear layer as `.fir` text (weights from a fixed formula).
fn linear_fir(out: usize, inp: usize) -> String {
    let vals: Vec<String> = (0..out * inp).map(|i| format!("{:?}", ((i * 37 % 101) as f64 - 50.0) / 64.0)).collect();
    format!(
        "weight @w : f32[{out}, {inp}] = dense<[{}]>\n\nfunc @f(%x: f32[4, {inp}]) -> f32[4, {out}] {{\n  %w = tensor.weight @w : f32[{out}, {inp}]\n  %y = tensor.matmul %x, %w {{transpose_b}} : f32[4, {out}]\n  return %y\n}}\n",
        vals.join(", ")
    )
}

#[test]
fn flexcim_compile_and_simulate() {
    let dir = std::env::temp_dir().join(format!("flexc-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let fir = dir.join("layer.fir");
    std::fs::write(&fir, linear_fir(64, 64)).expect("write case");
    let fir = fir.to_str().expect("utf-8 path");
    let out = flexc(&["sim", fir, "--format", "json", "--baseline", "dense,fixed-2:4"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(json["functional_check"], "passed");
    // Both weight regimes by default, resident first, each with its baselines.
    let regimes = json["regimes"].as_array().expect("regimes");
    assert_eq!(regimes.iter().map(|r| r["regime"].as_str().unwrap_or("")).collect::<Vec<_>>(), ["resident", "streamed"]);
    for r in regimes {
        for key in ["cycles", "energy_pj", "macs", "functional_check", "baselines", "breakdown", "preloaded_cells"] {
            assert!(r.get(key).is_some(), "sim JSON lacks '{key}': {r}");
        }
        assert_eq!(r["baselines"].as_array().map(Vec::len), Some(2));
    }
    assert_eq!(regimes[0]["breakdown"]["cycles"]["weight load"], 0.0, "resident weights load nothing per run");
    let head = json["headline"].as_array().expect("headline");
    assert_eq!(head.len(), 2);
    let (b, f) = (&head[1]["baselines"][0], &head[1]["flexcim"]);
    let speedup = b["cycles"].as_f64().expect("cycles") / f["cycles"].as_f64().expect("cycles");
    assert!((b["speedup"].as_f64().expect("speedup") - speedup).abs() < 1e-9, "speedup = baseline / FlexCiM");
    let out = flexc(&["sim", fir, "--regime", "streamed", "--format", "json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let one: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(one["regimes"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["regimes"][0]["cycles"], regimes[1]["cycles"], "--regime streamed is the streamed half of both");
    let out = flexc(&["sim", fir, "--regime", "cached"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--regime"), "{}", text(&out.stderr));
    let stream = dir.join("layer.s");
    let out = flexc(&["compile", fir, "--target", "flexcim", "-o", stream.to_str().expect("utf-8 path")], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = flexc(&["sim", stream.to_str().expect("utf-8 path"), "--format", "json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // With the flexcim preset: select-gemm and tile-gemm choose, --explain says why.
    let out = flexc(&["compile", fir, "--target", "flexcim", "--pipeline", "flexcim", "--explain", "-o", stream.to_str().expect("utf-8 path")], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let why = text(&out.stderr);
    assert!(why.contains("select-gemm: target flexcim") && why.contains("-> dense") && why.contains("tile-gemm:"), "{why}");
    let out = flexc(&["sim", stream.to_str().expect("utf-8 path"), "--format", "json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::write(&stream, "layer name=y tokens=4\nbogus 1 2 3\n").expect("write bad stream");
    let out = flexc(&["sim", stream.to_str().expect("utf-8 path")], None);
    assert_no_panic("bad stream", &out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).lines().count() == 1, "one line: {}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn opt_explain_reports_the_selection() {
    let src = "func @f(%x: f32[seq, 64], %w: f32[8, 64]) -> f32[seq, 8] {\n  %y = tensor.matmul %x, %w {transpose_b} : f32[seq, 8]\n  return %y\n}\n";
    // Nothing to explain: a note, and the IR as usual.
    let out = flexc(&["opt", "-", "--passes", "cse", "--explain"], Some(src));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("nothing to explain") && text(&out.stdout).contains("tensor.matmul"));
    // --format only means something with --explain.
    let out = flexc(&["opt", "-", "--passes", "cse", "--format", "json"], Some(src));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // select-gemm: JSON on stdout when -o takes the IR.
    let dir = std::env::temp_dir().join(format!("flexc-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ir = dir.join("out.fir");
    let out = flexc(&["opt", "-", "--passes", "select-gemm", "--explain", "--format", "json", "-o", ir.to_str().unwrap()], Some(src));
    assert_no_panic("select-gemm --explain", &out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    // x·wᵀ with w a parameter (not a weight) has no kernel: reported, kept.
    assert_eq!(json["gemms"][0]["op"], "%y");
    assert_eq!(json["runner"]["stop_reason"], "saturated");
    let _ = std::fs::remove_dir_all(&dir);
}
