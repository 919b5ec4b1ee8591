//! `flexc bench`: llama-bench-style model throughput (prefill and decode
//! tok/s, median of repeats) and the GEMV primitive table
//! ([`flexc_backends::cpu::kernel_bench`]).

use super::error::{CliError, CliResult};
use super::models::Format;
use super::run::prepare;
use crate::generate::cpu::CpuModel;
use crate::generate::LanguageModel;
use clap::{Args, Subcommand};
use flexc_backends::cpu::cost_bench::{self, CostBenchOptions};
use flexc_backends::cpu::kernel_bench::{self, load_average, BenchPrimitive, BenchShape, KernelBenchOptions, LLAMA7B_SHAPES, REAL_SHAPES};
use flexc_backends::cpu::runtime::default_threads;
use flexc_backends::cpu::JitSession;
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
    /// Every GEMV primitive (LUT, shift-add, N:M sparse, dequant, dense) per bits, shape and threads.
    Kernels(KernelArgs),
}

/// Arguments of `flexc bench model`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc bench model smollm2-135m --threads 2\n  flexc bench model gemma3-270m --format json\n  flexc bench model smollm2-135m --pipeline 'quantize{bpw=4.0},cpu' --ppl-file pride-and-prejudice\n\nLike llama-bench: the prefill runs --prompt-tokens tokens in one call, the\ndecode runs --gen-tokens single-token calls from an empty cache.")]
struct ModelArgs {
    /// A model file, compiled `.flexc`, or known name (default: smollm2-135m).
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
    /// (Default: `cpu`; not allowed with a `.flexc`, which keeps its own.)
    #[arg(long)]
    pipeline: Option<String>,
    /// Calibration statistics (from `flexc calibrate`) for passes that need
    /// them (default: the cached default statistics when the pipeline needs some).
    #[arg(long, alias = "stats-file")]
    stats: Option<std::path::PathBuf>,
    /// Also measure perplexity on this text (a file or known text name) with
    /// the same compiled model, so the speed is reported with its quality.
    #[arg(long, value_name = "TEXT")]
    ppl_file: Option<String>,
    /// Chunks of --ppl-ctx tokens scored for --ppl-file (0: the whole text).
    #[arg(long, default_value_t = 20)]
    ppl_chunks: usize,
    /// Tokens per perplexity chunk.
    #[arg(long, default_value_t = 512)]
    ppl_ctx: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Arguments of `flexc bench kernels`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  flexc bench kernels               # every primitive, real + Llama-7B shapes, 1 and 2 threads
  flexc bench kernels --shapes llama7b --threads 1 --only lut --budget-ms 500
  flexc bench kernels --shapes llama7b,576x1536 --format json > rows.json
  flexc bench kernels --write-costs costs.json

Rows: primitive (lut: #gq 1-4 bits and ternary on the T-MAC kernel; shiftadd:
#bcq 1-4 bits with APoT scales; sparse: N:M 2:4, 4:8, 2:8 on f32 values, bits =
streamed bits per dense weight incl. indices; dequant: the int-dot Q4_0, Q2_K,
TQ2_0, Q8_0 kernels; dense: f32) x bits x shape x threads. Per row: seconds per
call (activation preprocessing included; the fastest sample, its median in
JSON), weight GB/s, the speedup over the dequant baseline at the same bits (4:
Q4_0, 2 and 3: Q2_K, 1 and ternary: TQ2_0, sparse and dense: Q8_0; Q4_0 where
k is not a multiple of 256), over dense f32, t(b)/t(1) for lut and shiftadd,
and the fraction of the memory-bandwidth roofline (measured at the start and
the end unless --bandwidth is given). The rows of a shape run round-robin so
load drift hits them alike; compare ratios within one run. --format json
prints a JSON array of the rows.

With --write-costs, measures the CPU cost table instead (about a minute): per
GEMM primitive (lut, shiftadd, dense) and weight scheme, ns per weight at 1
and 16 rows, the per-call overhead, LUT table precompute and measured tilings,
each timed through the runtime path its kern op lowers to. select-gemm reads
that table when it is passed with --cost-table FILE or named by
FLEXC_COST_TABLE; otherwise the table shipped with flexc is used.")]
struct KernelArgs {
    /// Threads: run at N only (default: 1 and 2, or 1 on a one-core machine;
    /// --write-costs: available cores, at most 2).
    #[arg(long)]
    threads: Option<usize>,
    /// Shapes, a comma list of: real (SmolLM2-135M and Gemma 3 270M
    /// q/k/v/o/gate/up/down/head), llama7b (4096x4096, 11008x4096,
    /// 4096x11008), all, and MxK.
    #[arg(long, default_value = "all")]
    shapes: String,
    /// Timing per row, in milliseconds (the default run takes about 2–3 minutes).
    #[arg(long, default_value_t = 200)]
    budget_ms: u64,
    /// Only these primitives (comma list of lut, shiftadd, sparse, dequant,
    /// dense); the baselines they are compared with are measured too.
    #[arg(long, value_name = "LIST")]
    only: Option<String>,
    /// The memory-bandwidth roofline in GB/s (default: measured per thread
    /// count at the start and the end, by a summing read from DRAM).
    #[arg(long, value_name = "GB/S")]
    bandwidth: Option<f64>,
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

/// The most prompt or decode tokens `bench model` runs (llama-bench's
/// defaults are 512 and 128).
const MAX_BENCH_TOKENS: usize = 1 << 15;

fn read_ppl_text(name: &str) -> CliResult<String> {
    let path = super::models::resolve_text(name)?;
    super::source::read_text_file(&path)
}

/// Perplexity of the compiled model on `text` (llama-perplexity's method, as `flexc perplexity`).
fn bench_perplexity(p: &super::run::Prepared, m: &mut CpuModel, text: &str, ctx: usize, chunks: usize) -> CliResult<crate::eval::PplResult> {
    let bos = if p.tok.add_bos_by_default() { p.tok.bos() } else { None };
    let tokens = p.tok.encode(text, bos.is_some());
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(indicatif::ProgressStyle::with_template("perplexity {bar:30} {pos}/{len} chunks  ppl {msg}").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
    let cfg = crate::eval::PplConfig { ctx, max_chunks: chunks };
    let r = crate::eval::perplexity(m, &tokens, bos, &cfg, &mut |done, total, sums| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(format!("{:.4}", sums.ppl()));
    })
    .map_err(|e| CliError::input(format!("error: {e}")))?;
    bar.finish_and_clear();
    Ok(r)
}

fn model(a: ModelArgs) -> CliResult {
    let threads = threads_arg(a.threads)?;
    if a.prompt_tokens == 0 || a.gen_tokens == 0 || a.repeats == 0 {
        return Err(CliError::usage("error: --prompt-tokens, --gen-tokens and --repeats must be at least 1"));
    }
    if a.prompt_tokens.max(a.gen_tokens) > MAX_BENCH_TOKENS {
        return Err(CliError::usage(format!("error: --prompt-tokens and --gen-tokens may be at most {MAX_BENCH_TOKENS} (a longer run measures attention, not the model, and takes hours)")));
    }
    let ppl_text = a.ppl_file.as_deref().map(read_ppl_text).transpose()?;
    let ctx = a.prompt_tokens.max(a.gen_tokens).max(if ppl_text.is_some() { a.ppl_ctx } else { 0 });
    let p = prepare(a.model.as_deref(), ctx, a.pipeline.as_deref(), a.stats.as_deref())?;
    let t0 = Instant::now();
    let mut m = p.cpu_model(threads).map_err(|e| CliError::input(format!("error: {e}")))?;
    let compile = t0.elapsed().as_secs_f64();
    let vocab = m.vocab() as u64;
    let err = |e: crate::generate::ModelError| CliError::input(format!("error: {e}"));
    // Deterministic pseudo-random tokens, like llama-bench's random prompt.
    let tokens: Vec<u32> = (0..a.prompt_tokens as u64).map(|i| ((i * 2_654_435_761 + 12_345) % vocab.max(1)) as u32).collect();
    // Warm-up (page in the weights, size the buffers).
    m.forward(&tokens, 0, 1).map_err(err)?;
    if a.profile {
        m.runtime_mut().enable_profile();
    }
    let mut pp = Vec::new();
    let mut tg = Vec::new();
    // Progress on a terminal (indicatif draws nothing when stderr is not one).
    let bar = indicatif::ProgressBar::new((a.repeats * (a.prompt_tokens + a.gen_tokens)) as u64);
    bar.set_style(indicatif::ProgressStyle::with_template("{msg:>24} {bar:30} {pos}/{len} tokens  eta {eta}").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
    for r in 0..a.repeats {
        bar.set_message(format!("repeat {}/{}: prefill", r + 1, a.repeats));
        let t = Instant::now();
        m.forward(&tokens, 0, 1).map_err(err)?;
        pp.push(a.prompt_tokens as f64 / t.elapsed().as_secs_f64());
        bar.inc(a.prompt_tokens as u64);
        bar.set_message(format!("repeat {}/{}: decode", r + 1, a.repeats));
        let t = Instant::now();
        for i in 0..a.gen_tokens {
            m.forward(&tokens[i % tokens.len()..i % tokens.len() + 1], i, 1).map_err(err)?;
            bar.inc(1);
        }
        tg.push(a.gen_tokens as f64 / t.elapsed().as_secs_f64());
    }
    bar.finish_and_clear();
    let (pp, tg) = (median(pp), median(tg));
    let name = p.path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    // The GEMM kernel tier this process's sessions get (FLEXC_WIDE caps it).
    let kernels = JitSession::host().ok().and_then(|s| s.caps().wide).map_or("cranelift-128", |w| w.name());
    let bpw = p.bits_per_weight(&m);
    let ppl = match &ppl_text {
        Some(text) => Some(bench_perplexity(&p, &mut m, text, a.ppl_ctx, a.ppl_chunks)?),
        None => None,
    };
    match a.format {
        Format::Json => {
            let v = serde_json::json!({
                "model": name, "backend": "cpu", "threads": threads, "kernels": kernels,
                "prefill_tokens": a.prompt_tokens, "decode_tokens": a.gen_tokens, "repeats": a.repeats,
                "prefill_tok_s": pp, "decode_tok_s": tg, "compile_s": compile, "pipeline": a.pipeline,
                "parameters": p.params, "weight_bytes_per_token": m.weight_bytes_per_token(), "bits_per_weight": bpw,
                "perplexity": ppl.as_ref().map(|r| r.ppl), "perplexity_stderr": ppl.as_ref().map(|r| r.stderr),
                "remarks": p.remarks,
                "perplexity_file": a.ppl_file, "perplexity_chunks": ppl.as_ref().map(|r| r.chunks), "perplexity_ctx": ppl.as_ref().map(|r| r.ctx),
            });
            println!("{v}");
        }
        Format::Text => {
            let pipeline = a.pipeline.as_deref().unwrap_or("none");
            let bpw = bpw.map_or(String::new(), |b| format!(" | {b:.3} bits per weight"));
            println!("model {name} | backend cpu | threads {threads} | kernels {kernels} | pipeline {pipeline} | compile {compile:.3} s{bpw}");
            println!("pp{:<5} {pp:>9.1} tok/s", a.prompt_tokens);
            println!("tg{:<5} {tg:>9.1} tok/s", a.gen_tokens);
            if let Some(r) = &ppl {
                println!("perplexity {:.4} ± {:.4} ({} chunks of {})", r.ppl, r.stderr, r.chunks, r.ctx);
            }
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

/// The largest `MxK` (weights) `bench kernels --shapes` accepts: 2^30.
const MAX_BENCH_WEIGHTS: usize = 1 << 30;

/// The shapes of `--shapes`: a comma list of `real`, `llama7b`, `all` and `MxK`.
fn bench_shapes(spec: &str) -> CliResult<Vec<BenchShape>> {
    let named = |list: &[(&str, usize, usize)]| list.iter().map(|&(l, m, k)| BenchShape::new(l, m, k)).collect::<Vec<_>>();
    let mut out = Vec::new();
    for s in spec.split(',').map(str::trim) {
        match s {
            "real" => out.extend(named(&REAL_SHAPES)),
            "llama7b" => out.extend(named(&LLAMA7B_SHAPES)),
            "all" => out.extend(named(&REAL_SHAPES).into_iter().chain(named(&LLAMA7B_SHAPES))),
            _ => match s.split_once('x').and_then(|(m, k)| Some((m.parse::<usize>().ok()?, k.parse::<usize>().ok()?))) {
                // Each primitive holds the f32 weights plus its packed copy:
                // bound the matrix so a typo is an error, not an OOM abort.
                Some((m, k)) if m > 0 && k > 0 && m.checked_mul(k).is_some_and(|n| n <= MAX_BENCH_WEIGHTS) => out.push(BenchShape::new(s, m, k)),
                Some((m, k)) if m > 0 && k > 0 => {
                    return Err(CliError::usage(format!("error: --shapes: `{s}` has {} weights, more than bench kernels measures ({MAX_BENCH_WEIGHTS}, a 4 GiB f32 matrix)", (m as u128) * (k as u128))));
                }
                _ => return Err(CliError::usage(format!("error: --shapes: `{s}` is not real, llama7b, all or MxK (positive M and K)"))),
            },
        }
    }
    Ok(out)
}

fn kernels(a: KernelArgs) -> CliResult {
    if let Some(path) = &a.write_costs {
        return write_costs(path, threads_arg(a.threads)?);
    }
    let threads = match a.threads {
        Some(_) => vec![threads_arg(a.threads)?],
        None => (1..=default_threads()).collect(),
    };
    let primitives = match &a.only {
        None => BenchPrimitive::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .map(|p| BenchPrimitive::parse(p.trim()).ok_or_else(|| CliError::usage(format!("error: --only: unknown primitive `{p}` (lut, shiftadd, sparse, dequant, dense)"))))
            .collect::<CliResult<_>>()?,
    };
    if a.budget_ms == 0 {
        return Err(CliError::usage("error: --budget-ms must be at least 1"));
    }
    if let Some(b) = a.bandwidth
        && !(b.is_finite() && b > 0.0)
    {
        return Err(CliError::usage("error: --bandwidth must be a positive number of GB/s"));
    }
    let opts = KernelBenchOptions {
        shapes: bench_shapes(&a.shapes)?,
        threads,
        primitives,
        budget: std::time::Duration::from_millis(a.budget_ms),
        bandwidth: a.bandwidth,
        ..Default::default()
    };
    let ierr = |e: String| CliError::internal(format!("error: {e}"));
    let session = JitSession::host().map_err(|e| ierr(e.to_string()))?;
    eprintln!("load average before: {}", load_average());
    let report = kernel_bench::run(&session, &opts, &mut |line| eprintln!("{line}")).map_err(|e| ierr(e.to_string()))?;
    eprintln!("load average after: {}", load_average());
    match a.format {
        Format::Json => println!("{}", kernel_bench::rows_json(&report.rows)),
        Format::Text => print!("{}", kernel_bench::text_table(&report)),
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
