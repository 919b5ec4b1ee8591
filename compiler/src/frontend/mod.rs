//! Model importers: GGUF, safetensors (with a Hugging Face `config.json`),
//! ONNX graphs and flexc's own `.fir` text.
//!
//! [`Checkpoint::open`] is the one place that decides a model file's format
//! (by magic bytes, then extension); [`Checkpoint::import`] dispatches to the
//! matching importer.

pub mod bert;
pub mod builder;
pub mod decoder;
pub mod gguf;
pub mod hf;
pub mod onnx;
pub mod safetensors;

use builder::ImportError;
use decoder::ImportOptions;
use flexc_ir::Module;
use gguf::{GgufFile, GGUF_MAGIC};
use safetensors::{looks_like_safetensors, SafetensorsFile};
use std::io::Read;
use std::path::{Path, PathBuf};

/// An opened model file of any supported format.
#[derive(Debug)]
pub enum Checkpoint {
    /// A GGUF file (metadata inside).
    Gguf(GgufFile),
    /// A safetensors file (with `config.json` next to it).
    Safetensors(SafetensorsFile),
    /// An ONNX model graph.
    Onnx(onnx::OnnxFile),
}

/// The model file a path names: itself, or for a folder its
/// `model.safetensors` (else its only `.gguf`).
pub fn model_file(path: &Path) -> Result<PathBuf, ImportError> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let st = path.join("model.safetensors");
    if st.is_file() {
        return Ok(st);
    }
    let open = |message: String| ImportError::Open { file: path.display().to_string(), message };
    let ggufs: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| open(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .collect();
    match ggufs.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(open("folder holds neither model.safetensors nor a .gguf file".into())),
        _ => Err(open(format!("folder holds {} .gguf files; name one", ggufs.len()))),
    }
}

impl Checkpoint {
    /// Opens a model file, choosing the reader by magic bytes (then extension).
    pub fn open(path: &Path) -> Result<Checkpoint, ImportError> {
        let open = |message: String| ImportError::Open { file: path.display().to_string(), message };
        let mut head = Vec::with_capacity(9);
        std::fs::File::open(path).and_then(|f| f.take(9).read_to_end(&mut head)).map_err(|e| open(e.to_string()))?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if head.starts_with(&GGUF_MAGIC) || (ext == "gguf" && head.len() < 4) {
            Ok(Checkpoint::Gguf(GgufFile::open(path)?))
        } else if looks_like_safetensors(&head) || ext == "safetensors" {
            Ok(Checkpoint::Safetensors(SafetensorsFile::open(path)?))
        } else if ext == "onnx" {
            Ok(Checkpoint::Onnx(onnx::OnnxFile::open(path)?))
        } else if ext == "gguf" {
            Ok(Checkpoint::Gguf(GgufFile::open(path)?))
        } else {
            Err(open("neither a GGUF file (magic \"GGUF\") nor a safetensors file (u64 header length, then '{') nor a .onnx file".into()))
        }
    }

    /// Imports the checkpoint stored at `path` into a module.
    pub fn import(&self, path: &Path, opts: &ImportOptions) -> Result<Module, ImportError> {
        match self {
            Checkpoint::Gguf(g) => decoder::import_gguf(g, path, opts),
            Checkpoint::Safetensors(st) => hf::import_safetensors(st, path, opts),
            Checkpoint::Onnx(o) => o.import(&onnx::OnnxOptions { batch: opts.batch, ..Default::default() }),
        }
    }
}
