//! `flexc perplexity`: llama-perplexity's measurement over a text file.

use super::error::{CliError, CliResult};
use super::models::{resolve_text, Format};
use super::run::{instantiate, interrupt_flag, prepare};
use crate::generate::Backend;
use crate::eval::{perplexity, PplConfig};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::Ordering;

/// Arguments of `flexc perplexity`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc perplexity smollm2-135m -f pride-and-prejudice --chunks 40\n  flexc perplexity gemma3-270m -f book.txt --ctx 512 --format json\n\nThe method is llama-perplexity's: consecutive chunks of --ctx tokens, BOS\nfirst, the second half of each chunk scored.")]
pub struct PerplexityArgs {
    /// A model file, compiled `.flexc`, or known name (default: smollm2-135m).
    pub model: Option<String>,
    /// The text: a file or a known text name (e.g. pride-and-prejudice).
    #[arg(short, long)]
    pub file: String,
    /// Tokens per chunk.
    #[arg(long, default_value_t = 512)]
    pub ctx: usize,
    /// Evaluate at most this many chunks (0: the whole text).
    #[arg(long, default_value_t = 0)]
    pub chunks: usize,
    /// The engine.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    /// Threads for the cpu backend (default: available cores, at most 2).
    #[arg(long)]
    pub threads: Option<usize>,
    /// A pass pipeline (or preset name) applied to the imported model first.
    /// The default `cpu` preset picks each GEMM's kernel with the cost model
    /// (select-gemm) and tiles it; end your own pipeline with
    /// `select-gemm{target=cpu},tile-gemm{target=cpu}` to keep that, or give
    /// `none` to run the imported graph as is.
    /// (Default: `cpu`; not allowed with a `.flexc`, which keeps its own.)
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Calibration statistics (`flexc calibrate`) for data-aware passes
    /// (flow-nm, prune-nm). Without it, a pipeline that needs statistics uses
    /// the default ones (the default calibration text, computed once and cached).
    #[arg(long, alias = "stats-file")]
    pub stats: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// How big the evaluated model is, measured as the engine reads it.
#[derive(serde::Serialize, Clone, Copy)]
pub struct ModelSize {
    /// Parameters of the imported model (before the pipeline).
    pub parameters: u64,
    /// Weight bytes read per decoded token, in the engine's packed layout.
    pub weight_bytes_per_token: Option<u64>,
    /// `weight_bytes_per_token × 8 / parameters`.
    pub bits_per_weight: Option<f64>,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    result: &'a crate::eval::PplResult,
    #[serde(flatten)]
    size: ModelSize,
    /// The passes' remarks (e.g. quantize's choice per tensor).
    remarks: &'a [String],
}

/// Runs `flexc perplexity`.
pub fn run(args: PerplexityArgs) -> CliResult {
    let text_path = resolve_text(&args.file)?;
    let text = super::source::read_text_file(&text_path)?;
    let p = prepare(args.model.as_deref(), args.ctx, args.pipeline.as_deref(), args.stats.as_deref())?;
    let bos = if p.tok.add_bos_by_default() { p.tok.bos() } else { None };
    let tokens = p.tok.encode(&text, bos.is_some());
    let mut model = instantiate(&p, args.backend, args.threads)?;
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} chunks  ppl {msg}  eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar()));
    let stop = interrupt_flag();
    let cfg = PplConfig { ctx: args.ctx, max_chunks: args.chunks };
    let result = perplexity(model.as_mut(), &tokens, bos, &cfg, &mut |done, total, sums| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(format!("{:.4} ± {:.4}", sums.ppl(), sums.stderr()));
        if stop.load(Ordering::SeqCst) {
            bar.abandon_with_message("interrupted");
            std::process::exit(130);
        }
    })
    .map_err(|e| CliError::input(format!("error: {e}")))?;
    bar.finish_and_clear();
    let size = ModelSize { parameters: p.params, weight_bytes_per_token: model.weight_bytes_per_token(), bits_per_weight: p.bits_per_weight(model.as_ref()) };
    match args.format {
        Format::Json => {
            let report = Report { result: &result, size, remarks: &p.remarks };
            println!("{}", serde_json::to_string(&report).map_err(|e| CliError::internal(e.to_string()))?)
        }
        Format::Text => {
            println!(
                "perplexity {:.4} ± {:.4} ({} tokens scored in {} chunks of {})",
                result.ppl, result.stderr, result.tokens_scored, result.chunks, result.ctx
            );
            if let Some(bpw) = size.bits_per_weight {
                println!("{bpw:.3} bits per weight ({} weight bytes read per token, {} parameters)", size.weight_bytes_per_token.unwrap_or(0), size.parameters);
            }
        }
    }
    Ok(())
}
