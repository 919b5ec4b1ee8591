//! The second kernel generator: wide (256-bit AVX2 / AVX-512) x86-64
//! micro-kernels assembled at run time with `iced-x86`'s code assembler.
//!
//! Why a second generator: Cranelift's x86-64 backend lowers 128-bit vectors
//! only, so every Cranelift kernel runs on xmm registers (16 of them, no
//! embedded broadcasts, no EVEX). For the compute-bound prefill GEMM that is
//! half of AVX2's width and a third of the registers an AVX-512 core has.
//! Cranelift stays the JIT for the graph, the glue and every kernel where
//! 128 bits is not the limit (GEMV is memory-bound; the portable path on
//! every host); only micro-kernels whose speed is set by vector width and
//! register count are generated here, the way oneDNN does with Xbyak.
//!
//! A generated kernel has exactly the Cranelift kernels' C ABI
//! ([`super::gemv::KernelFn`]: `(w, x, y, row_begin, row_end, f16_table)`),
//! is specialised on the same [`super::KernelSpec`] fields, and is run by the
//! same safe wrapper ([`super::GemvKernel`]), so callers cannot tell the two
//! apart except by speed; the reference interpreter checks both.
//!
//! The tier is chosen from the session's ISA flags and the host's CPUID at
//! session creation ([`WideTier::detect`]), and can be capped (down to
//! Cranelift only) per session or with `FLEXC_WIDE=off|avx2|avx512`.
//!
//! Machine code lives in an anonymous mapping made executable after the
//! copy (`memmap2`), owned by the [`WideFn`].

mod int_dot;

pub(crate) use int_dot::{build_int_dot, wide_int_dot_supported, WIDE_ROWS};

use super::jit::JitError;
use iced_x86::code_asm::CodeAssembler;

/// The vector tier of the generated kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WideTier {
    /// AVX2 + FMA + F16C, VEX encodings, ymm0–15; int8 dots through
    /// `vpmaddubsw` (no VNNI).
    Avx2,
    /// AVX-512 F/VL/BW + VNNI on ymm registers: EVEX encodings, ymm0–31,
    /// embedded broadcasts, `vpdpbusd`.
    Avx512Vnni,
}

impl WideTier {
    /// The best tier both the session's enabled ISA flags (`on`) and the
    /// host allow, capped by `cap` (`None`: no generated kernels).
    pub(crate) fn detect(on: &dyn Fn(&str) -> bool, cap: Option<WideTier>) -> Option<WideTier> {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as d;
            let avx2 = on("has_avx2") && on("has_fma") && d!("avx2") && d!("fma") && d!("f16c");
            let avx512 = avx2
                // Cranelift has no `has_avx512bw` flag: BW (byte/word ops on
                // ymm16–31) comes from the host alone.
                && ["has_avx512f", "has_avx512vl", "has_avx512vnni"].iter().all(|f| on(f))
                && d!("avx512f")
                && d!("avx512vl")
                && d!("avx512bw")
                && d!("avx512vnni");
            let best = if avx512 {
                Some(WideTier::Avx512Vnni)
            } else if avx2 {
                Some(WideTier::Avx2)
            } else {
                None
            };
            best.min(cap)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (on, cap);
            None
        }
    }

    /// The cap named by `FLEXC_WIDE` (`off`, `avx2`, `avx512`; unset: no cap).
    pub(crate) fn env_cap() -> Result<Option<WideTier>, JitError> {
        match std::env::var("FLEXC_WIDE").ok().as_deref() {
            None | Some("") | Some("avx512") => Ok(Some(WideTier::Avx512Vnni)),
            Some("avx2") => Ok(Some(WideTier::Avx2)),
            Some("off") | Some("cranelift") => Ok(None),
            Some(v) => Err(JitError::Isa(format!("FLEXC_WIDE={v}: expected off, avx2 or avx512"))),
        }
    }

    /// Short name for logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            WideTier::Avx2 => "avx2",
            WideTier::Avx512Vnni => "avx512-vnni",
        }
    }
}

/// One generated function: its machine code, mapped executable.
pub struct WideFn {
    map: memmap2::Mmap,
    len: usize,
    name: String,
}

impl std::fmt::Debug for WideFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WideFn").field("name", &self.name).field("code_bytes", &self.len).finish()
    }
}

impl WideFn {
    /// Assembles `a` (position-independent: relative branches only) and maps
    /// the bytes executable.
    pub(crate) fn assemble(name: String, mut a: CodeAssembler) -> Result<Self, JitError> {
        let code = a.assemble(0).map_err(|e| JitError::Codegen(format!("{name}: iced-x86: {e}")))?;
        let mut m = memmap2::MmapMut::map_anon(code.len().max(1)).map_err(|e| JitError::Codegen(format!("{name}: mmap: {e}")))?;
        m[..code.len()].copy_from_slice(&code);
        let map = m.make_exec().map_err(|e| JitError::Codegen(format!("{name}: mprotect: {e}")))?;
        Ok(Self { map, len: code.len(), name })
    }
    /// Entry address.
    pub fn ptr(&self) -> *const u8 {
        self.map.as_ptr()
    }
    /// The kernel's name (format, shape, tile, tier).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Raw machine code.
    pub fn code(&self) -> &[u8] {
        &self.map[..self.len]
    }
    /// Intel-syntax listing of the machine code (iced-x86's decoder).
    pub fn listing(&self) -> String {
        use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};
        let mut d = Decoder::with_ip(64, self.code(), 0, DecoderOptions::NONE);
        let mut f = IntelFormatter::new();
        let mut out = String::new();
        for ins in &mut d {
            out.push_str(&format!("{:5x}  ", ins.ip()));
            f.format(&ins, &mut out);
            out.push('\n');
        }
        out
    }
}

/// Maps an iced-x86 error of instruction `what` to a [`JitError`].
pub(crate) fn asm_err(what: &str) -> impl Fn(iced_x86::IcedError) -> JitError + '_ {
    move |e| JitError::Codegen(format!("iced-x86 ({what}): {e}"))
}
