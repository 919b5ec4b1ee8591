//! The register-blocked GEMM micro-kernel for the 32-element block formats
//! (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1): [`ROW_GROUP`] weight rows × `tile`
//! activation rows per pass.
//!
//! Why: with one weight row per pass, every (block, activation row) pair pays
//! a scale product, a broadcast, an int→float conversion, an fma and (at the
//! end) a horizontal sum for only 32 multiply-adds, and the weight decode is
//! shared by `tile` activation rows only. Here the four rows' decoded blocks
//! are transposed in registers (a 4×4 transpose of 32-bit groups, eight
//! `punpck*` per 16 bytes) so that vector `g` holds the 4 codes of group `g`
//! of every row; each activation group of 4 bytes is broadcast to all lanes
//! and one `vpdpbusd` (or `pmaddubsw` + `pmaddwd`) adds group `g` of all four
//! rows' dot products at once. Lane `r` of the sum is row `r`'s block dot,
//! so there is no horizontal reduction at all, and the conversion, the scale
//! (`[d_w0..d_w3]·d_x`) and the fma are paid once per 4×32 multiply-adds;
//! lane `r` of the accumulator is `y[t, row + r]`, stored as one vector.
//!
//! The arithmetic is llama.cpp's and the one-row kernel's: unsigned codes
//! `q + offset` times signed Q8_0 activations in integers, the offset removed
//! exactly with the activation block's integer sum (`−offset·Σx`, the same
//! for all four rows), min terms (Q4_1/Q5_1) through the activation block's
//! `d_x·Σx`.

use cranelift_codegen::ir::types::{F32, F32X4, I8X16, I32, I32X4};
use cranelift_codegen::ir::{ConstantData, InstBuilder, Value};
use cranelift_frontend::Variable;

use super::act::{Q8_0_RECORD, q8_0_off};
use super::codegen::{block_loop, Cg, Consts, KernelSpec, decode_q32};

/// Weight rows per pass of the row-group kernels.
pub const ROW_GROUP: usize = 4;

/// Packs four f32 scalars into one f32x4 (lane `i` = `v[i]`).
pub(super) fn pack4(cg: &mut Cg<'_, '_>, v: [Value; 4]) -> Value {
    let mut p = cg.b.ins().scalar_to_vector(F32X4, v[0]);
    for (i, &s) in v.iter().enumerate().skip(1) {
        p = cg.b.ins().insertlane(p, s, i as u8);
    }
    p
}

/// Byte shuffle of two i8x16 values (`mask[i]` < 16 picks `a`, else `b`).
/// Equal masks share one immediate, so the egraph can merge equal shuffles
/// of equal inputs (the K-quant kernel transposes shared bytes once).
pub(super) fn shuffle(cg: &mut Cg<'_, '_>, a: Value, b: Value, mask: [u8; 16]) -> Value {
    let data = ConstantData::from(&mask[..]);
    let imms = &mut cg.b.func.dfg.immediates;
    let m = match imms.iter().find(|(_, d)| **d == data) {
        Some((m, _)) => m,
        None => imms.push(data),
    };
    cg.b.ins().shuffle(a, b, m)
}

/// Masks of `punpck{l,h}{dq,qdq}` (single instructions on x86).
fn unpack_mask(elem: usize, high: bool) -> [u8; 16] {
    let mut m = [0u8; 16];
    let base = if high { 8 } else { 0 };
    for i in 0..16 {
        let (e, j) = (i / elem, i % elem);
        let src = base + (e / 2) * elem + j;
        m[i] = (src + if e % 2 == 1 { 16 } else { 0 }) as u8;
    }
    m
}

/// The shuffle mask broadcasting 32-bit lane `j` (a single `pshufd`).
pub(super) fn bcast32_mask(j: usize) -> [u8; 16] {
    std::array::from_fn(|i| (4 * j + i % 4) as u8)
}

/// 4×4 transpose of 32-bit groups: `out[g]` lane `r` = group `g` of `rows[r]`.
pub(super) fn transpose4(cg: &mut Cg<'_, '_>, rows: [Value; 4]) -> [Value; 4] {
    let [a, b, c, d] = rows;
    let (lo32, hi32) = (unpack_mask(4, false), unpack_mask(4, true));
    let (lo64, hi64) = (unpack_mask(8, false), unpack_mask(8, true));
    let ab_lo = shuffle(cg, a, b, lo32);
    let cd_lo = shuffle(cg, c, d, lo32);
    let ab_hi = shuffle(cg, a, b, hi32);
    let cd_hi = shuffle(cg, c, d, hi32);
    [
        shuffle(cg, ab_lo, cd_lo, lo64),
        shuffle(cg, ab_lo, cd_lo, hi64),
        shuffle(cg, ab_hi, cd_hi, lo64),
        shuffle(cg, ab_hi, cd_hi, hi64),
    ]
}

/// Rows `wrow .. wrow + ROW_GROUP` (each `row_bytes` apart) against `tile`
/// Q8_0 activation rows: one f32x4 per tile row, lane `r` = row `r`'s dot.
pub(super) fn rows4_q32(cg: &mut Cg<'_, '_>, spec: &KernelSpec, k: &Consts, wrow: Value, x: Value) -> Vec<Value> {
    let fmt = spec.format;
    let tile = spec.tile;
    let bb = fmt.block_bytes();
    let row_bytes = fmt.row_bytes(spec.cols);
    let nblk = spec.cols / 32;
    let xstride = (nblk * Q8_0_RECORD) as i32;
    let acc: Vec<Variable> = (0..tile).map(|_| cg.var(F32X4, k.zero_f32)).collect();
    block_loop(cg, wrow, x, nblk * bb, bb, Q8_0_RECORD, |cg, wp, xp| {
        let blks: Vec<_> = (0..ROW_GROUP).map(|r| decode_q32(cg, k, fmt, wp, (r * row_bytes) as i32)).collect();
        let (offset, signed) = (blks[0].offset, blks[0].signed);
        debug_assert!(!signed, "signed codes are not grouped (KernelSpec::grouped)");
        let dw = pack4(cg, [0, 1, 2, 3].map(|r| blks[r].d));
        let mins = blks[0].m.map(|_| pack4(cg, [0, 1, 2, 3].map(|r| blks[r].m.unwrap())));
        let g_lo = transpose4(cg, [0, 1, 2, 3].map(|r| blks[r].lo));
        let g_hi = transpose4(cg, [0, 1, 2, 3].map(|r| blks[r].hi));
        let groups: Vec<Value> = g_lo.into_iter().chain(g_hi).collect();
        for (t, &a) in acc.iter().enumerate() {
            let xoff = t as i32 * xstride;
            // Two independent chains (elements 0..16 and 16..32); the first
            // starts at −offset·Σx, which removes the code offset exactly for
            // all four rows at once: Σ(q + offset)·x − offset·Σx.
            let mut sums = [k.zero_i32; 2];
            if offset != 0 {
                let xs = cg.ld(I32, xp, xoff + q8_0_off::SUM);
                let c = cg.b.ins().imul_imm_s(xs, -offset);
                sums[0] = cg.b.ins().splat(I32X4, c);
            }
            for half in 0..2 {
                // 16 activation bytes = 4 groups, each broadcast by one `pshufd`.
                let xv = cg.ld(I8X16, xp, xoff + q8_0_off::QS + 16 * half as i32);
                for j in 0..4 {
                    let xg = shuffle(cg, xv, xv, bcast32_mask(j));
                    let wg = groups[4 * half + j];
                    let s = &mut sums[half];
                    *s = if cg.caps.vnni {
                        cg.dpbusd(*s, xg, wg)
                    } else {
                        let p = cg.maddubs(xg, wg);
                        let p = cg.madd16(p, k.ones16);
                        cg.b.ins().iadd(*s, p)
                    };
                }
            }
            let sum = cg.b.ins().iadd(sums[0], sums[1]);
            let sf = cg.b.ins().fcvt_from_sint(F32X4, sum);
            let dx = cg.ld(F32, xp, xoff + q8_0_off::D);
            let dx = cg.b.ins().splat(F32X4, dx);
            let sc = cg.b.ins().fmul(dw, dx);
            let mut v = cg.b.use_var(a);
            v = cg.fma(sc, sf, v);
            if let Some(m) = mins {
                let sx = cg.ld(F32, xp, xoff + q8_0_off::S);
                let sx = cg.b.ins().splat(F32X4, sx);
                v = cg.fma(m, sx, v);
            }
            cg.b.def_var(a, v);
        }
    });
    acc.iter().map(|&a| cg.b.use_var(a)).collect()
}
