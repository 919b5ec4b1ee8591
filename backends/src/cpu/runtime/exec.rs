//! Executing a plan: input binding, buffer growth, and one dispatch per step.
//!
//! Buffers of `[seq, ...]` values grow only when a call has more rows than
//! any before (the first prefill); decode calls allocate nothing. GEMVs are
//! split by weight rows over the pool when they are large enough
//! (`par_min_bytes`); attention by tiles of query rows (see `attention`);
//! activation quantisation and gated activations by rows when large.

use std::time::Instant;

use super::{attention, ops};
use super::plan::{BufRef, GemvInput, ParamKind, Step, UnOp};
use super::{CpuRuntime, Input, RuntimeError};

use super::{invalid, SendPtr};

/// Elementwise steps (activation quantisation, gated activations) with at
/// least this many elements are split over the pool's threads.
const PAR_MIN_ELEMS: usize = 1 << 15;

pub(super) fn step_name(s: &Step) -> &'static str {
    match s {
        Step::Gather { .. } => "gather",
        Step::Quant { .. } => "quantize-act",
        Step::Gemv { .. } => "gemv/gemm (jit)",
        Step::LutPrecompute { .. } => "lut tables",
        Step::LutGemm { .. } => "lut gemv/gemm (jit)",
        Step::ShiftAdd { .. } => "shift-add gemm",
        Step::Sparse { .. } => "n:m sparse gemv/gemm (jit)",
        Step::Rmsnorm { .. } => "rmsnorm (jit)",
        Step::Binary { .. } => "elementwise (jit)",
        Step::Unary { .. } => "activation",
        Step::Glu { .. } => "gated activation (jit)",
        Step::Softmax { .. } => "softmax",
        Step::Rope { .. } => "rope (jit)",
        Step::CacheWrite { .. } => "cache_write",
        Step::Attention { .. } => "attention",
    }
}

impl CpuRuntime {
    pub(super) fn len(&self, b: BufRef) -> usize {
        if b.seq { self.seq * b.row } else { b.row }
    }

    /// Runs the function on `inputs` (one per non-state parameter, in order).
    /// With `last_only`, outputs that allow it (the logits) are computed for
    /// the last row only.
    pub fn run(&mut self, inputs: &[Input<'_>], last_only: bool) -> Result<(), RuntimeError> {
        self.run_tail(inputs, last_only.then_some(1))
    }

    /// [`CpuRuntime::run`], with outputs that allow it (the logits) computed
    /// for the last `tail` rows only (`None`: every row; `tail` is clamped to
    /// `1..=seq`).
    pub fn run_tail(&mut self, inputs: &[Input<'_>], tail: Option<usize>) -> Result<(), RuntimeError> {
        let n_inputs = self.plan.param_input.iter().flatten().count();
        if inputs.len() != n_inputs {
            return Err(invalid(format!("expected {n_inputs} inputs, got {}", inputs.len())));
        }
        // Bind seq and check every input.
        let mut seq: Option<usize> = None;
        let mut bind = |n: usize| -> Result<(), RuntimeError> {
            match seq {
                Some(s) if s != n => Err(invalid(format!("seq is {s} but an input has {n} rows"))),
                _ => {
                    seq = Some(n);
                    Ok(())
                }
            }
        };
        for (p, kind) in self.plan.params.iter().enumerate() {
            let Some(i) = self.plan.param_input[p] else { continue };
            match (kind, inputs[i]) {
                (ParamKind::Tokens, Input::I32(ids)) => bind(ids.len())?,
                (ParamKind::Scalar, Input::Scalar(_)) => {}
                (ParamKind::F32 { seq: true, row }, Input::F32(x)) if *row > 0 && x.len() % row == 0 => bind(x.len() / row)?,
                (ParamKind::F32 { seq: false, row }, Input::F32(x)) if x.len() == *row => {}
                (k, got) => return Err(invalid(format!("input {i}: expected {k:?}, got {got:?}"))),
            }
        }
        let seq = seq.unwrap_or(1);
        if seq == 0 {
            return Err(invalid("empty input (seq = 0)"));
        }
        let pos = match self.plan.pos_input.map(|i| inputs[i]) {
            Some(Input::Scalar(p)) if p >= 0 => p as usize,
            Some(Input::Scalar(p)) => return Err(invalid(format!("position {p} is negative"))),
            _ => 0,
        };
        self.seq = seq;
        self.tail = tail.map(|t| t.clamp(1, seq));
        if seq > self.rows_cap {
            for (i, (b, &(is_seq, row))) in self.bufs.iter_mut().zip(&self.plan.buf_shapes).enumerate() {
                // Last-row-capable outputs (the logits) grow on demand in
                // their GEMV step: generation never needs seq × vocab floats.
                if is_seq && !self.plan.outputs.iter().any(|o| o.last_only_ok && o.buf.buf == i) {
                    b.resize(seq * row, 0.0);
                }
            }
            self.rows_cap = seq;
        }
        // Copy f32 inputs.
        for (p, kind) in self.plan.params.iter().enumerate() {
            let Some(i) = self.plan.param_input[p] else { continue };
            if let (ParamKind::F32 { .. }, Input::F32(x)) = (kind, inputs[i]) {
                // The parameter's buffer is the p-th pinned one planned for it.
                let b = self.param_buf(p).ok_or_else(|| invalid("internal: parameter buffer"))?;
                self.bufs[b][..x.len()].copy_from_slice(x);
            }
        }
        for (t, &(base, dims)) in self.plan.rope_tables.iter().enumerate() {
            match &self.batch {
                // One position per row: the rows' tables one after another.
                Some(b) => {
                    let (mut c, mut s) = (Vec::new(), Vec::new());
                    self.rope_cos[t].clear();
                    self.rope_sin[t].clear();
                    for &p in &b.pos {
                        ops::rope_table(base, dims, p, 1, &mut c, &mut s);
                        self.rope_cos[t].extend_from_slice(&c);
                        self.rope_sin[t].extend_from_slice(&s);
                    }
                }
                None => ops::rope_table(base, dims, pos, seq, &mut self.rope_cos[t], &mut self.rope_sin[t]),
            }
        }
        let steps = std::mem::take(&mut self.plan.steps);
        let mut result = Ok(());
        for s in &steps {
            let t0 = self.profile.is_some().then(Instant::now);
            if let Err(e) = self.step(s, inputs, pos) {
                result = Err(e);
                break;
            }
            if let (Some(t0), Some(prof)) = (t0, self.profile.as_mut()) {
                let name = step_name(s);
                match prof.iter_mut().find(|(n, _)| *n == name) {
                    Some(e) => e.1 += t0.elapsed(),
                    None => prof.push((name, t0.elapsed())),
                }
            }
        }
        self.plan.steps = steps;
        result
    }

    fn param_buf(&self, p: usize) -> Option<usize> {
        self.plan.param_bufs.get(p).copied().flatten()
    }

    fn step(&mut self, s: &Step, inputs: &[Input<'_>], pos: usize) -> Result<(), RuntimeError> {
        let seq = self.seq;
        match s {
            Step::Gather { table, enc, elem, vocab, d, ids, out } => {
                let Input::I32(ids) = inputs[*ids] else { return Err(invalid("gather ids")) };
                let bytes: &[u8] = &self.plan.weights[*table];
                let rb = match enc {
                    Some(e) => e.storage(&[*d as u64]).map_err(invalid)? as usize,
                    None => d * elem.storage_bytes(),
                };
                let o = &mut self.bufs[out.buf];
                for (i, &id) in ids.iter().enumerate() {
                    let id = usize::try_from(id).ok().filter(|&x| x < *vocab).ok_or_else(|| invalid(format!("token id {id} is outside the vocabulary (0..{vocab})")))?;
                    let src = &bytes[id * rb..(id + 1) * rb];
                    let dst = &mut o[i * d..(i + 1) * d];
                    match enc {
                        Some(e) => flexc_ir::quant::decode(*e, src, dst).map_err(invalid)?,
                        None => super::plan::decode_plain(src, *elem, dst).map_err(invalid)?,
                    }
                }
            }
            Step::Quant { src, q, cols, last_only_ok } => {
                let n = self.len(*src);
                let (x, rows) = if let Some(t) = self.tail.filter(|_| *last_only_ok && src.seq) {
                    (&self.bufs[src.buf][n - t * src.row..n], t * src.row / cols)
                } else {
                    (&self.bufs[src.buf][..n], n / cols)
                };
                let chunks = if x.len() >= PAR_MIN_ELEMS { self.pool.threads() } else { 1 };
                let pool = &self.pool;
                self.qacts[*q].quantize_into_chunks(x, rows, *cols, chunks, &|n, job| pool.run(n, job)).map_err(invalid)?;
            }
            Step::Gemv { kernel, w, x, out, last_only_ok, m } => {
                let wb: &[u8] = &self.plan.weights[*w];
                if wb.len() != kernel.weight_bytes() {
                    return Err(invalid("weight size does not match its kernel"));
                }
                let (rows, cols) = (kernel.rows(), kernel.cols());
                let tail = self.tail.filter(|_| *last_only_ok);
                let (xp, stride, batch): (*const u8, usize, usize) = match x {
                    GemvInput::Q(q) => {
                        let a = &self.qacts[*q];
                        (a.bytes().as_ptr(), a.row_stride(), a.rows())
                    }
                    GemvInput::F32(b) => {
                        let n = self.len(*b);
                        let batch = tail.unwrap_or(n / cols);
                        let start = n - batch * cols;
                        (self.bufs[b.buf][start..].as_ptr().cast(), cols * 4, batch)
                    }
                };
                let need = batch * rows;
                let y = &mut self.bufs[out.buf];
                if *last_only_ok && y.len() < need {
                    y.resize(need, 0.0);
                }
                if y.len() < need || batch == 0 {
                    return Err(invalid("internal: GEMV output buffer too small"));
                }
                let threads = if wb.len() * batch >= self.opts.par_min_bytes { self.pool.threads() } else { 1 };
                // SAFETY: lengths checked above.
                unsafe { gemv_split(&self.pool, kernel, wb.as_ptr(), xp, stride, batch, y.as_mut_ptr(), (threads, *m)) }?;
            }
            Step::LutPrecompute { x, slot, cols } => self.lut_precompute(*x, *slot, *cols)?,
            Step::LutGemm { kernel, w, slot, out, m_blocks } => self.lut_gemm(kernel, *w, *slot, *out, *m_blocks)?,
            Step::ShiftAdd { kernel, w, x, out, m_blocks } => self.shiftadd(kernel, *w, *x, *out, *m_blocks)?,
            Step::Sparse { kernel, w, x, out } => self.sparse(kernel, *w, *x, *out)?,
            Step::Rmsnorm { kernel, x, w, out, d } => {
                let n = self.len(*x);
                let mut o = std::mem::take(&mut self.bufs[out.buf]);
                let r = kernel.run(&self.bufs[x.buf][..n], &self.bufs[w.buf][..*d], &mut o[..n]);
                self.put(*out, o);
                r?;
            }
            Step::Binary { kernel, a, b, out } => {
                let (na, nb, no) = (self.len(*a), self.len(*b), self.len(*out));
                let mut o = std::mem::take(&mut self.bufs[out.buf]);
                let r = kernel.run(&self.bufs[a.buf][..na], &self.bufs[b.buf][..nb], &mut o[..no]);
                self.put(*out, o);
                r?;
            }
            Step::Glu { kernel, gate, up, out } => {
                let n = self.len(*out);
                let width = kernel.width();
                if self.bufs[up.buf].len() < n || self.bufs[gate.buf].len() < n || !n.is_multiple_of(width) {
                    return Err(invalid("gated activation operand sizes"));
                }
                let mut o = std::mem::take(&mut self.bufs[out.buf]);
                // In place when gate and out are one buffer: each element is
                // read before it is written at the same offset.
                let g = SendPtr(if gate.buf == out.buf { o.as_ptr() } else { self.bufs[gate.buf].as_ptr() });
                let (u, op) = (SendPtr(self.bufs[up.buf].as_ptr()), SendPtr(o.as_mut_ptr()));
                let rows = n / width;
                let chunks = if n >= PAR_MIN_ELEMS { self.pool.threads().min(rows) } else { 1 };
                let r = self.pool.run(chunks, &|c| {
                    let (g, u, op) = (&g, &u, &op);
                    let at = rows * c / chunks * width;
                    let len = rows * (c + 1) / chunks * width - at;
                    // SAFETY: sizes checked above; chunks write disjoint rows.
                    unsafe { kernel.call(g.0.add(at), u.0.add(at), op.0.add(at), len) };
                });
                self.put(*out, o);
                r.map_err(invalid)?;
            }
            Step::Unary { op, x, out } => {
                let n = self.len(*x);
                let mut o = std::mem::take(&mut self.bufs[out.buf]);
                let xs = &self.bufs[x.buf][..n];
                let f: fn(f32) -> f32 = match op {
                    UnOp::Neg => |v| -v,
                    UnOp::Exp => ops::exp,
                    UnOp::Tanh => ops::tanh,
                    UnOp::Relu => |v| v.max(0.0),
                    UnOp::Silu => ops::silu,
                    UnOp::GeluTanh => ops::gelu_tanh,
                    UnOp::GeluErf => |v| (0.5 * v as f64 * (1.0 + crate::reference::kernels::erf(v as f64 / std::f64::consts::SQRT_2))) as f32,
                };
                for (o, &v) in o[..n].iter_mut().zip(xs) {
                    *o = f(v);
                }
                self.put(*out, o);
            }
            Step::Softmax { kernel, x, out } => {
                let len = self.len(*x);
                let mut o = std::mem::take(&mut self.bufs[out.buf]);
                let r = kernel.run(&self.bufs[x.buf][..len], &mut o[..len]);
                self.put(*out, o);
                r?;
            }
            Step::Rope { kernel, x, out, table } => {
                let n = self.len(*x);
                let mut o = std::mem::take(&mut self.bufs[out.buf]);
                let r = kernel.run(&self.bufs[x.buf][..n], &self.rope_cos[*table], &self.rope_sin[*table], &mut o[..n]);
                self.put(*out, o);
                r?;
            }
            Step::CacheWrite { cache, x, cap } if self.batch.is_some() => self.batch_cache_write(*cache, *x, *cap)?,
            Step::Attention { q, k, v, out, shape, kernels } if self.batch.is_some() && !k.seq => {
                self.batch_attention(*q, *k, *v, *out, shape, kernels.as_deref())?
            }
            Step::CacheWrite { cache, x, cap } => {
                if pos + seq > *cap {
                    return Err(invalid(format!("cache write of {seq} rows at position {pos} overflows the capacity {cap}")));
                }
                let row = cache.row / cap;
                let n = self.len(*x);
                let mut c = std::mem::take(&mut self.bufs[cache.buf]);
                c[pos * row..pos * row + n].copy_from_slice(&self.bufs[x.buf][..n]);
                self.put(*cache, c);
            }
            Step::Attention { q, k, v, out, shape, kernels } => {
                let mut a = *shape;
                if k.seq {
                    a.t = seq;
                }
                if k.seq && pos != 0 {
                    return Err(invalid("attention over non-cache keys needs pos = 0"));
                }
                let items = seq * a.hq;
                let (nq, nk, nv) = (self.len(*q), self.len(*k), self.len(*v));
                if nq < items * a.d || nk < a.t * a.hk * a.d || nv < a.t * a.hk * a.dv || self.len(*out) < items * a.dv {
                    return Err(invalid("attention operand sizes"));
                }
                let mut o = std::mem::take(&mut self.bufs[out.buf]);
                let res = attend(&self.pool, &mut self.scratch, &a, kernels.as_deref(), (&self.bufs[q.buf][..nq], &self.bufs[k.buf][..nk], &self.bufs[v.buf][..nv]), &mut o, pos, seq);
                self.put(*out, o);
                res.map_err(invalid)?;
            }
        }
        Ok(())
    }

    fn put(&mut self, out: BufRef, o: Vec<f32>) {
        self.bufs[out.buf] = o;
    }
}

/// Attention of `seq` query rows starting at position `pos` over keys and
/// values `kv.1`, `kv.2` (queries `kv.0`), into `o`, split into tiles over the pool.
#[allow(clippy::too_many_arguments)]
pub(super) fn attend(pool: &super::pool::Pool, scratch: &mut [Vec<f32>], a: &attention::AttnShape, kernels: Option<&super::jitattn::AttnKernels>, kv: (&[f32], &[f32], &[f32]), o: &mut [f32], pos: usize, seq: usize) -> Result<(), String> {
    let (qs, ks, vs) = kv;
    let a = *a;
    let items = seq * a.hq;
    let tiles = attention::Tiles::new(&a, seq, pool.threads());
    for s in scratch.iter_mut() {
        if s.len() < tiles.scratch_len(&a) {
            s.resize(tiles.scratch_len(&a), 0.0);
        }
    }
    let path = attention::AttnPath::choose(&a, kernels);
    let op = SendPtr(o.as_mut_ptr());
    let sp = SendPtr(scratch.as_mut_ptr());
    let par = if items * a.t * a.d >= 1 << 14 { scratch.len().min(tiles.count()) } else { 1 };
    let work = move |chunk: usize| {
        let (op, sp) = (op, sp);
        let call = attention::AttnCall { q: qs, k: ks, v: vs, out: op.0, pos, seq, a: &a };
        // SAFETY: each chunk uses its own scratch vector (index
        // chunk < scratch.len()) and computes the disjoint tiles
        // chunk, chunk + par, ... (interleaved: causal tiles grow
        // with the position, so this balances the chunks).
        unsafe {
            let scratch = &mut *sp.0.add(chunk);
            for t in (chunk..tiles.count()).step_by(par) {
                attention::attention_tile(&call, &tiles, t, path, scratch);
            }
        }
    };
    if par == 1 {
        work(0);
        Ok(())
    } else {
        pool.run(par, &work)
    }
}

/// Runs `batch` activation rows (`stride` bytes apart) through `kernel`,
/// splitting the weight rows over `threads` pool threads: in items of `m`
/// rows (`kern.tile`) when `m > 0`, else two per thread.
///
/// # Safety
/// `w` holds `kernel.weight_bytes()` bytes, `x` `batch` rows in the kernel's
/// activation layout, `y` `batch · kernel.rows()` writable floats.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemv_split(pool: &super::Pool, kernel: &crate::cpu::GemvKernel, w: *const u8, x: *const u8, stride: usize, batch: usize, y: *mut f32, (threads, m): (usize, usize)) -> Result<(), RuntimeError> {
    let rows = kernel.rows();
    let threads = threads.clamp(1, pool.threads().min(rows));
    let (wp, xp, yp) = (SendPtr(w), SendPtr(x), SendPtr(y));
    let chunks = if m > 0 { rows.div_ceil(m) } else if threads == 1 { 1 } else { (threads * 2).min(rows) };
    let work = move |ci: usize| {
        let (w, x, y) = (wp, xp, yp);
        // Default split: chunk bounds on whole row groups (the last takes the rest).
        let g = kernel.row_group();
        let at = |c: usize| if c == chunks { rows } else { rows / g * c / chunks * g };
        let (rb, re) = if m > 0 { (ci * m, ((ci + 1) * m).min(rows)) } else { (at(ci), at(ci + 1)) };
        // SAFETY: the caller's contract; row ranges are disjoint across chunks.
        unsafe { kernel.run_batch_rows(w.0, x.0, stride, batch, y.0, rb, re) };
    };
    if threads == 1 || chunks == 1 {
        (0..chunks).for_each(work);
        Ok(())
    } else {
        pool.run(chunks, &work).map_err(invalid)
    }
}
