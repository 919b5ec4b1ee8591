//! `flexc import`: a model file into `.fir` text (weights referenced by path).

use super::error::{CliError, CliResult};
use crate::frontend::decoder::ImportOptions;
use crate::frontend::{model_file, Checkpoint};
use crate::output::write_atomic;
use clap::Args;
use flexc_ir::text::print_module;
use flexc_ir::verify::verify_module;
use flexc_ir::Module;
use std::path::{Path, PathBuf};

/// Arguments of `flexc import`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc import ~/.cache/flexc/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf -o smollm2.fir\n  flexc import model.gguf --ctx 512 | flexc opt - --pipeline cleanup\n  flexc import minilm-l6 -o minilm.fir\n  flexc import model.onnx -o model.fir")]
pub struct ImportArgs {
    /// A model file (.gguf, .safetensors with config.json beside it, .onnx), a model
    /// folder, or a known model name (pulled if needed).
    pub model: String,
    /// Write the IR here instead of stdout (written atomically).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// KV-cache capacity in tokens.
    #[arg(long, default_value_t = 2048)]
    pub ctx: usize,
    /// ONNX graphs: the size bound to a symbolic leading (batch) dimension
    /// of the inputs (0 keeps it symbolic).
    #[arg(long, default_value_t = 1)]
    pub batch: u64,
}

/// Opens a model file and imports it into a verified module.
pub fn import_model(path: &Path, opts: &ImportOptions) -> CliResult<Module> {
    let path = std::fs::canonicalize(path).map_err(|e| CliError::input(format!("{}: {e}", path.display())))?;
    let path = model_file(&path).map_err(|e| CliError::input(e.to_string()))?;
    let ck = Checkpoint::open(&path).map_err(|e| CliError::input(e.to_string()))?;
    let m = ck.import(&path, opts).map_err(|e| CliError::input(e.to_string()))?;
    verify_module(&m).map_err(|es| CliError::internal(format!("internal error: the imported module does not verify: {}", es[0])))?;
    Ok(m)
}

/// Runs `flexc import`.
pub fn run(args: ImportArgs) -> CliResult {
    if args.ctx == 0 {
        return Err(CliError::usage("error: --ctx must be at least 1"));
    }
    let path = super::models::resolve(&args.model)?;
    let m = import_model(&path, &ImportOptions { ctx: args.ctx, batch: args.batch })?;
    let text = print_module(&m);
    match args.output {
        Some(p) => write_atomic(&p, text.as_bytes())?,
        None => print!("{text}"),
    }
    Ok(())
}
