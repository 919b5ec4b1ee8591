//! Tokenizers built from model files: SentencePiece-style, GPT-2 byte-level BPE, WordPiece.
//!
//! [`Tokenizer`] is built from a plain [`Vocab`] (what a GGUF file's `tokenizer.ggml.*`
//! keys hold; see `gguf.rs` for the GGUF glue) or from a Hugging Face `tokenizer.json`
//! (WordPiece). Token ids match llama.cpp's (`llama_tokenize`) for the GGUF models:
//!
//! * special tokens are split off first exactly like llama.cpp's
//!   `tokenizer_st_partition` (longest token text first, then left to right);
//!   [`Tokenizer::encode`] matches user-defined tokens only (llama.cpp with
//!   `parse_special = false`, as `llama-perplexity`/`llama-tokenize` use by default),
//!   [`Tokenizer::encode_with_special`] also matches control tokens such as
//!   `<start_of_turn>` (`parse_special = true`, for chat templates);
//! * the remaining text goes through the model's algorithm (`spm.rs`, `bpe.rs`).
//!
//! Not implemented: the per-token `lstrip`/`rstrip` attributes llama.cpp sets for a few
//! named models (phi-3, jina), UGM/RWKV/WPM-from-GGUF vocabularies.

mod bpe;
mod gguf;
mod pretok;
mod spm;
mod unicode;
mod unicode_tables;
mod wordpiece;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

pub use gguf::{vocab_from_gguf, SUPPORTED_GGUF_MODELS};
pub use pretok::PreTokenizer;

/// Errors while building a tokenizer. Encoding and decoding never fail.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer metadata key `{0}` is missing")]
    MissingKey(String),
    #[error("tokenizer metadata key `{key}` has the wrong type (expected {expected})")]
    WrongType { key: String, expected: &'static str },
    #[error("unsupported tokenizer model {model}; supported: {supported}")]
    UnsupportedModel { model: String, supported: &'static str },
    #[error("unsupported pre-tokenizer `{pre}` (tokenizer.ggml.pre); supported: {supported}")]
    UnsupportedPre { pre: String, supported: &'static str },
    #[error("tokenizer metadata key `{key}` has {got} entries, expected {expected}")]
    LengthMismatch { key: String, expected: usize, got: usize },
    #[error("tokenizer metadata key `{key}` = {id} is not a token id (vocabulary size {n_vocab})")]
    BadId { key: String, id: u64, n_vocab: usize },
    #[error("invalid tokenizer: {0}")]
    Invalid(String),
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("invalid tokenizer.json: {0}")]
    Json(String),
}

/// Token types as stored in `tokenizer.ggml.token_type` (llama.cpp's `llama_token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Undefined,
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    /// From the GGUF integer code (unknown codes are `Undefined`, as in llama.cpp).
    pub fn from_code(code: i64) -> TokenType {
        match code {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }
}

/// The encoding algorithm of a [`Vocab`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VocabModel {
    /// SentencePiece-style score merging (`tokenizer.ggml.model = llama`).
    Spm,
    /// GPT-2 byte-level BPE (`tokenizer.ggml.model = gpt2`) with its pre-tokenizer name.
    Bpe { pre: String },
}

/// Plain vocabulary data, the input of [`Tokenizer::from_vocab`].
#[derive(Debug, Clone)]
pub struct Vocab {
    pub model: VocabModel,
    pub tokens: Vec<String>,
    /// Per-token scores (SPM); empty means all zero.
    pub scores: Vec<f32>,
    /// Per-token types; empty means all `Normal`.
    pub types: Vec<TokenType>,
    /// BPE merges, `"left right"`, in rank order.
    pub merges: Vec<String>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
    /// Extra end-of-generation ids (e.g. `tokenizer.ggml.eot_token_id`).
    pub extra_eog: Vec<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
    pub add_space_prefix: bool,
}

/// A fast non-cryptographic hasher (FxHash) for the vocabulary maps.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.hash = (self.hash.rotate_left(5) ^ w).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// text → id index over the token strings without copying them: an open-addressing
/// table of ids (linear probing), compared against `tokens[id]`.
struct StrIndex {
    slots: Vec<u32>,
    mask: usize,
}

impl StrIndex {
    const EMPTY: u32 = u32::MAX;

    #[inline]
    fn hash(text: &str) -> usize {
        let mut h = FxHasher::default();
        h.write(text.as_bytes());
        // Final avalanche so that the low bits used for the slot are well mixed.
        let x = h.finish();
        (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) as usize
    }

    fn new(tokens: &[String]) -> StrIndex {
        let cap = (tokens.len() * 2).next_power_of_two().max(16);
        let mut idx = StrIndex { slots: vec![Self::EMPTY; cap], mask: cap - 1 };
        for (i, t) in tokens.iter().enumerate() {
            let mut s = Self::hash(t) & idx.mask;
            loop {
                let cur = idx.slots[s];
                if cur == Self::EMPTY {
                    idx.slots[s] = i as u32;
                    break;
                }
                if tokens[cur as usize] == *t {
                    // As llama.cpp: a duplicated text maps to its last id.
                    idx.slots[s] = i as u32;
                    break;
                }
                s = (s + 1) & idx.mask;
            }
        }
        idx
    }

    #[inline]
    fn get(&self, tokens: &[String], text: &str) -> Option<u32> {
        let mut s = Self::hash(text) & self.mask;
        loop {
            let cur = self.slots[s];
            if cur == Self::EMPTY {
                return None;
            }
            if tokens[cur as usize] == text {
                return Some(cur);
            }
            s = (s + 1) & self.mask;
        }
    }
}

/// Token strings, scores, types and the text → id map shared by all algorithms.
pub(crate) struct Vocabulary {
    tokens: Vec<String>,
    scores: Vec<f32>,
    types: Vec<TokenType>,
    ids: StrIndex,
    /// SPM byte fallback: the `<0xXX>` token of each byte (or its one-byte token, or unk).
    byte_tokens: [Option<u32>; 256],
}

impl Vocabulary {
    fn new(tokens: Vec<String>, scores: Vec<f32>, types: Vec<TokenType>, unk: Option<u32>) -> Vocabulary {
        let ids = StrIndex::new(&tokens);
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            let hex = format!("<0x{b:02X}>");
            *slot = ids.get(&tokens, &hex).or_else(|| {
                let one = [b as u8];
                std::str::from_utf8(&one).ok().and_then(|s| ids.get(&tokens, s)).or(unk)
            });
        }
        Vocabulary { tokens, scores, types, ids, byte_tokens }
    }
    #[inline]
    pub(crate) fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(&self.tokens, text)
    }
    #[inline]
    pub(crate) fn score(&self, id: u32) -> f32 {
        self.scores.get(id as usize).copied().unwrap_or(0.0)
    }
    #[inline]
    pub(crate) fn byte_token(&self, b: u8) -> Option<u32> {
        self.byte_tokens[b as usize]
    }
    pub(crate) fn len(&self) -> usize {
        self.tokens.len()
    }
    fn token_type(&self, id: u32) -> TokenType {
        self.types.get(id as usize).copied().unwrap_or(TokenType::Normal)
    }
}

/// Special tokens that are split off the text before the model's algorithm runs.
struct SpecialMatcher {
    /// Candidate ids by first byte of their text: all special tokens…
    by_first: Vec<Vec<u32>>,
    /// …and the user-defined ones only.
    user_by_first: Vec<Vec<u32>>,
    /// Whether any user-defined (always matched) token exists.
    any: bool,
}

#[derive(Debug, Clone, Copy)]
enum Fragment {
    Text(usize, usize),
    Token(u32),
}

enum Algo {
    Spm,
    Bpe(Box<bpe::BpeModel>),
    WordPiece(Box<wordpiece::WordPieceModel>),
}

/// Which algorithm a [`Tokenizer`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerKind {
    SentencePiece,
    BytePairEncoding(PreTokenizer),
    WordPiece,
}

/// A tokenizer: text ⇄ token ids.
pub struct Tokenizer {
    vocab: Vocabulary,
    algo: Algo,
    specials: SpecialMatcher,
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    eog: Vec<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
}

/// Token texts llama.cpp treats as end-of-generation (`special_eog_ids`).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
];

impl Tokenizer {
    /// Builds a tokenizer from plain vocabulary data.
    pub fn from_vocab(v: Vocab) -> Result<Tokenizer, TokenizerError> {
        let n = v.tokens.len();
        if n == 0 {
            return Err(TokenizerError::Invalid("empty vocabulary".into()));
        }
        if !v.scores.is_empty() && v.scores.len() != n {
            return Err(TokenizerError::LengthMismatch { key: "tokenizer.ggml.scores".into(), expected: n, got: v.scores.len() });
        }
        if !v.types.is_empty() && v.types.len() != n {
            return Err(TokenizerError::LengthMismatch { key: "tokenizer.ggml.token_type".into(), expected: n, got: v.types.len() });
        }
        for (key, id) in [
            ("tokenizer.ggml.bos_token_id", v.bos),
            ("tokenizer.ggml.eos_token_id", v.eos),
            ("tokenizer.ggml.unknown_token_id", v.unk),
            ("tokenizer.ggml.padding_token_id", v.pad),
        ] {
            if let Some(id) = id
                && id as usize >= n
            {
                return Err(TokenizerError::BadId { key: key.into(), id: u64::from(id), n_vocab: n });
            }
        }
        let vocab = Vocabulary::new(v.tokens, v.scores, v.types, v.unk);
        let algo = match &v.model {
            VocabModel::Spm => Algo::Spm,
            VocabModel::Bpe { pre } => {
                let p = PreTokenizer::from_name(pre)
                    .ok_or_else(|| TokenizerError::UnsupportedPre { pre: pre.clone(), supported: PreTokenizer::SUPPORTED })?;
                let ignore_merges = p == PreTokenizer::Llama3;
                Algo::Bpe(Box::new(bpe::BpeModel::new(&vocab, &v.merges, p, ignore_merges)?))
            }
        };
        let mut eog: Vec<u32> = v.eos.into_iter().chain(v.extra_eog.iter().copied()).collect();
        for t in EOG_TEXTS {
            if let Some(id) = vocab.token_id(t) {
                eog.push(id);
            }
        }
        eog.sort_unstable();
        eog.dedup();
        let specials = SpecialMatcher::new(&vocab);
        Ok(Tokenizer {
            vocab,
            algo,
            specials,
            bos: v.bos,
            eos: v.eos,
            unk: v.unk,
            pad: v.pad,
            eog,
            add_bos: v.add_bos,
            add_eos: v.add_eos,
            add_space_prefix: v.add_space_prefix,
        })
    }

    /// Builds a WordPiece tokenizer from the text of a Hugging Face `tokenizer.json`.
    pub fn from_hf_json(json: &str) -> Result<Tokenizer, TokenizerError> {
        let root: serde_json::Value = serde_json::from_str(json).map_err(|e| TokenizerError::Json(e.to_string()))?;
        let (model, tokens) = wordpiece::WordPieceModel::from_json(&root)?;
        let mut types = vec![TokenType::Normal; tokens.len()];
        for (_, id, special) in &model.added {
            if *special {
                types[*id as usize] = TokenType::Control;
            }
        }
        let bos = model.template_prefix.first().copied();
        let eos = model.template_suffix.last().copied();
        let unk = Some(model.unk);
        let pad = model.vocab.get("[PAD]").copied();
        let vocab = Vocabulary::new(tokens, Vec::new(), types, unk);
        Ok(Tokenizer {
            vocab,
            algo: Algo::WordPiece(Box::new(model)),
            specials: SpecialMatcher { by_first: vec![Vec::new(); 256], user_by_first: vec![Vec::new(); 256], any: false },
            bos,
            eos,
            unk,
            pad,
            eog: eos.into_iter().collect(),
            add_bos: true,
            add_eos: true,
            add_space_prefix: false,
        })
    }

    /// Reads a Hugging Face `tokenizer.json` file (WordPiece).
    pub fn from_hf_json_file(path: &Path) -> Result<Tokenizer, TokenizerError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenizerError::Io { path: path.display().to_string(), source })?;
        Tokenizer::from_hf_json(&text)
    }

    /// Encodes text. Literal user-defined tokens in `text` (Gemma's `"\n"`, `"\n\n"`, …)
    /// are matched; control tokens (`<start_of_turn>`, `<|im_start|>`) are not, so user
    /// text cannot inject them (llama.cpp's `parse_special = false`).
    ///
    /// `add_bos = true` adds the model's special tokens around the text: BOS (if the
    /// model has one) and EOS if the model asks for it (`add_eos_token`); for WordPiece
    /// the `[CLS] … [SEP]` template. Use [`Tokenizer::add_bos_by_default`] to decide.
    pub fn encode(&self, text: &str, add_bos: bool) -> Vec<u32> {
        self.encode_impl(text, add_bos, false)
    }

    /// Like [`Tokenizer::encode`], but control tokens written literally in `text` are
    /// matched too (llama.cpp's `parse_special = true`), e.g. for a rendered chat template.
    pub fn encode_with_special(&self, text: &str, add_bos: bool) -> Vec<u32> {
        self.encode_impl(text, add_bos, true)
    }

    fn encode_impl(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if let Algo::WordPiece(wp) = &self.algo {
            if add_special {
                out.extend_from_slice(&wp.template_prefix);
            }
            for frag in wordpiece_partition(text, &wp.added) {
                match frag {
                    Fragment::Token(id) => out.push(id),
                    Fragment::Text(a, b) => wp.encode_fragment(&text[a..b], &mut out),
                }
            }
            if add_special {
                out.extend_from_slice(&wp.template_suffix);
            }
            return out;
        }
        if add_special && let Some(bos) = self.bos {
            out.push(bos);
        }
        let frags = self.specials.partition(&self.vocab, text, parse_special);
        match &self.algo {
            Algo::Spm => {
                let mut is_prev_special = true;
                let mut buf = String::new();
                for f in frags {
                    match f {
                        Fragment::Token(id) => {
                            out.push(id);
                            is_prev_special = true;
                        }
                        Fragment::Text(a, b) => {
                            buf.clear();
                            if self.add_space_prefix && is_prev_special {
                                buf.push('\u{2581}');
                            }
                            for c in text[a..b].chars() {
                                buf.push(if c == ' ' { '\u{2581}' } else { c });
                            }
                            spm::encode_fragment(&self.vocab, &buf, &mut out);
                            is_prev_special = false;
                        }
                    }
                }
            }
            Algo::Bpe(m) => {
                for f in frags {
                    match f {
                        Fragment::Token(id) => out.push(id),
                        Fragment::Text(a, b) => m.encode_fragment(&self.vocab, &text[a..b], &mut out),
                    }
                }
            }
            Algo::WordPiece(_) => {}
        }
        if add_special && self.add_eos && let Some(eos) = self.eos {
            out.push(eos);
        }
        out
    }

    /// The bytes of one token as it appears in text, for streaming output. Control and
    /// unknown tokens give nothing (as llama.cpp's `token_to_piece` with `special = false`);
    /// a byte token gives its single byte, which may be part of a UTF-8 sequence.
    pub fn decode_piece(&self, id: u32) -> Vec<u8> {
        let mut out = Vec::new();
        self.piece_into(id, &mut out);
        out
    }

    fn piece_into(&self, id: u32, out: &mut Vec<u8>) {
        let Some(text) = self.vocab.tokens.get(id as usize) else {
            return;
        };
        let ty = self.vocab.token_type(id);
        match ty {
            TokenType::Control | TokenType::Unknown => {}
            TokenType::UserDefined => out.extend_from_slice(text.as_bytes()),
            TokenType::Byte => {
                if let Some(b) = parse_byte_token(text) {
                    out.push(b);
                } else if let Algo::Bpe(m) = &self.algo {
                    m.decode_text(text, out);
                }
            }
            TokenType::Normal => match &self.algo {
                Algo::Spm => {
                    for c in text.chars() {
                        let mut buf = [0u8; 4];
                        let c = if c == '\u{2581}' { ' ' } else { c };
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
                Algo::Bpe(m) => m.decode_text(text, out),
                Algo::WordPiece(_) => out.extend_from_slice(text.as_bytes()),
            },
            // llama.cpp renders unused/undefined tokens as nothing.
            TokenType::Unused | TokenType::Undefined => {}
        }
    }

    /// Decodes ids to text (control tokens are skipped; invalid UTF-8 becomes U+FFFD).
    pub fn decode(&self, ids: &[u32]) -> String {
        if let Algo::WordPiece(wp) = &self.algo {
            let pieces: Vec<&str> = ids
                .iter()
                .filter(|&&id| self.vocab.token_type(id) == TokenType::Normal)
                .filter_map(|&id| self.vocab.tokens.get(id as usize).map(String::as_str))
                .collect();
            return wp.decode(&pieces);
        }
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        let mut first = true;
        for &id in ids {
            if first && Some(id) == self.bos {
                continue;
            }
            let start = bytes.len();
            self.piece_into(id, &mut bytes);
            // llama.cpp's detokenize drops the space the SPM space prefix added.
            if first && self.add_space_prefix && matches!(self.algo, Algo::Spm) && bytes.get(start) == Some(&b' ') {
                bytes.remove(start);
            }
            first = false;
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The raw vocabulary text of a token.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab.tokens.get(id as usize).map(String::as_str)
    }

    /// The id of a token given its raw vocabulary text.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.token_id(text)
    }

    /// The type of a token (`Normal` for ids out of range).
    pub fn token_type(&self, id: u32) -> TokenType {
        self.vocab.token_type(id)
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
    pub fn unk(&self) -> Option<u32> {
        self.unk
    }
    pub fn pad(&self) -> Option<u32> {
        self.pad
    }
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }
    /// Whether the model wants BOS (or its template) added to a prompt (`add_bos_token`).
    pub fn add_bos_by_default(&self) -> bool {
        self.add_bos
    }
    /// Whether the model appends EOS when special tokens are added (`add_eos_token`).
    pub fn add_eos_by_default(&self) -> bool {
        self.add_eos
    }
    /// End of generation: EOS, plus turn-ending tokens such as Gemma's `<end_of_turn>`
    /// or ChatML's `<|im_end|>`.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }
    /// All end-of-generation ids, sorted.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }
    pub fn kind(&self) -> TokenizerKind {
        match &self.algo {
            Algo::Spm => TokenizerKind::SentencePiece,
            Algo::Bpe(m) => TokenizerKind::BytePairEncoding(m.pre),
            Algo::WordPiece(_) => TokenizerKind::WordPiece,
        }
    }
}

fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

impl SpecialMatcher {
    fn new(vocab: &Vocabulary) -> SpecialMatcher {
        let mut by_first: Vec<Vec<u32>> = vec![Vec::new(); 256];
        let mut user_by_first: Vec<Vec<u32>> = vec![Vec::new(); 256];
        let mut any = false;
        for (id, t) in vocab.tokens.iter().enumerate() {
            let ty = vocab.token_type(id as u32);
            if !matches!(ty, TokenType::Control | TokenType::UserDefined | TokenType::Unknown) || t.is_empty() {
                continue;
            }
            any |= ty == TokenType::UserDefined;
            by_first[t.as_bytes()[0] as usize].push(id as u32);
            if ty == TokenType::UserDefined {
                user_by_first[t.as_bytes()[0] as usize].push(id as u32);
            }
        }
        SpecialMatcher { by_first, user_by_first, any }
    }

    /// llama.cpp's `tokenizer_st_partition`: special tokens in order of decreasing text
    /// length (ties by id), each one split out of the remaining raw text left to right.
    /// Equivalent formulation: collect every occurrence, then accept occurrences in that
    /// order when they lie in still-raw text and do not overlap an earlier accepted
    /// occurrence of the same token.
    fn partition(&self, vocab: &Vocabulary, text: &str, parse_special: bool) -> Vec<Fragment> {
        let bytes = text.as_bytes();
        let table = if parse_special { &self.by_first } else { &self.user_by_first };
        let mut occ: Vec<(usize, u32, usize)> = Vec::new(); // (len, id, pos)
        if self.any || parse_special {
            for pos in 0..bytes.len() {
                for &id in &table[bytes[pos] as usize] {
                    let t = vocab.tokens[id as usize].as_bytes();
                    if bytes[pos..].starts_with(t) {
                        occ.push((t.len(), id, pos));
                    }
                }
            }
        }
        if occ.is_empty() {
            return if text.is_empty() { Vec::new() } else { vec![Fragment::Text(0, text.len())] };
        }
        occ.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut taken = vec![false; bytes.len()];
        let mut accepted: Vec<(usize, usize, u32)> = Vec::new(); // (pos, len, id)
        let mut last: Option<(u32, usize)> = None; // (id, end of its last accepted occurrence)
        for (len, id, pos) in occ {
            if let Some((lid, lend)) = last
                && lid == id
                && pos < lend
            {
                continue;
            }
            if taken[pos..pos + len].iter().any(|&t| t) {
                continue;
            }
            taken[pos..pos + len].iter_mut().for_each(|t| *t = true);
            accepted.push((pos, len, id));
            last = Some((id, pos + len));
        }
        accepted.sort_unstable();
        let mut frags = Vec::with_capacity(accepted.len() * 2 + 1);
        let mut cur = 0;
        for (pos, len, id) in accepted {
            if pos > cur {
                frags.push(Fragment::Text(cur, pos));
            }
            frags.push(Fragment::Token(id));
            cur = pos + len;
        }
        if cur < bytes.len() {
            frags.push(Fragment::Text(cur, bytes.len()));
        }
        frags
    }
}

/// Splits raw text on HF added tokens (leftmost, longest first).
fn wordpiece_partition(text: &str, added: &[(String, u32, bool)]) -> Vec<Fragment> {
    let mut frags = Vec::new();
    let mut cur = 0;
    let mut pos = 0;
    let bytes = text.as_bytes();
    while pos < bytes.len() {
        let hit = added.iter().find(|(t, _, _)| bytes[pos..].starts_with(t.as_bytes()));
        if let Some((t, id, _)) = hit {
            if pos > cur {
                frags.push(Fragment::Text(cur, pos));
            }
            frags.push(Fragment::Token(*id));
            pos += t.len();
            cur = pos;
        } else {
            pos += 1;
        }
    }
    if cur < bytes.len() {
        frags.push(Fragment::Text(cur, bytes.len()));
    }
    frags
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small SPM vocabulary: all byte tokens, a few pieces with scores, one
    /// user-defined and one control token.
    fn spm_vocab(add_space_prefix: bool) -> Vocab {
        let mut tokens = vec!["<unk>".to_string(), "<s>".to_string(), "</s>".to_string()];
        let mut types = vec![TokenType::Unknown, TokenType::Control, TokenType::Control];
        let mut scores = vec![0.0, 0.0, 0.0];
        for b in 0..256 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(TokenType::Byte);
            scores.push(0.0);
        }
        for (t, s, ty) in [
            ("a", -1.0, TokenType::Normal),
            ("b", -1.0, TokenType::Normal),
            ("c", -1.0, TokenType::Normal),
            ("\u{2581}", -1.0, TokenType::Normal),
            ("ab", -3.0, TokenType::Normal),
            ("bc", -2.0, TokenType::Normal),
            ("aa", -2.0, TokenType::Normal),
            ("\u{2581}a", -2.5, TokenType::Normal),
            ("<u>", 0.0, TokenType::UserDefined),
            ("<c>", 0.0, TokenType::Control),
        ] {
            tokens.push(t.to_string());
            types.push(ty);
            scores.push(s);
        }
        Vocab {
            model: VocabModel::Spm,
            tokens,
            scores,
            types,
            merges: Vec::new(),
            bos: Some(1),
            eos: Some(2),
            unk: Some(0),
            pad: None,
            extra_eog: Vec::new(),
            add_bos: true,
            add_eos: false,
            add_space_prefix,
        }
    }

    fn texts(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
        ids.iter().map(|&i| tok.token_text(i).unwrap_or("?").to_string()).collect()
    }

    #[test]
    fn spm_merges_by_score_with_leftmost_ties() {
        let tok = Tokenizer::from_vocab(spm_vocab(false)).expect("vocab");
        // "bc" (-2) beats "ab" (-3).
        assert_eq!(texts(&tok, &tok.encode("abc", false)), ["a", "bc"]);
        // Equal scores: the leftmost pair merges first.
        assert_eq!(texts(&tok, &tok.encode("aaa", false)), ["aa", "a"]);
        assert_eq!(texts(&tok, &tok.encode(" a", false)), ["\u{2581}a"]);
    }

    #[test]
    fn spm_byte_fallback_and_space_prefix() {
        let tok = Tokenizer::from_vocab(spm_vocab(true)).expect("vocab");
        assert_eq!(texts(&tok, &tok.encode("é", false)), ["\u{2581}", "<0xC3>", "<0xA9>"]);
        let ids = tok.encode("a b", true);
        assert_eq!(texts(&tok, &ids), ["<s>", "\u{2581}a", "\u{2581}", "b"]);
        assert_eq!(tok.decode(&ids), "a b");
        assert_eq!(tok.decode_piece(ids[1]), b" a");
        assert!(tok.decode_piece(1).is_empty());
    }

    #[test]
    fn special_tokens_user_defined_always_control_on_request() {
        let tok = Tokenizer::from_vocab(spm_vocab(false)).expect("vocab");
        let plain = texts(&tok, &tok.encode("a<u>b<c>", false));
        assert_eq!(plain[..2], ["a", "<u>"]);
        assert!(!plain.contains(&"<c>".to_string()));
        assert_eq!(texts(&tok, &tok.encode_with_special("a<u>b<c>", false)), ["a", "<u>", "b", "<c>"]);
        // The unknown token text is matched only with parse_special too.
        assert_eq!(texts(&tok, &tok.encode_with_special("<unk>", false)), ["<unk>"]);
    }

    #[test]
    fn partition_is_longest_token_first() {
        let mut v = spm_vocab(false);
        for t in ["x", "xy", "yxy"] {
            v.tokens.push(t.to_string());
            v.types.push(if t == "x" { TokenType::Normal } else { TokenType::UserDefined });
            v.scores.push(0.0);
        }
        let tok = Tokenizer::from_vocab(v).expect("vocab");
        // "yxy" (longer) is split out first although "xy" occurs further left.
        assert_eq!(texts(&tok, &tok.encode("xyxy", false)), ["x", "yxy"]);
        // Overlapping occurrences of one token: the first wins, as with repeated `find`.
        assert_eq!(texts(&tok, &tok.encode("xyxyxy", false)), ["x", "yxy", "xy"]);
    }

    fn bpe_vocab(pre: &str) -> Vocab {
        let tokens: Vec<String> = ["a", "b", "c", "Ġ", "ab", "abc", "Ġa", "1", "2", "<|end|>"].iter().map(|s| s.to_string()).collect();
        let mut types = vec![TokenType::Normal; tokens.len()];
        types[9] = TokenType::Control;
        Vocab {
            model: VocabModel::Bpe { pre: pre.to_string() },
            tokens,
            scores: Vec::new(),
            types,
            merges: ["a b", "ab c", "Ġ a"].iter().map(|s| s.to_string()).collect(),
            bos: None,
            eos: Some(9),
            unk: None,
            pad: None,
            extra_eog: Vec::new(),
            add_bos: false,
            add_eos: false,
            add_space_prefix: false,
        }
    }

    #[test]
    fn bpe_merges_by_rank() {
        let tok = Tokenizer::from_vocab(bpe_vocab("gpt-2")).expect("vocab");
        // " ab": "a b" (rank 0) wins over "Ġ a" (rank 2), and "Ġ ab" is no merge.
        assert_eq!(texts(&tok, &tok.encode("abc ab", false)), ["abc", "Ġ", "ab"]);
        assert_eq!(tok.decode(&tok.encode("abc ab", false)), "abc ab");
        assert!(tok.is_eog(9));
        // Characters without a token are dropped, as in llama.cpp.
        assert_eq!(texts(&tok, &tok.encode("azb", false)), ["a", "b"]);
        assert!(tok.encode("", true).is_empty());
    }

    #[test]
    fn bpe_smollm_splits_digits() {
        let tok = Tokenizer::from_vocab(bpe_vocab("smollm")).expect("vocab");
        assert_eq!(texts(&tok, &tok.encode("12", false)), ["1", "2"]);
    }

    #[test]
    fn construction_errors_name_the_problem() {
        let err = Tokenizer::from_vocab(bpe_vocab("no-such-pre")).err().expect("must fail");
        let msg = err.to_string();
        assert!(msg.contains("no-such-pre") && msg.contains("smollm") && msg.contains("qwen2"), "{msg}");
        let mut v = spm_vocab(false);
        v.bos = Some(1_000_000);
        let msg = Tokenizer::from_vocab(v).err().expect("must fail").to_string();
        assert!(msg.contains("tokenizer.ggml.bos_token_id"), "{msg}");
        let mut v = spm_vocab(false);
        v.scores.pop();
        let msg = Tokenizer::from_vocab(v).err().expect("must fail").to_string();
        assert!(msg.contains("tokenizer.ggml.scores"), "{msg}");
        assert!(Tokenizer::from_hf_json("{").is_err());
        assert!(Tokenizer::from_hf_json(r#"{"model": {"type": "BPE", "vocab": {}}}"#).err().expect("must fail").to_string().contains("WordPiece"));
    }
}
