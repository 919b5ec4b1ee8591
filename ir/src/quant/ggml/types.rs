//! `GgmlType`: ggml's tensor element types with their on-disk numeric ids
//! (checked against `enum ggml_type` in llama.cpp's `ggml/include/ggml.h`),
//! lowercase names, block geometry, row sizes and codecs.
//!
//! Every id ggml currently defines is listed, including the ones flexc cannot
//! decode (IQ*, integer, MXFP4…), so a GGUF reader can describe any file and
//! only the codec refuses what it does not support.
//!
//! The types are one table ([`ggml_types!`]'s invocation below): a row gives
//! the id, the name, the block geometry, the block codecs and the block's
//! float scale fields, so a new ggml
//! type is its codec file plus one row.

use super::blocks::off;
use super::{dequant, quantize, QuantError};

/// Elements per super-block of the K-quants (ggml's `QK_K`).
pub const QK_K: usize = 256;

/// Decodes one block (`src.len() == type_size`, `dst.len() == block_size`).
pub(super) type DequantFn = fn(&[u8], &mut [f32]);
/// Encodes one block (`x.len() == block_size`, `y.len() == type_size`).
pub(super) type QuantFn = fn(&[f32], &mut [u8]);

/// Declares [`GgmlType`] and its per-type facts from one table.
macro_rules! ggml_types {
    ($($v:ident = $id:literal, $name:literal, $block:expr, $bytes:expr, $deq:expr, $q:expr, $scales:expr;)*) => {
        /// ggml's `enum ggml_type`. The discriminant is the id stored in GGUF files.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        #[allow(non_camel_case_types)]
        #[allow(missing_docs)] // the variants are ggml's own type names, listed with their ids
        pub enum GgmlType {
            $($v = $id,)*
        }

        impl GgmlType {
            /// Every type, in id order.
            pub const ALL: &[GgmlType] = &[$(GgmlType::$v,)*];

            /// Lowercase name as ggml's `ggml_type_name` prints it ("q4_k", "bf16").
            pub fn name(self) -> &'static str {
                match self {
                    $(GgmlType::$v => $name,)*
                }
            }

            /// Elements per block (1 for the plain scalar types).
            pub fn block_size(self) -> usize {
                match self {
                    $(GgmlType::$v => $block,)*
                }
            }

            /// Bytes per block (ggml's `type_size`), as laid out in `ggml-common.h`.
            pub fn type_size(self) -> usize {
                match self {
                    $(GgmlType::$v => $bytes,)*
                }
            }

            /// The block decoder, `None` where flexc has none.
            pub(super) fn dequant_fn(self) -> Option<DequantFn> {
                match self {
                    $(GgmlType::$v => $deq,)*
                }
            }

            /// The block encoder, `None` where flexc has none.
            pub(super) fn quant_fn(self) -> Option<QuantFn> {
                match self {
                    $(GgmlType::$v => $q,)*
                }
            }

            /// The float scale fields of one block (`d`, `dmin`, `m`), listed
            /// for the types flexc decodes: what random test and benchmark
            /// blocks set to a sane value.
            pub fn scale_fields(self) -> &'static [ScaleField] {
                match self {
                    $(GgmlType::$v => $scales,)*
                }
            }
        }
    };
}

/// A float scale field of a block: its byte offset and width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleField {
    /// An fp16 at this offset.
    F16(usize),
    /// An f32 at this offset.
    F32(usize),
}

/// Shorthand for [`QK_K`] in the table.
const K: usize = QK_K;
/// Shorthands for the scale columns of the table.
const NONE: &[ScaleField] = &[];
const D0: &[ScaleField] = &[ScaleField::F16(0)];

#[rustfmt::skip]
ggml_types! {
    // variant = id, name,    elements per block, bytes per block,          decoder,                     encoder,                        scale fields
    F32     = 0,  "f32",     1,   4,                                       Some(dequant::f32_block),    Some(quantize::f32_block),      NONE;
    F16     = 1,  "f16",     1,   2,                                       Some(dequant::f16_block),    Some(quantize::f16_block),      NONE;
    Q4_0    = 2,  "q4_0",    32,  2 + 16,                                  Some(dequant::q4_0),         Some(quantize::q4_0),           D0;
    Q4_1    = 3,  "q4_1",    32,  2 + 2 + 16,                              Some(dequant::q4_1),         Some(quantize::q4_1),           &[ScaleField::F16(0), ScaleField::F16(off::Q4_1_M)];
    Q5_0    = 6,  "q5_0",    32,  2 + 4 + 16,                              Some(dequant::q5_0),         Some(quantize::q5_0),           D0;
    Q5_1    = 7,  "q5_1",    32,  2 + 2 + 4 + 16,                          Some(dequant::q5_1),         Some(quantize::q5_1),           &[ScaleField::F16(0), ScaleField::F16(off::Q5_1_M)];
    Q8_0    = 8,  "q8_0",    32,  2 + 32,                                  Some(dequant::q8_0),         Some(quantize::q8_0),           D0;
    Q8_1    = 9,  "q8_1",    32,  2 + 2 + 32,                              None,                        None,                           NONE;
    Q2_K    = 10, "q2_k",    K,   2 + 2 + K / 16 + K / 4,                  Some(dequant::q2_k),         Some(quantize::q2_k),           &[ScaleField::F16(off::Q2K_D), ScaleField::F16(off::Q2K_DMIN)];
    Q3_K    = 11, "q3_k",    K,   2 + K / 4 + K / 8 + 12,                  Some(dequant::q3_k),         None,                           &[ScaleField::F16(off::Q3K_D)];
    Q4_K    = 12, "q4_k",    K,   2 + 2 + K / 2 + 12,                      Some(dequant::q4_k),         None,                           &[ScaleField::F16(off::Q4K_D), ScaleField::F16(off::Q4K_DMIN)];
    Q5_K    = 13, "q5_k",    K,   2 + 2 + K / 2 + K / 8 + 12,              Some(dequant::q5_k),         None,                           &[ScaleField::F16(off::Q5K_D), ScaleField::F16(off::Q5K_DMIN)];
    Q6_K    = 14, "q6_k",    K,   2 + K / 2 + K / 4 + K / 16,              Some(dequant::q6_k),         None,                           &[ScaleField::F16(off::Q6K_D)];
    Q8_K    = 15, "q8_k",    K,   4 + K + K / 8,                           Some(dequant::q8_k),         Some(quantize::q8_k),           &[ScaleField::F32(0)];
    IQ2_XXS = 16, "iq2_xxs", K,   2 + K / 4,                               None,                        None,                           NONE;
    IQ2_XS  = 17, "iq2_xs",  K,   2 + K / 4 + K / 32,                      None,                        None,                           NONE;
    IQ3_XXS = 18, "iq3_xxs", K,   2 + K / 4 + K / 8,                       None,                        None,                           NONE;
    IQ1_S   = 19, "iq1_s",   K,   2 + K / 8 + K / 16,                      None,                        None,                           NONE;
    IQ4_NL  = 20, "iq4_nl",  32,  2 + 16,                                  None,                        None,                           NONE;
    IQ3_S   = 21, "iq3_s",   K,   2 + K / 4 + K / 8 + K / 32 + 4,          None,                        None,                           NONE;
    IQ2_S   = 22, "iq2_s",   K,   2 + K / 4 + K / 16,                      None,                        None,                           NONE;
    IQ4_XS  = 23, "iq4_xs",  K,   2 + 2 + K / 2 + K / 64,                  None,                        None,                           NONE;
    I8      = 24, "i8",      1,   1,                                       None,                        None,                           NONE;
    I16     = 25, "i16",     1,   2,                                       None,                        None,                           NONE;
    I32     = 26, "i32",     1,   4,                                       None,                        None,                           NONE;
    I64     = 27, "i64",     1,   8,                                       None,                        None,                           NONE;
    F64     = 28, "f64",     1,   8,                                       None,                        None,                           NONE;
    IQ1_M   = 29, "iq1_m",   K,   K / 8 + K / 16 + K / 32,                 None,                        None,                           NONE;
    BF16    = 30, "bf16",    1,   2,                                       Some(dequant::bf16_block),   Some(quantize::bf16_block),     NONE;
    TQ1_0   = 34, "tq1_0",   K,   2 + 4 * 13,                              Some(dequant::tq1_0),        Some(quantize::tq1_0),          &[ScaleField::F16(off::TQ1_D)];
    TQ2_0   = 35, "tq2_0",   K,   2 + 64,                                  Some(dequant::tq2_0),        Some(quantize::tq2_0),          &[ScaleField::F16(off::TQ2_D)];
    MXFP4   = 39, "mxfp4",   32,  1 + 16,                                  None,                        None,                           NONE;
    Q1_0    = 41, "q1_0",    super::q1_0::QK, super::q1_0::BYTES,          Some(super::q1_0::dequant),  Some(super::q1_0::quantize),    D0;
    Q2_0    = 42, "q2_0",    super::q2_0::QK, super::q2_0::BYTES,          Some(super::q2_0::dequant),  Some(super::q2_0::quantize),    D0;
}

impl GgmlType {
    /// The type with ggml id `id`, or `None` for ids ggml does not define
    /// (4, 5, 31–33 and 36–38 were removed from ggml) or flexc does not list.
    pub fn from_u32(id: u32) -> Option<GgmlType> {
        Self::ALL.iter().copied().find(|t| *t as u32 == id)
    }

    /// ggml's numeric id.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// Inverse of [`GgmlType::name`]; case-insensitive ("Q4_K" works too).
    pub fn from_name(name: &str) -> Option<GgmlType> {
        Self::ALL.iter().copied().find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// Whether the type is a block-quantized format (block size > 1).
    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// Bytes of one row of `n_elems` elements. Errors when `n_elems` is not a
    /// multiple of the block size or the byte count overflows `u64`.
    pub fn row_bytes(self, n_elems: u64) -> Result<u64, QuantError> {
        let bs = self.block_size() as u64;
        if !n_elems.is_multiple_of(bs) {
            return Err(QuantError::NotBlockMultiple {
                ty: self,
                n: n_elems,
                block: bs as usize,
            });
        }
        (n_elems / bs)
            .checked_mul(self.type_size() as u64)
            .ok_or(QuantError::Overflow {
                ty: self,
                n: n_elems,
            })
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
