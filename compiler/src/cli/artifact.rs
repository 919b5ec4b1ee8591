//! `flexc compile MODEL --target cpu -o model.flexc`: import a GGUF model,
//! run the pipeline once (default: the `cpu` preset), and write the result
//! with its weights, tokenizer, metadata and provenance as one `.flexc` file
//! ([`crate::artifact`]) that `run`, `perplexity`, `bench model`,
//! `tokenize`, `inspect` and `sim` load without running a pass.

use super::error::{CliError, CliResult};
use super::run::prepare;
use super::sim::CompileArgs;
use crate::artifact::{self, FileRecord, Provenance};
use crate::frontend::gguf::GgufFile;
use crate::output::write_atomic;
use flexc_backends::cpu::prepack::pack_module;
use indicatif::ProgressBar;
use std::path::Path;
use std::time::Instant;

/// The KV-cache capacity an artifact is compiled for without `--ctx`.
pub const DEFAULT_CTX: usize = 2048;

fn record(path: &Path) -> CliResult<FileRecord> {
    let (bytes, sha256) = flexc_fetch::hash_file(path, &ProgressBar::hidden()).map_err(|e| CliError::input(format!("error: {e}")))?;
    Ok(FileRecord { path: path.display().to_string(), bytes, sha256 })
}

/// Runs `flexc compile --target cpu`.
pub fn compile_cpu(args: &CompileArgs) -> CliResult {
    if args.explain {
        return Err(CliError::usage("error: --explain: for --target cpu, see the kernel choices with `flexc opt --explain`"));
    }
    let ctx = args.ctx.unwrap_or(DEFAULT_CTX);
    let input = super::models::resolve(&args.input)?;
    if artifact::is_artifact(&input) {
        return Err(CliError::usage(format!("error: {}: already a compiled .flexc (compile takes a GGUF model)", input.display())));
    }
    let t0 = Instant::now();
    let p = prepare(Some(&args.input), ctx, args.pipeline.as_deref(), args.stats.as_deref())?;
    let g = GgufFile::open(&p.path).map_err(|e| CliError::input(format!("{e} (compile --target cpu takes a GGUF model: its metadata and tokenizer go into the artifact)")))?;
    let source = record(&std::fs::canonicalize(&p.path).map_err(|e| CliError::input(format!("{}: {e}", p.path.display())))?)?;
    let (calibration, calibration_source) = match &p.stats {
        Some(s) => (Some(record(s)?), p.module.calibration.as_ref().map(|c| c.source.clone())),
        None => (None, None),
    };
    let prov = Provenance {
        flexc_version: env!("CARGO_PKG_VERSION").to_string(),
        target: "cpu".into(),
        source,
        pipeline: p.pipeline.clone(),
        calibration,
        calibration_source,
        cost_table: p.cost_table.clone().unwrap_or_else(|| "none (no pass ran)".into()),
        ctx,
        parameters: p.params,
        remarks: p.remarks.clone(),
    };
    let out = args.output.display().to_string();
    // The LUT streams the runtime would pack at every load, packed once here.
    let (records, blob) = pack_module(&p.module, "forward", artifact::WEIGHT_ALIGN).map_err(|e| CliError::input(format!("{}: error: the CPU runtime cannot plan the compiled module: {e}", args.input)))?;
    let packed = (!records.is_empty()).then_some((records.as_slice(), blob.as_slice()));
    let bytes = artifact::write::to_bytes(&out, &p.module, &g.metadata, &prov, packed).map_err(|e| CliError::input(e.to_string()))?;
    write_atomic(&args.output, &bytes)?;
    eprintln!("{out}: {} weights, {:.1} MB, pipeline `{}` ({:.1} s)", p.module.weights.len(), bytes.len() as f64 / 1e6, p.pipeline, t0.elapsed().as_secs_f64());
    Ok(())
}
