//! Dequantization, one function per ggml type, transcribed from ggml's
//! `dequantize_row_*` (ggml-quants.c) with the same float operations in the
//! same order and no fused multiply-add, so results match ggml's reference
//! build bit for bit (fp16 → f32 is exact, done with `half`).
//!
//! Each function takes exactly one block (`src.len() == type_size`,
//! `dst.len() == block_size`); [`super::dequantize`] checks lengths and
//! splits rows into blocks, so indexing here depends only on the block
//! geometry, never on the data.

use super::blocks::off;
use super::{QK_K, f16_at};

pub(super) fn f32_block(src: &[u8], dst: &mut [f32]) {
    dst[0] = f32::from_le_bytes([src[0], src[1], src[2], src[3]]);
}

pub(super) fn f16_block(src: &[u8], dst: &mut [f32]) {
    dst[0] = f16_at(src, 0);
}

pub(super) fn bf16_block(src: &[u8], dst: &mut [f32]) {
    // ggml_compute_bf16_to_fp32: the bf16 bits are the top half of an f32.
    let bits = u32::from(u16::from_le_bytes([src[0], src[1]])) << 16;
    dst[0] = f32::from_bits(bits);
}

pub(super) fn q4_0(src: &[u8], dst: &mut [f32]) {
    let d = f16_at(src, 0);
    let qs = &src[off::Q4_0_QS..off::Q4_0_QS + 16];
    for j in 0..16 {
        let x0 = i32::from(qs[j] & 0x0F) - 8;
        let x1 = i32::from(qs[j] >> 4) - 8;
        dst[j] = x0 as f32 * d;
        dst[j + 16] = x1 as f32 * d;
    }
}

pub(super) fn q4_1(src: &[u8], dst: &mut [f32]) {
    let d = f16_at(src, 0);
    let m = f16_at(src, off::Q4_1_M);
    let qs = &src[off::Q4_1_QS..off::Q4_1_QS + 16];
    for j in 0..16 {
        let x0 = i32::from(qs[j] & 0x0F);
        let x1 = i32::from(qs[j] >> 4);
        dst[j] = x0 as f32 * d + m;
        dst[j + 16] = x1 as f32 * d + m;
    }
}

fn qh_u32(src: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([src[at], src[at + 1], src[at + 2], src[at + 3]])
}

pub(super) fn q5_0(src: &[u8], dst: &mut [f32]) {
    let d = f16_at(src, 0);
    let qh = qh_u32(src, off::Q5_0_QH);
    let qs = &src[off::Q5_0_QS..off::Q5_0_QS + 16];
    for j in 0..16 {
        let xh_0 = (((qh >> j) << 4) & 0x10) as u8;
        let xh_1 = ((qh >> (j + 12)) & 0x10) as u8;
        let x0 = i32::from((qs[j] & 0x0F) | xh_0) - 16;
        let x1 = i32::from((qs[j] >> 4) | xh_1) - 16;
        dst[j] = x0 as f32 * d;
        dst[j + 16] = x1 as f32 * d;
    }
}

pub(super) fn q5_1(src: &[u8], dst: &mut [f32]) {
    let d = f16_at(src, 0);
    let m = f16_at(src, off::Q5_1_M);
    let qh = qh_u32(src, off::Q5_1_QH);
    let qs = &src[off::Q5_1_QS..off::Q5_1_QS + 16];
    for j in 0..16 {
        let xh_0 = (((qh >> j) << 4) & 0x10) as u8;
        let xh_1 = ((qh >> (j + 12)) & 0x10) as u8;
        let x0 = i32::from((qs[j] & 0x0F) | xh_0);
        let x1 = i32::from((qs[j] >> 4) | xh_1);
        dst[j] = x0 as f32 * d + m;
        dst[j + 16] = x1 as f32 * d + m;
    }
}

pub(super) fn q8_0(src: &[u8], dst: &mut [f32]) {
    let d = f16_at(src, 0);
    for (j, y) in dst.iter_mut().enumerate().take(32) {
        *y = f32::from(src[off::Q8_0_QS + j] as i8) * d;
    }
}

pub(super) fn q2_k(src: &[u8], dst: &mut [f32]) {
    let d = f16_at(src, off::Q2K_D);
    let min = f16_at(src, off::Q2K_DMIN);
    let scales = &src[off::Q2K_SCALES..off::Q2K_SCALES + 16];
    let mut y = 0;
    let mut is = 0;
    for n in (0..QK_K).step_by(128) {
        let q = &src[off::Q2K_QS + n / 4..off::Q2K_QS + n / 4 + 32];
        for shift in [0u32, 2, 4, 6] {
            for half in [0usize, 16] {
                let sc = scales[is];
                is += 1;
                let dl = d * f32::from(sc & 0xF);
                let ml = min * f32::from(sc >> 4);
                for l in 0..16 {
                    let v = (q[l + half] >> shift) & 3;
                    dst[y] = dl * f32::from(v) - ml;
                    y += 1;
                }
            }
        }
    }
}

/// The sixteen 6-bit Q3_K scales, unpacked as ggml does with `kmask1/2`.
fn q3_k_scales(packed: &[u8]) -> [i8; 16] {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let a = |i: usize| {
        u32::from_le_bytes([
            packed[4 * i],
            packed[4 * i + 1],
            packed[4 * i + 2],
            packed[4 * i + 3],
        ])
    };
    let (a0, a1, tmp) = (a(0), a(1), a(2));
    let aux = [
        (a0 & KMASK2) | (((tmp) & KMASK1) << 4),
        (a1 & KMASK2) | (((tmp >> 2) & KMASK1) << 4),
        ((a0 >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4),
        ((a1 >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4),
    ];
    let mut out = [0i8; 16];
    for (i, word) in aux.iter().enumerate() {
        for (k, b) in word.to_le_bytes().iter().enumerate() {
            out[4 * i + k] = *b as i8;
        }
    }
    out
}

pub(super) fn q3_k(src: &[u8], dst: &mut [f32]) {
    let d_all = f16_at(src, off::Q3K_D);
    let scales = q3_k_scales(&src[off::Q3K_SCALES..off::Q3K_SCALES + 12]);
    let hm = &src[off::Q3K_HMASK..off::Q3K_HMASK + 32];
    let mut m: u8 = 1;
    let mut y = 0;
    let mut is = 0;
    for n in (0..QK_K).step_by(128) {
        let q = &src[off::Q3K_QS + n / 4..off::Q3K_QS + n / 4 + 32];
        for shift in [0u32, 2, 4, 6] {
            for half in [0usize, 16] {
                let dl = d_all * f32::from(i16::from(scales[is]) - 32);
                is += 1;
                for l in 0..16 {
                    let low = i32::from((q[l + half] >> shift) & 3);
                    let high = if hm[l + half] & m != 0 { 0 } else { 4 };
                    dst[y] = dl * (low - high) as f32;
                    y += 1;
                }
            }
            m = m.wrapping_shl(1);
        }
    }
}

/// ggml's `get_scale_min_k4`: scale and min `j` (0..8) of Q4_K/Q5_K.
pub(super) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

pub(super) fn q4_k(src: &[u8], dst: &mut [f32]) {
    let d = f16_at(src, off::Q4K_D);
    let min = f16_at(src, off::Q4K_DMIN);
    let scales = &src[off::Q4K_SCALES..off::Q4K_SCALES + 12];
    let mut y = 0;
    for (k, j) in (0..QK_K).step_by(64).enumerate() {
        let q = &src[off::Q4K_QS + j / 2..off::Q4K_QS + j / 2 + 32];
        let (sc, m) = scale_min_k4(2 * k, scales);
        let (d1, m1) = (d * f32::from(sc), min * f32::from(m));
        let (sc, m) = scale_min_k4(2 * k + 1, scales);
        let (d2, m2) = (d * f32::from(sc), min * f32::from(m));
        for &b in q {
            dst[y] = d1 * f32::from(b & 0xF) - m1;
            y += 1;
        }
        for &b in q {
            dst[y] = d2 * f32::from(b >> 4) - m2;
            y += 1;
        }
    }
}

pub(super) fn q5_k(src: &[u8], dst: &mut [f32]) {
    let d = f16_at(src, off::Q5K_D);
    let min = f16_at(src, off::Q5K_DMIN);
    let scales = &src[off::Q5K_SCALES..off::Q5K_SCALES + 12];
    let qh = &src[off::Q5K_QH..off::Q5K_QH + 32];
    let (mut u1, mut u2) = (1u8, 2u8);
    let mut y = 0;
    for (k, j) in (0..QK_K).step_by(64).enumerate() {
        let ql = &src[off::Q5K_QS + j / 2..off::Q5K_QS + j / 2 + 32];
        let (sc, m) = scale_min_k4(2 * k, scales);
        let (d1, m1) = (d * f32::from(sc), min * f32::from(m));
        let (sc, m) = scale_min_k4(2 * k + 1, scales);
        let (d2, m2) = (d * f32::from(sc), min * f32::from(m));
        for l in 0..32 {
            let v = (ql[l] & 0xF) + if qh[l] & u1 != 0 { 16 } else { 0 };
            dst[y] = d1 * f32::from(v) - m1;
            y += 1;
        }
        for l in 0..32 {
            let v = (ql[l] >> 4) + if qh[l] & u2 != 0 { 16 } else { 0 };
            dst[y] = d2 * f32::from(v) - m2;
            y += 1;
        }
        u1 = u1.wrapping_shl(2);
        u2 = u2.wrapping_shl(2);
    }
}

pub(super) fn q6_k(src: &[u8], dst: &mut [f32]) {
    let d = f16_at(src, off::Q6K_D);
    for (h, n) in (0..QK_K).step_by(128).enumerate() {
        let ql = &src[off::Q6K_QL + 64 * h..off::Q6K_QL + 64 * h + 64];
        let qh = &src[off::Q6K_QH + 32 * h..off::Q6K_QH + 32 * h + 32];
        let sc = &src[off::Q6K_SCALES + 8 * h..off::Q6K_SCALES + 8 * h + 8];
        let y = &mut dst[n..n + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
            let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
            y[l] = d * f32::from(sc[is] as i8) * f32::from(q1);
            y[l + 32] = d * f32::from(sc[is + 2] as i8) * f32::from(q2);
            y[l + 64] = d * f32::from(sc[is + 4] as i8) * f32::from(q3);
            y[l + 96] = d * f32::from(sc[is + 6] as i8) * f32::from(q4);
        }
    }
}

pub(super) fn q8_k(src: &[u8], dst: &mut [f32]) {
    let d = f32::from_le_bytes([src[0], src[1], src[2], src[3]]);
    for (j, y) in dst.iter_mut().enumerate().take(QK_K) {
        *y = d * f32::from(src[off::Q8K_QS + j] as i8);
    }
}

/// One base-3 digit of a TQ1_0 byte: `((uint8)(q · 3ⁿ) · 3) >> 8`.
fn trit(q: u8, pow3: u8) -> f32 {
    let q = q.wrapping_mul(pow3);
    let xi = (u16::from(q) * 3) >> 8;
    f32::from(xi as i16 - 1)
}

const POW3: [u8; 6] = [1, 3, 9, 27, 81, 243];

pub(super) fn tq1_0(src: &[u8], dst: &mut [f32]) {
    let d = f16_at(src, off::TQ1_D);
    let qs = &src[off::TQ1_QS..off::TQ1_QS + off::TQ1_QS_LEN];
    let qh = &src[off::TQ1_QH..off::TQ1_QH + off::TQ1_QH_LEN];
    let mut y = 0;
    let split = off::TQ1_QS_LEN - off::TQ1_QS_LEN % 32;
    for j in (0..split).step_by(32) {
        for &p in &POW3[..5] {
            for m in 0..32 {
                dst[y] = trit(qs[j + m], p) * d;
                y += 1;
            }
        }
    }
    for j in (split..off::TQ1_QS_LEN).step_by(16) {
        for &p in &POW3[..5] {
            for m in 0..16 {
                dst[y] = trit(qs[j + m], p) * d;
                y += 1;
            }
        }
    }
    for &p in &POW3[..4] {
        for &b in qh {
            dst[y] = trit(b, p) * d;
            y += 1;
        }
    }
}

pub(super) fn tq2_0(src: &[u8], dst: &mut [f32]) {
    let d = f16_at(src, off::TQ2_D);
    let mut y = 0;
    for j in (0..QK_K / 4).step_by(32) {
        for l in 0..4 {
            for m in 0..32 {
                let q = (src[off::TQ2_QS + j + m] >> (l * 2)) & 3;
                dst[y] = f32::from(q as i8 - 1) * d;
                y += 1;
            }
        }
    }
}
