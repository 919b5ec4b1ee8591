//! The inverse-Hessian factor every OBS-style quantizer and pruner reads
//! (GPTQ/OPTQ, ShiftAddLLM's BCQ loop, SparseGPT).
//!
//! From a calibration Hessian `H = 2/n·Σ XᵀX` (`k × k`): dead channels
//! (`H_jj = 0`) get `H_jj = 1` and are reported so their weights can be
//! zeroed; `H += damp·mean(diag H)·I`; then `U` upper-triangular with
//! `H⁻¹ = UᵀU` — what GPTQ computes as `cholesky(cholesky_inverse(cholesky(H)),
//! upper=True)`. The factor is unique (positive diagonal), and it is
//! computed here without forming `H⁻¹`: with `P` the index reversal,
//! `PHP = L·Lᵀ` (an ordinary Cholesky) gives `H = V·Vᵀ` for the upper
//! triangular `V = P·L·P`, hence `H⁻¹ = V⁻ᵀV⁻¹` and `U = V⁻¹ = P·L⁻¹·P`. One
//! Cholesky and one triangular inverse (`k³/3` multiply-adds instead of
//! about `k³`), both written as dot products over contiguous rows.
//!
//! An optional permutation (GPTQ's act-order: descending `diag H`) reorders
//! the channels first; `U` is then the factor of the permuted Hessian.

/// Dampening, as a fraction of the mean Hessian diagonal (GPTQ's `--percdamp`).
pub const DAMP: f64 = 0.01;

/// `U` with `H⁻¹ = UᵀU` for a damped (and optionally permuted) Hessian, and its dead channels.
pub struct InverseHessian {
    /// Channels.
    pub k: usize,
    /// Upper-triangular `U`, `k × k` row-major (in the permuted order when one was given).
    pub u: Vec<f64>,
    /// Channels with `H_jj = 0` (their weights are zeroed), in the original order.
    pub dead: Vec<bool>,
}

/// `L⁻¹` of the Cholesky factor of `a` (which becomes `L`), the
/// O(k³) part of building an [`InverseHessian`]: AVX2 when the CPU has it
/// (the same arithmetic in the same order, 4 lanes instead of 2).
fn factor_and_invert(a: &mut [f64], k: usize) -> Option<Vec<f64>> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports the feature `factor_and_invert_avx2` is compiled for.
        return unsafe { factor_and_invert_avx2(a, k) };
    }
    cholesky(a, k)?;
    Some(lower_inverse(a, k))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn factor_and_invert_avx2(a: &mut [f64], k: usize) -> Option<Vec<f64>> {
    cholesky(a, k)?;
    Some(lower_inverse(a, k))
}

/// `Σ a_i·b_i` with eight partial sums, so the loop vectorises.
#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// In-place Cholesky `A = L·Lᵀ` of a symmetric `k × k` row-major matrix
/// (lower triangle written, upper zeroed); `None` when not positive definite.
#[inline(always)]
fn cholesky(a: &mut [f64], k: usize) -> Option<()> {
    for i in 0..k {
        for j in 0..=i {
            let (ri, rj) = (i * k, j * k);
            let s = a[ri + j] - dot(&a[ri..ri + j], &a[rj..rj + j]);
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                a[ri + i] = s.sqrt();
            } else {
                a[ri + j] = s / a[rj + j];
            }
        }
        a[i * k + i + 1..(i + 1) * k].fill(0.0);
    }
    Some(())
}

/// `L⁻¹` of a lower-triangular `k × k` matrix with positive diagonal,
/// row by row from `X·L = I` (`X[i][j] = −Σ_{p>j} X[i][p]·L[p][j] / L[j][j]`),
/// reading `L`'s columns as the rows of `Lᵀ`.
#[inline(always)]
fn lower_inverse(l: &[f64], k: usize) -> Vec<f64> {
    let mut lt = vec![0f64; k * k];
    for i in 0..k {
        for j in 0..=i {
            lt[j * k + i] = l[i * k + j];
        }
    }
    let mut x = vec![0f64; k * k];
    for i in 0..k {
        let row = i * k;
        x[row + i] = 1.0 / l[row + i];
        for j in (0..i).rev() {
            let s = dot(&x[row + j + 1..=row + i], &lt[j * k + j + 1..=j * k + i]);
            x[row + j] = -s / l[j * k + j];
        }
    }
    x
}

impl InverseHessian {
    /// From a calibration Hessian (`k × k` row-major f32).
    pub fn new(h: &[f32], k: usize) -> Result<InverseHessian, String> {
        Self::permuted(h, k, None)
    }

    /// From a calibration Hessian whose channels are taken in the order
    /// `perm` (`perm[i]` = original channel at position `i`), when given.
    pub fn permuted(h: &[f32], k: usize, perm: Option<&[usize]>) -> Result<InverseHessian, String> {
        if h.len() != k * k {
            return Err(format!("the Hessian has {} entries, want {k}×{k}", h.len()));
        }
        if let Some(p) = perm {
            let mut seen = vec![false; k];
            if p.len() != k || p.iter().any(|&i| i >= k || std::mem::replace(&mut seen[i], true)) {
                return Err(format!("the channel order is not a permutation of 0..{k}"));
            }
        }
        if h.iter().any(|v| !v.is_finite()) {
            return Err("the Hessian has non-finite entries".into());
        }
        let dead: Vec<bool> = (0..k).map(|j| h[j * k + j] == 0.0).collect();
        let order = |i: usize| perm.map_or(i, |p| p[i]);
        // A = P_rev · perm(H) · P_rev, damped.
        let mut a = vec![0f64; k * k];
        for i in 0..k {
            let oi = order(k - 1 - i);
            for j in 0..k {
                let oj = order(k - 1 - j);
                a[i * k + j] = h[oi * k + oj] as f64;
            }
            if dead[oi] {
                a[i * k + i] = 1.0;
            }
        }
        let damp = DAMP * (0..k).map(|j| a[j * k + j]).sum::<f64>() / k.max(1) as f64;
        for j in 0..k {
            a[j * k + j] += damp;
        }
        let x = factor_and_invert(&mut a, k).ok_or("the damped Hessian is not positive definite")?;
        // U = P_rev · L⁻¹ · P_rev (upper).
        let mut u = vec![0f64; k * k];
        for i in 0..k {
            for j in i..k {
                u[i * k + j] = x[(k - 1 - i) * k + (k - 1 - j)];
            }
        }
        Ok(InverseHessian { k, u, dead })
    }

    /// `U_ij`.
    #[inline]
    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.u[i * self.k + j]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_hessian(k: usize, tokens: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        let mut x = vec![0f64; tokens * k];
        for v in &mut x {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            *v = (s >> 33) as f64 / (1u64 << 31) as f64 - 1.0;
        }
        let mut h = vec![0f32; k * k];
        for i in 0..k {
            for j in 0..k {
                h[i * k + j] = (2.0 / tokens as f64 * (0..tokens).map(|t| x[t * k + i] * x[t * k + j]).sum::<f64>()) as f32;
            }
        }
        h
    }

    /// `UᵀU` against the damped Hessian's inverse: `(UᵀU)·H_damped = I`.
    fn check(h: &[f32], k: usize, perm: Option<&[usize]>) {
        let ih = InverseHessian::permuted(h, k, perm).unwrap();
        let order = |i: usize| perm.map_or(i, |p| p[i]);
        let mut hd = vec![0f64; k * k];
        for i in 0..k {
            for j in 0..k {
                hd[i * k + j] = h[order(i) * k + order(j)] as f64;
            }
        }
        let damp = DAMP * (0..k).map(|j| hd[j * k + j]).sum::<f64>() / k as f64;
        for j in 0..k {
            hd[j * k + j] += damp;
        }
        for i in 0..k {
            // Row i of (UᵀU)·H.
            for j in 0..k {
                let mut s = 0.0;
                for p in 0..k {
                    let inv_ip: f64 = (0..=i.min(p)).map(|q| ih.at(q, i) * ih.at(q, p)).sum();
                    s += inv_ip * hd[p * k + j];
                }
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((s - want).abs() < 1e-8, "k={k} ({i},{j}): {s}");
            }
        }
        for i in 0..k {
            assert!(ih.at(i, i) > 0.0);
            for j in 0..i {
                assert_eq!(ih.at(i, j), 0.0);
            }
        }
    }

    #[test]
    fn factor_inverts_the_damped_hessian() {
        for (k, tokens) in [(1, 3), (5, 40), (17, 64), (33, 20)] {
            check(&random_hessian(k, tokens, k as u64), k, None);
        }
        let k = 9;
        let perm = [3, 0, 8, 1, 7, 2, 6, 4, 5];
        check(&random_hessian(k, 50, 3), k, Some(&perm));
    }

    #[test]
    fn dead_channels_and_bad_input() {
        let mut h = random_hessian(4, 30, 1);
        for j in 0..4 {
            h[j * 4 + 2] = 0.0;
            h[2 * 4 + j] = 0.0;
        }
        let ih = InverseHessian::new(&h, 4).unwrap();
        assert_eq!(ih.dead, [false, false, true, false]);
        assert!(InverseHessian::new(&h, 3).is_err());
        assert!(InverseHessian::permuted(&h, 4, Some(&[0, 1, 1, 2])).is_err());
        h[0] = f32::NAN;
        assert!(InverseHessian::new(&h, 4).is_err());
    }
}
