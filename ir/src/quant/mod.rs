//! Storage codecs for quantized weights: the ggml block formats and flexc's own
//! schemes. Each codec turns packed bytes into f32 values bit-exactly.
//!
//! [`decode`] and [`encode`] are the one entry point per [`Encoding`]: every
//! consumer (the interpreter, the JIT's packers, passes) goes through them.

pub mod bcq;
pub mod bcq_shared;
pub mod ggml;
pub mod nm;
pub mod gq;
pub mod lowbit;
pub mod ternary;

pub use ggml::{GgmlType, QuantError};
pub use lowbit::{BcqParams, BcqScales, GqParams, TernaryParams, BCQ_GROUP_ACC, BCQ_GROUP_LAT};

use crate::types::Encoding;

/// True for the ggml block formats flexc can decode, which it therefore
/// accepts as encodings (plain f32/f16/bf16 are element types, not encodings).
pub fn is_ggml_encoding(t: GgmlType) -> bool {
    t.is_quantized() && ggml::can_dequantize(t)
}

/// Decodes storage bytes of an encoded tensor into `out.len()` f32 values.
pub fn decode(enc: Encoding, bytes: &[u8], out: &mut [f32]) -> Result<(), String> {
    match enc {
        Encoding::Ggml(t) => ggml::dequantize(t, bytes, out).map_err(|e| e.to_string()),
        Encoding::Nm { n, m } => nm::decode(n, m, bytes, out),
        Encoding::Gq(p) => p.decode(bytes, out),
        Encoding::Ternary(p) => p.decode(bytes, out),
        Encoding::Bcq(p) => p.decode(bytes, out),
    }
}

/// Encodes f32 values (a whole number of blocks) into an encoding's storage bytes.
pub fn encode(enc: Encoding, values: &[f32]) -> Result<Vec<u8>, String> {
    match enc {
        Encoding::Ggml(t) => ggml::quantize_to_vec(t, values).map_err(|e| e.to_string()),
        Encoding::Nm { n, m } => nm::encode(n, m, values),
        Encoding::Gq(p) => p.encode(values),
        Encoding::Ternary(p) => p.encode(values),
        Encoding::Bcq(p) => p.encode(values),
    }
}

/// Encodes the values of a tensor of `shape`: [`encode`], except that the
/// shared-scale `#bcq` layouts (`scales = acc|lat`) quantize a `[rows, cols]`
/// matrix as a whole ([`BcqParams::encode_shared`]).
pub fn encode_shaped(enc: Encoding, values: &[f32], shape: &[usize]) -> Result<Vec<u8>, String> {
    match (enc, shape) {
        (Encoding::Bcq(p), &[rows, cols]) if p.scales() != BcqScales::Row => p.encode_shared(values, rows, cols, bcq::REFINE_ROUNDS),
        (Encoding::Bcq(p), _) if p.scales() != BcqScales::Row => Err(format!("{enc} needs a [rows, cols] tensor, got {} dimensions", shape.len())),
        _ => encode(enc, values),
    }
}
