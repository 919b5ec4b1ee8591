//! Tests of the registry's questions that carry logic: derived-name tags,
//! the LUT kernel's streamed planes, and random storage that decodes to
//! sane values in every encoding.

use super::*;
use crate::quant::ggml::ScaleField;
use crate::quant::{is_ggml_encoding, BcqParams, BcqScales, GgmlType, GqParams, Nm, TernaryParams};

fn gq(bits: u8, group: u32, zero: bool) -> Encoding {
    GqParams { bits, group, zero }.into()
}

/// A deterministic byte source (xorshift64).
fn filler(seed: u64) -> impl FnMut(&mut [u8]) {
    let mut s = seed | 1;
    move |b: &mut [u8]| {
        for x in b {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            *x = (s >> 24) as u8;
        }
    }
}

#[test]
fn tags_name_the_encoding_and_its_parameters() {
    assert_eq!(gq(3, 64, true).tag(), "gq3g64");
    assert_eq!(gq(2, 32, false).tag(), "gq2g32s");
    assert_eq!(Encoding::from(BcqParams::row(2, 128, false, 3)).tag(), "bcq2");
    assert_eq!(Encoding::from(BcqParams::row(3, 128, true, 2)).tag(), "shiftadd3");
    assert_eq!(Encoding::from(BcqParams::shared(4, true, 3, BcqScales::Lat)).tag(), "shiftadd4.lat");
    assert_eq!(Encoding::from(BcqParams::shared(1, false, 3, BcqScales::Acc)).tag(), "bcq1.acc");
    assert_eq!(Encoding::from(TernaryParams { group: 0 }).tag(), "ternary");
    assert_eq!(Encoding::from(GgmlType::Q4_K).tag(), "q4_k");
    assert_eq!(Encoding::from(Nm::TWO_FOUR).tag(), "nm");
}

#[test]
fn code_bits_are_the_code_width_or_the_storage_bits() {
    assert_eq!(gq(3, 64, true).code_bits(), 3.0);
    assert_eq!(Encoding::from(BcqParams::row(2, 64, true, 3)).code_bits(), 2.0);
    assert_eq!(Encoding::from(TernaryParams { group: 0 }).code_bits(), 3f64.log2());
    assert_eq!(Encoding::from(GgmlType::Q4_0).code_bits(), 4.5);
    assert_eq!(Encoding::from(Nm::TWO_FOUR).code_bits(), 18.0);
}

#[test]
fn lut_stream_planes_pad_all_but_whole_gq_row_blocks() {
    // #gq 1 and 3 bits stream as they are on whole 16-row blocks only.
    assert_eq!(gq(1, 64, false).lut_stream_planes(32), Some(1));
    assert_eq!(gq(1, 64, false).lut_stream_planes(8), Some(2));
    assert_eq!(gq(3, 64, true).lut_stream_planes(16), Some(3));
    assert_eq!(gq(3, 64, true).lut_stream_planes(20), Some(4));
    assert_eq!(gq(2, 64, true).lut_stream_planes(16), Some(2));
    assert_eq!(gq(4, 64, true).lut_stream_planes(16), Some(4));
    // #bcq planes carry their own α: always padded.
    assert_eq!(Encoding::from(BcqParams::row(1, 64, false, 3)).lut_stream_planes(32), Some(2));
    assert_eq!(Encoding::from(BcqParams::row(3, 64, false, 3)).lut_stream_planes(32), Some(4));
    assert_eq!(Encoding::from(TernaryParams { group: 64 }).lut_stream_planes(16), Some(2));
    assert_eq!(Encoding::from(GgmlType::Q4_0).lut_stream_planes(16), None);
    assert_eq!(Encoding::from(Nm::TWO_FOUR).lut_stream_planes(16), None);
}

#[test]
fn only_binary_coded_and_sparse_encodings_answer_so() {
    let p = BcqParams::row(2, 64, true, 3);
    assert_eq!(Encoding::from(p).binary_coded(), Some(p));
    assert_eq!(gq(2, 64, true).binary_coded(), None);
    let nm = Nm::of(2, 8);
    assert_eq!(Encoding::from(nm).nm(), Some(nm));
    assert_eq!(Encoding::from(GgmlType::Q8_0).nm(), None);
    assert!(Encoding::from(GgmlType::Q8_0).kept_positions(&[0; 34]).is_none());
    // Two groups of 8 keeping {1, 6} and {0, 7}.
    let mut x = vec![0f32; 16];
    (x[1], x[6], x[8], x[15]) = (1.0, -2.0, 3.0, 4.0);
    let bytes = Encoding::from(nm).encode(&[16], &x).unwrap();
    assert_eq!(Encoding::from(nm).kept_positions(&bytes).unwrap().unwrap(), vec![vec![1, 6], vec![0, 7]]);
}

#[test]
fn every_decodable_ggml_block_lists_its_scales() {
    for &t in GgmlType::ALL.iter().filter(|&&t| is_ggml_encoding(t)) {
        let fields = t.scale_fields();
        assert!(!fields.is_empty(), "{}", t.name());
        for f in fields {
            let end = match *f {
                ScaleField::F16(at) => at + 2,
                ScaleField::F32(at) => at + 4,
            };
            assert!(end <= t.type_size(), "{}: {f:?}", t.name());
        }
    }
}

#[test]
fn random_storage_decodes_to_sane_values_in_every_encoding() {
    let mut encs: Vec<Encoding> = GgmlType::ALL.iter().copied().filter(|&t| is_ggml_encoding(t)).map(Encoding::from).collect();
    encs.extend([gq(1, 64, false), gq(3, 128, true), gq(4, 32, true)]);
    encs.extend([TernaryParams { group: 0 }, TernaryParams { group: 64 }].map(Encoding::from));
    encs.extend([BcqParams::row(3, 64, true, 3), BcqParams::shared(2, true, 3, BcqScales::Acc), BcqParams::shared(4, false, 3, BcqScales::Lat)].map(Encoding::from));
    encs.extend([Nm::TWO_FOUR, Nm::of(3, 16)].map(Encoding::from));
    let shape = [16u64, 256];
    for enc in encs {
        let bytes = enc.random_storage(&shape, &mut filler(7)).unwrap();
        assert_eq!(bytes.len() as u64, enc.storage(&shape).unwrap(), "{enc}");
        assert_eq!(bytes, enc.random_storage(&shape, &mut filler(7)).unwrap(), "{enc}: not deterministic");
        let mut out = vec![0f32; 16 * 256];
        enc.decode(&[16, 256], &bytes, &mut out).unwrap_or_else(|e| panic!("{enc}: {e}"));
        assert!(out.iter().all(|v| v.is_finite() && v.abs() < 64.0), "{enc}: values out of range");
        assert!(out.iter().any(|&v| v != 0.0), "{enc}: all zero");
    }
    // A shape the encoding cannot store is an error, not a panic.
    assert!(gq(2, 64, true).random_storage(&[16, 100], &mut filler(1)).is_err());
}
