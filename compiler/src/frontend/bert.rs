//! BERT encoders (HF `BertModel` layout) into the tensor IR, with the
//! sentence-transformers pooling of all-MiniLM-L6-v2 (mean over tokens, then
//! L2 normalisation).
//!
//! The module has two functions:
//! - `@forward(%ids: i32[seq], %type_ids: i32[seq], %positions: i32[seq]) ->
//!   f32[seq, hidden]`: the last hidden states. The IR has no iota, so the
//!   caller passes the position ids (`0..seq`, see [`positions`]);
//! - `@embed(%hidden: f32[seq, hidden]) -> f32[hidden]`: mean pooling and L2
//!   normalisation (`x / ‖x‖`, as `rmsnorm` with weight `1/√hidden`).
//!
//! Each layer is post-norm: self-attention (bidirectional, head_dim =
//! hidden / heads) + output dense, residual, LayerNorm; intermediate dense,
//! GELU, output dense, residual, LayerNorm.

use super::builder::{Builder, ImportError, TensorSource};
use super::decoder::module_name;
use super::hf::Config;
use flexc_backends::reference::{Data, Interpreter, Tensor};
use flexc_ir::attrs;
use flexc_ir::ops::{AttrLit, GeluApprox, ReduceKind};
use flexc_ir::types::{Dim, ElemType, TensorType};
use flexc_ir::{Func, Module};
use std::path::Path;
use std::sync::Arc;

/// BERT hyperparameters from `config.json`.
#[derive(Clone, Debug)]
pub struct BertParams {
    /// Encoder layers.
    pub layers: usize,
    /// Model width.
    pub hidden: usize,
    /// Attention heads.
    pub heads: usize,
    /// Intermediate (FFN) width.
    pub ffn: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Rows of the position table (longest input).
    pub max_positions: usize,
    /// Rows of the token-type table.
    pub type_vocab: usize,
    /// LayerNorm epsilon.
    pub eps: f64,
    /// The activation.
    pub gelu: GeluApprox,
}

impl BertParams {
    /// Reads and checks the keys a BERT encoder needs.
    pub fn from_config(cfg: &Config) -> Result<BertParams, ImportError> {
        let c = &cfg.c;
        let gelu = match c.hidden_act.as_deref().unwrap_or("gelu") {
            "gelu" => GeluApprox::Erf,
            "gelu_new" | "gelu_pytorch_tanh" => GeluApprox::Tanh,
            other => return Err(cfg.err(format!("hidden_act '{other}' is not supported for bert (gelu, gelu_new)"))),
        };
        if let Some(p) = c.position_embedding_type.as_deref().filter(|p| *p != "absolute") {
            return Err(cfg.err(format!("position_embedding_type '{p}' is not supported (only absolute)")));
        }
        let hidden = cfg.size(c.hidden_size, "hidden_size")?;
        let heads = cfg.size(c.num_attention_heads, "num_attention_heads")?;
        if hidden % heads != 0 {
            return Err(cfg.err(format!("hidden_size {hidden} is not a multiple of num_attention_heads {heads}")));
        }
        let eps = c.layer_norm_eps.unwrap_or(1e-12);
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(cfg.err(format!("layer_norm_eps {eps} must be finite and >= 0")));
        }
        Ok(BertParams {
            layers: cfg.size(c.num_hidden_layers, "num_hidden_layers")?,
            hidden,
            heads,
            ffn: cfg.size(c.intermediate_size, "intermediate_size")?,
            vocab: cfg.size(c.vocab_size, "vocab_size")?,
            max_positions: cfg.size(c.max_position_embeddings, "max_position_embeddings")?,
            type_vocab: c.type_vocab_size.unwrap_or(2).max(1),
            eps,
            gelu,
        })
    }
}

/// Builds `@forward` and `@embed` of a BERT checkpoint.
pub fn build_bert(src: &dyn TensorSource, path: &Path, hp: &BertParams, name: &str) -> Result<Module, ImportError> {
    let seq = Dim::Sym(Arc::from("seq"));
    let fixed = |n: usize| Dim::Fixed(n as u64);
    let f32t = |shape: Vec<Dim>| TensorType { shape, elem: ElemType::F32, encoding: None };
    let ids_t = TensorType { shape: vec![seq.clone()], elem: ElemType::I32, encoding: None };
    let hidden_t = f32t(vec![seq.clone(), fixed(hp.hidden)]);
    let params = [(Some("ids".to_string()), ids_t.clone()), (Some("type_ids".to_string()), ids_t.clone()), (Some("positions".to_string()), ids_t)];
    let f = Func::new("forward", &params, vec![hidden_t.clone()]);
    let (ids, type_ids, positions) = (f.params[0], f.params[1], f.params[2]);
    let mut b = Builder::new(src, path, f);
    // Checkpoints saved from BertFor* heads put the encoder under `bert.`.
    let pre = if !b.has("embeddings.word_embeddings.weight") && b.has("bert.embeddings.word_embeddings.weight") { "bert." } else { "" };
    let n = |s: &str| format!("{pre}{s}");
    let (h, eps) = (hp.hidden, hp.eps);

    let words = b.plain(&n("embeddings.word_embeddings.weight"), &[hp.vocab, h])?;
    let pos_table = b.plain(&n("embeddings.position_embeddings.weight"), &[hp.max_positions, h])?;
    let types = b.plain(&n("embeddings.token_type_embeddings.weight"), &[hp.type_vocab, h])?;
    let x = b.op(attrs::Gather {}, &[words, ids], None)?;
    let p = b.op(attrs::Gather {}, &[pos_table, positions], None)?;
    let t = b.op(attrs::Gather {}, &[types, type_ids], None)?;
    let x = b.op(attrs::Add {}, &[x, p], None)?;
    let x = b.op(attrs::Add {}, &[x, t], None)?;
    let mut x = b.layernorm(x, &n("embeddings.LayerNorm"), h, eps)?;

    let head_dim = h / hp.heads;
    let heads_shape = [seq.clone(), fixed(hp.heads), fixed(head_dim)];
    let zero = b.scalar_i32(0)?;
    for l in 0..hp.layers {
        let p = |s: &str| n(&format!("encoder.layer.{l}.{s}"));
        let mut qkv = Vec::new();
        for which in ["query", "key", "value"] {
            let y = b.linear(x, &p(&format!("attention.self.{which}.weight")), h, h, Some(&p(&format!("attention.self.{which}.bias"))))?;
            qkv.push(b.reshape(y, &heads_shape)?);
        }
        let scale = 1.0 / (head_dim as f64).sqrt();
        let att = b.op(attrs::Attention { scale, bidirectional: true, window: 0, softcap: 0.0 }, &[qkv[0], qkv[1], qkv[2], zero], None)?;
        let att = b.reshape(att, &[seq.clone(), fixed(h)])?;
        let o = b.linear(att, &p("attention.output.dense.weight"), h, h, Some(&p("attention.output.dense.bias")))?;
        let r = b.op(attrs::Add {}, &[x, o], None)?;
        x = b.layernorm(r, &p("attention.output.LayerNorm"), h, eps)?;
        let up = b.linear(x, &p("intermediate.dense.weight"), hp.ffn, h, Some(&p("intermediate.dense.bias")))?;
        let act = b.op(attrs::Gelu { approx: hp.gelu }, &[up], None)?;
        let down = b.linear(act, &p("output.dense.weight"), h, hp.ffn, Some(&p("output.dense.bias")))?;
        let r = b.op(attrs::Add {}, &[x, down], None)?;
        x = b.layernorm(r, &p("output.LayerNorm"), h, eps)?;
    }
    b.f.returns = vec![x];

    // @embed: mean over tokens, then x / ‖x‖ = rmsnorm(x) / √hidden.
    b.next_func(Func::new("embed", &[(Some("hidden".to_string()), hidden_t)], vec![f32t(vec![fixed(h)])]));
    let hidden = b.f.params[0];
    let mean = b.op(attrs::Reduce { kind: ReduceKind::Mean, axis: 0, keepdim: false }, &[hidden], None)?;
    let w = b.splat(1.0 / (h as f32).sqrt(), &[h])?;
    // sentence-transformers divides by max(‖x‖, 1e-12); in mean-square terms:
    let eps = 1e-24 / h as f64;
    let e = b.op(attrs::Rmsnorm { eps }, &[mean, w], None)?;
    b.f.returns = vec![e];

    let mut m = b.finish();
    m.name = Some(module_name(name));
    m.meta = vec![
        ("arch".into(), AttrLit::Str("bert".into())),
        ("source".into(), AttrLit::Str(path.display().to_string())),
        ("layers".into(), AttrLit::Int(hp.layers as i64)),
        ("hidden".into(), AttrLit::Int(h as i64)),
        ("max_positions".into(), AttrLit::Int(hp.max_positions as i64)),
        ("pooling".into(), AttrLit::Str("mean, l2-normalize".into())),
    ];
    Ok(m)
}

/// The position ids `0..n` as an `i32[n]` input.
pub fn positions(n: usize) -> Tensor {
    int_vector((0..n as i64).collect())
}

fn int_vector(v: Vec<i64>) -> Tensor {
    Tensor { elem: ElemType::I32, shape: vec![v.len()], data: Data::Int(v) }
}

/// Runs `@forward` then `@embed` on one tokenized sentence (type ids 0) and
/// returns its L2-normalised embedding.
pub fn sentence_embedding(interp: &mut Interpreter<'_>, ids: &[u32]) -> Result<Vec<f32>, String> {
    let n = ids.len();
    let ids_t = int_vector(ids.iter().map(|&i| i as i64).collect());
    let hidden = interp.run("forward", vec![ids_t, int_vector(vec![0; n]), positions(n)]).map_err(|e| e.to_string())?;
    let out = interp.run("embed", hidden).map_err(|e| e.to_string())?;
    out.first().and_then(|t| t.as_f32()).map(<[f32]>::to_vec).ok_or_else(|| "@embed returned no f32 tensor".to_string())
}

/// Cosine similarity of two vectors (f64 accumulation).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let na: f64 = a.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na * nb) }
}

/// One embedded text: its token ids and its L2-normalised embedding.
pub type Embedded = (Vec<u32>, Vec<f32>);

/// An imported sentence encoder with its tokenizer: text in, L2-normalised
/// embeddings out (sentence-transformers' all-MiniLM-L6-v2 pipeline).
pub struct SentenceEncoder {
    /// The imported module (`@forward`, `@embed`).
    pub module: Module,
    /// The WordPiece tokenizer from `tokenizer.json`.
    pub tokenizer: crate::tokenizer::Tokenizer,
    /// Longest token sequence (`max_seq_length` of `sentence_bert_config.json`,
    /// else the position table); longer inputs are truncated, keeping `[SEP]`.
    pub max_len: usize,
}

impl SentenceEncoder {
    /// Wraps an imported BERT module with the tokenizer files next to `model`.
    pub fn new(module: Module, model: &Path) -> Result<SentenceEncoder, String> {
        if module.func("embed").is_none() {
            return Err(format!("{}: not a sentence encoder (the imported module has no @embed)", model.display()));
        }
        let tok_path = model.with_file_name("tokenizer.json");
        let tokenizer = crate::tokenizer::Tokenizer::from_hf_json_file(&tok_path).map_err(|e| format!("{}: {e}", tok_path.display()))?;
        let max_positions = module.meta.iter().find(|(k, _)| k == "max_positions").and_then(|(_, v)| match v {
            AttrLit::Int(n) => usize::try_from(*n).ok(),
            _ => None,
        });
        let st_cfg = model.with_file_name("sentence_bert_config.json");
        let max_seq = std::fs::read_to_string(&st_cfg)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("max_seq_length").and_then(serde_json::Value::as_u64))
            .map(|n| n as usize);
        let max_len = match (max_seq, max_positions) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(512),
        }
        .max(2);
        Ok(SentenceEncoder { module, tokenizer, max_len })
    }

    /// Token ids of one text: `[CLS] … [SEP]`, truncated to `max_len`.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        let mut ids = self.tokenizer.encode(text, true);
        if ids.len() > self.max_len {
            let last = ids[ids.len() - 1];
            ids.truncate(self.max_len - 1);
            ids.push(last);
        }
        ids
    }

    /// Embeds each text; returns `(token ids, embedding)` per text.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Embedded>, String> {
        let mut interp = Interpreter::new(&self.module);
        texts
            .iter()
            .map(|t| {
                let ids = self.tokenize(t);
                let e = sentence_embedding(&mut interp, &ids)?;
                Ok((ids, e))
            })
            .collect()
    }
}
