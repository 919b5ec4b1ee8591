//! The wide int-dot GEMM micro-kernel for Q4_0 / Q4_1 weights × Q8_0
//! activations: [`WIDE_ROWS`] = 8 weight rows × up to `tile` activation rows
//! per pass, lanes = weight rows, generated with `iced-x86`.
//!
//! Per 32-element block and group of 8 rows:
//! 1. the rows' 16 packed-nibble bytes are loaded as `[row r | row r+4]`
//!    ymm halves and transposed (a 4×4 transpose of 32-bit groups inside each
//!    128-bit half, eight `vpunpck*`), so that dword lane `r` of vector `P_g`
//!    holds packed bytes `4g..4g+4` of row `r`; its low nibbles are elements
//!    `4g..4g+4`, its high nibbles elements `16+4g..`: element group `g` of
//!    all 8 rows is `P_g & 0x0f` (g < 4) or `(P_{g-4} >> 4) & 0x0f`;
//! 2. for every activation row `t`, the 4 activation bytes of group `g` are
//!    broadcast to all lanes (an EVEX embedded broadcast feeding `vpdpbusd`
//!    on the AVX-512 tier; `vpbroadcastd` + `vpmaddubsw` + `vpaddw` on AVX2,
//!    whose i16 sums stay below 8·2·15·127 < 2^15), so lane `r` accumulates
//!    row `r`'s block dot — no horizontal reduction anywhere;
//! 3. the block's integer dot is converted once, scaled by `d_w[r]·d_x`
//!    (`vcvtph2ps` of the 8 rows' f16 scales) and added with one fma, plus
//!    the offset / min term `c_w[r]·s_x` with `s_x = d_x·Σx` from the
//!    activation record (`c_w = −8·d_w` for Q4_0, `m` for Q4_1);
//! 4. after the last block, lane `r` of accumulator `t` is `y[t, row + r]`:
//!    one unaligned ymm store.
//!
//! The transpose and scale loads are shared by all activation rows of a
//! chunk (8 on AVX-512, whose 32 registers hold 8 accumulators and 8 dot
//! sums; 4 on AVX2's 16). Integer sums are exact; only the f32 order of the
//! per-block terms differs from the Cranelift kernels (the differential
//! tests bound it at 1e-5 of Σ|w·x|).
//!
//! Registers: ymm0 nibble mask, ymm1 i16 ones (AVX2), ymm2–7 transpose /
//! group / scale temporaries, accumulators and dot sums in ymm8–15 (AVX2)
//! or ymm16–31 (AVX-512). GPRs: rdi w, rsi x, rdx y, rcx row, r8 row end,
//! rax the group's weight pointer, r10 the activation pointer, r11 the block
//! counter, r9 scratch — all caller-saved in the System V ABI.

use iced_x86::code_asm::*;

use super::{asm_err, WideFn, WideTier};
use crate::cpu::act::{q8_0_off, Q8_0_RECORD};
use crate::cpu::codegen::KernelSpec;
use crate::cpu::format::WeightFormat;
use crate::cpu::jit::JitError;

/// Weight rows per pass of the wide int-dot kernel (one ymm of f32 lanes).
pub(crate) const WIDE_ROWS: usize = 8;

const Y: [AsmRegisterYmm; 32] = [
    ymm0, ymm1, ymm2, ymm3, ymm4, ymm5, ymm6, ymm7, ymm8, ymm9, ymm10, ymm11, ymm12, ymm13, ymm14, ymm15, ymm16, ymm17,
    ymm18, ymm19, ymm20, ymm21, ymm22, ymm23, ymm24, ymm25, ymm26, ymm27, ymm28, ymm29, ymm30, ymm31,
];

/// Whether the wide generator has an int-dot kernel for `format` at `tier`.
pub(crate) fn wide_int_dot_supported(format: WeightFormat, _tier: WideTier) -> bool {
    matches!(format, WeightFormat::Q4_0 | WeightFormat::Q4_1)
}

/// Byte offsets inside one weight block.
struct BlockLayout {
    d: i32,
    /// The f16 min (Q4_1); `None`: the offset −8 folded into `c_w = −8·d_w`.
    m: Option<i32>,
    qs: i32,
}

/// Generates the kernel for `spec` (a validated spec with `tile ≥ 1`): rows
/// `row_begin..row_end` (multiples of [`WIDE_ROWS`]) of `tile` activation rows.
pub(crate) fn build_int_dot(spec: &KernelSpec, tier: WideTier) -> Result<WideFn, JitError> {
    let lay = match spec.format {
        WeightFormat::Q4_0 => BlockLayout { d: 0, m: None, qs: 2 },
        WeightFormat::Q4_1 => BlockLayout { d: 0, m: Some(2), qs: 4 },
        f => return Err(JitError::InvalidParams(format!("no wide int-dot kernel for {f:?}"))),
    };
    let name = format!("wide_{}_{}x{}_t{}_{}", spec.format.name(), spec.rows, spec.cols, spec.tile, tier.name());
    let row_bytes = spec.format.row_bytes(spec.cols);
    let nblk = spec.cols / 32;
    let xs = nblk * Q8_0_RECORD;
    // Every displacement below is an i32: 8 rows of weights, a tile of
    // activation rows, a tile of y rows.
    let lim = i32::MAX as usize / 2;
    if row_bytes * WIDE_ROWS > lim || xs * spec.tile > lim || spec.rows * spec.tile * 4 > lim {
        return Err(JitError::InvalidParams(format!("{name}: shape too large for the wide kernel")));
    }
    let (rb, xs) = (row_bytes as i32, xs as i32);
    let evex = tier == WideTier::Avx512Vnni;
    let chunk = if evex { 8 } else { 4 };
    let acc = |t: usize| if evex { Y[16 + t] } else { Y[8 + t] };
    let dot = |t: usize| if evex { Y[24 + t] } else { Y[12 + t] };
    let e = asm_err(&name);

    let mut a = CodeAssembler::new(64).map_err(&e)?;
    let mut row_loop = a.create_label();
    let mut done = a.create_label();
    // ymm0 = 0x0f bytes; ymm1 = i16 ones (the AVX2 pair sum).
    a.mov(r9d, 0x0f0f_0f0f).map_err(&e)?;
    a.vmovd(xmm0, r9d).map_err(&e)?;
    a.vpbroadcastd(ymm0, xmm0).map_err(&e)?;
    if !evex {
        a.mov(r9d, 0x0001_0001).map_err(&e)?;
        a.vmovd(xmm1, r9d).map_err(&e)?;
        a.vpbroadcastd(ymm1, xmm1).map_err(&e)?;
    }
    a.cmp(rcx, r8).map_err(&e)?;
    a.jae(done).map_err(&e)?;
    a.set_label(&mut row_loop).map_err(&e)?;
    for t0 in (0..spec.tile).step_by(chunk) {
        let tc = chunk.min(spec.tile - t0);
        for t in 0..tc {
            zero(&mut a, evex, acc(t)).map_err(&e)?;
        }
        a.imul_3(rax, rcx, rb).map_err(&e)?;
        a.add(rax, rdi).map_err(&e)?;
        a.lea(r10, ptr(rsi + (t0 as i32 * xs))).map_err(&e)?;
        a.mov(r11d, nblk as u32).map_err(&e)?;
        let mut blk_loop = a.create_label();
        a.set_label(&mut blk_loop).map_err(&e)?;

        // 1. packed bytes of rows r | r+4 → transpose → P0..P3 = ymm5, 6, 3, 2.
        for (r, reg) in [(0, ymm2), (1, ymm3), (2, ymm4), (3, ymm5)] {
            let x = xmm_of(reg);
            a.vmovdqu(x, xmmword_ptr(rax + (r * rb + lay.qs))).map_err(&e)?;
            a.vinserti128(reg, reg, xmmword_ptr(rax + ((r + 4) * rb + lay.qs)), 1).map_err(&e)?;
        }
        a.vpunpckldq(ymm6, ymm2, ymm3).map_err(&e)?;
        a.vpunpckhdq(ymm2, ymm2, ymm3).map_err(&e)?;
        a.vpunpckldq(ymm3, ymm4, ymm5).map_err(&e)?;
        a.vpunpckhdq(ymm4, ymm4, ymm5).map_err(&e)?;
        a.vpunpcklqdq(ymm5, ymm6, ymm3).map_err(&e)?;
        a.vpunpckhqdq(ymm6, ymm6, ymm3).map_err(&e)?;
        a.vpunpcklqdq(ymm3, ymm2, ymm4).map_err(&e)?;
        a.vpunpckhqdq(ymm2, ymm2, ymm4).map_err(&e)?;
        let p = [ymm5, ymm6, ymm3, ymm2];
        let (g_reg, tmp) = (ymm4, ymm7);

        // 2. group dots, lane r = row r.
        for t in 0..tc {
            zero(&mut a, evex, dot(t)).map_err(&e)?;
        }
        for g in 0..8 {
            if g < 4 {
                a.vpand(g_reg, p[g], ymm0).map_err(&e)?;
            } else {
                a.vpsrlw(g_reg, p[g - 4], 4).map_err(&e)?;
                a.vpand(g_reg, g_reg, ymm0).map_err(&e)?;
            }
            for t in 0..tc {
                let xg = r10 + (t as i32 * xs + q8_0_off::QS + 4 * g as i32);
                if evex {
                    a.vpdpbusd(dot(t), g_reg, dword_bcst(xg)).map_err(&e)?;
                } else {
                    a.vpbroadcastd(tmp, dword_ptr(xg)).map_err(&e)?;
                    a.vpmaddubsw(tmp, g_reg, tmp).map_err(&e)?;
                    a.vpaddw(dot(t), dot(t), tmp).map_err(&e)?;
                }
            }
        }

        // 3. scales: ymm2 = d_w (8 rows), ymm3 = c_w, ymm4 = d_w·d_x.
        load_f16x8(&mut a, ymm2, rb, lay.d).map_err(&e)?;
        match lay.m {
            Some(m) => load_f16x8(&mut a, ymm3, rb, m).map_err(&e)?,
            None => {
                a.mov(r9d, (-8.0f32).to_bits()).map_err(&e)?;
                a.vmovd(xmm3, r9d).map_err(&e)?;
                a.vbroadcastss(ymm3, xmm3).map_err(&e)?;
                a.vmulps(ymm3, ymm3, ymm2).map_err(&e)?;
            }
        }
        for t in 0..tc {
            let xb = t as i32 * xs;
            if evex {
                a.evex().vcvtdq2ps(dot(t), dot(t)).map_err(&e)?;
                a.vmulps(ymm4, ymm2, dword_bcst(r10 + (xb + q8_0_off::D))).map_err(&e)?;
                a.evex().vfmadd231ps(acc(t), ymm4, dot(t)).map_err(&e)?;
                a.vfmadd231ps(acc(t), ymm3, dword_bcst(r10 + (xb + q8_0_off::S))).map_err(&e)?;
            } else {
                a.vpmaddwd(dot(t), dot(t), ymm1).map_err(&e)?;
                a.vcvtdq2ps(dot(t), dot(t)).map_err(&e)?;
                a.vbroadcastss(ymm4, dword_ptr(r10 + (xb + q8_0_off::D))).map_err(&e)?;
                a.vmulps(ymm4, ymm4, ymm2).map_err(&e)?;
                a.vfmadd231ps(acc(t), ymm4, dot(t)).map_err(&e)?;
                a.vbroadcastss(ymm4, dword_ptr(r10 + (xb + q8_0_off::S))).map_err(&e)?;
                a.vfmadd231ps(acc(t), ymm3, ymm4).map_err(&e)?;
            }
        }
        a.add(rax, spec.format.block_bytes() as i32).map_err(&e)?;
        a.add(r10, Q8_0_RECORD as i32).map_err(&e)?;
        a.dec(r11d).map_err(&e)?;
        a.jnz(blk_loop).map_err(&e)?;

        // 4. y[t, row..row + 8].
        for t in 0..tc {
            let dst = ymmword_ptr(rdx + rcx * 4 + ((t0 + t) * spec.rows * 4) as i32);
            if evex {
                a.evex().vmovups(dst, acc(t)).map_err(&e)?;
            } else {
                a.vmovups(dst, acc(t)).map_err(&e)?;
            }
        }
    }
    a.add(rcx, WIDE_ROWS as i32).map_err(&e)?;
    a.cmp(rcx, r8).map_err(&e)?;
    a.jb(row_loop).map_err(&e)?;
    a.set_label(&mut done).map_err(&e)?;
    a.vzeroupper().map_err(&e)?;
    a.ret().map_err(&e)?;
    WideFn::assemble(name.clone(), a)
}

/// `v = 0` (`vpxord` where `v` may be ymm16–31).
fn zero(a: &mut CodeAssembler, evex: bool, v: AsmRegisterYmm) -> Result<(), iced_x86::IcedError> {
    if evex { a.vpxord(v, v, v) } else { a.vpxor(v, v, v) }
}

/// The xmm half of a ymm register below 16.
fn xmm_of(y: AsmRegisterYmm) -> AsmRegisterXmm {
    const X: [AsmRegisterXmm; 16] =
        [xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13, xmm14, xmm15];
    X[Y.iter().position(|&r| r == y).expect("low ymm register")]
}

/// `v` = the f16 at `[rax + r·rb + off]` of rows r = 0..8, widened to f32.
fn load_f16x8(a: &mut CodeAssembler, v: AsmRegisterYmm, rb: i32, off: i32) -> Result<(), iced_x86::IcedError> {
    let x = xmm_of(v);
    a.movzx(r9d, word_ptr(rax + off))?;
    a.vmovd(x, r9d)?;
    for r in 1..WIDE_ROWS as i32 {
        a.vpinsrw(x, x, word_ptr(rax + (r * rb + off)), r)?;
    }
    a.vcvtph2ps(v, x)
}
