//! The `flexc` command line: one module per verb, a shared error type.

pub mod artifact;
pub mod embed;
pub mod bench;
pub mod calibrate;
pub mod chat;
pub mod error;
pub mod exec;
pub mod export;
pub mod gen_args;
pub mod import;
pub mod models;
pub mod opt;
pub mod perplexity;
pub mod run;
pub mod serve;
pub mod sim;
pub mod source;
pub mod sparsity_report;

use clap::{Parser, Subcommand};
use error::{CliError, CliResult};

/// flexc: a compiler for low-bit and N:M-sparse LLM inference.
#[derive(Parser, Debug)]
#[command(name = "flexc", version, about, long_about = "flexc compiles model graphs (GGUF, safetensors + config.json, or .fir text) through a tensor IR\nand lowering passes to a Cranelift JIT for CPUs or to instruction streams for a\nFlexCiM compute-in-memory macro.")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a pass pipeline over .fir text and print the result.
    Opt(opt::OptArgs),
    /// Run a function of a .fir module on given inputs (reference interpreter).
    Exec(exec::ExecArgs),
    /// Import a model file (GGUF or safetensors + config.json) into .fir text.
    Import(import::ImportArgs),
    /// Fetch known models and texts into the cache (a no-op when cached).
    Pull(models::PullArgs),
    /// List the known models and texts.
    Models(models::ModelsArgs),
    /// Print a model file's metadata and tensor table.
    Inspect(models::InspectArgs),
    /// Generate text from a model.
    Run(run::RunArgs),
    /// Talk to a model: interactive, multi-turn, streaming, with its chat template.
    Chat(chat::ChatArgs),
    /// Serve the model over an OpenAI-compatible HTTP API.
    Serve(serve::ServeArgs),
    /// Print the token ids of a text.
    Tokenize(run::TokenizeArgs),
    /// Print L2-normalised sentence embeddings and their cosine similarities.
    Embed(embed::EmbedArgs),
    /// Measure perplexity on a text (llama-perplexity's method).
    Perplexity(perplexity::PerplexityArgs),
    /// Compile a model for a target (cpu: a .flexc artifact; flexcim: an instruction stream).
    Compile(sim::CompileArgs),
    /// Write a model (after a pipeline) or a .flexc as a GGUF file llama.cpp runs (ggml-typed weights only).
    Export(export::ExportArgs),
    /// Simulate a FlexCiM stream, .fir module or whole model (cycles, energy, baselines).
    Sim(sim::SimArgs),
    /// Benchmark a model (prefill/decode tok/s) or the GEMV kernels (GB/s).
    Bench(bench::BenchArgs),
    /// Record per-channel activation statistics for FLOW/Wanda pruning.
    Calibrate(calibrate::CalibrateArgs),
    /// Report a flow-nm selection per block (text, JSON, SVG).
    SparsityReport(sparsity_report::ReportArgs),
}

fn dispatch(cli: Cli) -> CliResult {
    match cli.command {
        Command::Opt(a) => opt::run(a),
        Command::Exec(a) => exec::run(a),
        Command::Import(a) => import::run(a),
        Command::Pull(a) => models::pull(a),
        Command::Models(a) => models::models(a),
        Command::Inspect(a) => models::inspect(a),
        Command::Run(a) => run::run(a),
        Command::Chat(a) => chat::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Tokenize(a) => run::tokenize(a),
        Command::Perplexity(a) => perplexity::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Compile(a) => sim::compile(a),
        Command::Export(a) => export::run(a),
        Command::Sim(a) => sim::sim(a),
        Command::Bench(a) => bench::run(a),
        Command::Calibrate(a) => calibrate::run(a),
        Command::SparsityReport(a) => sparsity_report::run(a),
    }
}

/// Parses the command line, runs it, and returns the exit code. Errors are
/// printed as one line (plus a source excerpt for located errors); panics
/// are caught and reported as internal errors.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(|| dispatch(cli)).unwrap_or_else(|p| {
        let what = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
        if what.contains("Broken pipe") {
            // The reader of our stdout went away (`flexc ... | head`): not an error.
            return Ok(());
        }
        Err(CliError::internal(format!("internal error: {what} (this is a bug in flexc)")))
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            e.exit_code()
        }
    }
}
