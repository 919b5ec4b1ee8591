//! The pass manager (the `Pass` trait itself is in [`crate::pass`]).
//!
//! The manager runs a pipeline over a module and offers the instrumentation
//! every compiler user expects, shared by the CLI and the tests:
//! verify after each pass, print the IR after some or all passes, stop after a
//! named pass, and time each pass.

use crate::egraph::explain::Explain;
use crate::options::Options;
use crate::pass::{Changed, Pass, PassCx, PassInfo, Progress};
use crate::pipeline::{PassSpec, PipelineSyntaxError};
use crate::registry::{lookup, parse_with_presets, registry};
use crate::target::CostModel;
use flexc_ir::verify::{verify_module, VerifyError};
use flexc_ir::Module;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which passes print the IR after them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PrintAfter {
    /// None.
    #[default]
    Never,
    /// Every pass.
    All,
    /// The named passes.
    Passes(Vec<String>),
}

impl PrintAfter {
    /// Parses `all` or a comma-separated list of pass names.
    pub fn parse(s: &str) -> PrintAfter {
        if s == "all" { PrintAfter::All } else { PrintAfter::Passes(s.split(',').map(|p| p.trim().to_string()).collect()) }
    }

    fn wants(&self, pass: &str) -> bool {
        match self {
            PrintAfter::Never => false,
            PrintAfter::All => true,
            PrintAfter::Passes(ps) => ps.iter().any(|p| p == pass),
        }
    }
}

/// Instrumentation options.
#[derive(Clone, Debug, Default)]
pub struct ManagerOptions {
    /// Run the verifier after every pass.
    pub verify_each: bool,
    /// Print the IR after these passes.
    pub print_ir_after: PrintAfter,
    /// Stop after the first pass with this name.
    pub stop_after: Option<String>,
    /// Record how long each pass took.
    pub time_passes: bool,
}

/// Why a pipeline could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The text is malformed.
    #[error(transparent)]
    Syntax(#[from] PipelineSyntaxError),
    /// A pass name is not registered.
    #[error("unknown pass '{name}' (known passes: {known})")]
    UnknownPass {
        /// The name given.
        name: String,
        /// Every registered name.
        known: String,
    },
    /// A pass's options are wrong.
    #[error("{0}")]
    Options(String),
    /// `--stop-after` names a pass that is not in the pipeline.
    #[error("--stop-after={0}: that pass is not in the pipeline")]
    StopAfter(String),
    /// A pass failed.
    #[error("pass '{pass}' failed: {message}")]
    PassFailed {
        /// The pass.
        pass: String,
        /// Its message.
        message: String,
    },
    /// The module did not verify after a pass.
    #[error("the IR does not verify after pass '{pass}': {}", .errors.first().map(ToString::to_string).unwrap_or_default())]
    Verify {
        /// The pass.
        pass: String,
        /// Every finding.
        errors: Vec<VerifyError>,
    },
}

/// One pass's row in the run report.
#[derive(Clone, Debug)]
pub struct PassTiming {
    /// The pass as written in the pipeline.
    pub spec: String,
    /// Wall time.
    pub time: Duration,
    /// Whether it changed the module.
    pub changed: Changed,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// Each pass that ran, in order.
    pub passes: Vec<PassTiming>,
    /// Remarks the passes made.
    pub remarks: Vec<String>,
    /// The GEMM passes' explanation, if one ran (`flexc opt --explain`).
    pub explain: Option<Explain>,
}

impl RunReport {
    /// A `--time-passes` table.
    pub fn timing_table(&self) -> String {
        let total: Duration = self.passes.iter().map(|p| p.time).sum();
        let mut s = String::from("===-- pass execution timing --===\n");
        for p in &self.passes {
            let pct = if total.is_zero() { 0.0 } else { 100.0 * p.time.as_secs_f64() / total.as_secs_f64() };
            s += &format!("  {:>10.3} ms  {pct:5.1}%  {}{}\n", p.time.as_secs_f64() * 1e3, p.spec, if p.changed == Changed::No { "  (no change)" } else { "" });
        }
        s += &format!("  {:>10.3} ms  100.0%  total\n", total.as_secs_f64() * 1e3);
        s
    }
}

/// A configured pipeline.
pub struct PassManager {
    passes: Vec<(PassSpec, Box<dyn Pass>)>,
    opts: ManagerOptions,
    cost_models: Vec<Arc<dyn CostModel>>,
    progress: Progress,
}

impl PassManager {
    /// Builds a pipeline from text (or a preset name), checking every pass
    /// name and option before anything runs.
    pub fn from_text(text: &str, opts: ManagerOptions) -> Result<PassManager, PipelineError> {
        let mut passes = Vec::new();
        for spec in parse_with_presets(text)? {
            let info: &PassInfo = lookup(&spec.name).ok_or_else(|| PipelineError::UnknownPass {
                name: spec.name.clone(),
                known: registry().iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
            })?;
            let options = Options::check(&spec, info.options).map_err(PipelineError::Options)?;
            let pass = (info.make)(&options).map_err(PipelineError::Options)?;
            passes.push((spec, pass));
        }
        if let Some(stop) = &opts.stop_after
            && !passes.iter().any(|(s, _)| s.name == *stop)
        {
            return Err(PipelineError::StopAfter(stop.clone()));
        }
        Ok(PassManager { passes, opts, cost_models: Vec::new(), progress: Progress::default() })
    }

    /// Passes report their progress to `progress`.
    pub fn with_progress(mut self, progress: Progress) -> PassManager {
        self.progress = progress;
        self
    }

    /// Hands a target's cost model to the passes (replacing an earlier one
    /// for the same target).
    pub fn with_cost_model(mut self, model: Arc<dyn CostModel>) -> PassManager {
        self.cost_models.retain(|m| m.target() != model.target());
        self.cost_models.push(model);
        self
    }

    /// The passes, as pipeline text.
    pub fn pipeline_text(&self) -> String {
        self.passes.iter().map(|(s, _)| s.to_string()).collect::<Vec<_>>().join(",")
    }

    /// Runs every pass in order. `dump` receives `(pass, module)` after each
    /// pass that `--print-ir-after` selects.
    pub fn run(&mut self, m: &mut Module, dump: &mut dyn FnMut(&str, &Module)) -> Result<RunReport, PipelineError> {
        let mut report = RunReport::default();
        let mut cx = PassCx { cost_models: self.cost_models.clone(), progress: self.progress.clone(), ..PassCx::default() };
        for (spec, pass) in &mut self.passes {
            let t0 = Instant::now();
            let changed = pass.run(m, &mut cx).map_err(|message| PipelineError::PassFailed { pass: spec.name.clone(), message })?;
            let time = t0.elapsed();
            report.passes.push(PassTiming { spec: spec.to_string(), time, changed });
            if self.opts.verify_each {
                verify_module(m).map_err(|errors| PipelineError::Verify { pass: spec.name.clone(), errors })?;
            }
            if self.opts.print_ir_after.wants(&spec.name) {
                dump(&spec.name, m);
            }
            if self.opts.stop_after.as_deref() == Some(spec.name.as_str()) {
                break;
            }
        }
        report.remarks = cx.remarks;
        report.explain = cx.explain;
        Ok(report)
    }
}
