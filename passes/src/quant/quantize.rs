//! `quantize`: re-encodes matching weight-table entries in a low-bit scheme.
//!
//! For every `tensor.weight @w` whose name matches `layers` (comma-separated
//! globs) and which is a rank-2 float weight `[n, k]` with `k` a multiple of
//! the group, the weight's values (decoded to f32 first when it is already a
//! ggml encoding) are encoded into a new derived entry `@w.<scheme><bits>`
//! (`WeightSource::Derived`); the old entry is dropped. Uses are rewired:
//!
//! - a plain weight becomes `quant.dequantize(@w.<scheme>)`, so a following
//!   `tensor.matmul` is unchanged (and `fuse-dequant` can turn it into `quant.mpgemm`);
//! - an encoded weight's readers (`quant.dequantize`, `quant.mpgemm`,
//!   `tensor.gather`) read the new entry directly, their result types unchanged.
//!
//! Embedding tables (read by `tensor.gather`, or named like `*token_embd*`,
//! `*embed_tokens*`) are skipped unless `embeddings=true`; the LM head
//! (`output.weight`, `*lm_head*`) unless `lm-head=true`. Weights whose shape
//! does not fit the group are skipped with a remark.
//!
//! ShiftAddLLM options (scheme `shiftadd` or `bcq`, see `optq.rs`):
//! `hessian=true` quantizes with the OPTQ loop (Hessian error feedback, from
//! the module's calibration, `flexc calibrate --hessian`); `mix-bits=r1,r2,…`
//! (the shares of weights at 1, 2, … bits, e.g. `0.0,0.8,0.2`) overrides
//! `bits` per weight by the sensitivity score, and each weight's bits and
//! score are listed in the remarks. Both need a Hessian for every selected weight.
//! `mode` picks the `α` layout: `row` (per row and `group`, the default),
//! `acc` (one set per input column shared by all rows) or `lat` (one per 8
//! columns × rows/8 rows), ShiftAddLLM's "Acc." and "Lat." (`#bcq<…,
//! scales = acc|lat>`, `group` unused; `optq_shared.rs`). Shared-scale
//! weights cannot be gathered, so embedding tables are skipped in those modes.

use super::glob_match;
use super::optq::{allocate_bits, optq_bcq, sensitivity, InverseHessian};
use crate::manager::{Changed, Pass, PassCx};
use crate::options::{OptDecl, OptKind, Options};
use crate::registry::PassInfo;
use flexc_ir::ops::{AttrLit, Symbol};
use flexc_ir::quant::bcq::REFINE_ROUNDS;
use super::optq_shared::quantize_shared;
use flexc_ir::quant::{decode, encode, ggml, BcqParams, BcqScales};
use flexc_ir::weights::{WeightData, WeightSource};
use flexc_ir::{attrs, ElemType, Encoding, Module, OpAttrs, TensorType};
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) const INFO: PassInfo = PassInfo {
    name: "quantize",
    summary: "re-encode matching weights as group-wise RTN, ternary, BCQ or shift-add (APoT BCQ)",
    options: &[
        OptDecl { name: "scheme", kind: OptKind::Str, default: "rtn", help: "rtn (#gq) | ternary (#ternary) | bcq (#bcq) | shiftadd (#bcq, pot = true)" },
        OptDecl { name: "bits", kind: OptKind::Int, default: "4", help: "bits per weight, 1..4 (ignored by ternary)" },
        OptDecl { name: "group", kind: OptKind::Int, default: "64", help: "elements per scale group, a multiple of 8 (ternary: 0 = per tensor)" },
        OptDecl { name: "zero", kind: OptKind::Bool, default: "false", help: "rtn: asymmetric groups with an integer zero point" },
        OptDecl { name: "apot", kind: OptKind::Int, default: "3", help: "shiftadd: powers of two per scale, 1..3" },
        OptDecl { name: "mode", kind: OptKind::Str, default: "row", help: "shiftadd/bcq α layout: row (per row and group) | acc (per column) | lat (per 8 columns × rows/8)" },
        OptDecl { name: "hessian", kind: OptKind::Bool, default: "false", help: "shiftadd/bcq: OPTQ loop with Hessian error feedback (needs calibration Hessians)" },
        OptDecl { name: "mix-bits", kind: OptKind::Str, default: "", help: "shiftadd/bcq: shares of weights at 1,2,… bits by sensitivity, e.g. 0.0,0.8,0.2 (needs Hessians)" },
        OptDecl { name: "layers", kind: OptKind::Str, default: "*", help: "comma-separated globs over weight names" },
        OptDecl { name: "lm-head", kind: OptKind::Bool, default: "false", help: "also quantize the output projection" },
        OptDecl { name: "embeddings", kind: OptKind::Bool, default: "false", help: "also quantize embedding tables" },
    ],
    make: |o| Ok(Box::new(Quantize::from_options(o)?)),
};

struct Quantize {
    enc: Encoding,
    scheme: String,
    layers: Vec<String>,
    lm_head: bool,
    embeddings: bool,
    hessian: bool,
    /// Shares of weights at 1, 2, … bits (`mix-bits`), empty when unset.
    mix_bits: Vec<f64>,
}

impl Quantize {
    fn from_options(o: &Options) -> Result<Quantize, String> {
        let int = |k: &str| AttrLit::Int(o.int(k));
        let (name, params): (&str, Vec<(&str, AttrLit)>) = match o.str("scheme") {
            "rtn" => ("gq", vec![("bits", int("bits")), ("group", int("group")), ("zero", AttrLit::Bool(o.bool("zero")))]),
            "ternary" => ("ternary", vec![("group", int("group"))]),
            "bcq" => ("bcq", vec![("bits", int("bits"))]),
            "shiftadd" => ("bcq", vec![("bits", int("bits")), ("pot", AttrLit::Bool(true)), ("apot", int("apot"))]),
            s => return Err(format!("quantize: unknown scheme '{s}' (valid: rtn, ternary, bcq, shiftadd)")),
        };
        let mut params = params;
        match (name, o.str("mode")) {
            ("bcq", "row") => params.push(("group", int("group"))),
            ("bcq", m @ ("acc" | "lat")) => params.push(("scales", AttrLit::Ident(m.to_string()))),
            ("bcq", m) => return Err(format!("quantize: unknown mode '{m}' (valid: row, acc, lat)")),
            (_, "row") => {}
            (_, m) => return Err(format!("quantize: mode={m} applies to scheme=shiftadd or bcq")),
        }
        let params: Vec<(String, AttrLit)> = params.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let enc = Encoding::parse(name, &params).map_err(|e| format!("quantize: {e}"))?;
        let layers = o.str("layers").split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        let mix = o.str("mix-bits").trim();
        let mix_bits: Vec<f64> = if mix.is_empty() {
            Vec::new()
        } else {
            mix.split(',').map(|r| r.trim().parse::<f64>().ok().filter(|v| (0.0..=1.0).contains(v))).collect::<Option<_>>().ok_or_else(|| format!("quantize: mix-bits '{mix}' must be comma-separated shares in [0, 1]"))?
        };
        if !mix_bits.is_empty() && (mix_bits.len() > 4 || (mix_bits.iter().sum::<f64>() - 1.0).abs() > 1e-6) {
            return Err(format!("quantize: mix-bits '{mix}' must be at most 4 shares (1..4 bits) summing to 1"));
        }
        let hessian = o.bool("hessian");
        if (hessian || !mix_bits.is_empty()) && !matches!(enc, Encoding::Bcq(_)) {
            return Err("quantize: hessian and mix-bits apply to scheme=shiftadd or bcq".into());
        }
        Ok(Quantize { enc, scheme: o.str("scheme").to_string(), layers, lm_head: o.bool("lm-head"), embeddings: o.bool("embeddings"), hessian, mix_bits })
    }

    /// The entry-name suffix of a weight encoded as `enc`.
    fn tag(&self, enc: Encoding) -> String {
        match enc {
            Encoding::Ternary(_) => "ternary".to_string(),
            Encoding::Gq(p) => format!("{}{}", self.scheme, p.bits),
            Encoding::Bcq(p) if p.scales() != BcqScales::Row => format!("{}{}.{}", self.scheme, p.bits, p.scales().name()),
            Encoding::Bcq(p) => format!("{}{}", self.scheme, p.bits),
            e => format!("{}.{}", self.scheme, e.name()),
        }
    }

    /// The inverse-Hessian factor of weight `name` (`k` input channels).
    fn inverse_hessian(m: &Module, name: &str, k: usize) -> Result<InverseHessian, String> {
        let cal = m.calibration.as_ref().ok_or("quantize: hessian/mix-bits need calibration Hessians: run `flexc calibrate --hessian` and pass --stats FILE")?;
        let h = cal.get(name).and_then(|s| s.hessian.as_deref()).ok_or_else(|| format!("quantize: the calibration has no Hessian for @{name}"))?;
        InverseHessian::new(h, k).map_err(|e| format!("quantize @{name}: {e}"))
    }

    /// Whether the weight `name` (read by a gather when `gathered`) is selected.
    fn selects(&self, name: &str, gathered: bool) -> bool {
        let embedding = gathered || name.contains("token_embd") || name.contains("embed_tokens");
        let lm_head = name == "output.weight" || name.contains("lm_head");
        (self.embeddings || !embedding) && (self.lm_head || !lm_head) && self.layers.iter().any(|g| glob_match(g, name))
    }
}

/// The f32 values of a weight in any storage (plain float or encoded).
fn weight_values(m: &Module, id: flexc_ir::WeightId) -> Result<Vec<f32>, String> {
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

impl Pass for Quantize {
    fn name(&self) -> &'static str {
        "quantize"
    }

    fn run(&mut self, m: &mut Module, cx: &mut PassCx) -> Result<Changed, String> {
        // Weights read by a gather are embedding tables.
        let mut gathered = std::collections::HashSet::new();
        for (_, f) in m.funcs.iter() {
            for &op in &f.layout {
                let d = &f.dfg.ops[op];
                if let (OpAttrs::Gather(_), Some(t)) = (&d.attrs, d.args.first())
                    && let Some(OpAttrs::Weight(w)) = f.dfg.def_op(*t).map(|o| &f.dfg.ops[o].attrs)
                {
                    gathered.insert(w.name.0.clone());
                }
            }
        }
        // Select: name, values, [n, k].
        let mut picked: Vec<(String, Vec<f32>, usize, usize)> = Vec::new();
        let names: Vec<String> = m.weights.iter().map(|(_, w)| w.name.clone()).collect();
        for name in names {
            let id = m.weights.lookup(&name).ok_or("weight table changed underneath")?;
            let w = m.weights.get(id);
            let shared = matches!(self.enc, Encoding::Bcq(p) if p.scales() != BcqScales::Row);
            if !self.selects(&name, gathered.contains(&name)) || (shared && gathered.contains(&name)) || !w.ty.elem.is_float() || w.ty.rank() != 2 || matches!(w.ty.encoding, Some(e) if e == self.enc) {
                continue;
            }
            let ty = TensorType { shape: w.ty.shape.clone(), elem: w.ty.elem, encoding: Some(self.enc) };
            let Some(shape) = ty.fixed_shape().filter(|s| ty.storage_bytes().is_some() && s[1] % self.enc.block_elems() == 0) else {
                cx.remarks.push(format!("quantize: skipped @{name} ({}): its rows are not whole groups of {}", w.ty, self.enc));
                continue;
            };
            let values = weight_values(m, id).map_err(|e| format!("quantize @{name}: {e}"))?;
            picked.push((name, values, shape[0] as usize, shape[1] as usize));
        }
        // Per-weight encodings: mixed bits by sensitivity, or all `self.enc`.
        let mut encs = vec![self.enc; picked.len()];
        if let (Encoding::Bcq(p), false) = (self.enc, self.mix_bits.is_empty()) {
            let mut scored = Vec::with_capacity(picked.len());
            for (name, values, _, k) in &picked {
                scored.push((sensitivity(values, *k, &Self::inverse_hessian(m, name, *k)?), values.len()));
            }
            let bits = allocate_bits(&scored, &self.mix_bits);
            for (i, (name, ..)) in picked.iter().enumerate() {
                encs[i] = Encoding::Bcq(BcqParams { bits: bits[i], ..p });
                cx.remarks.push(format!("quantize: mix-bits: @{name} {} bits (score {:.4e})", bits[i], scored[i].0));
            }
        }
        // Encode every selected weight once: old name -> new entry's type and name.
        let mut done: HashMap<String, (String, TensorType)> = HashMap::new();
        for ((name, values, n, k), enc) in picked.into_iter().zip(encs) {
            let id = m.weights.lookup(&name).ok_or("weight table changed underneath")?;
            let w = m.weights.get(id);
            let (ty, span) = (TensorType { shape: w.ty.shape.clone(), elem: w.ty.elem, encoding: Some(enc) }, w.span);
            let bytes = match enc {
                Encoding::Bcq(p) if p.scales() != BcqScales::Row => {
                    let ih = if self.hessian { Some(Self::inverse_hessian(m, &name, k)?) } else { None };
                    quantize_shared(p, &values, n, k, ih.as_ref(), REFINE_ROUNDS).map_err(|e| format!("quantize @{name}: {e}"))?
                }
                Encoding::Bcq(p) if self.hessian => optq_bcq(p, &values, n, k, &Self::inverse_hessian(m, &name, k)?, REFINE_ROUNDS).map_err(|e| format!("quantize @{name}: {e}"))?,
                _ => encode(enc, &values).map_err(|e| format!("quantize @{name}: {e}"))?,
            };
            let new_name = format!("{name}.{}", self.tag(enc));
            m.weights.insert(WeightData { name: new_name.clone(), ty: ty.clone(), source: WeightSource::Derived(Arc::from(bytes)), span })?;
            done.insert(name, (new_name, ty));
        }
        if done.is_empty() {
            return Ok(Changed::No);
        }
        for (_, f) in m.funcs.iter_mut() {
            let mut i = 0;
            while i < f.layout.len() {
                let op = f.layout[i];
                let (old_v, hit) = match &f.dfg.ops[op].attrs {
                    OpAttrs::Weight(w) => (f.dfg.ops[op].result, done.get(&w.name.0).cloned()),
                    _ => (f.dfg.ops[op].result, None),
                };
                let Some((new_name, ty)) = hit else {
                    i += 1;
                    continue;
                };
                let plain = f.dfg.ty(old_v).encoding.is_none();
                let nw = f.insert_at(i + 1, OpAttrs::Weight(attrs::Weight { name: Symbol(new_name) }), &[], Some(ty))?;
                let replacement = if plain { f.insert_at(i + 2, OpAttrs::Dequantize(attrs::Dequantize {}), &[nw], None)? } else { nw };
                f.replace_all_uses(old_v, replacement);
                i += if plain { 3 } else { 2 };
            }
            crate::rewrite::remove_dead_ops(f);
        }
        m.weights.retain(|w| !done.contains_key(&w.name));
        Ok(Changed::Yes)
    }
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
    }
}
