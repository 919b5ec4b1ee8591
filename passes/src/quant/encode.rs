//! One weight, one encoding, the best quantizer the data allows.
//!
//! [`encode_weight`] is the single dispatch point of the `quantize` pass:
//! - affine group formats ([`QuantFormat`]: `#gq`, `#ternary<group = G>`,
//!   Q4_0/Q4_1/Q5_0/Q5_1/Q8_0): GPTQ when the calibration has the layer's
//!   Hessian and the method is `gptq`; else RTN with importance-weighted
//!   scales when there is an importance vector (the Hessian's diagonal or
//!   the recorded `scaler_row`); else plain RTN with the same fitted search;
//! - `#bcq` per row and group: ShiftAddLLM's OPTQ loop with a Hessian, its
//!   greedy + refinement quantizer without;
//! - `#bcq` shared-scale layouts: `quantize_shared` (with or without feedback);
//! - everything else (K-quants, per-tensor ternary): the IR's reference encoder.
//!
//! The result says which quantizer ran ([`Quantizer`]), so the pass can
//! report fallbacks, and carries the decoded values when they were computed.

use super::formats::QuantFormat;
use super::gptq::{gptq, gptq_planned, rtn, GptqOptions, GptqPlan};
use super::optq::{optq_bcq, InverseHessian};
use super::optq_shared::quantize_shared;
use flexc_ir::quant::bcq::REFINE_ROUNDS;
use flexc_ir::quant::BcqScales;
use flexc_ir::Encoding;

/// The quantizer to use when the data allows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GPTQ/OPTQ with Hessian error feedback.
    Gptq,
    /// Round to nearest (with importance-weighted scales when available).
    Rtn,
}

/// Which quantizer actually ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantizer {
    /// GPTQ/OPTQ with Hessian error feedback.
    Gptq,
    /// RTN with importance-weighted scales.
    RtnImportance,
    /// RTN without calibration data.
    Rtn,
    /// The format's reference encoder (no data-aware path exists for it).
    Reference,
}

impl Quantizer {
    /// A short name for remarks.
    pub fn name(self) -> &'static str {
        match self {
            Quantizer::Gptq => "gptq",
            Quantizer::RtnImportance => "rtn+importance",
            Quantizer::Rtn => "rtn",
            Quantizer::Reference => "reference encoder",
        }
    }
}

/// What the calibration knows about one linear's input.
#[derive(Clone, Copy, Default)]
pub struct LayerData<'a> {
    /// `H = 2/n·Σ XᵀX` (`k × k`).
    pub hessian: Option<&'a [f32]>,
    /// Per input column importance (mean squared activation).
    pub importance: Option<&'a [f32]>,
    /// `hessian` already factored for GPTQ with the options in use (a
    /// weight tried in several formats factors it once).
    pub plan: Option<&'a GptqPlan>,
}

/// An encoded weight.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// Storage bytes.
    pub bytes: Vec<u8>,
    /// The decoded values, when the quantizer computed them.
    pub values: Option<Vec<f32>>,
    /// The quantizer that ran.
    pub how: Quantizer,
}

/// Encodes the `[n, k]` weight `w` as `enc` (module docs).
pub fn encode_weight(enc: Encoding, w: &[f32], (n, k): (usize, usize), data: LayerData<'_>, method: Method, opts: GptqOptions) -> Result<Encoded, String> {
    let hessian = data.hessian.filter(|_| method == Method::Gptq);
    if let Some(f) = QuantFormat::of(enc) {
        let diag: Option<Vec<f32>> = data.hessian.map(|h| (0..k).map(|j| h[j * k + j]).collect());
        let importance = diag.as_deref().or(data.importance);
        let (q, how) = match (hessian, importance) {
            (Some(h), _) => match data.plan {
                Some(plan) => (gptq_planned(&f, w, n, k, plan)?, Quantizer::Gptq),
                None => (gptq(&f, w, n, k, h, opts)?, Quantizer::Gptq),
            },
            (None, Some(imp)) => (rtn(&f, w, n, k, Some(imp))?, Quantizer::RtnImportance),
            (None, None) => (rtn(&f, w, n, k, None)?, Quantizer::Rtn),
        };
        return Ok(Encoded { bytes: q.bytes, values: Some(q.values), how });
    }
    if let Some(p) = enc.binary_coded() {
        let ih = hessian.map(|h| InverseHessian::new(h, k)).transpose()?;
        let how = if ih.is_some() { Quantizer::Gptq } else { Quantizer::Reference };
        let bytes = if p.scales() != BcqScales::Row {
            quantize_shared(p, w, n, k, ih.as_ref(), REFINE_ROUNDS)?
        } else if let Some(ih) = &ih {
            optq_bcq(p, w, n, k, ih, REFINE_ROUNDS)?
        } else {
            enc.encode(&[n, k], w)?
        };
        return Ok(Encoded { bytes, values: None, how });
    }
    Ok(Encoded { bytes: enc.encode(&[n, k], w)?, values: None, how: Quantizer::Reference })
}
