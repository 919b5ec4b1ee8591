//! `rotate` leaves a model's outputs unchanged: a tiny synthetic 3-block
//! llama (tied head, width 8) gives the same logits before and after the
//! residual stream is turned, on the reference interpreter and on the CPU
//! JIT, for both kinds of matrix; what it cannot rotate exactly it refuses
//! with an error naming the op.

use flexc::cli::import::import_model;
use flexc::frontend::decoder::ImportOptions;
use flexc::generate::cpu::CpuModel;
use flexc::generate::reference::ReferenceModel;
use flexc::generate::LanguageModel;
use flexc_ir::ops::AttrLit;
use flexc_ir::{attrs, Module, OpAttrs};
use flexc_passes::{ManagerOptions, PassManager};
use flexc_testsuite::synth;

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tiny(tag: &str) -> (Module, TempDir) {
    let dir = std::env::temp_dir().join(format!("flexc-rotate-test-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny3.gguf");
    std::fs::write(&path, synth::llama_gguf_blocks(synth::Vocab::Bpe, 3)).unwrap();
    (import_model(&path, &ImportOptions { ctx: 16, ..Default::default() }).expect("the tiny model imports"), TempDir(dir))
}

fn run(m: &mut Module, pipeline: &str) -> Result<(), String> {
    let mut pm = PassManager::from_text(pipeline, ManagerOptions { verify_each: true, ..Default::default() }).map_err(|e| format!("{e:?}"))?;
    pm.run(m, &mut |_, _| {}).map(|_| ()).map_err(|e| e.to_string())
}

/// Logits of a prompt and three greedy steps.
fn logits(model: &mut dyn LanguageModel) -> Vec<Vec<f32>> {
    let prompt = [3u32, 17, 40, 9, 111];
    let mut out = vec![model.forward(&prompt, 0, 1).expect("prefill")];
    for step in 0..3 {
        let last = out.last().unwrap();
        let next = last.iter().enumerate().fold((0, f32::NEG_INFINITY), |m, (i, &x)| if x > m.1 { (i, x) } else { m }).0 as u32;
        out.push(model.forward(&[next], prompt.len() + step, 1).expect("decode"));
    }
    out
}

fn assert_close(a: &[Vec<f32>], b: &[Vec<f32>], what: &str) {
    for (step, (x, y)) in a.iter().zip(b).enumerate() {
        let scale = x.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
        let worst = x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-4 * scale, "{what}: step {step}: logits differ by {worst} (scale {scale})");
    }
}

#[test]
fn rotation_leaves_the_logits_unchanged() {
    let (plain, _d) = tiny("same");
    let want_ref = logits(&mut ReferenceModel::new(&plain).unwrap());
    let want_cpu = logits(&mut CpuModel::new(&plain, 1).unwrap());
    for pipeline in ["rotate", "rotate{kind=random,seed=3}", "rotate{seed=11}"] {
        let mut m = plain.clone();
        run(&mut m, pipeline).unwrap_or_else(|e| panic!("{pipeline}: {e}"));
        assert_close(&want_ref, &logits(&mut ReferenceModel::new(&m).unwrap()), &format!("{pipeline}, reference"));
        assert_close(&want_cpu, &logits(&mut CpuModel::new(&m, 1).unwrap()), &format!("{pipeline}, cpu"));
        // The tied head got its own copy; the parameter count is the tied model's.
        assert!(m.weights.lookup("output.weight").is_some(), "{pipeline}: no untied head");
        assert_eq!(m.parameter_count(), plain.parameter_count(), "{pipeline}");
        assert!(matches!(m.meta("rotated"), Some(AttrLit::Str(_))), "{pipeline}");
    }
}

#[test]
fn rotation_changes_the_weights_and_folds_the_norms() {
    let (plain, _d) = tiny("fold");
    let mut m = plain.clone();
    run(&mut m, "rotate").unwrap();
    let w = |m: &Module, n: &str| flexc_passes::sparsity::weight_f32(m, n).unwrap();
    assert!(w(&m, "blk.1.ffn_norm.weight").iter().all(|&g| g == 1.0));
    assert!(w(&m, "output_norm.weight").iter().all(|&g| g == 1.0));
    for n in ["blk.0.attn_q.weight", "blk.2.ffn_down.weight", "token_embd.weight"] {
        let (a, b) = (w(&plain, n), w(&m, n));
        assert_ne!(a, b, "{n} unchanged");
        // Orthogonal turns keep the Frobenius norm of writers and the table.
        if !n.contains("attn_q") {
            let (na, nb) = (a.iter().map(|x| x * x).sum::<f32>(), b.iter().map(|x| x * x).sum::<f32>());
            assert!((na - nb).abs() <= 1e-4 * na, "{n}: ‖W‖² {na} → {nb}");
        }
    }
}

#[test]
fn what_cannot_be_rotated_is_refused_with_the_reason() {
    let (plain, _d) = tiny("refuse");
    let mut twice = plain.clone();
    run(&mut twice, "rotate").unwrap();
    let e = run(&mut twice, "rotate").unwrap_err();
    assert!(e.contains("already rotated"), "{e}");
    let e = run(&mut plain.clone(), "rotate{kind=diagonal}").unwrap_err();
    assert!(e.contains("kind must be hadamard or random"), "{e}");
    let e = run(&mut plain.clone(), "rotate{seed=-1}").unwrap_err();
    assert!(e.contains("seed must be non-negative"), "{e}");
    // An op on the stream that does not commute with Q (here a SiLU right
    // after the gather, as Gemma's scale or a post-norm would be) is refused.
    let mut odd = plain.clone();
    let fid = odd.func("forward").unwrap();
    let f = &mut odd.funcs[fid];
    let at = f.layout.iter().position(|&o| matches!(f.dfg.ops[o].attrs, OpAttrs::Gather(_))).unwrap();
    let g = f.dfg.ops[f.layout[at]].result;
    let later: Vec<_> = f.layout[at + 1..].to_vec();
    let s = f.insert_at(at + 1, OpAttrs::Silu(attrs::Silu {}), &[g], None).unwrap();
    f.dfg.replace_uses_in(&later, g, s);
    let e = run(&mut odd, "rotate").unwrap_err();
    assert!(e.contains("the residual stream feeds tensor.silu"), "{e}");
}
