//! Attention over a KV cache (causal or bidirectional, sliding window,
//! soft-cap, grouped-query heads), in Rust: its loop bounds depend on the
//! position at run time, and the work per call is small next to the GEMMs.
//!
//! A call is cut into [`Tiles`]: one kv head, a block of query positions and
//! the query heads that share that kv head. Within a tile, rows (query
//! position × head) are taken four at a time, so every key and value row is
//! read once per four query rows instead of once per row (the per-row loop
//! was bound by cache bandwidth: Gemma 3's 256-wide heads reread 0.5 MiB of
//! keys and values per query row at 512 tokens). Per block of four rows,
//! over the union of the rows' key ranges:
//!
//! 1. S = Q·Kᵀ;
//! 2. per row: scale, soft-cap, mask to the row's own range (causal limit,
//!    sliding window), softmax normalised in place;
//! 3. O = P·V.
//!
//! Two tiers, chosen per shape at run time ([`AttnPath`], as stack.md §7
//! recommends): on x86-64 with AVX2 + FMA, 256-bit intrinsics (`avx2`,
//! head sizes multiples of 8); elsewhere the Cranelift kernels of `jitattn`
//! (128-bit vectors; head sizes multiples of 4). Cranelift has no 256-bit
//! vector types on x86-64, and side by side the JIT tier is 2.3× (Gemma 3,
//! pp512) to 2.5× (SmolLM2, 2048-token windows) slower than the AVX2 tier,
//! which is why the latter exists. Other head sizes take the portable
//! per-row loop ([`attention_row`]). On every path a row's result does not
//! depend on the tiling or the thread split. Dots and sums accumulate in f32
//! (the reference interpreter uses f64); the tests bound the difference.

use super::jitattn::{AttnKernels, ROWS};
use super::ops::{axpy, dot, softmax_in_place, tanh};

/// Attention geometry and options.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    /// Query heads.
    pub hq: usize,
    /// Key/value heads.
    pub hk: usize,
    /// Query/key head size.
    pub d: usize,
    /// Value head size.
    pub dv: usize,
    /// Rows of k/v (the cache capacity).
    pub t: usize,
    /// Score scale.
    pub scale: f32,
    /// Sliding window (0: none).
    pub window: i64,
    /// Soft-cap (0: none).
    pub softcap: f32,
    /// Every query sees every valid key.
    pub bidirectional: bool,
}

impl AttnShape {
    /// The key range `[lo, hi)` query position `p` attends to, with `valid`
    /// keys written.
    fn keys(&self, p: usize, valid: usize) -> (usize, usize) {
        let hi = if self.bidirectional { valid } else { valid.min(p + 1) };
        let lo = if self.window > 0 { (p as i64 - self.window + 1).max(0) as usize } else { 0 };
        (lo, hi)
    }

    /// Raw dot products to scores in place: scaled, then soft-capped.
    #[inline(always)]
    fn scores(&self, xs: &mut [f32]) {
        if self.softcap > 0.0 {
            let (cap, inv) = (self.softcap, self.scale / self.softcap);
            xs.iter_mut().for_each(|x| *x = cap * tanh(*x * inv));
        } else {
            xs.iter_mut().for_each(|x| *x *= self.scale);
        }
    }
}

/// The operands of one attention call: `q: [seq, hq, d]`, `k: [t, hk, d]`,
/// `v: [t, hk, dv]`, the output `[seq, hq, dv]` and the start position.
#[derive(Clone, Copy)]
pub struct AttnCall<'a> {
    /// Queries.
    pub q: &'a [f32],
    /// Keys.
    pub k: &'a [f32],
    /// Values.
    pub v: &'a [f32],
    /// Output (written per tile).
    pub out: *mut f32,
    /// Position of query row 0.
    pub pos: usize,
    /// Query rows.
    pub seq: usize,
    /// Geometry and options.
    pub a: &'a AttnShape,
}

/// How one call is cut into independent tiles of query rows.
#[derive(Clone, Copy, Debug)]
pub struct Tiles {
    /// Query heads per kv head.
    group: usize,
    /// Query positions per tile.
    positions: usize,
    /// Position blocks.
    blocks: usize,
    /// Tiles per (position block, kv head): the group's heads split this many ways.
    splits: usize,
    /// Key/value heads.
    hk: usize,
}

impl Tiles {
    /// Tiles for `seq` query positions on `threads` threads: enough positions
    /// per tile that its rows come in whole blocks of four (at least eight
    /// rows), and the group's heads split over threads when there are fewer
    /// tiles than twice the threads (decode).
    pub fn new(a: &AttnShape, seq: usize, threads: usize) -> Tiles {
        let group = (a.hq / a.hk).max(1);
        let mut positions = (1..=4).find(|p| (p * group).is_multiple_of(4)).unwrap_or(4);
        while positions * group < 8 {
            positions *= 2;
        }
        let positions = positions.min(seq.max(1));
        let blocks = seq.div_ceil(positions);
        let splits = if blocks * a.hk >= 2 * threads { 1 } else { group.min((2 * threads).div_ceil(blocks * a.hk)) };
        Tiles { group, positions, blocks, splits, hk: a.hk }
    }

    /// Number of tiles.
    pub fn count(&self) -> usize {
        self.blocks * self.hk * self.splits
    }

    /// Floats of scratch one tile needs on any path: the AVX2 path keeps
    /// the scores of all its rows over `t` keys, the JIT path transposed
    /// scores of four rows and one spare output row, the row loop `t`.
    pub fn scratch_len(&self, a: &AttnShape) -> usize {
        (self.positions * self.group.div_ceil(self.splits) * a.t).max(ROWS * a.t + a.dv)
    }

    /// Tile `index`'s query positions, its kv head and its query heads.
    fn tile(&self, index: usize) -> (std::ops::Range<usize>, usize, std::ops::Range<usize>) {
        let split = index % self.splits;
        let kh = index / self.splits % self.hk;
        let block = index / self.splits / self.hk;
        let base = kh * self.group;
        let heads = base + self.group * split / self.splits..base + self.group * (split + 1) / self.splits;
        (block * self.positions..(block + 1) * self.positions, kh, heads)
    }
}

/// Which code computes the tiles of one attention shape: the run-time
/// choice of the two-tier backend (see the module docs).
#[derive(Clone, Copy)]
pub enum AttnPath<'k> {
    /// AVX2 + FMA intrinsics, 256-bit (x86-64 hosts that have them).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// The Cranelift kernels compiled for the shape (128-bit vectors).
    Jit(&'k AttnKernels),
    /// The portable row-by-row loop.
    Rows,
}

impl AttnPath<'_> {
    /// Whether the host can take the AVX2 path for `a` (head sizes multiples of 8).
    pub fn avx2_for(a: &AttnShape) -> bool {
        #[cfg(target_arch = "x86_64")]
        if a.d.is_multiple_of(8) && a.dv.is_multiple_of(8) {
            return std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
        }
        let _ = a;
        false
    }

    /// The fastest path for `a` given the JIT kernels compiled for it, if any.
    pub fn choose<'k>(a: &AttnShape, kernels: Option<&'k AttnKernels>) -> AttnPath<'k> {
        #[cfg(target_arch = "x86_64")]
        if Self::avx2_for(a) {
            return AttnPath::Avx2;
        }
        kernels.map_or(AttnPath::Rows, AttnPath::Jit)
    }
}

/// The rows of one tile, row `r` = (query position `p0 + r / nh`, head
/// `h0 + r % nh`), and the union `[lo, hi)` of their key ranges.
struct TileRows {
    a: AttnShape,
    /// Absolute position of query row 0 of the call.
    pos: usize,
    p0: usize,
    h0: usize,
    nh: usize,
    rows: usize,
    valid: usize,
    lo: usize,
    hi: usize,
}

impl TileRows {
    fn new(c: &AttnCall<'_>, positions: std::ops::Range<usize>, heads: std::ops::Range<usize>) -> TileRows {
        let (nh, a) = (heads.len(), *c.a);
        let mut t = TileRows { a, pos: c.pos, p0: positions.start, h0: heads.start, nh, rows: positions.len() * nh, valid: a.t.min(c.pos + c.seq), lo: 0, hi: 0 };
        (t.lo, t.hi) = (0..t.rows).map(|r| t.range(r)).fold((usize::MAX, 0), |(l, h), (rl, rh)| (l.min(rl), h.max(rh)));
        t
    }

    /// Row `r`'s item (`position · hq + head`).
    fn item(&self, r: usize) -> usize {
        (self.p0 + r / self.nh) * self.a.hq + self.h0 + r % self.nh
    }

    /// Row `r`'s key range.
    fn range(&self, r: usize) -> (usize, usize) {
        self.a.keys(self.pos + self.p0 + r / self.nh, self.valid)
    }
}

/// Computes tile `index` of `tiles`, writing its rows of `c.out`, by `path`
/// (kernels compiled for `c.a`). `scratch` holds at least
/// [`Tiles::scratch_len`] floats.
///
/// # Safety
/// `c.out` must point to `seq·hq·dv` writable floats of which only this
/// tile's rows are written (callers hand each tile to one thread).
pub unsafe fn attention_tile(c: &AttnCall<'_>, tiles: &Tiles, index: usize, path: AttnPath<'_>, scratch: &mut [f32]) {
    let (positions, kh, heads) = tiles.tile(index);
    let positions = positions.start..positions.end.min(c.seq);
    let tr = TileRows::new(c, positions.clone(), heads.clone());
    if tr.rows == 0 {
        return;
    }
    match path {
        // SAFETY: `Avx2` is only chosen when the features are present; forwarded contract.
        #[cfg(target_arch = "x86_64")]
        AttnPath::Avx2 => return unsafe { avx2::tile(c, &tr, kh, scratch) },
        // SAFETY: forwarded contract.
        AttnPath::Jit(kern) => return unsafe { jit_tile(c, kern, &tr, kh, scratch) },
        _ => {}
    }
    for i in positions {
        for h in heads.clone() {
            // SAFETY: forwarded contract; the row belongs to this tile.
            unsafe { attention_row(c, i * c.a.hq + h, scratch) };
        }
    }
}

/// Attention of one (query position, head) row `item = i·hq + h`, the
/// portable path. `scratch` holds at least `t` floats.
///
/// # Safety
/// `c.out` must point to `seq·hq·dv` writable floats; row `item` is written.
unsafe fn attention_row(c: &AttnCall<'_>, item: usize, scores: &mut [f32]) {
    let AttnCall { q, k, v, out, pos, seq, a } = *c;
    let (i, h) = (item / a.hq, item % a.hq);
    let kh = h / (a.hq / a.hk).max(1);
    let qrow = &q[item * a.d..(item + 1) * a.d];
    let (lo, hi) = a.keys(pos + i, a.t.min(pos + seq));
    // SAFETY: the caller guarantees this row is ours to write.
    let o = unsafe { std::slice::from_raw_parts_mut(out.add(item * a.dv), a.dv) };
    o.fill(0.0);
    if lo >= hi {
        return;
    }
    for j in lo..hi {
        scores[j] = dot(qrow, &k[(j * a.hk + kh) * a.d..][..a.d]);
    }
    a.scores(&mut scores[lo..hi]);
    softmax_in_place(&mut scores[lo..hi]);
    for j in lo..hi {
        axpy(o, scores[j], &v[(j * a.hk + kh) * a.dv..][..a.dv]);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The tiled path (see the module docs), AVX2 + FMA intrinsics.

    use super::{AttnCall, TileRows, softmax_in_place};
    use std::arch::x86_64::*;

    /// Rows per register block.
    const R: usize = 4;

    /// Horizontal sum of eight lanes.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    /// See [`super::attention_tile`]; `d` and `dv` are multiples of 8.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile(c: &AttnCall<'_>, tr: &TileRows, kh: usize, scratch: &mut [f32]) {
        let AttnCall { q, k, v, out, a, .. } = *c;
        let (rows, lo, hi) = (tr.rows, tr.lo, tr.hi);
        let item = |r: usize| tr.item(r);
        let range = |r: usize| tr.range(r);
        let n = hi.saturating_sub(lo);
        if n == 0 {
            for r in 0..rows {
                // SAFETY: the caller guarantees the tile's rows are ours.
                unsafe { std::slice::from_raw_parts_mut(out.add(item(r) * a.dv), a.dv) }.fill(0.0);
            }
            return;
        }
        let scores = &mut scratch[..rows * n];
        let (qp, kp, vp) = (q.as_ptr(), k.as_ptr(), v.as_ptr());
        let krow = |j: usize| (j * a.hk + kh) * a.d;
        let vrow = |j: usize| (j * a.hk + kh) * a.dv;
        // 1. S = Q·Kᵀ, R rows × 2 keys per block (missing rows repeat the last).
        for r0 in (0..rows).step_by(R) {
            let qr: [*const f32; R] = std::array::from_fn(|i| unsafe { qp.add(item((r0 + i).min(rows - 1)) * a.d) });
            let mut j = lo;
            while j < hi {
                let j1 = (j + 1).min(hi - 1);
                let (k0, k1) = unsafe { (kp.add(krow(j)), kp.add(krow(j1))) };
                let mut acc = [[_mm256_setzero_ps(); 2]; R];
                for cc in (0..a.d).step_by(8) {
                    // SAFETY: cc + 8 ≤ d; the rows lie inside q and k (sizes checked by the caller).
                    unsafe {
                        let (x0, x1) = (_mm256_loadu_ps(k0.add(cc)), _mm256_loadu_ps(k1.add(cc)));
                        for i in 0..R {
                            let y = _mm256_loadu_ps(qr[i].add(cc));
                            acc[i][0] = _mm256_fmadd_ps(y, x0, acc[i][0]);
                            acc[i][1] = _mm256_fmadd_ps(y, x1, acc[i][1]);
                        }
                    }
                }
                for (i, acc) in acc.iter().enumerate().take(rows - r0) {
                    let row = &mut scores[(r0 + i) * n..][..n];
                    row[j - lo] = unsafe { hsum(acc[0]) };
                    if j1 > j {
                        row[j1 - lo] = unsafe { hsum(acc[1]) };
                    }
                }
                j += 2;
            }
        }
        // 2. Per row: score, mask to the row's own keys, normalised softmax.
        for r in 0..rows {
            let (rl, rh) = range(r);
            let row = &mut scores[r * n..][..n];
            let start = rl.clamp(lo, hi);
            let own = start - lo..rh.clamp(start, hi) - lo;
            a.scores(&mut row[own.clone()]);
            softmax_in_place(&mut row[own.clone()]);
            row[..own.start].fill(0.0);
            row[own.end..].fill(0.0);
        }
        // 3. O = P·V, R rows × W vectors of columns per block.
        for r0 in (0..rows).step_by(R) {
            let pr: [usize; R] = std::array::from_fn(|i| (r0 + i).min(rows - 1) * n);
            let mut cc = 0;
            while cc < a.dv {
                if a.dv - cc >= 16 {
                    unsafe { pv_block::<2>(scores, pr, n, vp, lo, cc, &vrow, |i| out.add(item(r0 + i) * a.dv + cc), rows - r0) };
                    cc += 16;
                } else {
                    unsafe { pv_block::<1>(scores, pr, n, vp, lo, cc, &vrow, |i| out.add(item(r0 + i) * a.dv + cc), rows - r0) };
                    cc += 8;
                }
            }
        }
    }

    /// One register block of O = P·V: rows `pr` (offsets of their scores),
    /// columns `cc..cc + 8·W`, the first `live` rows stored through `dst`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn pv_block<const W: usize>(
        scores: &[f32],
        pr: [usize; R],
        n: usize,
        vp: *const f32,
        lo: usize,
        cc: usize,
        vrow: &impl Fn(usize) -> usize,
        dst: impl Fn(usize) -> *mut f32,
        live: usize,
    ) {
        let sp = scores.as_ptr();
        let mut acc = [[_mm256_setzero_ps(); W]; R];
        for jj in 0..n {
            // SAFETY: jj < n, so every score index is inside the tile's rows;
            // the value row and columns lie inside v.
            unsafe {
                let vr = vp.add(vrow(lo + jj) + cc);
                let x: [__m256; W] = std::array::from_fn(|w| _mm256_loadu_ps(vr.add(8 * w)));
                for i in 0..R {
                    let p = _mm256_broadcast_ss(&*sp.add(pr[i] + jj));
                    for w in 0..W {
                        acc[i][w] = _mm256_fmadd_ps(p, x[w], acc[i][w]);
                    }
                }
            }
        }
        for (i, acc) in acc.iter().enumerate().take(live.min(R)) {
            for (w, acc) in acc.iter().enumerate() {
                // SAFETY: the caller's row and columns, inside out.
                unsafe { _mm256_storeu_ps(dst(i).add(8 * w), *acc) };
            }
        }
    }
}

/// The JIT path of [`attention_tile`]: blocks of four rows through the
/// [`AttnKernels`] (scores, masked softmax, P·V over the tile's key range).
///
/// # Safety
/// As [`attention_tile`]; `scratch` holds `4·t + dv` floats.
unsafe fn jit_tile(c: &AttnCall<'_>, kern: &AttnKernels, tr: &TileRows, kh: usize, scratch: &mut [f32]) {
    let AttnCall { q, k, v, out, a, .. } = *c;
    let (rows, lo, hi) = (tr.rows, tr.lo, tr.hi);
    let item = |r: usize| tr.item(r);
    let range = |r: usize| tr.range(r);
    let n = hi.saturating_sub(lo);
    let (st, spare) = scratch.split_at_mut(ROWS * a.t);
    for r0 in (0..rows).step_by(ROWS) {
        // Rows past the tile repeat its last row; their output goes to `spare`.
        let row = |i: usize| (r0 + i).min(rows - 1);
        // SAFETY: the caller guarantees the tile's rows are ours to write.
        let outs: [*mut f32; ROWS] = std::array::from_fn(|i| if r0 + i < rows { unsafe { out.add(item(r0 + i) * a.dv) } } else { spare.as_mut_ptr() });
        if n == 0 {
            for &o in outs.iter().take(rows - r0) {
                // SAFETY: as above.
                unsafe { std::slice::from_raw_parts_mut(o, a.dv) }.fill(0.0);
            }
            continue;
        }
        let qs: [*const f32; ROWS] = std::array::from_fn(|i| q[item(row(i)) * a.d..].as_ptr());
        let mut ranges = [0i32; 2 * ROWS];
        for i in 0..ROWS {
            let (rl, rh) = range(row(i));
            let start = rl.clamp(lo, hi);
            ranges[i] = (start - lo) as i32;
            ranges[ROWS + i] = (rh.clamp(start, hi) - lo) as i32;
        }
        let (kp, vp) = (k[(lo * a.hk + kh) * a.d..].as_ptr(), v[(lo * a.hk + kh) * a.dv..].as_ptr());
        // SAFETY: keys lo..hi lie in the cache (hi ≤ t, sizes checked by the
        // caller), st holds 4·t ≥ 4·n floats, spare dv floats.
        unsafe {
            kern.scores(qs, kp, n, st.as_mut_ptr());
            kern.softmax(st.as_mut_ptr(), n, &ranges);
            kern.pv(st.as_ptr(), vp, n, outs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xorshift::XorShift;

    /// Plain f64 attention of query row `item` (the oracle).
    fn naive(q: &[f32], k: &[f32], v: &[f32], pos: usize, seq: usize, a: &AttnShape, item: usize) -> Vec<f64> {
        let (i, h) = (item / a.hq, item % a.hq);
        let kh = h / (a.hq / a.hk);
        let (lo, hi) = a.keys(pos + i, a.t.min(pos + seq));
        let mut out = vec![0f64; a.dv];
        if lo >= hi {
            return out;
        }
        let s: Vec<f64> = (lo..hi)
            .map(|j| {
                let d: f64 = (0..a.d).map(|c| q[item * a.d + c] as f64 * k[(j * a.hk + kh) * a.d + c] as f64).sum();
                let x = d * a.scale as f64;
                if a.softcap > 0.0 { a.softcap as f64 * (x / a.softcap as f64).tanh() } else { x }
            })
            .collect();
        let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
        let z: f64 = e.iter().sum();
        for (j, w) in (lo..hi).zip(&e) {
            for c in 0..a.dv {
                out[c] += w / z * v[(j * a.hk + kh) * a.dv + c] as f64;
            }
        }
        out
    }

    /// Runs every tile of a `threads`-thread tiling (in reverse order, as a
    /// thread split may).
    fn run(q: &[f32], k: &[f32], v: &[f32], pos: usize, seq: usize, a: &AttnShape, threads: usize, path: AttnPath<'_>) -> Vec<f32> {
        let mut out = vec![f32::NAN; seq * a.hq * a.dv];
        let tiles = Tiles::new(a, seq, threads);
        let mut scratch = vec![0f32; tiles.scratch_len(a)];
        let c = AttnCall { q, k, v, out: out.as_mut_ptr(), pos, seq, a };
        for t in (0..tiles.count()).rev() {
            // SAFETY: out holds seq·hq·dv floats; tiles are disjoint.
            unsafe { attention_tile(&c, &tiles, t, path, &mut scratch) };
        }
        out
    }

    #[test]
    fn tiles_cover_every_row_once() {
        for (hq, hk, seq, threads) in [(4, 1, 512, 2), (4, 1, 1, 2), (9, 3, 1, 2), (9, 3, 7, 2), (8, 8, 3, 1), (7, 1, 5, 2), (6, 2, 1, 8)] {
            let a = AttnShape { hq, hk, d: 8, dv: 8, t: seq, scale: 1.0, window: 0, softcap: 0.0, bidirectional: false };
            let tiles = Tiles::new(&a, seq, threads);
            let mut seen = vec![0; seq * hq];
            for t in 0..tiles.count() {
                let (ps, kh, hs) = tiles.tile(t);
                for i in ps.start..ps.end.min(seq) {
                    for h in hs.clone() {
                        assert_eq!(h / (hq / hk), kh);
                        seen[i * hq + h] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&s| s == 1), "{hq}/{hk} seq {seq}: {tiles:?}");
        }
    }

    #[test]
    fn attention_matches_the_f64_oracle_on_random_shapes() {
        // Random shapes: GQA groups 1..8, head sizes up to Gemma's 256 (and
        // sizes off the 4-multiple, which only the portable path takes),
        // sliding windows, soft-caps, prefill at position 0 and continuation
        // chunks. Any thread count gives the same bits, and both paths the
        // f64 oracle within 1e-4.
        let session = crate::cpu::JitSession::host().unwrap();
        let mut rng = XorShift(0xa77e);
        for trial in 0..80 {
            let hk = 1 + rng.below(2);
            let group = 1 + rng.below(8);
            let hq = hk * group;
            let d = rng.pick(&[8usize, 16, 20, 64, 256, 6]);
            let dv = rng.pick(&[8usize, 16, 24, 64, 12, 10]);
            let seq = 1 + rng.below(20);
            let pos = if rng.below(2) == 0 { 0 } else { rng.below(10) };
            let t = pos + seq + rng.below(4);
            let window = if rng.below(3) == 0 { 1 + rng.below(6) as i64 } else { 0 };
            let softcap = if rng.below(3) == 0 { 5.0 } else { 0.0 };
            let a = AttnShape { hq, hk, d, dv, t, scale: 1.0 / (d as f32).sqrt(), window, softcap, bidirectional: rng.below(5) == 0 };
            let q = rng.vec(seq * hq * d, 1.0);
            let k = rng.vec(t * hk * d, 1.0);
            let v = rng.vec(t * hk * dv, 1.0);
            let kernels = AttnKernels::supports(&a).then(|| AttnKernels::new(&session, &a).unwrap());
            let paths = every_path(&kernels, &a);
            let outs: Vec<(&str, Vec<f32>)> = paths
                .iter()
                .map(|&(name, path)| {
                    let one = run(&q, &k, &v, pos, seq, &a, 1, path);
                    let split = run(&q, &k, &v, pos, seq, &a, 2 + rng.below(7), path);
                    assert_eq!(one.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), split.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), "trial {trial} {name}: {a:?}");
                    (name, one)
                })
                .collect();
            for item in 0..seq * hq {
                let want = naive(&q, &k, &v, pos, seq, &a, item);
                for c in 0..dv {
                    for (path, out) in &outs {
                        let got = out[item * dv + c] as f64;
                        assert!((got - want[c]).abs() <= 1e-4 * (1.0 + want[c].abs()), "trial {trial} {path} item {item}[{c}]: {got} vs {}; {a:?}", want[c]);
                    }
                }
            }
        }
    }

    /// The attention paths the host runs for `a`: rows, the JIT kernels when built, AVX2 when it applies.
    fn every_path<'k>(kernels: &'k Option<AttnKernels>, a: &AttnShape) -> Vec<(&'static str, AttnPath<'k>)> {
        let mut paths = vec![("rows", AttnPath::Rows)];
        if let Some(k) = kernels {
            paths.push(("jit", AttnPath::Jit(k)));
        }
        #[cfg(target_arch = "x86_64")]
        if AttnPath::avx2_for(a) {
            paths.push(("avx2", AttnPath::Avx2));
        }
        paths
    }

    #[test]
    fn nan_propagates_on_every_path() {
        // A NaN score (from q or k) or value must make the rows that see it
        // NaN, never 0 or a finite mix (issue 19 B5); rows that cannot see it
        // stay finite.
        let session = crate::cpu::JitSession::host().unwrap();
        let (hq, hk, d, dv, seq) = (4, 1, 8, 8, 3);
        let a = AttnShape { hq, hk, d, dv, t: seq, scale: 0.5, window: 0, softcap: 0.0, bidirectional: false };
        let kernels = AttnKernels::supports(&a).then(|| AttnKernels::new(&session, &a).unwrap());
        let paths = every_path(&kernels, &a);
        let mut rng = XorShift(7);
        let (q, k, v) = (rng.vec(seq * hq * d, 1.0), rng.vec(seq * hk * d, 1.0), rng.vec(seq * hk * dv, 1.0));
        for (name, path) in paths {
            // A NaN key at position 1: positions 1 and 2 see it, position 0 does not.
            let mut kn = k.clone();
            kn[hk * d + 3] = f32::NAN;
            let out = run(&q, &kn, &v, 0, seq, &a, 1, path);
            assert!(out[..hq * dv].iter().all(|x| x.is_finite()), "{name}: position 0 cannot see the NaN key");
            assert!(out[hq * dv..].iter().all(|x| x.is_nan()), "{name}: {out:?}");
            // A NaN value at position 0 reaches every row.
            let mut vn = v.clone();
            vn[2] = f32::NAN;
            let out = run(&q, &k, &vn, 0, seq, &a, 1, path);
            assert!((0..seq * hq).all(|item| out[item * dv + 2].is_nan()), "{name}: {out:?}");
        }
    }
}
