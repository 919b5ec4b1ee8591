//! FlexCiM backend: a FlexCiM-like N:M digital compute-in-memory macro.
//!
//! * [`arch`]: the architecture and energy files (TOML, nothing hard-coded);
//! * [`isa`]: instructions, text assembly and binary encoding (`ISA.md`);
//! * [`layer`]: int8 N:M layers (from masks, pruning or dense weights);
//! * [`mapping`]: tiles, aggregation and the loop nest a layer runs as;
//! * [`lower`]: int8 N:M layers to instruction streams;
//! * [`fromir`]: IR functions to layers (matmuls and `kern.*_gemm`s with
//!   weights) plus host work;
//! * [`timing`]: per-instruction cycle and energy rules;
//! * [`sim`]: the functional, cycle- and energy-counting simulator;
//! * [`analytic`]: the same counts without a stream (the cost model's engine);
//! * [`cost`]: the `CostModel` `select-gemm`/`tile-gemm` ask;
//! * [`model`]: whole-model runs (every block linear and the LM head, one engine per phase);
//! * [`report`]: JSON and HTML reports.
//!
//! [`evaluate`] ties them together: lower, simulate, check every result
//! against a plain integer matmul, and run the baselines on the same layers.
//! All results are of a "FlexCiM-like model" (papers.md §1.4).

pub mod analytic;
pub mod arch;
pub mod cost;
pub mod fromir;
pub mod isa;
pub mod layer;
pub mod lower;
pub mod mapping;
pub mod model;
pub mod report;
pub mod sim;
pub mod timing;

use arch::{Arch, EnergyTable};
use flexc_passes::target::Tile;
use isa::{Instr, Program};
use layer::{fit_pattern, reference_matmul, NmLayer};
use lower::{lower_layer_tiled, Plan};
use sim::{simulate, SimResult};

/// One layer to run: weights, activations `tokens × in`, and optionally a
/// second oracle's int32 results (the reference interpreter's).
#[derive(Clone, Debug)]
pub struct Workload {
    /// The layer.
    pub layer: NmLayer,
    /// Activations.
    pub x: Vec<i8>,
    /// Vectors.
    pub tokens: usize,
    /// Another oracle's results, `tokens × out`.
    pub oracle: Option<Vec<i32>>,
    /// The weight tile (`kern.tile`), if the IR fixed one.
    pub tile: Option<Tile>,
}

/// Everything a run produced, for one architecture.
#[derive(Clone, Debug)]
pub struct ArchRun {
    /// Label.
    pub name: String,
    /// The stream.
    pub program: Program,
    /// Per layer, how it was mapped.
    pub plans: Vec<Plan>,
    /// The simulation.
    pub result: SimResult,
    /// Seconds the simulation took.
    pub sim_seconds: f64,
}

/// The outcome of the functional check.
#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    /// Every result equals the oracles'.
    Passed,
    /// The first mismatch.
    Failed(String),
    /// No oracle (a stream file alone).
    Skipped,
}

impl Check {
    /// `passed`, `failed` or `skipped`.
    pub fn label(&self) -> &'static str {
        match self {
            Check::Passed => "passed",
            Check::Failed(_) => "failed",
            Check::Skipped => "skipped",
        }
    }
}

/// A FlexCiM run, its baselines and the check.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// The FlexCiM-like macro.
    pub flexcim: ArchRun,
    /// Baselines on the same layers.
    pub baselines: Vec<ArchRun>,
    /// The functional check over FlexCiM and every baseline.
    pub check: Check,
    /// The energy table used.
    pub energy: EnergyTable,
    /// Clock (MHz) for reports.
    pub mhz: f64,
}

/// The tile a workload runs with on `arch`: its own when `strict` (a misfit
/// is then the lowering's error), else its own only if it fits the pattern
/// `arch` runs the layer as (a baseline keeps its default tiling otherwise).
fn tile_for(arch: &Arch, w: &Workload, strict: bool) -> Result<Option<Tile>, String> {
    let Some(t) = w.tile else { return Ok(None) };
    if strict {
        return Ok(Some(t));
    }
    let nm = fit_pattern(arch, &w.layer)?.nm;
    let eff = Tile { m: t.m.min(w.layer.out as u64), k: t.k.min(w.layer.inp as u64) };
    Ok(mapping::check_tile(arch, nm, eff).is_ok().then_some(t))
}

/// Lowers every workload for `arch` (host work appended as `host`) and
/// simulates. `strict`: every `kern.tile` must fit (FlexCiM itself); else
/// tiles that do not fit a baseline's pattern fall back to its default.
pub fn run_arch_tiled(arch: &Arch, name: &str, work: &[Workload], host: &[(String, u64)], strict: bool) -> Result<ArchRun, String> {
    let (program, plans) = lower_program(arch, work, host, strict, &mut |_| {})?;
    run_program(arch, name, program, plans)
}

/// One stream for every workload on `arch`, host work appended as `host`
/// instructions (`strict` as in [`run_arch_tiled`]); `progress(done)` after
/// each layer.
pub fn lower_program(arch: &Arch, work: &[Workload], host: &[(String, u64)], strict: bool, progress: &mut dyn FnMut(usize)) -> Result<(Program, Vec<Plan>), String> {
    let mut program = Program::default();
    let mut plans = Vec::new();
    for (i, w) in work.iter().enumerate() {
        let tile = tile_for(arch, w, strict)?;
        plans.push(lower_layer_tiled(arch, &w.layer, &w.x, w.tokens, tile, &mut program)?);
        progress(i + 1);
    }
    program.instrs.extend(host.iter().map(|(op, elems)| Instr::Host { op: op.clone(), elems: *elems }));
    Ok((program, plans))
}

/// [`run_arch_tiled`], strict: every `kern.tile` must fit `arch`.
pub fn run_arch(arch: &Arch, name: &str, work: &[Workload], host: &[(String, u64)]) -> Result<ArchRun, String> {
    run_arch_tiled(arch, name, work, host, true)
}

/// Simulates a ready stream.
pub fn run_program(arch: &Arch, name: &str, program: Program, plans: Vec<Plan>) -> Result<ArchRun, String> {
    let t = std::time::Instant::now();
    let result = simulate(arch, &program).map_err(|e| e.to_string())?;
    Ok(ArchRun { name: name.to_string(), program, plans, result, sim_seconds: t.elapsed().as_secs_f64() })
}

/// Checks a run's results against the integer matmul (`want`, one per
/// workload) and each workload's own oracle (`oracles`: false when the arch
/// re-prunes, so its layers are not the workloads').
fn check_run(run: &ArchRun, work: &[Workload], want: &[Vec<i32>], oracles: bool) -> Check {
    let outs: Vec<&Vec<i32>> = run.result.outputs.iter().zip(&run.result.layers).filter(|(_, l)| l.dense_macs > 0).map(|(o, _)| o).collect();
    for ((w, got), want) in work.iter().zip(outs).zip(want) {
        let other = if oracles { w.oracle.as_ref() } else { None };
        for (oracle, what) in [(Some(want), "the integer matmul"), (other, "the reference interpreter")] {
            let Some(o) = oracle else { continue };
            if let Some(i) = (0..o.len()).find(|&i| got.get(i) != o.get(i)) {
                return Check::Failed(format!("{}: layer {} result {i}: simulator {:?}, {what} {}", run.name, w.layer.name, got.get(i), o[i]));
            }
        }
    }
    Check::Passed
}

/// Runs FlexCiM and the named baselines ([`Arch::baseline`]) on the same
/// layers and checks every result.
pub fn evaluate(arch: &Arch, energy: &EnergyTable, work: &[Workload], host: &[(String, u64)], baselines: &[String]) -> Result<Evaluation, String> {
    let flexcim = run_arch(arch, &format!("{} (FlexCiM-like)", arch.name), work, host)?;
    let want = work.iter().map(|w| reference_matmul(&w.layer, &w.x, w.tokens)).collect::<Result<Vec<_>, _>>()?;
    let mut check = check_run(&flexcim, work, &want, true);
    let mut runs = Vec::new();
    for b in baselines {
        let barch = arch.baseline(b)?;
        let r = run_arch_tiled(&barch, b, work, host, false)?;
        if check == Check::Passed {
            // A re-pruning baseline computes its own layers: check it against their matmul.
            check = if barch.sparsity.reprune {
                let own = work.iter().map(|w| fit_pattern(&barch, &w.layer).and_then(|l| reference_matmul(&l, &w.x, w.tokens))).collect::<Result<Vec<_>, _>>()?;
                check_run(&r, work, &own, false)
            } else {
                check_run(&r, work, &want, true)
            };
        }
        runs.push(r);
    }
    Ok(Evaluation { flexcim, baselines: runs, check, energy: energy.clone(), mhz: arch.clock.mhz })
}
