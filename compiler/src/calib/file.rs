//! The statistics file (`flexc calibrate -o STATS`, read by `--stats`).
//!
//! JSON, one object:
//! ```text
//! {"format": "flexc-calibration", "version": 3,
//!  "source": "model=… text=… samples=… seqlen=… seed=…",
//!  "layers": {"blk.0.attn_q.weight": {"nsamples": 128, "scaler_row": [f32, …],
//!                                     "hessian": {"offset": 0, "channels": 576}}, …},
//!  "sequential": {"blk.1.attn_q.weight": {"nsamples": 128, "scaler_row": [f32, …]}, …},
//!  "hessian_file": "STATS.hessian.bin",
//!  "probes": [{"weights": ["blk.0.attn_q.weight", …], "delta_nll": 0.0123}, …]}
//! ```
//! `scaler_row[j]` is the running mean over sequences of ‖X[:, j]‖² (the
//! squared L2 norm of input channel j over that sequence's tokens); f32 values
//! are written with the shortest round-tripping decimal form.
//!
//! `layers` holds the statistics of the dense model (what `flow-nm` and the
//! OWL selections read). `sequential` is present only in files written by
//! `flexc calibrate --sequential PIPELINE`: per block linear, the statistics
//! recorded on the model whose earlier blocks were already pruned by that
//! pipeline; `prune-nm` scores with them (falling back to `layers`), so
//! `--stats STATS --pipeline PIPELINE` reproduces the sequentially pruned
//! model. Version 1 files (no `sequential`) and version 2 files (no Hessians)
//! are read as before.
//!
//! Hessians (`flexc calibrate --hessian`, version 3): millions of floats per
//! layer are too many for JSON, so they live in a binary sidecar beside the
//! file, named by the top-level key `"hessian_file"` (a file name in the
//! statistics file's folder, `STATS.hessian.bin` for `STATS.json`), and each
//! layer with a Hessian has `"hessian": {"offset": o, "channels": c}`: its
//! `c × c` row-major f32 matrix is the sidecar's floats `o .. o + c²`. The
//! sidecar is the 8 bytes `FLEXCHES` followed by little-endian f32 values;
//! linears sharing an input (q/k/v, gate/up) share one matrix. [`save`]
//! writes the sidecar, then the JSON, each atomically; [`load`] reads both.
//! [`to_json`]/[`from_json`] handle the JSON alone (files without Hessians).
//!
//! `probes` (`flexc calibrate --sensitivity`, optional) lists loss probes
//! ([`flexc_ir::calib::LossProbe`]): the weights quantized together with the
//! probe format and the mean NLL per token the model gained.

use flexc_ir::calib::{Calibration, ChannelStats, LossProbe};
use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher;
use std::path::{Path, PathBuf};

/// The version written.
const VERSION: u64 = 3;
/// The first bytes of a Hessian sidecar.
const MAGIC: &[u8; 8] = b"FLEXCHES";

/// The Hessian sidecar being built: its floats and, per sampled-content key, the
/// offsets of the matrices already in it.
#[derive(Default)]
struct Sidecar {
    floats: Vec<f32>,
    offsets: HashMap<u64, Vec<usize>>,
}

impl Sidecar {
    /// The offset of `h` in the sidecar, appending it unless an equal matrix is there.
    fn offset(&mut self, h: &[f32]) -> usize {
        // A key from the length and ~64 sampled values (cheap for millions
        // of floats); equal keys are confirmed by a full comparison.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        hasher.write_usize(h.len());
        for v in h.iter().step_by(h.len() / 64 + 1) {
            hasher.write_u32(v.to_bits());
        }
        let same = self.offsets.entry(hasher.finish()).or_default();
        let floats = &self.floats;
        if let Some(&o) = same.iter().find(|&&o| floats.get(o..o + h.len()).is_some_and(|f| f.iter().zip(h).all(|(a, b)| a.to_bits() == b.to_bits()))) {
            return o;
        }
        same.push(self.floats.len());
        self.floats.extend_from_slice(h);
        self.floats.len() - h.len()
    }
}

fn layers_json(l: &BTreeMap<String, ChannelStats>, side: &mut Sidecar) -> serde_json::Value {
    serde_json::Value::Object(
        l.iter()
            .map(|(k, s)| {
                let mut v = serde_json::json!({ "nsamples": s.nsamples, "scaler_row": s.scaler_row });
                if let Some(h) = &s.hessian {
                    v["hessian"] = serde_json::json!({ "offset": side.offset(h), "channels": s.scaler_row.len() });
                }
                (k.clone(), v)
            })
            .collect(),
    )
}

/// The JSON text and, when any layer has a Hessian, the sidecar's bytes
/// (referenced as `sidecar_name`).
fn encode(c: &Calibration, sidecar_name: &str) -> (String, Option<Vec<u8>>) {
    let mut side = Sidecar::default();
    let mut v = serde_json::json!({ "format": "flexc-calibration", "version": VERSION, "source": c.source, "layers": layers_json(&c.layers, &mut side) });
    if !c.sequential.is_empty() {
        v["sequential"] = layers_json(&c.sequential, &mut side);
    }
    if !c.probes.is_empty() {
        v["probes"] = c.probes.iter().map(|p| serde_json::json!({ "weights": p.weights, "delta_nll": p.delta_nll })).collect();
    }
    let bytes = (!side.offsets.is_empty()).then(|| {
        v["hessian_file"] = sidecar_name.into();
        let mut b = Vec::with_capacity(MAGIC.len() + 4 * side.floats.len());
        b.extend_from_slice(MAGIC);
        b.extend(side.floats.iter().flat_map(|f| f.to_le_bytes()));
        b
    });
    (v.to_string(), bytes)
}

/// Serialises statistics without Hessians to the file format above (use
/// [`save`] for statistics with Hessians: they need the sidecar).
pub fn to_json(c: &Calibration) -> Result<String, String> {
    match encode(c, "") {
        (text, None) => Ok(text),
        (_, Some(_)) => Err("these statistics hold Hessians, which need a sidecar file: save them with calib::file::save".into()),
    }
}

/// The sidecar path of the statistics file `path`.
pub fn sidecar_path(path: &Path) -> PathBuf {
    path.with_extension("hessian.bin")
}

/// Writes statistics to `path` (and their Hessians, if any, to
/// [`sidecar_path`] first), each file atomically.
pub fn save(path: &Path, c: &Calibration) -> Result<(), String> {
    let side = sidecar_path(path);
    let name = side.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (text, bytes) = encode(c, &name);
    if let Some(b) = bytes {
        crate::output::write_atomic(&side, &b).map_err(|e| format!("{}: cannot write: {e}", side.display()))?;
    }
    crate::output::write_atomic(path, text.as_bytes()).map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

fn parse_layers(v: &serde_json::Value, key: &str, side: Option<(&Path, &[u8])>) -> Result<BTreeMap<String, ChannelStats>, String> {
    let mut layers = BTreeMap::new();
    for (k, s) in v.as_object().ok_or_else(|| format!("\"{key}\" must be an object"))? {
        let nsamples = s.get("nsamples").and_then(|n| n.as_u64()).ok_or_else(|| format!("{key}.{k}: \"nsamples\" missing"))?;
        let row = s
            .get("scaler_row")
            .and_then(|r| r.as_array())
            .ok_or_else(|| format!("{key}.{k}: \"scaler_row\" missing"))?
            .iter()
            .map(|x| x.as_f64().map(|x| x as f32).ok_or_else(|| format!("{key}.{k}: scaler_row holds a non-number")))
            .collect::<Result<Vec<f32>, String>>()?;
        let hessian = match s.get("hessian") {
            None => None,
            Some(h) => {
                let num = |f: &str| h.get(f).and_then(|n| n.as_u64()).map(|n| n as usize).ok_or_else(|| format!("{key}.{k}: hessian.{f} missing"));
                let (offset, channels) = (num("offset")?, num("channels")?);
                let (path, bytes) = side.ok_or_else(|| format!("{key}.{k} has a Hessian but the file names no \"hessian_file\" (or was read without its folder: use calib::load)"))?;
                let start = offset.checked_mul(4).and_then(|o| o.checked_add(MAGIC.len()));
                let end = channels.checked_mul(channels).and_then(|n| n.checked_mul(4)).and_then(|n| start?.checked_add(n));
                let (Some(start), Some(end)) = (start, end) else { return Err(format!("{key}.{k}: hessian offset/channels out of range")) };
                let floats = bytes.get(start..end).ok_or_else(|| format!("{}: truncated: holds {} bytes, {key}.{k}'s Hessian needs bytes {start}..{end}", path.display(), bytes.len()))?;
                Some(floats.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
            }
        };
        layers.insert(k.clone(), ChannelStats { nsamples, scaler_row: row, hessian });
    }
    Ok(layers)
}

/// Parses the file format above (versions 1 to 3) without Hessians' sidecar.
pub fn from_json(text: &str) -> Result<Calibration, String> {
    decode(text, None)
}

/// Parses the JSON text of a statistics file whose sidecar, when it names
/// one, is read from `dir`.
fn decode(text: &str, dir: Option<&Path>) -> Result<Calibration, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not a statistics file: {e}"))?;
    if v.get("format").and_then(|f| f.as_str()) != Some("flexc-calibration") {
        return Err("not a flexc statistics file (\"format\" is not \"flexc-calibration\")".into());
    }
    match v.get("version").and_then(|f| f.as_u64()) {
        Some(1..=VERSION) => {}
        _ => return Err(format!("unsupported statistics file version (flexc reads versions 1 to {VERSION})")),
    }
    let side_bytes = match (v.get("hessian_file"), dir) {
        (Some(name), Some(dir)) => {
            let name = name.as_str().filter(|n| !n.is_empty() && Path::new(n).file_name() == Some(std::ffi::OsStr::new(n))).ok_or("\"hessian_file\" must be a file name")?;
            let path = dir.join(name);
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: cannot read the Hessian sidecar: {e}", path.display()))?;
            if !bytes.starts_with(MAGIC) {
                return Err(format!("{}: not a flexc Hessian sidecar (it does not start with FLEXCHES)", path.display()));
            }
            Some((path, bytes))
        }
        _ => None,
    };
    let side = side_bytes.as_ref().map(|(p, b)| (p.as_path(), b.as_slice()));
    let layers = parse_layers(v.get("layers").ok_or("\"layers\" missing")?, "layers", side)?;
    let sequential = match v.get("sequential") {
        Some(s) => parse_layers(s, "sequential", side)?,
        None => BTreeMap::new(),
    };
    let probes = match v.get("probes") {
        Some(p) => parse_probes(p)?,
        None => Vec::new(),
    };
    Ok(Calibration { source: v.get("source").and_then(|s| s.as_str()).unwrap_or_default().to_string(), layers, sequential, probes })
}

/// Parses `"probes"`: an array of `{"weights": [names], "delta_nll": number}`.
fn parse_probes(v: &serde_json::Value) -> Result<Vec<LossProbe>, String> {
    let arr = v.as_array().ok_or("\"probes\" must be an array")?;
    arr.iter()
        .enumerate()
        .map(|(i, p)| {
            let bad = |what: &str| format!("\"probes\"[{i}]: {what}");
            let weights = p.get("weights").and_then(|w| w.as_array()).ok_or_else(|| bad("\"weights\" must be an array of names"))?;
            let weights = weights.iter().map(|w| w.as_str().map(str::to_string).ok_or_else(|| bad("\"weights\" must be an array of names"))).collect::<Result<Vec<_>, _>>()?;
            let delta_nll = p.get("delta_nll").and_then(|d| d.as_f64()).filter(|d| d.is_finite()).ok_or_else(|| bad("\"delta_nll\" must be a finite number"))?;
            Ok(LossProbe { weights, delta_nll })
        })
        .collect()
}

/// Reads a statistics file (and its Hessian sidecar, if it names one).
pub fn load(path: &Path) -> Result<Calibration, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let dir = path.parent().map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d }).unwrap_or(Path::new("."));
    decode(&text, Some(dir)).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_and_without_sequential_stats() {
        let mut c = Calibration { source: "t".into(), ..Default::default() };
        c.layers.insert("blk.0.attn_q.weight".into(), ChannelStats { nsamples: 3, scaler_row: vec![0.1, 3.4028235e38, 1e-45], hessian: None });
        assert_eq!(from_json(&to_json(&c).unwrap()).unwrap(), c);
        c.sequential.insert("blk.1.attn_q.weight".into(), ChannelStats { nsamples: 3, scaler_row: vec![2.5, 0.0], hessian: None });
        assert_eq!(from_json(&to_json(&c).unwrap()).unwrap(), c);
        assert!(from_json("{}").is_err());
        let v1 = r#"{"format":"flexc-calibration","version":1,"source":"s","layers":{"w":{"nsamples":1,"scaler_row":[1.5]}}}"#;
        let old = from_json(v1).unwrap();
        assert_eq!(old.layers["w"].scaler_row, vec![1.5]);
        assert!(old.sequential.is_empty());
        assert_eq!(from_json(&v1.replace("\"version\":1", "\"version\":2")).unwrap(), old);
        assert!(from_json(&v1.replace("\"version\":1", "\"version\":4")).unwrap_err().contains("version"));
    }

    #[test]
    fn loss_probes_round_trip_and_bad_ones_are_named() {
        let mut c = Calibration { source: "t".into(), ..Default::default() };
        c.probes.push(LossProbe { weights: vec!["blk.0.attn_q.weight".into(), "blk.0.ffn_up.weight".into()], delta_nll: 0.012_5 });
        c.probes.push(LossProbe { weights: vec!["output.weight".into()], delta_nll: -1e-4 });
        assert_eq!(from_json(&to_json(&c).unwrap()).unwrap(), c);
        let base = r#"{"format":"flexc-calibration","version":3,"source":"s","layers":{},"probes":PROBES}"#;
        assert!(from_json(&base.replace("PROBES", r#"[{"weights":["w"],"delta_nll":"x"}]"#)).unwrap_err().contains("\"probes\"[0]: \"delta_nll\""));
        assert!(from_json(&base.replace("PROBES", r#"[{"weights":[1],"delta_nll":0.1}]"#)).unwrap_err().contains("\"weights\""));
        assert!(from_json(&base.replace("PROBES", "{}")).unwrap_err().contains("must be an array"));
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("flexc-stats-file-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn with_hessians() -> Calibration {
        let mut c = Calibration { source: "t".into(), ..Default::default() };
        let q = ChannelStats { nsamples: 2, scaler_row: vec![1.0, 2.0], hessian: Some(vec![1.0, 0.5, 0.5, f32::MIN_POSITIVE]) };
        c.layers.insert("blk.0.attn_q.weight".into(), q.clone());
        c.layers.insert("blk.0.attn_k.weight".into(), q);
        c.layers.insert("blk.0.ffn_down.weight".into(), ChannelStats { nsamples: 2, scaler_row: vec![3.0], hessian: Some(vec![7.25]) });
        c.layers.insert("blk.0.ffn_up.weight".into(), ChannelStats { nsamples: 2, scaler_row: vec![3.0], hessian: None });
        c.sequential.insert("blk.1.attn_q.weight".into(), ChannelStats { nsamples: 2, scaler_row: vec![4.0], hessian: Some(vec![9.0]) });
        c
    }

    #[test]
    fn hessians_round_trip_through_the_sidecar() {
        let dir = temp("rt");
        let path = dir.join("s.json");
        let c = with_hessians();
        save(&path, &c).unwrap();
        assert_eq!(load(&path).unwrap(), c);
        // q and k share one matrix: header + 4 + 1 + 1 floats.
        assert_eq!(std::fs::metadata(sidecar_path(&path)).unwrap().len(), 8 + 4 * 6);
        assert!(to_json(&c).unwrap_err().contains("sidecar"));
        assert!(from_json(&std::fs::read_to_string(&path).unwrap()).unwrap_err().contains("hessian_file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_or_truncated_sidecar_is_a_one_line_error_naming_it() {
        let dir = temp("bad");
        let path = dir.join("s.json");
        save(&path, &with_hessians()).unwrap();
        let side = sidecar_path(&path);
        let bytes = std::fs::read(&side).unwrap();
        std::fs::write(&side, &bytes[..bytes.len() - 3]).unwrap();
        let e = load(&path).unwrap_err();
        assert!(e.contains(&side.display().to_string()) && e.contains("truncated") && !e.contains('\n'), "{e}");
        std::fs::write(&side, b"garbage").unwrap();
        assert!(load(&path).unwrap_err().contains("FLEXCHES"));
        std::fs::remove_file(&side).unwrap();
        let e = load(&path).unwrap_err();
        assert!(e.contains(&side.display().to_string()) && e.contains("cannot read") && !e.contains('\n'), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
