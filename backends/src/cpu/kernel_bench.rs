//! The GEMV/GEMM primitive benchmark behind `flexc bench kernels` and the
//! `lowbit` / `sparse` cargo benches: one row type ([`KernelBenchRow`]), one
//! timing loop, for every primitive on every shape and thread count.
//!
//! **Primitives and schemes** (built in [`cases`]):
//! - `lut`: the T-MAC LUT kernel on `#gq` 1–4 bits (symmetric, group 128, or
//!   64 when 128 does not divide `k`) and per-tensor `#ternary`;
//! - `shiftadd`: the shift-add kernel on `#bcq` 1–4 bits with APoT `α`
//!   (ShiftAddLLM, 3 power-of-two terms, the same group rule);
//! - `sparse`: the N:M kernel (default 2:4, 4:8, 2:8). It reads f32 values
//!   plus in-group indices, so its `bits` is the effective bits per *dense*
//!   weight it streams, metadata included (2:4 ≈ 17, 4:8 ≈ 17.5, 2:8 ≈ 8.5);
//! - `dequant`: the llama.cpp-style int-dot kernels (Q8 activations) of
//!   Q4_0, Q2_K, TQ2_0 and Q8_0;
//! - `dense`: f32 weights × f32 activations.
//!
//! **Baselines** (`baseline`, `speedup_vs_dequant` = baseline seconds over the
//! row's seconds, same shape, threads and run). At the same bits: 4 → Q4_0,
//! 2 → Q2_K, ternary → TQ2_0 (the pairs). 1 bit → TQ2_0 (2.06 bits
//! per weight: the smallest int-dot format the JIT has; ggml's TQ1_0/IQ1_*
//! are not implemented). 3 bits → Q2_K (2.625 bits per weight): llama.cpp's
//! Q3_K (3.44) is not implemented, Q2_K is the nearest format of the same
//! K-quant family and streams fewer bytes than Q3_K would, so the ratio is a
//! conservative one. Sparse and dense f32 rows → Q8_0 (8.5 bits per weight,
//! the widest int-dot format). Q2_K and TQ2_0 need `k % 256 = 0`; for other
//! `k` (SmolLM2's 576, Gemma's 640) the baseline is Q4_0, which is what
//! llama.cpp itself quantizes such a tensor to (TQ2_0 → Q4_0; Q2_K/Q3_K →
//! IQ4_NL, the same 4.5 bits per weight and int-dot kernel shape as Q4_0,
//! not in the JIT). `speedup_vs_dequant` is null on dequant rows and where
//! the baseline cannot run (`k % 32 ≠ 0`). `speedup_vs_dense` is against the
//! dense f32 row (the sparse kernel's own comparison: same f32 values).
//! `t_over_t1` is `t(b)/t(1)` within `lut` and within `shiftadd` (over the
//! primitive's 1-bit row; ternary is compared with LUT 1-bit too).
//!
//! **Timing.** Every call includes its activation preprocessing (LUT
//! tables, shift-add tables, Q8_0/Q8_K quantization), as in a decode step.
//! All cases of one (shape, thread count) run **round-robin**, call by call,
//! so machine-load drift hits every row alike; each row's time is the
//! fastest of its samples (at least [`MIN_ROUNDS`], about `budget` per
//! row), its median is reported next to it. The minimum, not the median: on
//! a shared machine interference (preemption by other jobs, their cache and
//! DRAM traffic) only ever adds time, and it adds more to longer calls (a
//! 10 ms call is preempted in most samples, a 0.5 ms one rarely), so medians
//! under load bias the ratios against the slower kernel. Weights
//! rotate over enough copies that one round-robin pass touches ≥ 96 MiB
//! (3× the L3 of the project machine), so every call streams its weights
//! from DRAM. Row blocks are split over the runtime's [`Pool`] in `2·threads`
//! chunks for every primitive (as the runtime's dense GEMV does).
//!
//! **Roofline.** `roofline_fraction = weight_gb_s / roofline_gb_s`; the
//! roofline is [`KernelBenchOptions::bandwidth`] when given, otherwise
//! measured per thread count at the start and at the end of the run, the
//! better of the two ([`measure_bandwidth`]: a plain summing read of 32 MiB
//! slices from DRAM, split like the kernels and timed like them, by the
//! fastest pass). A kernel that keeps more reads in flight than that loop
//! can exceed it: a fraction above 1 is the loop's limit, not a
//! faster-than-DRAM kernel.

mod cases;
mod table;

use std::hint::black_box;
use std::time::{Duration, Instant};

use super::jit::{JitError, JitSession};
use super::runtime::Pool;
use cases::{baseline_for, Case};
pub use table::{row_json, rows_json, text_table};

/// A GEMV shape: output rows `m`, input columns `k`, and a label.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchShape {
    /// What the shape is (`smollm2 q/o`, ...).
    pub label: String,
    /// Output rows.
    pub m: usize,
    /// Input columns.
    pub k: usize,
}

impl BenchShape {
    /// A shape with a label.
    pub fn new(label: &str, m: usize, k: usize) -> Self {
        BenchShape { label: label.to_string(), m, k }
    }
}

/// SmolLM2-135M (hidden 576, 9×64 query heads, 3 KV heads, FFN 1536, tied
/// 49152-token head) and Gemma 3 270M (hidden 640, 4×256 query heads, 1 KV
/// head, FFN 2048, tied 262144-token head) layer shapes, `(label, m, k)`.
pub const REAL_SHAPES: [(&str, usize, usize); 11] = [
    ("smollm2 q/o", 576, 576),
    ("smollm2 k/v", 192, 576),
    ("smollm2 gate/up", 1536, 576),
    ("smollm2 down", 576, 1536),
    ("smollm2 head", 49152, 576),
    ("gemma3 q", 1024, 640),
    ("gemma3 k/v", 256, 640),
    ("gemma3 o", 640, 1024),
    ("gemma3 gate/up", 2048, 640),
    ("gemma3 down", 640, 2048),
    ("gemma3 head", 262144, 640),
];

/// Llama-7B's q/k/v/o, gate/up and down shapes.
pub const LLAMA7B_SHAPES: [(&str, usize, usize); 3] = [("llama7b q/k/v/o", 4096, 4096), ("llama7b gate/up", 11008, 4096), ("llama7b down", 4096, 11008)];

/// A primitive family (the `primitive` field of a row).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BenchPrimitive {
    /// T-MAC LUT kernel.
    Lut,
    /// Shift-add BCQ kernel.
    ShiftAdd,
    /// N:M sparse kernel.
    Sparse,
    /// Int-dot dequant baseline.
    Dequant,
    /// Dense f32.
    Dense,
}

impl BenchPrimitive {
    /// Every primitive, in table order.
    pub const ALL: [BenchPrimitive; 5] = [BenchPrimitive::Lut, BenchPrimitive::ShiftAdd, BenchPrimitive::Sparse, BenchPrimitive::Dequant, BenchPrimitive::Dense];

    /// The row's `primitive` string.
    pub fn name(self) -> &'static str {
        match self {
            BenchPrimitive::Lut => "lut",
            BenchPrimitive::ShiftAdd => "shiftadd",
            BenchPrimitive::Sparse => "sparse",
            BenchPrimitive::Dequant => "dequant",
            BenchPrimitive::Dense => "dense",
        }
    }

    /// Parses a [`BenchPrimitive::name`].
    pub fn parse(s: &str) -> Option<BenchPrimitive> {
        BenchPrimitive::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct KernelBenchOptions {
    /// Shapes, in order.
    pub shapes: Vec<BenchShape>,
    /// Thread counts; every shape runs at each.
    pub threads: Vec<usize>,
    /// Primitives whose rows are wanted; the dequant baselines (and dense
    /// f32 for sparse) they compare against are measured and reported too.
    pub primitives: Vec<BenchPrimitive>,
    /// N:M patterns of the sparse rows.
    pub patterns: Vec<(u8, u8)>,
    /// Activation rows per call (1 = decode GEMV).
    pub batch: usize,
    /// Timing per row (the round-robin runs `budget × rows` per shape and thread count).
    pub budget: Duration,
    /// LUT activation (table-quantization) group; T-MAC's 32.
    pub act_group: usize,
    /// Roofline GB/s for every thread count; `None` measures it.
    pub bandwidth: Option<f64>,
}

impl Default for KernelBenchOptions {
    fn default() -> Self {
        KernelBenchOptions {
            shapes: REAL_SHAPES.iter().chain(&LLAMA7B_SHAPES).map(|&(l, m, k)| BenchShape::new(l, m, k)).collect(),
            threads: vec![1, 2],
            primitives: BenchPrimitive::ALL.to_vec(),
            patterns: vec![(2, 4), (4, 8), (2, 8)],
            batch: 1,
            budget: Duration::from_millis(200),
            act_group: 32,
            bandwidth: None,
        }
    }
}

/// One measured primitive × scheme × shape × thread count.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelBenchRow {
    /// The shape's label.
    pub shape: String,
    /// `lut`, `shiftadd`, `sparse`, `dequant` or `dense`.
    pub primitive: &'static str,
    /// The weight scheme (`gq2`, `ternary`, `bcq3-apot`, `nm2:4`, `q2_k`, `f32`, ...).
    pub scheme: String,
    /// Code bits: 1–4, log2(3) ≈ 1.58 for ternary, 8 for Q8_0, 32 for f32;
    /// sparse: effective bits per dense weight streamed, metadata included.
    pub bits: f64,
    /// Streamed weight bits per weight (codes, scales, indices, padding).
    pub bits_per_weight: f64,
    /// Output rows.
    pub m: usize,
    /// Input columns.
    pub k: usize,
    /// Activation rows per call.
    pub batch: usize,
    /// Worker threads.
    pub threads: usize,
    /// Seconds per call (activation preprocessing included): the fastest
    /// sample, see the module docs. Every ratio is computed from it.
    pub seconds: f64,
    /// The median sample, for judging the noise.
    pub median_seconds: f64,
    /// Weight bytes one call streams.
    pub weight_bytes: usize,
    /// Weight bytes per second, GB/s.
    pub weight_gb_s: f64,
    /// The dequant scheme this row is compared with.
    pub baseline: Option<String>,
    /// Baseline seconds over this row's seconds.
    pub speedup_vs_dequant: Option<f64>,
    /// Dense f32 seconds over this row's seconds.
    pub speedup_vs_dense: Option<f64>,
    /// `t(b)/t(1)` within `lut` / `shiftadd`.
    pub t_over_t1: Option<f64>,
    /// The memory-bandwidth roofline at this thread count, GB/s.
    pub roofline_gb_s: f64,
    /// `weight_gb_s / roofline_gb_s`.
    pub roofline_fraction: f64,
}

/// Fewest samples per row.
pub const MIN_ROUNDS: usize = 5;
/// Most samples per row.
const MAX_ROUNDS: usize = 20_000;
/// Bytes one round-robin pass over a shape's cases touches at least.
const DRAM_BYTES: usize = 96 << 20;

/// The roofline used at each thread count.
#[derive(Clone, Debug, PartialEq)]
pub struct Roofline {
    /// Threads.
    pub threads: usize,
    /// GB/s.
    pub gb_s: f64,
    /// Measured by [`measure_bandwidth`] (false: given as an option).
    pub measured: bool,
}

/// The result of a run.
#[derive(Clone, Debug, Default)]
pub struct KernelBenchReport {
    /// Roofline per thread count.
    pub rooflines: Vec<Roofline>,
    /// The rows, by shape, then thread count, then primitive and bits.
    pub rows: Vec<KernelBenchRow>,
}

/// Sums `part` as `S` interleaved sequential streams (its `S` equal parts
/// read in lockstep, 64 bytes of each per step; two streams keep more line
/// fills in flight than one).
fn read_streams<const S: usize>(part: &[u64]) -> u64 {
    let n = part.len() / S / 8 * 8;
    let mut acc = [[0u64; 8]; S];
    for i in (0..n).step_by(8) {
        for (s, a) in acc.iter_mut().enumerate() {
            for (a, v) in a.iter_mut().zip(&part[s * n + i..s * n + i + 8]) {
                *a = a.wrapping_add(*v);
            }
        }
    }
    acc.iter().flatten().fold(0, |s, v| s ^ v)
}

/// The read roofline (GB/s) on `threads` threads of `pool`: the fastest of
/// 48 passes, each summing one 32 MiB slice of a 256 MiB ring (a slice is
/// read again only after 224 MiB of others, so it comes from DRAM), in 1 or
/// 2 interleaved streams per chunk (alternating), split into `2·threads`
/// chunks like the kernels. Timed like the kernels: the fastest sample.
pub fn measure_bandwidth(pool: &Pool, threads: usize) -> Result<f64, JitError> {
    const SLICE_WORDS: usize = (32 << 20) / 8;
    const SLICES: usize = 8;
    let buf: Vec<u64> = (0..(SLICE_WORDS * SLICES) as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
    let chunks = if threads <= 1 { 1 } else { 2 * threads };
    let sums: Vec<std::sync::atomic::AtomicU64> = (0..chunks).map(|_| Default::default()).collect();
    let mut best = 0f64;
    for pass in 0..48 {
        let slice = &buf[pass % SLICES * SLICE_WORDS..][..SLICE_WORDS];
        let read = |c: usize| {
            let part = &slice[SLICE_WORDS * c / chunks..SLICE_WORDS * (c + 1) / chunks];
            let v = if pass % 2 == 0 { read_streams::<1>(part) } else { read_streams::<2>(part) };
            sums[c].store(v, std::sync::atomic::Ordering::Relaxed);
        };
        let t = Instant::now();
        pool.run(chunks, &read).map_err(JitError::InvalidParams)?;
        best = best.max((SLICE_WORDS * 8) as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    black_box(&sums);
    Ok(best)
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), empty where
/// unavailable: benchmark output states the machine's load next to ratios.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

/// Splits `blocks` row blocks over `threads` threads of `pool` in `2·threads`
/// chunks (one chunk on the caller for 1 thread); `f(b0, b1)` runs a range.
pub(crate) fn split_blocks(pool: &Pool, threads: usize, blocks: usize, f: &(dyn Fn(usize, usize) + Sync)) -> Result<(), JitError> {
    let chunks = if threads <= 1 || pool.threads() == 1 { 1 } else { (2 * threads).min(blocks).max(1) };
    pool.run(chunks, &|c| f(blocks * c / chunks, blocks * (c + 1) / chunks)).map_err(JitError::InvalidParams)
}

/// Runs every case round-robin (see the module docs) and returns each one's
/// fastest and median seconds per call.
fn time_round_robin(cases: &mut [Case], pool: &Pool, threads: usize, copies: usize, budget: Duration, y: &mut [f32]) -> Result<Vec<(f64, f64)>, JitError> {
    for i in 0..copies.max(2) {
        for c in cases.iter_mut() {
            c.run(pool, threads, i % copies, y)?;
        }
    }
    let n = cases.len();
    let mut samples = vec![Vec::new(); n];
    let total = budget * n as u32;
    let start = Instant::now();
    let mut round = 0;
    while (start.elapsed() < total || round < MIN_ROUNDS) && round < MAX_ROUNDS {
        for j in 0..n {
            // Rotate the order so no case always follows the same one.
            let c = (round + j) % n;
            let t = Instant::now();
            cases[c].run(pool, threads, round % copies, y)?;
            samples[c].push(t.elapsed().as_secs_f64());
        }
        round += 1;
    }
    black_box(&y);
    Ok(samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            (s[0], s[s.len() / 2])
        })
        .collect())
}

/// Runs the benchmark; `progress` gets one line per shape and thread count.
pub fn run(session: &JitSession, o: &KernelBenchOptions, progress: &mut dyn FnMut(&str)) -> Result<KernelBenchReport, JitError> {
    if o.threads.is_empty() || o.threads.contains(&0) || o.batch == 0 || o.primitives.is_empty() {
        return Err(JitError::InvalidParams("threads, batch and primitives must be non-empty and positive".into()));
    }
    let pools: Vec<(usize, Pool)> = o.threads.iter().map(|&t| Pool::new(t).map(|p| (t, p))).collect::<Result<_, _>>().map_err(JitError::InvalidParams)?;
    // The roofline: given, or the best read bandwidth at the start and at the end.
    let read_all = |best: &mut Vec<f64>| -> Result<(), JitError> {
        for (i, (t, pool)) in pools.iter().enumerate() {
            best[i] = best[i].max(measure_bandwidth(pool, *t)?);
        }
        Ok(())
    };
    let mut best = vec![0f64; pools.len()];
    if o.bandwidth.is_none() {
        read_all(&mut best)?;
    }
    let mut rows = Vec::new();
    for shape in &o.shapes {
        let built = Instant::now();
        let mut cases = cases::build(session, shape, o, progress)?;
        if cases.is_empty() {
            continue;
        }
        let round_bytes: usize = cases.iter().map(|c| c.bytes).sum();
        let copies = DRAM_BYTES.div_ceil(round_bytes.max(1)).max(1);
        for c in &mut cases {
            c.set_copies(copies);
        }
        let setup = built.elapsed().as_secs_f64();
        let mut y = vec![0f32; o.batch * shape.m];
        for (t, pool) in &pools {
            let started = Instant::now();
            let secs = time_round_robin(&mut cases, pool, *t, copies, o.budget, &mut y)?;
            progress(&format!("{} {}x{}: {} rows, {} threads, setup {setup:.1} s, timing {:.1} s", shape.label, shape.m, shape.k, cases.len(), t, started.elapsed().as_secs_f64()));
            rows.extend(rows_of(shape, o.batch, *t, &cases, &secs));
        }
    }
    if o.bandwidth.is_none() {
        read_all(&mut best)?;
    }
    let rooflines: Vec<Roofline> = pools.iter().zip(&best).map(|((t, _), &b)| Roofline { threads: *t, gb_s: o.bandwidth.unwrap_or(b), measured: o.bandwidth.is_none() }).collect();
    for r in &mut rows {
        if let Some(roof) = rooflines.iter().find(|x| x.threads == r.threads) {
            r.roofline_gb_s = roof.gb_s;
            r.roofline_fraction = r.weight_gb_s / roof.gb_s;
        }
    }
    Ok(KernelBenchReport { rooflines, rows })
}

/// The rows of one shape and thread count, with the ratios filled in.
fn rows_of(shape: &BenchShape, batch: usize, threads: usize, cases: &[Case], secs: &[(f64, f64)]) -> Vec<KernelBenchRow> {
    let find = |p: BenchPrimitive, scheme: &str| cases.iter().zip(secs).find(|(c, _)| c.primitive == p && c.scheme == scheme).map(|(_, s)| s.0);
    let dense = find(BenchPrimitive::Dense, "f32");
    let mut rows: Vec<KernelBenchRow> = cases
        .iter()
        .zip(secs)
        .map(|(c, &(s, median))| {
            let gb_s = c.bytes as f64 / s / 1e9;
            let baseline = baseline_for(c.primitive, c.nominal_bits, shape.k).filter(|b| find(BenchPrimitive::Dequant, b.name()).is_some());
            let one_bit = match c.primitive {
                BenchPrimitive::Lut => find(c.primitive, "gq1"),
                BenchPrimitive::ShiftAdd => find(c.primitive, "bcq1-apot"),
                _ => None,
            };
            KernelBenchRow {
                shape: shape.label.clone(),
                primitive: c.primitive.name(),
                scheme: c.scheme.clone(),
                bits: if c.primitive == BenchPrimitive::Sparse { c.bytes as f64 * 8.0 / (shape.m * shape.k) as f64 } else { c.nominal_bits },
                bits_per_weight: c.bytes as f64 * 8.0 / (shape.m * shape.k) as f64,
                m: shape.m,
                k: shape.k,
                batch,
                threads,
                seconds: s,
                median_seconds: median,
                weight_bytes: c.bytes,
                weight_gb_s: gb_s,
                baseline: baseline.map(|b| b.name().to_string()),
                speedup_vs_dequant: baseline.and_then(|b| find(BenchPrimitive::Dequant, b.name())).map(|b| b / s),
                speedup_vs_dense: dense.filter(|_| c.primitive != BenchPrimitive::Dense).map(|d| d / s),
                t_over_t1: one_bit.map(|t1| s / t1),
                // Filled in by `run` once the roofline is known.
                roofline_gb_s: f64::NAN,
                roofline_fraction: f64::NAN,
            }
        })
        .collect();
    rows.sort_by(|a, b| (BenchPrimitive::parse(a.primitive), a.bits, &a.scheme).partial_cmp(&(BenchPrimitive::parse(b.primitive), b.bits, &b.scheme)).unwrap_or(std::cmp::Ordering::Equal));
    rows
}
