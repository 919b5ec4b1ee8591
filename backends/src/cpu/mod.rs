//! The CPU backend's kernel layer: Cranelift-JIT GEMV/GEMM kernels that read
//! ggml-format weights in place and llama.cpp-style Q8 activations.
//!
//! - [`jit`]: the JIT session (ISA choice, compile with panic containment,
//!   VCode / machine-code access, module lifetime);
//! - [`format`]: weight formats and their block geometry;
//! - [`act`]: bit-exact Q8_0 / Q8_K activation quantisation;
//! - `codegen`: the CLIF generators, specialised to shape, format and tile;
//! - `rowgroup`: the 4-weight-row × tile GEMM micro-kernel of the 32-element
//!   block formats (prefill), transposed so lanes are rows; `rowgroup_k`:
//!   the same for Q4_K and Q6_K;
//! - [`wide`]: the second generator: AVX2 / AVX-512 micro-kernels assembled
//!   at run time with `iced-x86` (the prefill int-dot GEMM), same ABI;
//! - [`gemv`]: the safe, length-checked, multi-threaded kernel wrapper;
//! - [`runtime`]: whole IR functions compiled to a plan over these kernels;
//! - [`lut`]: the T-MAC LUT mpGEMV (bit-plane int8 tables, `pshufb`) for
//!   `#gq`, `#ternary` and `#bcq` weights, packed at compile time;
//! - [`shiftadd`]: the μ = 8 shift-add BCQ GEMV/GEMM (LUT-GEMM 256-entry
//!   tables, APoT scales as exponent adds), Cranelift-generated, packed at compile time;
//! - [`kernel_bench`]: the primitive benchmark (LUT, shift-add, N:M sparse,
//!   dequant, dense) behind `flexc bench kernels`;
//! - [`cost`]: the CPU cost model (`CostModel` for target `cpu`) over a
//!   measured table, and [`cost_bench`], which measures that table.

pub mod act;
mod codegen;
mod rowgroup;
mod rowgroup_k;
pub mod cost;
pub mod cost_bench;
pub mod format;
pub mod gemv;
pub mod jit;
pub mod runtime;
pub mod kernel_bench;
pub mod lut;
pub mod prepack;
pub mod shiftadd;
pub mod shiftadd_shared;
pub mod sparse;
pub mod wide;

pub use act::ActivationQ8;
pub use codegen::{KernelSpec, MAX_TILE};
pub use rowgroup::ROW_GROUP;
pub use format::{ActKind, WeightFormat};
pub use gemv::GemvKernel;
pub use jit::{CompiledFn, IsaCaps, IsaSpec, JitError, JitSession};
pub use wide::{WideFn, WideTier};

/// A raw pointer moved into pool workers, which write disjoint parts of the
/// output (row blocks of `y`, elements of a planned buffer) and only read
/// the shared inputs (weights, activations, tables).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) T);
// SAFETY: every user hands workers pointers to disjoint output ranges and to
// inputs no worker writes; see the kernels' run loops.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

/// Runs `work(b0, b1)` over `0..n` cut into `threads` contiguous ranges
/// (rayon for all but the first, which runs on the caller): the thread
/// split of the stand-alone kernel entry points (the runtime uses its pool).
pub(crate) fn split_ranges(n: usize, threads: usize, work: impl Fn(usize, usize) + Sync) {
    let threads = threads.clamp(1, n.max(1));
    if threads == 1 {
        work(0, n);
        return;
    }
    let bounds: Vec<usize> = (0..=threads).map(|i| n * i / threads).collect();
    rayon::scope(|sc| {
        for i in 1..threads {
            let (b0, b1, work) = (bounds[i], bounds[i + 1], &work);
            sc.spawn(move |_| work(b0, b1));
        }
        work(bounds[0], bounds[1]);
    });
}
