//! Fuzz target: the ONNX frontend (protobuf decoding, initializers, graph
//! checks, op translation and import-time folding): an import either fails
//! with an error or yields a module that verifies. Seed it with
//! `flexc_testsuite::onnx_synth::bytes()` or any `.onnx` file.
#![no_main]
use flexc::frontend::onnx::{OnnxFile, OnnxOptions};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(f) = OnnxFile::from_bytes(Path::new("fuzz.onnx"), bytes::Bytes::copy_from_slice(data)) else { return };
    if let Ok(m) = f.import(&OnnxOptions::default()) {
        if let Err(e) = flexc_ir::verify::verify_module(&m) {
            panic!("imported module does not verify: {}", e[0]);
        }
    }
});
