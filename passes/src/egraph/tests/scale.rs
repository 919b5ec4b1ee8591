//! A synthetic 30-layer decoder (210 GEMMs) through `select-gemm`: the
//! runner's figures are pinned, so a rule that starts to blow the e-graph up
//! (or stops saturating) shows here; the time is printed, not asserted.

use super::model::{count, linear, run, weight};

const LAYERS: usize = 30;

/// Layer `i`'s weight types: attention (q, k, v, o) and FFN (gate, up, down).
fn layer_types(i: usize) -> (&'static str, &'static str, &'static str) {
    match i % 3 {
        // Dense low-bit: LUT everywhere.
        0 => ("#gq<bits = 2, group = 32, zero = false>", "#gq<bits = 2, group = 32, zero = false>", "#gq<bits = 2, group = 32, zero = false>"),
        // FLOW-pruned FFN: sparse there.
        1 => ("#gq<bits = 4, group = 32, zero = true>", "#nm<n = 2, m = 4>", "#nm<n = 2, m = 4>"),
        // BCQ attention, ggml FFN.
        _ => ("#bcq<bits = 2, group = 32, pot = true>", "#q4_0", "#q4_0"),
    }
}

/// The model as `.fir` text: 30 × (rmsnorm, q/k/v, mix, o, residual, rmsnorm, gate/up, silu·up, down, residual).
pub fn decoder() -> String {
    let (d, ff) = (64, 128);
    let mut decls = String::new();
    let mut body = String::new();
    let mut resid = "x".to_string();
    for i in 0..LAYERS {
        let (attn, gu, down) = layer_types(i);
        let t = |n: usize, k: usize, enc: &str| format!("f32[{n}, {k}] {enc}");
        let ws = [
            ("q", t(d, d, attn)),
            ("k", t(d, d, attn)),
            ("v", t(d, d, attn)),
            ("o", t(d, d, attn)),
            ("gate", t(ff, d, gu)),
            ("up", t(ff, d, gu)),
            ("down", t(d, ff, down)),
        ];
        for (n, ty) in &ws {
            decls += &weight(&format!("blk.{i}.{n}"), ty);
        }
        let w = |k: usize| (format!("blk.{i}.{}", ws[k].0), ws[k].1.clone());
        let lin = |out: &str, x: &str, k: usize| linear(out, x, &w(k).0, &w(k).1);
        body += &format!("  %h{i} = tensor.rmsnorm %{resid}, %norm : f32[seq, {d}]\n");
        body += &(lin(&format!("q{i}"), &format!("h{i}"), 0) + &lin(&format!("k{i}"), &format!("h{i}"), 1) + &lin(&format!("v{i}"), &format!("h{i}"), 2));
        body += &format!("  %kv{i} = tensor.mul %k{i}, %v{i} : f32[seq, {d}]\n  %a{i} = tensor.add %q{i}, %kv{i} : f32[seq, {d}]\n");
        body += &lin(&format!("o{i}"), &format!("a{i}"), 3);
        body += &format!("  %r{i} = tensor.add %{resid}, %o{i} : f32[seq, {d}]\n  %g{i} = tensor.rmsnorm %r{i}, %norm : f32[seq, {d}]\n");
        body += &(lin(&format!("gate{i}"), &format!("g{i}"), 4) + &lin(&format!("up{i}"), &format!("g{i}"), 5));
        body += &format!("  %s{i} = tensor.silu %gate{i} : f32[seq, {ff}]\n  %m{i} = tensor.mul %s{i}, %up{i} : f32[seq, {ff}]\n");
        body += &lin(&format!("down{i}"), &format!("m{i}"), 6);
        body += &format!("  %out{i} = tensor.add %r{i}, %down{i} : f32[seq, {d}]\n");
        resid = format!("out{i}");
    }
    format!("{decls}\nfunc @decoder(%x: f32[seq, {d}], %norm: f32[{d}]) -> f32[seq, {d}] {{\n{body}  return %{resid}\n}}\n")
}

#[test]
fn thirty_layers_saturate_small_and_fast() {
    let t0 = std::time::Instant::now();
    let (ir, report) = run(&decoder(), "select-gemm");
    let elapsed = t0.elapsed();
    let e = report.explain.unwrap();
    let r = e.runner.clone().unwrap();
    eprintln!("30-layer select-gemm: {r:?}, pass time {:?}, total {elapsed:?}", report.passes[0].time);
    assert_eq!(e.gemms.len(), 7 * LAYERS);
    assert_eq!((r.stop_reason.as_str(), r.iterations, r.nodes, r.classes), ("saturated", 3, 1682, 832));
    // Per 3 layers: gq2 layer: q/k/v, o, gate/up, down on LUT with 4 tables;
    // gq4 layer: attention on LUT (2 tables), FFN sparse; bcq layer: attention
    // shift-add, FFN dense.
    let per3 = |p: &str| e.gemms.iter().filter(|g| g.chosen == p).count() / (LAYERS / 3);
    assert_eq!((per3("lut"), per3("sparse"), per3("shiftadd"), per3("dense")), (11, 3, 4, 3));
    assert_eq!(count(&ir, "kern.lut_precompute"), 6 * LAYERS / 3, "one table per activation");
}
