//! `flexc pull`, `flexc models`, `flexc inspect`: getting and looking at models.

use super::error::{CliError, CliResult};
use flexc_fetch::{self as fetch, ArtifactKind, PullOptions};
use crate::frontend::gguf::GgufFile;
use crate::frontend::safetensors::SafetensorsFile;
use crate::frontend::{model_file, Checkpoint};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// The default model: small, real, and what the README's main command runs.
pub const DEFAULT_MODEL: &str = "smollm2-135m";

/// Arguments of `flexc pull`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc pull smollm2-135m\n  flexc pull gemma3-270m pride-and-prejudice --verify\n\nFiles go to $FLEXC_CACHE_DIR, else $XDG_CACHE_HOME/flexc, else ~/.cache/flexc.\nSee `flexc models` for the names.")]
pub struct PullArgs {
    /// Known model or text names.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Re-hash cached files and fetch again if one is corrupt.
    #[arg(long)]
    pub verify: bool,
    /// No progress bars.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Arguments of `flexc models`.
#[derive(Args, Debug)]
pub struct ModelsArgs {}

/// Output format.
#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// Human-readable text.
    Text,
    /// One JSON object.
    Json,
}

/// Arguments of `flexc inspect`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc inspect smollm2-135m\n  flexc inspect model.gguf --format json | jq '.tensors | length'")]
pub struct InspectArgs {
    /// A model file, compiled `.flexc`, or a known model name (pulled if needed).
    pub model: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn fetch_error(e: fetch::FetchError) -> CliError {
    CliError::input(format!("error: {e}"))
}

/// Resolves a model argument (path or known name, pulling if needed).
pub fn resolve(arg: &str) -> CliResult<PathBuf> {
    fetch::resolve_model(arg, &PullOptions::default()).map_err(fetch_error)
}

/// Resolves a text argument (path or known text name, pulling if needed).
pub fn resolve_text(arg: &str) -> CliResult<PathBuf> {
    if std::path::Path::new(arg).exists() {
        return Ok(PathBuf::from(arg));
    }
    match fetch::find(arg) {
        Some(a) if a.kind == ArtifactKind::Text => fetch::pull(a, &PullOptions::default()).map_err(fetch_error),
        _ => {
            let texts: Vec<&str> = fetch::known().iter().filter(|a| a.kind == ArtifactKind::Text).map(|a| a.name).collect();
            Err(CliError::input(format!("error: {arg}: no such file, and not a known text (known: {})", texts.join(", "))))
        }
    }
}

/// Runs `flexc pull`.
pub fn pull(args: PullArgs) -> CliResult {
    let opts = PullOptions { verify: args.verify, progress: !args.quiet, quiet: args.quiet };
    for name in &args.names {
        let a = fetch::find(name).ok_or_else(|| {
            let names: Vec<&str> = fetch::known().iter().map(|a| a.name).collect();
            CliError::usage(format!("error: unknown name '{name}' (known: {})", names.join(", ")))
        })?;
        let path = fetch::pull(a, &opts).map_err(fetch_error)?;
        println!("{}", path.display());
    }
    Ok(())
}

/// Runs `flexc models`.
pub fn models(_: ModelsArgs) -> CliResult {
    println!("{:<22} {:<6} {:>10}  {:<7} description", "name", "kind", "size", "cached");
    for a in fetch::known() {
        let kind = if a.kind == ArtifactKind::Model { "model" } else { "text" };
        let cached = if fetch::cached_path(a).is_some() { "yes" } else { "no" };
        println!("{:<22} {kind:<6} {:>8.1} MB  {cached:<7} {}", a.name, a.size_bytes as f64 / 1e6, a.description);
    }
    Ok(())
}

/// Runs `flexc inspect`.
pub fn inspect(args: InspectArgs) -> CliResult {
    let path = resolve(&args.model)?;
    let path = model_file(&path).map_err(|e| CliError::input(e.to_string()))?;
    if crate::artifact::is_artifact(&path) {
        let a = crate::artifact::open(&path).map_err(|e| CliError::input(e.to_string()))?;
        return inspect_artifact(&a, args.format);
    }
    match Checkpoint::open(&path).map_err(|e| CliError::input(e.to_string()))? {
        Checkpoint::Gguf(g) => inspect_gguf(&g, &path, args.format),
        Checkpoint::Safetensors(st) => inspect_safetensors(&st, &path, args.format),
        Checkpoint::Onnx(o) => inspect_onnx(&o, args.format),
    }
}

fn inspect_onnx(o: &crate::frontend::onnx::OnnxFile, format: Format) -> CliResult {
    let m = &o.model;
    let g = m.graph.as_ref().ok_or_else(|| CliError::input(format!("{}: the model has no graph", o.path.display())))?;
    let opsets: Vec<(String, i64)> = m.opset_import.iter().map(|x| (x.domain.clone().unwrap_or_default(), x.version.unwrap_or(0))).collect();
    let mut ops: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for n in &g.node {
        let d = n.domain.clone().unwrap_or_default();
        *ops.entry(if d.is_empty() { n.op_type.clone().unwrap_or_default() } else { format!("{d}.{}", n.op_type.clone().unwrap_or_default()) }).or_default() += 1;
    }
    let names = |v: &[crate::frontend::onnx::proto::ValueInfoProto]| v.iter().map(|x| x.name.clone().unwrap_or_default()).collect::<Vec<_>>();
    let producer = format!("{} {}", m.producer_name.clone().unwrap_or_default(), m.producer_version.clone().unwrap_or_default());
    match format {
        Format::Json => println!(
            "{}",
            serde_json::json!({ "file": o.path.display().to_string(), "format": "onnx", "ir_version": m.ir_version, "producer": producer.trim(), "opsets": opsets, "inputs": names(&g.input), "outputs": names(&g.output), "initializers": g.initializer.len(), "nodes": g.node.len(), "ops": ops })
        ),
        Format::Text => {
            println!("{}: onnx, IR version {}, producer {}", o.path.display(), m.ir_version.unwrap_or(0), producer.trim());
            let os: Vec<String> = opsets.iter().map(|(d, v)| format!("{}:{v}", if d.is_empty() { "ai.onnx" } else { d })).collect();
            println!("  opsets: {}", os.join(", "));
            println!("  inputs: {}", names(&g.input).join(", "));
            println!("  outputs: {}", names(&g.output).join(", "));
            println!("  {} initializers, {} nodes", g.initializer.len(), g.node.len());
            for (op, n) in &ops {
                println!("  {op:<40} {n}");
            }
        }
    }
    Ok(())
}

fn inspect_safetensors(st: &SafetensorsFile, path: &std::path::Path, format: Format) -> CliResult {
    let config = std::fs::read_to_string(crate::frontend::hf::config_path(path)).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    match format {
        Format::Json => {
            let meta: serde_json::Map<String, serde_json::Value> = st.metadata.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
            let tensors: Vec<_> = st.tensors.iter().map(|t| serde_json::json!({ "name": t.name, "type": t.dtype.name(), "shape": t.shape, "bytes": t.n_bytes, "offset": t.offset })).collect();
            println!("{}", serde_json::json!({ "file": path.display().to_string(), "format": "safetensors", "header_bytes": st.data_offset - 8, "metadata": meta, "config": config, "tensors": tensors }));
        }
        Format::Text => {
            println!("{}: safetensors, header {} bytes, {} tensors", path.display(), st.data_offset - 8, st.tensors.len());
            for (k, v) in &st.metadata {
                println!("  {k:<44} {v:?}");
            }
            if let Some(serde_json::Value::Object(c)) = &config {
                println!("\n  config.json:");
                for (k, v) in c {
                    println!("  {k:<44} {v}");
                }
            }
            println!("\n  {:<52} {:<6} {:<16} {:>12}", "tensor", "type", "shape", "bytes");
            let mut counts: Vec<(&str, usize)> = Vec::new();
            for t in &st.tensors {
                let shape: Vec<String> = t.shape.iter().map(ToString::to_string).collect();
                println!("  {:<52} {:<6} {:<16} {:>12}", t.name, t.dtype.name(), format!("[{}]", shape.join(", ")), t.n_bytes);
                match counts.iter_mut().find(|(n, _)| *n == t.dtype.name()) {
                    Some(c) => c.1 += 1,
                    None => counts.push((t.dtype.name(), 1)),
                }
            }
            let counts: Vec<String> = counts.iter().map(|(t, n)| format!("{t} {n}")).collect();
            println!("\n  types: {}", counts.join(", "));
        }
    }
    Ok(())
}

/// GGUF metadata as JSON (long arrays summarised by length and type).
fn meta_json(g: &GgufFile) -> serde_json::Map<String, serde_json::Value> {
    g.metadata
        .iter()
        .map(|(k, v)| {
            let shown = match v.as_array() {
                Some(a) if a.len() > 16 => serde_json::json!({ "array_len": a.len(), "type": v.type_description() }),
                _ => serde_json::Value::String(v.to_string()),
            };
            (k.clone(), shown)
        })
        .collect()
}

/// GGUF metadata as text lines (long arrays summarised by length and type).
fn print_meta_text(g: &GgufFile) {
    for (k, v) in &g.metadata {
        let shown = match v.as_array() {
            Some(a) if a.len() > 8 => format!("[{} x {}]", a.len(), v.type_description()),
            _ => v.to_string(),
        };
        println!("  {k:<44} {shown}");
    }
}

fn inspect_artifact(a: &crate::artifact::Artifact, format: Format) -> CliResult {
    let sections: Vec<_> = a.sections.iter().map(|s| serde_json::json!({ "tag": s.tag, "offset": s.offset, "bytes": s.len, "crc32": format!("{:08x}", s.crc) })).collect();
    let weights: Vec<(String, String, u64)> = a.module.weights.iter().map(|(_, w)| (w.name.clone(), w.ty.to_string(), w.ty.storage_bytes().unwrap_or(0))).collect();
    match format {
        Format::Json => {
            let tensors: Vec<_> = weights.iter().map(|(n, t, b)| serde_json::json!({ "name": n, "type": t, "bytes": b })).collect();
            println!("{}", serde_json::json!({ "file": a.path.display().to_string(), "format": "flexc", "version": a.version, "sections": sections, "provenance": a.provenance, "metadata": meta_json(&a.meta), "tensors": tensors }));
        }
        Format::Text => {
            let p = &a.provenance;
            println!("{}: flexc artifact v{} for {}, {} weights", a.path.display(), a.version, p.target, weights.len());
            for s in &a.sections {
                println!("  section {:<8} at {:>10}  {:>12} bytes  crc32 {:08x}", s.tag, s.offset, s.len, s.crc);
            }
            println!("\n  compiled by flexc {} from {} ({} bytes, sha256 {})", p.flexc_version, p.source.path, p.source.bytes, p.source.sha256);
            println!("  pipeline    {}", p.pipeline);
            if let Some(c) = &p.calibration {
                println!("  calibration {} (sha256 {}){}", c.path, c.sha256, p.calibration_source.as_deref().map(|s| format!(": {s}")).unwrap_or_default());
            }
            println!("  cost table  {}\n  ctx         {}", p.cost_table, p.ctx);
            for r in &p.remarks {
                println!("  remark      {r}");
            }
            println!();
            print_meta_text(&a.meta);
            println!("\n  {:<36} {:<40} {:>12}", "weight", "type", "bytes");
            for (n, t, b) in &weights {
                println!("  {n:<36} {t:<40} {b:>12}");
            }
        }
    }
    Ok(())
}

fn inspect_gguf(g: &GgufFile, path: &std::path::Path, format: Format) -> CliResult {
    match format {
        Format::Json => {
            let meta = meta_json(g);
            let tensors: Vec<_> = g
                .tensors
                .iter()
                .map(|t| serde_json::json!({ "name": t.name, "type": t.ggml_type.name(), "shape": t.dims.iter().rev().collect::<Vec<_>>(), "bytes": t.n_bytes, "offset": t.offset }))
                .collect();
            println!("{}", serde_json::json!({ "file": path.display().to_string(), "version": g.version, "metadata": meta, "tensors": tensors }));
        }
        Format::Text => {
            println!("{}: GGUF v{}, {} metadata keys, {} tensors", path.display(), g.version, g.metadata.len(), g.tensors.len());
            print_meta_text(g);
            println!("\n  {:<36} {:<6} {:<16} {:>12}", "tensor", "type", "shape", "bytes");
            for t in &g.tensors {
                let shape: Vec<String> = t.dims.iter().rev().map(ToString::to_string).collect();
                println!("  {:<36} {:<6} {:<16} {:>12}", t.name, t.ggml_type.name(), format!("[{}]", shape.join(", ")), t.n_bytes);
            }
            let counts: Vec<String> = g.type_counts().iter().map(|(t, n)| format!("{} {n}", t.name())).collect();
            println!("\n  types: {}", counts.join(", "));
        }
    }
    Ok(())
}
