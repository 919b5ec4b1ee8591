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
//! ascending index order) and 4 `b`-bit in-group indices. Two streams:
//!
//! ```text
//! values: [row block][kernel group][slot][row in block]  f32           16 bytes / unit
//! meta:   [row block] bit stream, unit u of the block at bits 4b·u,
//!         row r of the unit at bits 4b·u + b·r (LSB first);
//!         each row block's stream starts on a byte; 8 zero bytes at the end
//! ```
//!
//! So the streamed bytes per kept weight are `4 + b/8`: 2:4 and 1:4 are
//! 4.25 bytes per kept weight (the codec: 4.5 and 5, its index bytes are
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
//!   Per unit: a shift and an and on the metadata word, one `vpshufb` with
//!   the table entry as memory operand, one `vfmadd` with the values as
//!   memory operand.
//! - `Xk ≥ 8`: the index bits of rows 0–1 and rows 2–3 (`2b` bits each) look
//!   up two tables of `2^(2b)` entries (2 KiB for `b = 3`, 8 KiB for `b = 4`)
//!   that are OR-ed into one mask `4·c_r + 0..3` (< 64). `pshufb` only uses
//!   the low nibble of a mask byte when bit 7 is clear, so the same mask
//!   selects element `c mod 4` from each of the `Xk/4` x vectors, and bits 4
//!   and 5 of the mask (the vector number `c / 4`) choose among those
//!   results: shifted left by 3 (resp. 2) with one 16-bit shift they become
//!   the byte sign bits `pblendvb` (`blendv`) tests. `Xk = 8`: 2 `pshufb`,
//!   1 shift, 1 blend; `Xk = 16`: 4 `pshufb`, 2 shifts, 3 blends.
//!
//! Metadata is read as unaligned u64 words (one per up to 64 bits of fields)
//! and every field is extracted with constant shifts: the loop body covers
//! `U` kernel groups (about 8 units, a whole number of metadata bytes), so
//! every bit offset in it is a compile-time constant.
//!
//! **Kernel.** Specialised on (`N`, `M`, rows, cols, tile `T`): for each row
//! block in `[rb_begin, rb_end)`, the loop over kernel groups loads the
//! group's x vectors of the `T` activation rows, and per unit computes the
//! mask once and for each activation row one selection and one `fma` into
//! f32x4 accumulators (4 per activation row at `T = 1`, rotating over units to
//! hide the FMA latency). So every weight byte is read once per tile of `T`
//! activation rows (prefill streams the weights `⌈rows_x/T⌉` times). The
//! accumulators hold 4 output rows; they are summed and stored to
//! `y[t·rows + row]` (lanes of a padded last block are dropped). Threads take
//! disjoint row-block ranges (rayon in [`SparseKernel::run`], the runtime's
//! [`Pool`] in [`SparseKernel::run_pool`]).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32X4, I16X8, I64, I8X16};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value};
use cranelift_frontend::{FunctionBuilder, Variable};
use std::time::Duration;

use super::codegen::{Cg, MAX_TILE};
use super::jit::{CompiledFn, IsaCaps, JitError, JitSession};
use super::runtime::Pool;
use flexc_ir::quant::nm;

/// Output rows per row block (f32 lanes of one accumulator).
pub const BLOCK_ROWS: usize = 4;

/// The tile [`SparseKernel::new`] compiles (activation rows per weight pass).
pub const DEFAULT_TILE: usize = 4;

/// Kernel ABI: `(values, meta, x, y, rb_begin, rb_end, tables)`.
const SPARSE_PARAMS: usize = 7;
type SparseFn = unsafe extern "C" fn(*const f32, *const u8, *const f32, *mut f32, u64, u64, *const u8);

/// What a sparse weight (and the kernel for it) is: `#nm<n, m>` `[rows, cols]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SparseSpec {
    /// Kept weights per group, `1 ..= m`.
    pub n: u8,
    /// Group size along the input dimension, `1 ..= 16`.
    pub m: u8,
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
    /// `U`: kernel groups per loop iteration.
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
    /// Value bytes per row block.
    pub fn block_value_bytes(&self) -> usize {
        self.units() * 16
    }
    /// Metadata bytes per row block.
    pub fn block_meta_bytes(&self) -> usize {
        (self.units() * 4 * self.index_bits as usize).div_ceil(8)
    }
    /// Floats per (padded) activation row the kernel reads.
    pub fn x_stride(&self) -> usize {
        self.groups * self.x_group
    }
    /// Bytes of the mask tables.
    fn table_bytes(&self) -> usize {
        match self.index_bits {
            2 => 256 * 16,
            b => 2 * (1 << (2 * b)) * 16,
        }
    }
}

impl SparseSpec {
    /// Checks the parameters before anything is packed or compiled.
    pub fn validate(&self) -> Result<(), JitError> {
        let bad = |m: String| Err(JitError::InvalidParams(m));
        let (n, m) = (self.n, self.m);
        if m == 0 || m > nm::MAX_M || n == 0 || n > m {
            return bad(format!("#nm<n = {n}, m = {m}>: need 1 <= n <= m <= {}", nm::MAX_M));
        }
        if self.rows == 0 || self.cols == 0 || !self.cols.is_multiple_of(m as usize) {
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
        let (n, m) = (self.n as usize, self.m as usize);
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
        // About 8 units per iteration, and a whole number of metadata bytes.
        let mut unroll = 8usize.div_ceil(slots);
        while !(unroll * slots * 4 * index_bits as usize).is_multiple_of(8) {
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
        self.rows * (self.cols / self.m as usize) * nm::block_bytes(self.n, self.m)
    }
}

/// `#nm` weights repacked for a [`SparseKernel`] (layout in the module docs).
#[derive(Clone, Debug)]
pub struct SparseWeights {
    spec: SparseSpec,
    layout: SparseLayout,
    values: Vec<f32>,
    /// Metadata streams plus 8 zero bytes (the kernel reads u64 words).
    meta: Vec<u8>,
}

impl SparseWeights {
    /// Packs an `#nm<n = n, m = m>` weight `[rows, cols]` in the codec's bytes
    /// (`flexc_ir::quant::nm`). Fails on bad parameters, a wrong byte count,
    /// or indices that are not strictly increasing below `m`.
    pub fn pack(n: u8, m: u8, bytes: &[u8], rows: usize, cols: usize) -> Result<SparseWeights, JitError> {
        let spec = SparseSpec { n, m, rows, cols };
        let l = spec.layout()?;
        if bytes.len() != spec.codec_bytes() {
            return Err(JitError::Length(format!("#nm<n = {n}, m = {m}> {rows}×{cols} needs {} bytes, got {}", spec.codec_bytes(), bytes.len())));
        }
        let (nu, mu) = (n as usize, m as usize);
        let bb = nm::block_bytes(n, m);
        let cb = nm::index_bits(m);
        let per_kernel_group = l.group_cols / mu; // codec groups per kernel group
        let codec_groups = cols / mu;
        let mut values = vec![0f32; l.row_blocks * l.units() * BLOCK_ROWS];
        let mut meta = vec![0u8; l.row_blocks * l.block_meta_bytes() + 8];
        let b = l.index_bits as usize;
        for r in 0..rows {
            let (rb, lane) = (r / BLOCK_ROWS, r % BLOCK_ROWS);
            for cg in 0..codec_groups {
                let blk = &bytes[(r * codec_groups + cg) * bb..][..bb];
                let (kg, sub) = (cg / per_kernel_group, cg % per_kernel_group);
                let mut prev: Option<usize> = None;
                for k in 0..nu {
                    let mut idx = 0usize;
                    for bit in 0..cb as usize {
                        let pos = k * cb as usize + bit;
                        idx |= usize::from(blk[4 * nu + pos / 8] >> (pos % 8) & 1) << bit;
                    }
                    if idx >= mu || prev.is_some_and(|p| idx <= p) {
                        return Err(JitError::InvalidParams(format!(
                            "#nm<n = {n}, m = {m}>: row {r}, group {cg}: index {idx} after {prev:?} (need strictly increasing, below {m})"
                        )));
                    }
                    prev = Some(idx);
                    let v = f32::from_le_bytes([blk[4 * k], blk[4 * k + 1], blk[4 * k + 2], blk[4 * k + 3]]);
                    let (slot, col) = (sub * nu + k, sub * mu + idx);
                    let unit = kg * l.slots + slot;
                    values[(rb * l.units() + unit) * BLOCK_ROWS + lane] = v;
                    let bitpos = rb * l.block_meta_bytes() * 8 + (unit * BLOCK_ROWS + lane) * b;
                    for i in 0..b {
                        meta[(bitpos + i) / 8] |= u8::from(col >> i & 1 == 1) << ((bitpos + i) % 8);
                    }
                }
            }
        }
        Ok(SparseWeights { spec, layout: l, values, meta })
    }

    /// The weight's parameters.
    pub fn spec(&self) -> SparseSpec {
        self.spec
    }
    /// The kernel geometry.
    pub fn layout(&self) -> SparseLayout {
        self.layout
    }
    /// Packed values (`[row block][kernel group][slot][row]`).
    pub fn values(&self) -> &[f32] {
        &self.values
    }
    /// Packed metadata streams (without the 8 trailing pad bytes).
    pub fn meta(&self) -> &[u8] {
        &self.meta[..self.meta.len() - 8]
    }
    /// Bytes a full pass over the weight streams (values + metadata).
    pub fn streamed_bytes(&self) -> usize {
        self.values.len() * 4 + self.meta.len() - 8
    }

    /// Expands the packed form back to dense `[rows, cols]` f32 (tests and
    /// debugging; the kernel never does this).
    pub fn to_dense(&self) -> Vec<f32> {
        let (s, l) = (self.spec, self.layout);
        let b = l.index_bits as usize;
        let mut out = vec![0f32; s.rows * s.cols];
        for r in 0..s.rows {
            let (rb, lane) = (r / BLOCK_ROWS, r % BLOCK_ROWS);
            for unit in 0..l.units() {
                let bitpos = rb * l.block_meta_bytes() * 8 + (unit * BLOCK_ROWS + lane) * b;
                let idx = (0..b).map(|i| usize::from(self.meta[(bitpos + i) / 8] >> ((bitpos + i) % 8) & 1) << i).sum::<usize>();
                let col = unit / l.slots * l.group_cols + idx;
                out[r * s.cols + col] += self.values[(rb * l.units() + unit) * BLOCK_ROWS + lane];
            }
        }
        out
    }
}

/// The pshufb mask tables (module docs), 16-byte aligned.
fn mask_tables(l: &SparseLayout) -> Vec<u128> {
    let entry = |lanes: &[(usize, usize)]| -> u128 {
        let mut e = [0u8; 16];
        for &(r, c) in lanes {
            for i in 0..4 {
                e[4 * r + i] = (4 * c + i) as u8;
            }
        }
        u128::from_le_bytes(e)
    };
    let b = l.index_bits as usize;
    let mask = (1usize << b) - 1;
    let t: Vec<u128> = if b == 2 {
        (0..256usize).map(|f| entry(&(0..4).map(|r| (r, f >> (2 * r) & 3)).collect::<Vec<_>>())).collect()
    } else {
        let half = 1usize << (2 * b);
        let a = (0..half).map(|f| entry(&[(0, f & mask), (1, f >> b & mask)]));
        let bt = (0..half).map(|f| entry(&[(2, f & mask), (3, f >> b & mask)]));
        a.chain(bt).collect()
    };
    debug_assert_eq!(t.len() * 16, l.table_bytes());
    t
}

#[derive(Clone, Copy)]
struct SendPtr<T>(T);
// SAFETY: moves buffer pointers into workers that only read the weights, x
// and the tables, and write disjoint row blocks of y.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

/// A compiled N:M sparse GEMV/GEMM for one [`SparseSpec`], with one function
/// per tile size `1..=tile`.
#[derive(Debug)]
pub struct SparseKernel {
    spec: SparseSpec,
    layout: SparseLayout,
    fns: Vec<CompiledFn>,
    tables: Vec<u128>,
}

impl SparseKernel {
    /// Compiles the kernel with tile [`DEFAULT_TILE`].
    pub fn new(session: &JitSession, spec: SparseSpec) -> Result<SparseKernel, JitError> {
        Self::with_tile(session, spec, DEFAULT_TILE)
    }

    /// Compiles the kernel reusing each weight unit for up to `tile`
    /// activation rows (`1..=MAX_TILE`; 1 is a pure GEMV).
    pub fn with_tile(session: &JitSession, spec: SparseSpec, tile: usize) -> Result<SparseKernel, JitError> {
        if tile == 0 || tile > MAX_TILE {
            return Err(JitError::InvalidParams(format!("tile = {tile} must be in 1..={MAX_TILE}")));
        }
        let layout = spec.layout()?;
        let caps = session.caps();
        let sse41 = session.isa_flags().split(' ').any(|f| f == "has_sse41");
        let mut fns = Vec::with_capacity(tile);
        for t in 1..=tile {
            let name = format!("sparse_{}of{}_{}x{}_t{t}", spec.n, spec.m, spec.rows, spec.cols);
            let g = Gen { l: layout, rows: spec.rows, tile: t, sse41 };
            fns.push(session.compile(&name, SPARSE_PARAMS, |b, args| g.build(b, args, caps))?);
        }
        Ok(SparseKernel { spec, layout, fns, tables: mask_tables(&layout) })
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
        self.fns.len()
    }
    /// The compiled function for tile `t` (VCode, machine code).
    pub fn compiled(&self, t: usize) -> Option<&CompiledFn> {
        t.checked_sub(1).and_then(|i| self.fns.get(i))
    }
    /// Total JIT compile time of the tile variants.
    pub fn compile_time(&self) -> Duration {
        self.fns.iter().map(|f| f.compile_time()).sum()
    }

    /// `y[i·rows + r] = Σ_k W[r, k]·x[i·cols + k]` for the `rows_x` activation
    /// rows of `x`, on `threads` workers (rayon's pool).
    pub fn run(&self, w: &SparseWeights, x: &[f32], rows_x: usize, y: &mut [f32], threads: usize) -> Result<(), JitError> {
        self.dispatch(w, x, rows_x, y, threads, |chunks, job| {
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
        let expect = (l.row_blocks * l.units() * BLOCK_ROWS, l.row_blocks * l.block_meta_bytes() + 8);
        if (w.values.len(), w.meta.len()) != expect {
            return Err(JitError::Length(format!("packed weights have {} values / {} meta bytes, expected {expect:?}", w.values.len(), w.meta.len())));
        }
        self.fns[0].executable()?;
        if rows_x == 0 {
            return Ok(());
        }
        let padded: Vec<f32>;
        let xk: &[f32] = if l.pads_x() {
            let (m, xs) = (s.m as usize, l.x_stride());
            let mut p = vec![0f32; rows_x * xs];
            for (src, dst) in x.chunks_exact(s.cols).zip(p.chunks_exact_mut(xs)) {
                for (sg, dg) in src.chunks_exact(m).zip(dst.chunks_exact_mut(l.x_group)) {
                    dg[..m].copy_from_slice(sg);
                }
            }
            padded = p;
            &padded
        } else {
            x
        };
        let chunks = chunks.clamp(1, l.row_blocks);
        let (vp, mp, xp, yp, tp) = (
            SendPtr(w.values.as_ptr()),
            SendPtr(w.meta.as_ptr()),
            SendPtr(xk.as_ptr()),
            SendPtr(y.as_mut_ptr()),
            SendPtr(self.tables.as_ptr().cast::<u8>()),
        );
        let (tile, xs, rows, nb) = (self.tile(), l.x_stride(), s.rows, l.row_blocks);
        let job = move |c: usize| {
            let (vp, mp, xp, yp, tp) = (vp, mp, xp, yp, tp);
            let (b0, b1) = (nb * c / chunks, nb * (c + 1) / chunks);
            let mut i0 = 0;
            while i0 < rows_x {
                let t = tile.min(rows_x - i0);
                // SAFETY: the weights were packed for this spec (lengths
                // checked above, meta padded for the u64 reads); x holds
                // rows_x rows of x_stride floats and y rows_x rows of `rows`;
                // the tile stays inside both; [b0, b1) ⊆ [0, row_blocks) and
                // chunks write disjoint row blocks of y; the tables are the
                // ones this layout's code indexes.
                unsafe {
                    let f: SparseFn = std::mem::transmute(self.fns[t - 1].ptr());
                    f(vp.0, mp.0, xp.0.add(i0 * xs), yp.0.add(i0 * rows), b0 as u64, b1 as u64, tp.0);
                }
                i0 += t;
            }
        };
        exec(chunks, &job)
    }
}

/// The CLIF generator for one tile size.
struct Gen {
    l: SparseLayout,
    rows: usize,
    tile: usize,
    sse41: bool,
}

/// Per-function values shared by the emitters.
struct Emit {
    tables: Value,
    zero8: Value,
    /// `[t][a]` f32x4 accumulators.
    accs: Vec<Vec<Variable>>,
}

impl Gen {
    fn build(&self, b: &mut FunctionBuilder<'_>, args: &[Value], caps: IsaCaps) -> Result<(), JitError> {
        if args.len() != SPARSE_PARAMS {
            return Err(JitError::InvalidParams(format!("sparse ABI has {SPARSE_PARAMS} parameters, got {}", args.len())));
        }
        let l = self.l;
        let (vals, meta, x, y, rb0, rb1, tables) = (args[0], args[1], args[2], args[3], args[4], args[5], args[6]);
        let mut cg = Cg { b, caps, f16_table: tables };
        let zero = cg.vconst_ty(F32X4, [0; 16]);
        let zero8 = cg.vconst([0; 16]);
        let nacc = BLOCK_ROWS.div_ceil(self.tile);
        let iter_units = l.unroll * l.slots;
        let iter_meta = (iter_units * 4 * l.index_bits as usize) / 8;
        let iters = l.groups / l.unroll;
        let rem = l.groups % l.unroll;

        let rb_var = cg.var(I64, rb0);
        let (head, body, exit) = (cg.b.create_block(), cg.b.create_block(), cg.b.create_block());
        cg.b.ins().jump(head, &[]);
        cg.b.switch_to_block(head);
        let rb = cg.b.use_var(rb_var);
        let more = cg.b.ins().icmp(IntCC::UnsignedLessThan, rb, rb1);
        cg.b.ins().brif(more, body, &[], exit, &[]);

        cg.b.switch_to_block(body);
        let rb = cg.b.use_var(rb_var);
        let voff = cg.b.ins().imul_imm_s(rb, l.block_value_bytes() as i64);
        let v0 = cg.b.ins().iadd(vals, voff);
        let moff = cg.b.ins().imul_imm_s(rb, l.block_meta_bytes() as i64);
        let m0 = cg.b.ins().iadd(meta, moff);
        let accs: Vec<Vec<Variable>> = (0..self.tile).map(|_| (0..nacc).map(|_| cg.var(F32X4, zero)).collect()).collect();
        let mut e = Emit { tables, zero8, accs };
        let vp_var = cg.var(I64, v0);
        let mp_var = cg.var(I64, m0);
        let xp_var = cg.var(I64, x);
        if iters > 0 {
            let vend = cg.b.ins().iadd_imm_s(v0, (iters * iter_units * 16) as i64);
            let (lp, after) = (cg.b.create_block(), cg.b.create_block());
            cg.b.ins().jump(lp, &[]);
            cg.b.switch_to_block(lp);
            let (vp, mp, xp) = (cg.b.use_var(vp_var), cg.b.use_var(mp_var), cg.b.use_var(xp_var));
            self.groups(&mut cg, &mut e, vp, mp, xp, l.unroll);
            let vp2 = cg.b.ins().iadd_imm_s(vp, (iter_units * 16) as i64);
            let mp2 = cg.b.ins().iadd_imm_s(mp, iter_meta as i64);
            let xp2 = cg.b.ins().iadd_imm_s(xp, (l.unroll * l.x_group * 4) as i64);
            cg.b.def_var(vp_var, vp2);
            cg.b.def_var(mp_var, mp2);
            cg.b.def_var(xp_var, xp2);
            let c = cg.b.ins().icmp(IntCC::UnsignedLessThan, vp2, vend);
            cg.b.ins().brif(c, lp, &[], after, &[]);
            cg.b.switch_to_block(after);
        }
        if rem > 0 {
            let (vp, mp, xp) = (cg.b.use_var(vp_var), cg.b.use_var(mp_var), cg.b.use_var(xp_var));
            self.groups(&mut cg, &mut e, vp, mp, xp, rem);
        }

        // Sum the accumulators and store the block's 4 rows per activation row.
        let yoff = cg.b.ins().imul_imm_s(rb, (BLOCK_ROWS * 4) as i64);
        let yb = cg.b.ins().iadd(y, yoff);
        let sums: Vec<Value> = e
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
        let rb2 = cg.b.ins().iadd_imm_s(rb, 1);
        cg.b.def_var(rb_var, rb2);
        cg.b.ins().jump(head, &[]);

        cg.b.switch_to_block(exit);
        cg.b.ins().return_(&[]);
        Ok(())
    }

    /// Emits `ng` kernel groups starting at the value / meta / x pointers
    /// (the metadata starts on a byte boundary).
    fn groups(&self, cg: &mut Cg<'_, '_>, e: &mut Emit, vp: Value, mp: Value, xp: Value, ng: usize) {
        let l = self.l;
        let b = l.index_bits as usize;
        let fb = 4 * b; // field bits per unit
        let xstride = (l.x_stride() * 4) as i32;
        let nacc = e.accs[0].len();
        let mut word: Option<(usize, Value)> = None;
        for g in 0..ng {
            let xr: Vec<Vec<Value>> = (0..self.tile)
                .map(|t| (0..l.x_group / 4).map(|q| cg.ld(I8X16, xp, t as i32 * xstride + ((g * l.x_group + 4 * q) * 4) as i32)).collect())
                .collect();
            for s in 0..l.slots {
                let unit = g * l.slots + s;
                let bit = unit * fb;
                let (o, w) = match word {
                    Some((o, w)) if bit + fb <= 8 * o + 64 => (o, w),
                    _ => {
                        let o = bit / 8;
                        let w = cg.ld(I64, mp, o as i32);
                        word = Some((o, w));
                        (o, w)
                    }
                };
                let sh = (bit - 8 * o) as i64;
                let mask = if b == 2 {
                    let idx = field(cg, w, sh - 4, 0xff0);
                    let addr = cg.b.ins().iadd(e.tables, idx);
                    cg.ld(I8X16, addr, 0)
                } else {
                    let fm = ((1i64 << (2 * b)) - 1) << 4;
                    let ia = field(cg, w, sh - 4, fm);
                    let ib = field(cg, w, sh + 2 * b as i64 - 4, fm);
                    let aa = cg.b.ins().iadd(e.tables, ia);
                    let ab = cg.b.ins().iadd(e.tables, ib);
                    let ma = cg.ld(I8X16, aa, 0);
                    let mb = cg.ld(I8X16, ab, (16usize << (2 * b)) as i32);
                    cg.b.ins().bor(ma, mb)
                };
                // Sign-bit masks of the vector number's bits 0 and 1 (mask bits 4, 5).
                let sel_bits = |cg: &mut Cg<'_, '_>, n: i64| {
                    let w16 = cg.cast(I16X8, mask);
                    let s = cg.b.ins().ishl_imm_u(w16, n);
                    cg.cast(I8X16, s)
                };
                // (Unused for the smaller x groups: `mask` stands in.)
                let c4 = if l.x_group >= 8 { sel_bits(cg, 3) } else { mask };
                let c5 = if l.x_group >= 12 { sel_bits(cg, 2) } else { mask };
                let vals = cg.ld(F32X4, vp, (unit * 16) as i32);
                for (t, xt) in xr.iter().enumerate() {
                    let p: Vec<Value> = xt.iter().map(|&xv| cg.b.ins().x86_pshufb(xv, mask)).collect();
                    let sel = match p.len() {
                        1 => p[0],
                        2 => self.blend(cg, e, c4, p[1], p[0]),
                        3 => {
                            let r01 = self.blend(cg, e, c4, p[1], p[0]);
                            self.blend(cg, e, c5, p[2], r01)
                        }
                        _ => {
                            let r01 = self.blend(cg, e, c4, p[1], p[0]);
                            let r23 = self.blend(cg, e, c4, p[3], p[2]);
                            self.blend(cg, e, c5, r23, r01)
                        }
                    };
                    let sel = cg.cast(F32X4, sel);
                    let acc = e.accs[t][unit % nacc];
                    let a = cg.b.use_var(acc);
                    let a = cg.fma(sel, vals, a);
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

/// `(w >> sh) & mask` for `sh ≥ 0`, `(w << −sh) & mask` otherwise.
fn field(cg: &mut Cg<'_, '_>, w: Value, sh: i64, mask: i64) -> Value {
    let v = match sh {
        0 => w,
        s if s > 0 => cg.b.ins().ushr_imm_u(w, s),
        s => cg.b.ins().ishl_imm_u(w, -s),
    };
    cg.b.ins().band_imm_u(v, mask)
}
