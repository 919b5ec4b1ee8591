//! Tiny synthetic input files of every format flexc reads, built in memory.
//!
//! The malformed-input corpus (`compiler/tests/malformed.rs`) corrupts these
//! files, and the fuzz seed generator (`testsuite/examples/fuzz_seeds.rs`)
//! writes them as starting points for the fuzzers. They are built here rather
//! than checked in so that no model file (real or binary fixture) lives in the
//! repository, and so each one stays small (a few KB) and valid by
//! construction: a 1-block llama with a byte-level BPE or SentencePiece
//! vocabulary, its safetensors twin with `config.json`, a linear layer as
//! `.fir`, and a FlexCiM stream lowered from a small N:M layer.

use flexc::frontend::gguf::{GgmlType, GgufWriter, MetaValue};
use flexc::frontend::safetensors::{write_safetensors, Dtype};
use flexc_backends::flexcim::arch::{Arch, Nm};
use flexc_backends::flexcim::isa::Program;
use flexc_backends::flexcim::lower::{synthetic_layer, Rng};
use flexc_backends::flexcim::{run_arch, Workload};

/// Model sizes of the tiny llama (vocabulary size depends on the tokenizer).
pub const EMBD: usize = 8;
/// Attention heads.
pub const HEADS: usize = 2;
/// Key/value heads.
pub const KV_HEADS: usize = 1;
/// Head size.
pub const HEAD_DIM: usize = 4;
/// Feed-forward width.
pub const FFN: usize = 16;

/// Which vocabulary the tiny GGUF carries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Vocab {
    /// Byte-level BPE (`tokenizer.ggml.model = gpt2`).
    Bpe,
    /// SentencePiece-style (`tokenizer.ggml.model = llama`) with byte fallback.
    Spm,
}

/// GPT-2's byte → printable code point table (as in `bytes_to_unicode`).
fn byte_chars() -> Vec<char> {
    let mut table = vec!['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable = (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap_or('?')
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or('?')
        };
    }
    table
}

/// Tokens, scores, types and merges of a small vocabulary.
pub fn vocab(kind: Vocab) -> (Vec<String>, Vec<f32>, Vec<i32>, Vec<String>) {
    match kind {
        Vocab::Bpe => {
            let mut tokens: Vec<String> = byte_chars().into_iter().map(String::from).collect();
            let merges: Vec<String> = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "Ġ s"].iter().map(|s| s.to_string()).collect();
            for m in &merges {
                tokens.push(m.replace(' ', ""));
            }
            tokens.push("<|endoftext|>".into());
            let n = tokens.len();
            let mut types = vec![1; n];
            types[n - 1] = 3;
            (tokens, Vec::new(), types, merges)
        }
        Vocab::Spm => {
            let mut tokens = vec!["<unk>".to_string(), "<s>".into(), "</s>".into()];
            let mut types = vec![2, 3, 3];
            let mut scores = vec![0.0, 0.0, 0.0];
            for b in 0..256 {
                tokens.push(format!("<0x{b:02X}>"));
                types.push(6);
                scores.push(0.0);
            }
            for (i, w) in ["▁", "▁t", "▁the", "he", "e", "t", "h", "▁a", "a", "in", "▁in"].iter().enumerate() {
                tokens.push(w.to_string());
                types.push(1);
                scores.push(-(i as f32));
            }
            (tokens, scores, types, Vec::new())
        }
    }
}

/// Deterministic values in [-0.5, 0.5).
pub fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

fn le(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The tiny llama's tensors by GGUF name, PyTorch-order shape `[rows, cols]`.
pub fn llama_tensors(vocab: usize) -> Vec<(String, Vec<usize>)> {
    llama_tensors_blocks(vocab, 1)
}

/// The tensors of a tiny llama with `blocks` decoder blocks.
pub fn llama_tensors_blocks(vocab: usize, blocks: usize) -> Vec<(String, Vec<usize>)> {
    let mut t = vec![("token_embd.weight".to_string(), vec![vocab, EMBD])];
    for b in 0..blocks {
        block_tensors(&mut t, b);
    }
    t.push(("output_norm.weight".into(), vec![EMBD]));
    t
}

fn block_tensors(t: &mut Vec<(String, Vec<usize>)>, b: usize) {
    let p = |s: &str| format!("blk.{b}.{s}");
    t.push((p("attn_norm.weight"), vec![EMBD]));
    t.push((p("attn_q.weight"), vec![HEADS * HEAD_DIM, EMBD]));
    t.push((p("attn_k.weight"), vec![KV_HEADS * HEAD_DIM, EMBD]));
    t.push((p("attn_v.weight"), vec![KV_HEADS * HEAD_DIM, EMBD]));
    t.push((p("attn_output.weight"), vec![EMBD, HEADS * HEAD_DIM]));
    t.push((p("ffn_norm.weight"), vec![EMBD]));
    t.push((p("ffn_gate.weight"), vec![FFN, EMBD]));
    t.push((p("ffn_up.weight"), vec![FFN, EMBD]));
    t.push((p("ffn_down.weight"), vec![EMBD, FFN]));
}

/// A one-block llama GGUF (v3, f32 weights) with a tokenizer.
pub fn llama_gguf(kind: Vocab) -> Vec<u8> {
    llama_gguf_blocks(kind, 1)
}

/// A tiny llama GGUF with `blocks` decoder blocks (calibration and
/// sequential-pruning tests need more than one).
pub fn llama_gguf_blocks(kind: Vocab, blocks: usize) -> Vec<u8> {
    llama_gguf_scaled(kind, blocks, &|_| 1.0)
}

/// [`llama_gguf_blocks`] with every matrix `name` multiplied by
/// `scale(name)` (e.g. to make one block matter more than the others).
pub fn llama_gguf_scaled(kind: Vocab, blocks: usize, scale: &dyn Fn(&str) -> f32) -> Vec<u8> {
    let (tokens, scores, types, merges) = vocab(kind);
    let n_vocab = tokens.len();
    let mut w = GgufWriter::new(3);
    w.add_meta("general.architecture", MetaValue::Str("llama".into()))
        .add_meta("general.name", MetaValue::Str("tiny".into()))
        .add_meta("llama.block_count", MetaValue::U32(blocks as u32))
        .add_meta("llama.context_length", MetaValue::U32(64))
        .add_meta("llama.embedding_length", MetaValue::U32(EMBD as u32))
        .add_meta("llama.feed_forward_length", MetaValue::U32(FFN as u32))
        .add_meta("llama.attention.head_count", MetaValue::U32(HEADS as u32))
        .add_meta("llama.attention.head_count_kv", MetaValue::U32(KV_HEADS as u32))
        .add_meta("llama.attention.layer_norm_rms_epsilon", MetaValue::F32(1e-5))
        .add_meta("llama.rope.freq_base", MetaValue::F32(10000.0));
    match kind {
        Vocab::Bpe => {
            w.add_meta("tokenizer.ggml.model", MetaValue::Str("gpt2".into()))
                .add_meta("tokenizer.ggml.pre", MetaValue::Str("smollm".into()))
                .add_meta("tokenizer.ggml.merges", MetaValue::Array(merges.into_iter().map(MetaValue::Str).collect()))
                .add_meta("tokenizer.ggml.eos_token_id", MetaValue::U32(n_vocab as u32 - 1))
                // Explicit: llama.cpp's BPE default BOS id is 11, which in this
                // vocabulary is the byte 0x0b, and decode drops a leading BOS
                // (the tokenizer fuzzer's round-trip check tripped on it).
                .add_meta("tokenizer.ggml.bos_token_id", MetaValue::U32(n_vocab as u32 - 1));
        }
        Vocab::Spm => {
            w.add_meta("tokenizer.ggml.model", MetaValue::Str("llama".into()))
                .add_meta("tokenizer.ggml.scores", MetaValue::Array(scores.into_iter().map(MetaValue::F32).collect()));
        }
    }
    w.add_meta("tokenizer.ggml.tokens", MetaValue::Array(tokens.into_iter().map(MetaValue::Str).collect()))
        .add_meta("tokenizer.ggml.token_type", MetaValue::Array(types.into_iter().map(MetaValue::I32).collect()));
    for (i, (name, shape)) in llama_tensors_blocks(n_vocab, blocks).into_iter().enumerate() {
        let n: usize = shape.iter().product();
        let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
        let k = scale(&name);
        let v: Vec<f32> = values(i as u64 + 1, n).into_iter().map(|x| if shape.len() == 1 { 1.0 + x * 0.1 } else { x * k }).collect();
        w.add_tensor(&name, &dims, GgmlType::F32, le(&v)).expect("tiny tensor sizes are consistent");
    }
    w.to_bytes().expect("the tiny GGUF serialises")
}

/// The Hugging Face name of a tiny-llama GGUF tensor name.
fn hf_name(gguf: &str) -> String {
    flexc::frontend::hf::hf_llama_name(gguf)
}

/// A tiny llama as `model.safetensors` bytes (f32) and its `config.json` text.
pub fn llama_safetensors() -> (Vec<u8>, String) {
    let vocab = 32;
    let ts = llama_tensors(vocab);
    let names: Vec<String> = ts.iter().map(|(n, _)| hf_name(n)).collect();
    let shapes: Vec<Vec<u64>> = ts.iter().map(|(_, s)| s.iter().map(|&d| d as u64).collect()).collect();
    let data: Vec<Vec<u8>> = ts.iter().enumerate().map(|(i, (_, s))| le(&values(i as u64 + 7, s.iter().product()))).collect();
    let entries: Vec<(&str, Dtype, &[u64], &[u8])> = (0..ts.len()).map(|i| (names[i].as_str(), Dtype::F32, shapes[i].as_slice(), data[i].as_slice())).collect();
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": EMBD,
        "intermediate_size": FFN, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
        "num_hidden_layers": 1, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": vocab,
        "hidden_act": "silu", "max_position_embeddings": 64, "tie_word_embeddings": true
    });
    (write_safetensors(&[("format", "pt")], &entries), config.to_string())
}

/// A dense linear layer `f32[tokens, inp] -> f32[tokens, out]` as `.fir` text
/// (inline weights from a fixed formula).
pub fn linear_fir(out: usize, inp: usize, tokens: usize) -> String {
    let vals: Vec<String> = (0..out * inp).map(|i| format!("{:?}", ((i * 37 % 101) as f64 - 50.0) / 64.0)).collect();
    format!(
        "weight @w : f32[{out}, {inp}] = dense<[{}]>\n\nfunc @f(%x: f32[{tokens}, {inp}]) -> f32[{tokens}, {out}] {{\n  %w = tensor.weight @w : f32[{out}, {inp}]\n  %y = tensor.matmul %x, %w {{transpose_b}} : f32[{tokens}, {out}]\n  return %y\n}}\n",
        vals.join(", ")
    )
}

/// A FlexCiM stream for a small 2:4 layer on the default architecture.
pub fn flexcim_program() -> Program {
    let arch = Arch::default_flexcim();
    let mut rng = Rng(7);
    let layer = synthetic_layer("l0", 32, 64, Nm::of(2, 4), true, 4, &mut rng);
    let tokens = 2;
    let x: Vec<i8> = (0..tokens * 64).map(|_| rng.i8()).collect();
    let run = run_arch(&arch, "flexcim", &[Workload { layer, x, tokens, oracle: None, tile: None }], &[("softmax".into(), 64)]).expect("the synthetic layer lowers");
    run.program
}

/// The tiny llama ([`llama_gguf`], byte-level BPE) compiled for the CPU with
/// no pass and a KV cache of 16 tokens, as the bytes of a `.flexc` artifact.
pub fn llama_flexc() -> Vec<u8> {
    use flexc_ir::weights::{WeightData, WeightSource, WeightTable};
    let bytes = llama_gguf(Vocab::Bpe);
    let g = flexc::frontend::gguf::GgufFile::from_bytes_named("tiny.gguf", bytes.clone()).expect("synthetic gguf parses");
    let opts = flexc::frontend::decoder::ImportOptions { ctx: 16, batch: 1 };
    let mut m = flexc::frontend::decoder::import_gguf(&g, std::path::Path::new("tiny.gguf"), &opts).expect("the tiny llama imports");
    // Its weights live in `bytes`, not in a file: hand them over as derived bytes.
    let mut t = WeightTable::default();
    for (_, w) in m.weights.iter() {
        let source = match &w.source {
            WeightSource::File { offset, len, .. } => WeightSource::Derived(bytes[*offset as usize..(*offset + *len) as usize].into()),
            s => s.clone(),
        };
        t.insert(WeightData { source, ..w.clone() }).expect("unique weight names");
    }
    m.weights = t;
    let source = flexc::artifact::FileRecord { path: "tiny.gguf".into(), bytes: bytes.len() as u64, sha256: "0".repeat(64) };
    let prov = flexc::artifact::Provenance {
        flexc_version: env!("CARGO_PKG_VERSION").into(),
        target: "cpu".into(),
        source,
        pipeline: "none".into(),
        calibration: None,
        calibration_source: None,
        cost_table: "none (no pass ran)".into(),
        ctx: 16,
        parameters: m.weights.iter().filter_map(|(_, w)| w.ty.numel()).sum(),
        remarks: Vec::new(),
    };
    flexc::artifact::write::to_bytes("tiny.flexc", &m, &g.metadata, &prov, None).expect("the tiny artifact serialises")
}
