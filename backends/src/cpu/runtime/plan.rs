//! Compiling a verified IR function into a flat list of [`Step`]s over
//! planned buffers.
//!
//! Every value is classified once: an f32 activation lives in an arena buffer
//! (`[seq, row]` or fixed); weights stay as their (memory-mapped) bytes; a
//! `quant.dequantize` whose every use is the right operand of a
//! `tensor.matmul {transpose_b}` / `quant.mpgemm` is *fused* (never
//! materialised) and the matmul becomes a JIT GEMV/GEMM on the encoded bytes;
//! reshapes are views of their input's buffer; `tensor.cache_write` writes in
//! place into the runtime-owned state buffer of its cache parameter.
//! Buffers are reused by liveness (exact (seq, row) size class). The `kern.`
//! ops run the primitive they name ([`kern`]). Anything else is a
//! [`RuntimeError::Unsupported`] naming the op.

mod kern;

use std::collections::HashMap;
use std::sync::Arc;

use flexc_ir::ops::{GeluApprox, RopeMode};
use flexc_ir::quant::Primitive;
use flexc_ir::types::{Dim, ElemType};
use flexc_ir::weights::WeightBytes;
use flexc_ir::{Encoding, Func, Module, OpAttrs, Value, ValueDef};

use super::super::format::{ActKind, WeightFormat};
use super::super::gemv::GemvKernel;
use super::super::jit::JitSession;
use super::super::lut::{LutKernel, LutWeights};
use super::super::shiftadd::{ShiftAddKernel, ShiftAddWeights};
use super::super::sparse::{SparseKernel, SparseWeights};
use super::jitops::{Bcast, BinaryKernel, GluKernel, RmsnormKernel, RopeKernel, SoftmaxKernel};
use super::attention::{AttnPath, AttnShape};
use super::jitattn::AttnKernels;
use super::{RuntimeError, RuntimeOptions};

/// Elementwise binary ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// Elementwise unary ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum UnOp {
    Neg,
    Exp,
    Tanh,
    Relu,
    Silu,
    GeluTanh,
    GeluErf,
}

/// A buffer operand: arena index, whether its leading dim is `seq`, and the
/// elements per leading row (the whole size when fixed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BufRef {
    pub buf: usize,
    pub seq: bool,
    pub row: usize,
}

/// One executable step.
pub(crate) enum Step {
    Gather { table: usize, enc: Option<Encoding>, elem: ElemType, vocab: usize, d: usize, ids: usize, out: BufRef },
    Quant { src: BufRef, q: usize, cols: usize, last_only_ok: bool },
    /// `m`: weight rows per parallel work item (`kern.tile`), 0 for the default split.
    Gemv { kernel: Arc<GemvKernel>, w: usize, x: GemvInput, out: BufRef, last_only_ok: bool, m: usize },
    /// `kern.lut_precompute`: the LUT tables of every row of `x` (rows of
    /// `cols`) into `lut_slots[slot]`, read by the LUT GEMMs after it.
    LutPrecompute { x: BufRef, slot: usize, cols: usize },
    /// `kern.lut_gemm`: the T-MAC kernel over `lut_weights[w]` for every
    /// table row of `slot`; `m_blocks`: row blocks per work item (0: default split).
    LutGemm { kernel: Arc<LutKernel>, w: usize, slot: usize, out: BufRef, m_blocks: usize },
    /// `kern.shiftadd_gemm`: the μ = 8 shift-add kernel over
    /// `sa_weights[w]` (packed from the `#bcq` bytes at compile time);
    /// `m_blocks`: row blocks per work item (0: default split).
    ShiftAdd { kernel: Arc<ShiftAddKernel>, w: usize, x: BufRef, out: BufRef, m_blocks: usize },
    /// `kern.sparse_gemm`: the N:M kernel over `sparse_weights[w]` (packed
    /// from the compressed `#nm` bytes at compile time).
    Sparse { kernel: Arc<SparseKernel>, w: usize, x: BufRef, out: BufRef },
    Rmsnorm { kernel: Arc<RmsnormKernel>, x: BufRef, w: BufRef, out: BufRef, d: usize },
    Binary { kernel: Arc<BinaryKernel>, a: BufRef, b: BufRef, out: BufRef },
    /// `act(gate) · up` fused (a silu/gelu whose only use is this product);
    /// `out` may be `gate`'s buffer (in place).
    Glu { kernel: Arc<GluKernel>, gate: BufRef, up: BufRef, out: BufRef },
    Unary { op: UnOp, x: BufRef, out: BufRef },
    Softmax { kernel: Arc<SoftmaxKernel>, x: BufRef, out: BufRef },
    Rope { kernel: Arc<RopeKernel>, x: BufRef, out: BufRef, table: usize },
    CacheWrite { cache: BufRef, x: BufRef, cap: usize },
    Attention { q: BufRef, k: BufRef, v: BufRef, out: BufRef, shape: AttnShape, kernels: Option<Arc<AttnKernels>> },
}

/// The activation a GEMV reads.
#[derive(Clone, Copy)]
pub(crate) enum GemvInput {
    /// Quantised activations in `qacts[q]`.
    Q(usize),
    /// f32 activations.
    F32(BufRef),
}

/// How a function parameter is fed.
#[derive(Clone, Debug)]
pub enum ParamKind {
    /// Token ids `i32[seq]` (binds `seq`).
    Tokens,
    /// A scalar `i32[]` (the position).
    Scalar,
    /// An f32 input `[seq, ...]` or fixed.
    F32 { seq: bool, row: usize },
    /// Runtime-owned state (a KV cache): not passed on calls.
    State { buf: usize },
}

/// Where a result is read from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OutRef {
    pub buf: BufRef,
    /// Produced by a step that may compute only the last row.
    pub last_only_ok: bool,
}

/// The compiled plan.
pub(crate) struct Plan {
    pub steps: Vec<Step>,
    /// Elements per row and seq-ness of each arena buffer.
    pub buf_shapes: Vec<(bool, usize)>,
    /// Initial contents of constant buffers.
    pub consts: Vec<(usize, Vec<f32>)>,
    pub weights: Vec<WeightBytes>,
    /// Low-bit weights packed for the LUT kernel at compile time.
    pub lut_weights: Vec<LutWeights>,
    /// What each of `lut_weights` was packed for (`None`: a constant, not a
    /// named weight), the key [`crate::cpu::prepack`] stores it under.
    pub lut_keys: Vec<Option<crate::cpu::prepack::LutKey>>,
    /// The activation group of each LUT table slot.
    pub lut_slots: Vec<usize>,
    /// `#nm` weights repacked for the N:M sparse kernel at compile time.
    pub sparse_weights: Vec<SparseWeights>,
    /// `#bcq` weights packed for the shift-add kernel at compile time.
    pub sa_weights: Vec<ShiftAddWeights>,
    pub qact_kinds: Vec<ActKind>,
    pub params: Vec<ParamKind>,
    /// The input index of each parameter that is passed on calls.
    pub param_input: Vec<Option<usize>>,
    /// The arena buffer of each f32 parameter.
    pub param_bufs: Vec<Option<usize>>,
    pub outputs: Vec<OutRef>,
    /// Distinct (base, dims) RoPE tables.
    pub rope_tables: Vec<(f64, usize)>,
    /// Which input index holds the position, if any.
    pub pos_input: Option<usize>,
    pub kernels: usize,
}

impl Plan {
    /// Bytes of weights one decoded token reads: every GEMM's packed weight
    /// in the layout its kernel streams (LUT padding planes and scale records
    /// included), one row of each gathered table, and the f32 constants
    /// (norm weights). Divided by the parameter count this is the
    /// bits-per-weight figure llama.cpp's frontier is quoted in.
    pub fn weight_bytes_per_token(&self) -> u64 {
        let gemms: usize = self
            .steps
            .iter()
            .map(|s| match s {
                Step::Gemv { w, .. } => self.weights[*w].len(),
                Step::LutGemm { w, .. } => self.lut_weights[*w].bytes().len(),
                Step::ShiftAdd { w, .. } => self.sa_weights[*w].bytes().len(),
                Step::Sparse { w, .. } => self.sparse_weights[*w].bytes().len(),
                Step::Gather { table, vocab, .. } => self.weights[*table].len() / (*vocab).max(1),
                _ => 0,
            })
            .sum();
        let consts: usize = self.consts.iter().map(|(_, v)| 4 * v.len()).sum();
        (gemms + consts) as u64
    }
}

#[derive(Clone)]
enum VK {
    Buf(BufRef),
    Tokens(usize),
    Scalar(usize),
    /// A weight table entry (raw bytes, `weights[i]`) of this type.
    Weight(usize),
    /// A dequantize fused into its matmul users.
    Fused(usize),
    /// LUT tables of `kern.lut_precompute` in `lut_slots[slot]`, over rows of `cols`.
    Tables { slot: usize, cols: usize },
}

struct Builder<'m> {
    m: &'m Module,
    f: &'m Func,
    session: &'m JitSession,
    opts: &'m RuntimeOptions,
    vk: HashMap<Value, VK>,
    plan: Plan,
    kernels: HashMap<(WeightFormat, usize, usize), Arc<GemvKernel>>,
    /// JIT rmsnorm kernels by (d, eps bits).
    rmsnorms: HashMap<(usize, u32), Arc<RmsnormKernel>>,
    /// JIT elementwise kernels by (op, row width, broadcast).
    binaries: HashMap<(BinOp, usize, Bcast), Arc<BinaryKernel>>,
    /// JIT fused gated activations by (activation, row width).
    glus: HashMap<(UnOp, usize), Arc<GluKernel>>,
    softmaxes: HashMap<usize, Arc<SoftmaxKernel>>,
    /// Attention kernels by (hk, d, dv, scale bits, soft-cap bits).
    attns: HashMap<(usize, usize, usize, u32, u32), Arc<AttnKernels>>,
    /// JIT rope kernels by (heads, head size, rotated dims, NeoX mode).
    ropes: HashMap<(usize, usize, usize, bool), Arc<RopeKernel>>,
    /// Free buffers by (seq, row).
    free: HashMap<(bool, usize), Vec<usize>>,
    refcount: Vec<usize>,
    pinned: Vec<bool>,
    /// Materialised weights/constants as const buffers.
    const_of: HashMap<Value, BufRef>,
    /// Quantised activation buffer per (kind, cols) and the value it holds.
    qcur: HashMap<(ActKind, usize), (usize, Value)>,
    weight_idx: HashMap<flexc_ir::WeightId, usize>,
    uses: HashMap<Value, Vec<(usize, usize)>>,
    logits_value: Option<Value>,
    /// `weights` index of each weight decoded to f32 at compile time, by raw index.
    decoded: HashMap<usize, usize>,
    /// `kern.tile` (m, k) of a weight value.
    tile_of: HashMap<Value, (usize, usize)>,
    /// LUT-packed weights by (raw weight index, act_group, k_tile).
    lut_packed: HashMap<(usize, usize, usize), usize>,
    /// Compiled LUT kernels (one per distinct spec).
    lut_kernels: Vec<Arc<LutKernel>>,
}

fn unsupported(op: &str, why: impl Into<String>) -> RuntimeError {
    RuntimeError::Unsupported { op: op.to_string(), why: why.into() }
}

/// (seq, row) of a type: leading `seq` symbol or all fixed.
fn layout(ty: &flexc_ir::TensorType, op: &str) -> Result<(bool, usize), RuntimeError> {
    let mut seq = false;
    let mut row = 1usize;
    for (i, d) in ty.shape.iter().enumerate() {
        match d {
            Dim::Fixed(n) => row = row.checked_mul(*n as usize).ok_or_else(|| unsupported(op, "tensor too large"))?,
            Dim::Sym(_) if i == 0 => seq = true,
            Dim::Sym(s) => return Err(unsupported(op, format!("symbolic dimension {s} other than the leading one in {ty}"))),
        }
    }
    Ok((seq, row))
}

fn fixed_dims(ty: &flexc_ir::TensorType) -> Vec<usize> {
    ty.shape.iter().map(|d| d.fixed().unwrap_or(0) as usize).collect()
}

impl<'m> Builder<'m> {
    fn alloc(&mut self, seq: bool, row: usize) -> BufRef {
        if let Some(b) = self.free.get_mut(&(seq, row)).and_then(Vec::pop) {
            return BufRef { buf: b, seq, row };
        }
        self.plan.buf_shapes.push((seq, row));
        self.refcount.push(0);
        self.pinned.push(false);
        BufRef { buf: self.plan.buf_shapes.len() - 1, seq, row }
    }

    fn pinned_buf(&mut self, seq: bool, row: usize) -> BufRef {
        let b = self.alloc(seq, row);
        self.pinned[b.buf] = true;
        b
    }

    fn name(&self, v: Value) -> String {
        match self.f.dfg.values[v].def {
            ValueDef::Param(i) => format!("parameter {i}"),
            ValueDef::Result(op) => format!("%{} = {}", self.f.dfg.values[v].name.clone().unwrap_or_else(|| v.to_string().trim_start_matches('%').to_string()), self.f.dfg.ops[op].attrs.opcode().mnemonic()),
        }
    }

    fn weight_bytes(&mut self, id: flexc_ir::WeightId) -> Result<usize, RuntimeError> {
        if let Some(&i) = self.weight_idx.get(&id) {
            return Ok(i);
        }
        let b = self.m.weights.bytes(id).map_err(|e| RuntimeError::Invalid(e.to_string()))?;
        self.plan.weights.push(b);
        let i = self.plan.weights.len() - 1;
        self.weight_idx.insert(id, i);
        Ok(i)
    }

    /// The value as an f32 buffer, materialising weights/constants once.
    fn buf(&mut self, v: Value, op: &str) -> Result<BufRef, RuntimeError> {
        match self.vk.get(&v).cloned() {
            Some(VK::Buf(b)) => Ok(b),
            Some(VK::Weight(w)) | Some(VK::Fused(w)) => {
                if let Some(b) = self.const_of.get(&v) {
                    return Ok(*b);
                }
                let ty = self.f.dfg.ty(v);
                let src_ty = match self.vk.get(&v) {
                    Some(VK::Fused(_)) => self.f.dfg.ty(self.f.dfg.ops[self.f.dfg.def_op(v).ok_or_else(|| unsupported(op, "fused value without op"))?].args[0]).clone(),
                    _ => ty.clone(),
                };
                let (seq, row) = layout(ty, op)?;
                if seq {
                    return Err(unsupported(op, "weight with a symbolic shape"));
                }
                let vals = decode_all(&self.plan.weights[w], &src_ty, row).map_err(|e| unsupported(op, e))?;
                let b = self.pinned_buf(false, row);
                self.plan.consts.push((b.buf, vals));
                self.const_of.insert(v, b);
                Ok(b)
            }
            Some(VK::Tables { .. }) => Err(unsupported(op, format!("{} holds LUT tables, which only kern.lut_gemm reads on the CPU", self.name(v)))),
            _ => Err(unsupported(op, format!("operand {} is not an f32 tensor the CPU runtime can hold", self.name(v)))),
        }
    }

    fn run(&mut self) -> Result<(), RuntimeError> {
        let f = self.f;
        // Uses of every value: (layout index, operand index).
        for (i, &op) in f.layout.iter().enumerate() {
            for (j, &a) in f.dfg.ops[op].args.iter().enumerate() {
                self.uses.entry(a).or_default().push((i, j));
            }
        }
        let mut last_use: HashMap<Value, usize> = HashMap::new();
        for (v, us) in &self.uses {
            last_use.insert(*v, us.iter().map(|u| u.0).max().unwrap_or(0));
        }
        let returned: std::collections::HashSet<Value> = f.returns.iter().copied().collect();
        self.logits_value = f.returns.first().copied();

        // Parameters.
        let mut n_inputs = 0;
        for (pi, &p) in f.params.iter().enumerate() {
            let ty = f.dfg.ty(p);
            let what = format!("parameter {pi}");
            if ty.encoding.is_some() {
                return Err(unsupported(&what, "encoded parameters"));
            }
            let kind = match ty.elem {
                ElemType::I32 if ty.rank() == 0 => {
                    self.vk.insert(p, VK::Scalar(n_inputs));
                    ParamKind::Scalar
                }
                ElemType::I32 if ty.rank() == 1 && matches!(ty.shape[0], Dim::Sym(_)) => {
                    self.vk.insert(p, VK::Tokens(n_inputs));
                    ParamKind::Tokens
                }
                ElemType::F32 => {
                    let (seq, row) = layout(ty, &what)?;
                    let is_cache = self.uses.get(&p).is_some_and(|us| us.iter().all(|&(i, j)| j == 0 && matches!(f.dfg.ops[f.layout[i]].attrs, OpAttrs::CacheWrite(_))) && !us.is_empty());
                    let b = self.pinned_buf(seq, row);
                    self.vk.insert(p, VK::Buf(b));
                    if is_cache && !seq {
                        ParamKind::State { buf: b.buf }
                    } else {
                        ParamKind::F32 { seq, row }
                    }
                }
                e => return Err(unsupported(&what, format!("parameter type {e}{:?}", fixed_dims(ty)))),
            };
            self.plan.param_bufs.push(match self.vk.get(&p) {
                Some(VK::Buf(b)) => Some(b.buf),
                _ => None,
            });
            if matches!(kind, ParamKind::State { .. }) {
                self.plan.param_input.push(None);
            } else {
                if matches!(kind, ParamKind::Scalar) && self.plan.pos_input.is_none() {
                    self.plan.pos_input = Some(n_inputs);
                }
                self.plan.param_input.push(Some(n_inputs));
                n_inputs += 1;
            }
            self.plan.params.push(kind);
        }
        // Reference counts on buffers for liveness.
        for (i, &op) in f.layout.iter().enumerate() {
            let data = &f.dfg.ops[op];
            let r = data.result;
            let desc = self.name(r);
            self.op(i, &data.attrs, &data.args, r, &desc)?;
            if let Some(VK::Buf(b)) = self.vk.get(&r).cloned() {
                if returned.contains(&r) {
                    self.pinned[b.buf] = true;
                }
                if last_use.contains_key(&r) || returned.contains(&r) {
                    self.refcount[b.buf] += 1;
                } else if !self.pinned[b.buf] && self.refcount[b.buf] == 0 {
                    // Dead result: its buffer is free again.
                    self.free.entry((b.seq, b.row)).or_default().push(b.buf);
                }
            }
            let mut seen = Vec::new();
            for &a in &data.args {
                if last_use.get(&a) == Some(&i) && !seen.contains(&a) {
                    seen.push(a);
                    if let Some(VK::Buf(b)) = self.vk.get(&a).cloned() {
                        if self.pinned[b.buf] {
                            continue;
                        }
                        self.refcount[b.buf] = self.refcount[b.buf].saturating_sub(1);
                        if self.refcount[b.buf] == 0 {
                            self.free.entry((b.seq, b.row)).or_default().push(b.buf);
                        }
                    }
                }
            }
        }
        for &r in &f.returns {
            let b = self.buf(r, "return")?;
            let last_only_ok = Some(r) == self.logits_value && self.plan.steps.iter().any(|s| matches!(s, Step::Gemv { out, last_only_ok: true, .. } if *out == b));
            self.plan.outputs.push(OutRef { buf: b, last_only_ok });
        }
        self.plan.kernels = self.kernels.len();
        Ok(())
    }

    fn result_buf(&mut self, r: Value, op: &str) -> Result<BufRef, RuntimeError> {
        let ty = self.f.dfg.ty(r);
        if ty.elem != ElemType::F32 || ty.encoding.is_some() {
            return Err(unsupported(op, format!("result type {ty}")));
        }
        let (seq, row) = layout(ty, op)?;
        let b = self.alloc(seq, row);
        self.vk.insert(r, VK::Buf(b));
        Ok(b)
    }

    fn gemv_kernel(&mut self, fmt: WeightFormat, rows: usize, cols: usize) -> Result<Arc<GemvKernel>, RuntimeError> {
        if let Some(k) = self.kernels.get(&(fmt, rows, cols)) {
            return Ok(k.clone());
        }
        let k = Arc::new(GemvKernel::with_tile(self.session, fmt, rows, cols, self.opts.tile)?);
        self.kernels.insert((fmt, rows, cols), k.clone());
        Ok(k)
    }

    fn op(&mut self, _i: usize, attrs: &OpAttrs, args: &[Value], r: Value, op: &str) -> Result<(), RuntimeError> {
        let f = self.f;
        let ty = f.dfg.ty(r).clone();
        match attrs {
            OpAttrs::Weight(w) => {
                let id = self.m.weights.lookup(&w.name.0).ok_or_else(|| unsupported(op, format!("unknown weight @{}", w.name.0)))?;
                let i = self.weight_bytes(id)?;
                self.vk.insert(r, VK::Weight(i));
            }
            OpAttrs::Constant(c) => {
                let (seq, row) = layout(&ty, op)?;
                if ty.elem != ElemType::F32 || seq {
                    return Err(unsupported(op, format!("constant of type {ty}")));
                }
                let bytes = flexc_ir::weights::dense_bytes(&c.value, ElemType::F32);
                let vals: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                if vals.len() != row {
                    return Err(unsupported(op, "constant size mismatch"));
                }
                let b = self.pinned_buf(false, row);
                self.plan.consts.push((b.buf, vals));
                self.vk.insert(r, VK::Buf(b));
            }
            OpAttrs::Dequantize(_) => {
                let Some(VK::Weight(w)) = self.vk.get(&args[0]).cloned() else {
                    return Err(unsupported(op, "dequantize of a computed value"));
                };
                let all_matmul_rhs = self.uses.get(&r).is_some_and(|us| {
                    us.iter().all(|&(i, j)| j == 1 && match &f.dfg.ops[f.layout[i]].attrs {
                        OpAttrs::Matmul(m) => m.transpose_b,
                        _ => false,
                    })
                });
                self.vk.insert(r, VK::Fused(w));
                if !all_matmul_rhs {
                    // Decoded once into a constant buffer on first use.
                    self.buf(r, op)?;
                    let b = self.const_of[&r];
                    self.vk.insert(r, VK::Buf(b));
                }
            }
            OpAttrs::Cast(_) => {
                // Only weight casts (f16/bf16 → f32) are supported, done at compile time.
                match self.vk.get(&args[0]).cloned() {
                    Some(VK::Weight(w)) if ty.elem == ElemType::F32 => {
                        self.vk.insert(r, VK::Weight(w));
                        let src = f.dfg.ty(args[0]).clone();
                        let (_, row) = layout(&src, op)?;
                        let vals = decode_all(&self.plan.weights[w], &src, row).map_err(|e| unsupported(op, e))?;
                        let b = self.pinned_buf(false, row);
                        self.plan.consts.push((b.buf, vals));
                        self.const_of.insert(r, b);
                        self.vk.insert(r, VK::Buf(b));
                    }
                    _ => return Err(unsupported(op, "cast of a computed value")),
                }
            }
            OpAttrs::Matmul(m) => self.matmul(args[0], args[1], m.transpose_b, r, op)?,
            OpAttrs::Mpgemm(m) => {
                // The weight is read as stored (its own type is the encoded one;
                // `VK::Fused` would look for a dequantize's operand).
                let Some(VK::Weight(_)) = self.vk.get(&args[1]) else {
                    return Err(unsupported(op, "mpgemm of a computed weight"));
                };
                self.matmul(args[0], args[1], m.transpose_b, r, op)?;
            }
            a if a.opcode().dialect() == "kern" => self.kern_op(attrs, args, r, op)?,
            OpAttrs::Gather(_) => {
                let Some(VK::Weight(w)) = self.vk.get(&args[0]).cloned() else {
                    return Err(unsupported(op, "gather from a computed table"));
                };
                let Some(VK::Tokens(ids)) = self.vk.get(&args[1]).cloned() else {
                    return Err(unsupported(op, "gather ids must be the i32[seq] parameter"));
                };
                let tt = f.dfg.ty(args[0]);
                let dims = fixed_dims(tt);
                if dims.len() != 2 || !matches!(tt.elem, ElemType::F32 | ElemType::F16 | ElemType::BF16) {
                    return Err(unsupported(op, format!("gather table {tt}")));
                }
                let out = self.result_buf(r, op)?;
                self.plan.steps.push(Step::Gather { table: w, enc: tt.encoding, elem: tt.elem, vocab: dims[0], d: dims[1], ids, out });
            }
            OpAttrs::Reshape(_) => {
                let x = self.buf(args[0], op)?;
                let (seq, row) = layout(&ty, op)?;
                if seq != x.seq || row != x.row {
                    return Err(unsupported(op, format!("reshape that moves the seq dimension ({} to {ty})", f.dfg.ty(args[0]))));
                }
                self.vk.insert(r, VK::Buf(BufRef { buf: x.buf, seq, row }));
            }
            OpAttrs::Rmsnorm(n) => {
                let x = self.buf(args[0], op)?;
                let w = self.buf(args[1], op)?;
                let d = fixed_dims(&ty).last().copied().unwrap_or(0);
                if d == 0 || w.row != d || w.seq {
                    return Err(unsupported(op, "rmsnorm weight must be [d]"));
                }
                let eps = n.eps as f32;
                let kernel = match self.rmsnorms.get(&(d, eps.to_bits())) {
                    Some(k) => k.clone(),
                    None => {
                        let k = Arc::new(RmsnormKernel::new(self.session, d, eps)?);
                        self.rmsnorms.insert((d, eps.to_bits()), k.clone());
                        k
                    }
                };
                let out = self.result_buf(r, op)?;
                self.plan.steps.push(Step::Rmsnorm { kernel, x, w, out, d });
            }
            OpAttrs::Add(_) | OpAttrs::Sub(_) | OpAttrs::Mul(_) | OpAttrs::Div(_) => {
                let bop = match attrs {
                    OpAttrs::Add(_) => BinOp::Add,
                    OpAttrs::Sub(_) => BinOp::Sub,
                    OpAttrs::Mul(_) => BinOp::Mul,
                    _ => BinOp::Div,
                };
                if ty.elem != ElemType::F32 {
                    return Err(unsupported(op, "integer arithmetic"));
                }
                let a = self.buf(args[0], op)?;
                let b = self.buf(args[1], op)?;
                let (ta, tb) = (f.dfg.ty(args[0]), f.dfg.ty(args[1]));
                // Only broadcasting of a trailing-suffix (or scalar) operand.
                let suffix = |small: &flexc_ir::TensorType, big: &flexc_ir::TensorType| {
                    let s: Vec<&Dim> = small.shape.iter().skip_while(|d| d.fixed() == Some(1)).collect();
                    s.len() <= big.rank() && s.iter().zip(&big.shape[big.rank() - s.len()..]).all(|(a, b)| *a == b) && !s.iter().any(|d| d.fixed().is_none())
                };
                let ok = (ta.shape == ty.shape && (tb.shape == ty.shape || suffix(tb, &ty))) || (tb.shape == ty.shape && suffix(ta, &ty));
                if !ok {
                    return Err(unsupported(op, format!("broadcast of {ta} and {tb}")));
                }
                let out = self.result_buf(r, op)?;
                let full = |x: BufRef| x.seq == out.seq && x.row == out.row;
                let row_of = |x: BufRef| (!x.seq && x.row > 0 && out.row.is_multiple_of(x.row)).then_some(x.row);
                let (width, bcast) = match (full(a), full(b)) {
                    (true, true) => (out.row, Bcast::None),
                    (true, false) => (row_of(b).ok_or_else(|| unsupported(op, format!("broadcast of {tb}")))?, Bcast::B),
                    (false, true) => (row_of(a).ok_or_else(|| unsupported(op, format!("broadcast of {ta}")))?, Bcast::A),
                    (false, false) => return Err(unsupported(op, format!("broadcast of {ta} and {tb}"))),
                };
                if bop == BinOp::Mul && bcast == Bcast::None && self.fuse_glu(args, a, b, out)? {
                    return Ok(());
                }
                let key = (bop, width, bcast);
                let kernel = match self.binaries.get(&key) {
                    Some(k) => k.clone(),
                    None => {
                        let k = Arc::new(BinaryKernel::new(self.session, bop, width, bcast)?);
                        self.binaries.insert(key, k.clone());
                        k
                    }
                };
                self.plan.steps.push(Step::Binary { kernel, a, b, out });
            }
            OpAttrs::Neg(_) | OpAttrs::Exp(_) | OpAttrs::Tanh(_) | OpAttrs::Relu(_) | OpAttrs::Silu(_) | OpAttrs::Gelu(_) => {
                let uop = match attrs {
                    OpAttrs::Neg(_) => UnOp::Neg,
                    OpAttrs::Exp(_) => UnOp::Exp,
                    OpAttrs::Tanh(_) => UnOp::Tanh,
                    OpAttrs::Relu(_) => UnOp::Relu,
                    OpAttrs::Silu(_) => UnOp::Silu,
                    OpAttrs::Gelu(g) if g.approx == GeluApprox::Tanh => UnOp::GeluTanh,
                    _ => UnOp::GeluErf,
                };
                if ty.elem != ElemType::F32 {
                    return Err(unsupported(op, "integer operand"));
                }
                let x = self.buf(args[0], op)?;
                let out = self.result_buf(r, op)?;
                self.plan.steps.push(Step::Unary { op: uop, x, out });
            }
            OpAttrs::Softmax(s) => {
                let rank = ty.rank() as i64;
                if s.axis != -1 && s.axis != rank - 1 {
                    return Err(unsupported(op, "softmax over an axis other than the last"));
                }
                let n = fixed_dims(&ty).last().copied().unwrap_or(0);
                let x = self.buf(args[0], op)?;
                if n == 0 || (rank == 1 && x.seq) {
                    return Err(unsupported(op, "softmax over the seq axis"));
                }
                let out = self.result_buf(r, op)?;
                let kernel = match self.softmaxes.get(&n) {
                    Some(k) => k.clone(),
                    None => {
                        let k = Arc::new(SoftmaxKernel::new(self.session, n)?);
                        self.softmaxes.insert(n, k.clone());
                        k
                    }
                };
                self.plan.steps.push(Step::Softmax { kernel, x, out });
            }
            OpAttrs::Rope(rp) => {
                let dims = fixed_dims(&ty);
                let x = self.buf(args[0], op)?;
                if dims.len() != 3 || !x.seq {
                    return Err(unsupported(op, "rope needs x: [seq, heads, head_dim]"));
                }
                self.pos_operand(args[1], op)?;
                let (heads, d) = (dims[1], dims[2]);
                let rd = if rp.dims == 0 { d } else { rp.dims as usize };
                if rd > d || rd % 2 != 0 {
                    return Err(unsupported(op, format!("rope dims {rd} of head size {d}")));
                }
                let key = (rp.base, rd);
                let table = match self.plan.rope_tables.iter().position(|&t| t == key) {
                    Some(t) => t,
                    None => {
                        self.plan.rope_tables.push(key);
                        self.plan.rope_tables.len() - 1
                    }
                };
                let key = (heads, d, rd, rp.mode == RopeMode::Neox);
                let kernel = match self.ropes.get(&key) {
                    Some(k) => k.clone(),
                    None => {
                        let k = Arc::new(RopeKernel::new(self.session, heads, d, rd, rp.mode)?);
                        self.ropes.insert(key, k.clone());
                        k
                    }
                };
                let out = self.result_buf(r, op)?;
                self.plan.steps.push(Step::Rope { kernel, x, out, table });
            }
            OpAttrs::CacheWrite(_) => {
                let cache = self.buf(args[0], op)?;
                let x = self.buf(args[1], op)?;
                self.pos_operand(args[2], op)?;
                let is_state = matches!(f.dfg.values[args[0]].def, ValueDef::Param(_));
                let only_use = self.uses.get(&args[0]).is_some_and(|u| u.len() == 1);
                let dims = fixed_dims(f.dfg.ty(args[0]));
                if !is_state || !only_use || cache.seq || dims.is_empty() || !x.seq || x.row * dims[0] != cache.row {
                    return Err(unsupported(op, "cache_write needs a cache parameter [cap, ...] used only here and rows [seq, ...]"));
                }
                self.plan.steps.push(Step::CacheWrite { cache, x, cap: dims[0] });
                self.vk.insert(r, VK::Buf(cache));
            }
            OpAttrs::Attention(at) => {
                let q = self.buf(args[0], op)?;
                let k = self.buf(args[1], op)?;
                let v = self.buf(args[2], op)?;
                self.pos_operand(args[3], op)?;
                let (qd, kd, vd) = (fixed_dims(f.dfg.ty(args[0])), fixed_dims(f.dfg.ty(args[1])), fixed_dims(f.dfg.ty(args[2])));
                if qd.len() != 3 || kd.len() != 3 || vd.len() != 3 || !q.seq || k.seq != v.seq {
                    return Err(unsupported(op, "attention needs q: [seq, hq, d] and k/v: [t, hk, d]"));
                }
                let (hq, d, hk, dv) = (qd[1], qd[2], kd[1], vd[2]);
                if hk == 0 || hq % hk != 0 || kd[2] != d || vd[1] != hk {
                    return Err(unsupported(op, "attention head counts"));
                }
                let t = if k.seq { 0 } else { kd[0] };
                let shape = AttnShape { hq, hk, d, dv, t, scale: at.scale as f32, window: at.window, softcap: at.softcap as f32, bidirectional: at.bidirectional };
                let out = self.result_buf(r, op)?;
                // The JIT tier, for hosts without the AVX2 one (see
                // `attention`); the kernels depend on the shape but not on
                // the window or the cache length.
                let key = (hk, d, dv, shape.scale.to_bits(), shape.softcap.to_bits());
                let kernels = match self.attns.get(&key) {
                    Some(k) => Some(k.clone()),
                    None if AttnKernels::supports(&shape) && !AttnPath::avx2_for(&shape) => {
                        let k = Arc::new(AttnKernels::new(self.session, &shape)?);
                        self.attns.insert(key, k.clone());
                        Some(k)
                    }
                    None => None,
                };
                self.plan.steps.push(Step::Attention { q, k, v, out, shape, kernels });
            }
            other => return Err(unsupported(op, format!("`{}` is not implemented by the CPU runtime", other.opcode().mnemonic()))),
        }
        Ok(())
    }

    /// Fuses `mul(act(gate), up)` (either operand order) into one
    /// [`Step::Glu`] when the previous step is that silu/gelu(tanh) and this
    /// product is its only use: the activation step is dropped and the gate
    /// read directly. Returns whether it fused.
    fn fuse_glu(&mut self, args: &[Value], a: BufRef, b: BufRef, out: BufRef) -> Result<bool, RuntimeError> {
        let Some(&Step::Unary { op: act @ (UnOp::Silu | UnOp::GeluTanh), x: gate, out: act_out }) = self.plan.steps.last() else {
            return Ok(false);
        };
        let single_use = |v: Value| self.uses.get(&v).is_some_and(|u| u.len() == 1);
        let up = if act_out == a && single_use(args[0]) && args[0] != args[1] {
            b
        } else if act_out == b && single_use(args[1]) && args[0] != args[1] {
            a
        } else {
            return Ok(false);
        };
        if gate.seq != out.seq || gate.row != out.row || up.buf == out.buf {
            return Ok(false);
        }
        let kernel = match self.glus.get(&(act, out.row)) {
            Some(k) => k.clone(),
            None => {
                let k = Arc::new(GluKernel::new(self.session, act, out.row)?);
                self.glus.insert((act, out.row), k.clone());
                k
            }
        };
        self.plan.steps.pop();
        self.plan.steps.push(Step::Glu { kernel, gate, up, out });
        Ok(true)
    }

    fn pos_operand(&self, v: Value, op: &str) -> Result<(), RuntimeError> {
        match self.vk.get(&v) {
            Some(VK::Scalar(i)) if Some(*i) == self.plan.pos_input => Ok(()),
            _ => Err(unsupported(op, "the position must be the function's first i32[] parameter")),
        }
    }

    fn matmul(&mut self, lhs: Value, rhs: Value, transpose_b: bool, r: Value, op: &str) -> Result<(), RuntimeError> {
        let f = self.f;
        let w = match self.vk.get(&rhs) {
            Some(VK::Fused(w)) | Some(VK::Weight(w)) => *w,
            _ => return Err(unsupported(op, "matmul with a computed right operand")),
        };
        if !transpose_b {
            return Err(unsupported(op, "matmul without transpose_b"));
        }
        let src = match self.vk.get(&rhs) {
            Some(VK::Fused(_)) => f.dfg.ty(f.dfg.ops[f.dfg.def_op(rhs).ok_or_else(|| unsupported(op, "no op"))?].args[0]).clone(),
            _ => f.dfg.ty(rhs).clone(),
        };
        let dims = fixed_dims(&src);
        if dims.len() != 2 {
            return Err(unsupported(op, format!("right operand {src} must be rank 2")));
        }
        let (n, k) = (dims[0], dims[1]);
        let (fmt, w) = match (src.encoding, src.elem) {
            (Some(enc), _) if enc.admits(Primitive::Dense) => (WeightFormat::of(enc).ok_or_else(|| unsupported(op, format!("weights in {}", enc.name())))?, w),
            (Some(enc), _) if enc.admits(Primitive::Lut) => {
                // The T-MAC kernel, with tables of its own.
                let x = self.buf(lhs, op)?;
                let slot = self.lut_precompute_step(x, k, LUT_ACT_GROUP, op)?;
                return self.lut_gemm_step(op, enc, w, (n, k), slot, r, None);
            }
            // Shared-scale #bcq (ShiftAddLLM's acc/lat): only the shift-add kernel reads it.
            (Some(enc), _) if let Some(p) = enc.binary_coded() => {
                let x = self.buf(lhs, op)?;
                return self.shiftadd_step(op, p, w, (n, k), x, r, None);
            }
            // A matmul names no sparse kernel: other encodings (pruned
            // weights) are decoded once to f32 (`kern.sparse_gemm` is the op
            // that reads them compressed).
            (Some(_), ElemType::F32) => (WeightFormat::F32, self.decoded_f32(w, &src, op)?),
            (Some(e), el) => return Err(unsupported(op, format!("{el} weights in {e}"))),
            (None, ElemType::F32) => (WeightFormat::F32, w),
            (None, e) => return Err(unsupported(op, format!("{e} weights"))),
        };
        self.gemv(lhs, (w, fmt), (n, k), r, op, 0)
    }

    /// A JIT GEMV/GEMM of `lhs` against `weights[w]` in `fmt` (`[n, k]`),
    /// with `m` weight rows per work item (0: the default split).
    fn gemv(&mut self, lhs: Value, (w, fmt): (usize, WeightFormat), (n, k): (usize, usize), r: Value, op: &str, m: usize) -> Result<(), RuntimeError> {
        let f = self.f;
        let x = self.buf(lhs, op)?;
        if k == 0 || x.row % k != 0 || fmt.check_cols(k).is_err() {
            return Err(unsupported(op, format!("{} × {} [{n}, {k}]: inner size {k}", f.dfg.ty(lhs), fmt.name())));
        }
        let kernel = self.gemv_kernel(fmt, n, k)?;
        let last_only_ok = Some(r) == self.logits_value && x.row == k && x.seq;
        let input = match fmt.activation() {
            ActKind::F32 => GemvInput::F32(x),
            kind => {
                let key = (kind, k);
                let q = match self.qcur.get(&key) {
                    Some(&(q, v)) if v == lhs => q,
                    cur => {
                        let q = match cur {
                            Some(&(q, _)) => q,
                            None => {
                                self.plan.qact_kinds.push(kind);
                                self.plan.qact_kinds.len() - 1
                            }
                        };
                        self.qcur.insert(key, (q, lhs));
                        let only_logits = self.uses.get(&lhs).is_some_and(|u| u.len() == 1) && last_only_ok;
                        self.plan.steps.push(Step::Quant { src: x, q, cols: k, last_only_ok: only_logits });
                        q
                    }
                };
                GemvInput::Q(q)
            }
        };
        let out = if last_only_ok {
            // A buffer of its own (never shared through the free list), so it
            // can grow on demand (see `exec.rs`).
            let (seq, row) = layout(f.dfg.ty(r), op)?;
            self.plan.buf_shapes.push((seq, row));
            self.refcount.push(0);
            self.pinned.push(true);
            let b = BufRef { buf: self.plan.buf_shapes.len() - 1, seq, row };
            self.vk.insert(r, VK::Buf(b));
            b
        } else {
            self.result_buf(r, op)?
        };
        self.plan.steps.push(Step::Gemv { kernel, w, x: input, out, last_only_ok, m });
        Ok(())
    }

    /// The index of `weights[w]` (of type `ty`) decoded to f32, decoding
    /// it once at compile time.
    fn decoded_f32(&mut self, w: usize, ty: &flexc_ir::TensorType, op: &str) -> Result<usize, RuntimeError> {
        if let Some(&d) = self.decoded.get(&w) {
            return Ok(d);
        }
        let n = ty.numel().ok_or_else(|| unsupported(op, format!("weight {ty} without a fixed size")))? as usize;
        let vals = decode_all(&self.plan.weights[w], ty, n).map_err(|e| unsupported(op, e))?;
        self.plan.weights.push(WeightBytes::Owned(vals.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>().into()));
        let d = self.plan.weights.len() - 1;
        self.decoded.insert(w, d);
        Ok(d)
    }
}

/// Activations per int8-quantised table group of the LUT kernel (T-MAC's act_group).
const LUT_ACT_GROUP: usize = 32;

/// Decodes a whole weight (encoded, f32, f16 or bf16) to f32.
fn decode_all(bytes: &[u8], ty: &flexc_ir::TensorType, n: usize) -> Result<Vec<f32>, String> {
    let mut out = vec![0f32; n];
    match (ty.encoding, ty.elem) {
        (Some(enc), _) => enc.decode(&fixed_dims(ty), bytes, &mut out)?,
        (None, ElemType::F32) => decode_plain(bytes, ElemType::F32, &mut out)?,
        (None, e @ (ElemType::F16 | ElemType::BF16)) => decode_plain(bytes, e, &mut out)?,
        (None, e) => return Err(format!("{e} weights")),
    }
    Ok(out)
}

/// Plain little-endian f32/f16/bf16 storage to f32.
pub(crate) fn decode_plain(bytes: &[u8], elem: ElemType, out: &mut [f32]) -> Result<(), String> {
    let w = elem.storage_bytes();
    if bytes.len() != out.len() * w {
        return Err(format!("{} bytes for {} {elem} values", bytes.len(), out.len()));
    }
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(w)) {
        *o = match elem {
            ElemType::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            ElemType::BF16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            _ => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        };
    }
    Ok(())
}

/// Builds the plan of `func` (the module must already be verified).
pub(crate) fn build(m: &Module, func: &str, session: &JitSession, opts: &RuntimeOptions) -> Result<Plan, RuntimeError> {
    let id = m.func(func).ok_or_else(|| RuntimeError::Invalid(format!("no function @{func}")))?;
    let f = &m.funcs[id];
    let mut b = Builder {
        m,
        f,
        session,
        opts,
        vk: HashMap::new(),
        plan: Plan {
            steps: Vec::new(),
            buf_shapes: Vec::new(),
            consts: Vec::new(),
            weights: Vec::new(),
            lut_weights: Vec::new(),
            lut_keys: Vec::new(),
            lut_slots: Vec::new(),
            sparse_weights: Vec::new(),
            sa_weights: Vec::new(),
            qact_kinds: Vec::new(),
            params: Vec::new(),
            param_input: Vec::new(),
            param_bufs: Vec::new(),
            outputs: Vec::new(),
            rope_tables: Vec::new(),
            pos_input: None,
            kernels: 0,
        },
        kernels: HashMap::new(),
        rmsnorms: HashMap::new(),
        binaries: HashMap::new(),
        glus: HashMap::new(),
        softmaxes: HashMap::new(),
        attns: HashMap::new(),
        ropes: HashMap::new(),
        free: HashMap::new(),
        refcount: Vec::new(),
        pinned: Vec::new(),
        const_of: HashMap::new(),
        qcur: HashMap::new(),
        weight_idx: HashMap::new(),
        uses: HashMap::new(),
        logits_value: None,
        decoded: HashMap::new(),
        tile_of: HashMap::new(),
        lut_packed: HashMap::new(),
        lut_kernels: Vec::new(),
    };
    b.run()?;
    Ok(b.plan)
}
