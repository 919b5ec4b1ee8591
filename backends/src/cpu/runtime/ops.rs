//! The runtime's remaining non-GEMM kernels, in plain Rust: the rope tables,
//! the softmax of the row-by-row attention and the unfused activations
//! (rmsnorm, rope, softmax, the elementwise ops and the gated FFN
//! activations are Cranelift-generated, see `jitops`; `rmsnorm`, `rope` and
//! the scalar activations are their test oracles).
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

/// Softmax of `x` in place (an empty slice stays empty). The max and the
/// sum run in eight independent lanes so that they vectorise (a strict
/// left-to-right f32 sum cannot).
#[inline(always)]
pub fn softmax_in_place(x: &mut [f32]) {
    const L: usize = 8;
    let mut lanes = [f32::NEG_INFINITY; L];
    let mut chunks = x.chunks_exact(L);
    for c in &mut chunks {
        for i in 0..L {
            lanes[i] = if c[i] > lanes[i] { c[i] } else { lanes[i] };
        }
    }
    let max = chunks.remainder().iter().chain(&lanes).fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    let mut sums = [0f32; L];
    let mut chunks = x.chunks_exact_mut(L);
    for c in &mut chunks {
        for i in 0..L {
            c[i] = exp(c[i] - max);
            sums[i] += c[i];
        }
    }
    let mut sum = 0f32;
    for v in chunks.into_remainder() {
        *v = exp(*v - max);
        sum += *v;
    }
    let sum = sum + ((sums[0] + sums[4]) + (sums[1] + sums[5])) + ((sums[2] + sums[6]) + (sums[3] + sums[7]));
    // Zero only for an all-masked row; a NaN score makes the row NaN.
    let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
    x.iter_mut().for_each(|v| *v *= inv);
}
