//! Fuzz target: the GGUF reader and what a GGUF file feeds: the tensor table
//! and data slices, the tokenizer built from `tokenizer.ggml.*`, and the
//! decoder importer. A file either fails with an error value or imports into
//! a module that verifies (the CLI treats a non-verifying import as a bug).
#![no_main]
use flexc::frontend::decoder::{import_gguf, ImportOptions};
use flexc::frontend::gguf::GgufFile;
use flexc::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(g) = GgufFile::from_bytes_named("fuzz.gguf", data.to_vec()) else { return };
    for t in &g.tensors {
        assert_eq!(g.tensor_data(t).len() as u64, t.n_bytes);
    }
    let _ = g.type_counts();
    if let Ok(tok) = Tokenizer::from_gguf(&g) {
        let ids = tok.encode("Hello the world, naïve 中文 🦙 <s>", true);
        let _ = tok.decode(&ids);
    }
    if let Ok(m) = import_gguf(&g, Path::new("fuzz.gguf"), &ImportOptions { ctx: 16, ..Default::default() }) {
        if let Err(e) = flexc_ir::verify::verify_module(&m) {
            panic!("imported module does not verify: {}", e[0]);
        }
    }
});
