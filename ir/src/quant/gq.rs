//! `#gq<bits = b, group = G, zero = z>`: group-wise b-bit round-to-nearest.
//!
//! Block (one group of G elements along the last axis), little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 2 | `d`: f16 scale |
//! | 1 (only when `zero = true`) | `z`: u8 integer zero point in `[0, 2^b)` |
//! | G·b/8 | codes `q ∈ [0, 2^b)`, LSB-first (element i at bits `[i·b, i·b+b)`) |
//!
//! Value: `(q − z)·d`. Symmetric groups (`zero = false`) use the mid-rise
//! offset `z = (2^b − 1)/2`, so the levels are `±d/2, ±3d/2, …` and a code is
//! exactly T-MAC's bit-serial sum `Σ_b 2^(b−1)·s_b` with `s_b = 2q_b − 1`
//! (no bias term; 1 bit means sign·d/2). Asymmetric groups store an integer
//! zero point, so 0.0 is always representable.
//!
//! Quantization: symmetric `d = max|x| / z`; asymmetric
//! `d = (max − min)/(2^b − 1)`, `z = clamp(round(−min/d))` (the range is
//! widened to include 0). Then `q = clamp(round(x/d + z), 0, 2^b − 1)` with
//! the *stored* f16 `d`, so a group whose values are `(q − z)·d` for an
//! f16-exact `d` (attaining an extreme level) round-trips exactly.

use super::lowbit::{check_groups, check_len, get_code, put_code, round, GqParams};
use super::encoding::{padded_planes, random_bytes, AffineFit, AffineGrid, AffineScheme, GridOffset, ParamValue, Params, ParseScheme, Primitive, Scheme};
use super::ggml::{f16_at, put_f16};

impl GqParams {
    /// Bytes of one group's block.
    pub fn block_bytes(&self) -> usize {
        2 + self.zero as usize + self.code_bytes()
    }

    /// Bytes of the packed codes of one group.
    pub fn code_bytes(&self) -> usize {
        self.group as usize * self.bits as usize / 8
    }

    /// The largest code, `2^b − 1`.
    pub fn max_code(&self) -> u32 {
        (1 << self.bits) - 1
    }

    /// Reads one block's scale `d` and zero point `z` (half-integer when symmetric).
    pub fn scale_zero(&self, block: &[u8]) -> (f32, f32) {
        let d = f16_at(block, 0);
        let z = if self.zero { block[2] as f32 } else { self.max_code() as f32 / 2.0 };
        (d, z)
    }

    /// The packed codes of one block.
    pub fn codes<'a>(&self, block: &'a [u8]) -> &'a [u8] {
        &block[2 + self.zero as usize..self.block_bytes()]
    }

    /// Decodes `out.len()` values.
    pub fn decode(&self, bytes: &[u8], out: &mut [f32]) -> Result<(), String> {
        let (g, bb) = (self.group as usize, self.block_bytes());
        let n = check_groups("#gq", out.len(), g)?;
        check_len("#gq", out.len(), n * bb, bytes.len())?;
        for (blk, dst) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(g)) {
            let (d, z) = self.scale_zero(blk);
            let codes = self.codes(blk);
            for (i, o) in dst.iter_mut().enumerate() {
                *o = (get_code(codes, i, self.bits as u32) as f32 - z) * d;
            }
        }
        Ok(())
    }

    /// Encodes `values` (a whole number of groups).
    pub fn encode(&self, values: &[f32]) -> Result<Vec<u8>, String> {
        let (g, bb) = (self.group as usize, self.block_bytes());
        let n = check_groups("#gq", values.len(), g)?;
        let mut out = vec![0u8; n * bb];
        let maxq = self.max_code() as f32;
        for (src, blk) in values.chunks_exact(g).zip(out.chunks_exact_mut(bb)) {
            let (d, z) = if self.zero {
                let lo = src.iter().fold(0f32, |m, &v| m.min(v));
                let hi = src.iter().fold(0f32, |m, &v| m.max(v));
                let d = put_f16(blk, 0, (hi - lo) / maxq);
                let z = if d > 0.0 { round(-lo / d).clamp(0.0, maxq) } else { 0.0 };
                blk[2] = z as u8;
                (d, z)
            } else {
                let amax = src.iter().fold(0f32, |m, &v| m.max(v.abs()));
                (put_f16(blk, 0, amax / (maxq / 2.0)), maxq / 2.0)
            };
            let codes = &mut blk[2 + self.zero as usize..];
            for (i, &v) in src.iter().enumerate() {
                // x/d, not x·(1/d): exact for representable inputs.
                let t = if d > 0.0 { v / d } else { 0.0 };
                let q = round(t + z).clamp(0.0, maxq);
                put_code(codes, i, self.bits as u32, q as u32);
            }
        }
        Ok(out)
    }
}

impl ParseScheme for GqParams {
    fn parse(name: &str, given: &[(String, ParamValue)]) -> Option<Result<GqParams, String>> {
        (name == "gq").then(|| {
            let p = Params { name, given };
            p.check_keys(&["bits", "group", "zero"])?;
            Ok(GqParams { bits: p.int("bits", None, (1, 4))? as u8, group: p.group(false)?, zero: p.boolean("zero", false)? })
        })
    }
}

impl Scheme for GqParams {
    fn name(&self) -> &'static str {
        "gq"
    }

    fn params(&self) -> Vec<(&'static str, ParamValue)> {
        vec![("bits", ParamValue::Int(self.bits.into())), ("group", ParamValue::Int(self.group.into())), ("zero", ParamValue::Bool(self.zero))]
    }

    fn block_elems(&self) -> u64 {
        self.group.into()
    }

    fn block_bytes(&self) -> u64 {
        GqParams::block_bytes(self) as u64
    }

    fn decode(&self, _shape: &[usize], bytes: &[u8], out: &mut [f32]) -> Result<(), String> {
        GqParams::decode(self, bytes, out)
    }

    fn encode(&self, _shape: &[usize], values: &[f32]) -> Result<Vec<u8>, String> {
        GqParams::encode(self, values)
    }

    fn primitives(&self) -> &'static [Primitive] {
        &[Primitive::Lut]
    }

    fn cost_key(&self) -> String {
        format!("gq{}", self.bits)
    }

    fn lut_planes(&self) -> Option<u8> {
        Some(self.bits)
    }

    /// Codes as they are: 1 and 3 bits need rows in whole 16-row blocks,
    /// otherwise they are padded to 2 and 4 planes.
    fn lut_stream_planes(&self, rows: u64) -> Option<u8> {
        Some(if matches!(self.bits, 1 | 3) && rows.is_multiple_of(16) { self.bits } else { padded_planes(self.bits) })
    }

    fn affine(&self) -> Option<&dyn AffineScheme> {
        Some(self)
    }

    fn code_bits(&self) -> f64 {
        self.bits.into()
    }

    /// `gq<bits>g<group>`, with an `s` for symmetric groups (`gq3g64s`).
    fn tag(&self) -> String {
        format!("gq{}g{}{}", self.bits, self.group, if self.zero { "" } else { "s" })
    }

    /// Random codes (and zero points), every scale 0.01.
    fn random_storage(&self, shape: &[u64], fill: &mut dyn FnMut(&mut [u8])) -> Result<Vec<u8>, String> {
        let mut b = random_bytes(self, shape, fill)?;
        for blk in b.chunks_exact_mut(GqParams::block_bytes(self)) {
            put_f16(blk, 0, 0.01);
            if self.zero {
                blk[2] &= self.max_code() as u8;
            }
        }
        Ok(b)
    }
}

impl AffineScheme for GqParams {
    fn grid(&self) -> AffineGrid {
        let qmax = self.max_code();
        let offset = if self.zero { GridOffset::IntZero } else { GridOffset::Fixed(qmax as f32 / 2.0) };
        AffineGrid { group: self.group as usize, qmax, offset }
    }

    fn pack(&self, fit: &AffineFit, codes: &[u32], out: &mut [u8]) {
        out.fill(0);
        put_f16(out, 0, fit.d);
        if self.zero {
            out[2] = fit.c as u8;
        }
        let at = 2 + self.zero as usize;
        for (i, &q) in codes.iter().enumerate() {
            put_code(&mut out[at..], i, self.bits as u32, q);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: u64) -> impl FnMut() -> f32 {
        let mut s = seed;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
    }

    #[test]
    fn round_trip_error_is_within_half_a_step() {
        let mut r = rng(7);
        let x: Vec<f32> = (0..64 * 16).map(|_| r()).collect();
        for bits in 1..=4u8 {
            for zero in [false, true] {
                let p = GqParams { bits, group: 64, zero };
                let bytes = p.encode(&x).unwrap();
                assert_eq!(bytes.len(), 16 * p.block_bytes());
                let mut y = vec![0f32; x.len()];
                p.decode(&bytes, &mut y).unwrap();
                for (gx, (gy, blk)) in x.chunks(64).zip(y.chunks(64).zip(bytes.chunks(p.block_bytes()))) {
                    let (d, _) = p.scale_zero(blk);
                    for (a, b) in gx.iter().zip(gy) {
                        assert!((a - b).abs() <= d * 0.51 + 1e-6, "bits {bits} zero {zero}: {a} vs {b}, d {d}");
                    }
                }
            }
        }
    }

    #[test]
    fn representable_values_round_trip_exactly() {
        for bits in 1..=4u8 {
            for zero in [false, true] {
                let p = GqParams { bits, group: 32, zero };
                let maxq = p.max_code();
                let d = 0.375f32;
                let z = if zero { (maxq / 3) as f32 } else { maxq as f32 / 2.0 };
                // Every level appears, including both extremes.
                let x: Vec<f32> = (0..32).map(|i| ((i as u32 % (maxq + 1)) as f32 - z) * d).collect();
                let bytes = p.encode(&x).unwrap();
                let mut y = vec![0f32; 32];
                p.decode(&bytes, &mut y).unwrap();
                assert_eq!(x, y, "bits {bits} zero {zero}");
            }
        }
    }

    #[test]
    fn malformed_input_is_an_error() {
        let p = GqParams { bits: 3, group: 32, zero: false };
        assert!(p.encode(&[0.0; 31]).is_err());
        assert!(p.decode(&[0; 13], &mut [0.0; 32]).is_err());
    }
}
