//! N:M sparse GEMV/GEMM benchmark rows: the JIT sparse kernel
//! ([`super::sparse`]) against the same weights decoded to dense f32 and run
//! through the f32 GEMV path ([`GemvKernel`] with [`WeightFormat::F32`]), in
//! the same run, both split over the runtime's worker pool the same way.
//!
//! The two kernels are timed alternately, call by call, so machine load
//! drifts hit both alike; the reported times are medians. Weights rotate over
//! enough copies (≥ 96 MiB, at most 32) that each call streams them from
//! DRAM, as in decode. `weight_gb_s` counts the bytes the sparse kernel
//! streams (kept values + index metadata, [`SparseWeights::streamed_bytes`]);
//! `dense_gb_s` the dense f32 bytes. `roofline_fraction` is the sparse GB/s
//! over 30 GB/s per thread (capped at 36), the measured DRAM read bandwidth
//! of the project machine (reference/stack.md §5).

use std::hint::black_box;
use std::time::{Duration, Instant};

use flexc_ir::quant::{decode, encode};
use flexc_ir::Encoding;

use super::codegen::MAX_TILE;
use super::format::WeightFormat;
use super::gemv::GemvKernel;
use super::jit::{JitError, JitSession};
use super::runtime::{pooled_gemv, GemvArg, Pool};
use super::sparse::{SparseKernel, SparseWeights};
use crate::xorshift::XorShift as Xs;

/// The patterns the benchmark runs by default (the FLOW ones that prune).
pub const BENCH_PATTERNS: [(u8, u8); 4] = [(2, 4), (4, 8), (1, 4), (8, 16)];

/// SmolLM2-135M ffn_down and ffn_up/gate, Gemma-3-270M ffn_down (`n_out × k`).
pub const BENCH_SHAPES: [(usize, usize); 3] = [(576, 1536), (1536, 576), (640, 2048)];

/// One benchmark result: one pattern on one shape.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseBenchRow {
    /// Kept per group.
    pub n: u8,
    /// Group size.
    pub m: u8,
    /// Output rows (`n_out`).
    pub rows: usize,
    /// Input columns (`k`).
    pub cols: usize,
    /// Activation rows per call (1 = decode).
    pub rows_x: usize,
    /// Worker threads.
    pub threads: usize,
    /// Median seconds per sparse call.
    pub seconds: f64,
    /// Median seconds per dense f32 call on the decoded weights.
    pub dense_seconds: f64,
    /// Bytes the sparse kernel streams per call.
    pub streamed_bytes: usize,
    /// Bytes of the weight in the `#nm` codec.
    pub codec_bytes: usize,
    /// Bytes of the dense f32 weight.
    pub dense_bytes: usize,
    /// Sparse streamed bytes per second, GB/s.
    pub weight_gb_s: f64,
    /// Dense f32 bytes per second, GB/s.
    pub dense_gb_s: f64,
    /// `dense_seconds / seconds`.
    pub speedup_vs_dense: f64,
    /// `weight_gb_s` over the DRAM read roofline.
    pub roofline_fraction: f64,
}

fn copies_for(bytes: usize) -> usize {
    (96usize << 20).div_ceil(bytes.max(1)).clamp(2, 32)
}

/// Benchmarks every pattern on every `(n_out, k)` shape with `rows_x`
/// activation rows per call and `threads` pool threads, spending about
/// `budget` on each row.
pub fn bench_sparse(
    session: &JitSession,
    shapes: &[(usize, usize)],
    patterns: &[(u8, u8)],
    rows_x: usize,
    threads: usize,
    budget: Duration,
) -> Result<Vec<SparseBenchRow>, JitError> {
    if rows_x == 0 {
        return Err(JitError::InvalidParams("rows_x must be positive".into()));
    }
    let threads = threads.max(1);
    let pool = Pool::new(threads).map_err(JitError::InvalidParams)?;
    let tile = rows_x.min(MAX_TILE);
    let mut rng = Xs(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    for &(rows, cols) in shapes {
        let dense_kernel = GemvKernel::with_tile(session, WeightFormat::F32, rows, cols, tile)?;
        let x: Vec<f32> = (0..rows_x * cols).map(|_| rng.f()).collect();
        let mut y = vec![0f32; rows_x * rows];
        for &(n, m) in patterns {
            let enc = Encoding::Nm { n, m };
            let vals: Vec<f32> = (0..rows * cols).map(|_| rng.f()).collect();
            let codec = encode(enc, &vals).map_err(JitError::InvalidParams)?;
            let mut dense = vec![0f32; rows * cols];
            decode(enc, &codec, &mut dense).map_err(JitError::InvalidParams)?;
            let dense_bytes: Vec<u8> = dense.iter().flat_map(|v| v.to_le_bytes()).collect();
            let packed = SparseWeights::pack(n, m, &codec, rows, cols)?;
            let kernel = SparseKernel::with_tile(session, packed.spec(), tile)?;
            let sw: Vec<SparseWeights> = (0..copies_for(packed.streamed_bytes())).map(|_| packed.clone()).collect();
            let dw: Vec<Vec<u8>> = (0..copies_for(dense_bytes.len())).map(|_| dense_bytes.clone()).collect();
            let sparse_call = |i: usize, y: &mut [f32]| kernel.run_pool(&pool, black_box(&sw[i % sw.len()]), &x, rows_x, y, threads);
            let dense_call = |i: usize, y: &mut [f32]| {
                pooled_gemv(&pool, &dense_kernel, black_box(&dw[i % dw.len()]), GemvArg::F32(&x), y, threads)
                    .map_err(|e| JitError::InvalidParams(e.to_string()))
            };
            for i in 0..sw.len().max(dw.len()) {
                sparse_call(i, &mut y)?;
                dense_call(i, &mut y)?;
            }
            let (mut ts, mut td) = (Vec::new(), Vec::new());
            let start = Instant::now();
            while (start.elapsed() < budget || ts.len() < 5) && ts.len() < 5000 {
                let i = ts.len();
                let t = Instant::now();
                sparse_call(i, &mut y)?;
                ts.push(t.elapsed().as_secs_f64());
                let t = Instant::now();
                dense_call(i, &mut y)?;
                td.push(t.elapsed().as_secs_f64());
            }
            ts.sort_by(f64::total_cmp);
            td.sort_by(f64::total_cmp);
            let (s, d) = (ts[ts.len() / 2], td[td.len() / 2]);
            let gb_s = packed.streamed_bytes() as f64 / s / 1e9;
            out.push(SparseBenchRow {
                n,
                m,
                rows,
                cols,
                rows_x,
                threads,
                seconds: s,
                dense_seconds: d,
                streamed_bytes: packed.streamed_bytes(),
                codec_bytes: codec.len(),
                dense_bytes: dense_bytes.len(),
                weight_gb_s: gb_s,
                dense_gb_s: dense_bytes.len() as f64 / d / 1e9,
                speedup_vs_dense: d / s,
                roofline_fraction: gb_s / (30.0 * threads as f64).min(36.0),
            });
        }
    }
    Ok(out)
}
