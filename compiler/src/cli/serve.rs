//! `flexc serve`: the OpenAI-compatible HTTP server (see `crate::server`),
//! with llama-server's flags and defaults (127.0.0.1:8080).

use super::error::{CliError, CliResult};
use super::gen_args::{ModelArgs, SamplingArgs};
use crate::server::{serve, ServeConfig};
use clap::Args;
use std::net::{IpAddr, SocketAddr};

/// Arguments of `flexc serve`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc serve\n  flexc serve gemma3-270m --chat-template gemma --port 8081\n\nEndpoints: POST /v1/chat/completions, POST /v1/completions (\"stream\": true for\nserver-sent events), GET /v1/models, GET /health. The sampling options below are\nthe defaults a request's own fields override. SIGINT/SIGTERM stop the server\nafter the requests in flight.")]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The port (0: any free port, printed at start).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The model name in responses (default: the model argument or file name).
    #[arg(long)]
    pub alias: Option<String>,
    /// Sequences decoded together (KV-cache slots; --ctx tokens each).
    #[arg(long = "parallel", visible_alias = "np", default_value_t = 4)]
    pub parallel: usize,
    /// Requests admitted at once, running or queued; more get HTTP 503.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Runs `flexc serve`.
pub fn run(args: ServeArgs) -> CliResult {
    let defaults = args.sampling.config()?;
    let default_limit = args.sampling.limit()?;
    if args.queue == 0 || args.parallel == 0 {
        return Err(CliError::usage("error: --queue and --parallel must be at least 1"));
    }
    let p = args.model.prepare()?;
    let template = args.model.template(&p).map_err(|e| e.to_string());
    let tok = super::run::load_tokenizer(&p.path)?;
    // A known name as given; a file by its stem.
    let stem = || p.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = args.alias.clone().or_else(|| args.model.model.clone().filter(|m| !std::path::Path::new(m).exists())).unwrap_or_else(stem);
    if let Err(e) = &template {
        eprintln!("flexc serve: warning: {} (only /v1/completions will work)", e.trim_start_matches("error: "));
    }
    let cfg = ServeConfig { addr: SocketAddr::new(args.host, args.port), model: name, defaults, default_limit, queue: args.queue };
    let (model, parallel) = (args.model.clone(), args.parallel);
    let open: crate::server::Opener = Box::new(move |body| {
        let mut m = model.batch_model(&p, parallel).map_err(|e| e.to_string())?;
        body(m.as_mut(), &p.tok);
        Ok(())
    });
    serve(cfg, tok, template, open, &|addr| eprintln!("flexc serve: listening on http://{addr}")).map_err(|e| CliError::input(format!("error: {}", e.trim_start_matches("error: "))))
}
