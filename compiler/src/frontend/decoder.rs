//! Decoder-only transformers (llama, gemma3, qwen2) from GGUF into the tensor IR.
//!
//! One builder serves the whole family; an [`ArchSpec`] says how each
//! architecture differs (RoPE pairing, activation, QK-norm, sandwich norms,
//! embedding scale, QKV bias, sliding-window pattern). Facts llama.cpp
//! hard-codes rather than storing in the file (Gemma 3's SWA pattern and
//! local RoPE base, its embedding scale) are written here, with the source.
//!
//! The imported module has one function, `@forward(%tokens: i32[seq],
//! %pos: i32[], caches...) -> (logits: f32[seq, vocab], caches...)`: `seq`
//! tokens starting at position `pos` run against per-layer K/V caches of a
//! fixed capacity, so the same function is prefill (seq = prompt length) and
//! decode (seq = 1). Every weight is a `file<...>` reference into the model.

pub use super::builder::ImportError;
use super::builder::{Builder, TensorDesc, TensorSource};
use super::gguf::GgufFile;
use flexc_ir::attrs;
use flexc_ir::ops::{GeluApprox, RopeMode};
use flexc_ir::types::{Dim, ElemType, Encoding, TensorType};
use flexc_ir::{Func, Module, Value};
use flexc_ir::quant::{is_ggml_encoding, GgmlType};
use flexc_ir::ops::AttrLit;
use std::path::Path;
use std::sync::Arc;

/// How one architecture of the family differs from plain llama.
#[derive(Clone, Debug)]
pub struct ArchSpec {
    /// The `general.architecture` value.
    pub name: &'static str,
    /// RoPE pairing.
    pub rope: RopeMode,
    /// GeGLU (gelu-tanh gate) instead of SwiGLU.
    pub gelu_gate: bool,
    /// RMSNorm of q and k per head before RoPE.
    pub qk_norm: bool,
    /// Norms after attention and after the FFN (Gemma's sandwich norms).
    pub post_norms: bool,
    /// Embeddings are multiplied by sqrt(embedding_length).
    pub scale_embeddings: bool,
    /// q/k/v projections have biases.
    pub qkv_bias: bool,
    /// Every `swa_period`-th layer (index % period == period − 1) is global;
    /// the others use the sliding window. 0: all layers global.
    pub swa_period: usize,
    /// RoPE base of sliding-window layers (global layers use the file's).
    pub swa_rope_base: f64,
}

/// The architectures this importer knows.
pub const ARCHS: &[ArchSpec] = &[
    ArchSpec { name: "llama", rope: RopeMode::Norm, gelu_gate: false, qk_norm: false, post_norms: false, scale_embeddings: false, qkv_bias: false, swa_period: 0, swa_rope_base: 0.0 },
    ArchSpec { name: "qwen2", rope: RopeMode::Neox, gelu_gate: false, qk_norm: false, post_norms: false, scale_embeddings: false, qkv_bias: true, swa_period: 0, swa_rope_base: 0.0 },
    // llama.cpp src/models/gemma3.cpp and llama-hparams.cpp: layers with il % 6 == 5
    // are global; the others slide with RoPE base 10000 (rope_freq_base_train_swa).
    ArchSpec { name: "gemma3", rope: RopeMode::Neox, gelu_gate: true, qk_norm: true, post_norms: true, scale_embeddings: true, qkv_bias: false, swa_period: 6, swa_rope_base: 10000.0 },
];

/// Hyperparameters read from the file.
#[derive(Clone, Debug)]
pub struct HParams {
    /// Transformer blocks.
    pub layers: usize,
    /// Model width.
    pub embd: usize,
    /// FFN width.
    pub ffn: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Query/key head size.
    pub head_dim: usize,
    /// Value head size.
    pub v_head_dim: usize,
    /// RMSNorm epsilon.
    pub eps: f64,
    /// RoPE base of global layers.
    pub rope_base: f64,
    /// Rotated dimensions per head.
    pub rope_dims: usize,
    /// Sliding-window size (0: none).
    pub window: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Training context length.
    pub train_ctx: usize,
}

/// Import options.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// KV-cache capacity in tokens (the longest prompt + generation).
    pub ctx: usize,
    /// ONNX graphs: the size bound to a symbolic leading (batch) input
    /// dimension (0 keeps it symbolic).
    pub batch: u64,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions { ctx: 2048, batch: 1 }
    }
}

fn hparams(g: &GgufFile, arch: &str) -> Result<HParams, ImportError> {
    let k = |s: &str| format!("{arch}.{s}");
    let u = |s: &str| g.meta_u64(&k(s)).map(|v| v as usize);
    let heads = u("attention.head_count")?;
    let embd = u("embedding_length")?;
    let head_dim = u("attention.key_length").or_else(|_| if heads > 0 { Ok(embd / heads) } else { u("attention.key_length") })?;
    let vocab = g.meta_array("tokenizer.ggml.tokens").map(|a| a.len()).or_else(|_| u("vocab_size"))?;
    Ok(HParams {
        layers: u("block_count")?,
        embd,
        ffn: u("feed_forward_length")?,
        heads,
        kv_heads: u("attention.head_count_kv").unwrap_or(heads),
        head_dim,
        v_head_dim: u("attention.value_length").unwrap_or(head_dim),
        eps: g.meta_f32(&k("attention.layer_norm_rms_epsilon"))? as f64,
        rope_base: g.meta_f32(&k("rope.freq_base")).map(f64::from).unwrap_or(10000.0),
        rope_dims: u("rope.dimension_count").unwrap_or(head_dim),
        window: u("attention.sliding_window").unwrap_or(0),
        vocab,
        train_ctx: u("context_length").unwrap_or(0),
    })
}

impl TensorSource for GgufFile {
    fn file_name(&self) -> &str {
        GgufFile::file_name(self)
    }

    fn describe(&self, name: &str) -> Option<Result<TensorDesc, String>> {
        let info = self.tensor(name)?;
        let (elem, encoding) = match info.ggml_type {
            GgmlType::F32 => (ElemType::F32, None),
            GgmlType::F16 => (ElemType::F16, None),
            GgmlType::BF16 => (ElemType::BF16, None),
            t if is_ggml_encoding(t) => (ElemType::F32, Some(Encoding::Ggml(t))),
            t => return Some(Err(format!("tensor '{name}' has ggml type {} which flexc does not decode", t.name()))),
        };
        let shape = info.dims.iter().rev().copied().collect();
        Some(Ok(TensorDesc { name: name.to_string(), shape, elem, encoding, offset: info.offset, len: info.n_bytes }))
    }
}

/// Imports a GGUF decoder as a module with one `@forward` function.
pub fn import_gguf(g: &GgufFile, path: &Path, opts: &ImportOptions) -> Result<Module, ImportError> {
    let arch_name = g.meta_str("general.architecture")?;
    let arch = ARCHS.iter().find(|a| a.name == arch_name).ok_or_else(|| ImportError::Arch {
        file: g.file_name().to_string(),
        arch: arch_name.to_string(),
        supported: ARCHS.iter().map(|a| a.name).collect::<Vec<_>>().join(", "),
    })?;
    let hp = hparams(g, arch_name)?;
    let name = g.meta_str("general.name").unwrap_or(arch_name);
    build_decoder(g, path, arch, &hp, name, opts)
}

/// Builds `@forward` of a decoder from a checkpoint whose tensors go by GGUF
/// names (`token_embd.weight`, `blk.N.attn_q.weight`, ...), as one module.
pub fn build_decoder(src: &dyn TensorSource, path: &Path, arch: &ArchSpec, hp: &HParams, name: &str, opts: &ImportOptions) -> Result<Module, ImportError> {
    // Check the block count against the file before sizing anything by it:
    // the signature below has two cache parameters per block, so a header
    // claiming 2^40 blocks would otherwise allocate without bound.
    // Sizes from a header are multiplied (heads x head size, ...): bound
    // each so no product can overflow, whatever the file claims.
    for (what, v) in [("embedding length", hp.embd), ("feed-forward length", hp.ffn), ("head count", hp.heads), ("KV head count", hp.kv_heads), ("head size", hp.head_dim), ("value head size", hp.v_head_dim), ("vocabulary size", hp.vocab), ("RoPE dimensions", hp.rope_dims), ("sliding window", hp.window)] {
        if v > MAX_HPARAM {
            return Err(ImportError::Tensor { file: src.file_name().to_string(), message: format!("{what} {v} is larger than flexc supports ({MAX_HPARAM})") });
        }
    }
    let last = format!("blk.{}.attn_norm.weight", hp.layers.saturating_sub(1));
    if hp.layers > 0 && !b_has(src, &last) {
        return Err(ImportError::Tensor { file: src.file_name().to_string(), message: format!("missing tensor '{}' (the header claims {} blocks)", src.stored_name(&last), hp.layers) });
    }
    let ctx = opts.ctx;
    // The KV cache (a K and a V tensor per block, f32) is sized by `ctx`, a
    // flag: refuse what no machine flexc targets holds before anything is
    // allocated (`--ctx 1099511627776` used to abort on allocation failure).
    let per_token = (hp.kv_heads as u128) * ((hp.head_dim + hp.v_head_dim) as u128) * 4 * (hp.layers as u128);
    let kv_bytes = per_token * ctx as u128;
    if kv_bytes > flexc_ir::limits::DEFAULT_MAX_MEMORY as u128 {
        let max_ctx = flexc_ir::limits::DEFAULT_MAX_MEMORY as u128 / per_token.max(1);
        return Err(ImportError::Tensor {
            file: src.file_name().to_string(),
            message: format!("a context of {ctx} tokens needs a {:.1} GiB KV cache, more than the limit of 8 GiB (at most --ctx {max_ctx} for this model)", kv_bytes as f64 / (1u64 << 30) as f64),
        });
    }
    let seq = Dim::Sym(Arc::from("seq"));
    let fixed = |n: usize| Dim::Fixed(n as u64);
    let f32t = |shape: Vec<Dim>| TensorType { shape, elem: ElemType::F32, encoding: None };
    let kv_k = f32t(vec![fixed(ctx), fixed(hp.kv_heads), fixed(hp.head_dim)]);
    let kv_v = f32t(vec![fixed(ctx), fixed(hp.kv_heads), fixed(hp.v_head_dim)]);

    let mut params = vec![
        (Some("tokens".to_string()), TensorType { shape: vec![seq.clone()], elem: ElemType::I32, encoding: None }),
        (Some("pos".to_string()), TensorType::new(ElemType::I32, &[])),
    ];
    let mut results = vec![f32t(vec![seq.clone(), fixed(hp.vocab)])];
    for l in 0..hp.layers {
        params.push((Some(format!("k{l}")), kv_k.clone()));
        params.push((Some(format!("v{l}")), kv_v.clone()));
        results.push(kv_k.clone());
        results.push(kv_v.clone());
    }
    let f = Func::new("forward", &params, results);
    let (tokens, pos) = (f.params[0], f.params[1]);
    let caches: Vec<Value> = f.params[2..].to_vec();
    let mut b = Builder::new(src, path, f);

    let emb = b.weight("token_embd.weight", &[hp.vocab, hp.embd])?;
    let mut x = b.op(attrs::Gather {}, &[emb, tokens], None)?;
    if arch.scale_embeddings {
        let s = b.scalar((hp.embd as f32).sqrt())?;
        x = b.op(attrs::Mul {}, &[x, s], None)?;
    }
    let (qd, kd, vd) = (hp.heads * hp.head_dim, hp.kv_heads * hp.head_dim, hp.kv_heads * hp.v_head_dim);
    let mut new_caches = Vec::new();
    for l in 0..hp.layers {
        let p = |s: &str| format!("blk.{l}.{s}");
        let sliding = arch.swa_period > 0 && hp.window > 0 && l % arch.swa_period != arch.swa_period - 1;
        let rope_base = if sliding { arch.swa_rope_base } else { hp.rope_base };
        let h = b.rmsnorm(x, &p("attn_norm.weight"), hp.embd, hp.eps)?;
        let bias = |s: &str| arch.qkv_bias.then(|| p(s));
        let q = b.linear(h, &p("attn_q.weight"), qd, hp.embd, bias("attn_q.bias").as_deref())?;
        let k = b.linear(h, &p("attn_k.weight"), kd, hp.embd, bias("attn_k.bias").as_deref())?;
        let v = b.linear(h, &p("attn_v.weight"), vd, hp.embd, bias("attn_v.bias").as_deref())?;
        let mut q = b.reshape(q, &[seq.clone(), fixed(hp.heads), fixed(hp.head_dim)])?;
        let mut k = b.reshape(k, &[seq.clone(), fixed(hp.kv_heads), fixed(hp.head_dim)])?;
        let v = b.reshape(v, &[seq.clone(), fixed(hp.kv_heads), fixed(hp.v_head_dim)])?;
        if arch.qk_norm {
            q = b.rmsnorm(q, &p("attn_q_norm.weight"), hp.head_dim, hp.eps)?;
            k = b.rmsnorm(k, &p("attn_k_norm.weight"), hp.head_dim, hp.eps)?;
        }
        let dims = if hp.rope_dims == hp.head_dim { 0 } else { hp.rope_dims as i64 };
        let rope = attrs::Rope { base: rope_base, mode: arch.rope, dims };
        let q = b.op(rope.clone(), &[q, pos], None)?;
        let k = b.op(rope, &[k, pos], None)?;
        let kc = b.op(attrs::CacheWrite {}, &[caches[2 * l], k, pos], None)?;
        let vc = b.op(attrs::CacheWrite {}, &[caches[2 * l + 1], v, pos], None)?;
        new_caches.extend([kc, vc]);
        let window = if sliding { hp.window as i64 } else { 0 };
        let scale = 1.0 / (hp.head_dim as f64).sqrt();
        let att = b.op(attrs::Attention { scale, bidirectional: false, window, softcap: 0.0 }, &[q, kc, vc, pos], None)?;
        let att = b.reshape(att, &[seq.clone(), fixed(hp.heads * hp.v_head_dim)])?;
        let mut o = b.linear(att, &p("attn_output.weight"), hp.embd, hp.heads * hp.v_head_dim, None)?;
        if arch.post_norms {
            o = b.rmsnorm(o, &p("post_attention_norm.weight"), hp.embd, hp.eps)?;
        }
        x = b.op(attrs::Add {}, &[x, o], None)?;
        let h = b.rmsnorm(x, &p("ffn_norm.weight"), hp.embd, hp.eps)?;
        let gate = b.linear(h, &p("ffn_gate.weight"), hp.ffn, hp.embd, None)?;
        let up = b.linear(h, &p("ffn_up.weight"), hp.ffn, hp.embd, None)?;
        let act = if arch.gelu_gate { b.op(attrs::Gelu { approx: GeluApprox::Tanh }, &[gate], None)? } else { b.op(attrs::Silu {}, &[gate], None)? };
        let hidden = b.op(attrs::Mul {}, &[act, up], None)?;
        let mut down = b.linear(hidden, &p("ffn_down.weight"), hp.embd, hp.ffn, None)?;
        if arch.post_norms {
            down = b.rmsnorm(down, &p("post_ffw_norm.weight"), hp.embd, hp.eps)?;
        }
        x = b.op(attrs::Add {}, &[x, down], None)?;
    }
    let x = b.rmsnorm(x, "output_norm.weight", hp.embd, hp.eps)?;
    let head = if b.has("output.weight") { "output.weight" } else { "token_embd.weight" };
    let logits = b.linear(x, head, hp.vocab, hp.embd, None)?;
    b.f.returns = std::iter::once(logits).chain(new_caches).collect();

    let mut m = b.finish();
    m.name = Some(module_name(name));
    m.meta = vec![
        ("arch".into(), AttrLit::Str(arch.name.into())),
        ("source".into(), AttrLit::Str(path.display().to_string())),
        ("ctx".into(), AttrLit::Int(ctx as i64)),
        ("layers".into(), AttrLit::Int(hp.layers as i64)),
        ("vocab".into(), AttrLit::Int(hp.vocab as i64)),
    ];
    Ok(m)
}

/// The largest size a model header may give (2^31): products of two fit in 64 bits.
const MAX_HPARAM: usize = 1 << 31;

fn b_has(src: &dyn TensorSource, name: &str) -> bool {
    src.describe(name).is_some()
}

/// A model name as a module name: lowercase ASCII alphanumerics, `_` elsewhere.
pub fn module_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}
