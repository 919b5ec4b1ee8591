//! Each rewrite fires under its precondition and not otherwise.

use crate::egraph::analysis::{GemmAnalysis, Meta};
use crate::egraph::lang::Gemm;
use crate::egraph::rules::rules;
use egg::{EGraph, Id, RecExpr, Runner, StopReason};
use flexc_ir::text::parse_type;

/// Saturates `start` with leaves `x: f32[seq, 64]` (an activation), `w: wty`
/// (a weight) and `a: wty` (not weight-only); returns the graph and root.
fn saturate(wty: &str, start: &str) -> (EGraph<Gemm, GemmAnalysis>, Id) {
    let mut an = GemmAnalysis::default();
    let t = parse_type(wty).unwrap();
    an.leaves.insert("x".into(), Meta::tensor(parse_type("f32[seq, 64]").unwrap(), false));
    an.leaves.insert("w".into(), Meta::tensor(t.clone(), true));
    an.leaves.insert("a".into(), Meta::tensor(t, false));
    let expr: RecExpr<Gemm> = start.parse().unwrap();
    let r: Runner<Gemm, GemmAnalysis> = Runner::new(an).with_expr(&expr).run(&rules());
    assert!(matches!(r.stop_reason, Some(StopReason::Saturated)), "{:?}", r.stop_reason);
    let root = r.roots[0];
    (r.egraph, root)
}

/// Whether `expr` is in the root's class.
fn has(g: &EGraph<Gemm, GemmAnalysis>, root: Id, expr: &str) -> bool {
    g.lookup_expr(&expr.parse().unwrap()).is_some_and(|c| g.find(c) == g.find(root))
}

/// The primitives the root's class offers.
fn offers(g: &EGraph<Gemm, GemmAnalysis>, root: Id) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = g[root].nodes.iter().filter_map(|n| n.primitive()).map(|p| p.name()).collect();
    v.sort();
    v
}

const GQ2: &str = "f32[16, 64] #gq<bits = 2, group = 32, zero = false>";

#[test]
fn fusion_identity_both_ways() {
    let (g, r) = saturate(GQ2, "(matmul x (dequant w) 1)");
    assert!(has(&g, r, "(mpgemm x w)"));
    let (g, r) = saturate(GQ2, "(mpgemm x w)");
    assert!(has(&g, r, "(matmul x (dequant w) 1)"));
    // Without transpose_b the product is x·dequant(w), not an mpgemm.
    let (g, r) = saturate("f32[64, 64] #gq<bits = 2, group = 32, zero = false>", "(matmul x (dequant w) 0)");
    assert!(!has(&g, r, "(mpgemm x w)"));
    assert_eq!(g[r].nodes.len(), 1);
}

#[test]
fn lut_needs_a_lut_weight() {
    let (g, r) = saturate(GQ2, "(matmul x (dequant w) 1)");
    assert!(has(&g, r, "(lut-gemm (lut-precompute x 32) w)"));
    assert!(has(&g, r, "(dense-gemm x w)"));
    assert!(has(&g, r, "(dense-gemm x (dequant w))"), "dense over w decoded ahead of time");
    assert_eq!(offers(&g, r), ["dense", "dense", "lut"]);
    for ty in ["f32[16, 64] #ternary<group = 64>", "f32[16, 64] #bcq<bits = 2, group = 32, pot = false>"] {
        let (g, r) = saturate(ty, "(mpgemm x w)");
        assert!(has(&g, r, "(lut-gemm (lut-precompute x 32) w)"), "{ty}");
    }
    // 8-bit-ish ggml blocks are not bit planes.
    let (g, r) = saturate("f32[16, 64] #q4_0", "(mpgemm x w)");
    assert!(!has(&g, r, "(lut-gemm (lut-precompute x 32) w)"));
    assert_eq!(offers(&g, r), ["dense", "dense"]);
    // Tables built with another act_group still mean the same product.
    let (g, r) = saturate(GQ2, "(lut-gemm (lut-precompute x 16) w)");
    assert!(has(&g, r, "(mpgemm x w)") && has(&g, r, "(lut-gemm (lut-precompute x 32) w)"));
}

#[test]
fn shiftadd_needs_bcq_and_sparse_needs_nm() {
    let (g, r) = saturate("f32[16, 64] #bcq<bits = 2, group = 32, pot = true>", "(mpgemm x w)");
    assert_eq!(offers(&g, r), ["dense", "dense", "lut", "shiftadd"]);
    let (g, r) = saturate("f32[16, 64] #nm<n = 2, m = 4>", "(mpgemm x w)");
    assert_eq!(offers(&g, r), ["dense", "dense", "sparse"]);
    let (g, r) = saturate(GQ2, "(mpgemm x w)");
    assert!(!has(&g, r, "(shiftadd-gemm x w)") && !has(&g, r, "(sparse-gemm x w)"));
}

#[test]
fn plain_matmul_is_dense_only_on_weights() {
    let (g, r) = saturate("f32[16, 64]", "(matmul x w 1)");
    assert_eq!(offers(&g, r), ["dense"]);
    assert!(!has(&g, r, "(mpgemm x w)"), "plain weights have no mpgemm");
    // An activation times an activation stays a matmul.
    let (g, r) = saturate("f32[16, 64]", "(matmul x a 1)");
    assert!(offers(&g, r).is_empty());
    // A runtime-quantized operand still fuses, but is never decoded "ahead of time".
    let (g, r) = saturate(GQ2, "(matmul x (dequant a) 1)");
    assert!(has(&g, r, "(mpgemm x a)") && has(&g, r, "(dense-gemm x a)"));
    assert!(!has(&g, r, "(dense-gemm x (dequant a))"));
}

#[test]
fn kern_ops_lead_back_to_every_alternative() {
    let (g, r) = saturate("f32[16, 64] #nm<n = 2, m = 4>", "(sparse-gemm x w)");
    assert!(has(&g, r, "(matmul x (dequant w) 1)") && has(&g, r, "(dense-gemm x w)"));
    let (g, r) = saturate(GQ2, "(dense-gemm x w)");
    assert!(has(&g, r, "(lut-gemm (lut-precompute x 32) w)"));
}
