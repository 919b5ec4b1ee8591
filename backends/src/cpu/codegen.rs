//! CLIF generation for the GEMV/GEMM kernels, specialised to shape and format.
//!
//! Every kernel has the entry ABI
//! `extern "C" fn(w: *const u8, x: *const u8, y: *mut f32, row_begin: u64, row_end: u64, f16_table: *const f32)`
//! and computes, for `row` in `row_begin..row_end` and `t` in `0..tile`,
//! `y[t·rows + row] = Σ_k W[row, k] · X[t, k]` — `W` in ggml's byte layout,
//! `X` a tile of `tile` activation rows (f32 for f32 weights, otherwise the
//! Q8_0/Q8_K records of `act.rs`). `rows`, `cols` and `tile` are compile-time
//! constants, so the block loop has a constant trip count and all offsets are
//! immediates. Each weight block is decoded once and reused for all `tile`
//! activation rows (the prefill GEMM case).
//!
//! The integer work follows llama.cpp: weights are unpacked to unsigned bytes
//! (`q + offset`), multiplied with the signed i8 activations by the u8×i8
//! widening tree that Cranelift contracts to one `vpdpbusd` when VNNI is
//! available, or by `x86_pmaddubsw` + the `pmaddwd` idiom otherwise; the
//! offset is removed exactly in integers using the activation block sums.
//! Per block, the i32x4 partial sums are converted to f32 and accumulated with
//! one `fma` by `d_w·d_x` into an f32x4 accumulator — no per-block horizontal
//! reduction. Min terms (Q4_1, Q5_1, K-quants) use the activation block sums.
//!
//! For tiles ≥ 2 the 32-element block formats take the [`ROW_GROUP`]-row
//! kernel of `rowgroup.rs` instead (`KernelSpec::row_group`), which shares
//! every activation load and every scale/convert/fma over four weight rows;
//! Q4_K and Q6_K take its K-quant counterpart in `rowgroup_k.rs`.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, F32X4, I8X16, I16X8, I32, I32X4, I64};
use cranelift_codegen::ir::{Block, ConstantData, Endianness, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::{FunctionBuilder, Variable};
use std::sync::OnceLock;

use super::act::{Q8_0_RECORD, Q8_K_RECORD, q8_0_off, q8_k_off};
use super::format::WeightFormat;
use super::jit::{IsaCaps, JitError};
use super::rowgroup::{ROW_GROUP, rows4_q32};
use super::rowgroup_k::rows4_qk;

/// Largest batch tile a GEMM kernel is specialised for.
pub const MAX_TILE: usize = 8;

/// What one kernel is specialised on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelSpec {
    /// Weight format.
    pub format: WeightFormat,
    /// Output rows of W (and length of each y row).
    pub rows: usize,
    /// Input columns (length of each activation row).
    pub cols: usize,
    /// Activation rows processed per pass over a weight row (1 = GEMV).
    pub tile: usize,
    /// Weight rows per pass: 1, or [`ROW_GROUP`] for the register-blocked
    /// kernel of the 32-element block formats, Q4_K and Q6_K (see [`KernelSpec::grouped`]);
    /// then `row_begin`/`row_end` must be multiples of it.
    pub row_group: usize,
}

impl KernelSpec {
    /// Whether a `format` weight of `rows` rows gets the [`ROW_GROUP`]-row
    /// kernel: the 32-element block formats (`rowgroup.rs`) and Q4_K/Q6_K
    /// (`rowgroup_k.rs`), when the rows split evenly. (Q8_0 needs VNNI
    /// there: without it its codes are signed, which `pmaddubsw` cannot take.)
    pub fn grouped(format: WeightFormat, rows: usize, caps: IsaCaps) -> bool {
        let kernel = match format {
            WeightFormat::Q8_0 => caps.vnni,
            WeightFormat::Q4_K | WeightFormat::Q6_K => true,
            f => f.block_elems() == 32,
        };
        kernel && rows.is_multiple_of(ROW_GROUP)
    }

    /// Checks the parameters before anything reaches Cranelift.
    pub fn validate(&self, caps: IsaCaps) -> Result<(), JitError> {
        let bad = |m: String| Err(JitError::InvalidParams(m));
        if self.rows == 0 {
            return bad("rows must be positive".into());
        }
        self.format.check_cols(self.cols).map_err(JitError::InvalidParams)?;
        if self.tile == 0 || self.tile > MAX_TILE {
            return bad(format!("tile = {} must be in 1..={MAX_TILE}", self.tile));
        }
        if self.row_group != 1 && !(self.row_group == ROW_GROUP && Self::grouped(self.format, self.rows, caps)) {
            return bad(format!("row group {} is not available for {:?} with {} rows", self.row_group, self.format, self.rows));
        }
        // Offsets are i32 immediates; row addresses are computed in i64.
        let row_bytes = self.format.row_bytes(self.cols);
        let act_stride = match self.format {
            WeightFormat::F32 => self.cols * 4,
            f => self.cols / f.block_elems() * super::act::ActivationQ8::record_bytes(f.activation()),
        };
        let lim = i32::MAX as usize / 2;
        if row_bytes > lim || act_stride * self.tile > lim || self.rows * self.tile > lim / 4 {
            return bad(format!("shape {}×{} (tile {}) too large", self.rows, self.cols, self.tile));
        }
        // K-quant scaled integer sums stay far inside i32 for any cols (they
        // are converted per block), so no further bound is needed.
        Ok(())
    }
}

fn le() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

/// Small emission helpers over a `FunctionBuilder` (shared with the LUT kernels).
pub(super) struct Cg<'a, 'b> {
    pub(super) b: &'a mut FunctionBuilder<'b>,
    pub(super) caps: IsaCaps,
    /// The `f16_table` kernel argument.
    pub(super) f16_table: Value,
}

impl<'a, 'b> Cg<'a, 'b> {
    /// Unaligned, non-trapping load (weights come from an mmapped file).
    /// `readonly` is true for the kernel's duration (w and x never alias
    /// y, which the safe wrapper guarantees through its borrows) and makes
    /// (with `can_move`) the load pure for Cranelift's egraph: it is placed next to its use
    /// instead of at the top of the block, which keeps the unrolled loop
    /// within the 16 xmm registers.
    pub(super) fn ld(&mut self, ty: Type, p: Value, off: i32) -> Value {
        self.b.ins().load(ty, MemFlagsData::new().with_notrap().with_readonly().with_can_move(), p, off)
    }
    /// Aligned, non-trapping, read-only load (activation records are 16-byte aligned).
    pub(super) fn lda(&mut self, ty: Type, p: Value, off: i32) -> Value {
        self.b.ins().load(ty, MemFlagsData::trusted().with_readonly().with_can_move(), p, off)
    }
    pub(super) fn vconst(&mut self, bytes: [u8; 16]) -> Value {
        let c = self.b.func.dfg.constants.insert(ConstantData::from(&bytes[..]));
        self.b.ins().vconst(I8X16, c)
    }
    pub(super) fn vconst_ty(&mut self, ty: Type, bytes: [u8; 16]) -> Value {
        let c = self.b.func.dfg.constants.insert(ConstantData::from(&bytes[..]));
        self.b.ins().vconst(ty, c)
    }
    pub(super) fn splat8(&mut self, v: u8) -> Value {
        self.vconst([v; 16])
    }
    pub(super) fn cast(&mut self, ty: Type, v: Value) -> Value {
        self.b.ins().bitcast(ty, le(), v)
    }
    /// Logical shift right of every byte by `n` (via a 16-bit shift; the
    /// caller masks away the bits shifted in from the neighbouring byte).
    pub(super) fn shr_bytes_unmasked(&mut self, v: Value, n: i64) -> Value {
        let w = self.cast(I16X8, v);
        let s = self.b.ins().ushr_imm_u(w, n);
        self.cast(I8X16, s)
    }
    pub(super) fn shl_bytes_unmasked(&mut self, v: Value, n: i64) -> Value {
        let w = self.cast(I16X8, v);
        let s = self.b.ins().ishl_imm_u(w, n);
        self.cast(I8X16, s)
    }
    /// Loads an f16 and widens it to f32 through [`f16_table`] (Cranelift
    /// has no F16C): two loads, exact for every f16 including inf/NaN.
    pub(super) fn ld_f16(&mut self, p: Value, off: i32) -> Value {
        let h = self.b.ins().uload16(I64, MemFlagsData::new().with_notrap().with_readonly().with_can_move(), p, off);
        let idx = self.b.ins().ishl_imm_u(h, 2);
        let addr = self.b.ins().iadd(self.f16_table, idx);
        self.b.ins().load(F32, MemFlagsData::trusted().with_readonly().with_can_move(), addr, 0)
    }
    /// `pmaddwd`: i16x8 × i16x8, adjacent products summed to i32x4.
    pub(super) fn madd16(&mut self, a: Value, c: Value) -> Value {
        let al = self.b.ins().swiden_low(a);
        let cl = self.b.ins().swiden_low(c);
        let ah = self.b.ins().swiden_high(a);
        let ch = self.b.ins().swiden_high(c);
        let lo = self.b.ins().imul(al, cl);
        let hi = self.b.ins().imul(ah, ch);
        self.b.ins().iadd_pairwise(lo, hi)
    }
    /// `pmaddubsw`: signed i8 × unsigned u8, adjacent products summed to i16x8
    /// (saturating; callers keep |sums| < 2^15).
    pub(super) fn maddubs(&mut self, signed: Value, unsigned: Value) -> Value {
        self.b.ins().x86_pmaddubsw(signed, unsigned)
    }
    /// `acc + Σ_4 signed·unsigned` per i32 lane, in the exact tree Cranelift
    /// folds to `vpdpbusd` (callers use it only when `caps.vnni`).
    pub(super) fn dpbusd(&mut self, acc: Value, signed: Value, unsigned: Value) -> Value {
        let sl = self.b.ins().swiden_low(signed);
        let ul = self.b.ins().uwiden_low(unsigned);
        let lo = self.b.ins().imul(sl, ul);
        let sh = self.b.ins().swiden_high(signed);
        let uh = self.b.ins().uwiden_high(unsigned);
        let hi = self.b.ins().imul(sh, uh);
        let lol = self.b.ins().swiden_low(lo);
        let loh = self.b.ins().swiden_high(lo);
        let pl = self.b.ins().iadd_pairwise(lol, loh);
        let hil = self.b.ins().swiden_low(hi);
        let hih = self.b.ins().swiden_high(hi);
        let ph = self.b.ins().iadd_pairwise(hil, hih);
        let p = self.b.ins().iadd_pairwise(pl, ph);
        self.b.ins().iadd(p, acc)
    }
    pub(super) fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.caps.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let m = self.b.ins().fmul(a, b);
            self.b.ins().fadd(m, c)
        }
    }
    fn hsum(&mut self, v: Value) -> Value {
        let l0 = self.b.ins().extractlane(v, 0);
        let l1 = self.b.ins().extractlane(v, 1);
        let l2 = self.b.ins().extractlane(v, 2);
        let l3 = self.b.ins().extractlane(v, 3);
        let a = self.b.ins().fadd(l0, l1);
        let c = self.b.ins().fadd(l2, l3);
        self.b.ins().fadd(a, c)
    }
    pub(super) fn var(&mut self, ty: Type, init: Value) -> Variable {
        let v = self.b.declare_var(ty);
        self.b.def_var(v, init);
        v
    }

    /// Opens `for i in start..end` (unsigned, tested at the top) and leaves
    /// the builder in the body; returns the loop and `i`. Close it with
    /// [`CountedLoop::close`].
    pub(super) fn counted_loop(&mut self, start: Value, end: Value) -> (CountedLoop, Value) {
        let var = self.var(I64, start);
        let (head, body, exit) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(head);
        let i = self.b.use_var(var);
        let more = self.b.ins().icmp(IntCC::UnsignedLessThan, i, end);
        self.b.ins().brif(more, body, &[], exit, &[]);
        self.b.switch_to_block(body);
        (CountedLoop { var, head, exit }, self.b.use_var(var))
    }
}

/// A loop opened by [`Cg::counted_loop`].
pub(super) struct CountedLoop {
    var: Variable,
    head: Block,
    exit: Block,
}

impl CountedLoop {
    /// Ends the body (`i + 1`, back to the test) and leaves the builder after the loop.
    pub(super) fn close(self, cg: &mut Cg, i: Value) {
        let next = cg.b.ins().iadd_imm_s(i, 1);
        cg.b.def_var(self.var, next);
        cg.b.ins().jump(self.head, &[]);
        cg.b.switch_to_block(self.exit);
    }
}

/// Number of kernel parameters (see the module docs).
pub(crate) const KERNEL_PARAMS: usize = 6;

/// f16 → f32 for all 65536 bit patterns (256 KiB, built once, never freed).
/// It is passed to the kernels as an argument rather than embedded as an
/// address, so the machine code is identical from process to process. Only
/// the entries of the scales a model actually uses get cached.
pub(crate) fn f16_table() -> &'static [f32] {
    static TABLE: OnceLock<Box<[f32]>> = OnceLock::new();
    TABLE.get_or_init(|| (0..=u16::MAX).map(|h| half::f16::from_bits(h).to_f32()).collect())
}

/// Builds the body of the kernel described by `spec` (already validated).
pub(crate) fn build_kernel(
    b: &mut FunctionBuilder<'_>,
    args: &[Value],
    spec: &KernelSpec,
    caps: IsaCaps,
) -> Result<(), JitError> {
    spec.validate(caps)?;
    if args.len() != KERNEL_PARAMS {
        return Err(JitError::InvalidParams(format!(
            "kernel ABI has {KERNEL_PARAMS} parameters, got {}",
            args.len()
        )));
    }
    let mut cg = Cg { b, caps, f16_table: args[5] };
    let (w, x, y, row_begin, row_end) = (args[0], args[1], args[2], args[3], args[4]);
    let row_bytes = spec.format.row_bytes(spec.cols) as i64;

    let consts = Consts::new(&mut cg);
    if spec.row_group == ROW_GROUP {
        // Loop over groups g = row / ROW_GROUP; lanes of each result are rows.
        let shift = ROW_GROUP.trailing_zeros() as i64;
        let gb = cg.b.ins().ushr_imm_u(row_begin, shift);
        let ge = cg.b.ins().ushr_imm_u(row_end, shift);
        let (groups, g) = cg.counted_loop(gb, ge);
        let off = cg.b.ins().imul_imm_s(g, row_bytes * ROW_GROUP as i64);
        let wrow = cg.b.ins().iadd(w, off);
        let sums = match spec.format {
            WeightFormat::Q4_K | WeightFormat::Q6_K => rows4_qk(&mut cg, spec, &consts, wrow, x),
            _ => rows4_q32(&mut cg, spec, &consts, wrow, x),
        };
        let yoff = cg.b.ins().imul_imm_s(g, 4 * ROW_GROUP as i64);
        let yrow = cg.b.ins().iadd(y, yoff);
        for (t, s) in sums.into_iter().enumerate() {
            let off = (t * spec.rows * 4) as i32;
            cg.b.ins().store(MemFlagsData::new().with_notrap(), s, yrow, off);
        }
        groups.close(&mut cg, g);
        cg.b.ins().return_(&[]);
        return Ok(());
    }
    let (rows, row) = cg.counted_loop(row_begin, row_end);
    let off = cg.b.ins().imul_imm_s(row, row_bytes);
    let wrow = cg.b.ins().iadd(w, off);
    let sums = match spec.format {
        WeightFormat::F32 => row_f32(&mut cg, spec, wrow, x),
        WeightFormat::Q8_0
        | WeightFormat::Q4_0
        | WeightFormat::Q4_1
        | WeightFormat::Q5_0
        | WeightFormat::Q5_1 => row_q32(&mut cg, spec, &consts, wrow, x),
        WeightFormat::Q4_K | WeightFormat::Q6_K | WeightFormat::Q2_K | WeightFormat::TQ2_0 => {
            row_qk(&mut cg, spec, &consts, wrow, x)
        }
    };
    let yoff = cg.b.ins().ishl_imm_u(row, 2);
    let yrow = cg.b.ins().iadd(y, yoff);
    for (t, s) in sums.into_iter().enumerate() {
        let off = (t * spec.rows * 4) as i32;
        cg.b.ins().store(MemFlagsData::trusted(), s, yrow, off);
    }
    rows.close(&mut cg, row);
    cg.b.ins().return_(&[]);
    Ok(())
}

/// Vector constants created once in the entry block.
pub(super) struct Consts {
    pub(super) zero_i32: Value,
    pub(super) zero_f32: Value,
    pub(super) m0f: Value,
    m80: Value,
    pub(super) ones16: Value,
}

impl Consts {
    fn new(cg: &mut Cg<'_, '_>) -> Self {
        let zero_i32 = cg.vconst_ty(I32X4, [0; 16]);
        let zero_f32 = cg.vconst_ty(F32X4, [0; 16]);
        let m0f = cg.splat8(0x0f);
        let m80 = cg.splat8(0x80);
        let mut ones = [0u8; 16];
        for i in 0..8 {
            ones[2 * i] = 1;
        }
        let ones16 = cg.vconst_ty(I16X8, ones);
        Self { zero_i32, zero_f32, m0f, m80, ones16 }
    }
}

/// The f32 × f32 row: `tile` dot products of length `cols`, f32x4 + fma.
fn row_f32(cg: &mut Cg<'_, '_>, spec: &KernelSpec, wrow: Value, x: Value) -> Vec<Value> {
    let tile = spec.tile;
    let xstride = (spec.cols * 4) as i32;
    let nacc = match tile {
        1 => 4,
        2 => 2,
        _ => 1,
    };
    let chunk = 4 * nacc;
    let iters = spec.cols / chunk;
    let zero = cg.vconst_ty(F32X4, [0; 16]);
    let acc: Vec<Vec<Variable>> =
        (0..tile).map(|_| (0..nacc).map(|_| cg.var(F32X4, zero)).collect()).collect();
    let (wp, xp) = if iters == 0 {
        (wrow, x)
    } else {
        block_loop(cg, wrow, x, iters * chunk * 4, chunk * 4, chunk * 4, |cg, wp, xp| {
            for u in 0..nacc {
                let wv = cg.ld(F32X4, wp, (16 * u) as i32);
                for t in 0..tile {
                    let xv = cg.ld(F32X4, xp, t as i32 * xstride + (16 * u) as i32);
                    let a = cg.b.use_var(acc[t][u]);
                    let a = cg.fma(wv, xv, a);
                    cg.b.def_var(acc[t][u], a);
                }
            }
        })
    };
    // Straight-line tail: whole vectors, then scalars.
    let rem = spec.cols - iters * chunk;
    for v in 0..rem / 4 {
        let wv = cg.ld(F32X4, wp, (16 * v) as i32);
        for t in 0..tile {
            let xv = cg.ld(F32X4, xp, t as i32 * xstride + (16 * v) as i32);
            let a = cg.b.use_var(acc[t][v % nacc]);
            let a = cg.fma(wv, xv, a);
            cg.b.def_var(acc[t][v % nacc], a);
        }
    }
    let mut out = Vec::with_capacity(tile);
    for t in 0..tile {
        let mut a = cg.b.use_var(acc[t][0]);
        for u in 1..nacc {
            let o = cg.b.use_var(acc[t][u]);
            a = cg.b.ins().fadd(a, o);
        }
        let mut s = cg.hsum(a);
        for e in (rem / 4) * 4..rem {
            let wv = cg.ld(F32, wp, (4 * e) as i32);
            let xv = cg.ld(F32, xp, t as i32 * xstride + (4 * e) as i32);
            s = cg.fma(wv, xv, s);
        }
        out.push(s);
    }
    out
}

/// A decoded 32-element weight block: unsigned bytes `q + offset` for
/// elements 0..16 (`lo`) and 16..32 (`hi`), scale, optional min.
pub(super) struct Block32 {
    pub(super) lo: Value,
    pub(super) hi: Value,
    pub(super) d: Value,
    pub(super) m: Option<Value>,
    /// The integer subtracted from `lo`/`hi` to get the format's signed code.
    pub(super) offset: i64,
    /// `lo`/`hi` are signed i8 codes (non-VNNI Q8_0), not offset bytes.
    pub(super) signed: bool,
}

/// The block loop of the GEMV/GEMM kernels: `body(cg, wp, xp)` once per
/// weight block (`wp` from `wrow`, `wstep` bytes apart, `wbytes` in all,
/// at least one block) with its activation records (`xp` from `x`, `xstep`
/// bytes apart); the builder is left after the loop, and the pointers just
/// past the last block are returned (for a tail).
pub(super) fn block_loop(
    cg: &mut Cg<'_, '_>,
    wrow: Value,
    x: Value,
    wbytes: usize,
    wstep: usize,
    xstep: usize,
    body: impl FnOnce(&mut Cg<'_, '_>, Value, Value),
) -> (Value, Value) {
    let wp_var = cg.var(I64, wrow);
    let xp_var = cg.var(I64, x);
    let wend = cg.b.ins().iadd_imm_s(wrow, wbytes as i64);
    let lp = cg.b.create_block();
    let after = cg.b.create_block();
    cg.b.ins().jump(lp, &[]);

    cg.b.switch_to_block(lp);
    let wp = cg.b.use_var(wp_var);
    let xp = cg.b.use_var(xp_var);
    body(cg, wp, xp);
    let wp2 = cg.b.ins().iadd_imm_s(wp, wstep as i64);
    let xp2 = cg.b.ins().iadd_imm_s(xp, xstep as i64);
    cg.b.def_var(wp_var, wp2);
    cg.b.def_var(xp_var, xp2);
    let c = cg.b.ins().icmp(IntCC::UnsignedLessThan, wp2, wend);
    cg.b.ins().brif(c, lp, &[], after, &[]);
    cg.b.switch_to_block(after);
    (cg.b.use_var(wp_var), cg.b.use_var(xp_var))
}

pub(super) fn decode_q32(cg: &mut Cg<'_, '_>, k: &Consts, fmt: WeightFormat, wp: Value, wo: i32) -> Block32 {
    let d = cg.ld_f16(wp, wo);
    let nibbles = |cg: &mut Cg<'_, '_>, off: i32| {
        let v = cg.ld(I8X16, wp, wo + off);
        let lo = cg.b.ins().band(v, k.m0f);
        let sh = cg.shr_bytes_unmasked(v, 4);
        let hi = cg.b.ins().band(sh, k.m0f);
        (lo, hi)
    };
    // Fifth bits: byte j of the result gets 0x10 if bit j (lo) / 16 + j (hi) of qh is set.
    let high_bits = |cg: &mut Cg<'_, '_>, off: i32| {
        let qh = cg.ld(I32, wp, wo + off);
        let v = cg.b.ins().splat(I32X4, qh);
        let v = cg.cast(I8X16, v);
        let mut sel_lo = [0u8; 16];
        let mut sel_hi = [0u8; 16];
        let mut bits = [0u8; 16];
        for j in 0..16 {
            sel_lo[j] = (j / 8) as u8;
            sel_hi[j] = (2 + j / 8) as u8;
            bits[j] = 1 << (j % 8);
        }
        let sel_lo = cg.vconst(sel_lo);
        let sel_hi = cg.vconst(sel_hi);
        let bits = cg.vconst(bits);
        let m10 = cg.splat8(0x10);
        let mut out = [v; 2];
        for (i, sel) in [sel_lo, sel_hi].into_iter().enumerate() {
            let s = cg.b.ins().x86_pshufb(v, sel);
            let t = cg.b.ins().band(s, bits);
            let e = cg.b.ins().icmp(IntCC::Equal, t, bits);
            out[i] = cg.b.ins().band(e, m10);
        }
        (out[0], out[1])
    };
    match fmt {
        WeightFormat::Q8_0 => {
            let lo = cg.ld(I8X16, wp, wo + 2);
            let hi = cg.ld(I8X16, wp, wo + 18);
            if cg.caps.vnni {
                let lo = cg.b.ins().bxor(lo, k.m80);
                let hi = cg.b.ins().bxor(hi, k.m80);
                Block32 { lo, hi, d, m: None, offset: 128, signed: false }
            } else {
                Block32 { lo, hi, d, m: None, offset: 0, signed: true }
            }
        }
        WeightFormat::Q4_0 => {
            let (lo, hi) = nibbles(cg, 2);
            Block32 { lo, hi, d, m: None, offset: 8, signed: false }
        }
        WeightFormat::Q4_1 => {
            let m = cg.ld_f16(wp, wo + 2);
            let (lo, hi) = nibbles(cg, 4);
            Block32 { lo, hi, d, m: Some(m), offset: 0, signed: false }
        }
        WeightFormat::Q5_0 => {
            let (hl, hh) = high_bits(cg, 2);
            let (lo, hi) = nibbles(cg, 6);
            let lo = cg.b.ins().bor(lo, hl);
            let hi = cg.b.ins().bor(hi, hh);
            Block32 { lo, hi, d, m: None, offset: 16, signed: false }
        }
        WeightFormat::Q5_1 => {
            let m = cg.ld_f16(wp, wo + 2);
            let (hl, hh) = high_bits(cg, 4);
            let (lo, hi) = nibbles(cg, 8);
            let lo = cg.b.ins().bor(lo, hl);
            let hi = cg.b.ins().bor(hi, hh);
            Block32 { lo, hi, d, m: Some(m), offset: 0, signed: false }
        }
        _ => unreachable!("decode_q32 called for {fmt:?}"),
    }
}

/// Integer dot of one decoded block with one Q8_0 activation record, with the
/// offset removed: exact `Σ code·x` in an i32x4 (lanes to be summed).
fn dot_q32(cg: &mut Cg<'_, '_>, k: &Consts, blk: &Block32, xb: Value, xoff: i32) -> Value {
    let xlo = cg.lda(I8X16, xb, xoff + q8_0_off::QS);
    let xhi = cg.lda(I8X16, xb, xoff + q8_0_off::QS + 16);
    let init = if blk.offset != 0 && !blk.signed {
        let sum = cg.lda(I32, xb, xoff + q8_0_off::SUM);
        let c = cg.b.ins().imul_imm_s(sum, -blk.offset);
        cg.b.ins().scalar_to_vector(I32X4, c)
    } else {
        k.zero_i32
    };
    dot_q32_x(cg, k, blk, xlo, xhi, init)
}

/// `init + Σ lanes(code·x)` of one decoded block with the activation block's
/// two 16-byte halves `xlo`/`xhi` (i32x4 lanes to be summed; no offset
/// removal: the caller folds it into `init` or removes it later).
pub(super) fn dot_q32_x(cg: &mut Cg<'_, '_>, k: &Consts, blk: &Block32, xlo: Value, xhi: Value, init: Value) -> Value {
    if blk.signed {
        // i8 × i8 through sign extension to i16 and pmaddwd.
        let mut acc = None;
        for (wv, xv) in [(blk.lo, xlo), (blk.hi, xhi)] {
            for high in [false, true] {
                let (w16, x16) = if high {
                    (cg.b.ins().swiden_high(wv), cg.b.ins().swiden_high(xv))
                } else {
                    (cg.b.ins().swiden_low(wv), cg.b.ins().swiden_low(xv))
                };
                let p = cg.madd16(w16, x16);
                acc = Some(match acc {
                    None => p,
                    Some(a) => cg.b.ins().iadd(a, p),
                });
            }
        }
        let acc = acc.unwrap();
        return if init == k.zero_i32 { acc } else { cg.b.ins().iadd(acc, init) };
    }
    if cg.caps.vnni {
        let s = cg.dpbusd(init, xlo, blk.lo);
        cg.dpbusd(s, xhi, blk.hi)
    } else {
        let p0 = cg.maddubs(xlo, blk.lo);
        let p1 = cg.maddubs(xhi, blk.hi);
        let p = cg.b.ins().iadd(p0, p1);
        let s = cg.madd16(p, k.ones16);
        cg.b.ins().iadd(s, init)
    }
}

/// One weight row of a 32-element-block format against `tile` Q8_0 rows.
/// For GEMV the block loop is unrolled ×2 with two accumulator sets (breaks
/// the fma dependency chain, halves the loop overhead); an odd last block is
/// handled straight-line after the loop.
fn row_q32(cg: &mut Cg<'_, '_>, spec: &KernelSpec, k: &Consts, wrow: Value, x: Value) -> Vec<Value> {
    let fmt = spec.format;
    let tile = spec.tile;
    let bb = fmt.block_bytes();
    let nblk = spec.cols / 32;
    let xstride = (nblk * Q8_0_RECORD) as i32;
    let has_min = matches!(fmt, WeightFormat::Q4_1 | WeightFormat::Q5_1);
    let unroll = if tile == 1 && nblk >= 2 { 2 } else { 1 };
    let acc: Vec<Vec<Variable>> =
        (0..tile).map(|_| (0..unroll).map(|_| cg.var(F32X4, k.zero_f32)).collect()).collect();
    let fzero = cg.b.ins().f32const(0.0);
    let macc: Vec<Vec<Variable>> = if has_min {
        (0..tile).map(|_| (0..unroll).map(|_| cg.var(F32, fzero)).collect()).collect()
    } else {
        Vec::new()
    };
    let iters = nblk / unroll;

    let step = |cg: &mut Cg<'_, '_>, wp: Value, xp: Value, u: usize| {
        let blk = decode_q32(cg, k, fmt, wp, (u * bb) as i32);
        for t in 0..tile {
            let xoff = t as i32 * xstride + (u * Q8_0_RECORD) as i32;
            let s = dot_q32(cg, k, &blk, xp, xoff);
            let sf = cg.b.ins().fcvt_from_sint(F32X4, s);
            let dx = cg.lda(F32, xp, xoff + q8_0_off::D);
            let sc = cg.b.ins().fmul(blk.d, dx);
            let scv = cg.b.ins().splat(F32X4, sc);
            let a = cg.b.use_var(acc[t][u % unroll]);
            let a = cg.fma(scv, sf, a);
            cg.b.def_var(acc[t][u % unroll], a);
            if let Some(m) = blk.m {
                let sx = cg.lda(F32, xp, xoff + q8_0_off::S);
                let ma = cg.b.use_var(macc[t][u % unroll]);
                let ma = cg.fma(m, sx, ma);
                cg.b.def_var(macc[t][u % unroll], ma);
            }
        }
    };

    let (wp, xp) = block_loop(cg, wrow, x, iters * unroll * bb, unroll * bb, unroll * Q8_0_RECORD, |cg, wp, xp| {
        for u in 0..unroll {
            step(cg, wp, xp, u);
        }
    });
    if !nblk.is_multiple_of(unroll) {
        step(cg, wp, xp, 0);
    }
    (0..tile)
        .map(|t| {
            let mut a = cg.b.use_var(acc[t][0]);
            for u in 1..unroll {
                let o = cg.b.use_var(acc[t][u]);
                a = cg.b.ins().fadd(a, o);
            }
            let mut s = cg.hsum(a);
            if has_min {
                for u in 0..unroll {
                    let m = cg.b.use_var(macc[t][u]);
                    s = cg.b.ins().fadd(s, m);
                }
            }
            s
        })
        .collect()
}

/// One weight row of a 256-element-block format against `tile` Q8_K rows.
fn row_qk(cg: &mut Cg<'_, '_>, spec: &KernelSpec, k: &Consts, wrow: Value, x: Value) -> Vec<Value> {
    let fmt = spec.format;
    let tile = spec.tile;
    let nblk = spec.cols / 256;
    let xstride = (nblk * Q8_K_RECORD) as i32;
    // Scalar accumulators: each block's integer sums are reduced to one
    // exact i32 before scaling, so the f32 rounding is relative to the
    // block's total, never to a lane holding an offset correction alone.
    let fzero = cg.b.ins().f32const(0.0);
    let acc: Vec<Variable> = (0..tile).map(|_| cg.var(F32, fzero)).collect();
    block_loop(cg, wrow, x, nblk * fmt.block_bytes(), fmt.block_bytes(), Q8_K_RECORD, |cg, wp, xp| {
        let parts = match fmt {
            WeightFormat::Q4_K => block_q4_k(cg, k, tile, xstride, wp, xp),
            WeightFormat::Q6_K => block_q6_k(cg, k, tile, xstride, wp, xp),
            WeightFormat::Q2_K => block_q2_k(cg, k, tile, xstride, wp, xp),
            WeightFormat::TQ2_0 => block_tq2_0(cg, k, tile, xstride, wp, xp),
            _ => unreachable!("row_qk called for {fmt:?}"),
        };
        for (t, terms) in parts.into_iter().enumerate() {
            let dx = cg.lda(F32, xp, t as i32 * xstride + q8_k_off::D);
            let mut a = cg.b.use_var(acc[t]);
            for (dw, sumi) in terms {
                let h = cg.b.ins().iadd_pairwise(sumi, sumi);
                let h = cg.b.ins().iadd_pairwise(h, h);
                let tot = cg.b.ins().extractlane(h, 0);
                let sf = cg.b.ins().fcvt_from_sint(F32, tot);
                let sc = cg.b.ins().fmul(dw, dx);
                a = cg.fma(sc, sf, a);
            }
            cg.b.def_var(acc[t], a);
        }
    });
    (0..tile).map(|t| cg.b.use_var(acc[t])).collect()
}

/// Broadcasts i16 lane `lane` of `v` to all 8 lanes (one `pshufb`).
fn bcast16(cg: &mut Cg<'_, '_>, v: Value, lane: usize) -> Value {
    let mut sel = [0u8; 16];
    for i in 0..8 {
        sel[2 * i] = (2 * lane) as u8;
        sel[2 * i + 1] = (2 * lane + 1) as u8;
    }
    let sel = cg.vconst(sel);
    let b8 = cg.cast(I8X16, v);
    let r = cg.b.ins().x86_pshufb(b8, sel);
    cg.cast(I16X8, r)
}

/// Per-tile list of `(weight scale, i32x4 integer sum)` terms of one block;
/// the block contributes `Σ dw · d_x · lanes(sumi)`.
type QkTerms = Vec<Vec<(Value, Value)>>;

/// Adds `scale · pmaddubsw(x, code)` (or the plain `pmaddubsw` pairs when
/// `scale` is `None`, widened with `pmaddwd` by ones) for the 16 activation
/// bytes at offset `xoff` of every tile row into `sumi[t]`.
fn acc_group(
    cg: &mut Cg<'_, '_>,
    k: &Consts,
    sumi: &mut [Option<Value>],
    code: Value,
    scale: Option<Value>,
    xp: Value,
    xoff: i32,
    xstride: i32,
) {
    for (t, s) in sumi.iter_mut().enumerate() {
        let xv = cg.lda(I8X16, xp, t as i32 * xstride + xoff);
        let r = match scale {
            Some(sc) => {
                let p = cg.maddubs(xv, code);
                cg.madd16(sc, p)
            }
            None if cg.caps.vnni => {
                let init = s.unwrap_or(k.zero_i32);
                *s = Some(cg.dpbusd(init, xv, code));
                continue;
            }
            None => {
                let p = cg.maddubs(xv, code);
                cg.madd16(p, k.ones16)
            }
        };
        *s = Some(match *s {
            None => r,
            Some(a) => cg.b.ins().iadd(a, r),
        });
    }
}

/// Q4_K: 8 sub-blocks of 32 with 6-bit scales `sc` and mins `m`:
/// `Σ = d·Σ_s sc_s·Σ(q·x)_s − dmin·Σ_s m_s·Σx_s`.
fn block_q4_k(cg: &mut Cg<'_, '_>, k: &Consts, tile: usize, xstride: i32, wp: Value, xp: Value) -> QkTerms {
    let d = cg.ld_f16(wp, 0);
    let dmin = cg.ld_f16(wp, 2);
    let dmin_neg = cg.b.ins().fneg(dmin);
    // Unpack the 12 scale bytes as ggml does with 32-bit words u0..u2:
    // scales = [u0 & 0x3f.., (u2 & 0x0f..) | ((u0 >> 6) & 0x03..) << 4],
    // mins   = [u1 & 0x3f.., ((u2 >> 4) & 0x0f..) | ((u1 >> 6) & 0x03..) << 4].
    let u0 = cg.ld(I32, wp, 4);
    let u1 = cg.ld(I32, wp, 8);
    let u2 = cg.ld(I32, wp, 12);
    let sc_lo = cg.b.ins().band_imm_u(u0, 0x3f3f_3f3f);
    let mn_lo = cg.b.ins().band_imm_u(u1, 0x3f3f_3f3f);
    let a = cg.b.ins().band_imm_u(u2, 0x0f0f_0f0f);
    let bb = cg.b.ins().ushr_imm_u(u0, 6);
    let bb = cg.b.ins().band_imm_u(bb, 0x0303_0303);
    let bb = cg.b.ins().ishl_imm_u(bb, 4);
    let sc_hi = cg.b.ins().bor(a, bb);
    let a = cg.b.ins().ushr_imm_u(u2, 4);
    let a = cg.b.ins().band_imm_u(a, 0x0f0f_0f0f);
    let bb = cg.b.ins().ushr_imm_u(u1, 6);
    let bb = cg.b.ins().band_imm_u(bb, 0x0303_0303);
    let bb = cg.b.ins().ishl_imm_u(bb, 4);
    let mn_hi = cg.b.ins().bor(a, bb);
    // Bytes [sc0..sc7, m0..m7] in one vector, widened to i16.
    let v = cg.b.ins().scalar_to_vector(I32X4, sc_lo);
    let v = cg.b.ins().insertlane(v, sc_hi, 1);
    let v = cg.b.ins().insertlane(v, mn_lo, 2);
    let v = cg.b.ins().insertlane(v, mn_hi, 3);
    let v8 = cg.cast(I8X16, v);
    let scales16 = cg.b.ins().uwiden_low(v8);
    let mins16 = cg.b.ins().uwiden_high(v8);

    let mut sumi = vec![None; tile];
    for j in 0..4 {
        // 32 bytes: low nibbles are sub-block 2j, high nibbles sub-block 2j + 1.
        for half in 0..2 {
            let v = cg.ld(I8X16, wp, 16 + 32 * j + 16 * half);
            let lo = cg.b.ins().band(v, k.m0f);
            let hi = cg.shr_bytes_unmasked(v, 4);
            let hi = cg.b.ins().band(hi, k.m0f);
            for (s, code) in [(2 * j, lo), (2 * j + 1, hi)] {
                let sc = bcast16(cg, scales16, s as usize);
                acc_group(cg, k, &mut sumi, code, Some(sc), xp, 32 * s + 16 * half, xstride);
            }
        }
    }
    (0..tile)
        .map(|t| {
            let s32 = cg.lda(I16X8, xp, t as i32 * xstride + q8_k_off::SUMS32);
            let mins = cg.madd16(mins16, s32);
            vec![(d, sumi[t].unwrap()), (dmin_neg, mins)]
        })
        .collect()
}

/// Q6_K: 16 sub-blocks of 16 with i8 scales; codes `q − 32`, q 6-bit:
/// `Σ = d·(Σ_g sc_g·Σ(q·x)_g − 32·Σ_g sc_g·bsum_g)`.
fn block_q6_k(cg: &mut Cg<'_, '_>, k: &Consts, tile: usize, xstride: i32, wp: Value, xp: Value) -> QkTerms {
    let d = cg.ld_f16(wp, 208);
    let scv = cg.ld(I8X16, wp, 192);
    let sc_lo = cg.b.ins().swiden_low(scv);
    let sc_hi = cg.b.ins().swiden_high(scv);
    let m30 = cg.splat8(0x30);
    let mut sumi = vec![None; tile];
    for n in 0..2i32 {
        let ql = 64 * n;
        let qh = 128 + 32 * n;
        for l in 0..2i32 {
            let lo = 16 * l;
            let a = cg.ld(I8X16, wp, ql + lo); // ql[l]: elements l.. and 64 + l..
            let bq = cg.ld(I8X16, wp, ql + 32 + lo); // ql[l + 32]: 32 + l.. and 96 + l..
            let h = cg.ld(I8X16, wp, qh + lo);
            let h0 = cg.shl_bytes_unmasked(h, 4);
            let h1 = cg.shl_bytes_unmasked(h, 2);
            let h3 = cg.shr_bytes_unmasked(h, 2);
            let parts = [(a, h0, false, 0), (bq, h1, false, 2), (a, h, true, 4), (bq, h3, true, 6)];
            for (src, hb, high_nib, gi) in parts {
                let nib = if high_nib { cg.shr_bytes_unmasked(src, 4) } else { src };
                let nib = cg.b.ins().band(nib, k.m0f);
                let hb = cg.b.ins().band(hb, m30);
                let code = cg.b.ins().bor(nib, hb);
                let g = (8 * n + gi + l) as usize;
                let sc = if g < 8 { bcast16(cg, sc_lo, g) } else { bcast16(cg, sc_hi, g - 8) };
                acc_group(cg, k, &mut sumi, code, Some(sc), xp, 16 * g as i32, xstride);
            }
        }
    }
    (0..tile)
        .map(|t| {
            let c = bsums_dot(cg, sc_lo, sc_hi, xp, t as i32 * xstride);
            let c = cg.b.ins().ishl_imm_u(c, 5);
            let s = cg.b.ins().isub(sumi[t].unwrap(), c);
            vec![(d, s)]
        })
        .collect()
}

/// `Σ_g w_g·bsum_g` over a Q8_K activation's 16 sub-block sums, with the 16
/// per-sub-block i16 weights in `lo` (sub-blocks 0–7) and `hi` (8–15): the
/// offset/min correction the K-quant kernels share (as i32x4 partial sums).
fn bsums_dot(cg: &mut Cg<'_, '_>, lo: Value, hi: Value, xp: Value, xo: i32) -> Value {
    let bs0 = cg.lda(I16X8, xp, xo + q8_k_off::BSUMS);
    let bs1 = cg.lda(I16X8, xp, xo + q8_k_off::BSUMS + 16);
    let c0 = cg.madd16(lo, bs0);
    let c1 = cg.madd16(hi, bs1);
    cg.b.ins().iadd(c0, c1)
}

/// Q2_K: 16 sub-blocks of 16, 4-bit scale and 4-bit min per sub-block:
/// `Σ = d·Σ_g sc_g·Σ(q·x)_g − dmin·Σ_g m_g·bsum_g`.
fn block_q2_k(cg: &mut Cg<'_, '_>, k: &Consts, tile: usize, xstride: i32, wp: Value, xp: Value) -> QkTerms {
    let d = cg.ld_f16(wp, 80);
    let dmin = cg.ld_f16(wp, 82);
    let dmin_neg = cg.b.ins().fneg(dmin);
    let sm = cg.ld(I8X16, wp, 0);
    let sc = cg.b.ins().band(sm, k.m0f);
    let mn = cg.shr_bytes_unmasked(sm, 4);
    let mn = cg.b.ins().band(mn, k.m0f);
    let sc_lo = cg.b.ins().uwiden_low(sc);
    let sc_hi = cg.b.ins().uwiden_high(sc);
    let m03 = cg.splat8(0x03);
    let mut sumi = vec![None; tile];
    // Element 128h + 32s + l is bits 2s of qs[32h + l].
    for h in 0..2i32 {
        for l in 0..2i32 {
            let v = cg.ld(I8X16, wp, 16 + 32 * h + 16 * l);
            for s in 0..4i32 {
                let sh = if s == 0 { v } else { cg.shr_bytes_unmasked(v, 2 * s as i64) };
                let code = cg.b.ins().band(sh, m03);
                let g = (8 * h + 2 * s + l) as usize;
                let scb = if g < 8 { bcast16(cg, sc_lo, g) } else { bcast16(cg, sc_hi, g - 8) };
                acc_group(cg, k, &mut sumi, code, Some(scb), xp, 16 * g as i32, xstride);
            }
        }
    }
    let mn_lo = cg.b.ins().uwiden_low(mn);
    let mn_hi = cg.b.ins().uwiden_high(mn);
    (0..tile)
        .map(|t| {
            let mins = bsums_dot(cg, mn_lo, mn_hi, xp, t as i32 * xstride);
            vec![(d, sumi[t].unwrap()), (dmin_neg, mins)]
        })
        .collect()
}

/// TQ2_0: ternary codes `q − 1`, q 2-bit, element `128j + 32l + m` at bits 2l
/// of byte `32j + m`: `Σ = d·(Σ q·x − Σx)`.
fn block_tq2_0(cg: &mut Cg<'_, '_>, k: &Consts, tile: usize, xstride: i32, wp: Value, xp: Value) -> QkTerms {
    let d = cg.ld_f16(wp, 64);
    let m03 = cg.splat8(0x03);
    // Start each tile row's sum at −Σx (the −1 offset), exactly in integers.
    let mut sumi: Vec<Option<Value>> = (0..tile)
        .map(|t| {
            let sum = cg.lda(I32, xp, t as i32 * xstride + q8_k_off::SUM);
            let neg = cg.b.ins().ineg(sum);
            Some(cg.b.ins().scalar_to_vector(I32X4, neg))
        })
        .collect();
    for j in 0..2i32 {
        for half in 0..2i32 {
            let v = cg.ld(I8X16, wp, 32 * j + 16 * half);
            for l in 0..4i32 {
                let sh = if l == 0 { v } else { cg.shr_bytes_unmasked(v, 2 * l as i64) };
                let code = cg.b.ins().band(sh, m03);
                let g = 8 * j + 2 * l + half;
                acc_group(cg, k, &mut sumi, code, None, xp, 16 * g, xstride);
            }
        }
    }
    (0..tile).map(|t| vec![(d, sumi[t].unwrap())]).collect()
}
