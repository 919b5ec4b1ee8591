//! `select-gemm` and `tile-gemm` keep the meaning of the program: a small
//! decoder block with LUT, N:M, BCQ and plain weights runs on the reference
//! interpreter before and after selection (the chosen plan and every
//! single-primitive plan), with the same outputs. The passes need a cost
//! model and the backends do not ship one yet, so a small table model
//! lives here (the real CPU/FlexCiM models plug into the same trait).

use flexc_backends::reference::{Interpreter, Tensor};
use flexc_ir::text::{parse_module, print_module};
use flexc_ir::verify::verify_module;
use flexc_ir::{ElemType, Module};
use flexc_passes::target::{CostModel, GemmQuery, Primitive, Tile};
use flexc_passes::{ManagerOptions, PassManager};
use std::sync::Arc;

/// Costs per weight element and row by primitive and encoding; one tile per primitive.
struct Table;

impl CostModel for Table {
    fn target(&self) -> &str {
        "cpu"
    }
    fn unit(&self) -> &str {
        "units"
    }
    fn source(&self) -> String {
        "select_gemm.rs".into()
    }
    fn gemm(&self, p: Primitive, q: &GemmQuery<'_>, tile: Option<Tile>) -> Option<f64> {
        let enc = q.weight.encoding.map_or("plain", |e| e.name());
        let per = match (p, enc) {
            (Primitive::Lut, "gq" | "bcq") => 1.0,
            (Primitive::ShiftAdd, "bcq") => 0.8,
            (Primitive::Sparse, "nm") => 1.0,
            (Primitive::Dense, "plain") => 8.0,
            (Primitive::Dense, _) => 4.0,
            _ => return None,
        };
        Some(per * (q.rows * q.n * q.k) as f64 * if tile.is_some() { 0.9 } else { 1.0 })
    }
    fn lut_precompute(&self, rows: u64, k: u64) -> Option<f64> {
        Some(2.0 * (rows * k) as f64)
    }
    fn tiles(&self, _p: Primitive, _q: &GemmQuery<'_>) -> Vec<Tile> {
        vec![Tile { m: 8, k: 32 }]
    }
}

/// Pseudo-random weights in [-2, 2].
fn values(n: usize, seed: &mut u64) -> String {
    let v: Vec<String> = (0..n)
        .map(|_| {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            format!("{:?}", (((*seed >> 33) % 2001) as f64 - 1000.0) / 500.0)
        })
        .collect();
    v.join(", ")
}

/// q/k/v (#gq 2-bit, sharing tables), o (#nm 2:4), gate/up (#bcq), down (plain).
fn block() -> Module {
    let mut seed = 7;
    let encs = [
        ("q", 16, 32, "#gq<bits = 2, group = 32, zero = false>"),
        ("k", 16, 32, "#gq<bits = 2, group = 32, zero = false>"),
        ("v", 16, 32, "#gq<bits = 2, group = 32, zero = false>"),
        ("o", 32, 16, "#nm<n = 2, m = 4>"),
        ("gate", 16, 32, "#bcq<bits = 2, group = 32, pot = true>"),
        ("up", 16, 32, "#bcq<bits = 2, group = 32, pot = true>"),
        ("down", 32, 16, ""),
    ];
    let mut text = String::new();
    for (n, rows, cols, _) in encs {
        text += &format!("weight @{n} : f32[{rows}, {cols}] = dense<[{}]>\n", values(rows * cols, &mut seed));
    }
    text += "\nfunc @block(%x: f32[seq, 32], %norm: f32[32]) -> f32[seq, 32] {\n  %h = tensor.rmsnorm %x, %norm : f32[seq, 32]\n";
    let lin = |out: &str, x: &str, (n, rows, cols, enc): (&str, usize, usize, &str)| {
        let mut s = format!("  %{n}.w = tensor.weight @{n} : f32[{rows}, {cols}]\n");
        let rhs = if enc.is_empty() {
            format!("%{n}.w")
        } else {
            s += &format!("  %{n}.q = quant.quantize %{n}.w {{encoding = {enc}}} : f32[{rows}, {cols}] {enc}\n");
            s += &format!("  %{n}.d = quant.dequantize %{n}.q : f32[{rows}, {cols}]\n");
            format!("%{n}.d")
        };
        s + &format!("  %{out} = tensor.matmul %{x}, {rhs} {{transpose_b}} : f32[seq, {rows}]\n")
    };
    text += &(lin("yq", "h", encs[0]) + &lin("yk", "h", encs[1]) + &lin("yv", "h", encs[2]));
    text += "  %kv = tensor.mul %yk, %yv : f32[seq, 16]\n  %a = tensor.add %yq, %kv : f32[seq, 16]\n";
    text += &lin("yo", "a", encs[3]);
    text += "  %r = tensor.add %x, %yo : f32[seq, 32]\n  %g = tensor.rmsnorm %r, %norm : f32[seq, 32]\n";
    text += &(lin("ygate", "g", encs[4]) + &lin("yup", "g", encs[5]));
    text += "  %s = tensor.silu %ygate : f32[seq, 16]\n  %m = tensor.mul %s, %yup : f32[seq, 16]\n";
    text += &lin("ydown", "m", encs[6]);
    text += "  %out = tensor.add %r, %ydown : f32[seq, 32]\n  return %out\n}\n";
    parse_module(&text).expect("the block parses")
}

fn run(m: &Module) -> Vec<f64> {
    let mut seed = 3;
    let x: Vec<f32> = values(3 * 32, &mut seed).split(", ").map(|v| v.parse().unwrap()).collect();
    let norm: Vec<f32> = (0..32).map(|i| 0.5 + i as f32 / 32.0).collect();
    let inputs = vec![Tensor::float(ElemType::F32, &[3, 32], x), Tensor::float(ElemType::F32, &[32], norm)];
    let out = Interpreter::new(m).run_id(m.func("block").unwrap(), inputs).expect("the block runs");
    out[0].to_f64().unwrap()
}

fn compile(pipeline: &str) -> Module {
    let mut m = block();
    let opts = ManagerOptions { verify_each: true, ..ManagerOptions::default() };
    let mut pm = PassManager::from_text(pipeline, opts).unwrap().with_cost_model(Arc::new(Table));
    pm.run(&mut m, &mut |_, _| {}).unwrap_or_else(|e| panic!("{pipeline}: {e}"));
    verify_module(&m).unwrap();
    m
}

#[test]
fn every_plan_computes_what_the_program_did() {
    let want = run(&block());
    for (pipeline, ops) in [
        ("select-gemm,tile-gemm", &["kern.lut_precompute", "kern.lut_gemm", "kern.sparse_gemm", "kern.shiftadd_gemm", "kern.dense_gemm", "kern.tile"][..]),
        ("select-gemm{only=lut},tile-gemm", &["kern.lut_gemm", "kern.dense_gemm"][..]),
        ("select-gemm{only=shiftadd}", &["kern.shiftadd_gemm", "kern.dense_gemm"][..]),
        ("select-gemm{only=sparse}", &["kern.sparse_gemm", "kern.dense_gemm"][..]),
        ("select-gemm{only=dense},tile-gemm", &["kern.dense_gemm", "kern.tile"][..]),
    ] {
        let m = compile(pipeline);
        let ir = print_module(&m);
        for op in ops {
            assert!(ir.contains(op), "{pipeline}: no {op} in\n{ir}");
        }
        assert!(!ir.contains("quant.mpgemm") && !ir.contains("tensor.matmul"), "{pipeline}: a GEMM was left undecided\n{ir}");
        let got = run(&m);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "{pipeline}: out[{i}] = {g}, expected {w}");
        }
    }
}

#[test]
fn the_chosen_plan_shares_one_table_for_qkv() {
    let ir = print_module(&compile("select-gemm"));
    // gq: LUT; bcq: shift-add (0.8 < 1.0 + tables), so gate/up build no tables.
    assert_eq!(ir.matches("= kern.lut_precompute").count(), 1, "{ir}");
    assert_eq!(ir.matches("= kern.lut_gemm").count(), 3, "{ir}");
    assert_eq!(ir.matches("= kern.shiftadd_gemm").count(), 2, "{ir}");
}
