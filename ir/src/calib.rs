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
}

/// Calibration statistics of a whole model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Calibration {
    /// Where they came from (model, text, samples, seqlen, seed), free text.
    pub source: String,
    /// Per weight name.
    pub layers: BTreeMap<String, ChannelStats>,
}

impl Calibration {
    /// The statistics of the linear whose weight is `name`.
    pub fn get(&self, name: &str) -> Option<&ChannelStats> {
        self.layers.get(name)
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
}
