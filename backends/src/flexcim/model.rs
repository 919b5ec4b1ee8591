//! Whole-model FlexCiM runs: every linear layer of every decoder block (and the LM head) of a
//! module's function, for a phase of `rows` activation rows (one decode token
//! is `rows = 1`, a prefill `rows = 128`), on FlexCiM and its baselines.
//!
//! A phase runs on one of two engines, and says which:
//! * [`Engine::Cycle`]: lower and simulate every layer (functional check
//!   against the integer matmul and, for small phases, the reference
//!   interpreter's `i8 × i8 → i32` matmul);
//! * [`Engine::Analytical`]: the analytical model on the real masks
//!   ([`super::analytic`], equal to the simulator's counts, no values).
//!
//! Weights come straight from the weight table (decoded, int8 per row, the
//! `#nm` mask kept); activations, when the cycle engine needs them, are the
//! GEMM inputs the reference interpreter computes for the function on seeded
//! random token ids. GEMMs outside the blocks with a weight-table weight (the
//! LM head, the output projection) run like block linears, dense unless the
//! pipeline pruned them; the embedding lookup is host work (a gather).

use super::analytic::{estimate, Slots};
use super::arch::{Arch, EnergyTable, Regime};
use super::fromir::{activations_i8, elems, evaluate_values, find_gemms, interpreter_matmul, layer_of, weight_tensor, Gemm, IrWork};
use super::layer::{fit_pattern, DenseLayout, NmLayer};
use super::mapping::{slot_keys, Mapping};
use super::sim::Stats;
use super::{evaluate, Check, Workload};
use flexc_ir::Module;

/// Which engine a phase ran on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Lowered and simulated, with the functional check.
    Cycle,
    /// The analytical model on the real masks.
    Analytical,
}

impl Engine {
    /// `cycle-level` / `analytical`.
    pub fn label(self) -> &'static str {
        match self {
            Engine::Cycle => "cycle-level",
            Engine::Analytical => "analytical",
        }
    }
}

/// One linear: a block linear or the LM head.
#[derive(Clone, Debug)]
pub struct ModelLayer {
    /// Where it is in the IR.
    pub gemm: Gemm,
    /// Its int8 layout.
    pub layer: NmLayer,
    /// Its decoder block; `None` outside the blocks (the LM head).
    pub block: Option<usize>,
}

/// The linears of a function and the GEMMs left out.
#[derive(Clone, Debug, Default)]
pub struct ModelLayers {
    /// Block linears and the LM head, in layout order.
    pub layers: Vec<ModelLayer>,
    /// GEMMs outside the blocks whose weight is not a weight-table entry
    /// (computed at run time): (name, out, in).
    pub skipped: Vec<(String, usize, usize)>,
    /// Host ops of the function: (mnemonic, result type).
    pub host: Vec<(String, flexc_ir::TensorType)>,
}

/// Reads every linear of `func` (the first when `None`) from the weight
/// table: the block linears and the LM head; `progress(done, total)` per GEMM.
pub fn model_layers(module: &Module, func: Option<&str>, progress: &mut dyn FnMut(usize, usize)) -> Result<ModelLayers, String> {
    let found = find_gemms(module, func)?;
    let mut out = ModelLayers { host: found.host, ..ModelLayers::default() };
    let total = found.gemms.len();
    for (i, g) in found.gemms.into_iter().enumerate() {
        let block = g.weight.as_deref().and_then(flexc_passes::sparsity::block_of);
        match weight_tensor(module, &g) {
            Some(w) => {
                let layer = layer_of(&g, &w?, &DenseLayout)?;
                out.layers.push(ModelLayer { gemm: g, layer, block });
            }
            None if block.is_none() => out.skipped.push((g.name.clone(), g.out, g.inp)),
            None => return Err(format!("{}: the weight is not a weight-table entry", g.name)),
        }
        progress(i + 1, total);
    }
    Ok(out)
}

/// Slots the lowering allocates for a layer on `arch` with weight tile
/// `tile` (`None`: the default), and the slots an aligned mask would need
/// (their ratio is what per-row masks cost); [`super::lower::Plan`] has the same.
pub fn slot_use(arch: &Arch, layer: &NmLayer, tile: Option<flexc_passes::target::Tile>) -> Result<(usize, usize), String> {
    let f = fit_pattern(arch, layer)?;
    let map = Mapping::new(arch, f.nm, f.out, f.inp, tile)?;
    let (mut got, mut ideal) = (0, 0);
    for cols in map.bundles(arch, f.out) {
        for c in cols {
            for g in map.ktiles(f.inp) {
                got += slot_keys(&f, c.clone(), g.clone()).len();
                ideal += g.len() * f.nm.n();
            }
        }
    }
    Ok((got, ideal))
}

/// One layer's result on FlexCiM and each baseline.
#[derive(Clone, Debug)]
pub struct LayerResult {
    /// The weight name.
    pub name: String,
    /// Its block.
    pub block: Option<usize>,
    /// The pattern as stored (`2:4`, `8:8` for dense).
    pub nm: String,
    /// `out × in`.
    pub shape: (usize, usize),
    /// Slots allocated / slots an aligned mask needs, on FlexCiM.
    pub slots: (usize, usize),
    /// Counts on FlexCiM, then each baseline.
    pub stats: Vec<Stats>,
}

/// A phase over every layer.
#[derive(Clone, Debug)]
pub struct PhaseResult {
    /// `decode` / `prefill`.
    pub name: String,
    /// Activation rows.
    pub rows: usize,
    /// The engine used.
    pub engine: Engine,
    /// The weight regime (the FlexCiM arch's `[memory] regime`, shared by the baselines).
    pub regime: Regime,
    /// Per layer.
    pub layers: Vec<LayerResult>,
    /// Totals on FlexCiM, then each baseline.
    pub totals: Vec<Stats>,
    /// The functional check (`Skipped` for the analytical engine).
    pub check: Check,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// The GEMM inputs of every layer as int8, from the reference interpreter
/// running `func` on `rows` seeded random tokens.
pub fn activations(module: &Module, func: Option<&str>, layers: &[ModelLayer], rows: usize, seed: u64) -> Result<Vec<Vec<i8>>, String> {
    let id = match func {
        Some(n) => module.func(n).ok_or_else(|| format!("no function @{n}"))?,
        None => module.funcs.keys().next().ok_or("the module has no function")?,
    };
    let xs: Vec<flexc_ir::Value> = layers.iter().map(|l| l.gemm.x).collect();
    evaluate_values(module, id, &xs, rows, seed)?.iter().map(activations_i8).collect()
}

/// One stream's workloads: every layer with its `rows` activation rows
/// (from [`activations`]) and its tile, plus the function's host work for
/// `rows` rows, as [`super::lower_program`] takes them.
pub fn stream_work(layers: &ModelLayers, acts: Vec<Vec<i8>>, rows: usize) -> Result<IrWork, String> {
    if acts.len() != layers.layers.len() {
        return Err(format!("{} activation sets for {} layers", acts.len(), layers.layers.len()));
    }
    let work = layers.layers.iter().zip(acts).map(|(ml, x)| Workload { layer: ml.layer.clone(), x, tokens: rows, oracle: None, tile: ml.gemm.tile }).collect();
    let host = layers.host.iter().map(|(op, t)| (op.clone(), elems(t, rows))).collect();
    Ok(IrWork { work, host })
}

/// The machines a phase runs on: FlexCiM and its baselines.
#[derive(Copy, Clone, Debug)]
pub struct Machines<'a> {
    /// The FlexCiM architecture.
    pub arch: &'a Arch,
    /// The energy table.
    pub energy: &'a EnergyTable,
    /// Baseline names as `Arch::baseline` takes them (`dense`, `fixed-2:4`).
    pub baselines: &'a [String],
}

/// Runs one phase on FlexCiM then each baseline; `acts` are needed for
/// [`Engine::Cycle`]. `progress(done)` is called after each layer.
pub fn run_phase(on: Machines<'_>, layers: &[ModelLayer], name: &str, rows: usize, engine: Engine, acts: Option<&[Vec<i8>]>, progress: &mut dyn FnMut(usize)) -> Result<PhaseResult, String> {
    let Machines { arch, energy, baselines } = on;
    let t = std::time::Instant::now();
    let barchs = baselines.iter().map(|b| arch.baseline(b)).collect::<Result<Vec<_>, _>>()?;
    let mut out = PhaseResult { name: name.to_string(), rows, engine, regime: arch.memory.regime, layers: Vec::new(), totals: Vec::new(), check: if engine == Engine::Cycle { Check::Passed } else { Check::Skipped }, seconds: 0.0 };
    for (i, ml) in layers.iter().enumerate() {
        let l = &ml.layer;
        // Counts per machine, and FlexCiM's slots (allocated, aligned-mask need).
        let (stats, slots): (Vec<Stats>, (usize, usize)) = match engine {
            Engine::Analytical => (std::iter::once(arch).chain(&barchs).map(|a| estimate(a, &l.name, Slots::Layer(l), rows, ml.gemm.tile)).collect::<Result<_, _>>()?, slot_use(arch, l, ml.gemm.tile)?),
            Engine::Cycle => {
                let x = acts.and_then(|a| a.get(i)).ok_or_else(|| format!("layer {}: no activations for the cycle-level engine", l.name))?.clone();
                if x.len() != rows * l.inp {
                    return Err(format!("layer {}: {} activations for {rows} rows × {}", l.name, x.len(), l.inp));
                }
                // The interpreter as a second oracle where it is quick (decode-sized phases).
                let oracle = if rows <= 8 { Some(interpreter_matmul(l, &x, rows)?) } else { None };
                let w = Workload { layer: l.clone(), x, tokens: rows, oracle, tile: ml.gemm.tile };
                let ev = evaluate(arch, energy, std::slice::from_ref(&w), &[], baselines)?;
                if out.check == Check::Passed && ev.check != Check::Passed {
                    out.check = ev.check.clone();
                }
                let first = |r: &super::ArchRun| r.result.layers.iter().find(|s| s.dense_macs > 0).cloned().unwrap_or_default();
                let plan = ev.flexcim.plans.first().ok_or_else(|| format!("layer {}: no plan", l.name))?;
                (std::iter::once(&ev.flexcim).chain(&ev.baselines).map(first).collect(), (plan.slots, plan.ideal_slots))
            }
        };
        out.layers.push(LayerResult { name: l.name.clone(), block: ml.block, nm: l.nm.to_string(), shape: (l.out, l.inp), slots, stats });
        progress(i + 1);
    }
    out.totals = (0..=barchs.len())
        .map(|a| {
            let mut s = Stats { name: "total".into(), ..Stats::default() };
            out.layers.iter().for_each(|l| s.add(&l.stats[a]));
            s
        })
        .collect();
    out.seconds = t.elapsed().as_secs_f64();
    Ok(out)
}

/// Cell MACs the cycle-level engine would simulate for a phase (FlexCiM and
/// baselines), from the analytical model: what the engine choice weighs.
pub fn cycle_work(arch: &Arch, baselines: &[String], layers: &[ModelLayer], rows: usize) -> Result<u64, String> {
    let mut archs = vec![arch.clone()];
    for b in baselines {
        archs.push(arch.baseline(b)?);
    }
    let mut macs = 0;
    for a in &archs {
        for ml in layers {
            macs += estimate(a, &ml.layer.name, Slots::Layer(&ml.layer), rows, ml.gemm.tile)?.macs;
        }
    }
    Ok(macs)
}

/// A phase as an [`super::Evaluation`] (no streams), for the JSON and HTML
/// reports: FlexCiM as `flexcim`, then one run per baseline name.
pub fn phase_evaluation(phase: &PhaseResult, flexcim_name: &str, baselines: &[String], energy: &EnergyTable, mhz: f64) -> super::Evaluation {
    let run = |a: usize, name: &str| super::ArchRun {
        name: name.to_string(),
        program: super::isa::Program::default(),
        plans: Vec::new(),
        result: super::sim::SimResult { layers: phase.layers.iter().map(|l| Stats { name: l.name.clone(), ..l.stats[a].clone() }).collect(), outputs: Vec::new(), total: phase.totals[a].clone() },
        sim_seconds: phase.seconds,
    };
    super::Evaluation {
        flexcim: run(0, flexcim_name),
        baselines: baselines.iter().enumerate().map(|(i, b)| run(i + 1, b)).collect(),
        check: phase.check.clone(),
        energy: energy.clone(),
        mhz,
    }
}
