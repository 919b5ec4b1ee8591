//! Cached default statistics: when a pipeline needs calibration statistics
//! (`flow-nm`/`prune-nm` with Wanda scores) and no `--stats` is given, the
//! commands use statistics computed on the default calibration text with
//! [`DEFAULT`] settings, cached under `<cache>/stats/` and keyed by the
//! model file (path, size, modification time) and the settings. The file is
//! the ordinary statistics file ([`super::file`]), written atomically.

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
}

/// The defaults: small enough to take about a minute for SmolLM2-135M on
/// two cores (two with Hessians).
pub const DEFAULT: Settings = Settings { text: "sense-and-sensibility", samples: 32, seqlen: 512, seed: 42, hessian: false, probes: false };

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
    let has = |s: &flexc_passes::pipeline::PassSpec, k: &str, v: &str| s.options.iter().any(|(a, b)| a == k && b == v);
    let Ok(specs) = flexc_passes::registry::parse_with_presets(pipeline) else { return Need::Nothing };
    specs
        .iter()
        .map(|s| match s.name.as_str() {
            "prune-nm" if has(s, "update", "sparsegpt") => Need::Hessians,
            "prune-nm" if !has(s, "score", "magnitude") => Need::Stats,
            "flow-nm" if !has(s, "score", "magnitude") && !has(s, "method", "uniform") => Need::Stats,
            "quantize" if s.options.iter().any(|(k, v)| k == "bpw" && v.parse::<f64>().is_ok_and(|b| b != 0.0)) => Need::Probes,
            "quantize" if has(s, "method", "rtn") => Need::Stats,
            "quantize" => Need::Hessians,
            _ => Need::Nothing,
        })
        .max()
        .unwrap_or(Need::Nothing)
}

/// Whether a pipeline needs any calibration data ([`need`]).
pub fn needs_stats(pipeline: &str) -> bool {
    need(pipeline) != Need::Nothing
}

/// The cache file of `model`'s default statistics under `root`.
pub fn path(root: &Path, model: &Path, s: &Settings) -> std::io::Result<PathBuf> {
    let canon = std::fs::canonicalize(model)?;
    let meta = std::fs::metadata(&canon)?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    let hessian = match (s.hessian || s.probes, s.probes) {
        (_, true) => "|hessian|probes",
        (true, false) => "|hessian",
        (false, false) => "",
    };
    let key = format!("{}|{}|{mtime}|{}|{}|{}|{}{hessian}|head", canon.display(), meta.len(), s.text, s.samples, s.seqlen, s.seed);
    let stem = canon.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(root.join("stats").join(format!("{stem}-{}x{}-{:016x}.json", s.samples, s.seqlen, key_hash(&key))))
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
}
