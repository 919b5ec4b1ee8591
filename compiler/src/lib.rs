//! The flexc driver: the command line, frontends (model importers),
//! tokenizers, model fetching, and the session that runs import → pipeline →
//! backend.

pub mod artifact;
pub mod calib;
pub mod chat;
pub mod cli;
pub mod eval;
pub mod fetch;
pub mod frontend;
pub mod generate;
pub mod npy;
pub mod output;
pub mod pipeline;
pub mod server;
pub mod signals;
pub mod tokenizer;
