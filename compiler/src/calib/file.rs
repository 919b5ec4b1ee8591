//! The statistics file (`flexc calibrate -o STATS`, read by `--stats`).
//!
//! JSON, one object:
//! ```text
//! {"format": "flexc-calibration", "version": 2,
//!  "source": "model=… text=… samples=… seqlen=… seed=…",
//!  "layers": {"blk.0.attn_q.weight": {"nsamples": 128, "scaler_row": [f32, …]}, …},
//!  "sequential": {"blk.1.attn_q.weight": {"nsamples": 128, "scaler_row": [f32, …]}, …}}
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
//! model. Version 1 files (no `sequential`) are read as before.

use flexc_ir::calib::{Calibration, ChannelStats};
use std::collections::BTreeMap;

/// The version written.
const VERSION: u64 = 2;

fn layers_json(l: &BTreeMap<String, ChannelStats>) -> serde_json::Value {
    serde_json::Value::Object(l.iter().map(|(k, s)| (k.clone(), serde_json::json!({ "nsamples": s.nsamples, "scaler_row": s.scaler_row }))).collect())
}

/// Serialises statistics to the file format above.
pub fn to_json(c: &Calibration) -> String {
    let mut v = serde_json::json!({ "format": "flexc-calibration", "version": VERSION, "source": c.source, "layers": layers_json(&c.layers) });
    if !c.sequential.is_empty() {
        v["sequential"] = layers_json(&c.sequential);
    }
    v.to_string()
}

fn parse_layers(v: &serde_json::Value, key: &str) -> Result<BTreeMap<String, ChannelStats>, String> {
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
        layers.insert(k.clone(), ChannelStats { nsamples, scaler_row: row, hessian: None });
    }
    Ok(layers)
}

/// Parses the file format above (versions 1 and 2).
pub fn from_json(text: &str) -> Result<Calibration, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not a statistics file: {e}"))?;
    if v.get("format").and_then(|f| f.as_str()) != Some("flexc-calibration") {
        return Err("not a flexc statistics file (\"format\" is not \"flexc-calibration\")".into());
    }
    match v.get("version").and_then(|f| f.as_u64()) {
        Some(1 | 2) => {}
        _ => return Err(format!("unsupported statistics file version (flexc reads versions 1 and {VERSION})")),
    }
    let layers = parse_layers(v.get("layers").ok_or("\"layers\" missing")?, "layers")?;
    let sequential = match v.get("sequential") {
        Some(s) => parse_layers(s, "sequential")?,
        None => BTreeMap::new(),
    };
    Ok(Calibration { source: v.get("source").and_then(|s| s.as_str()).unwrap_or_default().to_string(), layers, sequential })
}

/// Reads a statistics file.
pub fn load(path: &std::path::Path) -> Result<Calibration, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_and_without_sequential_stats() {
        let mut c = Calibration { source: "t".into(), ..Default::default() };
        c.layers.insert("blk.0.attn_q.weight".into(), ChannelStats { nsamples: 3, scaler_row: vec![0.1, 3.4028235e38, 1e-45], hessian: None });
        assert_eq!(from_json(&to_json(&c)).unwrap(), c);
        c.sequential.insert("blk.1.attn_q.weight".into(), ChannelStats { nsamples: 3, scaler_row: vec![2.5, 0.0], hessian: None });
        assert_eq!(from_json(&to_json(&c)).unwrap(), c);
        assert!(from_json("{}").is_err());
        let v1 = r#"{"format":"flexc-calibration","version":1,"source":"s","layers":{"w":{"nsamples":1,"scaler_row":[1.5]}}}"#;
        let old = from_json(v1).unwrap();
        assert_eq!(old.layers["w"].scaler_row, vec![1.5]);
        assert!(old.sequential.is_empty());
        assert!(from_json(&v1.replace("\"version\":1", "\"version\":3")).unwrap_err().contains("version"));
    }
}
