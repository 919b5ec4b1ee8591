//! SentencePiece-style encoding (`tokenizer.ggml.model = llama`, used by Gemma 3):
//! score-driven bigram merging with byte fallback, as llama.cpp's `llm_tokenizer_spm`.
//!
//! The text of one fragment (special tokens are split off before) has its spaces
//! replaced by `▁`, is cut into UTF-8 characters, and the adjacent pair whose
//! concatenation is a vocabulary token with the highest score is merged repeatedly
//! (ties: leftmost first). Symbols that are not tokens at the end come out as
//! `<0xXX>` byte tokens (or `unk` when the vocabulary lacks them).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::Vocabulary;

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    n: usize,
    prev: isize,
    next: isize,
}

struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Max-heap order: higher score first, then smaller `left` first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Encodes one raw-text fragment, appending ids to `out`.
/// `text` must already carry the `▁` escaping (and the optional space prefix).
pub(super) fn encode_fragment(vocab: &Vocabulary, text: &str, out: &mut Vec<u32>) {
    if text.is_empty() {
        return;
    }
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    for (i, (start, c)) in text.char_indices().enumerate() {
        let n = c.len_utf8();
        symbols.push(Symbol {
            start,
            n,
            prev: i as isize - 1,
            next: if start + n == text.len() {
                -1
            } else {
                i as isize + 1
            },
        });
    }
    let mut heap = BinaryHeap::with_capacity(symbols.len());
    let try_add = |symbols: &[Symbol], heap: &mut BinaryHeap<Bigram>, left: isize, right: isize| {
        if left < 0 || right < 0 {
            return;
        }
        let (l, r) = (symbols[left as usize], symbols[right as usize]);
        let piece = &text[l.start..l.start + l.n + r.n];
        if let Some(id) = vocab.token_id(piece) {
            heap.push(Bigram {
                score: vocab.score(id),
                left: left as usize,
                right: right as usize,
                size: piece.len(),
            });
        }
    };
    for i in 1..symbols.len() {
        try_add(&symbols, &mut heap, i as isize - 1, i as isize);
    }
    while let Some(bg) = heap.pop() {
        let (l, r) = (symbols[bg.left], symbols[bg.right]);
        if l.n == 0 || r.n == 0 || l.n + r.n != bg.size {
            continue;
        }
        symbols[bg.left].n += r.n;
        symbols[bg.right].n = 0;
        symbols[bg.left].next = r.next;
        if r.next >= 0 {
            symbols[r.next as usize].prev = bg.left as isize;
        }
        let (prev, next) = (symbols[bg.left].prev, symbols[bg.left].next);
        try_add(&symbols, &mut heap, prev, bg.left as isize);
        try_add(&symbols, &mut heap, bg.left as isize, next);
    }
    let mut i: isize = 0;
    while i >= 0 {
        let s = symbols[i as usize];
        let piece = &text[s.start..s.start + s.n];
        match vocab.token_id(piece) {
            Some(id) => out.push(id),
            None => {
                for &b in piece.as_bytes() {
                    if let Some(id) = vocab.byte_token(b) {
                        out.push(id);
                    }
                }
            }
        }
        i = s.next;
    }
}
