//! Cached default statistics: when a pipeline needs calibration statistics
//! (`flow-nm`/`prune-nm` with Wanda scores) and no `--stats` is given, the
//! commands use statistics computed on the default calibration text with
//! [`DEFAULT`] settings, cached under `<cache>/stats/`. The file is the
//! ordinary statistics file ([`super::file`]), written atomically.
//!
//! - **Keyed by content**: the key is the model file's size and sha256
//!   ([`fingerprint`]; the hash is remembered per (path, size, mtime, inode)
//!   under `<cache>/fingerprints/`, so a model is read in full once) and the
//!   settings. The file name is `<model stem>-<samples>x<seqlen>-<key hash>.json`;
//!   a lookup takes any file ending in `-<samples>x<seqlen>-<key hash>.json`,
//!   so a renamed or moved model, or a cache folder moved elsewhere, still
//!   finds its statistics.
//! - **One process computes**: [`get_or_compute`] holds the lock
//!   `<cache>/.locks/stats-<key hash>.lock` (`flexc pull`'s flock, dropped
//!   when the process dies) while it computes; a second process needing the
//!   same statistics waits for it and then reads the file.
//! - **Read-only cache**: statistics that cannot be written are computed in
//!   memory for this run, with a warning (before the computation when the
//!   folder cannot even be created), instead of failing after it.
//! - **Migration**: flexc before this keyed the files by the model's path
//!   ([`legacy_path`]). On a miss, the file under the old name (if any) is
//!   adopted: its Hessian sidecar is hard-linked (copied where links fail)
//!   and its JSON written under the new name pointing to it. The old files
//!   are left in place.

use flexc_ir::calib::Calibration;
use flexc_passes::quant::rotate::Rotate;
use std::path::{Path, PathBuf};

/// Calibration settings of the cached default statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Known text name.
    pub text: &'static str,
    /// Windows.
    pub samples: usize,
    /// Tokens per window.
    pub seqlen: usize,
    /// Window seed.
    pub seed: u64,
    /// Also GPTQ Hessians.
    pub hessian: bool,
    /// Also loss probes (`super::sensitivity`; implies Hessians).
    pub probes: bool,
    /// Recorded on the model after this `rotate` of the pipeline ([`rotation`]).
    pub rotate: Option<Rotate>,
}

/// The defaults: small enough to take about a minute for SmolLM2-135M on
/// two cores (two with Hessians).
pub const DEFAULT: Settings = Settings { text: "sense-and-sensibility", samples: 32, seqlen: 512, seed: 42, hessian: false, probes: false, rotate: None };

/// What calibration data a pipeline needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// None.
    Nothing,
    /// Activation statistics (Wanda/FLOW scores, quantization importances).
    Stats,
    /// Statistics and GPTQ Hessians.
    Hessians,
    /// Statistics, Hessians and loss probes (mixed precision, `bpw=`).
    Probes,
}

/// What a pipeline (text or preset) needs: `prune-nm{update=sparsegpt}`
/// needs Hessians; `prune-nm`, or `flow-nm` with a data-aware method,
/// without `score=magnitude`, need statistics;
/// `quantize` needs Hessians (GPTQ, the default method, and `bpw=`) or,
/// with `method=rtn`, statistics for its importance-weighted scales; with
/// `bpw=` (mixed precision) also loss probes.
pub fn need(pipeline: &str) -> Need {
    let Ok(specs) = flexc_passes::registry::parse_with_presets(pipeline) else { return Need::Nothing };
    specs.iter().map(spec_need).max().unwrap_or(Need::Nothing)
}

/// What one pipeline entry needs ([`need`]).
fn spec_need(s: &flexc_passes::pipeline::PassSpec) -> Need {
    let has = |k: &str, v: &str| s.options.iter().any(|(a, b)| a == k && b == v);
    match s.name.as_str() {
        "prune-nm" if has("update", "sparsegpt") => Need::Hessians,
        "prune-nm" if !has("score", "magnitude") => Need::Stats,
        "flow-nm" if !has("score", "magnitude") && !has("method", "uniform") => Need::Stats,
        "quantize" if s.options.iter().any(|(k, v)| k == "bpw" && v.parse::<f64>().is_ok_and(|b| b != 0.0)) => Need::Probes,
        "quantize" if has("method", "rtn") => Need::Stats,
        "quantize" => Need::Hessians,
        _ => Need::Nothing,
    }
}

/// The `rotate` a pipeline applies before its first pass that reads
/// calibration data: the default statistics are then recorded on the rotated
/// model, as that pass will see it.
pub fn rotation(pipeline: &str) -> Option<Rotate> {
    let specs = flexc_passes::registry::parse_with_presets(pipeline).ok()?;
    let mut found = None;
    for s in &specs {
        if s.name == "rotate" {
            found = Rotate::from_spec(s).ok();
        } else if spec_need(s) != Need::Nothing {
            return found;
        }
    }
    None
}

/// Whether a pipeline needs any calibration data ([`need`]).
pub fn needs_stats(pipeline: &str) -> bool {
    need(pipeline) != Need::Nothing
}

/// A file's content identity: its size and sha256 (lower-case hex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// Bytes.
    pub len: u64,
    /// sha256.
    pub sha256: String,
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.len, self.sha256)
    }
}

/// The content identity of `file`, hashed in full once per (canonical path,
/// size, mtime, inode): the hash is remembered in
/// `<root>/fingerprints/<key hash>` when `root` is given and writable.
pub fn fingerprint(root: Option<&Path>, file: &Path) -> std::io::Result<Fingerprint> {
    let canon = std::fs::canonicalize(file)?;
    let meta = std::fs::metadata(&canon)?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let ino = 0u64;
    let memo = root.map(|r| r.join("fingerprints").join(format!("{:016x}", key_hash(&format!("{}|{}|{mtime}|{ino}", canon.display(), meta.len())))));
    if let Some(sha) = memo.as_ref().and_then(|m| std::fs::read_to_string(m).ok()) {
        let sha = sha.trim();
        if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Fingerprint { len: meta.len(), sha256: sha.to_string() });
        }
    }
    let (len, sha256) = flexc_fetch::hash_file(&canon, &indicatif::ProgressBar::hidden()).map_err(|e| std::io::Error::other(e.to_string()))?;
    if let Some(m) = &memo {
        // Best effort: a read-only cache only costs the hash next time.
        let _ = m.parent().map(std::fs::create_dir_all);
        let _ = crate::output::write_atomic(m, sha256.as_bytes());
    }
    Ok(Fingerprint { len, sha256 })
}

/// The identity of a statistics file given with `--stats`: its JSON's and
/// its Hessian sidecar's (if any) fingerprints.
pub fn file_id(root: Option<&Path>, stats: &Path) -> std::io::Result<String> {
    let side = super::file::sidecar_path(stats);
    let side = if side.is_file() { fingerprint(root, &side)?.to_string() } else { String::new() };
    Ok(format!("file|{}|{side}", fingerprint(root, stats)?))
}

/// The cache key of `model`'s default statistics with settings `s` (a
/// content key: see the module docs).
pub fn key(model: &Fingerprint, s: &Settings) -> String {
    let rotated = s.rotate.map_or(String::new(), |r| format!("|{}", r.calibration_tag()));
    format!("content|{model}|{}|{}|{}|{}{}|head{rotated}", s.text, s.samples, s.seqlen, s.seed, hessian_suffix(s))
}

fn hessian_suffix(s: &Settings) -> &'static str {
    match (s.hessian || s.probes, s.probes) {
        (_, true) => "|hessian|probes",
        (true, false) => "|hessian",
        (false, false) => "",
    }
}

fn stem(model: &Path) -> String {
    model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The name ending every cache file of key `key` with settings `s`.
fn suffix(key: &str, s: &Settings) -> String {
    format!("{}x{}-{:016x}.json", s.samples, s.seqlen, key_hash(key))
}

/// The cache file `model`'s default statistics are written to under `root`.
pub fn path(root: &Path, model: &Path, s: &Settings) -> std::io::Result<PathBuf> {
    let k = key(&fingerprint(Some(root), model)?, s);
    Ok(root.join("stats").join(format!("{}-{}", stem(model), suffix(&k, s))))
}

/// Where flexc before content keys kept `model`'s default statistics: keyed
/// by its canonical path, size and modification time.
pub fn legacy_path(root: &Path, model: &Path, s: &Settings) -> std::io::Result<PathBuf> {
    let canon = std::fs::canonicalize(model)?;
    let meta = std::fs::metadata(&canon)?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    let key = format!("{}|{}|{mtime}|{}|{}|{}|{}{}|head", canon.display(), meta.len(), s.text, s.samples, s.seqlen, s.seed, hessian_suffix(s));
    Ok(root.join("stats").join(format!("{}-{}x{}-{:016x}.json", stem(&canon), s.samples, s.seqlen, key_hash(&key))))
}

/// `exact` if it exists, else any file of `dir` whose name ends in
/// `-{suffix}` (the same key under another model name).
pub(crate) fn find_named(dir: &Path, exact: &Path, suffix: &str) -> Option<PathBuf> {
    if exact.is_file() {
        return Some(exact.to_path_buf());
    }
    let tail = format!("-{suffix}");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(|n| !n.starts_with('.') && n.ends_with(&tail)))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.into_iter().next()
}

/// A hard link `to` → `from`, or a copy where the file system has no links.
pub(crate) fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(_) => {
            let tmp = to.with_extension(format!("tmp-{}", std::process::id()));
            std::fs::copy(from, &tmp)?;
            std::fs::rename(&tmp, to)
        }
    }
}

/// Adopts the statistics file `old` (and its sidecar) under the name `new`
/// (module docs, "Migration"); `old` stays.
fn adopt(old: &Path, new: &Path) -> std::io::Result<()> {
    let old_side = super::file::sidecar_path(old);
    if !old_side.is_file() {
        return link_or_copy(old, new);
    }
    let new_side = super::file::sidecar_path(new);
    link_or_copy(&old_side, &new_side)?;
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let text = std::fs::read_to_string(old)?;
    let (from, to) = (format!("\"hessian_file\":\"{}\"", name(&old_side)), format!("\"hessian_file\":\"{}\"", name(&new_side)));
    if !text.contains(&from) {
        return Err(std::io::Error::other(format!("{}: does not name its sidecar {}", old.display(), name(&old_side))));
    }
    crate::output::write_atomic(new, text.replacen(&from, &to, 1).as_bytes())
}

/// The cached default statistics of `model` with settings `s`, if any: the
/// file under its content key, else one of the same key under another model
/// name, else the file an older flexc wrote under the model's path (adopted
/// under the new name; returned as it is when that cannot be written).
pub fn find(root: &Path, model: &Path, s: &Settings) -> std::io::Result<Option<PathBuf>> {
    let k = key(&fingerprint(Some(root), model)?, s);
    let dir = root.join("stats");
    let exact = dir.join(format!("{}-{}", stem(model), suffix(&k, s)));
    if let Some(p) = find_named(&dir, &exact, &suffix(&k, s)) {
        return Ok(Some(p));
    }
    let old = legacy_path(root, model, s)?;
    if !old.is_file() {
        return Ok(None);
    }
    Ok(Some(if adopt(&old, &exact).is_ok() { exact } else { old }))
}

/// The default statistics a command runs with.
#[derive(Debug)]
pub struct Cached {
    /// The statistics.
    pub stats: Held,
    /// Their cache key ([`key`]): what they are the statistics of.
    pub key: String,
    /// The file an older flexc kept them in, if it exists (the N:M probe
    /// cache's migration keys by it).
    pub legacy: Option<PathBuf>,
}

/// Where [`Cached`] statistics are.
#[derive(Debug, PartialEq)]
pub enum Held {
    /// In the cache.
    File(PathBuf),
    /// Computed by this call; the cache could not be written.
    Memory(Calibration),
}

impl Cached {
    /// The cache file, unless they are held in memory.
    pub fn file(&self) -> Option<&Path> {
        match &self.stats {
            Held::File(f) => Some(f),
            Held::Memory(_) => None,
        }
    }
}

/// The cached default statistics of `model` ([`find`]), or computed now by
/// `compute` and cached. Only one process computes a given key at a time:
/// another one waits for the lock (`wait(holder pid)` is called first) and
/// then reads what the first one wrote. When the cache cannot be written,
/// the statistics are computed in memory and `warn` is told why.
pub fn get_or_compute(
    root: &Path,
    model: &Path,
    s: &Settings,
    compute: &mut dyn FnMut() -> Result<Calibration, String>,
    wait: &mut dyn FnMut(Option<&str>),
    warn: &mut dyn FnMut(&str),
) -> Result<Cached, String> {
    let io = |e: std::io::Error| format!("{}: {e}", model.display());
    let k = key(&fingerprint(Some(root), model).map_err(io)?, s);
    let legacy = legacy_path(root, model, s).ok().filter(|p| p.is_file());
    let found = |file: PathBuf| Cached { stats: Held::File(file), key: k.clone(), legacy: legacy.clone() };
    if let Some(p) = find(root, model, s).map_err(io)? {
        return Ok(found(p));
    }
    let dir = root.join("stats");
    let mut warned = false;
    let mut cannot = |e: &dyn std::fmt::Display, warn: &mut dyn FnMut(&str)| {
        if !std::mem::replace(&mut warned, true) {
            warn(&format!("warning: cannot cache the default statistics in {} ({e}); computing them in memory for this run only", dir.display()));
        }
    };
    let lock = match std::fs::create_dir_all(&dir) {
        Ok(()) => match flexc_fetch::PullLock::wait(root, &format!("stats-{:016x}", key_hash(&k)), wait) {
            Ok(l) => Some(l),
            Err(e) => {
                cannot(&e, warn);
                None
            }
        },
        Err(e) => {
            cannot(&e, warn);
            None
        }
    };
    // Another process may have computed them while we waited.
    if lock.is_some()
        && let Some(p) = find(root, model, s).map_err(io)?
    {
        return Ok(found(p));
    }
    let stats = compute()?;
    let file = dir.join(format!("{}-{}", stem(model), suffix(&k, s)));
    match super::file::save(&file, &stats) {
        Ok(()) => Ok(found(file)),
        Err(e) => {
            cannot(&e, warn);
            Ok(Cached { stats: Held::Memory(stats), key: k, legacy })
        }
    }
}

/// FNV-1a of a cache key's text: stable across runs and Rust versions
/// (the cache file names of statistics and probe tables).
pub fn key_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_pipelines_need_stats() {
        assert!(needs_stats("flow-nm{sparsity=0.5},prune-nm"));
        assert!(needs_stats("canonicalize,prune-nm{pattern=2:4}"));
        assert!(!needs_stats("flow-nm{score=magnitude},prune-nm{score=magnitude}"));
        assert!(needs_stats("flow-nm{score=magnitude},prune-nm"));
        assert!(!needs_stats("flow-nm{method=uniform,pattern=2:4}"));
        assert!(!needs_stats("cpu"));
        assert!(!needs_stats("none"));
        assert_eq!(need("quantize{bits=3}"), Need::Hessians);
        assert_eq!(need("quantize{bits=3,method=rtn},select-gemm{target=cpu}"), Need::Stats);
        assert_eq!(need("prune-nm,quantize{bpw=3.0}"), Need::Probes);
        assert_eq!(need("quantize{bpw=0}"), Need::Hessians);
        assert_eq!(need("prune-nm{pattern=4:8,update=sparsegpt}"), Need::Hessians);
        assert_eq!(need("prune-nm{pattern=4:8,score=magnitude,update=sparsegpt}"), Need::Hessians);
    }

    #[test]
    fn the_key_follows_the_file_and_the_settings() {
        let dir = std::env::temp_dir().join(format!("flexc-stats-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("m.gguf");
        std::fs::write(&f, b"abc").unwrap();
        let a = path(&dir, &f, &DEFAULT).unwrap();
        assert_eq!(a, path(&dir, &f, &DEFAULT).unwrap());
        assert!(a.starts_with(dir.join("stats")));
        assert_ne!(a, path(&dir, &f, &Settings { samples: 3, ..DEFAULT }).unwrap());
        let h = path(&dir, &f, &Settings { hessian: true, ..DEFAULT }).unwrap();
        assert_ne!(a, h);
        assert_ne!(h, path(&dir, &f, &Settings { hessian: true, probes: true, ..DEFAULT }).unwrap());
        std::fs::write(&f, b"abcd").unwrap();
        assert_ne!(a, path(&dir, &f, &DEFAULT).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("flexc-stats-cache-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn stats(source: &str) -> Calibration {
        let mut c = Calibration { source: source.into(), ..Default::default() };
        let h = Some(vec![1.0, 0.5, 0.5, 2.0]);
        c.layers.insert("blk.0.attn_q.weight".into(), flexc_ir::calib::ChannelStats { nsamples: 2, scaler_row: vec![1.0, 2.0], hessian: h });
        c
    }

    /// `get_or_compute` with a counting `compute` and no waiting expected.
    fn get(root: &Path, model: &Path, s: &Settings, computed: &mut usize) -> Cached {
        get_or_compute(root, model, s, &mut || { *computed += 1; Ok(stats("computed")) }, &mut |_| {}, &mut |w| panic!("unexpected warning: {w}")).unwrap()
    }

    #[test]
    fn a_moved_model_and_a_moved_cache_still_hit() {
        let dir = scratch("moved");
        let (root, model) = (dir.join("cache"), dir.join("m.gguf"));
        std::fs::write(&model, b"model bytes").unwrap();
        let s = Settings { hessian: true, ..DEFAULT };
        let mut n = 0;
        let first = get(&root, &model, &s, &mut n).file().unwrap().to_path_buf();
        assert_eq!(n, 1);
        assert_eq!(crate::calib::load(&first).unwrap(), stats("computed"));
        // The same bytes under another name and folder: no recomputation.
        let moved = dir.join("elsewhere").join("renamed.gguf");
        std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
        std::fs::rename(&model, &moved).unwrap();
        assert_eq!(get(&root, &moved, &s, &mut n).file().unwrap().to_path_buf(), first);
        // The cache folder moved too.
        let root2 = dir.join("cache2");
        std::fs::rename(&root, &root2).unwrap();
        let again = get(&root2, &moved, &s, &mut n).file().unwrap().to_path_buf();
        assert_eq!(n, 1, "a moved model or cache must not recompute");
        assert_eq!(crate::calib::load(&again).unwrap(), stats("computed"));
        // Other content is another key.
        std::fs::write(&moved, b"other bytes").unwrap();
        get(&root2, &moved, &s, &mut n);
        assert_eq!(n, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn path_keyed_files_are_adopted_under_the_content_key_and_kept() {
        let dir = scratch("legacy");
        let (root, model) = (dir.join("cache"), dir.join("m.gguf"));
        std::fs::write(&model, b"model bytes").unwrap();
        for s in [DEFAULT, Settings { hessian: true, ..DEFAULT }] {
            let old = legacy_path(&root, &model, &s).unwrap();
            std::fs::create_dir_all(old.parent().unwrap()).unwrap();
            let c = if s.hessian { stats("old") } else { Calibration { source: "old".into(), ..Default::default() } };
            crate::calib::save(&old, &c).unwrap();
            let mut n = 0;
            let got = get(&root, &model, &s, &mut n);
            assert_eq!(n, 0, "the old file is found, not recomputed");
            let new = got.file().unwrap().to_path_buf();
            assert_eq!(new, path(&root, &model, &s).unwrap());
            assert_ne!(new, old);
            assert_eq!(got.legacy.as_deref(), Some(old.as_path()));
            assert_eq!(crate::calib::load(&new).unwrap(), c);
            // The old files stay, and the 400 MB sidecar is linked, not copied.
            assert!(old.is_file());
            if s.hessian {
                use std::os::unix::fs::MetadataExt;
                let (a, b) = (super::super::file::sidecar_path(&old), super::super::file::sidecar_path(&new));
                assert_eq!(std::fs::metadata(&a).unwrap().ino(), std::fs::metadata(&b).unwrap().ino());
                // Without the old sidecar the adopted file still loads.
                std::fs::remove_file(&a).unwrap();
                assert_eq!(crate::calib::load(&new).unwrap(), c);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_cache_computes_in_memory_with_a_warning_first() {
        let dir = scratch("readonly");
        let (root, model) = (dir.join("cache"), dir.join("m.gguf"));
        std::fs::write(&model, b"model bytes").unwrap();
        // `stats` and `.locks` are files: nothing can be created under them
        // (a read-only folder, even for root).
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("stats"), b"").unwrap();
        std::fs::write(root.join(".locks"), b"").unwrap();
        let log = std::cell::RefCell::new(Vec::new());
        let got = get_or_compute(
            &root,
            &model,
            &DEFAULT,
            &mut || {
                log.borrow_mut().push("compute".to_string());
                Ok(stats("mem"))
            },
            &mut |_| panic!("nothing to wait for"),
            &mut |w| log.borrow_mut().push(w.to_string()),
        )
        .unwrap();
        assert_eq!(got.stats, Held::Memory(stats("mem")));
        let log = log.into_inner();
        assert_eq!(log.len(), 2, "{log:?}");
        assert!(log[0].starts_with("warning: cannot cache the default statistics in") && log[0].contains("in memory"), "{log:?}");
        assert_eq!(log[1], "compute", "the warning comes before the work");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn two_processes_needing_the_same_statistics_compute_them_once() {
        let dir = scratch("lock");
        let (root, model) = (dir.join("cache"), dir.join("m.gguf"));
        std::fs::write(&model, b"model bytes").unwrap();
        let computed = std::sync::atomic::AtomicUsize::new(0);
        let waited = std::sync::atomic::AtomicUsize::new(0);
        let files: Vec<PathBuf> = std::thread::scope(|sc| {
            let run = || {
                get_or_compute(
                    &root,
                    &model,
                    &DEFAULT,
                    &mut || {
                        computed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(400));
                        Ok(stats("once"))
                    },
                    &mut |_| {
                        waited.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    },
                    &mut |w| panic!("{w}"),
                )
                .unwrap()
                .file()
                .unwrap()
                .to_path_buf()
            };
            let a = sc.spawn(run);
            let b = sc.spawn(run);
            vec![a.join().unwrap(), b.join().unwrap()]
        });
        assert_eq!(computed.into_inner(), 1, "the second one waits and reads");
        // (The second one normally waits; on a loaded machine it may start
        // after the first one is done and find the file at once.)
        assert!(waited.into_inner() <= 1);
        assert_eq!(files[0], files[1]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
