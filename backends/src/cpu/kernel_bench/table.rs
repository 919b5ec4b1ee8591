//! The two renderings of a [`KernelBenchReport`]: a JSON array of rows
//! (`flexc bench kernels --format json`) and a text table grouped by shape.

use std::fmt::Write;

use super::{KernelBenchReport, KernelBenchRow};

/// One row as a JSON object (every field; absent ratios are null).
pub fn row_json(r: &KernelBenchRow) -> serde_json::Value {
    serde_json::json!({
        "shape": r.shape, "primitive": r.primitive, "scheme": r.scheme, "bits": r.bits,
        "bits_per_weight": r.bits_per_weight, "m": r.m, "k": r.k, "batch": r.batch, "threads": r.threads,
        "seconds": r.seconds, "median_seconds": r.median_seconds, "weight_bytes": r.weight_bytes, "weight_gb_s": r.weight_gb_s,
        "baseline": r.baseline, "speedup_vs_dequant": r.speedup_vs_dequant, "speedup_vs_dense": r.speedup_vs_dense,
        "t_over_t1": r.t_over_t1, "roofline_gb_s": r.roofline_gb_s, "roofline_fraction": r.roofline_fraction,
    })
}

/// The rows as a JSON array.
pub fn rows_json(rows: &[KernelBenchRow]) -> serde_json::Value {
    serde_json::Value::Array(rows.iter().map(row_json).collect())
}

fn ratio(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}x")).unwrap_or_else(|| "-".into())
}

/// The report as text: the rooflines, then per shape one block of rows
/// (by thread count, primitive, bits).
pub fn text_table(rep: &KernelBenchReport) -> String {
    let mut s = String::new();
    for r in &rep.rooflines {
        let how = if r.measured { "measured: fastest summing read of 32 MiB from DRAM, at the start and the end" } else { "given" };
        let _ = writeln!(s, "roofline {} thread(s): {:.1} GB/s ({how})", r.threads, r.gb_s);
    }
    let mut shape: Option<(&str, usize, usize)> = None;
    for r in &rep.rows {
        if shape != Some((&r.shape, r.m, r.k)) {
            shape = Some((&r.shape, r.m, r.k));
            let _ = writeln!(s, "\n{} (m {} x k {}, batch {})", r.shape, r.m, r.k, r.batch);
            let _ = writeln!(
                s,
                "{:>3} {:<9} {:<10} {:>5} {:>6} {:>10} {:>7} {:>5} {:>8} {:<6} {:>8} {:>6}",
                "thr", "primitive", "scheme", "bits", "bpw", "us", "GB/s", "roof", "vs deq", "(base)", "vs f32", "t/t1"
            );
        }
        let _ = writeln!(
            s,
            "{:>3} {:<9} {:<10} {:>5.2} {:>6.3} {:>10.1} {:>7.2} {:>5.2} {:>8} {:<6} {:>8} {:>6}",
            r.threads,
            r.primitive,
            r.scheme,
            r.bits,
            r.bits_per_weight,
            r.seconds * 1e6,
            r.weight_gb_s,
            r.roofline_fraction,
            ratio(r.speedup_vs_dequant),
            r.baseline.as_deref().unwrap_or(""),
            ratio(r.speedup_vs_dense),
            r.t_over_t1.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into()),
        );
    }
    s
}
