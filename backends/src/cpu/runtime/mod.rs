//! The CPU runtime: a verified IR function compiled once into a plan of JIT
//! GEMV/GEMM kernels plus Rust glue kernels, executed over buffers planned
//! once and reused on every call.
//!
//! - [`plan`]: classification of ops and buffer planning (`plan/kern.rs`:
//!   the `kern.` ops, each lowered to the primitive it names);
//! - `kexec`: running the LUT precompute, LUT GEMM and shift-add steps;
//! - [`jitops`]: Cranelift rmsnorm, rope, elementwise and fused gated
//!   activation kernels, specialised to their static dims;
//! - [`ops`]: the remaining non-GEMM kernels in plain Rust (see its header);
//! - [`pool`]: the persistent worker pool the GEMV rows and attention heads
//!   are split over.
//!
//! What is JIT-compiled: every matmul / `kern.dense_gemm` against a weight
//! (all ten ggml formats and f32), specialised to its shape and batch tile,
//! via [`GemvKernel`]; every LUT GEMM (`#gq`/`#ternary`/`#bcq` matmuls and
//! `kern.lut_gemm`) via the T-MAC kernel (`lut.rs`);
//! rmsnorm, rope, the elementwise add/sub/mul/div (with row broadcast) and
//! silu/gelu(tanh)·up fused, one kernel per distinct shape, via [`jitops`].
//! Everything else (gather, attention, softmax, unfused activations) is Rust
//! in [`ops`].

mod attention;
mod exec;
mod jitattn;
mod jitops;
mod kexec;
mod ops;
pub(crate) mod plan;
mod pool;
mod slots;

pub use plan::ParamKind;

fn invalid(m: impl Into<String>) -> RuntimeError {
    RuntimeError::Invalid(m.into())
}
pub use pool::Pool;

use super::SendPtr;
use std::time::{Duration, Instant};

use super::act::ActivationQ8;
use super::gemv::GemvKernel;
use super::jit::{JitError, JitSession};
use flexc_ir::Module;

/// Errors of the CPU runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// An op (or an op's operand shape) the runtime does not implement.
    #[error("the CPU backend does not support {op}: {why}")]
    Unsupported {
        /// The op, as `%name = dialect.op`.
        op: String,
        /// What exactly is missing.
        why: String,
    },
    /// The module or a call's inputs are invalid.
    #[error("{0}")]
    Invalid(String),
    /// Kernel compilation failed.
    #[error(transparent)]
    Jit(#[from] JitError),
}

/// Options of [`CpuRuntime::compile`].
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// Threads (the caller included).
    pub threads: usize,
    /// Largest batch tile of the GEMM kernels (1..=8).
    pub tile: usize,
    /// A GEMV is split over threads only when it streams at least this many
    /// weight bytes × batch rows (smaller ones run on the caller alone).
    pub par_min_bytes: usize,
    /// LUT streams packed ahead of time (a `.flexc` artifact's), used in
    /// place of packing the weights they were packed from.
    pub prepacked: Option<std::sync::Arc<super::prepack::Prepacked>>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self { threads: default_threads(), tile: super::MAX_TILE, par_min_bytes: 48 * 1024, prepacked: None }
    }
}

/// Available cores, at most 2 (the project machines have 2).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 2)
}

/// One call's input.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// i32 values (token ids).
    I32(&'a [i32]),
    /// A scalar (the position).
    Scalar(i64),
    /// f32 values.
    F32(&'a [f32]),
}

/// One GEMV/GEMM call on the pool, for benchmarks: `y = x · Wᵀ` with the
/// weight rows split over `threads` threads (as the runtime does it).
pub fn pooled_gemv(pool: &Pool, kernel: &GemvKernel, w: &[u8], x: GemvArg<'_>, y: &mut [f32], threads: usize) -> Result<(), RuntimeError> {
    if w.len() != kernel.weight_bytes() {
        return Err(RuntimeError::Invalid(format!("weights have {} bytes, the kernel needs {}", w.len(), kernel.weight_bytes())));
    }
    let (xp, stride, batch) = match x {
        GemvArg::Q(a) if a.kind() == kernel.format().activation() && a.cols() == kernel.cols() => (a.bytes().as_ptr(), a.row_stride(), a.rows()),
        GemvArg::F32(v) if kernel.format().activation() == super::ActKind::F32 && v.len() % kernel.cols() == 0 => (v.as_ptr().cast(), kernel.cols() * 4, v.len() / kernel.cols()),
        _ => return Err(RuntimeError::Invalid("activation does not match the kernel".into())),
    };
    if y.len() != batch * kernel.rows() || batch == 0 {
        return Err(RuntimeError::Invalid("output length".into()));
    }
    // SAFETY: every length was checked above.
    unsafe { exec::gemv_split(pool, kernel, w.as_ptr(), xp, stride, batch, y.as_mut_ptr(), (threads, 0)) }
}

/// An activation operand of [`pooled_gemv`].
#[derive(Clone, Copy, Debug)]
pub enum GemvArg<'a> {
    /// Quantised activations.
    Q(&'a ActivationQ8),
    /// f32 activations (f32 weights).
    F32(&'a [f32]),
}

/// A compiled function with its buffers, KV state and worker pool.
pub struct CpuRuntime {
    plan: plan::Plan,
    bufs: Vec<Vec<f32>>,
    qacts: Vec<ActivationQ8>,
    /// LUT tables per slot, one per activation row (`kern.lut_precompute`).
    luts: Vec<Vec<super::lut::LutActivation>>,
    /// Shift-add tables, one per activation row (reused by every shift-add step).
    sa_tables: Vec<super::shiftadd::BcqTables>,
    pool: Pool,
    /// Rows the seq buffers currently hold.
    rows_cap: usize,
    /// The last call's seq.
    seq: usize,
    /// Rows computed of the outputs that allow it in the current call (`None`: all).
    tail: Option<usize>,
    rope_cos: Vec<Vec<f32>>,
    rope_sin: Vec<Vec<f32>>,
    scratch: Vec<Vec<f32>>,
    opts: RuntimeOptions,
    compile_time: Duration,
    /// Accumulated time per step kind when profiling is on.
    profile: Option<Vec<(&'static str, Duration)>>,
    /// KV state of sequence slots 1.. (slot 0 is the state buffers themselves).
    slot_states: Vec<Vec<Vec<f32>>>,
    /// Set during a batched decode call (see `slots`).
    batch: Option<slots::Batch>,
}

impl std::fmt::Debug for CpuRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuRuntime").field("steps", &self.plan.steps.len()).field("buffers", &self.bufs.len()).finish()
    }
}

impl CpuRuntime {
    /// Verifies `module` and compiles `func` into a runtime.
    pub fn compile(module: &Module, func: &str, opts: RuntimeOptions) -> Result<Self, RuntimeError> {
        let t0 = Instant::now();
        flexc_ir::verify::verify_module(module).map_err(|errs| {
            RuntimeError::Invalid(format!("the module does not verify: {}", errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")))
        })?;
        if opts.tile == 0 || opts.tile > super::MAX_TILE {
            return Err(RuntimeError::Invalid(format!("tile {} must be in 1..={}", opts.tile, super::MAX_TILE)));
        }
        let session = JitSession::host()?;
        session.executable()?;
        let plan = plan::build(module, func, &session, &opts)?;
        let mut bufs: Vec<Vec<f32>> = plan.buf_shapes.iter().map(|&(seq, row)| if seq { Vec::new() } else { vec![0.0; row] }).collect();
        for (b, vals) in &plan.consts {
            bufs[*b].clone_from(vals);
        }
        let qacts = plan.qact_kinds.iter().map(|&k| ActivationQ8::empty(k)).collect();
        let luts = vec![Vec::new(); plan.lut_slots.len()];
        let pool = Pool::new(opts.threads.max(1)).map_err(RuntimeError::Invalid)?;
        let n_tables = plan.rope_tables.len();
        let threads = pool.threads();
        Ok(Self {
            plan,
            bufs,
            qacts,
            luts,
            sa_tables: Vec::new(),
            pool,
            rows_cap: 0,
            seq: 0,
            tail: None,
            rope_cos: vec![Vec::new(); n_tables],
            rope_sin: vec![Vec::new(); n_tables],
            scratch: vec![Vec::new(); if threads > 1 { 4 * threads } else { 1 }],
            opts,
            compile_time: t0.elapsed(),
            profile: None,
            slot_states: Vec::new(),
            batch: None,
        })
    }

    /// Bytes of weights read per decoded token ([`plan::Plan::weight_bytes_per_token`]).
    pub fn weight_bytes_per_token(&self) -> u64 {
        self.plan.weight_bytes_per_token()
    }

    /// Wall time of [`CpuRuntime::compile`] (verification, planning, JIT).
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// Number of distinct JIT GEMV/GEMM kernels.
    pub fn kernel_count(&self) -> usize {
        self.plan.kernels
    }

    /// Threads in use.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// How each parameter is fed (state parameters are runtime-owned).
    pub fn params(&self) -> &[ParamKind] {
        &self.plan.params
    }

    /// Zeroes every state buffer (the KV caches).
    pub fn reset_state(&mut self) {
        for p in &self.plan.params {
            if let ParamKind::State { buf } = p {
                self.bufs[*buf].fill(0.0);
            }
        }
    }

    /// Turns per-step-kind timing on (see [`CpuRuntime::profile`]).
    pub fn enable_profile(&mut self) {
        self.profile = Some(Vec::new());
    }

    /// Accumulated time per step kind since profiling was enabled.
    pub fn profile(&self) -> &[(&'static str, Duration)] {
        self.profile.as_deref().unwrap_or(&[])
    }

    /// The `i`-th result of the last call: for a `[seq, ...]` result
    /// `seq × row` values (only the last rows when the call asked for a
    /// tail and this result supports it), for a fixed one all of it.
    pub fn output(&self, i: usize) -> Option<&[f32]> {
        let o = self.plan.outputs.get(i)?;
        let n = if o.buf.seq {
            self.tail.filter(|_| o.last_only_ok).unwrap_or(self.seq) * o.buf.row
        } else {
            o.buf.row
        };
        self.bufs.get(o.buf.buf).map(|b| &b[..n.min(b.len())])
    }

    /// Whether output `i` can be computed for the last row only.
    pub fn output_supports_last_only(&self, i: usize) -> bool {
        self.plan.outputs.get(i).is_some_and(|o| o.last_only_ok)
    }

    /// A state parameter's buffer by parameter index.
    pub fn state(&self, param: usize) -> Option<&[f32]> {
        match self.plan.params.get(param)? {
            ParamKind::State { buf } => self.bufs.get(*buf).map(Vec::as_slice),
            _ => None,
        }
    }

    /// The kind of every step of the plan, in order (`lut tables`,
    /// `lut gemv/gemm (jit)`, `gemv/gemm (jit)`, ...; as in the profile).
    pub fn step_kinds(&self) -> Vec<&'static str> {
        self.plan.steps.iter().map(exec::step_name).collect()
    }

    /// Kernel for tests and benchmarks: the GEMV kernels of the plan.
    pub fn kernels(&self) -> Vec<&GemvKernel> {
        let mut v: Vec<&GemvKernel> = Vec::new();
        for s in &self.plan.steps {
            if let plan::Step::Gemv { kernel, .. } = s
                && !v.iter().any(|k| std::ptr::eq(*k, kernel.as_ref()))
            {
                v.push(kernel);
            }
        }
        v
    }
}
