//! N:M sparse GEMV/GEMM vs the same weights decoded to dense f32 (the f32
//! `GemvKernel`), side by side in one run, on SmolLM2-135M and Gemma-3-270M
//! FFN shapes.
//!
//! `cargo bench -p flexc-backends --bench sparse [-- THREADS [ROWS_X [BUDGET_MS [N:M,N:M,... [NOUTxK ...]]]]]`
//! (defaults: 1 thread, 1 activation row = decode, 1500 ms per row,
//! 2:4,4:8,1:4,8:16, 576x1536 1536x576 640x2048). Prints the load average
//! before and after: the machine is shared, compare the ratios within a run.

use std::time::Duration;

use flexc_backends::cpu::sparse_bench::{bench_sparse, BENCH_PATTERNS, BENCH_SHAPES};
use flexc_backends::cpu::JitSession;

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let threads = args.first().and_then(|a| a.parse().ok()).unwrap_or(1);
    let rows_x = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let budget = Duration::from_millis(args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1500));
    let patterns: Vec<(u8, u8)> = args
        .get(3)
        .map(|p| p.split(',').filter_map(|s| s.split_once(':')).filter_map(|(n, m)| Some((n.parse().ok()?, m.parse().ok()?))).collect())
        .unwrap_or_else(|| BENCH_PATTERNS.to_vec());
    let mut shapes: Vec<(usize, usize)> = args.iter().skip(4).filter_map(|s| s.split_once('x')).filter_map(|(m, k)| Some((m.parse().ok()?, k.parse().ok()?))).collect();
    if shapes.is_empty() {
        shapes = BENCH_SHAPES.to_vec();
    }
    let session = match JitSession::host() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("no JIT session: {e}");
            std::process::exit(1);
        }
    };
    println!("load average before: {}", load());
    println!("pattern  n_out x k     rows_x thr   sparse us  dense us   sparse GB/s  dense GB/s  roof   speedup  bytes/kept (stream, codec)");
    for &shape in &shapes {
        let rows = match bench_sparse(&session, &[shape], &patterns, rows_x, threads, budget) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}x{}: {e}", shape.0, shape.1);
                continue;
            }
        };
        for r in &rows {
            let kept = (r.rows * r.cols / r.m as usize * r.n as usize) as f64;
            println!(
                "{:>2}:{:<2}    {:>5}x{:<5}  {:>6} {:>3}  {:9.1} {:9.1}  {:10.2} {:11.2}  {:5.2}  {:6.2}x   {:.3}, {:.3}",
                r.n, r.m, r.rows, r.cols, r.rows_x, r.threads, r.seconds * 1e6, r.dense_seconds * 1e6, r.weight_gb_s, r.dense_gb_s,
                r.roofline_fraction, r.speedup_vs_dense, r.streamed_bytes as f64 / kept, r.codec_bytes as f64 / kept
            );
        }
    }
    println!("load average after: {}", load());
}
