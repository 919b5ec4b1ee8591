//! Several sequences at once: a [`BatchModel`] keeps one KV cache per slot,
//! prefills a sequence in its slot, and decodes one token of each active
//! sequence in a single step (the CPU runtime reads every weight once per
//! step for all of them). Any [`LanguageModel`] is a one-slot batch model.

use super::{check_context, LanguageModel, ModelError};

/// A model with per-slot KV caches and a batched decode step.
pub trait BatchModel {
    /// Vocabulary size.
    fn vocab(&self) -> usize;
    /// KV-cache capacity of each slot, in tokens.
    fn context(&self) -> usize;
    /// Number of slots.
    fn slots(&self) -> usize;
    /// Runs `tokens` at positions `pos..` of slot `slot`; the last row's logits.
    fn prefill(&mut self, slot: usize, tokens: &[u32], pos: usize) -> Result<Vec<f32>, ModelError>;
    /// One step: row `(slot, token, pos)` for each sequence (distinct
    /// slots); the logits of every row, row after row.
    fn decode(&mut self, rows: &[(usize, u32, usize)]) -> Result<Vec<f32>, ModelError>;
}

/// A [`LanguageModel`] as a one-slot batch model.
pub struct OneSlot<'m>(pub Box<dyn LanguageModel + 'm>);

impl BatchModel for OneSlot<'_> {
    fn vocab(&self) -> usize {
        self.0.vocab()
    }

    fn context(&self) -> usize {
        self.0.context()
    }

    fn slots(&self) -> usize {
        1
    }

    fn prefill(&mut self, slot: usize, tokens: &[u32], pos: usize) -> Result<Vec<f32>, ModelError> {
        if slot != 0 {
            return Err(ModelError(format!("slot {slot} does not exist (1 slot)")));
        }
        self.0.forward(tokens, pos, 1)
    }

    fn decode(&mut self, rows: &[(usize, u32, usize)]) -> Result<Vec<f32>, ModelError> {
        match rows {
            [(0, t, p)] => self.0.forward(&[*t], *p, 1),
            _ => Err(ModelError("a one-slot model decodes one row of slot 0".into())),
        }
    }
}

/// Checks a batched step against the context.
pub fn check_rows(rows: &[(usize, u32, usize)], ctx: usize) -> Result<(), ModelError> {
    rows.iter().try_for_each(|&(_, _, p)| check_context(1, p, ctx))
}
