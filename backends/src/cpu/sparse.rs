//! N:M sparse GEMV/GEMM (`y = x·Wᵀ`, `W` an `#nm<n = N, m = M>` weight
//! `[rows, cols]`, `x` f32 `[rows_x, cols]`) as a Cranelift JIT kernel that
//! reads only the kept weights and their indices, never a dense expansion.
//!
//! **Kernel groups.** The codec's groups (`M` consecutive input columns of
//! one output row, `N` kept) are regrouped for the kernel: a *kernel group*
//! covers `Mk` columns of x and keeps `Nk` slots per row, and its x columns
//! occupy `Xk` floats (a whole number of 16-byte vectors, at most 4):
//!
//! | codec `M`              | `Mk` | `Nk`        | `Xk`            |
//! |------------------------|------|-------------|-----------------|
//! | 1 or 2, `cols % 4 = 0` | 4    | `N·4/M`     | 4               |
//! | multiple of 4          | `M`  | `N`         | `M`             |
//! | any other              | `M`  | `N`         | `4·⌈M/4⌉`       |
//!
//! In the last case the wrapper copies x into a padded buffer (each group's
//! `M` values at a stride of `Xk`, zeros between), which costs `rows_x·Xk·G`
//! floats per call, nothing per weight. An index in a kernel group has
//! `b = bits(Xk − 1)` bits: 2 for `Xk = 4`, 3 for 8, 4 for 12 and 16.
//!
//! **Layout** ([`SparseWeights`], packed once, offline). Output rows are cut
//! into row blocks of 4 (the last one padded with zero-valued rows). A
//! *unit* is one slot of one kernel group for the 4 rows of a block: 4 f32
//! values (one per row, the row's `s`-th kept weight of the group, in
//! ascending index order) and 4 `b`-bit in-group indices (`4b` bits, row `r`
//! at bits `b·r`, LSB first). Units are stored in the order (row block,
//! kernel group, slot), in *chunks* of the `U·Nk` units of one loop
//! iteration (`U` kernel groups), each chunk being its metadata then its
//! values, in one 16-byte aligned byte stream:
//!
//! ```text
//! row block = [chunk]* [remainder chunk]     (the last G mod U groups)
//! chunk     = meta: unit u of the chunk at bits 4b·u, zero-padded to 16 bytes
//!             values: [unit][row in block] f32, 16 bytes per unit
//! ```
//!
//! `U·Nk` is chosen so that a full chunk's metadata is a whole number of
//! 16-byte lines (16 units for `b = 2` and 4, 32 for `b = 3`): there is no
//! padding except in the remainder chunk, and every value load is aligned.
//! One stream matters: with the metadata in a separate array, its rare line
//! misses (1 per 16 value lines) sat on the dependency path of every unit
//! and cost a quarter of the DRAM throughput. The streamed bytes per kept
//! weight are `4 + b/8` (plus the remainder chunk's padding): 2:4 and 1:4
//! are 4.25 bytes per kept weight (the codec: 4.5 and 5, its index bytes are
//! padded per group), 4:8 4.375 (codec 4.5), 8:16 4.5 (codec 4.5). Dense f32
//! is `4·M/N` bytes per kept weight: 8 for 2:4 and 4:8, 16 for 1:4.
//!
//! **Gathering x without a gather.** Each unit needs the vector
//! `[x[c₀], x[c₁], x[c₂], x[c₃]]`, where every row picks one of the `Xk`
//! floats of the kernel group's x. One `x86_pshufb` selects from one 16-byte
//! register with a byte mask; the mask of a unit comes from a small constant
//! table indexed by the unit's index bits (built once per kernel, L1-resident):
//!
//! - `Xk = 4`: the 8 index bits of a unit address a 256 × 16-byte table
//!   (4 KiB) whose entry holds, for row lane `r`, the bytes `4·c_r + 0..3`.
//!   Per unit: a rotate (`rorx`) and an and on the metadata word, one
//!   `vpshufb` with the table entry as memory operand, one `vmulps` with the
//!   values as memory operand and one `vaddps`.
//! - `Xk ≥ 8`: the index bits of rows 0–1 and rows 2–3 (`2b` bits each) look
//!   up two tables of `2^(2b)` entries (2 KiB for `b = 3`, 8 KiB for `b = 4`)
//!   that are OR-ed into one mask. `pshufb` only reads the low nibble of a
//!   mask byte, or zeroes it when bit 7 is set. `Xk = 8`: the mask byte of an
//!   element `c ≥ 4` is `4·(c − 4) + j` with bit 7 set, so `pshufb(x_lo, m) |
//!   pshufb(x_hi, m ^ 0x80)` is the selection (2 `pshufb`, 1 xor, 1 or).
//!   `Xk = 12, 16`: the mask byte is `4·c + j` (< 64), which selects element
//!   `c mod 4` from each x vector; bits 4 and 5 (the vector number `c / 4`),
//!   shifted left by 3 (resp. 2) with one 16-bit shift, become the byte sign
//!   bits `pblendvb` (`blendv`) tests: 4 `pshufb`, 2 shifts, 3 blends.
//!
//! All the selection work runs on the vector pipes, so the tables (load
//! ports, scalar ALUs) are cheaper than computing masks with vector ops: a
//! variant that expanded 4-bit fields with `pshufb` ran 25–35% slower.
//!
//! Metadata is read as unaligned u64 words (one per up to 64 bits of fields;
//! a word may run into the chunk's values, never past them) and every field
//! is extracted with constant rotates: within a chunk every bit offset is a
//! compile-time constant.
//!
//! **Row kernels** (decode, and the last `rows_x mod 4` rows). Specialised
//! on (`N`, `M`, rows, cols, `T` = 1–3 activation rows): for each row block
//! in `[rb_begin, rb_end)`, the loop over chunks loads each kernel group's x
//! vectors of the `T` activation rows, and per unit computes the mask once
//! and for each activation row one selection, one multiply and one add into
//! f32x4 accumulators (4 per activation row at `T = 1`, each taking a
//! contiguous quarter of the chunk's units, to hide the add latency). The
//! loop is tested at the top, so each accumulator result has a single use and
//! Cranelift folds the value and table loads into `vmulps`/`vpshufb`. (The
//! multiply and add are not fused: Cranelift elaborates an `fma` chain from
//! its last addend backwards, which keeps every pending product live and
//! spills; `fadd(acc, fmul(..))` elaborates in unit order.) The accumulators
//! hold 4 output rows; they are summed and stored to `y[t·rows + row]`
//! (lanes of a padded last block are dropped).
//!
//! **Transposed GEMM** (prefill, 4 activation rows per weight pass). The
//! per-row gather costs 1 (`Xk = 4`) to 9 (`Xk = 16`) vector ops per unit
//! and activation row, more than a dense FMA. With 4 activation rows the
//! wrapper transposes x per tile (`xt[g·Xk + c]` = the 4 rows' `x` at column
//! `c` of group `g`, 16 bytes), and every kept weight costs the same whatever
//! `M`: its value broadcast (`vbroadcastss` from the stream), its index field
//! extracted pre-scaled by 16 (`rorx`, `and`), one `vmulps` with `xt` at that
//! index as memory operand and one `vaddps` into its row's accumulator (a
//! vector over the 4 activation rows; two per row for the add latency). At
//! the end of a row block the 4 accumulators are transposed (8 shuffles) into
//! the 4 rows of y.
//!
//! Every weight byte is read once per tile of activation rows. Threads take
//! disjoint row-block ranges (rayon in [`SparseKernel::run`], the runtime's
//! [`Pool`] in [`SparseKernel::run_pool`]).
//!
//! **Performance** (`cargo bench -p flexc-backends --bench sparse`, ratios
//! against the same weights decoded to dense f32 on the f32 `GemvKernel`,
//! one run, 1 thread, from DRAM; see `kernel_bench`). Decode: 2:4 1.6–1.75×,
//! 4:8 1.4–1.55×, 1:4 3.2–3.4×, 8:16 1.06× (its 4-vector gather is
//! compute-bound at ~18 GB/s). 8 activation rows: 1.5–1.9× for 2:4, 4:8 and
//! 8:16, 3.1–3.7× for 1:4. A pattern with `n = m` stores no zeros, so the
//! dense kernels are the better choice for it.

use super::SendPtr;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, F32X4, I16X8, I64, I8X16};
use cranelift_codegen::ir::{ConstantData, InstBuilder, MemFlagsData, Value};
use cranelift_frontend::{FunctionBuilder, Variable};
use std::time::Duration;

use super::codegen::{Cg, MAX_TILE};
use super::jit::{CompiledFn, IsaCaps, JitError, JitSession};
use super::runtime::Pool;
use flexc_ir::quant::{nm, Nm};

/// Output rows per row block (f32 lanes of one accumulator).
pub const BLOCK_ROWS: usize = 4;

/// The tile [`SparseKernel::new`] compiles: the row kernels for 1–3 rows and
/// the transposed 4-row GEMM.
pub const DEFAULT_TILE: usize = 4;

/// Kernel ABI: `(data, x, y, rb_begin, rb_end, tables)`.
const SPARSE_PARAMS: usize = 6;
type SparseFn = unsafe extern "C" fn(*const u8, *const f32, *mut f32, u64, u64, *const u8);

/// Units per loop iteration at least (amortises the loop overhead).
const MIN_CHUNK_UNITS: usize = 16;

/// What a sparse weight (and the kernel for it) is: `#nm<n, m>` `[rows, cols]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SparseSpec {
    /// The pattern: `n` kept of every `m` input columns (valid by construction).
    pub nm: Nm,
    /// Output rows (`n_out`).
    pub rows: usize,
    /// Input columns (`k`), a multiple of `m`.
    pub cols: usize,
}

/// The kernel geometry derived from a [`SparseSpec`] (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SparseLayout {
    /// `Mk`: x columns per kernel group.
    pub group_cols: usize,
    /// `Nk`: kept slots per row per kernel group (= units per group and row block).
    pub slots: usize,
    /// `Xk`: floats of (padded) x per kernel group, 4, 8, 12 or 16.
    pub x_group: usize,
    /// `b`: bits per in-group index in the metadata.
    pub index_bits: u32,
    /// `G`: kernel groups per row.
    pub groups: usize,
    /// Row blocks of [`BLOCK_ROWS`] rows.
    pub row_blocks: usize,
    /// `U`: kernel groups per loop iteration (one chunk).
    pub unroll: usize,
}

impl SparseLayout {
    /// Whether x is copied into a padded buffer (`Xk > Mk`).
    pub fn pads_x(&self) -> bool {
        self.x_group != self.group_cols
    }
    /// Units per row block.
    pub fn units(&self) -> usize {
        self.groups * self.slots
    }
    /// Units per full chunk.
    pub fn chunk_units(&self) -> usize {
        self.unroll * self.slots
    }
    /// Full chunks per row block.
    pub fn chunks(&self) -> usize {
        self.groups / self.unroll
    }
    /// Metadata bytes of a chunk of `units` units (padded to 16).
    pub fn meta_bytes(&self, units: usize) -> usize {
        (units * 4 * self.index_bits as usize).div_ceil(8).div_ceil(16) * 16
    }
    /// Bytes of a chunk of `units` units.
    pub fn chunk_bytes(&self, units: usize) -> usize {
        if units == 0 { 0 } else { self.meta_bytes(units) + 16 * units }
    }
    /// Bytes of one row block (a multiple of 16).
    pub fn block_bytes(&self) -> usize {
        self.chunks() * self.chunk_bytes(self.chunk_units()) + self.chunk_bytes(self.units() - self.chunks() * self.chunk_units())
    }
    /// Floats per (padded) activation row the kernel reads.
    pub fn x_stride(&self) -> usize {
        self.groups * self.x_group
    }
    /// Where unit `u` of a row block lives: (chunk start, meta bytes of the
    /// chunk, index of the unit in the chunk), in bytes from the block start.
    fn place(&self, u: usize) -> (usize, usize, usize) {
        let cu = self.chunk_units();
        let c = (u / cu).min(self.chunks());
        let units = if c < self.chunks() { cu } else { self.units() - c * cu };
        (c * self.chunk_bytes(cu), self.meta_bytes(units), u - c * cu)
    }
}

impl SparseSpec {
    /// Checks the parameters before anything is packed or compiled.
    pub fn validate(&self) -> Result<(), JitError> {
        let bad = |m: String| Err(JitError::InvalidParams(m));
        let m = self.nm.m();
        if self.rows == 0 || self.cols == 0 || !self.cols.is_multiple_of(m) {
            return bad(format!("shape {}×{}: need positive sizes and cols a multiple of m = {m}", self.rows, self.cols));
        }
        // Immediates are i32: y offsets t·rows·4 and x offsets t·stride·4.
        if self.rows > 1 << 24 || self.cols > 1 << 24 || self.rows.saturating_mul(self.cols) > 1 << 34 {
            return bad(format!("shape {}×{} is too large for one kernel", self.rows, self.cols));
        }
        Ok(())
    }

    /// The kernel geometry (module docs).
    pub fn layout(&self) -> Result<SparseLayout, JitError> {
        self.validate()?;
        let (n, m) = (self.nm.n(), self.nm.m());
        let (group_cols, slots, x_group) = if m <= 2 && self.cols.is_multiple_of(4) {
            (4, n * 4 / m, 4)
        } else {
            (m, n, m.div_ceil(4) * 4)
        };
        let index_bits = match x_group {
            4 => 2,
            8 => 3,
            _ => 4,
        };
        // At least MIN_CHUNK_UNITS units, and metadata of whole 16-byte lines.
        let mut unroll = MIN_CHUNK_UNITS.div_ceil(slots);
        while !(unroll * slots * index_bits as usize).is_multiple_of(32) {
            unroll += 1;
        }
        Ok(SparseLayout {
            group_cols,
            slots,
            x_group,
            index_bits,
            groups: self.cols / group_cols,
            row_blocks: self.rows.div_ceil(BLOCK_ROWS),
            unroll,
        })
    }

    /// Bytes of the weight in the `#nm` codec.
    pub fn codec_bytes(&self) -> usize {
        self.rows * (self.cols / self.nm.m()) * nm::block_bytes(self.nm)
    }
}

/// `#nm` weights repacked for a [`SparseKernel`] (layout in the module docs).
#[derive(Clone, Debug)]
pub struct SparseWeights {
    spec: SparseSpec,
    layout: SparseLayout,
    /// The byte stream, 16-byte aligned.
    data: Vec<u128>,
}

impl SparseWeights {
    /// Packs an `#nm<n = n, m = m>` weight `[rows, cols]` in the codec's bytes
    /// (`flexc_ir::quant::nm`). Fails on bad parameters, a wrong byte count,
    /// or indices that are not strictly increasing below `m`.
    pub fn pack(pattern: Nm, bytes: &[u8], rows: usize, cols: usize) -> Result<SparseWeights, JitError> {
        let spec = SparseSpec { nm: pattern, rows, cols };
        let l = spec.layout()?;
        if bytes.len() != spec.codec_bytes() {
            return Err(JitError::Length(format!("#nm {pattern} {rows}×{cols} needs {} bytes, got {}", spec.codec_bytes(), bytes.len())));
        }
        let (nu, mu) = (pattern.n(), pattern.m());
        let bb = nm::block_bytes(pattern);
        let cb = nm::index_bits(mu) as usize;
        let per_kernel_group = l.group_cols / mu; // codec groups per kernel group
        let codec_groups = cols / mu;
        let mut out = vec![0u8; l.row_blocks * l.block_bytes()];
        let b = l.index_bits as usize;
        for r in 0..rows {
            let (rb, lane) = (r / BLOCK_ROWS, r % BLOCK_ROWS);
            for cg in 0..codec_groups {
                let blk = &bytes[(r * codec_groups + cg) * bb..][..bb];
                let (kg, sub) = (cg / per_kernel_group, cg % per_kernel_group);
                let mut prev: Option<usize> = None;
                for k in 0..nu {
                    let idx = (0..cb).map(|bit| usize::from(blk[4 * nu + (k * cb + bit) / 8] >> ((k * cb + bit) % 8) & 1) << bit).sum::<usize>();
                    if idx >= mu || prev.is_some_and(|p| idx <= p) {
                        return Err(JitError::InvalidParams(format!(
                            "#nm {pattern}: row {r}, group {cg}: index {idx} after {prev:?} (need strictly increasing, below {mu})"
                        )));
                    }
                    prev = Some(idx);
                    let (slot, col) = (sub * nu + k, sub * mu + idx);
                    let (chunk, meta, i) = l.place(kg * l.slots + slot);
                    let base = rb * l.block_bytes() + chunk;
                    let v = base + meta + 16 * i + 4 * lane;
                    out[v..v + 4].copy_from_slice(&blk[4 * k..4 * k + 4]);
                    let bitpos = 8 * base + (4 * i + lane) * b;
                    for j in 0..b {
                        out[(bitpos + j) / 8] |= u8::from(col >> j & 1 == 1) << ((bitpos + j) % 8);
                    }
                }
            }
        }
        let data = out.chunks_exact(16).map(|c| u128::from_le_bytes(c.try_into().unwrap_or_default())).collect();
        Ok(SparseWeights { spec, layout: l, data })
    }

    /// The weight's parameters.
    pub fn spec(&self) -> SparseSpec {
        self.spec
    }
    /// The kernel geometry.
    pub fn layout(&self) -> SparseLayout {
        self.layout
    }
    /// The packed byte stream (module docs).
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: u128 has no padding and any bytes are valid u8; the length
        // is the u128 count times 16.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr().cast::<u8>(), self.data.len() * 16) }
    }
    /// Bytes a full pass over the weight streams.
    pub fn streamed_bytes(&self) -> usize {
        self.data.len() * 16
    }

    /// Expands the packed form back to dense `[rows, cols]` f32 (tests and
    /// debugging; the kernel never does this).
    pub fn to_dense(&self) -> Vec<f32> {
        let (s, l, bytes) = (self.spec, self.layout, self.bytes());
        let b = l.index_bits as usize;
        let mut out = vec![0f32; s.rows * s.cols];
        for r in 0..s.rows {
            let (rb, lane) = (r / BLOCK_ROWS, r % BLOCK_ROWS);
            for unit in 0..l.units() {
                let (chunk, meta, i) = l.place(unit);
                let base = rb * l.block_bytes() + chunk;
                let bitpos = 8 * base + (4 * i + lane) * b;
                let idx = (0..b).map(|j| usize::from(bytes[(bitpos + j) / 8] >> ((bitpos + j) % 8) & 1) << j).sum::<usize>();
                let v = base + meta + 16 * i + 4 * lane;
                let col = unit / l.slots * l.group_cols + idx;
                out[r * s.cols + col] += f32::from_le_bytes([bytes[v], bytes[v + 1], bytes[v + 2], bytes[v + 3]]);
            }
        }
        out
    }
}

/// The pshufb mask tables (module docs), 16-byte aligned. `b = 2`: entry
/// `f` holds, for row lane `r`, the bytes `4·c_r + 0..3` with
/// `c_r = (f >> 2r) & 3`. `b ≥ 3`: two tables of `2^(2b)` entries for rows
/// 0–1 and rows 2–3 (zeros in the other rows' bytes, so they OR together);
/// for `Xk = 8` a byte selecting element `c ≥ 4` is `4·(c − 4) + j` with bit
/// 7 set (`pshufb` zeroes it in x's low vector, and selects it in the high
/// vector after flipping bit 7).
fn mask_tables(l: &SparseLayout) -> Vec<u128> {
    let b = l.index_bits as usize;
    let byte = |c: usize, j: usize| -> u8 {
        if l.x_group == 8 { (4 * (c % 4) + j) as u8 | if c >= 4 { 0x80 } else { 0 } } else { (4 * c + j) as u8 }
    };
    let entry = |lanes: &[(usize, usize)]| -> u128 {
        let mut e = [0u8; 16];
        for &(r, c) in lanes {
            for j in 0..4 {
                e[4 * r + j] = byte(c, j);
            }
        }
        u128::from_le_bytes(e)
    };
    let mask = (1usize << b) - 1;
    if b == 2 {
        (0..256usize).map(|f| entry(&(0..4).map(|r| (r, f >> (2 * r) & 3)).collect::<Vec<_>>())).collect()
    } else {
        let half = 1usize << (2 * b);
        let a = (0..half).map(|f| entry(&[(0, f & mask), (1, f >> b & mask)]));
        let bt = (0..half).map(|f| entry(&[(2, f & mask), (3, f >> b & mask)]));
        a.chain(bt).collect()
    }
}

/// A compiled N:M sparse GEMV/GEMM for one [`SparseSpec`], with one function
/// per tile size `1..=tile`.
#[derive(Debug)]
pub struct SparseKernel {
    spec: SparseSpec,
    layout: SparseLayout,
    tile: usize,
    /// Row kernels: `fns[t − 1]` takes `t` activation rows (`t ≤ 3`).
    fns: Vec<CompiledFn>,
    /// The transposed 4-row GEMM (when `tile ≥ 4`).
    gemm: Option<CompiledFn>,
    tables: Vec<u128>,
}

impl SparseKernel {
    /// Compiles the kernel with tile [`DEFAULT_TILE`].
    pub fn new(session: &JitSession, spec: SparseSpec) -> Result<SparseKernel, JitError> {
        Self::with_tile(session, spec, DEFAULT_TILE)
    }

    /// Compiles the kernel reusing each weight unit for up to `tile`
    /// activation rows (`1..=MAX_TILE`; 1 is a pure GEMV). Batches of fewer
    /// than 4 rows run the row kernels (`x86_pshufb` gathers, compiled for
    /// `1..=min(tile, 3)` rows); with `tile ≥ 4` every 4 rows run the
    /// transposed GEMM (module docs), and larger tiles add nothing.
    pub fn with_tile(session: &JitSession, spec: SparseSpec, tile: usize) -> Result<SparseKernel, JitError> {
        if tile == 0 || tile > MAX_TILE {
            return Err(JitError::InvalidParams(format!("tile = {tile} must be in 1..={MAX_TILE}")));
        }
        let layout = spec.layout()?;
        let caps = session.caps();
        let sse41 = session.isa_flags().split(' ').any(|f| f == "has_sse41");
        let compile = |t: usize, transposed: bool| {
            let kind = if transposed { "gemm" } else { "t" };
            let name = format!("sparse_{}of{}_{}x{}_{kind}{t}", spec.nm.n(), spec.nm.m(), spec.rows, spec.cols);
            let g = Gen { l: layout, rows: spec.rows, tile: t, sse41, transposed };
            session.compile(&name, SPARSE_PARAMS, |b, args| g.build(b, args, caps))
        };
        let fns = (1..=tile.min(3)).map(|t| compile(t, false)).collect::<Result<Vec<_>, _>>()?;
        let gemm = if tile >= 4 { Some(compile(4, true)?) } else { None };
        Ok(SparseKernel { spec, layout, tile, fns, gemm, tables: mask_tables(&layout) })
    }

    /// The weight parameters this kernel takes.
    pub fn spec(&self) -> SparseSpec {
        self.spec
    }
    /// The kernel geometry.
    pub fn layout(&self) -> SparseLayout {
        self.layout
    }
    /// Largest tile.
    pub fn tile(&self) -> usize {
        self.tile
    }
    /// The compiled function for `t` activation rows (VCode, machine code):
    /// the row kernels for 1–3, the transposed GEMM for 4.
    pub fn compiled(&self, t: usize) -> Option<&CompiledFn> {
        if t == 4 { self.gemm.as_ref() } else { t.checked_sub(1).and_then(|i| self.fns.get(i)) }
    }
    /// Total JIT compile time of the compiled variants.
    pub fn compile_time(&self) -> Duration {
        self.fns.iter().chain(&self.gemm).map(|f| f.compile_time()).sum()
    }

    /// `y[i·rows + r] = Σ_k W[r, k]·x[i·cols + k]` for the `rows_x` activation
    /// rows of `x`, on `threads` workers (rayon's pool).
    pub fn run(&self, w: &SparseWeights, x: &[f32], rows_x: usize, y: &mut [f32], threads: usize) -> Result<(), JitError> {
        self.dispatch(w, x, rows_x, y, threads, |chunks, job| {
            if chunks == 1 {
                job(0);
                return Ok(());
            }
            rayon::scope(|s| {
                for c in 1..chunks {
                    s.spawn(move |_| job(c));
                }
                job(0);
            });
            Ok(())
        })
    }

    /// As [`SparseKernel::run`], with the row blocks split over the runtime's
    /// worker pool (`threads` at most the pool's size; 2 chunks per thread).
    pub fn run_pool(&self, pool: &Pool, w: &SparseWeights, x: &[f32], rows_x: usize, y: &mut [f32], threads: usize) -> Result<(), JitError> {
        let threads = threads.clamp(1, pool.threads());
        let chunks = if threads == 1 { 1 } else { 2 * threads };
        self.dispatch(w, x, rows_x, y, chunks, |chunks, job| {
            pool.run(chunks, job).map_err(|message| JitError::Panic { name: self.fns[0].name().to_string(), message })
        })
    }

    fn dispatch(
        &self,
        w: &SparseWeights,
        x: &[f32],
        rows_x: usize,
        y: &mut [f32],
        chunks: usize,
        exec: impl FnOnce(usize, &(dyn Fn(usize) + Sync)) -> Result<(), JitError>,
    ) -> Result<(), JitError> {
        let (s, l) = (self.spec, self.layout);
        if w.spec != s {
            return Err(JitError::InvalidParams(format!("weights packed for {:?}, the kernel is {s:?}", w.spec)));
        }
        let lens = [("x", x.len(), rows_x.checked_mul(s.cols)), ("y", y.len(), rows_x.checked_mul(s.rows))];
        if let Some((what, got, want)) = lens.iter().find(|(_, g, w)| Some(*g) != *w) {
            return Err(JitError::Length(format!("{what} has {got} values, {rows_x} rows need {want:?}")));
        }
        if w.streamed_bytes() != l.row_blocks * l.block_bytes() {
            return Err(JitError::Length(format!("packed weights have {} bytes, expected {}", w.streamed_bytes(), l.row_blocks * l.block_bytes())));
        }
        self.fns[0].executable()?;
        if rows_x == 0 {
            return Ok(());
        }
        // Rows [0, g4) run the transposed GEMM, 4 at a time, on x transposed
        // per tile: xt[tile][g·Xk + c][t] (zeros at padded columns).
        let g4 = if self.gemm.is_some() { rows_x / 4 * 4 } else { 0 };
        let (m, xs) = (s.nm.m(), l.x_stride());
        let mut xt = vec![0f32; g4 * xs];
        for (tile_x, dst) in x[..g4 * s.cols].chunks_exact(4 * s.cols).zip(xt.chunks_exact_mut(4 * xs)) {
            for g in 0..l.groups {
                for c in 0..l.group_cols {
                    for t in 0..4 {
                        dst[(g * l.x_group + c) * 4 + t] = tile_x[t * s.cols + g * l.group_cols + c];
                    }
                }
            }
        }
        // The other rows run the row kernels on x (padded to Xk per group).
        let rest = &x[g4 * s.cols..];
        let padded: Vec<f32>;
        let xk: &[f32] = if l.pads_x() {
            let mut p = vec![0f32; (rows_x - g4) * xs];
            for (src, dst) in rest.chunks_exact(s.cols).zip(p.chunks_exact_mut(xs)) {
                for (sg, dg) in src.chunks_exact(m).zip(dst.chunks_exact_mut(l.x_group)) {
                    dg[..m].copy_from_slice(sg);
                }
            }
            padded = p;
            &padded
        } else {
            rest
        };
        let chunks = chunks.clamp(1, l.row_blocks);
        let (dp, xp, xtp, yp, tp) = (
            SendPtr(w.data.as_ptr().cast::<u8>()),
            SendPtr(xk.as_ptr()),
            SendPtr(xt.as_ptr()),
            SendPtr(y.as_mut_ptr()),
            SendPtr(self.tables.as_ptr().cast::<u8>()),
        );
        let (rows, nb) = (s.rows, l.row_blocks);
        let job = move |c: usize| {
            let (dp, xp, xtp, yp, tp) = (dp, xp, xtp, yp, tp);
            let (b0, b1) = (nb * c / chunks, nb * (c + 1) / chunks);
            let call = |f: &CompiledFn, x: *const f32, y: *mut f32| {
                // SAFETY: the weights were packed for this spec (length
                // checked above); `x` points to this call's rows of the
                // padded x (x_stride floats each) or to one 4-row tile of
                // xt; `y` to the matching rows of y (`rows` floats each);
                // [b0, b1) ⊆ [0, row_blocks) and chunks write disjoint row
                // blocks of y; the tables are the ones this layout's code
                // indexes (every index is masked to the table size).
                unsafe {
                    let f: SparseFn = std::mem::transmute(f.ptr());
                    f(dp.0, x, y, b0 as u64, b1 as u64, tp.0);
                }
            };
            if let Some(gemm) = &self.gemm {
                for i in (0..g4).step_by(4) {
                    // SAFETY: i + 4 ≤ g4 ≤ rows_x: inside xt and y.
                    call(gemm, unsafe { xtp.0.add(i * xs) }, unsafe { yp.0.add(i * rows) });
                }
            }
            let mut i = g4;
            while i < rows_x {
                let t = self.fns.len().min(rows_x - i);
                // SAFETY: i + t ≤ rows_x: inside the padded x and y.
                call(&self.fns[t - 1], unsafe { xp.0.add((i - g4) * xs) }, unsafe { yp.0.add(i * rows) });
                i += t;
            }
        };
        exec(chunks, &job)
    }
}

/// The CLIF generator for one tile size.
struct Gen {
    l: SparseLayout,
    rows: usize,
    /// Activation rows per call.
    tile: usize,
    sse41: bool,
    /// The transposed GEMM (`tile` = 4, x as `xt[g·Xk + c][t]`).
    transposed: bool,
}

/// Per-function values shared by the emitters.
struct Emit {
    tables: Value,
    zero8: Value,
    m80: Value,
    /// `[t][a]` f32x4 accumulators.
    accs: Vec<Vec<Variable>>,
}

impl Gen {
    fn build(&self, b: &mut FunctionBuilder<'_>, args: &[Value], caps: IsaCaps) -> Result<(), JitError> {
        if args.len() != SPARSE_PARAMS {
            return Err(JitError::InvalidParams(format!("sparse ABI has {SPARSE_PARAMS} parameters, got {}", args.len())));
        }
        let l = self.l;
        let (data, x, y, rb0, rb1, tables) = (args[0], args[1], args[2], args[3], args[4], args[5]);
        let mut cg = Cg { b, caps, f16_table: tables };
        let zero = cg.vconst_ty(F32X4, [0; 16]);
        let zero8 = cg.vconst([0; 16]);
        let m80 = cg.splat8(0x80);
        // Row kernels: [t][a], `a` taking contiguous runs of units. The
        // transposed GEMM: [row lane][unit parity], each a vector over t.
        let (nsets, nacc) = if self.transposed { (BLOCK_ROWS, 2) } else { (self.tile, BLOCK_ROWS.div_ceil(self.tile)) };
        let xcol = if self.transposed { 16 } else { 4 }; // bytes per x column
        let cu = l.chunk_units();
        let chunk_bytes = l.chunk_bytes(cu);
        let rem = l.groups - l.chunks() * l.unroll;

        let (blocks, rb) = cg.counted_loop(rb0, rb1);
        let off = cg.b.ins().imul_imm_s(rb, l.block_bytes() as i64);
        let p0 = cg.b.ins().iadd(data, off);
        let accs: Vec<Vec<Variable>> = (0..nsets).map(|_| (0..nacc).map(|_| cg.var(F32X4, zero)).collect()).collect();
        let mut e = Emit { tables, zero8, m80, accs };
        let p_var = cg.var(I64, p0);
        let xp_var = cg.var(I64, x);
        if l.chunks() > 0 {
            // Tested at the top: the body's accumulator results then have a
            // single use (the back edge), so Cranelift may fold their loads
            // into `vfmadd`/`vpshufb` (a value passed to both targets of a
            // bottom `brif` makes its whole operand tree multi-use).
            let pend = cg.b.ins().iadd_imm_s(p0, (l.chunks() * chunk_bytes) as i64);
            let (lhead, lbody, after) = (cg.b.create_block(), cg.b.create_block(), cg.b.create_block());
            cg.b.ins().jump(lhead, &[]);
            cg.b.switch_to_block(lhead);
            let p = cg.b.use_var(p_var);
            let c = cg.b.ins().icmp(IntCC::UnsignedLessThan, p, pend);
            cg.b.ins().brif(c, lbody, &[], after, &[]);
            cg.b.switch_to_block(lbody);
            let (p, xp) = (cg.b.use_var(p_var), cg.b.use_var(xp_var));
            self.chunk(&mut cg, &mut e, p, xp, l.unroll);
            let p2 = cg.b.ins().iadd_imm_s(p, chunk_bytes as i64);
            let xp2 = cg.b.ins().iadd_imm_s(xp, (l.unroll * l.x_group * xcol) as i64);
            cg.b.def_var(p_var, p2);
            cg.b.def_var(xp_var, xp2);
            cg.b.ins().jump(lhead, &[]);
            cg.b.switch_to_block(after);
        }
        if rem > 0 {
            let (p, xp) = (cg.b.use_var(p_var), cg.b.use_var(xp_var));
            self.chunk(&mut cg, &mut e, p, xp, rem);
        }

        // Sum the accumulators and store the block's 4 rows per activation row.
        let yoff = cg.b.ins().imul_imm_s(rb, (BLOCK_ROWS * 4) as i64);
        let yb = cg.b.ins().iadd(y, yoff);
        let mut sums: Vec<Value> = e
            .accs
            .iter()
            .map(|a| {
                let mut s = cg.b.use_var(a[0]);
                for v in &a[1..] {
                    let o = cg.b.use_var(*v);
                    s = cg.b.ins().fadd(s, o);
                }
                s
            })
            .collect();
        if self.transposed {
            // sums[r] is row r over t: transpose to y rows over r.
            let s8: Vec<Value> = sums.iter().map(|&v| cg.cast(I8X16, v)).collect();
            let sh = |cg: &mut Cg<'_, '_>, a: Value, b: Value, f: &dyn Fn(usize) -> usize| {
                let lanes: [u8; 16] = std::array::from_fn(|i| (4 * f(i / 4) + i % 4) as u8);
                let imm = cg.b.func.dfg.immediates.push(ConstantData::from(&lanes[..]));
                cg.b.ins().shuffle(a, b, imm)
            };
            // unpack lo/hi of dwords, then move 64-bit halves.
            let u0 = sh(&mut cg, s8[0], s8[1], &|i| [0, 4, 1, 5][i]);
            let u1 = sh(&mut cg, s8[0], s8[1], &|i| [2, 6, 3, 7][i]);
            let u2 = sh(&mut cg, s8[2], s8[3], &|i| [0, 4, 1, 5][i]);
            let u3 = sh(&mut cg, s8[2], s8[3], &|i| [2, 6, 3, 7][i]);
            let lo = |i: usize| [0, 1, 4, 5][i];
            let hi = |i: usize| [2, 3, 6, 7][i];
            let t = [sh(&mut cg, u0, u2, &lo), sh(&mut cg, u0, u2, &hi), sh(&mut cg, u1, u3, &lo), sh(&mut cg, u1, u3, &hi)];
            sums = t.iter().map(|&v| cg.cast(F32X4, v)).collect();
        }
        let store = MemFlagsData::new().with_notrap();
        let next = cg.b.create_block();
        let tail = self.rows % BLOCK_ROWS;
        if tail == 0 {
            for (t, &s) in sums.iter().enumerate() {
                cg.b.ins().store(store, s, yb, (t * self.rows * 4) as i32);
            }
            cg.b.ins().jump(next, &[]);
        } else {
            let (full, part) = (cg.b.create_block(), cg.b.create_block());
            let last = cg.b.ins().icmp_imm_u(IntCC::Equal, rb, (l.row_blocks - 1) as i64);
            cg.b.ins().brif(last, part, &[], full, &[]);
            cg.b.switch_to_block(full);
            for (t, &s) in sums.iter().enumerate() {
                cg.b.ins().store(store, s, yb, (t * self.rows * 4) as i32);
            }
            cg.b.ins().jump(next, &[]);
            cg.b.switch_to_block(part);
            for (t, &s) in sums.iter().enumerate() {
                for lane in 0..tail {
                    let v = cg.b.ins().extractlane(s, lane as u8);
                    cg.b.ins().store(store, v, yb, ((t * self.rows + lane) * 4) as i32);
                }
            }
            cg.b.ins().jump(next, &[]);
        }
        cg.b.switch_to_block(next);
        blocks.close(&mut cg, rb);
        cg.b.ins().return_(&[]);
        Ok(())
    }

    /// Emits one chunk of `ng` kernel groups at `p` (its metadata, then its
    /// values) with the groups' x at `xp`.
    fn chunk(&self, cg: &mut Cg<'_, '_>, e: &mut Emit, p: Value, xp: Value, ng: usize) {
        if self.transposed {
            self.chunk_transposed(cg, e, p, xp, ng);
        } else {
            self.chunk_rows(cg, e, p, xp, ng);
        }
    }

    /// The transposed GEMM's chunk: per kept weight (unit `u`, row lane `r`)
    /// the value broadcast to 4 lanes times the 4 activation rows' x at its
    /// column, `xt[g·Xk + c]` (one 16-byte load at `xp + 16·c`, the index
    /// field extracted pre-scaled by 16), added to row `r`'s accumulator.
    fn chunk_transposed(&self, cg: &mut Cg<'_, '_>, e: &mut Emit, p: Value, xp: Value, ng: usize) {
        let l = self.l;
        let b = l.index_bits as usize;
        let vbase = l.meta_bytes(ng * l.slots);
        let mut word: Option<(usize, Value)> = None;
        let fm = ((1i64 << b) - 1) << 4;
        for g in 0..ng {
            let xoff = (g * l.x_group * 16) as i32;
            for s in 0..l.slots {
                let unit = g * l.slots + s;
                for r in 0..BLOCK_ROWS {
                    let bit = (BLOCK_ROWS * unit + r) * b;
                    let (o, w) = match word {
                        Some((o, w)) if bit + b <= 8 * o + 64 => (o, w),
                        _ => {
                            let o = bit / 8;
                            let w = cg.ld(I64, p, o as i32);
                            word = Some((o, w));
                            (o, w)
                        }
                    };
                    let idx = field(cg, w, (bit - 8 * o) as i64 - 4, fm);
                    let addr = cg.b.ins().iadd(xp, idx);
                    let v = cg.ld(F32, p, (vbase + 16 * unit + 4 * r) as i32);
                    let v = cg.b.ins().splat(F32X4, v);
                    let xv = cg.ld(F32X4, addr, xoff);
                    let prod = cg.b.ins().fmul(v, xv);
                    let acc = e.accs[r][unit % 2];
                    let a = cg.b.use_var(acc);
                    let a = cg.b.ins().fadd(a, prod);
                    cg.b.def_var(acc, a);
                }
            }
        }
    }

    /// The row kernels' chunk (module docs).
    fn chunk_rows(&self, cg: &mut Cg<'_, '_>, e: &mut Emit, p: Value, xp: Value, ng: usize) {
        let l = self.l;
        let units = ng * l.slots;
        let vbase = l.meta_bytes(units);
        let xstride = (l.x_stride() * 4) as i32;
        let nacc = e.accs[0].len();
        let mut meta = MetaReader::default();
        for g in 0..ng {
            let xr: Vec<Vec<Value>> = (0..self.tile)
                .map(|t| (0..l.x_group / 4).map(|q| cg.ld(I8X16, xp, t as i32 * xstride + ((g * l.x_group + 4 * q) * 4) as i32)).collect())
                .collect();
            for s in 0..l.slots {
                let unit = g * l.slots + s;
                let mask = meta.mask(cg, e, l.index_bits, p, unit);
                // Sign-bit masks of the vector number's bits 0 and 1 (mask
                // bits 4 and 5); `mask` stands in where there is no such bit.
                let sel_bits = |cg: &mut Cg<'_, '_>, n: i64| {
                    let w16 = cg.cast(I16X8, mask);
                    let s = cg.b.ins().ishl_imm_u(w16, n);
                    cg.cast(I8X16, s)
                };
                let c4 = if l.x_group >= 12 { sel_bits(cg, 3) } else { mask };
                let c5 = if l.x_group >= 12 { sel_bits(cg, 2) } else { mask };
                // Xk = 8: the high vector's mask is the low one with bit 7 flipped.
                let flip = if l.x_group == 8 { cg.b.ins().bxor(mask, e.m80) } else { mask };
                let vals = cg.ld(F32X4, p, (vbase + unit * 16) as i32);
                // Contiguous runs of units per accumulator: Cranelift elaborates
                // an accumulator's whole chain before the next one, so this keeps
                // only the current group's x vectors live.
                let acc_i = unit * nacc / units;
                for (t, xt) in xr.iter().enumerate() {
                    let px: Vec<Value> = xt.iter().enumerate().map(|(q, &xv)| cg.b.ins().x86_pshufb(xv, if q == 1 && xt.len() == 2 { flip } else { mask })).collect();
                    let sel = match px.len() {
                        1 => px[0],
                        2 => cg.b.ins().bor(px[0], px[1]),
                        3 => {
                            let r01 = self.blend(cg, e, c4, px[1], px[0]);
                            self.blend(cg, e, c5, px[2], r01)
                        }
                        _ => {
                            let r01 = self.blend(cg, e, c4, px[1], px[0]);
                            let r23 = self.blend(cg, e, c4, px[3], px[2]);
                            self.blend(cg, e, c5, r23, r01)
                        }
                    };
                    let sel = cg.cast(F32X4, sel);
                    let acc = e.accs[t][acc_i];
                    let a = cg.b.use_var(acc);
                    // `acc + sel·vals` as fadd(acc, fmul): with the accumulator
                    // as the first operand Cranelift elaborates the chain in
                    // unit order (an `fma` has it last, which elaborates the
                    // chain backwards and keeps every pending product live).
                    let prod = cg.b.ins().fmul(sel, vals);
                    let a = cg.b.ins().fadd(a, prod);
                    cg.b.def_var(acc, a);
                }
            }
        }
    }

    /// Per byte: `if_true` where the sign bit of `c` is set, else `if_false`.
    fn blend(&self, cg: &mut Cg<'_, '_>, e: &Emit, c: Value, if_true: Value, if_false: Value) -> Value {
        if self.sse41 {
            cg.b.ins().blendv(c, if_true, if_false)
        } else {
            let neg = cg.b.ins().icmp(IntCC::SignedLessThan, c, e.zero8);
            cg.b.ins().bitselect(neg, if_true, if_false)
        }
    }
}

/// Produces the pshufb masks of a chunk's units from its metadata words.
#[derive(Default)]
struct MetaReader {
    /// The u64 metadata word loaded at this byte offset of the chunk.
    word: Option<(usize, Value)>,
}

impl MetaReader {
    /// The mask of unit `unit` of the chunk at `p`: `4·c_r + 0..3` for lane
    /// `r` (for `Xk = 8` with bit 7 set where `c_r ≥ 4`).
    fn mask(&mut self, cg: &mut Cg<'_, '_>, e: &Emit, b: u32, p: Value, unit: usize) -> Value {
        let fb = 4 * b as usize;
        let bit = unit * fb;
        let (o, w) = match self.word {
            Some((o, w)) if bit + fb <= 8 * o + 64 => (o, w),
            _ => {
                let o = bit / 8;
                let w = cg.ld(I64, p, o as i32);
                self.word = Some((o, w));
                (o, w)
            }
        };
        let sh = (bit - 8 * o) as i64;
        if b == 2 {
            // 8 bits index one 256-entry table (the load folds into pshufb).
            let idx = field(cg, w, sh - 4, 0xff0);
            let addr = cg.b.ins().iadd(e.tables, idx);
            return cg.ld(I8X16, addr, 0);
        }
        // Rows 0–1 and rows 2–3 (2b bits each) index two tables, OR-ed.
        let fm = ((1i64 << (2 * b)) - 1) << 4;
        let ia = field(cg, w, sh - 4, fm);
        let ib = field(cg, w, sh + 2 * b as i64 - 4, fm);
        let aa = cg.b.ins().iadd(e.tables, ia);
        let ab = cg.b.ins().iadd(e.tables, ib);
        let ma = cg.ld(I8X16, aa, 0);
        let mb = cg.ld(I8X16, ab, (16usize << (2 * b)) as i32);
        cg.b.ins().bor(ma, mb)
    }
}

/// `w` rotated right by `sh` (so bit `sh + 4` lands on bit 4) and masked:
/// the mask keeps only bits of the wanted field, which never wraps. One
/// rotate (`rorx` with BMI2: non-destructive, no copy) and one and.
fn field(cg: &mut Cg<'_, '_>, w: Value, sh: i64, mask: i64) -> Value {
    let r = sh.rem_euclid(64);
    let v = if r == 0 { w } else { cg.b.ins().rotr_imm_u(w, r) };
    cg.b.ins().band_imm_u(v, mask)
}
