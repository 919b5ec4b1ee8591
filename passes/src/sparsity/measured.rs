//! `flow-nm{method=flow}`: N:M per block by measured
//! sensitivity, solved exactly.
//!
//! **Ratio first, then the realisation.** The candidate patterns are
//! grouped by ratio (N/M); each ratio is realised by its candidate with the
//! largest M ([`realisations`]): at one density a larger M is a superset of
//! the smaller-M masks, so it never keeps less score (2:4 against 4:8: 86
//! against 52 perplexity on SmolLM2 at 5 chunks). The default candidates
//! `{1..8}:8, {1..4}:4, 1:2` thus become `{1..8}:8`: sparsity in eighths.
//! (Choosing a smaller M where the target's cost model says it is faster is
//! not done: on FlexCiM's slot rule, equal-ratio patterns cost the same.)
//!
//! **Cost of a candidate** ([`unit_costs`]): what it really costs, measured
//! by the driver (`flexc_compiler::calib::nm_sensitivity`) and attached as the
//! `nm_sensitivity` metadata: for each block and each probe pattern
//! (`probes`, default 1:8, 2:8, 3:8, 4:8, 6:8), the increase of the mean
//! next-token NLL on calibration windows when that block alone is pruned by
//! the pipeline's own `prune-nm` (so SparseGPT's reconstruction when the
//! pipeline reconstructs, Wanda masks when it masks). Between probes the
//! cost is interpolated linearly in the kept fraction ([`interpolate`];
//! dense costs 0, the table is made monotone first). Without the table
//! `method=flow` is an error: nothing is guessed.
//!
//! Why the former cost failed (2,230 perplexity at 60% on SmolLM2 against
//! 299 for uniform 3:8, Wanda on both sides): it was the *relative* pruned
//! Wanda score mass of each linear, `Σ_pruned s²/Σ s²`, summed over the
//! block. That number is scale-free per layer, so it says nothing about how
//! much a block's error moves the loss: it priced block 0 (whose error every
//! later block carries) as the cheapest block and gave it 2:8. It was also
//! measured with Wanda masks whatever the pipeline's update.
//!
//! **Allocation**: one candidate per unit minimising the summed cost with
//! the parameter-weighted average sparsity at least the target — the
//! multiple-choice knapsack over kept weights, solved by
//! [`crate::quant::mixed::allocate`] in units of the sizes' common divisor
//! (exact DP; exact rounding when the units are few, e.g. 30 blocks × 8
//! eighths; otherwise its unit rounding can only make the result slightly
//! sparser than the target). Units held fixed
//! (the dense ends) keep their pattern and count in the average.
//!
//! FLOW's own formulation (outlier ratio and locality, the L1 cost
//! `|N − 8·O| + 4·|M − 8·(1 − D)|`, equality constraint) stays as
//! `method=flow-reference` (see [`super::select_exact`]). Its objective is
//! piecewise linear with equal slopes, so it has many tied optima
//! (on SmolLM2: 25 at 50% and about 2 million at 25%); "the same plan as
//! CBC" is only defined up to those ties (see the test
//! `flow_reference_objective_has_tied_optima`).

use super::Nm;
use flexc_ir::ops::AttrLit;
use crate::quant::mixed::{allocate, Choice};
use flexc_ir::Module;

/// One candidate per distinct ratio N/M: the one with the largest M, in
/// ascending sparsity.
pub fn realisations(cands: &[Nm]) -> Vec<Nm> {
    let mut out: Vec<Nm> = Vec::new();
    for &c in cands {
        match out.iter_mut().find(|o| o.n() * c.m() == c.n() * o.m()) {
            Some(o) if c.m() > o.m() => *o = c,
            Some(_) => {}
            None => out.push(c),
        }
    }
    out.sort_by(|a, b| a.sparsity().total_cmp(&b.sparsity()).then(b.m().cmp(&a.m())));
    out
}

/// Metadata key of the measured table `[[block, N, M, dnll], ...]` (the
/// driver attaches it: `flexc_compiler::calib::nm_sensitivity`).
pub const SENSITIVITY_KEY: &str = "nm_sensitivity";
/// Metadata key of the `prune-nm{…}` the table was measured with.
pub const SENSITIVITY_UPDATE_KEY: &str = "nm_sensitivity_update";

/// How the driver probes (the `probes`, `probe-samples`, `probe-seqlen`
/// options of `flow-nm`).
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeSettings {
    /// The probe patterns.
    pub probes: Vec<Nm>,
    /// Calibration windows.
    pub samples: usize,
    /// Tokens per window (the second half is scored).
    pub seqlen: usize,
    /// Window seed.
    pub seed: u64,
}

/// Default probes: every eighth from 1:8 to 4:8, where the costs bend
/// (linear interpolation between 2:8 and 4:8 overprices 3:8 and pushes the
/// DP to mix 2:8 and 4:8), and 6:8; 5:8 and 7:8 are interpolated, dense is
/// free.
pub const DEFAULT_PROBES: &str = "1:8,2:8,3:8,4:8,6:8";

impl ProbeSettings {
    /// From a `flow-nm{…}` pipeline entry (defaults where not given).
    pub fn from_spec(spec: &crate::pipeline::PassSpec) -> Result<ProbeSettings, String> {
        let get = |k: &str| spec.options.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        let num = |k: &str, d: usize| -> Result<usize, String> {
            get(k).map_or(Ok(d), |v| v.parse::<usize>().ok().filter(|&x| x > 0).ok_or_else(|| format!("flow-nm: {k} must be a positive integer, got '{v}'")))
        };
        let probes = Nm::parse_list(get("probes").unwrap_or(DEFAULT_PROBES)).map_err(|e| format!("flow-nm: probes: {e}"))?;
        if probes.is_empty() || probes.iter().any(|p| *p == Nm::DENSE || p.n() == p.m()) {
            return Err("flow-nm: probes must be sparse patterns (dense costs nothing and is not probed)".into());
        }
        let seqlen = num("probe-seqlen", 160)?;
        if seqlen < 8 {
            return Err(format!("flow-nm: probe-seqlen must be at least 8, got {seqlen}"));
        }
        Ok(ProbeSettings { probes, samples: num("probe-samples", 4)?, seqlen, seed: 42 })
    }
}

/// The measured table of the module, per block: `(kept fraction, cost)`
/// points sorted by kept fraction, with the dense point `(1, 0)`.
pub fn measured_table(m: &Module) -> Result<Option<std::collections::BTreeMap<usize, Vec<(f64, f64)>>>, String> {
    let Some(v) = m.meta(SENSITIVITY_KEY) else { return Ok(None) };
    let bad = || format!("{SENSITIVITY_KEY}: expected [[block, N, M, cost], ...]");
    let AttrLit::List(rows) = v else { return Err(bad()) };
    let mut out: std::collections::BTreeMap<usize, Vec<(f64, f64)>> = Default::default();
    for r in rows {
        let AttrLit::List(e) = r else { return Err(bad()) };
        let int = |i: usize| match e.get(i) {
            Some(AttrLit::Int(x)) if *x >= 0 => Ok(*x),
            _ => Err(bad()),
        };
        let (k, n, mm) = (int(0)? as usize, int(1)?, int(2)?);
        let cost = match e.get(3) {
            Some(AttrLit::Float(x)) if x.is_finite() => *x,
            Some(AttrLit::Int(x)) => *x as f64,
            _ => return Err(bad()),
        };
        let nm = Nm::new(n, mm).map_err(|e| format!("{SENSITIVITY_KEY}: {e}"))?;
        out.entry(k).or_default().push((1.0 - nm.sparsity(), cost));
    }
    for pts in out.values_mut() {
        pts.push((1.0, 0.0));
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Ok(Some(out))
}

/// The cost at kept fraction `f` from measured points (sorted by kept
/// fraction, the dense point last): first made monotone (a sparser pattern
/// never costs less than a denser one: the running maximum from the dense
/// end; a negative ΔNLL, calibration noise, counts as 0), then linear
/// between neighbouring points; below the sparsest probe, the slope of the
/// two sparsest points continues.
pub fn interpolate(points: &[(f64, f64)], f: f64) -> f64 {
    let mut pts: Vec<(f64, f64)> = points.to_vec();
    let mut run = 0f64;
    for p in pts.iter_mut().rev() {
        run = run.max(p.1);
        p.1 = run;
    }
    if let Some(e) = pts.iter().find(|p| (p.0 - f).abs() < 1e-12) {
        return e.1;
    }
    match pts.iter().position(|p| p.0 > f) {
        Some(0) if pts.len() >= 2 => {
            let (a, b) = (pts[0], pts[1]);
            a.1 + (a.1 - b.1) / (b.0 - a.0) * (a.0 - f)
        }
        Some(0) | None => pts.last().map_or(0.0, |p| p.1),
        Some(i) => {
            let (a, b) = (pts[i - 1], pts[i]);
            a.1 + (b.1 - a.1) * (f - a.0) / (b.0 - a.0)
        }
    }
}

/// Each unit's (block's) cost per candidate, interpolated from the measured
/// table (module docs); an error if a block was not measured.
pub fn unit_costs(table: &std::collections::BTreeMap<usize, Vec<(f64, f64)>>, unit_block: &[usize], cands: &[Nm]) -> Result<Vec<Vec<f64>>, String> {
    unit_block
        .iter()
        .map(|b| {
            let pts = table.get(b).ok_or_else(|| format!("block {b} has no measured cost in {SENSITIVITY_KEY}"))?;
            Ok(cands.iter().map(|c| interpolate(pts, 1.0 - c.sparsity())).collect())
        })
        .collect()
}

/// The exact allocation: per unit, the index into `cands` minimising the
/// summed cost with `Σ size·(1 − sparsity) ≤ (1 − target)·Σ size`; units
/// with `fixed[i]` get that pattern (it must be in `cands`).
pub fn allocate_units(costs: &[Vec<f64>], sizes: &[u64], cands: &[Nm], target: f64, fixed: &[Option<Nm>]) -> Result<Vec<usize>, String> {
    let total: u64 = sizes.iter().sum();
    let budget = ((1.0 - target) * total as f64).floor() as u64;
    let layers: Vec<Vec<(usize, Choice)>> = costs
        .iter()
        .zip(sizes)
        .enumerate()
        .map(|(i, (row, &size))| {
            cands
                .iter()
                .enumerate()
                .filter(|(_, c)| fixed.get(i).copied().flatten().is_none_or(|f| f == **c))
                .filter(|(_, c)| (size * c.n() as u64).is_multiple_of(c.m() as u64))
                .map(|(j, c)| (j, Choice { bytes: size * c.n() as u64 / c.m() as u64, error: row[j] }))
                .collect()
        })
        .collect();
    // In units of the greatest common divisor of the sizes, so that the
    // knapsack's rounding to budget units is exact for block-sized units.
    let g = layers.iter().flatten().map(|p| p.1.bytes).fold(0u64, gcd).max(1);
    let choices: Vec<Vec<Choice>> = layers.iter().map(|l| l.iter().map(|p| Choice { bytes: p.1.bytes / g, ..p.1 }).collect()).collect();
    let pick = allocate(&choices, budget / g).map_err(|e| format!("no allocation reaches sparsity {target}: {e}"))?;
    Ok(pick.iter().zip(&layers).map(|(&j, l)| l[j].0).collect())
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::super::{cost, select_exact, Status, FLOW_CANDIDATES};
    use super::*;

    fn nm(n: u8, m: u8) -> Nm {
        Nm::of(n, m)
    }

    #[test]
    fn each_ratio_is_realised_with_the_largest_m() {
        let all = Nm::parse_list("1:8,2:8,3:8,4:8,5:8,6:8,7:8,8:8,1:4,2:4,3:4,4:4,1:2").unwrap();
        let r = realisations(&all);
        assert_eq!(r, (1..=8).rev().map(|n| nm(n, 8)).collect::<Vec<_>>());
        assert_eq!(realisations(&[nm(2, 4), nm(1, 2), nm(3, 4)]), vec![nm(3, 4), nm(2, 4)]);
    }

    #[test]
    fn allocation_is_exact_and_reaches_the_target() {
        // Exhaustive check over 4 units × 4 candidates.
        let cands = [nm(8, 8), nm(6, 8), nm(4, 8), nm(2, 8)];
        let costs: Vec<Vec<f64>> = vec![vec![0.0, 0.1, 0.5, 2.0], vec![0.0, 0.05, 0.2, 0.6], vec![0.0, 0.3, 1.0, 3.0], vec![0.0, 0.01, 0.02, 0.3]];
        let sizes = [800u64, 800, 800, 800];
        for target in [0.25, 0.5, 0.6, 0.7] {
            let pick = allocate_units(&costs, &sizes, &cands, target, &[None; 4]).unwrap();
            let sp: f64 = pick.iter().map(|&j| cands[j].sparsity()).sum::<f64>() / 4.0;
            assert!(sp >= target - 1e-12, "target {target}: {sp}");
            let got: f64 = pick.iter().enumerate().map(|(i, &j)| costs[i][j]).sum();
            let mut best = f64::INFINITY;
            for code in 0..256usize {
                let idx: Vec<usize> = (0..4).map(|i| code >> (2 * i) & 3).collect();
                let s: f64 = idx.iter().map(|&j| cands[j].sparsity()).sum::<f64>() / 4.0;
                if s >= target - 1e-12 {
                    best = best.min(idx.iter().enumerate().map(|(i, &j)| costs[i][j]).sum());
                }
            }
            assert!((got - best).abs() < 1e-12, "target {target}: {got} vs {best}");
        }
        // Fixed units hold their pattern.
        let pick = allocate_units(&costs, &sizes, &cands, 0.5, &[Some(nm(8, 8)), None, None, None]).unwrap();
        assert_eq!(pick[0], 0);
        assert!(allocate_units(&costs, &sizes, &cands, 0.9, &[None; 4]).is_err());
    }

    /// The DP against exhaustive search on random small instances with
    /// unequal unit sizes (the average is weighted by parameters) and every
    /// eighth as a candidate.
    #[test]
    fn allocation_matches_exhaustive_search_with_unequal_sizes() {
        let cands: Vec<Nm> = (1..=8).rev().map(|n| nm(n, 8)).collect();
        let mut seed = 9u64;
        let mut rnd = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as f64 / (1u64 << 31) as f64
        };
        for trial in 0..40 {
            let units = 2 + trial % 3;
            let sizes: Vec<u64> = (0..units).map(|_| 8 * (1 + (rnd() * 6.0) as u64) * 8).collect();
            // Costs increasing with sparsity, random slopes.
            let costs: Vec<Vec<f64>> = (0..units)
                .map(|_| {
                    let a = rnd() * 3.0;
                    let b = rnd() * 2.0;
                    cands.iter().map(|c| a * c.sparsity() + b * c.sparsity().powi(3)).collect()
                })
                .collect();
            let total: u64 = sizes.iter().sum();
            for target in [0.5, 0.6, 0.7] {
                let pick = allocate_units(&costs, &sizes, &cands, target, &vec![None; units]).unwrap();
                let kept = |idx: &[usize]| idx.iter().zip(&sizes).map(|(&j, &s)| s as f64 * (1.0 - cands[j].sparsity())).sum::<f64>();
                assert!(kept(&pick) <= (1.0 - target) * total as f64 + 1e-9, "trial {trial} target {target}: over budget");
                let got: f64 = pick.iter().enumerate().map(|(i, &j)| costs[i][j]).sum();
                let k = cands.len();
                let mut best = f64::INFINITY;
                for code in 0..k.pow(units as u32) {
                    let idx: Vec<usize> = (0..units).map(|i| code / k.pow(i as u32) % k).collect();
                    if kept(&idx) <= (1.0 - target) * total as f64 + 1e-9 {
                        best = best.min(idx.iter().enumerate().map(|(i, &j)| costs[i][j]).sum());
                    }
                }
                assert!((got - best).abs() < 1e-9, "trial {trial} target {target}: DP {got} vs exhaustive {best}");
            }
        }
    }

    #[test]
    fn interpolation_is_monotone_exact_at_probes_and_extrapolates() {
        // Probes at kept 1/8 (3.0), 2/8 (1.0), 4/8 (0.4), 6/8 (-0.01: noise), dense 0.
        let pts = vec![(0.125, 3.0), (0.25, 1.0), (0.5, 0.4), (0.75, -0.01), (1.0, 0.0)];
        assert_eq!(interpolate(&pts, 0.25), 1.0);
        assert_eq!(interpolate(&pts, 0.75), 0.0, "negative ΔNLL counts as 0");
        assert!((interpolate(&pts, 0.375) - 0.7).abs() < 1e-12);
        assert!((interpolate(&pts, 0.875) - 0.0).abs() < 1e-12);
        assert_eq!(interpolate(&pts, 1.0), 0.0);
        // A denser probe measured costlier than a sparser one is lifted.
        let odd = vec![(0.25, 0.5), (0.5, 0.8), (1.0, 0.0)];
        assert_eq!(interpolate(&odd, 0.25), 0.8);
        // Below the sparsest probe: the last slope continues.
        let two = vec![(0.25, 1.0), (0.5, 0.5), (1.0, 0.0)];
        assert!((interpolate(&two, 0.125) - 1.25).abs() < 1e-12);
    }

    #[test]
    fn the_measured_table_reads_from_metadata() {
        let mut m = Module::default();
        let row = |b: i64, n: i64, c: f64| AttrLit::List(vec![AttrLit::Int(b), AttrLit::Int(n), AttrLit::Int(8), AttrLit::Float(c)]);
        super::super::set_meta(&mut m, SENSITIVITY_KEY, AttrLit::List(vec![row(0, 4, 0.2), row(0, 2, 1.0), row(3, 4, 0.1)]));
        let t = measured_table(&m).unwrap().unwrap();
        assert_eq!(t[&0], vec![(0.25, 1.0), (0.5, 0.2), (1.0, 0.0)]);
        let c = unit_costs(&t, &[0, 3], &[nm(4, 8), nm(8, 8), nm(2, 4)]).unwrap();
        assert_eq!(c[0], vec![0.2, 0.0, 0.2]);
        assert!(unit_costs(&t, &[1], &[nm(4, 8)]).unwrap_err().contains("block 1"));
        super::super::set_meta(&mut m, SENSITIVITY_KEY, AttrLit::Int(3));
        assert!(measured_table(&m).is_err());
    }

    /// FLOW's L1 objective is flat along many directions: moving N by 2 in
    /// two blocks in opposite directions, while |N − 8·O| keeps its sign,
    /// changes nothing. On a small instance the DP's optimum is one of
    /// several assignments with the same cost and average.
    #[test]
    fn flow_reference_objective_has_tied_optima() {
        let o = [0.9, 0.8, 0.95, 0.7, 1.0, 0.85];
        let d = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let (pick, st) = select_exact(&o, &d, 0.5, &FLOW_CANDIDATES).expect("a small table");
        assert_eq!(st, Status::Optimal);
        let value = |v: &[Nm]| v.iter().enumerate().map(|(i, &c)| cost(c, o[i], d[i])).sum::<f64>();
        let best = value(&pick);
        let mut ties = 0;
        let k = FLOW_CANDIDATES.len();
        for code in 0..k.pow(6) {
            let v: Vec<Nm> = (0..6).map(|i| FLOW_CANDIDATES[code / k.pow(i) % k]).collect();
            let avg = v.iter().map(|c| c.sparsity()).sum::<f64>() / 6.0;
            if (avg - 0.5).abs() < 1e-9 {
                let c = value(&v);
                assert!(c >= best - 1e-9, "the DP's optimum is optimal");
                ties += ((c - best).abs() < 1e-9) as usize;
            }
        }
        assert!(ties >= 10, "{ties} tied optima");
    }
}
