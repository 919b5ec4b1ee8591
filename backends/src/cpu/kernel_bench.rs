//! Low-bit GEMV micro-benchmark rows: the LUT kernel at 1–4 bits and ternary
//! against the int-dot dequant baselines (llama.cpp-style `GemvKernel` with
//! Q8 activations) at the same bits: Q4_0 for 4 bits, Q2_K for 2 bits, TQ2_0
//! for ternary. 1 and 3 bits have no same-bits baseline and report `None`.
//! `shiftadd` rows are BCQ with APoT α (ShiftAddLLM) on the JIT shift-add
//! kernel (μ = 8, 2 and 3 bits, vs Q2_K), next to `lut` rows on the same
//! weights.
//!
//! Every timed call includes its activation preprocessing (LUT tables, or
//! Q8_0/Q8_K quantization), as in a decode step. Weights rotate over enough
//! copies (≥ 96 MiB) that each call streams them from DRAM. The time is the
//! median of the samples taken within the budget. `roofline_fraction` is
//! weight GB/s over 30 GB/s per thread (capped at 36 GB/s), the measured DRAM
//! read bandwidth of the project machine (reference/stack.md §5).
//! Wired to `flexc bench kernels` through [`bench_kernels`].

use std::hint::black_box;
use std::time::{Duration, Instant};

use flexc_ir::quant::{BcqParams, GqParams, TernaryParams};
use flexc_ir::Encoding;

use super::act::ActivationQ8;
use super::format::WeightFormat;
use super::gemv::GemvKernel;
use super::jit::{JitError, JitSession};
use super::lut::{LutKernel, LutWeights};
use crate::xorshift::XorShift as Xs;
use super::shiftadd::{ShiftAddKernel, ShiftAddWeights};

/// One benchmark result.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelBenchRow {
    /// `lut` or `dequant`.
    pub primitive: &'static str,
    /// The weight scheme (`gq2`, `ternary`, `q2_k`, ...).
    pub scheme: String,
    /// Bits per code (ternary: 2 stored, 1.58 information).
    pub bits: u8,
    /// Output rows.
    pub m: usize,
    /// Input columns.
    pub k: usize,
    /// Worker threads.
    pub threads: usize,
    /// Median seconds per GEMV (activation preprocessing included).
    pub seconds: f64,
    /// Weight bytes streamed per second, in GB/s.
    pub weight_gb_s: f64,
    /// Time of the same-bits dequant baseline over this row's time.
    pub speedup_vs_dequant: Option<f64>,
    /// `weight_gb_s` over the DRAM read roofline.
    pub roofline_fraction: f64,
}

/// LUT scale group and activation group used by the benchmark (T-MAC's
/// W2/W4 setting: group 128, activation group 32).
pub const BENCH_GROUP: u32 = 128;
/// See [`BENCH_GROUP`].
pub const BENCH_ACT_GROUP: usize = 32;

/// Random `#bcq` bytes whose α are all `2^-8 + 2^-9 + 2^-10` (3 APoT terms).
fn apot_bytes(p: BcqParams, n: usize, rng: &mut Xs) -> Vec<u8> {
    let mut b = rng.bytes(n / p.group as usize * p.block_bytes());
    let a = half::f16::from_f32(0.006_835_937_5).to_le_bytes();
    for blk in b.chunks_exact_mut(p.block_bytes()) {
        for i in 0..p.bits as usize {
            blk[2 * i..2 * i + 2].copy_from_slice(&a);
        }
    }
    b
}

/// Random storage bytes of an encoding with sane scales (throughput does not
/// depend on values, but NaN scales would be unrealistic).
fn lut_bytes(enc: Encoding, n: usize, rng: &mut Xs) -> Vec<u8> {
    let total = enc.storage_bytes(n as u64).unwrap_or(0) as usize;
    let mut b = rng.bytes(total);
    let d = half::f16::from_f32(0.01).to_le_bytes();
    match enc {
        Encoding::Ternary(_) => {
            // Codes in {0, 1, 2}: clear the high bit of every 2-bit field.
            let codes = n / 4;
            for v in &mut b[..codes] {
                *v &= 0b0101_0101 | (!*v & 0b0101_0101) << 1;
            }
            b[codes..].copy_from_slice(&0.01f32.to_le_bytes());
        }
        _ => {
            // Every f16 scale at the head of a block (BCQ: one α per plane).
            let scales = if let Encoding::Bcq(p) = enc { p.bits as usize } else { 1 };
            for blk in b.chunks_exact_mut(enc.block_bytes() as usize) {
                for i in 0..scales {
                    blk[2 * i..2 * i + 2].copy_from_slice(&d);
                }
            }
        }
    }
    b
}

fn ggml_bytes(fmt: WeightFormat, m: usize, k: usize, rng: &mut Xs) -> Vec<u8> {
    let mut w = rng.bytes(m * fmt.row_bytes(k));
    let d = half::f16::from_f32(0.01).to_le_bytes();
    let at: &[usize] = match fmt {
        WeightFormat::Q4_0 => &[0],
        WeightFormat::Q2_K => &[80, 82],
        WeightFormat::TQ2_0 => &[64],
        _ => &[],
    };
    for blk in w.chunks_exact_mut(fmt.block_bytes()) {
        for &o in at {
            blk[o..o + 2].copy_from_slice(&d);
        }
    }
    w
}

/// Median seconds of `f(copy)` over rotating copies within `budget`.
fn median_time(copies: usize, budget: Duration, mut f: impl FnMut(usize) -> Result<(), JitError>) -> Result<f64, JitError> {
    for i in 0..copies.max(2) {
        f(i % copies)?;
    }
    let mut s = Vec::new();
    let start = Instant::now();
    while (start.elapsed() < budget || s.len() < 5) && s.len() < 1000 {
        let t = Instant::now();
        f(s.len() % copies)?;
        s.push(t.elapsed().as_secs_f64());
    }
    s.sort_by(f64::total_cmp);
    Ok(s[s.len() / 2])
}

fn copies_for(bytes: usize) -> usize {
    (96usize << 20).div_ceil(bytes.max(1)).clamp(2, 32)
}

fn row(primitive: &'static str, scheme: String, bits: u8, (m, k): (usize, usize), threads: usize, seconds: f64, bytes: usize) -> KernelBenchRow {
    let gb_s = bytes as f64 / seconds / 1e9;
    let roof = (30.0 * threads as f64).min(36.0);
    KernelBenchRow { primitive, scheme, bits, m, k, threads, seconds, weight_gb_s: gb_s, speedup_vs_dequant: None, roofline_fraction: gb_s / roof }
}

/// Benchmarks every primitive on every `(m, k)` shape with `threads` workers,
/// LUT activation group `act_group` ([`BENCH_ACT_GROUP`] is T-MAC's 32), and
/// `budget` of timing per row. Shapes need `k % 256 == 0` (Q2_K) and `m % 8 == 0`.
pub fn bench_kernels(session: &JitSession, shapes: &[(usize, usize)], threads: usize, act_group: usize, budget: Duration) -> Result<Vec<KernelBenchRow>, JitError> {
    let mut out = Vec::new();
    let mut rng = Xs(0x9e37_79b9_7f4a_7c15);
    for &(m, k) in shapes {
        let x: Vec<f32> = (0..k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
        let mut y = vec![0f32; m];
        // Dequant baselines.
        let mut base = Vec::new();
        for (fmt, bits) in [(WeightFormat::Q2_K, 2u8), (WeightFormat::Q4_0, 4), (WeightFormat::TQ2_0, 2)] {
            let kernel = GemvKernel::new(session, fmt, m, k)?;
            let w1 = ggml_bytes(fmt, m, k, &mut rng);
            let ws: Vec<Vec<u8>> = (0..copies_for(w1.len())).map(|_| w1.clone()).collect();
            let t = median_time(ws.len(), budget, |i| {
                let xq = ActivationQ8::quantize(fmt.activation(), &x, 1, k).map_err(JitError::InvalidParams)?;
                kernel.run(black_box(&ws[i]), &xq, &mut y, threads)
            })?;
            let name = format!("{fmt:?}").to_lowercase();
            base.push((name.clone(), t));
            out.push(row("dequant", name, bits, (m, k), threads, t, w1.len()));
        }
        let base_of = |s: &str| base.iter().find(|(n, _)| n == s).map(|b| b.1);
        // LUT kernels.
        let encs: Vec<(Encoding, String, u8, Option<f64>)> = (1..=4u8)
            .map(|b| {
                let baseline = match b {
                    2 => base_of("q2_k"),
                    4 => base_of("q4_0"),
                    _ => None,
                };
                (Encoding::Gq(GqParams { bits: b, group: BENCH_GROUP, zero: false }), format!("gq{b}"), b, baseline)
            })
            .chain([(Encoding::Ternary(TernaryParams { group: 0 }), "ternary".to_string(), 2, base_of("tq2_0"))])
            .collect();
        for (enc, name, bits, baseline) in encs {
            let packed = LutWeights::pack(enc, &lut_bytes(enc, m * k, &mut rng), m, k, act_group)?;
            let kernel = LutKernel::new(session, packed.spec())?;
            let ws: Vec<LutWeights> = (0..copies_for(packed.bytes().len())).map(|_| packed.clone()).collect();
            let t = median_time(ws.len(), budget, |i| kernel.run(black_box(&ws[i]), &x, &mut y, threads))?;
            let mut r = row("lut", name, bits, (m, k), threads, t, packed.bytes().len());
            r.speedup_vs_dequant = baseline.map(|b| b / t);
            out.push(r);
        }
        // BCQ with APoT α (ShiftAddLLM): the shift-add kernel and the LUT
        // kernel on the same weights.
        for bits in [2u8, 3] {
            let p = BcqParams { bits, group: BENCH_GROUP, pot: true, apot: 3 };
            let enc = Encoding::Bcq(p);
            let wb = apot_bytes(p, m * k, &mut rng);
            let scheme = format!("bcq{bits}-apot");
            let (kernel, packed) = ShiftAddKernel::for_weight(session, p, &wb, m, k)?;
            let ws: Vec<ShiftAddWeights> = (0..copies_for(packed.bytes().len())).map(|_| packed.clone()).collect();
            let t = median_time(ws.len(), budget, |i| kernel.run(black_box(&ws[i]), &x, &mut y, threads))?;
            let mut r = row("shiftadd", scheme.clone(), bits, (m, k), threads, t, packed.bytes().len());
            r.speedup_vs_dequant = base_of("q2_k").map(|b| b / t);
            out.push(r);
            let packed = LutWeights::pack(enc, &wb, m, k, act_group)?;
            let kernel = LutKernel::new(session, packed.spec())?;
            let ws: Vec<LutWeights> = (0..copies_for(packed.bytes().len())).map(|_| packed.clone()).collect();
            let t = median_time(ws.len(), budget, |i| kernel.run(black_box(&ws[i]), &x, &mut y, threads))?;
            let mut r = row("lut", scheme, bits, (m, k), threads, t, packed.bytes().len());
            r.speedup_vs_dequant = base_of("q2_k").map(|b| b / t);
            out.push(r);
        }
    }
    Ok(out)
}
