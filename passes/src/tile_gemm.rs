//! `tile-gemm{target, rows}`: give each kern GEMM's weight the target's best tiling.
//!
//! For every `kern.*_gemm` whose weight depends on weights only (so the
//! layout change is done offline) and is not already a `kern.tile`, the
//! target's cost model proposes tiles ([`CostModel::tiles`]); the cheapest by
//! [`CostModel::gemm`] with that tile wins and `kern.tile %w {m, k}` is put
//! between the weight and the GEMM (CPU: T-MAC's `bm`/`kfactor` knobs; FlexCiM:
//! the macro's rows × columns). GEMMs whose primitive has no tiles on the
//! target, and tiles the op table rejects (`k` must cover whole encoding
//! blocks), are skipped.
//!
//! It runs **after** `select-gemm`, not before as DESIGN.md's arrow order
//! draws it: the tile shape depends on the primitive chosen (a LUT GEMM tiles
//! for its tables in registers, a sparse one for the N:M groups), and
//! `select-gemm` only sees untiled weights. Only the GEMM's own operand is
//! redirected (a new GEMM reads the tiled weight and replaces the old one),
//! so other readers of the same weight, such as a tied embedding's gather,
//! keep the plain layout.

use crate::egraph::convert::weight_only;
use crate::egraph::explain::{Explain, TileCandidate, TileExplain};
use crate::egraph::{cost_model, positive, target_option};
use crate::pass::{Changed, Pass, PassCx, PassInfo};
use crate::options::{OptDecl, OptKind};
use crate::rewrite::{remove_dead_ops, replace_value};
use crate::target::{CostModel, GemmQuery, Primitive, Tile};
use flexc_ir::{attrs, Func, Module, OpAttrs, Value};
use std::collections::HashMap;

pub(crate) const INFO: PassInfo = PassInfo {
    name: "tile-gemm",
    summary: "insert the target's cheapest kern.tile before each kern GEMM's weight (run after select-gemm)",
    options: &[
        OptDecl { name: "target", kind: OptKind::Str, default: "cpu", help: "whose cost model decides: cpu | flexcim" },
        OptDecl { name: "rows", kind: OptKind::Int, default: "1", help: "activation rows a symbolic dim (seq) counts as when costing: 1 = decode, 512 = prefill chunk" },
    ],
    make: |o| Ok(Box::new(TileGemm { target: target_option(o)?, rows: positive(o, "rows")? })),
};

struct TileGemm {
    target: String,
    rows: u64,
}

/// The primitive a kern GEMM op runs on.
pub fn kern_primitive(op: &OpAttrs) -> Option<Primitive> {
    match op {
        OpAttrs::LutGemm(_) => Some(Primitive::Lut),
        OpAttrs::ShiftaddGemm(_) => Some(Primitive::ShiftAdd),
        OpAttrs::SparseGemm(_) => Some(Primitive::Sparse),
        OpAttrs::DenseGemm(_) => Some(Primitive::Dense),
        _ => None,
    }
}

impl Pass for TileGemm {
    fn name(&self) -> &'static str {
        "tile-gemm"
    }

    fn run(&mut self, m: &mut Module, cx: &mut PassCx) -> Result<Changed, String> {
        let model = cost_model(cx, &self.target)?;
        let mut tiled = Vec::new();
        for (_, f) in m.funcs.iter_mut() {
            tiled.extend(tile_func(f, model.as_ref(), self.rows)?);
        }
        let changed = !tiled.is_empty();
        cx.explain.get_or_insert_with(Explain::default).tiles = tiled;
        Ok(Changed::from(changed))
    }
}

/// Tiles the weights of `f`'s kern GEMMs; returns what it chose.
fn tile_func(f: &mut Func, model: &dyn CostModel, rows: u64) -> Result<Vec<TileExplain>, String> {
    let wo = weight_only(f);
    let gemms: Vec<flexc_ir::Op> = f.layout.iter().copied().filter(|&o| kern_primitive(&f.dfg.ops[o].attrs).is_some()).collect();
    let mut tiles: HashMap<(Value, Tile), Value> = HashMap::new();
    let mut replaced: Vec<(Value, Value)> = Vec::new();
    let mut out = Vec::new();
    for op in gemms {
        let d = f.dfg.ops[op].clone();
        let p = kern_primitive(&d.attrs).expect("a kern GEMM");
        let w = d.args[1];
        let w_is_tiled = f.dfg.def_op(w).is_some_and(|o| matches!(f.dfg.ops[o].attrs, OpAttrs::Tile(_)));
        if !wo.contains(&w) || w_is_tiled {
            continue;
        }
        let (wty, y) = (f.dfg.ty(w).clone(), f.dfg.ty(d.result).clone());
        let q = GemmQuery::new(&y.shape[..y.rank().saturating_sub(1)], &wty, rows);
        let candidates: Vec<TileCandidate> = model
            .tiles(p, &q)
            .into_iter()
            .filter(|t| tile_attrs(*t).infer(&[&wty], None).is_ok())
            .filter_map(|t| model.gemm(p, &q, Some(t)).filter(|c| c.is_finite()).map(|cost| TileCandidate { m: t.m, k: t.k, cost }))
            .collect();
        let Some(best) = candidates.iter().fold(None::<&TileCandidate>, |b, c| if b.is_some_and(|b| b.cost <= c.cost) { b } else { Some(c) }).cloned() else {
            continue;
        };
        let at = f.layout.iter().position(|&o| o == op).ok_or("a GEMM left the layout")?;
        let tile = Tile { m: best.m, k: best.k };
        let (wt, at) = match tiles.get(&(w, tile)) {
            Some(&wt) => (wt, at),
            None => {
                let wt = f.insert_at(at, tile_attrs(tile), &[w], None)?;
                tiles.insert((w, tile), wt);
                (wt, at + 1)
            }
        };
        let mut args = d.args.to_vec();
        args[1] = wt;
        let new = f.insert_at(at, d.attrs.clone(), &args, None)?;
        replace_value(f, d.result, new);
        replaced.push((d.result, new));
        let op_name = f.dfg.values[d.result].name.as_ref().map_or_else(|| d.result.to_string(), |n| format!("%{n}"));
        out.push(TileExplain { op: op_name, primitive: p.name().into(), candidates, chosen: best });
    }
    remove_dead_ops(f);
    for (old, new) in replaced {
        f.dfg.values[new].name = f.dfg.values[old].name.take();
    }
    Ok(out)
}

fn tile_attrs(t: Tile) -> OpAttrs {
    attrs::Tile { m: t.m as i64, k: t.k as i64 }.into()
}
