//! Chat templates: a conversation (role, content messages) rendered to the
//! prompt text a model was tuned on, by the Jinja template the model file
//! carries (`tokenizer.chat_template`, Hugging Face's `apply_chat_template`
//! semantics: trim_blocks, lstrip_blocks, `bos_token`, `eos_token`,
//! `add_generation_prompt`, `raise_exception`) or by a built-in named one.
//! Rendering is minijinja with minijinja-contrib's Python string methods
//! (`.strip()`, `.startswith()`, ...), which Hugging Face templates call.

mod builtin;

use crate::frontend::gguf::GgufFile;
use crate::tokenizer::Tokenizer;
use minijinja::{Environment, Error, ErrorKind};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub use builtin::BUILTIN;

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message with `role` and `content`.
    pub fn new(role: &str, content: &str) -> Message {
        Message { role: role.to_string(), content: content.to_string() }
    }
}

/// A compiled chat template with the special tokens it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    origin: String,
    bos: String,
    eos: String,
}

/// The GGUF key holding the template.
pub const GGUF_KEY: &str = "tokenizer.chat_template";

impl ChatTemplate {
    /// Compiles template `source`; `origin` names it in errors (a file, a
    /// built-in name, or the model's metadata key).
    pub fn new(source: &str, origin: &str, tok: &Tokenizer) -> Result<ChatTemplate, String> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, Error> { Err(Error::new(ErrorKind::InvalidOperation, msg)) });
        env.add_template_owned("chat", source.to_string()).map_err(|e| describe(origin, &e))?;
        let text = |id: Option<u32>| id.and_then(|i| tok.token_text(i)).unwrap_or_default().to_string();
        Ok(ChatTemplate { env, origin: origin.to_string(), bos: text(tok.bos()), eos: text(tok.eos()) })
    }

    /// The template for a model: `spec` (a built-in name or a template file)
    /// when given, else the one in the model file.
    pub fn for_model(model: &Path, spec: Option<&str>, tok: &Tokenizer) -> Result<ChatTemplate, String> {
        if let Some(spec) = spec {
            if let Some((name, src)) = BUILTIN.iter().find(|(n, _)| *n == spec) {
                return ChatTemplate::new(src, &format!("built-in chat template '{name}'"), tok);
            }
            let src = std::fs::read_to_string(spec).map_err(|e| {
                format!("--chat-template {spec}: not a built-in template ({}) and not a readable file: {e}", builtin::names())
            })?;
            return ChatTemplate::new(&src, spec, tok);
        }
        let g = GgufFile::open(model).map_err(|e| e.to_string())?;
        match g.meta(GGUF_KEY).and_then(|v| v.as_str()) {
            Some(src) => ChatTemplate::new(src, &format!("{}: {GGUF_KEY}", model.display()), tok),
            None => Err(format!(
                "{}: the model has no chat template ({GGUF_KEY}); give one with --chat-template {}|FILE",
                model.display(),
                builtin::names().replace(", ", "|")
            )),
        }
    }

    /// Renders `messages`, ending with the assistant's turn opener when
    /// `add_generation_prompt`.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, String> {
        let t = self.env.get_template("chat").map_err(|e| describe(&self.origin, &e))?;
        t.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos,
            eos_token => &self.eos,
        })
        .map_err(|e| describe(&self.origin, &e))
    }
}

fn describe(origin: &str, e: &Error) -> String {
    let place = e.line().map(|l| format!(":{l}")).unwrap_or_default();
    let what = e.detail().map(str::to_string).unwrap_or_else(|| e.kind().to_string());
    format!("{origin}{place}: chat template error: {what}")
}

