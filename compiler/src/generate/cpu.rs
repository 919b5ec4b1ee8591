//! A language model run by the CPU JIT runtime: the imported `@forward`
//! compiled once, its KV caches owned by the runtime and updated in place.

use super::batch::{check_rows, BatchModel};
use super::{LanguageModel, ModelError};
use flexc_backends::cpu::prepack::Prepacked;
use flexc_backends::cpu::runtime::{CpuRuntime, Input, ParamKind, RuntimeOptions};
use std::sync::Arc;
use flexc_ir::types::Dim;
use flexc_ir::Module;
use std::time::Duration;

/// The JIT-backed model.
pub struct CpuModel {
    rt: CpuRuntime,
    vocab: usize,
    ctx: usize,
    ids: Vec<i32>,
}

impl CpuModel {
    /// Compiles `@forward` of an imported module for `threads` threads.
    pub fn new(m: &Module, threads: usize) -> Result<CpuModel, ModelError> {
        Self::with_prepacked(m, threads, None)
    }

    /// [`CpuModel::new`] reading the LUT streams of `prepacked` (a `.flexc`
    /// artifact's) instead of packing those weights again.
    pub fn with_prepacked(m: &Module, threads: usize, prepacked: Option<Arc<Prepacked>>) -> Result<CpuModel, ModelError> {
        let f = m.func("forward").map(|id| &m.funcs[id]).ok_or_else(|| ModelError("the module has no @forward function".into()))?;
        let vocab = f.results.first().and_then(|t| t.shape.get(1)).and_then(Dim::fixed).ok_or_else(|| ModelError("@forward must return logits [seq, vocab]".into()))? as usize;
        let opts = RuntimeOptions { threads: threads.max(1), prepacked, ..RuntimeOptions::default() };
        let rt = CpuRuntime::compile(m, "forward", opts).map_err(|e| ModelError(e.to_string()))?;
        let params = rt.params();
        if !matches!(params.first(), Some(ParamKind::Tokens)) || !matches!(params.get(1), Some(ParamKind::Scalar)) || params[2..].iter().any(|p| !matches!(p, ParamKind::State { .. })) {
            return Err(ModelError("@forward must take (tokens: i32[seq], pos: i32[], caches...)".into()));
        }
        let ctx = f.params.get(2).and_then(|&p| f.dfg.ty(p).shape.first()).and_then(Dim::fixed).map_or(usize::MAX, |c| c as usize);
        Ok(CpuModel { rt, vocab, ctx, ids: Vec::new() })
    }

    /// Time to verify, plan and JIT-compile the model.
    pub fn compile_time(&self) -> Duration {
        self.rt.compile_time()
    }

    /// Gives the model `n` KV-cache slots for [`BatchModel`] use (and one
    /// more, the padding row's: see [`BatchModel::decode`] below).
    pub fn with_slots(mut self, n: usize) -> CpuModel {
        self.rt.ensure_slots(n.max(1) + 1);
        self
    }

    fn ids(&mut self, tokens: &[u32]) -> Result<Vec<i32>, ModelError> {
        let mut ids = std::mem::take(&mut self.ids);
        ids.clear();
        for &t in tokens {
            ids.push(i32::try_from(t).map_err(|_| ModelError(format!("token id {t} does not fit i32")))?);
        }
        Ok(ids)
    }

    /// The runtime (for profiling).
    pub fn runtime_mut(&mut self) -> &mut CpuRuntime {
        &mut self.rt
    }
}

impl LanguageModel for CpuModel {
    fn vocab(&self) -> usize {
        self.vocab
    }

    fn weight_bytes_per_token(&self) -> Option<u64> {
        Some(self.rt.weight_bytes_per_token())
    }

    fn context(&self) -> usize {
        self.ctx
    }

    fn forward(&mut self, tokens: &[u32], pos: usize, rows: usize) -> Result<Vec<f32>, ModelError> {
        super::check_context(tokens.len(), pos, self.ctx)?;
        let ids = self.ids(tokens)?;
        let rows = rows.clamp(1, tokens.len().max(1));
        let r = self.rt.run_tail(&[Input::I32(&ids), Input::Scalar(pos as i64)], Some(rows));
        self.ids = ids;
        r.map_err(|e| ModelError(e.to_string()))?;
        let logits = self.rt.output(0).ok_or_else(|| ModelError("no logits".into()))?;
        // Outputs without a tail computation hold every row: keep the last ones.
        Ok(logits[logits.len().saturating_sub(rows * self.vocab)..].to_vec())
    }
}

impl BatchModel for CpuModel {
    fn vocab(&self) -> usize {
        self.vocab
    }

    fn context(&self) -> usize {
        self.ctx
    }

    fn slots(&self) -> usize {
        self.rt.slots().saturating_sub(1).max(1)
    }

    fn prefill(&mut self, slot: usize, tokens: &[u32], pos: usize) -> Result<Vec<f32>, ModelError> {
        super::check_context(tokens.len(), pos, self.ctx)?;
        let ids = self.ids(tokens)?;
        let r = self.rt.run_slot(slot, &[Input::I32(&ids), Input::Scalar(pos as i64)], Some(1));
        self.ids = ids;
        r.map_err(|e| ModelError(e.to_string()))?;
        let logits = self.rt.output(0).ok_or_else(|| ModelError("no logits".into()))?;
        Ok(logits[logits.len().saturating_sub(self.vocab)..].to_vec())
    }

    /// A lone row is padded with a second one (token 0 at position 0 of the
    /// padding slot): the JIT's one-row GEMV accumulates in another order
    /// than its multi-row GEMMs, whose rows all agree, so padding makes a
    /// sequence's greedy tokens independent of what it is batched with.
    fn decode(&mut self, rows: &[(usize, u32, usize)]) -> Result<Vec<f32>, ModelError> {
        check_rows(rows, self.ctx)?;
        if rows.iter().any(|r| r.0 >= BatchModel::slots(self)) {
            return Err(ModelError(format!("slot out of range ({} slots)", BatchModel::slots(self))));
        }
        let padded;
        let rows = if rows.len() == 1 && self.rt.slots() > 1 {
            padded = [rows[0], (self.rt.slots() - 1, 0, 0)];
            &padded[..]
        } else {
            rows
        };
        let tokens: Vec<u32> = rows.iter().map(|r| r.1).collect();
        let ids = self.ids(&tokens)?;
        let pos: Vec<usize> = rows.iter().map(|r| r.2).collect();
        let slots: Vec<usize> = rows.iter().map(|r| r.0).collect();
        let r = self.rt.run_batch(&ids, &pos, &slots);
        self.ids = ids;
        r.map_err(|e| ModelError(e.to_string()))?;
        let logits = self.rt.output(0).ok_or_else(|| ModelError("no logits".into()))?;
        let n = rows.len() * self.vocab;
        if logits.len() < n {
            return Err(ModelError("batched logits are short".into()));
        }
        let real = if rows.len() == 2 && rows[1].0 == self.rt.slots() - 1 { 1 } else { rows.len() };
        Ok(logits[logits.len() - n..][..real * self.vocab].to_vec())
    }
}
