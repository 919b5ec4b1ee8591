//! Token sampling: greedy, or temperature with top-k, top-p (nucleus) and
//! min-p, after llama.cpp's repetition penalty and OpenAI's presence and
//! frequency penalties, from a seeded generator so a run can be repeated
//! exactly. Every setting is range-checked by [`SamplerConfig::validate`].

use std::collections::{HashMap, VecDeque};

/// Sampling settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep the k most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p (1.0: all).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one (0: off).
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of recently seen tokens (1: off).
    pub repeat_penalty: f32,
    /// How many recent tokens the penalties look at (0: none).
    pub repeat_last_n: usize,
    /// Subtract this from the logit of every recently seen token (0: off).
    pub presence_penalty: f32,
    /// Subtract this times the token's recent count from its logit (0: off).
    pub frequency_penalty: f32,
    /// Seed of the generator.
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig { temperature: 0.0, top_k: 40, top_p: 0.95, min_p: 0.0, repeat_penalty: 1.0, repeat_last_n: 64, presence_penalty: 0.0, frequency_penalty: 0.0, seed: 42 }
    }
}

impl SamplerConfig {
    /// Checks every value's range; the error names the setting (by its
    /// command-line / API name) and the allowed range.
    pub fn validate(&self) -> Result<(), String> {
        let check = |name: &str, v: f32, lo: f32, hi: f32, lo_open: bool| {
            let ok = v.is_finite() && v <= hi && if lo_open { v > lo } else { v >= lo };
            if ok {
                Ok(())
            } else {
                let open = if lo_open { "(" } else { "[" };
                Err(format!("{name} must be a number in {open}{lo}, {hi}], got {v}"))
            }
        };
        check("temperature", self.temperature, 0.0, 100.0, false)?;
        check("top_p", self.top_p, 0.0, 1.0, false)?;
        check("min_p", self.min_p, 0.0, 1.0, false)?;
        check("repeat_penalty", self.repeat_penalty, 0.0, 100.0, true)?;
        check("presence_penalty", self.presence_penalty, -2.0, 2.0, false)?;
        check("frequency_penalty", self.frequency_penalty, -2.0, 2.0, false)?;
        Ok(())
    }

    fn penalizes(&self) -> bool {
        self.repeat_last_n > 0 && (self.repeat_penalty != 1.0 || self.presence_penalty != 0.0 || self.frequency_penalty != 0.0)
    }
}

/// A sampler with its generator state and the recent tokens the penalties see.
pub struct Sampler {
    cfg: SamplerConfig,
    state: u64,
    recent: VecDeque<u32>,
    counts: HashMap<u32, u32>,
    scratch: Vec<f32>,
}

impl Sampler {
    /// A sampler seeded from the config (which the caller has validated).
    pub fn new(cfg: SamplerConfig) -> Sampler {
        let state = cfg.seed ^ 0x9e37_79b9_7f4a_7c15;
        Sampler { cfg, state, recent: VecDeque::new(), counts: HashMap::new(), scratch: Vec::new() }
    }

    /// Records a token of the context (prompt or generated) for the penalties.
    pub fn accept(&mut self, token: u32) {
        if self.cfg.repeat_last_n == 0 {
            return;
        }
        if self.recent.len() == self.cfg.repeat_last_n
            && let Some(old) = self.recent.pop_front()
            && let Some(c) = self.counts.get_mut(&old)
        {
            *c -= 1;
            if *c == 0 {
                self.counts.remove(&old);
            }
        }
        self.recent.push_back(token);
        *self.counts.entry(token).or_default() += 1;
    }

    /// A uniform number in [0, 1) (splitmix64).
    fn next_f64(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Picks the next token from one row of logits (it does not
    /// [`accept`](Self::accept) it).
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let logits = if self.cfg.penalizes() {
            let mut l = std::mem::take(&mut self.scratch);
            l.clear();
            l.extend_from_slice(logits);
            for (&t, &c) in &self.counts {
                let Some(x) = l.get_mut(t as usize) else { continue };
                // llama.cpp's llama_sampler_penalties_apply, in its order.
                *x = if *x <= 0.0 { *x * self.cfg.repeat_penalty } else { *x / self.cfg.repeat_penalty };
                *x -= c as f32 * self.cfg.frequency_penalty + self.cfg.presence_penalty;
            }
            self.scratch = l;
            &self.scratch[..]
        } else {
            logits
        };
        if self.cfg.temperature <= 0.0 {
            return argmax(logits);
        }
        let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
        idx.sort_unstable_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        if self.cfg.top_k > 0 {
            idx.truncate(self.cfg.top_k);
        }
        let max = logits[idx[0] as usize];
        let mut probs: Vec<f64> = idx.iter().map(|&i| (((logits[i as usize] - max) / self.cfg.temperature) as f64).exp()).collect();
        let sum: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= sum);
        let mut keep = probs.len();
        let mut acc = 0.0;
        for (i, p) in probs.iter().enumerate() {
            acc += p;
            if acc >= self.cfg.top_p as f64 {
                keep = i + 1;
                break;
            }
        }
        // min-p: probabilities are sorted, the first is the largest.
        let floor = probs[0] * self.cfg.min_p as f64;
        keep = keep.min(probs.iter().take_while(|&&p| p >= floor).count()).max(1);
        let total: f64 = probs[..keep].iter().sum();
        let mut r = self.next_f64() * total;
        for (i, p) in probs[..keep].iter().enumerate() {
            r -= p;
            if r <= 0.0 {
                return idx[i];
            }
        }
        idx[keep - 1]
    }
}

/// The index of the largest logit (the first on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_and_seeded_sampling() {
        let logits = [0.1, 3.0, 2.9, -1.0];
        assert_eq!(Sampler::new(SamplerConfig::default()).sample(&logits), 1);
        let cfg = SamplerConfig { temperature: 1.0, top_k: 2, top_p: 1.0, seed: 7, ..SamplerConfig::default() };
        let a: Vec<u32> = (0..50).scan(Sampler::new(cfg.clone()), |s, _| Some(s.sample(&logits))).collect();
        let b: Vec<u32> = (0..50).scan(Sampler::new(cfg), |s, _| Some(s.sample(&logits))).collect();
        assert_eq!(a, b, "same seed, same tokens");
        assert!(a.iter().all(|&t| t == 1 || t == 2), "top-k 2 keeps only the two best");
        assert!(a.contains(&1) && a.contains(&2));
    }

    #[test]
    fn penalties_follow_llama_cpp() {
        let logits = [1.2, 3.0, 2.0, -1.0];
        // repeat penalty 2 on token 1: 3/2 = 1.5 < 2.0, so greedy picks 2.
        let mut s = Sampler::new(SamplerConfig { repeat_penalty: 2.0, ..SamplerConfig::default() });
        s.accept(1);
        assert_eq!(s.sample(&logits), 2);
        // Frequency 0.6 twice on token 1: 3 - 1.2 = 1.8 < 2.0.
        let mut s = Sampler::new(SamplerConfig { frequency_penalty: 0.6, presence_penalty: 0.0, ..SamplerConfig::default() });
        s.accept(1);
        s.accept(1);
        assert_eq!(s.sample(&logits), 2);
        let mut s = Sampler::new(SamplerConfig { presence_penalty: 2.0, ..SamplerConfig::default() });
        s.accept(1);
        s.accept(2);
        assert_eq!(s.sample(&logits), 0, "1.0 and 0.0 fall below token 0's 1.2");
        // The window forgets: with last_n = 1 only the newest token is penalised.
        let mut s = Sampler::new(SamplerConfig { presence_penalty: 2.0, repeat_last_n: 1, ..SamplerConfig::default() });
        s.accept(1);
        s.accept(0);
        assert_eq!(s.sample(&logits), 1);
    }

    #[test]
    fn min_p_drops_unlikely_tokens() {
        // exp(0) vs exp(-5): the second has p ratio 0.0067 < 0.1, never sampled.
        let logits = [0.0, -5.0, -5.0];
        let cfg = SamplerConfig { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.1, ..SamplerConfig::default() };
        let mut s = Sampler::new(cfg);
        assert!((0..200).all(|_| s.sample(&logits) == 0));
    }

    #[test]
    fn ranges_are_checked() {
        let ok = SamplerConfig::default();
        assert!(ok.validate().is_ok());
        for (bad, what) in [
            (SamplerConfig { temperature: f32::NAN, ..ok.clone() }, "temperature"),
            (SamplerConfig { temperature: -0.1, ..ok.clone() }, "temperature"),
            (SamplerConfig { top_p: 2.0, ..ok.clone() }, "top_p"),
            (SamplerConfig { min_p: -1.0, ..ok.clone() }, "min_p"),
            (SamplerConfig { repeat_penalty: 0.0, ..ok.clone() }, "repeat_penalty"),
            (SamplerConfig { presence_penalty: 3.0, ..ok.clone() }, "presence_penalty"),
            (SamplerConfig { frequency_penalty: f32::INFINITY, ..ok.clone() }, "frequency_penalty"),
        ] {
            let e = bad.validate().unwrap_err();
            assert!(e.starts_with(what), "{e}");
        }
    }
}
