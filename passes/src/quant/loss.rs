//! Loss weights for mixed precision: turning each layer's relative output
//! error into an estimate of the loss it costs.
//!
//! Summing relative output errors over layers treats every layer as equally
//! important; they are not (a first block or the LM head moves the loss far
//! more than a middle block's gate). A **loss probe**
//! ([`flexc_ir::calib::LossProbe`], measured by `flexc calibrate
//! --sensitivity`) quantizes one group of weights (a decoder block's linears,
//! or the LM head) alone with the probe format ([`probe_encoding`]: 3-bit RTN) and
//! records how much the mean NLL per token grew. With `r_i` the relative
//! output error of weight `i` in the probe format, each probe gives its
//! weights the factor `λ_u = ΔNLL_u / Σ_{i∈u} r_i`, so a format with relative
//! error `e` on weight `i` is estimated to cost `λ_u·e` nats: the knapsack
//! then minimises the estimated loss. A probe whose ΔNLL is below a floor
//! (noise: a harmless block can measure ≤ 0) is raised to it, so no layer is
//! treated as free.

use flexc_ir::calib::LossProbe;
use flexc_ir::quant::GqParams;
use flexc_ir::Encoding;
use std::collections::HashMap;

/// Bits of the probe format (`#gq` with a zero point, RTN).
pub const PROBE_BITS: u8 = 3;
/// Groups of the probe format, by preference: the first that divides a
/// weight's input width.
pub const PROBE_GROUPS: [u32; 4] = [64, 32, 16, 8];

/// The probe group of a weight with `k` input channels: the first of
/// [`PROBE_GROUPS`] that divides `k`.
fn probe_group(k: usize) -> Option<u32> {
    PROBE_GROUPS.into_iter().find(|&g| k.is_multiple_of(g as usize))
}

/// The probe format of a weight with `k` input channels (none when no
/// probe group divides `k`).
pub fn probe_encoding(k: usize) -> Option<Encoding> {
    let group = probe_group(k)?;
    Some(Encoding::Gq(GqParams { bits: PROBE_BITS, group, zero: true }))
}

/// The `quantize` passes of a probe of `weights` (name and input width;
/// the LM head is selected with `lm-head=true`), one per probe group: what
/// `flexc calibrate --sensitivity` runs. Weights no probe format fits are
/// left out.
pub fn probe_pass(weights: &[(String, usize)], head: bool) -> String {
    let mut by_group: std::collections::BTreeMap<u32, Vec<&str>> = Default::default();
    for (w, k) in weights {
        if let Some(g) = probe_group(*k) {
            by_group.entry(g).or_default().push(w);
        }
    }
    by_group
        .into_iter()
        .rev()
        .map(|(g, ws)| format!("quantize{{method=rtn,bits={PROBE_BITS},group={g},zero=true,lm-head={head},layers={}}}", ws.join(",")))
        .collect::<Vec<_>>()
        .join(",")
}

/// The floor of a probe's ΔNLL, as a share of the median probe's: a probe
/// at the noise level says "small", not "free". Measured on SmolLM2 at
/// `bpw=4.0` (20 chunks): with a floor of 5%, the search put 25 tensors of
/// the quietest blocks at 2 bits and got 29.43; at 50%, 28.56 (without 2-bit
/// candidates at all, 28.40).
const FLOOR_OF_MEDIAN: f64 = 0.5;

/// Per weight name, its loss factor `λ` (nats per unit of relative output
/// error), from the probes and each weight's relative error in the probe
/// format (`probe_error`). Errors name a weight that no probe covers (or a
/// probe weight without its error): the caller falls back to plain relative
/// errors and says so.
pub fn loss_factors(probes: &[LossProbe], probe_error: &HashMap<&str, f64>) -> Result<HashMap<String, f64>, String> {
    if probes.is_empty() {
        return Err("the calibration has no loss probes (`flexc calibrate --sensitivity`)".into());
    }
    let mut deltas: Vec<f64> = probes.iter().map(|p| p.delta_nll).collect();
    deltas.sort_by(f64::total_cmp);
    let floor = (deltas[deltas.len() / 2] * FLOOR_OF_MEDIAN).max(1e-6);
    let mut out = HashMap::new();
    for p in probes {
        let errs: Vec<f64> = p.weights.iter().filter_map(|w| probe_error.get(w.as_str()).copied()).collect();
        if errs.len() != p.weights.len() {
            continue;
        }
        let total: f64 = errs.iter().sum();
        let lambda = p.delta_nll.max(floor) / total.max(f64::MIN_POSITIVE);
        out.extend(p.weights.iter().map(|w| (w.clone(), lambda)));
    }
    if let Some(w) = probe_error.keys().find(|w| !out.contains_key(**w)) {
        return Err(format!("no loss probe covers @{w}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(ws: &[&str], d: f64) -> LossProbe {
        LossProbe { weights: ws.iter().map(|s| s.to_string()).collect(), delta_nll: d }
    }

    #[test]
    fn factors_spread_each_probes_loss_over_its_errors() {
        let probes = [probe(&["a", "b"], 0.3), probe(&["h"], 0.1), probe(&["c"], -0.01)];
        let errs: HashMap<&str, f64> = [("a", 0.1), ("b", 0.2), ("h", 0.05), ("c", 0.5)].into_iter().collect();
        let f = loss_factors(&probes, &errs).unwrap();
        assert!((f["a"] - 1.0).abs() < 1e-12 && (f["b"] - 1.0).abs() < 1e-12);
        assert!((f["h"] - 2.0).abs() < 1e-12);
        // Below the floor (half the median ΔNLL, 0.1): 0.05 / 0.5.
        assert!((f["c"] - 0.1).abs() < 1e-12);
        // The estimate reproduces each probe's ΔNLL at the probe's errors.
        assert!((f["a"] * 0.1 + f["b"] * 0.2 - 0.3).abs() < 1e-12);
    }

    #[test]
    fn uncovered_weights_and_missing_probes_are_errors() {
        let errs: HashMap<&str, f64> = [("a", 0.1), ("z", 0.2)].into_iter().collect();
        assert!(loss_factors(&[probe(&["a"], 0.1)], &errs).unwrap_err().contains("@z"));
        assert!(loss_factors(&[], &errs).unwrap_err().contains("no loss probes"));
    }

    #[test]
    fn the_probe_pass_parses_as_a_pipeline() {
        let text = probe_pass(&[("blk.0.attn_q.weight".into(), 576), ("blk.0.ffn_down.weight".into(), 1536), ("blk.0.x".into(), 24), ("blk.0.y".into(), 7)], false);
        assert_eq!(text, "quantize{method=rtn,bits=3,group=64,zero=true,lm-head=false,layers=blk.0.attn_q.weight,blk.0.ffn_down.weight},quantize{method=rtn,bits=3,group=8,zero=true,lm-head=false,layers=blk.0.x}");
        let specs = crate::pipeline::parse_pipeline(&text).unwrap();
        assert_eq!(specs.len(), 2);
        for spec in &specs {
            let info = crate::registry::lookup(&spec.name).unwrap();
            assert!((info.make)(&crate::options::Options::check(spec, info.options).unwrap()).is_ok());
        }
        assert_eq!(probe_encoding(7), None);
    }
}
