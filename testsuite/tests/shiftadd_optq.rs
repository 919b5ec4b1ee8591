//! `quantize{scheme=shiftadd,hessian=true}` and `mix-bits` on a module with
//! hand-made calibration Hessians (`H = 2/n·Σ XᵀX` accumulated by
//! `ChannelStats::add_sequence_hessian`, the reference formula): error
//! feedback lowers the layers' output error on the calibration activations,
//! the result is ordinary `#bcq` that the JIT shift-add kernel reads to the
//! interpreter's values, mixed bits follow the sensitivity ranking, and a
//! missing Hessian is a one-line error.

use flexc_backends::cpu::shiftadd::ShiftAddKernel;
use flexc_backends::cpu::JitSession;
use flexc_backends::reference::{Interpreter, Tensor};
use flexc_backends::xorshift::XorShift as Rng;
use flexc_ir::calib::{Calibration, ChannelStats};
use flexc_ir::quant::decode;
use flexc_ir::text::parse_module;
use flexc_ir::{Encoding, Module};
use flexc_passes::{ManagerOptions, PassManager};
use std::sync::Arc;

const K: usize = 128;
const N: usize = 16;
const LAYERS: [&str; 4] = ["blk.0.attn_q", "blk.0.ffn_up", "blk.1.attn_q", "blk.1.ffn_up"];

/// Four independent `[N, K]` linears of `%x`, weight scales growing with the layer.
fn module(rng: &mut Rng) -> Module {
    let mut text = String::new();
    for (i, l) in LAYERS.iter().enumerate() {
        let v: Vec<String> = rng.vec(N * K, 0.02 * (1 + i) as f32).iter().map(|x| format!("{x:?}")).collect();
        text += &format!("weight @{l}.weight : f32[{N}, {K}] = dense<[{}]>\n", v.join(", "));
    }
    text += &format!("\nfunc @f(%x: f32[seq, {K}]) -> f32[seq, {}] {{\n", N * LAYERS.len());
    for (i, l) in LAYERS.iter().enumerate() {
        text += &format!("  %w{i} = tensor.weight @{l}.weight : f32[{N}, {K}]\n  %y{i} = tensor.matmul %x, %w{i} {{transpose_b}} : f32[seq, {N}]\n");
    }
    text += &format!("  %c01 = tensor.concat %y0, %y1 {{axis = 1}} : f32[seq, {}]\n", 2 * N);
    text += &format!("  %c23 = tensor.concat %y2, %y3 {{axis = 1}} : f32[seq, {}]\n", 2 * N);
    text += &format!("  %y = tensor.concat %c01, %c23 {{axis = 1}} : f32[seq, {}]\n  return %y\n}}\n", 4 * N);
    parse_module(&text).unwrap_or_else(|d| panic!("{}", d.render("synthetic", &text)))
}

/// Correlated activations: `t` tokens mixing `K/4` sources, plus noise.
fn activations(rng: &mut Rng, t: usize) -> Vec<f32> {
    let mix = rng.vec(K / 4 * K, 1.0);
    (0..t)
        .flat_map(|_| {
            let z = rng.vec(K / 4, 1.0);
            (0..K).map(|j| (0..K / 4).map(|s| z[s] * mix[s * K + j]).sum::<f32>() + 0.1 * rng.f()).collect::<Vec<_>>()
        })
        .collect()
}

/// Every layer's Hessian from two calibration sequences of `x`.
fn calibration(x: &[f32]) -> Calibration {
    let mut st = ChannelStats::default();
    for seq in x.chunks(x.len() / 2) {
        st.add_sequence_hessian(seq, K);
        st.add_sequence(seq, K);
    }
    let mut cal = Calibration::default();
    for l in LAYERS {
        cal.layers.insert(format!("{l}.weight"), st.clone());
    }
    cal
}

fn run_pipeline(m: &Module, pipeline: &str) -> Result<(Module, Vec<String>), String> {
    let mut m = m.clone();
    let mut pm = PassManager::from_text(pipeline, ManagerOptions { verify_each: true, ..Default::default() }).map_err(|e| format!("{e:?}"))?;
    let remarks = pm.run(&mut m, &mut |_, _| {}).map_err(|e| format!("{e:?}"))?;
    Ok((m, remarks.remarks))
}

fn forward(m: &Module, x: &[f32]) -> Vec<f32> {
    Interpreter::new(m).run("f", vec![Tensor::f32(&[x.len() / K, K], x.to_vec())]).expect("runs").remove(0).as_f32().unwrap().to_vec()
}

fn dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(p, q)| (*p as f64 - *q as f64).powi(2)).sum::<f64>().sqrt()
}

#[test]
fn hessian_feedback_lowers_the_output_error_and_the_kernel_reads_it() {
    let mut rng = Rng(41);
    let mut m = module(&mut rng);
    let x = activations(&mut rng, 256);
    m.calibration = Some(Arc::new(calibration(&x)));
    let want = forward(&m, &x);
    let (plain, _) = run_pipeline(&m, "quantize{scheme=shiftadd,bits=2,group=32,method=rtn}").unwrap();
    let (fb, _) = run_pipeline(&m, "quantize{scheme=shiftadd,bits=2,group=32,hessian=true}").unwrap();
    let (e0, e1) = (dist(&forward(&plain, &x), &want), dist(&forward(&fb, &x), &want));
    assert!(e1 < 0.9 * e0, "feedback {e1} vs plain {e0}");
    // The weights are plain #bcq: the JIT shift-add kernel gives the decoded product.
    let s = JitSession::host().unwrap();
    for (_, w) in fb.weights.iter() {
        let Some(Encoding::Bcq(p)) = w.ty.encoding else { panic!("@{} is {}", w.name, w.ty) };
        let bytes = fb.weights.bytes(fb.weights.lookup(&w.name).unwrap()).unwrap();
        let mut wd = vec![0f32; N * K];
        decode(Encoding::Bcq(p), &bytes, &mut wd).unwrap();
        let (kernel, packed) = ShiftAddKernel::for_weight(&s, p, &bytes, N, K).unwrap();
        let mut y = vec![0f32; N];
        kernel.run(&packed, &x[..K], &mut y, 1).unwrap();
        for (r, row) in wd.chunks_exact(K).enumerate() {
            let exact: f32 = row.iter().zip(&x[..K]).map(|(a, b)| a * b).sum();
            assert!((y[r] - exact).abs() <= 1e-4 * (1.0 + exact.abs()), "@{} row {r}: {} vs {exact}", w.name, y[r]);
        }
    }
}

#[test]
fn mixed_bits_follow_the_sensitivity() {
    let mut rng = Rng(43);
    let mut m = module(&mut rng);
    let x = activations(&mut rng, 128);
    m.calibration = Some(Arc::new(calibration(&x)));
    let (q, remarks) = run_pipeline(&m, "quantize{scheme=shiftadd,group=32,mix-bits=0.0,0.5,0.5,hessian=true}").unwrap();
    // The same Hessian for all, weights scaled 1..4×: the score grows with the
    // scale (norm × variance), so the last two layers get 3 bits.
    for (i, l) in LAYERS.iter().enumerate() {
        let want = if i < 2 { 2 } else { 3 };
        let name = format!("{l}.weight.shiftadd{want}");
        let id = q.weights.lookup(&name).unwrap_or_else(|| panic!("no @{name}: {remarks:?}"));
        assert!(matches!(q.weights.get(id).ty.encoding, Some(Encoding::Bcq(p)) if p.bits == want));
        assert!(remarks.iter().any(|r| r.contains(&format!("@{l}.weight {want} bits"))), "{remarks:?}");
    }
}

#[test]
fn missing_hessians_and_bad_options_are_errors() {
    let mut rng = Rng(47);
    let m = module(&mut rng);
    let e = run_pipeline(&m, "quantize{scheme=shiftadd,hessian=true}").unwrap_err();
    assert!(e.contains("calibrate --hessian"), "{e}");
    let mut m2 = m.clone();
    let mut cal = calibration(&activations(&mut rng, 8));
    cal.layers.remove("blk.1.ffn_up.weight");
    m2.calibration = Some(Arc::new(cal));
    let e = run_pipeline(&m2, "quantize{scheme=shiftadd,mix-bits=0.0,0.8,0.2}").unwrap_err();
    assert!(e.contains("no Hessian for @blk.1.ffn_up.weight"), "{e}");
    for bad in ["quantize{scheme=shiftadd,mix-bits=0.5,0.6}", "quantize{scheme=shiftadd,mix-bits=a,b}", "quantize{scheme=rtn,hessian=true}", "quantize{scheme=rtn,method=rtn,hessian=true}"] {
        assert!(run_pipeline(&m, bad).is_err(), "{bad}");
    }
}
