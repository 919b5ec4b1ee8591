//! The timing and energy-event rules of the FlexCiM-like macro, one function
//! per instruction kind, shared by the cycle-level simulator ([`super::sim`])
//! and the analytical model ([`super::analytic`]) so both count the same way.
//!
//! Each function adds its energy events (and MACs) to a [`Stats`] and returns
//! the cycles its instruction occupies; the caller keeps the clock (the
//! simulator drains the pipeline before `ldw`/`ldx`/`st`/`cfg`/`sync`, the
//! analytical model adds a `mac`'s whole latency for the same reason; under
//! the resident regime `ldw` neither drains nor costs, so passes overlap).
//! Every size, depth and bandwidth comes from the [`Arch`].

use super::arch::Arch;
use super::sim::Stats;

/// Energy event indices (the order of [`super::arch::EnergyTable::entries`]).
pub mod ev {
    /// One cell read per enabled cell per vector.
    pub const CELL_READ: usize = 0;
    /// One in-cell multiply.
    pub const MAC: usize = 1;
    /// One add in a column adder tree.
    pub const ADDER_ADD: usize = 2;
    /// One pair through one mux stage.
    pub const MUX_HOP: usize = 3;
    /// One add in the merger.
    pub const MERGE_ADD: usize = 4;
    /// One psum FIFO write.
    pub const FIFO_WRITE: usize = 5;
    /// One psum FIFO read.
    pub const FIFO_READ: usize = 6;
    /// One activation buffer byte read.
    pub const ACT_READ: usize = 7;
    /// One activation buffer byte written.
    pub const ACT_WRITE: usize = 8;
    /// One accumulator word read or written.
    pub const OUT_ACCESS: usize = 9;
    /// One cell written.
    pub const WEIGHT_WRITE: usize = 10;
    /// One select-register bit written.
    pub const SELECT_WRITE: usize = 11;
    /// One byte over the off-macro port.
    pub const OFFCHIP: usize = 12;
}

/// Cycle category indices (the order of [`super::sim::CYCLE_KINDS`]).
pub mod cy {
    /// Vectors issued at the initiation interval.
    pub const COMPUTE: usize = 0;
    /// Issue held back by the psum FIFO.
    pub const STALL: usize = 1;
    /// Waiting for the pipeline to empty.
    pub const DRAIN: usize = 2;
    /// Writing weights into the array.
    pub const WEIGHT_LOAD: usize = 3;
    /// Activations into the buffer.
    pub const ACT_LOAD: usize = 4;
    /// Results out.
    pub const WRITEBACK: usize = 5;
    /// Select registers and configuration.
    pub const SELECT: usize = 6;
}

/// `a / b` rounded up (`b` of 0 counts as 1).
pub fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}

/// Bits written per cell: weight + metadata, or the weight alone in the
/// dense bypass (the metadata column is write-masked).
pub fn cell_bits(a: &Arch, bypass: bool) -> u64 {
    (a.array.weight_bits + if bypass { 0 } else { a.array.meta_bits }) as u64
}

/// `cfg`: one select cycle.
pub fn cfg(_a: &Arch) -> u64 {
    1
}

/// `ldw` of `cells` cells: the slower of the array write port and the
/// off-macro port; under the resident regime a preload (no cycles, no
/// energy, counted in `preloaded_cells`).
pub fn ldw(a: &Arch, s: &mut Stats, cells: u64, bypass: bool) -> u64 {
    if a.resident() {
        s.preloaded_cells += cells;
        return 0;
    }
    let bits = cells * cell_bits(a, bypass);
    s.weight_offchip_bytes += ceil_div(bits, 8);
    s.events[ev::WEIGHT_WRITE] += cells;
    s.events[ev::OFFCHIP] += ceil_div(bits, 8);
    ceil_div(bits, a.buffers.weight_load_bits_per_cycle as u64).max(ceil_div(ceil_div(bits, 8), a.buffers.offchip_bytes_per_cycle as u64))
}

/// `dsel` of one row: the row's select bits (none in the dense bypass) plus
/// a 32-bit bus offset per sub-macro; under the resident regime preloaded
/// with the weights (free).
pub fn dsel(a: &Arch, s: &mut Stats, bypass: bool) -> u64 {
    if a.resident() {
        return 0;
    }
    let sel = if bypass { 0 } else { a.select_bits_per_row() as u64 };
    let bits = sel + 32 * a.array.sub_macros as u64;
    s.events[ev::SELECT_WRITE] += bits;
    ceil_div(bits, a.buffers.select_bits_per_cycle as u64)
}

/// `ldx` of `bytes` activation bytes over the off-macro port.
pub fn ldx(a: &Arch, s: &mut Stats, bytes: u64) -> u64 {
    s.events[ev::ACT_WRITE] += bytes;
    s.events[ev::OFFCHIP] += bytes;
    ceil_div(bytes, a.buffers.offchip_bytes_per_cycle as u64)
}

/// `st` of `words` int32 results over the off-macro port.
pub fn st(a: &Arch, s: &mut Stats, words: u64) -> u64 {
    s.events[ev::OUT_ACCESS] += words;
    s.events[ev::OFFCHIP] += words * 4;
    ceil_div(words * 4, a.buffers.offchip_bytes_per_cycle as u64)
}

/// What one `mac` enables: the shape its timing and events depend on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct MacShape {
    /// Vectors streamed.
    pub count: u64,
    /// Enabled (row, sub-macro) positions; each drives all columns.
    pub positions: u64,
    /// Distinct activation bytes the enabled rows read per vector.
    pub bytes: u64,
    /// Sub-macros with at least one enabled row.
    pub active_subs: u64,
    /// Merger sets with at least one active sub-macro.
    pub active_sets: u64,
    /// Sub-macros per merger set.
    pub agg: u64,
    /// Merger sets (P / agg): accumulator words per vector = sets × columns.
    pub sets: u64,
    /// Added to the accumulator (read-modify-write) rather than written.
    pub accumulate: bool,
    /// In the dense bypass: no mux stages (latency or energy).
    pub bypass: bool,
}

/// When a `mac` issues and finishes, relative to its start.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct MacTiming {
    /// Cycles at the ideal initiation interval (compute).
    pub ideal: u64,
    /// Cycles until the last vector has entered (ideal + FIFO stalls).
    pub issue: u64,
    /// Cycles until the last result is in the accumulator.
    pub finish: u64,
}

/// The timing of a `mac` (initiation intervals, the psum FIFO, the pipeline
/// depths), adding its events, MACs and array capacity to `s`.
pub fn mac(a: &Arch, s: &mut Stats, m: &MacShape) -> MacTiming {
    let (p, r, c) = (a.array.sub_macros as u64, a.array.rows as u64, a.array.columns as u64);
    let words = m.sets * c;
    let ii_in = ceil_div(m.bytes, a.buffers.activation_read_bytes_per_cycle as u64).max(1);
    let ii_out = ceil_div(words, a.buffers.output_words_per_cycle as u64).max(1);
    let mux_stages = if m.bypass { 0 } else { a.distribution.stages as u64 };
    let (front, back, depth) = (a.front_latency() - a.distribution.stages as u64 + mux_stages, a.back_latency(), a.pipeline.psum_fifo_depth);
    // Vector t enters at enter(t) and is merged at merged(t); only the last
    // `depth` merge times matter (the FIFO), kept in a ring.
    let count = m.count as usize;
    let mut ring = vec![0u64; depth.clamp(1, count.max(1))];
    let (mut enter, mut merged) = (0u64, 0u64);
    for t in 0..count {
        let mut e = if t == 0 { 0 } else { enter + ii_in };
        if t >= depth {
            e = e.max(ring[t % ring.len()].saturating_sub(front));
        }
        let mg = (e + front).max(if t == 0 { 0 } else { merged + ii_out });
        (enter, merged) = (e, mg);
        let len = ring.len();
        ring[t % len] = mg;
    }
    let issue = if count == 0 { 0 } else { enter + ii_in };
    let finish = if count == 0 { 0 } else { merged + ii_out + back };
    let ideal = m.count * ii_in;
    let (cells, cnt) = (m.positions * c, m.count);
    s.macs += cells * cnt;
    s.cell_cycles += p * r * c * ideal;
    let e = &mut s.events;
    e[ev::CELL_READ] += cells * cnt;
    e[ev::MAC] += cells * cnt;
    e[ev::ADDER_ADD] += m.active_subs * (r - 1) * c * cnt;
    e[ev::MUX_HOP] += m.positions * mux_stages * cnt;
    e[ev::MERGE_ADD] += m.active_sets * (m.agg - 1) * c * cnt;
    e[ev::FIFO_WRITE] += m.active_subs * c * cnt;
    e[ev::FIFO_READ] += m.active_subs * c * cnt;
    e[ev::ACT_READ] += m.bytes * cnt;
    e[ev::OUT_ACCESS] += words * cnt * if m.accumulate { 2 } else { 1 };
    MacTiming { ideal, issue, finish }
}
