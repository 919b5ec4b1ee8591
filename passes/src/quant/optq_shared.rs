//! The OPTQ loop of [`super::optq`] for ShiftAddLLM's shared-scale `#bcq`
//! layouts (`scales = acc|lat`, `flexc_ir::quant::bcq_shared`).
//!
//! Columns left to right in blocks of [`BLOCK`], as `optq_bcq`. Where the
//! row layout fits each row's `α` at its group's first column, here:
//!
//! - **acc**: at every column `c`, its one `α` set is fitted (BCQ greedy +
//!   alternating least squares, APoT-rounded when `pot`) to the whole column
//!   as updated by the feedback so far (ShiftAddLLM `columnwise`: the column
//!   is quantized with its own scales, then its error is propagated);
//! - **lat**: at the first column of every 8-column block, each row block's
//!   set is fitted to its rows/8 × 8 weights as updated so far (the 8
//!   columns are the block's, ShiftAddLLM `block_quant`); the block's
//!   columns are then quantized one by one with those scales.
//!
//! Each element takes the sign combination of its set nearest to the updated
//! weight, and `(w − q)/U_cc` feeds the later columns exactly as in
//! `optq_bcq`. Without a Hessian ([`quantize_shared`] with `None`), every
//! set is fitted once to the original weights (`BcqParams::encode_shared`).

use super::optq::{propagate_block_error, InverseHessian, BLOCK};
use flexc_ir::quant::bcq::{combos, nearest};
use flexc_ir::quant::{BcqParams, BcqScales};

/// Quantizes `w` (`[n, k]` row-major) to shared-scale `#bcq` bytes, with
/// error feedback through `hinv` when given.
pub fn quantize_shared(p: BcqParams, w: &[f32], n: usize, k: usize, hinv: Option<&InverseHessian>, rounds: usize) -> Result<Vec<u8>, String> {
    if p.scales() == BcqScales::Row {
        return Err("optq: quantize_shared takes the acc or lat layout".into());
    }
    p.shared_bytes(n as u64, k as u64)?;
    let Some(hinv) = hinv else { return p.encode_shared(w, n, k, rounds) };
    if w.len() != n * k || hinv.k != k {
        return Err(format!("optq: a {n}×{k} weight ({} values) with a {}-channel Hessian", w.len(), hinv.k));
    }
    let q = p.bits as usize;
    let mut wd: Vec<f64> = w.iter().map(|&v| v as f64).collect();
    for row in wd.chunks_exact_mut(k) {
        for (v, _) in row.iter_mut().zip(&hinv.dead).filter(|d| *d.1) {
            *v = 0.0;
        }
    }
    let mut alpha = vec![0f32; k * q];
    let mut signs = vec![0u8; n * k];
    // The sign combinations of every set fitted so far.
    let mut combo: Vec<Vec<(u8, f64)>> = vec![Vec::new(); k];
    let fit = |s: usize, wd: &[f64], alpha: &mut [f32], combo: &mut [Vec<(u8, f64)>]| {
        let vals: Vec<f32> = p.shared_members(n, k, s).iter().map(|&(r, c)| wd[r * k + c] as f32).collect();
        let a = p.quantize_group(&vals, rounds).0;
        combo[s] = combos(&a);
        alpha[s * q..(s + 1) * q].copy_from_slice(&a);
    };
    let mut err = vec![0f64; n * BLOCK];
    for i1 in (0..k).step_by(BLOCK) {
        let i2 = (i1 + BLOCK).min(k);
        for c in i1..i2 {
            match p.scales() {
                BcqScales::Acc => fit(c, &wd, &mut alpha, &mut combo),
                _ if c % 8 == 0 => {
                    for rb in 0..8 {
                        fit(p.shared_set(n, k, rb * (n / 8), c), &wd, &mut alpha, &mut combo);
                    }
                }
                _ => {}
            }
            let d = hinv.at(c, c);
            for r in 0..n {
                let row = &mut wd[r * k..(r + 1) * k];
                let (s, v) = nearest(&combo[p.shared_set(n, k, r, c)], row[c]);
                signs[r * k + c] = s;
                let e = (row[c] - v) / d;
                err[r * BLOCK + (c - i1)] = e;
                for (t, x) in row[c + 1..i2].iter_mut().enumerate() {
                    *x -= e * hinv.at(c, c + 1 + t);
                }
            }
        }
        propagate_block_error(&mut wd, &err, hinv, (n, k), i1..i2);
    }
    Ok(p.pack_shared(n, k, &alpha, &signs))
}

#[cfg(test)]
mod tests {
    use super::super::optq::test_support::{activations, out_err, Rng};
    use super::*;
    use flexc_ir::Encoding;

    #[test]
    fn error_feedback_lowers_the_output_error() {
        let mut rng = Rng(17);
        let (n, k) = (32, 256);
        let (x, h) = activations(&mut rng, 384, k);
        let w: Vec<f32> = (0..n * k).map(|_| (rng.f() * 0.05) as f32).collect();
        let ih = InverseHessian::new(&h, k).unwrap();
        for scales in [BcqScales::Acc, BcqScales::Lat] {
            for bits in [2u8, 3] {
                let p = BcqParams::shared(bits, true, 3, scales);
                let mut plain = vec![0f32; n * k];
                Encoding::Bcq(p).decode(&[n, k], &quantize_shared(p, &w, n, k, None, 15).unwrap(), &mut plain).unwrap();
                let mut fb = vec![0f32; n * k];
                Encoding::Bcq(p).decode(&[n, k], &quantize_shared(p, &w, n, k, Some(&ih), 15).unwrap(), &mut fb).unwrap();
                let (e0, e1) = (out_err(&x, &w, &plain, k), out_err(&x, &w, &fb, k));
                assert!(e1 < 0.9 * e0, "{scales:?} bits {bits}: feedback {e1} vs plain {e0}");
            }
        }
    }

    #[test]
    fn feedback_alphas_are_apot_and_shapes_checked() {
        let mut rng = Rng(5);
        let (n, k) = (16, 64);
        let (_, h) = activations(&mut rng, 128, k);
        let ih = InverseHessian::new(&h, k).unwrap();
        let w: Vec<f32> = (0..n * k).map(|_| (rng.f() * 0.05) as f32).collect();
        let p = BcqParams::shared(3, true, 2, BcqScales::Lat);
        let bytes = quantize_shared(p, &w, n, k, Some(&ih), 5).unwrap();
        for a in p.shared_alphas(&bytes, n, k) {
            // f16-exact, so the f32 mantissa holds the same set bits.
            assert!(a == 0.0 || (a.to_bits() & 0x7f_ffff).count_ones() < 2, "{a} is not a sum of 2 powers of two");
        }
        assert!(quantize_shared(p, &w[..n * k - 8], n, k, Some(&ih), 5).is_err());
        assert!(quantize_shared(p, &w[..12 * k], 12, k, Some(&ih), 5).is_err());
        assert!(quantize_shared(BcqParams::row(2, 8, true, 3), &w, n, k, Some(&ih), 5).is_err());
    }
}
