//! Storage codecs for quantized weights: the ggml block formats and flexc's own
//! schemes. Each codec turns packed bytes into f32 values bit-exactly.
//!
//! [`decode`] and [`encode`] are the one entry point per [`Encoding`]: every
//! consumer (the interpreter, the JIT's packers, passes) goes through them.

pub mod ggml;

pub use ggml::{GgmlType, QuantError};

use crate::types::Encoding;

/// The ggml block formats flexc has codecs for, and so accepts as encodings.
pub const GGML_ENCODINGS: &[GgmlType] = &[
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::Q8_K,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
];

/// Decodes storage bytes of an encoded tensor into `out.len()` f32 values.
pub fn decode(enc: Encoding, bytes: &[u8], out: &mut [f32]) -> Result<(), String> {
    match enc {
        Encoding::Ggml(t) => Err(format!("{} decoding arrives with the ggml codecs ({} bytes, {} values)", t.name(), bytes.len(), out.len())),
    }
}

/// Encodes f32 values (a whole number of blocks) into an encoding's storage bytes.
pub fn encode(enc: Encoding, values: &[f32]) -> Result<Vec<u8>, String> {
    match enc {
        Encoding::Ggml(t) => Err(format!("{} encoding arrives with the ggml codecs ({} values)", t.name(), values.len())),
    }
}
