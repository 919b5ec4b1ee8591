//! The wide int-dot GEMM micro-kernel for the 32-element block formats ×
//! Q8_0 activations (Q4_0, Q4_1 on both tiers; Q5_0, Q5_1, Q8_0 on the
//! AVX-512 tier): [`WIDE_ROWS`] = 8 weight rows × up to `tile` activation
//! rows per pass, lanes = weight rows, generated with `iced-x86`.
//!
//! Per 32-element block and group of 8 rows:
//! 1. the rows' 16 packed-nibble bytes are loaded as `[row r | row r+4]`
//!    ymm halves and transposed (a 4×4 transpose of 32-bit groups inside each
//!    128-bit half, eight `vpunpck*`), so that dword lane `r` of vector `P_g`
//!    holds packed bytes `4g..4g+4` of row `r`; its low nibbles are elements
//!    `4g..4g+4`, its high nibbles elements `16+4g..`: element group `g` of
//!    all 8 rows is `P_g & 0x0f` (g < 4) or `(P_{g-4} >> 4) & 0x0f`;
//!    Q5's fifth bits: the 8 rows' `qh` in one ymm, and per group one
//!    `vpshufbitqmb` (a mask of the 32 bits the group's bytes need) and one
//!    masked `vpaddb` of 0x10. Q8_0: the 32 code bytes of each row, an 8×8
//!    transpose of 32-bit groups (`vpunpck*` + `vshufi32x4`) and `^0x80`
//!    so `vpdpbusd` sees unsigned `q + 128`;
//! 2. for every activation row `t`, the 4 activation bytes of group `g` are
//!    broadcast to all lanes (an EVEX embedded broadcast feeding `vpdpbusd`
//!    on the AVX-512 tier; `vpbroadcastd` + `vpmaddubsw` + `vpaddw` on AVX2,
//!    whose i16 sums stay below 8·2·15·127 < 2^15), so lane `r` accumulates
//!    row `r`'s block dot — no horizontal reduction anywhere;
//! 3. the block's integer dot is converted once, scaled by `d_w[r]·d_x`
//!    (`vcvtph2ps` of the 8 rows' f16 scales) and added with one fma, plus
//!    the offset / min term `c_w[r]·s_x` with `s_x = d_x·Σx` from the
//!    activation record (`c_w = offset·d_w` with offset −8 / −16 / −128 for
//!    Q4_0 / Q5_0 / Q8_0, `m` for Q4_1 / Q5_1);
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

/// Whether the wide generator has an int-dot kernel for `format` at `tier`:
/// Q4_0/Q4_1 on both tiers; Q8_0 (signed codes: `vpdpbusd` after a `^0x80`)
/// and Q5_0/Q5_1 (fifth bits merged with AVX-512 BITALG's
/// `vpshufbitqmb`) on the AVX-512 tier.
pub(crate) fn wide_int_dot_supported(format: WeightFormat, tier: WideTier) -> bool {
    match format {
        WeightFormat::Q4_0 | WeightFormat::Q4_1 => true,
        WeightFormat::Q8_0 => tier == WideTier::Avx512Vnni,
        WeightFormat::Q5_0 | WeightFormat::Q5_1 => tier == WideTier::Avx512Vnni && host_bitalg(),
        _ => false,
    }
}

fn host_bitalg() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bitalg")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Byte offsets inside one weight block and how its codes are stored.
struct BlockLayout {
    d: i32,
    /// The f16 min (Q4_1, Q5_1); `None`: the code offset folded into
    /// `c_w = offset·d_w`.
    m: Option<i32>,
    /// The u32 of fifth bits (Q5_0, Q5_1).
    qh: Option<i32>,
    qs: i32,
    /// `−8`, `−16` or (Q8_0 after `^0x80`) `−128`; 0 with a min.
    offset: f32,
    /// Codes are 32 bytes of i8 (Q8_0), not 16 bytes of nibbles.
    bytes: bool,
}

/// Generates the kernel for `spec` (a validated spec with `tile ≥ 1`): rows
/// `row_begin..row_end` (multiples of [`WIDE_ROWS`]) of `tile` activation rows.
pub(crate) fn build_int_dot(spec: &KernelSpec, tier: WideTier) -> Result<WideFn, JitError> {
    let nib = |d, m, qh, qs, offset| BlockLayout { d, m, qh, qs, offset, bytes: false };
    let lay = match spec.format {
        f if !wide_int_dot_supported(f, tier) => {
            return Err(JitError::InvalidParams(format!("no wide int-dot kernel for {f:?} at {}", tier.name())));
        }
        WeightFormat::Q4_0 => nib(0, None, None, 2, -8.0),
        WeightFormat::Q4_1 => nib(0, Some(2), None, 4, 0.0),
        WeightFormat::Q5_0 => nib(0, None, Some(2), 6, -16.0),
        WeightFormat::Q5_1 => nib(0, Some(2), Some(4), 8, 0.0),
        WeightFormat::Q8_0 => BlockLayout { d: 0, m: None, qh: None, qs: 2, offset: -128.0, bytes: true },
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
    // ymm0 = 0x0f bytes (nibbles) or 0x80 bytes (Q8_0's sign flip);
    // ymm1 = i16 ones (the AVX2 pair sum) or 0x10 bytes (the fifth bit);
    // ymm8–15 = the fifth-bit selectors of groups 0..8 (Q5): byte j of each
    // qword picks bit 32·(j/4) + 4g + j%4, i.e. element 4g + j%4 of the row
    // whose qh is dword j/4 of that qword.
    let splat = |a: &mut CodeAssembler, v: AsmRegisterYmm, bits: u32| -> Result<(), iced_x86::IcedError> {
        a.mov(r9d, bits)?;
        a.vmovd(xmm_of(v), r9d)?;
        a.vpbroadcastd(v, xmm_of(v))
    };
    splat(&mut a, ymm0, if lay.bytes { 0x8080_8080 } else { 0x0f0f_0f0f }).map_err(&e)?;
    if !evex {
        splat(&mut a, ymm1, 0x0001_0001).map_err(&e)?;
    }
    if lay.qh.is_some() {
        splat(&mut a, ymm1, 0x1010_1010).map_err(&e)?;
        for g in 0..8u64 {
            let sel = (0..8u64).fold(0u64, |q, j| q | ((32 * (j / 4) + 4 * g + j % 4) << (8 * j)));
            a.mov(r9, sel).map_err(&e)?;
            a.vmovq(xmm_of(Y[8 + g as usize]), r9).map_err(&e)?;
            a.vpbroadcastq(Y[8 + g as usize], xmm_of(Y[8 + g as usize])).map_err(&e)?;
        }
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

        // 1. the 8 rows' codes, transposed so that dword lane r is row r.
        let groups = if lay.bytes { transpose_bytes(&mut a, rb, lay.qs).map_err(&e)? } else { transpose_nibbles(&mut a, rb, &lay).map_err(&e)? };
        let (g_reg, tmp) = (ymm4, ymm7);

        // 2. group dots, lane r = row r.
        for t in 0..tc {
            zero(&mut a, evex, dot(t)).map_err(&e)?;
        }
        for g in 0..8 {
            let gv = match groups {
                Groups::Bytes(v) => v[g],
                Groups::Nibbles(p) => {
                    if g < 4 {
                        a.vpand(g_reg, p[g], ymm0).map_err(&e)?;
                    } else {
                        a.vpsrlw(g_reg, p[g - 4], 4).map_err(&e)?;
                        a.vpand(g_reg, g_reg, ymm0).map_err(&e)?;
                    }
                    if lay.qh.is_some() {
                        // ymm7 = the rows' qh; +0x10 where the element's fifth bit is set.
                        a.vpshufbitqmb(k1, ymm7, Y[8 + g]).map_err(&e)?;
                        a.evex().vpaddb(g_reg.k1(), g_reg, ymm1).map_err(&e)?;
                    }
                    g_reg
                }
            };
            for t in 0..tc {
                let xg = r10 + (t as i32 * xs + q8_0_off::QS + 4 * g as i32);
                if evex {
                    a.vpdpbusd(dot(t), gv, dword_bcst(xg)).map_err(&e)?;
                } else {
                    a.vpbroadcastd(tmp, dword_ptr(xg)).map_err(&e)?;
                    a.vpmaddubsw(tmp, gv, tmp).map_err(&e)?;
                    a.vpaddw(dot(t), dot(t), tmp).map_err(&e)?;
                }
            }
        }

        // 3. scales: ymm2 = d_w (8 rows), ymm3 = c_w, ymm4 = d_w·d_x.
        load_f16x8(&mut a, ymm2, rb, lay.d).map_err(&e)?;
        match lay.m {
            Some(m) => load_f16x8(&mut a, ymm3, rb, m).map_err(&e)?,
            None => {
                a.mov(r9d, lay.offset.to_bits()).map_err(&e)?;
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

/// The 8 element groups of a block, lane r = row r: four packed-nibble
/// vectors (group g < 4 in the low nibbles of `P_g`, g ≥ 4 in the high ones
/// of `P_{g-4}`) or eight byte vectors.
#[derive(Clone, Copy)]
enum Groups {
    Nibbles([AsmRegisterYmm; 4]),
    Bytes([AsmRegisterYmm; 8]),
}

/// Loads the 16 packed bytes of rows 0..8 at `[rax + r·rb + qs]` as
/// `[row r | row r+4]` halves and transposes 32-bit groups inside each half:
/// `P_g` = ymm5, 6, 3, 2. With fifth bits, ymm7 = the 8 rows' `qh`.
fn transpose_nibbles(a: &mut CodeAssembler, rb: i32, lay: &BlockLayout) -> Result<Groups, iced_x86::IcedError> {
    for (r, reg) in [(0, ymm2), (1, ymm3), (2, ymm4), (3, ymm5)] {
        a.vmovdqu(xmm_of(reg), xmmword_ptr(rax + (r * rb + lay.qs)))?;
        a.vinserti128(reg, reg, xmmword_ptr(rax + ((r + 4) * rb + lay.qs)), 1)?;
    }
    unpack(a, false, &[(ymm6, ymm2, ymm2, ymm3), (ymm3, ymm4, ymm4, ymm5)])?;
    unpack(a, true, &[(ymm5, ymm6, ymm6, ymm3), (ymm3, ymm2, ymm2, ymm4)])?;
    if let Some(qh) = lay.qh {
        for (half, x) in [(0, xmm7), (4, xmm4)] {
            a.vmovd(x, dword_ptr(rax + (half * rb + qh)))?;
            for r in 1..4 {
                a.vpinsrd(x, x, dword_ptr(rax + ((half + r) * rb + qh)), r)?;
            }
        }
        a.vinserti128(ymm7, ymm7, xmm4, 1)?;
    }
    Ok(Groups::Nibbles([ymm5, ymm6, ymm3, ymm2]))
}

/// Loads the 32 code bytes of rows 0..8 at `[rax + r·rb + qs]`, transposes
/// the 8×8 matrix of 32-bit groups (`vpunpck*` inside 128-bit halves, then
/// `vshufi32x4` across them) and flips the sign bits (`^0x80`: u8 = q + 128
/// for `vpdpbusd`, undone by `c_w = −128·d_w`). EVEX (AVX-512 tier).
fn transpose_bytes(a: &mut CodeAssembler, rb: i32, qs: i32) -> Result<Groups, iced_x86::IcedError> {
    for r in 0..8 {
        a.vmovdqu(Y[2 + r], ymmword_ptr(rax + (r as i32 * rb + qs)))?;
    }
    // t0..t7 = ymm10, 2, 11, 4, 12, 6, 13, 8
    unpack(a, false, &[(ymm10, ymm2, ymm2, ymm3), (ymm11, ymm4, ymm4, ymm5), (ymm12, ymm6, ymm6, ymm7), (ymm13, ymm8, ymm8, ymm9)])?;
    // u0..u7 = ymm3, 5, 7, 9, 10, 11, 2, 4
    unpack(a, true, &[(ymm3, ymm5, ymm10, ymm11), (ymm7, ymm9, ymm2, ymm4), (ymm10, ymm11, ymm12, ymm13), (ymm2, ymm4, ymm6, ymm8)])?;
    // G_g = [u_g.lo | u_{g+4}.lo], G_{g+4} = [u_g.hi | u_{g+4}.hi]
    let out = [ymm12, ymm6, ymm14, ymm3, ymm13, ymm8, ymm15, ymm5];
    for (g, (u, v)) in [(ymm3, ymm10), (ymm5, ymm11), (ymm7, ymm2), (ymm9, ymm4)].into_iter().enumerate() {
        a.vshufi32x4(out[g], u, v, 0)?;
        a.vshufi32x4(out[g + 4], u, v, 3)?;
    }
    for &g in &out {
        a.vpxor(g, g, ymm0)?;
    }
    Ok(Groups::Bytes(out))
}

/// Per `(lo, hi, x, y)`: `lo = unpack-low(x, y)`, then `hi = unpack-high(x, y)`
/// of 32-bit (`vpunpck{l,h}dq`) or 64-bit (`vpunpck{l,h}qdq`) elements inside
/// each 128-bit half; `lo` must not be `x` or `y` (`hi` may).
fn unpack(a: &mut CodeAssembler, qword: bool, pairs: &[(AsmRegisterYmm, AsmRegisterYmm, AsmRegisterYmm, AsmRegisterYmm)]) -> Result<(), iced_x86::IcedError> {
    for &(lo, hi, x, y) in pairs {
        debug_assert!(lo != x && lo != y);
        if qword {
            a.vpunpcklqdq(lo, x, y)?;
            a.vpunpckhqdq(hi, x, y)?;
        } else {
            a.vpunpckldq(lo, x, y)?;
            a.vpunpckhdq(hi, x, y)?;
        }
    }
    Ok(())
}
