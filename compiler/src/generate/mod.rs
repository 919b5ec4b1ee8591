//! Text generation over any backend: a [`LanguageModel`] turns tokens at a
//! position into logits (keeping its own KV cache); a [`Session`] remembers
//! which tokens the cache holds so a follow-up prompt (the next chat turn)
//! only prefills what is new; a [`Decoding`] samples one sequence and turns
//! its tokens into text, honouring the token limit and stop strings.

pub mod batch;
pub mod cpu;
pub mod reference;
pub mod sampler;
pub mod text;

use crate::tokenizer::Tokenizer;
use clap::ValueEnum;
use sampler::Sampler;
use std::time::{Duration, Instant};
use text::TextStream;

/// Which engine runs the model.
#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
pub enum Backend {
    /// The Cranelift JIT runtime (the default).
    Cpu,
    /// The reference interpreter: scalar and slow, the correctness oracle.
    Reference,
}

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

/// The token ids of a prompt: control tokens written in the text are matched
/// (a rendered chat template spells them out), and BOS is added when the
/// model asks for it unless the text already starts with it.
pub fn prompt_ids(tok: &Tokenizer, text: &str) -> Vec<u32> {
    let mut ids = tok.encode_with_special(text, false);
    if tok.add_bos_by_default()
        && let Some(bos) = tok.bos()
        && ids.first() != Some(&bos)
    {
        ids.insert(0, bos);
    }
    ids
}

/// The length of the longest common prefix of two token lists.
pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Why a generation ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Finish {
    /// The model produced an end-of-generation token.
    Eog,
    /// A stop string appeared (it is not part of the text).
    StopString,
    /// The token limit was reached.
    Length,
    /// The KV cache is full.
    Context,
    /// The caller cancelled (Ctrl-C, a client went away).
    Cancelled,
}

impl Finish {
    /// The OpenAI `finish_reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Finish::Eog | Finish::StopString | Finish::Cancelled => "stop",
            Finish::Length | Finish::Context => "length",
        }
    }
}

/// Timings of one generation.
#[derive(Clone, Debug, Default)]
pub struct GenStats {
    /// Prompt tokens (BOS included).
    pub prompt_tokens: usize,
    /// Prompt tokens actually run (the rest were already in the KV cache).
    pub prefilled: usize,
    /// Generated tokens.
    pub generated: usize,
    /// Time to run the prompt.
    pub prefill: Duration,
    /// Time for the generated tokens after the first.
    pub decode: Duration,
}

/// One sequence being sampled: the sampler, the text decoder with its stop
/// strings, the token limit, and what has been generated.
pub struct Decoding {
    sampler: Sampler,
    text: TextStream,
    limit: Option<usize>,
    /// The generated tokens (end-of-generation tokens excluded).
    pub tokens: Vec<u32>,
    /// Set once the sequence has ended.
    pub finish: Option<Finish>,
}

impl Decoding {
    /// A fresh sequence: at most `limit` tokens (`None`: until EOG or the
    /// context ends), cut at the first of `stop`.
    pub fn new(sampler: Sampler, stop: Vec<String>, limit: Option<usize>) -> Decoding {
        Decoding { sampler, text: TextStream::new(stop), limit, tokens: Vec::new(), finish: None }
    }

    /// Lets the penalties see the prompt.
    pub fn accept_prompt(&mut self, ids: &[u32]) {
        ids.iter().for_each(|&t| self.sampler.accept(t));
    }

    /// Samples the next token from `logits`, appends its text to `out`, and
    /// returns the token to feed next, or `None` when the sequence has ended
    /// (`room`: whether the KV cache can take one more token).
    pub fn step(&mut self, tok: &Tokenizer, logits: &[f32], room: bool, out: &mut String) -> Option<u32> {
        if self.finish.is_some() {
            return None;
        }
        if self.limit == Some(0) {
            return self.end(Finish::Length, out);
        }
        let next = self.sampler.sample(logits);
        if tok.is_eog(next) {
            return self.end(Finish::Eog, out);
        }
        self.tokens.push(next);
        self.sampler.accept(next);
        if self.text.push(&tok.decode_piece(next), out) {
            self.finish = Some(Finish::StopString);
            return None;
        }
        if self.limit.is_some_and(|n| self.tokens.len() >= n) {
            return self.end(Finish::Length, out);
        }
        if !room {
            return self.end(Finish::Context, out);
        }
        Some(next)
    }

    /// Ends the sequence for `why`, flushing held-back text into `out`.
    pub fn end(&mut self, why: Finish, out: &mut String) -> Option<u32> {
        if self.finish.is_none() {
            self.text.flush(out);
            self.finish = Some(why);
        }
        None
    }
}

/// A model and the tokens its KV cache holds, positions `0..fed.len()`.
pub struct Session<'m> {
    /// The model.
    pub model: Box<dyn LanguageModel + 'm>,
    fed: Vec<u32>,
}

impl<'m> Session<'m> {
    /// A session over an empty cache.
    pub fn new(model: Box<dyn LanguageModel + 'm>) -> Session<'m> {
        Session { model, fed: Vec::new() }
    }

    /// The tokens in the cache.
    pub fn cached(&self) -> &[u32] {
        &self.fed
    }

    /// Makes the cache hold exactly `ids` and returns the logits after the
    /// last one, running only what follows the longest prefix already cached
    /// (the last token is always run, for its logits). Entries past the new
    /// end are stale but unread: attention stops at the query's position.
    pub fn prefill(&mut self, ids: &[u32]) -> Result<Vec<f32>, ModelError> {
        if ids.is_empty() {
            return Err(ModelError("the prompt is empty and the model adds no BOS token".into()));
        }
        check_context(ids.len(), 0, self.model.context())?;
        let same = common_prefix(&self.fed, ids).min(ids.len() - 1);
        self.fed.truncate(same);
        let logits = self.model.forward(&ids[same..], same, 1);
        if logits.is_err() {
            self.fed.clear();
        } else {
            self.fed.extend_from_slice(&ids[same..]);
        }
        logits
    }

    /// Runs one token after the cached ones.
    pub fn feed(&mut self, token: u32) -> Result<Vec<f32>, ModelError> {
        let logits = self.model.forward(&[token], self.fed.len(), 1);
        if logits.is_err() {
            self.fed.clear();
        } else {
            self.fed.push(token);
        }
        logits
    }

    /// Generates after prompt `ids` (reusing the cached prefix), calling
    /// `emit` with text as soon as it is complete UTF-8 and clear of stop
    /// strings, until `dec` finishes or `cancel()` says so.
    pub fn generate(&mut self, tok: &Tokenizer, ids: &[u32], dec: &mut Decoding, emit: &mut dyn FnMut(&str), cancel: &dyn Fn() -> bool) -> Result<GenStats, ModelError> {
        let mut stats = GenStats { prompt_tokens: ids.len(), ..Default::default() };
        let t0 = Instant::now();
        let before = common_prefix(&self.fed, ids).min(ids.len().saturating_sub(1));
        let mut logits = self.prefill(ids)?;
        stats.prefilled = ids.len() - before;
        stats.prefill = t0.elapsed();
        dec.accept_prompt(ids);
        let t1 = Instant::now();
        let mut out = String::new();
        loop {
            out.clear();
            let room = self.fed.len() < self.model.context();
            let next = dec.step(tok, &logits, room, &mut out);
            if next.is_some() && cancel() {
                dec.end(Finish::Cancelled, &mut out);
            }
            if !out.is_empty() {
                emit(&out);
            }
            match next {
                Some(t) if dec.finish.is_none() => logits = self.feed(t)?,
                _ => break,
            }
        }
        stats.generated = dec.tokens.len();
        stats.decode = t1.elapsed();
        Ok(stats)
    }
}
