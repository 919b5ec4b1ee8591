//! The CPU backend's kernel layer: Cranelift-JIT GEMV/GEMM kernels that read
//! ggml-format weights in place and llama.cpp-style Q8 activations.
//!
//! - [`jit`]: the JIT session (ISA choice, compile with panic containment,
//!   VCode / machine-code access, module lifetime);
//! - [`format`]: weight formats and their block geometry;
//! - [`act`]: bit-exact Q8_0 / Q8_K activation quantisation;
//! - `codegen`: the CLIF generators, specialised to shape, format and tile;
//! - [`gemv`]: the safe, length-checked, multi-threaded kernel wrapper.

pub mod act;
mod codegen;
pub mod format;
pub mod gemv;
pub mod jit;
pub mod kernel_bench;
pub mod lut;
pub mod shiftadd;

pub use act::ActivationQ8;
pub use codegen::{KernelSpec, MAX_TILE};
pub use format::{ActKind, WeightFormat};
pub use gemv::GemvKernel;
pub use jit::{CompiledFn, IsaCaps, IsaSpec, JitError, JitSession};
