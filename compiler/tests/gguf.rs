//! Tests of the GGUF reader and writer: writer→reader round trips for every
//! metadata value type (v2 and v3), typed getters, a corpus of corrupted and
//! truncated files built here byte by byte (each must fail with a one-line
//! error naming its cause, never panic), and the two real models when they
//! are in the flexc cache (skipped with a note otherwise).

use std::path::PathBuf;

use flexc::frontend::gguf::{
    GgmlType, GgufError, GgufErrorKind, GgufFile, GgufWriter, MAX_ARRAY_LEN, MetaValue,
};

use flexc_testsuite::cached as model;

const GEMMA: &str = "models/gemma3-270m/gemma-3-270m-q4_k_m.gguf";
const SMOLLM: &str = "models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf";

fn every_value_type() -> Vec<(&'static str, MetaValue)> {
    vec![
        ("t.u8", MetaValue::U8(200)),
        ("t.i8", MetaValue::I8(-100)),
        ("t.u16", MetaValue::U16(60000)),
        ("t.i16", MetaValue::I16(-30000)),
        ("t.u32", MetaValue::U32(4_000_000_000)),
        ("t.i32", MetaValue::I32(-2_000_000_000)),
        ("t.f32", MetaValue::F32(-1.5e-6)),
        ("t.bool_true", MetaValue::Bool(true)),
        ("t.bool_false", MetaValue::Bool(false)),
        (
            "t.str",
            MetaValue::Str("héllo ▁world\n{{ template }}".into()),
        ),
        ("t.empty_str", MetaValue::Str(String::new())),
        ("t.u64", MetaValue::U64(u64::MAX - 7)),
        ("t.i64", MetaValue::I64(i64::MIN + 3)),
        ("t.f64", MetaValue::F64(std::f64::consts::PI)),
        (
            "t.arr_str",
            MetaValue::Array(vec![
                MetaValue::Str("a".into()),
                MetaValue::Str("<0x0A>".into()),
            ]),
        ),
        (
            "t.arr_f32",
            MetaValue::Array(vec![MetaValue::F32(0.5), MetaValue::F32(-2.0)]),
        ),
        (
            "t.arr_i32",
            MetaValue::Array(vec![
                MetaValue::I32(1),
                MetaValue::I32(-3),
                MetaValue::I32(6),
            ]),
        ),
        (
            "t.arr_u8",
            MetaValue::Array(vec![MetaValue::U8(1), MetaValue::U8(2)]),
        ),
        (
            "t.arr_bool",
            MetaValue::Array(vec![MetaValue::Bool(true), MetaValue::Bool(false)]),
        ),
        ("t.arr_empty", MetaValue::Array(vec![])),
        (
            "t.arr_nested",
            MetaValue::Array(vec![
                MetaValue::Array(vec![MetaValue::U64(1), MetaValue::U64(2)]),
                MetaValue::Array(vec![MetaValue::U64(3)]),
            ]),
        ),
    ]
}

fn q4_0_block(d: u16) -> Vec<u8> {
    let mut b = d.to_le_bytes().to_vec();
    b.extend((0u8..16).map(|i| i.wrapping_mul(17)));
    b
}

fn sample_writer(version: u32) -> GgufWriter {
    let mut w = GgufWriter::new(version);
    w.add_meta("general.architecture", MetaValue::Str("llama".into()));
    for (k, v) in every_value_type() {
        w.add_meta(k, v);
    }
    let f32_data: Vec<u8> = (0..6)
        .flat_map(|i| (i as f32 * 0.25).to_le_bytes())
        .collect();
    w.add_tensor("norm.weight", &[6], GgmlType::F32, f32_data)
        .expect("f32 tensor");
    let q: Vec<u8> = (0..4).flat_map(|i| q4_0_block(0x3c00 + i)).collect();
    w.add_tensor("blk.0.attn_q.weight", &[64, 2], GgmlType::Q4_0, q)
        .expect("q4_0 tensor");
    w.add_tensor("tiny", &[1], GgmlType::F16, vec![0, 0x3c])
        .expect("f16 tensor");
    w
}

fn sample_bytes(version: u32) -> Vec<u8> {
    sample_writer(version).to_bytes().expect("sample file")
}

#[test]
fn round_trip_every_value_type_v2_and_v3() {
    for version in [2, 3] {
        let f = GgufFile::from_bytes(sample_bytes(version)).expect("round trip parses");
        assert_eq!(f.version, version);
        assert_eq!(f.metadata.len(), every_value_type().len() + 1);
        for (k, v) in every_value_type() {
            let got = f.meta(k).unwrap_or_else(|| panic!("key {k} missing"));
            // An empty array has no element type to compare; everything else must match exactly.
            assert_eq!(got, &v, "key {k}");
        }
        // File order is kept.
        assert_eq!(f.metadata[0].0, "general.architecture");
        assert_eq!(f.metadata[1].0, "t.u8");
        assert_eq!(f.alignment, 32);
        assert_eq!(f.data_offset() % 32, 0);

        assert_eq!(f.tensors.len(), 3);
        let n = f.tensor("norm.weight").expect("norm");
        assert_eq!(
            (n.dims.as_slice(), n.ggml_type, n.n_bytes),
            (&[6u64][..], GgmlType::F32, 24)
        );
        let vals: Vec<f32> = f
            .tensor_data(n)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(vals, vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25]);
        let q = f.tensor("blk.0.attn_q.weight").expect("q");
        assert_eq!(q.dims, vec![64, 2]);
        assert_eq!((q.row_len(), q.n_rows(), q.n_elements()), (64, 2, 128));
        assert_eq!(q.n_bytes, 72);
        assert_eq!(q.offset % 32, 0);
        assert_eq!(&f.tensor_data(q)[..18], &q4_0_block(0x3c00)[..]);
        assert_eq!(&f.tensor_data(q)[54..], &q4_0_block(0x3c03)[..]);
        assert_eq!(f.tensor_data(f.tensor("tiny").expect("tiny")), &[0, 0x3c]);
        assert!(f.tensor("nope").is_none());
        assert_eq!(
            f.type_counts(),
            vec![(GgmlType::F32, 1), (GgmlType::F16, 1), (GgmlType::Q4_0, 1)]
        );
    }
}

#[test]
fn custom_alignment_is_honoured() {
    let mut w = sample_writer(3);
    w.add_meta("general.alignment", MetaValue::U32(64));
    let f = GgufFile::from_bytes(w.to_bytes().expect("bytes")).expect("parses");
    assert_eq!(f.alignment, 64);
    assert_eq!(f.data_offset() % 64, 0);
    for t in &f.tensors {
        assert_eq!(t.offset % 64, 0, "{}", t.name);
    }
}

#[test]
fn typed_getters() {
    let f = GgufFile::from_bytes(sample_bytes(3)).expect("parses");
    assert_eq!(f.meta_str("general.architecture").expect("arch"), "llama");
    assert_eq!(f.meta_u32("t.u32").expect("u32"), 4_000_000_000);
    assert_eq!(f.meta_u32("t.u16").expect("u16 widens"), 60000);
    assert_eq!(f.meta_i32("t.i8").expect("i8 widens"), -100);
    assert_eq!(f.meta_u64("t.u64").expect("u64"), u64::MAX - 7);
    assert_eq!(f.meta_i64("t.i64").expect("i64"), i64::MIN + 3);
    assert_eq!(f.meta_f32("t.f32").expect("f32"), -1.5e-6);
    assert_eq!(f.meta_f64("t.f64").expect("f64"), std::f64::consts::PI);
    assert!(f.meta_bool("t.bool_true").expect("bool"));
    assert_eq!(
        f.meta_str_array("t.arr_str").expect("strs"),
        vec!["a", "<0x0A>"]
    );
    assert_eq!(
        f.meta_f32_array("t.arr_f32").expect("f32s"),
        vec![0.5, -2.0]
    );
    assert_eq!(f.meta_i32_array("t.arr_i32").expect("i32s"), vec![1, -3, 6]);
    assert_eq!(f.meta_u32_array("t.arr_u8").expect("u8s widen"), vec![1, 2]);
    assert_eq!(f.meta_array("t.arr_nested").expect("nested").len(), 2);

    let missing = f.meta_u32("llama.block_count").expect_err("missing");
    assert!(matches!(missing, GgufError::MissingKey { .. }));
    assert_eq!(
        missing.to_string(),
        "<memory>: metadata key 'llama.block_count' is missing"
    );
    let wrong = f.meta_f32("t.str").expect_err("wrong type");
    assert_eq!(
        wrong.to_string(),
        "<memory>: metadata key 't.str' is string, expected f32"
    );
    let neg = f.meta_u32("t.i32").expect_err("negative into u32");
    assert!(
        neg.to_string().contains("'t.i32'") && neg.to_string().contains("i32"),
        "{neg}"
    );
    let too_big = f.meta_u32("t.u64").expect_err("u64 does not fit");
    assert!(too_big.to_string().contains("fits in u32"), "{too_big}");
    let arr = f.meta_str_array("t.arr_f32").expect_err("not strings");
    assert!(arr.to_string().contains("array of f32"), "{arr}");
}

#[test]
fn writer_rejects_bad_input() {
    let mut w = GgufWriter::new(3);
    assert!(
        w.add_tensor("t", &[33], GgmlType::Q4_0, vec![0; 18])
            .is_err()
    );
    assert!(
        w.add_tensor("t", &[32], GgmlType::Q4_0, vec![0; 17])
            .is_err()
    );
    w.add_meta(
        "mixed",
        MetaValue::Array(vec![MetaValue::U8(1), MetaValue::Str("x".into())]),
    );
    let e = w.to_bytes().expect_err("mixed array");
    assert!(e.to_string().contains("mixes element types"), "{e}");
}

#[test]
fn open_reads_from_disk_and_reports_missing_files() {
    let dir = std::env::temp_dir().join(format!("flexc-gguf-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("sample.gguf");
    std::fs::write(&path, sample_bytes(3)).expect("write");
    let f = GgufFile::open(&path).expect("open");
    assert_eq!(f.tensors.len(), 3);
    assert_eq!(f.file_len(), sample_bytes(3).len() as u64);
    let empty = dir.join("empty.gguf");
    std::fs::write(&empty, b"").expect("write");
    let e = GgufFile::open(&empty).expect_err("empty");
    assert!(
        e.to_string()
            .starts_with(&format!("{}: byte 0: truncated", empty.display())),
        "{e}"
    );
    let e = GgufFile::open(&dir.join("absent.gguf")).expect_err("absent");
    assert!(
        matches!(e, GgufError::Io { .. }) && e.to_string().contains("absent.gguf"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

// ---------------------------------------------------------------------------
// Corrupted files, built byte by byte.

/// A hand-assembled GGUF byte stream.
#[derive(Clone, Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw(b"GGUF".to_vec());
        r.u32(version).u64(n_tensors).u64(n_kv);
        r
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    /// One key with a u32 value.
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key).u32(4).u32(v)
    }
    /// One tensor info.
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    /// Pad to 32 and append `n` data bytes.
    fn data(&mut self, n: usize) -> &mut Self {
        let padded = self.0.len().div_ceil(32) * 32;
        self.0.resize(padded + n, 0);
        self
    }
    fn parse(&self) -> Result<GgufFile, GgufError> {
        GgufFile::from_bytes_named("bad.gguf", self.0.clone())
    }
}

/// Parse must fail with a format error of the expected kind; the message
/// must be one line, name the file and a byte offset, and contain `needle`.
#[track_caller]
fn expect_fail(raw: &Raw, needle: &str, kind: fn(&GgufErrorKind) -> bool) -> GgufError {
    let e = raw.parse().expect_err("corrupt file must be rejected");
    let msg = e.to_string();
    assert!(msg.starts_with("bad.gguf: byte "), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    assert!(msg.contains(needle), "message `{msg}` lacks `{needle}`");
    assert!(e.kind().is_some_and(kind), "unexpected kind: {e:?}");
    e
}

#[test]
fn bad_magic() {
    let mut r = Raw::header(3, 0, 0);
    r.0[..4].copy_from_slice(b"GGML");
    let e = expect_fail(&r, "not a GGUF file", |k| {
        matches!(k, GgufErrorKind::BadMagic(_))
    });
    assert!(e.to_string().starts_with("bad.gguf: byte 0:"));
}

#[test]
fn version_one_is_rejected_clearly() {
    expect_fail(&Raw::header(1, 0, 0), "version 1 is not supported", |k| {
        matches!(k, GgufErrorKind::VersionOne)
    });
}

#[test]
fn unknown_version() {
    expect_fail(&Raw::header(4, 0, 0), "unsupported GGUF version 4", |k| {
        matches!(k, GgufErrorKind::UnsupportedVersion(4))
    });
    expect_fail(&Raw::header(0, 0, 0), "unsupported GGUF version 0", |k| {
        matches!(k, GgufErrorKind::UnsupportedVersion(0))
    });
}

#[test]
fn big_endian_file() {
    expect_fail(&Raw::header(3u32.swap_bytes(), 0, 0), "big-endian", |k| {
        matches!(k, GgufErrorKind::BigEndian(_))
    });
}

#[test]
fn empty_and_header_only_files() {
    expect_fail(&Raw::default(), "magic needs 4 bytes", |k| {
        matches!(k, GgufErrorKind::Truncated { .. })
    });
    let mut r = Raw(b"GGUF".to_vec());
    r.u32(3);
    expect_fail(&r, "tensor count needs 8 bytes", |k| {
        matches!(k, GgufErrorKind::Truncated { .. })
    });
    // A header with no tensors and no metadata is a valid (empty) file.
    let f = Raw::header(3, 0, 0).parse().expect("empty model");
    assert!(f.tensors.is_empty() && f.metadata.is_empty());
}

#[test]
fn truncated_at_every_byte() {
    let full = sample_bytes(3);
    let f = GgufFile::from_bytes(full.clone()).expect("full file parses");
    let last_tensor_end = f
        .tensors
        .iter()
        .map(|t| t.offset + t.n_bytes)
        .max()
        .expect("tensors");
    for len in 0..full.len() {
        let r = GgufFile::from_bytes_named("cut.gguf", full[..len].to_vec());
        if len as u64 >= last_tensor_end {
            // Only trailing padding was cut.
            assert!(r.is_ok(), "cut at {len}: {:?}", r.err());
            continue;
        }
        let e = r.expect_err("truncated file must be rejected");
        let msg = e.to_string();
        assert!(msg.starts_with("cut.gguf: byte "), "{msg}");
        assert!(
            msg.contains("truncated") || msg.contains("past end of file") || msg.contains("remain"),
            "cut at {len}: {msg}"
        );
    }
}

#[test]
fn huge_tensor_count() {
    expect_fail(
        &Raw::header(3, u64::MAX, 0),
        "tensor count 18446744073709551615 exceeds",
        |k| matches!(k, GgufErrorKind::CountTooLarge { .. }),
    );
}

#[test]
fn tensor_count_larger_than_file() {
    expect_fail(&Raw::header(3, 1000, 0), "cannot fit", |k| {
        matches!(k, GgufErrorKind::CountPastEof { .. })
    });
}

#[test]
fn huge_kv_count() {
    expect_fail(
        &Raw::header(3, 0, u64::MAX / 2),
        "metadata key/value count",
        |k| matches!(k, GgufErrorKind::CountTooLarge { .. }),
    );
    expect_fail(&Raw::header(3, 0, 5000), "cannot fit", |k| {
        matches!(k, GgufErrorKind::CountPastEof { .. })
    });
}

#[test]
fn string_length_past_eof() {
    let mut r = Raw::header(3, 0, 1);
    r.u64(1000).bytes(b"general.name").u32(8);
    let e = expect_fail(&r, "metadata key #0 needs 1000 bytes", |k| {
        matches!(k, GgufErrorKind::Truncated { .. })
    });
    assert!(e.to_string().starts_with("bad.gguf: byte 32:"), "{e}");
}

#[test]
fn string_value_length_past_eof() {
    let mut r = Raw::header(3, 0, 1);
    r.str("general.name").u32(8).u64(1 << 20).bytes(b"abc");
    expect_fail(&r, "metadata 'general.name' needs 1048576 bytes", |k| {
        matches!(k, GgufErrorKind::Truncated { .. })
    });
}

#[test]
fn string_too_long() {
    let mut r = Raw::header(3, 0, 1);
    r.str("general.name").u32(8).u64(u64::MAX);
    expect_fail(&r, "exceeds the limit", |k| {
        matches!(k, GgufErrorKind::StringTooLong { .. })
    });
}

#[test]
fn invalid_utf8_key() {
    let mut r = Raw::header(3, 0, 1);
    r.u64(2).bytes(&[0xff, 0xfe]).u32(4).u32(1);
    expect_fail(&r, "not valid UTF-8", |k| {
        matches!(k, GgufErrorKind::InvalidUtf8 { .. })
    });
}

#[test]
fn unknown_value_type() {
    let mut r = Raw::header(3, 0, 1);
    r.str("general.name").u32(13).u32(0);
    let e = expect_fail(
        &r,
        "metadata 'general.name': unknown metadata value type 13",
        |k| matches!(k, GgufErrorKind::UnknownValueType { id: 13, .. }),
    );
    assert!(e.to_string().starts_with("bad.gguf: byte 44:"), "{e}");
}

#[test]
fn unknown_array_element_type() {
    let mut r = Raw::header(3, 0, 1);
    r.str("tokenizer.ggml.tokens").u32(9).u32(99).u64(1).u32(0);
    expect_fail(&r, "unknown metadata value type 99", |k| {
        matches!(k, GgufErrorKind::UnknownValueType { id: 99, .. })
    });
}

#[test]
fn huge_array_length() {
    let mut r = Raw::header(3, 0, 1);
    r.str("tokenizer.ggml.tokens").u32(9).u32(8).u64(u64::MAX);
    expect_fail(&r, &format!("exceeds the limit of {MAX_ARRAY_LEN}"), |k| {
        matches!(k, GgufErrorKind::ArrayTooLong { .. })
    });
}

#[test]
fn array_length_past_eof() {
    let mut r = Raw::header(3, 0, 1);
    r.str("tokenizer.ggml.tokens")
        .u32(9)
        .u32(8)
        .u64(1_000_000)
        .str("a");
    expect_fail(
        &r,
        "array of 1000000 string elements needs at least 8000000 bytes",
        |k| matches!(k, GgufErrorKind::ArrayPastEof { .. }),
    );
}

#[test]
fn arrays_nested_too_deep() {
    let mut r = Raw::header(3, 0, 1);
    r.str("deep").u32(9);
    for _ in 0..10 {
        r.u32(9).u64(1);
    }
    r.u32(4).u64(1).u32(7);
    expect_fail(&r, "nested deeper than", |k| {
        matches!(k, GgufErrorKind::NestingTooDeep { .. })
    });
}

#[test]
fn duplicate_key() {
    let mut r = Raw::header(3, 0, 2);
    r.kv_u32("llama.block_count", 1)
        .kv_u32("llama.block_count", 2);
    expect_fail(&r, "duplicate metadata key 'llama.block_count'", |k| {
        matches!(k, GgufErrorKind::DuplicateKey(_))
    });
}

#[test]
fn bad_alignment() {
    let mut r = Raw::header(3, 0, 1);
    r.kv_u32("general.alignment", 48);
    expect_fail(&r, "power of two, got u32 48", |k| {
        matches!(k, GgufErrorKind::BadAlignment(_))
    });
    let mut r = Raw::header(3, 0, 1);
    r.kv_u32("general.alignment", 0);
    expect_fail(&r, "got u32 0", |k| {
        matches!(k, GgufErrorKind::BadAlignment(_))
    });
    let mut r = Raw::header(3, 0, 1);
    r.str("general.alignment").u32(8).str("32");
    expect_fail(&r, "got string", |k| {
        matches!(k, GgufErrorKind::BadAlignment(_))
    });
}

#[test]
fn unknown_ggml_type() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("blk.0.attn_q.weight", &[32], 4, 0).data(32);
    expect_fail(
        &r,
        "tensor 'blk.0.attn_q.weight' has unknown ggml type id 4",
        |k| matches!(k, GgufErrorKind::UnknownGgmlType { id: 4, .. }),
    );
}

#[test]
fn tensor_offset_misaligned() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[4], 0, 8).data(64);
    expect_fail(&r, "offset 8 is not a multiple of the alignment 32", |k| {
        matches!(k, GgufErrorKind::MisalignedTensor { .. })
    });
}

#[test]
fn tensor_past_eof() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("blk.0.attn_q.weight", &[64, 64], 0, 0).data(100);
    let len = r.0.len();
    let data_start = len - 100;
    expect_fail(
        &r,
        &format!(
            "tensor 'blk.0.attn_q.weight' data ends at {} past end of file ({len})",
            data_start + 64 * 64 * 4
        ),
        |k| matches!(k, GgufErrorKind::TensorPastEof { .. }),
    );
    // A huge relative offset must not overflow.
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[4], 0, u64::MAX - 31).data(16);
    expect_fail(&r, "past end of file", |k| {
        matches!(k, GgufErrorKind::TensorPastEof { .. })
    });
}

#[test]
fn data_section_past_eof() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[4], 0, 0);
    // The infos end unaligned and nothing follows.
    assert_ne!(r.0.len() % 32, 0);
    expect_fail(&r, "data section starts at", |k| {
        matches!(k, GgufErrorKind::DataPastEof { .. })
    });
}

#[test]
fn duplicate_tensor_names() {
    let mut r = Raw::header(3, 2, 0);
    r.tensor("w", &[8], 0, 0).tensor("w", &[8], 0, 32).data(64);
    expect_fail(&r, "duplicate tensor name 'w'", |k| {
        matches!(k, GgufErrorKind::DuplicateTensor(_))
    });
}

#[test]
fn overflowing_dims() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[1 << 32, 1 << 32, 4], 0, 0).data(32);
    expect_fail(&r, "overflow the element count", |k| {
        matches!(k, GgufErrorKind::DimsOverflow { .. })
    });
    // Fits in u64 elements but not in i64 (ggml's int64_t ne).
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[1 << 32, 1 << 31], 0, 0).data(32);
    expect_fail(&r, "overflow the element count", |k| {
        matches!(k, GgufErrorKind::DimsOverflow { .. })
    });
    // Element count fits but the byte count does not.
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[1 << 31, 1 << 31], 0, 0).data(32);
    expect_fail(&r, "overflow", |k| {
        matches!(k, GgufErrorKind::DimsOverflow { .. })
    });
}

#[test]
fn zero_dims() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[32, 0], 0, 0).data(32);
    expect_fail(&r, "tensor 'w' has a zero dimension [32, 0]", |k| {
        matches!(k, GgufErrorKind::ZeroDim { .. })
    });
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[], 0, 0).data(32);
    expect_fail(&r, "tensor 'w' has 0 dimensions", |k| {
        matches!(k, GgufErrorKind::BadDimCount { .. })
    });
}

#[test]
fn too_many_dims() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[1, 1, 1, 1, 1], 0, 0).data(32);
    expect_fail(&r, "has 5 dimensions (must be 1 to 4)", |k| {
        matches!(k, GgufErrorKind::BadDimCount { n_dims: 5, .. })
    });
    // A dimension count far past the file must not allocate.
    let mut r = Raw::header(3, 1, 0);
    r.str("w").u32(u32::MAX).data(32);
    expect_fail(&r, "dimensions", |k| {
        matches!(k, GgufErrorKind::BadDimCount { .. })
    });
}

#[test]
fn row_not_a_block_multiple() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[33, 2], GgmlType::Q4_0.id(), 0).data(64);
    expect_fail(
        &r,
        "row length 33 is not a multiple of the block size 32",
        |k| matches!(k, GgufErrorKind::RowNotBlockMultiple { .. }),
    );
}

#[test]
fn tensor_name_too_long() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor(&"x".repeat(64), &[4], 0, 0).data(32);
    expect_fail(&r, "tensor name of 64 bytes exceeds", |k| {
        matches!(k, GgufErrorKind::TensorNameTooLong { .. })
    });
}

#[test]
fn every_single_byte_flip_is_handled() {
    // Not a format check: a fuzz-style sweep that must never panic.
    let full = sample_bytes(2);
    for i in 0..full.len().min(4096) {
        for v in [0x00u8, 0xff, 0x80, 0x7f] {
            let mut b = full.clone();
            b[i] = v;
            if let Err(e) = GgufFile::from_bytes(b) {
                assert!(!e.to_string().contains('\n'));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Real models.

#[test]
fn real_gemma3_270m() {
    let Some(path) = model(GEMMA) else { return };
    let t0 = std::time::Instant::now();
    let f = GgufFile::open(&path).expect("gemma opens");
    println!("gemma3-270m opened in {:?}", t0.elapsed());
    assert_eq!(f.version, 3);
    assert_eq!(f.tensors.len(), 236);
    assert_eq!(f.metadata.len(), 33);
    assert_eq!(f.meta_str("general.architecture").expect("arch"), "gemma3");
    assert_eq!(f.meta_u32("gemma3.block_count").expect("blocks"), 18);
    assert_eq!(f.meta_u32("gemma3.embedding_length").expect("d_model"), 640);
    assert_eq!(
        f.meta_u32("gemma3.attention.head_count_kv")
            .expect("kv heads"),
        1
    );
    assert_eq!(
        f.meta_f32("gemma3.rope.freq_base").expect("rope"),
        1_000_000.0
    );
    assert_eq!(f.meta_u32("general.file_type").expect("ftype"), 15);
    assert_eq!(
        f.type_counts(),
        vec![
            (GgmlType::F32, 109),
            (GgmlType::Q5_0, 81),
            (GgmlType::Q8_0, 10),
            (GgmlType::Q4_K, 27),
            (GgmlType::Q6_K, 9)
        ]
    );
    let tokens = f.meta_str_array("tokenizer.ggml.tokens").expect("vocab");
    assert_eq!(tokens.len(), 262_144);
    assert_eq!(
        f.meta_f32_array("tokenizer.ggml.scores")
            .expect("scores")
            .len(),
        262_144
    );
    assert_eq!(
        f.meta_i32_array("tokenizer.ggml.token_type")
            .expect("types")
            .len(),
        262_144
    );
    let emb = f.tensor("token_embd.weight").expect("embeddings");
    assert_eq!(emb.dims, vec![640, 262_144]);
    assert_eq!(emb.ggml_type, GgmlType::Q8_0);
    assert_eq!(f.tensor_data(emb).len() as u64, emb.n_bytes);
    assert!(f.tensor("output.weight").is_none(), "LM head is tied");
    let total: u64 = f.tensors.iter().map(|t| t.n_elements()).sum();
    assert_eq!(total, 268_098_176);
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), 253_113_024);
}

#[test]
fn real_smollm2_135m() {
    let Some(path) = model(SMOLLM) else { return };
    let f = GgufFile::open(&path).expect("smollm2 opens");
    assert_eq!(f.version, 3);
    assert_eq!(f.tensors.len(), 272);
    assert_eq!(f.meta_str("general.architecture").expect("arch"), "llama");
    assert_eq!(f.meta_u32("llama.block_count").expect("blocks"), 30);
    for t in &f.tensors {
        assert_eq!(f.tensor_data(t).len() as u64, t.n_bytes, "{}", t.name);
    }
    println!("smollm2 types: {:?}", f.type_counts());
}

/// The reader's tensor table agrees with gguf-py's (offsets, dims, types
/// recorded in the ggml codec fixture), and the bytes it serves decode to
/// the values gguf-py decoded.
#[test]
fn real_tensor_table_matches_gguf_py() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../ir/tests/fixtures/ggml/real_tensors.json");
    let text = std::fs::read_to_string(&fixture).expect("fixture");
    let entries: serde_json::Value = serde_json::from_str(&text).expect("json");
    let mut opened: Vec<(String, GgufFile)> = Vec::new();
    for e in entries.as_array().expect("array") {
        let rel = e["file"].as_str().expect("file").to_string();
        if !opened.iter().any(|(r, _)| *r == rel) {
            let Some(path) = model(&rel) else { continue };
            opened.push((rel.clone(), GgufFile::open(&path).expect("opens")));
        }
        let Some((_, f)) = opened.iter().find(|(r, _)| *r == rel) else {
            continue;
        };
        let name = e["tensor"].as_str().expect("tensor");
        let t = f.tensor(name).unwrap_or_else(|| panic!("{name} missing"));
        let dims: Vec<u64> = e["dims"]
            .as_array()
            .expect("dims")
            .iter()
            .filter_map(|d| d.as_u64())
            .collect();
        assert_eq!(t.dims, dims, "{name}");
        assert_eq!(t.offset, e["offset"].as_u64().expect("offset"), "{name}");
        assert_eq!(
            t.ggml_type.name(),
            e["type"].as_str().expect("type"),
            "{name}"
        );
        let rows = e["rows"].as_u64().expect("rows");
        let n = (rows * t.row_len()) as usize;
        let n_bytes = t.ggml_type.row_bytes(t.row_len()).expect("row bytes") * rows;
        let data = &f.tensor_data(t)[..n_bytes as usize];
        let vals =
            flexc_ir::quant::ggml::dequantize_to_vec(t.ggml_type, data, n).expect("dequantize");
        for pair in e["samples"].as_array().expect("samples") {
            let i = pair[0].as_u64().expect("i") as usize;
            assert_eq!(
                u64::from(vals[i].to_bits()),
                pair[1].as_u64().expect("bits"),
                "{name}[{i}]"
            );
        }
    }
}
