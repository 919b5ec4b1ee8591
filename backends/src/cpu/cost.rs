//! The CPU cost model: `flexc_passes::target::CostModel` for target `cpu`
//! in nanoseconds, read from a table of kernel costs measured on the
//! machine (`flexc bench kernels --write-costs FILE`; a default table
//! measured on the project machine ships as `costs.default.json`).
//!
//! Every number is a measurement of the runtime path a `kern.` op lowers to
//! (`cpu::cost_bench`), never a guess: a primitive/scheme pair missing from
//! the table, or a tile that was not measured, prices as `None`.
//!
//! **Model.** One GEMM `y[rows, n] = x[rows, k]·wᵀ` on primitive `p` costs
//! `overhead + v·c(rows)·f_tile(rows) (+ rows·k·q)` ns, where `v` is the
//! weights the kernel reads (`n·k`; for `#nm` the stored values `n·k·N/M`),
//! `c(rows)` the measured ns per weight of a whole call, linear in `rows`
//! through the GEMV (`rows = 1`) and GEMM (`rows = gemm_rows`) points and
//! extrapolated beyond, `f_tile` the measured factor of a `kern.tile`
//! against the default tiling (linear in rows up to `gemm_rows`, constant
//! beyond; only where the GEMM
//! has no more work items than the measurement had; [`CostModel::tiles`]
//! proposes only tiles measured faster than the default), and `q` the ns per
//! value of the activation quantization an int-dot kernel needs (Q8_0 or
//! Q8_K). LUT tables are priced apart ([`CostModel::lut_precompute`]):
//! `overhead + rows·k·ns_per_value`, once per activation.
//!
//! **Schemes.** `lut`: `gq1`..`gq4`, `ternary`, `bcq1`..`bcq4`; `shiftadd`:
//! `bcq1`..`bcq4`; `sparse`: `nm` (priced per stored value); `dense`: the
//! int-dot ggml formats (`q8_0`, `q4_0`, `q4_1`, `q5_0`, `q5_1`, `q4_k`,
//! `q6_k`, `q2_k`, `tq2_0`) and `f32`, which also prices every weight the
//! runtime decodes to f32 at compile time (`#gq`, `#nm`, f16, ggml formats
//! without an int-dot kernel; see [`dense_format`]).

use std::collections::BTreeMap;
use std::path::Path;

use flexc_ir::quant::BcqScales;
use flexc_ir::TensorType;
use flexc_passes::target::{CostModel, GemmQuery, Primitive, Tile};
use serde::{Deserialize, Serialize};

use super::format::{dense_format, ActKind};

/// The table shipped with flexc, measured on the project machine.
pub const DEFAULT_TABLE: &str = include_str!("costs.default.json");

/// The environment variable naming a measured table.
pub const COST_TABLE_ENV: &str = "FLEXC_COST_TABLE";

/// Version of the table format this model reads.
pub const TABLE_VERSION: u32 = 1;

/// A measured cost table (the JSON file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostTable {
    /// [`TABLE_VERSION`].
    pub version: u32,
    /// Where it was measured (CPU model name), for reports.
    pub machine: String,
    /// Runtime threads during the measurement.
    pub threads: usize,
    /// The activation rows of the multi-row points (`gemm_ns`), at least 2.
    pub gemm_rows: u64,
    /// The weight shape `[n, k]` the per-weight costs were measured on.
    pub shape: [u64; 2],
    /// LUT table precompute per activation (`kern.lut_precompute`).
    pub lut_precompute: LinearCost,
    /// ns per activation value of the Q8 quantization before an int-dot
    /// kernel, by activation kind (`q8_0`, `q8_k`).
    pub act_quant_ns_per_value: BTreeMap<String, f64>,
    /// Per (primitive, scheme) GEMM costs.
    pub kernels: Vec<KernelCost>,
    /// Measured tilings.
    pub tiles: Vec<TileCost>,
}

/// `overhead_ns + values·ns_per_value`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearCost {
    /// Fixed ns per call.
    pub overhead_ns: f64,
    /// ns per value.
    pub ns_per_value: f64,
}

/// One primitive on one weight scheme.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelCost {
    /// `lut`, `shiftadd`, `sparse` or `dense`.
    pub primitive: String,
    /// The weight scheme (module docs).
    pub scheme: String,
    /// Fixed ns per call (measured on a tiny weight).
    pub overhead_ns: f64,
    /// ns per weight (stored value for `nm`) of a one-row call (GEMV).
    pub gemv_ns: f64,
    /// ns per weight of a `gemm_rows`-row call.
    pub gemm_ns: f64,
}

/// A `kern.tile` measured against the default tiling of its primitive, on
/// weights of `shape[0]` rows; it is offered and priced only for GEMMs with
/// no more `m`-row work items than that.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TileCost {
    /// The primitive.
    pub primitive: String,
    /// Weight rows per work item.
    pub m: u64,
    /// Columns per K tile; `None`: whole rows (the primitive has no K tile).
    pub k: Option<u64>,
    /// Time over the default tiling's at one row.
    pub gemv_factor: f64,
    /// Time over the default tiling's at `gemm_rows` rows.
    pub gemm_factor: f64,
}

impl CostTable {
    /// Parses and checks a table.
    pub fn from_json(text: &str) -> Result<CostTable, String> {
        let t: CostTable = serde_json::from_str(text).map_err(|e| format!("not a cost table: {e}"))?;
        t.check()?;
        Ok(t)
    }

    /// The table as pretty JSON.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Checks version, names and that every number is finite and in range.
    pub fn check(&self) -> Result<(), String> {
        if self.version != TABLE_VERSION {
            return Err(format!("cost table version {} (this flexc reads version {TABLE_VERSION})", self.version));
        }
        if self.gemm_rows < 2 {
            return Err(format!("gemm_rows = {} must be at least 2", self.gemm_rows));
        }
        let ok = |what: &str, v: f64| if v.is_finite() && v >= 0.0 { Ok(()) } else { Err(format!("{what} = {v} must be a finite non-negative number")) };
        ok("lut_precompute.overhead_ns", self.lut_precompute.overhead_ns)?;
        ok("lut_precompute.ns_per_value", self.lut_precompute.ns_per_value)?;
        for (k, v) in &self.act_quant_ns_per_value {
            ok(&format!("act_quant_ns_per_value.{k}"), *v)?;
        }
        let prim = |p: &str| Primitive::from_name(p).ok_or_else(|| format!("unknown primitive '{p}' (lut, shiftadd, sparse, dense)"));
        for e in &self.kernels {
            prim(&e.primitive)?;
            let at = format!("{}/{}", e.primitive, e.scheme);
            ok(&format!("{at} overhead_ns"), e.overhead_ns)?;
            ok(&format!("{at} gemv_ns"), e.gemv_ns)?;
            ok(&format!("{at} gemm_ns"), e.gemm_ns)?;
        }
        for t in &self.tiles {
            prim(&t.primitive)?;
            if t.m == 0 || t.k == Some(0) || !(t.gemv_factor > 0.0 && t.gemv_factor.is_finite() && t.gemm_factor > 0.0 && t.gemm_factor.is_finite()) {
                return Err(format!("tile {} m = {} k = {:?}: sizes and factors must be positive", t.primitive, t.m, t.k));
            }
        }
        Ok(())
    }

    /// `gemv` at one row and `gemm` at `gemm_rows`, linear in between and beyond.
    fn lerp(&self, gemv: f64, gemm: f64, rows: u64) -> f64 {
        let t = (rows.max(1) - 1) as f64 / (self.gemm_rows - 1) as f64;
        (gemv + (gemm - gemv) * t).max(0.0)
    }
}

/// The table key of the weight `ty` on primitive `p`, the fraction of its
/// `n·k` elements the kernel reads, and the activation quantization it
/// needs; `None` when `p` cannot run `ty` on the CPU runtime.
fn scheme(p: Primitive, ty: &TensorType, n: u64) -> Option<(String, f64, ActKind)> {
    let enc = ty.encoding;
    match p {
        Primitive::Lut => {
            let e = enc.filter(|e| e.admits(p))?;
            // Kernel geometry: row blocks of 8 rows (≤ 2 planes) or 4, groups of whole 8-activation pairs.
            let block_rows = if e.lut_planes()? <= 2 { 8 } else { 4 };
            let group_ok = !e.row_local() || e.block_elems().is_multiple_of(8);
            (n.is_multiple_of(block_rows) && group_ok).then_some((e.cost_key(), 1.0, ActKind::F32))
        }
        Primitive::ShiftAdd => {
            let e = enc.filter(|e| e.admits(p))?;
            let b = e.binary_coded()?;
            // Groups of whole sign bytes; shared-scale lat weights need rows in whole 4-row blocks per scale block.
            (b.row_block_elems().is_multiple_of(8) && (b.scales() != BcqScales::Lat || n.is_multiple_of(32))).then(|| (e.cost_key(), 1.0, ActKind::F32))
        }
        Primitive::Sparse => enc.filter(|e| e.admits(p)).map(|e| (e.cost_key(), e.density(), ActKind::F32)),
        Primitive::Dense => {
            let (fmt, decoded) = dense_format(ty)?;
            let name = if decoded { "f32".to_string() } else { fmt.name().to_lowercase() };
            Some((name, 1.0, fmt.activation()))
        }
    }
}

/// The CPU target's cost model over a [`CostTable`].
#[derive(Clone, Debug)]
pub struct CpuCostModel {
    table: CostTable,
    source: String,
}

impl CpuCostModel {
    /// A model over `table`; `source` says where it came from.
    pub fn new(table: CostTable, source: impl Into<String>) -> CpuCostModel {
        CpuCostModel { table, source: source.into() }
    }

    /// The shipped default table.
    pub fn default_table() -> Result<CpuCostModel, String> {
        Ok(Self::new(CostTable::from_json(DEFAULT_TABLE).map_err(|e| format!("built-in cost table: {e}"))?, "built-in default"))
    }

    /// A table file.
    pub fn load(path: &Path) -> Result<CpuCostModel, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let table = CostTable::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self::new(table, path.display().to_string()))
    }

    /// `path` if given, else the file named by `FLEXC_COST_TABLE` if set,
    /// else the default table.
    pub fn select(path: Option<&Path>) -> Result<CpuCostModel, String> {
        match path {
            Some(p) => Self::load(p),
            None => match std::env::var_os(COST_TABLE_ENV).filter(|v| !v.is_empty()) {
                Some(p) => Self::load(Path::new(&p)).map_err(|e| format!("{e} (from {COST_TABLE_ENV})")),
                None => Self::default_table(),
            },
        }
    }

    /// The same model with another [`CostModel::source`] text.
    pub fn with_source(self, source: impl Into<String>) -> CpuCostModel {
        CpuCostModel { source: source.into(), ..self }
    }

    /// The table.
    pub fn table(&self) -> &CostTable {
        &self.table
    }

    fn kernel(&self, p: Primitive, scheme: &str) -> Option<&KernelCost> {
        self.table.kernels.iter().find(|e| e.primitive == p.name() && e.scheme == scheme)
    }

    /// The measured factor of `tile` on `p` for this GEMM.
    fn tile_factor(&self, p: Primitive, q: &GemmQuery<'_>, tile: Tile) -> Option<f64> {
        let e = self.table.tiles.iter().find(|t| t.primitive == p.name() && t.m == tile.m && (t.k == Some(tile.k) || (t.k.is_none() && tile.k >= q.k)))?;
        // A ratio is not extrapolated: beyond gemm_rows it stays the measured one.
        self.in_measured_regime(q, e.m).then(|| self.table.lerp(e.gemv_factor, e.gemm_factor, q.rows.min(self.table.gemm_rows)))
    }

    /// Whether `m`-row work items on this GEMM are no more numerous than
    /// where the tile was measured (`shape[0]` rows): each item costs a pool
    /// dispatch, so a factor measured on 16 items says nothing about 1500.
    fn in_measured_regime(&self, q: &GemmQuery<'_>, m: u64) -> bool {
        q.n.div_ceil(m) <= self.table.shape[0].div_ceil(m)
    }
}

impl CostModel for CpuCostModel {
    fn target(&self) -> &str {
        "cpu"
    }

    fn unit(&self) -> &str {
        "ns"
    }

    fn source(&self) -> String {
        format!("{} ({}, {} threads)", self.source, self.table.machine, self.table.threads)
    }

    fn gemm(&self, p: Primitive, q: &GemmQuery<'_>, tile: Option<Tile>) -> Option<f64> {
        let (name, fraction, act) = scheme(p, q.weight, q.n)?;
        let e = self.kernel(p, &name)?;
        let factor = match tile {
            Some(t) => self.tile_factor(p, q, t)?,
            None => 1.0,
        };
        let per = self.table.lerp(e.gemv_ns, e.gemm_ns, q.rows);
        let quant = match act {
            ActKind::F32 => 0.0,
            kind => *self.table.act_quant_ns_per_value.get(kind.name())?,
        };
        Some(e.overhead_ns + (q.n * q.k) as f64 * fraction * per * factor + (q.rows.max(1) * q.k) as f64 * quant)
    }

    fn lut_precompute(&self, rows: u64, k: u64) -> Option<f64> {
        let c = self.table.lut_precompute;
        Some(c.overhead_ns + (rows.max(1) * k) as f64 * c.ns_per_value)
    }

    fn tiles(&self, p: Primitive, q: &GemmQuery<'_>) -> Vec<Tile> {
        if self.gemm(p, q, None).is_none() {
            return Vec::new();
        }
        let block = q.weight.encoding.map_or(1, |e| e.block_elems());
        let mut out: Vec<Tile> = self
            .table
            .tiles
            .iter()
            .filter(|t| t.primitive == p.name() && t.m <= q.n && self.in_measured_regime(q, t.m))
            .filter_map(|t| match t.k {
                None => Some(Tile { m: t.m, k: q.k }),
                Some(k) if k < q.k && k.is_multiple_of(block) => Some(Tile { m: t.m, k }),
                Some(_) => None,
            })
            // Worth considering only where the measurement beats the default.
            .filter(|&t| self.tile_factor(p, q, t).is_some_and(|f| f < 1.0))
            .collect();
        out.dedup();
        out
    }
}
