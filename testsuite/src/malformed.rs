//! The malformed-input corpus: what each case is, which `flexc` command
//! reads it, and which exit code that command must end with.
//!
//! Text cases are checked-in files under `testsuite/malformed/<kind>/`
//! (written by `testsuite/tools/gen_malformed.py`). Binary cases (GGUF,
//! safetensors, FlexCiM binary streams) are built here by corrupting the
//! tiny synthetic files of [`crate::synth`], so no model file is committed.
//! `compiler/tests/malformed.rs` runs every case through its reader and the
//! CLI; `testsuite/examples/fuzz_seeds.rs` also feeds them to the fuzzers.

use crate::synth;
use flexc::frontend::gguf::{GgmlType, GgufWriter, MetaValue};
use flexc::frontend::safetensors::{write_safetensors, Dtype};
use flexc_backends::flexcim::isa::encode;
use std::path::{Path, PathBuf};

/// Which reader a case is for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `.fir` text (`flexc opt`).
    Fir,
    /// `.fir` text that verifies but is too large to run (`flexc exec`, `flexc sim`).
    FirExec,
    /// FlexCiM assembly text or bytes (`flexc sim`).
    Asm,
    /// Pipeline text (`flexc opt --pipeline`).
    Pipeline,
    /// Architecture TOML (`flexc sim --arch`).
    Arch,
    /// Energy TOML (`flexc sim --energy`).
    Energy,
    /// `config.json` beside a valid tiny safetensors model (`flexc import`).
    Config,
    /// Text for `flexc tokenize -f` with a tiny GGUF vocabulary.
    TokenizerText,
    /// A GGUF file (`flexc inspect`, `flexc import`, `flexc tokenize`).
    Gguf,
    /// A safetensors file with a valid `config.json` (`flexc inspect`, `flexc import`).
    Safetensors,
    /// A FlexCiM binary stream (`flexc sim`).
    FlexcimBin,
    /// A compiled `.flexc` artifact (`flexc inspect`, `flexc tokenize`, `flexc run`).
    Artifact,
    /// An ONNX model (`flexc import`).
    Onnx,
}

/// What a command must do with a case.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Exit with this code (1 input, 2 usage).
    Exit(i32),
    /// Either succeed or fail as bad input (a random corruption may leave a valid file).
    OkOrInput,
}

/// One malformed input.
#[derive(Clone, Debug)]
pub struct Case {
    /// `kind/name`, for messages.
    pub name: String,
    /// Its reader.
    pub kind: Kind,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// For [`Kind::Gguf`]: whether the reader itself must reject it (else it
    /// parses and only importing it fails).
    pub reader_rejects: bool,
    /// What importing / running / simulating it must do.
    pub expect: Expect,
}

/// The checked-in text corpus.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("malformed")
}

fn text_kind(dir: &str) -> Option<Kind> {
    Some(match dir {
        "fir" => Kind::Fir,
        "fir-exec" => Kind::FirExec,
        "asm" => Kind::Asm,
        "pipeline" => Kind::Pipeline,
        "arch" => Kind::Arch,
        "energy" => Kind::Energy,
        "config" => Kind::Config,
        "tokenizer" => Kind::TokenizerText,
        _ => return None,
    })
}

/// The checked-in cases, sorted by name.
pub fn text_cases() -> Vec<Case> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(corpus_dir()) else { return out };
    for d in dirs.flatten() {
        let dir = d.file_name().to_string_lossy().into_owned();
        let Some(kind) = text_kind(&dir) else { continue };
        for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            let file = f.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(f.path()).unwrap_or_default();
            let expect = match kind {
                Kind::Pipeline if file.starts_with("usage-") => Expect::Exit(2),
                // Valid (if odd) text tokenizes; only undecodable text is an input error.
                Kind::TokenizerText if std::str::from_utf8(&bytes).is_ok() => Expect::Exit(0),
                _ => Expect::Exit(1),
            };
            out.push(Case { name: format!("{dir}/{file}"), kind, bytes, reader_rejects: true, expect });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn flip(b: &[u8], positions: &[usize]) -> Vec<u8> {
    let mut v = b.to_vec();
    for &p in positions {
        let i = p % v.len();
        v[i] ^= 0xA5;
    }
    v
}

/// A tiny llama GGUF with one metadata value replaced (or removed when `None`).
fn gguf_with(key: &str, value: Option<MetaValue>) -> Vec<u8> {
    let good = flexc::frontend::gguf::GgufFile::from_bytes_named("tiny.gguf", synth::llama_gguf(synth::Vocab::Bpe)).expect("synthetic gguf parses");
    let mut w = GgufWriter::new(3);
    let mut seen = false;
    for (k, v) in &good.metadata {
        if k == key {
            seen = true;
            if let Some(v) = &value {
                w.add_meta(k, v.clone());
            }
        } else {
            w.add_meta(k, v.clone());
        }
    }
    if !seen && let Some(v) = value {
        w.add_meta(key, v);
    }
    for t in &good.tensors {
        w.add_tensor(&t.name, &t.dims, t.ggml_type, good.tensor_data(t).to_vec()).expect("copied tensor");
    }
    w.to_bytes().expect("serialises")
}

/// A tiny llama GGUF whose tensor `name` is replaced by an f32 one of `dims` (ggml order), or dropped.
fn gguf_tensor(name: &str, dims: Option<&[u64]>) -> Vec<u8> {
    let good = flexc::frontend::gguf::GgufFile::from_bytes_named("tiny.gguf", synth::llama_gguf(synth::Vocab::Bpe)).expect("synthetic gguf parses");
    let mut w = GgufWriter::new(3);
    for (k, v) in &good.metadata {
        w.add_meta(k, v.clone());
    }
    for t in &good.tensors {
        if t.name != name {
            w.add_tensor(&t.name, &t.dims, t.ggml_type, good.tensor_data(t).to_vec()).expect("copied tensor");
        } else if let Some(d) = dims {
            let n: u64 = d.iter().product();
            w.add_tensor(name, d, GgmlType::F32, vec![0; n as usize * 4]).expect("replacement tensor");
        }
    }
    w.to_bytes().expect("serialises")
}

/// The tiny llama GGUF with its second tensor's data offset set to the
/// first one's, so the two share bytes (llama.cpp rejects this).
fn gguf_overlap(g: &[u8]) -> Vec<u8> {
    let good = flexc::frontend::gguf::GgufFile::from_bytes_named("tiny.gguf", g.to_vec()).expect("synthetic gguf parses");
    let t = &good.tensors[1];
    // Tensor info: u64 name length, name, u32 rank, rank × u64 dims, u32 type, u64 offset.
    let name = t.name.as_bytes();
    let at = g.windows(name.len() + 8).position(|w| w[..8] == (name.len() as u64).to_le_bytes() && &w[8..] == name).expect("tensor info present");
    let off = at + 8 + name.len() + 4 + 8 * t.dims.len() + 4;
    let mut b = g.to_vec();
    put_u64(&mut b, off, good.tensors[0].offset - good.data_offset());
    b
}

/// The generated binary cases.
pub fn binary_cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut add = |name: String, kind: Kind, bytes: Vec<u8>, reader_rejects: bool, expect: Expect| out.push(Case { name, kind, bytes, reader_rejects, expect });

    // GGUF: the reader must reject these.
    let g = synth::llama_gguf(synth::Vocab::Bpe);
    for cut in [0, 3, 4, 7, 8, 15, 16, 23, 24, 40, 100, 1000, g.len() / 2, g.len() - 1] {
        add(format!("gguf/truncated-at-{cut}"), Kind::Gguf, g[..cut].to_vec(), true, Expect::Exit(1));
    }
    let mut bad = g.clone();
    bad[0] = b'X';
    add("gguf/bad-magic".into(), Kind::Gguf, bad, true, Expect::Exit(1));
    for (name, v) in [("version-1", 1u32), ("version-99", 99), ("version-big-endian", 3u32.swap_bytes())] {
        let mut b = g.clone();
        b[4..8].copy_from_slice(&v.to_le_bytes());
        add(format!("gguf/{name}"), Kind::Gguf, b, true, Expect::Exit(1));
    }
    for (name, at, v) in [("tensor-count-2^40", 8, 1u64 << 40), ("tensor-count-max", 8, u64::MAX), ("kv-count-2^40", 16, 1 << 40), ("kv-count-max", 16, u64::MAX), ("first-key-length-max", 24, u64::MAX), ("first-key-length-2^40", 24, 1 << 40)] {
        let mut b = g.clone();
        put_u64(&mut b, at, v);
        add(format!("gguf/{name}"), Kind::Gguf, b, true, Expect::Exit(1));
    }
    add("gguf/tensors-overlap".into(), Kind::Gguf, gguf_overlap(&g), true, Expect::Exit(1));
    // GGUF: parses, but importing must fail cleanly (no huge allocation, no panic).
    let semantic: Vec<(&str, Vec<u8>)> = vec![
        ("block-count-2^40", gguf_with("llama.block_count", Some(MetaValue::U64(1 << 40)))),
        ("block-count-max", gguf_with("llama.block_count", Some(MetaValue::U64(u64::MAX)))),
        ("block-count-2", gguf_with("llama.block_count", Some(MetaValue::U32(2)))),
        ("block-count-string", gguf_with("llama.block_count", Some(MetaValue::Str("one".into())))),
        ("no-block-count", gguf_with("llama.block_count", None)),
        ("head-count-0", gguf_with("llama.attention.head_count", Some(MetaValue::U32(0)))),
        ("head-count-max", gguf_with("llama.attention.head_count", Some(MetaValue::U64(u64::MAX)))),
        ("head-count-kv-0", gguf_with("llama.attention.head_count_kv", Some(MetaValue::U32(0)))),
        ("head-count-kv-3", gguf_with("llama.attention.head_count_kv", Some(MetaValue::U32(3)))),
        ("embedding-length-max", gguf_with("llama.embedding_length", Some(MetaValue::U64(u64::MAX)))),
        ("embedding-length-2^62", gguf_with("llama.embedding_length", Some(MetaValue::U64(1 << 62)))),
        ("ffn-length-max", gguf_with("llama.feed_forward_length", Some(MetaValue::U64(u64::MAX)))),
        ("key-length-max", gguf_with("llama.attention.key_length", Some(MetaValue::U64(u64::MAX)))),
        ("rope-dims-huge", gguf_with("llama.rope.dimension_count", Some(MetaValue::U64(1 << 40)))),
        ("eps-nan", gguf_with("llama.attention.layer_norm_rms_epsilon", Some(MetaValue::F32(f32::NAN)))),
        ("eps-negative", gguf_with("llama.attention.layer_norm_rms_epsilon", Some(MetaValue::F32(-1.0)))),
        ("unknown-arch", gguf_with("general.architecture", Some(MetaValue::Str("gpt-neo-x-9000".into())))),
        ("arch-not-string", gguf_with("general.architecture", Some(MetaValue::U32(7)))),
        ("no-arch", gguf_with("general.architecture", None)),
        ("missing-tensor", gguf_tensor("blk.0.attn_q.weight", None)),
        ("missing-embedding", gguf_tensor("token_embd.weight", None)),
        ("wrong-shape-q", gguf_tensor("blk.0.attn_q.weight", Some(&[8, 7]))),
        ("wrong-rank-norm", gguf_tensor("blk.0.attn_norm.weight", Some(&[4, 2]))),
    ];
    for (name, b) in semantic {
        add(format!("gguf/import-{name}"), Kind::Gguf, b, false, Expect::Exit(1));
    }
    // Tokenizer metadata: the file parses and imports; `flexc tokenize` must fail cleanly.
    let tok: Vec<(&str, Vec<u8>)> = vec![
        ("tokens-missing", gguf_with("tokenizer.ggml.tokens", None)),
        ("tokens-not-strings", gguf_with("tokenizer.ggml.tokens", Some(MetaValue::Array(vec![MetaValue::U32(1), MetaValue::U32(2)])))),
        ("tokens-empty", gguf_with("tokenizer.ggml.tokens", Some(MetaValue::Array(Vec::new())))),
        ("model-unknown", gguf_with("tokenizer.ggml.model", Some(MetaValue::Str("t5".into())))),
        ("merges-missing", gguf_with("tokenizer.ggml.merges", None)),
        ("pre-unknown", gguf_with("tokenizer.ggml.pre", Some(MetaValue::Str("martian".into())))),
        ("eos-out-of-range", gguf_with("tokenizer.ggml.eos_token_id", Some(MetaValue::U32(1 << 30)))),
        ("bos-out-of-range", gguf_with("tokenizer.ggml.bos_token_id", Some(MetaValue::U32(u32::MAX - 1)))),
        ("types-length", gguf_with("tokenizer.ggml.token_type", Some(MetaValue::Array(vec![MetaValue::I32(1)])))),
        ("scores-wrong-type", gguf_with("tokenizer.ggml.scores", Some(MetaValue::Array(vec![MetaValue::Str("x".into())])))),
    ];
    for (name, b) in tok {
        add(format!("gguf/tokenizer-{name}"), Kind::Gguf, b, false, Expect::Exit(1));
    }
    // Bit rot: flipped bytes in the header, metadata and tensor table. Some
    // flips leave a valid file (a changed character in a name): either outcome
    // is fine as long as it is clean.
    for (i, pos) in [[5usize, 9, 17].as_slice(), &[30, 31], &[64, 65, 66], &[200], &[400, 401], &[g.len() / 3], &[g.len() / 2, g.len() / 2 + 1]].iter().enumerate() {
        add(format!("gguf/bitrot-{i}"), Kind::Gguf, flip(&g, pos), false, Expect::OkOrInput);
    }

    // safetensors: the reader must reject these.
    let (st, _) = synth::llama_safetensors();
    let hlen = u64::from_le_bytes(st[..8].try_into().expect("8 bytes")) as usize;
    for cut in [0, 7, 8, 9, 8 + hlen / 2, 8 + hlen, st.len() - 1] {
        add(format!("safetensors/truncated-at-{cut}"), Kind::Safetensors, st[..cut].to_vec(), true, Expect::Exit(1));
    }
    for (name, v) in [("header-len-max", u64::MAX), ("header-len-2^40", 1 << 40), ("header-len-past-eof", st.len() as u64)] {
        let mut b = st.clone();
        put_u64(&mut b, 0, v);
        add(format!("safetensors/{name}"), Kind::Safetensors, b, true, Expect::Exit(1));
    }
    let mut with_tail = st.clone();
    with_tail.extend_from_slice(b"tail");
    add("safetensors/trailing-bytes".into(), Kind::Safetensors, with_tail, true, Expect::Exit(1));
    let header = |json: &str, data: &[u8]| {
        let mut h = json.as_bytes().to_vec();
        while !h.len().is_multiple_of(8) {
            h.push(b' ');
        }
        let mut b = (h.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(&h);
        b.extend_from_slice(data);
        b
    };
    let d16 = [0u8; 16];
    for (name, json) in [
        ("header-not-json", "{not json"),
        ("header-array", "[1,2]"),
        ("header-control-char", "{\"a\u{1}\":1}"),
        ("dtype-unknown", r#"{"t":{"dtype":"F128","shape":[4],"data_offsets":[0,16]}}"#),
        ("dtype-number", r#"{"t":{"dtype":7,"shape":[4],"data_offsets":[0,16]}}"#),
        ("shape-negative", r#"{"t":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}"#),
        ("shape-overflow", r#"{"t":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,16]}}"#),
        ("shape-too-many-dims", r#"{"t":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,4],"data_offsets":[0,16]}}"#),
        ("shape-mismatch", r#"{"t":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}}"#),
        ("offsets-reversed", r#"{"t":{"dtype":"F32","shape":[0],"data_offsets":[16,0]}}"#),
        ("offsets-past-end", r#"{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,18446744073709551615]}}"#),
        ("offsets-three", r#"{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,8,16]}}"#),
        ("offsets-overlap", r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#),
        ("offsets-hole", r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#),
        ("duplicate-name", r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#),
        ("unknown-key", r#"{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16],"extra":1}}"#),
        ("metadata-not-strings", r#"{"__metadata__":{"format":1},"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#),
        ("metadata-twice", r#"{"__metadata__":{},"__metadata__":{},"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#),
        ("deep-json", &format!("{{\"t\":{}{}}}", "[".repeat(5000), "]".repeat(5000))),
    ] {
        add(format!("safetensors/{name}"), Kind::Safetensors, header(json, &d16), true, Expect::Exit(1));
    }
    // safetensors: parses, but the llama import must fail (wrong or missing tensors).
    let f32s = |n: usize| vec![0u8; n * 4];
    let one = write_safetensors(&[], &[("model.embed_tokens.weight", Dtype::F32, &[32, 8], &f32s(256))]);
    add("safetensors/import-missing-layers".into(), Kind::Safetensors, one, false, Expect::Exit(1));
    let i8s = write_safetensors(&[], &[("model.embed_tokens.weight", Dtype::I8, &[32, 8], &[0u8; 256])]);
    add("safetensors/import-int8-embedding".into(), Kind::Safetensors, i8s, false, Expect::Exit(1));
    for (i, pos) in [[3usize].as_slice(), &[12, 13], &[60], &[hlen], &[st.len() / 2]].iter().enumerate() {
        add(format!("safetensors/bitrot-{i}"), Kind::Safetensors, flip(&st, pos), false, Expect::OkOrInput);
    }

    // FlexCiM binary streams.
    let bin = encode(&synth::flexcim_program());
    for cut in [4, 5, 6, 9, 10, 11, 20, bin.len() / 2, bin.len() - 1] {
        add(format!("flexcim-bin/truncated-at-{cut}"), Kind::FlexcimBin, bin[..cut].to_vec(), true, Expect::Exit(1));
    }
    let mut b = bin.clone();
    b[4] = 9;
    add("flexcim-bin/version-9".into(), Kind::FlexcimBin, b, true, Expect::Exit(1));
    let mut b = bin.clone();
    b[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
    add("flexcim-bin/count-max".into(), Kind::FlexcimBin, b, true, Expect::Exit(1));
    let mut b = bin.clone();
    b[10] = 200;
    add("flexcim-bin/unknown-opcode".into(), Kind::FlexcimBin, b, true, Expect::Exit(1));
    let mut b = bin.clone();
    b.extend_from_slice(&[8, 8, 8]);
    add("flexcim-bin/trailing-bytes".into(), Kind::FlexcimBin, b, true, Expect::Exit(1));
    let mut b = bin.clone();
    b[11..15].copy_from_slice(&u32::MAX.to_le_bytes());
    add("flexcim-bin/name-length-max".into(), Kind::FlexcimBin, b, true, Expect::Exit(1));
    // Found by the flexcim_bin fuzzer: a `dsel` with zero bus groups decodes,
    // printed as `bus= s1= s2=`, and its assembly did not parse back. The
    // simulator must still reject it (the macro has 4 sub-macros).
    let mut p = synth::flexcim_program();
    p.instrs.insert(2, flexc_backends::flexcim::isa::Instr::Dsel { row: 0, bus: Vec::new(), s1: Vec::new(), s2: Vec::new() });
    add("flexcim-bin/dsel-zero-groups".into(), Kind::FlexcimBin, encode(&p), false, Expect::Exit(1));
    for (i, pos) in [[12usize].as_slice(), &[30, 31], &[bin.len() / 3], &[bin.len() / 2], &[bin.len() - 3]].iter().enumerate() {
        add(format!("flexcim-bin/bitrot-{i}"), Kind::FlexcimBin, flip(&bin, pos), false, Expect::OkOrInput);
    }
    artifact_cases(&mut add);

    // ONNX: truncations (protobuf errors, or a prefix missing the graph),
    // wrong wire types, and graph-level faults.
    let ox = crate::onnx_synth::bytes();
    for cut in [1, 2, 5, ox.len() / 4, ox.len() / 2, ox.len() * 3 / 4, ox.len() - 7, ox.len() - 1] {
        add(format!("onnx/truncated-at-{cut}"), Kind::Onnx, ox[..cut].to_vec(), false, Expect::Exit(1));
    }
    for (name, tag) in [("graph-as-varint", 0x38u8), ("graph-as-fixed64", 0x39), ("graph-as-group", 0x3b)] {
        // Field 7 (graph) re-tagged with another wire type.
        let mut b = ox.clone();
        if let Some(i) = b.iter().position(|&x| x == 0x3a) {
            b[i] = tag;
        }
        add(format!("onnx/{name}"), Kind::Onnx, b, false, Expect::Exit(1));
    }
    add("onnx/empty".into(), Kind::Onnx, Vec::new(), false, Expect::Exit(1));
    add("onnx/not-protobuf".into(), Kind::Onnx, b"this is not a model".to_vec(), false, Expect::Exit(1));
    for (name, b) in crate::onnx_synth::semantic_cases() {
        add(format!("onnx/{name}"), Kind::Onnx, b, false, Expect::Exit(1));
    }
    for (i, pos) in [[3usize].as_slice(), &[ox.len() / 3], &[ox.len() / 2, ox.len() / 2 + 1], &[ox.len() - 5], &[40, 41, 42]].iter().enumerate() {
        add(format!("onnx/bitrot-{i}"), Kind::Onnx, flip(&ox, pos), false, Expect::OkOrInput);
    }
    out
}

/// `.flexc` cases: damage to the container (the reader must reject them) and
/// well-formed containers with bad contents (checksums recomputed).
fn artifact_cases(add: &mut dyn FnMut(String, Kind, Vec<u8>, bool, Expect)) {
    use flexc::artifact::container::{build, parse, FORMAT_VERSION};
    let a = synth::llama_flexc();
    let c = parse("tiny.flexc", &a).expect("the tiny artifact parses");
    let sec = |tag: &str| c.sections.iter().find(|s| s.tag == tag).expect("section").clone();
    let (meta, prov, ir, weights) = (sec("meta"), sec("prov"), sec("ir"), sec("weights"));
    let mut cuts = vec![0, 7, 8, 31, 32, 60, 160, a.len() - 1];
    cuts.extend([&meta, &prov, &ir, &weights].iter().map(|s| (s.offset + s.len / 2) as usize));
    for cut in cuts {
        add(format!("flexc/truncated-at-{cut}"), Kind::Artifact, a[..cut].to_vec(), true, Expect::Exit(1));
    }
    let mut tail = a.clone();
    tail.extend_from_slice(b"tail");
    add("flexc/trailing-bytes".into(), Kind::Artifact, tail, true, Expect::Exit(1));
    let patch = |at: usize, v: &[u8]| {
        let mut b = a.clone();
        b[at..at + v.len()].copy_from_slice(v);
        b
    };
    add("flexc/bad-magic".into(), Kind::Artifact, patch(1, b"G"), true, Expect::Exit(1));
    add("flexc/version-0".into(), Kind::Artifact, patch(8, &0u32.to_le_bytes()), true, Expect::Exit(1));
    add(format!("flexc/version-{}", FORMAT_VERSION + 1), Kind::Artifact, patch(8, &(FORMAT_VERSION + 1).to_le_bytes()), true, Expect::Exit(1));
    add("flexc/version-max".into(), Kind::Artifact, patch(8, &u32::MAX.to_le_bytes()), true, Expect::Exit(1));
    for (name, v) in [("sections-0", 0u32), ("sections-max", u32::MAX), ("sections-65", 65)] {
        add(format!("flexc/{name}"), Kind::Artifact, patch(12, &v.to_le_bytes()), true, Expect::Exit(1));
    }
    for (name, v) in [("file-len-max", u64::MAX), ("file-len-short", a.len() as u64 - 1)] {
        add(format!("flexc/{name}"), Kind::Artifact, patch(16, &v.to_le_bytes()), true, Expect::Exit(1));
    }
    add("flexc/table-checksum".into(), Kind::Artifact, patch(24, &[0, 0, 0, 0]), true, Expect::Exit(1));
    add("flexc/reserved".into(), Kind::Artifact, patch(28, &[1]), true, Expect::Exit(1));
    for s in [&meta, &prov, &ir, &weights] {
        add(format!("flexc/bitrot-{}", s.tag), Kind::Artifact, flip(&a, &[(s.offset + s.len / 3) as usize]), true, Expect::Exit(1));
    }
    // Well-formed containers whose contents are wrong.
    let body = |s: &flexc::artifact::container::Section| a[s.offset as usize..(s.offset + s.len) as usize].to_vec();
    let (m, p, i, w) = (body(&meta), body(&prov), body(&ir), body(&weights));
    let text = String::from_utf8(i.clone()).expect("the IR is text");
    let first_weight = text.find("file<\"flexc:weights\", 0,").expect("a weight at offset 0");
    let with_ir = |t: String| build(&[("meta", 8, &m), ("prov", 8, &p), ("ir", 8, t.as_bytes()), ("weights", 4096, &w)]);
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("missing-weights", build(&[("meta", 8, &m), ("prov", 8, &p), ("ir", 8, &i)])),
        ("missing-meta", build(&[("prov", 8, &p), ("ir", 8, &i), ("weights", 4096, &w)])),
        ("duplicate-ir", build(&[("meta", 8, &m), ("prov", 8, &p), ("ir", 8, &i), ("ir", 8, &i), ("weights", 4096, &w)])),
        ("prov-not-json", build(&[("meta", 8, &m), ("prov", 8, b"{not json"), ("ir", 8, &i), ("weights", 4096, &w)])),
        ("meta-not-gguf", build(&[("meta", 8, b"GGUF\x03"), ("prov", 8, &p), ("ir", 8, &i), ("weights", 4096, &w)])),
        ("ir-not-utf8", build(&[("meta", 8, &m), ("prov", 8, &p), ("ir", 8, &[&[0xffu8][..], &i].concat()), ("weights", 4096, &w)])),
        ("ir-syntax", with_ir(text.replacen("func", "fnuc", 1))),
        ("ir-outside-file", with_ir(text.replacen("file<\"flexc:weights\", 0,", "file<\"/etc/passwd\", 0,", 1))),
        ("ir-past-section", with_ir(format!("{}file<\"flexc:weights\", {},{}", &text[..first_weight], w.len() - 64, &text[first_weight + "file<\"flexc:weights\", 0,".len()..]))),
        ("ir-offset-max", with_ir(format!("{}file<\"flexc:weights\", 18446744073709551552,{}", &text[..first_weight], &text[first_weight + "file<\"flexc:weights\", 0,".len()..]))),
        ("ir-misaligned", with_ir(format!("{}file<\"flexc:weights\", 4,{}", &text[..first_weight], &text[first_weight + "file<\"flexc:weights\", 0,".len()..]))),
        ("ir-no-forward", with_ir(text.replacen("func @forward", "func @backward", 1))),
    ];
    // Packed LUT streams (`lutidx` records + `lutpack` bytes) that cannot be used.
    let spec = flexc_backends::cpu::lut::LutSpec { rows: 16, cols: 64, bits: 2, group: 64, act_group: 32, bias: flexc_backends::cpu::lut::LutBias::None, bcq: false, k_tile: 4096, half_scales: true, split: false };
    let stream_len = spec.weight_bytes() as u64;
    let record = |spec: &flexc_backends::cpu::lut::LutSpec, offset: u64, len: u64| serde_json::json!({"weight": "w", "act_group": 32, "k_tile": 4096, "spec": spec, "offset": offset, "len": len});
    let packed = vec![0u8; stream_len as usize];
    let with_packs = |idx: serde_json::Value, data: &[u8]| {
        let idx = serde_json::to_vec(&idx).expect("json");
        build(&[("meta", 8, &m), ("prov", 8, &p), ("ir", 8, &i), ("weights", 4096, &w), ("lutidx", 8, &idx), ("lutpack", 4096, data)])
    };
    let zero_rows = flexc_backends::cpu::lut::LutSpec { rows: 0, ..spec };
    let variants: Vec<(&str, Vec<u8>)> = variants
        .into_iter()
        .chain([
            ("lutidx-not-json", build(&[("meta", 8, &m), ("prov", 8, &p), ("ir", 8, &i), ("weights", 4096, &w), ("lutidx", 8, b"[{"), ("lutpack", 4096, &packed)])),
            ("lutidx-without-lutpack", build(&[("meta", 8, &m), ("prov", 8, &p), ("ir", 8, &i), ("weights", 4096, &w), ("lutidx", 8, b"[]")])),
            ("lutidx-past-lutpack", with_packs(serde_json::json!([record(&spec, 64, stream_len)]), &packed)),
            ("lutidx-offset-max", with_packs(serde_json::json!([record(&spec, u64::MAX - 8, stream_len)]), &packed)),
            ("lutidx-wrong-length", with_packs(serde_json::json!([record(&spec, 0, stream_len - 1)]), &packed)),
            ("lutidx-bad-spec", with_packs(serde_json::json!([record(&zero_rows, 0, 0)]), &packed)),
            ("lutidx-twice", with_packs(serde_json::json!([record(&spec, 0, stream_len), record(&spec, 0, stream_len)]), &packed)),
        ])
        .collect();
    for (name, b) in variants {
        // ir-no-forward is a valid artifact of a module `run` cannot use.
        add(format!("flexc/{name}"), Kind::Artifact, b, name != "ir-no-forward", Expect::Exit(1));
    }
    // A tokenizer the artifact's metadata cannot build: the reader accepts it; tokenize and run refuse.
    let g = flexc::frontend::gguf::GgufFile::from_bytes_named("meta", m.clone()).expect("the meta section is a GGUF");
    let mut gw = GgufWriter::new(3);
    for (k, v) in g.metadata.iter().filter(|(k, _)| k != "tokenizer.ggml.tokens") {
        gw.add_meta(k, v.clone());
    }
    let m2 = gw.to_bytes().expect("serialises");
    add("flexc/tokenizer-tokens-missing".into(), Kind::Artifact, build(&[("meta", 8, &m2), ("prov", 8, &p), ("ir", 8, &i), ("weights", 4096, &w)]), false, Expect::Exit(1));
}

/// Every case: the checked-in text corpus and the generated binary cases.
pub fn all_cases() -> Vec<Case> {
    let mut v = text_cases();
    v.extend(binary_cases());
    v
}
