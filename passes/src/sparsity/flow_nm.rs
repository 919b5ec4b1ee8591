//! `flow-nm`: choose an N:M pattern (N kept of M) per decoder block with
//! FLOW's outlier-aware selection, or a baseline allocation, and attach it to
//! the module as the `nm_plan` metadata that `prune-nm` applies.
//!
//! `method=flow` (the default) allocates by each block's measured cost (the
//! ΔNLL on calibration windows of pruning that block alone with the
//! pipeline's own `prune-nm`, at a few probe patterns, interpolated; see
//! [`super::measured`]), solved exactly, each ratio realised with the
//! largest M;
//! FLOW's outlier ratio and locality are still computed and recorded as
//! features. `method=flow-reference` is FLOW's own formulation.
//!
//! FLOW-reference, as its code does it (reference/papers.md §1.3): per block, the Wanda
//! scores of every linear concatenated in module order (q, k, v, o, gate, up,
//! down); outlier ratio r = OWL's LOD with threshold `hyper-m × mean`;
//! locality li = 1 / mean pairwise distance of the first ≤ 10,000 outlier
//! positions; both min-max normalised (the reference's Lamda rescaling and
//! mean-centring are affine, so min-max undoes them: no option); cost
//! `|N − 8·O| + 4·|M − 8·(1 − D)|` over the candidates; the average sparsity
//! constraint either `nearest` (the default: the closest reachable average,
//! exactly, by DP, with the dense ends counted) or, opt-in, `reference` (the
//! reference's equality, reproducing its solver's infeasible outcome, which
//! is fitted to recorded outputs); then blocks 0 and L−1 forced to 8:8
//! (`dense-ends`). The record of every block is kept in `nm_blocks`.
//!
//! Baselines (`method=`): `uniform` (`pattern` everywhere: with
//! `prune-nm{score=wanda}` this is Wanda N:M, with `score=magnitude`
//! magnitude N:M), `owl` (OWL's unstructured per-block sparsity, λ = `lamda`,
//! use `hyper-m=5`), `owl-nm` (OWL's N-only variant: M of `pattern` fixed,
//! N moved by the rounded outlier ratio; the README uses `lamda=2 hyper-m=6`).

use super::measured::{allocate_units, measured_table, realisations, unit_costs, ProbeSettings};
use super::*;
use crate::pass::{Changed, Pass, PassCx, PassInfo};
use crate::options::{OptDecl, OptKind, Options};
use std::time::Instant;

/// `method=flow`'s default candidates: every N:M the kernels and the macro run.
pub const MEASURED_CANDIDATES: &str = "1:8,2:8,3:8,4:8,5:8,6:8,7:8,8:8,1:4,2:4,3:4,4:4,1:2";

pub(crate) const INFO: PassInfo = PassInfo {
    name: "flow-nm",
    summary: "choose N:M (N kept of M) per block: FLOW's outlier-aware selection or a baseline; attaches nm_plan",
    options: &[
        OptDecl { name: "method", kind: OptKind::Str, default: "flow", help: "flow (measured sensitivity, exact knapsack) | flow-reference (FLOW's ILP) | uniform | owl | owl-nm" },
        OptDecl { name: "sparsity", kind: OptKind::Float, default: "0.5", help: "target average sparsity over the blocks" },
        OptDecl { name: "hyper-m", kind: OptKind::Float, default: "0.5", help: "outlier threshold, a multiple of the block's mean score (FLOW solver 0.5; OWL 5, OWL N:M 6)" },
        OptDecl { name: "lamda", kind: OptKind::Float, default: "0.08", help: "OWL's λ (owl: sparsity spread ±λ; owl-nm: the README uses 2)" },
        OptDecl { name: "candidates", kind: OptKind::Str, default: "", help: "candidate patterns, N kept of M (flow: default {1..8}:8,{1..4}:4,1:2, each ratio realised with its largest M; flow-reference: 2:4,4:4,2:8,4:8,8:8)" },
        OptDecl { name: "pattern", kind: OptKind::Str, default: "2:4", help: "uniform's pattern; owl-nm's base pattern (M fixed)" },
        OptDecl { name: "mode", kind: OptKind::Str, default: "nearest", help: "nearest (the minimum-cost choice at the closest reachable average) | reference (the reference solver's equality, bug-compatible in its infeasible case)" },
        OptDecl { name: "dense-ends", kind: OptKind::Bool, default: "true", help: "force the first and last block to 8:8 (dense), as the reference does" },
        OptDecl { name: "granularity", kind: OptKind::Str, default: "block", help: "block (one pattern per decoder block, the reference) | layer (one per linear)" },
        OptDecl { name: "score", kind: OptKind::Str, default: "wanda", help: "wanda (needs --stats) | magnitude: the metric outliers are found in" },
        OptDecl { name: "probes", kind: OptKind::Str, default: "1:8,2:8,3:8,4:8,6:8", help: "flow: the patterns each block's ΔNLL is measured at (the driver measures; costs between probes interpolated)" },
        OptDecl { name: "probe-samples", kind: OptKind::Int, default: "4", help: "flow: calibration windows the probes are measured on" },
        OptDecl { name: "probe-seqlen", kind: OptKind::Int, default: "160", help: "flow: tokens per probe window (the last three quarters scored)" },
    ],
    make: |o| Ok(Box::new(FlowNm::from_options(o)?)),
};

/// Which allocation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// Measured sensitivity, exact knapsack.
    Flow,
    /// FLOW's own ILP.
    FlowReference,
    /// One pattern everywhere.
    Uniform,
    /// OWL, unstructured.
    Owl,
    /// OWL, N-only N:M.
    OwlNm,
}

/// The pass's configuration.
#[derive(Clone, Debug)]
pub struct FlowNm {
    /// The allocation.
    pub method: Method,
    /// Target average sparsity.
    pub sparsity: f64,
    /// Outlier threshold multiple.
    pub hyper_m: f64,
    /// OWL's λ.
    pub lamda: f64,
    /// FLOW's candidates.
    pub candidates: Vec<Nm>,
    /// uniform / owl-nm pattern.
    pub pattern: Nm,
    /// `nearest` instead of `exact`.
    pub nearest: bool,
    /// Force the end blocks dense.
    pub dense_ends: bool,
    /// One unit per linear instead of per block.
    pub per_layer: bool,
    /// The metric.
    pub score: Score,
}

impl FlowNm {
    /// Builds from checked options.
    pub fn from_options(o: &Options) -> Result<FlowNm, String> {
        let method = match o.str("method") {
            "flow" => Method::Flow,
            "flow-reference" => Method::FlowReference,
            "uniform" => Method::Uniform,
            "owl" => Method::Owl,
            "owl-nm" => Method::OwlNm,
            s => return Err(format!("flow-nm: method must be flow, flow-reference, uniform, owl or owl-nm, got '{s}'")),
        };
        let unused: &[&str] = match method {
            // `mode` only steers flow-reference's solver; pipelines written
            // before method=flow became the measured allocation pass it, so
            // it stays accepted there.
            Method::Flow => &["pattern", "lamda"],
            Method::FlowReference => &["pattern", "lamda", "probes", "probe-samples", "probe-seqlen"],
            Method::Uniform => &["sparsity", "candidates", "mode", "hyper-m", "lamda", "score", "probes", "probe-samples", "probe-seqlen"],
            Method::Owl => &["candidates", "mode", "pattern", "probes", "probe-samples", "probe-seqlen"],
            Method::OwlNm => &["sparsity", "candidates", "mode", "probes", "probe-samples", "probe-seqlen"],
        };
        if method == Method::Flow {
            // Checked here so that a bad value fails before any measurement.
            let spec = crate::pipeline::PassSpec {
                name: "flow-nm".into(),
                options: ["probes", "probe-samples", "probe-seqlen"].iter().map(|k| (k.to_string(), o.str(k).to_string())).collect(),
            };
            ProbeSettings::from_spec(&spec)?;
            if o.str("granularity") == "layer" {
                return Err("flow-nm: method=flow measures whole blocks; granularity=layer is for flow-reference and the baselines".into());
            }
        }
        o.reject_unused(unused, &format!("method={}", o.str("method")))?;
        let sparsity = o.float("sparsity");
        if !(0.0..1.0).contains(&sparsity) {
            return Err(format!("flow-nm: sparsity must be in [0, 1), got {sparsity}"));
        }
        // hyper-m scales the block's mean score into the outlier threshold;
        // lamda spreads sparsity (owl) or N (owl-nm) around the target.
        let (hyper_m, lamda) = (o.float("hyper-m"), o.float("lamda"));
        if !(hyper_m > 0.0 && hyper_m <= 1e6) {
            return Err(format!("flow-nm: hyper-m must be in (0, 1e6], got {hyper_m}"));
        }
        if !(0.0..=64.0).contains(&lamda) {
            return Err(format!("flow-nm: lamda must be in [0, 64], got {lamda}"));
        }
        Ok(FlowNm {
            method,
            sparsity,
            hyper_m,
            lamda,
            candidates: match (o.str("candidates"), method) {
                ("", Method::Flow) => Nm::parse_list(MEASURED_CANDIDATES).expect("valid default"),
                ("", _) => FLOW_CANDIDATES.to_vec(),
                (s, _) => Nm::parse_list(s).map_err(|e| format!("flow-nm: candidates: {e}"))?,
            },
            pattern: Nm::parse(o.str("pattern")).map_err(|e| format!("flow-nm: pattern: {e}"))?,
            nearest: match o.str("mode") {
                "reference" => false,
                "nearest" => true,
                "exact" => return Err("flow-nm: mode=exact is now mode=reference (the reference solver's emulation, opt-in); the default is nearest".into()),
                s => return Err(format!("flow-nm: mode must be nearest or reference, got '{s}'")),
            },
            dense_ends: o.bool("dense-ends"),
            per_layer: match o.str("granularity") {
                "block" => false,
                "layer" => true,
                s => return Err(format!("flow-nm: granularity must be block or layer, got '{s}'")),
            },
            score: Score::parse(o.str("score")).map_err(|e| format!("flow-nm: {e}"))?,
        })
    }
}

/// One selection unit's record.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitRecord {
    /// Block index (or, with granularity=layer, the linear's position).
    pub unit: usize,
    /// The block the unit lies in.
    pub block: usize,
    /// Outlier ratio, percent.
    pub outlier_ratio: f64,
    /// Outlier locality.
    pub locality: f64,
    /// The chosen pattern (for owl: None, see `sparsity`).
    pub nm: Option<Nm>,
    /// The unit's sparsity.
    pub sparsity: f64,
}

/// What a selection produced.
#[derive(Clone, Debug)]
pub struct Selection {
    /// Per weight.
    pub plan: Plan,
    /// Per unit.
    pub units: Vec<UnitRecord>,
    /// Solver outcome (`None` for the baselines).
    pub status: Option<Status>,
    /// Mean sparsity over units (what the constraint targets), after dense ends.
    pub achieved: f64,
    /// Fraction of the linears' parameters pruned (blocks only).
    pub param_sparsity: f64,
    /// Time spent in the solver itself.
    pub solve_time: std::time::Duration,
}

impl FlowNm {
    /// Runs the selection without touching the module.
    pub fn select(&self, m: &Module) -> Result<Selection, String> {
        let lins: Vec<Linear> = linears(m).into_iter().filter(|l| l.block.is_some()).collect();
        if lins.is_empty() {
            return Err("flow-nm: no linear layers inside decoder blocks (weights named blk.N.*)".into());
        }
        let last_block = lins.iter().filter_map(|l| l.block).max().unwrap_or(0);
        // Units: indices into lins.
        let mut units: Vec<Vec<usize>> = Vec::new();
        if self.per_layer {
            units = (0..lins.len()).map(|i| vec![i]).collect();
        } else {
            let mut blocks: Vec<usize> = lins.iter().filter_map(|l| l.block).collect();
            blocks.sort_unstable();
            blocks.dedup();
            for b in blocks {
                units.push((0..lins.len()).filter(|&i| lins[i].block == Some(b)).collect());
            }
        }
        let unit_block: Vec<usize> = units.iter().map(|u| lins[u[0]].block.unwrap_or(0)).collect();
        let needs_metrics = self.method != Method::Uniform;
        let (mut r, mut li) = (vec![0.0; units.len()], vec![0.0; units.len()]);
        if needs_metrics {
            for (k, u) in units.iter().enumerate() {
                let mut a: Vec<f32> = Vec::new();
                for &i in u {
                    a.extend(scores(m, &lins[i], self.score, StatsOf::Dense)?);
                }
                r[k] = outlier_ratio(&a, self.hyper_m);
                li[k] = locality(&outlier_positions(&a, self.hyper_m, 10_000));
            }
        }
        let is_end = |k: usize| self.dense_ends && (unit_block[k] == 0 || unit_block[k] == last_block);
        let t0 = Instant::now();
        let mut status = None;
        let targets: Vec<Target> = match self.method {
            Method::Flow => {
                let cands = realisations(&self.candidates);
                let mut all = cands.clone();
                if !all.contains(&Nm::DENSE) {
                    all.push(Nm::DENSE);
                }
                let table = measured_table(m)?.ok_or("flow-nm: method=flow needs each block's measured cost (the nm_sensitivity metadata), which the flexc commands measure with the pipeline's prune-nm when they run it (perplexity, run, compile, sim, sparsity-report); a bare pass pipeline must use method=flow-reference, uniform, owl or owl-nm")?;
                let costs = unit_costs(&table, &unit_block, &all)?;
                let sizes: Vec<u64> = units.iter().map(|u| u.iter().map(|&i| (lins[i].out * lins[i].inp) as u64).sum()).collect();
                // Dense only where held fixed, unless a candidate.
                let fixed: Vec<Option<Nm>> = (0..units.len()).map(|k| is_end(k).then_some(Nm::DENSE)).collect();
                let costs: Vec<Vec<f64>> = costs
                    .into_iter()
                    .enumerate()
                    .map(|(k, row)| row.into_iter().enumerate().map(|(j, c)| if j >= cands.len() && fixed[k].is_none() { f64::INFINITY } else { c }).collect())
                    .collect();
                let pick = allocate_units(&costs, &sizes, &all, self.sparsity, &fixed).map_err(|e| format!("flow-nm: {e}"))?;
                status = Some(Status::Measured);
                pick.into_iter().map(|j| Target::Nm(all[j])).collect()
            }
            Method::FlowReference => {
                let (o, d) = (normalise(&r), normalise(&li));
                let chosen = if self.nearest {
                    let fixed: Vec<Option<Nm>> = (0..units.len()).map(|k| is_end(k).then_some(Nm::DENSE)).collect();
                    status = Some(Status::Nearest);
                    select_nearest(&o, &d, self.sparsity, &self.candidates, &fixed).map_err(|e| format!("flow-nm: {e}"))?
                } else {
                    let (c, s) = select_exact(&o, &d, self.sparsity, &self.candidates).map_err(|e| format!("flow-nm: {e}"))?;
                    status = Some(s);
                    c
                };
                chosen.into_iter().enumerate().map(|(k, c)| Target::Nm(if is_end(k) { Nm::DENSE } else { c })).collect()
            }
            Method::Uniform => (0..units.len()).map(|k| Target::Nm(if is_end(k) { Nm::DENSE } else { self.pattern })).collect(),
            Method::Owl => owl_unstructured(&r, self.sparsity, self.lamda)
                .into_iter()
                .enumerate()
                .map(|(k, s)| Target::Unstructured(if is_end(k) { 0.0 } else { s.clamp(0.0, 1.0) }))
                .collect(),
            Method::OwlNm => owl_nm(&r, self.pattern, self.lamda)
                .into_iter()
                .enumerate()
                .map(|(k, c)| Target::Nm(if is_end(k) { Nm::DENSE } else { c }))
                .collect(),
        };
        let solve_time = t0.elapsed();
        let sp = |t: &Target| match t {
            Target::Nm(c) => c.sparsity(),
            Target::Unstructured(s) => *s,
        };
        let mut plan = Plan::new();
        let (mut pruned, mut total) = (0f64, 0f64);
        for (k, u) in units.iter().enumerate() {
            for &i in u {
                plan.push((lins[i].weight.clone(), targets[k].clone()));
                let n = (lins[i].out * lins[i].inp) as f64;
                total += n;
                pruned += n * sp(&targets[k]);
            }
        }
        let records = units
            .iter()
            .enumerate()
            .map(|(k, _)| UnitRecord {
                unit: k,
                block: unit_block[k],
                outlier_ratio: r[k],
                locality: li[k],
                nm: match targets[k] {
                    Target::Nm(c) => Some(c),
                    Target::Unstructured(_) => None,
                },
                sparsity: sp(&targets[k]),
            })
            .collect::<Vec<_>>();
        let achieved = records.iter().map(|u| u.sparsity).sum::<f64>() / records.len() as f64;
        Ok(Selection { plan, units: records, status, achieved, param_sparsity: pruned / total.max(1.0), solve_time })
    }

    fn mode_name(&self) -> &'static str {
        if self.nearest { "nearest" } else { "reference" }
    }
}

impl Pass for FlowNm {
    fn name(&self) -> &'static str {
        "flow-nm"
    }

    fn run(&mut self, m: &mut Module, cx: &mut PassCx) -> Result<Changed, String> {
        let sel = self.select(m)?;
        set_plan(m, &sel.plan);
        let blocks = sel
            .units
            .iter()
            .map(|u| {
                let (n, mm) = u.nm.map_or((0, 0), |c| (c.n() as i64, c.m() as i64));
                let mut e = vec![AttrLit::Int(u.unit as i64), AttrLit::Float(u.outlier_ratio), AttrLit::Float(u.locality), AttrLit::Int(n), AttrLit::Int(mm)];
                if u.nm.is_none() {
                    e.push(AttrLit::Float(u.sparsity));
                }
                AttrLit::List(e)
            })
            .collect();
        set_meta(m, BLOCKS_KEY, AttrLit::List(blocks));
        let method = match self.method {
            Method::Flow => "flow",
            Method::FlowReference => "flow-reference",
            Method::Uniform => "uniform",
            Method::Owl => "owl",
            Method::OwlNm => "owl-nm",
        };
        let status = match sel.status {
            Some(Status::Optimal) => "optimal",
            Some(Status::Infeasible) => "infeasible",
            Some(Status::Nearest) => "nearest",
            Some(Status::Measured) => "measured",
            None => "n/a",
        };
        let summary = format!(
            "method={method} mode={} target={} achieved={:.6} param_sparsity={:.6} status={status}",
            self.mode_name(),
            self.sparsity,
            sel.achieved,
            sel.param_sparsity
        );
        cx.remarks.push(format!("flow-nm: {summary} (solver {:.3} ms)", sel.solve_time.as_secs_f64() * 1e3));
        set_meta(m, SUMMARY_KEY, AttrLit::Str(summary));
        Ok(Changed::Yes)
    }
}
