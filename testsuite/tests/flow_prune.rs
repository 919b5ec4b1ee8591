//! prune-nm on a small synthetic two-linear-per-block module with Wanda
//! statistics: the result verifies, every group keeps exactly N, Wanda (not
//! magnitude) decides, the interpreter runs the pruned module through the
//! #nm codec and matches a hand-masked dense computation; calibration on the
//! interpreter records the reference running mean.

use flexc_backends::reference::{Interpreter, Tensor};
use flexc_ir::calib::{Calibration, ChannelStats};
use flexc_ir::text::parse_module;
use flexc_ir::verify::verify_module;
use flexc_ir::{ElemType, Encoding};
use flexc_passes::sparsity::{linears, weight_f32};
use flexc_passes::{ManagerOptions, PassManager};
use std::sync::Arc;

fn module(blocks: usize) -> flexc_ir::Module {
    let mut text = String::new();
    let mut seed = 11u64;
    let mut rnd = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (((seed >> 33) % 2001) as f64 - 1000.0) / 500.0
    };
    for b in 0..blocks {
        for name in ["attn_q", "ffn_down"] {
            let v: Vec<String> = (0..128).map(|_| format!("{:?}", rnd())).collect();
            text += &format!("weight @blk.{b}.{name}.weight : f32[8, 16] = dense<[{}]>\n", v.join(", "));
        }
    }
    text += "\nfunc @forward(%x: f32[seq, 16]) -> f32[seq, 8] {\n";
    let mut prev = "%x".to_string();
    for b in 0..blocks {
        text += &format!("  %q{b} = tensor.weight @blk.{b}.attn_q.weight : f32[8, 16]\n  %a{b} = tensor.matmul {prev}, %q{b} {{transpose_b}} : f32[seq, 8]\n");
        text += &format!("  %c{b} = tensor.concat %a{b}, %a{b} {{axis = 1}} : f32[seq, 16]\n");
        text += &format!("  %d{b} = tensor.weight @blk.{b}.ffn_down.weight : f32[8, 16]\n  %o{b} = tensor.matmul %c{b}, %d{b} {{transpose_b}} : f32[seq, 8]\n");
        text += &format!("  %e{b} = tensor.concat %o{b}, %o{b} {{axis = 1}} : f32[seq, 16]\n");
        prev = format!("%e{b}");
    }
    let _ = prev;
    text += &format!("  return %o{}\n}}\n", blocks - 1);
    parse_module(&text).unwrap_or_else(|d| panic!("{}", d.render("synthetic", &text)))
}

#[test]
fn prune_nm_with_wanda_runs_on_the_interpreter() {
    let mut m = module(4);
    verify_module(&m).expect("verifies");
    // Channel 0 of every linear gets a huge activation norm: Wanda keeps it
    // even where |W| is small.
    let mut cal = Calibration::default();
    for l in linears(&m) {
        let mut row = vec![1.0f32; l.inp];
        row[0] = 1e6;
        cal.layers.insert(l.weight.clone(), ChannelStats { nsamples: 1, scaler_row: row, hessian: None });
    }
    m.calibration = Some(Arc::new(cal));
    let dense = m.clone();
    let mut pm = PassManager::from_text("flow-nm{method=flow-reference,sparsity=0.5,mode=nearest,dense-ends=false},prune-nm", ManagerOptions { verify_each: true, ..Default::default() }).unwrap();
    pm.run(&mut m, &mut |_, _| {}).expect("pipeline runs");
    verify_module(&m).expect("verifies after pruning");
    let mut masked = dense.clone();
    let mut pruned_any = false;
    for l in linears(&dense) {
        let id = m.weights.lookup(&l.weight).unwrap();
        let ty = &m.weights.get(id).ty;
        let Some(Encoding::Nm(pattern)) = ty.encoding else { continue };
        let (n, mm) = (pattern.n(), pattern.m());
        pruned_any = true;
        let w = weight_f32(&m, &l.weight).unwrap();
        let orig = weight_f32(&dense, &l.weight).unwrap();
        for (r, row) in w.chunks(l.inp).enumerate() {
            for (g, grp) in row.chunks(mm).enumerate() {
                let kept = grp.iter().filter(|x| **x != 0.0).count();
                assert_eq!(kept, n, "{} row {r} group {g}", l.weight);
                if g == 0 {
                    assert_ne!(grp[0], 0.0, "Wanda keeps the high-norm channel 0 ({})", l.weight);
                }
            }
            for (j, (a, b)) in row.iter().zip(&orig[r * l.inp..]).enumerate() {
                assert!(*a == 0.0 || a == b, "kept values are exact ({} {r} {j})", l.weight);
            }
        }
        // The same weights as plain f32 with zeros: the hand-masked reference.
        let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
        flexc_passes::sparsity::prune_nm::retype_weight(&mut masked, &l.weight, flexc_ir::TensorType::new(ElemType::F32, &[l.out as u64, l.inp as u64]), bytes).unwrap();
    }
    assert!(pruned_any);
    let x: Vec<f32> = (0..3 * 16).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
    let run = |m: &flexc_ir::Module| Interpreter::new(m).run("forward", vec![Tensor::f32(&[3, 16], x.clone())]).expect("runs").remove(0);
    let (got, want) = (run(&m), run(&masked));
    assert_eq!(got.as_f32().unwrap(), want.as_f32().unwrap());
    assert_ne!(got.as_f32().unwrap(), run(&dense).as_f32().unwrap());
}

#[test]
fn calibration_records_the_reference_running_mean() {
    let m = module(2);
    // Two "sequences" through the interpreter, then compare one linear's stats.
    let ops = flexc::calib::linear_ops(&m);
    assert_eq!(ops.len(), 4);
    let seqs: Vec<Vec<f32>> = vec![(0..32).map(|i| i as f32 / 10.0).collect(), (0..48).map(|i| (i % 5) as f32 - 2.0).collect()];
    let rec = std::rc::Rc::new(std::cell::RefCell::new(std::collections::BTreeMap::<String, ChannelStats>::new()));
    let mut interp = Interpreter::new(&m);
    let r2 = rec.clone();
    interp.set_observer(Some(Box::new(move |_f, op, args: &[Arc<Tensor>]| {
        if let Some(name) = ops.get(&op) {
            r2.borrow_mut().entry(name.clone()).or_default().add_sequence(args[0].as_f32().unwrap(), *args[0].shape.last().unwrap());
        }
    })));
    for s in &seqs {
        interp.run("forward", vec![Tensor::f32(&[s.len() / 16, 16], s.clone())]).unwrap();
    }
    drop(interp);
    let st = rec.borrow()["blk.0.attn_q.weight"].clone();
    assert_eq!(st.nsamples, 2);
    for j in 0..16 {
        let norm = |s: &Vec<f32>| s.chunks(16).map(|r| (r[j] as f64).powi(2)).sum::<f64>();
        let want = (norm(&seqs[0]) + norm(&seqs[1])) / 2.0;
        assert!((st.scaler_row[j] as f64 - want).abs() <= 1e-5 * want.max(1.0), "channel {j}");
    }
}
