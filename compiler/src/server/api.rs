//! The OpenAI wire format: request bodies (with llama.cpp's extra sampling
//! fields), their validation into a [`GenParams`], response and stream-chunk
//! bodies, and OpenAI-shaped errors (`{"error": {message, type, param, code}}`
//! with the matching HTTP status).

use crate::chat::Message;
use crate::generate::sampler::SamplerConfig;
use serde::Deserialize;
use serde_json::{json, Value};

/// An error as OpenAI reports it.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `invalid_request_error`, `server_error`, ...
    pub kind: &'static str,
    /// What went wrong.
    pub message: String,
    /// The request field at fault.
    pub param: Option<&'static str>,
    /// A machine-readable code.
    pub code: Option<&'static str>,
}

impl ApiError {
    /// A 400 for a bad field.
    pub fn invalid(param: Option<&'static str>, message: impl Into<String>) -> ApiError {
        ApiError { status: 400, kind: "invalid_request_error", message: message.into(), param, code: None }
    }

    /// A 503: every slot and queue place is taken, or the server is stopping.
    pub fn busy(message: impl Into<String>) -> ApiError {
        ApiError { status: 503, kind: "server_error", message: message.into(), param: None, code: Some("server_busy") }
    }

    /// A 500.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError { status: 500, kind: "server_error", message: message.into(), param: None, code: None }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({ "error": { "message": self.message, "type": self.kind, "param": self.param, "code": self.code } })
    }
}

/// `stop`: one string or a list.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Stop {
    /// One stop string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// A prompt: one string or a list holding one.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Prompt {
    /// The text.
    One(String),
    /// A batch of texts (only one is supported).
    Many(Vec<String>),
}

/// Fields shared by both completion endpoints.
#[derive(Deserialize, Debug, Default)]
pub struct Common {
    /// The model name (any name is accepted: the server has one model).
    pub model: Option<String>,
    /// Token limit.
    pub max_tokens: Option<i64>,
    /// Token limit (the newer name).
    pub max_completion_tokens: Option<i64>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus mass.
    pub top_p: Option<f32>,
    /// llama.cpp: top-k.
    pub top_k: Option<i64>,
    /// llama.cpp: min-p.
    pub min_p: Option<f32>,
    /// llama.cpp: repetition penalty.
    pub repeat_penalty: Option<f32>,
    /// Presence penalty.
    pub presence_penalty: Option<f32>,
    /// Frequency penalty.
    pub frequency_penalty: Option<f32>,
    /// Stop strings.
    pub stop: Option<Stop>,
    /// Sampling seed.
    pub seed: Option<i64>,
    /// Choices per request (only 1).
    pub n: Option<i64>,
    /// Server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// `{"include_usage": true}` adds a usage chunk to a stream.
    pub stream_options: Option<Value>,
}

/// `POST /v1/chat/completions`.
#[derive(Deserialize, Debug)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// The rest.
    #[serde(flatten)]
    pub common: Common,
}

/// A message as clients send it: content may be a string or text parts.
#[derive(Deserialize, Debug)]
pub struct ChatMessage {
    /// Role.
    pub role: String,
    /// A string, a list of `{"type": "text", "text": ...}` parts, or null.
    pub content: Option<Value>,
}

/// `POST /v1/completions`.
#[derive(Deserialize, Debug)]
pub struct CompletionRequest {
    /// The prompt.
    pub prompt: Prompt,
    /// The rest.
    #[serde(flatten)]
    pub common: Common,
}

/// What the engine needs from a request.
#[derive(Debug, Clone)]
pub struct GenParams {
    /// Sampling.
    pub sampler: SamplerConfig,
    /// Token limit (`None`: until EOG or the context ends).
    pub limit: Option<usize>,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Stream as server-sent events.
    pub stream: bool,
    /// Add a usage chunk at the end of a stream.
    pub include_usage: bool,
}

impl Common {
    /// Validates the fields over the server's defaults.
    pub fn params(&self, defaults: &SamplerConfig, default_limit: Option<usize>) -> Result<GenParams, ApiError> {
        if let Some(n) = self.n
            && n != 1
        {
            return Err(ApiError::invalid(Some("n"), format!("n must be 1 (one choice per request), got {n}")));
        }
        let limit = match self.max_completion_tokens.or(self.max_tokens) {
            None => default_limit,
            Some(-1) => None,
            Some(n) if n >= 0 => Some(n as usize),
            Some(n) => return Err(ApiError::invalid(Some("max_tokens"), format!("max_tokens must be a non-negative integer or -1, got {n}"))),
        };
        let top_k = match self.top_k {
            None => defaults.top_k,
            Some(k) if k >= 0 => k as usize,
            Some(k) => return Err(ApiError::invalid(Some("top_k"), format!("top_k must be a non-negative integer, got {k}"))),
        };
        let seed = match self.seed {
            None => defaults.seed,
            Some(s) => s as u64,
        };
        let sampler = SamplerConfig {
            temperature: self.temperature.unwrap_or(defaults.temperature),
            top_k,
            top_p: self.top_p.unwrap_or(defaults.top_p),
            min_p: self.min_p.unwrap_or(defaults.min_p),
            repeat_penalty: self.repeat_penalty.unwrap_or(defaults.repeat_penalty),
            repeat_last_n: defaults.repeat_last_n,
            presence_penalty: self.presence_penalty.unwrap_or(defaults.presence_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(defaults.frequency_penalty),
            seed,
        };
        sampler.validate().map_err(|e| {
            let param = ["temperature", "top_p", "min_p", "repeat_penalty", "presence_penalty", "frequency_penalty"].into_iter().find(|p| e.starts_with(p));
            ApiError::invalid(param, e)
        })?;
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) if v.len() <= 4 => v.clone(),
            Some(Stop::Many(v)) => return Err(ApiError::invalid(Some("stop"), format!("stop takes at most 4 strings, got {}", v.len()))),
        };
        let include_usage = self.stream_options.as_ref().and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
        Ok(GenParams { sampler, limit, stop, stream: self.stream, include_usage })
    }
}

impl ChatRequest {
    /// The messages as text, or an error naming the bad one.
    pub fn messages(&self) -> Result<Vec<Message>, ApiError> {
        if self.messages.is_empty() {
            return Err(ApiError::invalid(Some("messages"), "messages must hold at least one message"));
        }
        self.messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                if !matches!(m.role.as_str(), "system" | "developer" | "user" | "assistant") {
                    return Err(ApiError::invalid(Some("messages"), format!("messages[{i}].role must be system, user or assistant, got '{}'", m.role)));
                }
                let role = if m.role == "developer" { "system" } else { m.role.as_str() };
                let content = match &m.content {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => parts
                        .iter()
                        .map(|p| match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                            (Some("text"), Some(t)) => Ok(t),
                            _ => Err(ApiError::invalid(Some("messages"), format!("messages[{i}].content: only text parts are supported"))),
                        })
                        .collect::<Result<Vec<_>, _>>()?
                        .concat(),
                    Some(_) => return Err(ApiError::invalid(Some("messages"), format!("messages[{i}].content must be a string or a list of text parts"))),
                };
                Ok(Message::new(role, &content))
            })
            .collect()
    }
}

impl CompletionRequest {
    /// The prompt text.
    pub fn text(&self) -> Result<&str, ApiError> {
        match &self.prompt {
            Prompt::One(s) => Ok(s),
            Prompt::Many(v) if v.len() == 1 => Ok(&v[0]),
            Prompt::Many(v) => Err(ApiError::invalid(Some("prompt"), format!("prompt must be one string (batches are not supported), got {} strings", v.len()))),
        }
    }
}

/// Token counts of a finished request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt: usize,
    /// Generated tokens.
    pub completion: usize,
}

impl Usage {
    /// The `usage` object.
    pub fn json(self) -> Value {
        json!({ "prompt_tokens": self.prompt, "completion_tokens": self.completion, "total_tokens": self.prompt + self.completion })
    }
}

/// Which endpoint a response belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completion,
}

/// The identity of one response: endpoint, id, creation time, model name.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Endpoint.
    pub endpoint: Endpoint,
    /// `chatcmpl-N` / `cmpl-N`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// Model name.
    pub model: String,
}

impl Envelope {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.endpoint, chunk) {
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
            (Endpoint::Completion, _) => "text_completion",
        }
    }

    /// The whole (non-streamed) response.
    pub fn response(&self, text: &str, finish: &str, usage: Usage) -> Value {
        let choice = match self.endpoint {
            Endpoint::Chat => json!({ "index": 0, "message": { "role": "assistant", "content": text }, "logprobs": null, "finish_reason": finish }),
            Endpoint::Completion => json!({ "index": 0, "text": text, "logprobs": null, "finish_reason": finish }),
        };
        json!({ "id": self.id, "object": self.object(false), "created": self.created, "model": self.model, "choices": [choice], "usage": usage.json() })
    }

    /// A stream chunk: `text` (the chat stream's first chunk also names the
    /// role), and `finish` on the last.
    pub fn chunk(&self, text: Option<&str>, first: bool, finish: Option<&str>) -> Value {
        let choice = match self.endpoint {
            Endpoint::Chat => {
                let mut delta = serde_json::Map::new();
                if first {
                    delta.insert("role".into(), json!("assistant"));
                }
                if let Some(t) = text {
                    delta.insert("content".into(), json!(t));
                }
                json!({ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish })
            }
            Endpoint::Completion => json!({ "index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish }),
        };
        json!({ "id": self.id, "object": self.object(true), "created": self.created, "model": self.model, "choices": [choice] })
    }

    /// The usage chunk closing a stream with `include_usage`.
    pub fn usage_chunk(&self, usage: Usage) -> Value {
        json!({ "id": self.id, "object": self.object(true), "created": self.created, "model": self.model, "choices": [], "usage": usage.json() })
    }
}
