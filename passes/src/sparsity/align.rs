//! Tile-aligned N:M masks (`prune-nm{align=...}`).
//!
//! A FlexCiM-like macro stores a group's kept weights in slots; the pair
//! select of a slot (which pair of the M inputs a row of cells reads) is
//! shared by every column of the macro, i.e. by a tile of output rows, while
//! the in-cell metadata bit (which element of the pair) is per cell. Per-row
//! masks that disagree on their pairs need up to M slots per group instead of
//! N, which loses the N:M speedup. Two alignments fix it, both choosing per
//! group of `rows` consecutive output rows and per input group by summed
//! score (Wanda or magnitude), both exactly optimal for that objective:
//! * [`Align::Rows`]: one N-of-M index pattern shared by the rows: the N
//!   positions with the largest column-summed score;
//! * [`Align::Pairs`]: one count per pair (0, 1 or 2 kept, summing to N)
//!   shared by the rows, each row keeping its better element where the count
//!   is 1: what the hardware shares, so never less score than `Rows`.
//!   The counts maximise `Σ_p F_p(c_p)` with `F_p(1) = Σ_rows max(a, b)`,
//!   `F_p(2) = Σ_rows (a + b)`, by enumerating the count vectors.
//!
//! Measured on SmolLM2-135M, FLOW at 50% with Wanda scores, 32 rows: `pairs`
//! keeps 93.4% of the per-row masks' summed score, `rows` 78.8%; perplexity
//! (8 chunks of 512 tokens of Pride and Prejudice) dense 20.9, per-row 73.0,
//! `pairs:32` 158, `rows:32` 820. Alignment buys the macro's speedup with
//! accuracy; `pairs` is the one to use.

use super::Nm;

/// How `prune-nm` aligns masks across output rows.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Align {
    /// Per-row masks (Wanda / FLOW).
    None,
    /// One index pattern per `rows` output rows.
    Rows(usize),
    /// One kept count per pair per `rows` output rows.
    Pairs(usize),
}

impl Align {
    /// Parses `none`, `rows:R` or `pairs:R`.
    pub fn parse(s: &str) -> Result<Align, String> {
        if s == "none" || s.is_empty() {
            return Ok(Align::None);
        }
        let bad = || format!("align must be none, rows:R or pairs:R (R = output rows sharing a macro column tile, e.g. rows:32), got '{s}'");
        let (kind, r) = s.split_once(':').ok_or_else(bad)?;
        let r: usize = r.trim().parse().ok().filter(|&r| r >= 1).ok_or_else(bad)?;
        match kind.trim() {
            "rows" => Ok(Align::Rows(r)),
            "pairs" => Ok(Align::Pairs(r)),
            _ => Err(bad()),
        }
    }
}

/// Every vector of per-pair counts in `0..=2` summing to `n` over `pairs` pairs.
fn count_vectors(pairs: usize, n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur = vec![0u8; pairs];
    fn go(i: usize, left: usize, cur: &mut Vec<u8>, out: &mut Vec<Vec<u8>>) {
        if i == cur.len() {
            if left == 0 {
                out.push(cur.clone());
            }
            return;
        }
        for c in 0..=2usize.min(left) {
            if left - c <= 2 * (cur.len() - i - 1) {
                cur[i] = c as u8;
                go(i + 1, left - c, cur, out);
            }
        }
        cur[i] = 0;
    }
    go(0, n, &mut cur, &mut out);
    out
}

/// The keep mask of a weight `[out, inp]` (row-major scores) for `nm`, aligned
/// as `align` says; exactly N kept per group of every row. Ties keep the
/// lower position (and the first count vector enumerated).
pub fn aligned_mask(scores: &[f32], inp: usize, nm: Nm, align: Align) -> Result<Vec<bool>, String> {
    let (n, m) = (nm.n() as usize, nm.m() as usize);
    if inp == 0 || !inp.is_multiple_of(m) || !scores.len().is_multiple_of(inp) {
        return Err(format!("{} scores of rows of {inp} are not whole groups of {m}", scores.len()));
    }
    let rows = scores.len() / inp;
    let per = match align {
        Align::None => 1,
        Align::Rows(r) | Align::Pairs(r) => r,
    };
    if matches!(align, Align::Pairs(_)) && !m.is_multiple_of(2) {
        return Err(format!("align=pairs needs an even M, got {nm}"));
    }
    let vectors = if matches!(align, Align::Pairs(_)) { count_vectors(m / 2, n) } else { Vec::new() };
    let key = |x: f32| if x.is_nan() { f64::NEG_INFINITY } else { x as f64 };
    let mut keep = vec![false; scores.len()];
    for r0 in (0..rows).step_by(per) {
        let band = r0..(r0 + per).min(rows);
        for g in (0..inp).step_by(m) {
            let at = |r: usize, i: usize| key(scores[r * inp + g + i]);
            match align {
                Align::None | Align::Rows(_) => {
                    let sums: Vec<f32> = (0..m).map(|i| band.clone().map(|r| at(r, i)).sum::<f64>() as f32).collect();
                    for i in flexc_ir::quant::nm::top_n(sums.into_iter(), n) {
                        band.clone().for_each(|r| keep[r * inp + g + i] = true);
                    }
                }
                Align::Pairs(_) => {
                    // F_p(c): the band's score for keeping c of pair p.
                    let f = |p: usize, c: u8| -> f64 {
                        band.clone().map(|r| {
                            let (a, b) = (at(r, 2 * p), at(r, 2 * p + 1));
                            match c { 0 => 0.0, 1 => a.max(b), _ => a + b }
                        }).sum()
                    };
                    let best = vectors.iter().map(|v| (v, v.iter().enumerate().map(|(p, &c)| f(p, c)).sum::<f64>())).fold(None, |acc: Option<(&Vec<u8>, f64)>, (v, s)| match acc {
                        Some((_, bs)) if bs >= s => acc,
                        _ => Some((v, s)),
                    });
                    let Some((v, _)) = best else { return Err(format!("no count vector for {nm}")) };
                    for r in band.clone() {
                        for (p, &c) in v.iter().enumerate() {
                            let (a, b) = (at(r, 2 * p), at(r, 2 * p + 1));
                            let pick: &[usize] = match c { 0 => &[], 1 if b > a => &[1], 1 => &[0], _ => &[0, 1] };
                            pick.iter().for_each(|&e| keep[r * inp + g + 2 * p + e] = true);
                        }
                    }
                }
            }
        }
    }
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand_scores(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect()
    }

    fn score(scores: &[f32], keep: &[bool]) -> f64 {
        scores.iter().zip(keep).filter(|p| *p.1).map(|p| *p.0 as f64).sum()
    }

    /// Every N-subset of 0..M as a bit mask.
    fn subsets(nm: Nm) -> Vec<u32> {
        (0u32..1 << nm.m()).filter(|b| b.count_ones() as usize == nm.n()).collect()
    }

    fn pair_counts(bits: u32, m: usize) -> Vec<u32> {
        (0..m / 2).map(|p| (bits >> (2 * p) & 3).count_ones()).collect()
    }

    #[test]
    fn parse() {
        assert_eq!(Align::parse("none"), Ok(Align::None));
        assert_eq!(Align::parse("rows:32"), Ok(Align::Rows(32)));
        assert_eq!(Align::parse("pairs:8"), Ok(Align::Pairs(8)));
        for bad in ["rows", "rows:0", "cols:4", "rows:x"] {
            assert!(Align::parse(bad).unwrap_err().contains("align must be"), "{bad}");
        }
    }

    #[test]
    fn rows_share_exactly_one_pattern_per_band() {
        let (rows, inp, nm) = (10, 16, Nm::of(2, 4));
        let s = rand_scores(rows * inp, 1);
        let keep = aligned_mask(&s, inp, nm, Align::Rows(4)).unwrap();
        for r in 0..rows {
            for g in (0..inp).step_by(4) {
                let row: Vec<bool> = keep[r * inp + g..r * inp + g + 4].to_vec();
                assert_eq!(row.iter().filter(|&&k| k).count(), 2, "row {r} group {g}");
                let lead = r / 4 * 4; // bands 0..4, 4..8, 8..10
                assert_eq!(row, keep[lead * inp + g..lead * inp + g + 4].to_vec(), "row {r} shares row {lead}'s pattern");
            }
        }
    }

    #[test]
    fn pairs_share_counts_and_keep_each_rows_better_element() {
        // Two rows, one 2:4 group: per-row masks {0,3} and {1,2} already agree on
        // one kept per pair, so pairs-alignment keeps both (score 34), while one
        // shared pattern must give up half (column sums tie at 9: {0,1}, score 18).
        let s = [9.0f32, 0.0, 1.0, 8.0, 0.0, 9.0, 8.0, 1.0];
        let nm = Nm::of(2, 4);
        let pairs = aligned_mask(&s, 4, nm, Align::Pairs(2)).unwrap();
        assert_eq!(pairs, vec![true, false, false, true, false, true, true, false]);
        let rows = aligned_mask(&s, 4, nm, Align::Rows(2)).unwrap();
        assert_eq!(rows, vec![true, true, false, false, true, true, false, false]);
        assert_eq!((score(&s, &pairs), score(&s, &rows)), (34.0, 18.0));
    }

    #[test]
    fn both_alignments_are_score_optimal_by_brute_force() {
        for (nm, seed) in [(Nm::of(2, 4), 3), (Nm::of(2, 8), 4), (Nm::of(4, 8), 5), (Nm::of(1, 4), 6)] {
            let (rows, inp) = (3, nm.m() as usize);
            let s = rand_scores(rows * inp, seed);
            let subs = subsets(nm);
            let row_score = |r: usize, b: u32| (0..inp).filter(|&i| b >> i & 1 == 1).map(|i| s[r * inp + i] as f64).sum::<f64>();
            // rows: the best single pattern for all three rows.
            let best_rows = subs.iter().map(|&b| (0..rows).map(|r| row_score(r, b)).sum::<f64>()).fold(f64::MIN, f64::max);
            // pairs: the best per-row masks whose pair counts agree.
            let mut best_pairs = f64::MIN;
            for &a in &subs {
                for &b in subs.iter().filter(|&&b| pair_counts(b, nm.m()) == pair_counts(a, nm.m())) {
                    for &c in subs.iter().filter(|&&c| pair_counts(c, nm.m()) == pair_counts(a, nm.m())) {
                        best_pairs = best_pairs.max(row_score(0, a) + row_score(1, b) + row_score(2, c));
                    }
                }
            }
            let kr = aligned_mask(&s, inp, nm, Align::Rows(3)).unwrap();
            let kp = aligned_mask(&s, inp, nm, Align::Pairs(3)).unwrap();
            assert!((score(&s, &kr) - best_rows).abs() < 1e-4, "{nm}: rows {} vs brute force {best_rows}", score(&s, &kr));
            assert!((score(&s, &kp) - best_pairs).abs() < 1e-4, "{nm}: pairs {} vs brute force {best_pairs}", score(&s, &kp));
            // The chosen pairs masks do agree on pair counts, and never score below rows.
            let bits = |r: usize| (0..inp).filter(|&i| kp[r * inp + i]).fold(0u32, |acc, i| acc | 1 << i);
            assert!((0..rows).all(|r| pair_counts(bits(r), nm.m()) == pair_counts(bits(0), nm.m()) && bits(r).count_ones() as usize == nm.n()));
            assert!(score(&s, &kp) >= score(&s, &kr) - 1e-6);
        }
    }

    #[test]
    fn ragged_input_is_an_error() {
        assert!(aligned_mask(&[1.0; 6], 6, Nm::of(2, 4), Align::Rows(2)).is_err());
    }
}
