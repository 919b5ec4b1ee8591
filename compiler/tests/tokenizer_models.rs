//! Tokenizer behaviour on the real model vocabularies (SmolLM2 BPE, Gemma 3 SPM,
//! all-MiniLM-L6-v2 WordPiece): exact ids against an independent implementation
//! (fixtures/smollm2_hf_ids.jsonl), special tokens, end-of-generation ids, unicode,
//! whitespace runs, the empty string, decode round trips and streaming pieces.
//! Files come from the flexc cache (`$FLEXC_CACHE_DIR`, `$XDG_CACHE_HOME/flexc` or
//! `$HOME/.cache/flexc`); each test prints a note and passes when they are absent.


use flexc::frontend::gguf::GgufFile;
use flexc::tokenizer::{PreTokenizer, Tokenizer, TokenizerKind};

use flexc_testsuite::cached;


fn gguf_tokenizer(rel: &str) -> Option<Tokenizer> {
    let f = GgufFile::open(&cached(rel)?).expect("open gguf");
    Some(Tokenizer::from_gguf(&f).expect("tokenizer"))
}

fn smollm() -> Option<Tokenizer> {
    gguf_tokenizer("models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn gemma() -> Option<Tokenizer> {
    gguf_tokenizer("models/gemma3-270m/gemma-3-270m-q4_k_m.gguf")
}

fn minilm() -> Option<Tokenizer> {
    Some(
        Tokenizer::from_hf_json_file(&cached("models/minilm-l6/tokenizer.json")?)
            .expect("tokenizer.json"),
    )
}

/// Strings exercising unicode, whitespace and punctuation.
const SAMPLES: &[&str] = &[
    "",
    " ",
    "   ",
    "\t",
    "\n",
    "\n\n\n",
    "a  b   c\t\td\n \n",
    "Hello world",
    " leading and trailing  ",
    "It's 2024; I'd've paid $1,234.56 (or 12345)!",
    "naïve café résumé",
    "e\u{301} combining accent, Å vs A\u{30A}",
    "中文分词测试，好吗？",
    "日本語のテキスト",
    "한국어 텍스트",
    "emoji 🦙🚀 and 👍🏽 flags 🇫🇷",
    "Ω≈ç√∫˜µ≤≥÷ \u{200B}zero width\u{FEFF}",
    "tabs\tand\r\nCRLF",
    "\u{10FFFF}\u{E000} private use",
];

#[test]
fn smollm2_matches_hugging_face_tokenizers() {
    let Some(tok) = smollm() else { return };
    let fixture = include_str!("fixtures/smollm2_hf_ids.jsonl");
    let mut n = 0;
    for line in fixture
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line).expect("fixture line");
        let text = v["text"].as_str().expect("text");
        let want: Vec<u32> = v["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|x| x.as_u64().expect("id") as u32)
            .collect();
        // HF matches added (control) tokens in text: parse_special = true.
        assert_eq!(tok.encode_with_special(text, false), want, "text {text:?}");
        n += 1;
    }
    assert_eq!(n, 20);
}

#[test]
fn smollm2_metadata_and_special_tokens() {
    let Some(tok) = smollm() else { return };
    assert_eq!(
        tok.kind(),
        TokenizerKind::BytePairEncoding(PreTokenizer::Smollm)
    );
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(
        (tok.bos(), tok.eos(), tok.unk()),
        (Some(1), Some(2), Some(0))
    );
    assert!(!tok.add_bos_by_default());
    let hi = tok.token_id("Hi").expect("Hi");
    assert_eq!(tok.encode("Hi", true), vec![1, hi]);
    // <|im_end|> (2) and <|endoftext|> (0) end generation; ordinary tokens do not.
    assert!(tok.is_eog(2) && tok.is_eog(0) && !tok.is_eog(hi));
    let chat = "<|im_start|>user\nHi<|im_end|>";
    let parsed = tok.encode_with_special(chat, false);
    assert_eq!(parsed.first(), Some(&1));
    assert_eq!(parsed.last(), Some(&2));
    // Without parse_special, control tokens in user text are plain text.
    let plain = tok.encode(chat, false);
    assert!(!plain.contains(&1) && !plain.contains(&2));
    assert_eq!(tok.decode(&plain), chat);
    // Control tokens decode to nothing.
    assert_eq!(tok.decode(&parsed), "user\nHi");
}

#[test]
fn gemma3_metadata_and_special_tokens() {
    let Some(tok) = gemma() else { return };
    assert_eq!(tok.kind(), TokenizerKind::SentencePiece);
    assert_eq!(tok.vocab_size(), 262_144);
    assert_eq!(
        (tok.bos(), tok.eos(), tok.unk(), tok.pad()),
        (Some(2), Some(1), Some(3), Some(0))
    );
    assert!(tok.add_bos_by_default());
    assert!(tok.is_eog(1) && tok.is_eog(106) && !tok.is_eog(105) && !tok.is_eog(2));
    // User-defined "\n" (107) and "\n\n" (108) are always matched, longest first.
    assert_eq!(tok.encode("\n", false), vec![107]);
    assert_eq!(tok.encode("\n\n", false), vec![108]);
    // Gemma also has "\n\n\n" (109): the longest user-defined token wins.
    assert_eq!(tok.encode("\n\n\n", false), vec![109]);
    // Runs of newlines: the longest newline-run token, then the rest.
    let longest = (1..64)
        .take_while(|&k| tok.token_id(&"\n".repeat(k)).is_some())
        .last()
        .expect("newline tokens");
    let run_id = tok.token_id(&"\n".repeat(longest)).expect("run");
    let a = tok.token_id("a").expect("a");
    let text = format!("a{}a", "\n".repeat(longest + 1));
    assert_eq!(tok.encode(&text, false), vec![a, run_id, 107, a]);
    // Control tokens only with parse_special.
    let turn = "<start_of_turn>user\nHi<end_of_turn>\n";
    let parsed = tok.encode_with_special(turn, true);
    assert_eq!(&parsed[..2], &[2, 105]);
    assert!(parsed.contains(&106));
    let plain = tok.encode(turn, false);
    assert!(!plain.contains(&105) && !plain.contains(&106));
    assert_eq!(tok.decode(&plain), turn);
    // No space prefix for Gemma: "Hello" and " Hello" differ.
    assert_ne!(tok.encode("Hello", false), tok.encode(" Hello", false));
}

#[test]
fn round_trips_and_empty_input() {
    for tok in [smollm(), gemma()].into_iter().flatten() {
        assert!(tok.encode("", false).is_empty());
        assert_eq!(
            tok.encode("", true),
            tok.bos().into_iter().collect::<Vec<_>>()
        );
        for s in SAMPLES {
            let ids = tok.encode(s, false);
            assert_eq!(tok.decode(&ids), *s, "{:?}: ids {ids:?}", tok.kind());
            // Streaming: concatenated pieces are the text's bytes even when a byte
            // token carries only part of a UTF-8 sequence.
            let bytes: Vec<u8> = ids.iter().flat_map(|&id| tok.decode_piece(id)).collect();
            assert_eq!(bytes, s.as_bytes());
        }
    }
}

#[test]
fn gemma3_byte_fallback_splits_utf8() {
    let Some(tok) = gemma() else { return };
    // U+10FFFD (private use) is not in the vocabulary: four byte tokens <0xF4><0x8F><0xBF><0xBD>.
    let ids = tok.encode("\u{10FFFD}", false);
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_eq!(ids[0], tok.token_id("<0xF4>").expect("byte token"));
    let pieces: Vec<Vec<u8>> = ids.iter().map(|&id| tok.decode_piece(id)).collect();
    assert_eq!(pieces, vec![vec![0xF4], vec![0x8F], vec![0xBF], vec![0xBD]]);
    assert_eq!(tok.decode(&ids), "\u{10FFFD}");
}

#[test]
fn minilm_wordpiece() {
    let Some(tok) = minilm() else { return };
    assert_eq!(tok.kind(), TokenizerKind::WordPiece);
    assert_eq!(tok.vocab_size(), 30522);
    let ids = tok.encode(
        "Hello, World! This is a test of WordPiece tokenization.",
        true,
    );
    assert_eq!(
        ids,
        vec![
            101, 7592, 1010, 2088, 999, 2023, 2003, 1037, 3231, 1997, 2773, 11198, 19204, 3989,
            1012, 102
        ]
    );
    // Lowercasing + accent stripping: "naïve café résumé" → naive cafe resume.
    assert_eq!(
        tok.encode("naïve café résumé", false),
        tok.encode("naive cafe resume", false)
    );
    // CJK ideographs are split into single characters; [CLS] in text is the token.
    let cjk = tok.encode("中文", false);
    assert_eq!(cjk.len(), 2);
    assert_eq!(tok.encode("[CLS]", false), vec![101]);
    // Words longer than 100 characters become [UNK].
    assert_eq!(tok.encode(&"a".repeat(101), false), vec![100]);
    assert!(tok.encode("", false).is_empty());
    assert_eq!(tok.encode("", true), vec![101, 102]);
    assert_eq!(
        tok.decode(&ids),
        "hello, world! this is a test of wordpiece tokenization."
    );
}
