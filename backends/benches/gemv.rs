//! GEMV/GEMM throughput of the JIT kernels on the real models' shapes.
//!
//! A plain timing loop (warm-up, then the median of N runs), no criterion:
//! for each shape and 1/2 threads it prints time per call, weight GB/s and
//! the fraction of ~30 GB/s per thread (the measured DRAM read bandwidth of
//! the project machine, see reference/stack.md §5), plus the JIT compile time.
//! "cold" rotates over enough weight copies (≥ 128 MiB) that every call
//! streams its weights from DRAM, as in decode; "hot" reuses one copy (L2/L3
//! resident for the small matrices), which bounds the kernel's compute speed.
//!
//! `cargo bench -p flexc-backends --bench gemv [-- FILTER...]` (filters match
//! the format name or the shape label).

use std::hint::black_box;
use std::time::{Duration, Instant};

use flexc_backends::cpu::{ActivationQ8, GemvKernel, JitSession, MAX_TILE, WeightFormat};

use flexc_backends::xorshift::XorShift as Rng;

/// Random weight bytes with sane f16 scales (throughput does not depend on
/// the values, but NaN/inf scales would be unrealistic).
fn weights(fmt: WeightFormat, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let n = rows * fmt.row_bytes(cols);
    let mut w = Vec::with_capacity(n + 8);
    while w.len() < n {
        w.extend_from_slice(&rng.bits().to_le_bytes());
    }
    w.truncate(n);
    let scale = half::f16::from_f32(0.01).to_bits().to_le_bytes();
    let fix: &[usize] = match fmt {
        WeightFormat::F32 => {
            for c in w.chunks_exact_mut(4) {
                c.copy_from_slice(&0.5f32.to_le_bytes());
            }
            &[]
        }
        WeightFormat::Q8_0 | WeightFormat::Q4_0 | WeightFormat::Q5_0 => &[0],
        WeightFormat::Q4_1 | WeightFormat::Q5_1 | WeightFormat::Q4_K => &[0, 2],
        WeightFormat::Q6_K => &[208],
        WeightFormat::Q2_K => &[80, 82],
        WeightFormat::TQ2_0 => &[64],
    };
    if !fix.is_empty() {
        for blk in w.chunks_exact_mut(fmt.block_bytes()) {
            for &o in fix {
                blk[o..o + 2].copy_from_slice(&scale);
            }
        }
    }
    w
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median time of one call, rotating over `copies`.
fn time(mut f: impl FnMut(usize), copies: usize, budget: Duration) -> Duration {
    for i in 0..3.max(copies) {
        f(i % copies);
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    let mut i = 0;
    while (start.elapsed() < budget || samples.len() < 7) && samples.len() < 2000 {
        let t = Instant::now();
        f(i % copies);
        samples.push(t.elapsed());
        i += 1;
    }
    median(samples)
}

fn main() {
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let session = JitSession::host().expect("host JIT session");
    println!("ISA: {}", session.isa_flags());
    println!("caps: {:?}", session.caps());
    let shapes: &[(&str, WeightFormat, usize, usize)] = &[
        ("smollm2 q/o 576->576", WeightFormat::Q4_1, 576, 576),
        ("smollm2 k/v 576->192", WeightFormat::Q4_1, 192, 576),
        ("smollm2 gate/up 576->1536", WeightFormat::Q4_1, 1536, 576),
        ("smollm2 down 1536->576", WeightFormat::Q4_1, 576, 1536),
        ("gemma3 q 640->1024", WeightFormat::Q5_0, 1024, 640),
        ("gemma3 gate/up 640->2048", WeightFormat::Q5_0, 2048, 640),
        ("gemma3 down 2048->640", WeightFormat::Q4_K, 640, 2048),
        ("gemma3 down 2048->640", WeightFormat::Q6_K, 640, 2048),
        ("gemma3 o 1024->640", WeightFormat::Q4_K, 640, 1024),
        ("smollm2 lm_head 576->49152", WeightFormat::Q8_0, 49152, 576),
        ("gemma3 lm_head 640->262144", WeightFormat::Q8_0, 262144, 640),
        ("f32 576->1536", WeightFormat::F32, 1536, 576),
        ("q4_0 576->1536", WeightFormat::Q4_0, 1536, 576),
        ("q5_1 576->1536", WeightFormat::Q5_1, 1536, 576),
        ("q8_0 576->1536", WeightFormat::Q8_0, 1536, 576),
        ("q2_k 2048->640", WeightFormat::Q2_K, 640, 2048),
        ("tq2_0 2048->640", WeightFormat::TQ2_0, 640, 2048),
    ];
    println!(
        "{:<28} {:>6} {:>9} {:>8} | {:>4} {:>10} {:>8} {:>6} | {:>10} {:>8}",
        "shape", "fmt", "MB", "jit ms", "thr", "cold us", "GB/s", "%bw", "hot us", "GB/s"
    );
    for &(label, fmt, rows, cols) in shapes {
        if !filters.is_empty() && !filters.iter().any(|f| label.contains(f.as_str()) || fmt.name() == f) {
            continue;
        }
        let kernel = GemvKernel::new(&session, fmt, rows, cols).expect("compile");
        let jit_ms = kernel.compile_time().as_secs_f64() * 1e3;
        let bytes = kernel.weight_bytes();
        let copies = ((128usize << 20) / bytes).clamp(1, 64) + 1;
        let copies = if bytes > 64 << 20 { 2 } else { copies };
        let ws: Vec<Vec<u8>> = (0..copies).map(|i| weights(fmt, rows, cols, 17 + i as u64)).collect();
        let xf: Vec<f32> = (0..cols).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01).collect();
        let xq = (fmt != WeightFormat::F32).then(|| ActivationQ8::quantize(fmt.activation(), &xf, 1, cols).unwrap());
        let mut y = vec![0.0f32; rows];
        for threads in [1, 2] {
            let mut call = |i: usize| match &xq {
                Some(xq) => kernel.run(&ws[i], xq, &mut y, threads).unwrap(),
                None => kernel.run_f32(&ws[i], &xf, &mut y, threads).unwrap(),
            };
            let budget = Duration::from_millis(400);
            let cold = time(&mut call, copies, budget);
            let hot = time(&mut call, 1, budget);
            black_box(&y);
            let gbs = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e9;
            println!(
                "{:<28} {:>6} {:>9.3} {:>8.2} | {:>4} {:>10.1} {:>8.2} {:>5.0}% | {:>10.1} {:>8.2}",
                label,
                fmt.name(),
                bytes as f64 / 1e6,
                jit_ms,
                threads,
                cold.as_secs_f64() * 1e6,
                gbs(cold),
                100.0 * gbs(cold) / (30.0 * threads as f64),
                hot.as_secs_f64() * 1e6,
                gbs(hot),
            );
        }
    }

    // Prefill GEMM: a batch of 512 activation rows (llama-bench's pp512) on
    // the models' block shapes, per tile size, in GMAC/s (weight·activation
    // multiply-adds per second) with the weights cache-resident.
    let gemm_shapes: Vec<_> = shapes.iter().filter(|s| !s.0.contains("lm_head") && s.3 <= 2048).copied().collect();
    for &(label, fmt, rows, cols) in &gemm_shapes {
        if !filters.is_empty() && !filters.iter().any(|f| f == "gemm" || f == fmt.name() || label.contains(f.as_str())) {
            continue;
        }
        let batch = 512;
        let w = weights(fmt, rows, cols, 5);
        let xf: Vec<f32> = (0..batch * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01).collect();
        let xq = (fmt != WeightFormat::F32).then(|| ActivationQ8::quantize(fmt.activation(), &xf, batch, cols).unwrap());
        let mut y = vec![0.0f32; batch * rows];
        for tile in [1, 4, MAX_TILE] {
            let k = GemvKernel::with_tile(&session, fmt, rows, cols, tile).unwrap();
            for threads in [1, 2] {
                let call = |y: &mut [f32]| match &xq {
                    Some(xq) => k.run(&w, xq, y, threads).unwrap(),
                    None => k.run_f32(&w, &xf, y, threads).unwrap(),
                };
                let d = time(|_| call(&mut y), 1, Duration::from_millis(300));
                let macs = (batch * rows * cols) as f64;
                println!(
                    "gemm {label} {} batch {batch} tile {tile} (row group {}) threads {threads}: {:.2} ms, {:.1} GMAC/s (jit {:.2} ms)",
                    fmt.name(),
                    k.row_group(),
                    d.as_secs_f64() * 1e3,
                    macs / d.as_secs_f64() / 1e9,
                    k.compile_time().as_secs_f64() * 1e3
                );
            }
        }
    }
}
