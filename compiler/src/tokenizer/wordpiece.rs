//! WordPiece (BERT) from a Hugging Face `tokenizer.json`, as used by all-MiniLM-L6-v2:
//! BertNormalizer (clean text, pad CJK ideographs, strip accents via NFD, lowercase),
//! BertPreTokenizer (split on whitespace, isolate punctuation), greedy longest-match
//! WordPiece with a `##` continuation prefix, and the `[CLS] … [SEP]` template.

use serde_json::Value;

use super::unicode::{GeneralCategory, category, is_punctuation, push_nfd};
use super::{FastMap, TokenizerError};

pub(super) struct WordPieceModel {
    pub(super) vocab: FastMap<String, u32>,
    pub(super) unk: u32,
    prefix: String,
    max_chars: usize,
    clean_text: bool,
    handle_chinese_chars: bool,
    strip_accents: bool,
    lowercase: bool,
    /// Template ids around the sequence (`single` of TemplateProcessing).
    pub(super) template_prefix: Vec<u32>,
    pub(super) template_suffix: Vec<u32>,
    /// Added tokens matched literally in the raw text: (content, id, special).
    pub(super) added: Vec<(String, u32, bool)>,
}

fn field<'a>(v: &'a Value, key: &str) -> Result<&'a Value, TokenizerError> {
    v.get(key)
        .ok_or_else(|| TokenizerError::MissingKey(key.to_string()))
}

fn as_id(v: &Value, key: &str) -> Result<u32, TokenizerError> {
    v.as_u64()
        .and_then(|x| u32::try_from(x).ok())
        .ok_or_else(|| TokenizerError::WrongType {
            key: key.to_string(),
            expected: "u32",
        })
}

impl WordPieceModel {
    /// Reads the parts of `tokenizer.json` WordPiece needs. Returns the model and the
    /// vocabulary as an id-indexed list of strings.
    pub(super) fn from_json(root: &Value) -> Result<(WordPieceModel, Vec<String>), TokenizerError> {
        let model = field(root, "model")?;
        let ty = model.get("type").and_then(Value::as_str).unwrap_or("");
        if ty != "WordPiece" {
            return Err(TokenizerError::UnsupportedModel {
                model: format!("tokenizer.json model.type {ty:?}"),
                supported: "WordPiece",
            });
        }
        let vocab_obj =
            field(model, "vocab")?
                .as_object()
                .ok_or_else(|| TokenizerError::WrongType {
                    key: "model.vocab".into(),
                    expected: "object",
                })?;
        let mut vocab: FastMap<String, u32> = FastMap::default();
        vocab.reserve(vocab_obj.len());
        let mut max_id = 0u32;
        for (tok, id) in vocab_obj {
            let id = as_id(id, "model.vocab")?;
            max_id = max_id.max(id);
            vocab.insert(tok.clone(), id);
        }
        let mut added = Vec::new();
        if let Some(list) = root.get("added_tokens").and_then(Value::as_array) {
            for t in list {
                let content = field(t, "content")?.as_str().unwrap_or("").to_string();
                let id = as_id(field(t, "id")?, "added_tokens.id")?;
                let special = t.get("special").and_then(Value::as_bool).unwrap_or(false);
                max_id = max_id.max(id);
                if !content.is_empty() {
                    added.push((content, id, special));
                }
            }
        }
        // Longest first: leftmost-longest matching.
        added.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        // Ids index a dense table: refuse absurd ids instead of allocating for them.
        if max_id as usize > 4 * (vocab.len() + added.len()) + 1024 {
            return Err(TokenizerError::BadId {
                key: "model.vocab".into(),
                id: u64::from(max_id),
                n_vocab: vocab.len(),
            });
        }
        let mut tokens = vec![String::new(); max_id as usize + 1];
        for (t, &id) in &vocab {
            tokens[id as usize] = t.clone();
        }
        for (t, id, _) in &added {
            tokens[*id as usize] = t.clone();
        }
        let unk_str = model
            .get("unk_token")
            .and_then(Value::as_str)
            .unwrap_or("[UNK]");
        let unk = *vocab.get(unk_str).ok_or_else(|| {
            TokenizerError::MissingKey(format!("model.vocab[{unk_str:?}] (unk_token)"))
        })?;
        let prefix = model
            .get("continuing_subword_prefix")
            .and_then(Value::as_str)
            .unwrap_or("##")
            .to_string();
        let max_chars = model
            .get("max_input_chars_per_word")
            .and_then(Value::as_u64)
            .unwrap_or(100) as usize;

        let norm = root.get("normalizer").filter(|n| !n.is_null());
        let (mut clean_text, mut handle_chinese_chars, mut strip_accents, mut lowercase) =
            (false, false, false, false);
        if let Some(n) = norm {
            match n.get("type").and_then(Value::as_str) {
                Some("BertNormalizer") => {
                    let flag = |k: &str, d: bool| n.get(k).and_then(Value::as_bool).unwrap_or(d);
                    clean_text = flag("clean_text", true);
                    handle_chinese_chars = flag("handle_chinese_chars", true);
                    lowercase = flag("lowercase", true);
                    // `strip_accents: null` means "follow lowercase".
                    strip_accents = n
                        .get("strip_accents")
                        .and_then(Value::as_bool)
                        .unwrap_or(lowercase);
                }
                other => {
                    return Err(TokenizerError::UnsupportedModel {
                        model: format!("tokenizer.json normalizer {other:?}"),
                        supported: "BertNormalizer",
                    });
                }
            }
        }
        if let Some(p) = root.get("pre_tokenizer").filter(|n| !n.is_null()) {
            let ty = p.get("type").and_then(Value::as_str);
            if ty != Some("BertPreTokenizer") {
                return Err(TokenizerError::UnsupportedModel {
                    model: format!("tokenizer.json pre_tokenizer {ty:?}"),
                    supported: "BertPreTokenizer",
                });
            }
        }
        let (mut template_prefix, mut template_suffix) = (Vec::new(), Vec::new());
        if let Some(pp) = root.get("post_processor").filter(|n| !n.is_null()) {
            match pp.get("type").and_then(Value::as_str) {
                Some("TemplateProcessing") => {
                    let specials = pp.get("special_tokens");
                    let mut seen_seq = false;
                    for item in field(pp, "single")?.as_array().into_iter().flatten() {
                        if item.get("Sequence").is_some() {
                            seen_seq = true;
                        } else if let Some(st) = item.get("SpecialToken") {
                            let name = st.get("id").and_then(Value::as_str).unwrap_or("");
                            let ids = specials
                                .and_then(|s| s.get(name))
                                .and_then(|s| s.get("ids"))
                                .and_then(Value::as_array)
                                .ok_or_else(|| {
                                    TokenizerError::MissingKey(format!(
                                        "post_processor.special_tokens[{name:?}]"
                                    ))
                                })?;
                            for id in ids {
                                let id = as_id(id, "post_processor.special_tokens.ids")?;
                                if seen_seq {
                                    template_suffix.push(id)
                                } else {
                                    template_prefix.push(id)
                                }
                            }
                        }
                    }
                }
                Some("BertProcessing") => {
                    let pair_id = |k: &str| -> Result<u32, TokenizerError> {
                        pp.get(k)
                            .and_then(|v| v.get(1))
                            .ok_or_else(|| {
                                TokenizerError::MissingKey(format!("post_processor.{k}"))
                            })
                            .and_then(|v| as_id(v, k))
                    };
                    template_prefix.push(pair_id("cls")?);
                    template_suffix.push(pair_id("sep")?);
                }
                other => {
                    return Err(TokenizerError::UnsupportedModel {
                        model: format!("tokenizer.json post_processor {other:?}"),
                        supported: "TemplateProcessing, BertProcessing",
                    });
                }
            }
        }
        Ok((
            WordPieceModel {
                vocab,
                unk,
                prefix,
                max_chars,
                clean_text,
                handle_chinese_chars,
                strip_accents,
                lowercase,
                template_prefix,
                template_suffix,
                added,
            },
            tokens,
        ))
    }

    /// BertNormalizer.
    fn normalize(&self, text: &str) -> String {
        let mut s = String::with_capacity(text.len());
        for c in text.chars() {
            if self.clean_text {
                if c == '\0' || c == '\u{FFFD}' || is_control(c) {
                    continue;
                }
                if is_bert_whitespace(c) {
                    s.push(' ');
                    continue;
                }
            }
            if self.handle_chinese_chars && is_chinese_char(c) {
                s.push(' ');
                s.push(c);
                s.push(' ');
                continue;
            }
            s.push(c);
        }
        if self.strip_accents {
            let mut t = String::with_capacity(s.len());
            let mut tmp = String::new();
            for c in s.chars() {
                tmp.clear();
                push_nfd(c, &mut tmp);
                t.extend(
                    tmp.chars()
                        .filter(|&d| category(d as u32) != GeneralCategory::Mn),
                );
            }
            s = t;
        }
        if self.lowercase {
            s = s.chars().flat_map(char::to_lowercase).collect();
        }
        s
    }

    /// Normalizes, pre-tokenizes and WordPiece-encodes one raw-text fragment.
    pub(super) fn encode_fragment(&self, text: &str, out: &mut Vec<u32>) {
        let norm = self.normalize(text);
        let mut word_start: Option<usize> = None;
        for (i, c) in norm.char_indices() {
            if c.is_whitespace() {
                if let Some(s) = word_start.take() {
                    self.encode_word(&norm[s..i], out);
                }
            } else if is_bert_punc(c) {
                if let Some(s) = word_start.take() {
                    self.encode_word(&norm[s..i], out);
                }
                self.encode_word(&norm[i..i + c.len_utf8()], out);
            } else if word_start.is_none() {
                word_start = Some(i);
            }
        }
        if let Some(s) = word_start {
            self.encode_word(&norm[s..], out);
        }
    }

    fn encode_word(&self, word: &str, out: &mut Vec<u32>) {
        if word.chars().count() > self.max_chars {
            out.push(self.unk);
            return;
        }
        let mark = out.len();
        let mut start = 0;
        let mut piece = String::new();
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while start < end {
                piece.clear();
                if start > 0 {
                    piece.push_str(&self.prefix);
                }
                piece.push_str(&word[start..end]);
                if let Some(&id) = self.vocab.get(piece.as_str()) {
                    found = Some(id);
                    break;
                }
                // Step back one character.
                end = word[..end]
                    .char_indices()
                    .next_back()
                    .map_or(start, |(i, _)| i);
            }
            match found {
                Some(id) => {
                    out.push(id);
                    start = end;
                }
                None => {
                    out.truncate(mark);
                    out.push(self.unk);
                    return;
                }
            }
        }
    }

    /// The WordPiece decoder: `##` pieces glue to the previous one, others get a space;
    /// then the `cleanup` rules of HF's decoder.
    pub(super) fn decode(&self, pieces: &[&str]) -> String {
        let mut s = String::new();
        for (i, p) in pieces.iter().enumerate() {
            if let Some(rest) = p.strip_prefix(self.prefix.as_str()) {
                s.push_str(rest);
            } else {
                if i > 0 {
                    s.push(' ');
                }
                s.push_str(p);
            }
        }
        for (from, to) in [
            (" .", "."),
            (" ?", "?"),
            (" !", "!"),
            (" ,", ","),
            (" ' ", "'"),
            (" n't", "n't"),
            (" 'm", "'m"),
            (" do not", " don't"),
            (" 's", "'s"),
            (" 've", "'ve"),
            (" 're", "'re"),
        ] {
            if s.contains(from) {
                s = s.replace(from, to);
            }
        }
        s
    }
}

fn is_bert_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' ') || c.is_whitespace()
}

fn is_control(c: char) -> bool {
    if matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    matches!(
        category(c as u32),
        GeneralCategory::Cc
            | GeneralCategory::Cf
            | GeneralCategory::Cn
            | GeneralCategory::Co
            | GeneralCategory::Cs
    )
}

fn is_chinese_char(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B920..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

fn is_bert_punc(c: char) -> bool {
    c.is_ascii_punctuation() || is_punctuation(c)
}
