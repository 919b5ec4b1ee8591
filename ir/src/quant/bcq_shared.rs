//! ShiftAddLLM's shared-scale `#bcq` layouts, `scales = acc | lat`: a weight
//! `[rows, cols]` is `W[r, c] ≈ Σ_i α_{i,s(r,c)}·B_i[r, c]` with `B_i ∈ {±1}`
//! and one `α` set `s` shared by many rows, so a kernel can apply `α` to the
//! activations (`x'_{i,c} = α_{i,s}·x_c`) and sum table lookups with no
//! per-row scale:
//!
//! - **acc** (ShiftAddLLM "Acc.", `columnwise`): one set per input column,
//!   `s(r, c) = c`;
//! - **lat** ("Lat.", `block_quant`): one set per 8 input columns × rows/8
//!   output rows, `s(r, c) = (r / (rows/8))·(cols/8) + c/8` (rows and cols
//!   multiples of 8), matching the 8-activation tables.
//!
//! Both hold `cols · bits` scales. Storage, little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | rows·cols·bits/8 | signs, row-major: row `r`, 8-column chunk `j`, plane `i` is byte `(r·cols/8 + j)·bits + i`, bit `t` (LSB-first) set ⇔ `B_i[r, 8j + t] = +1` |
//! | 2·cols·bits | `α`: set `s`, plane `i` is f16 `s·bits + i`; each set non-negative, descending |
//!
//! Decoding and encoding take the `[rows, cols]` shape (the registry's
//! [`crate::quant::Encoding::decode`] passes it). The plain quantizer
//! ([`BcqParams::encode_shared`]) fits each set to its elements with the
//! row layout's group quantizer (greedy init, alternating least-squares
//! refinement, APoT rounding); `passes::quant::optq` adds Hessian feedback.

use super::ggml::{f16_at, put_f16};
use super::lowbit::{BcqParams, BcqScales};

impl BcqParams {
    /// Checks a shared-scale layout's shape; its storage bytes.
    pub fn shared_bytes(&self, rows: u64, cols: u64) -> Result<u64, String> {
        let lat = self.scales() == BcqScales::Lat;
        if rows == 0 || cols == 0 || !cols.is_multiple_of(8) || (lat && !rows.is_multiple_of(8)) {
            let need = if lat { "rows and columns multiples of 8" } else { "columns a multiple of 8" };
            return Err(format!("#bcq scales = {} needs a [rows, cols] weight with {need}, got [{rows}, {cols}]", self.scales().name()));
        }
        let q = self.bits as u64;
        rows.checked_mul(cols).and_then(|n| n.checked_mul(q)).map(|b| b / 8 + 2 * cols * q).ok_or_else(|| format!("#bcq [{rows}, {cols}] is too large"))
    }

    /// The `α` set of element `(r, c)` of a `[rows, cols]` weight.
    pub fn shared_set(&self, rows: usize, cols: usize, r: usize, c: usize) -> usize {
        match self.scales() {
            BcqScales::Lat => r / (rows / 8) * (cols / 8) + c / 8,
            _ => c,
        }
    }

    /// The elements `(r, c)` of set `s`, in row-major order.
    pub fn shared_members(&self, rows: usize, cols: usize, s: usize) -> Vec<(usize, usize)> {
        match self.scales() {
            BcqScales::Lat => {
                let (rb, cb, h) = (s / (cols / 8), s % (cols / 8), rows / 8);
                (rb * h..(rb + 1) * h).flat_map(|r| (8 * cb..8 * cb + 8).map(move |c| (r, c))).collect()
            }
            _ => (0..rows).map(|r| (r, s)).collect(),
        }
    }

    /// Byte offset of the `α` table.
    fn alpha_at(&self, rows: usize, cols: usize) -> usize {
        rows * cols * self.bits as usize / 8
    }

    /// The `α`s of every set (`cols · bits`, set-major) of `bytes`.
    pub fn shared_alphas(&self, bytes: &[u8], rows: usize, cols: usize) -> Vec<f32> {
        let at = self.alpha_at(rows, cols);
        (0..cols * self.bits as usize).map(|j| f16_at(bytes, at + 2 * j)).collect()
    }

    /// The sign byte of plane `i`, row `r`, 8-column chunk `j`.
    pub fn shared_sign_byte(&self, bytes: &[u8], cols: usize, r: usize, j: usize, i: usize) -> u8 {
        bytes[(r * cols / 8 + j) * self.bits as usize + i]
    }

    /// Packs `alpha` (`cols · bits`, f16-exact) and per element a sign mask
    /// (bit i set ⇔ `B_i = +1`, row-major) into storage bytes.
    pub fn pack_shared(&self, rows: usize, cols: usize, alpha: &[f32], signs: &[u8]) -> Vec<u8> {
        let q = self.bits as usize;
        let at = self.alpha_at(rows, cols);
        let mut out = vec![0u8; at + 2 * alpha.len()];
        for (e, &s) in signs.iter().enumerate() {
            let (r, c) = (e / cols, e % cols);
            for i in 0..q {
                if s >> i & 1 == 1 {
                    out[(r * cols / 8 + c / 8) * q + i] |= 1 << (c % 8);
                }
            }
        }
        for (j, &a) in alpha.iter().enumerate() {
            put_f16(&mut out, at + 2 * j, a);
        }
        out
    }

    /// Quantizes `values` (`[rows, cols]`) set by set with `rounds`
    /// refinement rounds: storage bytes.
    pub fn encode_shared(&self, values: &[f32], rows: usize, cols: usize, rounds: usize) -> Result<Vec<u8>, String> {
        self.shared_bytes(rows as u64, cols as u64)?;
        if values.len() != rows * cols {
            return Err(format!("#bcq [{rows}, {cols}] takes {} values, got {}", rows * cols, values.len()));
        }
        let mut alpha = vec![0f32; cols * self.bits as usize];
        let mut signs = vec![0u8; rows * cols];
        for (s, a) in alpha.chunks_exact_mut(self.bits as usize).enumerate() {
            let members = self.shared_members(rows, cols, s);
            let w: Vec<f32> = members.iter().map(|&(r, c)| values[r * cols + c]).collect();
            let (fit, sg) = self.quantize_group(&w, rounds);
            a.copy_from_slice(&fit);
            for (&(r, c), m) in members.iter().zip(sg) {
                signs[r * cols + c] = m;
            }
        }
        Ok(self.pack_shared(rows, cols, &alpha, &signs))
    }

    /// Decodes a `[rows, cols]` weight into `out` (`rows·cols` values).
    pub fn decode_shared(&self, bytes: &[u8], rows: usize, cols: usize, out: &mut [f32]) -> Result<(), String> {
        let q = self.bits as usize;
        let name = self.scales().name();
        let want = self.shared_bytes(rows as u64, cols as u64)?;
        if self.group().is_some() || rows.checked_mul(cols) != Some(out.len()) || want != bytes.len() as u64 {
            return Err(format!("#bcq scales = {name}: a [{rows}, {cols}] weight takes {want} bytes and {} values, got {} and {}", rows * cols, bytes.len(), out.len()));
        }
        let alpha = self.shared_alphas(bytes, rows, cols);
        for (e, o) in out.iter_mut().enumerate() {
            let (r, c) = (e / cols, e % cols);
            let a = &alpha[self.shared_set(rows, cols, r, c) * q..][..q];
            *o = (0..q).map(|i| if self.shared_sign_byte(bytes, cols, r, c / 8, i) >> (c % 8) & 1 == 1 { a[i] } else { -a[i] }).sum();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::bcq::value;

    fn vals(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * 0.05
            })
            .collect()
    }

    fn rel_err(p: BcqParams, w: &[f32], rows: usize, cols: usize, rounds: usize) -> f64 {
        let mut y = vec![0f32; w.len()];
        p.decode_shared(&p.encode_shared(w, rows, cols, rounds).unwrap(), rows, cols, &mut y).unwrap();
        let num: f64 = w.iter().zip(&y).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
        (num / w.iter().map(|a| (*a as f64).powi(2)).sum::<f64>()).sqrt()
    }

    #[test]
    fn decode_is_the_sum_of_scaled_signs() {
        let (rows, cols) = (16, 24);
        let w = vals(7, rows * cols);
        for scales in [BcqScales::Acc, BcqScales::Lat] {
            for bits in 1..=4u8 {
                let p = BcqParams::shared(bits, true, 3, scales);
                let bytes = p.encode_shared(&w, rows, cols, 5).unwrap();
                assert_eq!(bytes.len() as u64, p.shared_bytes(rows as u64, cols as u64).unwrap());
                let mut y = vec![0f32; w.len()];
                p.decode_shared(&bytes, rows, cols, &mut y).unwrap();
                let alpha = p.shared_alphas(&bytes, rows, cols);
                for (e, &v) in y.iter().enumerate() {
                    let (r, c) = (e / cols, e % cols);
                    let s = p.shared_set(rows, cols, r, c);
                    let mask = (0..bits as usize).fold(0u8, |m, i| m | (p.shared_sign_byte(&bytes, cols, r, c / 8, i) >> (c % 8) & 1) << i);
                    // Exactly Σ ±α in f64 (f16 α, at most 4 terms: exact in f32 too).
                    assert_eq!(v as f64, value(&alpha[s * bits as usize..][..bits as usize], mask), "{scales:?} bits {bits} ({r}, {c})");
                }
            }
        }
    }

    #[test]
    fn sets_are_columns_or_lat_blocks() {
        let acc = BcqParams::shared(2, true, 3, BcqScales::Acc);
        let lat = BcqParams::shared(2, true, 3, BcqScales::Lat);
        assert_eq!(acc.shared_set(16, 24, 5, 17), 17);
        // rows/8 = 2 rows per block, 3 column blocks per row block.
        assert_eq!(lat.shared_set(16, 24, 5, 17), 2 * 3 + 2);
        for p in [acc, lat] {
            let mut seen = vec![0; 16 * 24];
            for s in 0..24 {
                for (r, c) in p.shared_members(16, 24, s) {
                    assert_eq!(p.shared_set(16, 24, r, c), s);
                    seen[r * 24 + c] += 1;
                }
            }
            assert!(seen.iter().all(|&n| n == 1));
        }
        assert!(lat.shared_bytes(12, 24).is_err() && acc.shared_bytes(12, 24).is_ok() && acc.shared_bytes(12, 20).is_err());
    }

    #[test]
    fn refinement_beats_greedy() {
        let (rows, cols) = (64, 64);
        let w = vals(9, rows * cols);
        for scales in [BcqScales::Acc, BcqScales::Lat] {
            for bits in 2..=4u8 {
                let p = BcqParams::shared(bits, true, 3, scales);
                let (g, r) = (rel_err(p, &w, rows, cols, 0), rel_err(p, &w, rows, cols, 15));
                assert!(r < g, "{scales:?} bits {bits}: refined {r} vs greedy {g}");
            }
        }
    }

    #[test]
    fn text_spelling_round_trips() {
        use crate::quant::encoding::ParamValue;
        use crate::types::Encoding;
        for name in ["acc", "lat"] {
            let given = [("bits".to_string(), ParamValue::Int(3)), ("pot".to_string(), ParamValue::Bool(true)), ("scales".to_string(), ParamValue::Ident(name.into()))];
            let e = Encoding::parse("bcq", &given).unwrap();
            assert_eq!(e.to_string(), format!("#bcq<bits = 3, pot = true, apot = 3, scales = {name}>"));
            let params: Vec<(String, ParamValue)> = e.params().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            assert_eq!(Encoding::parse("bcq", &params).unwrap(), e);
            assert_eq!(e.block_elems(), 8);
            assert!(e.storage(&[64]).is_err());
            assert_eq!(e.storage(&[8, 8]).unwrap(), 8 * 8 * 3 / 8 + 2 * 8 * 3);
        }
        let row = Encoding::parse("bcq", &[("bits".to_string(), ParamValue::Int(2)), ("group".to_string(), ParamValue::Int(64)), ("scales".to_string(), ParamValue::Ident("row".into()))]).unwrap();
        assert_eq!(row.to_string(), "#bcq<bits = 2, group = 64, pot = false>");
        assert!(Encoding::parse("bcq", &[("bits".to_string(), ParamValue::Int(2)), ("scales".to_string(), ParamValue::Ident("diag".into()))]).is_err());
    }

    #[test]
    fn bad_lengths_are_errors() {
        let p = BcqParams::shared(3, true, 3, BcqScales::Lat);
        let bytes = p.encode_shared(&vals(1, 64), 8, 8, 2).unwrap();
        let mut y = vec![0f32; 64];
        assert!(p.decode_shared(&bytes[1..], 8, 8, &mut y).is_err());
        assert!(p.decode_shared(&bytes, 8, 8, &mut y[..56]).is_err());
        assert!(p.decode(&bytes, &mut y).is_err());
        let e = crate::quant::Encoding::Bcq(p);
        assert!(e.decode(&[64], &bytes, &mut y).is_err());
        e.decode(&[8, 8], &bytes, &mut y).unwrap();
        assert!(p.encode_rounds(&vals(1, 64), 2).is_err());
    }
}
