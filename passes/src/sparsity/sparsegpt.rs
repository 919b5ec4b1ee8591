//! SparseGPT's N:M pruning with OBS weight reconstruction
//! (`prune-nm{update=sparsegpt}`; Frantar & Alistarh 2023, `fasterprune`
//! with `prunen`/`prunem`).
//!
//! Per output row, columns are visited in order with the upper Cholesky
//! factor `U` of the damped `H⁻¹` ([`InverseHessian`], the one GPTQ reads).
//! When a group of M columns comes up, its mask is chosen from the row's
//! *current* (already updated) weights by the OBS saliency
//! `w_j² / U_jj²`, keeping the N largest; then each column of the group is
//! either kept or set to zero, and its error `δ = w_c − q_c` is fed
//! forward, `w_{c+1..} −= δ/U_cc · U_{c, c+1..}` — GPTQ's update with
//! "round to zero or keep" as the quantizer (SparseGPT's lazy batches only
//! regroup this arithmetic for a GPU).
//!
//! Tile-aligned masks (`align=rows:R` / `pairs:R`): the R rows of a band
//! are updated together, and at each group the band's saliencies go to
//! [`aligned_mask`], so every band shares one pattern (or one pair count)
//! chosen by the summed saliency of its rows, exactly as for Wanda scores.
//! Dead channels (`H_jj = 0`) are zeroed first, as SparseGPT does.
//!
//! Rows (bands) are independent given `H`, so they run in parallel.

use super::align::{aligned_mask, Align};
use super::prune_nm::nm_mask;
use super::Nm;
use crate::quant::gptq::axpy_neg;
use crate::quant::hessian::InverseHessian;
use rayon::prelude::*;

/// Rows pruned together without alignment (they share every row of `U` while it is in L1).
const TILE: usize = 8;

/// A pruned weight.
#[derive(Clone, Debug)]
pub struct Pruned {
    /// The reconstructed values, `[n, k]` row-major (zero where pruned).
    pub values: Vec<f32>,
    /// The keep mask (exactly N of every M per row).
    pub keep: Vec<bool>,
    /// `Σ δ²/U_cc²` over rows and columns: the output error on the
    /// calibration data as the loop estimates it (SparseGPT's `Losses`).
    pub loss: f64,
}

/// Prunes `w` (`[n, k]`) to `nm` with OBS reconstruction through the
/// calibration Hessian `h` (`k × k`), masks aligned as `align` says.
pub fn sparsegpt(w: &[f32], n: usize, k: usize, h: &[f32], nm: Nm, align: Align) -> Result<Pruned, String> {
    let m = nm.m() as usize;
    if w.len() != n * k {
        return Err(format!("{} values for a {n}×{k} weight", w.len()));
    }
    if m == 0 || !k.is_multiple_of(m) {
        return Err(format!("rows of {k} are not whole groups of M = {m}"));
    }
    if h.len() != k * k {
        return Err(format!("a {}-entry Hessian for {k} columns", h.len()));
    }
    let ih = InverseHessian::new(h, k)?;
    let u: Vec<f32> = ih.u.iter().map(|&v| v as f32).collect();
    let band = match align {
        Align::None => TILE,
        Align::Rows(r) | Align::Pairs(r) => r,
    };
    let mut values = vec![0f32; n * k];
    let mut keep = vec![false; n * k];
    let cx = Loop { k, nm, align, u: &u, dead: &ih.dead };
    let loss = values
        .par_chunks_mut(band * k)
        .zip(keep.par_chunks_mut(band * k))
        .zip(w.par_chunks(band * k))
        .map(|((v, kp), rows)| cx.band(rows, v, kp))
        .collect::<Result<Vec<f64>, String>>()?
        .into_iter()
        .sum();
    Ok(Pruned { values, keep, loss })
}

struct Loop<'a> {
    k: usize,
    nm: Nm,
    align: Align,
    u: &'a [f32],
    dead: &'a [bool],
}

impl Loop<'_> {
    /// Prunes one band of rows; returns its loss.
    fn band(&self, rows: &[f32], values: &mut [f32], keep: &mut [bool]) -> Result<f64, String> {
        let (k, m) = (self.k, self.nm.m() as usize);
        let t = rows.len() / k;
        let mut work: Vec<f32> = rows.iter().enumerate().map(|(i, &x)| if self.dead[i % k] { 0.0 } else { x }).collect();
        let mut loss = 0f64;
        let mut scores = vec![0f32; t * m];
        for g in (0..k).step_by(m) {
            // The group's mask from the band's current weights.
            for r in 0..t {
                for j in 0..m {
                    let ujj = self.u[(g + j) * k + g + j];
                    scores[r * m + j] = work[r * k + g + j].powi(2) / (ujj * ujj);
                }
            }
            let mask = match self.align {
                Align::None => nm_mask(&scores, m, self.nm),
                Align::Rows(_) => aligned_mask(&scores, m, self.nm, Align::Rows(t))?,
                Align::Pairs(_) => aligned_mask(&scores, m, self.nm, Align::Pairs(t))?,
            };
            for c in g..g + m {
                let urow = &self.u[c * k..(c + 1) * k];
                let ucc = urow[c];
                for r in 0..t {
                    let kept = mask[r * m + c - g];
                    keep[r * k + c] = kept;
                    let wr = &mut work[r * k..(r + 1) * k];
                    if kept {
                        values[r * k + c] = wr[c];
                        continue;
                    }
                    let e = wr[c] / ucc;
                    loss += (e as f64).powi(2);
                    if e != 0.0 {
                        axpy_neg(&mut wr[c + 1..], e, &urow[c + 1..]);
                    }
                }
            }
        }
        Ok(loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::gptq::output_error;
    use crate::quant::hessian::DAMP;
    use crate::quant::optq::test_support::{activations, Rng};

    /// SparseGPT's `fasterprune` transcribed in f64 with a Gauss–Jordan
    /// inverse and a textbook upper Cholesky (independent of
    /// [`InverseHessian`]), per-row masks.
    fn reference(w: &[f32], _n: usize, k: usize, h: &[f32], nm: Nm) -> Vec<f64> {
        let mut hd: Vec<f64> = h.iter().map(|&x| x as f64).collect();
        let damp = DAMP * (0..k).map(|j| hd[j * k + j]).sum::<f64>() / k as f64;
        (0..k).for_each(|j| hd[j * k + j] += damp);
        // Gauss–Jordan inverse.
        let mut a = hd.clone();
        let mut inv: Vec<f64> = (0..k * k).map(|i| if i / k == i % k { 1.0 } else { 0.0 }).collect();
        for c in 0..k {
            let p = (c..k).max_by(|&x, &y| a[x * k + c].abs().total_cmp(&a[y * k + c].abs())).unwrap();
            for j in 0..k {
                a.swap(c * k + j, p * k + j);
                inv.swap(c * k + j, p * k + j);
            }
            let d = a[c * k + c];
            for j in 0..k {
                a[c * k + j] /= d;
                inv[c * k + j] /= d;
            }
            for r in (0..k).filter(|&r| r != c) {
                let f = a[r * k + c];
                for j in 0..k {
                    a[r * k + j] -= f * a[c * k + j];
                    inv[r * k + j] -= f * inv[c * k + j];
                }
            }
        }
        // Upper Cholesky: inv = UᵀU.
        let mut u = vec![0f64; k * k];
        for i in 0..k {
            let s: f64 = (0..i).map(|p| u[p * k + i] * u[p * k + i]).sum();
            u[i * k + i] = (inv[i * k + i] - s).sqrt();
            for j in i + 1..k {
                let s: f64 = (0..i).map(|p| u[p * k + i] * u[p * k + j]).sum();
                u[i * k + j] = (inv[i * k + j] - s) / u[i * k + i];
            }
        }
        let mut out: Vec<f64> = w.iter().map(|&x| x as f64).collect();
        let m = nm.m() as usize;
        for row in out.chunks_exact_mut(k) {
            let mut mask = vec![false; k];
            for i in 0..k {
                if i % m == 0 {
                    // The M − N smallest of w²/U_jj² are pruned (topk(largest=False)).
                    let mut idx: Vec<usize> = (i..i + m).collect();
                    idx.sort_by(|&a, &b| (row[a].powi(2) / u[a * k + a].powi(2)).total_cmp(&(row[b].powi(2) / u[b * k + b].powi(2))).then(b.cmp(&a)));
                    idx[..m - nm.n() as usize].iter().for_each(|&j| mask[j] = true);
                }
                let q = if mask[i] { 0.0 } else { row[i] };
                let err = (row[i] - q) / u[i * k + i];
                for j in i..k {
                    row[j] -= err * u[i * k + j];
                }
                row[i] = q;
            }
        }
        out
    }

    fn weights(rng: &mut Rng, n: usize, k: usize) -> Vec<f32> {
        (0..n * k).map(|_| (rng.f() * 0.05) as f32).collect()
    }

    #[test]
    fn matches_the_transcribed_reference() {
        let mut rng = Rng(3);
        for (nm, k) in [(Nm::of(2, 4), 32), (Nm::of(4, 8), 48), (Nm::of(1, 2), 16), (Nm::of(3, 8), 64)] {
            let n = 11;
            let (_, h) = activations(&mut rng, 3 * k, k);
            let w = weights(&mut rng, n, k);
            let got = sparsegpt(&w, n, k, &h, nm, Align::None).unwrap();
            let want = reference(&w, n, k, &h, nm);
            for (i, (&a, &b)) in got.values.iter().zip(&want).enumerate() {
                assert!((a as f64 - b).abs() < 1e-4 * 0.05 + 1e-3 * b.abs(), "{nm} k={k} [{}, {}]: {a} vs {b}", i / k, i % k);
                assert_eq!(got.keep[i], b != 0.0 || a != 0.0, "{nm} mask at {i}");
            }
        }
    }

    #[test]
    fn reconstruction_beats_wanda_and_magnitude_on_the_output_error() {
        let mut rng = Rng(7);
        let (n, k) = (32, 128);
        let (_, h) = activations(&mut rng, 256, k);
        let w = weights(&mut rng, n, k);
        let masked = |keep: &[bool]| -> Vec<f32> { w.iter().zip(keep).map(|(&x, &kp)| if kp { x } else { 0.0 }).collect() };
        let wanda: Vec<f32> = w.chunks_exact(k).flat_map(|r| r.iter().enumerate().map(|(j, x)| x.abs() * (h[j * k + j]).sqrt())).collect();
        let magnitude: Vec<f32> = w.iter().map(|x| x.abs()).collect();
        for nm in [Nm::of(2, 4), Nm::of(4, 8), Nm::of(2, 8), Nm::of(6, 8), Nm::of(1, 4)] {
            for align in [Align::None, Align::Pairs(8), Align::Rows(8)] {
                let p = sparsegpt(&w, n, k, &h, nm, align).unwrap();
                let e = output_error(&w, &p.values, k, &h);
                let mask_of = |s: &[f32]| match align {
                    Align::None => nm_mask(s, k, nm),
                    a => aligned_mask(s, k, nm, a).unwrap(),
                };
                let ew = output_error(&w, &masked(&mask_of(&wanda)), k, &h);
                let em = output_error(&w, &masked(&mask_of(&magnitude)), k, &h);
                assert!(e < 0.8 * ew && e < 0.8 * em, "{nm} {align:?}: sparsegpt {e} wanda {ew} magnitude {em}");
                // The loop's own estimate tracks the (damped) error.
                assert!((p.loss - e).abs() < 0.25 * e, "{nm} {align:?}: loss {} vs {e}", p.loss);
                // Exactly N of every M kept, zeros where pruned, and aligned
                // bands share what the hardware shares.
                for (row, kr) in p.values.chunks_exact(k).zip(p.keep.chunks_exact(k)) {
                    for (gv, gk) in row.chunks_exact(nm.m() as usize).zip(kr.chunks_exact(nm.m() as usize)) {
                        assert_eq!(gk.iter().filter(|&&x| x).count(), nm.n() as usize);
                        assert!(gv.iter().zip(gk).all(|(&v, &kp)| kp || v == 0.0));
                    }
                }
                if let Align::Pairs(r) | Align::Rows(r) = align {
                    for band in p.keep.chunks(r * k) {
                        let lead = &band[..k];
                        for row in band.chunks_exact(k) {
                            for c in (0..k).step_by(2) {
                                let cnt = |x: &[bool]| x[c] as u8 + x[c + 1] as u8;
                                assert_eq!(cnt(row), cnt(lead), "{nm} {align:?}: pair counts differ in a band");
                                if matches!(align, Align::Rows(_)) {
                                    assert_eq!((row[c], row[c + 1]), (lead[c], lead[c + 1]));
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn dead_channels_and_bad_shapes() {
        let mut rng = Rng(2);
        let (n, k) = (3, 8);
        let (_, mut h) = activations(&mut rng, 64, k);
        for j in 0..k {
            h[j * k + 5] = 0.0;
            h[5 * k + j] = 0.0;
        }
        let w = weights(&mut rng, n, k);
        let p = sparsegpt(&w, n, k, &h, Nm::of(4, 8), Align::None).unwrap();
        assert!((0..n).all(|r| p.values[r * k + 5] == 0.0));
        assert!(sparsegpt(&w, n, k, &h, Nm::of(2, 3), Align::None).is_err());
        assert!(sparsegpt(&w, n, k, &h[1..], Nm::of(2, 4), Align::None).is_err());
        assert!(sparsegpt(&w[1..], n, k, &h, Nm::of(2, 4), Align::None).is_err());
    }
}
