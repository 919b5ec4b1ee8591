//! `flexc bench`: llama-bench-style model throughput (prefill and decode
//! tok/s, median of repeats) and per-kernel GEMV bandwidth.

use super::error::{CliError, CliResult};
use super::models::Format;
use super::run::prepare;
use crate::generate::cpu::CpuModel;
use crate::generate::LanguageModel;
use clap::{Args, Subcommand};
use flexc_backends::cpu::runtime::{default_threads, pooled_gemv, GemvArg, Pool};
use flexc_backends::cpu::cost_bench::{self, CostBenchOptions};
use flexc_backends::cpu::{ActivationQ8, GemvKernel, JitSession, WeightFormat};
use flexc_ir::quant::encode;
use flexc_ir::Encoding;
use std::time::Instant;

/// Arguments of `flexc bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Subcommand, Debug)]
enum BenchWhat {
    /// Prefill and decode throughput of a model on the cpu backend.
    Model(ModelArgs),
    /// GB/s of the JIT GEMV kernels on the real models' shapes.
    Kernels(KernelArgs),
}

/// Arguments of `flexc bench model`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc bench model smollm2-135m --threads 2\n  flexc bench model gemma3-270m --format json\n\nLike llama-bench: the prefill runs --prompt-tokens tokens in one call, the\ndecode runs --gen-tokens single-token calls from an empty cache.")]
struct ModelArgs {
    /// A model file or known name (default: smollm2-135m).
    model: Option<String>,
    /// Threads (default: available cores, at most 2).
    #[arg(long)]
    threads: Option<usize>,
    /// Prompt tokens of the prefill test.
    #[arg(long, default_value_t = 512)]
    prompt_tokens: usize,
    /// Tokens of the decode test.
    #[arg(long, default_value_t = 64)]
    gen_tokens: usize,
    /// Repeats (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Print time per step kind (gemv, attention, ...) after the runs.
    #[arg(long)]
    profile: bool,
    /// A pass pipeline (or preset name) applied to the imported model first,
    /// e.g. 'quantize{bits=2},select-gemm{target=cpu}'; `none` runs the
    /// imported graph as is.
    #[arg(long, default_value = "cpu")]
    pipeline: Option<String>,
    /// Calibration statistics (from `flexc calibrate`) for passes that need
    /// them (default: the cached default statistics when the pipeline needs some).
    #[arg(long, alias = "stats-file")]
    stats: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Arguments of `flexc bench kernels`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc bench kernels --threads 2\n  flexc bench kernels --write-costs costs.json\n\nWith --write-costs, measures the CPU cost table instead (about a minute): per\nGEMM primitive (lut, shiftadd, dense) and weight scheme, ns per weight at 1\nand 16 rows, the per-call overhead, LUT table precompute and measured tilings,\neach timed through the runtime path its kern op lowers to. select-gemm reads\nthat table when it is passed with --cost-table FILE or named by\nFLEXC_COST_TABLE; otherwise the table shipped with flexc is used.")]
struct KernelArgs {
    /// Threads (default: available cores, at most 2).
    #[arg(long)]
    threads: Option<usize>,
    /// Measure the CPU cost table on this machine and write it to FILE (JSON).
    #[arg(long, value_name = "FILE")]
    write_costs: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Runs `flexc bench`.
pub fn run(args: BenchArgs) -> CliResult {
    match args.what {
        BenchWhat::Model(a) => model(a),
        BenchWhat::Kernels(a) => kernels(a),
    }
}

fn threads_arg(t: Option<usize>) -> CliResult<usize> {
    match t {
        Some(0) => Err(CliError::usage("error: --threads must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(default_threads()),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn model(a: ModelArgs) -> CliResult {
    let threads = threads_arg(a.threads)?;
    if a.prompt_tokens == 0 || a.gen_tokens == 0 || a.repeats == 0 {
        return Err(CliError::usage("error: --prompt-tokens, --gen-tokens and --repeats must be at least 1"));
    }
    let ctx = a.prompt_tokens.max(a.gen_tokens);
    let p = prepare(a.model.as_deref(), ctx, a.pipeline.as_deref(), a.stats.as_deref())?;
    let t0 = Instant::now();
    let mut m = CpuModel::new(&p.module, threads).map_err(|e| CliError::input(format!("error: {e}")))?;
    let compile = t0.elapsed().as_secs_f64();
    let vocab = m.vocab() as u64;
    let err = |e: crate::generate::ModelError| CliError::input(format!("error: {e}"));
    // Deterministic pseudo-random tokens, like llama-bench's random prompt.
    let tokens: Vec<u32> = (0..a.prompt_tokens as u64).map(|i| ((i * 2_654_435_761 + 12_345) % vocab.max(1)) as u32).collect();
    // Warm-up (page in the weights, size the buffers).
    m.forward(&tokens, 0, false).map_err(err)?;
    if a.profile {
        m.runtime_mut().enable_profile();
    }
    let mut pp = Vec::new();
    let mut tg = Vec::new();
    for _ in 0..a.repeats {
        let t = Instant::now();
        m.forward(&tokens, 0, false).map_err(err)?;
        pp.push(a.prompt_tokens as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for i in 0..a.gen_tokens {
            m.forward(&tokens[i % tokens.len()..i % tokens.len() + 1], i, false).map_err(err)?;
        }
        tg.push(a.gen_tokens as f64 / t.elapsed().as_secs_f64());
    }
    let (pp, tg) = (median(pp), median(tg));
    let name = p.path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    match a.format {
        Format::Json => {
            let v = serde_json::json!({
                "model": name, "backend": "cpu", "threads": threads,
                "prefill_tokens": a.prompt_tokens, "decode_tokens": a.gen_tokens, "repeats": a.repeats,
                "prefill_tok_s": pp, "decode_tok_s": tg, "compile_s": compile, "pipeline": a.pipeline,
            });
            println!("{v}");
        }
        Format::Text => {
            let pipeline = a.pipeline.as_deref().unwrap_or("none");
            println!("model {name} | backend cpu | threads {threads} | pipeline {pipeline} | compile {compile:.3} s");
            println!("pp{:<5} {pp:>9.1} tok/s", a.prompt_tokens);
            println!("tg{:<5} {tg:>9.1} tok/s", a.gen_tokens);
        }
    }
    if a.profile {
        let prof = m.runtime_mut().profile().to_vec();
        let total: f64 = prof.iter().map(|p| p.1.as_secs_f64()).sum();
        for (n, d) in prof {
            eprintln!("{n:<18} {:>8.3} s  {:>5.1}%", d.as_secs_f64(), 100.0 * d.as_secs_f64() / total.max(1e-12));
        }
    }
    Ok(())
}

/// The GEMV shapes of the two real models (rows m = out, cols k = in).
const SHAPES: &[(&str, WeightFormat, usize, usize)] = &[
    ("smollm2 q/o", WeightFormat::Q4_1, 576, 576),
    ("smollm2 k/v", WeightFormat::Q4_1, 192, 576),
    ("smollm2 gate/up", WeightFormat::Q4_1, 1536, 576),
    ("smollm2 down", WeightFormat::Q4_1, 576, 1536),
    ("smollm2 head", WeightFormat::Q8_0, 49152, 576),
    ("gemma3 q", WeightFormat::Q5_0, 1024, 640),
    ("gemma3 gate/up", WeightFormat::Q5_0, 2048, 640),
    ("gemma3 down", WeightFormat::Q6_K, 640, 2048),
    ("gemma3 head", WeightFormat::Q8_0, 262144, 640),
    ("dense f32", WeightFormat::F32, 1536, 576),
];

fn bits(f: WeightFormat) -> f64 {
    f.block_bytes() as f64 * 8.0 / f.block_elems() as f64
}

fn kernels(a: KernelArgs) -> CliResult {
    let threads = threads_arg(a.threads)?;
    if let Some(path) = &a.write_costs {
        return write_costs(path, threads);
    }
    let ierr = |e: String| CliError::internal(format!("error: {e}"));
    let session = JitSession::host().map_err(|e| ierr(e.to_string()))?;
    let pool = Pool::new(threads).map_err(ierr)?;
    let mut rows = Vec::new();
    for &(label, fmt, m, k) in SHAPES {
        let kernel = GemvKernel::new(&session, fmt, m, k).map_err(|e| ierr(e.to_string()))?;
        // One encoded random row, repeated: real scales, quick to build.
        let row: Vec<f32> = (0..k).map(|i| (((i * 7919 + 17) % 1000) as f32 / 500.0 - 1.0) * 0.05).collect();
        let row_bytes = match fmt {
            WeightFormat::F32 => row.iter().flat_map(|v| v.to_le_bytes()).collect(),
            f => match encode(Encoding::Ggml(f.ggml_type()), &row) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("note: skipping {label} ({}): {e}", f.name());
                    continue;
                }
            },
        };
        let w: Vec<u8> = row_bytes.iter().copied().cycle().take(row_bytes.len() * m).collect();
        let x: Vec<f32> = (0..k).map(|i| ((i % 13) as f32 - 6.0) / 6.0).collect();
        let q = match fmt.activation() {
            flexc_backends::cpu::ActKind::F32 => None,
            kind => Some(ActivationQ8::quantize(kind, &x, 1, k).map_err(ierr)?),
        };
        let mut y = vec![0f32; m];
        let arg = match &q {
            Some(q) => GemvArg::Q(q),
            None => GemvArg::F32(&x),
        };
        let mut call = || pooled_gemv(&pool, &kernel, &w, arg, &mut y, threads).map_err(|e| ierr(e.to_string()));
        call()?;
        // Enough iterations for ~0.2 s.
        let t = Instant::now();
        call()?;
        let once = t.elapsed().as_secs_f64().max(1e-7);
        let iters = ((0.2 / once) as usize).clamp(3, 100_000);
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            for _ in 0..iters {
                call()?;
            }
            best = best.min(t.elapsed().as_secs_f64() / iters as f64);
        }
        let gbs = w.len() as f64 / best / 1e9;
        rows.push(serde_json::json!({
            "shape": label,
            "primitive": if fmt == WeightFormat::F32 { "dense" } else { "dequant" },
            "format": fmt.name(), "bits": bits(fmt), "m": m, "k": k, "threads": threads,
            "seconds": best, "weight_gb_s": gbs, "gflop_s": 2.0 * (m * k) as f64 / best / 1e9,
            "roofline_fraction": gbs / (30.0 * threads as f64),
        }));
    }
    match a.format {
        Format::Json => println!("{}", serde_json::Value::Array(rows)),
        Format::Text => {
            println!("{:<16} {:<8} {:>6} {:>7} {:>6} {:>3} {:>10} {:>8} {:>8} {:>6}", "shape", "prim", "format", "m", "k", "thr", "µs", "GB/s", "GFLOP/s", "roof");
            for r in &rows {
                println!(
                    "{:<16} {:<8} {:>6} {:>7} {:>6} {:>3} {:>10.1} {:>8.2} {:>8.2} {:>6.2}",
                    r["shape"].as_str().unwrap_or(""), r["primitive"].as_str().unwrap_or(""), r["format"].as_str().unwrap_or(""),
                    r["m"], r["k"], r["threads"], r["seconds"].as_f64().unwrap_or(0.0) * 1e6,
                    r["weight_gb_s"].as_f64().unwrap_or(0.0), r["gflop_s"].as_f64().unwrap_or(0.0), r["roofline_fraction"].as_f64().unwrap_or(0.0)
                );
            }
        }
    }
    Ok(())
}

/// `flexc bench kernels --write-costs FILE`: measures the CPU cost table and
/// writes it atomically.
fn write_costs(path: &std::path::Path, threads: usize) -> CliResult {
    let opts = CostBenchOptions { threads, ..Default::default() };
    let table = cost_bench::measure(&opts, &mut |line| eprintln!("{line}")).map_err(|e| CliError::internal(format!("error: measuring the cost table: {e}")))?;
    crate::output::write_atomic(path, table.to_json().as_bytes()).map_err(|e| CliError::input(format!("error: {e}")))?;
    eprintln!("wrote {} ({} kernels, {} tiles)", path.display(), table.kernels.len(), table.tiles.len());
    Ok(())
}
