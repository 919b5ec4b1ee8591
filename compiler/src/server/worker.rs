//! The model thread: continuous batching over a [`BatchModel`]'s slots.
//! Between decode steps, queued requests take free slots (each prefilled
//! alone, reusing the longest prefix its slot's cache already holds, so the
//! next turn of a chat prefills only what is new); then one batched step
//! decodes a token of every active sequence. Text goes back to the HTTP
//! side as [`Event`]s; a sequence whose receiver is gone (the client
//! disconnected) ends at its next token and frees its slot.

use super::api::{GenParams, Usage};
use crate::generate::batch::BatchModel;
use crate::generate::sampler::Sampler;
use crate::generate::{common_prefix, Decoding, Finish};
use crate::tokenizer::Tokenizer;
use std::sync::mpsc::{Receiver, TryRecvError};
use tokio::sync::mpsc::UnboundedSender;

/// What a request's generation reports.
#[derive(Debug)]
pub enum Event {
    /// More text.
    Text(String),
    /// The end, with why and the token counts.
    Done(Finish, Usage),
    /// The model failed.
    Error(String),
}

/// One queued request.
pub struct Job {
    /// The prompt's token ids.
    pub ids: Vec<u32>,
    /// Sampling and limits.
    pub params: GenParams,
    /// Where its events go.
    pub events: UnboundedSender<Event>,
}

/// A sequence in a slot.
struct Active {
    events: UnboundedSender<Event>,
    dec: Decoding,
    prompt: usize,
    next: u32,
}

/// Samples `a`'s next token from `logits` and reports it; false when the
/// sequence has ended (its `Done` sent).
fn advance(a: &mut Active, tok: &Tokenizer, logits: &[f32], room: bool) -> bool {
    let mut out = String::new();
    let next = a.dec.step(tok, logits, room, &mut out);
    if next.is_some() && a.events.is_closed() {
        a.dec.end(Finish::Cancelled, &mut out);
    }
    if !out.is_empty() && a.events.send(Event::Text(out)).is_err() {
        a.dec.end(Finish::Cancelled, &mut String::new());
    }
    match (next, a.dec.finish) {
        (Some(t), None) => {
            a.next = t;
            true
        }
        (_, finish) => {
            let _ = a.events.send(Event::Done(finish.unwrap_or(Finish::Length), Usage { prompt: a.prompt, completion: a.dec.tokens.len() }));
            false
        }
    }
}

/// Runs jobs until every sender of `jobs` is gone and the last sequence ends.
pub fn serve_jobs(model: &mut dyn BatchModel, tok: &Tokenizer, jobs: &Receiver<Job>) {
    let n = model.slots();
    let ctx = model.context();
    let mut fed: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut active: Vec<Option<Active>> = (0..n).map(|_| None).collect();
    let mut open = true;
    loop {
        // Admit queued requests into free slots (wait for one when idle).
        while open && active.iter().any(Option::is_none) {
            let idle = active.iter().all(Option::is_none);
            let job = match if idle { jobs.recv().map_err(|_| TryRecvError::Disconnected) } else { jobs.try_recv() } {
                Ok(j) => j,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            };
            if job.events.is_closed() {
                continue;
            }
            let slot = (0..n).filter(|&s| active[s].is_none()).max_by_key(|&s| common_prefix(&fed[s], &job.ids)).unwrap_or(0);
            let ids = &job.ids;
            let same = common_prefix(&fed[slot], ids).min(ids.len().saturating_sub(1));
            fed[slot].truncate(same);
            let logits = match model.prefill(slot, &ids[same..], same) {
                Ok(l) => l,
                Err(e) => {
                    fed[slot].clear();
                    let _ = job.events.send(Event::Error(e.to_string()));
                    continue;
                }
            };
            fed[slot].extend_from_slice(&ids[same..]);
            let p = job.params;
            let mut dec = Decoding::new(Sampler::new(p.sampler), p.stop, p.limit);
            dec.accept_prompt(ids);
            let mut a = Active { events: job.events, dec, prompt: ids.len(), next: 0 };
            if advance(&mut a, tok, &logits, fed[slot].len() < ctx) {
                active[slot] = Some(a);
            }
        }
        let rows: Vec<(usize, u32, usize)> = active.iter().enumerate().filter_map(|(s, a)| a.as_ref().map(|a| (s, a.next, fed[s].len()))).collect();
        if rows.is_empty() {
            if open {
                continue;
            }
            return;
        }
        // One batched step for every active sequence.
        match model.decode(&rows) {
            Ok(logits) => {
                let v = model.vocab();
                for (r, &(s, t, _)) in rows.iter().enumerate() {
                    fed[s].push(t);
                    let keep = active[s].as_mut().is_some_and(|a| advance(a, tok, &logits[r * v..(r + 1) * v], fed[s].len() < ctx));
                    if !keep {
                        active[s] = None;
                    }
                }
            }
            Err(e) => {
                for &(s, _, _) in &rows {
                    fed[s].clear();
                    if let Some(a) = active[s].take() {
                        let _ = a.events.send(Event::Error(e.to_string()));
                    }
                }
            }
        }
    }
}
