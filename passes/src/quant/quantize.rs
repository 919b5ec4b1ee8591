//! `quantize`: re-encodes matching weight-table entries in a low-bit scheme,
//! with the best quantizer the calibration data allows, optionally choosing
//! the format per weight under a bits-per-weight budget.
//!
//! For every `tensor.weight @w` whose name matches `layers` (comma-separated
//! globs) and which is a rank-2 float weight `[n, k]` with `k` a multiple of
//! the group, the weight's values (decoded to f32 first when it is already
//! an encoding) are encoded into a new derived entry `@w.<tag>`
//! (`WeightSource::Derived`); the old entry is dropped when nothing reads
//! it any more. Uses are rewired:
//!
//! - a plain weight becomes `quant.dequantize(@w.<tag>)`, so a following
//!   `tensor.matmul` is unchanged (and `fuse-dequant` can turn it into `quant.mpgemm`);
//! - an encoded weight's readers (`quant.dequantize`, `quant.mpgemm`,
//!   `tensor.gather`) read the new entry directly, their result types unchanged.
//!
//! **Which weights.** Embedding tables (read by `tensor.gather`, or named
//! like `*token_embd*`, `*embed_tokens*`) are skipped unless
//! `embeddings=true`; the LM head (`output.weight`, `*lm_head*`, or an
//! embedding table a matmul also reads — a tied head) unless `lm-head=true`.
//! A tied head quantized without `embeddings=true` is *untied*: the matmul
//! reads a new quantized copy, the gather keeps the original table (which a
//! decoded token reads one row of). Weights whose shape does not fit the
//! group are skipped with a remark.
//!
//! **Which quantizer** (`encode.rs`): `method=gptq` (the default) runs GPTQ
//! with the layer's calibration Hessian (act-order with static groups by
//! default: on SmolLM2, 20 chunks, 3-bit g64 32.44 → 30.25 and 4-bit g64
//! 25.80 → 25.20; `act-order=false` for column order); without a Hessian, RTN with importance-weighted
//! scales from the recorded activation statistics; without statistics,
//! plain RTN — each fallback is named in a remark. `method=rtn` never uses
//! Hessians. `#bcq` options as ShiftAddLLM (`optq.rs`, `optq_shared.rs`):
//! `hessian=true` insists on Hessians; `mix-bits=r1,r2,…` sets bits per
//! weight by ShiftAddLLM's sensitivity; `mode=row|acc|lat` the `α` layout.
//!
//! **Mixed precision** (`bpw=B`, `mixed.rs`): every selected weight is
//! quantized in each `candidates` format (default: `#gq` with zero points,
//! 2 bits at group 64, 3 and 4 bits at groups 64/128, then Q5_0 and Q8_0;
//! the LUT kernel streams 3-bit codes at 3 bits; groups of 32 cost more
//! bits than they save error: offered them, the search on SmolLM2 chose
//! none at 3.0–4.5 bpw), each result's output
//! error `Σ δᵀHδ` on the calibration data is measured relative to the
//! layer's output energy `Σ wᵀHw` (without Hessians: the
//! importance-weighted squared error relative to the weighted norm), and
//! the per-weight formats minimising the summed relative error such that
//! the bytes of every weight read per decoded token (in the layout the
//! CPU kernel streams: `QuantFormat::streamed_bytes`), divided by the
//! model's parameters, stay within `B` bits are found exactly. When the
//! calibration holds loss probes (`flexc calibrate --sensitivity`), each
//! layer's relative errors are first scaled into estimated nats of loss
//! (`loss.rs`), so the search minimises the estimated ΔNLL instead. The
//! choice per tensor (format, bytes, error) is listed in the remarks.

use super::encode::{encode_weight, Encoded, LayerData, Method};
use super::formats::QuantFormat;
use super::gptq::{output_error, GptqOptions, GptqPlan};
use super::glob_match;
use super::loss;
use super::mixed::{allocate, Choice};
use super::optq::{allocate_bits, sensitivity, InverseHessian};
use crate::pass::{Changed, Pass, PassCx, PassInfo};
use crate::options::{OptDecl, OptKind, Options};
use flexc_ir::ops::Symbol;
use flexc_ir::calib::Calibration;
use flexc_ir::quant::{decode, ggml, BcqParams, BcqScales, ParamValue};
use flexc_ir::weights::{WeightData, WeightSource};
use flexc_ir::{attrs, ElemType, Encoding, Module, OpAttrs, TensorType, WeightId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

pub(crate) const INFO: PassInfo = PassInfo {
    name: "quantize",
    summary: "re-encode weights (GPTQ / importance-weighted RTN) as #gq, ternary, BCQ, shift-add or ggml blocks; bpw= picks formats per weight under a budget",
    options: &[
        OptDecl { name: "scheme", kind: OptKind::Str, default: "rtn", help: "rtn (#gq) | ternary (#ternary) | bcq (#bcq) | shiftadd (#bcq, pot = true) | q4_0 | q4_1 | q5_0 | q5_1 | q8_0 (ggml blocks)" },
        OptDecl { name: "bits", kind: OptKind::Int, default: "4", help: "bits per weight, 1..4 (rtn, bcq, shiftadd)" },
        OptDecl { name: "group", kind: OptKind::Int, default: "64", help: "elements per scale group, a multiple of 8 (ternary: 0 = per tensor)" },
        OptDecl { name: "zero", kind: OptKind::Bool, default: "true", help: "rtn: an integer zero point per group (false: symmetric levels ±d/2, ±3d/2, … with no zero)" },
        OptDecl { name: "method", kind: OptKind::Str, default: "gptq", help: "gptq (Hessian error feedback; falls back to rtn without Hessians) | rtn (importance-weighted scales when statistics exist)" },
        OptDecl { name: "act-order", kind: OptKind::Bool, default: "true", help: "gptq: quantize columns in descending Hessian diagonal, with static groups (false: in column order, dynamic groups)" },
        OptDecl { name: "bpw", kind: OptKind::Float, default: "0", help: "mixed precision: average bits per weight read per token (all weights, head and embeddings included); 0 = off" },
        OptDecl { name: "candidates", kind: OptKind::Str, default: "", help: "bpw: formats to choose from, e.g. gq2g64,gq3g64,gq4g32,q8_0 (gq<bits>g<group>, s suffix = symmetric; ggml names); default gq2g64,gq3g64,gq3g128,gq4g64,gq4g128,q5_0,q8_0" },
        OptDecl { name: "apot", kind: OptKind::Int, default: "3", help: "shiftadd: powers of two per scale, 1..3" },
        OptDecl { name: "mode", kind: OptKind::Str, default: "row", help: "shiftadd/bcq α layout: row (per row and group) | acc (per column) | lat (per 8 columns × rows/8)" },
        OptDecl { name: "hessian", kind: OptKind::Bool, default: "false", help: "require calibration Hessians for every selected weight (an error instead of the RTN fallback)" },
        OptDecl { name: "mix-bits", kind: OptKind::Str, default: "", help: "shiftadd/bcq: shares of weights at 1,2,… bits by sensitivity, e.g. 0.0,0.8,0.2 (needs Hessians)" },
        OptDecl { name: "layers", kind: OptKind::Str, default: "*", help: "comma-separated globs over weight names" },
        OptDecl { name: "lm-head", kind: OptKind::Bool, default: "false", help: "also quantize the output projection (a tied head is untied unless embeddings=true)" },
        OptDecl { name: "embeddings", kind: OptKind::Bool, default: "false", help: "also quantize embedding tables" },
    ],
    make: |o| Ok(Box::new(Quantize::from_options(o)?)),
};

/// The default `bpw` candidates.
const DEFAULT_CANDIDATES: &str = "gq2g64,gq3g64,gq3g128,gq4g64,gq4g128,q5_0,q8_0";

struct Quantize {
    enc: Encoding,
    layers: Vec<String>,
    lm_head: bool,
    embeddings: bool,
    method: Method,
    gptq: GptqOptions,
    require_hessian: bool,
    /// Shares of weights at 1, 2, … bits (`mix-bits`), empty when unset.
    mix_bits: Vec<f64>,
    /// Mixed precision: the budget and the candidates.
    bpw: Option<(f64, Vec<Encoding>)>,
}

/// A candidate spelling: `gq<bits>g<group>[s]` or a ggml type name.
fn parse_candidate(s: &str) -> Result<Encoding, String> {
    let bad = || format!("quantize: candidate '{s}' is not gq<bits>g<group>[s] (e.g. gq3g64) or a ggml type (q4_0, q8_0, …)");
    if let Some(rest) = s.strip_prefix("gq") {
        let (rest, zero) = match rest.strip_suffix('s') {
            Some(r) => (r, false),
            None => (rest, true),
        };
        let (bits, group) = rest.split_once('g').ok_or_else(bad)?;
        let p = [("bits", bits), ("group", group)].map(|(k, v)| v.parse::<i64>().map(|v| (k.to_string(), ParamValue::Int(v))));
        let mut params: Vec<(String, ParamValue)> = p.into_iter().collect::<Result<_, _>>().map_err(|_| bad())?;
        params.push(("zero".into(), ParamValue::Bool(zero)));
        return Encoding::parse("gq", &params).map_err(|e| format!("quantize: candidate '{s}': {e}"));
    }
    ggml_scheme(s).ok_or_else(bad)
}

/// A ggml block type the quantizer can write, by its lower-case name.
fn ggml_scheme(s: &str) -> Option<Encoding> {
    let t = ggml::GgmlType::from_name(&s.to_ascii_uppercase())?;
    let enc = Encoding::Ggml(t);
    (QuantFormat::of(enc).is_some() || (flexc_ir::quant::is_ggml_encoding(t) && ggml::can_quantize(t))).then_some(enc)
}

impl Quantize {
    fn from_options(o: &Options) -> Result<Quantize, String> {
        let int = |k: &str| ParamValue::Int(o.int(k));
        let scheme = o.str("scheme");
        let enc = if let Some(enc) = ggml_scheme(scheme).filter(|_| scheme.starts_with('q')) {
            enc
        } else {
            let (name, mut params): (&str, Vec<(&str, ParamValue)>) = match scheme {
                "rtn" => ("gq", vec![("bits", int("bits")), ("group", int("group")), ("zero", ParamValue::Bool(o.bool("zero")))]),
                "ternary" => ("ternary", vec![("group", int("group"))]),
                "bcq" => ("bcq", vec![("bits", int("bits"))]),
                "shiftadd" => ("bcq", vec![("bits", int("bits")), ("pot", ParamValue::Bool(true)), ("apot", int("apot"))]),
                s => return Err(format!("quantize: unknown scheme '{s}' (valid: rtn, ternary, bcq, shiftadd, q4_0, q4_1, q5_0, q5_1, q8_0)")),
            };
            match (name, o.str("mode")) {
                ("bcq", "row") => params.push(("group", int("group"))),
                ("bcq", m @ ("acc" | "lat")) => params.push(("scales", ParamValue::Ident(m.to_string()))),
                ("bcq", m) => return Err(format!("quantize: unknown mode '{m}' (valid: row, acc, lat)")),
                (_, "row") => {}
                (_, m) => return Err(format!("quantize: mode={m} applies to scheme=shiftadd or bcq")),
            }
            let params: Vec<(String, ParamValue)> = params.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            Encoding::parse(name, &params).map_err(|e| format!("quantize: {e}"))?
        };
        let layers: Vec<String> = o.str("layers").split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        if layers.is_empty() {
            return Err("quantize: layers is empty (give comma-separated globs, e.g. blk.*.ffn_*; * is every weight)".into());
        }
        if let Some(g) = layers.iter().find(|g| g.contains(['[', ']', '{', '}'])) {
            return Err(format!("quantize: layers glob '{g}': only * and ? are wildcards (no [...] or {{...}})"));
        }
        let mix = o.str("mix-bits").trim();
        let mix_bits: Vec<f64> = if mix.is_empty() {
            Vec::new()
        } else {
            mix.split(',').map(|r| r.trim().parse::<f64>().ok().filter(|v| (0.0..=1.0).contains(v))).collect::<Option<_>>().ok_or_else(|| format!("quantize: mix-bits '{mix}' must be comma-separated shares in [0, 1]"))?
        };
        if !mix_bits.is_empty() && (mix_bits.len() > 4 || (mix_bits.iter().sum::<f64>() - 1.0).abs() > 1e-6) {
            return Err(format!("quantize: mix-bits '{mix}' must be at most 4 shares (1..4 bits) summing to 1"));
        }
        if !mix_bits.is_empty() && enc.binary_coded().is_none() {
            return Err("quantize: mix-bits applies to scheme=shiftadd or bcq".into());
        }
        let method = match o.str("method") {
            "gptq" => Method::Gptq,
            "rtn" => Method::Rtn,
            m => return Err(format!("quantize: unknown method '{m}' (valid: gptq, rtn)")),
        };
        let require_hessian = o.bool("hessian");
        if require_hessian && method == Method::Rtn {
            return Err("quantize: hessian=true needs method=gptq".into());
        }
        let bpw = o.float("bpw");
        let bpw = if bpw == 0.0 {
            if !o.str("candidates").is_empty() {
                return Err("quantize: candidates= applies with bpw=".into());
            }
            None
        } else {
            if !(0.5..=32.0).contains(&bpw) {
                return Err(format!("quantize: bpw must be in 0.5..=32 (or 0 for off), got {bpw}"));
            }
            if !mix_bits.is_empty() {
                return Err("quantize: bpw= and mix-bits= are two ways to mix bits; give one".into());
            }
            let list = if o.str("candidates").is_empty() { DEFAULT_CANDIDATES } else { o.str("candidates") };
            let cands: Vec<Encoding> = list.split(',').map(|c| parse_candidate(c.trim())).collect::<Result<_, _>>()?;
            Some((bpw, cands))
        };
        let gptq = GptqOptions { act_order: o.bool("act-order"), static_groups: false };
        Ok(Quantize { enc, layers, lm_head: o.bool("lm-head"), embeddings: o.bool("embeddings"), method, gptq, require_hessian, mix_bits, bpw })
    }

    /// Whether the weight `name` is selected: `embedding` (read by a gather
    /// or named so) and `head` (the output projection) need their flags.
    fn selects(&self, name: &str, embedding: bool, head: bool) -> bool {
        let embedding = embedding || name.contains("token_embd") || name.contains("embed_tokens");
        let head = head || name == "output.weight" || name.contains("lm_head");
        let allowed = if head && embedding { self.lm_head } else { (self.embeddings || !embedding) && (self.lm_head || !head) };
        allowed && self.layers.iter().any(|g| glob_match(g, name))
    }
}

/// The f32 values of a weight in any storage (plain float or encoded).
fn weight_values(m: &Module, id: WeightId) -> Result<Vec<f32>, String> {
    let w = m.weights.get(id);
    let bytes = m.weights.bytes(id).map_err(|e| e.to_string())?;
    let n = w.ty.numel().ok_or_else(|| format!("weight '{}' has no fixed size", w.name))? as usize;
    let mut out = vec![0f32; n];
    match (w.ty.encoding, w.ty.elem) {
        (Some(enc), _) => decode(enc, &bytes, &mut out)?,
        (None, ElemType::F32) => ggml::dequantize(ggml::GgmlType::F32, &bytes, &mut out).map_err(|e| e.to_string())?,
        (None, ElemType::F16) => ggml::dequantize(ggml::GgmlType::F16, &bytes, &mut out).map_err(|e| e.to_string())?,
        (None, ElemType::BF16) => ggml::dequantize(ggml::GgmlType::BF16, &bytes, &mut out).map_err(|e| e.to_string())?,
        (None, e) => return Err(format!("weight '{}' has integer elements ({e})", w.name)),
    }
    Ok(out)
}

/// How the module reads each weight: by a gather (an embedding table), by
/// anything else (a matmul's operand, possibly through a dequantize).
#[derive(Default)]
struct Readers {
    gathered: HashSet<String>,
    other: HashSet<String>,
}

fn readers(m: &Module) -> Readers {
    let mut r = Readers::default();
    for (_, f) in m.funcs.iter() {
        for &op in &f.layout {
            let d = &f.dfg.ops[op];
            for (i, &a) in d.args.iter().enumerate() {
                if let Some(OpAttrs::Weight(w)) = f.dfg.def_op(a).map(|o| &f.dfg.ops[o].attrs) {
                    let set = if matches!(d.attrs, OpAttrs::Gather(_)) && i == 0 { &mut r.gathered } else { &mut r.other };
                    set.insert(w.name.0.clone());
                }
            }
        }
    }
    r
}

/// A weight picked for quantization.
struct Picked {
    name: String,
    values: Vec<f32>,
    n: usize,
    k: usize,
    /// A tied head: only its non-gather readers move to the new entry.
    untie: bool,
}

impl Pass for Quantize {
    fn name(&self) -> &'static str {
        "quantize"
    }

    fn run(&mut self, m: &mut Module, cx: &mut PassCx) -> Result<Changed, String> {
        let reads = readers(m);
        let mut picked: Vec<Picked> = Vec::new();
        let names: Vec<String> = m.weights.iter().map(|(_, w)| w.name.clone()).collect();
        // Shared-scale #bcq tables cannot be gathered row by row: leave them.
        let shared = self.enc.binary_coded().is_some_and(|p| p.scales() != BcqScales::Row);
        for name in names {
            let id = m.weights.lookup(&name).ok_or("weight table changed underneath")?;
            let w = m.weights.get(id);
            let (gathered, matmul) = (reads.gathered.contains(&name), reads.other.contains(&name));
            let tied_head = gathered && matmul;
            if !self.selects(&name, gathered, tied_head) || !w.ty.elem.is_float() || w.ty.rank() != 2 || (self.bpw.is_none() && matches!(w.ty.encoding, Some(e) if e == self.enc)) {
                continue;
            }
            let untie = tied_head && !self.embeddings;
            if shared && gathered && !untie {
                continue;
            }
            let block = self.bpw.as_ref().map_or(self.enc.block_elems(), |(_, c)| c.iter().map(|e| e.block_elems()).min().unwrap_or(1));
            let ty = TensorType { shape: w.ty.shape.clone(), elem: w.ty.elem, encoding: Some(self.enc) };
            let Some(shape) = ty.fixed_shape().filter(|s| (self.bpw.is_some() || ty.storage_bytes().is_some()) && s[1] % block == 0) else {
                cx.remarks.push(format!("quantize: skipped @{name} ({}): its rows are not whole groups of {}", w.ty, self.enc));
                continue;
            };
            let values = weight_values(m, id).map_err(|e| format!("quantize @{name}: {e}"))?;
            picked.push(Picked { name, values, n: shape[0] as usize, k: shape[1] as usize, untie });
        }
        // A glob that names no weight at all is a typo, not a choice: say so
        // instead of quantizing nothing (`quantize{layers=[}` used to pass).
        if let Some(g) = self.layers.iter().find(|g| !m.weights.iter().any(|(_, w)| glob_match(g, &w.name))) {
            return Err(format!("quantize: layers glob '{g}' matches no weight of the module (globs use * and ?, e.g. blk.*.ffn_*)"));
        }
        if picked.is_empty() {
            return Ok(Changed::No);
        }
        let cal_arc = m.calibration.clone();
        let cal = cal_arc.as_deref();
        let data = |name: &str| layer_data(cal, name);
        if self.require_hessian {
            if cal.is_none() {
                return Err("quantize: hessian=true needs calibration Hessians: run `flexc calibrate --hessian` and pass --stats FILE".into());
            }
            if let Some(p) = picked.iter().find(|p| data(&p.name).hessian.is_none()) {
                return Err(format!("quantize: the calibration has no Hessian for @{}", p.name));
            }
        }
        // Encode every selected weight: per-weight encodings, then the bytes.
        let encoded: Vec<(Encoding, Encoded)> = match &self.bpw {
            Some((bpw, cands)) => self.mixed(m, &picked, *bpw, cands, cal, cx)?,
            None => {
                let encs = self.uniform_encodings(&picked, cal, cx)?;
                let mut out = Vec::with_capacity(picked.len());
                for (i, (p, enc)) in picked.iter().zip(encs).enumerate() {
                    cx.progress.step("quantize: weight", i, picked.len());
                    let e = encode_weight(enc, &p.values, (p.n, p.k), layer_data(cal, &p.name), self.method, self.gptq).map_err(|e| format!("quantize @{}: {e}", p.name))?;
                    out.push((enc, e));
                }
                out
            }
        };
        report_quantizers(&picked, &encoded, cx);
        self.rewire(m, &picked, encoded)?;
        Ok(Changed::Yes)
    }
}

/// What the calibration knows about the linear whose weight is `name`
/// (the sequential statistics when recorded, else the dense ones).
fn layer_data<'a>(cal: Option<&'a Calibration>, name: &str) -> LayerData<'a> {
    let s = cal.and_then(|c| c.get_for_pruning(name));
    LayerData { hessian: s.and_then(|s| s.hessian.as_deref()), importance: s.map(|s| s.scaler_row.as_slice()).filter(|r| !r.is_empty()), plan: None }
}

/// One remark per quantizer that ran, naming the weights that fell back.
fn report_quantizers(picked: &[Picked], encoded: &[(Encoding, Encoded)], cx: &mut PassCx) {
    let mut by: BTreeMap<&'static str, Vec<&str>> = BTreeMap::new();
    for (p, (_, e)) in picked.iter().zip(encoded) {
        by.entry(e.how.name()).or_default().push(&p.name);
    }
    for (how, names) in by {
        let note = match how {
            "rtn" => " (no calibration statistics: pass --stats FILE from `flexc calibrate --hessian` for GPTQ)",
            "rtn+importance" => " (no Hessians in the calibration: record them with `flexc calibrate --hessian` for GPTQ)",
            _ => "",
        };
        let shown: Vec<&str> = names.iter().take(3).copied().collect();
        let more = if names.len() > 3 { format!(" and {} more", names.len() - 3) } else { String::new() };
        cx.remarks.push(format!("quantize: {how} for {} weight(s): @{}{more}{note}", names.len(), shown.join(", @")));
    }
}

impl Quantize {
    /// Per-weight encodings without a budget: `self.enc`, or ShiftAddLLM's
    /// sensitivity-ranked bits (`mix-bits`).
    fn uniform_encodings(&self, picked: &[Picked], cal: Option<&Calibration>, cx: &mut PassCx) -> Result<Vec<Encoding>, String> {
        let Some(p) = self.enc.binary_coded() else { return Ok(vec![self.enc; picked.len()]) };
        if self.mix_bits.is_empty() {
            return Ok(vec![self.enc; picked.len()]);
        }
        let mut scored = Vec::with_capacity(picked.len());
        for w in picked {
            let h = layer_data(cal, &w.name).hessian.ok_or_else(|| format!("quantize: mix-bits needs Hessians: the calibration has no Hessian for @{}", w.name))?;
            let ih = InverseHessian::new(h, w.k).map_err(|e| format!("quantize @{}: {e}", w.name))?;
            scored.push((sensitivity(&w.values, w.k, &ih), w.values.len()));
        }
        let bits = allocate_bits(&scored, &self.mix_bits);
        for ((w, b), (score, _)) in picked.iter().zip(&bits).zip(&scored) {
            cx.remarks.push(format!("quantize: mix-bits: @{} {b} bits (score {score:.4e})", w.name));
        }
        Ok(bits.into_iter().map(|b| Encoding::from(BcqParams { bits: b, ..p })).collect())
    }

    /// Mixed precision under `bpw` (module docs): every candidate of every
    /// weight quantized and measured, then the exact allocation.
    fn mixed(&self, m: &Module, picked: &[Picked], bpw: f64, cands: &[Encoding], cal: Option<&Calibration>, cx: &mut PassCx) -> Result<Vec<(Encoding, Encoded)>, String> {
        let picked_names: HashSet<&str> = picked.iter().map(|p| p.name.as_str()).collect();
        let untied: HashSet<&str> = picked.iter().filter(|p| p.untie).map(|p| p.name.as_str()).collect();
        let (params, fixed) = read_per_token(m, &picked_names, &untied);
        let budget = (bpw * params as f64 / 8.0).floor() - fixed as f64;
        if budget <= 0.0 {
            return Err(format!("quantize: bpw={bpw}: the weights not quantized already take {fixed} bytes of the {:.0} allowed", bpw * params as f64 / 8.0));
        }
        let mut layers: Vec<Vec<Choice>> = Vec::with_capacity(picked.len());
        let mut results: Vec<Vec<(Encoding, Encoded)>> = Vec::with_capacity(picked.len());
        for (i, p) in picked.iter().enumerate() {
            cx.progress.step("quantize: candidate formats of weight", i, picked.len());
            let d = layer_data(cal, &p.name);
            // Every candidate's GPTQ shares one factored Hessian.
            let plan = match d.hessian.filter(|_| self.method == Method::Gptq) {
                Some(h) => Some(GptqPlan::new(h, p.k, self.gptq).map_err(|e| format!("quantize @{}: {e}", p.name))?),
                None => None,
            };
            let d = LayerData { plan: plan.as_ref(), ..d };
            let zeros = vec![0f32; p.values.len()];
            let energy = relative_base(&p.values, &zeros, p.k, d);
            let mut choices = Vec::new();
            let mut res = Vec::new();
            for &enc in cands.iter().filter(|e| (p.k as u64).is_multiple_of(e.block_elems())) {
                let ty = TensorType { shape: vec![(p.n as u64).into(), (p.k as u64).into()], elem: ElemType::F32, encoding: Some(enc) };
                let Some(bytes) = QuantFormat::of(enc).map(|f| f.streamed_bytes(p.n, p.k)).or_else(|| ty.storage_bytes()) else { continue };
                let mut e = encode_weight(enc, &p.values, (p.n, p.k), d, self.method, self.gptq).map_err(|e| format!("quantize @{}: {e}", p.name))?;
                // Only the bytes are kept: decoded values of every candidate of
                // every weight would be 4 bytes per weight per format.
                let values = match e.values.take() {
                    Some(v) => v,
                    None => {
                        let mut v = vec![0f32; p.values.len()];
                        decode(enc, &e.bytes, &mut v)?;
                        v
                    }
                };
                let err = relative_base(&p.values, &values, p.k, d) / energy.max(f64::MIN_POSITIVE);
                choices.push(Choice { bytes, error: err });
                res.push((enc, e));
            }
            if choices.is_empty() {
                return Err(format!("quantize: no candidate format fits @{} ({}×{})", p.name, p.n, p.k));
            }
            layers.push(choices);
            results.push(res);
        }
        cx.progress.step("quantize: candidate formats of weight", picked.len(), picked.len());
        self.weigh_by_loss(picked, &mut layers, cal, cx)?;
        let pick = allocate(&layers, budget as u64).map_err(|e| format!("quantize: bpw={bpw}: {e}"))?;
        let used: u64 = pick.iter().zip(&layers).map(|(&j, c)| c[j].bytes).sum();
        cx.remarks.push(format!(
            "quantize: bpw={bpw}: {:.3} bits per weight read per token ({} quantized bytes + {fixed} other, {params} parameters)",
            (used + fixed) as f64 * 8.0 / params as f64,
            used
        ));
        let mut out = Vec::with_capacity(picked.len());
        for ((p, j), (mut res, choices)) in picked.iter().zip(pick).zip(results.into_iter().zip(&layers)) {
            let (enc, e) = res.swap_remove(j);
            cx.remarks.push(format!("quantize: @{} → {enc}: {} bytes, {} {:.3e}", p.name, choices[j].bytes, self.error_name(cal), choices[j].error));
            out.push((enc, e));
        }
        Ok(out)
    }

    /// With loss probes in the calibration (`loss.rs`), scales each layer's
    /// relative errors into estimated nats; otherwise leaves them and says so.
    fn weigh_by_loss(&self, picked: &[Picked], layers: &mut [Vec<Choice>], cal: Option<&Calibration>, cx: &mut PassCx) -> Result<(), String> {
        let probes = cal.map_or(&[][..], |c| c.probes.as_slice());
        let mut probe_error: HashMap<&str, f64> = HashMap::new();
        if !probes.is_empty() {
            for p in picked {
                let Some(enc) = loss::probe_encoding(p.k) else { continue };
                let d = layer_data(cal, &p.name);
                let e = encode_weight(enc, &p.values, (p.n, p.k), d, Method::Rtn, self.gptq).map_err(|e| format!("quantize @{}: {e}", p.name))?;
                let mut q = vec![0f32; p.values.len()];
                decode(enc, &e.bytes, &mut q)?;
                let zeros = vec![0f32; p.values.len()];
                let energy = relative_base(&p.values, &zeros, p.k, d).max(f64::MIN_POSITIVE);
                probe_error.insert(&p.name, relative_base(&p.values, &q, p.k, d) / energy);
            }
        }
        match loss::loss_factors(probes, &probe_error) {
            Ok(f) if probe_error.len() == picked.len() => {
                for (p, choices) in picked.iter().zip(layers.iter_mut()) {
                    choices.iter_mut().for_each(|c| c.error *= f[&p.name]);
                }
                cx.remarks.push(format!("quantize: errors weighted by {} loss probes (estimated ΔNLL per layer)", probes.len()));
            }
            Ok(_) => cx.remarks.push("quantize: some weights cannot take the probe format: relative output errors, unweighted".into()),
            Err(e) => cx.remarks.push(format!("quantize: {e}: relative output errors, unweighted")),
        }
        Ok(())
    }

    /// What the mixed-precision remarks call a layer's error.
    fn error_name(&self, cal: Option<&Calibration>) -> &'static str {
        if cal.is_some_and(|c| !c.probes.is_empty()) { "estimated ΔNLL" } else { "relative output error" }
    }

    /// Writes the new entries and moves the readers onto them.
    fn rewire(&self, m: &mut Module, picked: &[Picked], encoded: Vec<(Encoding, Encoded)>) -> Result<(), String> {
        // Old name -> new entry's name and type, and whether only non-gather readers move.
        let mut done: HashMap<String, (String, TensorType, bool)> = HashMap::new();
        for (p, (enc, e)) in picked.iter().zip(encoded) {
            let id = m.weights.lookup(&p.name).ok_or("weight table changed underneath")?;
            let w = m.weights.get(id);
            let (ty, span) = (TensorType { shape: w.ty.shape.clone(), elem: w.ty.elem, encoding: Some(enc) }, w.span);
            let new_name = format!("{}.{}{}", p.name, if p.untie { "head." } else { "" }, enc.tag());
            m.weights.insert(WeightData { name: new_name.clone(), ty: ty.clone(), source: WeightSource::Derived(Arc::from(e.bytes)), span })?;
            done.insert(p.name.clone(), (new_name, ty, p.untie));
        }
        for (_, f) in m.funcs.iter_mut() {
            let mut i = 0;
            while i < f.layout.len() {
                let op = f.layout[i];
                let hit = match &f.dfg.ops[op].attrs {
                    OpAttrs::Weight(w) => done.get(&w.name.0).cloned(),
                    _ => None,
                };
                let Some((new_name, ty, untie)) = hit else {
                    i += 1;
                    continue;
                };
                let old_v = f.dfg.ops[op].result;
                let plain = f.dfg.ty(old_v).encoding.is_none();
                let nw = f.insert_at(i + 1, OpAttrs::Weight(attrs::Weight { name: Symbol(new_name) }), &[], Some(ty))?;
                let replacement = if plain { f.insert_at(i + 2, OpAttrs::Dequantize(attrs::Dequantize {}), &[nw], None)? } else { nw };
                if untie {
                    // Only the non-gather readers move to the quantized head.
                    let layout = f.layout.clone();
                    let readers: Vec<_> = layout.iter().copied().filter(|&o| {
                        let d = &f.dfg.ops[o];
                        o != op && d.args.contains(&old_v) && !matches!(d.attrs, OpAttrs::Gather(_)) && d.result != replacement && d.result != nw
                    }).collect();
                    f.dfg.replace_uses_in(&readers, old_v, replacement);
                } else {
                    f.replace_all_uses(old_v, replacement);
                }
                i += if plain { 3 } else { 2 };
            }
            crate::rewrite::remove_dead_ops(f);
        }
        let still_read = readers(m);
        m.weights.retain(|w| !done.contains_key(&w.name) || still_read.gathered.contains(&w.name) || still_read.other.contains(&w.name));
        Ok(())
    }
}

/// The layer's output error `Σ δᵀHδ` for `δ = w − q` with a Hessian; else the
/// importance-weighted (or plain) squared error.
fn relative_base(w: &[f32], q: &[f32], k: usize, d: LayerData<'_>) -> f64 {
    match (d.hessian, d.importance) {
        (Some(h), _) => output_error(w, q, k, h),
        (None, imp) => w.iter().zip(q).enumerate().map(|(i, (&a, &b))| imp.map_or(1.0, |v| v[i % k] as f64) * ((a - b) as f64).powi(2)).sum(),
    }
}

/// The model's parameter count ([`Module::parameter_count`]: a
/// rotated model's untied head copy is not counted) and the bytes of the weights read per decoded
/// token that are not being quantized (`picked` are; a tied head that is
/// untied stays as a gather-only table, which a token reads one row of).
fn read_per_token(m: &Module, picked: &HashSet<&str>, untied: &HashSet<&str>) -> (u64, u64) {
    let reads = readers(m);
    let mut fixed = 0u64;
    for (_, w) in m.weights.iter() {
        let per_token = reads.other.contains(&w.name) && !untied.contains(w.name.as_str());
        if per_token && !picked.contains(w.name.as_str()) {
            fixed += w.ty.storage_bytes().unwrap_or(0);
        }
    }
    (m.parameter_count(), fixed)
}

#[cfg(test)]
mod tests {
    use crate::options::Options;
    use crate::pipeline::parse_pipeline;

    fn make(text: &str) -> Result<(), String> {
        let specs = parse_pipeline(text).map_err(|e| format!("{e:?}"))?;
        let info = crate::registry::lookup(&specs[0].name).ok_or("not registered")?;
        (info.make)(&Options::check(&specs[0], info.options)?).map(|_| ())
    }

    #[test]
    fn options_are_checked_into_errors() {
        assert!(make("quantize{scheme=rtn,bits=2,group=64,zero=false,layers=blk.*.ffn_*,lm-head=false,embeddings=false}").is_ok());
        assert!(make("quantize{scheme=ternary,group=0}").is_ok());
        assert!(make("quantize{scheme=rtn,bits=5}").unwrap_err().contains("'bits' must be in 1..=4"));
        assert!(make("quantize{scheme=nope}").unwrap_err().contains("unknown scheme"));
        assert!(make("quantize{scheme=bcq,group=12}").unwrap_err().contains("multiple of 8"));
        assert!(make("quantize{scheme=shiftadd,apot=4}").unwrap_err().contains("apot"));
        assert!(make("quantize{bits=two}").is_err());
        assert!(make("quantize{scheme=shiftadd,bits=3,mode=lat,hessian=true}").is_ok());
        assert!(make("quantize{scheme=bcq,mode=acc}").is_ok());
        assert!(make("quantize{scheme=shiftadd,mode=diag}").unwrap_err().contains("unknown mode"));
        assert!(make("quantize{scheme=rtn,mode=acc}").unwrap_err().contains("applies to scheme=shiftadd"));
        assert!(make("quantize{scheme=q4_0}").is_ok());
        assert!(make("quantize{scheme=q5_1,method=rtn}").is_ok());
        assert!(make("quantize{method=awq}").unwrap_err().contains("unknown method"));
        assert!(make("quantize{method=rtn,hessian=true}").unwrap_err().contains("needs method=gptq"));
        assert!(make("quantize{bpw=3.0}").is_ok());
        assert!(make("quantize{bpw=3.0,candidates=gq2g64,gq4g32s,q8_0}").is_ok());
        assert!(make("quantize{bpw=3.0,candidates=gq9g64}").unwrap_err().contains("'bits' must be in 1..=4"));
        assert!(make("quantize{bpw=3.0,candidates=zz}").unwrap_err().contains("not gq<bits>g<group>"));
        assert!(make("quantize{bpw=0.1}").unwrap_err().contains("bpw must be in"));
        assert!(make("quantize{candidates=q8_0}").unwrap_err().contains("applies with bpw"));
        assert!(make("quantize{scheme=rtn,mix-bits=0.5,0.5}").unwrap_err().contains("applies to scheme=shiftadd"));
    }
}
