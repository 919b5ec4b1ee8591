//! LUT (T-MAC) and shift-add GEMV against the int-dot dequant baselines at
//! the same bits ([`flexc_backends::cpu::kernel_bench`]), 1 thread by
//! default, on Llama-7B's shapes and two real FFN shapes.
//!
//! `cargo bench -p flexc-backends --bench lowbit [-- THREADS [BUDGET_MS [ACT_GROUP [MxK ...]]]]`.
//! Prints the load average before and after (the machine is shared: compare
//! the ratios within one run, not absolute numbers across runs).
//! `flexc bench kernels` runs the same library over every primitive.

use std::time::Duration;

use flexc_backends::cpu::kernel_bench::{load_average, run, text_table, BenchPrimitive, BenchShape, KernelBenchOptions, LLAMA7B_SHAPES};
use flexc_backends::cpu::JitSession;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let mut o = KernelBenchOptions {
        threads: vec![args.first().and_then(|a| a.parse().ok()).unwrap_or(1)],
        budget: Duration::from_millis(args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000)),
        primitives: vec![BenchPrimitive::Lut, BenchPrimitive::ShiftAdd],
        ..Default::default()
    };
    o.act_group = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(o.act_group);
    o.shapes = args.iter().skip(3).filter_map(|s| s.split_once('x')).filter_map(|(m, k)| Some(BenchShape::new(&format!("{m}x{k}"), m.parse().ok()?, k.parse().ok()?))).collect();
    if o.shapes.is_empty() {
        o.shapes = LLAMA7B_SHAPES.iter().map(|&(l, m, k)| BenchShape::new(l, m, k)).chain([BenchShape::new("gemma3 down", 640, 2048), BenchShape::new("smollm2 gate/up", 1536, 576)]).collect();
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
