//! ggml's block formats: type ids and geometry ([`GgmlType`]), the packed
//! block structs of `ggml-common.h`, and codecs that are bit-exact with
//! ggml's reference C code (`dequantize_row_*`, `quantize_row_*_ref`).
//!
//! The codecs work on byte slices rather than on block structs so that they
//! can read straight out of a memory-mapped GGUF file, which gives no
//! alignment guarantee; the `#[repr(C)]` structs document and size-check the
//! layout that the byte offsets in the codecs follow.

mod types;

pub use types::{GgmlType, QK_K};

/// Errors of the ggml codecs. Every malformed input is reported, never panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantError {
    #[error("{ty}: {n} elements is not a multiple of the block size {block}")]
    NotBlockMultiple { ty: GgmlType, n: u64, block: usize },
    #[error("{ty}: byte size of {n} elements overflows")]
    Overflow { ty: GgmlType, n: u64 },
    #[error("{ty}: {n_out} output elements need {expected} bytes, got {got}")]
    LengthMismatch {
        ty: GgmlType,
        n_out: usize,
        expected: u64,
        got: usize,
    },
    #[error("{ty}: {op} is not supported for this type")]
    Unsupported { ty: GgmlType, op: &'static str },
}
