//! `prune-nm`: apply the sparsity plan (`nm_plan`, from `flow-nm`) or one
//! uniform pattern: per output row, in every group of M consecutive input
//! channels, keep the N largest scores (Wanda `|W|·sqrt(scaler_row)` or
//! magnitude), no weight update (Wanda/FLOW's `prune_flow`). Weights are
//! dequantized to f32 first and stored as `#nm<n = N, m = M>` (values plus
//! index metadata, see `flexc_ir::quant::nm`), read through one
//! `quant.dequantize`. Unstructured entries (OWL) keep the lowest
//! `fraction · in` scores of each row pruned, stored as plain f32.
//!
//! `align=rows:R` / `align=pairs:R` align the masks of every R consecutive
//! output rows (the rows a FlexCiM macro column tile holds) so the macro's
//! shared pair selects realise the N:M speedup (see [`super::align`]).
//!
//! `update=sparsegpt` reconstructs the kept weights instead (SparseGPT's
//! OBS update through the calibration Hessian, [`super::sparsegpt`]); the
//! masks are then chosen by the OBS saliency `w²/[H⁻¹]_jj²` on the updated
//! weights (`score` is not read), aligned the same way. It needs Hessians
//! (`flexc calibrate --hessian`; the commands compute the default ones when
//! a pipeline asks for them) and applies to N:M entries only.
//!
//! `block=K` prunes only block K: the driver's sequential mode calibrates,
//! prunes block 0, re-calibrates on the pruned model, prunes block 1, …, so
//! each block sees inputs from the already-pruned earlier blocks, as the
//! reference does.

use super::align::{aligned_mask, Align};
use super::sparsegpt::sparsegpt;
use super::*;
use crate::pass::{Changed, Pass, PassCx, PassInfo};
use crate::options::{OptDecl, OptKind};
use crate::rewrite::{remove_dead_ops, replace_value};
use flexc_ir::quant::Primitive;
use flexc_ir::types::{Encoding, TensorType};
use flexc_ir::weights::{WeightData, WeightSource};
use flexc_ir::{attrs, Span};
use std::sync::Arc;

pub(crate) const INFO: PassInfo = PassInfo {
    name: "prune-nm",
    summary: "prune linears to their N:M pattern (N kept of M) by Wanda or magnitude score; store as #nm",
    options: &[
        OptDecl { name: "score", kind: OptKind::Str, default: "wanda", help: "wanda (needs --stats) | magnitude" },
        OptDecl { name: "pattern", kind: OptKind::Str, default: "", help: "one N:M for every block linear instead of the attached nm_plan" },
        OptDecl { name: "block", kind: OptKind::Int, default: "-1", help: "prune only this block (sequential calibration); -1: all" },
        OptDecl { name: "update", kind: OptKind::Str, default: "none", help: "none (masking only, Wanda/FLOW) | sparsegpt (OBS reconstruction through the calibration Hessians; masks by OBS saliency)" },
        OptDecl { name: "align", kind: OptKind::Str, default: "none", help: "none | rows:R (one N:M pattern per R output rows) | pairs:R (one kept count per pair per R rows); R = macro columns (FlexCiM: 32)" },
    ],
    make: |o| {
        let pattern = match o.str("pattern") {
            "" => None,
            s => Some(Nm::parse(s).map_err(|e| format!("prune-nm: pattern: {e}"))?),
        };
        let align = Align::parse(o.str("align")).map_err(|e| format!("prune-nm: {e}"))?;
        let block = o.int("block");
        if block < -1 {
            return Err(format!("prune-nm: block must be a block index (0, 1, ...) or -1 for all, got {block}"));
        }
        let sparsegpt = match o.str("update") {
            "none" => false,
            "sparsegpt" => true,
            s => return Err(format!("prune-nm: update must be none or sparsegpt, got '{s}'")),
        };
        Ok(Box::new(PruneNm { score: Score::parse(o.str("score")).map_err(|e| format!("prune-nm: {e}"))?, pattern, block: usize::try_from(o.int("block")).ok(), align, sparsegpt }))
    },
};

/// The pass.
pub struct PruneNm {
    /// The metric.
    pub score: Score,
    /// A uniform pattern overriding the plan.
    pub pattern: Option<Nm>,
    /// Only this block.
    pub block: Option<usize>,
    /// Mask alignment across output rows.
    pub align: Align,
    /// SparseGPT's reconstruction instead of plain masking.
    pub sparsegpt: bool,
}

/// The keep mask of one weight `[out, in]` for an N:M pattern (exactly `n`
/// per group; ties keep the lower index).
pub fn nm_mask(scores: &[f32], inp: usize, nm: Nm) -> Vec<bool> {
    let mut keep = vec![false; scores.len()];
    for (row_s, row_k) in scores.chunks_exact(inp).zip(keep.chunks_exact_mut(inp)) {
        for (gs, gk) in row_s.chunks_exact(nm.m() as usize).zip(row_k.chunks_exact_mut(nm.m() as usize)) {
            for i in flexc_ir::quant::nm::top_n(gs.iter().copied(), nm.n() as usize) {
                gk[i] = true;
            }
        }
    }
    keep
}

/// The keep mask for unstructured pruning: per row, the `floor(in·fraction)`
/// lowest scores pruned (stable sort, as Wanda's `torch.sort(stable=True)`).
pub fn unstructured_mask(scores: &[f32], inp: usize, fraction: f64) -> Vec<bool> {
    let k = (inp as f64 * fraction) as usize;
    let mut keep = vec![true; scores.len()];
    for (row_s, row_k) in scores.chunks_exact(inp).zip(keep.chunks_exact_mut(inp)) {
        let mut idx: Vec<usize> = (0..inp).collect();
        idx.sort_by(|&a, &b| row_s[a].total_cmp(&row_s[b]));
        for &i in &idx[..k] {
            row_k[i] = false;
        }
    }
    keep
}

/// Replaces weight `name` by new bytes of type `ty` and fixes every
/// `tensor.weight` of it: encoded results feed one `quant.dequantize`; plain
/// ones replace the dequantize that read the old encoding.
pub fn retype_weight(m: &mut Module, name: &str, ty: TensorType, bytes: Vec<u8>) -> Result<(), String> {
    m.weights.retain(|w| w.name != name);
    m.weights.insert(WeightData { name: name.to_string(), ty: ty.clone(), source: WeightSource::Derived(Arc::from(bytes)), span: Span::default() })?;
    for (_, f) in m.funcs.iter_mut() {
        let mut i = 0;
        while i < f.layout.len() {
            let op = f.layout[i];
            let is_it = matches!(&f.dfg.ops[op].attrs, OpAttrs::Weight(w) if w.name.0 == name);
            if !is_it {
                i += 1;
                continue;
            }
            let v = f.dfg.ops[op].result;
            f.dfg.values[v].ty = ty.clone();
            let users: Vec<(usize, flexc_ir::Op)> = f.layout.iter().enumerate().filter(|(_, o)| f.dfg.ops[**o].args.contains(&v)).map(|(k, o)| (k, *o)).collect();
            if ty.encoding.is_some() {
                if users.iter().any(|(_, o)| !matches!(f.dfg.ops[*o].attrs, OpAttrs::Dequantize(_))) {
                    let d = f.insert_at(i + 1, attrs::Dequantize {}.into(), &[v], None)?;
                    let others: Vec<flexc_ir::Op> = f.layout.iter().copied().filter(|&o| f.dfg.ops[o].result != d).collect();
                    f.dfg.replace_uses_in(&others, v, d);
                    for r in &mut f.returns {
                        if *r == v {
                            *r = d;
                        }
                    }
                }
            } else {
                for (_, o) in users {
                    if matches!(f.dfg.ops[o].attrs, OpAttrs::Dequantize(_)) {
                        let res = f.dfg.ops[o].result;
                        replace_value(f, res, v);
                    }
                }
            }
            i += 1;
        }
        remove_dead_ops(f);
    }
    Ok(())
}

/// The Hessian `prune-nm{update=sparsegpt}` reconstructs `name` with: the
/// sequential one when recorded, else the dense one.
fn hessian<'a>(m: &'a Module, name: &str) -> Result<&'a [f32], String> {
    let stats = m.calibration.as_ref().ok_or("prune-nm: update=sparsegpt needs calibration Hessians: run `flexc calibrate --hessian` and pass --stats FILE")?;
    stats
        .get_for_pruning(name)
        .and_then(|s| s.hessian.as_deref())
        .ok_or_else(|| format!("prune-nm: update=sparsegpt needs a calibration Hessian for @{name}: record them with `flexc calibrate --hessian`"))
}

impl Pass for PruneNm {
    fn name(&self) -> &'static str {
        "prune-nm"
    }

    fn run(&mut self, m: &mut Module, cx: &mut PassCx) -> Result<Changed, String> {
        let lins = linears(m);
        let plan: Plan = match (self.pattern, plan(m)?) {
            (Some(p), _) => lins.iter().filter(|l| l.block.is_some()).map(|l| (l.weight.clone(), Target::Nm(p))).collect(),
            (None, Some(p)) => p,
            (None, None) => return Err("prune-nm: no nm_plan attached (run flow-nm first) and no pattern= given".into()),
        };
        if let Some(b) = self.block
            && !lins.iter().any(|l| l.block == Some(b))
        {
            let last = lins.iter().filter_map(|l| l.block).max();
            return Err(format!("prune-nm: block={b}, but the module's blocks are {}", last.map_or("none".to_string(), |l| format!("0..={l}"))));
        }
        let mut changed = false;
        let (mut pruned, mut total) = (0usize, 0usize);
        // Scores kept by the aligned masks and by per-row masks (the alignment's cost).
        let (mut kept_aligned, mut kept_per_row) = (0f64, 0f64);
        // SparseGPT's summed loss estimate (Σ δ²/U_cc²).
        let mut sgpt_loss = 0f64;
        for (name, target) in &plan {
            let Some(lin) = lins.iter().find(|l| &l.weight == name) else {
                return Err(format!("prune-nm: the plan names @{name}, which is not a linear weight of this module"));
            };
            if self.block.is_some() && lin.block != self.block {
                continue;
            }
            let id = m.weights.lookup(name).ok_or_else(|| format!("unknown weight @{name}"))?;
            if m.weights.get(id).ty.encoding.is_some_and(|e| e.admits(Primitive::Sparse)) {
                continue; // already pruned (idempotent)
            }
            let n_el = lin.out * lin.inp;
            total += n_el;
            let (ty, bytes, kept) = match target {
                Target::Nm(nm) if nm.is_dense() => continue,
                Target::Unstructured(s) if *s <= 0.0 => continue,
                Target::Nm(nm) => {
                    if lin.inp % nm.m() != 0 {
                        return Err(format!("prune-nm: @{name} has {} input channels, not a multiple of M = {}", lin.inp, nm.m()));
                    }
                    let w = weight_f32(m, name)?;
                    let (values, keep) = if self.sparsegpt {
                        let h = hessian(m, name)?;
                        let p = sparsegpt(&w, lin.out, lin.inp, h, *nm, self.align).map_err(|e| format!("prune-nm: @{name}: {e}"))?;
                        sgpt_loss += p.loss;
                        (p.values, p.keep)
                    } else {
                        let s = scores(m, lin, self.score, StatsOf::Pruning)?;
                        let keep = match self.align {
                            Align::None => nm_mask(&s, lin.inp, *nm),
                            a => {
                                let keep = aligned_mask(&s, lin.inp, *nm, a).map_err(|e| format!("prune-nm: @{name}: {e}"))?;
                                let sum = |k: &[bool]| s.iter().zip(k).filter(|p| *p.1).map(|p| *p.0 as f64).sum::<f64>();
                                kept_aligned += sum(&keep);
                                kept_per_row += sum(&nm_mask(&s, lin.inp, *nm));
                                keep
                            }
                        };
                        (w, keep)
                    };
                    let enc = Encoding::Nm(*nm);
                    let bytes = flexc_ir::quant::nm::encode_masked(*nm, &values, &keep)?;
                    (TensorType { encoding: Some(enc), ..TensorType::new(flexc_ir::ElemType::F32, &[lin.out as u64, lin.inp as u64]) }, bytes, keep.iter().filter(|&&k| k).count())
                }
                Target::Unstructured(_) if self.sparsegpt => {
                    return Err(format!("prune-nm: update=sparsegpt prunes N:M entries only; the plan gives @{name} an unstructured fraction (OWL)"));
                }
                Target::Unstructured(frac) => {
                    let s = scores(m, lin, self.score, StatsOf::Pruning)?;
                    let mut w = weight_f32(m, name)?;
                    let keep = unstructured_mask(&s, lin.inp, *frac);
                    for (x, k) in w.iter_mut().zip(&keep) {
                        if !k {
                            *x = 0.0;
                        }
                    }
                    let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
                    (TensorType::new(flexc_ir::ElemType::F32, &[lin.out as u64, lin.inp as u64]), bytes, keep.iter().filter(|&&k| k).count())
                }
            };
            pruned += n_el - kept;
            retype_weight(m, name, ty, bytes)?;
            changed = true;
        }
        let aligned = match self.align {
            Align::None => String::new(),
            Align::Rows(r) => format!(", one pattern per {r} rows"),
            Align::Pairs(r) => format!(", one pair count per {r} rows"),
        };
        let aligned = if self.sparsegpt { format!("{aligned}, SparseGPT reconstruction (summed loss {sgpt_loss:.4e})") } else { aligned };
        let aligned = if kept_per_row > 0.0 { format!("{aligned} (keeping {:.2}% of the per-row masks' {} score)", 100.0 * kept_aligned / kept_per_row, if self.score == Score::Wanda { "Wanda" } else { "magnitude" }) } else { aligned };
        cx.remarks.push(format!("prune-nm: pruned {pruned} of {total} weights ({:.2}%){aligned}", 100.0 * pruned as f64 / total.max(1) as f64));
        Ok(Changed::from(changed))
    }
}
