//! Perplexity the way llama.cpp's `llama-perplexity` computes it, so the
//! digits can be compared: tokenize the whole text (BOS first when the model
//! adds one), cut it into consecutive `ctx`-token chunks (the tail is
//! dropped), put BOS at the start of each chunk, run each chunk from an empty
//! KV cache, and score positions `ctx/2 .. ctx-1` (each predicting the next
//! token). PPL = exp(mean NLL); its error is `PPL · sqrt(var(NLL) / (n − 1))`.

use crate::generate::{LanguageModel, ModelError};

/// Settings of a perplexity run.
#[derive(Clone, Debug)]
pub struct PplConfig {
    /// Tokens per chunk.
    pub ctx: usize,
    /// At most this many chunks (0: all).
    pub max_chunks: usize,
}

/// The result of a perplexity run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PplResult {
    /// Perplexity.
    pub ppl: f64,
    /// Its standard error.
    pub stderr: f64,
    /// Scored tokens.
    pub tokens_scored: usize,
    /// Chunks evaluated.
    pub chunks: usize,
    /// Tokens per chunk.
    pub ctx: usize,
}

/// Running sums of negative log-likelihoods.
#[derive(Clone, Debug, Default)]
pub struct NllSums {
    sum: f64,
    sum2: f64,
    count: usize,
}

impl NllSums {
    /// Adds one token's NLL.
    pub fn add(&mut self, nll: f64) {
        self.sum += nll;
        self.sum2 += nll * nll;
        self.count += 1;
    }

    /// exp(mean NLL).
    pub fn ppl(&self) -> f64 {
        (self.sum / self.count.max(1) as f64).exp()
    }

    /// llama.cpp's error estimate of the perplexity.
    pub fn stderr(&self) -> f64 {
        if self.count < 2 {
            return 0.0;
        }
        let n = self.count as f64;
        let mean = self.sum / n;
        let var = self.sum2 / n - mean * mean;
        if var > 0.0 { (var / (n - 1.0)).sqrt() * self.ppl() } else { 0.0 }
    }
}

/// −log softmax(logits)[target], computed stably in f64.
pub fn nll(logits: &[f32], target: u32) -> f64 {
    // llama-perplexity's log-softmax: f32 exponentials, an f64 sum.
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&x| (x - max).exp() as f64).sum();
    (max as f64 + sum.ln()) - logits[target as usize] as f64
}

/// [`nll`] of each `vocab`-row of `logits` against its target, over two
/// threads (a 262K-word vocabulary costs 67 M exponentials per window).
fn nll_rows(logits: &[f32], vocab: usize, targets: &[u32]) -> Vec<f64> {
    let rows: Vec<(&[f32], u32)> = logits.chunks_exact(vocab).zip(targets.iter().copied()).collect();
    let half = rows.len() / 2;
    std::thread::scope(|s| {
        let second = s.spawn(|| rows[half..].iter().map(|&(l, t)| nll(l, t)).collect::<Vec<f64>>());
        let mut out: Vec<f64> = rows[..half].iter().map(|&(l, t)| nll(l, t)).collect();
        out.extend(second.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        out
    })
}

/// The chunks of a token stream (each `ctx` long, BOS at position 0 if given).
pub fn chunks(tokens: &[u32], ctx: usize, bos: Option<u32>, max_chunks: usize) -> Vec<Vec<u32>> {
    let n = tokens.len() / ctx.max(1);
    let n = if max_chunks > 0 { n.min(max_chunks) } else { n };
    (0..n)
        .map(|i| {
            let mut c = tokens[i * ctx..(i + 1) * ctx].to_vec();
            if let Some(b) = bos {
                c[0] = b;
            }
            c
        })
        .collect()
}

/// Runs the evaluation; `progress(done, total, running)` is called after each chunk.
pub fn perplexity(
    model: &mut dyn LanguageModel,
    tokens: &[u32],
    bos: Option<u32>,
    cfg: &PplConfig,
    progress: &mut dyn FnMut(usize, usize, &NllSums),
) -> Result<PplResult, ModelError> {
    if cfg.ctx < 4 {
        return Err(ModelError("--ctx must be at least 4".into()));
    }
    if cfg.ctx > model.context() {
        return Err(ModelError(format!("--ctx {} exceeds the model's KV cache ({})", cfg.ctx, model.context())));
    }
    let chunks = chunks(tokens, cfg.ctx, bos, cfg.max_chunks);
    if chunks.is_empty() {
        return Err(ModelError(format!("the text has {} tokens, fewer than one chunk of {}", tokens.len(), cfg.ctx)));
    }
    let vocab = model.vocab();
    let first = cfg.ctx / 2;
    let mut sums = NllSums::default();
    for (i, c) in chunks.iter().enumerate() {
        // Position 0 again: earlier chunks' cache entries are overwritten or
        // never visible (attention reads only positions < pos + seq).
        // Logits of the scored positions first..ctx only (as llama-perplexity
        // asks for): the LM head of the unscored half is never computed.
        let logits = model.forward(c, 0, cfg.ctx - first)?;
        // Row r (position first + r) predicts token first + r + 1.
        let scored = (cfg.ctx - 1 - first) * vocab;
        for x in nll_rows(&logits[..scored], vocab, &c[first + 1..]) {
            sums.add(x);
        }
        progress(i + 1, chunks.len(), &sums);
    }
    Ok(PplResult { ppl: sums.ppl(), stderr: sums.stderr(), tokens_scored: sums.count, chunks: chunks.len(), ctx: cfg.ctx })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nll_and_chunking() {
        let l = [0.0f32, 0.0, 0.0, 0.0];
        assert!((nll(&l, 2) - 4f64.ln()).abs() < 1e-12);
        let toks: Vec<u32> = (10..21).collect();
        let c = chunks(&toks, 4, Some(1), 0);
        assert_eq!(c, vec![vec![1, 11, 12, 13], vec![1, 15, 16, 17]]);
        assert_eq!(chunks(&toks, 4, None, 1).len(), 1);
        let mut s = NllSums::default();
        for x in [1.0, 2.0, 3.0] {
            s.add(x);
        }
        assert!((s.ppl() - 2f64.exp()).abs() < 1e-12);
        // var = 2/3, stderr = sqrt(var / 2) · e²
        assert!((s.stderr() - (1.0f64 / 3.0).sqrt() * 2f64.exp()).abs() < 1e-12);
    }
}
