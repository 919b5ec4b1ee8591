//! The flexc driver: the command line, frontends (model importers),
//! tokenizers, and the session that runs import → pipeline → backend. Model
//! fetching (`flexc pull`, `flexc models`) is the `flexc-fetch` crate.

pub mod artifact;
pub mod calib;
pub mod chat;
pub mod cli;
pub mod eval;
pub mod frontend;
pub mod generate;
pub mod npy;
pub mod output;
pub mod pipeline;
pub mod server;
pub mod signals;
pub mod tokenizer;
