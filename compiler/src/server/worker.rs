//! The model thread: requests queue here and are run in arrival order on
//! one [`Session`], whose KV cache keeps the previous request's tokens so
//! a request sharing its prefix (the next turn of a chat) prefills only the
//! rest. Text goes back to the HTTP side as [`Event`]s; a receiver that is
//! gone (the client disconnected) stops its generation at the next token.

use super::api::{GenParams, Usage};
use crate::generate::sampler::Sampler;
use crate::generate::{Decoding, Finish, Session};
use crate::tokenizer::Tokenizer;
use std::cell::Cell;
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

/// Runs jobs until every sender of `jobs` is gone.
pub fn serve_jobs(session: &mut Session<'_>, tok: &Tokenizer, jobs: &std::sync::mpsc::Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        if job.events.is_closed() {
            continue;
        }
        let gone = Cell::new(false);
        let p = job.params;
        let mut dec = Decoding::new(Sampler::new(p.sampler), p.stop, p.limit);
        let r = session.generate(tok, &job.ids, &mut dec, &mut |s| {
            if job.events.send(Event::Text(s.to_string())).is_err() {
                gone.set(true);
            }
        }, &|| gone.get() || job.events.is_closed());
        let _ = job.events.send(match r {
            Ok(stats) => Event::Done(dec.finish.unwrap_or(Finish::Length), Usage { prompt: stats.prompt_tokens, completion: stats.generated }),
            Err(e) => Event::Error(e.to_string()),
        });
    }
}
