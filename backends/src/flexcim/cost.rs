//! `FlexcimCostModel`: what `select-gemm{target=flexcim}` and `tile-gemm`
//! ask FlexCiM. Costs are cycles of the analytical model ([`super::analytic`],
//! which prices the lowering's loop nest with the simulator's own timing
//! rules) for one execution of the GEMM; energy per GEMM is available through
//! [`FlexcimCostModel::energy_pj`] for explain output and reports.
//!
//! * `Sparse`: weights with an `#nm<n, m>` encoding, run in the macro's N:M
//!   mode (an unsupported pattern as the sparsest supported one holding it);
//!   a type does not say how the masks of neighbouring rows relate, so the
//!   model assumes [`Masks`]: aligned across a tile's columns by default (N
//!   slots per group, what `prune-nm{align=...}` produces), or per-row
//!   ([`FlexcimCostModel::with_masks`]; `prune-nm` without `align`), priced
//!   at the expected slots of a column tile, which costs up to M/N times more.
//! * `Dense`: any weight, decoded offline, in a dense M:M mode.
//! * `Lut`, `ShiftAdd`: the macro has no table-lookup or shift-add datapath: `None`.
//!
//! Tiles are the macro's: `m` = merger sets × columns and `k` = the inputs
//! whose N:M groups fill a set's sub-macros × rows, plus smaller variants
//! for the cost model to compare.

use super::analytic::{estimate, fit_nominal, Slots};
use super::arch::{Arch, EnergyTable, Nm};
use super::layer::NmLayer;
use super::mapping::{check_tile, macro_tile};
use super::sim::Stats;
use flexc_passes::target::{CostModel, GemmQuery, Primitive, Tile};

/// What the cost model assumes about `#nm` masks across output rows.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Masks {
    /// The same pairs kept across a column tile (`prune-nm{align=...}`).
    Aligned,
    /// Every row's mask on its own (`prune-nm` without `align`).
    PerRow,
}

/// The FlexCiM analytical cost model over one architecture and energy table.
#[derive(Clone, Debug)]
pub struct FlexcimCostModel {
    arch: Arch,
    energy: EnergyTable,
    source: String,
    masks: Masks,
}

impl Default for FlexcimCostModel {
    fn default() -> Self {
        FlexcimCostModel::new(Arch::default_flexcim(), EnergyTable::default_table(), "built-in arch.toml and energy.toml")
    }
}

impl FlexcimCostModel {
    /// A model of `arch` with `energy`; `source` names where they came from.
    pub fn new(arch: Arch, energy: EnergyTable, source: &str) -> Self {
        FlexcimCostModel { arch, energy, source: source.to_string(), masks: Masks::Aligned }
    }

    /// The same model assuming `masks` for `#nm` weights.
    pub fn with_masks(self, masks: Masks) -> Self {
        FlexcimCostModel { masks, ..self }
    }

    /// The architecture.
    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    /// The pattern `p` runs this weight in, before fitting to the macro.
    fn pattern(&self, p: Primitive, q: &GemmQuery<'_>) -> Option<Nm> {
        match p {
            Primitive::Lut | Primitive::ShiftAdd => None,
            Primitive::Sparse => q.weight.encoding.and_then(|e| e.nm()),
            Primitive::Dense => NmLayer::dense_pattern(q.k as usize),
        }
    }

    /// The analytical counts of one GEMM, or `None` when `p` cannot run it
    /// (or `tile` does not fit the macro).
    pub fn estimate(&self, p: Primitive, q: &GemmQuery<'_>, tile: Option<Tile>) -> Option<Stats> {
        let nm = self.pattern(p, q)?;
        let (out, inp) = (usize::try_from(q.n).ok()?, usize::try_from(q.k).ok()?);
        let rows = usize::try_from(q.rows.max(1)).ok()?;
        let slots = match self.masks {
            Masks::Aligned => Slots::Aligned { out, inp, nm },
            Masks::PerRow => Slots::PerRow { out, inp, nm },
        };
        estimate(&self.arch, "gemm", slots, rows, tile).ok()
    }

    /// Energy of one GEMM in pJ (the same counts priced by the energy table).
    pub fn energy_pj(&self, p: Primitive, q: &GemmQuery<'_>, tile: Option<Tile>) -> Option<f64> {
        self.estimate(p, q, tile).map(|s| s.energy_pj(&self.energy))
    }
}

impl CostModel for FlexcimCostModel {
    fn target(&self) -> &str {
        "flexcim"
    }

    fn unit(&self) -> &str {
        "cycles"
    }

    fn source(&self) -> String {
        let masks = match self.masks {
            Masks::Aligned => "#nm masks assumed aligned across column tiles",
            Masks::PerRow => "#nm masks assumed per-row",
        };
        format!("analytical model of {} ({}; {masks})", self.arch.name, self.source)
    }

    fn gemm(&self, p: Primitive, q: &GemmQuery<'_>, tile: Option<Tile>) -> Option<f64> {
        self.estimate(p, q, tile).map(|s| s.total_cycles() as f64)
    }

    fn lut_precompute(&self, _rows: u64, _k: u64) -> Option<f64> {
        None
    }

    fn tiles(&self, p: Primitive, q: &GemmQuery<'_>) -> Vec<Tile> {
        let Some(nm) = self.pattern(p, q).and_then(|nm| fit_nominal(&self.arch, nm, q.k as usize)) else { return Vec::new() };
        let full = macro_tile(&self.arch, nm);
        let c = self.arch.array.columns as u64;
        let clamp = |t: Tile| Tile { m: t.m.min(q.n.max(1)), k: t.k.min(q.k.max(1)) };
        let mut out: Vec<Tile> = Vec::new();
        let half_k = full.k / 2 / nm.m() as u64 * nm.m() as u64;
        for t in [full, Tile { m: c, k: full.k }, Tile { m: full.m, k: half_k }] {
            let t = clamp(t);
            if t.m > 0 && t.k > 0 && check_tile(&self.arch, nm, t).is_ok() && !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }
}
