//! Executing the `kern.` steps that are not plain GEMVs: LUT table
//! precompute, LUT GEMM and shift-add GEMM, split over the worker pool.
//!
//! Activation-side work (tables) is split by activation row; weight-side
//! work by weight rows, in items of `kern.tile`'s `m` rows when the plan
//! has one (each item streams its weight rows once per activation row, so
//! a small `m` keeps them in cache across a prefill's rows) and otherwise
//! in one item per thread. Small calls (under `par_min_bytes` of weight
//! traffic) run on the caller alone.

use std::sync::atomic::{AtomicBool, Ordering};

use super::plan::BufRef;
use super::{CpuRuntime, RuntimeError};
use crate::cpu::lut::{LutActivation, LutKernel};
use crate::cpu::shiftadd::{BcqTables, ShiftAddKernel};
use crate::cpu::sparse::SparseKernel;

use super::{invalid, SendPtr};

/// `items` work items over `n` units: fixed items of `per` units, or `items` equal shares.
fn item_range(i: usize, items: usize, per: usize, n: usize) -> (usize, usize) {
    if per > 0 { (i * per, ((i + 1) * per).min(n)) } else { (n * i / items, n * (i + 1) / items) }
}

/// Runs `f(i, &mut items[i])` for every element, over the pool when `par`;
/// `f` returns false on failure.
fn each_mut<T: Send>(pool: &super::Pool, par: bool, items: &mut [T], f: &(dyn Fn(usize, &mut T) -> bool + Sync)) -> Result<(), RuntimeError> {
    let n = items.len();
    let failed = AtomicBool::new(false);
    if !par || n < 2 {
        for (i, t) in items.iter_mut().enumerate() {
            failed.fetch_or(!f(i, t), Ordering::Relaxed);
        }
    } else {
        let chunks = (pool.threads() * 4).min(n);
        let p = SendPtr(items.as_mut_ptr());
        let work = |c: usize| {
            let (a, b) = item_range(c, chunks, 0, n);
            for i in a..b {
                // SAFETY: i < n and chunks cover disjoint index ranges.
                failed.fetch_or(!f(i, unsafe { &mut *{ p }.0.add(i) }), Ordering::Relaxed);
            }
        };
        pool.run(chunks, &work).map_err(invalid)?;
    }
    if failed.load(Ordering::Relaxed) { Err(invalid("activation rows do not match the tables")) } else { Ok(()) }
}

impl CpuRuntime {
    /// `kern.lut_precompute`: the tables of every row of `x` into `slot`.
    pub(super) fn lut_precompute(&mut self, x: BufRef, slot: usize, cols: usize) -> Result<(), RuntimeError> {
        let n = self.len(x);
        let rows = n / cols;
        let ag = self.plan.lut_slots[slot];
        let acts = &mut self.luts[slot];
        if acts.len() < rows {
            acts.resize_with(rows, || LutActivation { act_group: ag, ..Default::default() });
        }
        let xs = &self.bufs[x.buf][..rows * cols];
        let par = rows > 1 && n >= 1 << 14;
        each_mut(&self.pool, par, &mut acts[..rows], &|i, a: &mut LutActivation| a.fill(&xs[i * cols..(i + 1) * cols]).is_ok())
    }

    /// `kern.lut_gemm`: every table row of `slot` against `lut_weights[w]`.
    pub(super) fn lut_gemm(&mut self, kernel: &LutKernel, w: usize, slot: usize, out: BufRef, m_blocks: usize) -> Result<(), RuntimeError> {
        let rows = kernel.spec().rows;
        let batch = self.len(out) / rows;
        let acts = self.luts[slot].get(..batch).ok_or_else(|| invalid("internal: LUT tables missing"))?;
        let weights = &self.plan.lut_weights[w];
        let o = self.bufs[out.buf].get_mut(..batch * rows).ok_or_else(|| invalid("internal: LUT output buffer too small"))?;
        kernel.check(weights, acts, o.len())?;
        let nblocks = kernel.blocks();
        let par = self.pool.threads() > 1 && weights.bytes().len() * batch >= self.opts.par_min_bytes;
        let items = if m_blocks > 0 { nblocks.div_ceil(m_blocks) } else if par { self.pool.threads().min(nblocks) } else { 1 };
        let yp = SendPtr(o.as_mut_ptr());
        let work = |i: usize| {
            let (b0, b1) = item_range(i, items, m_blocks, nblocks);
            // SAFETY: `check` passed for `batch · rows` outputs; items cover
            // disjoint row-block ranges inside [0, nblocks).
            unsafe { kernel.run_blocks(weights, acts, { yp }.0, b0, b1) };
        };
        if par { self.pool.run(items, &work).map_err(invalid) } else { (0..items).for_each(work); Ok(()) }
    }

    /// `kern.shiftadd_gemm`: tables per activation row, then row-block items.
    pub(super) fn shiftadd(&mut self, kernel: &ShiftAddKernel, w: usize, x: BufRef, out: BufRef, m_blocks: usize) -> Result<(), RuntimeError> {
        let s = kernel.spec();
        let batch = self.len(x) / s.cols;
        if self.sa_tables.len() < batch {
            self.sa_tables.resize_with(batch, BcqTables::default);
        }
        let xs = &self.bufs[x.buf][..batch * s.cols];
        each_mut(&self.pool, batch > 1, &mut self.sa_tables[..batch], &|i, t: &mut BcqTables| t.fill(&xs[i * s.cols..(i + 1) * s.cols], s.group).is_ok())
            .map_err(|_| invalid("shift-add: an activation row is not finite"))?;
        let tables = &self.sa_tables[..batch];
        let weights = &self.plan.sa_weights[w];
        let o = self.bufs[out.buf].get_mut(..batch * s.rows).ok_or_else(|| invalid("internal: shift-add output buffer too small"))?;
        kernel.check(weights, tables, o.len())?;
        let nblocks = s.blocks();
        let par = self.pool.threads() > 1 && weights.bytes().len() * batch >= self.opts.par_min_bytes;
        let items = if m_blocks > 0 { nblocks.div_ceil(m_blocks) } else if par { (2 * self.pool.threads()).min(nblocks) } else { 1 };
        let yp = SendPtr(o.as_mut_ptr());
        let work = |i: usize| {
            let (b0, b1) = item_range(i, items, m_blocks, nblocks);
            // SAFETY: `check` passed for `batch · rows` outputs; items cover
            // disjoint row-block ranges inside [0, nblocks).
            unsafe { kernel.run_blocks(weights, tables, { yp }.0, b0, b1) };
        };
        if par { self.pool.run(items, &work).map_err(invalid) } else { (0..items).for_each(work); Ok(()) }
    }

    /// `kern.sparse_gemm`: the N:M kernel over every activation row, split
    /// by row blocks over the pool when the weight traffic is worth it.
    pub(super) fn sparse(&mut self, kernel: &SparseKernel, w: usize, x: BufRef, out: BufRef) -> Result<(), RuntimeError> {
        let packed = &self.plan.sparse_weights[w];
        let spec = kernel.spec();
        let batch = self.len(x) / spec.cols;
        let threads = if packed.streamed_bytes() * batch >= self.opts.par_min_bytes { self.pool.threads() } else { 1 };
        let mut o = std::mem::take(&mut self.bufs[out.buf]);
        let r = match o.get_mut(..batch * spec.rows) {
            Some(y) => kernel.run_pool(&self.pool, packed, &self.bufs[x.buf][..batch * spec.cols], batch, y, threads).map_err(|e| invalid(e.to_string())),
            None => Err(invalid("internal: sparse output buffer too small")),
        };
        self.bufs[out.buf] = o;
        r
    }
}
