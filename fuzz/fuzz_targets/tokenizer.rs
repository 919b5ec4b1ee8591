//! Fuzz target: the tokenizers on arbitrary bytes. The first byte picks the
//! tokenizer: 0 byte-level BPE and 1 SentencePiece (the tiny vocabularies of
//! `testsuite/src/synth.rs`, rebuilt here), 2 a WordPiece `tokenizer.json`
//! given by the rest of the input (the reader fuzzed too). Text is the rest
//! of the input, lossily decoded. Byte-level BPE must round-trip exactly.
#![no_main]
use flexc::frontend::gguf::GgufFile;
use flexc::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

use flexc_testsuite::synth;

fn tokenizers() -> &'static [Tokenizer; 2] {
    static T: OnceLock<[Tokenizer; 2]> = OnceLock::new();
    T.get_or_init(|| {
        let make = |k| {
            let g = GgufFile::from_bytes_named("tiny.gguf", synth::llama_gguf(k)).expect("tiny gguf");
            Tokenizer::from_gguf(&g).expect("tiny tokenizer")
        };
        [make(synth::Vocab::Bpe), make(synth::Vocab::Spm)]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    match sel % 3 {
        2 => {
            if let Ok(tok) = Tokenizer::from_hf_json(&text) {
                let ids = tok.encode("The cat sat on the mat. naïve 中文", true);
                let _ = tok.decode(&ids);
                for &id in &ids {
                    let _ = tok.decode_piece(id);
                }
            }
        }
        k => {
            let tok = &tokenizers()[k as usize];
            let ids = tok.encode(&text, true);
            let _ = tok.encode_with_special(&text, false);
            for &id in &ids {
                let _ = tok.decode_piece(id);
            }
            let back = tok.decode(&tok.encode(&text, false));
            if k == 0 {
                assert_eq!(back, text, "byte-level BPE does not round-trip");
            }
        }
    }
});
