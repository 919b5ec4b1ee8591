//! The malformed-input corpus (`flexc_testsuite::malformed`: checked-in
//! text cases under `testsuite/malformed/` and binary cases corrupted from
//! tiny synthetic files) through the readers and through the `flexc`
//! binary. Every case must end in a clean error: the documented exit code
//! (1 bad input, 2 bad usage; never 3, never a signal), a first stderr line
//! naming the file (or, for pipeline text, the pipeline) and the cause, no
//! panic text, nothing on stdout, no output file left behind, and no hang.

use flexc::frontend::gguf::GgufFile;
use flexc::frontend::safetensors::SafetensorsFile;
use flexc_backends::flexcim::arch::{Arch, EnergyTable};
use flexc_backends::flexcim::isa::{decode, read_stream};
use flexc_backends::flexcim::sim::simulate;
use flexc_ir::text::parse_module;
use flexc_ir::verify::verify_module;
use flexc_passes::{ManagerOptions, PassManager};
use flexc_testsuite::malformed::{all_cases, Case, Expect, Kind};
use flexc_testsuite::synth;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one run of the binary did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn flexc(args: &[&str]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flexc"))
        .args(args)
        .env("FLEXC_CACHE_DIR", std::env::temp_dir().join("flexc-malformed-empty-cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the flexc binary runs");
    // Read the pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let to = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut s);
        s
    });
    let te = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut s);
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("flexc {args:?} hung (killed after 120 s)");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    Run { code: status.code(), stdout: text(to.join().expect("stdout thread")), stderr: text(te.join().expect("stderr thread")) }
}

/// A scratch folder per case (removed on success).
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("flexc-malformed-{}-{}", std::process::id(), tag.replace(['/', '.'], "_")));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Checks one run against what the case expects; `names` are strings of
/// which the first stderr line must contain one (the file, or the pipeline).
fn check(case: &Case, what: &str, run: &Run, expect: Expect, names: &[&str], out_dir: &Path) {
    let ctx = format!("{} ({what})", case.name);
    let err = &run.stderr;
    for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace", "internal error", "overflowed its stack", "memory allocation of"] {
        assert!(!err.contains(bad), "{ctx}: '{bad}' in stderr:\n{}", clip(err));
    }
    let code = run.code;
    match expect {
        Expect::Exit(c) => assert_eq!(code, Some(c), "{ctx}: exit code; stderr:\n{}", clip(err)),
        Expect::OkOrInput => assert!(matches!(code, Some(0 | 1)), "{ctx}: exit {code:?}; stderr:\n{}", clip(err)),
    }
    if code != Some(0) {
        let first = err.lines().next().unwrap_or_default();
        assert!(!first.trim().is_empty(), "{ctx}: no error message");
        assert!(names.iter().any(|n| first.contains(n)), "{ctx}: the first line names neither of {names:?}: {}", clip(first));
        // One line, plus at most a source excerpt and caret for located
        // `.fir` diagnostics and a few more verifier findings.
        let lines = err.lines().count();
        let limit = if matches!(case.kind, Kind::Fir | Kind::FirExec) { 31 } else { 1 };
        assert!(lines <= limit, "{ctx}: {lines} lines of stderr:\n{}", clip(err));
        assert!(err.lines().all(|l| l.chars().count() <= 600), "{ctx}: an overlong stderr line:\n{}", clip(err));
        assert!(run.stdout.is_empty(), "{ctx}: output printed despite the error: {}", clip(&run.stdout));
        let left: Vec<_> = std::fs::read_dir(out_dir).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "{ctx}: files left behind: {left:?}");
    }
    // A successful command's output is not the next command's leftover.
    for e in std::fs::read_dir(out_dir).into_iter().flatten().flatten() {
        let _ = std::fs::remove_file(e.path());
    }
}

fn clip(s: &str) -> String {
    if s.len() > 1500 { format!("{}…", &s[..s.floor_char_boundary(1500)]) } else { s.to_string() }
}

/// Library-level check: the reader (and what runs after it) returns an
/// error value for cases the corpus marks as rejected; `catch_unwind` turns
/// a panic into a test failure naming the case.
fn check_library(case: &Case, good_fir: &str) {
    let b = &case.bytes;
    let text = std::str::from_utf8(b).ok();
    let rejected = std::panic::catch_unwind(|| -> Option<bool> {
        Some(match case.kind {
            Kind::Fir => parse_module(text?).map_or(true, |m| verify_module(&m).is_err()),
            Kind::FirExec => {
                // These verify: running them is what must fail (too large, or unreadable weights).
                let m = parse_module(text?).expect("fir-exec cases parse");
                verify_module(&m).expect("fir-exec cases verify");
                let too_big = m.funcs.values().any(|f| flexc_ir::limits::check_memory(f, &|_| Some(8), flexc_ir::limits::DEFAULT_MAX_MEMORY).is_err());
                too_big || flexc_backends::reference::Interpreter::new(&m).run("f", Vec::new()).is_err()
            }
            Kind::Asm => read_stream(b).map_or(true, |p| simulate(&Arch::default_flexcim(), &p).is_err()),
            Kind::Pipeline => match PassManager::from_text(text?, ManagerOptions { verify_each: true, ..Default::default() }) {
                Err(_) => true,
                Ok(mut pm) => {
                    let mut m = parse_module(good_fir).expect("good module");
                    pm.run(&mut m, &mut |_, _| {}).is_err()
                }
            },
            Kind::Arch => Arch::from_toml("case.toml", text?).is_err(),
            Kind::Energy => EnergyTable::from_toml("case.toml", text?).is_err(),
            Kind::Gguf if case.reader_rejects => GgufFile::from_bytes_named("case.gguf", b.clone()).is_err(),
            Kind::Safetensors if case.reader_rejects => SafetensorsFile::from_bytes_named("case.safetensors", b.clone()).is_err(),
            Kind::FlexcimBin if case.reader_rejects => decode(b).is_err(),
            Kind::Artifact if case.reader_rejects => flexc::artifact::read::load("case.flexc", PathBuf::from("case.flexc"), b).is_err(),
            _ => return None,
        })
    });
    match rejected {
        Err(_) => panic!("{}: the reader panicked", case.name),
        Ok(Some(false)) => panic!("{}: the reader accepted a malformed input", case.name),
        Ok(_) => {}
    }
}

/// The module pipeline cases run on (a dense linear layer named like a block linear).
fn good_fir() -> String {
    synth::linear_fir(16, 64, 4).replace("@w ", "@blk.0.ffn_up.weight ").replace("@w :", "@blk.0.ffn_up.weight :")
}

fn run_case(case: &Case, shared: &Shared) {
    check_library(case, &shared.good_fir_text);
    let dir = scratch(&case.name);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).expect("out dir");
    let ext = match case.kind {
        Kind::Fir | Kind::FirExec => "fir",
        Kind::Asm => "s",
        Kind::Pipeline => "pipeline",
        Kind::Arch | Kind::Energy => "toml",
        Kind::Config => "json",
        Kind::TokenizerText => "txt",
        Kind::Gguf => "gguf",
        Kind::Safetensors => "safetensors",
        Kind::FlexcimBin => "bin",
        Kind::Artifact => "flexc",
        Kind::Onnx => "onnx",
    };
    let file = dir.join(format!("case.{ext}"));
    std::fs::write(&file, &case.bytes).expect("write case");
    let f = s(&file);
    let o = |name: &str| out.join(name);
    let good = s(&shared.good_fir);
    let e = case.expect;
    match case.kind {
        Kind::Fir => check(case, "opt", &flexc(&["opt", f, "-o", s(&o("out.fir"))]), e, &["case.fir"], &out),
        Kind::FirExec => {
            let args: &[&str] = if case.bytes.windows(3).any(|w| w == b"%x:") { &["exec", f, "--input", "x=1"] } else { &["exec", f] };
            check(case, "exec", &flexc(args), e, &["case.fir"], &out);
            // The FlexCiM front end reads weights only of matmuls: a lone bad weight may pass.
            let sim = if case.name.contains("weight-file") { Expect::OkOrInput } else { e };
            check(case, "sim", &flexc(&["sim", f, "--report", s(&o("r.html"))]), sim, &["case.fir"], &out);
            check(case, "compile", &flexc(&["compile", f, "--target", "flexcim", "-o", s(&o("out.s"))]), sim, &["case.fir"], &out);
        }
        Kind::Asm => check(case, "sim", &flexc(&["sim", f, "--report", s(&o("r.html"))]), e, &["case.s"], &out),
        Kind::Pipeline => {
            let text = String::from_utf8_lossy(&case.bytes).into_owned();
            check(case, "opt --pipeline", &flexc(&["opt", good, "--pipeline", &text, "-o", s(&o("out.fir"))]), e, &["pipeline", "pass", "option", "quantize", "flow-nm", "prune-nm"], &out);
        }
        Kind::Arch => check(case, "sim --arch", &flexc(&["sim", good, "--arch", f, "--report", s(&o("r.html"))]), e, &["case.toml"], &out),
        Kind::Energy => check(case, "sim --energy", &flexc(&["sim", good, "--energy", f, "--report", s(&o("r.html"))]), e, &["case.toml"], &out),
        Kind::Config => {
            let model = dir.join("model.safetensors");
            std::fs::write(&model, &shared.safetensors).expect("write model");
            std::fs::rename(&file, dir.join("config.json")).expect("config.json");
            check(case, "import", &flexc(&["import", s(&dir), "-o", s(&o("m.fir"))]), e, &["config.json", "model.safetensors"], &out);
        }
        Kind::TokenizerText => check(case, "tokenize", &flexc(&["tokenize", s(&shared.tiny_gguf), "-f", f]), e, &["case.txt"], &out),
        Kind::Gguf => {
            let import_only = case.name.starts_with("gguf/import-");
            let tok_only = case.name.starts_with("gguf/tokenizer-");
            let inspect = if case.reader_rejects { e } else { Expect::OkOrInput };
            check(case, "inspect", &flexc(&["inspect", f]), inspect, &["case.gguf"], &out);
            let import = if tok_only { Expect::OkOrInput } else { e };
            check(case, "import", &flexc(&["import", f, "--ctx", "16", "-o", s(&o("m.fir"))]), import, &["case.gguf"], &out);
            let tok = if import_only { Expect::OkOrInput } else { e };
            check(case, "tokenize", &flexc(&["tokenize", f, "-p", "Hello the world"]), tok, &["case.gguf"], &out);
        }
        Kind::Safetensors => {
            let model = dir.join("model.safetensors");
            std::fs::rename(&file, &model).expect("model.safetensors");
            std::fs::write(dir.join("config.json"), &shared.config).expect("config.json");
            let inspect = if case.reader_rejects { e } else { Expect::OkOrInput };
            check(case, "inspect", &flexc(&["inspect", s(&model)]), inspect, &["model.safetensors"], &out);
            check(case, "import", &flexc(&["import", s(&dir), "--ctx", "16", "-o", s(&o("m.fir"))]), e, &["model.safetensors", "config.json"], &out);
        }
        Kind::FlexcimBin => check(case, "sim", &flexc(&["sim", f, "--report", s(&o("r.html"))]), e, &["case.bin"], &out),
        Kind::Artifact => {
            // `tokenize` reads only the header, the table and the meta section;
            // `inspect` reads everything but does not build the tokenizer.
            let meta_ok = ["flexc/ir-", "flexc/prov-", "flexc/bitrot-ir", "flexc/bitrot-prov", "flexc/bitrot-weights", "flexc/missing-weights", "flexc/duplicate-ir", "flexc/lutidx-"].iter().any(|p| case.name.starts_with(p));
            let inspect = if case.reader_rejects { e } else { Expect::OkOrInput };
            check(case, "inspect", &flexc(&["inspect", f]), inspect, &["case.flexc"], &out);
            check(case, "tokenize", &flexc(&["tokenize", f, "-p", "Hello the world"]), if meta_ok { Expect::OkOrInput } else { e }, &["case.flexc"], &out);
            check(case, "run", &flexc(&["run", f, "-p", "Hello", "-n", "2", "--threads", "1"]), e, &["case.flexc"], &out);
        }
        Kind::Onnx => check(case, "import", &flexc(&["import", f, "-o", s(&o("out.fir"))]), e, &["case.onnx"], &out),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Valid inputs the cases are run next to.
struct Shared {
    dir: PathBuf,
    good_fir: PathBuf,
    good_fir_text: String,
    tiny_gguf: PathBuf,
    safetensors: Vec<u8>,
    config: String,
}

fn shared(tag: &str) -> Shared {
    let dir = scratch(&format!("shared-{tag}"));
    let good_fir_text = good_fir();
    let good = dir.join("good.fir");
    std::fs::write(&good, &good_fir_text).expect("write good.fir");
    let tiny = dir.join("tiny.gguf");
    std::fs::write(&tiny, synth::llama_gguf(synth::Vocab::Bpe)).expect("write tiny.gguf");
    let (safetensors, config) = synth::llama_safetensors();
    Shared { dir, good_fir: good, good_fir_text, tiny_gguf: tiny, safetensors, config }
}

/// Runs every case of `kinds`, collecting failures so one run reports them all.
fn run_kinds(tag: &str, kinds: &[Kind]) -> usize {
    let sh = shared(tag);
    let cases: Vec<Case> = all_cases().into_iter().filter(|c| kinds.contains(&c.kind)).collect();
    let mut failures = Vec::new();
    for c in &cases {
        if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case(c, &sh))) {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            failures.push(msg);
        }
    }
    let _ = std::fs::remove_dir_all(&sh.dir);
    assert!(failures.is_empty(), "{} of {} cases failed:\n\n{}", failures.len(), cases.len(), failures.join("\n\n"));
    cases.len()
}

#[test]
fn the_valid_neighbours_are_valid() {
    // The cases are only malformed if what they are run next to is fine.
    let sh = shared("valid");
    let good = s(&sh.good_fir);
    assert_eq!(flexc(&["opt", good, "--pipeline", "cleanup"]).code, Some(0));
    assert_eq!(flexc(&["sim", good]).code, Some(0));
    let r = flexc(&["tokenize", s(&sh.tiny_gguf), "-p", "Hello the world"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let r = flexc(&["import", s(&sh.tiny_gguf), "--ctx", "16"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let dir = sh.dir.join("st");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("model.safetensors"), &sh.safetensors).expect("model");
    std::fs::write(dir.join("config.json"), &sh.config).expect("config");
    let r = flexc(&["import", s(&dir), "--ctx", "16"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let onnx = sh.dir.join("tiny.onnx");
    std::fs::write(&onnx, flexc_testsuite::onnx_synth::bytes()).expect("onnx");
    let r = flexc(&["import", s(&onnx)]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let r = flexc(&["sim", s(&sh.good_fir), "--arch", "../backends/flexcim/arch.toml", "--energy", "../backends/flexcim/energy.toml"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let art = sh.dir.join("tiny.flexc");
    std::fs::write(&art, synth::llama_flexc()).expect("tiny.flexc");
    for args in [&["inspect", s(&art)][..], &["tokenize", s(&art), "-p", "Hello the world"], &["run", s(&art), "-p", "Hello", "-n", "2", "--threads", "1"]] {
        let r = flexc(args);
        assert_eq!(r.code, Some(0), "{args:?}: {}", r.stderr);
    }
    let _ = std::fs::remove_dir_all(&sh.dir);
}

#[test]
fn fuzzer_findings_round_trip() {
    // flexcim_bin: an empty `dsel` printed as `bus= s1= s2=` must parse back.
    use flexc_backends::flexcim::isa::{encode, parse_asm, print_asm, Instr, Program};
    let p = Program { instrs: vec![Instr::Dsel { row: 3, bus: Vec::new(), s1: Vec::new(), s2: Vec::new() }, Instr::Sync] };
    assert_eq!(parse_asm(&print_asm(&p)), Ok(p.clone()));
    assert_eq!(decode(&encode(&p)), Ok(p));
    // fir: a string holding NUL prints as `\0` and must parse back.
    let text = "weight @w : f32[2] = file<\"a\\0b\", 0, 8>\n";
    let m = parse_module(text).expect("parses");
    assert_eq!(flexc_ir::text::print_module(&m), text);
}

#[test]
fn corpus_has_at_least_100_cases_across_every_format() {
    let cases = all_cases();
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    for k in [Kind::Fir, Kind::FirExec, Kind::Asm, Kind::Pipeline, Kind::Arch, Kind::Energy, Kind::Config, Kind::TokenizerText, Kind::Gguf, Kind::Safetensors, Kind::FlexcimBin, Kind::Artifact, Kind::Onnx] {
        assert!(cases.iter().any(|c| c.kind == k), "no {k:?} case");
    }
}

#[test]
fn malformed_ir_text() {
    assert!(run_kinds("fir", &[Kind::Fir, Kind::FirExec]) >= 50);
}

#[test]
fn malformed_pipelines_and_configs() {
    assert!(run_kinds("cfg", &[Kind::Pipeline, Kind::Arch, Kind::Energy, Kind::Config, Kind::TokenizerText]) >= 60);
}

#[test]
fn malformed_flexcim_streams() {
    assert!(run_kinds("cim", &[Kind::Asm, Kind::FlexcimBin]) >= 40);
}

#[test]
fn malformed_gguf() {
    assert!(run_kinds("gguf", &[Kind::Gguf]) >= 50);
}

#[test]
fn malformed_artifacts() {
    assert!(run_kinds("flexc", &[Kind::Artifact]) >= 40);
}

#[test]
fn malformed_onnx() {
    assert!(run_kinds("onnx", &[Kind::Onnx]) >= 40);
}

#[test]
fn malformed_safetensors() {
    assert!(run_kinds("st", &[Kind::Safetensors]) >= 30);
}
