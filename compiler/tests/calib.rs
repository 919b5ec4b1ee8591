//! Calibration on a tiny synthetic 3-block llama: the JIT engine records the
//! same statistics as the reference interpreter; sequential pruning differs
//! from one-shot pruning, equals a hand-driven block-by-block run, and is
//! reproduced from its statistics file by the ordinary pipeline.

use flexc::calib::sequential::prune_sequential;
use flexc::calib::{calibrate, from_json, to_json, CalibOptions};
use flexc::generate::Backend;
use flexc::cli::import::import_model;
use flexc::frontend::decoder::ImportOptions;
use flexc_ir::calib::Calibration;
use flexc_ir::Module;
use flexc_passes::sparsity::{linears, weight_f32};
use flexc_passes::{ManagerOptions, PassManager};
use flexc_testsuite::synth;
use std::collections::BTreeMap;
use std::sync::Arc;

const BLOCKS: usize = 3;
const SEQLEN: usize = 12;

/// Removes the model's folder when dropped (weights are read lazily from the file).
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tiny() -> (Module, TempDir) {
    let dir = std::env::temp_dir().join(format!("flexc-calib-test-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny3.gguf");
    std::fs::write(&path, synth::llama_gguf_blocks(synth::Vocab::Bpe, BLOCKS)).unwrap();
    let m = import_model(&path, &ImportOptions { ctx: SEQLEN, ..Default::default() }).expect("the tiny model imports");
    (m, TempDir(dir))
}

fn windows() -> Vec<Vec<u32>> {
    let mut rng = flexc_backends::xorshift::XorShift(7);
    (0..5).map(|_| (0..SEQLEN).map(|_| rng.below(200) as u32 + 1).collect()).collect()
}

fn stats(m: &Module, engine: Backend, blocks: Option<Vec<usize>>) -> Calibration {
    let o = CalibOptions { engine, threads: 2, blocks, hessian: false };
    calibrate(m, &windows(), "test".into(), &o, &mut |_| {}).expect("calibrates")
}

fn run(m: &mut Module, pipeline: &str) {
    let mut pm = PassManager::from_text(pipeline, ManagerOptions { verify_each: true, ..Default::default() }).unwrap();
    pm.run(m, &mut |_, _| {}).expect("pipeline runs");
}

fn block_weights(m: &Module) -> BTreeMap<String, Vec<f32>> {
    linears(m).into_iter().filter(|l| l.block.is_some()).map(|l| (l.weight.clone(), weight_f32(m, &l.weight).unwrap())).collect()
}

#[test]
fn jit_statistics_equal_the_reference_interpreter() {
    let (m, _dir) = tiny();
    let jit = stats(&m, Backend::Cpu, None);
    let reference = stats(&m, Backend::Reference, None);
    assert_eq!(jit.layers.len(), BLOCKS * 7 + 1, "every block linear and the LM head are recorded");
    assert_eq!(jit.layers.keys().collect::<Vec<_>>(), reference.layers.keys().collect::<Vec<_>>());
    for (name, j) in &jit.layers {
        let r = &reference.layers[name];
        assert_eq!(j.nsamples, 5);
        assert_eq!(j.nsamples, r.nsamples);
        assert_eq!(j.scaler_row.len(), r.scaler_row.len(), "{name}");
        for (a, b) in j.scaler_row.iter().zip(&r.scaler_row) {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1e-3), "{name}: jit {a} vs reference {b}");
        }
    }
    // Only block 1 asked for: a truncated forward, the same numbers.
    let one = stats(&m, Backend::Cpu, Some(vec![1]));
    assert_eq!(one.layers.len(), 7);
    for (name, s) in &one.layers {
        assert!(name.starts_with("blk.1."));
        assert_eq!(s, &jit.layers[name]);
    }
}

#[test]
fn sequential_pruning_is_reproducible_and_differs_from_one_shot() {
    let (m, _dir) = tiny();
    let pipeline = "flow-nm{method=uniform,pattern=2:4,dense-ends=false},prune-nm";
    let dense = stats(&m, Backend::Cpu, None);
    let (pruned, seq) = prune_sequential(&m, &dense, pipeline, &windows(), &CalibOptions { threads: 2, ..Default::default() }, &mut |_, _| {}).expect("sequential");
    assert_eq!(seq.layers, dense.layers);
    assert_eq!(seq.sequential.len(), dense.layers.keys().filter(|k| k.starts_with("blk.")).count());
    for (name, s) in &seq.sequential {
        // Block 0 sees the dense model; later blocks see pruned inputs.
        assert_eq!(s == &dense.layers[name], name.starts_with("blk.0."), "{name}");
    }

    // By hand: plan once, then calibrate block k on the pruned model and prune it.
    let mut hand = m.clone();
    hand.calibration = Some(Arc::new(dense.clone()));
    run(&mut hand, "flow-nm{method=uniform,pattern=2:4,dense-ends=false}");
    let mut acc = Calibration { layers: dense.layers.clone(), ..Default::default() };
    for k in 0..BLOCKS {
        acc.sequential.extend(stats(&hand, Backend::Cpu, Some(vec![k])).layers);
        hand.calibration = Some(Arc::new(acc.clone()));
        run(&mut hand, &format!("prune-nm{{block={k}}}"));
    }
    assert_eq!(block_weights(&hand), block_weights(&pruned));
    let (by_reference, seq_ref) = prune_sequential(&m, &dense, pipeline, &windows(), &CalibOptions { engine: Backend::Reference, threads: 1, blocks: None, hessian: false }, &mut |_, _| {}).expect("sequential");
    assert_eq!(block_weights(&by_reference), block_weights(&pruned), "the reference engine's sequential run prunes the same way");
    assert_eq!(seq_ref.sequential.keys().collect::<Vec<_>>(), seq.sequential.keys().collect::<Vec<_>>());

    // The file reproduces it through the ordinary pipeline.
    let mut again = m.clone();
    again.calibration = Some(Arc::new(from_json(&to_json(&seq).unwrap()).unwrap()));
    run(&mut again, pipeline);
    assert_eq!(block_weights(&again), block_weights(&pruned));

    // One-shot pruning (dense statistics everywhere) gives another model.
    let mut oneshot = m.clone();
    oneshot.calibration = Some(Arc::new(dense));
    run(&mut oneshot, pipeline);
    assert_ne!(block_weights(&oneshot), block_weights(&pruned));
    let w0 = |m: &Module| block_weights(m).into_iter().filter(|(n, _)| n.starts_with("blk.0.")).collect::<Vec<_>>();
    assert_eq!(w0(&oneshot), w0(&pruned), "block 0 is pruned the same way in both");
}

#[test]
fn hessians_match_the_reference_and_drive_shiftadd_optq() {
    let (m, dir) = tiny();
    let hess = |engine| calibrate(&m, &windows(), "test".into(), &CalibOptions { engine, threads: 2, blocks: None, hessian: true }, &mut |_| {}).expect("calibrates");
    let jit = hess(Backend::Cpu);
    let reference = hess(Backend::Reference);
    let plain = stats(&m, Backend::Cpu, None);
    for (name, j) in &jit.layers {
        assert_eq!(j.scaler_row, plain.layers[name].scaler_row, "{name}: recording Hessians leaves scaler_row alone");
        let (h, r) = (j.hessian.as_ref().expect("a Hessian"), reference.layers[name].hessian.as_ref().expect("a Hessian"));
        let c = j.scaler_row.len();
        assert_eq!(h.len(), c * c, "{name}");
        let scale = r.iter().fold(0f32, |a, v| a.max(v.abs()));
        for (a, b) in h.iter().zip(r) {
            assert!((a - b).abs() <= 1e-4 * scale, "{name}: jit {a} vs reference {b}");
        }
        // The diagonal is twice the mean squared norm (scaler_row).
        for (i, s) in j.scaler_row.iter().enumerate() {
            assert!((h[i * c + i] - 2.0 * s).abs() <= 1e-4 * s.abs().max(1e-3), "{name}: H[{i},{i}]");
        }
    }

    // Through the statistics file and its sidecar.
    let path = dir.0.join("h.json");
    flexc::calib::save(&path, &jit).unwrap();
    assert!(flexc::calib::file::sidecar_path(&path).exists());
    let loaded = flexc::calib::load(&path).unwrap();
    assert_eq!(loaded, jit);

    let quantized = |pipeline: &str| {
        let mut q = m.clone();
        q.calibration = Some(Arc::new(loaded.clone()));
        run(&mut q, pipeline);
        q.weights.iter().map(|(_, w)| w).filter(|w| w.name.starts_with("blk.") && w.ty.shape.len() == 2).map(|w| (w.name.clone(), format!("{:?}", w.source))).collect::<Vec<_>>()
    };
    let optq = quantized("quantize{scheme=shiftadd,bits=2,group=8,layers=blk.*,hessian=true}");
    let rtn = quantized("quantize{scheme=shiftadd,bits=2,group=8,layers=blk.*,method=rtn}");
    assert_eq!(optq.len(), BLOCKS * 7);
    assert_eq!(optq.iter().map(|w| &w.0).collect::<Vec<_>>(), rtn.iter().map(|w| &w.0).collect::<Vec<_>>());
    assert!(optq.iter().all(|w| w.0.ends_with(".weight.shiftadd2")), "every block linear is quantized");
    assert_ne!(optq, rtn, "Hessian error feedback changes the quantized weights");
}

#[test]
fn loss_probes_match_the_reference_interpreter_and_weigh_mixed_precision() {
    use flexc::calib::sensitivity::{probe_groups, probe_losses};
    use flexc::eval::{perplexity, PplConfig};
    use flexc::generate::reference::ReferenceModel;
    let (m, _dir) = tiny();
    let mut cal = calibrate(&m, &windows(), "test".into(), &CalibOptions { engine: Backend::Cpu, threads: 2, blocks: None, hessian: true }, &mut |_| {}).expect("calibrates");
    let probes = probe_losses(&m, &cal, &windows(), None, 2, &mut |_, _| {}).expect("probes");
    // One probe per block and one for the head, covering every linear once.
    assert_eq!(probes.len(), BLOCKS + 1);
    let covered: Vec<String> = probes.iter().flat_map(|p| p.weights.clone()).collect();
    assert_eq!(covered.len(), linears(&m).len());
    assert_eq!(probe_groups(&m).len(), probes.len());
    // Independently: the reference interpreter's NLL with and without the probe.
    let nll = |pipeline: &str| {
        let mut q = m.clone();
        q.calibration = Some(Arc::new(cal.clone()));
        run(&mut q, pipeline);
        let mut model = ReferenceModel::new(&q).unwrap();
        let tokens: Vec<u32> = windows().concat();
        perplexity(&mut model, &tokens, None, &PplConfig { ctx: SEQLEN, max_chunks: 0 }, &mut |_, _, _| {}).unwrap().ppl.ln()
    };
    let base = nll("canonicalize");
    for p in &probes {
        let head = p.weights.iter().all(|w| flexc_passes::sparsity::block_of(w).is_none());
        // ffn_down reads FFN = 16 channels (group 16), the rest EMBD = 8.
        let (down, rest): (Vec<&String>, Vec<&String>) = p.weights.iter().partition(|w| w.contains("ffn_down"));
        let pass = |g: usize, ws: &[&String]| format!("quantize{{method=rtn,bits=3,group={g},zero=true,lm-head={head},layers={}}}", ws.iter().map(|w| w.as_str()).collect::<Vec<_>>().join(","));
        let passes: Vec<String> = [(16, down), (8, rest)].iter().filter(|(_, ws)| !ws.is_empty()).map(|(g, ws)| pass(*g, ws)).collect();
        let want = nll(&passes.join(",")) - base;
        assert!((p.delta_nll - want).abs() <= 1e-3 * (1.0 + want.abs()), "{:?}: {} vs reference {want}", p.weights, p.delta_nll);
    }
    assert!(probes.iter().any(|p| p.delta_nll.abs() > 1e-6), "3-bit probes move the loss: {probes:?}");
    // Mixed precision reads them.
    cal.probes = probes;
    let mut q = m.clone();
    q.calibration = Some(Arc::new(cal));
    let mut pm = PassManager::from_text("quantize{bpw=12,lm-head=true,candidates=gq2g8,gq4g8,q8_0}", ManagerOptions { verify_each: true, ..Default::default() }).unwrap();
    let report = pm.run(&mut q, &mut |_, _| {}).expect("mixed precision runs");
    assert!(report.remarks.iter().any(|r| r.contains(&format!("weighted by {} loss probes", BLOCKS + 1))), "{:?}", report.remarks);
    assert!(report.remarks.iter().any(|r| r.contains("estimated ΔNLL")), "{:?}", report.remarks);
}
