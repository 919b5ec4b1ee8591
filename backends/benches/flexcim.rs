//! FlexCiM simulator speed: simulated cell MACs per second of the
//! cycle-level engine (functional execution + cycle and energy counting) on
//! one core, at SmolLM2-135M layer shapes, for decode (1 row) and a 16-row
//! prefill chunk, aligned and per-row 2:4 masks and the dense baseline.
//! `sim` times `simulate` on a ready stream; `lower+sim` adds the lowering.
//!
//! `cargo bench -p flexc-backends --bench flexcim [-- BUDGET_MS]` (default
//! 1000 ms per case). Prints the load average before and after: the machine
//! is shared, compare ratios within one run. The target is >= 50 M
//! simulated MACs per second.

use std::time::{Duration, Instant};

use flexc_backends::flexcim::arch::{Arch, Nm};
use flexc_backends::flexcim::isa::Program;
use flexc_backends::flexcim::lower::{lower_layer, synthetic_layer, Rng};
use flexc_backends::flexcim::sim::simulate;

const SHAPES: [(usize, usize); 3] = [(576, 576), (1536, 576), (576, 1536)];

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

/// Runs `f` until `budget` has passed (at least once); returns seconds per call.
fn time(budget: Duration, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    let mut n = 0u32;
    while n == 0 || t.elapsed() < budget {
        f();
        n += 1;
    }
    t.elapsed().as_secs_f64() / n as f64
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let budget = Duration::from_millis(args.first().and_then(|a| a.parse().ok()).unwrap_or(1000));
    let flexcim = Arch::default_flexcim();
    let dense = match flexcim.baseline("dense") {
        Ok(a) => a,
        Err(e) => {
            eprintln!("no dense baseline: {e}");
            std::process::exit(1);
        }
    };
    println!("load average before: {}", load());
    println!("{:<10} {:<8} {:>5}  {:>12}  {:>14}  {:>18}", "arch", "mask", "rows", "cell MACs", "sim M MAC/s", "lower+sim M MAC/s");
    let (mut all_macs, mut all_sim) = (0u64, 0.0f64);
    for (arch, label) in [(&flexcim, "flexcim"), (&dense, "dense")] {
        for (mask, aligned) in [("aligned", true), ("per-row", false)] {
            for rows in [1usize, 16] {
                let mut rng = Rng(7);
                let work: Vec<_> = SHAPES
                    .iter()
                    .map(|&(o, k)| {
                        let l = synthetic_layer("l", o, k, Nm::of(2, 4), aligned, 32, &mut rng);
                        let x: Vec<i8> = (0..rows * k).map(|_| rng.i8()).collect();
                        (l, x)
                    })
                    .collect();
                let lower = || {
                    let mut p = Program::default();
                    for (l, x) in &work {
                        if let Err(e) = lower_layer(arch, l, x, rows, &mut p) {
                            eprintln!("lowering failed: {e}");
                            std::process::exit(1);
                        }
                    }
                    p
                };
                let prog = lower();
                let macs = match simulate(arch, &prog) {
                    Ok(r) => r.total.macs,
                    Err(e) => {
                        eprintln!("simulation failed: {e}");
                        std::process::exit(1);
                    }
                };
                let sim = time(budget, || {
                    std::hint::black_box(simulate(arch, &prog).ok());
                });
                let both = time(budget, || {
                    std::hint::black_box(simulate(arch, &lower()).ok());
                });
                all_macs += macs;
                all_sim += sim;
                println!("{label:<10} {mask:<8} {rows:>5}  {macs:>12}  {:>14.1}  {:>18.1}", macs as f64 / sim / 1e6, macs as f64 / both / 1e6);
            }
        }
    }
    println!("overall sim: {:.1} M simulated MAC/s", all_macs as f64 / all_sim / 1e6);
    println!("load average after: {}", load());
}
