//! The HTTP side (axum on tokio): routes, request parsing into jobs for the
//! model thread, responses as JSON or server-sent events, a bound on the
//! requests admitted (running plus queued; more get 503), and OpenAI-shaped
//! errors for everything a client can get wrong.

use super::api::{ApiError, ChatRequest, Common, CompletionRequest, Endpoint, Envelope, GenParams};
use super::worker::{Event, Job};
use crate::chat::ChatTemplate;
use crate::generate::prompt_ids;
use crate::generate::sampler::SamplerConfig;
use crate::tokenizer::Tokenizer;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// Everything the handlers share.
pub struct AppState {
    /// The queue to the model thread (`None` once shutting down).
    pub jobs: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
    /// The model's tokenizer.
    pub tok: Tokenizer,
    /// The chat template, or why there is none.
    pub template: Result<ChatTemplate, String>,
    /// Sampling defaults (the command line's).
    pub defaults: SamplerConfig,
    /// Token limit default.
    pub default_limit: Option<usize>,
    /// KV-cache capacity.
    pub ctx: usize,
    /// The model name reported and accepted.
    pub model: String,
    /// Requests admitted (running or queued).
    pub admitted: Arc<Semaphore>,
    /// Requests counted for ids.
    pub counter: AtomicU64,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.body())).into_response()
    }
}

/// The router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .fallback(|| async { ApiError { status: 404, kind: "invalid_request_error", message: "no such endpoint".into(), param: None, code: Some("not_found") } })
        .with_state(state)
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn models(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({ "object": "list", "data": [{ "id": s.model, "object": "model", "created": now(), "owned_by": "flexc" }] }))
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(None, format!("invalid request body: {e}")))
}

async fn chat(State(s): State<Arc<AppState>>, body: Bytes) -> Result<Response, ApiError> {
    let req: ChatRequest = parse(&body)?;
    let messages = req.messages()?;
    let template = s.template.as_ref().map_err(|e| ApiError::invalid(Some("messages"), e.clone()))?;
    let text = template.render(&messages, true).map_err(|e| ApiError::invalid(Some("messages"), e))?;
    let ids = prompt_ids(&s.tok, &text);
    start(s, Endpoint::Chat, &req.common, ids).await
}

async fn completions(State(s): State<Arc<AppState>>, body: Bytes) -> Result<Response, ApiError> {
    let req: CompletionRequest = parse(&body)?;
    let ids = prompt_ids(&s.tok, req.text()?);
    if ids.is_empty() {
        return Err(ApiError::invalid(Some("prompt"), "the prompt is empty and the model adds no BOS token"));
    }
    start(s, Endpoint::Completion, &req.common, ids).await
}

/// Validates, admits and queues a request, then answers it.
async fn start(s: Arc<AppState>, endpoint: Endpoint, common: &Common, ids: Vec<u32>) -> Result<Response, ApiError> {
    let params = common.params(&s.defaults, s.default_limit)?;
    if ids.len() >= s.ctx {
        return Err(ApiError {
            code: Some("context_length_exceeded"),
            ..ApiError::invalid(Some("messages"), format!("the prompt is {} tokens; the context holds {} (prompt and answer)", ids.len(), s.ctx))
        });
    }
    let permit = s.admitted.clone().try_acquire_owned().map_err(|_| ApiError::busy("the server is busy: every place in the queue is taken; retry later"))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let sent = s.jobs.lock().ok().and_then(|q| q.as_ref().map(|q| q.send(Job { ids, params: params.clone(), events: tx }).is_ok()));
    if sent != Some(true) {
        return Err(ApiError::busy("the server is shutting down"));
    }
    let n = s.counter.fetch_add(1, Ordering::Relaxed);
    let prefix = if endpoint == Endpoint::Chat { "chatcmpl" } else { "cmpl" };
    let env = Envelope { endpoint, id: format!("{prefix}-{n}"), created: now(), model: common.model.clone().unwrap_or_else(|| s.model.clone()) };
    if params.stream {
        Ok(stream(env, params, rx, permit).into_response())
    } else {
        whole(env, rx, permit).await
    }
}

async fn whole(env: Envelope, mut rx: mpsc::UnboundedReceiver<Event>, _permit: OwnedSemaphorePermit) -> Result<Response, ApiError> {
    let mut text = String::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Text(t) => text.push_str(&t),
            Event::Done(finish, usage) => return Ok(Json(env.response(&text, finish.reason(), usage)).into_response()),
            Event::Error(e) => return Err(ApiError::internal(e)),
        }
    }
    Err(ApiError::internal("the model thread stopped"))
}

/// Where a stream is: sending events, then the closing `[DONE]`.
enum Phase {
    Open { rx: mpsc::UnboundedReceiver<Event>, first: bool },
    Done,
    Closed,
}

fn stream(env: Envelope, params: GenParams, rx: mpsc::UnboundedReceiver<Event>, permit: OwnedSemaphorePermit) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let data = |v: Value| SseEvent::default().data(v.to_string());
    // The permit lives in the stream's state: it is released when the
    // stream ends or the client goes away and the stream is dropped.
    let s = futures_util::stream::unfold((Phase::Open { rx, first: true }, permit), move |(phase, permit)| {
        let env = env.clone();
        async move {
            match phase {
                Phase::Open { mut rx, first } => {
                    let ev = rx.recv().await;
                    let (out, next): (Vec<SseEvent>, Phase) = match ev {
                        Some(Event::Text(t)) => (vec![data(env.chunk(Some(&t), first, None))], Phase::Open { rx, first: false }),
                        Some(Event::Done(finish, usage)) => {
                            let mut out = vec![data(env.chunk(first.then_some(""), first, Some(finish.reason())))];
                            if params.include_usage {
                                out.push(data(env.usage_chunk(usage)));
                            }
                            (out, Phase::Done)
                        }
                        Some(Event::Error(e)) => (vec![data(ApiError::internal(e).body())], Phase::Done),
                        None => (vec![data(ApiError::internal("the model thread stopped").body())], Phase::Done),
                    };
                    Some((futures_util::stream::iter(out.into_iter().map(Ok).collect::<Vec<Result<SseEvent, Infallible>>>()), (next, permit)))
                }
                Phase::Done => Some((futures_util::stream::iter(vec![Ok(SseEvent::default().data("[DONE]"))]), (Phase::Closed, permit))),
                Phase::Closed => None,
            }
        }
    });
    Sse::new(futures_util::StreamExt::flatten(s))
}

