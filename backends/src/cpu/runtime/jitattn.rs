//! Cranelift-generated attention kernels: the three steps of one block of
//! four query rows of an attention tile (the tiling and masking are in
//! `attention`), specialised to the head sizes, the cache row strides, the
//! score scale and the soft-cap.
//!
//! Scores live transposed, `st[j] = [s_0j, s_1j, s_2j, s_3j]` (one f32x4
//! per key): then the four rows' softmaxes run side by side in the lanes,
//! with no horizontal operation, and the P·V step reads one vector per key.
//!
//! - [`AttnKernels::scores`]: `st[j] = [q_r · k_j]_r` for `n` keys, two keys
//!   per iteration (eight f32x4 `fma` accumulators over the `d/4` chunks,
//!   each key row loaded once for the four rows), then a 4×4 transpose-add
//!   reduction: one vector store per key;
//! - [`AttnKernels::softmax`]: per lane `r`: scale, soft-cap
//!   (`cap·tanh(x/cap)`), mask keys outside `[lo_r, hi_r)`, max, `exp`
//!   (`jitops`' f32x4 e^x, the same polynomial as `ops::exp`), sum, and
//!   normalise; a lane with no key gives zeros;
//! - [`AttnKernels::pv`]: `o_r[c..c+8] += Σ_j st[j][r]·v_j[c..c+8]` per
//!   group of eight output columns: per key one score load, four lane
//!   broadcasts, two value loads and eight `fma`; the output rows are
//!   overwritten.
//!
//! Head sizes must be multiples of 4 ([`AttnKernels::supports`]); other
//! shapes take the portable per-row path.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32X4, I32, I32X4, I64};
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Value};
use cranelift_frontend::{FunctionBuilder, Variable};

use super::super::jit::{CompiledFn, JitError, JitSession};
use super::attention::AttnShape;
use super::jitops::{compile, counted, exp4, fma, fsplat, shuffle4, tanh4};

/// Rows per block (lanes of an f32x4).
pub(crate) const ROWS: usize = 4;

type Fn4 = unsafe extern "C" fn(u64, u64, u64, u64);

fn flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// `[Σa_0, Σa_1, Σa_2, Σa_3]`: the lane sums of four f32x4.
fn reduce4(b: &mut FunctionBuilder<'_>, a: [Value; 4]) -> Value {
    let t0 = shuffle4(b, a[0], a[1], [0, 4, 1, 5]);
    let t1 = shuffle4(b, a[0], a[1], [2, 6, 3, 7]);
    let u0 = b.ins().fadd(t0, t1); // [a0.0+a0.2, a1.0+a1.2, a0.1+a0.3, a1.1+a1.3]
    let t2 = shuffle4(b, a[2], a[3], [0, 4, 1, 5]);
    let t3 = shuffle4(b, a[2], a[3], [2, 6, 3, 7]);
    let u1 = b.ins().fadd(t2, t3);
    let lo = shuffle4(b, u0, u1, [0, 1, 4, 5]);
    let hi = shuffle4(b, u0, u1, [2, 3, 6, 7]);
    b.ins().fadd(lo, hi)
}

/// The compiled kernels of one attention shape.
pub(crate) struct AttnKernels {
    scores: CompiledFn,
    softmax: CompiledFn,
    pv: CompiledFn,
}

impl AttnKernels {
    /// Whether the kernels cover `a` (head sizes multiples of 4, strides
    /// that fit an immediate).
    pub(crate) fn supports(a: &AttnShape) -> bool {
        let fits = |x: usize| x.checked_mul(a.hk.max(1) * 64).is_some_and(|b| b <= i32::MAX as usize);
        a.d > 0 && a.dv > 0 && a.d.is_multiple_of(4) && a.dv.is_multiple_of(4) && fits(a.d) && fits(a.dv)
    }

    /// Compiles the three kernels for `a` (see [`AttnKernels::supports`]).
    pub(crate) fn new(session: &JitSession, a: &AttnShape) -> Result<Self, JitError> {
        if !Self::supports(a) {
            return Err(JitError::InvalidParams(format!("attention kernels: head sizes {}/{} must be multiples of 4", a.d, a.dv)));
        }
        if !(a.scale.is_finite() && a.softcap.is_finite() && a.softcap >= 0.0) {
            return Err(JitError::InvalidParams(format!("attention kernels: scale {} and soft-cap {} must be finite", a.scale, a.softcap)));
        }
        let fused = session.caps().fma;
        let tag = format!("{}x{}_{}_{}", a.d, a.dv, a.hk, a.softcap > 0.0);
        let scores = compile(session, &format!("attn_scores_{tag}"), |b, [q4, k, n, st]| emit_scores(b, fused, a, q4, k, n, st))?;
        let softmax = compile(session, &format!("attn_softmax_{tag}"), |b, [st, n, ranges, _unused]| emit_softmax(b, a, st, n, ranges))?;
        let pv = compile(session, &format!("attn_pv_{tag}"), |b, [st, v, n, o4]| emit_pv(b, fused, a, st, v, n, o4))?;
        Ok(Self { scores, softmax, pv })
    }

    /// `st[j] = [q[r] · k_j]_r` for keys `j < n`, key `j` at `k + j·hk·d`.
    ///
    /// # Safety
    /// `q[r]` hold `d` floats, `k` `n` key rows of the cache, `st` `4·n` floats.
    pub(crate) unsafe fn scores(&self, q: [*const f32; ROWS], k: *const f32, n: usize, st: *mut f32) {
        // SAFETY: the signature the kernel was compiled with; the caller's contract.
        let f: Fn4 = unsafe { std::mem::transmute(self.scores.ptr()) };
        unsafe { f(q.as_ptr() as u64, k as u64, n as u64, st as u64) };
    }

    /// Softmax of each lane `r` of `st[..n]` over the keys `ranges[r]..ranges[4 + r]`.
    ///
    /// # Safety
    /// `st` holds `4·n` floats.
    pub(crate) unsafe fn softmax(&self, st: *mut f32, n: usize, ranges: &[i32; 2 * ROWS]) {
        // SAFETY: as above.
        let f: Fn4 = unsafe { std::mem::transmute(self.softmax.ptr()) };
        unsafe { f(st as u64, n as u64, ranges.as_ptr() as u64, 0) };
    }

    /// `out[r][..dv] = Σ_j st[j][r] · v_j`, value row `j` at `v + j·hk·dv`.
    ///
    /// # Safety
    /// `st` holds `4·n` floats, `v` `n` value rows, `out[r]` `dv` writable floats.
    pub(crate) unsafe fn pv(&self, st: *const f32, v: *const f32, n: usize, out: [*mut f32; ROWS]) {
        // SAFETY: as above.
        let f: Fn4 = unsafe { std::mem::transmute(self.pv.ptr()) };
        unsafe { f(st as u64, v as u64, n as u64, out.as_ptr() as u64) };
    }
}

/// Loads the four row pointers of an array at `p`.
fn row_ptrs(b: &mut FunctionBuilder<'_>, p: Value) -> [Value; ROWS] {
    std::array::from_fn(|r| b.ins().load(I64, flags(), p, (8 * r) as i32))
}

fn zero_vars(b: &mut FunctionBuilder<'_>, n: usize) -> Vec<Variable> {
    let z = fsplat(b, 0.0);
    (0..n)
        .map(|_| {
            let v = b.declare_var(F32X4);
            b.def_var(v, z);
            v
        })
        .collect()
}

/// The dots of the four query rows with `keys.len()` key rows, reduced: one
/// f32x4 per key.
fn dots(b: &mut FunctionBuilder<'_>, fused: bool, d: usize, q: [Value; ROWS], keys: &[Value]) -> Vec<Value> {
    let acc = zero_vars(b, ROWS * keys.len());
    let chunks = b.ins().iconst(I64, (d / 4) as i64);
    counted(b, chunks, |b, c| {
        let off = b.ins().ishl_imm_u(c, 4);
        let kv: Vec<Value> = keys
            .iter()
            .map(|&kp| {
                let p = b.ins().iadd(kp, off);
                b.ins().load(F32X4, flags(), p, 0)
            })
            .collect();
        for (r, &qp) in q.iter().enumerate() {
            let p = b.ins().iadd(qp, off);
            let qv = b.ins().load(F32X4, flags(), p, 0);
            for (j, &kvj) in kv.iter().enumerate() {
                let var = acc[j * ROWS + r];
                let a = b.use_var(var);
                let a = fma(b, fused, qv, kvj, a);
                b.def_var(var, a);
            }
        }
    });
    (0..keys.len())
        .map(|j| {
            let a: [Value; ROWS] = std::array::from_fn(|r| b.use_var(acc[j * ROWS + r]));
            reduce4(b, a)
        })
        .collect()
}

fn emit_scores(b: &mut FunctionBuilder<'_>, fused: bool, a: &AttnShape, q4: Value, k: Value, n: Value, st: Value) {
    let q = row_ptrs(b, q4);
    let kstride = (a.hk * a.d * 4) as i64;
    let pairs = b.ins().ushr_imm_u(n, 1);
    counted(b, pairs, |b, jp| {
        let ka = b.ins().imul_imm_s(jp, 2 * kstride);
        let ka = b.ins().iadd(k, ka);
        let kb = b.ins().iadd_imm_s(ka, kstride);
        let s = dots(b, fused, a.d, q, &[ka, kb]);
        let so = b.ins().ishl_imm_u(jp, 5);
        let sp = b.ins().iadd(st, so);
        b.ins().store(flags(), s[0], sp, 0);
        b.ins().store(flags(), s[1], sp, 16);
    });
    // An odd last key.
    let odd = b.ins().band_imm_u(n, 1);
    let (tail, done) = (b.create_block(), b.create_block());
    b.ins().brif(odd, tail, &[], done, &[]);
    b.switch_to_block(tail);
    let last = b.ins().iadd_imm_s(n, -1);
    let ko = b.ins().imul_imm_s(last, kstride);
    let kp = b.ins().iadd(k, ko);
    let s = dots(b, fused, a.d, q, &[kp]);
    let so = b.ins().ishl_imm_u(last, 4);
    let sp = b.ins().iadd(st, so);
    b.ins().store(flags(), s[0], sp, 0);
    b.ins().jump(done, &[]);
    b.switch_to_block(done);
}

/// The lanes whose key range `[lo, hi)` contains key `j` (an all-ones f32x4 lane mask).
fn in_range(b: &mut FunctionBuilder<'_>, j: Value, lo: Value, hi: Value) -> Value {
    let j32 = b.ins().ireduce(I32, j);
    let jv = b.ins().splat(I32X4, j32);
    let ge = b.ins().icmp(IntCC::SignedGreaterThanOrEqual, jv, lo);
    let lt = b.ins().icmp(IntCC::SignedLessThan, jv, hi);
    let m = b.ins().band(ge, lt);
    let le = MemFlagsData::new().with_endianness(Endianness::Little);
    b.ins().bitcast(F32X4, le, m)
}

/// Runs `body(b, j, pointer to st[j])` for `j < n`.
fn each_key(b: &mut FunctionBuilder<'_>, st: Value, n: Value, mut body: impl FnMut(&mut FunctionBuilder<'_>, Value, Value)) {
    counted(b, n, |b, j| {
        let o = b.ins().ishl_imm_u(j, 4);
        let p = b.ins().iadd(st, o);
        body(b, j, p)
    });
}

fn emit_softmax(b: &mut FunctionBuilder<'_>, a: &AttnShape, st: Value, n: Value, ranges: Value) {
    let lo = b.ins().load(I32X4, flags(), ranges, 0);
    let hi = b.ins().load(I32X4, flags(), ranges, 16);
    let neg_inf = fsplat(b, f32::NEG_INFINITY);
    let zero = fsplat(b, 0.0);
    let max = b.declare_var(F32X4);
    b.def_var(max, neg_inf);
    // 1. Scores (scaled, capped, masked to −∞) and their max.
    each_key(b, st, n, |b, j, p| {
        let x = b.ins().load(F32X4, flags(), p, 0);
        let x = if a.softcap > 0.0 {
            let inv = fsplat(b, a.scale / a.softcap);
            let y = b.ins().fmul(x, inv);
            let t = tanh4(b, y);
            let cap = fsplat(b, a.softcap);
            b.ins().fmul(cap, t)
        } else {
            let s = fsplat(b, a.scale);
            b.ins().fmul(x, s)
        };
        let m = in_range(b, j, lo, hi);
        let x = b.ins().bitselect(m, x, neg_inf);
        b.ins().store(flags(), x, p, 0);
        let cur = b.use_var(max);
        let nm = b.ins().fmax(cur, x);
        b.def_var(max, nm);
    });
    // 2. e^(x − max) on the row's keys (exactly 0 elsewhere) and the sums.
    let mx = b.use_var(max);
    let sum = b.declare_var(F32X4);
    b.def_var(sum, zero);
    each_key(b, st, n, |b, j, p| {
        let x = b.ins().load(F32X4, flags(), p, 0);
        let x = b.ins().fsub(x, mx);
        let e = exp4(b, x);
        let m = in_range(b, j, lo, hi);
        let e = b.ins().bitselect(m, e, zero);
        b.ins().store(flags(), e, p, 0);
        let s = b.use_var(sum);
        let s = b.ins().fadd(s, e);
        b.def_var(sum, s);
    });
    // 3. Normalise (a lane without keys has sum 0 and stays 0; a NaN sum,
    // from a NaN score, makes the lane NaN: `NotEqual` is true when unordered).
    let s = b.use_var(sum);
    let one = fsplat(b, 1.0);
    let inv = b.ins().fdiv(one, s);
    let pos = b.ins().fcmp(FloatCC::NotEqual, s, zero);
    let le = MemFlagsData::new().with_endianness(Endianness::Little);
    let pos = b.ins().bitcast(F32X4, le, pos);
    let inv = b.ins().bitselect(pos, inv, zero);
    each_key(b, st, n, |b, _, p| {
        let x = b.ins().load(F32X4, flags(), p, 0);
        let x = b.ins().fmul(x, inv);
        b.ins().store(flags(), x, p, 0);
    });
}

fn emit_pv(b: &mut FunctionBuilder<'_>, fused: bool, a: &AttnShape, st: Value, v: Value, n: Value, o4: Value) {
    let out = row_ptrs(b, o4);
    let vstride = (a.hk * a.dv * 4) as i64;
    // Column groups of 8 (two vectors), then one of 4 when dv % 8 == 4.
    let mut groups: Vec<(usize, usize)> = (0..a.dv / 8).map(|g| (8 * g, 2)).collect();
    if a.dv % 8 == 4 {
        groups.push((a.dv - 4, 1));
    }
    for (col, width) in groups {
        let acc = zero_vars(b, ROWS * width);
        let sp = b.declare_var(I64);
        b.def_var(sp, st);
        let vp = b.declare_var(I64);
        let v0 = b.ins().iadd_imm_s(v, (col * 4) as i64);
        b.def_var(vp, v0);
        counted(b, n, |b, _| {
            let (s, vr) = (b.use_var(sp), b.use_var(vp));
            let p = b.ins().load(F32X4, flags(), s, 0);
            let x: Vec<Value> = (0..width).map(|w| b.ins().load(F32X4, flags(), vr, (16 * w) as i32)).collect();
            for r in 0..ROWS {
                let l = r as u8;
                let pr = shuffle4(b, p, p, [l, l, l, l]);
                for (w, &xw) in x.iter().enumerate() {
                    let var = acc[r * width + w];
                    let cur = b.use_var(var);
                    let nv = fma(b, fused, pr, xw, cur);
                    b.def_var(var, nv);
                }
            }
            let s2 = b.ins().iadd_imm_s(s, 16);
            b.def_var(sp, s2);
            let v2 = b.ins().iadd_imm_s(vr, vstride);
            b.def_var(vp, v2);
        });
        for (r, &o) in out.iter().enumerate() {
            for w in 0..width {
                let val = b.use_var(acc[r * width + w]);
                b.ins().store(flags(), val, o, ((col + 4 * w) * 4) as i32);
            }
        }
    }
}
