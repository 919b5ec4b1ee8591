//! Prints the VCode of one JIT kernel: `cargo run -p flexc-backends --example
//! dump_vcode -- q4_1 1536 576 [tile]` (a debugging aid for kernel work).

use flexc_backends::cpu::{GemvKernel, JitSession, WeightFormat};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let fmt = WeightFormat::ALL
        .into_iter()
        .find(|f| Some(f.name()) == a.first().map(|s| s.as_str()))
        .expect("first argument: a format name (q4_1, q8_0, ...)");
    let rows = a.get(1).and_then(|s| s.parse().ok()).unwrap_or(64);
    let cols = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(256);
    let tile = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let s = JitSession::host().expect("session");
    let k = GemvKernel::with_tile(&s, fmt, rows, cols, tile).expect("compile");
    let f = k.compiled(tile).expect("tile");
    println!("; {} compile {:?}, {} bytes", f.name(), f.compile_time(), f.code().len());
    println!("{}", f.vcode().unwrap_or("(no vcode)"));
}
