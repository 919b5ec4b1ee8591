//! Text generation over any backend: a [`LanguageModel`] turns tokens at a
//! position into logits (keeping its own KV cache); the loop here tokenizes
//! the prompt, prefills, samples, and streams decoded text.

pub mod cpu;
pub mod reference;
pub mod sampler;

use crate::tokenizer::Tokenizer;
use sampler::Sampler;
use std::time::{Duration, Instant};

/// A failure inside a model run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ModelError(pub String);

/// A causal language model with an internal KV cache.
pub trait LanguageModel {
    /// Vocabulary size (logits per position).
    fn vocab(&self) -> usize;
    /// KV-cache capacity in tokens.
    fn context(&self) -> usize;
    /// Runs `tokens` at positions `pos..`, appending to the cache. Returns the
    /// logits of the last `rows` positions (clamped to `1..=tokens.len()`),
    /// row after row: 1 for generation, the scored half for perplexity.
    fn forward(&mut self, tokens: &[u32], pos: usize, rows: usize) -> Result<Vec<f32>, ModelError>;
    /// Bytes of weights one decoded token reads, in the layout the engine
    /// streams them (None when the engine does not say).
    fn weight_bytes_per_token(&self) -> Option<u64> {
        None
    }
}

/// Checks that `n` tokens at `pos` fit a KV cache of `ctx` tokens.
pub fn check_context(n: usize, pos: usize, ctx: usize) -> Result<(), ModelError> {
    if pos.checked_add(n).is_none_or(|end| end > ctx) {
        return Err(ModelError(format!("context full: {n} tokens at position {pos} exceed the KV cache of {ctx}")));
    }
    Ok(())
}

/// Timings of one generation.
#[derive(Clone, Debug, Default)]
pub struct GenStats {
    /// Prompt tokens (BOS included).
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub generated: usize,
    /// Time to run the prompt.
    pub prefill: Duration,
    /// Time for the generated tokens after the first.
    pub decode: Duration,
}

/// Generates up to `n` tokens after `prompt`, calling `emit` with each
/// decoded piece as soon as it is complete UTF-8, and stopping early at an
/// end-of-generation token or when `stop()` says so.
pub fn generate(
    model: &mut dyn LanguageModel,
    tok: &Tokenizer,
    prompt: &str,
    n: usize,
    sampler: &mut Sampler,
    emit: &mut dyn FnMut(&str),
    stop: &dyn Fn() -> bool,
) -> Result<(Vec<u32>, GenStats), ModelError> {
    let ids = tok.encode_with_special(prompt, tok.add_bos_by_default());
    if ids.is_empty() {
        return Err(ModelError("the prompt is empty and the model adds no BOS token".into()));
    }
    let mut stats = GenStats { prompt_tokens: ids.len(), ..Default::default() };
    let t0 = Instant::now();
    let mut logits = model.forward(&ids, 0, 1)?;
    stats.prefill = t0.elapsed();
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut pos = ids.len();
    let t1 = Instant::now();
    for i in 0..n {
        let next = sampler.sample(&logits);
        if tok.is_eog(next) {
            break;
        }
        out.push(next);
        pending.extend(tok.decode_piece(next));
        // Emit the longest valid UTF-8 prefix; keep a split character for later.
        let valid = match std::str::from_utf8(&pending) {
            Ok(s) => s.len(),
            Err(e) => e.valid_up_to(),
        };
        if valid > 0 {
            emit(&String::from_utf8_lossy(&pending[..valid]));
            pending.drain(..valid);
        }
        if i + 1 == n || stop() || pos + 1 > model.context() {
            break;
        }
        logits = model.forward(&[next], pos, 1)?;
        pos += 1;
    }
    if !pending.is_empty() {
        emit(&String::from_utf8_lossy(&pending));
    }
    stats.generated = out.len();
    stats.decode = t1.elapsed();
    Ok((out, stats))
}
