//! Lowering of the `kern.` dialect: each op runs exactly the primitive it
//! names, because `select-gemm` already chose it (the runtime never
//! second-guesses the choice).
//!
//! - `kern.lut_precompute` → one [`Step::LutPrecompute`] filling a table
//!   slot; every `kern.lut_gemm` reading the value reads that slot (q/k/v
//!   and gate/up share one precompute), for any number of rows;
//! - `kern.lut_gemm` → the T-MAC kernel on weights packed at compile time
//!   with the slot's activation group;
//! - `kern.shiftadd_gemm` → the μ = 8 shift-add kernel (`cpu/shiftadd.rs`)
//!   on the `#bcq` bytes packed at compile time;
//! - `kern.dense_gemm` → the int-dot GEMV/GEMM for ggml formats with a
//!   kernel, the f32 one on weights decoded at compile time otherwise
//!   ([`dense_format`]);
//! - `kern.sparse_gemm` → the N:M sparse kernel (`cpu/sparse.rs`) on the
//!   `#nm` bytes repacked at compile time (never decoded to dense);
//! - `kern.tile {m, k}` → recorded on the weight value: `m` is the weight
//!   rows per parallel work item of every GEMM, `k` the LUT and shift-add
//!   kernels' K tile. The dense kernels stream whole rows (no K tile yet), so
//!   there `k` changes nothing (values are unchanged either way) and the
//!   cost model offers them only whole-row tiles.

use std::sync::Arc;

use flexc_ir::quant::BcqParams;
use flexc_ir::{Encoding, OpAttrs, TensorType, Value};

use super::{fixed_dims, unsupported, BufRef, Builder, Step, VK};
use crate::cpu::format::dense_format;
use crate::cpu::lut::{LutKernel, LutWeights, DEFAULT_K_TILE};
use crate::cpu::prepack::LutKey;
use crate::cpu::runtime::RuntimeError;
use crate::cpu::shiftadd::{ShiftAddKernel, ShiftAddWeights, BLOCK_ROWS, DEFAULT_K_TILE as DEFAULT_SA_K_TILE};
use crate::cpu::sparse::{SparseKernel, SparseWeights};

/// A kern GEMM's weight operand: `weights[w]` of type `ty` (`[n, k]`) and
/// its `kern.tile` `(m, k)`, if any.
struct KernWeight {
    w: usize,
    ty: TensorType,
    n: usize,
    k: usize,
    tile: Option<(usize, usize)>,
}

impl Builder<'_> {
    /// Plans one `kern.` op.
    pub(super) fn kern_op(&mut self, attrs: &OpAttrs, args: &[Value], r: Value, op: &str) -> Result<(), RuntimeError> {
        match attrs {
            OpAttrs::Tile(t) => {
                let (Ok(m), Ok(k)) = (usize::try_from(t.m), usize::try_from(t.k)) else {
                    return Err(unsupported(op, format!("tile sizes m = {}, k = {}", t.m, t.k)));
                };
                match self.vk.get(&args[0]).cloned() {
                    Some(vk @ VK::Weight(_)) => {
                        self.vk.insert(r, vk);
                    }
                    Some(VK::Buf(b)) if self.const_values(b).is_some() => {
                        self.vk.insert(r, VK::Buf(b));
                    }
                    _ => return Err(unsupported(op, "kern.tile of a computed value")),
                }
                self.tile_of.insert(r, (m, k));
            }
            OpAttrs::LutPrecompute(a) => {
                let x = self.buf(args[0], op)?;
                let k = self.last_dim(args[0], op)?;
                let slot = self.lut_precompute_step(x, k, a.act_group as usize, op)?;
                self.vk.insert(r, VK::Tables { slot, cols: k });
            }
            OpAttrs::LutGemm(_) => {
                let Some(VK::Tables { slot, cols }) = self.vk.get(&args[0]).cloned() else {
                    return Err(unsupported(op, "the tables must be a kern.lut_precompute result"));
                };
                let kw = self.kern_weight(args[1], op)?;
                let enc = kw.ty.encoding.ok_or_else(|| unsupported(op, format!("plain {} weights", kw.ty)))?;
                if kw.k != cols {
                    return Err(unsupported(op, format!("tables over {cols} columns for a weight of {}", kw.k)));
                }
                self.lut_gemm_step(op, enc, kw.w, (kw.n, kw.k), slot, r, kw.tile)?;
            }
            OpAttrs::ShiftaddGemm(_) => {
                let kw = self.kern_weight(args[1], op)?;
                let Some(p) = kw.ty.encoding.and_then(|e| e.binary_coded()) else {
                    return Err(unsupported(op, format!("shift-add needs #bcq weights, got {}", kw.ty)));
                };
                let x = self.buf(args[0], op)?;
                self.shiftadd_step(op, p, kw.w, (kw.n, kw.k), x, r, kw.tile)?;
            }
            OpAttrs::SparseGemm(_) => {
                let kw = self.kern_weight(args[1], op)?;
                let Some(nm) = kw.ty.encoding.and_then(|e| e.nm()) else {
                    return Err(unsupported(op, format!("sparse GEMM needs #nm weights, got {}", kw.ty)));
                };
                let x = self.buf(args[0], op)?;
                if !x.row.is_multiple_of(kw.k) {
                    return Err(unsupported(op, format!("activation rows of {} for a weight of {} columns", x.row, kw.k)));
                }
                let packed = SparseWeights::pack(nm, &self.plan.weights[kw.w], kw.n, kw.k).map_err(|e| unsupported(op, e.to_string()))?;
                let kernel = Arc::new(SparseKernel::new(self.session, packed.spec()).map_err(|e| unsupported(op, e.to_string()))?);
                self.plan.sparse_weights.push(packed);
                let out = self.result_buf(r, op)?;
                self.plan.steps.push(Step::Sparse { kernel, w: self.plan.sparse_weights.len() - 1, x, out });
            }
            OpAttrs::DenseGemm(_) => {
                let kw = self.kern_weight(args[1], op)?;
                let (fmt, decoded) = dense_format(&kw.ty).ok_or_else(|| unsupported(op, format!("{} weights", kw.ty)))?;
                let w = if decoded { self.decoded_f32(kw.w, &kw.ty, op)? } else { kw.w };
                let m = kw.tile.map_or(0, |t| t.0);
                self.gemv(args[0], (w, fmt), (kw.n, kw.k), r, op, m)?;
            }
            other => return Err(unsupported(op, format!("`{}` is not a kern op", other.opcode().mnemonic()))),
        }
        Ok(())
    }

    /// Plans the LUT tables of `x` (rows of `k`) with `act_group` into a new slot.
    pub(super) fn lut_precompute_step(&mut self, x: BufRef, k: usize, act_group: usize, op: &str) -> Result<usize, RuntimeError> {
        if k == 0 || !x.row.is_multiple_of(k) {
            return Err(unsupported(op, format!("activation rows of {} are not whole rows of {k}", x.row)));
        }
        if act_group == 0 || !act_group.is_multiple_of(8) || act_group > 64 || !k.is_multiple_of(act_group) {
            return Err(unsupported(op, format!("{k} columns are not whole activation groups of {act_group} (a multiple of 8, at most 64)")));
        }
        self.plan.lut_slots.push(act_group);
        let slot = self.plan.lut_slots.len() - 1;
        self.plan.steps.push(Step::LutPrecompute { x, slot, cols: k });
        Ok(slot)
    }

    /// Plans a LUT GEMM of the tables in `slot` against `weights[w]`
    /// (`enc`, `[n, k]`), packed once per (weight, activation group, K tile).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn lut_gemm_step(&mut self, op: &str, enc: Encoding, w: usize, (n, k): (usize, usize), slot: usize, r: Value, tile: Option<(usize, usize)>) -> Result<(), RuntimeError> {
        let act_group = self.plan.lut_slots[slot];
        let k_tile = tile.map_or(DEFAULT_K_TILE, |t| t.1);
        let li = match self.lut_packed.get(&(w, act_group, k_tile)) {
            Some(&i) => i,
            None => {
                let key = self.weight_name(w).map(|weight| LutKey { weight, act_group, k_tile });
                let stored = match (&self.opts.prepacked, &key) {
                    (Some(pre), Some(key)) => pre.lut_for(key, &enc, n, k).map_err(RuntimeError::Invalid)?,
                    _ => None,
                };
                let packed = match stored {
                    Some(p) => p,
                    None => LutWeights::pack_tiled(enc, &self.plan.weights[w], n, k, act_group, k_tile).map_err(|e| unsupported(op, e.to_string()))?,
                };
                self.plan.lut_weights.push(packed);
                self.plan.lut_keys.push(key);
                let i = self.plan.lut_weights.len() - 1;
                self.lut_packed.insert((w, act_group, k_tile), i);
                i
            }
        };
        let spec = self.plan.lut_weights[li].spec();
        let kernel = match self.lut_kernels.iter().find(|k| k.spec() == spec) {
            Some(k) => k.clone(),
            None => {
                let k = Arc::new(LutKernel::new(self.session, spec)?);
                self.lut_kernels.push(k.clone());
                k
            }
        };
        let m_blocks = tile.map_or(0, |t| t.0.div_ceil(spec.block_rows()));
        let out = self.result_buf(r, op)?;
        self.plan.steps.push(Step::LutGemm { kernel, w: li, slot, out, m_blocks });
        Ok(())
    }

    /// The symbol of `weights[w]` when it is a module weight (not a constant).
    fn weight_name(&self, w: usize) -> Option<String> {
        self.weight_idx.iter().find(|&(_, &i)| i == w).map(|(&id, _)| self.m.weights.get(id).name.clone())
    }

    /// The weight operand of a kern GEMM: a weight (possibly through
    /// `kern.tile`) or a constant (whose f32 values become a weight).
    fn kern_weight(&mut self, v: Value, op: &str) -> Result<KernWeight, RuntimeError> {
        let ty = self.f.dfg.ty(v).clone();
        let dims = fixed_dims(&ty);
        if dims.len() != 2 || dims.contains(&0) {
            return Err(unsupported(op, format!("the weight {ty} must be [n, k]")));
        }
        let w = match self.vk.get(&v).cloned() {
            Some(VK::Weight(w)) => w,
            Some(VK::Buf(b)) => {
                let vals = self.const_values(b).ok_or_else(|| unsupported(op, "the weight of a kern GEMM must be a weight or a constant, not a computed value"))?;
                let bytes: Vec<u8> = vals.iter().flat_map(|x| x.to_le_bytes()).collect();
                self.plan.weights.push(flexc_ir::weights::WeightBytes::Owned(bytes.into()));
                self.plan.weights.len() - 1
            }
            _ => return Err(unsupported(op, "the weight of a kern GEMM must be a weight or a constant")),
        };
        let ty = match self.vk.get(&v) {
            // A constant's buffer holds f32 values whatever it was decoded from.
            Some(VK::Buf(_)) => TensorType { encoding: None, elem: flexc_ir::types::ElemType::F32, ..ty },
            _ => ty,
        };
        Ok(KernWeight { w, ty, n: dims[0], k: dims[1], tile: self.tile_of.get(&v).copied() })
    }

    /// The values of a constant buffer (fixed size, set at compile time).
    fn const_values(&self, b: BufRef) -> Option<&[f32]> {
        if b.seq {
            return None;
        }
        self.plan.consts.iter().find(|(c, _)| *c == b.buf).map(|(_, v)| v.as_slice())
    }

    fn last_dim(&self, v: Value, op: &str) -> Result<usize, RuntimeError> {
        let ty = self.f.dfg.ty(v);
        ty.shape.last().and_then(|d| d.fixed()).map(|d| d as usize).ok_or_else(|| unsupported(op, format!("{ty} needs a fixed last dimension")))
    }
}

impl Builder<'_> {
    /// A shift-add GEMM step of `x` against the `#bcq` weight `weights[w]`
    /// (`[n, k]`), packed now with the tile's K width (or the default).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn shiftadd_step(&mut self, op: &str, p: BcqParams, w: usize, (n, k): (usize, usize), x: BufRef, r: Value, tile: Option<(usize, usize)>) -> Result<(), RuntimeError> {
        if !x.row.is_multiple_of(k) {
            return Err(unsupported(op, format!("activation rows of {} for a weight of {k} columns", x.row)));
        }
        let k_tile = tile.map_or(DEFAULT_SA_K_TILE, |t| t.1);
        let packed = ShiftAddWeights::pack(p, &self.plan.weights[w], n, k, k_tile).map_err(|e| unsupported(op, e.to_string()))?;
        let kernel = Arc::new(ShiftAddKernel::new(self.session, packed.spec()).map_err(|e| unsupported(op, e.to_string()))?);
        self.plan.sa_weights.push(packed);
        let out = self.result_buf(r, op)?;
        let m_blocks = tile.map_or(0, |t| t.0.div_ceil(BLOCK_ROWS));
        self.plan.steps.push(Step::ShiftAdd { kernel, w: self.plan.sa_weights.len() - 1, x, out, m_blocks });
        Ok(())
    }
}
