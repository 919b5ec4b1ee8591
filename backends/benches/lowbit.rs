//! LUT (T-MAC) GEMV vs the int-dot dequant baselines at the same bits, 1
//! thread by default, on Llama-7B and the real models' FFN shapes.
//!
//! `cargo bench -p flexc-backends --bench lowbit [-- THREADS [BUDGET_MS [ACT_GROUP [MxK ...]]]]`.
//! Prints the load average before and after (the machine is shared: compare
//! the ratios within one run, not absolute numbers across runs).

use std::time::Duration;

use flexc_backends::cpu::kernel_bench::{bench_kernels, BENCH_ACT_GROUP};
use flexc_backends::cpu::JitSession;

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let threads = args.first().and_then(|a| a.parse().ok()).unwrap_or(1);
    let budget = Duration::from_millis(args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1500));
    let act_group = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(BENCH_ACT_GROUP);
    let mut shapes: Vec<(usize, usize)> = args.iter().skip(3).filter_map(|s| s.split_once('x')).filter_map(|(m, k)| Some((m.parse().ok()?, k.parse().ok()?))).collect();
    if shapes.is_empty() {
        // Llama-7B q/ffn_up/ffn_down, gemma-3-270m ffn_down, qwen2.5-0.5b ffn_down.
        shapes = vec![(4096, 4096), (11008, 4096), (4096, 11008), (640, 2048), (896, 4864)];
    }
    let session = match JitSession::host() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("no JIT session: {e}");
            std::process::exit(1);
        }
    };
    println!("load average before: {}", load());
    for &shape in &shapes {
        let rows = match bench_kernels(&session, &[shape], threads, act_group, budget) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}x{}: {e}", shape.0, shape.1);
                continue;
            }
        };
        let t1 = rows.iter().find(|r| r.scheme == "gq1").map(|r| r.seconds).unwrap_or(f64::NAN);
        println!("{:>5}x{:<5} thr {} act_group {} | load {}", shape.0, shape.1, threads, act_group, load());
        for r in &rows {
            let sp = r.speedup_vs_dequant.map(|s| format!("{s:5.2}x")).unwrap_or_else(|| "    -".into());
            let rel = if r.primitive == "lut" { format!("t/t(1) {:4.2}", r.seconds / t1) } else { String::new() };
            println!("  {:8} {:8} {} bits  {:9.1} us  {:6.2} GB/s  roof {:4.2}  vs dequant {}  {}", r.primitive, r.scheme, r.bits, r.seconds * 1e6, r.weight_gb_s, r.roofline_fraction, sp, rel);
        }
    }
    println!("load average after: {}", load());
}
