//! The flexc driver: frontends (model importers), tokenizers, model fetching,
//! and the session that runs import → pipeline → backend.

pub mod fetch;
pub mod frontend;
pub mod tokenizer;
