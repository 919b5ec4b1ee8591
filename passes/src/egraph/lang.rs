//! The e-graph language of `select-gemm`: the decision ops only.
//!
//! Only the ops the GEMM choice rewrites between enter the e-graph
//! (`tensor.matmul`, `quant.dequantize`, `quant.mpgemm`, the `kern.` GEMMs and
//! their LUT table precompute); every other value is an opaque [`Gemm::Leaf`]
//! named after the IR value it stands for. egg variants cannot carry data and
//! children at once, so attributes are leaf children ([`Gemm::Num`]), as in
//! Tensat; each variant's comment names its child slots.

use crate::target::Primitive;
use egg::{define_language, Id, Symbol};
use flexc_ir::{attrs, OpAttrs};

define_language! {
    /// A node of the GEMM-selection e-graph.
    pub enum Gemm {
        // `tensor.matmul`: lhs, rhs, transpose_b (0 | 1).
        "matmul" = Matmul([Id; 3]),
        // `quant.dequantize`: w.
        "dequant" = Dequant(Id),
        // `quant.mpgemm` (always transpose_b): x, w.
        "mpgemm" = Mpgemm([Id; 2]),
        // `kern.lut_precompute`: x, act_group.
        "lut-precompute" = LutPrecompute([Id; 2]),
        // `kern.lut_gemm`: tables, w.
        "lut-gemm" = LutGemm([Id; 2]),
        // `kern.shiftadd_gemm`: x, w.
        "shiftadd-gemm" = ShiftaddGemm([Id; 2]),
        // `kern.sparse_gemm`: x, w.
        "sparse-gemm" = SparseGemm([Id; 2]),
        // `kern.dense_gemm`: x, w.
        "dense-gemm" = DenseGemm([Id; 2]),
        // An attribute value.
        Num(i64),
        // A value entering the region (`fn0:%v12`), see `convert`.
        Leaf(Symbol),
    }
}

impl Gemm {
    /// The primitive a `kern.*_gemm` node runs on, `None` for other nodes.
    pub fn primitive(&self) -> Option<Primitive> {
        match self {
            Gemm::LutGemm(_) => Some(Primitive::Lut),
            Gemm::ShiftaddGemm(_) => Some(Primitive::ShiftAdd),
            Gemm::SparseGemm(_) => Some(Primitive::Sparse),
            Gemm::DenseGemm(_) => Some(Primitive::Dense),
            _ => None,
        }
    }

    /// True for the nodes that compute a matrix product (the e-classes a
    /// GEMM decision is made for).
    pub fn is_product(&self) -> bool {
        matches!(self, Gemm::Matmul(_) | Gemm::Mpgemm(_)) || self.primitive().is_some()
    }

    /// The weight operand of a product node.
    pub fn weight(&self) -> Option<Id> {
        match self {
            Gemm::Matmul([_, w, _]) => Some(*w),
            Gemm::Mpgemm([_, w]) | Gemm::LutGemm([_, w]) | Gemm::ShiftaddGemm([_, w]) | Gemm::SparseGemm([_, w]) | Gemm::DenseGemm([_, w]) => Some(*w),
            _ => None,
        }
    }

    /// The IR op this node stands for and its tensor operands (attribute
    /// children are read through `attr`); `None` for leaves.
    pub fn to_op(&self, attr: impl Fn(Id) -> i64) -> Option<(OpAttrs, Vec<Id>)> {
        Some(match *self {
            Gemm::Matmul([x, w, t]) => (attrs::Matmul { transpose_b: attr(t) != 0 }.into(), vec![x, w]),
            Gemm::Dequant(w) => (attrs::Dequantize {}.into(), vec![w]),
            Gemm::Mpgemm([x, w]) => (attrs::Mpgemm { transpose_b: true }.into(), vec![x, w]),
            Gemm::LutPrecompute([x, g]) => (attrs::LutPrecompute { act_group: attr(g) }.into(), vec![x]),
            Gemm::LutGemm([t, w]) => (attrs::LutGemm {}.into(), vec![t, w]),
            Gemm::ShiftaddGemm([x, w]) => (attrs::ShiftaddGemm {}.into(), vec![x, w]),
            Gemm::SparseGemm([x, w]) => (attrs::SparseGemm {}.into(), vec![x, w]),
            Gemm::DenseGemm([x, w]) => (attrs::DenseGemm {}.into(), vec![x, w]),
            Gemm::Num(_) | Gemm::Leaf(_) => return None,
        })
    }

    /// The node for an IR op whose operands became `args`, with attribute
    /// leaves made by `num`; `None` when the op is not a decision op.
    pub fn from_op(op: &OpAttrs, args: &[Id], mut num: impl FnMut(i64) -> Id) -> Option<Gemm> {
        Some(match (op, args) {
            (OpAttrs::Matmul(a), &[x, w]) => Gemm::Matmul([x, w, num(a.transpose_b as i64)]),
            (OpAttrs::Dequantize(_), &[w]) => Gemm::Dequant(w),
            (OpAttrs::Mpgemm(a), &[x, w]) if a.transpose_b => Gemm::Mpgemm([x, w]),
            (OpAttrs::LutPrecompute(a), &[x]) => Gemm::LutPrecompute([x, num(a.act_group)]),
            (OpAttrs::LutGemm(_), &[t, w]) => Gemm::LutGemm([t, w]),
            (OpAttrs::ShiftaddGemm(_), &[x, w]) => Gemm::ShiftaddGemm([x, w]),
            (OpAttrs::SparseGemm(_), &[x, w]) => Gemm::SparseGemm([x, w]),
            (OpAttrs::DenseGemm(_), &[x, w]) => Gemm::DenseGemm([x, w]),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egg::RecExpr;

    #[test]
    fn nodes_round_trip_through_ir_ops() {
        let mut e: RecExpr<Gemm> = RecExpr::default();
        let x = e.add(Gemm::Leaf("x".into()));
        let w = e.add(Gemm::Leaf("w".into()));
        let g = e.add(Gemm::Num(32));
        let attr = |id: Id| if id == g { 32 } else { 1 };
        for node in [Gemm::Dequant(w), Gemm::Mpgemm([x, w]), Gemm::LutPrecompute([x, g]), Gemm::LutGemm([x, w]), Gemm::DenseGemm([x, w])] {
            let (op, args) = node.to_op(attr).expect("an op");
            let back = Gemm::from_op(&op, &args, |n| if n == 32 { g } else { unreachable!() }).expect("a node");
            assert_eq!(back, node);
        }
        assert!(Gemm::Leaf("x".into()).to_op(attr).is_none());
        assert_eq!("(lut-gemm (lut-precompute x 32) w)".parse::<RecExpr<Gemm>>().unwrap().to_string(), "(lut-gemm (lut-precompute x 32) w)");
    }
}
