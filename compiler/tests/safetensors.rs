//! Tests of the safetensors reader: a valid file round trip, and a corpus of
//! corrupted and truncated files built here byte by byte — each must fail
//! with a one-line error naming the file, the byte offset or tensor, and the
//! cause, never panic.

use flexc::frontend::safetensors::{write_safetensors, Dtype, SafetensorsError, SafetensorsFile, MAX_HEADER_LEN};

const NAME: &str = "bad.safetensors";

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn valid() -> Vec<u8> {
    let a = f32s(&[1.0, 2.0, 3.0, 4.0]);
    let b = [7u8, 0, 0, 0, 0, 0, 0, 0];
    write_safetensors(&[("format", "pt")], &[("a", Dtype::F32, &[2, 2], &a), ("b.ids", Dtype::I64, &[1], &b)])
}

/// A file with header `json` (padded to 8) and `data` bytes.
fn raw(json: &str, data: &[u8]) -> Vec<u8> {
    let mut h = json.as_bytes().to_vec();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

fn parse(bytes: Vec<u8>) -> Result<SafetensorsFile, SafetensorsError> {
    SafetensorsFile::from_bytes_named(NAME, bytes)
}

/// Fails with one line that starts with the file name and contains `needle`.
fn fails(bytes: Vec<u8>, needle: &str) -> String {
    let e = parse(bytes).expect_err("must be rejected").to_string();
    assert!(e.starts_with(&format!("{NAME}: ")), "names the file: {e}");
    assert!(!e.contains('\n'), "one line: {e}");
    assert!(e.contains(needle), "expected {needle:?} in: {e}");
    e
}

#[test]
fn valid_file_round_trips() {
    let st = parse(valid()).expect("valid");
    assert_eq!(st.metadata, vec![("format".to_string(), "pt".to_string())]);
    assert_eq!(st.tensors.len(), 2);
    let a = st.tensor("a").expect("a");
    assert_eq!((a.dtype, a.shape.clone(), a.n_bytes), (Dtype::F32, vec![2, 2], 16));
    assert_eq!(st.tensor_bytes(a), f32s(&[1.0, 2.0, 3.0, 4.0]).as_slice());
    let b = st.tensor("b.ids").expect("b");
    assert_eq!(st.tensor_bytes(b)[0], 7);
    assert_eq!(a.offset, st.data_offset);
    // No metadata and zero-sized tensors are fine too.
    let st = parse(raw(r#"{"e":{"dtype":"F16","shape":[0,3],"data_offsets":[0,0]}}"#, &[])).expect("empty tensor");
    assert_eq!(st.tensors[0].n_bytes, 0);
    for d in ["BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "F16", "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2"] {
        assert_eq!(Dtype::from_name(d).map(Dtype::name), Some(d));
    }
}

#[test]
fn empty_and_tiny_files() {
    fails(vec![], "byte 0: truncated file");
    fails(vec![1, 2, 3, 4, 5], "needs 8 bytes but the file has 5");
}

#[test]
fn header_length_over_the_cap() {
    fails((MAX_HEADER_LEN + 1).to_le_bytes().to_vec(), "exceeds the limit of 104857600 bytes");
    fails(u64::MAX.to_le_bytes().to_vec(), "exceeds the limit");
}

#[test]
fn header_length_past_eof() {
    let mut b = 64u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    fails(b, "the header needs 64 bytes but only 2 remain");
}

#[test]
fn truncated_at_every_byte() {
    let v = valid();
    for n in 0..v.len() {
        let e = parse(v[..n].to_vec()).expect_err("truncated must fail").to_string();
        assert!(e.starts_with(NAME) && !e.contains('\n'), "{n}: {e}");
    }
}

#[test]
fn header_not_utf8() {
    let mut b = raw(r#"{"a":1}"#, &[]);
    b[10] = 0xff;
    fails(b, "byte 10: header is not valid UTF-8");
}

#[test]
fn header_not_an_object() {
    fails(raw("[1, 2]", &[]), "byte 8: header is not a JSON object");
}

#[test]
fn header_invalid_json_names_the_byte() {
    let e = fails(raw(r#"{"a": {"dtype": "F32",, }}"#, &[]), "header JSON");
    assert!(e.contains("byte 30"), "{e}");
}

#[test]
fn duplicate_tensor_names() {
    let e = r#"{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#;
    fails(raw(e, &[0, 0]), "tensor 'w': duplicate tensor name");
}

#[test]
fn duplicate_metadata() {
    fails(raw(r#"{"__metadata__":{},"__metadata__":{}}"#, &[]), "duplicate '__metadata__'");
}

#[test]
fn metadata_values_must_be_strings() {
    fails(raw(r#"{"__metadata__":{"format":1}}"#, &[]), "'__metadata__' value of 'format' must be a string");
    fails(raw(r#"{"__metadata__":"pt"}"#, &[]), "'__metadata__' must be an object");
}

#[test]
fn unknown_dtype() {
    fails(raw(r#"{"w":{"dtype":"F12","shape":[1],"data_offsets":[0,2]}}"#, &[0, 0]), "tensor 'w': unknown dtype 'F12'");
}

#[test]
fn byte_count_disagrees_with_shape_and_dtype() {
    fails(raw(r#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}"#, &[0; 12]), "F32 [2, 2] needs 16 bytes but data_offsets [0, 12] hold 12");
}

#[test]
fn offsets_past_the_end_of_file() {
    fails(raw(r#"{"w":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}"#, &[0; 4]), "end past the data section (4 bytes");
    fails(raw(r#"{"w":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551615,18446744073709551616]}}"#, &[0]), "non-negative integers");
}

#[test]
fn offsets_reversed() {
    fails(raw(r#"{"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}"#, &[0; 4]), "end before they begin");
}

#[test]
fn overlapping_tensors() {
    let h = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#;
    fails(raw(h, &[0; 6]), "tensor 'b': data at file bytes");
}

#[test]
fn hole_in_the_data_section() {
    let h = r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}"#;
    fails(raw(h, &[0; 6]), "has a hole");
}

#[test]
fn trailing_bytes_after_the_data() {
    let e = fails(raw(r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#, &[0; 5]), "3 bytes after the last tensor's data");
    assert!(e.contains("byte "), "{e}");
}

#[test]
fn malformed_entries() {
    fails(raw(r#"{"w":{"dtype":"U8","shape":[1]}}"#, &[0]), "tensor 'w': missing 'data_offsets'");
    fails(raw(r#"{"w":{"shape":[1],"data_offsets":[0,1]}}"#, &[0]), "missing 'dtype'");
    fails(raw(r#"{"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}"#, &[0]), "shape entry -1 is not a non-negative integer");
    fails(raw(r#"{"w":{"dtype":"U8","shape":"1","data_offsets":[0,1]}}"#, &[0]), "'shape' must be an array");
    fails(raw(r#"{"w":{"dtype":"U8","shape":[1],"data_offsets":[0]}}"#, &[0]), "must be [begin, end], got 1 values");
    fails(raw(r#"{"w":[1,2]}"#, &[]), "entry must be an object");
    fails(raw(r#"{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":0}}"#, &[0]), "unknown key 'extra'");
}

#[test]
fn element_count_overflow() {
    let h = r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}}"#;
    fails(raw(h, &[0; 4]), "overflows the element count");
    let h = r#"{"w":{"dtype":"F32","shape":[4611686018427387904,2],"data_offsets":[0,4]}}"#;
    fails(raw(h, &[0; 4]), "overflows the byte count");
}

#[test]
fn too_many_dimensions() {
    let h = r#"{"w":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}"#;
    fails(raw(h, &[0]), "17 dimensions exceed the limit of 16");
}

#[test]
fn opening_a_missing_file_names_it() {
    let e = SafetensorsFile::open(std::path::Path::new("/nonexistent/x.safetensors")).expect_err("missing").to_string();
    assert!(e.starts_with("/nonexistent/x.safetensors: "), "{e}");
    let empty = std::env::temp_dir().join(format!("flexc-empty-{}.safetensors", std::process::id()));
    std::fs::write(&empty, b"").expect("write");
    let e = SafetensorsFile::open(&empty).expect_err("empty").to_string();
    let _ = std::fs::remove_file(&empty);
    assert!(e.contains("byte 0: truncated file"), "{e}");
}
