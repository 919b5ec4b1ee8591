//! `flexc chat`: an interactive conversation. Each turn renders the whole
//! conversation with the chat template, and the session runs only the
//! tokens its KV cache does not already hold (the new user message and the
//! turn markers), so history is never prefilled again. Ctrl-C stops the
//! current answer, Ctrl-D (or end of input) ends the chat.

use super::error::{CliError, CliResult};
use super::gen_args::{ModelArgs, SamplingArgs};
use super::run::{interrupt_flag, print_stats};
use crate::chat::Message;
use crate::generate::sampler::Sampler;
use crate::generate::{prompt_ids, Decoding, Finish};
use clap::Args;
use rustyline::error::ReadlineError;
use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Arguments of `flexc chat`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc chat\n  flexc chat smollm2-135m --system \"Answer in one sentence.\" --temp 0.7\n  flexc chat gemma3-270m --chat-template gemma\n  echo \"What is 2+2?\" | flexc chat -n 32\n\nType a message and Enter. Ctrl-C stops the answer being written; Ctrl-D ends the chat.\nAnswers go to stdout; the prompt marker and --stats go to stderr.")]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The system message opening the conversation.
    #[arg(long)]
    pub system: Option<String>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Print prefill and decode timings after each answer (stderr).
    #[arg(long)]
    pub stats: bool,
}

/// Runs `flexc chat`.
pub fn run(args: ChatArgs) -> CliResult {
    let cfg = args.sampling.config()?;
    let limit = args.sampling.limit()?;
    let p = args.model.prepare()?;
    let template = args.model.template(&p)?;
    let t0 = Instant::now();
    let mut session = args.model.session(&p)?;
    let compile = p.passes + t0.elapsed();
    let stop = interrupt_flag();
    let mut messages: Vec<Message> = args.system.iter().map(|s| Message::new("system", s)).collect();
    let interactive = std::io::stdin().is_terminal();
    let mut editor = rustyline::DefaultEditor::new().map_err(|e| CliError::input(format!("error: cannot read the terminal: {e}")))?;
    let mut seed = cfg.seed;
    loop {
        let line = match editor.readline(if interactive { "> " } else { "" }) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(CliError::input(format!("error: cannot read input: {e}"))),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        messages.push(Message::new("user", line));
        let prompt = template.render(&messages, true).map_err(|e| CliError::input(format!("error: {e}")))?;
        let ids = prompt_ids(&p.tok, &prompt);
        stop.store(false, Ordering::SeqCst);
        // Each answer gets its own seed so repeated questions can differ when sampling.
        let mut dec = Decoding::new(Sampler::new(crate::generate::sampler::SamplerConfig { seed, ..cfg.clone() }), args.sampling.stop.clone(), limit);
        seed = seed.wrapping_add(1);
        let mut answer = String::new();
        let mut stdout = std::io::stdout().lock();
        let stats = session
            .generate(&p.tok, &ids, &mut dec, &mut |piece| {
                answer.push_str(piece);
                let _ = stdout.write_all(piece.as_bytes()).and_then(|_| stdout.flush());
            }, &|| stop.load(Ordering::SeqCst))
            .map_err(|e| CliError::input(format!("error: {e} (the conversation no longer fits --ctx {})", args.model.ctx)))?;
        let _ = writeln!(stdout).and_then(|_| stdout.flush());
        if dec.finish == Some(Finish::Cancelled) {
            eprintln!("[stopped]");
        }
        if args.stats {
            print_stats(&stats, p.load, compile);
        }
        messages.push(Message::new("assistant", &answer));
    }
    Ok(())
}
