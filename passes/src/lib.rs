//! flexc's passes: the `Pass` trait, the pass manager, pipeline text and every transform.
//!
//! * [`pass`]: the `Pass` trait, its context and its registry entry ([`PassInfo`]).
//! * [`manager`]: the pass manager and its instrumentation.
//! * [`pipeline`]: pipeline text (`a,b{k=v},c`); [`options`]: typed options.
//! * [`registry`]: every pass by name, and the named presets.
//! * Transforms: [`canonicalize`], [`cse`], [`dce`]; [`sparsity`]: `flow-nm`, `prune-nm`.
//! * [`target`]: the cost-model trait targets implement for `select-gemm` and `tile-gemm`.
//! * [`egraph`]: `select-gemm` (equality-saturation kernel selection) and its `--explain` data;
//!   [`tile_gemm`]: `tile-gemm`.
//! * [`rewrite`]: the one way passes replace values and delete ops.

pub mod canonicalize;
pub mod cse;
pub mod dce;
pub mod egraph;
pub mod manager;
pub mod options;
pub mod pass;
pub mod pipeline;
pub mod quant;
pub mod registry;
pub mod rewrite;
pub mod sparsity;
pub mod target;
pub mod tile_gemm;

pub use egraph::explain::Explain;
pub use manager::{ManagerOptions, PassManager, PipelineError, PrintAfter, RunReport};
pub use pass::{Changed, Pass, PassCx, PassInfo, Progress};
pub use registry::{lookup, presets, registry};
