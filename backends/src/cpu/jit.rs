//! The Cranelift JIT session the CPU kernels are compiled into.
//!
//! A [`JitSession`] owns one `JITModule` (behind a mutex, so kernels can be
//! compiled from any thread) and the ISA it targets. The ISA is the host's
//! (`cranelift-native`) by default, or one built from an explicit flag list
//! ([`IsaSpec::Explicit`]) so that VCode/disassembly snapshots and callgrind
//! counts do not depend on the machine. Every compiled function is returned as
//! a [`CompiledFn`] that holds an `Arc` on the session's module: the machine
//! code stays mapped for as long as any kernel that points into it is alive,
//! and is freed when the last one is dropped.
//!
//! Cranelift is treated as an untrusted component at this boundary: the CLIF
//! is checked for vector types the x64 backend cannot lower (only 128-bit
//! vectors), run through Cranelift's verifier, and both the IR building
//! callback and `define_function` run under `catch_unwind`, so a lowering
//! panic becomes a [`JitError::Panic`] instead of unwinding into the caller.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cranelift_codegen::ir::{AbiParam, Function, Type, Value, types};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, default_libcall_names};

use super::wide::WideTier;

/// Errors of the JIT layer: bad kernel parameters, refused or crashed codegen.
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    /// The kernel's parameters (shape, format, tile) are not supported.
    #[error("invalid kernel parameters: {0}")]
    InvalidParams(String),
    /// The ISA could not be built (unknown flag, unsupported host).
    #[error("ISA setup failed: {0}")]
    Isa(String),
    /// The generated CLIF used a type the target cannot lower.
    #[error("unsupported type in generated CLIF: {0}")]
    UnsupportedType(String),
    /// Cranelift's verifier rejected the generated CLIF.
    #[error("CLIF verifier: {0}")]
    Verifier(String),
    /// Cranelift returned an error while compiling or linking.
    #[error("codegen: {0}")]
    Codegen(String),
    /// Cranelift panicked; the panic was caught at the boundary.
    #[error("Cranelift panicked while compiling `{name}`: {message}")]
    Panic { name: String, message: String },
    /// The session was built for flags the host CPU lacks: the code may be
    /// compiled and inspected but not run.
    #[error("kernel compiled for ISA flags the host lacks ({0}); it cannot be executed here")]
    NotExecutable(String),
    /// A buffer handed to a kernel has the wrong length.
    #[error("buffer length mismatch: {0}")]
    Length(String),
}

/// Which instruction set the session compiles for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IsaSpec {
    /// Everything the host reports (`cranelift-native`).
    Host,
    /// The host's triple with exactly these boolean ISA flags enabled (for
    /// example `has_avx2`, `has_avx512vnni`); all others off. Used for
    /// reproducible disassembly and for exercising fallback code paths.
    Explicit(Vec<String>),
}

impl IsaSpec {
    /// SSE4.2-class x86-64 (no AVX): the slowest path the kernels support.
    pub fn x86_64_sse42() -> Self {
        Self::explicit(&["has_sse3", "has_ssse3", "has_sse41", "has_sse42", "has_popcnt"])
    }
    /// AVX2 + FMA, no AVX-512 and no VNNI (int8 dots through `pmaddubsw`).
    pub fn x86_64_avx2() -> Self {
        Self::explicit(&[
            "has_sse3", "has_ssse3", "has_sse41", "has_sse42", "has_popcnt", "has_avx",
            "has_avx2", "has_fma", "has_bmi1", "has_bmi2", "has_lzcnt",
        ])
    }
    /// AVX2 + FMA + AVX-512 VL/VNNI (int8 dots through EVEX `vpdpbusd` on xmm),
    /// which is what the project's Zen 4 machines report.
    pub fn x86_64_avx512vnni() -> Self {
        Self::explicit(&[
            "has_sse3", "has_ssse3", "has_sse41", "has_sse42", "has_popcnt", "has_avx",
            "has_avx2", "has_fma", "has_bmi1", "has_bmi2", "has_lzcnt", "has_avx512f",
            "has_avx512vl", "has_avx512dq", "has_avx512vnni",
        ])
    }
    fn explicit(flags: &[&str]) -> Self {
        Self::Explicit(flags.iter().map(|s| s.to_string()).collect())
    }
}

/// Code-generation relevant capabilities of the session's ISA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsaCaps {
    /// `x86_pshufb` / `x86_pmaddubsw` are available (SSSE3).
    pub ssse3: bool,
    /// The u8×i8 widening dot tree is contracted to `vpdpbusd`.
    pub vnni: bool,
    /// `fma` is a single instruction (otherwise kernels use mul + add).
    pub fma: bool,
    /// The tier of the generated wide micro-kernels (`None`: Cranelift's
    /// 128-bit kernels only); see [`super::wide`].
    pub wide: Option<WideTier>,
}

struct ModuleCell(Option<JITModule>);
// SAFETY: the JITModule is only touched under the session's mutex; it holds
// raw pointers to memory it owns, nothing tied to the creating thread.
unsafe impl Send for ModuleCell {}

struct SessionInner {
    module: Mutex<ModuleCell>,
    caps: IsaCaps,
    flags_text: String,
    /// `None` if runnable here, otherwise the missing host features.
    not_executable: Option<String>,
    counter: AtomicU64,
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        let cell = self.module.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = cell.0.take() {
            // SAFETY: every CompiledFn holds an Arc on this SessionInner, so
            // none is alive any more: no pointer into this memory remains.
            unsafe { m.free_memory() };
        }
    }
}

/// A JIT compilation session (one Cranelift module, one target ISA).
#[derive(Clone)]
pub struct JitSession {
    inner: Arc<SessionInner>,
}

impl std::fmt::Debug for JitSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitSession").field("caps", &self.inner.caps).finish_non_exhaustive()
    }
}

/// Host support for one Cranelift x86 flag name, `None` for unknown names.
fn host_has(flag: &str) -> Option<bool> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as d;
        Some(match flag {
            "has_sse3" => d!("sse3"),
            "has_ssse3" => d!("ssse3"),
            "has_sse41" => d!("sse4.1"),
            "has_sse42" => d!("sse4.2"),
            "has_popcnt" => d!("popcnt"),
            "has_avx" => d!("avx"),
            "has_avx2" => d!("avx2"),
            "has_fma" => d!("fma"),
            "has_bmi1" => d!("bmi1"),
            "has_bmi2" => d!("bmi2"),
            "has_lzcnt" => d!("lzcnt"),
            "has_cmpxchg16b" => d!("cmpxchg16b"),
            "has_avx512f" => d!("avx512f"),
            "has_avx512vl" => d!("avx512vl"),
            "has_avx512dq" => d!("avx512dq"),
            "has_avx512bw" => d!("avx512bw"),
            "has_avx512vnni" => d!("avx512vnni"),
            "has_avx512bitalg" => d!("avx512bitalg"),
            "has_avx512vbmi" => d!("avx512vbmi"),
            "has_avx_vnni" => d!("avxvnni"),
            _ => return None,
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = flag;
        None
    }
}

impl JitSession {
    /// A session for the host CPU.
    pub fn host() -> Result<Self, JitError> {
        Self::new(IsaSpec::Host)
    }

    /// A session for the given ISA. Always `opt_level=speed`, non-PIC. The
    /// wide-kernel tier is the best the ISA flags and the host allow, capped
    /// by `FLEXC_WIDE` (`off`, `avx2`, `avx512`).
    pub fn new(spec: IsaSpec) -> Result<Self, JitError> {
        Self::with_wide_cap(spec, WideTier::env_cap()?)
    }

    /// [`JitSession::new`] with the wide-kernel tier capped at `cap`
    /// (`None`: Cranelift's 128-bit kernels only, whatever the host has).
    pub fn with_wide_cap(spec: IsaSpec, cap: Option<WideTier>) -> Result<Self, JitError> {
        let mut fb = settings::builder();
        for (k, v) in [("opt_level", "speed"), ("is_pic", "false"), ("use_colocated_libcalls", "false")] {
            fb.set(k, v).map_err(|e| JitError::Isa(format!("{k}={v}: {e}")))?;
        }
        let mut missing = Vec::new();
        let mut ib = match &spec {
            IsaSpec::Host => cranelift_native::builder().map_err(|e| JitError::Isa(e.to_string()))?,
            IsaSpec::Explicit(flags) => {
                let mut ib = cranelift_native::builder_with_options(false)
                    .map_err(|e| JitError::Isa(e.to_string()))?;
                for f in flags {
                    ib.enable(f).map_err(|e| JitError::Isa(format!("flag `{f}`: {e}")))?;
                    if host_has(f) != Some(true) {
                        missing.push(f.clone());
                    }
                }
                ib
            }
        };
        // Nothing to set beyond the flags; keep the builder mutable for clarity.
        let _ = &mut ib;
        let isa: OwnedTargetIsa = ib
            .finish(settings::Flags::new(fb))
            .map_err(|e| JitError::Isa(e.to_string()))?;
        let enabled: Vec<String> = isa
            .isa_flags()
            .iter()
            .filter(|v| v.as_bool() == Some(true))
            .map(|v| v.name.to_string())
            .collect();
        let on = |n: &str| enabled.iter().any(|e| e == n);
        let caps = IsaCaps {
            ssse3: on("has_ssse3"),
            vnni: (on("has_avx512vnni") && on("has_avx512vl")) || (on("has_avx_vnni") && on("has_avx")),
            fma: on("has_fma") && on("has_avx"),
            wide: WideTier::detect(&on, cap),
        };
        if !caps.ssse3 {
            return Err(JitError::Isa("the CPU kernels need at least SSSE3 (has_ssse3)".into()));
        }
        let module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
        Ok(Self {
            inner: Arc::new(SessionInner {
                module: Mutex::new(ModuleCell(Some(module))),
                caps,
                flags_text: enabled.join(" "),
                not_executable: (!missing.is_empty()).then(|| missing.join(" ")),
                counter: AtomicU64::new(0),
            }),
        })
    }

    /// Codegen-relevant capabilities of this session's ISA.
    pub fn caps(&self) -> IsaCaps {
        self.inner.caps
    }

    /// The enabled ISA flags, space separated (for logs and snapshots).
    pub fn isa_flags(&self) -> &str {
        &self.inner.flags_text
    }

    /// Whether code from this session can run on this host.
    pub fn executable(&self) -> Result<(), JitError> {
        match &self.inner.not_executable {
            None => Ok(()),
            Some(m) => Err(JitError::NotExecutable(m.clone())),
        }
    }

    /// Compiles one function `fn(i64 × params.len())` with the platform's C
    /// calling convention and no return value. `build` fills the body; it
    /// receives the builder positioned in the entry block and the parameter
    /// values, and must leave every block terminated (the session seals them).
    pub fn compile(
        &self,
        name: &str,
        params: usize,
        build: impl FnOnce(&mut FunctionBuilder<'_>, &[Value]) -> Result<(), JitError>,
    ) -> Result<CompiledFn, JitError> {
        let start = Instant::now();
        let mut guard = self.inner.module.lock().unwrap_or_else(|p| p.into_inner());
        let module = guard.0.as_mut().ok_or_else(|| JitError::Codegen("module already freed".into()))?;
        let n = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        let sym = format!("{name}__{n}");

        let mut ctx = module.make_context();
        ctx.set_disasm(true);
        ctx.func.signature.call_conv = module.isa().default_call_conv();
        for _ in 0..params {
            ctx.func.signature.params.push(AbiParam::new(types::I64));
        }
        let mut fctx = FunctionBuilderContext::new();
        let target = module.target_config();
        let built = catch_unwind(AssertUnwindSafe(|| {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let args = b.block_params(entry).to_vec();
            build(&mut b, &args)?;
            b.seal_all_blocks();
            b.finalize(target);
            Ok::<(), JitError>(())
        }));
        match built {
            Ok(r) => r?,
            Err(p) => return Err(JitError::Panic { name: sym, message: panic_text(p) }),
        }
        check_types(&ctx.func)?;
        cranelift_codegen::verify_function(&ctx.func, module.isa())
            .map_err(|e| JitError::Verifier(format!("{sym}: {e}")))?;

        let sig = ctx.func.signature.clone();
        let id = module
            .declare_function(&sym, Linkage::Local, &sig)
            .map_err(|e| JitError::Codegen(e.to_string()))?;
        let defined = catch_unwind(AssertUnwindSafe(|| module.define_function(id, &mut ctx)));
        let (vcode, code) = match defined {
            Ok(Ok(())) => {
                let cc = ctx.compiled_code();
                (
                    cc.and_then(|c| c.vcode.clone()),
                    cc.map(|c| c.code_buffer().to_vec()).unwrap_or_default(),
                )
            }
            Ok(Err(e)) => {
                module.clear_context(&mut ctx);
                return Err(JitError::Codegen(format!("{sym}: {e:?}")));
            }
            Err(p) => {
                module.clear_context(&mut ctx);
                return Err(JitError::Panic { name: sym, message: panic_text(p) });
            }
        };
        module.clear_context(&mut ctx);
        module.finalize_definitions().map_err(|e| JitError::Codegen(e.to_string()))?;
        let ptr = module.get_finalized_function(id);
        drop(guard);
        Ok(CompiledFn {
            ptr,
            name: sym,
            vcode,
            code,
            compile_time: start.elapsed(),
            _session: self.inner.clone(),
        })
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

/// Rejects value types the x64 backend cannot lower or may panic on: vectors
/// must be exactly 128 bits (no `i8x8`, no `i8x32`/`f32x8`), no dynamic types.
fn check_types(func: &Function) -> Result<(), JitError> {
    let ok = |t: Type| -> bool {
        if t.is_dynamic_vector() {
            return false;
        }
        if t.is_vector() {
            return t.bits() == 128;
        }
        t.bits() <= 64 || t == types::I128
    };
    for block in func.layout.blocks() {
        for inst in func.layout.block_insts(block) {
            for &v in func.dfg.inst_results(inst) {
                let t = func.dfg.value_type(v);
                if !ok(t) {
                    return Err(JitError::UnsupportedType(format!(
                        "{t} (result of `{}`)",
                        func.dfg.display_inst(inst)
                    )));
                }
            }
        }
        for &v in func.dfg.block_params(block) {
            let t = func.dfg.value_type(v);
            if !ok(t) {
                return Err(JitError::UnsupportedType(format!("{t} (block parameter)")));
            }
        }
    }
    Ok(())
}

/// A finalized JIT function plus what tests and debugging want to see.
pub struct CompiledFn {
    ptr: *const u8,
    name: String,
    vcode: Option<String>,
    code: Vec<u8>,
    compile_time: Duration,
    _session: Arc<SessionInner>,
}

// SAFETY: the pointer targets immutable, finalized machine code that lives as
// long as `_session`; calling it from several threads is sound as long as the
// callers' own arguments are (which the kernel wrappers check).
unsafe impl Send for CompiledFn {}
unsafe impl Sync for CompiledFn {}

impl std::fmt::Debug for CompiledFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledFn")
            .field("name", &self.name)
            .field("code_bytes", &self.code.len())
            .field("compile_time", &self.compile_time)
            .finish()
    }
}

impl CompiledFn {
    /// Entry address of the machine code.
    pub fn ptr(&self) -> *const u8 {
        self.ptr
    }
    /// Unique symbol name inside the session.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Cranelift's VCode listing (register-allocated machine instructions).
    pub fn vcode(&self) -> Option<&str> {
        self.vcode.as_deref()
    }
    /// Raw machine code (`objdump -D -b binary -mi386:x86-64` disassembles it).
    pub fn code(&self) -> &[u8] {
        &self.code
    }
    /// Wall time from building the CLIF to finalized code.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }
    /// Whether the session this code was compiled in can run on this host.
    pub(crate) fn executable(&self) -> Result<(), JitError> {
        match &self._session.not_executable {
            None => Ok(()),
            Some(m) => Err(JitError::NotExecutable(m.clone())),
        }
    }
}
