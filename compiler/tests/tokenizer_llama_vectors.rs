//! llama.cpp's own tokenizer test vectors (`models/ggml-vocab-*.gguf` with `.inp`/`.out`,
//! as run by llama.cpp's `test-tokenizer-0`: no special tokens added, `parse_special =
//! false`). The vocab files are not part of the repository: they are read from
//! `FLEXC_LLAMA_VOCAB_DIR`, else `<cache>/llama.cpp-vocab` (`FLEXC_CACHE_DIR` or
//! `~/.cache/flexc`), filled from llama.cpp's `models/` folder by `.ci/llama-vocab.py`
//! (from the PyPI sdist `llama-cpp-python==0.3.36`, `vendor/llama.cpp/models/`), which
//! `.ci/run` runs. Without the folder the test says SKIPPED on the test's real stderr,
//! and fails in CI (`flexc_testsuite::gate`). A folder with zero vectors in it is a
//! failure, not a pass.

use std::path::{Path, PathBuf};

use flexc::frontend::gguf::GgufFile;
use flexc::tokenizer::Tokenizer;
use flexc_testsuite::gate;

/// Vocabularies whose `tokenizer.ggml.model`/`pre` this crate supports.
const VOCABS: &[&str] = &[
    "llama-spm",
    "phi-3",
    "gpt-2",
    "mpt",
    "llama-bpe",
    "qwen2",
    "starcoder",
    "refact",
    "command-r",
];

fn read_vectors(dir: &Path, name: &str) -> Option<Vec<(String, Vec<u32>)>> {
    let inp = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.inp"))).ok()?;
    let out = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.out"))).ok()?;
    let inputs: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    let outputs: Vec<&str> = out.split('\n').collect();
    let mut v = Vec::new();
    for (i, text) in inputs.iter().enumerate() {
        if i + 1 == inputs.len() && text.is_empty() {
            break;
        }
        let ids = outputs
            .get(i)?
            .split_whitespace()
            .map(|t| t.parse().ok())
            .collect::<Option<Vec<u32>>>()?;
        v.push((text.to_string(), ids));
    }
    Some(v)
}

/// The vocab folder: `FLEXC_LLAMA_VOCAB_DIR`, else the cache's `llama.cpp-vocab`.
fn vocab_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("FLEXC_LLAMA_VOCAB_DIR") {
        return Some(PathBuf::from(d));
    }
    Some(gate::cache_root()?.join("llama.cpp-vocab")).filter(|d| d.is_dir())
}

#[test]
fn llama_cpp_vocab_vectors() {
    let Some(dir) = vocab_dir() else {
        gate::skip("no FLEXC_LLAMA_VOCAB_DIR and no <cache>/llama.cpp-vocab");
        return;
    };
    let mut failures = Vec::new();
    let mut total = 0;
    for name in VOCABS {
        let path = dir.join(format!("ggml-vocab-{name}.gguf"));
        let Ok(f) = GgufFile::open(&path) else {
            gate::skip(&format!("{} missing", path.display()));
            continue;
        };
        let tok = Tokenizer::from_gguf(&f).unwrap_or_else(|e| panic!("{name}: {e}"));
        let Some(vectors) = read_vectors(&dir, name) else {
            gate::skip(&format!("vectors for {name} missing"));
            continue;
        };
        for (text, want) in &vectors {
            total += 1;
            let got = tok.encode(text, false);
            if &got != want {
                failures.push(format!(
                    "{name}: {text:?}\n   want {want:?}\n    got {got:?}"
                ));
            }
        }
        eprintln!("{name}: {} vectors", vectors.len());
    }
    assert!(total > 0, "{}: no vocab vectors found (want ggml-vocab-NAME.gguf with .inp/.out)", dir.display());
    assert!(
        failures.is_empty(),
        "{} of {total} vectors differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
