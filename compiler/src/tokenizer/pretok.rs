//! Hand-written pre-tokenizer splitters for byte-level BPE, following llama.cpp's
//! `unicode_regex_split` (unicode.cpp) rule for rule, without a regex engine.
//!
//! A pre-tokenizer is a list of split rules applied in sequence: each rule splits every
//! fragment produced by the previous one. As in llama.cpp, text matched by a rule and the
//! text between matches both become fragments (nothing is dropped). The GPT-2 and
//! Llama-3/Qwen2 patterns are implemented the way llama.cpp's custom splitters do
//! (`unicode_regex_split_custom_gpt2`, `..._llama3`, `..._qwen2`); the small extra
//! patterns of some pre-types (`\p{N}`, `\p{N}+`, `[0-9][0-9][0-9]`, the punctuation class
//! of `default`) are simple scans with the leftmost-match semantics of `std::regex`.

use super::unicode::{Flags, flags};

/// The pre-tokenizer of a GPT-2 style BPE vocabulary (`tokenizer.ggml.pre`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// `default`: punctuation runs, GPT-2 pattern, number runs, ASCII digit triples.
    Default,
    /// `gpt-2` and relatives: the GPT-2 pattern only.
    Gpt2,
    /// `smollm` (also starcoder, refact, command-r, ...): each digit alone, then GPT-2.
    Smollm,
    /// `llama3`/`llama-bpe`: the Llama-3 pattern (numbers in groups of up to 3 digits).
    Llama3,
    /// `qwen2`: the Llama-3 pattern with single digits.
    Qwen2,
}

impl PreTokenizer {
    /// Maps a `tokenizer.ggml.pre` value to a pre-tokenizer (names as in llama.cpp).
    pub fn from_name(name: &str) -> Option<PreTokenizer> {
        Some(match name {
            "default" => PreTokenizer::Default,
            "gpt-2" | "gpt2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v1-en"
            | "jina-v2-es" | "jina-v2-de" | "a.x-4.0" | "mellum" | "mpt" | "olmo" | "jais"
            | "trillion" => PreTokenizer::Gpt2,
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" => PreTokenizer::Smollm,
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" => PreTokenizer::Llama3,
            "qwen2" | "deepseek-r1-qwen" | "stablelm2" | "hunyuan" => PreTokenizer::Qwen2,
            _ => return None,
        })
    }

    /// The `tokenizer.ggml.pre` names this module understands.
    pub const SUPPORTED: &'static str =
        "default, gpt-2, smollm (starcoder, refact, command-r), llama3 (llama-bpe), qwen2";

    /// Splits `text` into words. Returns the byte ranges of the words, in order,
    /// covering the whole text.
    pub fn split(self, text: &str) -> Vec<(usize, usize)> {
        let chars: Vec<char> = text.chars().collect();
        let fl: Vec<Flags> = chars.iter().map(|&c| flags(c)).collect();
        let mut frags = vec![chars.len()];
        let s = Splitter {
            chars: &chars,
            flags: &fl,
        };
        match self {
            PreTokenizer::Default => {
                frags = s.runs(&frags, |c, f| {
                    f.is_punctuation() || matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '~' | '|')
                });
                frags = s.gpt2(&frags);
                frags = s.runs(&frags, |_, f| f.is_number());
                frags = s.ascii_digit_triples(&frags);
            }
            PreTokenizer::Gpt2 => frags = s.gpt2(&frags),
            PreTokenizer::Smollm => {
                frags = s.singles(&frags, |_, f| f.is_number());
                frags = s.gpt2(&frags);
            }
            PreTokenizer::Llama3 => frags = s.llama3(&frags, 3),
            PreTokenizer::Qwen2 => frags = s.llama3(&frags, 1),
        }
        // Fragment lengths (in chars) → byte ranges.
        let mut out = Vec::with_capacity(frags.len());
        let mut byte = 0usize;
        let mut ci = 0usize;
        for len in frags {
            let start = byte;
            for c in &chars[ci..ci + len] {
                byte += c.len_utf8();
            }
            ci += len;
            out.push((start, byte));
        }
        out
    }
}

struct Splitter<'a> {
    chars: &'a [char],
    flags: &'a [Flags],
}

/// One fragment [ini, end) being split; `get`/`fl` return "nothing" outside it,
/// as llama.cpp's `_get_cpt`/`_get_flags` do.
struct Frag<'a> {
    chars: &'a [char],
    flags: &'a [Flags],
    ini: usize,
    end: usize,
    prev_end: usize,
    out: &'a mut Vec<usize>,
}

impl Frag<'_> {
    #[inline]
    fn cpt(&self, pos: usize) -> Option<char> {
        if pos >= self.ini && pos < self.end {
            Some(self.chars[pos])
        } else {
            None
        }
    }
    #[inline]
    fn fl(&self, pos: usize) -> Flags {
        if pos >= self.ini && pos < self.end {
            self.flags[pos]
        } else {
            Flags::NONE
        }
    }
    #[inline]
    fn add(&mut self, end: usize) -> usize {
        let len = end - self.prev_end;
        if len > 0 {
            self.out.push(len);
        }
        self.prev_end = end;
        len
    }
}

impl<'a> Splitter<'a> {
    fn for_each_frag(&self, frags: &[usize], mut f: impl FnMut(&mut Frag<'_>)) -> Vec<usize> {
        let mut out = Vec::with_capacity(frags.len() * 2);
        let mut start = 0;
        for &len in frags {
            let mut frag = Frag {
                chars: self.chars,
                flags: self.flags,
                ini: start,
                end: start + len,
                prev_end: start,
                out: &mut out,
            };
            f(&mut frag);
            start += len;
        }
        out
    }

    /// `pred`-matching chars each become a fragment; the text between stays together.
    fn singles(&self, frags: &[usize], pred: impl Fn(char, Flags) -> bool) -> Vec<usize> {
        self.for_each_frag(frags, |fr| {
            for pos in fr.ini..fr.end {
                if pred(fr.chars[pos], fr.flags[pos]) {
                    fr.add(pos);
                    fr.add(pos + 1);
                }
            }
            fr.add(fr.end);
        })
    }

    /// Maximal runs of `pred`-matching chars become fragments, as does the text between.
    fn runs(&self, frags: &[usize], pred: impl Fn(char, Flags) -> bool) -> Vec<usize> {
        self.for_each_frag(frags, |fr| {
            let mut pos = fr.ini;
            while pos < fr.end {
                if pred(fr.chars[pos], fr.flags[pos]) {
                    fr.add(pos);
                    while pos < fr.end && pred(fr.chars[pos], fr.flags[pos]) {
                        pos += 1;
                    }
                    fr.add(pos);
                } else {
                    pos += 1;
                }
            }
            fr.add(fr.end);
        })
    }

    /// `[0-9][0-9][0-9]`, leftmost non-overlapping matches.
    fn ascii_digit_triples(&self, frags: &[usize]) -> Vec<usize> {
        self.for_each_frag(frags, |fr| {
            let mut pos = fr.ini;
            while pos + 3 <= fr.end {
                if fr.chars[pos..pos + 3].iter().all(|c| c.is_ascii_digit()) {
                    fr.add(pos);
                    fr.add(pos + 3);
                    pos += 3;
                } else {
                    pos += 1;
                }
            }
            fr.add(fr.end);
        })
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)` (and a
    /// final `\s+`), as llama.cpp's `unicode_regex_split_custom_gpt2`.
    fn gpt2(&self, frags: &[usize]) -> Vec<usize> {
        self.for_each_frag(frags, |fr| {
            let mut pos = fr.ini;
            while pos < fr.end {
                let cpt = fr.cpt(pos);
                let fl = fr.fl(pos);
                if cpt == Some('\'') && pos + 1 < fr.end {
                    let next = fr.cpt(pos + 1);
                    if matches!(next, Some('s' | 't' | 'm' | 'd')) {
                        pos += fr.add(pos + 2);
                        continue;
                    }
                    if pos + 2 < fr.end {
                        let nn = fr.cpt(pos + 2);
                        if matches!(
                            (next, nn),
                            (Some('r'), Some('e'))
                                | (Some('v'), Some('e'))
                                | (Some('l'), Some('l'))
                        ) {
                            pos += fr.add(pos + 3);
                            continue;
                        }
                    }
                }
                let is_space = cpt == Some(' ');
                let mut f2 = if is_space { fr.fl(pos + 1) } else { fl };
                if f2.is_letter() {
                    pos += usize::from(is_space);
                    while f2.is_letter() {
                        pos += 1;
                        f2 = fr.fl(pos);
                    }
                    fr.add(pos);
                    continue;
                }
                if f2.is_number() {
                    pos += usize::from(is_space);
                    while f2.is_number() {
                        pos += 1;
                        f2 = fr.fl(pos);
                    }
                    fr.add(pos);
                    continue;
                }
                let other =
                    |f: Flags| !(f.is_whitespace() || f.is_letter() || f.is_number()) && f.any();
                if other(f2) {
                    pos += usize::from(is_space);
                    while other(f2) {
                        pos += 1;
                        f2 = fr.fl(pos);
                    }
                    fr.add(pos);
                    continue;
                }
                let mut nws = 0;
                while fr.fl(pos + nws).is_whitespace() {
                    nws += 1;
                }
                if nws > 1 && fr.cpt(pos + nws).is_some() {
                    pos += nws - 1;
                    fr.add(pos);
                    continue;
                }
                if nws > 0 {
                    pos += nws;
                    fr.add(pos);
                    continue;
                }
                pos += 1;
                fr.add(pos);
            }
        })
    }

    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,K}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// with K = `max_digits` (3 for Llama 3, 1 for Qwen2), as llama.cpp's custom splitters.
    fn llama3(&self, frags: &[usize], max_digits: usize) -> Vec<usize> {
        self.for_each_frag(frags, |fr| {
            let mut pos = fr.ini;
            while pos < fr.end {
                let cpt = fr.cpt(pos);
                let fl = fr.fl(pos);
                if cpt == Some('\'') && pos + 1 < fr.end {
                    let next = fr.cpt(pos + 1).map(|c| c.to_ascii_lowercase());
                    if matches!(next, Some('s' | 't' | 'm' | 'd')) {
                        pos += fr.add(pos + 2);
                        continue;
                    }
                    if pos + 2 < fr.end {
                        let nn = fr.cpt(pos + 2).map(|c| c.to_ascii_lowercase());
                        if matches!(
                            (next, nn),
                            (Some('r'), Some('e'))
                                | (Some('v'), Some('e'))
                                | (Some('l'), Some('l'))
                        ) {
                            pos += fr.add(pos + 3);
                            continue;
                        }
                    }
                }
                let is_crlf = |c: Option<char>| matches!(c, Some('\r' | '\n'));
                // [^\r\n\p{L}\p{N}]?\p{L}+
                if !(is_crlf(cpt) || fl.is_number())
                    && (fl.is_letter() || fr.fl(pos + 1).is_letter())
                {
                    pos += 1;
                    while fr.fl(pos).is_letter() {
                        pos += 1;
                    }
                    fr.add(pos);
                    continue;
                }
                // \p{N}{1,K}
                if fl.is_number() {
                    let mut ini = pos;
                    while fr.fl(pos).is_number() {
                        pos += 1;
                        if pos - ini >= max_digits {
                            fr.add(pos);
                            ini = pos;
                        }
                    }
                    fr.add(pos);
                    continue;
                }
                // <space>?[^\s\p{L}\p{N}]+[\r\n]*
                let is_space = cpt == Some(' ');
                let mut f2 = if is_space { fr.fl(pos + 1) } else { fl };
                let other = |f: Flags| !(f.is_whitespace() || f.is_letter() || f.is_number());
                if other(f2) && fl.any() {
                    pos += usize::from(is_space);
                    while other(f2) && f2.any() {
                        pos += 1;
                        f2 = fr.fl(pos);
                    }
                    while is_crlf(fr.cpt(pos)) {
                        pos += 1;
                    }
                    fr.add(pos);
                    continue;
                }
                let mut nws = 0;
                let mut last_crlf_end = 0;
                while fr.fl(pos + nws).is_whitespace() {
                    if is_crlf(fr.cpt(pos + nws)) {
                        last_crlf_end = pos + nws + 1;
                    }
                    nws += 1;
                }
                // \s*[\r\n]+
                if last_crlf_end > 0 {
                    pos = last_crlf_end;
                    fr.add(pos);
                    continue;
                }
                // \s+(?!\S)
                if nws > 1 && fr.cpt(pos + nws).is_some() {
                    pos += nws - 1;
                    fr.add(pos);
                    continue;
                }
                if nws > 0 {
                    pos += nws;
                    fr.add(pos);
                    continue;
                }
                pos += 1;
                fr.add(pos);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(p: PreTokenizer, text: &str) -> Vec<&str> {
        p.split(text)
            .into_iter()
            .map(|(a, b)| &text[a..b])
            .collect()
    }

    #[test]
    fn gpt2_pattern() {
        assert_eq!(
            words(PreTokenizer::Gpt2, "Hello world, it's 2024!  ok\n"),
            vec![
                "Hello", " world", ",", " it", "'s", " 2024", "!", " ", " ok", "\n"
            ]
        );
    }

    #[test]
    fn smollm_isolates_digits() {
        assert_eq!(
            words(PreTokenizer::Smollm, "a 123b"),
            vec!["a", " ", "1", "2", "3", "b"]
        );
    }

    #[test]
    fn llama3_pattern() {
        assert_eq!(
            words(PreTokenizer::Llama3, "I'LL pay 1234567 now.\n\n  x"),
            vec![
                "I", "'LL", " pay", " ", "123", "456", "7", " now", ".\n\n", " ", " x"
            ]
        );
        assert_eq!(
            words(PreTokenizer::Qwen2, "ab 12"),
            vec!["ab", " ", "1", "2"]
        );
    }

    #[test]
    fn default_pattern() {
        assert_eq!(
            words(PreTokenizer::Default, "x+=12345;"),
            vec!["x", "+=", "123", "45", ";"]
        );
    }

    #[test]
    fn empty_text_has_no_words() {
        assert!(PreTokenizer::Gpt2.split("").is_empty());
        assert!(PreTokenizer::Llama3.split("").is_empty());
    }
}
