//! Calibration: run a model on windows of a text and record, for every linear
//! layer inside a decoder block, Wanda's per-input-channel statistics
//! ([`flexc_ir::calib::ChannelStats`]), plus the statistics file format.
//!
//! The reference interpreter reports every op's operands to an observer; the
//! operands of each block `tensor.matmul {transpose_b}` whose right side is a
//! weight are the linear's inputs. One window is one forward call, so each
//! call adds one sequence (b = 1), as the reference code does. A faster
//! backend can feed the same [`Recorder`] later.
//!
//! # Statistics file (`flexc calibrate -o STATS`)
//!
//! JSON, one object:
//! ```text
//! {"format": "flexc-calibration", "version": 1,
//!  "source": "model=… text=… samples=… seqlen=… seed=…",
//!  "layers": {"blk.0.attn_q.weight": {"nsamples": 128, "scaler_row": [f32, …]}, …}}
//! ```
//! `scaler_row[j]` is the running mean over sequences of ‖X[:, j]‖² (the
//! squared L2 norm of input channel j over that sequence's tokens); f32 values
//! are written with the shortest round-tripping decimal form.

use flexc_backends::reference::{Interpreter, Tensor};
use flexc_ir::calib::{Calibration, ChannelStats};
use flexc_ir::{ElemType, Module, Op, OpAttrs};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// Block linears of `@forward`: matmul op → weight name.
pub fn linear_ops(m: &Module) -> HashMap<Op, String> {
    let mut out = HashMap::new();
    let Some(id) = m.func("forward") else { return out };
    let f = &m.funcs[id];
    for &op in &f.layout {
        let data = &f.dfg.ops[op];
        let OpAttrs::Matmul(mm) = &data.attrs else { continue };
        if !mm.transpose_b {
            continue;
        }
        let mut v = data.args[1];
        while let Some(def) = f.dfg.def_op(v) {
            match &f.dfg.ops[def].attrs {
                OpAttrs::Dequantize(_) | OpAttrs::Cast(_) => v = f.dfg.ops[def].args[0],
                OpAttrs::Weight(w) => {
                    if flexc_passes::sparsity::block_of(&w.name.0).is_some() {
                        out.insert(op, w.name.0.clone());
                    }
                    break;
                }
                _ => break,
            }
        }
    }
    out
}

/// Accumulates statistics from observed linear inputs.
#[derive(Default)]
pub struct Recorder {
    /// Per weight name.
    pub layers: BTreeMap<String, ChannelStats>,
}

impl Recorder {
    /// Adds one sequence of inputs `[tokens, channels]` to a linear.
    pub fn add(&mut self, weight: &str, x: &[f32], channels: usize) {
        self.layers.entry(weight.to_string()).or_default().add_sequence(x, channels);
    }
}

/// Deterministic window starts: the reference's `randint(0, len − seqlen − 1)`
/// per sample, from a SplitMix64 stream seeded with `seed`.
pub fn window_starts(len: usize, seqlen: usize, samples: usize, seed: u64) -> Vec<usize> {
    let span = len.saturating_sub(seqlen);
    let mut s = seed;
    (0..samples)
        .map(|_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            if span == 0 { 0 } else { (z % span as u64) as usize }
        })
        .collect()
}

/// Runs `@forward` on every window (position 0, empty caches) with the
/// reference interpreter and returns the statistics. `progress(done)` is
/// called after each window.
pub fn calibrate(m: &Module, windows: &[Vec<u32>], source: String, progress: &mut dyn FnMut(usize)) -> Result<Calibration, String> {
    let ops = linear_ops(m);
    if ops.is_empty() {
        return Err("the module has no block linears to calibrate (weights named blk.N.*)".into());
    }
    let id = m.func("forward").ok_or("the module has no @forward function")?;
    let f = &m.funcs[id];
    let rec = Rc::new(RefCell::new(Recorder::default()));
    let mut interp = Interpreter::new(m);
    let r2 = rec.clone();
    interp.set_observer(Some(Box::new(move |_f, op, args: &[std::sync::Arc<Tensor>]| {
        if let Some(name) = ops.get(&op) {
            if let Some(x) = args[0].as_f32() {
                let ch = *args[0].shape.last().unwrap_or(&1);
                r2.borrow_mut().add(name, x, ch);
            }
        }
    })));
    for (i, w) in windows.iter().enumerate() {
        let ids = Tensor::int(ElemType::I32, &[w.len()], w.iter().map(|&t| t as i64).collect())?;
        let mut inputs = vec![ids, Tensor::scalar_i32(0)];
        for &p in &f.params[2..] {
            let shape: Vec<usize> = f.dfg.ty(p).fixed_shape().unwrap_or_default().iter().map(|&d| d as usize).collect();
            if shape.first().is_some_and(|&c| c < w.len()) {
                return Err(format!("a window of {} tokens does not fit the KV cache of {}", w.len(), shape[0]));
            }
            inputs.push(Tensor::float(ElemType::F32, &shape, vec![0.0; shape.iter().product()]));
        }
        interp.run_id(id, inputs).map_err(|e| e.to_string())?;
        progress(i + 1);
    }
    drop(interp);
    let layers = std::mem::take(&mut rec.borrow_mut().layers);
    Ok(Calibration { source, layers })
}

/// Serialises statistics to the file format above.
pub fn to_json(c: &Calibration) -> String {
    let layers: serde_json::Map<String, serde_json::Value> = c
        .layers
        .iter()
        .map(|(k, s)| (k.clone(), serde_json::json!({ "nsamples": s.nsamples, "scaler_row": s.scaler_row })))
        .collect();
    serde_json::json!({ "format": "flexc-calibration", "version": 1, "source": c.source, "layers": layers }).to_string()
}

/// Parses the file format above.
pub fn from_json(text: &str) -> Result<Calibration, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not a statistics file: {e}"))?;
    if v.get("format").and_then(|f| f.as_str()) != Some("flexc-calibration") {
        return Err("not a flexc statistics file (\"format\" is not \"flexc-calibration\")".into());
    }
    if v.get("version").and_then(|f| f.as_u64()) != Some(1) {
        return Err("unsupported statistics file version (flexc reads version 1)".into());
    }
    let mut layers = BTreeMap::new();
    for (k, s) in v.get("layers").and_then(|l| l.as_object()).ok_or("\"layers\" must be an object")? {
        let nsamples = s.get("nsamples").and_then(|n| n.as_u64()).ok_or_else(|| format!("{k}: \"nsamples\" missing"))?;
        let row = s
            .get("scaler_row")
            .and_then(|r| r.as_array())
            .ok_or_else(|| format!("{k}: \"scaler_row\" missing"))?
            .iter()
            .map(|x| x.as_f64().map(|x| x as f32).ok_or_else(|| format!("{k}: scaler_row holds a non-number")))
            .collect::<Result<Vec<f32>, String>>()?;
        layers.insert(k.clone(), ChannelStats { nsamples, scaler_row: row, hessian: None });
    }
    Ok(Calibration { source: v.get("source").and_then(|s| s.as_str()).unwrap_or_default().to_string(), layers })
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
    fn file_round_trip_and_windows() {
        let mut c = Calibration { source: "t".into(), layers: BTreeMap::new() };
        c.layers.insert("blk.0.attn_q.weight".into(), ChannelStats { nsamples: 3, scaler_row: vec![0.1, 3.4028235e38, 1e-45], hessian: None });
        assert_eq!(from_json(&to_json(&c)).unwrap(), c);
        assert!(from_json("{}").is_err());
        let w = window_starts(1000, 100, 5, 42);
        assert_eq!(w, window_starts(1000, 100, 5, 42));
        assert!(w.iter().all(|&s| s < 900));
    }
}
