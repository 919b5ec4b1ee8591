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
//! [`QuantFormat::of`] asks the encoding's registry entry for its grid and
//! packer ([`flexc_ir::quant::AffineScheme`], implemented in each encoding's
//! own file); encodings that are not affine group grids (`#bcq`, `#nm`,
//! per-tensor `#ternary`, the K-quants) have their own quantizers or none.

use super::grid::{Affine, Levels, Offset};
use flexc_ir::quant::AffineFit;
use flexc_ir::Encoding;

/// An encoding the affine quantizers can write (module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantFormat {
    /// The encoding written.
    pub enc: Encoding,
    /// Elements per group (one block).
    pub group: usize,
    /// The grid of one group.
    pub levels: Levels,
}

impl QuantFormat {
    /// The affine format of `enc` (its registry entry's
    /// [`flexc_ir::quant::AffineScheme`]), or `None` when it is not one.
    pub fn of(enc: Encoding) -> Option<QuantFormat> {
        let g = enc.scheme().affine()?.grid();
        Some(QuantFormat { enc, group: g.group, levels: Levels { qmax: g.qmax, offset: g.offset } })
    }

    /// Bytes of one group's block.
    pub fn block_bytes(&self) -> usize {
        self.enc.block_bytes() as usize
    }

    /// Bits per weight of this format (block bytes × 8 / group).
    pub fn bits_per_weight(&self) -> f64 {
        self.block_bytes() as f64 * 8.0 / self.group as f64
    }

    /// Bytes the CPU kernel streams per decoded token for an `[n, k]` weight
    /// in this format: the blocks as stored, except for the encodings the
    /// LUT kernel runs (`#gq`, `#ternary`), which it streams in its own
    /// layout (`backends/src/cpu/lut.rs`): [`Encoding::lut_stream_planes`]
    /// bit planes per weight (`#gq` 1–4 bits as they are when `n` is a
    /// multiple of 16, ternary 2), and each group's scale (and integer zero
    /// point, as an offset) as an f16 per row.
    pub fn streamed_bytes(&self, n: usize, k: usize) -> u64 {
        let groups = (n * (k / self.group)) as u64;
        match self.enc.lut_stream_planes(n as u64) {
            Some(planes) => {
                let offsets = u64::from(matches!(self.levels.offset, Offset::IntZero));
                (n * k) as u64 * u64::from(planes) / 8 + groups * 2 * (1 + offsets)
            }
            None => groups * self.block_bytes() as u64,
        }
    }

    /// Writes one block from a group's parameters and codes (`codes.len() == group`).
    pub fn pack(&self, p: &Affine, codes: &[u32], out: &mut [u8]) {
        debug_assert_eq!(codes.len(), self.group);
        // `of` only builds formats of affine schemes.
        if let Some(a) = self.enc.scheme().affine() {
            a.pack(&AffineFit { d: p.d, c: p.c, m: p.m }, codes, &mut out[..self.block_bytes()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flexc_ir::quant::{decode, GgmlType, GqParams, TernaryParams};

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
