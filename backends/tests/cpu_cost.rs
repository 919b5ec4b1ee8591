//! The CPU cost model: table parsing and validation, the linear-in-rows
//! interpolation, `None` for what the runtime cannot run (or the table did
//! not measure), `#nm` priced per stored value, tiles, the shipped default
//! table (and that it orders primitives plausibly for 2-bit weights), and
//! the measurement itself on a tiny configuration (a functional check of
//! `--write-costs`, not a timing).

use std::path::Path;
use std::time::Duration;

use flexc_backends::cost::{cost_models, cost_models_with};
use flexc_backends::cpu::cost::{CostTable, CpuCostModel};
use flexc_backends::cpu::cost_bench::{measure, CostBenchOptions};
use flexc_ir::quant::{BcqParams, GgmlType, GqParams, Nm, TernaryParams};
use flexc_ir::types::{Dim, ElemType};
use flexc_ir::{Encoding, TensorType};
use flexc_passes::target::{CostModel, GemmQuery, Primitive, Tile};

const TABLE: &str = r#"{
  "version": 1, "machine": "test", "threads": 2, "gemm_rows": 5, "shape": [1024, 4096],
  "lut_precompute": {"overhead_ns": 100, "ns_per_value": 0.5},
  "act_quant_ns_per_value": {"q8_0": 0.25, "q8_k": 0.5},
  "kernels": [
    {"primitive": "lut", "scheme": "gq2", "overhead_ns": 1000, "gemv_ns": 0.1, "gemm_ns": 0.5},
    {"primitive": "lut", "scheme": "ternary", "overhead_ns": 1000, "gemv_ns": 0.1, "gemm_ns": 0.5},
    {"primitive": "shiftadd", "scheme": "bcq2", "overhead_ns": 2000, "gemv_ns": 1.0, "gemm_ns": 4.0},
    {"primitive": "sparse", "scheme": "nm", "overhead_ns": 0, "gemv_ns": 0.2, "gemm_ns": 1.0},
    {"primitive": "dense", "scheme": "q4_0", "overhead_ns": 500, "gemv_ns": 0.05, "gemm_ns": 0.25},
    {"primitive": "dense", "scheme": "f32", "overhead_ns": 500, "gemv_ns": 0.3, "gemm_ns": 1.5}
  ],
  "tiles": [
    {"primitive": "lut", "m": 256, "k": 1024, "gemv_factor": 1.5, "gemm_factor": 0.5},
    {"primitive": "lut", "m": 4096, "k": 1024, "gemv_factor": 1.0, "gemm_factor": 1.0},
    {"primitive": "dense", "m": 32, "k": null, "gemv_factor": 2.0, "gemm_factor": 2.0}
  ]
}"#;

fn model() -> CpuCostModel {
    CpuCostModel::new(CostTable::from_json(TABLE).expect("the test table parses"), "test table")
}

fn weight(n: u64, k: u64, encoding: Option<Encoding>) -> TensorType {
    TensorType { shape: vec![Dim::Fixed(n), Dim::Fixed(k)], elem: ElemType::F32, encoding }
}

fn gq(bits: u8) -> Option<Encoding> {
    Some(Encoding::Gq(GqParams { bits, group: 128, zero: false }))
}

fn cost(m: &dyn CostModel, p: Primitive, rows: u64, w: &TensorType, tile: Option<Tile>) -> Option<f64> {
    let (n, k) = (w.shape[0].fixed().unwrap_or(0), w.shape[1].fixed().unwrap_or(0));
    m.gemm(p, &GemmQuery { rows, n, k, weight: w }, tile)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn the_table_parses_and_bad_tables_are_errors() {
    let m = model();
    assert_eq!((m.target(), m.unit()), ("cpu", "ns"));
    assert!(m.source().contains("test table") && m.source().contains("2 threads"), "{}", m.source());
    let t = m.table();
    assert_eq!(CostTable::from_json(&t.to_json()).expect("round trip"), *t);
    for (bad, why) in [
        (TABLE.replace("\"version\": 1", "\"version\": 2"), "version"),
        (TABLE.replace("\"gemm_rows\": 5", "\"gemm_rows\": 1"), "gemm_rows"),
        (TABLE.replace("\"gemv_ns\": 0.3", "\"gemv_ns\": -0.3"), "gemv_ns"),
        (TABLE.replace("\"primitive\": \"sparse\"", "\"primitive\": \"magic\""), "magic"),
        (TABLE.replace("\"gemm_factor\": 0.5", "\"gemm_factor\": 0"), "factors"),
        (TABLE.replace("\"threads\": 2", "\"threads\": 2, \"extra\": 1"), "extra"),
        ("{".to_string(), "not a cost table"),
    ] {
        let e = CostTable::from_json(&bad).expect_err(why);
        assert!(e.contains(why), "{why}: {e}");
    }
}

#[test]
fn costs_are_linear_in_rows_through_the_two_points() {
    let m = model();
    let w = weight(1024, 4096, gq(2));
    let nk = 1024.0 * 4096.0;
    assert!(close(cost(&m, Primitive::Lut, 1, &w, None).unwrap(), 1000.0 + nk * 0.1));
    assert!(close(cost(&m, Primitive::Lut, 5, &w, None).unwrap(), 1000.0 + nk * 0.5));
    assert!(close(cost(&m, Primitive::Lut, 3, &w, None).unwrap(), 1000.0 + nk * 0.3));
    // Extrapolated beyond gemm_rows.
    assert!(close(cost(&m, Primitive::Lut, 9, &w, None).unwrap(), 1000.0 + nk * 0.9));
    // Tables once per activation.
    assert!(close(m.lut_precompute(3, 4096).unwrap(), 100.0 + 3.0 * 4096.0 * 0.5));
    // Int-dot kernels pay the Q8 activation quantization per row.
    let q = weight(1024, 4096, Some(Encoding::Ggml(GgmlType::Q4_0)));
    assert!(close(cost(&m, Primitive::Dense, 1, &q, None).unwrap(), 500.0 + nk * 0.05 + 4096.0 * 0.25));
}

#[test]
fn what_the_runtime_cannot_run_or_the_table_lacks_is_none() {
    let m = model();
    let q4 = weight(1024, 4096, Some(Encoding::Ggml(GgmlType::Q4_0)));
    assert_eq!(cost(&m, Primitive::Lut, 1, &q4, None), None, "LUT on a ggml format");
    assert_eq!(cost(&m, Primitive::ShiftAdd, 1, &weight(1024, 4096, gq(2)), None), None, "shift-add on #gq");
    assert_eq!(cost(&m, Primitive::Sparse, 1, &weight(1024, 4096, None), None), None, "sparse on dense f32");
    assert_eq!(cost(&m, Primitive::Lut, 1, &weight(1024, 4096, gq(3)), None), None, "gq3 is not in the table");
    assert_eq!(cost(&m, Primitive::Lut, 1, &weight(1020, 4096, gq(2)), None), None, "rows not whole row blocks");
    assert_eq!(cost(&m, Primitive::Dense, 1, &weight(64, 64, None).clone_with_elem(ElemType::I8), None), None, "integer weights");
    let bcq = weight(1024, 4096, Some(Encoding::Bcq(BcqParams::row(3, 128, true, 2))));
    assert_eq!(cost(&m, Primitive::ShiftAdd, 1, &bcq, None), None, "bcq3 is not in the table");
    // An unmeasured tile is not guessed.
    assert_eq!(cost(&m, Primitive::Lut, 1, &weight(1024, 4096, gq(2)), Some(Tile { m: 64, k: 1024 })), None);
    // The ggml dense q8_k quantization is missing from a table without it.
    let no_q8k = CostTable::from_json(&TABLE.replace(", \"q8_k\": 0.5", "").replace("\"scheme\": \"q4_0\"", "\"scheme\": \"q4_k\"")).unwrap();
    let m2 = CpuCostModel::new(no_q8k, "t");
    assert_eq!(cost(&m2, Primitive::Dense, 1, &weight(1024, 4096, Some(Encoding::Ggml(GgmlType::Q4_K))), None), None);
}

trait WithElem {
    fn clone_with_elem(&self, e: ElemType) -> TensorType;
}
impl WithElem for TensorType {
    fn clone_with_elem(&self, e: ElemType) -> TensorType {
        TensorType { elem: e, ..self.clone() }
    }
}

#[test]
fn nm_is_priced_per_stored_value_and_decoded_weights_as_f32() {
    let m = model();
    let nm = |n: u8, mm: u8| cost(&m, Primitive::Sparse, 1, &weight(1024, 4096, Some(Encoding::Nm(Nm::of(n, mm)))), None).unwrap();
    let nk = 1024.0 * 4096.0;
    assert!(close(nm(2, 4), nk * 0.5 * 0.2));
    assert!(close(nm(2, 8), nk * 0.25 * 0.2));
    assert!(close(nm(8, 8), nk * 0.2));
    // The dense primitive decodes #nm, #gq, ternary and f16 to f32 at compile time.
    let f32_cost = cost(&m, Primitive::Dense, 1, &weight(1024, 4096, None), None).unwrap();
    for w in [
        weight(1024, 4096, Some(Encoding::Nm(Nm::of(2, 4)))),
        weight(1024, 4096, gq(2)),
        weight(1024, 4096, Some(Encoding::Ternary(TernaryParams { group: 0 }))),
        weight(1024, 4096, None).clone_with_elem(ElemType::F16),
    ] {
        assert_eq!(cost(&m, Primitive::Dense, 1, &w, None), Some(f32_cost), "{w}");
    }
}

#[test]
fn tiles_are_the_measured_ones_that_fit() {
    let m = model();
    let w = weight(1024, 4096, gq(2));
    let q = GemmQuery { rows: 1, n: 1024, k: 4096, weight: &w };
    // Measured slower than the default at one row (×1.5): not worth considering.
    assert!(m.tiles(Primitive::Lut, &q).is_empty());
    // Faster at 5 rows (×0.5); m = 4096 > n is left out.
    let q5 = GemmQuery { rows: 5, n: 1024, k: 4096, weight: &w };
    assert_eq!(m.tiles(Primitive::Lut, &q5), vec![Tile { m: 256, k: 1024 }]);
    let base = cost(&m, Primitive::Lut, 1, &w, None).unwrap() - 1000.0;
    assert!(close(cost(&m, Primitive::Lut, 1, &w, Some(Tile { m: 256, k: 1024 })).unwrap() - 1000.0, 1.5 * base));
    let base5 = cost(&m, Primitive::Lut, 5, &w, None).unwrap() - 1000.0;
    assert!(close(cost(&m, Primitive::Lut, 5, &w, Some(Tile { m: 256, k: 1024 })).unwrap() - 1000.0, 0.5 * base5));
    // The factor is not extrapolated beyond gemm_rows (it would go negative).
    let base50 = cost(&m, Primitive::Lut, 50, &w, None).unwrap() - 1000.0;
    assert!(close(cost(&m, Primitive::Lut, 50, &w, Some(Tile { m: 256, k: 1024 })).unwrap() - 1000.0, 0.5 * base50));
    // A K tile as wide as the row is no K tiling.
    let narrow = weight(1024, 1024, gq(2));
    assert!(m.tiles(Primitive::Lut, &GemmQuery { rows: 5, n: 1024, k: 1024, weight: &narrow }).is_empty());
    // Dense has no K tile: whole-row tiles, k = K; this one is measured
    // slower (×2): priced, but not proposed.
    let q4 = weight(1024, 4096, Some(Encoding::Ggml(GgmlType::Q4_0)));
    let dq = GemmQuery { rows: 1, n: 1024, k: 4096, weight: &q4 };
    assert!(m.tiles(Primitive::Dense, &dq).is_empty());
    let faster = CpuCostModel::new(CostTable::from_json(&TABLE.replace("\"gemv_factor\": 2.0, \"gemm_factor\": 2.0", "\"gemv_factor\": 0.9, \"gemm_factor\": 0.9")).unwrap(), "t");
    assert_eq!(faster.tiles(Primitive::Dense, &dq), vec![Tile { m: 32, k: 4096 }]);
    assert!(cost(&m, Primitive::Dense, 1, &q4, Some(Tile { m: 32, k: 4096 })).unwrap() > cost(&m, Primitive::Dense, 1, &q4, None).unwrap());
    // No tiles for a primitive that cannot run the weight.
    assert!(m.tiles(Primitive::ShiftAdd, &q5).is_empty());
    // Nor with more work items than measured (1024 rows): a 49152-row head in
    // 32-row items is 1536 pool dispatches, not the measured 32.
    let head = weight(49152, 4096, Some(Encoding::Ggml(GgmlType::Q4_0)));
    let hq = GemmQuery { rows: 1, n: 49152, k: 4096, weight: &head };
    assert!(faster.tiles(Primitive::Dense, &hq).is_empty());
    assert_eq!(cost(&m, Primitive::Dense, 1, &head, Some(Tile { m: 32, k: 4096 })), None);
}

#[test]
fn the_default_table_loads_and_lut_beats_dense_f32_at_2_bits() {
    let m = CpuCostModel::default_table().expect("the shipped table loads");
    assert!(m.source().starts_with("built-in default"), "{}", m.source());
    let t = m.table();
    for scheme in ["gq1", "gq2", "gq3", "gq4", "ternary", "bcq2"] {
        assert!(t.kernels.iter().any(|e| e.primitive == "lut" && e.scheme == scheme), "lut/{scheme} measured");
    }
    for scheme in ["f32", "q4_0", "q4_1", "q4_k", "q5_0", "q6_k", "q8_0", "q2_k", "tq2_0"] {
        assert!(t.kernels.iter().any(|e| e.primitive == "dense" && e.scheme == scheme), "dense/{scheme} measured");
    }
    assert!(t.tiles.iter().any(|e| e.primitive == "lut" && e.k.is_some()), "LUT K tiles measured");
    for (n, k) in [(576u64, 576u64), (1536, 576), (4096, 4096), (11008, 4096)] {
        let w = weight(n, k, Some(Encoding::Gq(GqParams { bits: 2, group: 64, zero: false })));
        for rows in [1, 16, 64] {
            let lut = cost(&m, Primitive::Lut, rows, &w, None).unwrap() + m.lut_precompute(rows, k).unwrap();
            let dense = cost(&m, Primitive::Dense, rows, &w, None).unwrap();
            assert!(lut < dense, "{n}×{k}, {rows} rows: LUT {lut} ns vs dense f32 {dense} ns");
        }
        // More bits cost more on the LUT kernel.
        let w4 = weight(n, k, gq(4));
        assert!(cost(&m, Primitive::Lut, 1, &w4, None).unwrap() > cost(&m, Primitive::Lut, 1, &weight(n, k, gq(1)), None).unwrap());
    }
}

#[test]
fn the_driver_gets_a_cpu_model() {
    let models = cost_models();
    assert!(models.iter().any(|m| m.target() == "cpu" && m.unit() == "ns"));
    let e = cost_models_with(Some(Path::new("/nonexistent/costs.json"))).err().expect("a missing table is an error");
    assert!(e.contains("/nonexistent/costs.json"), "{e}");
}

#[test]
fn a_table_file_is_read() {
    let dir = std::env::temp_dir().join(format!("flexc-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("costs.json");
    std::fs::write(&path, TABLE).unwrap();
    let m = CpuCostModel::select(Some(&path)).expect("loads");
    assert!(m.source().contains("costs.json"));
    assert_eq!(m.table().machine, "test");
    std::fs::write(&path, TABLE.replace("\"version\": 1", "\"version\": 7")).unwrap();
    let e = CpuCostModel::load(&path).expect_err("bad version");
    assert!(e.contains("costs.json") && e.contains("version 7"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn measuring_a_tiny_table_gives_a_complete_valid_table() {
    let o = CostBenchOptions { threads: 1, gemm_rows: 3, shape: (64, 256), dram_bytes: 1 << 16, budget: Duration::from_millis(1), tiles: false };
    let mut lines = 0;
    let t = measure(&o, &mut |_| lines += 1).expect("measures");
    assert_eq!(lines, t.kernels.len());
    assert_eq!(t.kernels.len(), 24);
    assert!(t.kernels.iter().any(|e| e.primitive == "sparse" && e.scheme == "nm"));
    assert!(t.kernels.iter().all(|e| e.gemv_ns > 0.0 && e.gemm_ns > 0.0), "{t:?}");
    assert!(t.act_quant_ns_per_value.contains_key("q8_0") && t.act_quant_ns_per_value.contains_key("q8_k"));
    assert!(t.lut_precompute.ns_per_value > 0.0);
    assert_eq!(CostTable::from_json(&t.to_json()).expect("parses back"), t);
}
