//! Layer-wise N:M sparsity: FLOW's selection, OWL's allocations, Wanda scores,
//! and the plan `flow-nm` attaches for `prune-nm`.
//!
//! **Convention: N:M always means N kept (non-zero) of every M** (FLOW's
//! convention; Wanda's and OWL's `prune_n` counts pruned weights instead and
//! is converted where it appears, see [`owl_nm`]).
//!
//! * [`linears`]: every `tensor.matmul {transpose_b}` whose right operand is a
//!   weight `[out, in]` (through `quant.dequantize` / `tensor.cast`), in
//!   module order, with its decoder block (`blk.N.` prefix). Weights outside a
//!   block (the LM head, embeddings) are never pruned, as in the reference.
//! * [`scores`]: the Wanda metric `|W| · sqrt(scaler_row)` (or `|W|`).
//! * [`outlier_ratio`], [`locality`]: OWL's LOD and FLOW's outlier locality.
//! * [`select_exact`], [`select_nearest`]: the ILP of FLOW's `ilp_solver`.
//! * [`Plan`]: the chosen pattern per weight, stored in the module metadata
//!   (`nm_plan`) so it survives `.fir` text and any pass can read it.

pub mod align;
pub mod flow_nm;
pub mod measured;
pub mod prune_nm;
pub mod sparsegpt;

use flexc_ir::ops::AttrLit;
use flexc_ir::types::ElemType;
use flexc_ir::{Module, OpAttrs, Value};

/// One linear layer of the module.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    /// The weight's name.
    pub weight: String,
    /// The decoder block (`blk.N.`), if any.
    pub block: Option<usize>,
    /// Output channels (rows of W).
    pub out: usize,
    /// Input channels (columns of W).
    pub inp: usize,
}

/// The block index of a weight named `blk.N.…`.
pub fn block_of(name: &str) -> Option<usize> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

/// Every linear layer, in module order (each weight once).
pub fn linears(m: &Module) -> Vec<Linear> {
    let mut out: Vec<Linear> = Vec::new();
    for (_, f) in m.funcs.iter() {
        for &op in &f.layout {
            let data = &f.dfg.ops[op];
            let OpAttrs::Matmul(mm) = &data.attrs else { continue };
            if !mm.transpose_b {
                continue;
            }
            let mut v: Value = data.args[1];
            let name = loop {
                let Some(def) = f.dfg.def_op(v) else { break None };
                match &f.dfg.ops[def].attrs {
                    OpAttrs::Dequantize(_) | OpAttrs::Cast(_) => v = f.dfg.ops[def].args[0],
                    OpAttrs::Weight(w) => break Some(w.name.0.clone()),
                    _ => break None,
                }
            };
            let Some(name) = name else { continue };
            let Some(id) = m.weights.lookup(&name) else { continue };
            let Some(shape) = m.weights.get(id).ty.fixed_shape() else { continue };
            if shape.len() != 2 || out.iter().any(|l| l.weight == name) {
                continue;
            }
            out.push(Linear { block: block_of(&name), weight: name, out: shape[0] as usize, inp: shape[1] as usize });
        }
    }
    out
}

/// A weight's values as f32 (decoded through the codec if encoded).
pub fn weight_f32(m: &Module, name: &str) -> Result<Vec<f32>, String> {
    let id = m.weights.lookup(name).ok_or_else(|| format!("unknown weight @{name}"))?;
    let w = m.weights.get(id);
    let bytes = m.weights.bytes(id).map_err(|e| e.to_string())?;
    let n = w.ty.numel().ok_or_else(|| format!("@{name} has no fixed size"))? as usize;
    if let Some(enc) = w.ty.encoding {
        let mut out = vec![0f32; n];
        flexc_ir::quant::decode(enc, &bytes, &mut out)?;
        return Ok(out);
    }
    Ok(match w.ty.elem {
        ElemType::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        ElemType::F16 => bytes.chunks_exact(2).map(|b| half_to_f32(u16::from_le_bytes([b[0], b[1]]), false)).collect(),
        ElemType::BF16 => bytes.chunks_exact(2).map(|b| half_to_f32(u16::from_le_bytes([b[0], b[1]]), true)).collect(),
        e => return Err(format!("@{name}: cannot prune a weight of element type {e}")),
    })
}

fn half_to_f32(h: u16, bf16: bool) -> f32 {
    if bf16 {
        return f32::from_bits((h as u32) << 16);
    }
    let (sign, exp, frac) = ((h as u32 & 0x8000) << 16, (h >> 10) & 0x1f, h as u32 & 0x3ff);
    let bits = match exp {
        0 if frac == 0 => sign,
        0 => {
            // Subnormal: normalise.
            let shift = frac.leading_zeros() - 21;
            sign | ((127 - 15 + 1 - shift) << 23) | ((frac << shift) & 0x3ff) << 13
        }
        31 => sign | 0x7f80_0000 | (frac << 13),
        _ => sign | ((exp as u32 + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

/// Which importance score to prune by.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Score {
    /// Wanda: `|W_ij| · sqrt(scaler_row_j)` (needs calibration statistics).
    Wanda,
    /// Magnitude: `|W_ij|`.
    Magnitude,
}

impl Score {
    /// Parses `wanda` / `magnitude`.
    pub fn parse(s: &str) -> Result<Score, String> {
        match s {
            "wanda" => Ok(Score::Wanda),
            "magnitude" => Ok(Score::Magnitude),
            _ => Err(format!("score must be wanda or magnitude, got '{s}'")),
        }
    }
}

/// Which statistics a Wanda score reads.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StatsOf {
    /// The dense model's (selection: flow-nm, OWL).
    Dense,
    /// The sequential ones when the file has them (pruning: prune-nm).
    Pruning,
}

/// The score matrix `[out, in]` of one linear.
pub fn scores(m: &Module, lin: &Linear, score: Score, which: StatsOf) -> Result<Vec<f32>, String> {
    let w = weight_f32(m, &lin.weight)?;
    Ok(match score {
        Score::Magnitude => w.iter().map(|x| x.abs()).collect(),
        Score::Wanda => {
            let stats = m
                .calibration
                .as_ref()
                .ok_or("score=wanda needs calibration statistics: run `flexc calibrate` and pass --stats FILE (or use score=magnitude)")?;
            let s = match which {
                StatsOf::Dense => stats.get(&lin.weight),
                StatsOf::Pruning => stats.get_for_pruning(&lin.weight),
            };
            let s = s.ok_or_else(|| format!("the calibration statistics have no entry for @{}", lin.weight))?;
            if s.scaler_row.len() != lin.inp {
                return Err(format!("statistics of @{} have {} channels, the weight has {}", lin.weight, s.scaler_row.len(), lin.inp));
            }
            let sq: Vec<f32> = s.scaler_row.iter().map(|v| v.sqrt()).collect();
            w.chunks_exact(lin.inp).flat_map(|row| row.iter().zip(&sq).map(|(x, s)| x.abs() * s)).collect()
        }
    })
}

/// OWL's layer-wise outlier distribution, in percent:
/// `100 · |{a > hyper_m · mean(a)}| / |a|` (mean in f64).
pub fn outlier_ratio(a: &[f32], hyper_m: f64) -> f64 {
    if a.is_empty() {
        return 0.0;
    }
    let mean = a.iter().map(|&x| x as f64).sum::<f64>() / a.len() as f64;
    let thr = hyper_m * mean;
    100.0 * a.iter().filter(|&&x| x as f64 > thr).count() as f64 / a.len() as f64
}

/// The first `limit` outlier positions (flattened order), as FLOW takes them.
pub fn outlier_positions(a: &[f32], hyper_m: f64, limit: usize) -> Vec<u64> {
    if a.is_empty() {
        return Vec::new();
    }
    let mean = a.iter().map(|&x| x as f64).sum::<f64>() / a.len() as f64;
    let thr = hyper_m * mean;
    a.iter().enumerate().filter(|(_, x)| **x as f64 > thr).map(|(i, _)| i as u64).take(limit).collect()
}

/// FLOW's outlier locality: `1 / mean_{p<q} |P_p − P_q|` over positions
/// sorted ascending (0 for fewer than two). O(k):
/// `Σ_{p<q} (P_q − P_p) = Σ_t P_(t) · (2t − k − 1)`, t 1-based.
pub fn locality(sorted: &[u64]) -> f64 {
    let k = sorted.len();
    if k < 2 {
        return 0.0;
    }
    let sum: f64 = sorted.iter().enumerate().map(|(t, &p)| p as f64 * (2.0 * (t as f64 + 1.0) - k as f64 - 1.0)).sum();
    let pairs = (k * (k - 1) / 2) as f64;
    1.0 / (sum / pairs)
}

/// Min-max normalisation to [0, 1]; a constant vector (the reference divides
/// by zero there) gives all zeros.
pub fn normalise(x: &[f64]) -> Vec<f64> {
    let lo = x.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !(hi > lo) {
        return vec![0.0; x.len()];
    }
    x.iter().map(|v| (v - lo) / (hi - lo)).collect()
}

/// An N:M pattern: `n` kept of every `m` (the IR's one N:M type, valid by construction).
pub use flexc_ir::quant::Nm;

/// FLOW's candidates in the order the reference's loops create them
/// (`for n in [4, 2, 8]: for m in [8, 4]: if n <= m`).
pub const FLOW_CANDIDATES: [Nm; 5] = [Nm::of(4, 8), Nm::of(4, 4), Nm::of(2, 8), Nm::of(2, 4), Nm::of(8, 8)];

/// FLOW's per-block cost: `1·|N − 8·O| + 4·|M − 8·(1 − D)|` (8 = the largest
/// N and M of the reference's candidate set).
pub fn cost(c: Nm, o: f64, d: f64) -> f64 {
    (c.n() as f64 - 8.0 * o).abs() + 4.0 * (c.m() as f64 - 8.0 * (1.0 - d)).abs()
}

/// How a selection came out.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// The exact average was reachable; the choice is the ILP optimum.
    Optimal,
    /// Not reachable: what PuLP/CBC hands back (the LP relaxation's vertex,
    /// blocks with a fractional choice dropped, 4:8 padded at the end).
    Infeasible,
    /// `nearest`: the closest reachable average, at minimum cost.
    Nearest,
    /// `method=flow`: the measured-cost knapsack's optimum.
    Measured,
}

/// Sparsity in quarter steps, when every candidate's sparsity is a multiple
/// of 1/`steps` (the DP's unit).
fn steps_of(cands: &[Nm]) -> (u32, Vec<u32>) {
    let lcm = cands.iter().fold(1u32, |a, c| a / gcd(a, c.m() as u32) * c.m() as u32);
    (lcm, cands.iter().map(|c| (c.m() - c.n()) as u32 * (lcm / c.m() as u32)).collect())
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The most DP cells (blocks × reachable step totals) a selection may use:
/// 2^27 one-byte back pointers (128 MiB). Candidates whose M values have a
/// large least common multiple (1:16, 1:15, 1:13, ...: 720720) make the step
/// unit tiny and the table huge; such a list is refused, not allocated.
const MAX_DP_CELLS: usize = 1 << 27;

/// The minimum-cost choice with Σ steps == `total`, for every reachable
/// total: a DP over (block, cumulative steps). Holds one back pointer byte
/// per cell; a choice is rebuilt only for the total asked for.
struct DpTable {
    /// Per total: the optimal cost, when reachable.
    best: Vec<Option<f64>>,
    /// Per block and total: the candidate chosen (`u8::MAX`: unreachable).
    back: Vec<Vec<u8>>,
    steps: Vec<u32>,
}

impl DpTable {
    /// The choice per block for `total` (`None` when unreachable).
    fn choice(&self, total: usize) -> Option<Vec<usize>> {
        self.best.get(total).copied().flatten()?;
        let mut choice = vec![0; self.back.len()];
        let mut cur = total;
        for i in (0..self.back.len()).rev() {
            let c = self.back[i][cur];
            if c == u8::MAX {
                return None;
            }
            choice[i] = c as usize;
            cur -= self.steps[c as usize] as usize;
        }
        Some(choice)
    }
}

/// Runs the DP; `allowed[i]` restricts a block's candidates. Errors when the
/// table would exceed [`MAX_DP_CELLS`] or there are more than 255 candidates.
fn dp(costs: &[Vec<f64>], steps: &[u32], allowed: &[Vec<bool>]) -> Result<DpTable, String> {
    if steps.len() >= u8::MAX as usize {
        return Err(format!("{} candidate patterns; at most 254", steps.len()));
    }
    let max = (steps.iter().copied().max().unwrap_or(0) as usize).checked_mul(costs.len()).ok_or("the sparsity table overflows")?;
    let cells = (max + 1).saturating_mul(costs.len().max(1));
    if cells > MAX_DP_CELLS {
        return Err(format!(
            "the solver's table for {} units and these candidates would have {cells} cells (limit {MAX_DP_CELLS}): M values with a large common multiple (1:16,1:15,1:13: 720720) make the sparsity step tiny; use fewer distinct M",
            costs.len()
        ));
    }
    let mut best: Vec<Option<f64>> = vec![None; max + 1];
    best[0] = Some(0.0);
    let mut back: Vec<Vec<u8>> = Vec::with_capacity(costs.len());
    for (i, row) in costs.iter().enumerate() {
        let mut next: Vec<Option<f64>> = vec![None; max + 1];
        let mut bp: Vec<u8> = vec![u8::MAX; max + 1];
        for (t, b) in best.iter().enumerate() {
            let Some(b) = b else { continue };
            for (c, &cc) in row.iter().enumerate() {
                if !allowed[i][c] {
                    continue;
                }
                let t2 = t + steps[c] as usize;
                let v = b + cc;
                // Strictly better only: ties keep the earlier candidate / total.
                if next[t2].is_none_or(|x| v < x - 1e-12) {
                    next[t2] = Some(v);
                    bp[t2] = c as u8;
                }
            }
        }
        best = next;
        back.push(bp);
    }
    Ok(DpTable { best, back, steps: steps.to_vec() })
}

/// FLOW's `exact` selection, reproducing `ilp_solver` + PuLP/CBC:
/// minimise Σ cost subject to one candidate per block and the average
/// sparsity **equal** to `target`. When the equality is reachable the result
/// is the ILP optimum (found by DP). When it is not, CBC reports Infeasible
/// and returns its LP relaxation's vertex (verified on recorded solver
/// outputs, `passes/tests/fixtures/flow_ilp_reference.txt`): every block
/// integral but one, which is split between two neighbouring hull points; the
/// reference reads only `varValue == 1`, so that block gets nothing and the
/// list is padded with 4:8 **at the end** (shifting later blocks up by one).
pub fn select_exact(o: &[f64], d: &[f64], target: f64, cands: &[Nm]) -> Result<(Vec<Nm>, Status), String> {
    let l = o.len();
    let costs: Vec<Vec<f64>> = (0..l).map(|i| cands.iter().map(|&c| cost(c, o[i], d[i])).collect()).collect();
    let (unit, steps) = steps_of(cands);
    let want = target * unit as f64 * l as f64;
    if (want - want.round()).abs() < 1e-6 && want.round() >= 0.0 {
        let all = dp(&costs, &steps, &vec![vec![true; cands.len()]; l])?;
        if let Some(choice) = all.choice(want.round() as usize) {
            return Ok((choice.iter().map(|&c| cands[c]).collect(), Status::Optimal));
        }
    }
    // Infeasible: the LP relaxation (a multiple-choice knapsack LP), solved
    // greedily on each block's lower convex hull of (sparsity, cost).
    let fractional = lp_fractional_block(&costs, cands, target * l as f64);
    let mut out: Vec<Nm> = Vec::with_capacity(l);
    for (i, v) in fractional.iter().enumerate() {
        let _ = i;
        if let Some(c) = v {
            out.push(cands[*c]);
        }
    }
    let pad = cands.iter().copied().find(|c| *c == Nm::of(4, 8)).unwrap_or(Nm::of(4, 8));
    while out.len() < l {
        out.push(pad);
    }
    Ok((out, Status::Infeasible))
}

/// The LP relaxation's solution per block: `Some(candidate)` when integral,
/// `None` for the (at most one) block whose value is split.
fn lp_fractional_block(costs: &[Vec<f64>], cands: &[Nm], target_sum: f64) -> Vec<Option<usize>> {
    // Lower convex hull per block over (sparsity, cost), cheapest candidate
    // per sparsity level (ties: the earlier candidate).
    let hulls: Vec<Vec<(f64, f64, usize)>> = costs
        .iter()
        .map(|row| {
            let mut pts: Vec<(f64, f64, usize)> = Vec::new();
            for (c, &cc) in row.iter().enumerate() {
                let s = cands[c].sparsity();
                match pts.iter_mut().find(|p| (p.0 - s).abs() < 1e-12) {
                    Some(p) if cc < p.1 => *p = (s, cc, c),
                    Some(_) => {}
                    None => pts.push((s, cc, c)),
                }
            }
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut hull: Vec<(f64, f64, usize)> = Vec::new();
            for p in pts {
                while hull.len() >= 2 {
                    let (a, b) = (hull[hull.len() - 2], hull[hull.len() - 1]);
                    // Drop b if it lies on or above the segment a–p.
                    if (b.1 - a.1) * (p.0 - a.0) >= (p.1 - a.1) * (b.0 - a.0) {
                        hull.pop();
                    } else {
                        break;
                    }
                }
                hull.push(p);
            }
            hull
        })
        .collect();
    // Start every block at its cheapest hull point, then walk segments in
    // order of slope towards the target sum.
    let mut pos: Vec<usize> = hulls.iter().map(|h| (0..h.len()).min_by(|&a, &b| h[a].1.total_cmp(&h[b].1)).unwrap_or(0)).collect();
    let mut sum: f64 = hulls.iter().zip(&pos).map(|(h, &p)| h[p].0).sum();
    let up = sum < target_sum;
    let mut segs: Vec<(f64, usize, usize)> = Vec::new(); // (slope, block, to-index)
    for (i, h) in hulls.iter().enumerate() {
        if up {
            for k in pos[i] + 1..h.len() {
                segs.push(((h[k].1 - h[k - 1].1) / (h[k].0 - h[k - 1].0), i, k));
            }
        } else {
            for k in (0..pos[i]).rev() {
                segs.push(((h[k].1 - h[k + 1].1) / (h[k + 1].0 - h[k].0), i, k));
            }
        }
    }
    // Equal slopes are common (moving N by 2 while |N − 8·O| keeps its sign
    // always costs 8 per unit of sparsity); the LP is then degenerate and
    // CBC's pivot decides. Recorded outputs fit: longer segment first, then
    // the later block.
    let seg_len = |&(_, i, k): &(f64, usize, usize)| {
        let from = if up { k - 1 } else { k + 1 };
        (hulls[i][k].0 - hulls[i][from].0).abs()
    };
    segs.sort_by(|a, b| {
        let (sa, sb) = ((a.0 * 1e9).round(), (b.0 * 1e9).round());
        sa.total_cmp(&sb).then(seg_len(b).total_cmp(&seg_len(a))).then(b.1.cmp(&a.1))
    });
    let mut split: Option<usize> = None;
    let mut last_moved: Option<usize> = None;
    for &(_, i, k) in &segs {
        let ds = (hulls[i][k].0 - hulls[i][pos[i]].0).abs();
        let rest = (target_sum - sum).abs();
        if rest < 1e-9 {
            break;
        }
        if ds <= rest + 1e-9 {
            sum += if up { ds } else { -ds };
            pos[i] = k;
            last_moved = Some(i);
        } else {
            split = Some(i);
            sum = target_sum;
            break;
        }
    }
    // When the target lies beyond every hull (LP-infeasible), CBC's iterate
    // leaves one basic variable out of bounds: taken to be the last block moved.
    if (target_sum - sum).abs() > 1e-9 {
        split = last_moved;
    }
    hulls
        .iter()
        .enumerate()
        .map(|(i, h)| if Some(i) == split { None } else { Some(h[pos[i]].2) })
        .collect()
}

/// `nearest`: the reachable average closest to `target` (ties: the lower),
/// at minimum cost, solved exactly by DP. Blocks with `fixed[i]` set (the
/// dense ends) are held to that pattern, so the average is the real one.
pub fn select_nearest(o: &[f64], d: &[f64], target: f64, cands: &[Nm], fixed: &[Option<Nm>]) -> Result<Vec<Nm>, String> {
    let l = o.len();
    let mut all: Vec<Nm> = cands.to_vec();
    for f in fixed.iter().flatten() {
        if !all.contains(f) {
            all.push(*f);
        }
    }
    let costs: Vec<Vec<f64>> = (0..l).map(|i| all.iter().map(|&c| cost(c, o[i], d[i])).collect()).collect();
    let allowed: Vec<Vec<bool>> = (0..l)
        .map(|i| all.iter().enumerate().map(|(k, c)| match fixed.get(i).copied().flatten() {
            Some(f) => *c == f,
            None => k < cands.len(),
        }).collect())
        .collect();
    let (unit, steps) = steps_of(&all);
    let want = target * unit as f64 * l as f64;
    let table = dp(&costs, &steps, &allowed)?;
    let best = table
        .best
        .iter()
        .enumerate()
        .filter_map(|(t, v)| v.map(|c| (t, c)))
        .min_by(|a, b| ((a.0 as f64 - want).abs(), a.1).partial_cmp(&((b.0 as f64 - want).abs(), b.1)).unwrap_or(std::cmp::Ordering::Equal))
        .ok_or("no candidate assignment exists")?;
    let choice = table.choice(best.0).ok_or("no candidate assignment exists")?;
    Ok(choice.iter().map(|&c| all[c]).collect())
}

/// OWL's unstructured allocation (`prune_wanda_outlier`): sparsity per block
/// `1 − (ratio − mean(ratio) + 1 − S)`, `ratio = normalise(D) · 2λ`, clamped
/// to ≥ 0.01 as the reference does. Mean sparsity is `S` (before clamping).
pub fn owl_unstructured(lod: &[f64], target: f64, lamda: f64) -> Vec<f64> {
    let ratio: Vec<f64> = normalise(lod).iter().map(|r| r * 2.0 * lamda).collect();
    let mean = ratio.iter().sum::<f64>() / ratio.len().max(1) as f64;
    ratio.iter().map(|r| (1.0 - (r - mean + (1.0 - target))).max(0.01)).collect()
}

/// OWL's N:M variant (`prune_wanda_outlier_structure`): M fixed, the number
/// *pruned* per block is `(M − N) − round(ratio_ℓ)` with
/// `ratio = normalise(D)·λ − mean(·)`; returned as N kept of M, clamped to
/// `1..=M`.
pub fn owl_nm(lod: &[f64], base: Nm, lamda: f64) -> Vec<Nm> {
    let ratio: Vec<f64> = normalise(lod).iter().map(|r| r * lamda).collect();
    let mean = ratio.iter().sum::<f64>() / ratio.len().max(1) as f64;
    let pruned = (base.m() - base.n()) as i64;
    ratio
        .iter()
        .map(|r| {
            let p = (pruned - (r - mean).round() as i64).clamp(0, base.m() as i64 - 1);
            // 1 <= m − p <= m: always a valid pattern.
            Nm::new(base.m() as i64 - p, base.m() as i64).unwrap_or(base)
        })
        .collect()
}

/// One linear's entry in the plan: N:M or an unstructured fraction (the
/// IR's typed plan entry).
pub use flexc_ir::quant::plan::PlanTarget as Target;

/// The per-weight sparsity plan, as stored in the module attribute
/// `nm_plan = [[@weight, N, M], [@weight, 0.55], ...]` (N kept of M, or an
/// unstructured fraction pruned); typed and verified by the IR
/// (`flexc_ir::quant::plan`).
pub type Plan = Vec<(String, Target)>;

/// Metadata key of the plan.
pub use flexc_ir::quant::plan::PLAN_KEY;
/// Metadata key of the per-block selection record
/// `[[block, outlier_ratio, locality, N, M], ...]`.
pub const BLOCKS_KEY: &str = "nm_blocks";
/// Metadata key of the one-line summary (method, mode, target, achieved, status).
pub const SUMMARY_KEY: &str = "nm_select";

/// Writes the plan into the module metadata (replacing an earlier one).
pub fn set_plan(m: &mut Module, plan: &Plan) {
    set_meta(m, PLAN_KEY, flexc_ir::quant::plan::SparsityPlan(plan.clone()).to_attr());
}

/// Sets a metadata entry, replacing an earlier one.
pub fn set_meta(m: &mut Module, key: &str, v: AttrLit) {
    match m.meta.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = v,
        None => m.meta.push((key.to_string(), v)),
    }
}

/// Reads the plan from the module metadata, if any (checked: see
/// `flexc_ir::quant::plan`).
pub fn plan(m: &Module) -> Result<Option<Plan>, String> {
    let Some(v) = m.meta(PLAN_KEY) else { return Ok(None) };
    flexc_ir::quant::plan::SparsityPlan::from_attr(v).map(|p| Some(p.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_distinct_m_candidates_are_bounded_not_quadratic() {
        // 1:16,1:15,...,1:5 have lcm(M) = 720720: the old solver kept a
        // choice vector per reachable total (1.27 GB at 8 blocks). Now one
        // byte per cell, and a table past MAX_DP_CELLS is an error.
        let cands = Nm::parse_list("1:16,1:15,1:13,1:11,1:9,1:7,1:5").unwrap();
        let (o, d) = (vec![0.3; 4], vec![0.6; 4]);
        let got = select_nearest(&o, &d, 0.9, &cands, &[None; 4]).unwrap();
        assert_eq!(got.len(), 4);
        let (o, d) = (vec![0.3; 30], vec![0.6; 30]);
        let e = select_nearest(&o, &d, 0.9, &cands, &[None; 30]).unwrap_err();
        assert!(e.contains("limit") && e.contains("distinct M"), "{e}");
        let e = select_exact(&o, &d, 0.9, &cands).unwrap_err();
        assert!(e.contains("limit"), "{e}");
    }

    #[test]
    fn locality_matches_brute_force() {
        let mut seed = 3u64;
        for k in [0usize, 1, 2, 3, 10, 257] {
            let mut p: Vec<u64> = (0..k)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    seed >> 40
                })
                .collect();
            p.sort_unstable();
            p.dedup();
            let k = p.len();
            let brute = if k < 2 {
                0.0
            } else {
                let mut s = 0f64;
                for a in 0..k {
                    for b in a + 1..k {
                        s += (p[a] as f64 - p[b] as f64).abs();
                    }
                }
                1.0 / (s / (k * (k - 1) / 2) as f64)
            };
            let fast = locality(&p);
            assert!((fast - brute).abs() <= 1e-12 * brute.abs().max(1e-300), "k={k}: {fast} vs {brute}");
        }
    }

    #[test]
    fn ratio_and_positions() {
        let a = [1.0f32, 1.0, 10.0, 1.0, 7.0];
        // mean 4, threshold 0.5*4 = 2: two outliers.
        assert_eq!(outlier_ratio(&a, 0.5), 40.0);
        assert_eq!(outlier_positions(&a, 0.5, 1), vec![2]);
        assert_eq!(outlier_positions(&a, 0.5, 10), vec![2, 4]);
    }

    #[test]
    fn owl_allocations_keep_the_mean() {
        let lod = [3.0, 7.5, 1.0, 4.0, 9.0, 2.5];
        let s = owl_unstructured(&lod, 0.6, 0.08);
        let mean = s.iter().sum::<f64>() / s.len() as f64;
        assert!((mean - 0.6).abs() < 1e-12);
        // The spread is 2λ wide (normalised LOD × 2λ, mean-centred).
        let (lo, hi) = (s.iter().copied().fold(1.0, f64::min), s.iter().copied().fold(0.0, f64::max));
        assert!((hi - lo - 0.16).abs() < 1e-12);
        // More outliers, lower sparsity.
        assert!(s[4] < s[2]);
        let nm = owl_nm(&lod, Nm::of(4, 8), 2.0);
        assert!(nm.iter().all(|c| c.m() == 8 && (3..=5).contains(&c.n())));
        assert!(nm[4].n() >= nm[2].n());
    }

    #[test]
    fn nearest_is_within_one_step_and_exact_when_reachable() {
        let o: Vec<f64> = (0..10).map(|i| (i as f64 * 0.37).fract()).collect();
        let d: Vec<f64> = (0..10).map(|i| (i as f64 * 0.61).fract()).collect();
        for target in [0.3, 0.5, 0.53, 0.6, 0.7] {
            let ch = select_nearest(&o, &d, target, &FLOW_CANDIDATES, &[None; 10]).unwrap();
            let avg = ch.iter().map(|c| c.sparsity()).sum::<f64>() / 10.0;
            assert!((avg - target).abs() <= 0.25 / 10.0 / 2.0 + 1e-12, "target {target}: {avg}");
            let (ex, st) = select_exact(&o, &d, target, &FLOW_CANDIDATES).unwrap();
            if st == Status::Optimal {
                let ex_avg = ex.iter().map(|c| c.sparsity()).sum::<f64>() / 10.0;
                assert!((ex_avg - target).abs() < 1e-9);
                let cost_of = |v: &[Nm]| v.iter().enumerate().map(|(i, &c)| cost(c, o[i], d[i])).sum::<f64>();
                assert!((cost_of(&ex) - cost_of(&ch)).abs() < 1e-9);
            }
        }
        // Fixed dense ends are honoured and counted.
        let mut fixed = vec![None; 10];
        fixed[0] = Some(Nm::DENSE);
        fixed[9] = Some(Nm::DENSE);
        let ch = select_nearest(&o, &d, 0.5, &FLOW_CANDIDATES, &fixed).unwrap();
        assert_eq!((ch[0], ch[9]), (Nm::DENSE, Nm::DENSE));
        let avg = ch.iter().map(|c| c.sparsity()).sum::<f64>() / 10.0;
        assert!((avg - 0.5).abs() < 1e-9);
    }
}
