//! A language model run by the reference interpreter: the imported
//! `@forward` function with its KV caches kept between calls.

use super::{LanguageModel, ModelError};
use flexc_backends::reference::{Interpreter, Tensor};
use flexc_ir::types::Dim;
use flexc_ir::{ElemType, Module};

/// The interpreter-backed model. Slow, simple, and the oracle for the JIT.
pub struct ReferenceModel<'m> {
    interp: Interpreter<'m>,
    caches: Vec<Tensor>,
    vocab: usize,
    ctx: usize,
}

impl<'m> ReferenceModel<'m> {
    /// Wraps an imported module (it must have `@forward`).
    pub fn new(m: &'m Module) -> Result<ReferenceModel<'m>, ModelError> {
        let id = m.func("forward").ok_or_else(|| ModelError("the module has no @forward function".into()))?;
        let f = &m.funcs[id];
        let vocab = f.results.first().and_then(|t| t.shape.get(1)).and_then(Dim::fixed).ok_or_else(|| ModelError("@forward must return logits [seq, vocab]".into()))? as usize;
        let caches: Vec<Tensor> = f.params[2..]
            .iter()
            .map(|&p| {
                let shape: Vec<usize> = f.dfg.ty(p).fixed_shape().unwrap_or_default().iter().map(|&d| d as usize).collect();
                Tensor::float(ElemType::F32, &shape, vec![0.0; shape.iter().product()])
            })
            .collect();
        let ctx = caches.first().map_or(usize::MAX, |c| c.shape[0]);
        Ok(ReferenceModel { interp: Interpreter::new(m), caches, vocab, ctx })
    }
}

impl LanguageModel for ReferenceModel<'_> {
    fn vocab(&self) -> usize {
        self.vocab
    }

    fn context(&self) -> usize {
        self.ctx
    }

    fn forward(&mut self, tokens: &[u32], pos: usize, rows: usize) -> Result<Vec<f32>, ModelError> {
        super::check_context(tokens.len(), pos, self.ctx)?;
        let ids = Tensor::int(ElemType::I32, &[tokens.len()], tokens.iter().map(|&t| t as i64).collect()).map_err(ModelError)?;
        let mut inputs = vec![ids, Tensor::scalar_i32(pos as i32)];
        inputs.append(&mut self.caches);
        let mut out = self.interp.run("forward", inputs).map_err(|e| ModelError(e.to_string()))?;
        self.caches = out.split_off(1);
        let logits = out.pop().and_then(|t| t.as_f32().map(<[f32]>::to_vec)).ok_or_else(|| ModelError("logits are not floats".into()))?;
        let rows = rows.clamp(1, tokens.len().max(1));
        Ok(logits[logits.len().saturating_sub(rows * self.vocab)..].to_vec())
    }
}
