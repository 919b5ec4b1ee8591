//! ggml's `Q2_0` (type id 42, llama.cpp `block_q2_0`): blocks of 64 weights,
//! 18 bytes each (2.25 bits per weight), so it fits 576- and 640-wide rows.
//!
//! | bytes | field |
//! |---|---|
//! | 2 | `d`: f16 scale |
//! | 16 | `qs`: 2-bit codes, element `j` at bits `2·(j % 4)` of byte `j / 4` |
//!
//! Value: `(q − 1)·d` for `q ∈ {0, 1, 2, 3}`, i.e. `{−d, 0, d, 2d}`.
//! Quantizer (`quantize_row_q2_0_ref`): `d = max|x|`, `q = clamp(roundf(x·(1/d)) + 1, 0, 3)`
//! with `1/d` from the unrounded f32 `d` (0 when the block is all zeros);
//! `roundf` rounds half away from zero. Transcribed operation for operation,
//! so both directions are bit-exact with llama.cpp.

use super::{f16_at, put_f16};

/// Elements per block (`QK2_0`).
pub const QK: usize = 64;
/// Bytes per block: f16 `d` + 64 two-bit codes.
pub const BYTES: usize = 2 + QK / 4;

/// `dequantize_row_q2_0` for one block.
pub(super) fn dequant(src: &[u8], dst: &mut [f32]) {
    let d = f16_at(src, 0);
    for (j, y) in dst.iter_mut().enumerate() {
        let q = (src[2 + j / 4] >> (2 * (j % 4))) & 3;
        *y = (i32::from(q) - 1) as f32 * d;
    }
}

/// `quantize_row_q2_0_ref` for one block.
pub(super) fn quantize(x: &[f32], y: &mut [u8]) {
    let d = x.iter().fold(0f32, |m, v| if v.abs() > m { v.abs() } else { m });
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    put_f16(y, 0, d);
    y[2..BYTES].fill(0);
    for (j, &w) in x.iter().enumerate() {
        let q = ((w * id).round() as i32 + 1).clamp(0, 3);
        y[2 + j / 4] |= (q as u8) << (2 * (j % 4));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::ggml::{dequantize, quantize_to_vec, GgmlType};

    #[test]
    fn geometry_and_hand_computed_block() {
        assert_eq!((GgmlType::Q2_0.block_size(), GgmlType::Q2_0.type_size(), GgmlType::Q2_0.id()), (QK, BYTES, 42));
        assert_eq!(GgmlType::from_name("q2_0"), Some(GgmlType::Q2_0));
        // d = 0.5 (f16 0x3800); codes 0, 1, 2, 3 repeating: byte 0b11_10_01_00 = 0xe4.
        let mut b = vec![0x00, 0x38];
        b.extend([0xe4u8; 16]);
        let mut out = [0f32; QK];
        dequantize(GgmlType::Q2_0, &b, &mut out).unwrap();
        let want: Vec<f32> = (0..QK).map(|j| [-0.5, 0.0, 0.5, 1.0][j % 4]).collect();
        assert_eq!(out.to_vec(), want);
        // The reference quantizer maps these values back to the same bytes
        // (max |x| = 1.0 gives d = 1.0: codes round(x) + 1).
        let x: Vec<f32> = (0..QK).map(|j| [-1.0, 0.0, 0.5, 1.0][j % 4]).collect();
        let q = quantize_to_vec(GgmlType::Q2_0, &x).unwrap();
        // 0.5 rounds half away from zero to 1 (roundf), so code 2.
        assert_eq!(&q[..2], &[0x00, 0x3c]);
        assert!(q[2..].iter().all(|&c| c == 0b10_10_01_00));
        assert!(dequantize(GgmlType::Q2_0, &b[..17], &mut out).is_err());
    }
}
