//! The e-class analysis of `select-gemm`: each class's tensor type and
//! whether it depends on weights only.
//!
//! A node's type is what the IR op table infers for the op it stands for
//! ([`OpAttrs::infer`]), so the e-graph and the IR can never disagree on
//! shapes or encodings; leaves take the type of the IR value they name.
//! "Weight-only" (Tensat's `all_weights`) marks sub-DAGs computable ahead of
//! time: the cost model charges them nothing. Merging two classes with
//! different types means a rule is wrong, so `merge` asserts (egg's
//! `ConstantFold` pattern); rules check that their right-hand side is well
//! typed before adding it (`rules::WellTyped`), so the assertion only fires
//! on a bug.

use super::lang::Gemm;
use egg::{Analysis, DidMerge, EGraph, Id, Language, Symbol};
use flexc_ir::TensorType;
use std::collections::HashMap;

/// What a class is: a tensor of some type, or an attribute value.
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    /// The tensor type, `None` for attribute leaves.
    pub ty: Option<TensorType>,
    /// The attribute value of a [`Gemm::Num`] class.
    pub attr: Option<i64>,
    /// The value depends on weights and constants only.
    pub weight_only: bool,
}

impl Meta {
    /// A tensor class.
    pub fn tensor(ty: TensorType, weight_only: bool) -> Meta {
        Meta { ty: Some(ty), attr: None, weight_only }
    }

    /// The tensor type (attribute classes have none).
    pub fn ty(&self) -> Option<&TensorType> {
        self.ty.as_ref()
    }
}

/// The analysis: the types of the leaves, keyed by their symbol.
#[derive(Default)]
pub struct GemmAnalysis {
    /// Every leaf's meta, filled by `convert` before any node is added.
    pub leaves: HashMap<Symbol, Meta>,
}

/// The meta of a node given its children's, or why the node is ill-typed.
pub fn infer<'a>(node: &Gemm, leaves: &HashMap<Symbol, Meta>, child: impl Fn(Id) -> &'a Meta) -> Result<Meta, String> {
    match node {
        Gemm::Num(n) => Ok(Meta { ty: None, attr: Some(*n), weight_only: true }),
        Gemm::Leaf(s) => leaves.get(s).cloned().ok_or_else(|| format!("unknown leaf {s}")),
        _ => {
            let attr = |id: Id| child(id).attr.unwrap_or(-1);
            let (op, args) = node.to_op(attr).expect("an op node");
            if node.children().iter().any(|&c| !args.contains(&c) && child(c).attr.is_none()) {
                return Err(format!("an attribute slot of {node} holds a tensor"));
            }
            let metas: Vec<&Meta> = args.iter().map(|&a| child(a)).collect();
            let tys = metas.iter().map(|m| m.ty().ok_or_else(|| format!("an operand of {node} is an attribute"))).collect::<Result<Vec<_>, _>>()?;
            let ty = op.infer(&tys, None)?;
            Ok(Meta::tensor(ty, metas.iter().all(|m| m.weight_only)))
        }
    }
}

impl Analysis<Gemm> for GemmAnalysis {
    type Data = Meta;

    fn make(egraph: &mut EGraph<Gemm, Self>, enode: &Gemm, _id: Id) -> Meta {
        infer(enode, &egraph.analysis.leaves, |c| &egraph[c].data).unwrap_or_else(|e| panic!("select-gemm built an ill-typed node {enode}: {e}"))
    }

    fn merge(&mut self, to: &mut Meta, from: Meta) -> DidMerge {
        assert_eq!(*to, from, "select-gemm merged classes of different types: a rule is unsound");
        DidMerge(false, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flexc_ir::text::parse_type;

    fn ty(s: &str) -> TensorType {
        parse_type(s).expect("a type")
    }

    #[test]
    fn types_come_from_the_op_table() {
        let mut g: EGraph<Gemm, GemmAnalysis> = EGraph::new(GemmAnalysis::default());
        g.analysis.leaves.insert("x".into(), Meta::tensor(ty("f32[seq, 64]"), false));
        g.analysis.leaves.insert("w".into(), Meta::tensor(ty("f32[8, 64] #gq<bits = 2, group = 32, zero = false>"), true));
        let y = g.add_expr(&"(lut-gemm (lut-precompute x 32) w)".parse().unwrap());
        assert_eq!(g[y].data, Meta::tensor(ty("f32[seq, 8]"), false));
        let d = g.add_expr(&"(dequant w)".parse().unwrap());
        assert_eq!(g[d].data, Meta::tensor(ty("f32[8, 64]"), true));
        let bad: egg::RecExpr<Gemm> = "(sparse-gemm x w)".parse().unwrap();
        let err = infer(&bad[Id::from(2)], &g.analysis.leaves, |c| &g[g.lookup(bad[c].clone()).unwrap()].data).unwrap_err();
        assert!(err.contains("#nm"), "{err}");
    }
}
