//! Target cost models: what `select-gemm` and `tile-gemm` ask a target.
//!
//! Passes never depend on a backend (DESIGN.md "Passes"), so the question is
//! a trait defined here and answered in `backends/`: the CPU model reads a
//! table of kernel costs that `flexc bench kernels --write-costs` measures on
//! the machine (a default table ships with flexc), the FlexCiM model is the
//! simulator's analytical cycle model. The driver hands the target's model to
//! the pass manager ([`crate::PassManager::with_cost_model`]); a pass finds it
//! by target name in [`crate::PassCx::cost_model`].
//!
//! Costs are in the model's [`CostModel::unit`] (nanoseconds on the CPU,
//! cycles on FlexCiM) for one execution of the GEMM over `rows` activation
//! rows. Work that depends only on weights (packing, tiling, decoding ahead
//! of time) is done offline and costs 0.

use flexc_ir::{Dim, TensorType};

/// The GEMM primitives a target may offer (the `kern.*_gemm` ops); declared
/// with the encodings that admit them (`flexc_ir::quant::encoding`).
pub use flexc_ir::quant::Primitive;

/// One GEMM as a cost model sees it: `y[rows, n] = x[rows, k] · wᵀ`.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmQuery<'a> {
    /// Activation rows (tokens) per execution.
    pub rows: u64,
    /// Output features (weight rows).
    pub n: u64,
    /// Input features (weight columns, the contraction).
    pub k: u64,
    /// The weight's type: its encoding says what each primitive would read.
    pub weight: &'a TensorType,
}

impl<'a> GemmQuery<'a> {
    /// The query for a GEMM over `weight: [n, k]` whose activation has the
    /// leading dimensions `lead` (every axis but the feature axis). A
    /// symbolic dimension (`seq`) counts as `symbolic_rows`: the pass option
    /// `rows` says which workload to cost (1 = decode, 512 = a prefill chunk).
    pub fn new(lead: &[Dim], weight: &'a TensorType, symbolic_rows: u64) -> GemmQuery<'a> {
        let size = |d: &Dim| d.fixed().unwrap_or(symbolic_rows);
        let dim = |i: usize| weight.shape.get(i).map_or(1, size);
        GemmQuery { rows: lead.iter().map(size).product(), n: dim(0), k: dim(1), weight }
    }
}

/// A weight tile: `m` output rows by `k` input columns.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tile {
    /// Output rows per tile.
    pub m: u64,
    /// Input columns per tile.
    pub k: u64,
}

/// A target's costs. Implementations live in `backends/`.
pub trait CostModel: Send + Sync {
    /// The target name `select-gemm{target=...}` matches (`cpu`, `flexcim`).
    fn target(&self) -> &str;
    /// The unit of every cost (`ns`, `cycles`).
    fn unit(&self) -> &str;
    /// Where the numbers come from (a file path, "built-in default", "analytical").
    fn source(&self) -> String;
    /// The cost of one GEMM on `p` with weight tiling `tile` (`None`: the
    /// primitive's default tiling), or `None` when `p` cannot run this weight
    /// on this target. For [`Primitive::Lut`] it excludes the activation
    /// tables, which [`CostModel::lut_precompute`] prices once per activation.
    fn gemm(&self, p: Primitive, q: &GemmQuery<'_>, tile: Option<Tile>) -> Option<f64>;
    /// The cost of building LUT tables for `rows` × `k` activations, or `None`
    /// when the target has no LUT primitive.
    fn lut_precompute(&self, rows: u64, k: u64) -> Option<f64>;
    /// The weight tilings worth considering for `p` on this GEMM (empty: the
    /// primitive is not tiled on this target).
    fn tiles(&self, p: Primitive, q: &GemmQuery<'_>) -> Vec<Tile>;
}
