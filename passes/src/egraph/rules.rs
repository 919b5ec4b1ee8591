//! The rewrite table of `select-gemm`: every way to compute one
//! mixed-precision GEMM `y = x · dequantize(w)ᵀ`.
//!
//! Each rule is one direction of an equivalence and has a precondition on
//! the weight ([`Pre`]); each law has its one-line math comment above its two
//! directions. On top of it, every rule checks that its right-hand
//! side is well typed under the IR op table before adding it ([`WellTyped`],
//! Tensat's `CheckApply`): that covers the shape details (LUT tables need
//! `k` a multiple of 4, kern GEMMs need a rank-2 weight of `x`'s element
//! type) without restating them here.
//!
//! LUT tables are built with [`ACT_GROUP`] (the op's default); because
//! `(lut-precompute ?x 32)` is hash-consed, every GEMM reading the same
//! activation (q/k/v, gate/up) points at one tables class.

use super::analysis::{infer, GemmAnalysis, Meta};
use super::lang::Gemm;
use egg::{ConditionalApplier, EGraph, ENodeOrVar, Id, Pattern, PatternAst, Rewrite, Subst, Var};
use flexc_ir::quant::Primitive;

/// Activations per quantization group of the LUT tables the rules build.
pub const ACT_GROUP: i64 = 32;

/// A rule's precondition on `?w` (and `?x`) beyond well-typedness.
#[derive(Copy, Clone, Debug)]
pub enum Pre {
    /// None.
    Always,
    /// `?w` is stored encoded.
    Encoded,
    /// `?w` is a LUT weight: `#gq` of at most 4 bits, `#ternary` or `#bcq` ([`flexc_ir::ops::lut_encoding`]).
    Lut,
    /// `?w` admits the shift-add GEMM (`#bcq`).
    ShiftAdd,
    /// `?w` admits the sparse GEMM (`#nm`).
    Sparse,
    /// `?w` is a plain (not encoded) tensor computed from weights only.
    PlainWeight,
}

impl Pre {
    fn holds(self, w: &Meta) -> bool {
        let enc = w.ty().and_then(|t| t.encoding);
        match self {
            Pre::Always => true,
            Pre::Encoded => enc.is_some(),
            Pre::Lut => enc.is_some_and(|e| e.admits(Primitive::Lut)),
            Pre::ShiftAdd => enc.is_some_and(|e| e.admits(Primitive::ShiftAdd)),
            Pre::Sparse => enc.is_some_and(|e| e.admits(Primitive::Sparse)),
            Pre::PlainWeight => enc.is_none() && w.weight_only,
        }
    }
}

/// The rule table: name, left-hand side, right-hand side, precondition on `?w`.
#[rustfmt::skip]
const RULES: &[(&str, &str, &str, Pre)] = &[
    // x·dequant(w)ᵀ = mpgemm(x, w): dequantize after the group reduction (MixPE), the fusion identity.
    ("fuse-dequant",       "(matmul ?x (dequant ?w) 1)",        "(mpgemm ?x ?w)",                        Pre::Encoded),
    ("unfuse-dequant",     "(mpgemm ?x ?w)",                    "(matmul ?x (dequant ?w) 1)",            Pre::Always),
    // x·wᵀ = Σ_b 2^b·Σ_g T_x[g][bits_b(w_g)]: table lookup over bit planes (T-MAC, LUT-GEMM).
    ("mpgemm-is-lut",      "(mpgemm ?x ?w)",                    "(lut-gemm (lut-precompute ?x 32) ?w)",  Pre::Lut),
    ("lut-is-mpgemm",      "(lut-gemm (lut-precompute ?x ?g) ?w)", "(mpgemm ?x ?w)",                     Pre::Lut),
    // x·wᵀ = Σ_b α_b·(x·b_bᵀ) with α_b powers of two: shifts and adds (ShiftAddLLM).
    ("mpgemm-is-shiftadd", "(mpgemm ?x ?w)",                    "(shiftadd-gemm ?x ?w)",                 Pre::ShiftAdd),
    ("shiftadd-is-mpgemm", "(shiftadd-gemm ?x ?w)",             "(mpgemm ?x ?w)",                        Pre::ShiftAdd),
    // x·wᵀ = Σ_{kept j} x_j·w_j: only the n kept of every m weights are read.
    ("mpgemm-is-sparse",   "(mpgemm ?x ?w)",                    "(sparse-gemm ?x ?w)",                   Pre::Sparse),
    ("sparse-is-mpgemm",   "(sparse-gemm ?x ?w)",               "(mpgemm ?x ?w)",                        Pre::Sparse),
    // x·wᵀ = dense dot products on the stored blocks (or on w decoded ahead of time).
    ("mpgemm-is-dense",    "(mpgemm ?x ?w)",                    "(dense-gemm ?x ?w)",                    Pre::Encoded),
    ("dense-is-mpgemm",    "(dense-gemm ?x ?w)",                "(mpgemm ?x ?w)",                        Pre::Encoded),
    // x·wᵀ with w a plain weight (or dequantized ahead of time) is a dense GEMM.
    ("matmul-is-dense",    "(matmul ?x ?w 1)",                  "(dense-gemm ?x ?w)",                    Pre::PlainWeight),
    ("dense-is-matmul",    "(dense-gemm ?x ?w)",                "(matmul ?x ?w 1)",                      Pre::PlainWeight),
];

/// Every rule of [`RULES`].
pub fn rules() -> Vec<Rewrite<Gemm, GemmAnalysis>> {
    RULES
        .iter()
        .map(|&(name, lhs, rhs, pre)| {
            let lhs: Pattern<Gemm> = lhs.parse().expect("rule lhs");
            let rhs: Pattern<Gemm> = rhs.parse().expect("rule rhs");
            debug_assert!(lhs.vars().contains(&var("?w")) && rhs.vars().iter().all(|v| lhs.vars().contains(v)), "{name}");
            let condition = WellTyped { pre, rhs: rhs.ast.clone() };
            Rewrite::new(name, lhs, ConditionalApplier { condition, applier: rhs }).expect("a valid rule")
        })
        .collect()
}

fn var(s: &str) -> Var {
    s.parse().expect("a pattern variable")
}

/// A rule's condition: `pre` holds for `?w` and the right-hand side type-checks.
pub struct WellTyped {
    pre: Pre,
    rhs: PatternAst<Gemm>,
}

impl egg::Condition<Gemm, GemmAnalysis> for WellTyped {
    fn check(&self, egraph: &mut EGraph<Gemm, GemmAnalysis>, _eclass: Id, subst: &Subst) -> bool {
        let Some(w) = subst.get(var("?w")) else { return false };
        if !self.pre.holds(&egraph[*w].data) {
            return false;
        }
        // Infer the right-hand side bottom-up, variables taking their class's meta.
        let mut metas: Vec<Meta> = Vec::with_capacity(self.rhs.as_ref().len());
        for node in self.rhs.as_ref() {
            let meta = match node {
                ENodeOrVar::Var(v) => egraph[subst[*v]].data.clone(),
                ENodeOrVar::ENode(n) => match infer(n, &egraph.analysis.leaves, |c| &metas[usize::from(c)]) {
                    Ok(m) => m,
                    Err(_) => return false,
                },
            };
            metas.push(meta);
        }
        true
    }

    fn vars(&self) -> Vec<Var> {
        vec![var("?w")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flexc_ir::{attrs, OpAttrs, Opcode};

    #[test]
    fn tables_are_built_with_the_ops_default_act_group() {
        let default = OpAttrs::from_entries(Opcode::LutPrecompute, Vec::new()).unwrap();
        assert_eq!(default, OpAttrs::LutPrecompute(attrs::LutPrecompute { act_group: ACT_GROUP }));
        let (_, _, rhs, _) = RULES.iter().find(|r| r.0 == "mpgemm-is-lut").unwrap();
        assert!(rhs.contains(&format!("(lut-precompute ?x {ACT_GROUP})")));
        assert_eq!(rules().len(), RULES.len());
    }
}
