//! `flexc calibrate`: record Wanda/FLOW activation statistics for a model.

use super::error::{CliError, CliResult};
use super::import::import_model;
use super::models::{resolve, resolve_text, DEFAULT_MODEL};
use super::run::load_tokenizer;
use crate::calib::{calibrate, to_json, window_starts};
use crate::frontend::decoder::ImportOptions;
use crate::output::write_atomic;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// Arguments of `flexc calibrate`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc calibrate smollm2-135m -o smollm2.stats.json\n  flexc calibrate smollm2-135m -f pride-and-prejudice --samples 8 --seqlen 128 -o s.json\n\nRuns the model (reference interpreter) on --samples random windows of --seqlen\ntokens and records, per linear layer in a decoder block, the running mean over\nwindows of each input channel's squared L2 norm (Wanda's scaler_row). The\nfile format is described in compiler/src/calib.rs.")]
pub struct CalibrateArgs {
    /// A model file or known name (default: smollm2-135m).
    pub model: Option<String>,
    /// Calibration text: a file or known text name.
    #[arg(short, long, default_value = "sense-and-sensibility")]
    pub file: String,
    /// Windows (sequences).
    #[arg(long, default_value_t = 128)]
    pub samples: usize,
    /// Tokens per window.
    #[arg(long, default_value_t = 2048)]
    pub seqlen: usize,
    /// Seed for the window positions.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output statistics file (written atomically).
    #[arg(short, long)]
    pub output: PathBuf,
}

/// Tokenizes a text and cuts calibration windows.
pub fn windows(model: &std::path::Path, text: &str, samples: usize, seqlen: usize, seed: u64) -> CliResult<Vec<Vec<u32>>> {
    let tok = load_tokenizer(model)?;
    let text = std::fs::read_to_string(text).map_err(|e| CliError::input(format!("{text}: cannot read: {e}")))?;
    let ids = tok.encode(&text, false);
    if ids.len() <= seqlen {
        return Err(CliError::input(format!("error: the text has {} tokens, fewer than --seqlen {seqlen}", ids.len())));
    }
    Ok(window_starts(ids.len(), seqlen, samples, seed).into_iter().map(|s| ids[s..s + seqlen].to_vec()).collect())
}

/// Runs `flexc calibrate`.
pub fn run(args: CalibrateArgs) -> CliResult {
    if args.samples == 0 || args.seqlen == 0 {
        return Err(CliError::usage("error: --samples and --seqlen must be at least 1"));
    }
    let model = resolve(args.model.as_deref().unwrap_or(DEFAULT_MODEL))?;
    let text = resolve_text(&args.file)?;
    let wins = windows(&model, &text.to_string_lossy(), args.samples, args.seqlen, args.seed)?;
    let module = import_model(&model, &ImportOptions { ctx: args.seqlen })?;
    let bar = ProgressBar::new(wins.len() as u64);
    bar.set_style(ProgressStyle::with_template("calibrating {bar:30} {pos}/{len} windows  eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar()));
    let source = format!("model={} text={} samples={} seqlen={} seed={}", model.display(), args.file, args.samples, args.seqlen, args.seed);
    let stats = calibrate(&module, &wins, source, &mut |d| bar.set_position(d as u64)).map_err(|e| CliError::input(format!("error: {e}")))?;
    bar.finish_and_clear();
    write_atomic(&args.output, to_json(&stats).as_bytes())?;
    eprintln!("wrote statistics of {} linear layers ({} windows of {} tokens) to {}", stats.layers.len(), wins.len(), args.seqlen, args.output.display());
    Ok(())
}
