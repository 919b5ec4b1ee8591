//! Affine quantization grids and their importance-weighted fit.
//!
//! Every group-wise integer format flexc writes — `#gq` with and without a
//! zero point, `#ternary`, and the ggml block formats Q4_0/Q4_1/Q5_0/Q5_1/Q8_0
//! — stores, per group of `G` elements along a row, a scale `d` (fp16),
//! possibly an offset, and one integer code `q ∈ [0, qmax]` per element. The
//! decoded value is affine in the code; the formats differ only in where the
//! offset comes from ([`Offset`]):
//!
//! | offset | value of code `q` | formats |
//! |---|---|---|
//! | `Fixed(c)` | `(q − c)·d` | `#gq` symmetric (`c = qmax/2`), `#ternary` (`c = 1`), Q4_0 (`c = 8`), Q5_0 (`c = 16`), Q8_0 (`c = 127`) |
//! | `IntZero` | `(q − z)·d`, integer `z ∈ [0, qmax]` stored | `#gq<zero = true>` |
//! | `FloatMin` | `q·d + m`, fp16 `m` stored | Q4_1, Q5_1 |
//!
//! [`Levels::fit`] chooses a group's parameters to minimise the
//! importance-weighted squared error `Σ_j a_j·(x_j − value(q_j))²` — what
//! llama.cpp's importance-matrix quantizers minimise (`a_j` is the mean
//! squared activation of input column `j`, i.e. the Hessian diagonal). It
//! is a search over candidate scales, each refined by weighted least squares
//! given its codes (llama.cpp's `make_qx_quants`/`make_qkx2_quants` idea,
//! written here for the three offset kinds): for every candidate the codes
//! are assigned by rounding, the scale (and free offset) re-fitted in closed
//! form, stored parameters rounded to fp16, the codes re-assigned with the
//! stored values, and the best candidate kept. With all `a_j` equal it is a
//! better RTN than min/max scaling; the min/max candidate is always among
//! those tried, so the fit never does worse than plain RTN on the weighted
//! error. [`Affine::nearest`] is the rounding step GPTQ calls per element.

use half::f16;

/// Where a group's zero level comes from (module table); declared with the
/// encodings' affine grids (`flexc_ir::quant::encoding`).
pub use flexc_ir::quant::GridOffset as Offset;

/// A format's integer code range and offset kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Levels {
    /// The largest code (codes are `0..=qmax`).
    pub qmax: u32,
    /// Where the zero level comes from.
    pub offset: Offset,
}

/// One group's fitted parameters: `value(q) = (q − c)·d` (`Fixed`, `IntZero`
/// with `c = z`) or `q·d + m` (`FloatMin`), every stored number already
/// rounded to what the format stores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    /// The scale (fp16-exact).
    pub d: f32,
    /// The offset code `c` (`Fixed`, `IntZero`; integer for `IntZero`).
    pub c: f32,
    /// The additive offset (`FloatMin`; fp16-exact), else 0.
    pub m: f32,
    /// Which of the two value forms applies.
    pub float_min: bool,
    /// The largest code.
    pub qmax: u32,
}

/// `v` rounded to the nearest fp16 and widened back.
pub fn to_f16(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

impl Affine {
    /// The decoded value of code `q`, computed as the format's decoder does.
    #[inline]
    pub fn value(&self, q: u32) -> f32 {
        if self.float_min { q as f32 * self.d + self.m } else { (q as f32 - self.c) * self.d }
    }

    /// The code whose value is nearest to `x` (round half to even, clamped),
    /// and that value.
    #[inline]
    pub fn nearest(&self, x: f32) -> (u32, f32) {
        let t = if self.d == 0.0 {
            0.0
        } else if self.float_min {
            (x - self.m) / self.d
        } else {
            x / self.d + self.c
        };
        self.nearest_around(x, t)
    }

    /// The nearest code to `x` given its approximate scaled position `t`:
    /// the rounded `t` or one of its neighbours. Rounding in the scaled
    /// domain can miss the nearest level by one at a midpoint (after the
    /// scale's rounding, or with a reciprocal): the neighbours are checked.
    #[inline(always)]
    fn nearest_around(&self, x: f32, t: f32) -> (u32, f32) {
        let q = round_even(t.clamp(-1.0, self.qmax as f32 + 1.0)).clamp(0.0, self.qmax as f32) as u32;
        let mut best = (q, self.value(q));
        for nb in [q.wrapping_sub(1), q + 1] {
            if nb <= self.qmax {
                let v = self.value(nb);
                if (x - v).abs() < (x - best.1).abs() {
                    best = (nb, v);
                }
            }
        }
        best
    }

    /// `Σ a_j (x_j − value(nearest(x_j)))²`: the scale search's inner loop,
    /// run per candidate grid of every group, so it is written to vectorise
    /// (AVX2 when the CPU has it): each element's distance to its nearest
    /// level comes from the reciprocal's rounded position and both
    /// neighbours, branch-free, then the weighted squares are summed in
    /// element order in f64 — the same sum as over [`Affine::nearest`].
    pub fn error(&self, x: &[f32], a: &[f32]) -> f64 {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports the feature `error_avx2` is compiled for.
            return unsafe { self.error_avx2(x, a) };
        }
        self.error_generic(x, a)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn error_avx2(&self, x: &[f32], a: &[f32]) -> f64 {
        self.error_generic(x, a)
    }

    #[inline(always)]
    fn error_generic(&self, x: &[f32], a: &[f32]) -> f64 {
        const CHUNK: usize = 64;
        let mut buf = [0f32; CHUNK];
        let mut sum = 0f64;
        for (xc, ac) in x.chunks(CHUNK).zip(a.chunks(CHUNK)) {
            let e = &mut buf[..xc.len()];
            if self.float_min {
                self.distances(xc, e, -self.m / self.d, |q| q * self.d + self.m);
            } else {
                self.distances(xc, e, self.c, |q| (q - self.c) * self.d);
            }
            for (&e, &a) in e.iter().zip(ac) {
                let e = e as f64;
                sum += a as f64 * e * e;
            }
        }
        sum
    }

    /// `e_j = x_j − value(nearest level)`, with `value` the decoder's formula
    /// on a code held as f32 and `add` the code of 0.
    #[inline(always)]
    fn distances(&self, x: &[f32], e: &mut [f32], add: f32, value: impl Fn(f32) -> f32) {
        let inv = if self.d == 0.0 { 0.0 } else { 1.0 / self.d };
        let add = if self.d == 0.0 { 0.0 } else { add };
        let qmax = self.qmax as f32;
        for (e, &x) in e.iter_mut().zip(x) {
            let q = round_even((x * inv + add).clamp(-1.0, qmax + 1.0)).clamp(0.0, qmax);
            let (d0, dm, dp) = (x - value(q), x - value((q - 1.0).max(0.0)), x - value((q + 1.0).min(qmax)));
            let mut best = d0;
            if dm.abs() < best.abs() {
                best = dm;
            }
            if dp.abs() < best.abs() {
                best = dp;
            }
            *e = best;
        }
    }
}

/// `t` rounded half to even without a libm call (`rintf` is not inlined on
/// baseline x86-64 and dominated the scale search): exact for |t| < 2^22,
/// which every caller's clamp ensures.
#[inline(always)]
fn round_even(t: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23: the sum's ulp is 1
    (t + MAGIC) - MAGIC
}

/// Candidate scales: the group's range is mapped onto the code range
/// stretched by `1 + s/16` for `s` in `STRETCH` (below 1 leaves end codes
/// unused; above 1 clips the extremes, which pays when they matter little).
const STRETCH: std::ops::RangeInclusive<i32> = -8..=12;
/// Best direct candidates that get least-squares refits.
const REFINE: usize = 3;
/// Alternating (assign codes, refit) rounds at the end.
const POLISH: usize = 4;

/// Which point of a range a direct candidate keeps exactly.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Anchor {
    Low,
    High,
    /// The middle of the code range sits at this value.
    Mid(f32),
}

/// The importance-weighted mean and standard deviation of `x`.
fn weighted_moments(x: &[f32], a: &[f32]) -> (f32, f32) {
    let (mut s0, mut s1, mut s2) = (0f64, 0f64, 0f64);
    for (&v, &w) in x.iter().zip(a) {
        let (v, w) = (v as f64, w as f64);
        s0 += w;
        s1 += w * v;
        s2 += w * v * v;
    }
    if s0 <= 0.0 {
        return (0.0, 0.0);
    }
    let mean = s1 / s0;
    (mean as f32, (s2 / s0 - mean * mean).max(0.0).sqrt() as f32)
}

impl Levels {
    /// The parameters of a group with values `x` and importances `a`
    /// (`a_j ≥ 0`; all-zero importances are treated as all-ones) minimising
    /// the weighted squared error (module docs): direct candidates over a
    /// range of stretches and both anchors, least-squares refits of the best
    /// few, then alternating code assignment and refits while they help.
    pub fn fit(&self, x: &[f32], a: &[f32]) -> Affine {
        debug_assert_eq!(x.len(), a.len());
        let ones;
        let a = if a.iter().any(|&v| v > 0.0) {
            a
        } else {
            ones = vec![1.0f32; x.len()];
            &ones
        };
        let mut direct: Vec<(f64, Affine)> = Vec::with_capacity(64);
        let (lo, hi) = x.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        for s in STRETCH {
            for anchor in [Anchor::Low, Anchor::High, Anchor::Mid((lo + hi) / 2.0)] {
                if let Some(p) = self.direct(lo, hi, 1.0 + s as f32 / 16.0, anchor) {
                    direct.push((p.error(x, a), p));
                }
            }
        }
        // Ranges around the importance-weighted mean, for groups whose
        // important elements sit well inside the min/max range.
        let (mean, sd) = weighted_moments(x, a);
        if !matches!(self.offset, Offset::Fixed(_)) && sd > 0.0 {
            for t in [1.0f32, 1.5, 2.0, 2.5, 3.0] {
                if let Some(p) = self.direct(mean - t * sd, mean + t * sd, 1.0, Anchor::Mid(mean)) {
                    direct.push((p.error(x, a), p));
                }
            }
        }
        if direct.is_empty() {
            return self.zero_group();
        }
        direct.sort_by(|u, v| u.0.total_cmp(&v.0));
        let (mut err, mut best) = direct[0];
        let mut refits = Vec::new();
        for &(_, p) in direct.iter().take(REFINE) {
            self.refits(x, a, &p, &mut refits);
            if p.float_min {
                // A free offset also has a phase: where the levels fall
                // between the important values.
                for f in [-0.375f32, -0.25, -0.125, 0.125, 0.25, 0.375] {
                    let q = Affine { m: to_f16(p.m + f * p.d), ..p };
                    refits.push(q);
                    self.refits(x, a, &q, &mut refits);
                }
            }
        }
        for _ in 0..=POLISH {
            let mut improved = false;
            for p in refits.drain(..) {
                let e = p.error(x, a);
                if e < err {
                    (err, best, improved) = (e, p, true);
                }
            }
            if !improved {
                break;
            }
            self.refits(x, a, &best, &mut refits);
        }
        best
    }

    /// Parameters that decode every code to 0 (an all-zero or degenerate group).
    fn zero_group(&self) -> Affine {
        let c = match self.offset {
            Offset::Fixed(c) => c,
            _ => 0.0,
        };
        Affine { d: 0.0, c, m: 0.0, float_min: self.offset == Offset::FloatMin, qmax: self.qmax }
    }

    /// The stored parameters that map the range `[lo, hi]` onto the code
    /// range stretched by `stretch`, at the given anchor.
    fn direct(&self, lo: f32, hi: f32, stretch: f32, anchor: Anchor) -> Option<Affine> {
        let qmax = self.qmax as f32;
        let p = match self.offset {
            Offset::Fixed(c) => {
                // The high (or low) extreme lands on the stretched extreme level.
                let (v, level) = if anchor == Anchor::High { (hi, qmax - c) } else { (lo, -c) };
                let d = to_f16(v / (level * stretch));
                Affine { d, c, m: 0.0, float_min: false, qmax: self.qmax }
            }
            Offset::IntZero => {
                let (lo, hi) = (lo.min(0.0), hi.max(0.0));
                let d = to_f16((hi - lo) / (qmax * stretch));
                let z = match anchor {
                    Anchor::Low => (-lo / d).round_ties_even(),
                    Anchor::High => qmax - (hi / d).round_ties_even(),
                    Anchor::Mid(mid) => (qmax / 2.0 - mid / d).round_ties_even(),
                };
                Affine { d, c: z.clamp(0.0, qmax), m: 0.0, float_min: false, qmax: self.qmax }
            }
            Offset::FloatMin => {
                let d = to_f16((hi - lo) / (qmax * stretch));
                let m = match anchor {
                    Anchor::Low => lo,
                    Anchor::High => hi - qmax * d,
                    Anchor::Mid(mid) => mid - qmax / 2.0 * d,
                };
                Affine { d, c: 0.0, m: to_f16(m), float_min: true, qmax: self.qmax }
            }
        };
        (p.d > 0.0 && p.d.is_finite() && p.m.is_finite()).then_some(p)
    }

    /// Weighted least-squares refits of the stored parameters given the
    /// codes `p` assigns: the scale for a fixed offset; scale and offset for
    /// `FloatMin`; for `IntZero` the scale for each of the two integer zero
    /// points around the least-squares offset. Pushed onto `out`.
    fn refits(&self, x: &[f32], a: &[f32], p: &Affine, out: &mut Vec<Affine>) {
        let codes: Vec<u32> = x.iter().map(|&v| p.nearest(v).0).collect();
        let qmax = self.qmax as f64;
        let scale_for = |c: f64| -> Option<f32> {
            let (mut num, mut den) = (0f64, 0f64);
            for ((&v, &w), &q) in x.iter().zip(a).zip(&codes) {
                let l = q as f64 - c;
                num += w as f64 * l * v as f64;
                den += w as f64 * l * l;
            }
            (den > 0.0 && num > 0.0).then(|| to_f16((num / den) as f32)).filter(|d| *d > 0.0 && d.is_finite())
        };
        match self.offset {
            Offset::Fixed(c) => out.extend(scale_for(c as f64).map(|d| Affine { d, ..*p })),
            Offset::IntZero | Offset::FloatMin => {
                // [Σaq² Σaq; Σaq Σa]·[d; m] = [Σaqx; Σax]
                let (mut sqq, mut sq, mut s1, mut sqx, mut sx) = (0f64, 0f64, 0f64, 0f64, 0f64);
                for ((&v, &w), &q) in x.iter().zip(a).zip(&codes) {
                    let (w, q, v) = (w as f64, q as f64, v as f64);
                    sqq += w * q * q;
                    sq += w * q;
                    s1 += w;
                    sqx += w * q * v;
                    sx += w * v;
                }
                let det = sqq * s1 - sq * sq;
                if det <= 0.0 {
                    return;
                }
                let d = (sqx * s1 - sq * sx) / det;
                let m = (sqq * sx - sq * sqx) / det;
                if d <= 0.0 || !d.is_finite() {
                    return;
                }
                if self.offset == Offset::FloatMin {
                    let (d, m) = (to_f16(d as f32), to_f16(m as f32));
                    if d > 0.0 && d.is_finite() && m.is_finite() {
                        out.push(Affine { d, c: 0.0, m, float_min: true, qmax: self.qmax });
                    }
                } else {
                    let zc = (-m / d).clamp(0.0, qmax);
                    for z in [zc.floor(), zc.ceil().min(qmax)] {
                        if let Some(d) = scale_for(z) {
                            out.push(Affine { d, c: z as f32, m: 0.0, float_min: false, qmax: self.qmax });
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Brute force: every fp16 scale on a fine grid (and, for the offsets,
    /// every zero point / a grid of fp16 mins), codes by nearest rounding.
    fn brute(l: &Levels, x: &[f32], a: &[f32]) -> f64 {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let mut best = f64::MAX;
        for i in 1..=4000 {
            let d = to_f16(amax * 2.0 * i as f32 / 4000.0 / l.qmax as f32 * 1.5);
            if d <= 0.0 {
                continue;
            }
            let offsets: Vec<(f32, f32)> = match l.offset {
                Offset::Fixed(c) => vec![(c, 0.0)],
                Offset::IntZero => (0..=l.qmax).map(|z| (z as f32, 0.0)).collect(),
                Offset::FloatMin => (-40..=40).map(|k| (0.0, to_f16(-amax * k as f32 / 40.0))).collect(),
            };
            for (c, m) in offsets {
                let p = Affine { d, c, m, float_min: l.offset == Offset::FloatMin, qmax: l.qmax };
                best = best.min(p.error(x, a));
            }
        }
        best
    }

    #[test]
    fn round_even_is_rint_on_the_clamped_range() {
        for i in -4000..=40000 {
            let t = i as f32 * 0.25 - 1.0;
            assert_eq!(round_even(t), t.round_ties_even(), "{t}");
        }
        let mut seed = 7;
        for _ in 0..100_000 {
            let t = lcg(&mut seed) * 300.0;
            assert_eq!(round_even(t), t.round_ties_even(), "{t}");
        }
    }

    #[test]
    fn error_by_reciprocal_equals_the_sum_over_nearest_levels() {
        let mut seed = 11;
        for l in [
            Levels { qmax: 7, offset: Offset::IntZero },
            Levels { qmax: 15, offset: Offset::Fixed(8.0) },
            Levels { qmax: 31, offset: Offset::FloatMin },
            Levels { qmax: 3, offset: Offset::IntZero },
        ] {
            for _ in 0..200 {
                // Grid-aligned values (ties included) and random ones.
                let x: Vec<f32> = (0..64).map(|i| if i % 3 == 0 { (lcg(&mut seed) * 8.0).round() * 0.125 } else { lcg(&mut seed) }).collect();
                let a: Vec<f32> = (0..64).map(|_| lcg(&mut seed).abs()).collect();
                let p = l.fit(&x, &a);
                let slow: f64 = x.iter().zip(&a).map(|(&x, &a)| a as f64 * ((x - p.nearest(x).1) as f64).powi(2)).sum();
                assert_eq!(p.error(&x, &a), slow);
            }
        }
    }

    #[test]
    fn weighted_fit_is_close_to_brute_force_optimum() {
        let formats = [
            Levels { qmax: 15, offset: Offset::Fixed(8.0) },
            Levels { qmax: 7, offset: Offset::Fixed(3.5) },
            Levels { qmax: 2, offset: Offset::Fixed(1.0) },
            Levels { qmax: 7, offset: Offset::IntZero },
            Levels { qmax: 3, offset: Offset::IntZero },
            Levels { qmax: 15, offset: Offset::FloatMin },
        ];
        let mut seed = 7u64;
        let (mut worse, mut total) = (0f64, 0f64);
        for l in &formats {
            for _ in 0..25 {
                // Importances spread over two orders of magnitude, as a
                // calibration Hessian's diagonal is.
                let x: Vec<f32> = (0..32).map(|_| lcg(&mut seed) * 0.05 + 0.01).collect();
                let a: Vec<f32> = (0..32).map(|_| (3.0 * lcg(&mut seed)).exp()).collect();
                let fit = l.fit(&x, &a).error(&x, &a);
                let opt = brute(l, &x, &a);
                assert!(fit <= opt * 1.15 + 1e-12, "{l:?}: fit {fit} vs brute-force {opt}");
                worse += fit;
                total += opt;
            }
        }
        // On average within a few percent of the (grid) optimum.
        assert!(worse <= total * 1.04, "fit error {worse} vs brute-force {total}");
    }

    #[test]
    fn fit_beats_min_max_rtn_on_weighted_error() {
        let l = Levels { qmax: 7, offset: Offset::IntZero };
        let mut seed = 11u64;
        for _ in 0..50 {
            let x: Vec<f32> = (0..64).map(|_| lcg(&mut seed)).collect();
            let a: Vec<f32> = (0..64).map(|_| (lcg(&mut seed) + 1.0).powi(4)).collect();
            let (lo, hi) = x.iter().fold((0f32, 0f32), |(l, h), &v| (l.min(v), h.max(v)));
            let d = to_f16((hi - lo) / 7.0);
            let rtn = Affine { d, c: (-lo / d).round_ties_even().clamp(0.0, 7.0), m: 0.0, float_min: false, qmax: 7 };
            assert!(l.fit(&x, &a).error(&x, &a) <= rtn.error(&x, &a) * 1.0001);
        }
    }

    #[test]
    fn exact_grids_round_trip_and_zero_groups_stay_zero() {
        let p = Affine { d: 0.25, c: 3.0, m: 0.0, float_min: false, qmax: 7 };
        let x: Vec<f32> = (0..8).map(|q| p.value(q)).collect();
        let fit = Levels { qmax: 7, offset: Offset::IntZero }.fit(&x, &[1.0; 8]);
        assert_eq!(fit.error(&x, &[1.0; 8]), 0.0);
        let z = Levels { qmax: 15, offset: Offset::Fixed(8.0) }.fit(&[0.0; 32], &[1.0; 32]);
        assert_eq!(z.nearest(0.3).1, 0.0);
    }

    #[test]
    fn nearest_returns_the_nearest_level() {
        let p = Affine { d: to_f16(0.1), c: 0.0, m: to_f16(-0.35), float_min: true, qmax: 15 };
        for i in -100..200 {
            let x = i as f32 * 0.0137;
            let (q, v) = p.nearest(x);
            assert_eq!(v, p.value(q));
            for o in 0..=15 {
                assert!((x - v).abs() <= (x - p.value(o)).abs());
            }
        }
    }
}
