//! A tiny random llama written twice — as a HF checkpoint (safetensors +
//! config.json, un-permuted q/k, rotate-half RoPE) and as a GGUF (q/k rows
//! permuted the way convert_hf_to_gguf.py does, interleaved RoPE) — must give
//! the same logits on the reference interpreter. Also: config.json errors.

use flexc_testsuite::synth::values;
use flexc::frontend::decoder::ImportOptions;
use flexc::frontend::gguf::{GgmlType, GgufWriter, MetaValue};
use flexc::frontend::safetensors::{write_safetensors, Dtype};
use flexc::frontend::{model_file, Checkpoint};
use flexc_backends::reference::{Interpreter, Tensor};
use flexc_ir::verify::verify_module;
use std::path::{Path, PathBuf};

const VOCAB: usize = 40;
const EMBD: usize = 16;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 4;
const FFN: usize = 24;
const LAYERS: usize = 2;

/// `(HF name, GGUF name, [rows, cols] or [n], values)`; norms near 1.
fn tensors() -> Vec<(String, String, Vec<usize>, Vec<f32>)> {
    let mut out = Vec::new();
    let mut seed = 1;
    let mut add = |hf: String, gg: String, shape: Vec<usize>, norm: bool| {
        seed += 1;
        let n = shape.iter().product();
        let v = values(seed, n).into_iter().map(|x| if norm { 1.0 + x * 0.2 } else { x }).collect();
        out.push((hf, gg, shape, v));
    };
    add("model.embed_tokens.weight".into(), "token_embd.weight".into(), vec![VOCAB, EMBD], false);
    for l in 0..LAYERS {
        let (h, g) = (format!("model.layers.{l}."), format!("blk.{l}."));
        add(format!("{h}input_layernorm.weight"), format!("{g}attn_norm.weight"), vec![EMBD], true);
        add(format!("{h}self_attn.q_proj.weight"), format!("{g}attn_q.weight"), vec![HEADS * HEAD_DIM, EMBD], false);
        add(format!("{h}self_attn.k_proj.weight"), format!("{g}attn_k.weight"), vec![KV_HEADS * HEAD_DIM, EMBD], false);
        add(format!("{h}self_attn.v_proj.weight"), format!("{g}attn_v.weight"), vec![KV_HEADS * HEAD_DIM, EMBD], false);
        add(format!("{h}self_attn.o_proj.weight"), format!("{g}attn_output.weight"), vec![EMBD, HEADS * HEAD_DIM], false);
        add(format!("{h}post_attention_layernorm.weight"), format!("{g}ffn_norm.weight"), vec![EMBD], true);
        add(format!("{h}mlp.gate_proj.weight"), format!("{g}ffn_gate.weight"), vec![FFN, EMBD], false);
        add(format!("{h}mlp.up_proj.weight"), format!("{g}ffn_up.weight"), vec![FFN, EMBD], false);
        add(format!("{h}mlp.down_proj.weight"), format!("{g}ffn_down.weight"), vec![EMBD, FFN], false);
    }
    add("model.norm.weight".into(), "output_norm.weight".into(), vec![EMBD], true);
    add("lm_head.weight".into(), "output.weight".into(), vec![VOCAB, EMBD], false);
    out
}

/// convert_hf_to_gguf.py's `permute`: within each head, row `2i + j` of the
/// result is row `j·(hd/2) + i` of the HF weight.
fn permute(w: &[f32], heads: usize, cols: usize) -> Vec<f32> {
    let rows = w.len() / cols;
    let hd = rows / heads;
    let mut out = vec![0f32; w.len()];
    for h in 0..heads {
        for i in 0..hd / 2 {
            for j in 0..2 {
                let (dst, src) = (h * hd + 2 * i + j, h * hd + j * (hd / 2) + i);
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn config() -> serde_json::Value {
    serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": EMBD,
        "intermediate_size": FFN, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
        "num_hidden_layers": LAYERS, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": VOCAB,
        "hidden_act": "silu", "max_position_embeddings": 64, "tie_word_embeddings": false
    })
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("flexc-hf-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn write_hf(dir: &Path, config: &serde_json::Value) -> PathBuf {
    let ts = tensors();
    let bytes: Vec<Vec<u8>> = ts.iter().map(|t| le_bytes(&t.3)).collect();
    let shapes: Vec<Vec<u64>> = ts.iter().map(|t| t.2.iter().map(|&d| d as u64).collect()).collect();
    let entries: Vec<(&str, Dtype, &[u64], &[u8])> = ts.iter().zip(&shapes).zip(&bytes).map(|((t, s), b)| (t.0.as_str(), Dtype::F32, s.as_slice(), b.as_slice())).collect();
    let path = dir.join("model.safetensors");
    std::fs::write(&path, write_safetensors(&[("format", "pt")], &entries)).expect("write safetensors");
    std::fs::write(dir.join("config.json"), config.to_string()).expect("write config");
    path
}

fn write_gguf(dir: &Path, permuted: bool) -> PathBuf {
    let mut w = GgufWriter::new(3);
    w.add_meta("general.architecture", MetaValue::Str("llama".into()))
        .add_meta("general.name", MetaValue::Str("tiny".into()))
        .add_meta("llama.block_count", MetaValue::U32(LAYERS as u32))
        .add_meta("llama.embedding_length", MetaValue::U32(EMBD as u32))
        .add_meta("llama.feed_forward_length", MetaValue::U32(FFN as u32))
        .add_meta("llama.attention.head_count", MetaValue::U32(HEADS as u32))
        .add_meta("llama.attention.head_count_kv", MetaValue::U32(KV_HEADS as u32))
        .add_meta("llama.attention.layer_norm_rms_epsilon", MetaValue::F32(1e-5))
        .add_meta("llama.rope.freq_base", MetaValue::F32(10000.0))
        .add_meta("llama.vocab_size", MetaValue::U32(VOCAB as u32));
    for (_, gg, shape, v) in tensors() {
        let v = if !permuted {
            v
        } else if gg.ends_with("attn_q.weight") {
            permute(&v, HEADS, EMBD)
        } else if gg.ends_with("attn_k.weight") {
            permute(&v, KV_HEADS, EMBD)
        } else {
            v
        };
        let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
        w.add_tensor(&gg, &dims, GgmlType::F32, le_bytes(&v)).expect("add tensor");
    }
    let path = dir.join(if permuted { "tiny.gguf" } else { "unpermuted.gguf" });
    std::fs::write(&path, w.to_bytes().expect("gguf bytes")).expect("write gguf");
    path
}

fn logits(path: &Path, tokens: &[i64]) -> Vec<f32> {
    let ck = Checkpoint::open(path).expect("open");
    let m = ck.import(path, &ImportOptions { ctx: 16, ..Default::default() }).expect("import");
    verify_module(&m).expect("verifies");
    let f = &m.funcs[m.func("forward").expect("@forward")];
    let mut inputs = vec![Tensor::int(flexc_ir::types::ElemType::I32, &[tokens.len()], tokens.to_vec()).expect("ids"), Tensor::scalar_i32(0)];
    for &p in &f.params[2..] {
        let shape: Vec<usize> = f.dfg.ty(p).shape.iter().map(|d| d.fixed().expect("fixed cache") as usize).collect();
        inputs.push(Tensor::f32(&shape, vec![0.0; shape.iter().product()]));
    }
    let out = Interpreter::new(&m).run("forward", inputs).expect("runs");
    out[0].as_f32().expect("f32 logits").to_vec()
}

#[test]
fn hf_llama_matches_gguf_llama() {
    let dir = temp_dir("llama");
    let hf = write_hf(&dir, &config());
    let gg = write_gguf(&dir, true);
    let tokens = [1, 7, 3, 22, 39, 0];
    let (a, b) = (logits(&hf, &tokens), logits(&gg, &tokens));
    assert_eq!(a.len(), tokens.len() * VOCAB);
    let max = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    let spread = a.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!(spread > 0.1, "logits are degenerate ({spread})");
    assert!(max < 1e-5, "HF and GGUF logits differ by {max}");
    // Without the permutation the two disagree: the comparison has teeth.
    let c = logits(&write_gguf(&dir, false), &tokens);
    let off = a.iter().zip(&c).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(off > 1e-3, "un-permuted GGUF should differ, max diff {off}");
    let folder = model_file(&dir).expect("folder resolves");
    assert_eq!(folder, hf);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tied_embeddings_use_the_token_table() {
    let dir = temp_dir("tied");
    let hf = write_hf(&dir, &config());
    // Rewrite without lm_head: the builder falls back to embed_tokens.
    let st = flexc::frontend::safetensors::SafetensorsFile::open(&hf).expect("open");
    let kept: Vec<_> = st.tensors.iter().filter(|t| t.name != "lm_head.weight").map(|t| (t.name.clone(), t.shape.clone(), st.tensor_bytes(t).to_vec())).collect();
    let entries: Vec<(&str, Dtype, &[u64], &[u8])> = kept.iter().map(|(n, s, b)| (n.as_str(), Dtype::F32, s.as_slice(), b.as_slice())).collect();
    drop(st);
    std::fs::write(&hf, write_safetensors(&[], &entries)).expect("rewrite");
    let l = logits(&hf, &[2, 4]);
    assert_eq!(l.len(), 2 * VOCAB);
    let _ = std::fs::remove_dir_all(&dir);
}

fn import_err(config: serde_json::Value) -> String {
    let dir = temp_dir(&format!("cfg{}", config.to_string().len()));
    let path = write_hf(&dir, &config);
    let err = Checkpoint::open(&path).expect("open").import(&path, &ImportOptions { ctx: 16, ..Default::default() }).expect_err("must fail").to_string();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!err.contains('\n'), "one line: {err}");
    err
}

#[test]
fn config_errors_are_one_line_and_name_the_file() {
    let mut c = config();
    c["model_type"] = "gpt2".into();
    let e = import_err(c);
    assert!(e.contains("config.json") && e.contains("unsupported architecture 'gpt2'"), "{e}");

    let mut c = config();
    c.as_object_mut().unwrap().remove("num_hidden_layers");
    let e = import_err(c);
    assert!(e.contains("missing key 'num_hidden_layers'"), "{e}");

    let mut c = config();
    c["rope_scaling"] = serde_json::json!({"type": "llama3", "factor": 8.0});
    let e = import_err(c);
    assert!(e.contains("rope_scaling"), "{e}");

    let mut c = config();
    c["hidden_size"] = 32.into();
    let e = import_err(c);
    assert!(e.contains("model.embed_tokens.weight") && e.contains("expected [40, 32]"), "{e}");

    let mut c = config();
    c["num_hidden_layers"] = 3.into();
    let e = import_err(c);
    assert!(e.contains("missing tensor 'model.layers.2.input_layernorm.weight'"), "{e}");
}

#[test]
fn missing_config_and_unknown_format() {
    let dir = temp_dir("nocfg");
    let path = write_hf(&dir, &config());
    std::fs::remove_file(dir.join("config.json")).expect("rm");
    let e = Checkpoint::open(&path).expect("open").import(&path, &ImportOptions::default()).expect_err("no config").to_string();
    assert!(e.contains("config.json"), "{e}");
    let junk = dir.join("notes.txt");
    std::fs::write(&junk, "hello, world").expect("write");
    let e = Checkpoint::open(&junk).expect_err("junk").to_string();
    assert!(e.contains("neither a GGUF file"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
