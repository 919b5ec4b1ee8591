//! The options `run`, `chat` and `serve` share: which model and engine, and
//! how to sample (every value range-checked before the model loads).

use super::error::{CliError, CliResult};
use super::run::{instantiate, prepare, Prepared};
use crate::generate::Backend;
use crate::chat::ChatTemplate;
use crate::generate::sampler::SamplerConfig;
use crate::generate::batch::{BatchModel, OneSlot};
use crate::generate::Session;
use flexc_backends::cpu::runtime::default_threads;
use clap::Args;
use std::path::PathBuf;

/// The model and the engine that runs it.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A model file, compiled `.flexc`, or known name (default: smollm2-135m, pulled if needed).
    pub model: Option<String>,
    /// The engine.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    /// Threads for the cpu backend (default: available cores, at most 2).
    #[arg(long)]
    pub threads: Option<usize>,
    /// KV-cache capacity in tokens (prompt + generation; a whole chat).
    #[arg(long, default_value_t = 2048)]
    pub ctx: usize,
    /// A pass pipeline (or preset name) applied to the imported model first.
    /// The default `cpu` preset picks each GEMM's kernel with the cost model
    /// (select-gemm) and tiles it; end your own pipeline with
    /// `select-gemm{target=cpu},tile-gemm{target=cpu}` to keep that, or give
    /// `none` to run the imported graph as is.
    /// (Default: `cpu`; not allowed with a `.flexc`, which keeps its own.)
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Calibration statistics (`flexc calibrate`) for data-aware passes (flow-nm, prune-nm).
    #[arg(long)]
    pub stats_file: Option<PathBuf>,
    /// The chat template: a built-in name (chatml, gemma) or a Jinja file
    /// (default: the model's own, `tokenizer.chat_template`).
    #[arg(long, value_name = "NAME|FILE")]
    pub chat_template: Option<String>,
}

impl ModelArgs {
    /// Resolves, imports and transforms the model.
    pub fn prepare(&self) -> CliResult<Prepared> {
        prepare(self.model.as_deref(), self.ctx, self.pipeline.as_deref(), self.stats_file.as_deref())
    }

    /// A session (empty KV cache) over the prepared model.
    pub fn session<'p>(&self, p: &'p Prepared) -> CliResult<Session<'p>> {
        Ok(Session::new(instantiate(p, self.backend, self.threads)?))
    }

    /// A model with `slots` KV caches decoded in batches (the cpu backend;
    /// the reference interpreter runs one sequence at a time).
    pub fn batch_model<'p>(&self, p: &'p Prepared, slots: usize) -> CliResult<Box<dyn BatchModel + 'p>> {
        Ok(match self.backend {
            Backend::Cpu => {
                if self.threads == Some(0) {
                    return Err(CliError::usage("error: --threads must be at least 1"));
                }
                let m = p.cpu_model(self.threads.unwrap_or_else(default_threads)).map_err(|e| CliError::input(format!("error: {e}")))?;
                Box::new(m.with_slots(slots))
            }
            Backend::Reference => Box::new(OneSlot(instantiate(p, self.backend, self.threads)?)),
        })
    }

    /// The chat template for the prepared model.
    pub fn template(&self, p: &Prepared) -> CliResult<ChatTemplate> {
        ChatTemplate::for_model(&p.path, self.chat_template.as_deref(), &p.tok).map_err(|e| CliError::input(format!("error: {e}")))
    }
}

/// Sampling and stopping.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Tokens to generate at most; -1: until an end-of-generation token or the context ends.
    #[arg(short = 'n', long, default_value_t = 128, allow_negative_numbers = true)]
    pub tokens: i64,
    /// Sampling temperature in [0, 100]; 0 is greedy and deterministic.
    #[arg(long = "temp", default_value_t = 0.0)]
    pub temperature: f32,
    /// Sample among the k most likely tokens (0: all).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Sample among the most likely tokens whose probability reaches p, in [0, 1].
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Drop tokens less likely than p times the most likely one, in [0, 1] (0: off).
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    /// Penalise repeating recent tokens, in (0, 100] (1: off; llama.cpp's rule).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// How many recent tokens the penalties look at (0: none).
    #[arg(long, default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Subtract this from the logits of recent tokens, in [-2, 2] (OpenAI's rule).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub presence_penalty: f32,
    /// Subtract this times a token's recent count from its logit, in [-2, 2].
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub frequency_penalty: f32,
    /// Random seed for sampling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Stop before this text (repeatable); it is not printed.
    #[arg(long)]
    pub stop: Vec<String>,
}

impl SamplingArgs {
    /// The checked sampler settings.
    pub fn config(&self) -> CliResult<SamplerConfig> {
        let cfg = SamplerConfig {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            seed: self.seed,
        };
        cfg.validate().map_err(|e| CliError::usage(format!("error: bad sampling option: {e}")))?;
        Ok(cfg)
    }

    /// The token limit (`None`: unlimited).
    pub fn limit(&self) -> CliResult<Option<usize>> {
        match self.tokens {
            -1 => Ok(None),
            n if n >= 0 => Ok(Some(n as usize)),
            n => Err(CliError::usage(format!("error: -n must be -1 (no limit) or a token count, got {n}"))),
        }
    }
}
