//! Cranelift-generated glue kernels of the runtime: rmsnorm and the
//! elementwise binary ops, specialised to their static row width.
//!
//! Each kernel has the entry ABI `extern "C" fn(p0, p1, out, rows)` (three
//! pointers and a row count, all `i64`): the row width `d`, the op and the
//! broadcast case are compile-time constants, so every offset inside a row is
//! either an immediate or a loop over `d / 4` f32x4 lanes followed by an
//! unrolled scalar tail (`d % 4` elements). Only the row count is a runtime
//! argument. The plan compiles one kernel per distinct shape (see
//! `plan.rs`) and the parameters are validated here before any CLIF is built.
//!
//! - [`RmsnormKernel`]: `out = x · (Σx²/d + eps)^−½ · w` per row of `d`; the
//!   sum of squares uses four f32x4 `fma` accumulators (16 floats per
//!   iteration), then the remaining vectors and the scalar tail; one scalar
//!   `sqrt` + `fdiv` per row. The summation order differs from the Rust
//!   `ops::rmsnorm` (16 accumulators), so results agree within a few ulp
//!   (the tests assert ≤ 4 ulp), not bit for bit;
//! - [`BinaryKernel`]: `out = a ∘ b` for ∘ ∈ {+, −, ×, ÷} with both operands
//!   full length, or one of them a single row of `d` repeated over every row
//!   (the broadcasts the planner accepts). IEEE operations in the same order
//!   as the scalar definition: bit-exact;
//! - [`RopeKernel`]: rotary embedding of `[seq, heads, d]` rows with the
//!   per-call cos/sin tables (`ops::rope_table`), specialised to heads, d,
//!   rotated dims and mode; NeoX halves are f32x4 lanes directly, the
//!   interleaved (`norm`) pairs are split into even/odd lanes and re-joined
//!   with byte shuffles. Same multiply/subtract order as `ops::rope`:
//!   bit-exact;
//! - [`SoftmaxKernel`]: softmax of rows of `width`: per-lane maxima then
//!   the row max, e^(x − max) with the [`exp4`] polynomial into `out` and
//!   per-lane sums, one division, one scaling pass. The sum order differs
//!   from `ops::softmax_in_place` (eight lanes), so results agree within a
//!   few ulp (tests: ≤ 1e-6 relative to an f64 softmax);
//! - [`GluKernel`]: the fused gated activation `out = act(gate) · up` with
//!   act ∈ {silu, gelu(tanh)}, planned for a `tensor.silu`/`tensor.gelu`
//!   whose only use is the `tensor.mul` right after it (the FFN). e^x is the
//!   same Cody–Waite reduction (e^x = 2^n·e^r, r ∈ [−ln2/2, ln2/2]) and
//!   degree-6 Taylor polynomial as `ops::exp`, with the same clamps, the
//!   2^n scale built by integer bit operations, and unfused multiply/add in
//!   the same order as the Rust source (which LLVM does not contract), so
//!   every lane is **bit-identical** to `ops::silu(g) · u` /
//!   `ops::gelu_tanh(g) · u` (asserted by the tests). Its error is therefore
//!   that of `ops::exp`: relative < 2.5e-7 (≈ 2 ulp) on [−87, 88] (the
//!   tests measure it against f64 `exp`). The `d % 4` tail runs the vector
//!   code on a splatted lane. NaN inputs are not propagated like Rust's
//!   `clamp` (Cranelift's `fmin`/`fmax` order differs); the FFN never
//!   produces them from finite weights.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, F32X4, I32, I32X4, I64};
use cranelift_codegen::ir::types::I8X16;
use cranelift_codegen::ir::{ConstantData, Endianness, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Type, Value};
use flexc_ir::ops::RopeMode;
use cranelift_frontend::FunctionBuilder;

use super::super::jit::{CompiledFn, JitError, JitSession};
use super::plan::{BinOp, UnOp};

/// Largest row width: keeps every byte offset inside a row an `i32` immediate.
const MAX_WIDTH: usize = (i32::MAX as usize) / 16;

type KernelFn = unsafe extern "C" fn(*const f32, *const f32, *mut f32, u64);

fn flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

fn check_width(what: &str, d: usize) -> Result<(), JitError> {
    if d == 0 || d > MAX_WIDTH {
        return Err(JitError::InvalidParams(format!("{what}: row width {d} must be in 1..={MAX_WIDTH}")));
    }
    Ok(())
}

/// Emits `for i in 0..n { body(i) }` with `n` an `i64` value (zero trips allowed).
pub(super) fn counted(b: &mut FunctionBuilder<'_>, n: Value, body: impl FnOnce(&mut FunctionBuilder<'_>, Value)) {
    let i = b.declare_var(I64);
    let zero = b.ins().iconst(I64, 0);
    b.def_var(i, zero);
    let (head, lp, exit) = (b.create_block(), b.create_block(), b.create_block());
    b.ins().jump(head, &[]);
    b.switch_to_block(head);
    let iv = b.use_var(i);
    let more = b.ins().icmp(IntCC::UnsignedLessThan, iv, n);
    b.ins().brif(more, lp, &[], exit, &[]);
    b.switch_to_block(lp);
    let iv = b.use_var(i);
    body(b, iv);
    let iv = b.use_var(i);
    let next = b.ins().iadd_imm_s(iv, 1);
    b.def_var(i, next);
    b.ins().jump(head, &[]);
    b.switch_to_block(exit);
}

/// `for j in 0..d` over one row in f32x4 steps then scalar steps: `body`
/// gets the lane type and the byte offset from the row start (a value for
/// the vector loop, folded immediates for the tail).
fn row_lanes(b: &mut FunctionBuilder<'_>, d: usize, mut body: impl FnMut(&mut FunctionBuilder<'_>, Type, Value)) {
    if d / 4 > 0 {
        let n = b.ins().iconst(I64, (d / 4) as i64);
        counted(b, n, |b, i| {
            let off = b.ins().ishl_imm_u(i, 4);
            body(b, F32X4, off)
        });
    }
    for t in d / 4 * 4..d {
        let off = b.ins().iconst(I64, (t * 4) as i64);
        body(b, F32, off);
    }
}

/// `v` (at most 16 bytes) forced to be computed here, before the loop that
/// follows: a round trip through a stack slot. Cranelift's egraph otherwise
/// sinks a pure chain into the first loop that uses it when that loop sits
/// at the same depth as the chain's inputs (the rmsnorm scale `1/√…` was
/// recomputed for every lane group, 3× slower than the Rust loop, and the
/// row addresses for every iteration).
fn pin(b: &mut FunctionBuilder<'_>, v: Value) -> Value {
    let slot = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 16, 4));
    b.ins().stack_store(I64, v, slot, 0);
    let ty = b.func.dfg.value_type(v);
    b.ins().stack_load(I64, ty, slot, 0)
}

fn at(b: &mut FunctionBuilder<'_>, base: Value, off: Value) -> Value {
    b.ins().iadd(base, off)
}

pub(super) fn fma(b: &mut FunctionBuilder<'_>, fused: bool, x: Value, y: Value, acc: Value) -> Value {
    if fused {
        b.ins().fma(x, y, acc)
    } else {
        let m = b.ins().fmul(x, y);
        b.ins().fadd(m, acc)
    }
}

/// Compiles `body(b, params)` (`N` i64 parameters, no result) and returns
/// the finalized function.
pub(super) fn compile<const N: usize>(session: &JitSession, name: &str, body: impl FnOnce(&mut FunctionBuilder<'_>, [Value; N])) -> Result<CompiledFn, JitError> {
    let f = session.compile(name, N, |b, args| {
        let args: [Value; N] = args.try_into().map_err(|_| JitError::InvalidParams(format!("{name}: expected {N} parameters")))?;
        body(b, args);
        b.ins().return_(&[]);
        Ok(())
    })?;
    f.executable()?;
    Ok(f)
}

/// RMS normalisation of rows of a fixed width `d` (see the module docs).
pub(crate) struct RmsnormKernel {
    f: CompiledFn,
    d: usize,
}

impl RmsnormKernel {
    /// Compiles the kernel for rows of `d` floats and the given `eps`.
    pub(crate) fn new(session: &JitSession, d: usize, eps: f32) -> Result<Self, JitError> {
        check_width("rmsnorm", d)?;
        if !eps.is_finite() || eps < 0.0 {
            return Err(JitError::InvalidParams(format!("rmsnorm eps {eps} must be finite and non-negative")));
        }
        let fused = session.caps().fma;
        let f = compile(session, &format!("rmsnorm_{d}"), |b, [x, w, out, rows]| {
            counted(b, rows, |b, r| {
                let rb = b.ins().imul_imm_s(r, (d * 4) as i64);
                let (xp, op) = (at(b, x, rb), at(b, out, rb));
                let (xp, op) = (pin(b, xp), pin(b, op));
                // Σ x² with four independent f32x4 accumulators.
                let zero = b.ins().f32const(0.0);
                let zv = b.ins().splat(F32X4, zero);
                let accs: Vec<_> = (0..4)
                    .map(|_| {
                        let v = b.declare_var(F32X4);
                        b.def_var(v, zv);
                        v
                    })
                    .collect();
                if d / 16 > 0 {
                    let n = b.ins().iconst(I64, (d / 16) as i64);
                    counted(b, n, |b, i| {
                        let off = b.ins().ishl_imm_u(i, 6);
                        let p = at(b, xp, off);
                        for (k, &acc) in accs.iter().enumerate() {
                            let v = b.ins().load(F32X4, flags(), p, (16 * k) as i32);
                            let a = b.use_var(acc);
                            let s = fma(b, fused, v, v, a);
                            b.def_var(acc, s);
                        }
                    });
                }
                for (k, &acc) in accs.iter().enumerate().take(d % 16 / 4) {
                    let v = b.ins().load(F32X4, flags(), xp, (4 * (d / 16 * 16 + 4 * k)) as i32);
                    let a = b.use_var(acc);
                    let s = fma(b, fused, v, v, a);
                    b.def_var(acc, s);
                }
                let [a0, a1, a2, a3] = [0, 1, 2, 3].map(|k| b.use_var(accs[k]));
                let (s01, s23) = (b.ins().fadd(a0, a1), b.ins().fadd(a2, a3));
                let sv = b.ins().fadd(s01, s23);
                let [l0, l1, l2, l3] = [0u8, 1, 2, 3].map(|l| b.ins().extractlane(sv, l));
                let (h02, h13) = (b.ins().fadd(l0, l2), b.ins().fadd(l1, l3));
                let mut s = b.ins().fadd(h02, h13);
                for t in d / 4 * 4..d {
                    let v = b.ins().load(F32, flags(), xp, (4 * t) as i32);
                    s = fma(b, fused, v, v, s);
                }
                // r = 1 / sqrt(Σ/d + eps), as in `ops::rmsnorm`.
                let dc = b.ins().f32const(d as f32);
                let ms = b.ins().fdiv(s, dc);
                let ec = b.ins().f32const(eps);
                let m = b.ins().fadd(ms, ec);
                let sq = b.ins().sqrt(m);
                let one = b.ins().f32const(1.0);
                let inv = b.ins().fdiv(one, sq);
                let invv = b.ins().splat(F32X4, inv);
                let invv = pin(b, invv);
                let inv = b.ins().extractlane(invv, 0);
                row_lanes(b, d, |b, ty, off| {
                    let (pa, pw, po) = (at(b, xp, off), at(b, w, off), at(b, op, off));
                    let v = b.ins().load(ty, flags(), pa, 0);
                    let wv = b.ins().load(ty, flags(), pw, 0);
                    let r = if ty == F32 { inv } else { invv };
                    let scaled = b.ins().fmul(v, r);
                    let o = b.ins().fmul(scaled, wv);
                    b.ins().store(flags(), o, po, 0);
                });
            });
        })?;
        Ok(Self { f, d })
    }

    /// `out = rmsnorm(x) · w` over the `x.len() / d` rows of `x`.
    pub(crate) fn run(&self, x: &[f32], w: &[f32], out: &mut [f32]) -> Result<(), JitError> {
        let d = self.d;
        if !x.len().is_multiple_of(d) || out.len() != x.len() || w.len() != d {
            return Err(JitError::Length(format!("rmsnorm over rows of {d}: x {}, w {}, out {}", x.len(), w.len(), out.len())));
        }
        // SAFETY: the kernel reads x.len() and d floats and writes out.len()
        // = x.len() floats (checked above), with unaligned accesses only.
        let f: KernelFn = unsafe { std::mem::transmute(self.f.ptr()) };
        unsafe { f(x.as_ptr(), w.as_ptr(), out.as_mut_ptr(), (x.len() / d) as u64) };
        Ok(())
    }
}

/// Which operand of a [`BinaryKernel`] is one row repeated over all rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Bcast {
    /// Both operands are full length.
    None,
    /// `a` is a single row.
    A,
    /// `b` is a single row.
    B,
}

/// Elementwise `a ∘ b` over rows of a fixed width (see the module docs).
pub(crate) struct BinaryKernel {
    f: CompiledFn,
    width: usize,
    bcast: Bcast,
}

impl BinaryKernel {
    /// Compiles `op` over rows of `width` floats with the given broadcast.
    pub(crate) fn new(session: &JitSession, op: BinOp, width: usize, bcast: Bcast) -> Result<Self, JitError> {
        check_width("elementwise", width)?;
        let name = format!("{op:?}_{width}_{bcast:?}").to_lowercase();
        let f = compile(session, &name, |b, [a, bp, out, rows]| {
            counted(b, rows, |b, r| {
                let rb = b.ins().imul_imm_s(r, (width * 4) as i64);
                let ap = if bcast == Bcast::A { a } else { at(b, a, rb) };
                let bq = if bcast == Bcast::B { bp } else { at(b, bp, rb) };
                let op_row = at(b, out, rb);
                row_lanes(b, width, |b, ty, off| {
                    let (pa, pb, po) = (at(b, ap, off), at(b, bq, off), at(b, op_row, off));
                    let x = b.ins().load(ty, flags(), pa, 0);
                    let y = b.ins().load(ty, flags(), pb, 0);
                    let o = match op {
                        BinOp::Add => b.ins().fadd(x, y),
                        BinOp::Sub => b.ins().fsub(x, y),
                        BinOp::Mul => b.ins().fmul(x, y),
                        BinOp::Div => b.ins().fdiv(x, y),
                    };
                    b.ins().store(flags(), o, po, 0);
                });
            });
        })?;
        Ok(Self { f, width, bcast })
    }

    /// `out = a ∘ b`; `out.len()` must be a multiple of the width and each
    /// operand either `out.len()` long or (if it is the broadcast one) `width`.
    pub(crate) fn run(&self, a: &[f32], b: &[f32], out: &mut [f32]) -> Result<(), JitError> {
        let (n, w) = (out.len(), self.width);
        let want = |bc: Bcast| if self.bcast == bc { w } else { n };
        if !n.is_multiple_of(w) || a.len() != want(Bcast::A) || b.len() != want(Bcast::B) {
            return Err(JitError::Length(format!(
                "elementwise over rows of {w} ({:?} broadcast): a {}, b {}, out {n}",
                self.bcast,
                a.len(),
                b.len()
            )));
        }
        // SAFETY: lengths checked above; the kernel reads rows of `w` from
        // each operand (row 0 only for the broadcast one) and writes `n` floats.
        let f: KernelFn = unsafe { std::mem::transmute(self.f.ptr()) };
        unsafe { f(a.as_ptr(), b.as_ptr(), out.as_mut_ptr(), (n / w) as u64) };
        Ok(())
    }
}

/// Two f32x4 → f32x4 by 4-byte lane indices (0–3 from `a`, 4–7 from `c`).
pub(super) fn shuffle4(b: &mut FunctionBuilder<'_>, a: Value, c: Value, lanes: [u8; 4]) -> Value {
    let le = MemFlagsData::new().with_endianness(Endianness::Little);
    let mask: Vec<u8> = lanes.iter().flat_map(|&l| (0..4).map(move |k| 4 * l + k)).collect();
    let imm = b.func.dfg.immediates.push(ConstantData::from(&mask[..]));
    let (ab, cb) = (b.ins().bitcast(I8X16, le, a), b.ins().bitcast(I8X16, le, c));
    let r = b.ins().shuffle(ab, cb, imm);
    b.ins().bitcast(F32X4, le, r)
}

/// Rotated pair: `(x0·c − x1·s, x0·s + x1·c)`, as `ops::rope` computes it.
fn rotate(b: &mut FunctionBuilder<'_>, x0: Value, x1: Value, c: Value, s: Value) -> (Value, Value) {
    let (x0c, x1s) = (b.ins().fmul(x0, c), b.ins().fmul(x1, s));
    let (x0s, x1c) = (b.ins().fmul(x0, s), b.ins().fmul(x1, c));
    (b.ins().fsub(x0c, x1s), b.ins().fadd(x0s, x1c))
}

/// Rotary embedding of `[seq, heads, d]` rows (see the module docs).
pub(crate) struct RopeKernel {
    f: CompiledFn,
    heads: usize,
    d: usize,
    dims: usize,
}

type RopeFn = unsafe extern "C" fn(*const f32, *const f32, *const f32, *mut f32, u64);

impl RopeKernel {
    /// Compiles rope over `heads` heads of `d`, rotating the first `dims` of each.
    pub(crate) fn new(session: &JitSession, heads: usize, d: usize, dims: usize, mode: RopeMode) -> Result<Self, JitError> {
        check_width("rope", heads.saturating_mul(d))?;
        if dims == 0 || !dims.is_multiple_of(2) || dims > d {
            return Err(JitError::InvalidParams(format!("rope dims {dims} must be even and in 1..={d}")));
        }
        let half = dims / 2;
        let f = compile(session, &format!("rope_{heads}x{d}_{dims}_{mode:?}").to_lowercase(), |b, [x, cos, sin, out, seq]| {
            counted(b, seq, |b, i| {
                let tb = b.ins().imul_imm_s(i, (half * 4) as i64);
                let (cp, sp) = (at(b, cos, tb), at(b, sin, tb));
                let rb = b.ins().imul_imm_s(i, (heads * d * 4) as i64);
                let (xr, or) = (at(b, x, rb), at(b, out, rb));
                let nh = b.ins().iconst(I64, heads as i64);
                counted(b, nh, |b, h| {
                    let hb = b.ins().imul_imm_s(h, (d * 4) as i64);
                    let (xp, op) = (at(b, xr, hb), at(b, or, hb));
                    match mode {
                        RopeMode::Neox => row_lanes(b, half, |b, ty, off| {
                            let (pc, ps, px, po) = (at(b, cp, off), at(b, sp, off), at(b, xp, off), at(b, op, off));
                            let x0 = b.ins().load(ty, flags(), px, 0);
                            let x1 = b.ins().load(ty, flags(), px, (half * 4) as i32);
                            let c = b.ins().load(ty, flags(), pc, 0);
                            let s = b.ins().load(ty, flags(), ps, 0);
                            let (o0, o1) = rotate(b, x0, x1, c, s);
                            b.ins().store(flags(), o0, po, 0);
                            b.ins().store(flags(), o1, po, (half * 4) as i32);
                        }),
                        RopeMode::Norm => row_lanes(b, half, |b, ty, off| {
                            // `off` indexes the table; the pairs are at 2·off.
                            let (pc, ps) = (at(b, cp, off), at(b, sp, off));
                            let off2 = b.ins().ishl_imm_u(off, 1);
                            let (px, po) = (at(b, xp, off2), at(b, op, off2));
                            let c = b.ins().load(ty, flags(), pc, 0);
                            let s = b.ins().load(ty, flags(), ps, 0);
                            // Scalar pairs are 4 bytes apart, vector halves 16.
                            let step = if ty == F32 { 4 } else { 16 };
                            let (lo, hi) = (b.ins().load(ty, flags(), px, 0), b.ins().load(ty, flags(), px, step));
                            if ty == F32 {
                                let (o0, o1) = rotate(b, lo, hi, c, s);
                                b.ins().store(flags(), o0, po, 0);
                                b.ins().store(flags(), o1, po, 4);
                            } else {
                                let x0 = shuffle4(b, lo, hi, [0, 2, 4, 6]);
                                let x1 = shuffle4(b, lo, hi, [1, 3, 5, 7]);
                                let (o0, o1) = rotate(b, x0, x1, c, s);
                                let r0 = shuffle4(b, o0, o1, [0, 4, 1, 5]);
                                let r1 = shuffle4(b, o0, o1, [2, 6, 3, 7]);
                                b.ins().store(flags(), r0, po, 0);
                                b.ins().store(flags(), r1, po, 16);
                            }
                        }),
                    }
                    // Unrotated dims are copied.
                    if dims < d {
                        row_lanes(b, d - dims, |b, ty, off| {
                            let (px, po) = (at(b, xp, off), at(b, op, off));
                            let v = b.ins().load(ty, flags(), px, (dims * 4) as i32);
                            b.ins().store(flags(), v, po, (dims * 4) as i32);
                        });
                    }
                });
            });
        })?;
        Ok(Self { f, heads, d, dims })
    }

    /// Rotates the `x.len() / (heads·d)` rows of `x` into `out` with the
    /// tables of `ops::rope_table` (at least `rows · dims/2` entries each).
    pub(crate) fn run(&self, x: &[f32], cos: &[f32], sin: &[f32], out: &mut [f32]) -> Result<(), JitError> {
        let row = self.heads * self.d;
        let rows = x.len() / row;
        let need = rows * (self.dims / 2);
        if !x.len().is_multiple_of(row) || out.len() != x.len() || cos.len() < need || sin.len() < need {
            return Err(JitError::Length(format!("rope over rows of {row}: x {}, out {}, tables {}/{} (need {need})", x.len(), out.len(), cos.len(), sin.len())));
        }
        // SAFETY: lengths checked above; unaligned accesses only.
        let f: RopeFn = unsafe { std::mem::transmute(self.f.ptr()) };
        unsafe { f(x.as_ptr(), cos.as_ptr(), sin.as_ptr(), out.as_mut_ptr(), rows as u64) };
        Ok(())
    }
}

/// `splat(F32X4, c)`.
pub(super) fn fsplat(b: &mut FunctionBuilder<'_>, c: f32) -> Value {
    let s = b.ins().f32const(c);
    b.ins().splat(F32X4, s)
}

/// `min(max(x, lo), hi)` on f32x4 (Rust's `clamp` for non-NaN lanes).
pub(super) fn clamp4(b: &mut FunctionBuilder<'_>, x: Value, lo: f32, hi: f32) -> Value {
    let (l, h) = (fsplat(b, lo), fsplat(b, hi));
    let m = b.ins().fmax(x, l);
    b.ins().fmin(m, h)
}

/// `ops::exp` on f32x4, operation for operation (see the module docs).
pub(super) fn exp4(b: &mut FunctionBuilder<'_>, x: Value) -> Value {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const MAGIC: f32 = 12_582_912.0;
    let x = clamp4(b, x, -87.33, 88.7);
    let (log2e, magic) = (fsplat(b, LOG2E), fsplat(b, MAGIC));
    let xl = b.ins().fmul(x, log2e);
    let t = b.ins().fadd(xl, magic);
    let n = b.ins().fsub(t, magic);
    let (hi, lo) = (fsplat(b, LN2_HI), fsplat(b, LN2_LO));
    let nh = b.ins().fmul(n, hi);
    let r = b.ins().fsub(x, nh);
    let nl = b.ins().fmul(n, lo);
    let r = b.ins().fsub(r, nl);
    // Horner from the innermost coefficient: 1/720, 1/120, 1/24, 1/6, 1/2, 1, 1.
    let mut p = fsplat(b, 1.0 / 720.0);
    for c in [1.0f32 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        let m = b.ins().fmul(r, p);
        let cv = fsplat(b, c);
        p = b.ins().fadd(cv, m);
    }
    // 2^n from the integer in t's low mantissa bits: ((bits − 0x4B40_0000 + 127) max 0) << 23.
    let le = MemFlagsData::new().with_endianness(Endianness::Little);
    let ti = b.ins().bitcast(I32X4, le, t);
    let bias = b.ins().iconst(I32, 127 - 0x4B40_0000);
    let bias = b.ins().splat(I32X4, bias);
    let e = b.ins().iadd(ti, bias);
    let z = b.ins().iconst(I32, 0);
    let z = b.ins().splat(I32X4, z);
    let e = b.ins().smax(e, z);
    let e = b.ins().ishl_imm_u(e, 23);
    let scale = b.ins().bitcast(F32X4, le, e);
    b.ins().fmul(p, scale)
}

/// `ops::tanh` on f32x4: 1 − 2/(e^{2y} + 1), y clamped to ±15.
pub(super) fn tanh4(b: &mut FunctionBuilder<'_>, y: Value) -> Value {
    let (one, two) = (fsplat(b, 1.0), fsplat(b, 2.0));
    let y = clamp4(b, y, -15.0, 15.0);
    let y2 = b.ins().fmul(two, y);
    let e = exp4(b, y2);
    let e1 = b.ins().fadd(e, one);
    let q = b.ins().fdiv(two, e1);
    b.ins().fsub(one, q)
}

/// `op(x)` on f32x4 for the gated activations, as `ops::silu` / `ops::gelu_tanh`.
fn act4(b: &mut FunctionBuilder<'_>, op: UnOp, x: Value) -> Value {
    let one = fsplat(b, 1.0);
    match op {
        UnOp::Silu => {
            let nx = b.ins().fneg(x);
            let e = exp4(b, nx);
            let den = b.ins().fadd(one, e);
            b.ins().fdiv(x, den)
        }
        _ => {
            // 0.5·x·(1 + tanh(c·(x + 0.044715·x³))), tanh(y) = 1 − 2/(e^{2y} + 1).
            let (k, c, half) = (fsplat(b, 0.044715), fsplat(b, (2.0f32 / std::f32::consts::PI).sqrt()), fsplat(b, 0.5));
            let kx = b.ins().fmul(k, x);
            let kxx = b.ins().fmul(kx, x);
            let cube = b.ins().fmul(kxx, x);
            let inner = b.ins().fadd(x, cube);
            let y = b.ins().fmul(c, inner);
            let th = tanh4(b, y);
            let hx = b.ins().fmul(half, x);
            let s = b.ins().fadd(one, th);
            b.ins().fmul(hx, s)
        }
    }
}

/// Softmax over rows of a fixed width (see the module docs).
pub(crate) struct SoftmaxKernel {
    f: CompiledFn,
    width: usize,
}

impl SoftmaxKernel {
    /// Compiles the softmax of rows of `width` floats.
    pub(crate) fn new(session: &JitSession, width: usize) -> Result<Self, JitError> {
        check_width("softmax", width)?;
        let f = compile(session, &format!("softmax_{width}"), |b, [x, _unused, out, rows]| {
            counted(b, rows, |b, r| {
                let rb = b.ins().imul_imm_s(r, (width * 4) as i64);
                let (xp, op) = (at(b, x, rb), at(b, out, rb));
                let (xp, op) = (pin(b, xp), pin(b, op));
                // Per-lane maxima, then the row's (tail lanes splatted).
                let max = b.declare_var(F32X4);
                let neg_inf = fsplat(b, f32::NEG_INFINITY);
                b.def_var(max, neg_inf);
                row_lanes(b, width, |b, ty, off| {
                    let p = at(b, xp, off);
                    let v = b.ins().load(ty, flags(), p, 0);
                    let v = if ty == F32 { b.ins().splat(F32X4, v) } else { v };
                    let m = b.use_var(max);
                    let m = b.ins().fmax(m, v);
                    b.def_var(max, m);
                });
                let m = b.use_var(max);
                let [l0, l1, l2, l3] = [0u8, 1, 2, 3].map(|l| b.ins().extractlane(m, l));
                let (m01, m23) = (b.ins().fmax(l0, l1), b.ins().fmax(l2, l3));
                let m = b.ins().fmax(m01, m23);
                let m = b.ins().splat(F32X4, m);
                let m = pin(b, m);
                // e^(x − max) into out, and the per-lane sums.
                let sum = b.declare_var(F32X4);
                let zero = fsplat(b, 0.0);
                b.def_var(sum, zero);
                row_lanes(b, width, |b, ty, off| {
                    let (p, o) = (at(b, xp, off), at(b, op, off));
                    let v = b.ins().load(ty, flags(), p, 0);
                    let v = if ty == F32 { b.ins().splat(F32X4, v) } else { v };
                    let d = b.ins().fsub(v, m);
                    let e = exp4(b, d);
                    let (e, add) = if ty == F32 {
                        let s = b.ins().extractlane(e, 0);
                        let z = b.ins().f32const(0.0);
                        let lane = b.ins().splat(F32X4, z);
                        (s, b.ins().insertlane(lane, s, 0))
                    } else {
                        (e, e)
                    };
                    b.ins().store(flags(), e, o, 0);
                    let acc = b.use_var(sum);
                    let acc = b.ins().fadd(acc, add);
                    b.def_var(sum, acc);
                });
                let sv = b.use_var(sum);
                let [l0, l1, l2, l3] = [0u8, 1, 2, 3].map(|l| b.ins().extractlane(sv, l));
                let (s01, s23) = (b.ins().fadd(l0, l1), b.ins().fadd(l2, l3));
                let total = b.ins().fadd(s01, s23);
                let one = b.ins().f32const(1.0);
                let inv = b.ins().fdiv(one, total);
                let inv = b.ins().splat(F32X4, inv);
                let inv = pin(b, inv);
                row_lanes(b, width, |b, ty, off| {
                    let o = at(b, op, off);
                    let v = b.ins().load(ty, flags(), o, 0);
                    let k = if ty == F32 { b.ins().extractlane(inv, 0) } else { inv };
                    let v = b.ins().fmul(v, k);
                    b.ins().store(flags(), v, o, 0);
                });
            });
        })?;
        Ok(Self { f, width })
    }

    /// `out` = the softmax of each row of `x` (lengths equal, a multiple of the width).
    pub(crate) fn run(&self, x: &[f32], out: &mut [f32]) -> Result<(), JitError> {
        if x.len() != out.len() || !x.len().is_multiple_of(self.width) {
            return Err(JitError::Length(format!("softmax over rows of {}: x {}, out {}", self.width, x.len(), out.len())));
        }
        // SAFETY: lengths checked above; the kernel reads and writes whole rows.
        let f: KernelFn = unsafe { std::mem::transmute(self.f.ptr()) };
        unsafe { f(x.as_ptr(), x.as_ptr(), out.as_mut_ptr(), (x.len() / self.width) as u64) };
        Ok(())
    }
}

/// Fused `act(gate) · up` over rows of a fixed width (see the module docs).
pub(crate) struct GluKernel {
    f: CompiledFn,
    width: usize,
}

impl GluKernel {
    /// Compiles `act(gate) · up` (`act` is [`UnOp::Silu`] or [`UnOp::GeluTanh`]) over rows of `width`.
    pub(crate) fn new(session: &JitSession, act: UnOp, width: usize) -> Result<Self, JitError> {
        check_width("gated activation", width)?;
        if !matches!(act, UnOp::Silu | UnOp::GeluTanh) {
            return Err(JitError::InvalidParams(format!("gated activation {act:?}: only silu and gelu(tanh) are fused")));
        }
        let f = compile(session, &format!("glu_{act:?}_{width}").to_lowercase(), |b, [g, u, out, rows]| {
            counted(b, rows, |b, r| {
                let rb = b.ins().imul_imm_s(r, (width * 4) as i64);
                let (gp, up, op) = (at(b, g, rb), at(b, u, rb), at(b, out, rb));
                row_lanes(b, width, |b, ty, off| {
                    let (pg, pu, po) = (at(b, gp, off), at(b, up, off), at(b, op, off));
                    let gv = b.ins().load(ty, flags(), pg, 0);
                    let uv = b.ins().load(ty, flags(), pu, 0);
                    let gv = if ty == F32 { b.ins().splat(F32X4, gv) } else { gv };
                    let a = act4(b, act, gv);
                    let a = if ty == F32 { b.ins().extractlane(a, 0) } else { a };
                    let o = b.ins().fmul(a, uv);
                    b.ins().store(flags(), o, po, 0);
                });
            });
        })?;
        Ok(Self { f, width })
    }

    /// Row width (the kernel's rows of `width` floats).
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// `out[..n] = act(g[..n]) · u[..n]`, `n` a multiple of the width.
    ///
    /// # Safety
    /// `g`, `u` and `out` must be valid for `n` floats (`g` and `out` may be
    /// the same buffer: each element is read before it is written at the
    /// same offset).
    pub(crate) unsafe fn call(&self, g: *const f32, u: *const f32, out: *mut f32, n: usize) {
        debug_assert!(n.is_multiple_of(self.width));
        // SAFETY: the signature the kernel was compiled with; the caller's contract.
        let f: KernelFn = unsafe { std::mem::transmute(self.f.ptr()) };
        unsafe { f(g, u, out, (n / self.width) as u64) };
    }

    /// `out = act(gate) · up` (lengths checked).
    #[cfg(test)]
    fn run(&self, gate: &[f32], up: &[f32], out: &mut [f32]) -> Result<(), JitError> {
        if gate.len() != out.len() || up.len() != out.len() || !out.len().is_multiple_of(self.width) {
            return Err(JitError::Length(format!("gated activation over rows of {}: gate {}, up {}, out {}", self.width, gate.len(), up.len(), out.len())));
        }
        // SAFETY: lengths checked above.
        unsafe { self.call(gate.as_ptr(), up.as_ptr(), out.as_mut_ptr(), out.len()) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [−2, 2).
    fn rand_vec(seed: &mut u64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect()
    }

    fn ulps(a: f32, b: f32) -> u32 {
        let key = |v: f32| {
            let i = v.to_bits() as i32;
            if i < 0 { i32::MIN.wrapping_sub(i) } else { i }
        };
        key(a).abs_diff(key(b))
    }

    const WIDTHS: [usize; 9] = [1, 3, 4, 7, 16, 33, 64, 130, 576];

    #[test]
    fn rmsnorm_matches_rust_within_4_ulp() {
        let s = JitSession::host().unwrap();
        let mut seed = 1;
        for d in WIDTHS {
            let k = RmsnormKernel::new(&s, d, 1e-5).unwrap();
            for rows in [1, 3] {
                let x = rand_vec(&mut seed, rows * d);
                let w = rand_vec(&mut seed, d);
                let (mut got, mut want) = (vec![0.0; rows * d], vec![0.0; rows * d]);
                k.run(&x, &w, &mut got).unwrap();
                super::super::ops::rmsnorm(&x, &w, &mut want, d, 1e-5);
                let worst = got.iter().zip(&want).map(|(&g, &r)| ulps(g, r)).max().unwrap();
                assert!(worst <= 4, "d={d} rows={rows}: {worst} ulp");
            }
        }
    }

    #[test]
    fn binary_is_bit_exact_for_every_op_and_broadcast() {
        let s = JitSession::host().unwrap();
        let mut seed = 7;
        for op in [BinOp::Add, BinOp::Sub, BinOp::Mul, BinOp::Div] {
            for w in WIDTHS {
                for bc in [Bcast::None, Bcast::A, Bcast::B] {
                    let k = BinaryKernel::new(&s, op, w, bc).unwrap();
                    let rows = 3;
                    let n = rows * w;
                    let a = rand_vec(&mut seed, if bc == Bcast::A { w } else { n });
                    let b = rand_vec(&mut seed, if bc == Bcast::B { w } else { n });
                    let mut got = vec![0.0; n];
                    k.run(&a, &b, &mut got).unwrap();
                    for (i, g) in got.iter().enumerate() {
                        let (x, y) = (a[i % a.len()], b[i % b.len()]);
                        let r = match op {
                            BinOp::Add => x + y,
                            BinOp::Sub => x - y,
                            BinOp::Mul => x * y,
                            BinOp::Div => x / y,
                        };
                        assert_eq!(g.to_bits(), r.to_bits(), "{op:?} w={w} {bc:?} at {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn bad_parameters_and_lengths_are_errors() {
        let s = JitSession::host().unwrap();
        assert!(matches!(RmsnormKernel::new(&s, 0, 1e-5), Err(JitError::InvalidParams(_))));
        assert!(matches!(RmsnormKernel::new(&s, 8, f32::NAN), Err(JitError::InvalidParams(_))));
        assert!(matches!(BinaryKernel::new(&s, BinOp::Add, MAX_WIDTH + 1, Bcast::None), Err(JitError::InvalidParams(_))));
        let k = BinaryKernel::new(&s, BinOp::Add, 4, Bcast::B).unwrap();
        let mut o = vec![0.0; 8];
        assert!(matches!(k.run(&[0.0; 8], &[0.0; 8], &mut o), Err(JitError::Length(_))));
        let r = RmsnormKernel::new(&s, 4, 1e-5).unwrap();
        assert!(matches!(r.run(&[0.0; 6], &[0.0; 4], &mut [0.0; 6]), Err(JitError::Length(_))));
    }

    #[test]
    fn softmax_matches_f64_on_every_width() {
        let s = JitSession::host().unwrap();
        let mut seed = 5;
        for w in WIDTHS {
            let k = SoftmaxKernel::new(&s, w).unwrap();
            let x: Vec<f32> = rand_vec(&mut seed, 3 * w).iter().map(|v| v * 20.0).collect();
            let mut got = vec![0.0; 3 * w];
            k.run(&x, &mut got).unwrap();
            for (row, out) in x.chunks_exact(w).zip(got.chunks_exact(w)) {
                let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                let z: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
                for (&v, &o) in row.iter().zip(out) {
                    let want = (v as f64 - m).exp() / z;
                    assert!((o as f64 - want).abs() <= 1e-6 * want + 1e-12, "w={w}: {o} vs {want}");
                }
            }
        }
        assert!(matches!(SoftmaxKernel::new(&s, 4).unwrap().run(&[0.0; 6], &mut [0.0; 6]), Err(JitError::Length(_))));
    }

    #[test]
    fn glu_is_bit_identical_to_the_rust_activations() {
        let s = JitSession::host().unwrap();
        let mut seed = 11;
        for (act, f) in [(UnOp::Silu, super::super::ops::silu as fn(f32) -> f32), (UnOp::GeluTanh, super::super::ops::gelu_tanh)] {
            for w in WIDTHS {
                let k = GluKernel::new(&s, act, w).unwrap();
                let n = 3 * w;
                // Gate values over [−100, 100) reach both exp clamps.
                let g: Vec<f32> = rand_vec(&mut seed, n).iter().map(|v| v * 50.0).collect();
                let u = rand_vec(&mut seed, n);
                let mut got = vec![0.0; n];
                k.run(&g, &u, &mut got).unwrap();
                let mut inplace = g.clone();
                let p = inplace.as_mut_ptr();
                // SAFETY: gate and out are the same n floats (in place); u holds n.
                unsafe { k.call(p, u.as_ptr(), p, n) };
                for i in 0..n {
                    let want = f(g[i]) * u[i];
                    assert_eq!(got[i].to_bits(), want.to_bits(), "{act:?} w={w} gate {}", g[i]);
                    assert_eq!(inplace[i].to_bits(), want.to_bits());
                }
            }
        }
        assert!(matches!(GluKernel::new(&s, UnOp::Exp, 8), Err(JitError::InvalidParams(_))));
    }

    #[test]
    fn jit_exp_relative_error_is_below_2_5e_7() {
        // e^x measured directly: a probe kernel storing exp4 of every lane.
        let s = JitSession::host().unwrap();
        let f = compile(&s, "exp_probe", |b, [x, _, out, rows]| {
            counted(b, rows, |b, r| {
                let off = b.ins().ishl_imm_u(r, 4);
                let (px, po) = (at(b, x, off), at(b, out, off));
                let v = b.ins().load(F32X4, flags(), px, 0);
                let e = exp4(b, v);
                b.ins().store(flags(), e, po, 0);
            });
        })
        .unwrap();
        let xs: Vec<f32> = (0..40_000).map(|i| -87.0 + 175.0 * i as f32 / 40_000.0).collect();
        let mut ys = vec![0.0f32; xs.len()];
        let k: KernelFn = unsafe { std::mem::transmute(f.ptr()) };
        // SAFETY: xs and ys hold rows·4 floats.
        unsafe { k(xs.as_ptr(), xs.as_ptr(), ys.as_mut_ptr(), (xs.len() / 4) as u64) };
        let worst = xs.iter().zip(&ys).map(|(&x, &y)| ((y as f64 - (x as f64).exp()) / (x as f64).exp()).abs()).fold(0.0, f64::max);
        assert!(worst < 2.5e-7, "max relative error {worst:e}");
        assert!(xs.iter().zip(&ys).all(|(&x, &y)| y.to_bits() == super::super::ops::exp(x).to_bits()));
    }

    #[test]
    fn rope_is_bit_exact_for_both_modes_and_partial_dims() {
        use super::super::ops;
        let s = JitSession::host().unwrap();
        let mut seed = 5;
        for mode in [RopeMode::Neox, RopeMode::Norm] {
            for (heads, d, dims) in [(3, 64, 64), (2, 10, 6), (1, 6, 2), (2, 36, 18), (4, 20, 16)] {
                let k = RopeKernel::new(&s, heads, d, dims, mode).unwrap();
                for (pos, seq) in [(0, 1), (7, 3)] {
                    let x = rand_vec(&mut seed, seq * heads * d);
                    let (mut cos, mut sin) = (Vec::new(), Vec::new());
                    ops::rope_table(10000.0, dims, pos, seq, &mut cos, &mut sin);
                    let (mut got, mut want) = (vec![0.0; x.len()], vec![0.0; x.len()]);
                    k.run(&x, &cos, &sin, &mut got).unwrap();
                    ops::rope(&x, &mut want, seq, heads, d, dims, mode, &cos, &sin);
                    assert!(got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits()), "{mode:?} {heads}x{d} dims {dims} seq {seq}");
                }
            }
        }
        assert!(matches!(RopeKernel::new(&s, 2, 8, 5, RopeMode::Neox), Err(JitError::InvalidParams(_))));
        let k = RopeKernel::new(&s, 1, 8, 8, RopeMode::Norm).unwrap();
        assert!(matches!(k.run(&[0.0; 16], &[0.0; 4], &[0.0; 8], &mut [0.0; 16]), Err(JitError::Length(_))));
    }
}
