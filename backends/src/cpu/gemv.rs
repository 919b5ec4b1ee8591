//! Safe GEMV/GEMM kernels: compiled JIT code plus length-checked entry points.
//!
//! A [`GemvKernel`] is specialised on (format, rows, cols) and a batch tile
//! `T`: it holds one compiled function per tile size `1..=T`, so any batch is
//! processed as full tiles plus one remainder tile, each weight row streamed
//! once per tile. For the 32-element block formats, Q4_K and Q6_K it also holds the
//! [`ROW_GROUP`]-row register-blocked variants (`rowgroup.rs`, `rowgroup_k.rs`), which run
//! every aligned group of rows; on sessions with a wide tier the 32-element
//! formats the generated kernels cover take [`WIDE_ROWS`]-row kernels from
//! `wide/` instead (every tile, GEMV included). The one-row functions take
//! the rows of a range that do not fill a group. [`GemvKernel::run`] checks every buffer length against the
//! shape before the JIT code sees a pointer, then splits the rows over
//! `threads` workers of rayon's pool (each worker runs all batch tiles for its
//! row range, so the workers never touch the same `y` element).

use super::SendPtr;
use std::time::Duration;

use super::act::ActivationQ8;
use super::codegen::{KERNEL_PARAMS, KernelSpec, MAX_TILE, build_kernel, f16_table};
use super::rowgroup::ROW_GROUP;
use super::format::{ActKind, WeightFormat};
use super::jit::{CompiledFn, JitError, JitSession};
use super::wide::{WideFn, WIDE_ROWS, build_int_dot, wide_int_dot_supported};

/// The raw kernel entry: `(w, x, y, row_begin, row_end, f16_table)`.
pub type KernelFn = unsafe extern "C" fn(*const u8, *const u8, *mut f32, u64, u64, *const f32);

/// A compiled GEMV (tile 1) or GEMM (tile > 1) kernel for one weight shape.
#[derive(Debug)]
pub struct GemvKernel {
    format: WeightFormat,
    rows: usize,
    cols: usize,
    /// `fns[t - 1]` processes `t` activation rows per pass.
    fns: Vec<CompiledFn>,
    /// `grouped[t - 2]`: the same for [`ROW_GROUP`] weight rows per pass,
    /// tiles `2..=T` (empty when the format/shape has no row-group kernel).
    /// A GEMV (tile 1) takes the one-row kernel here: with a single
    /// activation row the 4-row xmm group only adds the transposes
    /// (measured slower), while its gain is sharing them over activation rows.
    grouped: Vec<CompiledFn>,
    /// `wide[t - 1]`: the generated [`WIDE_ROWS`]-row kernel for tile `t`
    /// (`wide/int_dot.rs`); when present it replaces `grouped`.
    wide: Vec<WideFn>,
}

impl GemvKernel {
    /// A GEMV kernel (one activation row per pass; larger batches still work,
    /// one row at a time).
    pub fn new(session: &JitSession, format: WeightFormat, rows: usize, cols: usize) -> Result<Self, JitError> {
        Self::with_tile(session, format, rows, cols, 1)
    }

    /// A GEMM kernel reusing each weight block for up to `tile` activation
    /// rows (compiles tile sizes `1..=tile`).
    pub fn with_tile(
        session: &JitSession,
        format: WeightFormat,
        rows: usize,
        cols: usize,
        tile: usize,
    ) -> Result<Self, JitError> {
        if tile == 0 || tile > MAX_TILE {
            return Err(JitError::InvalidParams(format!("tile = {tile} must be in 1..={MAX_TILE}")));
        }
        let caps = session.caps();
        // Every tile of the formats the wide generator covers runs on its
        // 8-row kernels when the session has a wide tier (the GEMV too: at
        // these sizes decode is not bandwidth-bound); the Cranelift
        // row-group kernels are then not needed, the one-row kernels take
        // the rows that do not fill a group.
        let wide_tier = caps.wide.filter(|&w| rows >= WIDE_ROWS && wide_int_dot_supported(format, w));
        let groups: &[usize] =
            if wide_tier.is_none() && KernelSpec::grouped(format, rows, caps) { &[1, ROW_GROUP] } else { &[1] };
        let mut sets = Vec::with_capacity(2);
        for &row_group in groups {
            let mut fns = Vec::with_capacity(tile);
            for t in (if row_group == 1 { 1 } else { 2 })..=tile {
                let spec = KernelSpec { format, rows, cols, tile: t, row_group };
                spec.validate(caps)?;
                let name = format!("gemv_{}_{rows}x{cols}_t{t}_r{row_group}", format.name());
                fns.push(session.compile(&name, KERNEL_PARAMS, |b, args| build_kernel(b, args, &spec, caps))?);
            }
            sets.push(fns);
        }
        let grouped = if sets.len() == 2 { sets.pop().unwrap_or_default() } else { Vec::new() };
        let fns = sets.pop().unwrap();
        let mut wide = Vec::new();
        if let Some(w) = wide_tier {
            for t in 1..=tile {
                let spec = KernelSpec { format, rows, cols, tile: t, row_group: 1 };
                wide.push(build_int_dot(&spec, w)?);
            }
        }
        Ok(Self { format, rows, cols, fns, grouped, wide })
    }

    /// Weight format.
    pub fn format(&self) -> WeightFormat {
        self.format
    }
    /// Output rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Input columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Largest batch tile.
    pub fn tile(&self) -> usize {
        self.fns.len()
    }
    /// Bytes of the whole weight matrix.
    pub fn weight_bytes(&self) -> usize {
        self.rows * self.format.row_bytes(self.cols)
    }
    /// Weight rows per pass of the main kernels (1 or [`ROW_GROUP`]): row
    /// ranges aligned to it run entirely on the row-group kernels.
    pub fn row_group(&self) -> usize {
        if !self.wide.is_empty() {
            WIDE_ROWS
        } else if !self.grouped.is_empty() {
            ROW_GROUP
        } else {
            1
        }
    }
    /// The row-group function for tile `t`, if there is one.
    fn grouped_fn(&self, t: usize) -> Option<&CompiledFn> {
        t.checked_sub(2).and_then(|i| self.grouped.get(i))
    }
    /// The generated wide kernel for tile `t`, if there is one.
    pub fn wide_fn(&self, t: usize) -> Option<&WideFn> {
        t.checked_sub(1).and_then(|i| self.wide.get(i))
    }
    /// Total JIT compile time of all tile variants.
    pub fn compile_time(&self) -> Duration {
        self.fns.iter().chain(&self.grouped).map(|f| f.compile_time()).sum()
    }
    /// The compiled function for tile size `t` (for VCode / code inspection):
    /// the row-group variant where there is one.
    pub fn compiled(&self, t: usize) -> Option<&CompiledFn> {
        self.grouped_fn(t).or_else(|| t.checked_sub(1).and_then(|i| self.fns.get(i)))
    }

    /// `y[b·rows + r] = Σ_k W[r, k]·x[b, k]` for every activation row `b` of
    /// `x`, with `W` in ggml's layout (`w.len() == rows · row_bytes(cols)`).
    pub fn run(&self, w: &[u8], x: &ActivationQ8, y: &mut [f32], threads: usize) -> Result<(), JitError> {
        let want = self.format.activation();
        if want == ActKind::F32 {
            return Err(JitError::InvalidParams("f32 weights take f32 activations: use run_f32".into()));
        }
        if x.kind() != want {
            return Err(JitError::InvalidParams(format!(
                "{:?} weights need {want:?} activations, got {:?}",
                self.format,
                x.kind()
            )));
        }
        if x.cols() != self.cols {
            return Err(JitError::Length(format!("activation cols {} != kernel cols {}", x.cols(), self.cols)));
        }
        self.check_wy(w, y, x.rows())?;
        debug_assert_eq!(x.bytes().as_ptr() as usize % 16, 0);
        // SAFETY: lengths checked above; records are 16-byte aligned.
        unsafe { self.dispatch(w.as_ptr(), x.bytes().as_ptr(), x.row_stride(), x.rows(), y, threads) }
    }

    /// f32 weights (`w` is the raw little-endian bytes, possibly unaligned)
    /// times f32 activations `x` (`x.len() = batch · cols`).
    pub fn run_f32(&self, w: &[u8], x: &[f32], y: &mut [f32], threads: usize) -> Result<(), JitError> {
        if self.format != WeightFormat::F32 {
            return Err(JitError::InvalidParams(format!("{:?} weights need quantised activations: use run", self.format)));
        }
        if !x.len().is_multiple_of(self.cols) || x.is_empty() {
            return Err(JitError::Length(format!("x has {} values, not a positive multiple of cols {}", x.len(), self.cols)));
        }
        let batch = x.len() / self.cols;
        self.check_wy(w, y, batch)?;
        // SAFETY: lengths checked above; f32 loads in the kernel are unaligned.
        unsafe { self.dispatch(w.as_ptr(), x.as_ptr().cast(), self.cols * 4, batch, y, threads) }
    }

    fn check_wy(&self, w: &[u8], y: &[f32], batch: usize) -> Result<(), JitError> {
        if w.len() != self.weight_bytes() {
            return Err(JitError::Length(format!(
                "w has {} bytes, {:?} {}×{} needs {}",
                w.len(),
                self.format,
                self.rows,
                self.cols,
                self.weight_bytes()
            )));
        }
        if y.len() != batch * self.rows {
            return Err(JitError::Length(format!("y has {} values, expected {batch} × {}", y.len(), self.rows)));
        }
        self.fns[0].executable()
    }

    /// Runs rows `row_begin..row_end` of one tile of `t` activation rows.
    ///
    /// # Safety
    /// `1 <= t <= self.tile()`, `row_begin <= row_end <= self.rows()`; `w`
    /// points to the whole weight matrix (`weight_bytes()` readable bytes);
    /// `x` to `t` activation rows in the kernel's layout (16-byte aligned
    /// Q8 records, or f32 values), consecutive with the stride implied by
    /// `cols`; `y` to `t · rows()` writable f32 of which the kernel writes
    /// `y[b·rows + r]` for `r` in the range; nothing else writes those
    /// elements concurrently. The session must be executable on this host.
    pub unsafe fn run_rows(&self, t: usize, w: *const u8, x: *const u8, y: *mut f32, row_begin: usize, row_end: usize) {
        let call = |f: *const u8, rb: usize, re: usize| {
            if rb < re {
                // SAFETY: every entry (Cranelift's or generated) has the KernelFn ABI.
                let f: KernelFn = unsafe { std::mem::transmute(f) };
                // SAFETY: the caller's contract, for a sub-range of its rows.
                unsafe { f(w, x, y, rb as u64, re as u64, f16_table().as_ptr()) };
            }
        };
        let one = self.fns[t - 1].ptr();
        let Some(grouped) = self.wide_fn(t).map(WideFn::ptr).or_else(|| self.grouped_fn(t).map(CompiledFn::ptr)) else {
            return call(one, row_begin, row_end);
        };
        // Whole groups on the row-group kernel, the ragged ends one row at a time.
        let g = self.row_group();
        let gb = row_begin.next_multiple_of(g).min(row_end);
        let ge = (row_end / g * g).max(gb);
        call(one, row_begin, gb);
        call(grouped, gb, ge);
        call(one, ge, row_end);
    }

    /// Runs rows `row_begin..row_end` for all `batch` activation rows
    /// (`x_stride` bytes apart), as full tiles plus one remainder tile.
    ///
    /// # Safety
    /// As [`GemvKernel::run_rows`], with `x` holding `batch` rows and `y`
    /// `batch · rows()` floats.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn run_batch_rows(&self, w: *const u8, x: *const u8, x_stride: usize, batch: usize, y: *mut f32, row_begin: usize, row_end: usize) {
        let (tile, rows) = (self.tile(), self.rows);
        let mut b0 = 0;
        while b0 < batch {
            let t = tile.min(batch - b0);
            // SAFETY: the caller's contract; tiles stay inside the batch.
            unsafe { self.run_rows(t, w, x.add(b0 * x_stride), y.add(b0 * rows), row_begin, row_end) };
            b0 += t;
        }
    }

    /// # Safety
    /// Lengths of `w`, `x` (`batch · x_stride` bytes) and `y` checked by the caller.
    unsafe fn dispatch(
        &self,
        w: *const u8,
        x: *const u8,
        x_stride: usize,
        batch: usize,
        y: &mut [f32],
        threads: usize,
    ) -> Result<(), JitError> {
        let rows = self.rows;
        let tile = self.tile();
        let threads = threads.clamp(1, rows);
        let yp = SendPtr(y.as_mut_ptr());
        let (wp, xp) = (SendPtr(w), SendPtr(x));
        let _ = tile;
        let work = move |rb: usize, re: usize| {
            let (w, x, y) = (wp, xp, yp);
            // SAFETY: the caller checked the buffers; [rb, re) ⊆ [0, rows),
            // and row ranges are disjoint.
            unsafe { self.run_batch_rows(w.0, x.0, x_stride, batch, y.0, rb, re) };
        };
        if threads == 1 {
            work(0, rows);
            return Ok(());
        }
        let g = self.row_group();
        let bounds: Vec<usize> = (0..=threads).map(|i| (rows / g * i / threads * g).max(if i == threads { rows } else { 0 })).collect();
        rayon::scope(|s| {
            for i in 1..threads {
                let (rb, re) = (bounds[i], bounds[i + 1]);
                s.spawn(move |_| work(rb, re));
            }
            work(bounds[0], bounds[1]);
        });
        Ok(())
    }
}
