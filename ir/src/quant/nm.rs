//! The N:M sparse codec (`#nm<n = N, m = M>`): **N kept of M**.
//!
//! The last axis is cut into groups of `M` consecutive elements (for a linear
//! weight `[out, in]`: `M` consecutive input channels of one output row, the
//! direction FLOW, Wanda and OWL prune along). Each group is one storage block:
//!
//! ```text
//! offset 0          : N values, f32 little-endian, in ascending index order
//! offset 4·N        : N in-group indices, b = bits(M − 1) bits each (at least 1),
//!                     packed LSB first (index k occupies bits k·b .. k·b+b−1
//!                     of the little-endian bit stream), padded with 0 bits to
//!                     ceil(N·b / 8) bytes
//! ```
//!
//! So 2:4 is 8 + 1 = 9 bytes per 4 weights, 4:8 is 16 + 2 = 18 bytes per 8,
//! 8:8 is 32 + 3 = 35 bytes. Indices are strictly increasing inside a group
//! (decode rejects anything else), so every group has exactly `N` stored
//! slots: a kept weight whose value is 0 still occupies a slot, and a group
//! always reports exactly `N` kept positions ([`kept_positions`]).
//!
//! Values stay f32: pruning happens after dequantizing, and quantizing the
//! kept values is a separate, later decision.
//!
//! [`Nm`] is the one N:M pattern type of flexc (the encoding's parameters,
//! the sparsity passes' candidates and plans, FlexCiM's layers): it is valid
//! by construction (`1 <= n <= m <=` [`MAX_M`]), checked once in [`Nm::new`].

use super::encoding::{ParamValue, Params, ParseScheme, Primitive, Scheme};
use std::fmt;

/// The largest group size the codec accepts.
pub const MAX_M: u8 = 16;

/// An N:M pattern: `n` kept of every `m` consecutive elements along the
/// last axis (`n == m` is dense). Valid by construction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct Nm {
    n: u8,
    m: u8,
}

impl Nm {
    /// Dense 8:8.
    pub const DENSE: Nm = Nm { n: 8, m: 8 };
    /// 2:4, the pattern sparse tensor cores run.
    pub const TWO_FOUR: Nm = Nm { n: 2, m: 4 };

    /// The pattern `n` kept of `m`: `1 <= n <= m <= MAX_M`.
    pub fn new(n: i64, m: i64) -> Result<Nm, String> {
        if !(1..=MAX_M as i64).contains(&m) || !(1..=m).contains(&n) {
            return Err(format!("N:M pattern {n}:{m}: need 1 <= N <= M <= {MAX_M}"));
        }
        Ok(Nm { n: n as u8, m: m as u8 })
    }

    /// A pattern known valid at compile time (`Nm::of(2, 4)`); a constant
    /// with bad numbers fails to compile.
    pub const fn of(n: u8, m: u8) -> Nm {
        assert!(n >= 1 && n <= m && m <= MAX_M, "N:M constant out of range");
        Nm { n, m }
    }

    /// Parses `N:M` (N kept of M).
    pub fn parse(s: &str) -> Result<Nm, String> {
        let (n, m) = s.trim().split_once(':').ok_or_else(|| format!("expected N:M (N kept of M), got '{s}'"))?;
        let n: i64 = n.trim().parse().map_err(|_| format!("bad N in '{s}'"))?;
        let m: i64 = m.trim().parse().map_err(|_| format!("bad M in '{s}'"))?;
        Nm::new(n, m).map_err(|e| format!("'{s}': {e}"))
    }

    /// Parses a comma-separated list of `N:M`.
    pub fn parse_list(s: &str) -> Result<Vec<Nm>, String> {
        s.split(',').map(Nm::parse).collect()
    }

    /// Kept per group.
    pub fn n(self) -> usize {
        self.n as usize
    }

    /// Group size.
    pub fn m(self) -> usize {
        self.m as usize
    }

    /// True when every element is kept.
    pub fn is_dense(self) -> bool {
        self.n == self.m
    }

    /// Kept fraction `n/m`.
    pub fn density(self) -> f64 {
        self.n as f64 / self.m as f64
    }

    /// Pruned fraction `(m − n)/m`.
    pub fn sparsity(self) -> f64 {
        1.0 - self.density()
    }
}

impl fmt::Display for Nm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.n, self.m)
    }
}

impl ParseScheme for Nm {
    fn parse(name: &str, given: &[(String, ParamValue)]) -> Option<Result<Nm, String>> {
        (name == "nm").then(|| {
            let p = Params { name, given };
            p.check_keys(&["n", "m"])?;
            let (n, m) = (p.int("n", None, (i64::MIN, i64::MAX))?, p.int("m", None, (i64::MIN, i64::MAX))?);
            Nm::new(n, m).map_err(|_| format!("encoding #nm<n = {n}, m = {m}>: need 1 <= n <= m <= {MAX_M}"))
        })
    }
}

impl Scheme for Nm {
    fn name(&self) -> &'static str {
        "nm"
    }

    fn params(&self) -> Vec<(&'static str, ParamValue)> {
        vec![("n", ParamValue::Int(self.n.into())), ("m", ParamValue::Int(self.m.into()))]
    }

    fn block_elems(&self) -> u64 {
        self.m.into()
    }

    fn block_bytes(&self) -> u64 {
        block_bytes(*self) as u64
    }

    fn decode(&self, _shape: &[usize], bytes: &[u8], out: &mut [f32]) -> Result<(), String> {
        decode(*self, bytes, out)
    }

    fn encode(&self, _shape: &[usize], values: &[f32]) -> Result<Vec<u8>, String> {
        encode(*self, values)
    }

    fn primitives(&self) -> &'static [Primitive] {
        &[Primitive::Sparse]
    }

    fn cost_key(&self) -> String {
        "nm".into()
    }

    fn density(&self) -> f64 {
        Nm::density(*self)
    }

    fn nm(&self) -> Option<Nm> {
        Some(*self)
    }

    fn kept_positions(&self, bytes: &[u8]) -> Option<Result<Vec<Vec<usize>>, String>> {
        Some(kept_positions(*self, bytes))
    }
}

/// Bits per stored index for group size `m` (1..=MAX_M).
pub fn index_bits(m: usize) -> u32 {
    (usize::BITS - (m.max(2) - 1).leading_zeros()).max(1)
}

/// Bytes of one group (block).
pub fn block_bytes(nm: Nm) -> usize {
    4 * nm.n() + (nm.n() * index_bits(nm.m()) as usize).div_ceil(8)
}

/// The in-group indices stored in one block.
fn read_indices(nm: Nm, block: &[u8]) -> Vec<usize> {
    let (n, b) = (nm.n, index_bits(nm.m()));
    let meta = &block[4 * n as usize..];
    (0..n as u32)
        .map(|k| {
            let mut idx = 0usize;
            for bit in 0..b {
                let pos = k * b + bit;
                if meta[(pos / 8) as usize] >> (pos % 8) & 1 == 1 {
                    idx |= 1 << bit;
                }
            }
            idx
        })
        .collect()
}

/// Decodes whole groups into `out` (pruned positions are 0.0).
pub fn decode(nm: Nm, bytes: &[u8], out: &mut [f32]) -> Result<(), String> {
    let (n, m) = (nm.n, nm.m);
    let (me, bb) = (nm.m(), block_bytes(nm));
    if !out.len().is_multiple_of(me) || bytes.len() != out.len() / me * bb {
        return Err(format!("#nm<n = {n}, m = {m}>: {} values need {} bytes, got {}", out.len(), out.len() / me * bb, bytes.len()));
    }
    for (g, (block, dst)) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(me)).enumerate() {
        dst.fill(0.0);
        let idx = read_indices(nm, block);
        for (k, &i) in idx.iter().enumerate() {
            if i >= me || (k > 0 && i <= idx[k - 1]) {
                return Err(format!("#nm<n = {n}, m = {m}>: group {g} has indices {idx:?} (need strictly increasing, below {m})"));
            }
            dst[i] = f32::from_le_bytes(block[4 * k..4 * k + 4].try_into().unwrap_or_default());
        }
    }
    Ok(())
}

/// The kept positions of every group, as in-group indices (exactly `n` each).
pub fn kept_positions(nm: Nm, bytes: &[u8]) -> Result<Vec<Vec<usize>>, String> {
    let (n, m) = (nm.n, nm.m);
    let bb = block_bytes(nm);
    if !bytes.len().is_multiple_of(bb) {
        return Err(format!("#nm<n = {n}, m = {m}>: {} bytes is not a whole number of {bb}-byte groups", bytes.len()));
    }
    Ok(bytes.chunks_exact(bb).map(|b| read_indices(nm, b)).collect())
}

/// Encodes values keeping exactly the positions `keep` marks: every group of
/// `m` must mark exactly `n` (what a pruning pass hands over).
pub fn encode_masked(nm: Nm, values: &[f32], keep: &[bool]) -> Result<Vec<u8>, String> {
    let (n, m) = (nm.n, nm.m);
    let me = nm.m();
    if !values.len().is_multiple_of(me) || keep.len() != values.len() {
        return Err(format!("#nm<n = {n}, m = {m}>: {} values (mask {}) are not whole groups of {m}", values.len(), keep.len()));
    }
    let b = index_bits(me);
    let mut out = Vec::with_capacity(values.len() / me * block_bytes(nm));
    for (g, (vals, mask)) in values.chunks_exact(me).zip(keep.chunks_exact(me)).enumerate() {
        let idx: Vec<usize> = (0..me).filter(|&i| mask[i]).collect();
        if idx.len() != n as usize {
            return Err(format!("#nm<n = {n}, m = {m}>: group {g} keeps {} values, not {n}", idx.len()));
        }
        for &i in &idx {
            out.extend_from_slice(&vals[i].to_le_bytes());
        }
        let mut meta = vec![0u8; (n as usize * b as usize).div_ceil(8)];
        for (k, &i) in idx.iter().enumerate() {
            for bit in 0..b {
                if i >> bit & 1 == 1 {
                    let pos = k as u32 * b + bit;
                    meta[(pos / 8) as usize] |= 1 << (pos % 8);
                }
            }
        }
        out.extend_from_slice(&meta);
    }
    Ok(out)
}

/// Encodes plain values, keeping the `n` largest magnitudes of each group
/// (ties: the lower index). Lossless whenever every group has at most `n`
/// non-zeros; otherwise it is magnitude N:M pruning.
pub fn encode(nm: Nm, values: &[f32]) -> Result<Vec<u8>, String> {
    let (n, m) = (nm.n, nm.m);
    let me = nm.m();
    if !values.len().is_multiple_of(me) {
        return Err(format!("#nm<n = {n}, m = {m}>: {} values are not whole groups of {m}", values.len()));
    }
    let mut keep = vec![false; values.len()];
    for (vals, mask) in values.chunks_exact(me).zip(keep.chunks_exact_mut(me)) {
        for i in top_n(vals.iter().map(|v| v.abs()), n as usize) {
            mask[i] = true;
        }
    }
    encode_masked(nm, values, &keep)
}

/// The positions of the `n` largest scores (ties: the lower index first;
/// NaN counts as smallest). Returned in ascending position order.
pub fn top_n(scores: impl Iterator<Item = f32>, n: usize) -> Vec<usize> {
    let mut order: Vec<(usize, f32)> = scores.enumerate().collect();
    order.sort_by(|a, b| {
        let key = |x: f32| if x.is_nan() { f32::NEG_INFINITY } else { x };
        key(b.1).total_cmp(&key(a.1)).then(a.0.cmp(&b.0))
    });
    let mut idx: Vec<usize> = order.into_iter().take(n).map(|(i, _)| i).collect();
    idx.sort_unstable();
    idx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Encoding;

    #[test]
    fn geometry() {
        assert_eq!((index_bits(4), index_bits(8), index_bits(2), index_bits(16)), (2, 3, 1, 4));
        assert_eq!(block_bytes(Nm::of(2, 4)), 9);
        assert_eq!(block_bytes(Nm::of(4, 8)), 18);
        assert_eq!(block_bytes(Nm::DENSE), 35);
        assert_eq!(block_bytes(Nm::of(4, 4)), 17);
        let e = Encoding::Nm(Nm::of(2, 8));
        assert_eq!((e.block_elems(), e.block_bytes()), (8, 9));
        assert_eq!(e.to_string(), "#nm<n = 2, m = 8>");
    }

    #[test]
    fn round_trip_and_exact_kept_count() {
        let mut seed = 7u64;
        let mut rnd = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        for (n, m) in [(1u8, 2u8), (2, 4), (4, 4), (2, 8), (4, 8), (8, 8), (3, 16)] {
            let vals: Vec<f32> = (0..m as usize * 12).map(|_| rnd()).collect();
            let bytes = crate::quant::encode(Encoding::Nm(Nm::of(n, m)), &vals).unwrap();
            assert_eq!(bytes.len(), 12 * block_bytes(Nm::of(n, m)));
            let mut out = vec![1.0; vals.len()];
            crate::quant::decode(Encoding::Nm(Nm::of(n, m)), &bytes, &mut out).unwrap();
            for (g, (src, dst)) in vals.chunks(m as usize).zip(out.chunks(m as usize)).enumerate() {
                let kept: Vec<usize> = (0..m as usize).filter(|&i| dst[i] != 0.0).collect();
                assert_eq!(kept.len(), n as usize, "group {g} of {n}:{m}");
                // The kept ones are the n largest magnitudes, stored exactly.
                let min_kept = kept.iter().map(|&i| src[i].abs()).fold(f32::INFINITY, f32::min);
                for i in 0..m as usize {
                    if kept.contains(&i) {
                        assert_eq!(dst[i], src[i]);
                    } else {
                        assert!(src[i].abs() <= min_kept);
                    }
                }
            }
            // Re-encoding the decoded values gives the same bytes (lossless when pruned).
            assert_eq!(crate::quant::encode(Encoding::Nm(Nm::of(n, m)), &out).unwrap(), bytes);
            assert!(kept_positions(Nm::of(n, m), &bytes).unwrap().iter().all(|k| k.len() == n as usize));
        }
    }

    #[test]
    fn masked_zero_keeps_its_slot_and_bad_input_fails() {
        let vals = [0.0, 5.0, 0.0, 0.0];
        let nm = Nm::TWO_FOUR;
        let bytes = encode_masked(nm, &vals, &[true, true, false, false]).unwrap();
        assert_eq!(kept_positions(nm, &bytes).unwrap(), vec![vec![0, 1]]);
        // Byte layout: 0.0f32, 5.0f32, then indices 0 (bits 0-1) and 1 (bits 2-3) = 0b0100.
        assert_eq!(&bytes[8..], &[0b0100]);
        assert!(encode_masked(nm, &vals, &[true, false, false, false]).is_err());
        let mut bad = bytes.clone();
        bad[8] = 0b0000; // indices 0, 0: not increasing
        assert!(decode(nm, &bad, &mut [0.0; 4]).is_err());
        for (n, m) in [(0, 4), (5, 4), (1, 17), (1, 4294967296), (4294967298, 4294967300), (-1, 4)] {
            assert!(Nm::new(n, m).is_err(), "{n}:{m}");
        }
        assert_eq!(Nm::parse("2:4").unwrap(), Nm::TWO_FOUR);
        assert!(Nm::parse("4294967298:4294967300").is_err());
        assert!(Encoding::parse("nm", &[("n".into(), ParamValue::Int(5)), ("m".into(), ParamValue::Int(4))]).is_err());
    }
}
