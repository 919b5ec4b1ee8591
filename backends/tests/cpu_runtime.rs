//! The CPU runtime against the reference interpreter on small random graphs:
//! a tiny two-layer decoder (q8_0 / q4_1 / q5_0 / gq / ternary / f32 weights, both RoPE
//! pairings, partial RoPE, GQA, sliding window, softcap, SiLU and GELU gates)
//! run as a prefill and then decode steps, plus one graph of the remaining
//! elementwise ops and an unsupported op.
//!
//! Tolerance: the JIT matmuls quantise activations to Q8_0 (as llama.cpp
//! does) while the reference multiplies exact f32 values in f64, so logits
//! differ by a few tenths of a percent per matmul; the check is
//! max |Δ| ≤ 3% of max |logit| (plus 1e-3), and the argmax must agree where
//! the top two are separated by more than that. Elementwise-only graphs
//! (no quantisation) must agree to 1e-4 relative.

use std::sync::Arc;

use flexc_backends::cpu::runtime::{CpuRuntime, Input, RuntimeError, RuntimeOptions};
use flexc_backends::reference::{Interpreter, Tensor};
use flexc_ir::attrs;
use flexc_ir::ops::{Dense, GeluApprox, RopeMode, Symbol};
use flexc_ir::quant::GgmlType;
use flexc_ir::types::{Dim, ElemType, Encoding, TensorType};
use flexc_ir::weights::{WeightData, WeightSource};
use flexc_ir::{Func, Module, Span, Value};

use flexc_backends::xorshift::XorShift as Rng;

fn seq_ty(rest: &[u64]) -> TensorType {
    let mut shape = vec![Dim::Sym(Arc::from("seq"))];
    shape.extend(rest.iter().map(|&d| Dim::Fixed(d)));
    TensorType { shape, elem: ElemType::F32, encoding: None }
}

struct G {
    m: Module,
    f: Func,
    rng: Rng,
}

impl G {
    fn op(&mut self, a: impl Into<flexc_ir::OpAttrs>, args: &[Value], ty: Option<TensorType>) -> Value {
        self.f.append_typed(a, args, ty).expect("op builds")
    }
    /// A random weight `[rows, cols]` (or `[cols]` when rows == 0) stored in `enc`.
    fn weight(&mut self, name: &str, rows: usize, cols: usize, enc: Option<Encoding>, scale: f32) -> Value {
        let shape: Vec<u64> = if rows == 0 { vec![cols as u64] } else { vec![rows as u64, cols as u64] };
        let n = rows.max(1) * cols;
        let vals = self.rng.vec(n, scale);
        let (ty, bytes) = match enc {
            Some(e) => {
                (TensorType { shape: shape.iter().map(|&d| Dim::Fixed(d)).collect(), elem: ElemType::F32, encoding: Some(e) }, flexc_ir::quant::encode(e, &vals).expect("encode"))
            }
            None => (TensorType::new(ElemType::F32, &shape), vals.iter().flat_map(|v| v.to_le_bytes()).collect()),
        };
        self.m.weights.insert(WeightData { name: name.into(), ty: ty.clone(), source: WeightSource::Derived(bytes.into()), span: Span::default() }).expect("insert");
        let w = self.op(attrs::Weight { name: Symbol(name.into()) }, &[], Some(ty));
        if enc.is_some() { self.op(attrs::Dequantize {}, &[w], None) } else { w }
    }
    fn linear(&mut self, x: Value, name: &str, out: usize, inp: usize, enc: Option<Encoding>) -> Value {
        let w = self.weight(name, out, inp, enc, 0.3);
        self.op(attrs::Matmul { transpose_b: true }, &[x, w], None)
    }
}

/// An encoding from its text form.
fn lowbit(text: &str) -> Encoding {
    flexc_ir::text::parse_type(&format!("f32[32] {text}")).expect("encoding parses").encoding.expect("an encoding")
}

const VOCAB: usize = 64;
const EMBD: usize = 64;
const HEADS: usize = 2;
const KV: usize = 1;
const HD: usize = 32;
const FFN: usize = 96;
const CTX: usize = 16;
const LAYERS: usize = 2;

/// A two-layer decoder shaped like the imported models.
fn tiny_decoder() -> Module {
    let seq = Dim::Sym(Arc::from("seq"));
    let kv = TensorType::new(ElemType::F32, &[CTX as u64, KV as u64, HD as u64]);
    let mut params = vec![
        (Some("tokens".into()), TensorType { shape: vec![seq.clone()], elem: ElemType::I32, encoding: None }),
        (Some("pos".into()), TensorType::new(ElemType::I32, &[])),
    ];
    let mut results = vec![seq_ty(&[VOCAB as u64])];
    for l in 0..LAYERS {
        params.push((Some(format!("k{l}")), kv.clone()));
        params.push((Some(format!("v{l}")), kv.clone()));
        results.extend([kv.clone(), kv.clone()]);
    }
    let f = Func::new("forward", &params, results);
    let (tokens, pos) = (f.params[0], f.params[1]);
    let caches = f.params[2..].to_vec();
    let mut g = G { m: Module::default(), f, rng: Rng(7) };
    let emb_ty = TensorType { shape: vec![Dim::Fixed(VOCAB as u64), Dim::Fixed(EMBD as u64)], elem: ElemType::F32, encoding: Some(Encoding::Ggml(GgmlType::Q8_0)) };
    let vals = g.rng.vec(VOCAB * EMBD, 1.0);
    let bytes = flexc_ir::quant::encode(Encoding::Ggml(GgmlType::Q8_0), &vals).expect("encode");
    g.m.weights.insert(WeightData { name: "emb".into(), ty: emb_ty.clone(), source: WeightSource::Derived(bytes.into()), span: Span::default() }).expect("insert");
    let emb = g.op(attrs::Weight { name: Symbol("emb".into()) }, &[], Some(emb_ty));
    let mut x = g.op(attrs::Gather {}, &[emb, tokens], None);
    let s = g.op(attrs::Constant { value: Dense::Float(vec![1.5]) }, &[], Some(TensorType::new(ElemType::F32, &[])));
    x = g.op(attrs::Mul {}, &[x, s], None);
    let mut new_caches = Vec::new();
    for l in 0..LAYERS {
        let nw = g.weight(&format!("n{l}"), 0, EMBD, None, 1.0);
        let h = g.op(attrs::Rmsnorm { eps: 1e-6 }, &[x, nw], None);
        let q = g.linear(h, &format!("q{l}"), HEADS * HD, EMBD, Some(Encoding::Ggml(GgmlType::Q8_0)));
        let k = g.linear(h, &format!("k{l}"), KV * HD, EMBD, Some(Encoding::Ggml(GgmlType::Q4_1)));
        let v = g.linear(h, &format!("v{l}"), KV * HD, EMBD, Some(Encoding::Ggml(GgmlType::Q5_0)));
        let q = g.op(attrs::Reshape {}, &[q], Some(seq_ty(&[HEADS as u64, HD as u64])));
        let k = g.op(attrs::Reshape {}, &[k], Some(seq_ty(&[KV as u64, HD as u64])));
        let v = g.op(attrs::Reshape {}, &[v], Some(seq_ty(&[KV as u64, HD as u64])));
        let rope = if l == 0 { attrs::Rope { base: 10000.0, mode: RopeMode::Norm, dims: 0 } } else { attrs::Rope { base: 1000.0, mode: RopeMode::Neox, dims: 16 } };
        let q = g.op(rope.clone(), &[q, pos], None);
        let k = g.op(rope, &[k, pos], None);
        let kc = g.op(attrs::CacheWrite {}, &[caches[2 * l], k, pos], None);
        let vc = g.op(attrs::CacheWrite {}, &[caches[2 * l + 1], v, pos], None);
        new_caches.extend([kc, vc]);
        let (window, softcap) = if l == 1 { (3, 5.0) } else { (0, 0.0) };
        let att = g.op(attrs::Attention { scale: 1.0 / (HD as f64).sqrt(), bidirectional: false, window, softcap }, &[q, kc, vc, pos], None);
        let att = g.op(attrs::Reshape {}, &[att], Some(seq_ty(&[(HEADS * HD) as u64])));
        // Layer 1 carries the low-bit encodings the LUT kernel runs.
        let o = g.linear(att, &format!("o{l}"), EMBD, HEADS * HD, (l == 1).then(|| lowbit("#gq<bits = 4, group = 32, zero = false>")));
        x = g.op(attrs::Add {}, &[x, o], None);
        let gate = g.linear(x, &format!("g{l}"), FFN, EMBD, Some(Encoding::Ggml(GgmlType::Q4_1)));
        let up = g.linear(x, &format!("u{l}"), FFN, EMBD, Some(Encoding::Ggml(GgmlType::Q5_0)));
        let act = if l == 0 { g.op(attrs::Silu {}, &[gate], None) } else { g.op(attrs::Gelu { approx: GeluApprox::Tanh }, &[gate], None) };
        let hidden = g.op(attrs::Mul {}, &[act, up], None);
        let down = g.linear(hidden, &format!("d{l}"), EMBD, FFN, Some(if l == 1 { lowbit("#ternary<group = 32>") } else { Encoding::Ggml(GgmlType::Q8_0) }));
        x = g.op(attrs::Add {}, &[x, down], None);
    }
    let nw = g.weight("nf", 0, EMBD, None, 1.0);
    let x = g.op(attrs::Rmsnorm { eps: 1e-6 }, &[x, nw], None);
    let logits = g.linear(x, "head", VOCAB, EMBD, None);
    g.f.returns = std::iter::once(logits).chain(new_caches).collect();
    g.m.funcs.push(g.f);
    g.m
}

fn compare(name: &str, got: &[f32], want: &[f32], rel: f32) -> f32 {
    assert_eq!(got.len(), want.len(), "{name}: lengths");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff <= rel * scale + 1e-3, "{name}: max |Δ| {diff} > {rel} × {scale}");
    diff
}

#[test]
fn tiny_decoder_prefill_then_decode_matches_reference() {
    let m = tiny_decoder();
    let mut rt = CpuRuntime::compile(&m, "forward", RuntimeOptions { threads: 2, tile: 4, par_min_bytes: 0, ..RuntimeOptions::default() }).expect("compiles");
    rt.enable_profile();
    let mut interp = Interpreter::new(&m);
    let mut caches: Vec<Tensor> = (0..2 * LAYERS).map(|_| Tensor::float(ElemType::F32, &[CTX, KV, HD], vec![0.0; CTX * KV * HD])).collect();
    let steps: Vec<Vec<i32>> = vec![vec![3, 17, 42, 5, 60, 1], vec![9], vec![33], vec![7, 8], vec![63]];
    let mut pos = 0usize;
    for (si, toks) in steps.iter().enumerate() {
        let ids = Tensor::int(ElemType::I32, &[toks.len()], toks.iter().map(|&t| t as i64).collect()).expect("ids");
        let mut inputs = vec![ids, Tensor::scalar_i32(pos as i32)];
        inputs.append(&mut caches);
        let mut out = interp.run("forward", inputs).expect("reference runs");
        caches = out.split_off(1);
        let want = out[0].as_f32().expect("f32").to_vec();
        let last_only = si % 2 == 1;
        rt.run(&[Input::I32(toks), Input::Scalar(pos as i64)], last_only).expect("runtime runs");
        let got = rt.output(0).expect("logits").to_vec();
        let want = if last_only { want[want.len() - VOCAB..].to_vec() } else { want };
        let d = compare(&format!("step {si} logits"), &got, &want, 0.03);
        eprintln!("step {si}: {} tokens at {pos}, max |Δ| = {d:.5}", toks.len());
        for l in 0..2 * LAYERS {
            let c = rt.state(2 + l).expect("state");
            compare(&format!("step {si} cache {l}"), c, caches[l].as_f32().expect("f32"), 0.03);
        }
        pos += toks.len();
    }
    // Both FFN activations (silu, gelu) ran fused with their product, and
    // the norms, rope and residual adds through the JIT kernels.
    let names: Vec<&str> = rt.profile().iter().map(|p| p.0).collect();
    for want in ["gated activation (jit)", "rmsnorm (jit)", "elementwise (jit)", "rope (jit)"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(!names.contains(&"activation"), "unfused activation in {names:?}");
    // Overflowing the cache is an error, not a panic.
    let too_many = vec![1i32; CTX];
    assert!(rt.run(&[Input::I32(&too_many), Input::Scalar(pos as i64)], false).is_err());
}

/// `[seq, 32] ⊙ [32]` elementwise chain: exp, tanh, neg, relu, sub, div, softmax.
#[test]
fn elementwise_ops_match_reference() {
    let f = Func::new("f", &[(Some("x".into()), seq_ty(&[32])), (Some("b".into()), TensorType::new(ElemType::F32, &[32]))], vec![seq_ty(&[32])]);
    let (x, b) = (f.params[0], f.params[1]);
    let mut g = G { m: Module::default(), f, rng: Rng(3) };
    let e = g.op(attrs::Exp {}, &[x], None);
    let t = g.op(attrs::Tanh {}, &[x], None);
    let n = g.op(attrs::Neg {}, &[t], None);
    let r = g.op(attrs::Relu {}, &[n], None);
    let s = g.op(attrs::Sub {}, &[e, b], None);
    let d = g.op(attrs::Div {}, &[s, b], None);
    let a = g.op(attrs::Add {}, &[d, r], None);
    let sm = g.op(attrs::Softmax { axis: -1 }, &[a], None);
    let gl = g.op(attrs::Gelu { approx: GeluApprox::Erf }, &[sm], None);
    g.f.returns = vec![gl];
    g.m.funcs.push(g.f);
    let xs = g.rng.vec(3 * 32, 3.0);
    let bs: Vec<f32> = g.rng.vec(32, 1.0).iter().map(|v| v + 2.5).collect();
    let mut rt = CpuRuntime::compile(&g.m, "f", RuntimeOptions::default()).expect("compiles");
    rt.run(&[Input::F32(&xs), Input::F32(&bs)], false).expect("runs");
    let mut interp = Interpreter::new(&g.m);
    let want = interp.run("f", vec![Tensor::float(ElemType::F32, &[3, 32], xs.clone()), Tensor::float(ElemType::F32, &[32], bs.clone())]).expect("reference");
    compare("elementwise", rt.output(0).expect("out"), want[0].as_f32().expect("f32"), 1e-4);
}

#[test]
fn unsupported_op_is_a_named_error() {
    let f = Func::new("f", &[(Some("x".into()), seq_ty(&[4]))], vec![seq_ty(&[4])]);
    let x = f.params[0];
    let mut g = G { m: Module::default(), f, rng: Rng(1) };
    let t = g.op(attrs::Transpose { perm: vec![0, 1] }, &[x], None);
    g.f.returns = vec![t];
    g.m.funcs.push(g.f);
    match CpuRuntime::compile(&g.m, "f", RuntimeOptions::default()) {
        Err(RuntimeError::Unsupported { op, why }) => assert!(op.contains("tensor.transpose") || why.contains("tensor.transpose"), "{op}: {why}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}
