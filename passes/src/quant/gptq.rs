//! GPTQ (OPTQ) and importance-weighted RTN for every affine group format
//! ([`QuantFormat`]: `#gq`, `#ternary`, Q4_0/Q4_1/Q5_0/Q5_1/Q8_0).
//!
//! **RTN** ([`rtn`]): each group's scale (and zero/min) is fitted with
//! [`Levels::fit`] under per-column importances (the calibration's
//! `diag H`, llama.cpp's importance matrix; all ones without data), codes
//! by nearest rounding.
//!
//! **GPTQ** ([`gptq`]): for each row, columns are quantized one at a time
//! and each column's rounding error `δ = w_c − q_c` is fed forward to the
//! columns not yet quantized, `w_{c+1..} −= δ/U_cc · U_{c, c+1..}`, with
//! `U` the upper Cholesky factor of the damped `H⁻¹` ([`InverseHessian`]);
//! this is exactly GPTQ's update (its lazy batches only regroup the same
//! arithmetic for GPU memory traffic; on a CPU a tile of rows sharing each
//! row of `U` in L1 does that job). Rows are independent given `H`, so
//! tiles of rows run in parallel.
//! - Groups: *dynamic* (the default, as GPTQ's `groupsize`): a group's grid
//!   is fitted, importance-weighted, to the row's *updated* weights when its
//!   first column comes up. *Static* (`static_groups`): every grid is fitted
//!   to the original weights first — required by act-order, so that the
//!   packed layout (groups of consecutive columns) does not change.
//! - Act-order (`act_order`): columns are quantized in descending `H_jj`,
//!   the Hessian permuted to match; codes are written back to their own
//!   column, so the packed weight is in the kernel's layout unchanged.
//! - Dead channels (`H_jj = 0`) have their weights zeroed first.
//!
//! The returned [`Quantized::loss`] is `Σ_rows δᵀ·H_damped·δ` accumulated
//! as GPTQ's `Losses` (`Σ δ²/U_cc²`), the layer's output error on the
//! calibration data up to the damping; [`output_error`] computes the
//! undamped `Σ δᵀ·H·δ` exactly for comparisons between formats.

use super::formats::QuantFormat;
use super::grid::{Affine, Levels};
use super::hessian::InverseHessian;
use rayon::prelude::*;

/// Rows quantized together (they share every row of `U` while it is in L1).
const TILE: usize = 8;

/// GPTQ's options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GptqOptions {
    /// Quantize columns in descending `H_jj` (implies static groups).
    pub act_order: bool,
    /// Fit every group's grid to the original weights before the loop.
    pub static_groups: bool,
}

/// A quantized weight: its storage bytes, the values they decode to, and
/// the quantizer's own error estimate.
#[derive(Clone, Debug)]
pub struct Quantized {
    /// Storage bytes in the format's layout.
    pub bytes: Vec<u8>,
    /// The decoded values, `[n, k]` row-major.
    pub values: Vec<f32>,
    /// GPTQ: `Σ δ²/U_cc²`; RTN: the importance-weighted squared error.
    pub loss: f64,
}

fn check(f: &QuantFormat, w: &[f32], n: usize, k: usize) -> Result<usize, String> {
    if w.len() != n * k {
        return Err(format!("{} values for a {n}×{k} weight", w.len()));
    }
    if f.group == 0 || !k.is_multiple_of(f.group) {
        return Err(format!("rows of {k} are not whole groups of {} ({})", f.group, f.enc));
    }
    Ok(k / f.group)
}

/// Packs a row's codes group by group and decodes them.
fn pack_row(f: &QuantFormat, fits: &[Affine], codes: &[u32], bytes: &mut [u8], values: &mut [f32]) {
    let (g, bb) = (f.group, f.block_bytes());
    for (gi, p) in fits.iter().enumerate() {
        f.pack(p, &codes[gi * g..(gi + 1) * g], &mut bytes[gi * bb..(gi + 1) * bb]);
        for (v, &q) in values[gi * g..(gi + 1) * g].iter_mut().zip(&codes[gi * g..(gi + 1) * g]) {
            *v = p.value(q);
        }
    }
}

/// Importance-weighted RTN (module docs); `imp` has one entry per column
/// (all ones when `None`).
pub fn rtn(f: &QuantFormat, w: &[f32], n: usize, k: usize, imp: Option<&[f32]>) -> Result<Quantized, String> {
    let ng = check(f, w, n, k)?;
    let ones = vec![1f32; k];
    let imp = imp.unwrap_or(&ones);
    if imp.len() != k {
        return Err(format!("{} importances for {k} columns", imp.len()));
    }
    let (g, bb) = (f.group, f.block_bytes());
    let mut bytes = vec![0u8; n * ng * bb];
    let mut values = vec![0f32; n * k];
    let loss: f64 = bytes
        .par_chunks_mut(ng * bb)
        .zip(values.par_chunks_mut(k))
        .zip(w.par_chunks(k))
        .map(|((b, v), row)| {
            let fits: Vec<Affine> = (0..ng).map(|gi| f.levels.fit(&row[gi * g..(gi + 1) * g], &imp[gi * g..(gi + 1) * g])).collect();
            let codes: Vec<u32> = row.iter().enumerate().map(|(j, &x)| fits[j / g].nearest(x).0).collect();
            pack_row(f, &fits, &codes, b, v);
            row.iter().zip(v.iter()).zip(imp).map(|((&x, &q), &a)| a as f64 * ((x - q) as f64).powi(2)).sum::<f64>()
        })
        .sum();
    Ok(Quantized { bytes, values, loss })
}

/// The Hessian side of a GPTQ run: the quantization order, `U` in that
/// order, the diagonal and the dead channels. It depends only on `H` and
/// the options, so a weight tried in several formats (mixed precision)
/// factors its Hessian once.
pub struct GptqPlan {
    k: usize,
    /// `U` in the quantization order, row-major f32.
    u: Vec<f32>,
    /// `order[c]` = the original column quantized at step `c`.
    order: Vec<usize>,
    diag: Vec<f32>,
    dead: Vec<bool>,
    static_groups: bool,
}

impl GptqPlan {
    /// Factors the damped (act-order: permuted) Hessian `h` (`k × k`).
    pub fn new(h: &[f32], k: usize, opts: GptqOptions) -> Result<GptqPlan, String> {
        if h.len() != k * k {
            return Err(format!("a {}-entry Hessian for {k} columns", h.len()));
        }
        let diag: Vec<f32> = (0..k).map(|j| h[j * k + j]).collect();
        let perm: Option<Vec<usize>> = opts.act_order.then(|| {
            let mut p: Vec<usize> = (0..k).collect();
            p.sort_by(|&a, &b| diag[b].total_cmp(&diag[a]));
            p
        });
        let ih = InverseHessian::permuted(h, k, perm.as_deref())?;
        let u: Vec<f32> = ih.u.iter().map(|&v| v as f32).collect();
        let order: Vec<usize> = perm.unwrap_or_else(|| (0..k).collect());
        Ok(GptqPlan { k, u, order, diag, dead: ih.dead, static_groups: opts.static_groups || opts.act_order })
    }
}

/// GPTQ with error feedback through the calibration Hessian `h` (`k × k`),
/// module docs.
pub fn gptq(f: &QuantFormat, w: &[f32], n: usize, k: usize, h: &[f32], opts: GptqOptions) -> Result<Quantized, String> {
    gptq_planned(f, w, n, k, &GptqPlan::new(h, k, opts)?)
}

/// [`gptq`] with the Hessian already factored ([`GptqPlan`]).
pub fn gptq_planned(f: &QuantFormat, w: &[f32], n: usize, k: usize, plan: &GptqPlan) -> Result<Quantized, String> {
    gptq_on_grids(f, w, n, k, plan, None)
}

/// [`gptq_planned`], with every `(row, group)` grid given (`n × groups`,
/// static) instead of fitted: the error-feedback loop alone, for tests
/// against an independent implementation.
fn gptq_on_grids(f: &QuantFormat, w: &[f32], n: usize, k: usize, plan: &GptqPlan, grids: Option<&[Affine]>) -> Result<Quantized, String> {
    let ng = check(f, w, n, k)?;
    if grids.is_some_and(|g| g.len() != n * ng) {
        return Err(format!("{} grids for {n} rows of {ng} groups", grids.map_or(0, <[Affine]>::len)));
    }
    if plan.k != k {
        return Err(format!("a Hessian for {} columns and a weight of {k}", plan.k));
    }
    let (g, bb) = (f.group, f.block_bytes());
    let mut bytes = vec![0u8; n * ng * bb];
    let mut values = vec![0f32; n * k];
    let cx = Loop { f, k, g, ng, u: &plan.u, order: &plan.order, diag: &plan.diag, dead: &plan.dead, static_groups: plan.static_groups, grids };
    let loss: f64 = bytes
        .par_chunks_mut(TILE * ng * bb)
        .zip(values.par_chunks_mut(TILE * k))
        .zip(w.par_chunks(TILE * k))
        .enumerate()
        .map(|(i, ((b, v), rows))| cx.tile(i * TILE, rows, b, v))
        .sum();
    Ok(Quantized { bytes, values, loss })
}

/// The shared inputs of one GPTQ run.
struct Loop<'a> {
    f: &'a QuantFormat,
    k: usize,
    g: usize,
    ng: usize,
    /// `U` in the quantization order, row-major f32.
    u: &'a [f32],
    /// `order[c]` = the original column quantized at step `c`.
    order: &'a [usize],
    diag: &'a [f32],
    dead: &'a [bool],
    static_groups: bool,
    /// Given grids (`n × ng`), used instead of fitting.
    grids: Option<&'a [Affine]>,
}

impl Loop<'_> {
    /// Quantizes a tile of rows (`rows.len() / k` of them, the first being
    /// row `row0`); returns their loss.
    fn tile(&self, row0: usize, rows: &[f32], bytes: &mut [u8], values: &mut [f32]) -> f64 {
        let (k, g, ng) = (self.k, self.g, self.ng);
        let t = rows.len() / k;
        let levels: &Levels = &self.f.levels;
        // Working rows in quantization order, dead channels zeroed.
        let mut work = vec![0f32; t * k];
        let mut fits: Vec<Option<Affine>> = vec![None; t * ng];
        for r in 0..t {
            let src = &rows[r * k..(r + 1) * k];
            let clean: Vec<f32> = src.iter().zip(self.dead).map(|(&x, &d)| if d { 0.0 } else { x }).collect();
            for (c, &o) in self.order.iter().enumerate() {
                work[r * k + c] = clean[o];
            }
            if let Some(grids) = self.grids {
                for gi in 0..ng {
                    fits[r * ng + gi] = Some(grids[(row0 + r) * ng + gi]);
                }
            } else if self.static_groups {
                for gi in 0..ng {
                    fits[r * ng + gi] = Some(levels.fit(&clean[gi * g..(gi + 1) * g], &self.diag[gi * g..(gi + 1) * g]));
                }
            }
        }
        let mut codes = vec![0u32; t * k];
        let mut loss = 0f64;
        for c in 0..k {
            let col = self.order[c];
            let gi = col / g;
            let urow = &self.u[c * k..(c + 1) * k];
            let ucc = urow[c];
            for r in 0..t {
                let w = &mut work[r * k..(r + 1) * k];
                let fit = match fits[r * ng + gi] {
                    Some(p) => p,
                    None => {
                        // Dynamic groups run in natural order: the group is w[c..c+g].
                        let p = levels.fit(&w[c..c + g], &self.diag[c..c + g]);
                        fits[r * ng + gi] = Some(p);
                        p
                    }
                };
                let (q, v) = fit.nearest(w[c]);
                codes[r * k + col] = q;
                let err = w[c] - v;
                loss += (err as f64 / ucc as f64).powi(2);
                let e = err / ucc;
                if e != 0.0 {
                    axpy_neg(&mut w[c + 1..], e, &urow[c + 1..]);
                }
            }
        }
        let bb = self.f.block_bytes();
        for r in 0..t {
            let row_fits: Vec<Affine> = fits[r * ng..(r + 1) * ng].iter().map(|p| p.expect("every group is fitted")).collect();
            pack_row(self.f, &row_fits, &codes[r * k..(r + 1) * k], &mut bytes[r * ng * bb..(r + 1) * ng * bb], &mut values[r * k..(r + 1) * k]);
        }
        loss
    }
}

/// `y −= a·x` elementwise (each element rounds the product, then the
/// difference, so every vector width gives the same bits).
pub(crate) fn axpy_neg(y: &mut [f32], a: f32, x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports the feature `axpy_avx2` is compiled for.
        return unsafe { axpy_avx2(y, a, x) };
    }
    axpy_generic(y, a, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn axpy_avx2(y: &mut [f32], a: f32, x: &[f32]) {
    axpy_generic(y, a, x)
}

#[inline(always)]
fn axpy_generic(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y -= a * x;
    }
}

/// `Σ_rows δᵀ·H·δ` for `δ = w − q` (`[n, k]` each, `H` `k × k`): the
/// layer's summed squared output error on the calibration data (×2/n).
///
/// Computed per tile of [`TILE`] rows as `y = Σ_j δ_j·H[j, :]` (row j of
/// `H` streamed once for the whole tile; only the quadratic form is read,
/// so `H` need not be symmetric) then `Σ δ·y`, in f64.
pub fn output_error(w: &[f32], q: &[f32], k: usize, h: &[f32]) -> f64 {
    w.par_chunks(k * TILE).zip(q.par_chunks(k * TILE)).map(|(wt, qt)| quadratic_tile(wt, qt, k, h)).sum()
}

fn quadratic_tile(wt: &[f32], qt: &[f32], k: usize, h: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features `quadratic_tile_avx2` is compiled for.
        return unsafe { quadratic_tile_avx2(wt, qt, k, h) };
    }
    quadratic_tile_generic(wt, qt, k, h)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quadratic_tile_avx2(wt: &[f32], qt: &[f32], k: usize, h: &[f32]) -> f64 {
    quadratic_tile_generic(wt, qt, k, h)
}

#[inline(always)]
fn quadratic_tile_generic(wt: &[f32], qt: &[f32], k: usize, h: &[f32]) -> f64 {
    let d: Vec<f64> = wt.iter().zip(qt).map(|(&a, &b)| a as f64 - b as f64).collect();
    let mut y = vec![0f64; d.len()];
    for (j, hr) in h.chunks_exact(k).enumerate() {
        for (dr, yr) in d.chunks_exact(k).zip(y.chunks_exact_mut(k)) {
            let dj = dr[j];
            if dj != 0.0 {
                for (yv, &hv) in yr.iter_mut().zip(hr) {
                    *yv = dj.mul_add(hv as f64, *yv);
                }
            }
        }
    }
    d.iter().zip(&y).map(|(a, b)| a * b).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::optq::test_support::{activations, Rng};
    use flexc_ir::quant::{decode, GqParams};
    use flexc_ir::Encoding;

    fn format(bits: u8, group: u32) -> QuantFormat {
        QuantFormat::of(Encoding::Gq(GqParams { bits, group, zero: true })).unwrap()
    }

    #[test]
    fn gptq_beats_rtn_on_the_output_error_and_bytes_decode_to_values() {
        let mut rng = Rng(5);
        let (n, k) = (20, 128);
        let (_, h) = activations(&mut rng, 256, k);
        let w: Vec<f32> = (0..n * k).map(|_| (rng.f() * 0.05) as f32).collect();
        for (bits, group) in [(2u8, 32u32), (3, 64), (4, 128)] {
            let f = format(bits, group);
            let plain = rtn(&f, &w, n, k, None).unwrap();
            let diag: Vec<f32> = (0..k).map(|j| h[j * k + j]).collect();
            let weighted = rtn(&f, &w, n, k, Some(&diag)).unwrap();
            let e0 = output_error(&w, &plain.values, k, &h);
            let e1 = output_error(&w, &weighted.values, k, &h);
            assert!(e1 <= e0 * 1.02, "{bits}-bit: weighted RTN {e1} vs plain {e0}");
            for opts in [GptqOptions::default(), GptqOptions { act_order: true, static_groups: true }, GptqOptions { act_order: false, static_groups: true }] {
                let q = gptq(&f, &w, n, k, &h, opts).unwrap();
                let e2 = output_error(&w, &q.values, k, &h);
                assert!(e2 < 0.8 * e1, "{bits}-bit {opts:?}: GPTQ {e2} vs RTN {e1}");
                let mut dec = vec![0f32; n * k];
                decode(f.enc, &q.bytes, &mut dec).unwrap();
                assert_eq!(dec, q.values);
                // The loop's own loss tracks the (damped) output error.
                assert!((q.loss - e2).abs() < 0.2 * e2, "loss {} vs error {e2}", q.loss);
            }
        }
    }

    #[test]
    fn identity_hessian_gptq_is_rtn() {
        // H = I: no correlations, so no feedback changes any later choice
        // beyond what the unweighted fit does (dynamic groups, natural order).
        let (n, k) = (3, 64);
        let mut h = vec![0f32; k * k];
        for j in 0..k {
            h[j * k + j] = 1.0;
        }
        let mut rng = Rng(9);
        let w: Vec<f32> = (0..n * k).map(|_| rng.f() as f32).collect();
        let f = format(3, 32);
        let a = gptq(&f, &w, n, k, &h, GptqOptions::default()).unwrap();
        let b = rtn(&f, &w, n, k, None).unwrap();
        assert_eq!(a.bytes, b.bytes);
    }

    #[test]
    fn matches_numpy_gptq() {
        // passes/tools/gptq_reference.py: an independent float64 GPTQ on the
        // same f32 W and H with min-max grids given per (row, group).
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gptq_numpy.json")).unwrap();
        let j: serde_json::Value = serde_json::from_str(&text).unwrap();
        let num = |key: &str| j[key].as_u64().unwrap() as usize;
        let (n, k, group, bits) = (num("n"), num("k"), num("group"), num("bits") as u8);
        let floats = |key: &str| j[key].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect::<Vec<f32>>();
        let (w, h) = (floats("w"), floats("h"));
        let f = format(bits, group as u32);
        let grids: Vec<Affine> = j["grids"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter())
            .map(|g| Affine { d: g[0].as_f64().unwrap() as f32, c: g[1].as_f64().unwrap() as f32, m: 0.0, float_min: false, qmax: (1 << bits) - 1 })
            .collect();
        let q = gptq_on_grids(&f, &w, n, k, &GptqPlan::new(&h, k, GptqOptions::default()).unwrap(), Some(&grids)).unwrap();
        let want: Vec<u32> = j["codes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let got: Vec<u32> = (0..n * k).map(|i| grids[(i / k) * (k / group) + (i % k) / group].nearest(q.values[i]).0).collect();
        let same = got.iter().zip(&want).filter(|(a, b)| a == b).count();
        // f32 against float64: a code at a rounding boundary may flip, and
        // its error feeds the rest of the row; almost all must agree.
        assert!(same * 100 >= 97 * n * k, "{same} of {} codes agree with numpy", n * k);
        let err = output_error(&w, &q.values, k, &h);
        let (want_err, rtn_err) = (j["output_error"].as_f64().unwrap(), j["rtn_output_error"].as_f64().unwrap());
        assert!((err - want_err).abs() <= 0.02 * want_err, "output error {err} vs numpy {want_err}");
        assert!(err < rtn_err, "GPTQ {err} must beat RTN {rtn_err} on the same grids");
    }

    #[test]
    fn output_error_is_the_quadratic_form_row_by_row() {
        let mut rng = Rng(11);
        let (n, k) = (13, 24);
        let w: Vec<f32> = (0..n * k).map(|_| rng.f() as f32).collect();
        let q: Vec<f32> = (0..n * k).map(|i| if i % 5 == 0 { w[i] } else { rng.f() as f32 }).collect();
        let h: Vec<f32> = (0..k * k).map(|_| rng.f() as f32).collect();
        let brute: f64 = (0..n)
            .map(|r| {
                let d = |i: usize| w[r * k + i] as f64 - q[r * k + i] as f64;
                (0..k).flat_map(|i| (0..k).map(move |j| (i, j))).map(|(i, j)| d(i) * h[i * k + j] as f64 * d(j)).sum::<f64>()
            })
            .sum();
        let got = output_error(&w, &q, k, &h);
        assert!((got - brute).abs() <= 1e-9 * (1.0 + brute.abs()), "{got} vs {brute}");
    }

    #[test]
    fn shapes_are_checked() {
        let f = format(2, 32);
        assert!(rtn(&f, &[0.0; 48], 1, 48, None).is_err());
        assert!(gptq(&f, &[0.0; 64], 1, 64, &[1.0; 10], GptqOptions::default()).is_err());
    }
}
