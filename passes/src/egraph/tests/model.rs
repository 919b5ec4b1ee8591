//! A small deterministic cost model for the GEMM-pass tests, plus helpers
//! to run a pipeline over `.fir` text with it.
//!
//! Costs are per weight element and activation row, from a table keyed by
//! primitive and weight encoding (`plain` for none): e.g. a 2-bit `#gq` GEMM
//! costs 1 on LUT and 4 dense, so LUT wins unless its tables are too dear.
//! Tables cost `tables` per activation element. LUT and dense GEMMs offer two
//! tiles; a tile's cost is the untiled cost scaled by `1 + 8/m + 8/k`, so the
//! larger tile wins.

use crate::target::{CostModel, GemmQuery, Primitive, Tile};
use crate::{ManagerOptions, PassManager, RunReport};
use flexc_ir::text::{parse_module, print_module};
use flexc_ir::verify::verify_module;
use flexc_ir::Module;
use std::sync::Arc;

/// The test model.
pub struct TestModel {
    /// The target name it answers to.
    pub target: &'static str,
    /// Cost of the tables per activation element.
    pub tables: f64,
    /// `(primitive, encoding, cost per weight element per row)`.
    pub table: Vec<(Primitive, &'static str, f64)>,
}

impl Default for TestModel {
    fn default() -> TestModel {
        use Primitive::*;
        TestModel {
            target: "cpu",
            tables: 2.0,
            #[rustfmt::skip]
            table: vec![
                (Lut, "gq", 1.0), (Lut, "ternary", 1.0), (Lut, "bcq", 1.5),
                (ShiftAdd, "bcq", 1.2),
                (Sparse, "nm", 1.0),
                (Dense, "gq", 4.0), (Dense, "ternary", 4.0), (Dense, "bcq", 4.0), (Dense, "nm", 3.0),
                (Dense, "q4_0", 2.0), (Dense, "plain", 8.0),
            ],
        }
    }
}

impl CostModel for TestModel {
    fn target(&self) -> &str {
        self.target
    }

    fn unit(&self) -> &str {
        "units"
    }

    fn source(&self) -> String {
        "test table".into()
    }

    fn gemm(&self, p: Primitive, q: &GemmQuery<'_>, tile: Option<Tile>) -> Option<f64> {
        let enc = q.weight.encoding.map_or("plain", |e| e.name());
        let per = self.table.iter().find(|(tp, te, _)| *tp == p && *te == enc)?.2;
        let scale = tile.map_or(1.0, |t| 1.0 + 8.0 / t.m as f64 + 8.0 / t.k as f64);
        Some(per * (q.rows * q.n * q.k) as f64 * scale)
    }

    fn lut_precompute(&self, rows: u64, k: u64) -> Option<f64> {
        Some(self.tables * (rows * k) as f64)
    }

    fn tiles(&self, p: Primitive, _q: &GemmQuery<'_>) -> Vec<Tile> {
        match p {
            Primitive::Lut | Primitive::Dense => vec![Tile { m: 8, k: 32 }, Tile { m: 32, k: 64 }],
            _ => Vec::new(),
        }
    }
}

/// Parses `src`, runs `pipeline` with `model`, verifies; returns the module and report.
pub fn run_with(src: &str, pipeline: &str, model: TestModel) -> Result<(Module, RunReport), String> {
    let mut m = parse_module(src).map_err(|e| format!("{e:?}"))?;
    let mut pm = PassManager::from_text(pipeline, ManagerOptions { verify_each: true, ..ManagerOptions::default() })
        .map_err(|e| e.to_string())?
        .with_cost_model(Arc::new(model));
    let report = pm.run(&mut m, &mut |_, _| {}).map_err(|e| e.to_string())?;
    verify_module(&m).map_err(|e| format!("{e:?}"))?;
    Ok((m, report))
}

/// [`run_with`] the default model, printing the result.
pub fn run(src: &str, pipeline: &str) -> (String, RunReport) {
    let (m, r) = run_with(src, pipeline, TestModel::default()).unwrap_or_else(|e| panic!("{e}"));
    (print_module(&m), r)
}

/// How many ops with this mnemonic the printed IR has.
pub fn count(ir: &str, mnemonic: &str) -> usize {
    ir.matches(&format!(" = {mnemonic} ")).count()
}

/// A weight declaration `weight @name : ty = file<...>` of the right size.
pub fn weight(name: &str, ty: &str) -> String {
    let t = flexc_ir::text::parse_type(ty).expect("a weight type");
    format!("weight @{name} : {ty} = file<\"/nonexistent/weights.bin\", 0, {}>\n", t.storage_bytes().expect("a fixed shape"))
}

/// The lines of a linear layer `%out = x · dequantize(@name)ᵀ` (plain weights
/// skip the dequantize), as the importer writes it.
pub fn linear(out: &str, x: &str, name: &str, ty: &str) -> String {
    let t = flexc_ir::text::parse_type(ty).expect("a weight type");
    let n = &t.shape[0];
    let mut s = format!("  %{name} = tensor.weight @{name} : {ty}\n");
    let rhs = if t.encoding.is_some() {
        s += &format!("  %{name}.d = quant.dequantize %{name} : {}\n", t.decoded());
        format!("%{name}.d")
    } else {
        format!("%{name}")
    };
    s += &format!("  %{out} = tensor.matmul %{x}, {rhs} {{transpose_b}} : f32[seq, {n}]\n");
    s
}
