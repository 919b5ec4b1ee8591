//! `flexc serve`: an OpenAI-compatible HTTP server. The model runs on its
//! own thread ([`worker`]), decoding concurrent requests in batches; axum on a small tokio runtime takes requests
//! ([`http`]), speaks the OpenAI wire format ([`api`]), and stops
//! gracefully on SIGINT or SIGTERM (no new connections; requests in flight
//! finish; the model thread drains its queue and exits).

pub mod api;
pub mod http;
pub mod worker;

use crate::chat::ChatTemplate;
use crate::generate::sampler::SamplerConfig;
use crate::generate::batch::BatchModel;
use crate::tokenizer::Tokenizer;
use http::AppState;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// How to serve.
pub struct ServeConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The model name in responses.
    pub model: String,
    /// Sampling defaults.
    pub defaults: SamplerConfig,
    /// Token limit default.
    pub default_limit: Option<usize>,
    /// Requests admitted at once (running and queued).
    pub queue: usize,
}

/// Builds the model on the model thread (it is compiled there and never
/// leaves it) and hands it, with its tokenizer, to the given body.
pub type Opener = Box<dyn FnOnce(&mut dyn FnMut(&mut dyn BatchModel, &Tokenizer)) -> Result<(), String> + Send>;

/// Serves until SIGINT/SIGTERM. `open` runs on the model thread; `tok` and
/// `template` are the HTTP side's copies. `ready` is called with the bound
/// address once the server accepts connections.
pub fn serve(
    cfg: ServeConfig,
    tok: Tokenizer,
    template: Result<ChatTemplate, String>,
    open: Opener,
    ready: &dyn Fn(SocketAddr),
) -> Result<(), String> {
    let (jobs_tx, jobs_rx) = std::sync::mpsc::channel::<worker::Job>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<usize, String>>();
    let model_thread = std::thread::Builder::new()
        .name("flexc-model".into())
        .spawn(move || {
            let r = open(&mut |model, tok| {
                let _ = ready_tx.send(Ok(model.context()));
                worker::serve_jobs(model, tok, &jobs_rx);
            });
            if let Err(e) = r {
                let _ = ready_tx.send(Err(e));
            }
        })
        .map_err(|e| format!("cannot start the model thread: {e}"))?;
    let ctx = match ready_rx.recv() {
        Ok(Ok(ctx)) => ctx,
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err("the model thread failed while loading".into()),
    };
    let state = Arc::new(AppState {
        jobs: Mutex::new(Some(jobs_tx)),
        tok,
        template,
        defaults: cfg.defaults,
        default_limit: cfg.default_limit,
        ctx,
        model: cfg.model,
        admitted: Arc::new(tokio::sync::Semaphore::new(cfg.queue)),
        counter: AtomicU64::new(0),
    });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().map_err(|e| format!("cannot start the HTTP runtime: {e}"))?;
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(cfg.addr).await.map_err(|e| format!("cannot listen on {}: {e}", cfg.addr))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        ready(bound);
        axum::serve(listener, http::router(state.clone())).with_graceful_shutdown(shutdown_signal()).await.map_err(|e| format!("server error: {e}"))
    });
    // Close the queue; the model thread finishes what it has and exits.
    if let Ok(mut q) = state.jobs.lock() {
        q.take();
    }
    drop(rt);
    let _ = model_thread.join();
    result
}

async fn shutdown_signal() {
    let int = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = int.await;
                return;
            }
        };
        tokio::select! {
            _ = int => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = int.await;
    eprintln!("flexc serve: shutting down (finishing requests in flight)");
}
