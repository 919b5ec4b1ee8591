//! `rotate`: turn the residual stream by a seeded orthogonal matrix `Q`
//! (QuaRot's fused rotation, the incoherence processing of QuIP/QuIP#) so
//! that the weights quantized afterwards have no outlier channels, with the
//! model's outputs unchanged.
//!
//! With the stream `x` replaced by `x·Q` ([`stream`] finds it):
//! - every RMSNorm weight `g` is folded into the linear layers reading that
//!   norm and set to ones (`rmsnorm(x·Q) = rmsnorm(x)·Q`, as RMS
//!   normalisation only divides by the vector's norm);
//! - a reader `W [out, d]` becomes `(W·diag(g))·Q`, a writer `W [d, in]`
//!   becomes `Qᵀ·W`, the embedding table `E` becomes `E·Q` (kept in its
//!   encoding, e.g. `#q8_0`);
//! - a head tied to the embedding gets its own weight
//!   `= E·diag(g)·Q` (the table and the head no longer agree once the final
//!   norm's weight is folded; named `output.weight`, as an untied head is); the module's `parameters` fact keeps the
//!   parameter count of the tied model, so bits per weight still divide by it.
//!
//! Turned linears are stored as `#q8_0` (`store=q8_0`, the default: fast to
//! calibrate and run, and its rounding is far below any low-bit format's) or
//! f32 (`store=f32`); the quantizer that follows re-encodes them.
//! `Q` is a randomized Hadamard matrix where one of the stream's width can be
//! built ([`orthogonal`]), else a random orthogonal one; both are fixed by
//! `seed`, and the module records `rotated = "<kind>:<seed>"`.
//!
//! Calibration statistics must be recorded on the turned model: the commands
//! compute the default ones after the `rotate` of the pipeline; statistics
//! attached from elsewhere are refused unless their source says they were
//! recorded after the same rotation ([`Rotate::calibration_tag`]).

pub mod orthogonal;
pub mod stream;

use crate::options::{OptDecl, OptKind, Options};
use crate::pipeline::PassSpec;
use crate::pass::{Changed, Pass, PassCx, PassInfo};
use crate::sparsity::prune_nm::retype_weight;
use crate::sparsity::weight_f32;
use flexc_ir::ops::{AttrLit, Symbol};
use flexc_ir::types::{ElemType, Encoding, TensorType};
use flexc_ir::weights::{WeightData, WeightSource};
use flexc_ir::module::PARAMETERS_META;
use flexc_ir::{attrs, Module, OpAttrs};
use orthogonal::{Kind, Orthogonal};
use rayon::prelude::*;
use std::sync::Arc;

pub(crate) const INFO: PassInfo = PassInfo {
    name: "rotate",
    summary: "turn the residual stream by a seeded orthogonal matrix (norms folded into linears; outputs unchanged) so low-bit weights quantize with less error",
    options: &[
        OptDecl { name: "kind", kind: OptKind::Str, default: "hadamard", help: "hadamard (randomized Hadamard; random orthogonal where no Hadamard matrix of the width is built) | random (random orthogonal)" },
        OptDecl { name: "seed", kind: OptKind::Int, default: "0", help: "seed of the random signs / matrix (non-negative)" },
        OptDecl { name: "store", kind: OptKind::Str, default: "q8_0", help: "how turned linears are stored until a quantizer re-encodes them: q8_0 (fast to run and calibrate; f32 where a row is not whole blocks of 32) | f32" },
    ],
    make: |o| Ok(Box::new(Rotate::from_options(o)?)),
};

/// Names a tied head's own copy may take (the first one free), which the
/// quantizer's `lm-head` option recognises.
const HEAD_NAMES: [&str; 2] = ["output.weight", "lm_head.weight"];

/// The module fact naming the rotation applied.
pub const ROTATED_KEY: &str = "rotated";

/// The pass.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rotate {
    /// The family of `Q`.
    pub kind: Kind,
    /// Its seed.
    pub seed: u64,
    /// How turned linears are stored.
    pub store: Store,
}

/// How turned linears are stored until a quantizer re-encodes them.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Store {
    /// `#q8_0` (f32 where a row is not whole blocks of 32).
    Q8_0,
    /// Plain f32.
    F32,
}

impl Store {
    fn encoding(self) -> Result<Option<Encoding>, String> {
        match self {
            Store::F32 => Ok(None),
            Store::Q8_0 => Encoding::parse("q8_0", &[]).map(Some).map_err(|e| format!("rotate: {e}")),
        }
    }
}

impl Rotate {
    fn from_options(o: &Options) -> Result<Rotate, String> {
        let kind = Kind::parse(o.str("kind")).map_err(|e| format!("rotate: {e}"))?;
        let seed = u64::try_from(o.int("seed")).map_err(|_| format!("rotate: seed must be non-negative, got {}", o.int("seed")))?;
        let store = match o.str("store") {
            "f32" => Store::F32,
            "q8_0" => Store::Q8_0,
            s => return Err(format!("rotate: store must be q8_0 or f32, got '{s}'")),
        };
        Ok(Rotate { kind, seed, store })
    }

    /// The pass a pipeline entry `rotate{...}` stands for.
    pub fn from_spec(spec: &PassSpec) -> Result<Rotate, String> {
        Rotate::from_options(&Options::check(spec, INFO.options)?)
    }

    /// What calibration statistics recorded after this rotation carry in
    /// their source (and in their cache key): kind, seed and storage.
    pub fn calibration_tag(&self) -> String {
        format!("rotated={}:{:?}", self.tag(), self.store)
    }

    /// `"<kind>:<seed>"`, the value of the module's `rotated` fact.
    pub fn tag(&self) -> String {
        format!("{}:{}", self.kind.name(), self.seed)
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// `rows ← rows·Q` for a row-major `[_, d]` matrix (optionally scaling each
/// column by `g` first), in parallel over rows.
fn turn_rows(q: &Orthogonal, values: &mut [f32], g: Option<&[f32]>) {
    let d = q.order();
    values.par_chunks_mut(d).for_each(|row| {
        let mut x: Vec<f64> = row.iter().enumerate().map(|(j, &v)| v as f64 * g.map_or(1.0, |g| g[j] as f64)).collect();
        q.apply(&mut x);
        for (o, v) in row.iter_mut().zip(x) {
            *o = v as f32;
        }
    });
}

/// `W ← Qᵀ·W` for a row-major `[d, k]` matrix (each column turned).
fn turn_columns(q: &Orthogonal, values: &mut [f32], k: usize) {
    let d = q.order();
    let mut t = vec![0f32; d * k];
    for i in 0..d {
        for j in 0..k {
            t[j * d + i] = values[i * k + j];
        }
    }
    turn_rows(q, &mut t, None);
    for i in 0..d {
        for j in 0..k {
            values[i * k + j] = t[j * d + i];
        }
    }
}

/// How a turned weight is stored: its own encoding (the embedding table),
/// the pass's `store` encoding (linears), or f32.
#[derive(Copy, Clone)]
enum Storage {
    Own,
    As(Option<Encoding>),
}

/// The type and bytes of `values` of `shape` stored as `how` (f32 where the
/// encoding does not fit the rows).
fn encoded(name: &str, old: &TensorType, values: &[f32], how: Storage) -> Result<(TensorType, Vec<u8>), String> {
    let shape: Vec<usize> = old.fixed_shape().ok_or_else(|| format!("rotate: @{name} has no fixed shape"))?.iter().map(|&d| d as usize).collect();
    let enc = match how {
        Storage::Own => old.encoding,
        Storage::As(e) => e,
    };
    let cols = shape.last().copied().unwrap_or(0) as u64;
    match enc.filter(|e| cols.is_multiple_of(e.block_elems())) {
        Some(enc) => {
            let bytes = enc.encode(&shape, values).map_err(|e| format!("rotate: encoding @{name} as {enc}: {e}"))?;
            Ok((TensorType { shape: old.shape.clone(), elem: ElemType::F32, encoding: Some(enc) }, bytes))
        }
        None => Ok((TensorType { shape: old.shape.clone(), elem: ElemType::F32, encoding: None }, f32_bytes(values))),
    }
}

/// Replaces weight `name`'s values, stored as `how`.
fn store(m: &mut Module, name: &str, values: &[f32], how: Storage) -> Result<(), String> {
    let id = m.weights.lookup(name).ok_or_else(|| format!("rotate: unknown weight @{name}"))?;
    let old = m.weights.get(id).clone();
    let (ty, bytes) = encoded(name, &old.ty, values, how)?;
    if ty == old.ty {
        // Same type: only the bytes change, every reader (a gather of an
        // encoded table included) stays as it is.
        m.weights.retain(|w| w.name != name);
        m.weights.insert(WeightData { source: WeightSource::Derived(Arc::from(bytes)), ..old })?;
        return Ok(());
    }
    retype_weight(m, name, ty, bytes)
}

impl Pass for Rotate {
    fn name(&self) -> &'static str {
        "rotate"
    }

    fn run(&mut self, m: &mut Module, cx: &mut PassCx) -> Result<Changed, String> {
        if let Some(done) = m.meta(ROTATED_KEY) {
            return Err(format!("rotate: the module is already rotated ({done})"));
        }
        if let Some(c) = &m.calibration
            && !c.source.contains(&self.calibration_tag())
        {
            return Err(format!(
                "rotate: the attached calibration statistics ({}) were not recorded on the model rotated by rotate{{kind={},seed={}}}; record them after the rotation (the default statistics are), or put quantize before rotate",
                c.source,
                self.kind.name(),
                self.seed
            ));
        }
        let s = stream::find(m)?;
        let linear_enc = self.store.encoding()?;
        let parameters = m.parameter_count();
        let q = Orthogonal::new(s.width, self.kind, self.seed).map_err(|e| format!("rotate: width {}: {e}", s.width))?;
        let norm_values: Vec<(String, Vec<f32>)> = s.norms.iter().map(|g| Ok((g.clone(), weight_f32(m, g)?))).collect::<Result<_, String>>()?;
        let norm = |name: &str| norm_values.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice());
        let total = s.readers.len() + s.writers.len() + 1;
        // The embedding first: a tied head reads the original table.
        let table = weight_f32(m, &s.embedding)?;
        let mut done = 0;
        for r in &s.readers {
            cx.progress.step("rotate: turning weight", done, total);
            done += 1;
            if r.weight == s.embedding {
                // A tied head: its own turned copy, the table stays for the gather.
                let mut head = table.clone();
                turn_rows(&q, &mut head, norm(&r.norm));
                let id = m.weights.lookup(&s.embedding).ok_or("rotate: the embedding table vanished")?;
                let (shape, span) = (m.weights.get(id).ty.shape.clone(), m.weights.get(id).span);
                let name = HEAD_NAMES.iter().find(|n| m.weights.lookup(n).is_none()).ok_or("rotate: the module already has weights named output.weight and lm_head.weight besides a tied head")?.to_string();
                let (ty, bytes) = encoded(&name, &TensorType { shape, elem: ElemType::F32, encoding: None }, &head, Storage::As(linear_enc))?;
                m.weights.insert(WeightData { name: name.clone(), ty: ty.clone(), source: WeightSource::Derived(Arc::from(bytes)), span })?;
                let f = &mut m.funcs[s.func];
                let at = f.layout.iter().position(|&o| o == r.matmul).ok_or("rotate: the head matmul vanished")?;
                let encoded = ty.encoding.is_some();
                let mut w = f.insert_at(at, OpAttrs::Weight(attrs::Weight { name: Symbol(name) }), &[], Some(ty))?;
                if encoded {
                    w = f.insert_at(at + 1, OpAttrs::Dequantize(attrs::Dequantize {}), &[w], None)?;
                }
                f.dfg.ops[r.matmul].args[1] = w;
                continue;
            }
            let mut w = weight_f32(m, &r.weight)?;
            turn_rows(&q, &mut w, norm(&r.norm));
            store(m, &r.weight, &w, Storage::As(linear_enc))?;
        }
        for name in &s.writers {
            cx.progress.step("rotate: turning weight", done, total);
            done += 1;
            let mut w = weight_f32(m, name)?;
            let k = w.len() / s.width;
            turn_columns(&q, &mut w, k);
            store(m, name, &w, Storage::As(linear_enc))?;
        }
        let mut e = table;
        turn_rows(&q, &mut e, None);
        store(m, &s.embedding, &e, Storage::Own)?;
        for (g, v) in &norm_values {
            store(m, g, &vec![1f32; v.len()], Storage::As(None))?;
        }
        cx.progress.step("rotate: turning weight", total, total);
        for f in m.funcs.values_mut() {
            crate::rewrite::remove_dead_ops(f);
        }
        m.meta.retain(|(k, _)| k != PARAMETERS_META);
        m.meta.push((PARAMETERS_META.into(), AttrLit::Int(parameters as i64)));
        m.meta.push((ROTATED_KEY.into(), AttrLit::Str(self.tag())));
        cx.remarks.push(format!(
            "rotate: residual stream of width {} turned by a {} matrix (seed {}): {} norms folded into {} readers, {} writers, embedding @{}",
            s.width,
            if q.is_hadamard() { "randomized Hadamard" } else { "random orthogonal" },
            self.seed,
            s.norms.len(),
            s.readers.len(),
            s.writers.len(),
            s.embedding
        ));
        Ok(Changed::Yes)
    }
}
