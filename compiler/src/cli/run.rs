//! `flexc run` (generate text) and `flexc tokenize` (show token ids).

use super::error::{CliError, CliResult};
use super::import::import_model;
use super::models::{resolve, DEFAULT_MODEL};
use crate::artifact;
use crate::frontend::decoder::ImportOptions;
use crate::frontend::gguf::GgufFile;
use crate::generate::cpu::CpuModel;
use crate::generate::reference::ReferenceModel;
use flexc_backends::cpu::prepack::Prepacked;
use flexc_backends::cpu::runtime::default_threads;
use super::gen_args::{ModelArgs, SamplingArgs};
use crate::chat::Message;
use crate::generate::sampler::Sampler;
use crate::generate::{prompt_ids, Backend, Decoding, GenStats, LanguageModel};
use crate::tokenizer::Tokenizer;
use clap::Args;
use flexc_passes::{ManagerOptions, PassManager};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `flexc run`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc run -p \"The history of the printing press\"\n  flexc run --chat -p \"What is the capital of France?\"\n  flexc run gemma3-270m -p \"Once upon a time\" -n 64 --temp 0.8 --seed 1 --stats\n  flexc run model.gguf -f prompt.txt --backend reference\n\nThe continuation goes to stdout; stats and progress go to stderr.\nCtrl-C stops generation cleanly.")]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt.
    #[arg(short, long, conflicts_with = "file")]
    pub prompt: Option<String>,
    /// Read the prompt from a file.
    #[arg(short, long)]
    pub file: Option<PathBuf>,
    /// Treat the prompt as a user message: render it with the chat template.
    #[arg(long)]
    pub chat: bool,
    /// A system message before the prompt (with --chat).
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Print load, compile, prefill and decode times and tok/s to stderr.
    #[arg(long)]
    pub stats: bool,
}

/// Arguments of `flexc tokenize`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc tokenize smollm2-135m -p \"Hello world\"\n  flexc tokenize gemma3-270m -f book.txt --count")]
pub struct TokenizeArgs {
    /// A model file, compiled `.flexc`, or known name.
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

/// Loads a model's tokenizer (from a GGUF file or a `.flexc` artifact's metadata).
pub fn load_tokenizer(path: &Path) -> CliResult<Tokenizer> {
    let g = if artifact::is_artifact(path) {
        artifact::open_meta(path).map_err(|e| CliError::input(e.to_string()))?
    } else {
        GgufFile::open(path).map_err(|e| CliError::input(e.to_string()))?
    };
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
    /// Parameters of the imported model before the pipeline (elements of
    /// every weight tensor): the denominator of bits per weight.
    pub params: u64,
    /// The calibration statistics the pipeline read, if any.
    pub stats: Option<PathBuf>,
    /// Where the CPU cost table came from, when a pipeline ran.
    pub cost_table: Option<String>,
    /// The pipeline text run (`none` when none ran).
    pub pipeline: String,
    /// How the artifact was made, when the model is a `.flexc` file.
    pub provenance: Option<artifact::Provenance>,
    /// The passes' remarks (quantize's format, bytes and error per tensor,
    /// fallbacks, ...): reported in the JSON of `perplexity` and `bench model`.
    pub remarks: Vec<String>,
    /// LUT streams a `.flexc` artifact stores packed (none for model files).
    pub prepacked: Option<Arc<Prepacked>>,
}

/// The pipeline `run`, `perplexity`, `bench model` and `compile --target cpu`
/// apply to a model without `--pipeline`.
pub const DEFAULT_PIPELINE: &str = "cpu";

/// Loads a compiled `.flexc` for `run`, `perplexity` and `bench`: no import
/// and no pass (a pipeline or statistics are a usage error: they were fixed
/// at compile time).
fn prepare_artifact(path: PathBuf, pipeline: Option<&str>, stats: Option<&Path>) -> CliResult<Prepared> {
    if pipeline.is_some() || stats.is_some() {
        let flag = if pipeline.is_some() { "--pipeline" } else { "--stats" };
        return Err(CliError::usage(format!("error: {}: a compiled .flexc keeps the pipeline it was compiled with; {flag} applies only to model files", path.display())));
    }
    let t0 = Instant::now();
    let a = artifact::open(&path).map_err(|e| CliError::input(e.to_string()))?;
    let tok = Tokenizer::from_gguf(&a.meta).map_err(|e| CliError::input(format!("{}: section meta: {e}", path.display())))?;
    let pipeline = a.provenance.pipeline.clone();
    let params = a.provenance.parameters;
    let remarks = a.provenance.remarks.clone();
    let prepacked = a.prepacked.map(Arc::new);
    Ok(Prepared { path, tok, module: a.module, load: t0.elapsed(), passes: std::time::Duration::ZERO, stats: None, cost_table: None, pipeline, provenance: Some(a.provenance), params, remarks, prepacked })
}

impl Prepared {
    /// The module compiled by the CPU JIT for `threads` threads (with the
    /// artifact's packed streams, if any).
    pub fn cpu_model(&self, threads: usize) -> Result<CpuModel, crate::generate::ModelError> {
        CpuModel::with_prepacked(&self.module, threads, self.prepacked.clone())
    }

    /// Bits per parameter the model reads per decoded token (llama.cpp's
    /// frontier measure: all weight bytes read per token × 8 / parameters).
    pub fn bits_per_weight(&self, model: &dyn LanguageModel) -> Option<f64> {
        let bytes = model.weight_bytes_per_token()?;
        (self.params > 0).then(|| bytes as f64 * 8.0 / self.params as f64)
    }
}

/// Resolves, imports and transforms a model for `run`, `perplexity` and `bench`.
pub fn prepare(model: Option<&str>, ctx: usize, pipeline: Option<&str>, stats: Option<&Path>) -> CliResult<Prepared> {
    if ctx == 0 {
        return Err(CliError::usage("error: --ctx must be at least 1"));
    }
    let t0 = Instant::now();
    let path = resolve(model.unwrap_or(DEFAULT_MODEL))?;
    if artifact::is_artifact(&path) {
        return prepare_artifact(path, pipeline, stats);
    }
    let pipeline_text = pipeline.unwrap_or(DEFAULT_PIPELINE).to_string();
    let pipeline = Some(pipeline_text.as_str()).filter(|p| *p != "none");
    // The pipeline is checked before any (default) statistics are computed.
    let pm = pipeline
        .map(|p| PassManager::from_text(p, ManagerOptions { verify_each: true, ..Default::default() }).map_err(|e| CliError::usage(format!("error: {e}"))))
        .transpose()?;
    let stats = super::calibrate::stats_or_default(model, pipeline, stats)?;
    let tok = load_tokenizer(&path)?;
    let mut module = import_model(&path, &ImportOptions { ctx, ..Default::default() })?;
    module.calibration = stats.as_ref().map(|s| s.calibration.clone());
    if let Some(p) = pipeline {
        super::calibrate::attach_sensitivity(&mut module, &path, p, stats.as_ref())?;
    }
    let stats = stats.and_then(|s| s.file);
    let load = t0.elapsed();
    let params = module.parameter_count();
    let t1 = Instant::now();
    let mut cost_table = None;
    let mut remarks = Vec::new();
    if let Some(pm) = pm {
        let (pm, table) = crate::pipeline::with_cost_models(pm).map_err(|e| CliError::input(format!("error: {e}")))?;
        cost_table = table;
        let (bar, progress) = crate::pipeline::progress_bar();
        let ran = pm.with_progress(progress).run(&mut module, &mut |_, _| {});
        bar.finish_and_clear();
        remarks = ran.map_err(|e| CliError::input(format!("error: {e}")))?.remarks;
    }
    Ok(Prepared { path, tok, module, load, passes: t1.elapsed(), stats, cost_table, pipeline: pipeline_text, provenance: None, params, remarks, prepacked: None })
}

/// Builds the chosen backend's model over a prepared module.
pub fn instantiate(p: &Prepared, backend: Backend, threads: Option<usize>) -> CliResult<Box<dyn LanguageModel + '_>> {
    if threads == Some(0) {
        return Err(CliError::usage("error: --threads must be at least 1"));
    }
    let err = |e: crate::generate::ModelError| CliError::input(format!("{}: error: {e}", p.path.display()));
    Ok(match backend {
        Backend::Cpu => Box::new(p.cpu_model(threads.unwrap_or_else(default_threads)).map_err(err)?),
        Backend::Reference => Box::new(ReferenceModel::new(&p.module).map_err(err)?),
    })
}

/// A flag set by the first Ctrl-C or SIGTERM ([`crate::signals::stop_flag`]).
pub fn interrupt_flag() -> Arc<AtomicBool> {
    crate::signals::stop_flag()
}

/// Runs `flexc run`.
pub fn run(args: RunArgs) -> CliResult {
    let text = read_text(args.prompt, args.file.as_deref())?;
    let cfg = args.sampling.config()?;
    let limit = args.sampling.limit()?;
    let p = args.model.prepare()?;
    let prompt = if args.chat {
        let messages: Vec<Message> = args.system.iter().map(|s| Message::new("system", s)).chain([Message::new("user", &text)]).collect();
        args.model.template(&p)?.render(&messages, true).map_err(|e| CliError::input(format!("error: {e}")))?
    } else {
        text
    };
    let t1 = Instant::now();
    let mut session = args.model.session(&p)?;
    let compile = p.passes + t1.elapsed();
    let stop = interrupt_flag();
    let mut dec = Decoding::new(Sampler::new(cfg), args.sampling.stop.clone(), limit);
    let mut stdout = std::io::stdout().lock();
    let mut write_err = None;
    let stats = session
        .generate(&p.tok, &prompt_ids(&p.tok, &prompt), &mut dec, &mut |piece| {
            if write_err.is_none()
                && let Err(e) = stdout.write_all(piece.as_bytes()).and_then(|_| stdout.flush())
            {
                write_err = Some(e);
            }
        }, &|| stop.load(Ordering::SeqCst))
        .map_err(|e| CliError::input(format!("error: {e}")))?;
    let _ = writeln!(stdout).and_then(|_| stdout.flush());
    if args.stats {
        print_stats(&stats, p.load, compile);
    }
    Ok(())
}

/// Prints a generation's timings to stderr.
pub fn print_stats(stats: &GenStats, load: Duration, compile: Duration) {
    let ps = stats.prefill.as_secs_f64();
    let ds = stats.decode.as_secs_f64();
    let decode_tokens = stats.generated.saturating_sub(1);
    eprintln!("load {:.3} s | compile {:.3} s | prefill {} tok in {ps:.3} s ({:.1} tok/s) | decode {decode_tokens} tok in {ds:.3} s ({:.1} tok/s)",
        load.as_secs_f64(), compile.as_secs_f64(), stats.prefilled, stats.prefilled as f64 / ps.max(1e-9), decode_tokens as f64 / ds.max(1e-9));
}
