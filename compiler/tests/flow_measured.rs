//! `flow-nm{method=flow}` end to end on a tiny synthetic llama whose answer
//! is known: block 1's output projections are scaled up, so pruning it
//! costs more than pruning the later blocks. The driver measures every block's ΔNLL with
//! the pipeline's own prune-nm, the exact allocation prunes the cheap late
//! blocks harder, and the pruned model's NLL on the calibration windows is
//! never worse than uniform 4:8's at the same parameter sparsity, for both
//! updates (Wanda masks and SparseGPT reconstruction).

use flexc::calib::nm_sensitivity::{measure, to_attr};
use flexc::calib::{calibrate, CalibOptions};
use flexc::cli::import::import_model;
use flexc::frontend::decoder::ImportOptions;
use flexc::generate::cpu::CpuModel;
use flexc::generate::LanguageModel;
use flexc_ir::Module;
use flexc_passes::pipeline::parse_pipeline;
use flexc_passes::sparsity::measured::SENSITIVITY_KEY;
use flexc_passes::sparsity::{set_meta, Nm};
use flexc_passes::{ManagerOptions, PassManager};
use flexc_testsuite::synth;
use std::sync::Arc;

const BLOCKS: usize = 4;
const SEQLEN: usize = 16;

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tiny() -> (Module, TempDir) {
    let dir = std::env::temp_dir().join(format!("flexc-flow-measured-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny4.gguf");
    let scale = |n: &str| if n == "blk.1.ffn_down.weight" || n == "blk.1.attn_output.weight" { 6.0 } else { 1.0 };
    std::fs::write(&path, synth::llama_gguf_scaled(synth::Vocab::Bpe, BLOCKS, &scale)).unwrap();
    let m = import_model(&path, &ImportOptions { ctx: SEQLEN, ..Default::default() }).expect("the tiny model imports");
    (m, TempDir(dir))
}

/// Windows the dense model itself wrote (4 random tokens, then its greedy
/// continuation): on random tokens a random model is worse than uniform and
/// pruning it can *lower* the NLL; on its own text every perturbation costs.
fn windows(m: &Module) -> Vec<Vec<u32>> {
    let mut rng = flexc_backends::xorshift::XorShift(11);
    let mut model = CpuModel::new(m, 1).expect("compiles");
    let vocab = model.vocab();
    (0..6)
        .map(|_| {
            let mut w: Vec<u32> = (0..4).map(|_| rng.below(200) as u32 + 1).collect();
            while w.len() < SEQLEN {
                let l = model.forward(&w, 0, 1).expect("runs");
                let last = &l[l.len() - vocab..];
                let next = (0..vocab).max_by(|&a, &b| last[a].total_cmp(&last[b])).unwrap_or(0);
                w.push(next as u32);
            }
            w
        })
        .collect()
}

/// Mean NLL of the second half of every window (what the probes score).
fn nll(m: &Module, wins: &[Vec<u32>]) -> f64 {
    let mut model = CpuModel::new(m, 1).expect("compiles");
    let vocab = model.vocab();
    let (mut sum, mut n) = (0f64, 0usize);
    for w in wins {
        let tail = SEQLEN / 2;
        let logits = model.forward(&w, 0, tail).expect("runs");
        for r in 0..tail - 1 {
            sum += flexc::eval::nll(&logits[r * vocab..(r + 1) * vocab], w[SEQLEN - tail + r + 1]);
            n += 1;
        }
    }
    sum / n as f64
}

fn run(m: &Module, pipeline: &str) -> Module {
    let mut w = m.clone();
    let mut pm = PassManager::from_text(pipeline, ManagerOptions { verify_each: true, ..Default::default() }).unwrap();
    pm.run(&mut w, &mut |_, _| {}).unwrap_or_else(|e| panic!("{pipeline}: {e}"));
    w
}

fn plan_of(m: &Module) -> Vec<Nm> {
    flexc_passes::sparsity::plan(m).unwrap().unwrap().iter().filter(|(w, _)| w.ends_with("attn_q.weight")).map(|(_, t)| match t {
        flexc_passes::sparsity::Target::Nm(c) => *c,
        t => panic!("{t:?}"),
    }).collect()
}

#[test]
fn measured_allocation_never_loses_to_uniform_on_a_known_model() {
    let (mut m, _dir) = tiny();
    let wins = windows(&m);
    let o = CalibOptions { threads: 1, hessian: true, ..CalibOptions::default() };
    m.calibration = Some(Arc::new(calibrate(&m, &wins, "test".into(), &o, &mut |_| {}).expect("calibrates")));
    let dense = nll(&m, &wins);
    for update in ["", "update=sparsegpt"] {
        let prune = format!("prune-nm{{{update}}}");
        let spec = parse_pipeline(&prune).unwrap().remove(0);
        let probes = Nm::parse_list("2:8,4:8,6:8").unwrap();
        let table = measure(&m, &spec, &probes, &wins, 1, &mut |_, _| {}).expect("measures");
        assert_eq!(table.len(), BLOCKS * probes.len());
        // The scaled block costs more than the later ones at every probe
        // (block 0, whose error every later block carries, is costly too).
        for &p in &probes {
            let at = |b: usize| table.iter().find(|t| t.0 == b && t.1 == p).unwrap().2;
            assert!(at(1) > at(2) && at(1) > at(3), "{update} {p}: {table:?}");
        }
        let mut mm = m.clone();
        set_meta(&mut mm, SENSITIVITY_KEY, to_attr(&table));
        let measured = run(&mm, &format!("flow-nm{{sparsity=0.5,dense-ends=false,candidates=2:8,4:8,6:8}},{prune}"));
        let plan = plan_of(&measured);
        assert!(plan[1].sparsity() <= 0.5 && plan[2..].iter().any(|c| c.sparsity() > 0.5), "{update}: the cheap late blocks carry the sparsity: {plan:?}");
        let avg = plan.iter().map(|c| c.sparsity()).sum::<f64>() / BLOCKS as f64;
        assert!((avg - 0.5).abs() < 1e-9, "{plan:?}");
        let uniform = run(&m, &format!("flow-nm{{method=uniform,pattern=4:8,dense-ends=false}},{prune}"));
        let (a, b) = (nll(&measured, &wins), nll(&uniform, &wins));
        assert!(a <= b + 1e-6, "{update}: measured {a} vs uniform {b} (dense {dense})");
    }
}

#[test]
fn method_flow_without_a_measured_table_is_an_error() {
    let (m, _dir) = tiny();
    let mut w = m.clone();
    let mut pm = PassManager::from_text("flow-nm{sparsity=0.5,score=magnitude},prune-nm{score=magnitude}", ManagerOptions::default()).unwrap();
    let e = pm.run(&mut w, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("measured cost") && e.contains("flow-reference"), "{e}");
    assert!(flexc::calib::nm_sensitivity::wants("flow-nm{sparsity=0.5}").is_err());
    assert!(flexc::calib::nm_sensitivity::wants("flow-nm{method=uniform},prune-nm").unwrap().is_none());
    assert!(flexc::calib::nm_sensitivity::wants("flow-nm{sparsity=0.6},prune-nm{update=sparsegpt}").unwrap().is_some());
}
