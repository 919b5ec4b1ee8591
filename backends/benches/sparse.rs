//! N:M sparse GEMV/GEMM against the dense f32 GEMV and the Q8_0 int-dot
//! baseline ([`flexc_backends::cpu::kernel_bench`]), side by side in one
//! run, on SmolLM2-135M and Gemma-3-270M FFN shapes.
//!
//! `cargo bench -p flexc-backends --bench sparse [-- THREADS [ROWS_X [BUDGET_MS [N:M,N:M,... [NOUTxK ...]]]]]`
//! (defaults: 1 thread, 1 activation row = decode, 1000 ms per row,
//! 2:4,4:8,2:8,1:4,8:16, 576x1536 1536x576 640x2048). Prints the load
//! average before and after: the machine is shared, compare the ratios
//! within a run.

use std::time::Duration;

use flexc_backends::cpu::kernel_bench::{load_average, run, text_table, BenchPrimitive, BenchShape, KernelBenchOptions};
use flexc_backends::cpu::JitSession;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let mut o = KernelBenchOptions {
        threads: vec![args.first().and_then(|a| a.parse().ok()).unwrap_or(1)],
        batch: args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1),
        budget: Duration::from_millis(args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000)),
        primitives: vec![BenchPrimitive::Sparse],
        patterns: vec![(2, 4), (4, 8), (2, 8), (1, 4), (8, 16)],
        ..Default::default()
    };
    if let Some(p) = args.get(3) {
        o.patterns = p.split(',').filter_map(|s| s.split_once(':')).filter_map(|(n, m)| Some((n.parse().ok()?, m.parse().ok()?))).collect();
    }
    o.shapes = args.iter().skip(4).filter_map(|s| s.split_once('x')).filter_map(|(m, k)| Some(BenchShape::new(&format!("{m}x{k}"), m.parse().ok()?, k.parse().ok()?))).collect();
    if o.shapes.is_empty() {
        o.shapes = vec![BenchShape::new("smollm2 down", 576, 1536), BenchShape::new("smollm2 gate/up", 1536, 576), BenchShape::new("gemma3 down", 640, 2048)];
    }
    let session = JitSession::host().unwrap_or_else(|e| {
        eprintln!("no JIT session: {e}");
        std::process::exit(1);
    });
    println!("load average before: {}", load_average());
    match run(&session, &o, &mut |l| eprintln!("{l}")) {
        Ok(rep) => print!("{}", text_table(&rep)),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
    println!("load average after: {}", load_average());
}
