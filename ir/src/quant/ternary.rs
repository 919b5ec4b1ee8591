//! `#ternary<group = 0|G>`: BitNet b1.58 ternary weights with an absmean scale.
//!
//! Codes are `c = t + 1 ∈ {0, 1, 2}` for `t ∈ {−1, 0, +1}`, 2 bits each,
//! LSB-first (4 per byte; element i at bits `[2i, 2i+2)`; code 3 is invalid
//! and decodes as an error).
//!
//! - `group = G > 0`: one block per group: f16 `γ` (2 bytes), then G/4 code bytes.
//! - `group = 0`: one scale for the whole tensor: all codes (n/4 bytes), then
//!   `γ` as f32 little-endian (4 bytes), after the data like bitnet.cpp's I2_S.
//!
//! Value: `t·γ`. Quantization (BitNet b1.58): `γ = mean|x|` over the group or
//! tensor, `t = clamp(round(x/γ), −1, 1)` with the stored `γ`. A group whose
//! values are all `±γ` (no zeros) round-trips exactly; with zeros present the
//! absmean is smaller than the magnitude, which is BitNet's definition.

use super::encoding::{random_bytes, AffineFit, AffineGrid, AffineScheme, GridOffset, ParamValue, Params, ParseScheme, Primitive, Scheme};
use super::ggml::{f16_at, put_f16};
use super::lowbit::{check_groups, check_len, get_code, put_code, round, TernaryParams};

impl TernaryParams {
    /// Elements per storage block (4 codes per byte when per-tensor).
    pub fn block_elems(&self) -> usize {
        if self.group == 0 { 4 } else { self.group as usize }
    }

    /// Bytes per storage block.
    pub fn block_bytes(&self) -> usize {
        if self.group == 0 { 1 } else { 2 + self.group as usize / 4 }
    }

    /// Bytes after the blocks (the per-tensor f32 scale).
    pub fn trailer_bytes(&self) -> usize {
        if self.group == 0 { 4 } else { 0 }
    }

    /// Splits storage into `(scale, codes)` runs, one per scale group.
    fn groups<'a>(&self, bytes: &'a [u8], n: usize) -> Result<Vec<(f32, &'a [u8])>, String> {
        let be = self.block_elems();
        let nb = check_groups("#ternary", n, be)?;
        check_len("#ternary", n, nb * self.block_bytes() + self.trailer_bytes(), bytes.len())?;
        Ok(if self.group == 0 {
            let g = f32::from_le_bytes(bytes[nb..nb + 4].try_into().expect("4 bytes"));
            vec![(g, &bytes[..nb])]
        } else {
            bytes.chunks_exact(self.block_bytes()).map(|b| (f16_at(b, 0), &b[2..])).collect()
        })
    }

    /// The ternary values `t ∈ {−1, 0, 1}` and the scale of each group.
    pub fn trits(&self, bytes: &[u8], n: usize) -> Result<(Vec<i8>, Vec<f32>), String> {
        let mut t = Vec::with_capacity(n);
        let mut scales = Vec::new();
        for (g, codes) in self.groups(bytes, n)? {
            scales.push(g);
            let len = if self.group == 0 { n } else { self.group as usize };
            for i in 0..len {
                let c = get_code(codes, i, 2);
                if c == 3 {
                    return Err(format!("#ternary: invalid code 3 at element {}", t.len()));
                }
                t.push(c as i8 - 1);
            }
        }
        Ok((t, scales))
    }

    /// Decodes `out.len()` values.
    pub fn decode(&self, bytes: &[u8], out: &mut [f32]) -> Result<(), String> {
        let (t, scales) = self.trits(bytes, out.len())?;
        let len = if self.group == 0 { out.len().max(1) } else { self.group as usize };
        for (i, (o, &t)) in out.iter_mut().zip(&t).enumerate() {
            *o = t as f32 * scales[i / len];
        }
        Ok(())
    }

    /// Encodes `values` (a whole number of groups; per-tensor: a multiple of 4).
    pub fn encode(&self, values: &[f32]) -> Result<Vec<u8>, String> {
        let n = values.len();
        let nb = check_groups("#ternary", n, self.block_elems())?;
        let mut out = vec![0u8; nb * self.block_bytes() + self.trailer_bytes()];
        let absmean = |v: &[f32]| (v.iter().map(|x| x.abs() as f64).sum::<f64>() / v.len().max(1) as f64) as f32;
        let pack = |src: &[f32], g: f32, codes: &mut [u8]| {
            for (i, &v) in src.iter().enumerate() {
                let t = if g > 0.0 { round(v / g).clamp(-1.0, 1.0) } else { 0.0 };
                put_code(codes, i, 2, (t + 1.0) as u32);
            }
        };
        if self.group == 0 {
            let g = absmean(values);
            out[nb..].copy_from_slice(&g.to_le_bytes());
            pack(values, g, &mut out[..nb]);
        } else {
            let (gs, bb) = (self.group as usize, self.block_bytes());
            for (src, blk) in values.chunks_exact(gs).zip(out.chunks_exact_mut(bb)) {
                let g = put_f16(blk, 0, absmean(src));
                pack(src, g, &mut blk[2..]);
            }
        }
        Ok(out)
    }
}

impl ParseScheme for TernaryParams {
    fn parse(name: &str, given: &[(String, ParamValue)]) -> Option<Result<TernaryParams, String>> {
        (name == "ternary").then(|| {
            let p = Params { name, given };
            p.check_keys(&["group"])?;
            Ok(TernaryParams { group: p.group(true)? })
        })
    }
}

impl Scheme for TernaryParams {
    fn name(&self) -> &'static str {
        "ternary"
    }

    fn params(&self) -> Vec<(&'static str, ParamValue)> {
        vec![("group", ParamValue::Int(self.group.into()))]
    }

    fn block_elems(&self) -> u64 {
        TernaryParams::block_elems(self) as u64
    }

    fn block_bytes(&self) -> u64 {
        TernaryParams::block_bytes(self) as u64
    }

    /// Per-tensor scales (`group = 0`) trail the whole tensor's codes.
    fn row_local(&self) -> bool {
        self.group != 0
    }

    fn storage(&self, shape: &[u64]) -> Result<u64, String> {
        self.verify(shape)?;
        let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or_else(|| format!("{}: {shape:?} is too large", self.spelling()))?;
        (numel / Scheme::block_elems(self))
            .checked_mul(Scheme::block_bytes(self))
            .and_then(|b| b.checked_add(self.trailer_bytes() as u64))
            .ok_or_else(|| format!("{}: {shape:?} is too large", self.spelling()))
    }

    fn decode(&self, _shape: &[usize], bytes: &[u8], out: &mut [f32]) -> Result<(), String> {
        TernaryParams::decode(self, bytes, out)
    }

    fn encode(&self, _shape: &[usize], values: &[f32]) -> Result<Vec<u8>, String> {
        TernaryParams::encode(self, values)
    }

    fn primitives(&self) -> &'static [Primitive] {
        &[Primitive::Lut]
    }

    fn cost_key(&self) -> String {
        "ternary".into()
    }

    fn lut_planes(&self) -> Option<u8> {
        Some(2)
    }

    fn code_bits(&self) -> f64 {
        3f64.log2()
    }

    /// Random codes in {0, 1, 2} (no code 3), every scale 0.01.
    fn random_storage(&self, shape: &[u64], fill: &mut dyn FnMut(&mut [u8])) -> Result<Vec<u8>, String> {
        let mut b = random_bytes(self, shape, fill)?;
        // Clear a 2-bit field's high bit when its low bit is set: no code 3.
        let valid = |codes: &mut [u8]| codes.iter_mut().for_each(|v| *v &= 0b0101_0101 | (!*v & 0b0101_0101) << 1);
        if self.group == 0 {
            let nb = b.len() - self.trailer_bytes();
            valid(&mut b[..nb]);
            b[nb..].copy_from_slice(&0.01f32.to_le_bytes());
        } else {
            for blk in b.chunks_exact_mut(TernaryParams::block_bytes(self)) {
                put_f16(blk, 0, 0.01);
                valid(&mut blk[2..]);
            }
        }
        Ok(b)
    }

    /// Per-group ternary is the grid `{−1, 0, 1}·γ`; per-tensor is not a group grid.
    fn affine(&self) -> Option<&dyn AffineScheme> {
        (self.group > 0).then_some(self as &dyn AffineScheme)
    }
}

impl AffineScheme for TernaryParams {
    fn grid(&self) -> AffineGrid {
        AffineGrid { group: self.group as usize, qmax: 2, offset: GridOffset::Fixed(1.0) }
    }

    fn pack(&self, fit: &AffineFit, codes: &[u32], out: &mut [u8]) {
        out.fill(0);
        put_f16(out, 0, fit.d);
        for (i, &q) in codes.iter().enumerate() {
            put_code(&mut out[2..], i, 2, q);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_nonzero_ternary_round_trips_exactly() {
        for group in [0u32, 32] {
            let p = TernaryParams { group };
            let x: Vec<f32> = (0..64).map(|i| if (i * 7) % 3 == 0 { 0.75 } else { -0.75 }).collect();
            let bytes = p.encode(&x).unwrap();
            // Per tensor: 16 code bytes + f32 γ; per group: 2 × (f16 γ + 8 code bytes). Both 20.
            assert_eq!(bytes.len(), 20);
            let mut y = vec![0f32; 64];
            p.decode(&bytes, &mut y).unwrap();
            assert_eq!(x, y);
        }
    }

    #[test]
    fn absmean_scale_and_codes_follow_bitnet() {
        // mean|x| = (0 + 0.2 + 1.0 + 2.0 + ...)/n; values below γ/2 become 0.
        let x = [0.0f32, 0.2, -1.0, 2.0, 0.9, -0.1, 3.0, -3.0];
        let p = TernaryParams { group: 8 };
        let bytes = p.encode(&x).unwrap();
        let (t, s) = p.trits(&bytes, 8).unwrap();
        let g = half::f16::from_f32(x.iter().map(|v| v.abs()).sum::<f32>() / 8.0).to_f32();
        assert_eq!(s, vec![g]);
        let want: Vec<i8> = x.iter().map(|v| (v / g).round().clamp(-1.0, 1.0) as i8).collect();
        assert_eq!(t, want);
    }

    #[test]
    fn invalid_codes_and_lengths_are_errors() {
        let p = TernaryParams { group: 0 };
        assert!(p.decode(&[0xff, 0, 0, 0, 0], &mut [0.0; 4]).is_err());
        assert!(p.decode(&[0x55; 4], &mut [0.0; 4]).is_err());
        assert!(p.encode(&[0.0; 6]).is_err());
    }
}
