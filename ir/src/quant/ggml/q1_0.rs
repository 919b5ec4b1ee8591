//! ggml's `Q1_0` (type id 41, llama.cpp `block_q1_0`): blocks of 128
//! weights, 18 bytes each (1.125 bits per weight).
//!
//! | bytes | field |
//! |---|---|
//! | 2 | `d`: f16 scale |
//! | 16 | `qs`: sign bits, element `j` at bit `j % 8` of byte `j / 8` |
//!
//! Value: `+d` when the bit is set, else `−d`. Quantizer
//! (`quantize_row_q1_0_ref`): `d = Σ|x| / 128` summed in order in f32, bit
//! set ⇔ `x ≥ 0`. Transcribed operation for operation (bit-exact).

use super::{f16_at, put_f16};

/// Elements per block (`QK1_0`).
pub const QK: usize = 128;
/// Bytes per block: f16 `d` + 128 sign bits.
pub const BYTES: usize = 2 + QK / 8;

/// `dequantize_row_q1_0` for one block.
pub(super) fn dequant(src: &[u8], dst: &mut [f32]) {
    let d = f16_at(src, 0);
    for (j, y) in dst.iter_mut().enumerate() {
        *y = if (src[2 + j / 8] >> (j % 8)) & 1 == 1 { d } else { -d };
    }
}

/// `quantize_row_q1_0_ref` for one block.
pub(super) fn quantize(x: &[f32], y: &mut [u8]) {
    let sum_abs = x.iter().fold(0f32, |s, v| s + v.abs());
    put_f16(y, 0, sum_abs / QK as f32);
    y[2..BYTES].fill(0);
    for (j, &w) in x.iter().enumerate() {
        if w >= 0.0 {
            y[2 + j / 8] |= 1 << (j % 8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::ggml::{dequantize, quantize_to_vec, GgmlType};

    #[test]
    fn geometry_and_hand_computed_block() {
        assert_eq!((GgmlType::Q1_0.block_size(), GgmlType::Q1_0.type_size(), GgmlType::Q1_0.id()), (QK, BYTES, 41));
        // d = 0.25 (f16 0x3400); bits 0b0101_0101: even elements +d, odd −d.
        let mut b = vec![0x00, 0x34];
        b.extend([0x55u8; 16]);
        let mut out = [0f32; QK];
        dequantize(GgmlType::Q1_0, &b, &mut out).unwrap();
        assert!(out.iter().enumerate().all(|(j, &v)| v == if j % 2 == 0 { 0.25 } else { -0.25 }));
        // The reference quantizer: mean |x| = 0.25, signs alternate from +.
        let x: Vec<f32> = (0..QK).map(|j| if j % 2 == 0 { 0.5 } else { -0.0 }).collect();
        let q = quantize_to_vec(GgmlType::Q1_0, &x).unwrap();
        // -0.0 >= 0.0 holds in C and Rust: its bit is set too.
        assert_eq!(&q[..2], &[0x00, 0x34]);
        assert!(q[2..].iter().all(|&c| c == 0xff));
    }
}
