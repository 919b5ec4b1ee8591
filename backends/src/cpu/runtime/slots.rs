//! Sequence slots and batched decoding. A runtime can keep the KV state of
//! several independent sequences: slot 0 is its own state buffers, slots
//! 1.. are allocated on first use. [`CpuRuntime::run_slot`] runs a call
//! (a prefill) against one slot's caches; [`CpuRuntime::run_batch`] runs
//! one token of each of several sequences as the rows of one call, so every
//! GEMV becomes a small GEMM that reads each weight once for all of them,
//! while rotary embedding, the cache write and attention use each row's own
//! position and slot.

use super::exec::attend;
use super::plan::{BufRef, ParamKind};
use super::{invalid, CpuRuntime, Input, RuntimeError};

/// The rows of a batched call: row `r` is at position `pos[r]` of slot `slots[r]`.
pub(super) struct Batch {
    pub pos: Vec<usize>,
    pub slots: Vec<usize>,
}

impl CpuRuntime {
    fn state_bufs(&self) -> Vec<usize> {
        self.plan.params.iter().filter_map(|p| if let ParamKind::State { buf } = p { Some(*buf) } else { None }).collect()
    }

    /// Makes slots `0..n` exist (zeroed when new).
    pub fn ensure_slots(&mut self, n: usize) {
        let bufs = self.state_bufs();
        while self.slot_states.len() + 1 < n {
            let fresh = bufs.iter().map(|&b| vec![0.0; self.bufs[b].len()]).collect();
            self.slot_states.push(fresh);
        }
    }

    /// Slots available (at least 1).
    pub fn slots(&self) -> usize {
        self.slot_states.len() + 1
    }

    fn swap_slot(&mut self, slot: usize) {
        if slot == 0 {
            return;
        }
        let bufs = self.state_bufs();
        for (i, b) in bufs.into_iter().enumerate() {
            std::mem::swap(&mut self.bufs[b], &mut self.slot_states[slot - 1][i]);
        }
    }

    /// [`CpuRuntime::run_tail`] against slot `slot`'s state.
    pub fn run_slot(&mut self, slot: usize, inputs: &[Input<'_>], tail: Option<usize>) -> Result<(), RuntimeError> {
        if slot >= self.slots() {
            return Err(invalid(format!("slot {slot} does not exist ({} slots)", self.slots())));
        }
        self.swap_slot(slot);
        let r = self.run_tail(inputs, tail);
        self.swap_slot(slot);
        r
    }

    /// One decode step of several sequences: token `tokens[r]` at position
    /// `pos[r]` of slot `slots[r]` (distinct slots). The logits of every row
    /// are [`output`](CpuRuntime::output) 0 afterwards, row after row.
    pub fn run_batch(&mut self, tokens: &[i32], pos: &[usize], slots: &[usize]) -> Result<(), RuntimeError> {
        if tokens.is_empty() || tokens.len() != pos.len() || tokens.len() != slots.len() {
            return Err(invalid("a batch needs one position and slot per token"));
        }
        if let Some(&s) = slots.iter().find(|&&s| s >= self.slots()) {
            return Err(invalid(format!("slot {s} does not exist ({} slots)", self.slots())));
        }
        let mut seen = slots.to_vec();
        seen.sort_unstable();
        if seen.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid("a batch holds each slot at most once"));
        }
        if self.plan.params.len() < 2 || !matches!(self.plan.params[0], ParamKind::Tokens) || !matches!(self.plan.params[1], ParamKind::Scalar) {
            return Err(invalid("batched decoding needs a function of (tokens, pos, caches...)"));
        }
        self.batch = Some(Batch { pos: pos.to_vec(), slots: slots.to_vec() });
        let r = self.run_tail(&[Input::I32(tokens), Input::Scalar(0)], None);
        self.batch = None;
        r
    }

    /// The state index of a cache buffer.
    fn state_index(&self, buf: usize) -> Result<usize, RuntimeError> {
        self.state_bufs().iter().position(|&b| b == buf).ok_or_else(|| invalid("batched decoding: a cache operand is not a state parameter"))
    }

    /// Slot `slot`'s copy of state buffer `buf` (`i` = its state index).
    fn slot_buf(&mut self, slot: usize, buf: usize, i: usize) -> &mut Vec<f32> {
        if slot == 0 { &mut self.bufs[buf] } else { &mut self.slot_states[slot - 1][i] }
    }

    /// `cache_write` of row `r` of `x` into its slot's cache at its position.
    pub(super) fn batch_cache_write(&mut self, cache: BufRef, x: BufRef, cap: usize) -> Result<(), RuntimeError> {
        let b = self.batch.take().ok_or_else(|| invalid("internal: no batch"))?;
        let r = (|| {
            let si = self.state_index(cache.buf)?;
            let row = cache.row / cap;
            let xs = std::mem::take(&mut self.bufs[x.buf]);
            for (r, (&p, &s)) in b.pos.iter().zip(&b.slots).enumerate() {
                if p >= cap {
                    self.bufs[x.buf] = xs;
                    return Err(invalid(format!("cache write at position {p} overflows the capacity {cap}")));
                }
                self.slot_buf(s, cache.buf, si)[p * row..(p + 1) * row].copy_from_slice(&xs[r * row..(r + 1) * row]);
            }
            self.bufs[x.buf] = xs;
            Ok(())
        })();
        self.batch = Some(b);
        r
    }

    /// Attention of each row over its own slot's caches up to its position.
    pub(super) fn batch_attention(&mut self, q: BufRef, k: BufRef, v: BufRef, out: BufRef, shape: &super::attention::AttnShape, kernels: Option<&super::jitattn::AttnKernels>) -> Result<(), RuntimeError> {
        let b = self.batch.take().ok_or_else(|| invalid("internal: no batch"))?;
        let r = (|| {
            let (ki, vi) = (self.state_index(k.buf)?, self.state_index(v.buf)?);
            let a = *shape;
            let (qrow, orow) = (a.hq * a.d, a.hq * a.dv);
            if self.len(q) < b.pos.len() * qrow || self.len(out) < b.pos.len() * orow {
                return Err(invalid("attention operand sizes"));
            }
            let mut o = std::mem::take(&mut self.bufs[out.buf]);
            let mut res = Ok(());
            for (r, (&p, &s)) in b.pos.iter().zip(&b.slots).enumerate() {
                let (ks, vs): (&[f32], &[f32]) = if s == 0 { (&self.bufs[k.buf], &self.bufs[v.buf]) } else { (&self.slot_states[s - 1][ki], &self.slot_states[s - 1][vi]) };
                let qs = &self.bufs[q.buf][r * qrow..(r + 1) * qrow];
                res = attend(&self.pool, &mut self.scratch, &a, kernels, (qs, ks, vs), &mut o[r * orow..(r + 1) * orow], p, 1);
                if res.is_err() {
                    break;
                }
            }
            self.bufs[out.buf] = o;
            res.map_err(invalid)
        })();
        self.batch = Some(b);
        r
    }
}
