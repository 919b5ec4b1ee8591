//! Calibration statistics: per linear layer, per input channel, the running
//! mean over calibration sequences of the squared activation norm.
//!
//! This is Wanda's `scaler_row` exactly as FLOW/Wanda/OWL's `WrappedGPT.add_batch`
//! accumulates it, one sequence per batch (b = 1):
//! `scaler_row *= n/(n+b); n += b; scaler_row += ‖X[:, j]‖² / n`, where the
//! norm runs over that sequence's tokens. Statistics are keyed by the name of
//! the weight the linear multiplies (`blk.3.attn_q.weight`). The driver
//! computes them (any backend may feed [`ChannelStats::add_sequence`]) and
//! attaches them to the module; passes only read them.

use std::collections::BTreeMap;

/// One linear layer's statistics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChannelStats {
    /// Sequences accumulated (`nsamples`).
    pub nsamples: u64,
    /// Per input channel: mean over sequences of ‖X[:, j]‖² (`scaler_row`).
    pub scaler_row: Vec<f32>,
    /// GPTQ/OPTQ's Hessian `H = (2/nsamples)·Σ_s X_sᵀX_s` (`channels ×
    /// channels`, row-major; the sum runs over sequences s and their tokens),
    /// when calibration recorded it (`flexc calibrate --hessian`). ShiftAddLLM's
    /// error feedback and bit allocation read it; Wanda and FLOW do not.
    pub hessian: Option<Vec<f32>>,
}

impl ChannelStats {
    /// Adds one sequence: `x` is `[tokens, channels]` row-major. The squared
    /// norm is summed in f64, then the running mean is updated in f32 the
    /// way the reference code does (`*= n/(n+1)`, then `+= ‖x_j‖²/n`).
    pub fn add_sequence(&mut self, x: &[f32], channels: usize) {
        if self.scaler_row.is_empty() {
            self.scaler_row = vec![0.0; channels];
        }
        let b = 1u64;
        let shrink = self.nsamples as f32 / (self.nsamples + b) as f32;
        self.nsamples += b;
        let n = self.nsamples as f32;
        let mut sq = vec![0f64; channels];
        for row in x.chunks_exact(channels.max(1)) {
            for (s, &v) in sq.iter_mut().zip(row) {
                *s += v as f64 * v as f64;
            }
        }
        for (r, s) in self.scaler_row.iter_mut().zip(sq) {
            *r = *r * shrink + s as f32 / n;
        }
    }

    /// Adds one sequence to the Hessian the way GPTQ's `add_batch` does
    /// (`H *= n/(n+1); n += 1; H += (2/n)·XᵀX`), starting it if absent. Call
    /// it before [`Self::add_sequence`] for the same sequence: it reads
    /// `nsamples` as the count *before* this sequence.
    pub fn add_sequence_hessian(&mut self, x: &[f32], channels: usize) {
        let h = self.hessian.get_or_insert_with(|| vec![0.0; channels * channels]);
        let n = self.nsamples as f32 + 1.0;
        let shrink = self.nsamples as f32 / n;
        let mut xtx = vec![0f64; channels * channels];
        for row in x.chunks_exact(channels.max(1)) {
            for (i, &a) in row.iter().enumerate() {
                if a != 0.0 {
                    for (acc, &b) in xtx[i * channels..(i + 1) * channels].iter_mut().zip(row) {
                        *acc += a as f64 * b as f64;
                    }
                }
            }
        }
        for (hv, s) in h.iter_mut().zip(xtx) {
            *hv = *hv * shrink + (2.0 * s) as f32 / n;
        }
    }
}

/// Calibration statistics of a whole model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Calibration {
    /// Where they came from (model, text, samples, seqlen, seed), free text.
    pub source: String,
    /// Per weight name, recorded on the dense model.
    pub layers: BTreeMap<String, ChannelStats>,
    /// Sequential pruning (`flexc calibrate --sequential`): per weight name,
    /// the statistics recorded on the model whose earlier blocks were already
    /// pruned (block k's linears see the outputs of pruned blocks 0..k), as
    /// the reference's sequential loop records them. Empty otherwise.
    pub sequential: BTreeMap<String, ChannelStats>,
    /// Loss probes (`flexc calibrate --sensitivity`): how much the model's
    /// loss grows when a group of weights alone is quantized with the probe
    /// format. Mixed precision (`quantize{bpw=…}`) turns each group's output
    /// errors into loss with them. Empty when not measured.
    pub probes: Vec<LossProbe>,
}

/// One loss probe: the weights quantized together (a decoder block's
/// linears, or the LM head) and the mean negative log-likelihood the model
/// gained on calibration text (nats per token).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LossProbe {
    /// The probed weights' names.
    pub weights: Vec<String>,
    /// Mean NLL with the probe minus the mean NLL without (may be ≤ 0 when
    /// the probe is harmless).
    pub delta_nll: f64,
}

impl Calibration {
    /// The dense-model statistics of the linear whose weight is `name` (what
    /// a selection such as FLOW's or OWL's reads).
    pub fn get(&self, name: &str) -> Option<&ChannelStats> {
        self.layers.get(name)
    }

    /// The statistics the pruning step scores `name` with: the sequential
    /// ones when recorded, else the dense ones.
    pub fn get_for_pruning(&self, name: &str) -> Option<&ChannelStats> {
        self.sequential.get(name).or_else(|| self.layers.get(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_mean_matches_the_plain_mean() {
        let mut s = ChannelStats::default();
        // Three sequences of 2 tokens × 2 channels.
        let seqs = [[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 1.0, 0.0], [2.0, 2.0, 2.0, 2.0]];
        for q in &seqs {
            s.add_sequence(q, 2);
        }
        // Channel 0: (1+9, 0+1, 4+4)/3; channel 1: (4+16, 1+0, 4+4)/3.
        assert_eq!(s.nsamples, 3);
        assert!((s.scaler_row[0] - 19.0 / 3.0).abs() < 1e-5);
        assert!((s.scaler_row[1] - 29.0 / 3.0).abs() < 1e-5);
    }

    #[test]
    fn hessian_is_twice_the_mean_gram_matrix() {
        let mut s = ChannelStats::default();
        for q in [[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 1.0, 0.0]] {
            s.add_sequence_hessian(&q, 2);
            s.add_sequence(&q, 2);
        }
        // Σ XᵀX = [[1+9+0+1, 2+12+0+0], [., 4+16+1+0]] = [[11, 14], [14, 21]]; H = 2/2·that.
        assert_eq!(s.hessian.as_deref(), Some(&[11.0, 14.0, 14.0, 21.0][..]));
    }
}
