//! The analytical model: the cycles and energy events of a layer without
//! building or executing its stream.
//!
//! It walks the lowering's loop nest ([`Mapping`]: token chunks, output
//! tiles, input tiles, passes) with slot *counts* instead of slots and prices
//! every instruction with the simulator's own rules ([`super::timing`]), so
//! it agrees with the cycle-level simulator.
//!
//! Slots come from a real layer's masks ([`Slots::Layer`]): then every pass's
//! rows, `dsel` rewrites and distinct activation bytes are those of the
//! stream, and the counts are the simulator's. When only the type is known
//! (the cost model, [`Slots::Aligned`]) a group has N slots, as an aligned
//! mask needs, and two mask-dependent quantities are expected values:
//! * distinct activation bytes a pass reads (two per distinct (group, pair)
//!   across the merger sets): a group reads its expected number of distinct
//!   pairs, the union over sets is the sum capped by the pairs of the groups
//!   the pass covers;
//! * `dsel` rewrites: a row used in a pass (or idled after one) is rewritten,
//!   except when consecutive passes map the same groups to the same rows:
//!   then a row keeps its selects with the probability that two random masks
//!   give its groups the same pair sequence (1 for dense).
//!
//! Per-row masks from the type alone ([`Slots::PerRow`]): a column tile of
//! w rows needs, per group and pair p, max over its rows of kept(p) slots.
//! With a row's kept(p) in {0, 1, 2} at odds o (uniform masks, converted to
//! the pattern run by the lowering's padding rule; [`pair_odds`]), the
//! expected slots per group are Σ_p (1 − o₀ʷ) + (1 − (o₀ + o₁)ʷ), the
//! distinct pairs Σ_p (1 − o₀ʷ), and the layer's slots the group count times
//! that (rounded); the rest is priced as above. On random per-row layers this
//! tracks the simulator within 0.2% in cycles (`flexcim_cost.rs`), where the
//! aligned assumption is off by up to M/N.

use super::arch::{Arch, Nm};
use super::layer::{fit_pattern, reprune_target, NmLayer};
use super::mapping::{slot_keys, Mapping, SlotKey};
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
    /// Only the shape and pattern, every output row's mask drawn on its own
    /// (`prune-nm` without `align`): the expected slots of a column tile.
    PerRow {
        /// Output channels.
        out: usize,
        /// Input channels.
        inp: usize,
        /// The pattern (N kept of M).
        nm: Nm,
    },
}

/// Per-row masks as the lowering sees them: for each group position within a
/// "super-group" of lcm(M_from, M_to) inputs and each pair of the pattern
/// run (`to`), the probability that one row keeps 0, 1 or 2 of the pair,
/// over uniformly random `from` masks converted by [`NmLayer::as_pattern`]'s
/// rule (keep the kept positions, pad with the lowest free ones).
fn pair_odds(from: Nm, to: Nm) -> Vec<Vec<[f64; 3]>> {
    let lcm = from.m() / gcd(from.m(), to.m()) * to.m();
    let (q, tg) = (lcm / from.m(), lcm / to.m());
    let masks: Vec<u32> = (0u32..1 << from.m()).filter(|b| b.count_ones() as usize == from.n()).collect();
    let mut odds = vec![vec![[0.0f64; 3]; to.m() / 2]; tg];
    let total = (masks.len() as f64).powi(q as i32);
    // Every combination of q source masks, as one `lcm`-bit word.
    let mut combo = vec![0usize; q];
    loop {
        let word: u64 = combo.iter().enumerate().map(|(i, &c)| (masks[c] as u64) << (i * from.m())).sum();
        for (g, og) in odds.iter_mut().enumerate() {
            let bits = (word >> (g * to.m())) & ((1u64 << to.m()) - 1);
            let mut pad = to.n().saturating_sub(bits.count_ones() as usize);
            let mut keep = bits;
            for i in 0..to.m() {
                if pad > 0 && keep >> i & 1 == 0 {
                    keep |= 1 << i;
                    pad -= 1;
                }
            }
            for (p, o) in og.iter_mut().enumerate() {
                o[(keep >> (2 * p) & 3).count_ones() as usize] += 1.0 / total;
            }
        }
        let Some(i) = (0..q).find(|&i| combo[i] + 1 < masks.len()) else { break };
        combo[i] += 1;
        combo[..i].iter_mut().for_each(|c| *c = 0);
    }
    odds
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Per-row masks over a column tile of `width` rows: (expected slots per
/// group, expected distinct pairs per group, probability that two groups
/// need the same slot sequence), averaged over a super-group's positions.
/// A slot per pair and kept index: need(p) = max over the rows of kept(p).
fn per_row_slots(odds: &[Vec<[f64; 3]>], width: usize) -> (f64, f64, f64) {
    let w = width as i32;
    let (mut slots, mut pairs, mut same) = (0.0, 0.0, 0.0);
    for og in odds {
        let mut sm = 1.0;
        for o in og {
            // P(need <= 0), P(need <= 1): every row keeps at most that many.
            let (le0, le1) = (o[0].powi(w), (o[0] + o[1]).powi(w));
            slots += (1.0 - le0) + (1.0 - le1);
            pairs += 1.0 - le0;
            sm *= le0 * le0 + (le1 - le0) * (le1 - le0) + (1.0 - le1) * (1.0 - le1);
        }
        same += sm;
    }
    let k = odds.len().max(1) as f64;
    (slots / k, pairs / k, same / k)
}

/// Whether every `from` mask fits `to` (each `to` group holds at most `to.n`
/// kept), whatever the positions: the analytical version of `as_pattern`.
fn holds_any(from: Nm, to: Nm) -> bool {
    if to.is_dense() {
        return true;
    }
    if from.m().is_multiple_of(to.m()) {
        from.n().min(to.m()) <= to.n()
    } else if to.m().is_multiple_of(from.m()) {
        from.n() * (to.m() / from.m()) <= to.n()
    } else {
        false
    }
}

/// The pattern an architecture runs an aligned `nm` layer of `inp` inputs as:
/// its own when supported, else the sparsest supported pattern holding any
/// such mask (ties: larger M), as [`fit_pattern`] does for a real mask (and
/// its re-pruning target under `sparsity.reprune`).
pub fn fit_nominal(arch: &Arch, nm: Nm, inp: usize) -> Option<Nm> {
    if arch.supports(nm) && inp.is_multiple_of(nm.m()) {
        return Some(nm);
    }
    let mut cands = arch.patterns.clone();
    cands.sort_by(|a, b| a.density().total_cmp(&b.density()).then(b.m().cmp(&a.m())));
    let fits = |p: &Nm| inp.is_multiple_of(p.m()) && holds_any(nm, *p);
    match reprune_target(arch, nm, inp) {
        Some(to) => Some(cands.iter().copied().filter(|p| !p.is_dense()).find(fits).unwrap_or(to)),
        None => cands.into_iter().find(fits),
    }
}

/// Over the uniformly random `n`-of-`m` masks of one group: the expected
/// distinct pairs kept, and the probability that two masks keep the same
/// number in every pair (the same slot sequence, so the same selects).
fn mask_odds(nm: Nm) -> (f64, f64) {
    let mut hist: std::collections::HashMap<Vec<u8>, usize> = std::collections::HashMap::new();
    let (mut total, mut pairs) = (0usize, 0usize);
    for bits in 0u32..1 << nm.m() {
        if bits.count_ones() as usize != nm.n() {
            continue;
        }
        let v: Vec<u8> = (0..nm.m() / 2).map(|p| (bits >> (2 * p) & 3).count_ones() as u8).collect();
        pairs += v.iter().filter(|&&c| c > 0).count();
        total += 1;
        *hist.entry(v).or_default() += 1;
    }
    let t = total.max(1) as f64;
    (pairs as f64 / t, hist.values().map(|&c| (c as f64 / t).powi(2)).sum())
}

/// One pass as the analytical model sees it.
struct PassView {
    /// Slots per merger set.
    here: Vec<usize>,
    /// `dsel` rewrites (expected, for nominal slots).
    rows: f64,
    /// Distinct activation bytes read per vector.
    bytes: usize,
}

type RowSig = Vec<Option<(u32, u8)>>;

/// A nominal pass's identity: (k tile, pass, slots per set).
type PassSig = (usize, usize, Vec<usize>);

/// The exact pass of real slots: the lowering's grid, selects and reads.
fn exact_pass(arch: &Arch, nm: Nm, agg: usize, keys: &[&[SlotKey]], rowstate: &mut [Option<RowSig>]) -> PassView {
    let (p, r) = (arch.array.sub_macros, arch.array.rows);
    let wired = arch.wired_for(nm);
    let mut grid: Vec<Option<SlotKey>> = vec![None; p * r];
    for (e, ks) in keys.iter().enumerate() {
        for (q, k) in ks.iter().enumerate() {
            grid[(q / agg) * p + e * agg + q % agg] = Some(*k);
        }
    }
    let mut offs: Vec<u32> = Vec::with_capacity(2 * p * r);
    let mut rows = 0;
    for (row, state) in rowstate.iter_mut().enumerate() {
        let sig: RowSig = grid[row * p..(row + 1) * p]
            .iter()
            .map(|g| {
                g.map(|k| {
                    let base = k.group * nm.m() as u32;
                    if wired { (base + 2 * k.pair as u32 + k.elem as u32, 0) } else { (base, k.pair) }
                })
            })
            .collect();
        for &(bus, s1) in sig.iter().flatten() {
            let at = bus + 2 * s1 as u32;
            offs.extend([at, at + 1]);
        }
        if state.as_ref() != Some(&sig) {
            rows += 1;
            *state = Some(sig);
        }
    }
    offs.sort_unstable();
    offs.dedup();
    PassView { here: keys.iter().map(|k| k.len()).collect(), rows: rows as f64, bytes: offs.len() }
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
        Slots::Aligned { out, inp, nm } | Slots::PerRow { out, inp, nm } => {
            let eff = fit_nominal(arch, nm, inp).ok_or_else(|| format!("layer {name}: no supported pattern of {} holds {nm} with in = {inp}", arch.name))?;
            ((out, inp, eff), None)
        }
    };
    // Per-row masks: the kept-count odds of each pair of the pattern run.
    let per_row = match slots {
        Slots::PerRow { nm: from, .. } if !nm.is_dense() => Some(pair_odds(from, nm)),
        _ => None,
    };
    let map = Mapping::new(arch, nm, out, inp, tile).map_err(|e| format!("layer {name}: {e}"))?;
    let tc = map.token_chunk(arch, inp, tokens).map_err(|e| format!("layer {name}: {e}"))?;
    let bundles = map.bundles(arch, out);
    let ktiles = map.ktiles(inp);
    let (r, agg, pp) = (arch.array.rows, map.agg, map.per_pass);
    let (wired, bypass) = (arch.wired_for(nm), arch.bypasses(nm));
    let (pairs_per_group, same_mask) = if nm.is_dense() { ((nm.m() / 2) as f64, 1.0) } else { mask_odds(nm) };
    // keys[bundle][k tile][set], for a real layer.
    let keys: Option<Vec<Vec<Vec<Vec<SlotKey>>>>> =
        fitted.as_ref().map(|f| bundles.iter().map(|cols| ktiles.iter().map(|g| cols.iter().map(|c| slot_keys(f, c.clone(), g.clone())).collect()).collect()).collect());
    // Nominal slots of a column tile over a k tile, and per group: (slots, distinct pairs, P(same slots)).
    let per_group = |width: usize| match &per_row {
        Some(odds) => per_row_slots(odds, width),
        None => (nm.n() as f64, pairs_per_group, same_mask),
    };
    let slots_of = |b: usize, kt: usize, e: usize| match &keys {
        Some(k) => k[b][kt][e].len(),
        None => (ktiles[kt].len() as f64 * per_group(bundles[b][e].len()).0).round() as usize,
    };
    let mut rowstate: Vec<Option<RowSig>> = vec![None; r];
    let (mut prev_rows, mut prev_sig): (Option<usize>, Option<PassSig>) = (None, None);
    let mut s = Stats { name: name.to_string(), dense_macs: (tokens * out * inp) as u64, ..Stats::default() };
    s.cycles[cy::SELECT] += timing::cfg(arch);
    let mut dsels = 0.0f64;
    // Resident: passes are not separated by a draining `ldw`, so they overlap
    // in the pipeline until the bundle's `st` (a clock within the bundle).
    let (mut clock, mut drain_at) = (0u64, 0u64);
    for t0 in (0..tokens).step_by(tc) {
        let n_t = tc.min(tokens - t0);
        s.cycles[cy::ACT_LOAD] += timing::ldx(arch, &mut s, (n_t * inp) as u64);
        for (b, cols) in bundles.iter().enumerate() {
            let mut first = true;
            for kt in 0..ktiles.len() {
                let total: Vec<usize> = (0..cols.len()).map(|e| slots_of(b, kt, e)).collect();
                let passes = total.iter().map(|t| t.div_ceil(pp)).max().unwrap_or(0);
                for j in 0..passes {
                    let view = match &keys {
                        Some(k) => {
                            let sl: Vec<&[SlotKey]> = k[b][kt].iter().map(|v| &v[(j * pp).min(v.len())..((j + 1) * pp).min(v.len())]).collect();
                            exact_pass(arch, nm, agg, &sl, &mut rowstate)
                        }
                        None => {
                            // Widest column tile of the bundle stands for its sets (equal but for the last tile).
                            let (spg, pairs_per_group, same_mask) = per_group(cols.iter().map(|c| c.len()).max().unwrap_or(0));
                            let here: Vec<usize> = total.iter().map(|t| t.saturating_sub(j * pp).min(pp)).collect();
                            let rows_now = here.iter().copied().max().unwrap_or(0).div_ceil(agg);
                            let sig = (kt, j, here.clone());
                            let rows = match prev_rows {
                                None => r as f64,
                                Some(p) if prev_sig.as_ref() == Some(&sig) => rows_now as f64 * (1.0 - same_mask.powi(here.iter().filter(|&&h| h > 0).count() as i32)) + p.saturating_sub(rows_now) as f64,
                                Some(p) => rows_now.max(p) as f64,
                            };
                            let bytes = if wired {
                                here.iter().copied().max().map_or(0, |m| if m > 0 { m + 1 } else { 0 })
                            } else {
                                let groups = |h: usize| h as f64 / spg.max(1e-9);
                                let pairs: f64 = here.iter().map(|&h| groups(h) * pairs_per_group).sum();
                                let covered = here.iter().map(|&h| groups(h).ceil()).fold(0.0, f64::max);
                                2 * pairs.min(covered * (nm.m() / 2) as f64).round() as usize
                            };
                            prev_rows = Some(rows_now);
                            prev_sig = Some(sig);
                            PassView { here, rows, bytes }
                        }
                    };
                    for (e, &se) in view.here.iter().enumerate() {
                        for i in 0..agg {
                            let used = (se + agg - 1 - i) / agg;
                            if used > 0 {
                                s.cycles[cy::WEIGHT_LOAD] += timing::ldw(arch, &mut s, (used * cols[e].len()) as u64, bypass);
                            }
                        }
                    }
                    dsels += view.rows;
                    let shape = MacShape {
                        count: n_t as u64,
                        positions: view.here.iter().sum::<usize>() as u64,
                        bytes: view.bytes as u64,
                        active_subs: view.here.iter().map(|&se| se.min(agg)).sum::<usize>() as u64,
                        active_sets: view.here.iter().filter(|&&se| se > 0).count() as u64,
                        agg: agg as u64,
                        sets: map.sets as u64,
                        accumulate: !first,
                        bypass,
                    };
                    let t = timing::mac(arch, &mut s, &shape);
                    s.cycles[cy::COMPUTE] += t.ideal;
                    s.cycles[cy::STALL] += t.issue - t.ideal;
                    if arch.resident() {
                        drain_at = drain_at.max(clock + t.finish);
                        clock += t.issue;
                    } else {
                        s.cycles[cy::DRAIN] += t.finish - t.issue;
                    }
                    first = false;
                }
            }
            s.cycles[cy::DRAIN] += drain_at.saturating_sub(clock);
            (clock, drain_at) = (0, 0);
            for t in cols {
                s.cycles[cy::WRITEBACK] += timing::st(arch, &mut s, (n_t * t.len()) as u64);
            }
        }
    }
    // Every dsel costs the same: price one and scale (expected counts are fractional).
    let mut one = Stats::default();
    let per = timing::dsel(arch, &mut one, bypass);
    let n = dsels.round() as u64;
    s.cycles[cy::SELECT] += per * n;
    s.events.iter_mut().zip(one.events).for_each(|(a, b)| *a += b * n);
    Ok(s)
}
