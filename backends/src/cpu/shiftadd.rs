//! Shift-add BCQ GEMV/GEMM (LUT-GEMM / ShiftAddLLM) over `#bcq` weights as a
//! Cranelift JIT kernel: `y[m] = Σ_g Σ_i α_{m,g,i} · Σ_{c∈g} T_c[plane_i byte c]`.
//!
//! **Tables** ([`BcqTables`], built in Rust per activation row; about 1/10
//! of the kernel's work). Per chunk of μ = 8 activations a 256-entry table
//! `T[byte] = Σ_j (bit_j(byte) ? +x_j : −x_j)`, built incrementally as
//! LUT-GEMM's kernel does: `T[0] = −Σx`, then `T[i + 2^s] = T[i] + 2·x_s`.
//! The tables are **i32**: x is first scaled to integers `x̂ = round(x/λ)`
//! with one `λ` per activation row chosen so that every weight group's
//! `Σ|x̂| ≤ 2^30`; the table build and every lookup sum are then exact
//! integer adds that cannot overflow, and the only error is x̂'s rounding
//! (`≤ λ/2` per activation, relative 2^-31 of a group's L1 norm).
//!
//! **Scales.** `α` is applied once per (row, group, plane) to the plane's
//! i32 lookup sum `s`, converted to f32 (`|s| ≥ 1`, so a normal number with
//! a biased exponent in 127..=158). With `pot`, `α = Σ_t 2^(e_t)` (APoT) and
//! `α·s` is computed as **exponent adds**: `bits(s) + (e_t << 23)` per term,
//! which stays a normal float for every f16 `α`; zero sums and zero `α`s
//! are masked out. An `α` that is not a sum of at most 4 powers of two (a
//! `#bcq` without `pot`, or a hand-made one) is applied by a multiply
//! instead: [`ShiftAddSpec::terms`] is 0 for such weights. `λ` is applied
//! once per output row.
//!
//! **Weight layout** ([`ShiftAddWeights`], packed at compile time). Rows in
//! blocks of 4 (padded with zero `α`); K in segments of `seg_cols` columns
//! (whole groups, or a slice of one group when groups are longer than the
//! K tile), so one segment's tables (`seg_cols · 128` bytes, 16 KiB at the
//! default 128 columns) stay in L1 while every row block reads them.
//! Segment-major `[segment][row block]`, and per (segment, row block), per
//! group slice: `bits` i32x4 scale words (lane = row; APoT: byte `t` =
//! `e_t + 128`, 0 when `α = 0`; otherwise the f32 `α`), then per plane per
//! row its `cpg/8` sign bytes (bit j of byte c = sign of column `8c + j`).
//!
//! **Kernel.** One call runs one segment for row blocks `b0..b1`: per row
//! block the f32x4 partial sums are loaded from `y`, and per group slice
//! and plane the 4 rows' lookup sums run as 4 independent scalar i32 chains
//! (each 8 sign bytes are one i64 load, a few bytes loaded alone; each
//! lookup is a shift, a `movzx` and an `add r32, [table + 4·byte + 1024·c]`),
//! are gathered into an i32x4
//! and scaled as above; the sums go back to `y`. The table lookups, not
//! the weight bytes, bound the speed: 256-entry tables cannot be `pshufb`ed.
//!
//! **Shared scales** (`#bcq<…, scales = acc|lat>`, ShiftAddLLM's "Acc." and
//! "Lat."): `α` scales the activations instead, per-plane tables of
//! `α_i·x` are looked up and summed with no scale words and no per-row
//! scale (`shiftadd_shared.rs`); the same generator, the same packing order.

use super::SendPtr;
use std::sync::Arc;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32X4, I32, I32X4, I64, I8};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;
use flexc_ir::quant::{BcqParams, BcqScales};
use std::sync::Mutex;

use super::shiftadd_shared::{pack_shared, scale_blocks, ScaledTables};

use super::codegen::Cg;
use super::jit::{CompiledFn, JitError, JitSession};

/// Rows per row block (the lanes of one f32x4).
pub const BLOCK_ROWS: usize = 4;
/// Columns per K segment by default: 16 KiB of i32 tables, half of L1d.
pub const DEFAULT_K_TILE: usize = 128;
/// Longest K segment: the kernel unrolls a whole segment per row block,
/// and longer segments' tables (`128` bytes per column) leave L1 anyway.
pub const MAX_K_TILE: usize = 512;
/// Most power-of-two terms per `α` applied by exponent adds (bytes of a scale word).
pub const MAX_TERMS: u8 = 4;
/// Which of each 8 sign bytes are loaded on their own (`movzx r, [mem]`)
/// rather than extracted from one i64 load (shift + `movzx`): a mix
/// balances the load ports against the ALUs (3 of 8 measured 5–7% faster
/// than none or half, and 25% faster than all, at 576×1536).
const BYTE_LOADS: u8 = 0b0101_0100;
/// Bias of the exponent bytes of an APoT scale word.
const EXP_BIAS: i32 = 128;

/// Per-chunk 256-entry i32 tables of one activation row, and their scale;
/// for shared-scale weights also the row itself and, built on first use by
/// a kernel call, its `α`-scaled tables for that weight.
#[derive(Debug, Default)]
pub struct BcqTables {
    /// `cols / 8` tables of 256 entries.
    pub tables: Vec<i32>,
    /// `x ≈ λ·x̂`: the factor every output of this row is multiplied by.
    pub lambda: f32,
    /// Weight group the integer range was chosen for.
    pub group: usize,
    /// The activation row.
    x: Vec<f32>,
    /// The `α`-scaled tables of the last shared-scale weight run on this row.
    scaled: Mutex<Option<Arc<ScaledTables>>>,
}

impl Clone for BcqTables {
    fn clone(&self) -> BcqTables {
        BcqTables { tables: self.tables.clone(), lambda: self.lambda, group: self.group, x: self.x.clone(), scaled: Mutex::new(None) }
    }
}

/// Fills one 256-entry table from 8 integer activations incrementally
/// (LUT-GEMM): `T[0] = −Σx̂`, `T[i + 2^s] = T[i] + 2·x̂_s`. Intermediates
/// may wrap; every final entry is in range when `Σ|x̂| < 2^31`.
pub(super) fn build_table(q: [i32; 8], t: &mut [i32]) {
    t[0] = q.iter().fold(0i32, |s, &v| s.wrapping_sub(v));
    for (s, &qs) in q.iter().enumerate() {
        let (step, d) = (1 << s, qs.wrapping_mul(2));
        let (lo, hi) = t.split_at_mut(step);
        for (h, &l) in hi[..step].iter_mut().zip(lo.iter()) {
            *h = l.wrapping_add(d);
        }
    }
}

impl BcqTables {
    /// Builds the tables of `x` for weight groups of `group` columns.
    pub fn build(x: &[f32], group: usize) -> Result<BcqTables, JitError> {
        let mut t = BcqTables::default();
        t.fill(x, group)?;
        Ok(t)
    }

    /// Rebuilds the tables for `x` in place (reusing the allocation).
    pub fn fill(&mut self, x: &[f32], group: usize) -> Result<(), JitError> {
        if group == 0 || !group.is_multiple_of(8) || x.is_empty() || !x.len().is_multiple_of(group) {
            return Err(JitError::Length(format!("x has {} values, not whole groups of {group} (a multiple of 8)", x.len())));
        }
        // NaN-propagating max of the groups' L1 norms.
        let l1 = x.chunks_exact(group).map(|g| g.iter().map(|v| v.abs()).sum::<f32>()).fold(0f32, |m, v| if v > m || v.is_nan() { v } else { m });
        if !l1.is_finite() {
            return Err(JitError::Length("the activation row has non-finite values".into()));
        }
        // Σ|x̂| ≤ 2^30 + group/2 per group (rounding), far below 2^31.
        let lambda = l1 / (1u32 << 30) as f32;
        let inv = if lambda > 0.0 { 1.0 / lambda } else { 0.0 };
        self.lambda = lambda;
        self.group = group;
        self.tables.resize(x.len() * 32, 0);
        for (xc, t) in x.chunks_exact(8).zip(self.tables.chunks_exact_mut(256)) {
            build_table(std::array::from_fn(|j| (xc[j] * inv).round() as i32), t);
        }
        self.x.clear();
        self.x.extend_from_slice(x);
        *self.scaled.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }

    /// The `α`-scaled tables of this row for the shared-scale weights `w`,
    /// built by the first caller and shared by every later one.
    fn scaled_for(&self, w: &ShiftAddWeights) -> Arc<ScaledTables> {
        let key = w.id;
        let mut slot = self.scaled.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some(t) if t.key == key => t.clone(),
            _ => {
                let t = Arc::new(ScaledTables::build(&w.spec, &w.alphas, &self.x, key));
                *slot = Some(t.clone());
                t
            }
        }
    }
}

/// What one shift-add kernel is specialised on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShiftAddSpec {
    /// Output rows M (any positive number; padded to row blocks).
    pub rows: usize,
    /// Input columns K.
    pub cols: usize,
    /// BCQ planes, 1..=4.
    pub bits: u8,
    /// Columns per `α` group.
    pub group: usize,
    /// Power-of-two terms per `α` (exponent adds), 1..=[`MAX_TERMS`]; 0 = `α` multiplies.
    pub terms: u8,
    /// Columns per K segment (see the module docs).
    pub seg_cols: usize,
    /// Where the `α` live: per (row, group) (`Row`, applied to the row's
    /// lookup sums), or shared (`Acc`, `Lat`: applied to the activations,
    /// `shiftadd_shared.rs`; then `group = seg_cols` and `terms = 0`).
    pub scales: BcqScales,
}

impl ShiftAddSpec {
    /// Columns of one group inside a segment.
    pub fn cpg(&self) -> usize {
        self.group.min(self.seg_cols)
    }

    /// Group slices per segment.
    pub fn groups_per_seg(&self) -> usize {
        self.seg_cols / self.cpg()
    }

    /// Segments along K.
    pub fn segments(&self) -> usize {
        self.cols / self.seg_cols
    }

    /// Row blocks (the last one may be partial).
    pub fn blocks(&self) -> usize {
        self.rows.div_ceil(BLOCK_ROWS)
    }

    /// Bytes of one group slice of one row block: scale words, then planes.
    fn slice_bytes(&self) -> usize {
        let b = self.bits as usize;
        let words = if self.scales == BcqScales::Row { 16 * b } else { 0 };
        words + b * BLOCK_ROWS * self.cpg() / 8
    }

    /// Bytes of one (segment, row block).
    pub fn seg_block_bytes(&self) -> usize {
        self.groups_per_seg() * self.slice_bytes()
    }

    /// Total packed bytes.
    pub fn weight_bytes(&self) -> usize {
        self.segments() * self.blocks() * self.seg_block_bytes()
    }

    /// The segment length for groups of `group` columns in rows of `cols`
    /// and a K tile of `k_tile`: the most whole groups that fit the tile
    /// and divide the row, or the longest multiple of 8 up to the tile that
    /// divides a group longer than it.
    pub fn seg_cols_for(group: usize, cols: usize, k_tile: usize) -> usize {
        if group >= k_tile {
            (1..=k_tile / 8).rev().map(|i| 8 * i).find(|s| group.is_multiple_of(*s)).unwrap_or(8)
        } else {
            let n = cols / group;
            (1..=(k_tile / group).max(1)).rev().find(|d| n.is_multiple_of(*d)).unwrap_or(1) * group
        }
    }

    /// Checks the parameters before anything reaches Cranelift.
    pub fn validate(&self) -> Result<(), JitError> {
        let bad = |m: String| Err(JitError::InvalidParams(m));
        let (g, s) = (self.group, self.seg_cols);
        if !(1..=4).contains(&self.bits) || self.terms > MAX_TERMS {
            return bad(format!("bits = {} must be in 1..=4 and terms = {} at most {MAX_TERMS}", self.bits, self.terms));
        }
        if g == 0 || !g.is_multiple_of(8) || self.cols == 0 || !self.cols.is_multiple_of(g) || self.rows == 0 {
            return bad(format!("#bcq group {g} {}×{}: cols must be whole groups of a multiple of 8", self.rows, self.cols));
        }
        if s == 0 || !s.is_multiple_of(8) || !self.cols.is_multiple_of(s) || !(s.is_multiple_of(g) || g.is_multiple_of(s)) || s > MAX_K_TILE {
            return bad(format!("segment of {s} columns must be whole groups of {g} or divide one, at most {MAX_K_TILE}"));
        }
        let shared = self.scales != BcqScales::Row;
        if shared && (g != s || self.terms != 0 || (self.scales == BcqScales::Lat && !self.rows.is_multiple_of(8 * BLOCK_ROWS))) {
            return bad(format!("shared-scale ({}) {}×{}: one group per segment, no terms, and lat rows a multiple of {}", self.scales.name(), self.rows, self.cols, 8 * BLOCK_ROWS));
        }
        if self.weight_bytes() > isize::MAX as usize / 2 || self.seg_block_bytes() > 1 << 20 {
            return bad(format!("{}×{} is too large for one kernel", self.rows, self.cols));
        }
        Ok(())
    }
}

/// `α` as exactly `n` powers of two (exponents), if it is a sum of at most
/// `n` (splitting the smallest term `2^e = 2^(e−1) + 2^(e−1)` until there
/// are `n`); `None` for `α ≤ 0` or more than `n` terms.
fn pot_terms(a: f32, n: u8) -> Option<Vec<i32>> {
    if a <= 0.0 || !a.is_finite() {
        return None;
    }
    let bits = a.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    let mant = bits & 0x7f_ffff;
    let mut t: Vec<i32> = std::iter::once(e).chain((0..23).rev().filter(|b| mant >> b & 1 == 1).map(|b| e - (23 - b))).collect();
    if t.len() > n as usize {
        return None;
    }
    while t.len() < n as usize {
        let last = t.pop()?;
        t.extend([last - 1, last - 1]);
    }
    Some(t)
}

/// `#bcq` weights packed for a [`ShiftAddKernel`].
#[derive(Clone, Debug)]
pub struct ShiftAddWeights {
    spec: ShiftAddSpec,
    bytes: Vec<u8>,
    /// Shared-scale layouts: the `α` table (`cols · bits`, set-major); empty otherwise.
    alphas: Vec<f32>,
    /// Unique per packing (clones share it: same contents), the key of
    /// the `α`-scaled tables cached in [`BcqTables`].
    id: u64,
}

/// The next [`ShiftAddWeights::id`].
static NEXT_WEIGHTS_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl ShiftAddWeights {
    pub(super) fn new(spec: ShiftAddSpec, bytes: Vec<u8>, alphas: Vec<f32>) -> ShiftAddWeights {
        ShiftAddWeights { spec, bytes, alphas, id: NEXT_WEIGHTS_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed) }
    }

    /// Packs a `#bcq` weight `[rows, cols]` stored as `bytes`, with K
    /// segments of at most `k_tile` columns ([`DEFAULT_K_TILE`], or
    /// `kern.tile`'s `k`; clamped to 8..=[`MAX_K_TILE`]). APoT `α`s (`pot`) of at most [`MAX_TERMS`] terms
    /// become exponent words, any others f32 multipliers.
    pub fn pack(p: BcqParams, bytes: &[u8], rows: usize, cols: usize, k_tile: usize) -> Result<ShiftAddWeights, JitError> {
        if p.scales() != BcqScales::Row {
            return pack_shared(p, bytes, rows, cols, k_tile);
        }
        let (g, bb, b) = (p.row_block_elems(), p.block_bytes(), p.bits as usize);
        if g == 0 || !g.is_multiple_of(8) || cols == 0 || !cols.is_multiple_of(g) {
            return Err(JitError::InvalidParams(format!("#bcq<bits = {}, group = {g}> {rows}×{cols}: cols must be whole groups of a multiple of 8", p.bits)));
        }
        let k_tile = k_tile.clamp(8, MAX_K_TILE);
        let ngroups = cols / g;
        let want = rows.checked_mul(ngroups).and_then(|n| n.checked_mul(bb));
        if want != Some(bytes.len()) {
            return Err(JitError::Length(format!("#bcq {rows}×{cols}: {} weight bytes, want {want:?}", bytes.len())));
        }
        let blk = |r: usize, gi: usize| &bytes[(r * ngroups + gi) * bb..][..bb];
        // The fewest terms that cover every α, or multiplies.
        let mut terms = if p.pot { 1u8 } else { 0 };
        'scan: for r in 0..rows {
            for gi in 0..ngroups {
                for a in p.alphas(blk(r, gi)) {
                    while terms > 0 && a > 0.0 && pot_terms(a, terms).is_none() {
                        terms += 1;
                        if terms > MAX_TERMS {
                            terms = 0;
                            break 'scan;
                        }
                    }
                }
            }
        }
        let seg_cols = ShiftAddSpec::seg_cols_for(g, cols, k_tile);
        let spec = ShiftAddSpec { rows, cols, bits: p.bits, group: g, terms, seg_cols, scales: BcqScales::Row };
        spec.validate()?;
        let cpg = spec.cpg();
        let mut out = Vec::with_capacity(spec.weight_bytes());
        for seg in 0..spec.segments() {
            for rb in 0..spec.blocks() {
                for sl in 0..spec.groups_per_seg() {
                    let c0 = seg * seg_cols + sl * cpg;
                    let (gi, in_g) = (c0 / g, c0 % g);
                    let row = |lane: usize| Some(rb * BLOCK_ROWS + lane).filter(|&r| r < rows);
                    for i in 0..b {
                        for lane in 0..BLOCK_ROWS {
                            let a = row(lane).map_or(0.0, |r| p.alphas(blk(r, gi))[i]);
                            let word = if terms == 0 {
                                a.to_bits()
                            } else {
                                pot_terms(a, terms).map_or(0, |t| t.iter().enumerate().fold(0u32, |w, (k, &e)| w | ((e + EXP_BIAS) as u32) << (8 * k)))
                            };
                            out.extend_from_slice(&word.to_le_bytes());
                        }
                    }
                    for i in 0..b {
                        for lane in 0..BLOCK_ROWS {
                            match row(lane) {
                                Some(r) => out.extend_from_slice(&p.plane(blk(r, gi), i)[in_g / 8..(in_g + cpg) / 8]),
                                None => out.resize(out.len() + cpg / 8, 0),
                            }
                        }
                    }
                }
            }
        }
        debug_assert_eq!(out.len(), spec.weight_bytes());
        Ok(ShiftAddWeights::new(spec, out, Vec::new()))
    }

    /// The kernel parameters these weights need.
    pub fn spec(&self) -> ShiftAddSpec {
        self.spec
    }

    /// The packed bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Kernel ABI: `(w, tables, y, block_begin, block_end)` for one segment.
const SA_PARAMS: usize = 5;
type SaFn = unsafe extern "C" fn(*const u8, *const i32, *mut f32, u64, u64);

/// A compiled shift-add GEMV for one [`ShiftAddSpec`].
#[derive(Debug)]
pub struct ShiftAddKernel {
    spec: ShiftAddSpec,
    f: CompiledFn,
}

impl ShiftAddKernel {
    /// Compiles the kernel.
    pub fn new(session: &JitSession, spec: ShiftAddSpec) -> Result<ShiftAddKernel, JitError> {
        spec.validate()?;
        let caps = session.caps();
        let f = session.compile("shiftadd_gemv", SA_PARAMS, |b, args| build_shiftadd(b, args, &spec, caps))?;
        Ok(ShiftAddKernel { spec, f })
    }

    /// Packs and compiles in one go (benchmarks and tests).
    pub fn for_weight(session: &JitSession, p: BcqParams, bytes: &[u8], rows: usize, cols: usize) -> Result<(Arc<ShiftAddKernel>, ShiftAddWeights), JitError> {
        let w = ShiftAddWeights::pack(p, bytes, rows, cols, DEFAULT_K_TILE)?;
        Ok((Arc::new(ShiftAddKernel::new(session, w.spec())?), w))
    }

    /// The parameters.
    pub fn spec(&self) -> ShiftAddSpec {
        self.spec
    }

    /// The compiled function (VCode, machine code, compile time).
    pub fn compiled(&self) -> &CompiledFn {
        &self.f
    }

    /// `y = W·x`: builds the tables, then runs on `threads` workers.
    pub fn run(&self, w: &ShiftAddWeights, x: &[f32], y: &mut [f32], threads: usize) -> Result<(), JitError> {
        let t = BcqTables::build(x, self.spec.group)?;
        let ts = std::slice::from_ref(&t);
        self.check(w, ts, y.len())?;
        let yp = SendPtr(y.as_mut_ptr());
        // SAFETY: `check` passed; workers get disjoint block ranges.
        super::split_ranges(self.spec.blocks(), threads, |b0, b1| unsafe { self.run_blocks(w, ts, { yp }.0, b0, b1) });
        Ok(())
    }

    /// Checks `w`, the tables of every activation row and an output of
    /// `y_len` floats (`tables.len() × rows`), and that the code can run.
    pub fn check(&self, w: &ShiftAddWeights, tables: &[BcqTables], y_len: usize) -> Result<(), JitError> {
        let s = self.spec;
        if w.spec != s {
            return Err(JitError::InvalidParams(format!("weights packed for {:?}, kernel is {s:?}", w.spec)));
        }
        let bad_t = tables.iter().any(|t| t.tables.len() != s.cols * 32 || t.group != s.group || t.x.len() != s.cols);
        if bad_t || w.bytes.len() != s.weight_bytes() || y_len != tables.len() * s.rows {
            return Err(JitError::Length(format!("shift-add {}×{}: {} weight bytes (want {}), {} activation rows, {y_len} outputs", s.rows, s.cols, w.bytes.len(), s.weight_bytes(), tables.len())));
        }
        self.f.executable()
    }

    /// Computes row blocks `b0..b1` of `y[i·rows ..][..rows] = W·x_i` for
    /// every activation row `i` (tables `tables[i]`): segment by segment,
    /// then `× λ`. A partial last block runs into a 4-float scratch.
    ///
    /// # Safety
    /// [`ShiftAddKernel::check`] passed for `w`, `tables` and
    /// `tables.len() · rows` floats at `y`; `b0 ≤ b1 ≤ blocks()`; nothing
    /// else accesses the rows of `y` in the range concurrently.
    pub unsafe fn run_blocks(&self, w: &ShiftAddWeights, tables: &[BcqTables], y: *mut f32, b0: usize, b1: usize) {
        let s = self.spec;
        let f: SaFn = unsafe { std::mem::transmute(self.f.ptr()) };
        let full = b1.min(s.rows / BLOCK_ROWS);
        let seg_w = s.blocks() * s.seg_block_bytes();
        // Row layout: `cols/8` tables; shared: per scale block, per segment, `bits` planes of them.
        let shared = s.scales != BcqScales::Row;
        let seg_t = if shared { ScaledTables::segment_entries(&s) } else { s.seg_cols * 32 };
        // Kernel row blocks per scale block (lat: rows are a multiple of 32).
        let per_sb = if shared { s.blocks() / scale_blocks(s.scales) } else { usize::MAX };
        for (i, t) in tables.iter().enumerate() {
            // SAFETY (all below): buffer lengths were checked against the
            // spec the kernel was compiled for; segment offsets stay inside
            // them; the kernel touches rows of blocks [b0, b1) only.
            let yi = unsafe { y.add(i * s.rows) };
            let mut scratch = [0f32; BLOCK_ROWS];
            let sc = if shared { Some(t.scaled_for(w)) } else { None };
            let (tab, lambda) = sc.as_ref().map_or((t.tables.as_ptr(), t.lambda), |sc| (sc.tables.as_ptr(), sc.lambda));
            let run = |yb: *mut f32, c0: usize, c1: usize| {
                let mut lo = c0;
                while lo < c1 {
                    // One scale block's row blocks at a time (the whole range for `Row`).
                    let sb = lo / per_sb;
                    let hi = c1.min(sb.saturating_add(1).saturating_mul(per_sb));
                    for seg in 0..s.segments() {
                        let tp = unsafe { tab.add((sb * s.segments() + seg) * seg_t) };
                        unsafe { f(w.bytes.as_ptr().add(seg * seg_w), tp, yb, lo as u64, hi as u64) };
                    }
                    lo = hi;
                }
            };
            if b0 < full {
                let rows = unsafe { std::slice::from_raw_parts_mut(yi.add(b0 * BLOCK_ROWS), (full - b0) * BLOCK_ROWS) };
                rows.fill(0.0);
                run(yi, b0, full);
                rows.iter_mut().for_each(|v| *v *= lambda);
            }
            if b1 > full {
                // The kernel addresses `yb + 16·block`: point block `full` at the scratch.
                let yb = scratch.as_mut_ptr().wrapping_sub(full * BLOCK_ROWS);
                run(yb, full, full + 1);
                for (r, v) in scratch.iter().enumerate().take(s.rows - full * BLOCK_ROWS) {
                    unsafe { *yi.add(full * BLOCK_ROWS + r) = v * lambda };
                }
            }
        }
    }
}

/// Emits the kernel body (see the module docs for the layout).
fn build_shiftadd(b: &mut FunctionBuilder<'_>, args: &[Value], s: &ShiftAddSpec, caps: super::jit::IsaCaps) -> Result<(), JitError> {
    s.validate()?;
    if args.len() != SA_PARAMS {
        return Err(JitError::InvalidParams(format!("shift-add ABI has {SA_PARAMS} parameters, got {}", args.len())));
    }
    let (w, tables, y, b0, b1) = (args[0], args[1], args[2], args[3], args[4]);
    // No f16 scales here: Cg's f16 table argument is a placeholder.
    let mut cg = Cg { b, caps, f16_table: args[0] };
    let (bits, cpg) = (s.bits as usize, s.cpg());
    let nch = cpg / 8;
    let zero_i = cg.vconst_ty(I32X4, [0; 16]);
    let m_ff = cg.vconst_ty(I32X4, u32x4_bytes([0xff; 4]));
    let unbias = cg.vconst_ty(I32X4, u32x4_bytes([(-(EXP_BIAS << 23)) as u32; 4]));
    // Tables and weights are read-only for the call; y is read and written.
    let tflags = MemFlagsData::new().with_notrap().with_readonly().with_can_move();
    let yflags = MemFlagsData::new().with_notrap();

    let (blocks, rb) = cg.counted_loop(b0, b1);
    let woff = cg.b.ins().imul_imm_s(rb, s.seg_block_bytes() as i64);
    let wp = cg.b.ins().iadd(w, woff);
    let yoff = cg.b.ins().imul_imm_s(rb, (BLOCK_ROWS * 4) as i64);
    let yp = cg.b.ins().iadd(y, yoff);
    let mut out = cg.b.ins().load(F32X4, yflags, yp, 0);
    let shared = s.scales != BcqScales::Row;
    let mut off = 0usize;
    for sl in 0..s.groups_per_seg() {
        let words = off;
        if !shared {
            off += 16 * bits;
        }
        for i in 0..bits {
            // Four rows' lookup sums, interleaved so the chains are independent.
            let fz = cg.b.ins().iconst(I32, 0);
            let mut acc = [fz; BLOCK_ROWS];
            let plane = |lane: usize| off + (i * BLOCK_ROWS + lane) * nch;
            let mut c = 0;
            while c < nch {
                let n = (nch - c).min(8);
                for (lane, a) in acc.iter_mut().enumerate() {
                    let at = (plane(lane) + c) as i32;
                    // 8 sign bytes as one i64 (bytes of BYTE_LOADS are loaded alone).
                    let word = if n == 8 { Some(cg.ld(I64, wp, at)) } else { None };
                    for j in 0..n {
                        let idx = match word {
                            Some(v) if BYTE_LOADS >> j & 1 == 0 => {
                                let sh = if j == 0 { v } else { cg.b.ins().ushr_imm_u(v, 8 * j as i64) };
                                let lo = cg.b.ins().ireduce(I8, sh);
                                cg.b.ins().uextend(I64, lo)
                            }
                            _ => cg.b.ins().uload8(I64, tflags, wp, at + j as i32),
                        };
                        let sc = cg.b.ins().ishl_imm_u(idx, 2);
                        let addr = cg.b.ins().iadd(tables, sc);
                        // Shared scales: plane i has tables of its own.
                        let chunk = if shared { i * nch + c + j } else { sl * nch + c + j };
                        let v = cg.b.ins().load(I32, tflags, addr, (chunk * 1024) as i32);
                        *a = if c + j + 1 == nch {
                            // The last add of a chain has two results, which
                            // makes it a root of Cranelift's use counting: the
                            // sum's several uses below then do not stop the
                            // table loads from folding into `add r32, [mem]`.
                            cg.b.ins().uadd_overflow(*a, v).0
                        } else {
                            cg.b.ins().iadd(*a, v)
                        };
                    }
                }
                c += n;
            }
            let mut accv = cg.b.ins().scalar_to_vector(I32X4, acc[0]);
            for (lane, &a) in acc.iter().enumerate().skip(1) {
                accv = cg.b.ins().insertlane(accv, a, lane as u8);
            }
            let f = cg.b.ins().fcvt_from_sint(F32X4, accv);
            if shared {
                out = cg.b.ins().fadd(out, f);
                continue;
            }
            let word = cg.ld(I32X4, wp, (words + 16 * i) as i32);
            if s.terms == 0 {
                let a = cg.cast(F32X4, word);
                out = cg.fma(f, a, out);
                continue;
            }
            // α·s = Σ_t bits(s) + (e_t << 23); masked where s = 0 or α = 0.
            let fb = cg.cast(I32X4, f);
            let base = cg.b.ins().iadd(fb, unbias);
            let mut sum: Option<Value> = None;
            for t in 0..s.terms as usize {
                let e = if t == 0 { word } else { cg.b.ins().ushr_imm_u(word, 8 * t as i64) };
                let e = if t + 1 == MAX_TERMS as usize { e } else { cg.b.ins().band(e, m_ff) };
                let d = cg.b.ins().ishl_imm_u(e, 23);
                let v = cg.b.ins().iadd(base, d);
                let v = cg.cast(F32X4, v);
                sum = Some(match sum {
                    Some(acc) => cg.b.ins().fadd(acc, v),
                    None => v,
                });
            }
            let sum = cg.cast(I32X4, sum.expect("terms ≥ 1"));
            let z0 = cg.b.ins().icmp(IntCC::Equal, accv, zero_i);
            let z1 = cg.b.ins().icmp(IntCC::Equal, word, zero_i);
            let drop = cg.b.ins().bor(z0, z1);
            let kept = cg.b.ins().band_not(sum, drop);
            let kept = cg.cast(F32X4, kept);
            out = cg.b.ins().fadd(out, kept);
        }
        off += bits * BLOCK_ROWS * nch;
    }
    debug_assert_eq!(off, s.seg_block_bytes());
    cg.b.ins().store(yflags, out, yp, 0);
    blocks.close(&mut cg, rb);
    cg.b.ins().return_(&[]);
    Ok(())
}

/// Four little-endian u32 lanes as vector-constant bytes.
fn u32x4_bytes(w: [u32; 4]) -> [u8; 16] {
    let mut b = [0u8; 16];
    for (i, v) in w.iter().enumerate() {
        b[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_tables_are_the_signed_sums() {
        let x: Vec<f32> = (0..16).map(|i| i as f32 * 0.5 - 3.0).collect();
        let t = BcqTables::build(&x, 16).unwrap();
        for byte in 0..256usize {
            let want: f32 = (0..8).map(|j| if byte >> j & 1 == 1 { x[j] } else { -x[j] }).sum();
            assert!((t.tables[byte] as f32 * t.lambda - want).abs() <= 8.0 * t.lambda, "entry {byte}");
        }
        assert!(BcqTables::build(&x, 12).is_err());
        assert!(BcqTables::build(&[f32::NAN; 8], 8).is_err());
        assert_eq!(BcqTables::build(&[0.0; 8], 8).unwrap().tables, vec![0; 256]);
    }

    #[test]
    fn pot_terms_split_to_exactly_n() {
        assert_eq!(pot_terms(0.6875, 3), Some(vec![-1, -3, -4]));
        assert_eq!(pot_terms(0.5, 3), Some(vec![-2, -3, -3]));
        assert_eq!(pot_terms(0.6875, 2), None);
        assert_eq!(pot_terms(0.0, 2), None);
        for (a, n) in [(0.75f32, 4u8), (3.0, 2), (2f32.powi(-24), 3)] {
            let t = pot_terms(a, n).unwrap();
            assert_eq!(t.len(), n as usize);
            assert_eq!(t.iter().map(|&e| 2f64.powi(e)).sum::<f64>(), a as f64);
        }
    }

    #[test]
    fn segments_are_whole_groups_or_slices() {
        assert_eq!(ShiftAddSpec::seg_cols_for(64, 576, 128), 64);
        assert_eq!(ShiftAddSpec::seg_cols_for(32, 256, 128), 128);
        assert_eq!(ShiftAddSpec::seg_cols_for(576, 576, 128), 96);
        assert_eq!(ShiftAddSpec::seg_cols_for(8, 8, 128), 8);
    }
}
