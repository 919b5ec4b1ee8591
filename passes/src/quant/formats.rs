//! The encodings the data-aware quantizers write, as affine grids
//! ([`super::grid`]) plus a block packer each.
//!
//! A [`QuantFormat`] is what the importance-weighted RTN and GPTQ loops need
//! from an encoding: the group length along a row, the grid of one group
//! ([`Levels`]), the bytes of one group's block, and how to write a block
//! from its fitted parameters and codes. Every format here stores a row as
//! consecutive blocks of one group each, so block `(r, g)` of an `[n, k]`
//! weight starts at byte `(r·k/G + g)·block_bytes`. Packing is checked
//! against the IR's own decoders (tests): `decode(pack(fit, codes))` equals
//! `fit.value(codes)` bit for bit.
//!
//! [`QuantFormat::of`] is the one place that maps an [`Encoding`] to its grid;
//! encodings that are not affine group grids (`#bcq`, `#nm`, per-tensor
//! `#ternary`, the K-quants) have their own quantizers or none.

use super::grid::{Affine, Levels, Offset};
use flexc_ir::quant::ggml::GgmlType;
use flexc_ir::quant::lowbit::put_code;
use flexc_ir::Encoding;
use half::f16;

/// How one format lays out a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// `#gq`: f16 d, [u8 z], LSB-first `bits`-bit codes.
    Gq { bits: u32, zero: bool },
    /// `#ternary<group = G>`: f16 γ, 2-bit codes `t + 1`.
    Ternary,
    /// ggml `block_q4_0`/`q4_1`/`q5_0`/`q5_1`/`q8_0`.
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
}

/// An encoding the affine quantizers can write (module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantFormat {
    /// The encoding written.
    pub enc: Encoding,
    /// Elements per group (one block).
    pub group: usize,
    /// The grid of one group.
    pub levels: Levels,
    layout: Layout,
}

impl QuantFormat {
    /// The affine format of `enc`, or `None` when it is not one.
    pub fn of(enc: Encoding) -> Option<QuantFormat> {
        let (group, levels, layout) = match enc {
            Encoding::Gq(p) => {
                let qmax = (1u32 << p.bits) - 1;
                let offset = if p.zero { Offset::IntZero } else { Offset::Fixed(qmax as f32 / 2.0) };
                (p.group as usize, Levels { qmax, offset }, Layout::Gq { bits: p.bits as u32, zero: p.zero })
            }
            Encoding::Ternary(p) if p.group > 0 => (p.group as usize, Levels { qmax: 2, offset: Offset::Fixed(1.0) }, Layout::Ternary),
            Encoding::Ggml(t) => match t {
                GgmlType::Q4_0 => (32, Levels { qmax: 15, offset: Offset::Fixed(8.0) }, Layout::Q4_0),
                GgmlType::Q4_1 => (32, Levels { qmax: 15, offset: Offset::FloatMin }, Layout::Q4_1),
                GgmlType::Q5_0 => (32, Levels { qmax: 31, offset: Offset::Fixed(16.0) }, Layout::Q5_0),
                GgmlType::Q5_1 => (32, Levels { qmax: 31, offset: Offset::FloatMin }, Layout::Q5_1),
                GgmlType::Q8_0 => (32, Levels { qmax: 254, offset: Offset::Fixed(127.0) }, Layout::Q8_0),
                _ => return None,
            },
            _ => return None,
        };
        Some(QuantFormat { enc, group, levels, layout })
    }

    /// Bytes of one group's block.
    pub fn block_bytes(&self) -> usize {
        let g = self.group;
        match self.layout {
            Layout::Gq { bits, zero } => 2 + zero as usize + g * bits as usize / 8,
            Layout::Ternary => 2 + g / 4,
            Layout::Q4_0 => 18,
            Layout::Q4_1 => 20,
            Layout::Q5_0 => 22,
            Layout::Q5_1 => 24,
            Layout::Q8_0 => 34,
        }
    }

    /// Bits per weight of this format (block bytes × 8 / group).
    pub fn bits_per_weight(&self) -> f64 {
        self.block_bytes() as f64 * 8.0 / self.group as f64
    }

    /// Bytes the CPU kernel streams per decoded token for an `[n, k]` weight
    /// in this format: the ggml blocks as stored; `#gq` and `#ternary` in
    /// the LUT kernel's layout (`backends/src/cpu/lut.rs`), where 1 and 3
    /// bits pay for a padding plane (2 and 4 planes) and each group's
    /// scale (and offset) is an f16 per row.
    pub fn streamed_bytes(&self, n: usize, k: usize) -> u64 {
        let groups = (n * (k / self.group)) as u64;
        let codes = |planes: u64| (n * k) as u64 * planes / 8;
        match self.layout {
            Layout::Gq { bits, zero } => codes(if bits <= 2 { 2 } else { 4 }) + groups * 2 * (1 + zero as u64),
            Layout::Ternary => codes(2) + groups * 2,
            _ => groups * self.block_bytes() as u64,
        }
    }

    /// Writes one block from a group's parameters and codes (`codes.len() == group`).
    pub fn pack(&self, p: &Affine, codes: &[u32], out: &mut [u8]) {
        debug_assert_eq!(codes.len(), self.group);
        let out = &mut out[..self.block_bytes()];
        out.fill(0);
        out[0..2].copy_from_slice(&f16::from_f32(p.d).to_bits().to_le_bytes());
        let nibbles = |qs: &mut [u8]| {
            for j in 0..16 {
                qs[j] = (codes[j] & 0x0f) as u8 | (((codes[j + 16] & 0x0f) as u8) << 4);
            }
        };
        let high_bits = |qh: &mut [u8]| {
            let mut h = 0u32;
            for (j, &q) in codes.iter().enumerate() {
                h |= ((q >> 4) & 1) << j;
            }
            qh.copy_from_slice(&h.to_le_bytes());
        };
        match self.layout {
            Layout::Gq { bits, zero } => {
                let at = if zero {
                    out[2] = p.c as u8;
                    3
                } else {
                    2
                };
                for (i, &q) in codes.iter().enumerate() {
                    put_code(&mut out[at..], i, bits, q);
                }
            }
            Layout::Ternary => {
                for (i, &q) in codes.iter().enumerate() {
                    put_code(&mut out[2..], i, 2, q);
                }
            }
            Layout::Q4_0 => nibbles(&mut out[2..18]),
            Layout::Q4_1 => {
                out[2..4].copy_from_slice(&f16::from_f32(p.m).to_bits().to_le_bytes());
                nibbles(&mut out[4..20]);
            }
            Layout::Q5_0 => {
                high_bits(&mut out[2..6]);
                nibbles(&mut out[6..22]);
            }
            Layout::Q5_1 => {
                out[2..4].copy_from_slice(&f16::from_f32(p.m).to_bits().to_le_bytes());
                high_bits(&mut out[4..8]);
                nibbles(&mut out[8..24]);
            }
            Layout::Q8_0 => {
                for (o, &q) in out[2..34].iter_mut().zip(codes) {
                    *o = (q as i32 - 127) as i8 as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flexc_ir::quant::{decode, GqParams, TernaryParams};

    #[test]
    fn packed_blocks_decode_to_the_fitted_values() {
        let encs = [
            Encoding::Gq(GqParams { bits: 3, group: 64, zero: true }),
            Encoding::Gq(GqParams { bits: 2, group: 32, zero: false }),
            Encoding::Gq(GqParams { bits: 4, group: 128, zero: true }),
            Encoding::Gq(GqParams { bits: 1, group: 64, zero: false }),
            Encoding::Ternary(TernaryParams { group: 64 }),
            Encoding::Ggml(GgmlType::Q4_0),
            Encoding::Ggml(GgmlType::Q4_1),
            Encoding::Ggml(GgmlType::Q5_0),
            Encoding::Ggml(GgmlType::Q5_1),
            Encoding::Ggml(GgmlType::Q8_0),
        ];
        for enc in encs {
            let f = QuantFormat::of(enc).unwrap();
            let x: Vec<f32> = (0..f.group).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.013 + 0.002).collect();
            let p = f.levels.fit(&x, &vec![1.0; f.group]);
            let codes: Vec<u32> = x.iter().map(|&v| p.nearest(v).0).collect();
            let mut block = vec![0u8; f.block_bytes()];
            f.pack(&p, &codes, &mut block);
            let mut out = vec![0f32; f.group];
            decode(enc, &block, &mut out).unwrap();
            for (j, (&o, &q)) in out.iter().zip(&codes).enumerate() {
                assert_eq!(o.to_bits(), p.value(q).to_bits(), "{enc}: element {j}");
            }
        }
    }

    #[test]
    fn non_affine_encodings_have_no_format() {
        assert!(QuantFormat::of(Encoding::Ggml(GgmlType::Q4_K)).is_none());
        assert!(QuantFormat::of(Encoding::Ternary(TernaryParams { group: 0 })).is_none());
        assert_eq!(QuantFormat::of(Encoding::Ggml(GgmlType::Q4_0)).unwrap().bits_per_weight(), 4.5);
    }
}
