//! The ONNX test environment shared by the ONNX tests: the venv with
//! `onnx`/`onnxruntime` from PyPI and the generated node tests
//! (`testsuite/tools/onnx/env.sh`, cached per machine), and the MiniLM ONNX
//! files with ONNX Runtime's outputs (`testsuite/tools/onnx/minilm.py`).
//! Both are made on first use; a failure to make them fails the test (CI
//! must not skip the comparison silently).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// flexc's cache folder.
pub fn cache_dir() -> PathBuf {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    non_empty("FLEXC_CACHE_DIR")
        .or_else(|| non_empty("XDG_CACHE_HOME").map(|p| p.join("flexc")))
        .or_else(|| non_empty("HOME").map(|p| p.join(".cache").join("flexc")))
        .expect("HOME is set")
}

/// The venv's python (made if needed).
pub fn python() -> PathBuf {
    let out = Command::new("bash").arg(repo().join("testsuite/tools/onnx/env.sh")).output().expect("bash runs");
    assert!(out.status.success(), "testsuite/tools/onnx/env.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The generated ONNX backend node tests.
pub fn node_dir() -> PathBuf {
    let py = python();
    py.parent().and_then(Path::parent).and_then(Path::parent).expect("venv layout").join("node")
}

/// The MiniLM model folder in flexc's cache (pulled by CI before the tests).
pub fn minilm_dir() -> PathBuf {
    let d = cache_dir().join("models/minilm-l6");
    assert!(d.join("model.safetensors").is_file(), "minilm-l6 is not in the flexc cache (flexc pull minilm-l6)");
    d
}

/// The folder with the MiniLM ONNX files and ONNX Runtime's outputs (made if needed).
pub fn minilm_onnx() -> PathBuf {
    let py = python();
    let out = py.parent().and_then(Path::parent).and_then(Path::parent).expect("venv layout").join("minilm");
    // Tests of one binary run in parallel: one makes the files, the others wait.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let current = std::fs::read_to_string(out.join("manifest.json")).is_ok_and(|m| m.contains("nbits4f16"));
    if !current {
        let fixture = repo().join("testsuite/fixtures/minilm/minilm_embeddings.json");
        let st = Command::new(&py).arg(repo().join("testsuite/tools/onnx/minilm.py")).arg(minilm_dir()).arg(&out).arg(fixture).output().expect("python runs");
        assert!(st.status.success(), "minilm.py failed:\n{}", String::from_utf8_lossy(&st.stderr));
    }
    out
}
