//! The register-blocked GEMM micro-kernel for Q4_K and Q6_K: `ROW_GROUP` (4)
//! weight rows × `tile` Q8_K activation rows per pass, the K-quant
//! counterpart of `rowgroup.rs` (same reasons, same 4×4 transposes: lane `r`
//! of every vector belongs to weight row `r`, activation groups of 4 bytes
//! are broadcast, one `vpdpbusd` adds a group of all four rows, and there is
//! no horizontal sum anywhere).
//!
//! The arithmetic is llama.cpp's and the one-row kernel's (`codegen.rs`,
//! `block_q4_k` / `block_q6_k`): unsigned codes times signed Q8_K bytes in
//! integers, per sub-block scales applied in integers, one exact i32 per row
//! and super-block, then one conversion and one fma by `d_r·d_x` per
//! super-block (plus, for Q4_K, one for the min term by `−dmin_r·d_x`).
//! - Q4_K: 8 sub-blocks of 32, 6-bit scales and mins; the min term
//!   `Σ_s m_s·Σx_s` comes from the activation's sums of 32.
//! - Q6_K: 16 sub-blocks of 16, i8 scales, codes `q − 32` with `q` unsigned
//!   in the products; `32·Σ_g sc_g·bsum_g` is subtracted exactly in i32.
//!
//! Order of the scale multiply (the rows' scales differ per sub-block, so
//! they are packed per sub-block into one vector, lane `r` = row `r`):
//! - with VNNI, the groups of a sub-block are summed by `vpdpbusd` into an
//!   i32x4 (lane = row), which is multiplied once by the i32x4 of the rows'
//!   scales (`pmulld`, one per sub-block and tile row; on this Zen 4 a single
//!   µop) and added to the super-block's i32 accumulator: 8 (Q4_K) or 4
//!   (Q6_K) dot instructions per multiply. Scaling before the dot instead
//!   would need the codes times scales in bytes, which overflows u8, and
//!   scaling in f32 per sub-block would cost a conversion, a multiply and
//!   an fma where this costs one `pmulld` (and would round per sub-block);
//! - without VNNI, `pmaddubsw` pairs are summed in i16 for as many groups as
//!   cannot overflow (all 8 of a Q4_K sub-block: 8·2·15·127 < 2^15; 2 for
//!   Q6_K: 2·2·63·127 < 2^15), and the `pmaddwd` that widens them to i32
//!   takes the i16 pair `(sc_r, sc_r)` instead of ones, so the scale costs
//!   nothing extra (llama.cpp's AVX2 order).
//!
//! The min/offset terms use `pmaddwd` of the rows' transposed scale pairs
//! with the broadcast activation sub-block sums: lane `r` is row `r`'s term.
//!
//!
//! Each super-block is walked in a short loop of steps (`Geometry`), not
//! unrolled: the fully unrolled tile-8 body was 2–4× larger and took several
//! times longer to JIT. The rows' scale bytes are rotated down a step at a
//! time, so each step picks its sub-blocks' scales from fixed bytes.
//!
//! Every integer is the one-row kernel's, and the f32 operations (`d_r·d_x`,
//! conversion, fma, super-blocks in order from 0) are the same, so the
//! results are bit-identical to the one-row kernel's.

use cranelift_codegen::ir::types::{F32, F32X4, I8X16, I16X8, I32X4};
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::Variable;

use super::act::{Q8_K_RECORD, q8_k_off};
use super::codegen::{Cg, Consts, KernelSpec};
use super::format::WeightFormat;
use super::codegen::block_loop;
use super::rowgroup::{bcast32_mask, pack4, shuffle, transpose4};

/// The four rows' super-block header, in the layout the integer pass takes.
struct Header {
    /// The rows' sub-block scale bytes, transposed (lane `r` = row `r`), in
    /// the order the steps consume them (see [`Geometry::rotate`]).
    scale_src: Vec<Value>,
    /// Per two sub-blocks `2k, 2k + 1`, i16 pairs `(w_2k, w_2k+1)` of row
    /// `r` in 32-bit lane `r`: the weights of the activation sub-block sums
    /// in the min (Q4_K: the mins) or offset (Q6_K: 32·scales) term.
    corr: Vec<Value>,
    /// `[d_0..d_3]`.
    d: Value,
    /// The correction's own scale (Q4_K: `[−dmin_r]`); `None` when it is
    /// subtracted from the integer sum (Q6_K).
    dcorr: Option<Value>,
}

/// The per-format geometry of the integer pass. A super-block is walked in
/// `steps` equal steps (a loop, not unrolled: it keeps the kernel small and
/// its JIT compile time low) of `subs` sub-blocks each; the weight pointer
/// advances `wstep` bytes and the activation pointer `xstep` bytes a step.
struct Geometry {
    fmt: WeightFormat,
    /// Elements per sub-block (a multiple of 16).
    sub: usize,
    steps: usize,
    subs: usize,
    wstep: usize,
    xstep: usize,
    /// Activation sub-block sums the correction uses (i16, one per `corr` pair half).
    corr_sums: i32,
    /// Groups of 4 whose `pmaddubsw` pairs can be summed in i16 (no VNNI).
    i16_chain: usize,
}

fn geometry(fmt: WeightFormat) -> Geometry {
    match fmt {
        // Step j: the 32 code bytes of sub-blocks 2j (low nibbles), 2j + 1 (high).
        WeightFormat::Q4_K => {
            Geometry { fmt, sub: 32, steps: 4, subs: 2, wstep: 32, xstep: 64, corr_sums: q8_k_off::SUMS32, i16_chain: 8 }
        }
        // Step l: sub-blocks 8n + 2p + l (n < 2, p < 4): the 16 bytes at l·16
        // of each ql/qh run.
        WeightFormat::Q6_K => {
            Geometry { fmt, sub: 16, steps: 2, subs: 8, wstep: 16, xstep: 16, corr_sums: q8_k_off::BSUMS, i16_chain: 2 }
        }
        _ => unreachable!("rows4_qk called for {fmt:?}"),
    }
}

impl Geometry {
    /// Scale vector and activation offset (from the step's `xp`) of sub-block
    /// `i` of a step.
    fn sub_scale(&self, cg: &mut Cg<'_, '_>, src: &[Value], i: usize) -> (Value, i32) {
        match self.fmt {
            WeightFormat::Q4_K => (scale_of(cg, src[0], i, false), 32 * i as i32),
            _ => {
                let (n, p) = (i / 4, i % 4);
                (scale_of(cg, src[2 * n + p / 2], 2 * (p % 2), true), (128 * n + 32 * p) as i32)
            }
        }
    }

    /// The four transposed code groups (lane `r` = row `r`) of sub-block
    /// `i` of a step (rows `rb` bytes apart from the step's `wp`), elements
    /// `16·half ..`. The decode is bytewise, so it commutes with the
    /// transpose: Q4_K transposes the packed bytes once for the two
    /// sub-blocks of a step (the egraph merges the equal loads and shuffles)
    /// and splits the nibbles after; Q6_K decodes each row first, since
    /// sharing its packed bytes over four sub-blocks made the register
    /// allocator spill more than it saved in shuffles.
    fn sub_groups(&self, cg: &mut Cg<'_, '_>, k: &Consts, wp: Value, rb: i32, i: usize, half: usize) -> [Value; 4] {
        let row = |cg: &mut Cg<'_, '_>, r: i32, off: usize| cg.ld(I8X16, wp, r * rb + off as i32);
        match self.fmt {
            WeightFormat::Q4_K => {
                let v = [0, 1, 2, 3].map(|r| row(cg, r, 16 + 16 * half));
                transpose4(cg, v).map(|g| codes_q4_k(cg, k, g, i == 1))
            }
            _ => {
                let (n, p) = (i / 4, i % 4);
                let v = [0, 1, 2, 3].map(|r| {
                    let ql = row(cg, r, 64 * n + 32 * (p % 2));
                    let qh = row(cg, r, 128 + 32 * n);
                    codes_q6_k(cg, k, ql, qh, p)
                });
                transpose4(cg, v)
            }
        }
    }

    /// The scale sources of the next step: Q4_K's two vectors hold bytes
    /// `sc_0..3`, `sc_4..7` per lane and move down by two sub-blocks; Q6_K's
    /// four hold `sc_4k..4k+3` and move down by one byte (the next `l`).
    fn rotate(&self, cg: &mut Cg<'_, '_>, src: &[Value]) -> Vec<Value> {
        let w: Vec<Value> = src.iter().map(|&v| cg.cast(I32X4, v)).collect();
        let out: Vec<Value> = match self.fmt {
            WeightFormat::Q4_K => {
                let a = cg.b.ins().ushr_imm_u(w[0], 16);
                let b = cg.b.ins().ishl_imm_u(w[1], 16);
                let lo = cg.b.ins().bor(a, b);
                let hi = cg.b.ins().ushr_imm_u(w[1], 16);
                vec![lo, hi]
            }
            _ => w.iter().map(|&v| cg.b.ins().ushr_imm_u(v, 8)).collect(),
        };
        out.into_iter().map(|v| cg.cast(I8X16, v)).collect()
    }
}

/// `pshufb` of `v` with, in 32-bit lane `r`, bytes `4r + sel[i]` (`None`: zero).
fn lane_bytes(cg: &mut Cg<'_, '_>, v: Value, sel: [Option<usize>; 4]) -> Value {
    let mask: [u8; 16] = std::array::from_fn(|i| sel[i % 4].map_or(0x80, |b| (4 * (i / 4) + b) as u8));
    let m = cg.vconst(mask);
    cg.b.ins().x86_pshufb(v, m)
}

/// The scale vector of byte `j` of `v`'s lanes (lane `r` holds row `r`'s
/// scale bytes): i32 (VNNI) or an i16 pair, zero- or sign-extended.
fn scale_of(cg: &mut Cg<'_, '_>, v: Value, j: usize, signed: bool) -> Value {
    match (cg.caps.vnni, signed) {
        (true, false) => {
            let b = lane_bytes(cg, v, [Some(j), None, None, None]);
            cg.cast(I32X4, b)
        }
        (false, false) => {
            let b = lane_bytes(cg, v, [Some(j), None, Some(j), None]);
            cg.cast(I16X8, b)
        }
        (true, true) => {
            let b = lane_bytes(cg, v, [None, None, None, Some(j)]);
            let b = cg.cast(I32X4, b);
            cg.b.ins().sshr_imm_s(b, 24)
        }
        (false, true) => {
            let b = lane_bytes(cg, v, [None, Some(j), None, Some(j)]);
            let b = cg.cast(I16X8, b);
            cg.b.ins().sshr_imm_s(b, 8)
        }
    }
}

/// The four rows' f16 scales at byte `off` of their blocks, as f32x4.
fn f16x4(cg: &mut Cg<'_, '_>, wp: Value, rb: i32, off: i32) -> Value {
    let v = [0, 1, 2, 3].map(|r| cg.ld_f16(wp, r * rb + off));
    pack4(cg, v)
}

/// Q4_K header: the 16 leading bytes of the four rows (d, dmin, 12 scale
/// bytes) transposed, so `u[i]` lane `r` is row `r`'s scale word `i` and the
/// 6-bit unpack (ggml's, as in `block_q4_k`) runs once for all rows.
fn header_q4_k(cg: &mut Cg<'_, '_>, k: &Consts, wp: Value, rb: i32) -> Header {
    let heads = [0, 1, 2, 3].map(|r| cg.ld(I8X16, wp, r * rb));
    let [_, u0, u1, u2] = transpose4(cg, heads);
    let m3f = cg.splat8(0x3f);
    let m03 = cg.splat8(0x03);
    let high2 = |cg: &mut Cg<'_, '_>, u: Value| {
        let h = cg.shr_bytes_unmasked(u, 6);
        let h = cg.b.ins().band(h, m03);
        cg.shl_bytes_unmasked(h, 4)
    };
    let sc_lo = cg.b.ins().band(u0, m3f);
    let mn_lo = cg.b.ins().band(u1, m3f);
    let a = cg.b.ins().band(u2, k.m0f);
    let b = high2(cg, u0);
    let sc_hi = cg.b.ins().bor(a, b);
    let a = cg.shr_bytes_unmasked(u2, 4);
    let a = cg.b.ins().band(a, k.m0f);
    let b = high2(cg, u1);
    let mn_hi = cg.b.ins().bor(a, b);
    let corr = (0..4)
        .map(|p| {
            let j = 2 * (p % 2);
            let b = lane_bytes(cg, [mn_lo, mn_hi][p / 2], [Some(j), None, Some(j + 1), None]);
            cg.cast(I16X8, b)
        })
        .collect();
    let d = f16x4(cg, wp, rb, 0);
    let dmin = f16x4(cg, wp, rb, 2);
    let dmin_neg = cg.b.ins().fneg(dmin);
    Header { scale_src: vec![sc_lo, sc_hi], corr, d, dcorr: Some(dmin_neg) }
}

/// Codes `q` (unsigned nibbles, low or `high`) of 16 packed Q4_K bytes.
fn codes_q4_k(cg: &mut Cg<'_, '_>, k: &Consts, v: Value, high: bool) -> Value {
    let v = if high { cg.shr_bytes_unmasked(v, 4) } else { v };
    cg.b.ins().band(v, k.m0f)
}

/// Q6_K header: the rows' 16 i8 scales transposed (`t[i]` lane `r` = row
/// `r`'s scales `4i .. 4i + 4`); the offset term's pairs are `32·sc`.
fn header_q6_k(cg: &mut Cg<'_, '_>, wp: Value, rb: i32) -> Header {
    let sc = [0, 1, 2, 3].map(|r| cg.ld(I8X16, wp, r * rb + 192));
    let t = transpose4(cg, sc);
    let corr = (0..8)
        .map(|p| {
            let j = 2 * (p % 2);
            let b = lane_bytes(cg, t[p / 2], [None, Some(j), None, Some(j + 1)]);
            let b = cg.cast(I16X8, b);
            // sc·256 >> 3 = 32·sc, sign-extended, exactly.
            cg.b.ins().sshr_imm_s(b, 3)
        })
        .collect();
    let d = f16x4(cg, wp, rb, 208);
    Header { scale_src: t.to_vec(), corr, d, dcorr: None }
}

/// Codes `q` (0..64) of Q6_K element run `p`, decoded bytewise as in
/// `block_q6_k`: element `128n + 32p + l` is nibble `p / 2` of
/// `ql[64n + 32(p % 2) + l]` with bits `2p` of `qh[32n + l]` above it.
fn codes_q6_k(cg: &mut Cg<'_, '_>, k: &Consts, ql: Value, h: Value, p: usize) -> Value {
    let nib = if p >= 2 { cg.shr_bytes_unmasked(ql, 4) } else { ql };
    let nib = cg.b.ins().band(nib, k.m0f);
    let h = match p {
        0 => cg.shl_bytes_unmasked(h, 4),
        1 => cg.shl_bytes_unmasked(h, 2),
        2 => h,
        _ => cg.shr_bytes_unmasked(h, 2),
    };
    let m30 = cg.splat8(0x30);
    let h = cg.b.ins().band(h, m30);
    cg.b.ins().bor(nib, h)
}

/// `Σ_q group_q · x_q` of one sub-block for the four rows (lane `r`), times
/// the rows' sub-block scales, with `x` the `sub` activation bytes at `xo`.
fn scaled_sub_dot(cg: &mut Cg<'_, '_>, k: &Consts, groups: &[Value], scale: Value, chain: usize, xp: Value, xo: i32) -> Value {
    let xg = |cg: &mut Cg<'_, '_>, q: usize| {
        let xv = cg.lda(I8X16, xp, xo + 16 * (q / 4) as i32);
        shuffle(cg, xv, xv, bcast32_mask(q % 4))
    };
    if cg.caps.vnni {
        let mut s = k.zero_i32;
        for (q, &wg) in groups.iter().enumerate() {
            let x = xg(cg, q);
            s = cg.dpbusd(s, x, wg);
        }
        return cg.b.ins().imul(s, scale);
    }
    let mut acc = None;
    for (c, chunk) in groups.chunks(chain).enumerate() {
        let mut p16 = None;
        for (i, &wg) in chunk.iter().enumerate() {
            let x = xg(cg, c * chain + i);
            let p = cg.maddubs(x, wg);
            p16 = Some(p16.map_or(p, |a| cg.b.ins().iadd(a, p)));
        }
        let p = cg.madd16(p16.unwrap(), scale);
        acc = Some(acc.map_or(p, |a| cg.b.ins().iadd(a, p)));
    }
    acc.unwrap()
}

/// Rows `wrow .. wrow + 4` (each `row_bytes` apart) of a Q4_K or
/// Q6_K weight against `tile` Q8_K activation rows: one f32x4 per tile row,
/// lane `r` = row `r`'s dot.
pub(super) fn rows4_qk(cg: &mut Cg<'_, '_>, spec: &KernelSpec, k: &Consts, wrow: Value, x: Value) -> Vec<Value> {
    let fmt = spec.format;
    let tile = spec.tile;
    let geo = geometry(fmt);
    let bb = fmt.block_bytes();
    let rb = fmt.row_bytes(spec.cols) as i32;
    let nblk = spec.cols / 256;
    let xstride = (nblk * Q8_K_RECORD) as i32;
    let acc: Vec<Variable> = (0..tile).map(|_| cg.var(F32X4, k.zero_f32)).collect();
    block_loop(cg, wrow, x, nblk * bb, bb, Q8_K_RECORD, |cg, wp, xp| {
        let head = match fmt {
            WeightFormat::Q4_K => header_q4_k(cg, k, wp, rb),
            _ => header_q6_k(cg, wp, rb),
        };
        // Exact per-row i32 sums Σ_s sc_s·Σ(q·x)_s, one per tile row,
        // over the steps of the super-block.
        let sumi: Vec<Variable> = (0..tile).map(|_| cg.var(I32X4, k.zero_i32)).collect();
        let src: Vec<Variable> = head.scale_src.iter().map(|&v| cg.var(I8X16, v)).collect();
        block_loop(cg, wp, xp, geo.steps * geo.wstep, geo.wstep, geo.xstep, |cg, ws, xs| {
            let cur: Vec<Value> = src.iter().map(|&v| cg.b.use_var(v)).collect();
            for i in 0..geo.subs {
                let (scale, xsub) = geo.sub_scale(cg, &cur, i);
                let mut groups = Vec::with_capacity(geo.sub / 4);
                for half in 0..geo.sub / 16 {
                    groups.extend(geo.sub_groups(cg, k, ws, rb, i, half));
                }
                for (t, &acc_t) in sumi.iter().enumerate() {
                    let xo = t as i32 * xstride + xsub;
                    let p = scaled_sub_dot(cg, k, &groups, scale, geo.i16_chain, xs, xo);
                    let a = cg.b.use_var(acc_t);
                    let a = cg.b.ins().iadd(a, p);
                    cg.b.def_var(acc_t, a);
                }
            }
            let next = geo.rotate(cg, &cur);
            for (&v, n) in src.iter().zip(next) {
                cg.b.def_var(v, n);
            }
        });
        for (t, &a) in acc.iter().enumerate() {
            let xo = t as i32 * xstride;
            // Σ_s w_s·sum_s of the activation's sub-block sums, pairs at a time.
            let mut corr = None;
            for (p, &w) in head.corr.iter().enumerate() {
                let sums = cg.lda(I8X16, xp, xo + geo.corr_sums + 16 * (p / 4) as i32);
                let b = shuffle(cg, sums, sums, bcast32_mask(p % 4));
                let b = cg.cast(I16X8, b);
                let m = cg.madd16(w, b);
                corr = Some(corr.map_or(m, |c| cg.b.ins().iadd(c, m)));
            }
            let corr = corr.unwrap();
            let dx = cg.lda(F32, xp, xo + q8_k_off::D);
            let dx = cg.b.ins().splat(F32X4, dx);
            let sumi = cg.b.use_var(sumi[t]);
            let mut v = cg.b.use_var(a);
            let sumi = if head.dcorr.is_some() { sumi } else { cg.b.ins().isub(sumi, corr) };
            let sf = cg.b.ins().fcvt_from_sint(F32X4, sumi);
            let sc = cg.b.ins().fmul(head.d, dx);
            v = cg.fma(sc, sf, v);
            if let Some(dc) = head.dcorr {
                let cf = cg.b.ins().fcvt_from_sint(F32X4, corr);
                let sc = cg.b.ins().fmul(dc, dx);
                v = cg.fma(sc, cf, v);
            }
            cg.b.def_var(a, v);
        }
    });
    acc.iter().map(|&a| cg.b.use_var(a)).collect()
}
