//! Scratch A/B: grouped (rows % 4 == 0) vs one-row (rows odd) GEMM, min of N.
use flexc_backends::cpu::{ActivationQ8, GemvKernel, JitSession, WeightFormat};
use std::time::Instant;
fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let fmt = WeightFormat::ALL.into_iter().find(|f| Some(f.name()) == a.first().map(|s| s.as_str())).unwrap();
    let cols: usize = a.get(1).and_then(|s| s.parse().ok()).unwrap_or(640);
    let s = JitSession::host().unwrap();
    let batch: usize = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(512);
    let tiles: Vec<usize> = if batch == 1 { vec![1] } else { vec![4, 8] };
    let xf: Vec<f32> = (0..batch * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01).collect();
    let xq = ActivationQ8::quantize(fmt.activation(), &xf, batch, cols).unwrap();
    for &tile in &tiles {
        for rows in [2048usize, 2047] {
            let w: Vec<u8> = (0..rows * fmt.row_bytes(cols)).map(|i| if i % fmt.block_bytes() < 2 { [0x1f, 0x20][i % 2] } else { (i * 131 % 251) as u8 }).collect();
            let k = GemvKernel::with_tile(&s, fmt, rows, cols, tile).unwrap();
            let mut y = vec![0f32; batch * rows];
            let mut best = f64::MAX;
            for _ in 0..15 { let t = Instant::now(); k.run(&w, &xq, &mut y, 1).unwrap(); best = best.min(t.elapsed().as_secs_f64()); }
            let c0 = cpu(); let n = if batch == 1 { 4000 } else { 40 }; for _ in 0..n { k.run(&w, &xq, &mut y, 1).unwrap(); } let cpu_s = (cpu() - c0) / n as f64;
            println!("   cpu-time per call {:.2} ms {:.1} GMAC/s", cpu_s * 1e3, (batch * rows * cols) as f64 / cpu_s / 1e9);
            println!("{} rows {rows} cols {cols} tile {tile} group {}: {:.2} ms {:.1} GMAC/s", fmt.name(), k.row_group(), best * 1e3, (batch * rows * cols) as f64 / best / 1e9);
        }
    }
}

fn cpu() -> f64 {
    let st = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = st.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}
