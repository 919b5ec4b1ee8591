//! The primitive benchmark library (`kernel_bench`) beyond what the CLI test
//! covers: several activation rows per call (prefill-style GEMM through every
//! primitive) and the measured roofline. No speed is asserted.

use std::time::Duration;

use flexc_backends::cpu::kernel_bench::{run, BenchPrimitive, BenchShape, KernelBenchOptions};
use flexc_backends::cpu::JitSession;

#[test]
fn batched_rows_run_every_primitive_against_a_measured_roofline() {
    let session = JitSession::host().expect("host JIT");
    let o = KernelBenchOptions { shapes: vec![BenchShape::new("tiny", 16, 256)], threads: vec![1], batch: 3, budget: Duration::from_millis(1), ..Default::default() };
    let rep = run(&session, &o, &mut |_| {}).expect("runs");
    assert_eq!(rep.rooflines.len(), 1);
    assert!(rep.rooflines[0].measured && rep.rooflines[0].gb_s.is_finite() && rep.rooflines[0].gb_s > 0.0, "{:?}", rep.rooflines);
    for p in BenchPrimitive::ALL {
        assert!(rep.rows.iter().any(|r| r.primitive == p.name()), "no {} row", p.name());
    }
    for r in &rep.rows {
        assert_eq!((r.batch, r.m, r.k, r.threads), (3, 16, 256, 1), "{r:?}");
        assert!(r.seconds > 0.0 && r.roofline_fraction.is_finite() && r.roofline_gb_s == rep.rooflines[0].gb_s, "{r:?}");
        assert_eq!(r.speedup_vs_dequant.is_none(), r.primitive == "dequant", "{r:?}");
    }
}
