//! `flexc calibrate`: record Wanda/FLOW activation statistics for a model,
//! optionally pruning it sequentially; and the cached default statistics the
//! other commands fall back on.

use super::error::{CliError, CliResult};
use super::import::import_model;
use super::models::{resolve, resolve_text, DEFAULT_MODEL};
use super::run::load_tokenizer;
use crate::generate::Backend;
use crate::calib::sequential::{blocks, prune_sequential, split_pipeline};
use crate::calib::{cache, calibrate, save, sensitivity, window_starts, CalibOptions};
use crate::frontend::decoder::ImportOptions;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use flexc_ir::calib::Calibration;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Arguments of `flexc calibrate`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc calibrate smollm2-135m -o smollm2.stats.json\n  flexc calibrate smollm2-135m -f pride-and-prejudice --samples 8 --seqlen 128 -o s.json\n  flexc calibrate smollm2-135m --samples 128 --seqlen 512 \\\n      --sequential 'flow-nm{sparsity=0.5,mode=nearest},prune-nm' -o seq.json\n  flexc perplexity smollm2-135m -f pride-and-prejudice --stats seq.json \\\n      --pipeline 'flow-nm{sparsity=0.5,mode=nearest},prune-nm'\n\nRuns the model (the CPU JIT by default, or the reference interpreter) on --samples\nrandom windows of --seqlen tokens and records, per linear layer in a decoder block,\nthe running mean over windows of each input channel's squared L2 norm (Wanda's\nscaler_row).\n\n--hessian also records GPTQ's Hessian 2/n·Σ XᵀX per linear (read by\nquantize{scheme=shiftadd,hessian=true}) into the sidecar file STATS.hessian.bin\n(next to STATS.json; keep the two together).\n\n--sensitivity also measures loss probes: per decoder block and for the LM head, the\nloss the model gains when that group alone is quantized to 3 bits. quantize{bpw=...}\nweighs each layer's error by them (without them it sums relative errors).\n\n--sequential PIPELINE (ending in prune-nm) also prunes block by block as the\nreference does: the passes before prune-nm choose the plan once from the dense\nstatistics, then block k is recalibrated on the model with blocks < k already\npruned and pruned with those statistics. The file then holds both sets (dense\nand sequential), so `--stats FILE --pipeline PIPELINE` reproduces the\nsequentially pruned model. The file format is described in\ncompiler/src/calib/file.rs.")]
pub struct CalibrateArgs {
    /// A model file or known name (default: smollm2-135m).
    pub model: Option<String>,
    /// Calibration text: a file or known text name.
    #[arg(short, long, default_value = "sense-and-sensibility")]
    pub file: String,
    /// Windows (sequences).
    #[arg(long, default_value_t = 128)]
    pub samples: usize,
    /// Tokens per window.
    #[arg(long, default_value_t = 2048)]
    pub seqlen: usize,
    /// Seed for the window positions.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The engine that runs the model.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    /// Threads for the cpu backend (default: available cores, at most 2).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Prune sequentially with this pipeline (ending in prune-nm) and record
    /// the statistics each block was pruned with.
    #[arg(long, value_name = "PIPELINE")]
    pub sequential: Option<String>,
    /// With --sequential: reuse the dense statistics of this file (written
    /// by `flexc calibrate` with the same model, text, samples, seqlen and
    /// seed) instead of computing them again.
    #[arg(long, value_name = "STATS", requires = "sequential")]
    pub dense: Option<PathBuf>,
    /// Also record GPTQ/OPTQ Hessians (2/n·Σ XᵀX per linear, for
    /// `quantize{scheme=shiftadd,hessian=true}`), stored in the binary
    /// sidecar OUTPUT's stem + `.hessian.bin`.
    #[arg(long)]
    pub hessian: bool,
    /// Also measure loss probes (implies --hessian): per decoder block and
    /// for the LM head, the loss the model gains when that group alone is
    /// quantized to 3 bits, on the first 8 windows (512 tokens each).
    /// `quantize{bpw=…}` weighs each layer's error by them.
    #[arg(long)]
    pub sensitivity: bool,
    /// Output statistics file (written atomically).
    #[arg(short, long)]
    pub output: PathBuf,
}

/// Tokenizes a text and cuts calibration windows.
pub fn windows(model: &Path, text: &str, samples: usize, seqlen: usize, seed: u64) -> CliResult<Vec<Vec<u32>>> {
    let tok = load_tokenizer(model)?;
    let text = super::source::read_text_file(Path::new(text))?;
    let ids = tok.encode(&text, false);
    if ids.len() <= seqlen {
        return Err(CliError::input(format!("error: the text has {} tokens, fewer than --seqlen {seqlen}", ids.len())));
    }
    Ok(window_starts(ids.len(), seqlen, samples, seed).into_iter().map(|s| ids[s..s + seqlen].to_vec()).collect())
}

/// Statistics a command runs with ([`stats_or_default`]).
#[derive(Debug)]
pub struct Stats {
    /// The statistics.
    pub calibration: Arc<Calibration>,
    /// Their file; `None` when they were computed in memory because the
    /// cache could not be written.
    pub file: Option<PathBuf>,
    /// Where they come from.
    pub origin: Origin,
}

/// Where statistics come from (the N:M probe cache keys by it).
#[derive(Debug)]
pub enum Origin {
    /// A file the user gave (`--stats`, `--dense`).
    Given,
    /// The cached default statistics: their cache key, and the file an
    /// older flexc kept them in, if it exists.
    Default { key: String, legacy: Option<PathBuf> },
}

impl Stats {
    /// Statistics read from a file the user gave.
    pub fn given(path: &Path) -> CliResult<Stats> {
        let calibration = Arc::new(crate::calib::load(path).map_err(err)?);
        Ok(Stats { calibration, file: Some(path.to_path_buf()), origin: Origin::Given })
    }
}

/// Attaches the measured block costs `pipeline`'s `flow-nm{method=flow}`
/// needs (measured with its `prune-nm`, or read from the cache; see
/// [`crate::calib::nm_sensitivity`]) to `module`, imported from `model`; a
/// no-op for other pipelines. Probe windows come from the default
/// calibration text, BOS first when the model adds one.
pub fn attach_sensitivity(module: &mut flexc_ir::Module, model: &Path, pipeline: &str, stats: Option<&Stats>) -> CliResult<()> {
    let err = |e: String| CliError::input(format!("error: {e}"));
    if crate::calib::nm_sensitivity::wants(pipeline).map_err(err)?.is_none() {
        return Ok(());
    }
    let root = flexc_fetch::cache_dir().ok();
    let (id, legacy) = match stats {
        None => (String::new(), None),
        Some(Stats { file: Some(f), origin: Origin::Given, .. }) => (cache::file_id(root.as_deref(), f).map_err(|e| err(format!("{}: {e}", f.display())))?, Some(f.as_path())),
        Some(Stats { origin: Origin::Given, .. }) => (String::new(), None),
        Some(Stats { origin: Origin::Default { key, legacy }, .. }) => (key.clone(), legacy.as_deref()),
    };
    let key = crate::calib::nm_sensitivity::StatsKey { id: &id, legacy };
    let mut wins = |samples: usize, seqlen: usize, seed: u64| -> Result<Vec<Vec<u32>>, String> {
        let text = resolve_text(cache::DEFAULT.text).map_err(|e| e.message.trim_start_matches("error: ").to_string())?;
        let tok = load_tokenizer(model).map_err(|e| e.message.trim_start_matches("error: ").to_string())?;
        let bos = if tok.add_bos_by_default() { tok.bos() } else { None };
        let mut w = windows(model, &text.to_string_lossy(), samples, seqlen, seed).map_err(|e| e.message.trim_start_matches("error: ").to_string())?;
        if let Some(b) = bos {
            w.iter_mut().for_each(|w| w[0] = b);
        }
        Ok(w)
    };
    let mut fresh = |ctx: usize| import_model(model, &ImportOptions { ctx, ..Default::default() }).map_err(|e| e.message.trim_start_matches("error: ").to_string());
    crate::calib::nm_sensitivity::attach(module, pipeline, model, key, root.as_deref(), &mut wins, &mut fresh).map_err(err)
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(ProgressStyle::with_template(&format!("{what} {{bar:30}} {{pos}}/{{len}} windows  eta {{eta}}")).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar
}

fn err(e: String) -> CliError {
    CliError::input(format!("error: {e}"))
}

/// Runs `flexc calibrate`.
pub fn run(args: CalibrateArgs) -> CliResult {
    if args.samples == 0 || args.seqlen == 0 {
        return Err(CliError::usage("error: --samples and --seqlen must be at least 1"));
    }
    if args.threads == Some(0) {
        return Err(CliError::usage("error: --threads must be at least 1"));
    }
    if let Some(p) = &args.sequential {
        split_pipeline(p).map_err(|e| CliError::usage(format!("error: {e}")))?;
    }
    let model = resolve(args.model.as_deref().unwrap_or(DEFAULT_MODEL))?;
    let text = resolve_text(&args.file)?;
    let wins = windows(&model, &text.to_string_lossy(), args.samples, args.seqlen, args.seed)?;
    let module = import_model(&model, &ImportOptions { ctx: args.seqlen, ..Default::default() })?;
    // A sequential pipeline that reconstructs weights (prune-nm{update=sparsegpt}) needs Hessians.
    let hessian = args.hessian || args.sensitivity || args.sequential.as_deref().is_some_and(|p| cache::need(p) >= cache::Need::Hessians);
    let opts = CalibOptions { engine: args.backend, threads: args.threads.unwrap_or_else(flexc_backends::cpu::runtime::default_threads), blocks: None, hessian };
    let source = format!("model={} text={} samples={} seqlen={} seed={}", model.display(), args.file, args.samples, args.seqlen, args.seed);
    let t0 = std::time::Instant::now();
    let mut stats = match &args.dense {
        Some(d) => {
            let c = crate::calib::load(d).map_err(err)?;
            if hessian && c.layers.values().any(|s| s.hessian.is_none()) {
                return Err(CliError::input(format!("error: {}: these dense statistics have no Hessians; record them with --hessian", d.display())));
            }
            if c.source != source || !c.sequential.is_empty() {
                return Err(CliError::input(format!("error: {}: these are not dense statistics of {source} (they are of {})", d.display(), c.source)));
            }
            c
        }
        None => {
            let b = bar(wins.len(), "calibrating");
            let c = calibrate(&module, &wins, source, &opts, &mut |d| b.set_position(d as u64)).map_err(err)?;
            b.finish_and_clear();
            c
        }
    };
    let dense_time = t0.elapsed();
    if let Some(p) = &args.sequential {
        let b = ProgressBar::new(blocks(&module).len() as u64);
        b.set_style(ProgressStyle::with_template("pruning sequentially {bar:30} {pos}/{len} blocks  eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar()));
        // flow-nm{method=flow} measures its block costs on the dense model first.
        let mut dense = module.clone();
        dense.calibration = Some(Arc::new(stats.clone()));
        let given = args.dense.as_deref().map(|d| Stats { calibration: Arc::new(Calibration::default()), file: Some(d.to_path_buf()), origin: Origin::Given });
        attach_sensitivity(&mut dense, &model, p, given.as_ref())?;
        let (_, seq) = prune_sequential(&dense, &stats, p, &wins, &opts, &mut |done, _| b.set_position(done as u64)).map_err(err)?;
        b.finish_and_clear();
        stats = seq;
    }
    if args.sensitivity {
        add_probes(&model, &module, &mut stats, &wins, opts.threads)?;
    }
    save(&args.output, &stats).map_err(err)?;
    eprintln!(
        "wrote statistics{} of {} linear layers ({} windows of {} tokens{}) to {} in {:.1} s (dense pass {:.1} s)",
        if hessian { " and Hessians" } else { "" },
        stats.layers.len(),
        wins.len(),
        args.seqlen,
        if stats.sequential.is_empty() { String::new() } else { ", sequential".into() },
        args.output.display(),
        t0.elapsed().as_secs_f64(),
        dense_time.as_secs_f64()
    );
    Ok(())
}

/// Measures the loss probes of `module` on the first calibration windows
/// (`calib::sensitivity`) into `stats`, with a progress bar.
fn add_probes(model: &Path, module: &flexc_ir::Module, stats: &mut flexc_ir::calib::Calibration, wins: &[Vec<u32>], threads: usize) -> CliResult {
    let tok = load_tokenizer(model)?;
    let bos = if tok.add_bos_by_default() { tok.bos() } else { None };
    let probe = sensitivity::probe_windows(wins);
    let b = ProgressBar::new(sensitivity::probe_groups(module).len() as u64 + 1);
    b.set_style(ProgressStyle::with_template("loss probes {bar:30} {pos}/{len}  eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar()));
    let t0 = std::time::Instant::now();
    stats.probes = sensitivity::probe_losses(module, stats, &probe, bos, threads, &mut |d, _| b.set_position(d as u64)).map_err(err)?;
    b.finish_and_clear();
    eprintln!("measured {} loss probes on {} windows of {} tokens in {:.1} s", stats.probes.len(), probe.len(), probe.first().map_or(0, Vec::len), t0.elapsed().as_secs_f64());
    Ok(())
}

/// The statistics a command should run with: `given` when set; else, when
/// `pipeline` needs statistics, the cached default statistics of `model`
/// (computed now, with a progress bar, when not cached; see
/// [`crate::calib::cache`]); else none.
pub fn stats_or_default(model: Option<&str>, pipeline: Option<&str>, given: Option<&Path>) -> CliResult<Option<Stats>> {
    if let Some(g) = given {
        return Stats::given(g).map(Some);
    }
    let need = pipeline.map_or(cache::Need::Nothing, cache::need);
    if need == cache::Need::Nothing {
        return Ok(None);
    }
    let model = resolve(model.unwrap_or(DEFAULT_MODEL))?;
    let rotate = pipeline.and_then(cache::rotation);
    let s = cache::Settings { hessian: need >= cache::Need::Hessians, probes: need == cache::Need::Probes, rotate, ..cache::DEFAULT };
    let root = flexc_fetch::cache_dir().map_err(|e| CliError::input(format!("error: {e}")))?;
    let target = cache::path(&root, &model, &s).map_err(|e| CliError::input(format!("error: {}: {e}", model.display())))?;
    let mut compute = || -> Result<Calibration, String> {
        let plain = |e: CliError| e.message.trim_start_matches("error: ").to_string();
        let text = resolve_text(s.text).map_err(plain)?;
        let wins = windows(&model, &text.to_string_lossy(), s.samples, s.seqlen, s.seed).map_err(plain)?;
        let mut module = import_model(&model, &ImportOptions { ctx: s.seqlen, ..Default::default() }).map_err(plain)?;
        // Statistics for a rotated pipeline are recorded on the rotated model.
        if let Some(mut r) = s.rotate {
            flexc_passes::Pass::run(&mut r, &mut module, &mut flexc_passes::PassCx::default())?;
        }
        // Loss probes on top of cached Hessians: only the probes are new.
        let with_hessians = cache::find(&root, &model, &cache::Settings { probes: false, ..s }).map_err(|e| format!("{}: {e}", model.display()))?;
        if s.probes
            && let Some(h) = with_hessians
        {
            let mut stats = crate::calib::load(&h)?;
            eprintln!("measuring loss probes for mixed precision (once; cached in {})", target.display());
            add_probes(&model, &module, &mut stats, &wins, flexc_backends::cpu::runtime::default_threads()).map_err(plain)?;
            return Ok(stats);
        }
        let what = if s.probes { "statistics, Hessians and loss probes" } else if s.hessian { "statistics and Hessians" } else { "statistics" };
        eprintln!("computing default calibration {what} ({} windows of {} tokens of {}; pass --stats FILE to use your own); cached in {}", s.samples, s.seqlen, s.text, target.display());
        let rotated = s.rotate.map_or(String::new(), |r| format!(" {}", r.calibration_tag()));
        let source = format!("model={} text={} samples={} seqlen={} seed={}{rotated} (default statistics)", model.display(), s.text, s.samples, s.seqlen, s.seed);
        let b = bar(wins.len(), "calibrating");
        let mut stats = calibrate(&module, &wins, source, &CalibOptions { hessian: s.hessian, ..CalibOptions::default() }, &mut |d| b.set_position(d as u64))?;
        b.finish_and_clear();
        if s.probes {
            add_probes(&model, &module, &mut stats, &wins, flexc_backends::cpu::runtime::default_threads()).map_err(plain)?;
        }
        Ok(stats)
    };
    let mut wait = |pid: Option<&str>| eprintln!("waiting for {} to finish computing the same default statistics", pid.map_or("another flexc".to_string(), |p| format!("flexc (pid {p})")));
    let got = cache::get_or_compute(&root, &model, &s, &mut compute, &mut wait, &mut |w| eprintln!("{w}")).map_err(err)?;
    let (calibration, file) = match got.stats {
        cache::Held::Memory(c) => (c, None),
        cache::Held::File(f) => (crate::calib::load(&f).map_err(err)?, Some(f)),
    };
    Ok(Some(Stats { calibration: Arc::new(calibration), file, origin: Origin::Default { key: got.key, legacy: got.legacy } }))
}
