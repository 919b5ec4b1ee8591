//! `Tokenizer::from_gguf`: reads the `tokenizer.ggml.*` metadata of a GGUF file into a
//! [`Vocab`] and builds the tokenizer. Defaults follow llama.cpp's `llama_vocab::load`
//! (SPM: bos 1, eos 2, unk 0, add_bos, add_space_prefix; BPE: bos = eos = 11).

use crate::frontend::gguf::{GgufFile, MetaValue};

use super::{TokenType, Tokenizer, TokenizerError, Vocab, VocabModel};

const KEY_MODEL: &str = "tokenizer.ggml.model";
const KEY_PRE: &str = "tokenizer.ggml.pre";
const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
const KEY_SCORES: &str = "tokenizer.ggml.scores";
const KEY_TYPES: &str = "tokenizer.ggml.token_type";
const KEY_MERGES: &str = "tokenizer.ggml.merges";

/// The `tokenizer.ggml.model` values supported by `from_gguf`.
pub const SUPPORTED_GGUF_MODELS: &str = "llama (SentencePiece-style), gpt2 (byte-level BPE)";

fn array<'a>(f: &'a GgufFile, key: &str) -> Result<Option<&'a [MetaValue]>, TokenizerError> {
    match f.meta(key) {
        None => Ok(None),
        Some(v) => v
            .as_array()
            .map(Some)
            .ok_or_else(|| TokenizerError::WrongType {
                key: key.into(),
                expected: "array",
            }),
    }
}

fn strings(f: &GgufFile, key: &str) -> Result<Option<Vec<String>>, TokenizerError> {
    let Some(a) = array(f, key)? else {
        return Ok(None);
    };
    a.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| TokenizerError::WrongType {
                    key: key.into(),
                    expected: "array of string",
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn opt_id(f: &GgufFile, key: &str, default: Option<u32>) -> Result<Option<u32>, TokenizerError> {
    let Some(v) = f.meta(key) else {
        return Ok(default);
    };
    let i = v.as_integer().ok_or_else(|| TokenizerError::WrongType {
        key: key.into(),
        expected: "integer",
    })?;
    // llama.cpp stores ids as int32; -1 (or any negative) means "none".
    if i < 0 {
        return Ok(None);
    }
    u32::try_from(i)
        .map(Some)
        .map_err(|_| TokenizerError::BadId {
            key: key.into(),
            id: u64::MAX,
            n_vocab: 0,
        })
}

fn opt_bool(f: &GgufFile, key: &str, default: bool) -> Result<bool, TokenizerError> {
    match f.meta(key) {
        None => Ok(default),
        Some(MetaValue::Bool(b)) => Ok(*b),
        Some(v) => v
            .as_integer()
            .map(|i| i != 0)
            .ok_or_else(|| TokenizerError::WrongType {
                key: key.into(),
                expected: "bool",
            }),
    }
}

impl Tokenizer {
    /// Builds the tokenizer described by a GGUF file's `tokenizer.ggml.*` keys.
    pub fn from_gguf(f: &GgufFile) -> Result<Tokenizer, TokenizerError> {
        let Some(v) = vocab_from_gguf(f)? else {
            return Err(TokenizerError::MissingKey(KEY_MODEL.into()));
        };
        Tokenizer::from_vocab(v)
    }
}

/// Reads the vocabulary data of a GGUF file. `Ok(None)` if it has no `tokenizer.ggml.model`.
pub fn vocab_from_gguf(f: &GgufFile) -> Result<Option<Vocab>, TokenizerError> {
    let Some(model_v) = f.meta(KEY_MODEL) else {
        return Ok(None);
    };
    let model_name = model_v.as_str().ok_or_else(|| TokenizerError::WrongType {
        key: KEY_MODEL.into(),
        expected: "string",
    })?;
    let tokens =
        strings(f, KEY_TOKENS)?.ok_or_else(|| TokenizerError::MissingKey(KEY_TOKENS.into()))?;
    let n = tokens.len();
    let scores = match array(f, KEY_SCORES)? {
        None => Vec::new(),
        Some(a) => a
            .iter()
            .map(|v| match v {
                MetaValue::F32(x) => Ok(*x),
                MetaValue::F64(x) => Ok(*x as f32),
                _ => Err(TokenizerError::WrongType {
                    key: KEY_SCORES.into(),
                    expected: "array of f32",
                }),
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let types = match array(f, KEY_TYPES)? {
        None => Vec::new(),
        Some(a) => a
            .iter()
            .map(|v| {
                v.as_integer()
                    .map(|i| TokenType::from_code(i64::try_from(i).unwrap_or(0)))
                    .ok_or_else(|| TokenizerError::WrongType {
                        key: KEY_TYPES.into(),
                        expected: "array of integer",
                    })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let (model, defaults, add_bos_default, add_space_prefix_default) = match model_name {
        "llama" => (VocabModel::Spm, [Some(1), Some(2), Some(0)], true, true),
        "gpt2" => {
            let pre = match f.meta(KEY_PRE) {
                None => "default".to_string(),
                Some(v) => v
                    .as_str()
                    .ok_or_else(|| TokenizerError::WrongType {
                        key: KEY_PRE.into(),
                        expected: "string",
                    })?
                    .to_string(),
            };
            // llama.cpp turns add_bos on for the llama3 family.
            let llama3 = matches!(
                super::PreTokenizer::from_name(&pre),
                Some(super::PreTokenizer::Llama3)
            );
            (
                VocabModel::Bpe { pre },
                [Some(11), Some(11), None],
                llama3,
                false,
            )
        }
        other => {
            return Err(TokenizerError::UnsupportedModel {
                model: format!("`{other}` ({KEY_MODEL})"),
                supported: SUPPORTED_GGUF_MODELS,
            });
        }
    };
    // A default id that does not exist in this vocabulary means "none".
    let defaults = defaults.map(|d| d.filter(|&x| (x as usize) < n));
    let merges = match model {
        VocabModel::Bpe { .. } => {
            strings(f, KEY_MERGES)?.ok_or_else(|| TokenizerError::MissingKey(KEY_MERGES.into()))?
        }
        VocabModel::Spm => Vec::new(),
    };
    let mut extra_eog = Vec::new();
    for key in ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
        if let Some(id) = opt_id(f, key, None)?
            && (id as usize) < n
        {
            extra_eog.push(id);
        }
    }
    Ok(Some(Vocab {
        model,
        tokens,
        scores,
        types,
        merges,
        bos: opt_id(f, "tokenizer.ggml.bos_token_id", defaults[0])?,
        eos: opt_id(f, "tokenizer.ggml.eos_token_id", defaults[1])?,
        unk: opt_id(f, "tokenizer.ggml.unknown_token_id", defaults[2])?,
        pad: opt_id(f, "tokenizer.ggml.padding_token_id", None)?,
        extra_eog,
        add_bos: opt_bool(f, "tokenizer.ggml.add_bos_token", add_bos_default)?,
        add_eos: opt_bool(f, "tokenizer.ggml.add_eos_token", false)?,
        add_space_prefix: opt_bool(
            f,
            "tokenizer.ggml.add_space_prefix",
            add_space_prefix_default,
        )?,
    }))
}
