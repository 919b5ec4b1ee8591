//! `flexc export MODEL|model.flexc -o out.gguf`: a model after a pipeline (or
//! a compiled `.flexc`) as a GGUF file llama.cpp runs, when every weight is
//! ggml-typed ([`crate::frontend::gguf::export`]): flexc's quantizers
//! (importance-weighted RTN, GPTQ) for llama.cpp's runtime.

use super::error::{CliError, CliResult};
use super::run::prepare;
use crate::artifact;
use crate::frontend::gguf::export::export;
use crate::frontend::gguf::GgufFile;
use crate::output::write_atomic;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `flexc export`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc export smollm2-135m --pipeline 'quantize{scheme=q4_0}' -o smollm2-q4_0.gguf\n  flexc export smollm2-q4_0.flexc -o smollm2-q4_0.gguf\n\nEvery weight must be a ggml block format (q4_0, q4_1, q5_0, q5_1, q8_0, K-quants, ...) or f32/f16/bf16;\nthe source model's metadata and tokenizer are carried over.")]
pub struct ExportArgs {
    /// A GGUF model (file or known name) or a compiled `.flexc`.
    pub model: String,
    /// The GGUF file to write (atomically).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Passes run on a model first (default: none); not allowed with a `.flexc`.
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Calibration statistics (`flexc calibrate`) for the pipeline's data-aware passes.
    #[arg(long, alias = "stats-file")]
    pub stats: Option<PathBuf>,
}

/// Runs `flexc export`.
pub fn run(args: ExportArgs) -> CliResult {
    let path = super::models::resolve(&args.model)?;
    let is_artifact = artifact::is_artifact(&path);
    let pipeline = match (&args.pipeline, is_artifact) {
        (None, false) => Some("none"),
        (p, _) => p.as_deref(),
    };
    let p = prepare(Some(&args.model), 2048, pipeline, args.stats.as_deref())?;
    let meta = if is_artifact {
        artifact::open_meta(&p.path).map_err(|e| CliError::input(e.to_string()))?.metadata
    } else {
        GgufFile::open(&p.path).map_err(|e| CliError::input(format!("{e} (export takes a GGUF model: its metadata and tokenizer go into the output)")))?.metadata
    };
    let bytes = export(&p.module, &meta).map_err(|e| CliError::input(format!("{}: error: {e}", p.path.display())))?;
    write_atomic(&args.output, &bytes)?;
    eprintln!("{}: {} tensors, {:.1} MB", args.output.display(), p.module.weights.len(), bytes.len() as f64 / 1e6);
    Ok(())
}
