//! Calibration: run a model on windows of a text and record, for every linear
//! layer inside a decoder block, Wanda's per-input-channel statistics
//! ([`flexc_ir::calib::ChannelStats`]), and with `--hessian` GPTQ's Hessian
//! `2/n·Σ XᵀX` ([`hessian`]); the statistics file format
//! ([`file`]); sequential pruning ([`sequential`]); loss probes for mixed
//! precision ([`sensitivity`]); measured N:M block costs for `flow-nm`
//! ([`nm_sensitivity`]); the cached default statistics ([`cache`]).
//!
//! Two engines compute the same statistics ([`Backend`]):
//! - [`jit`] (default): `@forward` is rewritten so that it returns the input
//!   of every block linear (one result per distinct input: q/k/v share one,
//!   gate/up share one) instead of the logits, dead code (the LM head, and
//!   every block after the last one asked for) is removed, and the CPU JIT
//!   runtime runs it; the driver adds each returned `[tokens, channels]`
//!   activation to the running mean.
//! - [`reference`]: the reference interpreter with an observer on every
//!   block linear (slow; the correctness oracle).
//!
//! One window is one forward call from position 0, so each call adds one
//! sequence (b = 1), as the reference code does.

pub mod cache;
pub mod file;
pub mod hessian;
pub mod jit;
pub mod nm_sensitivity;
pub mod reference;
pub mod sensitivity;
pub mod sequential;

pub use file::{from_json, load, save, to_json};

use flexc_ir::calib::Calibration;
use flexc_ir::{Module, Op, OpAttrs};
use std::collections::HashMap;

use crate::generate::Backend;

/// What to record and how.
#[derive(Clone, Debug)]
pub struct CalibOptions {
    /// The engine.
    pub engine: Backend,
    /// Threads of the cpu engine.
    pub threads: usize,
    /// Record only the linears of these blocks (all when `None`); the JIT
    /// engine then also skips every later block.
    pub blocks: Option<Vec<usize>>,
    /// Also record GPTQ/OPTQ Hessians ([`hessian`]; `flexc calibrate --hessian`).
    pub hessian: bool,
}

impl Default for CalibOptions {
    fn default() -> Self {
        Self { engine: Backend::Cpu, threads: flexc_backends::cpu::runtime::default_threads(), blocks: None, hessian: false }
    }
}

/// Linears of `@forward` (of the blocks `blocks` only, or all of them and
/// the LM head when `None`): matmul op → weight name.
pub fn block_linear_ops(m: &Module, blocks: Option<&[usize]>) -> HashMap<Op, String> {
    let mut ops = linear_ops(m);
    if let Some(bs) = blocks {
        ops.retain(|_, w| flexc_passes::sparsity::block_of(w).is_some_and(|b| bs.contains(&b)));
    }
    ops
}

/// Linears of `@forward` whose statistics calibration records: every block
/// linear and the LM head (`output.weight`, or a tied embedding table a
/// matmul reads): matmul op → weight name.
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
                    if flexc_passes::sparsity::block_of(&w.name.0).is_some() || is_head(&w.name.0) {
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

/// Whether a weight read by a matmul outside the blocks is the LM head.
fn is_head(name: &str) -> bool {
    name == "output.weight" || name.contains("lm_head") || name.contains("token_embd") || name.contains("embed_tokens")
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

/// Runs `@forward` on every window (position 0, empty caches) and returns
/// the statistics of the block linears `opts` asks for. `progress(done)` is
/// called after each window.
pub fn calibrate(m: &Module, windows: &[Vec<u32>], source: String, opts: &CalibOptions, progress: &mut dyn FnMut(usize)) -> Result<Calibration, String> {
    let ops = block_linear_ops(m, opts.blocks.as_deref());
    if ops.is_empty() {
        return Err("the module has no block linears to calibrate (weights named blk.N.*)".into());
    }
    let id = m.func("forward").ok_or("the module has no @forward function")?;
    let f = &m.funcs[id];
    // Every cache parameter must hold a whole window.
    for &p in f.params.iter().skip(2) {
        let cap = f.dfg.ty(p).shape.first().and_then(|d| d.fixed());
        if let (Some(cap), Some(w)) = (cap, windows.iter().map(Vec::len).max())
            && (cap as usize) < w
        {
            return Err(format!("a window of {w} tokens does not fit the KV cache of {cap}"));
        }
    }
    let layers = match opts.engine {
        Backend::Cpu => jit::calibrate(m, &ops, windows, opts.threads, opts.hessian, progress)?,
        Backend::Reference => reference::calibrate(m, ops, windows, opts.hessian, progress)?,
    };
    Ok(Calibration { source, layers, ..Default::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_deterministic_and_in_range() {
        let w = window_starts(1000, 100, 5, 42);
        assert_eq!(w, window_starts(1000, 100, 5, 42));
        assert!(w.iter().all(|&s| s < 900));
    }
}
