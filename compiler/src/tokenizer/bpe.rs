//! GPT-2 byte-level BPE (`tokenizer.ggml.model = gpt2`), as llama.cpp's
//! `llm_tokenizer_bpe`: pre-tokenize into words, map every byte of a word to its GPT-2
//! printable character, then repeatedly merge the adjacent pair with the lowest merge
//! rank (ties: leftmost first).
//!
//! Symbols carry ids instead of strings: a vocabulary id, or a "synthetic" id above the
//! vocabulary for strings that occur in merges but are not tokens, so a merge is one
//! hash lookup of an id pair. Symbols that are not tokens at the end fall back to
//! single-byte tokens the way llama.cpp does.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::pretok::PreTokenizer;
use super::unicode::byte_to_unicode_table;
use super::{FastMap, TokenizerError, Vocabulary};

const NO_ID: u32 = u32::MAX;

pub(super) struct BpeModel {
    pub(super) pre: PreTokenizer,
    /// Llama-3 style: a whole pre-token that is itself a token skips the merges.
    ignore_merges: bool,
    /// Symbol id of each byte's GPT-2 character (`NO_ID` if not a token).
    byte_sym: [u32; 256],
    /// The GPT-2 character of each byte.
    byte_char: [char; 256],
    /// Reverse of `byte_char`, for decoding.
    char_byte: HashMap<char, u8>,
    /// (left, right) symbol ids → (rank, merged symbol id).
    merges: FastMap<(u32, u32), (u32, u32)>,
    /// Texts of synthetic symbol ids (id - vocab size).
    extra: Vec<String>,
    n_vocab: u32,
}

impl BpeModel {
    pub(super) fn new(
        vocab: &Vocabulary,
        merges: &[String],
        pre: PreTokenizer,
        ignore_merges: bool,
    ) -> Result<BpeModel, TokenizerError> {
        let n_vocab = vocab.len() as u32;
        let byte_char = byte_to_unicode_table();
        let mut char_byte = HashMap::with_capacity(256);
        for (b, &c) in byte_char.iter().enumerate() {
            char_byte.insert(c, b as u8);
        }
        let mut extra: Vec<String> = Vec::new();
        let mut extra_ids: HashMap<String, u32> = HashMap::new();
        let mut sym_id = |s: &str, extra: &mut Vec<String>| -> u32 {
            if let Some(id) = vocab.token_id(s) {
                return id;
            }
            if let Some(&id) = extra_ids.get(s) {
                return id;
            }
            let id = n_vocab + extra.len() as u32;
            extra.push(s.to_string());
            extra_ids.insert(s.to_string(), id);
            id
        };
        let mut map: FastMap<(u32, u32), (u32, u32)> = FastMap::default();
        map.reserve(merges.len());
        let mut joined = String::new();
        for (rank, m) in merges.iter().enumerate() {
            // As llama.cpp: split at the first space after the first byte.
            let Some(pos) = m.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1) else {
                continue;
            };
            let (a, b) = (&m[..pos], &m[pos + 1..]);
            if a.is_empty() || b.is_empty() {
                continue;
            }
            let ia = sym_id(a, &mut extra);
            let ib = sym_id(b, &mut extra);
            joined.clear();
            joined.push_str(a);
            joined.push_str(b);
            let im = sym_id(&joined, &mut extra);
            let rank = u32::try_from(rank)
                .map_err(|_| TokenizerError::Invalid("too many merges".into()))?;
            map.entry((ia, ib)).or_insert((rank, im));
        }
        let mut byte_sym = [NO_ID; 256];
        let mut buf = [0u8; 4];
        for (b, sym) in byte_sym.iter_mut().enumerate() {
            let s = byte_char[b].encode_utf8(&mut buf);
            *sym = vocab
                .token_id(s)
                .or_else(|| extra_ids.get(s).copied())
                .unwrap_or(NO_ID);
        }
        Ok(BpeModel {
            pre,
            ignore_merges,
            byte_sym,
            byte_char,
            char_byte,
            merges: map,
            extra,
            n_vocab,
        })
    }

    /// Encodes one raw-text fragment, appending ids to `out`.
    pub(super) fn encode_fragment(&self, vocab: &Vocabulary, text: &str, out: &mut Vec<u32>) {
        let mut state = State::default();
        for (a, b) in self.pre.split(text) {
            self.encode_word(vocab, &text.as_bytes()[a..b], &mut state, out);
        }
    }

    fn encode_word(&self, vocab: &Vocabulary, word: &[u8], st: &mut State, out: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        if self.ignore_merges {
            st.text.clear();
            st.text
                .extend(word.iter().map(|&b| self.byte_char[b as usize]));
            if let Some(id) = vocab.token_id(&st.text) {
                out.push(id);
                return;
            }
        }
        let n = word.len();
        st.syms.clear();
        st.syms.extend(word.iter().enumerate().map(|(i, &b)| Sym {
            id: self.byte_sym[b as usize],
            byte: b,
            alive: true,
            prev: i as isize - 1,
            next: if i + 1 == n { -1 } else { i as isize + 1 },
        }));
        st.heap.clear();
        for i in 1..n {
            self.add_bigram(st, i - 1, i);
        }
        while let Some((Reverse(_rank), Reverse(left), right, right_id)) = st.heap.pop() {
            let (l, r) = (st.syms[left], st.syms[right]);
            if !l.alive || !r.alive || r.id != right_id || l.next != right as isize {
                continue;
            }
            let Some(&(_, merged)) = self.merges.get(&(l.id, r.id)) else {
                continue;
            };
            st.syms[left].id = merged;
            st.syms[right].alive = false;
            st.syms[left].next = r.next;
            if r.next >= 0 {
                st.syms[r.next as usize].prev = left as isize;
            }
            if l.prev >= 0 {
                self.add_bigram(st, l.prev as usize, left);
            }
            if r.next >= 0 {
                self.add_bigram(st, left, r.next as usize);
            }
        }
        let mut i: isize = 0;
        while i >= 0 {
            let s = st.syms[i as usize];
            if s.id < self.n_vocab {
                out.push(s.id);
            } else {
                // Not a token: llama.cpp looks up each byte of the symbol's (byte-encoded)
                // text as a one-byte token and drops the bytes that are not tokens.
                let mut buf = [0u8; 4];
                let text: &str = if s.id == NO_ID {
                    self.byte_char[s.byte as usize].encode_utf8(&mut buf)
                } else {
                    &self.extra[(s.id - self.n_vocab) as usize]
                };
                for &b in text.as_bytes() {
                    let one = [b];
                    if let Some(id) = std::str::from_utf8(&one)
                        .ok()
                        .and_then(|t| vocab.token_id(t))
                    {
                        out.push(id);
                    }
                }
            }
            i = s.next;
        }
    }

    fn add_bigram(&self, st: &mut State, left: usize, right: usize) {
        let (a, b) = (st.syms[left].id, st.syms[right].id);
        if a == NO_ID || b == NO_ID {
            return;
        }
        if let Some(&(rank, _)) = self.merges.get(&(a, b)) {
            st.heap.push((Reverse(rank), Reverse(left), right, b));
        }
    }

    /// The bytes a normal token stands for (GPT-2 characters mapped back to bytes).
    pub(super) fn decode_text(&self, text: &str, out: &mut Vec<u8>) {
        for c in text.chars() {
            match self.char_byte.get(&c) {
                Some(&b) => out.push(b),
                None => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Sym {
    id: u32,
    /// The original byte (meaningful for unmerged symbols only).
    byte: u8,
    alive: bool,
    prev: isize,
    next: isize,
}

#[derive(Default)]
struct State {
    syms: Vec<Sym>,
    heap: BinaryHeap<(Reverse<u32>, Reverse<usize>, usize, u32)>,
    text: String,
}
