//! `#bcq<bits = q, group = G, pot = p[, apot = a]>`: binary-coding quantization
//! (LUT-GEMM), `w ≈ Σ_{i<q} α_i·b_i` with `b_i ∈ {−1, +1}` and one `α` per
//! (row, group, plane); with `pot` every `α` is a sum of at most `apot`
//! powers of two (ShiftAddLLM's APoT), so `α·x` is shifts and adds.
//!
//! Block (one group of G elements along the last axis), little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 2·q | `α_0 … α_{q−1}`: f16, non-negative, in descending order |
//! | q·G/8 | plane `i` at `[2q + i·G/8, …)`: bit `j` (LSB-first) set ⇔ `b_i[j] = +1` |
//!
//! Quantizer (LUT-GEMM `greedy_mean` + `refine_mean`, ShiftAddLLM `quantize_shift`):
//! greedy init (`b_i = sign(r)`, `α_i = mean|r|`, `r −= α_i·b_i`), then
//! [`REFINE_ROUNDS`] rounds of: least-squares `α` from `BᵀB·α = Bᵀw` (exact
//! q×q solve), `|α|` sorted descending, APoT rounding when `pot`, rounding to
//! the stored f16, and re-assignment of every `b` to the nearest of the 2^q
//! sums `Σ ±α_i` (exhaustive, which is what LUT-GEMM's binary search finds).
//! The best (α, B) seen is kept, so refinement never increases the error.

use super::ggml::{f16_at, put_f16};
use super::encoding::{random_bytes, ParamValue, Params, ParseScheme, Primitive, Scheme};
use super::lowbit::{check_groups, check_len, BcqParams, BcqScales};

/// Alternating refinement rounds of [`BcqParams::encode`] (LUT-GEMM's default).
pub const REFINE_ROUNDS: usize = 15;

impl BcqParams {
    /// Elements per storage block along a row: the group, or 8 for the
    /// shared-scale layouts (one byte per plane, `quant::bcq_shared`).
    pub fn row_block_elems(&self) -> usize {
        self.group().map_or(8, |g| g as usize)
    }

    /// Bytes of one group's block (shared-scale layouts: one row's 8
    /// columns of sign bytes, the `α` table aside).
    pub fn block_bytes(&self) -> usize {
        match self.scales() {
            BcqScales::Row => 2 * self.bits as usize + self.plane_bytes() * self.bits as usize,
            _ => self.bits as usize,
        }
    }

    /// Bytes of one plane of one group.
    pub fn plane_bytes(&self) -> usize {
        self.row_block_elems() / 8
    }

    /// The `α`s of one block.
    pub fn alphas(&self, block: &[u8]) -> Vec<f32> {
        (0..self.bits as usize).map(|i| f16_at(block, 2 * i)).collect()
    }

    /// Plane `i` of one block.
    pub fn plane<'a>(&self, block: &'a [u8], i: usize) -> &'a [u8] {
        let at = 2 * self.bits as usize + i * self.plane_bytes();
        &block[at..at + self.plane_bytes()]
    }

    /// Decodes `out.len()` values of the per-row layout; the shared-scale
    /// layouts need the shape ([`BcqParams::decode_shared`], or
    /// [`crate::quant::Encoding::decode`]).
    pub fn decode(&self, bytes: &[u8], out: &mut [f32]) -> Result<(), String> {
        let Some(g) = self.group() else {
            return Err(format!("#bcq scales = {} shares α across rows: decoding needs the weight's [rows, cols]", self.scales().name()));
        };
        let (g, bb) = (g as usize, self.block_bytes());
        let n = check_groups("#bcq", out.len(), g)?;
        check_len("#bcq", out.len(), n * bb, bytes.len())?;
        for (blk, dst) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(g)) {
            dst.fill(0.0);
            for (i, a) in self.alphas(blk).into_iter().enumerate() {
                let plane = self.plane(blk, i);
                for (j, o) in dst.iter_mut().enumerate() {
                    *o += if plane[j / 8] >> (j % 8) & 1 == 1 { a } else { -a };
                }
            }
        }
        Ok(())
    }

    /// Encodes `values` with the full quantizer ([`REFINE_ROUNDS`] rounds).
    pub fn encode(&self, values: &[f32]) -> Result<Vec<u8>, String> {
        self.encode_rounds(values, REFINE_ROUNDS)
    }

    /// Encodes with `rounds` refinement rounds (0 = greedy only); the
    /// shared-scale layouts need the shape ([`BcqParams::encode_shared`]).
    pub fn encode_rounds(&self, values: &[f32], rounds: usize) -> Result<Vec<u8>, String> {
        let Some(g) = self.group() else {
            return Err(format!("#bcq scales = {} shares α across rows: encoding needs the weight's [rows, cols]", self.scales().name()));
        };
        let (g, bb) = (g as usize, self.block_bytes());
        let n = check_groups("#bcq", values.len(), g)?;
        let mut out = vec![0u8; n * bb];
        for (w, blk) in values.chunks_exact(g).zip(out.chunks_exact_mut(bb)) {
            let (alpha, signs) = self.quantize_group(w, rounds);
            self.pack_group(&alpha, &signs, blk);
        }
        Ok(out)
    }

    /// Writes one group's block: `alpha` (f16-exact) and per element a sign
    /// mask (bit i set ⇔ `b_i = +1`), into a zeroed `blk`.
    pub fn pack_group(&self, alpha: &[f32], signs: &[u8], blk: &mut [u8]) {
        let q = self.bits as usize;
        for (i, &a) in alpha.iter().enumerate() {
            put_f16(blk, 2 * i, a);
        }
        for (j, &s) in signs.iter().enumerate() {
            for i in 0..q {
                if s >> i & 1 == 1 {
                    blk[2 * q + i * self.plane_bytes() + j / 8] |= 1 << (j % 8);
                }
            }
        }
    }

    /// One group: `α` (f16-exact, descending) and per element a sign mask
    /// (bit i set ⇔ `b_i = +1`), with `rounds` refinement rounds.
    pub fn quantize_group(&self, w: &[f32], rounds: usize) -> (Vec<f32>, Vec<u8>) {
        let q = self.bits as usize;
        // Greedy init.
        let mut r: Vec<f64> = w.iter().map(|&v| v as f64).collect();
        let mut alpha = vec![0f64; q];
        let mut signs = vec![0u8; w.len()];
        for (i, a) in alpha.iter_mut().enumerate() {
            *a = r.iter().map(|v| v.abs()).sum::<f64>() / r.len() as f64;
            for (rv, s) in r.iter_mut().zip(signs.iter_mut()) {
                if *rv >= 0.0 {
                    *s |= 1 << i;
                    *rv -= *a;
                } else {
                    *rv += *a;
                }
            }
        }
        let alpha = self.storable(&alpha);
        // With rounded α the greedy signs may no longer be the nearest: re-assign.
        let signs = if self.pot { assign(w, &alpha) } else { signs };
        let mut best = (sq_err(w, &alpha, &signs), alpha, signs);
        let mut signs = best.2.clone();
        for _ in 0..rounds {
            let Some(ls) = least_squares_alpha(w, &signs, q) else { break };
            let alpha = self.storable(&ls);
            signs = assign(w, &alpha);
            let e = sq_err(w, &alpha, &signs);
            if e < best.0 {
                best = (e, alpha, signs.clone());
            }
        }
        (best.1, best.2)
    }

    /// `|α|` sorted descending, APoT-rounded when `pot`, rounded to f16.
    fn storable(&self, alpha: &[f64]) -> Vec<f32> {
        let mut a: Vec<f64> = alpha.iter().map(|v| v.abs()).collect();
        a.sort_by(|x, y| y.total_cmp(x));
        a.iter().map(|&v| half::f16::from_f64(if self.pot { apot_round(v, self.apot) } else { v }).to_f32()).collect()
    }
}

/// Rounds `v ≥ 0` to a sum of at most `terms` non-negative powers of two
/// (ShiftAddLLM's additive power-of-two): every term but the last is the
/// largest power of two not above the remainder, the last the nearest one.
pub fn apot_round(v: f64, terms: u8) -> f64 {
    let mut sum = 0.0;
    for t in 0..terms {
        let r = v - sum;
        if r < f64::MIN_POSITIVE {
            break;
        }
        let lo = 2f64.powi(r.log2().floor() as i32);
        let last = t + 1 == terms;
        sum += if last && 2.0 * lo - r < r - lo { 2.0 * lo } else { lo };
    }
    sum
}

/// `Σ_i ±α_i` for the sign mask `s` (bit i set ⇔ `+α_i`).
pub fn value(alpha: &[f32], s: u8) -> f64 {
    alpha.iter().enumerate().map(|(i, &a)| if s >> i & 1 == 1 { a as f64 } else { -(a as f64) }).sum()
}

/// The 2^q sign masks of `alpha` with their values `Σ ±α_i`.
pub fn combos(alpha: &[f32]) -> Vec<(u8, f64)> {
    (0..1u16 << alpha.len()).map(|s| (s as u8, value(alpha, s as u8))).collect()
}

/// The combination (of [`combos`]) nearest to `v`.
pub fn nearest(combos: &[(u8, f64)], v: f64) -> (u8, f64) {
    combos.iter().copied().min_by(|a, b| (a.1 - v).abs().total_cmp(&(b.1 - v).abs())).unwrap_or((0, 0.0))
}

/// Each element's nearest sign combination.
fn assign(w: &[f32], alpha: &[f32]) -> Vec<u8> {
    let c = combos(alpha);
    w.iter().map(|&v| nearest(&c, v as f64).0).collect()
}

/// Σ (w − ŵ)².
pub(crate) fn sq_err(w: &[f32], alpha: &[f32], signs: &[u8]) -> f64 {
    w.iter().zip(signs).map(|(&v, &s)| (v as f64 - value(alpha, s)).powi(2)).sum()
}

/// Solves `BᵀB·α = Bᵀw` by Gaussian elimination with partial pivoting;
/// `None` when `BᵀB` is singular (a plane equal to ± another).
#[allow(clippy::needless_range_loop, reason = "row/column indices of a q×q matrix read clearer than iterators")]
fn least_squares_alpha(w: &[f32], signs: &[u8], q: usize) -> Option<Vec<f64>> {
    let sgn = |s: u8, i: usize| if s >> i & 1 == 1 { 1.0 } else { -1.0 };
    let mut m = vec![vec![0f64; q + 1]; q];
    for (&v, &s) in w.iter().zip(signs) {
        for i in 0..q {
            for j in 0..q {
                m[i][j] += sgn(s, i) * sgn(s, j);
            }
            m[i][q] += sgn(s, i) * v as f64;
        }
    }
    for c in 0..q {
        let p = (c..q).max_by(|&a, &b| m[a][c].abs().total_cmp(&m[b][c].abs()))?;
        if m[p][c].abs() < 1e-9 * w.len() as f64 {
            return None;
        }
        m.swap(c, p);
        for r in 0..q {
            if r != c {
                let f = m[r][c] / m[c][c];
                for k in c..=q {
                    m[r][k] -= f * m[c][k];
                }
            }
        }
    }
    Some((0..q).map(|i| m[i][q] / m[i][i]).collect())
}

impl ParseScheme for BcqParams {
    fn parse(name: &str, given: &[(String, ParamValue)]) -> Option<Result<BcqParams, String>> {
        (name == "bcq").then(|| {
            let p = Params { name, given };
            p.check_keys(&["bits", "group", "pot", "apot", "scales"])?;
            let pot = p.boolean("pot", false)?;
            let apot = p.int("apot", Some(3), (1, 3))? as u8;
            if !pot && p.get("apot").is_some() {
                return Err("#bcq: 'apot' needs pot = true".to_string());
            }
            let bits = p.int("bits", None, (1, 4))? as u8;
            let scales = match p.get("scales") {
                None => BcqScales::Row,
                Some(ParamValue::Ident(s)) if s == "row" => BcqScales::Row,
                Some(ParamValue::Ident(s)) if s == "acc" => BcqScales::Acc,
                Some(ParamValue::Ident(s)) if s == "lat" => BcqScales::Lat,
                Some(other) => return Err(format!("#bcq: 'scales' must be row, acc or lat, got {other}")),
            };
            if scales == BcqScales::Row {
                return Ok(BcqParams::row(bits, p.group(false)?, pot, apot));
            }
            if p.get("group").is_some() {
                return Err(format!("#bcq: scales = {} shares α across rows and takes no 'group'", scales.name()));
            }
            Ok(BcqParams::shared(bits, pot, apot, scales))
        })
    }
}

impl Scheme for BcqParams {
    fn name(&self) -> &'static str {
        "bcq"
    }

    fn params(&self) -> Vec<(&'static str, ParamValue)> {
        let mut v = vec![("bits", ParamValue::Int(self.bits.into()))];
        if let Some(g) = self.group() {
            v.push(("group", ParamValue::Int(g.into())));
        }
        v.push(("pot", ParamValue::Bool(self.pot)));
        if self.pot {
            v.push(("apot", ParamValue::Int(self.apot.into())));
        }
        if self.group().is_none() {
            v.push(("scales", ParamValue::Ident(self.scales().name().to_string())));
        }
        v
    }

    fn block_elems(&self) -> u64 {
        self.row_block_elems() as u64
    }

    fn block_bytes(&self) -> u64 {
        BcqParams::block_bytes(self) as u64
    }

    fn row_local(&self) -> bool {
        self.group().is_some()
    }

    fn verify(&self, shape: &[u64]) -> Result<(), String> {
        match (self.group(), shape) {
            (Some(g), [.., last]) if last.is_multiple_of(g as u64) => Ok(()),
            (Some(g), [.., last]) => Err(format!("{} needs the last dimension to be a multiple of {g}, got {last}", self.spelling())),
            (Some(_), []) => Err(format!("{} needs at least one dimension", self.spelling())),
            (None, &[rows, cols]) => self.shared_bytes(rows, cols).map(|_| ()),
            (None, _) => Err(format!("{} shares α across rows: it needs a [rows, cols] tensor, got {} dimensions", self.spelling(), shape.len())),
        }
    }

    fn storage(&self, shape: &[u64]) -> Result<u64, String> {
        self.verify(shape)?;
        match shape {
            &[rows, cols] if self.group().is_none() => self.shared_bytes(rows, cols),
            _ => {
                let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or_else(|| format!("{}: {shape:?} is too large", self.spelling()))?;
                (numel / Scheme::block_elems(self)).checked_mul(Scheme::block_bytes(self)).ok_or_else(|| format!("{}: {shape:?} is too large", self.spelling()))
            }
        }
    }

    fn decode(&self, shape: &[usize], bytes: &[u8], out: &mut [f32]) -> Result<(), String> {
        match (self.group(), shape) {
            (None, &[rows, cols]) => self.decode_shared(bytes, rows, cols, out),
            _ => BcqParams::decode(self, bytes, out),
        }
    }

    fn encode(&self, shape: &[usize], values: &[f32]) -> Result<Vec<u8>, String> {
        match (self.group(), shape) {
            (None, &[rows, cols]) => self.encode_shared(values, rows, cols, REFINE_ROUNDS),
            _ => BcqParams::encode(self, values),
        }
    }

    fn primitives(&self) -> &'static [Primitive] {
        if self.group().is_some() { &[Primitive::Lut, Primitive::ShiftAdd] } else { &[Primitive::ShiftAdd] }
    }

    fn cost_key(&self) -> String {
        format!("bcq{}", self.bits)
    }

    fn lut_planes(&self) -> Option<u8> {
        Some(self.bits)
    }

    fn binary_coded(&self) -> Option<BcqParams> {
        Some(*self)
    }

    fn code_bits(&self) -> f64 {
        self.bits.into()
    }

    /// `bcq<bits>`, or `shiftadd<bits>` with power-of-two scales (`pot`),
    /// then `.acc` / `.lat` for the shared-scale layouts.
    fn tag(&self) -> String {
        let family = if self.pot { "shiftadd" } else { "bcq" };
        match self.group() {
            Some(_) => format!("{family}{}", self.bits),
            None => format!("{family}{}.{}", self.bits, self.scales().name()),
        }
    }

    /// Random signs, every `α` [`RANDOM_ALPHA`].
    fn random_storage(&self, shape: &[u64], fill: &mut dyn FnMut(&mut [u8])) -> Result<Vec<u8>, String> {
        let mut b = random_bytes(self, shape, fill)?;
        let q = self.bits as usize;
        match (self.group(), shape) {
            (None, &[_, cols]) => {
                // The α table trails the sign bytes (`quant::bcq_shared`).
                let at = b.len() - 2 * q * cols as usize;
                for j in 0..q * cols as usize {
                    put_f16(&mut b, at + 2 * j, RANDOM_ALPHA);
                }
            }
            _ => {
                for blk in b.chunks_exact_mut(BcqParams::block_bytes(self)) {
                    for i in 0..q {
                        put_f16(blk, 2 * i, RANDOM_ALPHA);
                    }
                }
            }
        }
        Ok(b)
    }
}

/// The `α` of [`Scheme::random_storage`]: `2^-8 + 2^-9 + 2^-10`, about
/// 0.007 and an APoT sum of 3 terms (what ShiftAddLLM's `apot = 3` stores).
pub const RANDOM_ALPHA: f32 = 0.006_835_937_5;

#[cfg(test)]
mod tests {
    use super::*;

    fn gauss(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed;
        let mut u = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n).map(|_| ((-2.0 * u().ln()).sqrt() * (std::f64::consts::TAU * u()).cos()) as f32 * 0.02).collect()
    }

    fn rel_err(p: &BcqParams, x: &[f32], rounds: usize) -> f64 {
        let bytes = p.encode_rounds(x, rounds).unwrap();
        let mut y = vec![0f32; x.len()];
        p.decode(&bytes, &mut y).unwrap();
        let num: f64 = x.iter().zip(&y).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
        let den: f64 = x.iter().map(|a| (*a as f64).powi(2)).sum();
        (num / den).sqrt()
    }

    #[test]
    fn refinement_beats_greedy() {
        let x = gauss(3, 128 * 32);
        for bits in 2..=4u8 {
            for pot in [false, true] {
                let p = BcqParams::row(bits, 128, pot, 3);
                let (g, r) = (rel_err(&p, &x, 0), rel_err(&p, &x, REFINE_ROUNDS));
                assert!(r < g, "bits {bits} pot {pot}: refined {r} vs greedy {g}");
            }
        }
    }

    #[test]
    fn representable_values_round_trip_exactly() {
        let p = BcqParams::row(2, 16, false, 3);
        let (a0, a1) = (0.5f32, 0.125f32);
        let x: Vec<f32> = (0..16).map(|j| if j % 2 == 0 { a0 } else { -a0 } + if j % 3 == 0 { a1 } else { -a1 }).collect();
        let bytes = p.encode(&x).unwrap();
        let mut y = vec![0f32; 16];
        p.decode(&bytes, &mut y).unwrap();
        assert_eq!(x, y);
        assert_eq!(p.alphas(&bytes), vec![a0, a1]);
    }

    #[test]
    fn pot_alphas_are_sums_of_few_powers_of_two() {
        let x = gauss(5, 64 * 4);
        for apot in 1..=3u8 {
            let p = BcqParams::row(3, 64, true, apot);
            let bytes = p.encode(&x).unwrap();
            for blk in bytes.chunks(p.block_bytes()) {
                for a in p.alphas(blk) {
                    assert!(a >= 0.0);
                    let m = half::f16::from_f32(a).to_bits() & 0x3ff;
                    // f16 mantissa: the implicit 1 plus at most apot − 1 more set bits
                    // (a carry can only merge terms).
                    assert!(a == 0.0 || (m.count_ones() as u8) < apot, "apot {apot}: {a}");
                }
            }
        }
        assert_eq!(apot_round(0.8, 1), 1.0);
        assert_eq!(apot_round(0.75, 2), 0.75);
        assert_eq!(apot_round(0.6875, 3), 0.6875);
        assert_eq!(apot_round(0.7, 3), 0.6875);
        assert_eq!(apot_round(0.7, 2), 0.75);
    }
}
