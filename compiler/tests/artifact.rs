//! `.flexc` artifacts (`flexc compile --target cpu`) against the pipeline
//! they were compiled with, run from the GGUF: the same logits bit for bit
//! at every greedy step, the same `run` text, the same `perplexity`, the same
//! token ids, with no pass run at load. On the tiny synthetic llama always;
//! on SmolLM2-135M and Gemma 3 270M from the flexc cache (skipped with a note
//! when absent, a failure when `CI` is set) with no pipeline, the `cpu`
//! preset, and a 4-bit RTN quantizing pipeline.

use flexc::cli::run::prepare;
use flexc::eval::{perplexity, PplConfig};
use flexc::generate::cpu::CpuModel;
use flexc::generate::sampler::{Sampler, SamplerConfig};
use flexc::generate::{prompt_ids, Decoding, LanguageModel, Session};
use flexc_backends::cpu::runtime::default_threads;
use flexc_testsuite::synth;
use std::path::{Path, PathBuf};
use std::process::Command;

const QUANT: &str = "quantize{bits=4,group=64,method=rtn},select-gemm{target=cpu},tile-gemm{target=cpu}";

fn flexc(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_flexc")).args(args).output().expect("the flexc binary runs");
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = flexc(args);
    assert_eq!(code, 0, "flexc {args:?} failed: {err}");
    out
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("flexc-artifact-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

use flexc_testsuite::cached;

/// Greedy decoding from both modules in lock step: logits must be equal bit for bit.
fn same_logits(a: &flexc_ir::Module, b: &flexc_ir::Module, prompt: &[u32], steps: usize) {
    let (mut ma, mut mb) = (CpuModel::new(a, 2).expect("model from the GGUF"), CpuModel::new(b, 2).expect("model from the artifact"));
    let (mut la, mut lb) = (ma.forward(prompt, 0, 1).expect("prefill"), mb.forward(prompt, 0, 1).expect("prefill"));
    let mut pos = prompt.len();
    for step in 0..steps {
        assert_eq!(la.len(), lb.len());
        let diff = la.iter().zip(&lb).position(|(x, y)| x.to_bits() != y.to_bits());
        assert!(diff.is_none(), "step {step}: logit {diff:?} differs");
        let next = la.iter().enumerate().fold((0, f32::NEG_INFINITY), |m, (i, &x)| if x > m.1 { (i, x) } else { m }).0 as u32;
        la = ma.forward(&[next], pos, 1).expect("decode");
        lb = mb.forward(&[next], pos, 1).expect("decode");
        pos += 1;
    }
}

/// Runs `pipeline` on `model` once (the GGUF path), writes the artifact
/// (through the binary when `cli_compile`, else with the same library call
/// from the module just compiled, which saves a second pipeline run), and
/// checks every consumer of the artifact against the GGUF path in-process.
fn check(model: &Path, pipeline: &str, text: &Path, dir: &Path, cli_compile: bool) {
    let art = dir.join(format!("m-{}.flexc", pipeline.len()));
    let (m, a, t) = (s(model), s(&art), s(text));
    let from_gguf = prepare(Some(m), 128, Some(pipeline), None).expect("the GGUF path");
    if cli_compile {
        ok(&["compile", m, "--target", "cpu", "--pipeline", pipeline, "--ctx", "128", "-o", a]);
    } else {
        let g = flexc::frontend::gguf::GgufFile::open(model).expect("gguf");
        let rec = flexc::artifact::FileRecord { path: m.into(), bytes: 0, sha256: "0".repeat(64) };
        let prov = flexc::artifact::Provenance { flexc_version: "test".into(), target: "cpu".into(), source: rec, pipeline: pipeline.into(), calibration: None, calibration_source: None, cost_table: "test".into(), ctx: 128, parameters: 0, remarks: Vec::new() };
        let (records, blob) = flexc_backends::cpu::prepack::pack_module(&from_gguf.module, "forward", flexc::artifact::WEIGHT_ALIGN).expect("packs");
        let bytes = flexc::artifact::write::to_bytes(a, &from_gguf.module, &g.metadata, &prov, Some((&records, &blob))).expect("serialises");
        std::fs::write(&art, bytes).expect("write the artifact");
    }
    let from_art = prepare(Some(a), 128, None, None).expect("the artifact path");
    assert_eq!(from_art.passes, std::time::Duration::ZERO, "loading an artifact runs no pass");
    if pipeline.contains("quantize") {
        // The LUT streams were packed at compile time: loading reads them in
        // place, and the outputs below must still equal the GGUF path's.
        assert!(from_art.prepacked.as_ref().is_some_and(|p| !p.is_empty()), "{pipeline}: the artifact stores its packed LUT streams");
    }
    assert_eq!(from_art.pipeline, pipeline);
    let prompt = from_gguf.tok.encode("The capital of France is", from_gguf.tok.add_bos_by_default());
    assert_eq!(prompt, from_art.tok.encode("The capital of France is", from_art.tok.add_bos_by_default()));
    same_logits(&from_gguf.module, &from_art.module, &prompt, 8);
    drop(from_art);
    // The verbs on the artifact, through the binary, against the GGUF path's module in-process.
    let cpu = CpuModel::new(&from_gguf.module, default_threads()).expect("model from the GGUF");
    let mut session = Session::new(Box::new(cpu));
    let cfg = SamplerConfig { temperature: 0.0, top_k: 40, top_p: 0.95, seed: 42, ..SamplerConfig::default() };
    let mut dec = Decoding::new(Sampler::new(cfg), Vec::new(), Some(8));
    let mut expected = String::new();
    session.generate(&from_gguf.tok, &prompt_ids(&from_gguf.tok, "Once upon a time"), &mut dec, &mut |p| expected.push_str(p), &|| false).expect("generate");
    let got = ok(&["run", a, "-p", "Once upon a time", "-n", "8"]);
    assert_eq!(got, format!("{expected}\n"), "{pipeline}: run text");
    let mut cpu = CpuModel::new(&from_gguf.module, default_threads()).expect("model from the GGUF");
    let book = std::fs::read_to_string(text).expect("text");
    let bos = if from_gguf.tok.add_bos_by_default() { from_gguf.tok.bos() } else { None };
    let tokens = from_gguf.tok.encode(&book, bos.is_some());
    let r = perplexity(&mut cpu, &tokens, bos, &PplConfig { ctx: 64, max_chunks: 2 }, &mut |_, _, _| {}).expect("perplexity");
    let got = ok(&["perplexity", a, "-f", t, "--ctx", "64", "--chunks", "2", "--format", "json"]);
    // The CLI's report is the result plus the model's size: the result's fields must be identical.
    let got: serde_json::Value = serde_json::from_str(got.trim()).expect("perplexity json");
    let want = serde_json::to_value(&r).expect("json");
    for (key, value) in want.as_object().expect("an object") {
        assert_eq!(&got[key], value, "{pipeline}: perplexity field {key}");
    }
    let ids: Vec<String> = from_gguf.tok.encode("Hello world, naïve 中文", false).iter().map(ToString::to_string).collect();
    assert_eq!(ok(&["tokenize", a, "-p", "Hello world, naïve 中文"]).trim(), ids.join(","));
    let inspect = ok(&["inspect", a, "--format", "json"]);
    let j: serde_json::Value = serde_json::from_str(&inspect).expect("inspect json");
    assert_eq!(j["provenance"]["pipeline"], pipeline);
    assert_eq!(j["provenance"]["source"]["sha256"].as_str().map(str::len), Some(64));
    if pipeline.contains("quantize") {
        // #gq has no ggml type: GGUF export refuses it, naming the tensor and the encoding.
        let g = flexc::frontend::gguf::GgufFile::open(model).expect("gguf");
        let e = flexc::frontend::gguf::export::export(&from_gguf.module, &g.metadata).expect_err("#gq is not ggml");
        assert!(e.contains("@blk.") && e.contains("#gq<"), "{e}");
    } else {
        // Exported from the artifact, the GGUF holds the source's tensors byte for byte.
        let out = dir.join("export.gguf");
        ok(&["export", a, "-o", s(&out)]);
        same_tensors(model, &out);
        let again = prepare(Some(s(&out)), 128, Some(pipeline), None).expect("the export imports");
        same_logits(&from_gguf.module, &again.module, &prompt, 2);
        let _ = std::fs::remove_file(&out);
    }
    let _ = std::fs::remove_file(&art);
}

/// Two GGUF files hold the same metadata and the same tensors (name, type, shape, bytes).
fn same_tensors(a: &Path, b: &Path) {
    let (ga, gb) = (flexc::frontend::gguf::GgufFile::open(a).expect("a"), flexc::frontend::gguf::GgufFile::open(b).expect("b"));
    assert_eq!(ga.metadata.len(), gb.metadata.len());
    assert_eq!(ga.tensors.len(), gb.tensors.len());
    for t in &ga.tensors {
        let u = gb.tensor(&t.name).unwrap_or_else(|| panic!("{} missing from the export", t.name));
        assert_eq!((t.ggml_type, &t.dims), (u.ggml_type, &u.dims), "{}", t.name);
        assert!(ga.tensor_data(t) == gb.tensor_data(u), "{}: bytes differ", t.name);
    }
}

fn text_excerpt(dir: &Path) -> Option<PathBuf> {
    let book = cached("texts/pride_and_prejudice.txt")?;
    let text = std::fs::read_to_string(book).expect("the text reads");
    let p = dir.join("excerpt.txt");
    std::fs::write(&p, &text[..text.floor_char_boundary(8000)]).expect("write excerpt");
    Some(p)
}

#[test]
fn tiny_llama_artifact_matches_its_gguf() {
    let dir = scratch("tiny");
    let gguf = dir.join("tiny.gguf");
    std::fs::write(&gguf, synth::llama_gguf(synth::Vocab::Bpe)).expect("write tiny.gguf");
    let art = dir.join("tiny.flexc");
    let (g, a) = (s(&gguf), s(&art));
    for pipeline in ["none", "cpu"] {
        ok(&["compile", g, "--target", "cpu", "--pipeline", pipeline, "--ctx", "32", "-o", a]);
        let run = |model: &str, extra: &[&str]| ok(&[&["run", model, "-p", "Hello the world", "-n", "4", "--ctx", "32", "--threads", "1"][..], extra].concat());
        assert_eq!(run(a, &[]), run(g, &["--pipeline", pipeline]), "{pipeline}");
        let from_gguf = prepare(Some(g), 32, Some(pipeline), None).expect("the GGUF path");
        let from_art = prepare(Some(a), 32, None, None).expect("the artifact path");
        same_logits(&from_gguf.module, &from_art.module, &from_gguf.tok.encode("Hello the world", true), 4);
        let out = dir.join("export.gguf");
        ok(&["export", a, "-o", s(&out)]);
        same_tensors(&gguf, &out);
    }
    // The pipeline is fixed at compile time.
    let (code, _, err) = flexc(&["run", a, "--pipeline", "cpu", "-p", "x"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tiny.flexc") && err.contains("--pipeline"), "{err}");
    // Compiling an artifact again is refused; an unknown target is a usage error.
    assert_eq!(flexc(&["compile", a, "--target", "cpu", "-o", s(&dir.join("again.flexc"))]).0, 2);
    assert_eq!(flexc(&["compile", g, "--target", "gpu", "-o", s(&dir.join("x.flexc"))]).0, 2);
    // Weights are aligned for in-place use.
    let loaded = flexc::artifact::open(&art).expect("opens");
    for (_, w) in loaded.module.weights.iter() {
        if let flexc_ir::weights::WeightSource::File { offset, path, .. } = &w.source {
            assert_eq!(offset % 64, 0, "@{} at {offset}", w.name);
            assert_eq!(path, &std::fs::canonicalize(&art).expect("canonical"));
        }
    }
    // An artifact in sim: its module as compiled, no pass.
    let (code, _, err) = flexc(&["sim", a, "--rows", "4", "--engine", "analytical"]);
    assert_eq!(code, 0, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn real(rel: &str, pipelines: &[&str]) {
    let Some(model) = cached(rel) else { return };
    let dir = scratch(rel.rsplit('/').next().unwrap_or("model"));
    let Some(text) = text_excerpt(&dir) else { return };
    for (i, p) in pipelines.iter().enumerate() {
        check(&model, p, &text, &dir, i == 0);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn smollm2_artifact_is_bit_identical() {
    real("models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf", &["none", QUANT]);
}

#[test]
fn gemma3_artifact_is_bit_identical() {
    real("models/gemma3-270m/gemma-3-270m-q4_k_m.gguf", &["cpu"]);
}
