//! A language model run by the CPU JIT runtime: the imported `@forward`
//! compiled once, its KV caches owned by the runtime and updated in place.

use super::{LanguageModel, ModelError};
use flexc_backends::cpu::runtime::{CpuRuntime, Input, ParamKind, RuntimeOptions};
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
        let f = m.func("forward").map(|id| &m.funcs[id]).ok_or_else(|| ModelError("the module has no @forward function".into()))?;
        let vocab = f.results.first().and_then(|t| t.shape.get(1)).and_then(Dim::fixed).ok_or_else(|| ModelError("@forward must return logits [seq, vocab]".into()))? as usize;
        let opts = RuntimeOptions { threads: threads.max(1), ..RuntimeOptions::default() };
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
        self.ids.clear();
        for &t in tokens {
            self.ids.push(i32::try_from(t).map_err(|_| ModelError(format!("token id {t} does not fit i32")))?);
        }
        let ids = std::mem::take(&mut self.ids);
        let rows = rows.clamp(1, tokens.len().max(1));
        let r = self.rt.run_tail(&[Input::I32(&ids), Input::Scalar(pos as i64)], Some(rows));
        self.ids = ids;
        r.map_err(|e| ModelError(e.to_string()))?;
        let logits = self.rt.output(0).ok_or_else(|| ModelError("no logits".into()))?;
        // Outputs without a tail computation hold every row: keep the last ones.
        Ok(logits[logits.len().saturating_sub(rows * self.vocab)..].to_vec())
    }
}
