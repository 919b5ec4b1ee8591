//! The cycle-level simulator: executes a stream functionally (int32 results)
//! while counting cycles and energy events, all derived from the [`Arch`].
//!
//! Timing model (in-order issue, one instruction at a time):
//! * `mac` streams vectors with an initiation interval set by the activation
//!   buffer bandwidth (distinct bytes the enabled rows read per vector); each
//!   vector passes `distribution.stages` mux stages and `adder_tree_stages`
//!   tree stages into the psum FIFOs; the merger takes one vector's psums
//!   every ceil(words / output_words_per_cycle) cycles; when the FIFO
//!   (`psum_fifo_depth`) is full, issue stalls. Back-to-back `mac`s overlap
//!   in the pipeline.
//! * `ldw`, `ldx`, `st`, `cfg` and `sync` wait for the pipeline to drain, then
//!   take their transfer time (bits or bytes over the configured bandwidths).
//!   Under the resident regime (`[memory] regime`) `ldw` and `dsel` are a
//!   preload: no wait, no cycles, no energy (the cells are counted).
//! * `cfg bypass=1` (a dense layer): no mux stages, 8-bit cell writes, bus
//!   offsets only in `dsel` (the dense DCiM's costs).
//! * `dsel` writes select registers (no drain: the mux is the first stage).
//!
//! Every malformed or out-of-range instruction is an error naming its index.

use super::arch::{Arch, EnergyTable};
use super::isa::{Instr, Program};
use super::timing::{self, cy, MacShape};

/// The most int32 result words all layers of one stream may hold (1 GiB).
pub const MAX_OUTPUT_WORDS: usize = 1 << 28;

/// Energy events, in the order of [`EnergyTable::entries`].
pub const EVENTS: usize = 13;

/// Cycle categories.
pub const CYCLE_KINDS: [&str; 7] = ["compute", "stall", "pipeline_drain", "weight_load", "act_load", "writeback", "select"];

/// Counts for one layer (or a whole run).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Layer name.
    pub name: String,
    /// Tokens × out × in of the layer (dense-equivalent MACs).
    pub dense_macs: u64,
    /// Cell multiplies performed (enabled cells × vectors).
    pub macs: u64,
    /// Cycles by kind ([`CYCLE_KINDS`]).
    pub cycles: [u64; 7],
    /// Event counts by kind ([`EnergyTable::entries`] order).
    pub events: [u64; EVENTS],
    /// Elements of host (non-GEMM) work.
    pub host_elems: u64,
    /// Array capacity in cell-cycles during compute (P·R·C × compute cycles).
    pub cell_cycles: u64,
    /// Bytes of `events[OFFCHIP]` that carried weights (the rest: activations and results).
    pub weight_offchip_bytes: u64,
    /// Cells written before the run under the resident regime (not in cycles or energy).
    pub preloaded_cells: u64,
}

impl Stats {
    /// Total cycles.
    pub fn total_cycles(&self) -> u64 {
        self.cycles.iter().sum()
    }

    /// Energy per event kind in pJ.
    pub fn energy_by_event(&self, e: &EnergyTable) -> Vec<(&'static str, f64)> {
        e.entries().iter().zip(self.events).map(|(&(k, pj), n)| (k, pj * n as f64)).collect()
    }

    /// Total energy in pJ.
    pub fn energy_pj(&self, e: &EnergyTable) -> f64 {
        self.energy_by_event(e).iter().map(|x| x.1).sum()
    }

    /// Enabled cells per array cell per compute cycle.
    pub fn utilisation(&self) -> f64 {
        if self.cell_cycles == 0 { 0.0 } else { self.macs as f64 / self.cell_cycles as f64 }
    }

    // Saturating: a stream file can claim any counts (`host elems=2^64-1`
    // twice), and a total must not overflow into a panic.
    /// Adds another's counts.
    pub fn add(&mut self, o: &Stats) {
        self.dense_macs = self.dense_macs.saturating_add(o.dense_macs);
        self.macs = self.macs.saturating_add(o.macs);
        self.host_elems = self.host_elems.saturating_add(o.host_elems);
        self.cell_cycles = self.cell_cycles.saturating_add(o.cell_cycles);
        self.weight_offchip_bytes = self.weight_offchip_bytes.saturating_add(o.weight_offchip_bytes);
        self.preloaded_cells = self.preloaded_cells.saturating_add(o.preloaded_cells);
        self.cycles.iter_mut().zip(o.cycles).for_each(|(a, b)| *a = a.saturating_add(b));
        self.events.iter_mut().zip(o.events).for_each(|(a, b)| *a = a.saturating_add(b));
    }
}

/// A simulation's result.
#[derive(Clone, Debug, Default)]
pub struct SimResult {
    /// Per layer, in stream order.
    pub layers: Vec<Stats>,
    /// Per layer, its int32 results `tokens × out`.
    pub outputs: Vec<Vec<i32>>,
    /// Everything.
    pub total: Stats,
}

/// A failing instruction.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("instruction {index} ({mnemonic}): {message}")]
pub struct SimError {
    /// Its 0-based index in the stream.
    pub index: usize,
    /// Its mnemonic.
    pub mnemonic: &'static str,
    /// What is wrong.
    pub message: String,
}

#[derive(Clone)]
struct RowSel {
    bus: Vec<Option<u32>>,
    s1: Vec<u8>,
    s2: Vec<Option<u8>>,
}

struct Machine<'a> {
    arch: &'a Arch,
    /// Per cell, its weight as seen by the pair's two activation lines:
    /// (`w0`, `w1`) = (w, 0) for metadata bit 0, (0, w) for bit 1; split when
    /// written so a `mac` is two multiply-adds per cell over contiguous columns.
    w0: Vec<i32>,
    w1: Vec<i32>,
    sel: Vec<RowSel>,
    act: Vec<i8>,
    acc: Vec<i64>,
    /// The current `cfg`: (N, M, agg, bypass).
    cfg: Option<(usize, usize, usize, bool)>,
    now: u64,
    drain_at: u64,
    res: SimResult,
    cur: Option<(usize, usize, usize)>,
}

impl<'a> Machine<'a> {
    fn stats(&mut self) -> &mut Stats {
        if self.res.layers.is_empty() {
            self.res.layers.push(Stats { name: "(before any layer)".into(), ..Stats::default() });
            self.res.outputs.push(Vec::new());
        }
        let i = self.res.layers.len() - 1;
        &mut self.res.layers[i]
    }

    /// Whether the current `cfg` takes the dense bypass.
    fn bypass(&self) -> bool {
        self.cfg.is_some_and(|c| c.3)
    }

    fn drain(&mut self) {
        if self.drain_at > self.now {
            let d = self.drain_at - self.now;
            self.stats().cycles[cy::DRAIN] += d;
            self.now = self.drain_at;
        }
    }

    fn busy(&mut self, kind: usize, c: u64) {
        self.stats().cycles[kind] += c;
        self.now += c;
    }

    fn exec(&mut self, ins: &Instr) -> Result<(), String> {
        let a = self.arch;
        let (p, r, c) = (a.array.sub_macros, a.array.rows, a.array.columns);
        match ins {
            Instr::Layer { name, tokens, out, inp } => {
                self.drain();
                // Every layer's results are kept, so the budget is over the
                // whole stream: a file cannot make the simulator allocate more
                // than MAX_OUTPUT_WORDS int32s (1 GiB) however many layers it declares.
                let held: usize = self.res.outputs.iter().map(Vec::len).sum();
                let n = (*tokens as usize)
                    .checked_mul(*out as usize)
                    .filter(|&n| n <= MAX_OUTPUT_WORDS - held)
                    .ok_or_else(|| format!("the stream's layer outputs exceed {MAX_OUTPUT_WORDS} int32 words (1 GiB), the simulator's limit"))?;
                self.res.layers.push(Stats { name: name.clone(), dense_macs: *tokens as u64 * *out as u64 * *inp as u64, ..Stats::default() });
                self.res.outputs.push(vec![0; n]);
                self.cur = Some((*tokens as usize, *out as usize, *inp as usize));
            }
            Instr::Cfg { n, m, agg, bypass } => {
                let (n, m, agg, bypass) = (*n as usize, *m as usize, *agg as usize, *bypass);
                if n == 0 || n > m || m % 2 != 0 || m > 2 * a.distribution.fan_in {
                    return Err(format!("{n}:{m} is not a pattern this macro can configure (M even, <= {})", 2 * a.distribution.fan_in));
                }
                if agg == 0 || p % agg != 0 || agg > a.sparsity.aggregation {
                    return Err(format!("agg = {agg} must divide {p} sub-macros and be <= {}", a.sparsity.aggregation));
                }
                if bypass && !(n == m && a.distribution.dense_bypass && !a.hard_wired()) {
                    return Err(format!("bypass with {n}:{m}: the dense bypass takes a dense (M:M) pattern on a macro with distribution.dense_bypass = true"));
                }
                self.drain();
                let t = timing::cfg(a);
                self.busy(cy::SELECT, t);
                self.cfg = Some((n, m, agg, bypass));
            }
            Instr::Ldw { sm, row, col, rows, cols, w, meta } => {
                let (sm, row, col, rows, cols) = (*sm as usize, *row as usize, *col as usize, *rows as usize, *cols as usize);
                if sm >= p || row + rows > r || col + cols > c {
                    return Err(format!("region sub-macro {sm}, rows {row}..{}, cols {col}..{} is outside {p} × {r} × {c}", row + rows, col + cols));
                }
                if w.len() != rows * cols || meta.len() != rows * cols {
                    return Err(format!("{} weights and {} metadata bits for {rows} × {cols} cells", w.len(), meta.len()));
                }
                if a.array.meta_bits == 0 && meta.iter().any(|&b| b != 0) {
                    return Err("metadata bit set, but this macro's cells have none (macro.meta_bits = 0)".into());
                }
                let bypass = self.bypass();
                if bypass && meta.iter().any(|&b| b != 0) {
                    return Err("metadata bit set in the dense bypass (the metadata column is not written)".into());
                }
                for i in 0..rows {
                    let at = (sm * r + row + i) * c + col;
                    let cells = w[i * cols..(i + 1) * cols].iter().zip(&meta[i * cols..(i + 1) * cols]);
                    for ((d0, d1), (&v, &bit)) in self.w0[at..at + cols].iter_mut().zip(&mut self.w1[at..at + cols]).zip(cells) {
                        (*d0, *d1) = if bit != 0 { (0, v as i32) } else { (v as i32, 0) };
                    }
                }
                // Resident: the tile is already in its own macro, no wait.
                if !a.resident() {
                    self.drain();
                }
                let t = timing::ldw(a, self.stats(), (rows * cols) as u64, bypass);
                self.busy(cy::WEIGHT_LOAD, t);
            }
            Instr::Dsel { row, bus, s1, s2 } => {
                let row = *row as usize;
                if row >= r || bus.len() != p {
                    return Err(format!("row {row} with {} bus groups; the macro has {r} rows and {p} sub-macros", bus.len()));
                }
                if let Some(&v) = s1.iter().find(|&&v| v as usize >= a.distribution.fan_in) {
                    return Err(format!("stage-1 select {v} >= mux fan-in {}", a.distribution.fan_in));
                }
                if let Some(v) = s2.iter().flatten().find(|&&v| v as usize >= p || bus[v as usize].is_none()) {
                    return Err(format!("stage-2 select {v} names an idle or missing bus group"));
                }
                if a.distribution.stages == 0 && s2.iter().enumerate().any(|(s, v)| v.is_some_and(|v| v as usize != s)) {
                    return Err("this macro has no distribution muxes: stage-2 selects must be the identity".into());
                }
                let bypass = self.bypass();
                if bypass && (s1.iter().any(|&v| v != 0) || s2.iter().enumerate().any(|(s, v)| v.is_some_and(|v| v as usize != s))) {
                    return Err("in the dense bypass a row is wired to its bus offset: s1 must be 0 and s2 the identity".into());
                }
                self.sel[row] = RowSel { bus: bus.clone(), s1: s1.clone(), s2: s2.clone() };
                let t = timing::dsel(a, self.stats(), bypass);
                self.busy(cy::SELECT, t);
            }
            Instr::Ldx { addr, data } => {
                let at = *addr as usize;
                if at + data.len() > self.act.len() {
                    return Err(format!("bytes {at}..{} outside the {}-byte activation buffer", at + data.len(), self.act.len()));
                }
                self.drain();
                self.act[at..at + data.len()].copy_from_slice(data);
                let t = timing::ldx(a, self.stats(), data.len() as u64);
                self.busy(cy::ACT_LOAD, t);
            }
            Instr::Mac { x, xstride, y, count, acc } => self.mac(*x as usize, *xstride as usize, *y as usize, *count as usize, *acc)?,
            Instr::St { y, count, cols, dst, dstride } => {
                let (tokens, out, _) = self.cur.ok_or("no layer started (st needs a `layer` before it)")?;
                let (y, count, cols, dst, dstride) = (*y as usize, *count as usize, *cols as usize, *dst as usize, *dstride as usize);
                let stride = self.cfg.map_or(c, |(_, _, agg, _)| p / agg * c);
                if count > 0 && y + (count - 1) * stride + cols > self.acc.len() {
                    return Err(format!("accumulator words beyond {}", self.acc.len()));
                }
                if count > 0 && dst + (count - 1) * dstride + cols > tokens * out {
                    return Err(format!("writes beyond the layer output ({tokens} × {out})"));
                }
                self.drain();
                let li = self.res.outputs.len() - 1;
                for t in 0..count {
                    for k in 0..cols {
                        let v = self.acc[y + t * stride + k];
                        self.res.outputs[li][dst + t * dstride + k] = i32::try_from(v).map_err(|_| format!("result {v} overflows int32"))?;
                    }
                }
                let t = timing::st(a, self.stats(), (count * cols) as u64);
                self.busy(cy::WRITEBACK, t);
            }
            Instr::Host { elems, .. } => {
                let s = self.stats();
                s.host_elems = s.host_elems.saturating_add(*elems);
            }
            Instr::Sync => self.drain(),
        }
        Ok(())
    }

    fn mac(&mut self, x: usize, xstride: usize, y: usize, count: usize, accumulate: bool) -> Result<(), String> {
        let a = self.arch;
        let (p, r, c) = (a.array.sub_macros, a.array.rows, a.array.columns);
        let (_, m, agg, bypass) = self.cfg.ok_or("no cfg before mac")?;
        let sets = p / agg;
        // The enabled positions: (merger set, activation offset of the pair, first cell).
        let mut rel: Vec<(usize, usize, usize)> = Vec::with_capacity(p * r);
        let mut sub_active = vec![false; p];
        for row in 0..r {
            let sel = &self.sel[row];
            for (s, sel2) in sel.s2.iter().enumerate().take(p) {
                let Some(b) = *sel2 else { continue };
                let b = b as usize;
                let pair = sel.s1[b] as usize;
                if 2 * pair >= m {
                    return Err(format!("row {row}: sub-macro {s} selects pair {pair}, but M = {m} has {} pairs", m / 2));
                }
                let off = sel.bus[b].unwrap_or(0) as usize + 2 * pair;
                rel.push((s / agg, off, (s * r + row) * c));
                sub_active[s] = true;
            }
        }
        let max_off = rel.iter().map(|x| x.1 + 1).max().unwrap_or(0);
        if count > 0 && !rel.is_empty() && x + (count - 1) * xstride + max_off >= self.act.len() {
            return Err(format!("vectors read activation bytes beyond the {}-byte buffer", self.act.len()));
        }
        let words = sets * c;
        if count > 0 && y + count * words > self.acc.len() {
            return Err(format!("results {y}..{} beyond the {}-word accumulator", y + count * words, self.acc.len()));
        }
        // Functional execution.
        let mut psum = vec![0i32; words];
        for t in 0..count {
            let base = x + t * xstride;
            psum.iter_mut().for_each(|v| *v = 0);
            for &(e, off, at) in &rel {
                let (a0, a1) = (self.act[base + off] as i32, self.act[base + off + 1] as i32);
                let ps = &mut psum[e * c..(e + 1) * c];
                for ((v, &w0), &w1) in ps.iter_mut().zip(&self.w0[at..at + c]).zip(&self.w1[at..at + c]) {
                    *v += w0 * a0 + w1 * a1;
                }
            }
            let out = &mut self.acc[y + t * words..y + (t + 1) * words];
            if accumulate {
                out.iter_mut().zip(&psum).for_each(|(o, &v)| *o += v as i64);
            } else {
                out.iter_mut().zip(&psum).for_each(|(o, &v)| *o = v as i64);
            }
        }
        // Timing and events: the shared rules (timing.rs).
        let mut offs: Vec<usize> = rel.iter().flat_map(|x| [x.1, x.1 + 1]).collect();
        offs.sort_unstable();
        offs.dedup();
        let n_sub = sub_active.iter().filter(|&&x| x).count() as u64;
        let n_sets = (0..sets).filter(|e| sub_active[e * agg..(e + 1) * agg].iter().any(|&x| x)).count() as u64;
        let shape = MacShape { count: count as u64, positions: rel.len() as u64, bytes: offs.len() as u64, active_subs: n_sub, active_sets: n_sets, agg: agg as u64, sets: sets as u64, accumulate, bypass };
        let start = self.now;
        let t = timing::mac(a, self.stats(), &shape);
        self.busy(cy::COMPUTE, t.ideal);
        self.busy(cy::STALL, t.issue - t.ideal);
        self.drain_at = self.drain_at.max(start + t.finish);
        Ok(())
    }
}

/// Runs a stream on an architecture.
pub fn simulate(arch: &Arch, prog: &Program) -> Result<SimResult, SimError> {
    let (p, r, c) = (arch.array.sub_macros, arch.array.rows, arch.array.columns);
    let idle = RowSel { bus: vec![None; p], s1: vec![0; p], s2: vec![None; p] };
    let mut mach = Machine {
        arch,
        w0: vec![0; p * r * c],
        w1: vec![0; p * r * c],
        sel: vec![idle; r],
        act: vec![0; arch.buffers.activation_bytes],
        acc: vec![0; arch.buffers.output_words],
        cfg: None,
        now: 0,
        drain_at: 0,
        res: SimResult::default(),
        cur: None,
    };
    for (index, ins) in prog.instrs.iter().enumerate() {
        mach.exec(ins).map_err(|message| SimError { index, mnemonic: ins.mnemonic(), message })?;
    }
    mach.drain();
    let mut res = mach.res;
    let mut total = Stats { name: "total".into(), ..Stats::default() };
    res.layers.iter().for_each(|l| total.add(l));
    res.total = total;
    Ok(res)
}
