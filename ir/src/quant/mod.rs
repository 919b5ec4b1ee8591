//! Storage codecs for quantized weights: the ggml block formats and flexc's own
//! schemes. Each codec turns packed bytes into f32 values bit-exactly.

pub mod ggml;

pub use ggml::{GgmlType, QuantError};
