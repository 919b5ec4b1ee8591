//! The runtime's remaining non-GEMM kernels, in plain Rust: the rope tables,
//! attention, softmax and the unfused activations (rmsnorm, rope, the
//! elementwise ops and the gated FFN activations are Cranelift-generated, see
//! `jitops`; `rmsnorm`, `rope` and the scalar activations are their test
//! oracles).
//!
//! These are written so that LLVM vectorises them (fixed-width accumulator
//! arrays, branch-free polynomial exp); the GEMV/GEMM work goes through the
//! JIT kernels instead. Semantics follow the reference interpreter
//! (`backends/src/reference/kernels.rs`) with f32 instead of f64
//! accumulation; the documented differences are:
//!
//! - [`exp`]: Cody–Waite range reduction to r ∈ [−ln2/2, ln2/2] and a degree-6
//!   Taylor polynomial; relative error below 2.5e-7 (≈ 2 ulp) on
//!   [−87, 88], 0 below −87.3, +∞-free clamp above 88.7;
//! - tanh, silu, gelu(tanh) and the attention softmax are built on it
//!   (tanh(x) = 1 − 2/(e^{2x} + 1), absolute error < 1e-6);
//! - rmsnorm, attention dots and softmax sums accumulate in f32 (the
//!   reference uses f64); rope angles are computed in f64 like the reference.

/// e^x in f32 (see the module docs for the error bound).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const MAGIC: f32 = 12_582_912.0; // 1.5·2^23: rounds to an integer in the low mantissa bits
    let x = x.clamp(-87.33, 88.7);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let scale = f32::from_bits(((ni + 127).max(0) as u32) << 23);
    p * scale
}

/// tanh through [`exp`].
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let e = exp(2.0 * x.clamp(-15.0, 15.0));
    1.0 - 2.0 / (e + 1.0)
}

/// x·σ(x).
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// GELU, tanh approximation (the reference's formula).
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    let c = (2.0f32 / std::f32::consts::PI).sqrt();
    0.5 * x * (1.0 + tanh(c * (x + 0.044715 * x * x * x)))
}

/// Σ a·b with 16 independent accumulators (vectorises to SIMD).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 16];
    let mut ca = a.chunks_exact(16);
    let mut cb = b.chunks_exact(16);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = 0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s += x * y;
    }
    let mut h = [0f32; 4];
    for i in 0..4 {
        h[i] = (acc[i] + acc[i + 4]) + (acc[i + 8] + acc[i + 12]);
    }
    s + (h[0] + h[2]) + (h[1] + h[3])
}

/// y += a·x.
#[inline(always)]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// RMS normalisation of each `d`-row of `x` into `out`: the oracle of the
/// JIT kernel (`jitops::RmsnormKernel`) in tests.
#[cfg(test)]
pub fn rmsnorm(x: &[f32], w: &[f32], out: &mut [f32], d: usize, eps: f32) {
    for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let ms = dot(row, row) / d as f32;
        let r = 1.0 / (ms + eps).sqrt();
        for ((o, &v), &w) in o.iter_mut().zip(row).zip(w) {
            *o = (v * r) * w;
        }
    }
}

/// cos/sin of `(pos + i)·base^(−2j/dims)` for `i < seq`, `j < dims/2`, row-major.
pub fn rope_table(base: f64, dims: usize, pos: usize, seq: usize, cos: &mut Vec<f32>, sin: &mut Vec<f32>) {
    let half = dims / 2;
    cos.clear();
    sin.clear();
    for i in 0..seq {
        let p = (pos + i) as f64;
        for j in 0..half {
            let theta = p * base.powf(-2.0 * j as f64 / dims as f64);
            let (s, c) = theta.sin_cos();
            cos.push(c as f32);
            sin.push(s as f32);
        }
    }
}

/// Rotary embedding of `x: [seq, heads, d]` into `out` with a [`rope_table`]:
/// the oracle of the JIT kernel (`jitops::RopeKernel`) in tests.
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub fn rope(x: &[f32], out: &mut [f32], seq: usize, heads: usize, d: usize, dims: usize, mode: flexc_ir::ops::RopeMode, cos: &[f32], sin: &[f32]) {
    use flexc_ir::ops::RopeMode;
    let half = dims / 2;
    out[..x.len()].copy_from_slice(x);
    for i in 0..seq {
        let (c, s) = (&cos[i * half..(i + 1) * half], &sin[i * half..(i + 1) * half]);
        for h in 0..heads {
            let base = (i * heads + h) * d;
            let row = &x[base..base + d];
            let o = &mut out[base..base + d];
            match mode {
                RopeMode::Neox => {
                    for j in 0..half {
                        let (x0, x1) = (row[j], row[j + half]);
                        o[j] = x0 * c[j] - x1 * s[j];
                        o[j + half] = x0 * s[j] + x1 * c[j];
                    }
                }
                RopeMode::Norm => {
                    for j in 0..half {
                        let (x0, x1) = (row[2 * j], row[2 * j + 1]);
                        o[2 * j] = x0 * c[j] - x1 * s[j];
                        o[2 * j + 1] = x0 * s[j] + x1 * c[j];
                    }
                }
            }
        }
    }
}

/// Attention geometry and options.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    /// Query heads.
    pub hq: usize,
    /// Key/value heads.
    pub hk: usize,
    /// Query/key head size.
    pub d: usize,
    /// Value head size.
    pub dv: usize,
    /// Rows of k/v (the cache capacity).
    pub t: usize,
    /// Score scale.
    pub scale: f32,
    /// Sliding window (0: none).
    pub window: i64,
    /// Soft-cap (0: none).
    pub softcap: f32,
    /// Every query sees every valid key.
    pub bidirectional: bool,
}

/// The operands of one attention call: `q: [seq, hq, d]`, `k: [t, hk, d]`,
/// `v: [t, hk, dv]`, the output `[seq, hq, dv]` and the start position.
#[derive(Clone, Copy)]
pub struct AttnCall<'a> {
    /// Queries.
    pub q: &'a [f32],
    /// Keys.
    pub k: &'a [f32],
    /// Values.
    pub v: &'a [f32],
    /// Output (written per item).
    pub out: *mut f32,
    /// Position of query row 0.
    pub pos: usize,
    /// Query rows.
    pub seq: usize,
    /// Geometry and options.
    pub a: &'a AttnShape,
}

/// Attention for the (query row, head) pairs `items` (item = i·hq + h);
/// writes `out[item·dv..]`. `scores` is scratch of at least `t` floats.
///
/// # Safety
/// `c.out` must point to `seq·hq·dv` writable floats of which only the rows
/// of `items` are written (callers split items disjointly over threads).
pub unsafe fn attention_items(c: &AttnCall<'_>, items: std::ops::Range<usize>, scores: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the features were just detected; the contract is ours.
        return unsafe { attention_avx2(c, items, scores) };
    }
    // SAFETY: forwarded contract.
    unsafe { attention_body(c, items, scores) }
}

/// [`attention_body`] compiled for AVX2 + FMA (chosen at run time).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attention_avx2(c: &AttnCall<'_>, items: std::ops::Range<usize>, scores: &mut [f32]) {
    // SAFETY: forwarded contract.
    unsafe { attention_body(c, items, scores) }
}

#[inline(always)]
unsafe fn attention_body(c: &AttnCall<'_>, items: std::ops::Range<usize>, scores: &mut [f32]) {
    let AttnCall { q, k, v, out, pos, seq, a } = *c;
    let group = (a.hq / a.hk).max(1);
    let valid = a.t.min(pos + seq);
    for item in items {
        let (i, h) = (item / a.hq, item % a.hq);
        let p = pos + i;
        let kh = h / group;
        let qrow = &q[item * a.d..(item + 1) * a.d];
        let hi = if a.bidirectional { valid } else { valid.min(p + 1) };
        let lo = if a.window > 0 { (p as i64 - a.window + 1).max(0) as usize } else { 0 };
        // SAFETY: the caller guarantees this row is ours to write.
        let o = unsafe { std::slice::from_raw_parts_mut(out.add(item * a.dv), a.dv) };
        o.fill(0.0);
        if lo >= hi {
            continue;
        }
        let mut max = f32::NEG_INFINITY;
        for j in lo..hi {
            let kr = &k[(j * a.hk + kh) * a.d..(j * a.hk + kh + 1) * a.d];
            let mut x = dot(qrow, kr) * a.scale;
            if a.softcap > 0.0 {
                x = a.softcap * tanh(x / a.softcap);
            }
            scores[j] = x;
            max = max.max(x);
        }
        let mut sum = 0f32;
        for s in &mut scores[lo..hi] {
            *s = exp(*s - max);
            sum += *s;
        }
        for j in lo..hi {
            let vr = &v[(j * a.hk + kh) * a.dv..(j * a.hk + kh + 1) * a.dv];
            axpy(o, scores[j], vr);
        }
        let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
        for x in o.iter_mut() {
            *x *= inv;
        }
    }
}

/// Softmax of each `n`-row.
pub fn softmax_rows(x: &[f32], out: &mut [f32], n: usize) {
    for (row, o) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for (o, &v) in o.iter_mut().zip(row) {
            *o = exp(v - max);
            sum += *o;
        }
        let inv = 1.0 / sum;
        for o in o.iter_mut() {
            *o *= inv;
        }
    }
}

#[cfg(test)]
mod attention_tests {
    use super::*;
    use crate::xorshift::XorShift;

    /// Plain f64 attention of query row `item` (the oracle).
    fn naive(q: &[f32], k: &[f32], v: &[f32], pos: usize, seq: usize, a: &AttnShape, item: usize) -> Vec<f64> {
        let (i, h) = (item / a.hq, item % a.hq);
        let kh = h / (a.hq / a.hk);
        let p = pos + i;
        let valid = a.t.min(pos + seq);
        let hi = if a.bidirectional { valid } else { valid.min(p + 1) };
        let lo = if a.window > 0 { (p as i64 - a.window + 1).max(0) as usize } else { 0 };
        let mut out = vec![0f64; a.dv];
        if lo >= hi {
            return out;
        }
        let s: Vec<f64> = (lo..hi)
            .map(|j| {
                let d: f64 = (0..a.d).map(|c| q[item * a.d + c] as f64 * k[(j * a.hk + kh) * a.d + c] as f64).sum();
                let x = d * a.scale as f64;
                if a.softcap > 0.0 { a.softcap as f64 * (x / a.softcap as f64).tanh() } else { x }
            })
            .collect();
        let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
        let z: f64 = e.iter().sum();
        for (j, w) in (lo..hi).zip(&e) {
            for c in 0..a.dv {
                out[c] += w / z * v[(j * a.hk + kh) * a.dv + c] as f64;
            }
        }
        out
    }

    #[test]
    fn attention_items_match_the_f64_oracle_on_random_shapes() {
        // Random shapes: GQA groups 1..8, head sizes up to Gemma's 256,
        // sliding windows, soft-caps, prefill at position 0 and continuation
        // chunks, item ranges cut anywhere (as the thread split does): any
        // split gives the same bits, and the f64 oracle within 1e-4.
        let mut rng = XorShift(0xa77e);
        for trial in 0..60 {
            let hk = 1 + rng.below(2);
            let group = 1 + rng.below(8);
            let hq = hk * group;
            let d = rng.pick(&[8usize, 16, 20, 64, 256]);
            let dv = rng.pick(&[8usize, 16, 24, 64]);
            let seq = 1 + rng.below(12);
            let pos = if rng.below(2) == 0 { 0 } else { rng.below(10) };
            let t = pos + seq + rng.below(4);
            let window = if rng.below(3) == 0 { 1 + rng.below(6) as i64 } else { 0 };
            let softcap = if rng.below(3) == 0 { 5.0 } else { 0.0 };
            let a = AttnShape { hq, hk, d, dv, t, scale: 1.0 / (d as f32).sqrt(), window, softcap, bidirectional: rng.below(5) == 0 };
            let q = rng.vec(seq * hq * d, 1.0);
            let k = rng.vec(t * hk * d, 1.0);
            let v = rng.vec(t * hk * dv, 1.0);
            let items = seq * hq;
            let run = |ranges: &[std::ops::Range<usize>]| {
                let mut out = vec![f32::NAN; items * dv];
                let mut scratch = vec![0f32; t];
                let c = AttnCall { q: &q, k: &k, v: &v, out: out.as_mut_ptr(), pos, seq, a: &a };
                for r in ranges {
                    // SAFETY: out holds items·dv floats; ranges are disjoint.
                    unsafe { attention_items(&c, r.clone(), &mut scratch) };
                }
                out
            };
            let cut = rng.below(items + 1);
            let split = run(&[0..cut, cut..items]);
            let whole = run(&[0..items]);
            assert_eq!(split.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), whole.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), "trial {trial}: {a:?}");
            for item in 0..items {
                let want = naive(&q, &k, &v, pos, seq, &a, item);
                for c in 0..dv {
                    let got = whole[item * dv + c] as f64;
                    assert!((got - want[c]).abs() <= 1e-4 * (1.0 + want[c].abs()), "trial {trial} item {item}[{c}]: {got} vs {}; {a:?}", want[c]);
                }
            }
        }
    }
}
