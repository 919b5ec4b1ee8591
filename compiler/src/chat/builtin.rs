//! Built-in chat templates for models whose file carries none
//! (`--chat-template NAME`), written in the same Jinja as model templates.

/// ChatML (`<|im_start|>role ... <|im_end|>`), as SmolLM2, Qwen and others use.
const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endfor %}\
{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Gemma's turns (the instruction-tuned Gemma 3 template, text only): the
/// system prompt is prefixed to the first user turn, `assistant` is `model`,
/// contents are trimmed, user and model must alternate.
const GEMMA: &str = "{{ bos_token }}\
{% if messages[0]['role'] == 'system' %}{% set first_user_prefix = messages[0]['content'] + '\n\n' %}{% set loop_messages = messages[1:] %}\
{% else %}{% set first_user_prefix = '' %}{% set loop_messages = messages %}{% endif %}\
{% for message in loop_messages %}\
{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}\
{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}\
{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') + message['content'] | trim + '<end_of_turn>\n' }}\
{% endfor %}\
{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}";

/// The built-in templates by name.
pub const BUILTIN: &[(&str, &str)] = &[("chatml", CHATML), ("gemma", GEMMA)];

/// The names, comma-separated.
pub fn names() -> String {
    BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}
