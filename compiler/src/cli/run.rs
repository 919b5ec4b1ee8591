//! `flexc run` (generate text) and `flexc tokenize` (show token ids).

use super::error::{CliError, CliResult};
use super::import::import_model;
use super::models::{resolve, DEFAULT_MODEL};
use crate::frontend::decoder::ImportOptions;
use crate::frontend::gguf::GgufFile;
use crate::generate::cpu::CpuModel;
use crate::generate::reference::ReferenceModel;
use flexc_backends::cpu::runtime::default_threads;
use crate::generate::sampler::{Sampler, SamplerConfig};
use crate::generate::{generate, LanguageModel};
use crate::tokenizer::Tokenizer;
use clap::{Args, ValueEnum};
use flexc_passes::{ManagerOptions, PassManager};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Which engine runs the model.
#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
pub enum Backend {
    /// The Cranelift JIT runtime (the default).
    Cpu,
    /// The reference interpreter: scalar and slow, the correctness oracle.
    Reference,
}

/// Arguments of `flexc run`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc run -p \"The history of the printing press\"\n  flexc run gemma3-270m -p \"Once upon a time\" -n 64 --temp 0.8 --seed 1 --stats\n  flexc run model.gguf -f prompt.txt --backend reference\n\nThe continuation goes to stdout; stats and progress go to stderr.\nCtrl-C stops generation cleanly.")]
pub struct RunArgs {
    /// A model file or known name (default: smollm2-135m, pulled if needed).
    pub model: Option<String>,
    /// The prompt.
    #[arg(short, long, conflicts_with = "file")]
    pub prompt: Option<String>,
    /// Read the prompt from a file.
    #[arg(short, long)]
    pub file: Option<PathBuf>,
    /// Tokens to generate at most.
    #[arg(short = 'n', long, default_value_t = 128)]
    pub tokens: usize,
    /// Sampling temperature; 0 is greedy and deterministic.
    #[arg(long = "temp", default_value_t = 0.0)]
    pub temperature: f32,
    /// Sample among the k most likely tokens (0: all).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Sample among the most likely tokens whose probability reaches p.
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Random seed for sampling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The engine.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    /// Threads for the cpu backend (default: available cores, at most 2).
    #[arg(long)]
    pub threads: Option<usize>,
    /// KV-cache capacity in tokens (prompt + generation).
    #[arg(long, default_value_t = 2048)]
    pub ctx: usize,
    /// A pass pipeline (or preset name) applied to the imported model first.
    /// The default `cpu` preset picks each GEMM's kernel with the cost model
    /// (select-gemm) and tiles it; end your own pipeline with
    /// `select-gemm{target=cpu},tile-gemm{target=cpu}` to keep that, or give
    /// `none` to run the imported graph as is.
    #[arg(long, default_value = "cpu")]
    pub pipeline: Option<String>,
    /// Calibration statistics (`flexc calibrate`) for data-aware passes (flow-nm, prune-nm).
    #[arg(long)]
    pub stats_file: Option<PathBuf>,
    /// Print load, compile, prefill and decode times and tok/s to stderr.
    #[arg(long)]
    pub stats: bool,
}

/// Arguments of `flexc tokenize`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc tokenize smollm2-135m -p \"Hello world\"\n  flexc tokenize gemma3-270m -f book.txt --count")]
pub struct TokenizeArgs {
    /// A model file or known name.
    pub model: String,
    /// Text to tokenize.
    #[arg(short, long, conflicts_with = "file", required_unless_present = "file")]
    pub prompt: Option<String>,
    /// Read the text from a file.
    #[arg(short, long)]
    pub file: Option<PathBuf>,
    /// Prepend the BOS token.
    #[arg(long)]
    pub bos: bool,
    /// Print only the number of tokens.
    #[arg(long)]
    pub count: bool,
}

fn read_text(prompt: Option<String>, file: Option<&Path>) -> CliResult<String> {
    match (prompt, file) {
        (Some(p), _) => Ok(p),
        (None, Some(f)) => super::source::read_text_file(f),
        (None, None) => Err(CliError::usage("error: give the text with -p TEXT or -f FILE")),
    }
}

/// Loads a model's tokenizer.
pub fn load_tokenizer(path: &Path) -> CliResult<Tokenizer> {
    let g = GgufFile::open(path).map_err(|e| CliError::input(e.to_string()))?;
    Tokenizer::from_gguf(&g).map_err(|e| CliError::input(format!("{}: {e}", path.display())))
}

/// Runs `flexc tokenize`.
pub fn tokenize(args: TokenizeArgs) -> CliResult {
    let path = resolve(&args.model)?;
    let tok = load_tokenizer(&path)?;
    let text = read_text(args.prompt, args.file.as_deref())?;
    let ids = tok.encode(&text, args.bos);
    if args.count {
        println!("{}", ids.len());
    } else {
        println!("{}", ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(","));
    }
    Ok(())
}

/// A model ready to run: its file, tokenizer and (optionally transformed) module.
pub struct Prepared {
    /// The model file.
    pub path: PathBuf,
    /// Its tokenizer.
    pub tok: Tokenizer,
    /// The imported module, after `--pipeline`.
    pub module: flexc_ir::Module,
    /// Time to resolve, read and import.
    pub load: std::time::Duration,
    /// Time to run the pipeline.
    pub passes: std::time::Duration,
}

/// Resolves, imports and transforms a model for `run`, `perplexity` and `bench`.
pub fn prepare(model: Option<&str>, ctx: usize, pipeline: Option<&str>, stats: Option<&Path>) -> CliResult<Prepared> {
    if ctx == 0 {
        return Err(CliError::usage("error: --ctx must be at least 1"));
    }
    let pipeline = pipeline.filter(|p| *p != "none");
    // The pipeline is checked before any (default) statistics are computed.
    let pm = pipeline
        .map(|p| PassManager::from_text(p, ManagerOptions { verify_each: true, ..Default::default() }).map_err(|e| CliError::usage(format!("error: {e}"))))
        .transpose()?;
    let stats = super::calibrate::stats_or_default(model, pipeline, stats)?;
    let t0 = Instant::now();
    let path = resolve(model.unwrap_or(DEFAULT_MODEL))?;
    let tok = load_tokenizer(&path)?;
    let mut module = import_model(&path, &ImportOptions { ctx })?;
    if let Some(s) = &stats {
        module.calibration = Some(Arc::new(crate::calib::load(s).map_err(|e| CliError::input(format!("error: {e}")))?));
    }
    let load = t0.elapsed();
    let t1 = Instant::now();
    if let Some(pm) = pm {
        // Cost models for select-gemm/tile-gemm: $FLEXC_COST_TABLE or the shipped table.
        let models = flexc_backends::cost::cost_models_with(None).map_err(|e| CliError::input(format!("error: {e}")))?;
        let mut pm = models.into_iter().fold(pm, PassManager::with_cost_model);
        pm.run(&mut module, &mut |_, _| {}).map_err(|e| CliError::input(format!("error: {e}")))?;
    }
    Ok(Prepared { path, tok, module, load, passes: t1.elapsed() })
}

/// Builds the chosen backend's model over a prepared module.
pub fn instantiate(p: &Prepared, backend: Backend, threads: Option<usize>) -> CliResult<Box<dyn LanguageModel + '_>> {
    if threads == Some(0) {
        return Err(CliError::usage("error: --threads must be at least 1"));
    }
    Ok(match backend {
        Backend::Cpu => Box::new(CpuModel::new(&p.module, threads.unwrap_or_else(default_threads)).map_err(|e| CliError::input(format!("error: {e}")))?),
        Backend::Reference => Box::new(ReferenceModel::new(&p.module).map_err(|e| CliError::input(format!("error: {e}")))?),
    })
}

/// A flag set by the first Ctrl-C or SIGTERM ([`crate::signals::stop_flag`]).
pub fn interrupt_flag() -> Arc<AtomicBool> {
    crate::signals::stop_flag()
}

/// Runs `flexc run`.
pub fn run(args: RunArgs) -> CliResult {
    let text = read_text(args.prompt, args.file.as_deref())?;
    let p = prepare(args.model.as_deref(), args.ctx, args.pipeline.as_deref(), args.stats_file.as_deref())?;
    let t1 = Instant::now();
    let mut model = instantiate(&p, args.backend, args.threads)?;
    let compile = p.passes + t1.elapsed();
    let stop = interrupt_flag();
    let mut sampler = Sampler::new(SamplerConfig { temperature: args.temperature, top_k: args.top_k, top_p: args.top_p, seed: args.seed });
    let mut stdout = std::io::stdout().lock();
    let mut write_err = None;
    let (_, stats) = generate(model.as_mut(), &p.tok, &text, args.tokens, &mut sampler, &mut |piece| {
        if write_err.is_none()
            && let Err(e) = stdout.write_all(piece.as_bytes()).and_then(|_| stdout.flush())
        {
            write_err = Some(e);
        }
    }, &|| stop.load(Ordering::SeqCst))
    .map_err(|e| CliError::input(format!("error: {e}")))?;
    let _ = writeln!(stdout).and_then(|_| stdout.flush());
    if args.stats {
        let ps = stats.prefill.as_secs_f64();
        let ds = stats.decode.as_secs_f64();
        let decode_tokens = stats.generated.saturating_sub(1);
        eprintln!("load {:.3} s | compile {:.3} s | prefill {} tok in {ps:.3} s ({:.1} tok/s) | decode {decode_tokens} tok in {ds:.3} s ({:.1} tok/s)",
            p.load.as_secs_f64(), compile.as_secs_f64(), stats.prompt_tokens, stats.prompt_tokens as f64 / ps.max(1e-9), decode_tokens as f64 / ds.max(1e-9));
    }
    Ok(())
}
