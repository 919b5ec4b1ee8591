//! What a pass is: the [`Pass`] trait, what it may consult ([`PassCx`]),
//! what it returns ([`Changed`]) and how it is registered ([`PassInfo`]).
//!
//! Every transform imports this module (and [`crate::options`] for its
//! typed options); the [`crate::registry`] lists the transforms and the
//! [`crate::manager`] runs them, so neither is imported by a pass.

use crate::egraph::explain::Explain;
use crate::options::{OptDecl, Options};
use crate::target::CostModel;
use flexc_ir::Module;
use std::sync::Arc;

/// Whether a pass changed the module.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// It did.
    Yes,
    /// It left the module as it was.
    No,
}

impl Changed {
    /// `Yes` if `b`.
    pub fn from(b: bool) -> Changed {
        if b { Changed::Yes } else { Changed::No }
    }
}

/// Where long passes report how far they are: `(what, done, total)` calls,
/// e.g. `quantize` once per weight it encodes. The driver shows it (a
/// progress bar); without one, reports go nowhere.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<ProgressFn>>);

/// The callback behind a [`Progress`]: `(what, done, total)`.
type ProgressFn = dyn Fn(&str, usize, usize) + Send + Sync;

impl Progress {
    /// Reports to `f`.
    pub fn new(f: impl Fn(&str, usize, usize) + Send + Sync + 'static) -> Progress {
        Progress(Some(Arc::new(f)))
    }

    /// Says that `done` of `total` steps of `what` are finished.
    pub fn step(&self, what: &str, done: usize, total: usize) {
        if let Some(f) = &self.0 {
            f(what, done, total);
        }
    }
}

/// What a pass may consult besides the module.
#[derive(Default)]
pub struct PassCx {
    /// Where to report progress of long work.
    pub progress: Progress,
    /// Remarks passes make for the user (printed with `--time-passes` and in reports).
    pub remarks: Vec<String>,
    /// Target cost models the driver provided (see [`crate::target`]).
    pub cost_models: Vec<Arc<dyn CostModel>>,
    /// What `select-gemm` and `tile-gemm` decided and why (`--explain`).
    pub explain: Option<Explain>,
}

impl PassCx {
    /// The cost model of `target`, if the driver provided one.
    pub fn cost_model(&self, target: &str) -> Option<Arc<dyn CostModel>> {
        self.cost_models.iter().find(|m| m.target() == target).cloned()
    }
}

/// A transformation of a module.
pub trait Pass {
    /// The kebab-case name.
    fn name(&self) -> &'static str;
    /// Runs over the module.
    fn run(&mut self, m: &mut Module, cx: &mut PassCx) -> Result<Changed, String>;
}

/// A registered pass.
pub struct PassInfo {
    /// The kebab-case name used in pipeline text.
    pub name: &'static str,
    /// One line saying what it does.
    pub summary: &'static str,
    /// Its options.
    pub options: &'static [OptDecl],
    /// Builds an instance from checked options.
    pub make: fn(&Options) -> Result<Box<dyn Pass>, String>,
}
