//! ShiftAddLLM's Hessian-aware BCQ-PoT quantizer (the OPTQ/GPTQ loop with
//! error feedback) and its sensitivity score for mixed 2/3-bit allocation,
//! on the `#bcq` layout (one `α` set per row and group of columns).
//!
//! **Inverse Hessian**: [`InverseHessian`] (`super::hessian`), GPTQ's damped
//! `U` with `H⁻¹ = UᵀU`; dead channels get zero weights.
//!
//! **Loop** ([`optq_bcq`]): columns left to right in blocks of 128. At the
//! first column of each weight group, every row's `α` (BCQ greedy +
//! refinement, APoT-rounded when `pot`) is fitted to that row's group on the
//! weights as updated so far (ShiftAddLLM's "alpha at the block start, then
//! B column by column"). Then each column is quantized on its own: each
//! element takes the sign combination of its row's `α` nearest to the
//! updated weight, and `(w − q)/U_cc` is fed back to the block's later
//! columns (`× U_c,c+1..`), and at the block's end to all later columns
//! (`Err · U_block,later`).
//!
//! This loop is the per-row, group-wise layout (`scales = row`);
//! ShiftAddLLM's "acc" (one `α` set per column over all rows) and "lat" (one
//! per 8 columns × N/8 rows) layouts run the same loop in `optq_shared.rs`.
//!
//! **Sensitivity** ([`sensitivity`]): ShiftAddLLM `opt_analysis.py`,
//! `‖|W| / diag(U)‖_F · std(W / diag(U))²` (columns divided by `U_jj`;
//! unbiased std). [`allocate_bits`] sorts layers by score and gives each
//! the bits of its cumulative weight position among the ratio bins.

use flexc_ir::quant::bcq::{combos, nearest};
use flexc_ir::quant::BcqParams;

/// Columns per lazy-update block (GPTQ's and ShiftAddLLM's `--blocksize`).
pub const BLOCK: usize = 128;

pub use super::hessian::InverseHessian;

/// Quantizes `w` (`[n, k]` row-major) to `#bcq` bytes with error feedback
/// through `hinv` (module docs).
pub fn optq_bcq(p: BcqParams, w: &[f32], n: usize, k: usize, hinv: &InverseHessian, rounds: usize) -> Result<Vec<u8>, String> {
    let Some(g) = p.group().map(|g| g as usize) else {
        return Err(format!("optq: #bcq scales = {} shares α across rows (use the shared-scale quantizer)", p.scales().name()));
    };
    if g == 0 || !k.is_multiple_of(g) || w.len() != n * k || hinv.k != k {
        return Err(format!("optq: a {n}×{k} weight ({} values) with groups of {g} and a {}-channel Hessian", w.len(), hinv.k));
    }
    let ng = k / g;
    let mut wd: Vec<f64> = w.iter().map(|&v| v as f64).collect();
    for row in wd.chunks_exact_mut(k) {
        for (v, _) in row.iter_mut().zip(&hinv.dead).filter(|d| *d.1) {
            *v = 0.0;
        }
    }
    let bb = p.block_bytes();
    let mut out = vec![0u8; n * ng * bb];
    // Per row: the current group's α combinations and sign masks.
    let mut combo: Vec<Vec<(u8, f64)>> = vec![Vec::new(); n];
    let mut alpha: Vec<Vec<f32>> = vec![Vec::new(); n];
    let mut signs = vec![0u8; n * g];
    let mut err = vec![0f64; n * BLOCK];
    for i1 in (0..k).step_by(BLOCK) {
        let i2 = (i1 + BLOCK).min(k);
        for c in i1..i2 {
            let (gi, j) = (c / g, c % g);
            if j == 0 {
                for r in 0..n {
                    let vals: Vec<f32> = wd[r * k + c..r * k + c + g].iter().map(|&v| v as f32).collect();
                    alpha[r] = p.quantize_group(&vals, rounds).0;
                    combo[r] = combos(&alpha[r]);
                }
            }
            let d = hinv.at(c, c);
            for r in 0..n {
                let row = &mut wd[r * k..(r + 1) * k];
                let (s, q) = nearest(&combo[r], row[c]);
                signs[r * g + j] = s;
                let e = (row[c] - q) / d;
                err[r * BLOCK + (c - i1)] = e;
                for (t, v) in row[c + 1..i2].iter_mut().enumerate() {
                    *v -= e * hinv.at(c, c + 1 + t);
                }
            }
            if j + 1 == g {
                for r in 0..n {
                    p.pack_group(&alpha[r], &signs[r * g..(r + 1) * g], &mut out[(r * ng + gi) * bb..][..bb]);
                }
            }
        }
        propagate_block_error(&mut wd, &err, hinv, (n, k), i1..i2);
    }
    Ok(out)
}

/// GPTQ's lazy batch update: the quantisation errors `err` (`n` rows of
/// [`BLOCK`], already divided by `[H⁻¹]_cc`) of columns `cols` are fed
/// forward into the columns after the block, `w[r, j] −= Σ_b e[r, b]·H⁻¹[b, j]`.
pub(super) fn propagate_block_error(wd: &mut [f64], err: &[f64], hinv: &InverseHessian, (n, k): (usize, usize), cols: std::ops::Range<usize>) {
    let (i1, i2) = (cols.start, cols.end);
    if i2 >= k {
        return;
    }
    for r in 0..n {
        let row = &mut wd[r * k..(r + 1) * k];
        for b in 0..i2 - i1 {
            let e = err[r * BLOCK + b];
            if e != 0.0 {
                for (t, v) in row[i2..].iter_mut().enumerate() {
                    *v -= e * hinv.at(i1 + b, i2 + t);
                }
            }
        }
    }
}

/// ShiftAddLLM's layer score `‖|W| / diag(U)‖_F · std(W / diag(U))²`.
pub fn sensitivity(w: &[f32], k: usize, hinv: &InverseHessian) -> f64 {
    let scaled: Vec<f64> = w.chunks_exact(k).flat_map(|row| row.iter().enumerate().map(|(j, &v)| v as f64 / hinv.at(j, j))).collect();
    let n = scaled.len() as f64;
    let norm = scaled.iter().map(|v| v * v).sum::<f64>().sqrt();
    let mean = scaled.iter().sum::<f64>() / n;
    let var = scaled.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    norm * var
}

/// Bits per layer from `(score, weights)` and ratios (`ratios[b]` is the
/// share of weights at `b + 1` bits, summing to 1): layers by ascending
/// score, each at the bin of its last weight's position (ShiftAddLLM's
/// `bisect(cumsum · L, i) + 1`, weighted by size as it weights `fc` 4×).
pub fn allocate_bits(layers: &[(f64, usize)], ratios: &[f64]) -> Vec<u8> {
    let total: usize = layers.iter().map(|l| l.1).sum();
    let mut order: Vec<usize> = (0..layers.len()).collect();
    order.sort_by(|&a, &b| layers[a].0.total_cmp(&layers[b].0));
    let cum: Vec<f64> = ratios.iter().scan(0.0, |s, r| {
        *s += r;
        Some(*s * total as f64)
    }).collect();
    let mut bits = vec![0u8; layers.len()];
    let mut pos = 0usize;
    for i in order {
        pos += layers[i].1;
        let last = (pos - 1) as f64;
        // 1e-9: the cumulative sums of decimal ratios are not exact.
        bits[i] = cum.iter().filter(|&&c| c <= last + 1e-9 * total as f64).count().min(ratios.len() - 1) as u8 + 1;
    }
    bits
}

/// Calibration-like activations and the output error, for the OPTQ tests.
#[cfg(test)]
pub(crate) mod test_support {
    pub(crate) struct Rng(pub u64);
    impl Rng {
        pub(crate) fn f(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        }
    }

    /// `t` tokens of `k` correlated channels (a random mix of `k/4` sources
    /// plus noise), and `H = 2/t·XᵀX` by the calibration's own accumulation.
    pub(crate) fn activations(rng: &mut Rng, t: usize, k: usize) -> (Vec<f32>, Vec<f32>) {
        let src = k / 4;
        let mix: Vec<f64> = (0..src * k).map(|_| rng.f()).collect();
        let mut x = vec![0f32; t * k];
        for row in x.chunks_exact_mut(k) {
            let z: Vec<f64> = (0..src).map(|_| rng.f()).collect();
            for (j, v) in row.iter_mut().enumerate() {
                *v = ((0..src).map(|s| z[s] * mix[s * k + j]).sum::<f64>() + 0.1 * rng.f()) as f32;
            }
        }
        let mut st = flexc_ir::calib::ChannelStats::default();
        st.add_sequence_hessian(&x, k);
        (x, st.hessian.expect("hessian"))
    }

    /// ‖X·(W − Ŵ)ᵀ‖_F.
    pub(crate) fn out_err(x: &[f32], w: &[f32], wq: &[f32], k: usize) -> f64 {
        let mut e = 0f64;
        for xr in x.chunks_exact(k) {
            for (wr, qr) in w.chunks_exact(k).zip(wq.chunks_exact(k)) {
                let d: f64 = xr.iter().zip(wr.iter().zip(qr)).map(|(&a, (&b, &c))| a as f64 * (b as f64 - c as f64)).sum();
                e += d * d;
            }
        }
        e.sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{activations, out_err, Rng};
    use super::*;
    use flexc_ir::quant::{decode, encode};
    use flexc_ir::Encoding;

    #[test]
    fn error_feedback_lowers_the_output_error() {
        let mut rng = Rng(11);
        let (n, k) = (24, 256);
        let (x, h) = activations(&mut rng, 384, k);
        let w: Vec<f32> = (0..n * k).map(|_| (rng.f() * 0.05) as f32).collect();
        let ih = InverseHessian::new(&h, k).unwrap();
        for (bits, group) in [(2u8, 64u32), (3, 128), (2, 8)] {
            let p = BcqParams::row(bits, group, true, 3);
            let mut plain = vec![0f32; n * k];
            decode(Encoding::Bcq(p), &encode(Encoding::Bcq(p), &w).unwrap(), &mut plain).unwrap();
            let mut fb = vec![0f32; n * k];
            decode(Encoding::Bcq(p), &optq_bcq(p, &w, n, k, &ih, 15).unwrap(), &mut fb).unwrap();
            let (e0, e1) = (out_err(&x, &w, &plain, k), out_err(&x, &w, &fb, k));
            assert!(e1 < 0.9 * e0, "bits {bits} group {group}: feedback {e1} vs plain {e0}");
        }
    }

    #[test]
    fn dead_channels_are_zeroed_and_shapes_checked() {
        let k = 16;
        let mut h = vec![0f32; k * k];
        for j in 1..k {
            h[j * k + j] = 1.0 + j as f32;
        }
        let ih = InverseHessian::new(&h, k).unwrap();
        assert!(ih.dead[0] && !ih.dead[1]);
        let p = BcqParams::row(1, 8, true, 2);
        let w: Vec<f32> = (0..2 * k).map(|i| if i % k == 0 { 5.0 } else { 0.5 }).collect();
        let mut q = vec![0f32; 2 * k];
        decode(Encoding::Bcq(p), &optq_bcq(p, &w, 2, k, &ih, 5).unwrap(), &mut q).unwrap();
        assert!(q[0].abs() < 1.0, "dead channel weight {}", q[0]);
        assert!(optq_bcq(p, &w, 2, 12, &ih, 5).is_err());
    }

    #[test]
    fn bits_follow_the_ratio_bins() {
        // Equal sizes: ascending scores 0.1 … 1.0, 80% at 2 bits, 20% at 3.
        let layers: Vec<(f64, usize)> = (0..10).map(|i| ((10 - i) as f64 / 10.0, 100)).collect();
        let b = allocate_bits(&layers, &[0.0, 0.8, 0.2]);
        assert_eq!(b, vec![3, 3, 2, 2, 2, 2, 2, 2, 2, 2]);
        // A layer 4× larger counts 4×: it alone is 4/7 of the weights.
        let b = allocate_bits(&[(1.0, 100), (2.0, 100), (3.0, 400), (0.5, 100)], &[0.0, 0.5, 0.5]);
        assert_eq!(b, vec![2, 2, 3, 2]);
    }

    #[test]
    fn sensitivity_is_norm_times_variance() {
        let ih = InverseHessian { k: 2, u: vec![0.5, 0.0, 0.0, 2.0], dead: vec![false; 2] };
        // W / diag = [2, 1, -2, -1]: norm √10, mean 0, unbiased var 10/3.
        let s = sensitivity(&[1.0, 2.0, -1.0, -2.0], 2, &ih);
        assert!((s - 10f64.sqrt() * 10.0 / 3.0).abs() < 1e-12);
    }
}
