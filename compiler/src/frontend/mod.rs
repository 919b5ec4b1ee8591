//! Model importers: GGUF, safetensors and flexc's own `.fir` text.

pub mod gguf;
