//! Storage codecs for quantized weights: the ggml block formats and flexc's own
//! schemes. Each codec turns packed bytes into f32 values bit-exactly.
//!
//! [`encoding`] is the registry: every encoding is one [`Encoding`] variant
//! whose parameter type implements [`Scheme`] in its own file, and every
//! consumer (the interpreter, the JIT's packers, passes) goes through it.

pub mod bcq;
pub mod bcq_shared;
pub mod encoding;
pub mod ggml;
pub mod gq;
pub mod lowbit;
pub mod nm;
pub mod plan;
pub mod ternary;

pub use encoding::{AffineFit, AffineGrid, AffineScheme, Encoding, GridOffset, ParamValue, Primitive, Scheme};
pub use ggml::{GgmlType, QuantError};
pub use lowbit::{BcqLayout, BcqParams, BcqScales, GqParams, TernaryParams};
pub use nm::Nm;

/// True for the ggml block formats flexc can decode, which it therefore
/// accepts as encodings (plain f32/f16/bf16 are element types, not encodings).
pub fn is_ggml_encoding(t: GgmlType) -> bool {
    t.is_quantized() && ggml::can_dequantize(t)
}

/// Decodes a run of whole rows (`out.len()` values along the last axis) of a
/// row-local encoding: [`Encoding::decode`] with the rank-1 shape
/// `[out.len()]`. Encodings that are not row-local (`#bcq` with shared
/// scales) need the tensor's shape: call [`Encoding::decode`].
pub fn decode(enc: Encoding, bytes: &[u8], out: &mut [f32]) -> Result<(), String> {
    enc.decode(&[out.len()], bytes, out)
}

/// Encodes a run of whole rows: [`Encoding::encode`] with the rank-1 shape
/// `[values.len()]` (see [`decode`]).
pub fn encode(enc: Encoding, values: &[f32]) -> Result<Vec<u8>, String> {
    enc.encode(&[values.len()], values)
}
