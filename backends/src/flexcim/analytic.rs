//! The analytical model: the cycles and energy events of a layer without
//! building or executing its stream.
//!
//! It walks the lowering's loop nest ([`Mapping`]: token chunks, output
//! tiles, input tiles, passes) with slot *counts* instead of slots and prices
//! every instruction with the simulator's own rules ([`super::timing`]), so
//! it agrees with the cycle-level simulator except where the stream depends
//! on the mask in detail. Those places are estimated, and stated here:
//! * distinct activation bytes a pass reads (two per distinct (group, pair)
//!   across the merger sets): the union over sets is taken as the sum capped
//!   by the pairs of the groups the pass covers;
//! * `dsel` rewrites: every row used in a pass (or idled after one) is
//!   rewritten, except a dense layer whose consecutive passes map the same
//!   groups to the same rows (the stream then repeats the selects).
//!
//! Slots come from a real layer's masks ([`Slots::Layer`], exact) or, when
//! only the type is known (the cost model), from the pattern: N per group,
//! as an aligned mask needs ([`Slots::Aligned`]).

use super::arch::{Arch, Nm};
use super::layer::{fit_pattern, NmLayer};
use super::mapping::{count_slots, Mapping, SlotCount};
use super::sim::Stats;
use super::timing::{self, cy, MacShape};
use flexc_passes::target::Tile;

/// Where the slot counts come from.
#[derive(Copy, Clone, Debug)]
pub enum Slots<'a> {
    /// A real layer: its masks, as the lowering allocates them.
    Layer(&'a NmLayer),
    /// Only the shape and pattern: an aligned mask (N slots per group).
    Aligned {
        /// Output channels.
        out: usize,
        /// Input channels.
        inp: usize,
        /// The pattern (N kept of M).
        nm: Nm,
    },
}

/// Whether every `from` mask fits `to` (each `to` group holds at most `to.n`
/// kept), whatever the positions: the analytical version of `as_pattern`.
fn holds_any(from: Nm, to: Nm) -> bool {
    if to.is_dense() {
        return true;
    }
    if from.m % to.m == 0 {
        from.n.min(to.m) <= to.n
    } else if to.m % from.m == 0 {
        from.n * (to.m / from.m) <= to.n
    } else {
        false
    }
}

/// The pattern an architecture runs an aligned `nm` layer of `inp` inputs as:
/// its own when supported, else the sparsest supported pattern holding any
/// such mask (ties: larger M), as [`fit_pattern`] does for a real mask.
pub fn fit_nominal(arch: &Arch, nm: Nm, inp: usize) -> Option<Nm> {
    if arch.supports(nm) && inp % nm.m == 0 {
        return Some(nm);
    }
    let mut cands = arch.patterns.clone();
    cands.sort_by(|a, b| a.density().total_cmp(&b.density()).then(b.m.cmp(&a.m)));
    cands.into_iter().find(|&p| inp % p.m == 0 && holds_any(nm, p))
}

/// Expected distinct pairs of a uniformly random `n`-of-`m` group:
/// `m/2 · (1 − C(m−2, n) / C(m, n))`.
fn expected_pairs(nm: Nm) -> f64 {
    if nm.n + 2 > nm.m {
        return (nm.m / 2) as f64;
    }
    // C(m-2, n) / C(m, n) = (m-n)(m-n-1) / (m(m-1))
    let (n, m) = (nm.n as f64, nm.m as f64);
    m / 2.0 * (1.0 - (m - n) * (m - n - 1.0) / (m * (m - 1.0)))
}

/// The counted stream of one layer: cycles by kind, events, MACs.
pub fn estimate(arch: &Arch, name: &str, slots: Slots<'_>, tokens: usize, tile: Option<Tile>) -> Result<Stats, String> {
    if tokens == 0 {
        return Err(format!("layer {name}: no tokens"));
    }
    let ((out, inp, nm), fitted): ((usize, usize, Nm), Option<NmLayer>) = match slots {
        Slots::Layer(l) => {
            let f = fit_pattern(arch, l)?;
            ((f.out, f.inp, f.nm), Some(f))
        }
        Slots::Aligned { out, inp, nm } => {
            let eff = fit_nominal(arch, nm, inp).ok_or_else(|| format!("layer {name}: no supported pattern of {} holds {nm} with in = {inp}", arch.name))?;
            ((out, inp, eff), None)
        }
    };
    let map = Mapping::new(arch, nm, out, inp, tile).map_err(|e| format!("layer {name}: {e}"))?;
    let tc = map.token_chunk(arch, inp, tokens).map_err(|e| format!("layer {name}: {e}"))?;
    let bundles = map.bundles(arch, out);
    let ktiles = map.ktiles(inp);
    let pairs_per_group = expected_pairs(nm);
    let count = |cols: &std::ops::Range<usize>, g: &std::ops::Range<usize>| match &fitted {
        Some(f) => count_slots(f, cols.clone(), g.clone()),
        None => SlotCount { slots: g.len() * nm.n, pairs: (g.len() as f64 * pairs_per_group).round() as usize },
    };
    let counts: Vec<Vec<Vec<SlotCount>>> = bundles.iter().map(|cols| ktiles.iter().map(|g| cols.iter().map(|c| count(c, g)).collect()).collect()).collect();
    let (r, agg, pp) = (arch.array.rows, map.agg, map.per_pass);
    let wired = arch.array.meta_bits == 0;
    let mut s = Stats { name: name.to_string(), dense_macs: (tokens * out * inp) as u64, ..Stats::default() };
    s.cycles[cy::SELECT] += timing::cfg(arch);
    let (mut prev_rows, mut prev_sig): (Option<usize>, Option<(usize, usize, Vec<usize>)>) = (None, None);
    for t0 in (0..tokens).step_by(tc) {
        let n_t = tc.min(tokens - t0);
        s.cycles[cy::ACT_LOAD] += timing::ldx(arch, &mut s, (n_t * inp) as u64);
        for (b, cols) in bundles.iter().enumerate() {
            let mut first = true;
            for (kt, per_set) in counts[b].iter().enumerate() {
                let passes = per_set.iter().map(|c| c.slots.div_ceil(pp)).max().unwrap_or(0);
                for j in 0..passes {
                    let here: Vec<usize> = per_set.iter().map(|c| c.slots.saturating_sub(j * pp).min(pp)).collect();
                    for (e, &se) in here.iter().enumerate() {
                        for i in 0..agg {
                            let used = (se + agg - 1 - i) / agg;
                            if used > 0 {
                                s.cycles[cy::WEIGHT_LOAD] += timing::ldw(arch, &mut s, (used * cols[e].len()) as u64);
                            }
                        }
                    }
                    let rows_now = here.iter().copied().max().unwrap_or(0).div_ceil(agg);
                    let sig = (kt, j, here.clone());
                    let rows = match prev_rows {
                        None => r,
                        Some(_) if nm.is_dense() && prev_sig.as_ref() == Some(&sig) => 0,
                        Some(p) => rows_now.max(p),
                    };
                    for _ in 0..rows {
                        s.cycles[cy::SELECT] += timing::dsel(arch, &mut s);
                    }
                    let bytes = if wired {
                        here.iter().copied().max().map_or(0, |m| if m > 0 { m + 1 } else { 0 })
                    } else {
                        let share = |c: &SlotCount, se: usize, v: f64| if c.slots == 0 { 0.0 } else { v * se as f64 / c.slots as f64 };
                        let pairs: f64 = per_set.iter().zip(&here).map(|(c, &se)| share(c, se, c.pairs as f64)).sum();
                        let groups = per_set.iter().zip(&here).map(|(c, &se)| share(c, se, ktiles[kt].len() as f64)).fold(0.0, f64::max);
                        2 * pairs.min(groups.ceil() * (nm.m / 2) as f64).round() as usize
                    };
                    let shape = MacShape {
                        count: n_t as u64,
                        positions: here.iter().sum::<usize>() as u64,
                        bytes: bytes as u64,
                        active_subs: here.iter().map(|&se| se.min(agg)).sum::<usize>() as u64,
                        active_sets: here.iter().filter(|&&se| se > 0).count() as u64,
                        agg: agg as u64,
                        sets: map.sets as u64,
                        accumulate: !first,
                    };
                    let t = timing::mac(arch, &mut s, &shape);
                    s.cycles[cy::COMPUTE] += t.ideal;
                    s.cycles[cy::STALL] += t.issue - t.ideal;
                    s.cycles[cy::DRAIN] += t.finish - t.issue;
                    first = false;
                    prev_rows = Some(rows_now);
                    prev_sig = Some(sig);
                }
            }
            for t in cols {
                s.cycles[cy::WRITEBACK] += timing::st(arch, &mut s, (n_t * t.len()) as u64);
            }
        }
    }
    Ok(s)
}
