//! Quantizers, transcribed from ggml's reference `quantize_row_*_ref`
//! (ggml-quants.c): the same float operations in the same order, no fused
//! multiply-add, ggml's `nearest_int` bit trick, C's truncating float→int
//! casts, and fp16 rounding to nearest even (via `half`). With finite inputs
//! the bytes match ggml's reference build exactly; NaN inputs give
//! deterministic but unspecified bytes (C leaves those casts undefined).
//!
//! Q2_K follows `quantize_row_q2_K_ref`, i.e. `make_qkx2_quants` per
//! 16-element sub-block with |x| weights — the path ggml takes when no
//! importance matrix is given. The imatrix path (`quantize_row_q2_K_impl`
//! with `make_qp_quants`) is not implemented.
//!
//! Each function takes exactly one block; [`super::quantize`] checks lengths.

use super::blocks::off;
use super::{QK_K, nearest_int, put_f16};

/// C's `MAX(a, b)` macro: `a > b ? a : b`.
fn c_max(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

pub(super) fn f32_block(x: &[f32], y: &mut [u8]) {
    y[..4].copy_from_slice(&x[0].to_le_bytes());
}

pub(super) fn f16_block(x: &[f32], y: &mut [u8]) {
    put_f16(y, 0, x[0]);
}

pub(super) fn bf16_block(x: &[f32], y: &mut [u8]) {
    // ggml_compute_fp32_to_bf16: NaNs are kept quiet, everything else is
    // rounded to nearest even.
    let u = x[0].to_bits();
    let h = if (u & 0x7fff_ffff) > 0x7f80_0000 {
        ((u >> 16) | 64) as u16
    } else {
        (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
    };
    y[..2].copy_from_slice(&h.to_le_bytes());
}

/// The element with the largest magnitude (first one on ties), as
/// `quantize_row_q4_0_ref` / `q5_0` / `q8_K` find it.
fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    (amax, max)
}

fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

fn inv(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

pub(super) fn q4_0(x: &[f32], y: &mut [u8]) {
    let (_, max) = signed_absmax(x);
    let d = max / -8.0;
    let id = inv(d);
    put_f16(y, 0, d);
    for j in 0..16 {
        let x0 = x[j] * id;
        let x1 = x[16 + j] * id;
        let xi0 = ((x0 + 8.5) as i8).min(15) as u8;
        let xi1 = ((x1 + 8.5) as i8).min(15) as u8;
        y[off::Q4_0_QS + j] = xi0 | (xi1 << 4);
    }
}

pub(super) fn q4_1(x: &[f32], y: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inv(d);
    put_f16(y, 0, d);
    put_f16(y, off::Q4_1_M, min);
    for j in 0..16 {
        let x0 = (x[j] - min) * id;
        let x1 = (x[16 + j] - min) * id;
        let xi0 = ((x0 + 0.5) as i8).min(15) as u8;
        let xi1 = ((x1 + 0.5) as i8).min(15) as u8;
        y[off::Q4_1_QS + j] = xi0 | (xi1 << 4);
    }
}

pub(super) fn q5_0(x: &[f32], y: &mut [u8]) {
    let (_, max) = signed_absmax(x);
    let d = max / -16.0;
    let id = inv(d);
    put_f16(y, 0, d);
    let mut qh = 0u32;
    for j in 0..16 {
        let x0 = x[j] * id;
        let x1 = x[16 + j] * id;
        let xi0 = ((x0 + 16.5) as i8).min(31) as u8;
        let xi1 = ((x1 + 16.5) as i8).min(31) as u8;
        y[off::Q5_0_QS + j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
        qh |= u32::from((xi0 & 0x10) >> 4) << j;
        qh |= u32::from((xi1 & 0x10) >> 4) << (j + 16);
    }
    y[off::Q5_0_QH..off::Q5_0_QH + 4].copy_from_slice(&qh.to_le_bytes());
}

pub(super) fn q5_1(x: &[f32], y: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inv(d);
    put_f16(y, 0, d);
    put_f16(y, off::Q5_1_M, min);
    let mut qh = 0u32;
    for j in 0..16 {
        let x0 = (x[j] - min) * id;
        let x1 = (x[16 + j] - min) * id;
        let xi0 = (x0 + 0.5) as u8;
        let xi1 = (x1 + 0.5) as u8;
        y[off::Q5_1_QS + j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
        qh |= u32::from((xi0 & 0x10) >> 4) << j;
        qh |= u32::from((xi1 & 0x10) >> 4) << (j + 16);
    }
    y[off::Q5_1_QH..off::Q5_1_QH + 4].copy_from_slice(&qh.to_le_bytes());
}

pub(super) fn q8_0(x: &[f32], y: &mut [u8]) {
    let amax = x.iter().fold(0.0f32, |a, &v| c_max(a, v.abs()));
    let d = amax / 127.0;
    let id = inv(d);
    put_f16(y, 0, d);
    for j in 0..32 {
        y[off::Q8_0_QS + j] = (x[j] * id).round() as i8 as u8;
    }
}

/// Q8_K: activation quantization with an f32 scale and per-16 sums.
pub(super) fn q8_k(x: &[f32], y: &mut [u8]) {
    let (amax, max) = signed_absmax(x);
    if amax == 0.0 {
        // ggml leaves bsums untouched here; flexc writes zeros (the sums of
        // the all-zero quants) so the output is fully determined.
        y.fill(0);
        return;
    }
    let iscale = -127.0 / max;
    for j in 0..QK_K {
        let v = nearest_int(iscale * x[j]).min(127);
        y[off::Q8K_QS + j] = v as i8 as u8;
    }
    for j in 0..QK_K / 16 {
        let sum: i32 = (0..16)
            .map(|i| i32::from(y[off::Q8K_QS + 16 * j + i] as i8))
            .sum();
        let at = off::Q8K_BSUMS + 2 * j;
        y[at..at + 2].copy_from_slice(&(sum as i16).to_le_bytes());
    }
    y[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
}

/// `lroundf(v) + 1`, truncated to a byte as C's `uint8_t` arithmetic does.
fn ternary_code(v: f32) -> u8 {
    (v.round() as i64 + 1) as u8
}

pub(super) fn tq1_0(x: &[f32], y: &mut [u8]) {
    let amax = x.iter().fold(0.0f32, |a, &v| c_max(a, v.abs()));
    let d = amax;
    let id = inv(d);
    put_f16(y, off::TQ1_D, d);
    // Ceiling division by 243 = 3^5, as ggml writes it: (q * 256 + 242) / 243.
    let pack = |q: u8| (u32::from(q) * 256).div_ceil(243) as u8;
    let split = off::TQ1_QS_LEN - off::TQ1_QS_LEN % 32;
    let mut base = 0;
    for j in (0..split).step_by(32) {
        for m in 0..32 {
            let mut q = 0u8;
            for n in 0..5 {
                q = q
                    .wrapping_mul(3)
                    .wrapping_add(ternary_code(x[base + m + n * 32] * id));
            }
            y[off::TQ1_QS + j + m] = pack(q);
        }
        base += 5 * 32;
    }
    for j in (split..off::TQ1_QS_LEN).step_by(16) {
        for m in 0..16 {
            let mut q = 0u8;
            for n in 0..5 {
                q = q
                    .wrapping_mul(3)
                    .wrapping_add(ternary_code(x[base + m + n * 16] * id));
            }
            y[off::TQ1_QS + j + m] = pack(q);
        }
        base += 5 * 16;
    }
    for j in 0..off::TQ1_QH_LEN {
        let mut q = 0u8;
        for m in 0..4 {
            q = q
                .wrapping_mul(3)
                .wrapping_add(ternary_code(x[base + j + m * off::TQ1_QH_LEN] * id));
        }
        // The first value goes to the most significant trit.
        q = q.wrapping_mul(3);
        y[off::TQ1_QH + j] = pack(q);
    }
}

pub(super) fn tq2_0(x: &[f32], y: &mut [u8]) {
    let amax = x.iter().fold(0.0f32, |a, &v| c_max(a, v.abs()));
    let d = amax;
    let id = inv(d);
    put_f16(y, off::TQ2_D, d);
    for (jj, j) in (0..QK_K / 4).step_by(32).enumerate() {
        let base = jj * 128;
        for m in 0..32 {
            let mut q = 0u8;
            for n in 0..4 {
                let xi = ternary_code(x[base + m + n * 32] * id);
                q = q.wrapping_add((xi & 3) << (2 * n));
            }
            y[off::TQ2_QS + j + m] = q;
        }
    }
}

/// ggml's `make_qkx2_quants`: a scale and a (negated) min for `x` with
/// levels `0..=nmax`, searched over `nstep + 1` candidate scales. Writes the
/// levels to `l`, returns `(scale, -min)`.
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out[..n].fill(0);
        return (0.0, -min);
    }
    let nmax_f = nmax as f32;
    let mut iscale = nmax_f / (max - min);
    let mut scale = 1.0 / iscale;
    let err = |diff: f32| if use_mad { diff.abs() } else { diff * diff };
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l_out[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        best_error += weights[i] * err(diff);
    }
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax_f) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * f32::from(laux[i]) + this_min - x[i];
                cur_error += weights[i] * err(diff);
            }
            if cur_error < best_error {
                l_out[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

pub(super) fn q2_k(x: &[f32], y: &mut [u8]) {
    const Q4SCALE: f32 = 15.0;
    let mut levels = [0u8; QK_K];
    let mut laux = [0u8; 16];
    let mut weights = [0f32; 16];
    let mut mins = [0f32; QK_K / 16];
    let mut scales = [0f32; QK_K / 16];
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..QK_K / 16 {
        let xs = &x[16 * j..16 * j + 16];
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = v.abs();
        }
        let (scale, min) = make_qkx2_quants(
            3,
            xs,
            &weights,
            &mut levels[16 * j..16 * j + 16],
            &mut laux,
            -0.5,
            0.1,
            15,
            true,
        );
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }
    let mut sc_bytes = [0u8; QK_K / 16];
    let d16 = if max_scale > 0.0 {
        let iscale = Q4SCALE / max_scale;
        for j in 0..QK_K / 16 {
            sc_bytes[j] = nearest_int(iscale * scales[j]) as u8;
        }
        put_f16(y, off::Q2K_D, max_scale / Q4SCALE)
    } else {
        put_f16(y, off::Q2K_D, 0.0)
    };
    let dmin16 = if max_min > 0.0 {
        let iscale = Q4SCALE / max_min;
        for j in 0..QK_K / 16 {
            let l = nearest_int(iscale * mins[j]);
            sc_bytes[j] |= (l << 4) as u8;
        }
        put_f16(y, off::Q2K_DMIN, max_min / Q4SCALE)
    } else {
        put_f16(y, off::Q2K_DMIN, 0.0)
    };
    for j in 0..QK_K / 16 {
        let d = d16 * f32::from(sc_bytes[j] & 0xF);
        if d == 0.0 {
            continue;
        }
        let dm = dmin16 * f32::from(sc_bytes[j] >> 4);
        for ii in 0..16 {
            let l = nearest_int((x[16 * j + ii] + dm) / d).clamp(0, 3);
            levels[16 * j + ii] = l as u8;
        }
    }
    y[off::Q2K_SCALES..off::Q2K_SCALES + 16].copy_from_slice(&sc_bytes);
    for j in (0..QK_K).step_by(128) {
        for l in 0..32 {
            y[off::Q2K_QS + j / 4 + l] = levels[j + l]
                | (levels[j + l + 32] << 2)
                | (levels[j + l + 64] << 4)
                | (levels[j + l + 96] << 6);
        }
    }
}
