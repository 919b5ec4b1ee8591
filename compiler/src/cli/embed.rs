//! `flexc embed`: L2-normalised sentence embeddings from an encoder model
//! (all-MiniLM-L6-v2), and their cosine similarities.

use super::error::{CliError, CliResult};
use super::import::import_model;
use super::models::{resolve, Format};
use crate::frontend::bert::{cosine, SentenceEncoder};
use crate::frontend::decoder::ImportOptions;
use crate::frontend::model_file;
use clap::Args;

/// Arguments of `flexc embed`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc embed minilm-l6 -p \"The cat sits on the mat.\" -p \"A kitten is resting on a rug.\"\n  flexc embed ~/.cache/flexc/models/minilm-l6 -p \"hello\" --format json | jq '.embeddings[0].embedding | length'\n\nPipeline: WordPiece → BERT → mean pooling → L2 normalisation (reference interpreter).")]
pub struct EmbedArgs {
    /// A sentence-encoder model: a .safetensors file with config.json and
    /// tokenizer.json beside it, its folder, or a known name (minilm-l6).
    pub model: String,
    /// A text to embed (repeat for several; two or more also print cosines).
    #[arg(short, long = "prompt", required = true)]
    pub prompts: Vec<String>,
    /// Output format (json: full vectors).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Runs `flexc embed`.
pub fn run(args: EmbedArgs) -> CliResult {
    let path = resolve(&args.model)?;
    let path = model_file(&std::fs::canonicalize(&path).map_err(|e| CliError::input(format!("{}: {e}", path.display())))?).map_err(|e| CliError::input(e.to_string()))?;
    let module = import_model(&path, &ImportOptions::default())?;
    let enc = SentenceEncoder::new(module, &path).map_err(CliError::input)?;
    let out = enc.embed(&args.prompts).map_err(|e| CliError::input(format!("error: {e}")))?;
    let cos: Vec<Vec<f64>> = out.iter().map(|(_, a)| out.iter().map(|(_, b)| cosine(a, b)).collect()).collect();
    let norm = |e: &[f32]| e.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    match args.format {
        Format::Json => {
            let embs: Vec<_> = args
                .prompts
                .iter()
                .zip(&out)
                .map(|(t, (ids, e))| serde_json::json!({ "text": t, "tokens": ids, "norm": norm(e), "embedding": e }))
                .collect();
            let mut doc = serde_json::json!({ "model": path.display().to_string(), "dim": out.first().map_or(0, |o| o.1.len()), "embeddings": embs });
            if out.len() > 1 {
                doc["cosine"] = serde_json::json!(cos);
            }
            println!("{doc}");
        }
        Format::Text => {
            for (i, (t, (ids, e))) in args.prompts.iter().zip(&out).enumerate() {
                let first: Vec<String> = e.iter().take(8).map(|x| format!("{x:+.5}")).collect();
                println!("[{i}] {t:?}: {} tokens, dim {}, norm {:.6}", ids.len(), e.len(), norm(e));
                println!("    [{} ...]", first.join(" "));
            }
            if out.len() > 1 {
                println!("\ncosine similarity:");
                for (i, row) in cos.iter().enumerate() {
                    for (j, c) in row.iter().enumerate().skip(i + 1) {
                        println!("  [{i}] · [{j}] = {c:+.6}");
                    }
                }
            }
        }
    }
    Ok(())
}
