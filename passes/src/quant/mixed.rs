//! Mixed precision under a byte budget: one format per layer minimising
//! the summed error, solved exactly.
//!
//! Each layer `i` has candidates `(bytes_ij, error_ij)`; [`allocate`] picks
//! one per layer minimising `Σ error` subject to `Σ bytes ≤ budget` — the
//! multiple-choice knapsack. It is solved by dynamic programming over the
//! budget in `UNITS` equal units, with every candidate's size rounded *up*
//! to whole units, so a solution never exceeds the budget; the rounding can
//! only make it pass over a choice that fits within a unit per layer of
//! slack. The DP keeps, per layer and used units, the best error and the
//! choice that reached it, then walks back. With 400 units per layer the
//! rounding wastes at most 0.25% of the budget. Cost: layers × units ×
//! candidates steps (200 × 80 000 × 10 = 160 M for a 135M-parameter model).

/// Budget units of the dynamic program per layer, and the bounds of the total.
const UNITS_PER_LAYER: usize = 400;
const MIN_UNITS: usize = 20_000;
const MAX_UNITS: usize = 1_000_000;

/// One way to store a layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    /// Bytes this choice costs.
    pub bytes: u64,
    /// Its error (any additive measure; smaller is better).
    pub error: f64,
}

/// The index of the chosen candidate per layer, minimising the summed error
/// with the summed bytes within `budget`; an error when not even the
/// smallest candidates fit.
pub fn allocate(layers: &[Vec<Choice>], budget: u64) -> Result<Vec<usize>, String> {
    if let Some(i) = layers.iter().position(|c| c.is_empty()) {
        return Err(format!("layer {i} has no candidate format"));
    }
    let smallest: u64 = layers.iter().map(|c| c.iter().map(|x| x.bytes).min().unwrap_or(0)).sum();
    if smallest > budget {
        return Err(format!("the smallest candidates take {smallest} bytes, over the budget of {budget}"));
    }
    let units = (UNITS_PER_LAYER * layers.len()).clamp(MIN_UNITS, MAX_UNITS);
    let unit = budget.div_ceil(units as u64).max(1);
    let cap = (budget / unit) as usize;
    let cost = |b: u64| b.div_ceil(unit) as usize;
    // best[u]: least error with exactly ≤ u units used by the layers so far.
    let mut best = vec![0f64; cap + 1];
    let mut from: Vec<Vec<u16>> = Vec::with_capacity(layers.len());
    for cands in layers {
        let mut next = vec![f64::INFINITY; cap + 1];
        let mut pick = vec![u16::MAX; cap + 1];
        for (j, c) in cands.iter().enumerate() {
            let w = cost(c.bytes);
            for u in w..=cap {
                let e = best[u - w] + c.error;
                if e < next[u] {
                    next[u] = e;
                    pick[u] = j as u16;
                }
            }
        }
        best = next;
        from.push(pick);
    }
    let (mut u, _) = best.iter().enumerate().fold((usize::MAX, f64::INFINITY), |acc, (u, &e)| if e < acc.1 { (u, e) } else { acc });
    if u == usize::MAX {
        return Err(format!("no combination of candidates fits {budget} bytes once rounded to units of {unit}"));
    }
    let mut out = vec![0usize; layers.len()];
    for i in (0..layers.len()).rev() {
        let j = from[i][u] as usize;
        out[i] = j;
        u -= cost(layers[i][j].bytes);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exhaustive(layers: &[Vec<Choice>], budget: u64) -> Option<f64> {
        let mut best: Option<f64> = None;
        let mut idx = vec![0usize; layers.len()];
        loop {
            let bytes: u64 = idx.iter().zip(layers).map(|(&j, c)| c[j].bytes).sum();
            if bytes <= budget {
                let e: f64 = idx.iter().zip(layers).map(|(&j, c)| c[j].error).sum();
                best = Some(best.map_or(e, |b: f64| b.min(e)));
            }
            let mut i = 0;
            loop {
                if i == layers.len() {
                    return best;
                }
                idx[i] += 1;
                if idx[i] < layers[i].len() {
                    break;
                }
                idx[i] = 0;
                i += 1;
            }
        }
    }

    #[test]
    fn matches_exhaustive_search_on_small_instances() {
        let mut s = 1u64;
        let mut rnd = |m: u64| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) % m
        };
        for _ in 0..200 {
            let nl = 1 + rnd(5) as usize;
            let layers: Vec<Vec<Choice>> = (0..nl)
                .map(|_| (0..1 + rnd(4)).map(|_| Choice { bytes: 1 + rnd(100), error: rnd(1000) as f64 / 7.0 }).collect())
                .collect();
            let budget = rnd(300);
            let want = exhaustive(&layers, budget);
            match allocate(&layers, budget) {
                Ok(pick) => {
                    let bytes: u64 = pick.iter().zip(&layers).map(|(&j, c)| c[j].bytes).sum();
                    let err: f64 = pick.iter().zip(&layers).map(|(&j, c)| c[j].error).sum();
                    assert!(bytes <= budget);
                    // Budgets below UNITS bytes use one-byte units: exact.
                    assert_eq!(Some(err), want, "{layers:?} budget {budget}");
                }
                Err(_) => assert_eq!(want, None, "{layers:?} budget {budget}"),
            }
        }
    }

    #[test]
    fn large_budgets_stay_within_budget_and_near_optimal() {
        // Two candidates per layer, many layers: the greedy exchange bound.
        let layers: Vec<Vec<Choice>> = (0..50)
            .map(|i| vec![Choice { bytes: 1_000_000, error: 10.0 + i as f64 }, Choice { bytes: 2_000_000, error: 1.0 }])
            .collect();
        let budget = 75_000_000;
        let pick = allocate(&layers, budget).unwrap();
        let bytes: u64 = pick.iter().zip(&layers).map(|(&j, c)| c[j].bytes).sum();
        assert!(bytes <= budget);
        // 25 layers could take the large candidate (the 25 with the most to
        // gain); rounding to units may cost one of them.
        let large = pick.iter().filter(|&&j| j == 1).count();
        assert!((24..=25).contains(&large), "{large} large");
        assert!(pick[50 - large..].iter().all(|&j| j == 1));
        assert!(allocate(&layers, 10).is_err());
    }
}
