//! Pricing e-nodes with the target's [`CostModel`].
//!
//! Only two kinds of node cost anything at run time: a `kern.*_gemm` node
//! (the model's [`CostModel::gemm`] for its primitive, weight type and
//! shape) and a `kern.lut_precompute` node (the model's
//! [`CostModel::lut_precompute`], paid once per activation however many
//! GEMMs read the tables). Everything else is free: leaves are computed
//! outside the region, and weight-only sub-DAGs (dequantizing, packing,
//! tiling weights) are done offline. `tensor.matmul` and `quant.mpgemm` are
//! not kernels: a class is only left on them when no primitive applies.

use super::analysis::GemmAnalysis;
use super::lang::Gemm;
use super::rules::ACT_GROUP;
use crate::target::{CostModel, GemmQuery, Primitive};
use egg::{EGraph, Id, Language};

/// The cost of running kernel node `node` of class `class` for `rows`
/// activation rows per symbolic dimension, or `None` when the node is no
/// kernel, or the target cannot run it, or (LUT) its tables are not the ones
/// the rules build.
pub fn gemm_cost(g: &EGraph<Gemm, GemmAnalysis>, class: Id, node: &Gemm, model: &dyn CostModel, rows: u64) -> Option<(Primitive, f64)> {
    let p = node.primitive()?;
    if p == Primitive::Lut && tables_x(g, node.children()[0]).is_none() {
        return None;
    }
    let y = g[class].data.ty()?;
    let w = g[node.weight()?].data.ty()?;
    let q = GemmQuery::new(&y.shape[..y.rank().saturating_sub(1)], w, rows);
    model.gemm(p, &q, None).filter(|c| c.is_finite()).map(|c| (p, c))
}

/// The activation class whose tables class `t` is, if `t` holds
/// `(lut-precompute x ACT_GROUP)`.
pub fn tables_x(g: &EGraph<Gemm, GemmAnalysis>, t: Id) -> Option<Id> {
    g[t].nodes.iter().find_map(|n| match n {
        Gemm::LutPrecompute([x, a]) if g[*a].data.attr == Some(ACT_GROUP) => Some(*x),
        _ => None,
    })
}

/// The cost of building tables class `t` once.
pub fn tables_cost(g: &EGraph<Gemm, GemmAnalysis>, t: Id, model: &dyn CostModel, rows: u64) -> Option<f64> {
    let x = g[tables_x(g, t)?].data.ty()?;
    let (lead, k) = x.shape.split_last().map(|(k, lead)| (lead, k))?;
    let q_rows = lead.iter().map(|d| d.fixed().unwrap_or(rows)).product();
    model.lut_precompute(q_rows, k.fixed()?).filter(|c| c.is_finite())
}
