//! `select-gemm` end to end: extraction per the test model, shared tables,
//! `only=`, the explanation, and errors.

use super::model::{count, linear, run, run_with, weight, TestModel};
use crate::target::Primitive;

const GQ2: &str = "f32[64, 64] #gq<bits = 2, group = 32, zero = false>";
const NM: &str = "f32[64, 64] #nm<n = 2, m = 4>";
const BCQ: &str = "f32[64, 64] #bcq<bits = 2, group = 32, pot = true>";
const Q40: &str = "f32[64, 64] #q4_0";
const PLAIN: &str = "f32[64, 64]";

/// Attention projections: q, k, v read `%x`.
fn qkv(ty: &str) -> String {
    let mut s = weight("q", ty) + &weight("k", ty) + &weight("v", ty);
    s += "\nfunc @f(%x: f32[seq, 64]) -> (f32[seq, 64], f32[seq, 64], f32[seq, 64]) {\n";
    s += &(linear("yq", "x", "q", ty) + &linear("yk", "x", "k", ty) + &linear("yv", "x", "v", ty));
    s + "  return %yq, %yk, %yv\n}\n"
}

/// One GEMM per weight kind, each on its own activation.
fn mixed() -> String {
    let kinds = [("a", GQ2), ("b", NM), ("c", BCQ), ("d", Q40), ("e", PLAIN)];
    let mut s: String = kinds.iter().map(|(n, t)| weight(n, t)).collect();
    let params: Vec<String> = kinds.iter().map(|(n, _)| format!("%x{n}: f32[seq, 64]")).collect();
    s += &format!("\nfunc @f({}) -> (f32[seq, 64], f32[seq, 64], f32[seq, 64], f32[seq, 64], f32[seq, 64]) {{\n", params.join(", "));
    for (n, t) in kinds {
        s += &linear(&format!("y{n}"), &format!("x{n}"), n, t);
    }
    s + "  return %ya, %yb, %yc, %yd, %ye\n}\n"
}

#[test]
fn each_gemm_gets_its_cheapest_primitive() {
    let (ir, report) = run(&mixed(), "select-gemm");
    // gq2: lut (1 + tables) < dense 4; nm: sparse 1 < dense 3; bcq: shiftadd 1.2 < lut 1.5 + tables;
    // q4_0 and plain weights: dense only.
    assert!(ir.contains("%ya = kern.lut_gemm"), "{ir}");
    assert!(ir.contains("%yb = kern.sparse_gemm %xb, %b"), "{ir}");
    assert!(ir.contains("%yc = kern.shiftadd_gemm %xc, %c"), "{ir}");
    assert!(ir.contains("%yd = kern.dense_gemm %xd, %d"), "{ir}");
    assert!(ir.contains("%ye = kern.dense_gemm %xe, %e"), "{ir}");
    assert_eq!(count(&ir, "tensor.matmul") + count(&ir, "quant.dequantize") + count(&ir, "quant.mpgemm"), 0, "{ir}");
    let e = report.explain.expect("an explanation");
    let chosen: Vec<(&str, &str)> = e.gemms.iter().map(|g| (g.op.as_str(), g.chosen.as_str())).collect();
    assert_eq!(chosen, [("%ya", "lut"), ("%yb", "sparse"), ("%yc", "shiftadd"), ("%yd", "dense"), ("%ye", "dense")]);
    // %yc's candidates: lut = 1.5·4096 + tables 2·64 (one sharer), shiftadd 1.2·4096, dense 4·4096.
    let c = &e.gemms[2].candidates;
    let cost = |p: &str| c.iter().find(|k| k.primitive == p).map(|k| k.cost);
    assert_eq!((cost("lut"), cost("shiftadd"), cost("dense"), cost("sparse")), (Some(6272.0), Some(4915.2), Some(16384.0), None));
}

#[test]
fn tables_are_built_once_for_qkv() {
    let (ir, report) = run(&qkv(GQ2), "select-gemm");
    assert_eq!(count(&ir, "kern.lut_precompute"), 1, "{ir}");
    assert_eq!(count(&ir, "kern.lut_gemm"), 3, "{ir}");
    let t = ir.lines().find(|l| l.contains("kern.lut_precompute")).and_then(|l| l.split_whitespace().next()).unwrap();
    assert_eq!(ir.matches(&format!("kern.lut_gemm {t}, ")).count(), 3, "{ir}");
    let e = report.explain.unwrap();
    assert_eq!((e.tables.len(), e.tables[0].sharers, e.tables[0].users), (1, 3, 3));
    // Each lut candidate carries a third of the tables: 4096 + 128 / 3.
    assert!((e.gemms[0].candidates[0].cost - (4096.0 + 128.0 / 3.0)).abs() < 1e-9);
}

#[test]
fn shared_tables_decide_for_the_group() {
    // Tables cost 300 per element (19200): one GEMM alone stays dense
    // (4096 + 19200 > 16384), three sharing them go LUT (3·4096 + 19200 < 3·16384).
    let dear = || TestModel { tables: 300.0, ..TestModel::default() };
    let mut one = weight("q", GQ2);
    one += "\nfunc @f(%x: f32[seq, 64]) -> f32[seq, 64] {\n";
    one += &linear("yq", "x", "q", GQ2);
    one += "  return %yq\n}\n";
    let (m, _) = run_with(&one, "select-gemm", dear()).unwrap();
    let ir = flexc_ir::text::print_module(&m);
    assert_eq!((count(&ir, "kern.dense_gemm"), count(&ir, "kern.lut_precompute")), (1, 0), "{ir}");
    let (m, r) = run_with(&qkv(GQ2), "select-gemm", dear()).unwrap();
    let ir = flexc_ir::text::print_module(&m);
    assert_eq!((count(&ir, "kern.lut_gemm"), count(&ir, "kern.lut_precompute")), (3, 1), "{ir}");
    let t = &r.explain.unwrap().tables[0];
    assert_eq!((t.with_tables, t.without_tables), (3.0 * 4096.0 + 19200.0, 3.0 * 16384.0));
}

#[test]
fn only_forces_one_primitive_where_it_applies() {
    // `only=lut` leaves the nm GEMM to dense: sparse is not forced.
    for (only, want) in [
        ("dense", ["dense"; 5]),
        ("lut", ["lut", "dense", "lut", "dense", "dense"]),
        ("sparse", ["dense", "sparse", "dense", "dense", "dense"]),
        ("shiftadd", ["dense", "dense", "shiftadd", "dense", "dense"]),
    ] {
        let (ir, report) = run(&mixed(), &format!("select-gemm{{only={only}}}"));
        let got: Vec<String> = report.explain.unwrap().gemms.iter().map(|g| g.chosen.clone()).collect();
        assert_eq!(got, want, "only={only}");
        assert_eq!(count(&ir, "kern.lut_precompute"), want.iter().filter(|p| **p == "lut").count(), "{ir}");
    }
    assert_eq!(Primitive::from_name("lut"), Some(Primitive::Lut));
    let err = run_with(&mixed(), "select-gemm{only=magic}", TestModel::default()).unwrap_err();
    assert!(err.contains("unknown primitive 'magic'"), "{err}");
}

#[test]
fn a_second_run_changes_nothing() {
    let (m, _) = run_with(&mixed(), "select-gemm", TestModel::default()).unwrap();
    let once = flexc_ir::text::print_module(&m);
    let (twice, report) = run(&once, "select-gemm");
    assert_eq!(once, twice);
    assert_eq!(report.passes[0].changed, crate::Changed::No);
}

#[test]
fn activation_products_and_weight_only_products_stay() {
    // x·aᵀ of two activations has no kernel; w1·w2ᵀ of two weights is offline work.
    let src = weight("w1", PLAIN)
        + &weight("w2", PLAIN)
        + "\nfunc @f(%x: f32[seq, 64], %a: f32[64, 64]) -> (f32[seq, 64], f32[64, 64]) {\n  \
           %y = tensor.matmul %x, %a {transpose_b} : f32[seq, 64]\n  \
           %w1 = tensor.weight @w1 : f32[64, 64]\n  \
           %w2 = tensor.weight @w2 : f32[64, 64]\n  \
           %z = tensor.matmul %w1, %w2 {transpose_b} : f32[64, 64]\n  \
           return %y, %z\n}\n";
    let (ir, report) = run(&src, "select-gemm");
    assert_eq!(count(&ir, "tensor.matmul"), 2, "{ir}");
    let e = report.explain.unwrap();
    assert_eq!(e.gemms.len(), 1, "only the activation product is reported");
    assert_eq!((e.gemms[0].chosen.as_str(), e.gemms[0].candidates.len()), ("tensor.matmul", 0));
    assert_eq!(report.passes[0].changed, crate::Changed::No);
}

#[test]
fn explain_reports_the_runner() {
    let (_, report) = run(&qkv(GQ2), "select-gemm");
    let e = report.explain.unwrap();
    let r = e.runner.as_ref().unwrap();
    assert_eq!(r.stop_reason, "saturated");
    assert!(r.iterations >= 2 && r.nodes > r.classes, "{r:?}");
    let text = e.text();
    assert!(text.starts_with("select-gemm: target cpu (test table, costs in units), rows = 1\n"), "{text}");
    assert!(text.contains("tables of %x: cost 128.0, 3 GEMM(s) could share them: built, read by 3"), "{text}");
    let (_, report) = run(&qkv(GQ2), "select-gemm{iters=1}");
    assert_eq!(report.explain.unwrap().runner.unwrap().stop_reason, "iteration limit 1");
}

#[test]
fn rows_scale_the_costs() {
    let (_, r1) = run(&qkv(GQ2), "select-gemm");
    let (_, r8) = run(&qkv(GQ2), "select-gemm{rows=8}");
    let dense = |r: &crate::RunReport| r.explain.as_ref().unwrap().gemms[0].candidates.iter().find(|c| c.primitive == "dense").unwrap().cost;
    assert_eq!(dense(&r8), 8.0 * dense(&r1));
}

#[test]
fn a_target_without_a_cost_model_is_an_error() {
    let err = run_with(&qkv(GQ2), "select-gemm{target=flexcim}", TestModel::default()).unwrap_err();
    assert!(err.contains("no cost model for target 'flexcim' (the driver provided: cpu)"), "{err}");
    let err = run_with(&qkv(GQ2), "select-gemm{target=gpu}", TestModel::default()).unwrap_err();
    assert!(err.contains("unknown target 'gpu'"), "{err}");
}

#[test]
fn explain_text_snapshot() {
    let (ir, report) = run(&qkv(GQ2), "select-gemm,tile-gemm");
    assert!(ir.contains("%yv = kern.lut_gemm %0, %3 : f32[seq, 64]"), "{ir}");
    let want = "\
select-gemm: target cpu (test table, costs in units), rows = 1
  %yq  -> lut       [*lut 4138.7, dense 16384.0]
  %yk  -> lut       [*lut 4138.7, dense 16384.0]
  %yv  -> lut       [*lut 4138.7, dense 16384.0]
  tables of %x: cost 128.0, 3 GEMM(s) could share them: built, read by 3 (12416.0 with vs 49152.0 without)
runner: saturated; 3 iteration(s), 25 e-nodes, 13 e-classes
tile-gemm:
  %yq (lut): 32x64 [8x32 9216.0, 32x64 5632.0]
  %yk (lut): 32x64 [8x32 9216.0, 32x64 5632.0]
  %yv (lut): 32x64 [8x32 9216.0, 32x64 5632.0]
";
    assert_eq!(report.explain.unwrap().text(), want);
}

#[test]
fn chained_and_shared_values_rebuild_in_program_order() {
    // %y1 is returned and feeds %y2; %d3 is read by an add and by a GEMM
    // that comes later; the GEMM on %y3 reuses the tables of %x built for %y1.
    let mut src = weight("w1", GQ2) + &weight("w2", GQ2) + &weight("w3", GQ2);
    src += "\nfunc @f(%x: f32[seq, 64], %z: f32[64, 64]) -> (f32[seq, 64], f32[seq, 64], f32[64, 64], f32[seq, 64]) {\n";
    src += &linear("y1", "x", "w1", GQ2);
    src += &linear("y2", "y1", "w2", GQ2);
    src += "  %w3 = tensor.weight @w3 : f32[64, 64] #gq<bits = 2, group = 32, zero = false>\n";
    src += "  %d3 = quant.dequantize %w3 : f32[64, 64]\n";
    src += "  %s = tensor.add %d3, %z : f32[64, 64]\n";
    src += "  %y3 = tensor.matmul %x, %d3 {transpose_b} : f32[seq, 64]\n";
    src += "  return %y1, %y2, %s, %y3\n}\n";
    let (ir, _) = run(&src, "select-gemm");
    assert_eq!(count(&ir, "kern.lut_gemm"), 3, "{ir}");
    assert_eq!(count(&ir, "kern.lut_precompute"), 2, "tables of %x (shared by y1, y3) and of %y1\n{ir}");
    assert!(ir.contains("%d3 = quant.dequantize %w3"), "the add still reads the decoded weight\n{ir}");
    assert!(ir.contains("%y2 = kern.lut_gemm") && ir.contains("kern.lut_precompute %y1"), "{ir}");
}
