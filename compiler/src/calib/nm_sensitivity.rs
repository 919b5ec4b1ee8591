//! Measured block sensitivity for `flow-nm{method=flow}`: what pruning one
//! decoder block to a probe pattern really costs.
//!
//! For every block k and every probe pattern p, a copy of the model has
//! block k (and only it) pruned by the pipeline's own `prune-nm{…}` (the
//! same update, score and alignment as the final model: SparseGPT's
//! reconstruction if the pipeline reconstructs, Wanda masks if it masks),
//! and the cost is the increase of the mean next-token NLL over the scored
//! tokens of a few calibration windows (ΔNLL per token, against the dense
//! model on the same tokens). The forward starts at block k from the dense
//! residual stream entering it (cached once per window), so a probe costs
//! the blocks k..L and the LM head on the scored rows, not the whole model.
//! `flow-nm` interpolates between the probes and solves the allocation
//! exactly ([`flexc_passes::sparsity::measured`]).
//!
//! The table is attached to the module as the `nm_sensitivity` metadata
//! (`[[block, N, M, dnll], ...]`, with the prune-nm options in
//! `nm_sensitivity_update`) by [`attach`], which every command that runs a
//! pipeline on an imported model calls; results are cached per model
//! content, statistics, prune-nm options and probe settings under
//! `<cache>/sensitivity/` (content keys as for the default statistics, see
//! [`super::cache`]: a moved model or cache still hits; a table an older
//! flexc keyed by the model's and statistics' paths is adopted by a hard
//! link under the new name, the old file stays).

use super::jit::{instrument, Cut, Runner};
use super::sequential::blocks;
use flexc_ir::ops::AttrLit;
use flexc_ir::Module;
use flexc_passes::pipeline::PassSpec;
use flexc_passes::sparsity::measured::{ProbeSettings, SENSITIVITY_KEY, SENSITIVITY_UPDATE_KEY};
use flexc_passes::sparsity::{linears, set_meta, set_plan, Nm, Target};
use flexc_passes::{ManagerOptions, PassManager};
use std::collections::HashMap;
use std::path::Path;

/// One measured probe: block, pattern, ΔNLL per scored token.
pub type Probe = (usize, Nm, f64);

/// Mean NLL of each window's scored rows: `logits` holds the last `tail`
/// rows (positions `seq − tail .. seq`), each predicting the next token;
/// the last row has no target.
fn window_nll(logits: &[f32], window: &[u32], tail: usize) -> Result<f64, String> {
    let seq = window.len();
    let vocab = logits.len() / tail.max(1);
    if vocab == 0 || logits.len() != vocab * tail {
        return Err(format!("{} logits for {tail} rows", logits.len()));
    }
    let first = seq - tail;
    let rows = tail - 1;
    let sum: f64 = (0..rows).map(|r| crate::eval::nll(&logits[r * vocab..(r + 1) * vocab], window[first + r + 1])).sum();
    Ok(sum / rows as f64)
}

/// The prune-nm options of `prune` with `block=k` and without `pattern`.
fn prune_text(prune: &PassSpec, k: usize) -> String {
    let mut opts: Vec<String> = prune.options.iter().filter(|(a, _)| a != "pattern" && a != "block").map(|(a, b)| format!("{a}={b}")).collect();
    opts.push(format!("block={k}"));
    format!("prune-nm{{{}}}", opts.join(","))
}

/// Measures every block at every probe (module docs). `m` carries the
/// calibration statistics (and Hessians, for `update=sparsegpt`);
/// `windows` are token windows (BOS first if the model uses one);
/// `progress(done, total)` after each probe.
pub fn measure(m: &Module, prune: &PassSpec, probes: &[Nm], windows: &[Vec<u32>], threads: usize, progress: &mut dyn FnMut(usize, usize)) -> Result<Vec<Probe>, String> {
    let bs = blocks(m);
    if bs.is_empty() || windows.is_empty() {
        return Err("no decoder blocks or no calibration windows to measure".into());
    }
    let seq = windows.iter().map(Vec::len).min().unwrap_or(0);
    if seq < 4 {
        return Err("calibration windows of fewer than 4 tokens".into());
    }
    // The last three quarters of each window are scored.
    let tail = seq - seq / 4;
    // Dense: the NLL of each window and the residual entering each block.
    let (full, _) = instrument(m, &HashMap::new(), Cut { logits: true, ..Cut::default() })?;
    let mut r = Runner::new(&full, threads)?;
    let mut dense = Vec::with_capacity(windows.len());
    for w in windows {
        r.run_tail(w, None, Some(tail))?;
        dense.push(window_nll(r.output(0)?, w, tail)?);
    }
    let mut hs: Vec<Vec<Vec<f32>>> = Vec::with_capacity(bs.len());
    let (first, _) = instrument(m, &HashMap::new(), Cut { then: Some(bs[0]), ..Cut::default() })?;
    let mut r = Runner::new(&first, threads)?;
    let mut h0 = Vec::with_capacity(windows.len());
    for w in windows {
        r.run(w, None)?;
        h0.push(r.output(0)?.to_vec());
    }
    hs.push(h0);
    for (i, &k) in bs.iter().enumerate().skip(1) {
        let (step, _) = instrument(m, &HashMap::new(), Cut { from: Some(bs[i - 1]), then: Some(k), ..Cut::default() })?;
        let mut r = Runner::new(&step, threads)?;
        let mut hk = Vec::with_capacity(windows.len());
        for (w, h) in windows.iter().zip(&hs[i - 1]) {
            r.run(w, Some(h))?;
            hk.push(r.output(0)?.to_vec());
        }
        hs.push(hk);
    }
    let lins = linears(m);
    let total = bs.len() * probes.len();
    let mut out = Vec::with_capacity(total);
    for (i, &k) in bs.iter().enumerate() {
        // From block k to the logits, dense; each probe prunes block k of a copy.
        let (tailf, _) = instrument(m, &HashMap::new(), Cut { from: Some(k), logits: true, ..Cut::default() })?;
        for &p in probes {
            let mut work = tailf.clone();
            let plan: Vec<(String, Target)> = lins.iter().filter(|l| l.block == Some(k)).map(|l| (l.weight.clone(), Target::Nm(p))).collect();
            set_plan(&mut work, &plan);
            let mut pm = PassManager::from_text(&prune_text(prune, k), ManagerOptions::default()).map_err(|e| e.to_string())?;
            pm.run(&mut work, &mut |_, _| {}).map_err(|e| format!("block {k} at {p}: {e}"))?;
            let mut r = Runner::new(&work, threads)?;
            let mut d = 0f64;
            for ((w, h), base) in windows.iter().zip(&hs[i]).zip(&dense) {
                r.run_tail(w, Some(h), Some(tail))?;
                d += window_nll(r.output(0)?, w, tail)? - base;
            }
            out.push((k, p, d / windows.len() as f64));
            progress(out.len(), total);
        }
    }
    Ok(out)
}

/// The table as module metadata.
pub fn to_attr(t: &[Probe]) -> AttrLit {
    AttrLit::List(t.iter().map(|&(k, p, d)| AttrLit::List(vec![AttrLit::Int(k as i64), AttrLit::Int(p.n() as i64), AttrLit::Int(p.m() as i64), AttrLit::Float(d)])).collect())
}

/// The `flow-nm` that measures and the `prune-nm` after it, if the
/// pipeline has one (`Err` if `flow-nm{method=flow}` has no `prune-nm`
/// after it to measure with).
pub fn wants(pipeline: &str) -> Result<Option<(PassSpec, PassSpec)>, String> {
    let Ok(specs) = flexc_passes::registry::parse_with_presets(pipeline) else { return Ok(None) };
    let Some(i) = specs.iter().position(|s| s.name == "flow-nm" && s.options.iter().all(|(k, v)| k != "method" || v == "flow")) else { return Ok(None) };
    let prune = specs[i + 1..].iter().find(|s| s.name == "prune-nm").ok_or("flow-nm{method=flow} measures each block's cost with the pipeline's own prune-nm: add prune-nm{...} after it")?;
    Ok(Some((specs[i].clone(), prune.clone())))
}

/// The (canonical path, size, mtime) stamp older flexc keyed tables by.
fn legacy_stamp(p: &Path) -> String {
    let meta = std::fs::metadata(p).ok();
    let mtime = meta.as_ref().and_then(|m| m.modified().ok()).and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    format!("{}|{}|{mtime}", std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()).display(), meta.map_or(0, |m| m.len()))
}

/// What the statistics a table is measured with are, for its cache key.
#[derive(Clone, Copy, Debug, Default)]
pub struct StatsKey<'a> {
    /// Their identity: the default statistics' cache key
    /// ([`super::cache::key`]) or a `--stats` file's ([`super::cache::file_id`]).
    pub id: &'a str,
    /// The statistics file older flexc keyed the table by, if it exists.
    pub legacy: Option<&'a Path>,
}

fn read_table(f: &Path) -> Option<Vec<Probe>> {
    let rows = serde_json::from_str::<Vec<(usize, usize, usize, f64)>>(&std::fs::read_to_string(f).ok()?).ok()?;
    Some(rows.into_iter().filter_map(|(k, n, mm, d)| Some((k, Nm::new(n as i64, mm as i64).ok()?, d))).collect())
}

/// Measures (or reads from the cache) the table `pipeline`'s
/// `flow-nm{method=flow}` needs and attaches it to `m` (a no-op for other
/// pipelines). `windows(samples, seqlen, seed)` gives calibration windows;
/// `cache_root` is flexc's cache directory; `stats` identifies the
/// statistics `m` carries. `fresh(seqlen)` imports the model again with a
/// KV cache of `seqlen` positions (the caller's module may have a smaller
/// one); the measurement runs on it with `m`'s calibration.
pub fn attach(
    m: &mut Module,
    pipeline: &str,
    model: &Path,
    stats: StatsKey<'_>,
    cache_root: Option<&Path>,
    windows: &mut dyn FnMut(usize, usize, u64) -> Result<Vec<Vec<u32>>, String>,
    fresh: &mut dyn FnMut(usize) -> Result<Module, String>,
) -> Result<(), String> {
    let Some((flow, prune)) = wants(pipeline)? else { return Ok(()) };
    let settings = ProbeSettings::from_spec(&flow)?;
    let update = prune.options.iter().filter(|(a, _)| a != "pattern" && a != "block").map(|(a, b)| format!("{a}={b}")).collect::<Vec<_>>().join(",");
    let probes_text = settings.probes.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    let source = m.calibration.as_ref().map_or(String::new(), |c| c.source.clone());
    let rest = format!("{source}|{update}|{probes_text}|{}|{}|{}", settings.samples, settings.seqlen, settings.seed);
    let content = super::cache::fingerprint(cache_root, model).map_err(|e| format!("{}: {e}", model.display()))?;
    let key = format!("content|{content}|{}|{rest}|v3", stats.id);
    let stem = model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let suffix = format!("{:016x}.json", super::cache::key_hash(&key));
    let dir = cache_root.map(|r| r.join("sensitivity"));
    let file = dir.as_ref().map(|d| d.join(format!("{stem}-{suffix}")));
    let mut cached = dir.as_ref().zip(file.as_ref()).and_then(|(d, f)| super::cache::find_named(d, f, &suffix)).and_then(|f| read_table(&f));
    if cached.is_none()
        && let (Some(d), Some(f)) = (&dir, &file)
    {
        // Migration: the file an older flexc keyed by paths.
        let old_key = format!("{}|{}|{rest}|v2", legacy_stamp(model), stats.legacy.map(legacy_stamp).unwrap_or_default());
        let old = d.join(format!("{stem}-{:016x}.json", super::cache::key_hash(&old_key)));
        cached = read_table(&old);
        if cached.is_some() {
            let _ = super::cache::link_or_copy(&old, f);
        }
    }
    let table = match cached {
        Some(t) => t,
        None => {
            let wins = windows(settings.samples, settings.seqlen, settings.seed)?;
            let t0 = std::time::Instant::now();
            let nb = blocks(m).len();
            eprintln!("flow-nm: measuring {nb} blocks × {} probes ({probes_text}) with prune-nm{{{update}}} on {} windows of {} tokens", settings.probes.len(), settings.samples, settings.seqlen);
            let mut probe_model = fresh(settings.seqlen)?;
            probe_model.calibration = m.calibration.clone();
            let t = measure(&probe_model, &prune, &settings.probes, &wins, flexc_backends::cpu::runtime::default_threads(), &mut |_, _| {})?;
            eprintln!("flow-nm: measured in {:.1} s", t0.elapsed().as_secs_f64());
            if let Some(f) = &file {
                let rows: Vec<(usize, usize, usize, f64)> = t.iter().map(|&(k, p, d)| (k, p.n(), p.m(), d)).collect();
                if let Some(dir) = f.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                // Best effort: a read-only cache measures again next time.
                let _ = crate::output::write_atomic(f, serde_json::to_string(&rows).unwrap_or_default().as_bytes());
            }
            t
        }
    };
    set_meta(m, SENSITIVITY_KEY, to_attr(&table));
    set_meta(m, SENSITIVITY_UPDATE_KEY, AttrLit::Str(format!("prune-nm{{{update}}}")));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_keyed_tables_are_adopted_and_a_moved_model_still_hits() {
        let dir = std::env::temp_dir().join(format!("flexc-nm-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (root, model, stats) = (dir.join("cache"), dir.join("m.gguf"), dir.join("s.json"));
        std::fs::create_dir_all(root.join("sensitivity")).unwrap();
        std::fs::write(&model, b"model bytes").unwrap();
        std::fs::write(&stats, b"{}").unwrap();
        let pipeline = "flow-nm{sparsity=0.5,probes=2:4},prune-nm{score=magnitude}";
        // The name flexc before content keys gave this table (frozen here:
        // paths, sizes and mtimes of the model and the statistics file).
        let old_key = format!("{}|{}||score=magnitude|2:4|4|160|42|v2", legacy_stamp(&model), legacy_stamp(&stats));
        let old = root.join("sensitivity").join(format!("m-{:016x}.json", super::super::cache::key_hash(&old_key)));
        std::fs::write(&old, "[[0,2,4,0.25],[1,2,4,0.5]]").unwrap();
        let no_windows = &mut |_: usize, _: usize, _: u64| -> Result<Vec<Vec<u32>>, String> { Err("measured instead of reading the cache".into()) };
        let no_import = &mut |_: usize| -> Result<Module, String> { Err("measured instead of reading the cache".into()) };
        let key = StatsKey { id: "file|2:abc|", legacy: Some(&stats) };
        let mut m = Module::default();
        attach(&mut m, pipeline, &model, key, Some(&root), no_windows, no_import).unwrap();
        assert!(m.meta(SENSITIVITY_KEY).is_some());
        let files: Vec<_> = std::fs::read_dir(root.join("sensitivity")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 2, "adopted under the new name, the old file kept: {files:?}");
        // The model moved and renamed, the statistics' legacy file gone: the content key hits.
        let moved = dir.join("renamed.gguf");
        std::fs::rename(&model, &moved).unwrap();
        let mut m = Module::default();
        attach(&mut m, pipeline, &moved, StatsKey { legacy: None, ..key }, Some(&root), no_windows, no_import).unwrap();
        assert!(m.meta(SENSITIVITY_KEY).is_some());
        // Other statistics are another key: it would measure.
        let err = attach(&mut Module::default(), pipeline, &moved, StatsKey { id: "other", legacy: None }, Some(&root), no_windows, no_import).unwrap_err();
        assert!(err.contains("measured instead"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
