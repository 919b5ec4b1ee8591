//! Chat templates on the real models against prompts written out by hand
//! from the templates: SmolLM2-Instruct's own (ChatML with a default system
//! prompt), Gemma 3's absence of one (a clear error) and the built-in
//! `gemma` template supplied for it; the rendered prompts tokenize to the
//! models' control tokens with exactly one BOS.

use flexc::chat::{ChatTemplate, Message};
use flexc::frontend::gguf::GgufFile;
use flexc::generate::prompt_ids;
use flexc::tokenizer::Tokenizer;
use flexc_testsuite::cached;
use std::path::PathBuf;

const SMOLLM: &str = "models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf";
const GEMMA: &str = "models/gemma3-270m/gemma-3-270m-q4_k_m.gguf";

fn load(rel: &str) -> Option<(PathBuf, Tokenizer)> {
    let path = cached(rel)?;
    let tok = Tokenizer::from_gguf(&GgufFile::open(&path).expect("open")).expect("tokenizer");
    Some((path, tok))
}

fn conversation() -> Vec<Message> {
    vec![Message::new("system", "Be brief."), Message::new("user", "Hi"), Message::new("assistant", "Hello!"), Message::new("user", "Name a color.")]
}

#[test]
fn smollm2_renders_its_own_template() {
    let Some((path, tok)) = load(SMOLLM) else { return };
    let t = ChatTemplate::for_model(&path, None, &tok).expect("SmolLM2-Instruct carries a template");
    // No system message: the template adds SmolLM's default one.
    let one = t.render(&[Message::new("user", "What is the capital of France?")], true).unwrap();
    assert_eq!(one, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n");
    let many = t.render(&conversation(), true).unwrap();
    assert_eq!(many, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nName a color.<|im_end|>\n<|im_start|>assistant\n");
    let no_gen = t.render(&conversation()[..2], false).unwrap();
    assert_eq!(no_gen, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
    // <|im_start|> is 1 and <|im_end|> 2; SmolLM2 adds no BOS.
    let ids = prompt_ids(&tok, &many);
    assert_eq!(ids.iter().filter(|&&i| i == 1).count(), 5);
    assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 4);
    assert_eq!(ids[0], 1);
    // The built-in chatml template is the same format without the default system prompt.
    let chatml = ChatTemplate::for_model(&path, Some("chatml"), &tok).unwrap();
    assert_eq!(chatml.render(&conversation(), true).unwrap(), many);
}

#[test]
fn gemma3_has_no_template_and_takes_the_builtin() {
    let Some((path, tok)) = load(GEMMA) else { return };
    let e = ChatTemplate::for_model(&path, None, &tok).err().expect("the base Gemma 3 GGUF has no template");
    assert!(e.contains("gemma-3-270m-q4_k_m.gguf: the model has no chat template (tokenizer.chat_template); give one with --chat-template chatml|gemma|FILE"), "{e}");
    let t = ChatTemplate::for_model(&path, Some("gemma"), &tok).unwrap();
    let text = t.render(&conversation(), true).unwrap();
    assert_eq!(text, "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nName a color.<end_of_turn>\n<start_of_turn>model\n");
    let text1 = t.render(&[Message::new("user", "  Hi  ")], true).unwrap();
    assert_eq!(text1, "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
    // <bos> 2, <start_of_turn> 105, <end_of_turn> 106; BOS is not doubled.
    let ids = prompt_ids(&tok, &text);
    assert_eq!(&ids[..2], &[2, 105]);
    assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 1);
    // The system message joins the first user turn: 3 turns and the opener.
    assert_eq!(ids.iter().filter(|&&i| i == 105).count(), 4);
    assert_eq!(ids.iter().filter(|&&i| i == 106).count(), 3);
    assert!(tok.is_eog(106), "<end_of_turn> ends a reply");
    // Roles that do not alternate are the template's own error.
    let e = t.render(&[Message::new("user", "a"), Message::new("user", "b")], true).unwrap_err();
    assert!(e.contains("built-in chat template 'gemma'") && e.contains("Conversation roles must alternate"), "{e}");
}

#[test]
fn template_files_and_their_errors() {
    let Some((path, tok)) = load(SMOLLM) else { return };
    let dir = std::env::temp_dir().join(format!("flexc-chat-template-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("plain.jinja");
    std::fs::write(&good, "{% for m in messages %}{{ m.role | upper }}: {{ m.content.strip() }}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}").unwrap();
    let t = ChatTemplate::for_model(&path, Some(good.to_str().unwrap()), &tok).unwrap();
    assert_eq!(t.render(&[Message::new("user", " hi ")], true).unwrap(), "USER: hi\nASSISTANT:");
    let bad = dir.join("bad.jinja");
    std::fs::write(&bad, "line one\n{% for m in messages %}{{ m.role }\n").unwrap();
    let e = ChatTemplate::for_model(&path, Some(bad.to_str().unwrap()), &tok).err().unwrap();
    assert!(e.starts_with(&format!("{}:2: chat template error:", bad.display())), "{e}");
    let e = ChatTemplate::for_model(&path, Some("no-such-template"), &tok).err().unwrap();
    assert!(e.starts_with("--chat-template no-such-template: not a built-in template (chatml, gemma) and not a readable file"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
