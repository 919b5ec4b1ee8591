//! Hugging Face checkpoints: `model.safetensors` plus the `config.json`
//! next to it, dispatched on `model_type` to the BERT encoder builder or to
//! the decoder builder shared with the GGUF importer.
//!
//! HF llama checkpoints keep q/k projections un-permuted and rotate with
//! rotate-half (NEOX) RoPE, while GGUF permutes those rows for llama.cpp's
//! interleaved RoPE; the imported graphs therefore differ only in the RoPE
//! mode, and both compute the same logits.

use super::bert::{build_bert, BertParams};
use super::builder::{ImportError, TensorDesc, TensorSource};
use super::decoder::{build_decoder, ArchSpec, HParams, ImportOptions, ARCHS};
use super::safetensors::SafetensorsFile;
use flexc_ir::ops::RopeMode;
use flexc_ir::Module;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The `config.json` keys flexc reads (all optional here; each architecture
/// says which it needs).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct HfConfig {
    pub model_type: Option<String>,
    pub architectures: Option<Vec<String>>,
    pub hidden_size: Option<usize>,
    pub num_hidden_layers: Option<usize>,
    pub num_attention_heads: Option<usize>,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    pub intermediate_size: Option<usize>,
    pub vocab_size: Option<usize>,
    pub max_position_embeddings: Option<usize>,
    pub type_vocab_size: Option<usize>,
    pub layer_norm_eps: Option<f64>,
    pub rms_norm_eps: Option<f64>,
    pub rope_theta: Option<f64>,
    pub rope_scaling: Option<serde_json::Value>,
    pub hidden_act: Option<String>,
    pub position_embedding_type: Option<String>,
    pub tie_word_embeddings: Option<bool>,
    #[serde(rename = "_name_or_path")]
    pub name_or_path: Option<String>,
}

/// A parsed `config.json` and where it came from.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file (for messages).
    pub file: String,
    /// The keys.
    pub c: HfConfig,
}

impl Config {
    /// Reads and parses a `config.json`.
    pub fn read(path: &Path) -> Result<Config, ImportError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ImportError::Config { file: file.clone(), message: e.to_string() })?;
        let c: HfConfig = serde_json::from_str(&text).map_err(|e| ImportError::Config { file: file.clone(), message: format!("invalid JSON: {e}") })?;
        Ok(Config { file, c })
    }

    /// An error about this file.
    pub fn err(&self, message: String) -> ImportError {
        ImportError::Config { file: self.file.clone(), message }
    }

    /// A key the architecture cannot do without.
    pub fn req<T: Copy>(&self, v: Option<T>, key: &str) -> Result<T, ImportError> {
        v.ok_or_else(|| self.err(format!("missing key '{key}'")))
    }

    /// A positive size.
    pub fn size(&self, v: Option<usize>, key: &str) -> Result<usize, ImportError> {
        match self.req(v, key)? {
            0 => Err(self.err(format!("'{key}' must be at least 1"))),
            n => Ok(n),
        }
    }

    /// `model_type`, or the first `architectures` entry lowercased without `Model`/`ForCausalLM`.
    pub fn model_type(&self) -> Result<String, ImportError> {
        if let Some(t) = &self.c.model_type {
            return Ok(t.clone());
        }
        let arch = self.c.architectures.as_ref().and_then(|a| a.first()).ok_or_else(|| self.err("neither 'model_type' nor 'architectures' is set".into()))?;
        Ok(arch.trim_end_matches("ForCausalLM").trim_end_matches("Model").to_lowercase())
    }
}

/// The `config.json` that belongs to a checkpoint file.
pub fn config_path(model: &Path) -> PathBuf {
    model.with_file_name("config.json")
}

/// The architectures this importer knows.
pub const HF_ARCHS: &[&str] = &["bert", "llama"];

/// Imports `model.safetensors` with the `config.json` next to it.
pub fn import_safetensors(st: &SafetensorsFile, path: &Path, opts: &ImportOptions) -> Result<Module, ImportError> {
    let cfg = Config::read(&config_path(path))?;
    let ty = cfg.model_type()?;
    let name = cfg.c.name_or_path.as_deref().and_then(|p| p.rsplit('/').next()).filter(|s| !s.is_empty()).unwrap_or(&ty).to_string();
    match ty.as_str() {
        "bert" => build_bert(st, path, &BertParams::from_config(&cfg)?, &name),
        "llama" => {
            let (arch, hp) = llama_params(&cfg)?;
            build_decoder(&HfLlama(st), path, &arch, &hp, &name, opts)
        }
        other => Err(ImportError::Arch { file: cfg.file.clone(), arch: other.to_string(), supported: HF_ARCHS.join(", ") }),
    }
}

fn llama_params(cfg: &Config) -> Result<(ArchSpec, HParams), ImportError> {
    let c = &cfg.c;
    if c.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(cfg.err("'rope_scaling' is set; flexc imports only unscaled RoPE".into()));
    }
    if let Some(act) = c.hidden_act.as_deref().filter(|a| *a != "silu") {
        return Err(cfg.err(format!("hidden_act '{act}' is not supported for llama (only silu)")));
    }
    let heads = cfg.size(c.num_attention_heads, "num_attention_heads")?;
    let embd = cfg.size(c.hidden_size, "hidden_size")?;
    let head_dim = match c.head_dim {
        Some(d) => d,
        None if embd % heads == 0 => embd / heads,
        None => return Err(cfg.err(format!("hidden_size {embd} is not a multiple of num_attention_heads {heads}"))),
    };
    let kv_heads = c.num_key_value_heads.unwrap_or(heads);
    if kv_heads == 0 || heads % kv_heads != 0 {
        return Err(cfg.err(format!("num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}")));
    }
    let hp = HParams {
        layers: cfg.size(c.num_hidden_layers, "num_hidden_layers")?,
        embd,
        ffn: cfg.size(c.intermediate_size, "intermediate_size")?,
        heads,
        kv_heads,
        head_dim,
        v_head_dim: head_dim,
        eps: c.rms_norm_eps.unwrap_or(1e-6),
        rope_base: c.rope_theta.unwrap_or(10000.0),
        rope_dims: head_dim,
        window: 0,
        vocab: cfg.size(c.vocab_size, "vocab_size")?,
        train_ctx: c.max_position_embeddings.unwrap_or(0),
    };
    let base = ARCHS.iter().find(|a| a.name == "llama").cloned().ok_or_else(|| cfg.err("llama architecture table missing".into()))?;
    Ok((ArchSpec { rope: RopeMode::Neox, ..base }, hp))
}

/// A HF llama checkpoint seen under the GGUF tensor names the decoder builder uses.
struct HfLlama<'a>(&'a SafetensorsFile);

/// GGUF per-layer suffix → HF per-layer suffix.
const LLAMA_LAYER_NAMES: &[(&str, &str)] = &[
    ("attn_norm.weight", "input_layernorm.weight"),
    ("attn_q.weight", "self_attn.q_proj.weight"),
    ("attn_k.weight", "self_attn.k_proj.weight"),
    ("attn_v.weight", "self_attn.v_proj.weight"),
    ("attn_q.bias", "self_attn.q_proj.bias"),
    ("attn_k.bias", "self_attn.k_proj.bias"),
    ("attn_v.bias", "self_attn.v_proj.bias"),
    ("attn_output.weight", "self_attn.o_proj.weight"),
    ("ffn_norm.weight", "post_attention_layernorm.weight"),
    ("ffn_gate.weight", "mlp.gate_proj.weight"),
    ("ffn_up.weight", "mlp.up_proj.weight"),
    ("ffn_down.weight", "mlp.down_proj.weight"),
];

/// The HF name of a GGUF-named llama tensor (unknown names pass through).
pub fn hf_llama_name(gguf: &str) -> String {
    match gguf {
        "token_embd.weight" => return "model.embed_tokens.weight".into(),
        "output_norm.weight" => return "model.norm.weight".into(),
        "output.weight" => return "lm_head.weight".into(),
        _ => {}
    }
    let layer = gguf.strip_prefix("blk.").and_then(|r| r.split_once('.'));
    match layer.and_then(|(l, rest)| LLAMA_LAYER_NAMES.iter().find(|(g, _)| *g == rest).map(|(_, hf)| (l, hf))) {
        Some((l, hf)) => format!("model.layers.{l}.{hf}"),
        None => gguf.to_string(),
    }
}

impl TensorSource for HfLlama<'_> {
    fn file_name(&self) -> &str {
        self.0.file_name()
    }

    fn describe(&self, name: &str) -> Option<Result<TensorDesc, String>> {
        self.0.describe(&hf_llama_name(name))
    }

    fn stored_name(&self, name: &str) -> String {
        hf_llama_name(name)
    }
}
