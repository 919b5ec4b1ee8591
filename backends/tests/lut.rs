//! Differential tests of the T-MAC LUT GEMV against the reference interpreter
//! (`quant.mpgemm` = `matmul(x, dequantize(w))`) and against the scalar model
//! of the same int8-table algorithm, plus T-MAC's table-quantization error
//! experiment (`tests/test_acc.py`).
//!
//! Error budget vs the interpreter: each int8 table entry is off by at most
//! `λ_a/2` from the exact `Σ ±x`, and a row's value uses one entry per
//! 4-group and bit-plane with weight `2^(i−1)`, so per row
//! `|err| ≤ Σ_g |d_g|·(2^b − 1)/2·Σ_{a∈g} (A/4)·λ_a/2` (+ f32 rounding slack).
//! Against the scalar model the only difference is f32 summation order.

mod common;
use common::interpreter;
use flexc_backends::cpu::lut::{LutActivation, LutKernel, LutWeights};
use flexc_backends::cpu::{IsaSpec, JitSession};
use flexc_ir::quant::{encode, BcqParams, GqParams, TernaryParams};
use flexc_ir::Encoding;
use flexc_passes::quant::formats::QuantFormat;

use flexc_backends::xorshift::XorShift as Rng;

/// The per-row error budget of the table quantization (module docs).
fn budget(w: &LutWeights, act: &LutActivation, wabs: &[f32]) -> Vec<f32> {
    let s = w.spec();
    let levels = ((1u32 << s.bits) - 1) as f32 / 2.0;
    // max |d| per row and group: recovered from the dequantized magnitudes is
    // overkill; use max|w| / (smallest nonzero level 1/2) as a bound on |d|.
    (0..s.rows)
        .map(|r| {
            let mut e = 0f32;
            for g in 0..s.cols / s.group {
                let wmax = wabs[r * s.cols + g * s.group..][..s.group].iter().fold(0f32, |a, &b| a.max(b));
                let d = 2.0 * wmax;
                let lam: f32 = act.lambdas[g * s.group / s.act_group..][..s.group / s.act_group].iter().map(|l| 2.0 * l).sum();
                e += d * levels * (s.act_group / 4) as f32 * lam / 2.0;
            }
            e * 1.001 + 1e-5
        })
        .collect()
}

fn check(session: &JitSession, enc: Encoding, m: usize, k: usize, act_group: usize, seed: u64) {
    check_tiled(session, enc, (m, k), act_group, flexc_backends::cpu::lut::DEFAULT_K_TILE, seed);
}

/// [`check`] with K tiles of `k_tile` columns; then a batch of 3 activation
/// rows through [`LutKernel::run_blocks`] in two row-block ranges (as the
/// runtime splits a prefill), which must reproduce the single-row results.
fn check_tiled(session: &JitSession, enc: Encoding, (m, k): (usize, usize), act_group: usize, k_tile: usize, seed: u64) {
    let mut rng = Rng(seed);
    let w = rng.vec(m * k, 0.05);
    let x = rng.vec(k, 1.0);
    let bytes = encode(enc, &w).unwrap();
    let mut deq = vec![0f32; m * k];
    flexc_ir::quant::decode(enc, &bytes, &mut deq).unwrap();
    let packed = LutWeights::pack_tiled(enc, &bytes, m, k, act_group, k_tile).unwrap();
    let kernel = LutKernel::new(session, packed.spec()).unwrap();
    let act = LutActivation::build(&packed.spec(), &x).unwrap();
    let mut y = vec![0f32; m];
    kernel.run_prepared(&packed, &act, &mut y, 1).unwrap();
    let model = act.model(&packed);
    let want = interpreter(enc, &bytes, m, k, &x);
    let wabs: Vec<f32> = deq.iter().map(|v| v.abs()).collect();
    let bud = budget(&packed, &act, &wabs);
    for r in 0..m {
        let scale: f32 = (0..k).map(|c| (deq[r * k + c] * x[c]).abs()).sum::<f32>() + 1e-6;
        assert!((y[r] - model[r]).abs() <= 1e-5 * scale, "{enc} {m}×{k} row {r}: jit {} vs model {}", y[r], model[r]);
        assert!((y[r] - want[r]).abs() <= bud[r], "{enc} {m}×{k} row {r}: jit {} vs interpreter {} (budget {})", y[r], want[r], bud[r]);
    }
    // Two threads give the same bits (disjoint rows, same per-row order).
    let mut y2 = vec![0f32; m];
    kernel.run_prepared(&packed, &act, &mut y2, 2).unwrap();
    assert_eq!(y, y2);
    // A batch: rows x2, x, x3; each row's result is the single-row one.
    let xs = [rng.vec(k, 1.0), x.clone(), rng.vec(k, 0.3)];
    let acts: Vec<LutActivation> = xs.iter().map(|x| LutActivation::build(&packed.spec(), x).unwrap()).collect();
    let mut yb = vec![f32::NAN; 3 * m];
    kernel.check(&packed, &acts, yb.len()).unwrap();
    let (nb, half) = (kernel.blocks(), kernel.blocks() / 2);
    // SAFETY: `check` passed; the two ranges partition the row blocks.
    unsafe {
        kernel.run_blocks(&packed, &acts, yb.as_mut_ptr(), half, nb);
        kernel.run_blocks(&packed, &acts, yb.as_mut_ptr(), 0, half);
    }
    for (i, (xi, a)) in xs.iter().zip(&acts).enumerate() {
        let mut yi = vec![0f32; m];
        kernel.run(&packed, xi, &mut yi, 1).unwrap();
        assert_eq!(yb[i * m..][..m], yi[..], "{enc} {m}×{k}: batch row {i}");
        let model = a.model(&packed);
        let scale: f32 = yi.iter().map(|v| v.abs()).fold(0.0, f32::max) + 1e-6;
        assert!(yi.iter().zip(&model).all(|(a, b)| (a - b).abs() <= 1e-5 * scale), "{enc} {m}×{k}: batch row {i} vs model");
    }
}

#[test]
fn gq_all_bits_match_the_interpreter() {
    // The host and AVX2 without VNNI: with VNNI, 3–4 bits combine the
    // planes with `vpdpbusd`, without it with `pmaddubsw` + `pmaddwd`.
    let sessions = [JitSession::host().unwrap(), JitSession::new(IsaSpec::x86_64_avx2()).unwrap()];
    for s in sessions.iter().filter(|s| s.executable().is_ok()) {
        gq_all_bits(s);
    }
}

fn gq_all_bits(s: &JitSession) {
    let mut seed = 11;
    let mut rng = Rng(77);
    for bits in 1..=4u8 {
        for zero in [false, true] {
            // 8320 columns: three K tiles (32 + 32 + 1 groups of 128). Rows in
            // 16-row blocks run 1 and 3 bits in the split layout, 8 and 4
            // rows in the padded one (4-row blocks for 3–4 bits).
            let fixed = [(16, 128, 64, 32), (32, 256, 128, 64), (8, 64, 32, 8), (8, 8320, 128, 32), (32, 8320, 128, 64), (48, 192, 64, 16)];
            for (m, k, group, ag) in fixed {
                let enc = Encoding::Gq(GqParams { bits, group, zero });
                let m = if bits > 2 && m < 32 { m / 2 } else { m };
                check(s, enc, m, k, ag, seed);
                // #gq scales are f16 and offsets half-integers: stored as f16.
                let spec = LutWeights::pack(enc, &encode(enc, &vec![0.01; m * k]).unwrap(), m, k, ag).unwrap().spec();
                assert!(spec.half_scales, "{enc}: f16 scales expected");
                assert_eq!(spec.split, bits % 2 == 1 && m % 16 == 0, "{enc} {m} rows");
                let planes = match bits {
                    1 | 3 if m % 16 == 0 => bits as usize,
                    1 | 2 => 2,
                    _ => 4,
                };
                let want = m * k * planes / 8 + m * (k / group as usize) * 2 * (1 + zero as usize);
                assert_eq!(spec.weight_bytes(), want, "{enc} {m}×{k}");
                // What the mixed-precision pass prices is what the kernel streams.
                assert_eq!(QuantFormat::of(enc).unwrap().streamed_bytes(m, k), want as u64, "{enc} {m}×{k}");
                seed += 1;
            }
            // Random shapes and K tiles.
            for _ in 0..3 {
                let group = rng.pick(&[32u32, 64, 128]);
                let ag = rng.pick(&[8usize, 16, 32, 64].map(|a| a.min(group as usize)));
                let m = rng.pick(&[4usize, 8, 16, 24, 32, 64, 80]);
                let m = if bits <= 2 { m.next_multiple_of(8) } else { m };
                let k = group as usize * (1 + rng.below(40));
                let k_tile = rng.pick(&[group as usize, 3 * group as usize, 4096]);
                check_tiled(s, Encoding::Gq(GqParams { bits, group, zero }), (m, k), ag, k_tile, seed);
                seed += 1;
            }
        }
    }
}

#[test]
fn ternary_matches_the_interpreter() {
    let s = JitSession::host().unwrap();
    // 8448 per-tensor: kernel groups of 768, tiles of 5 + 5 + 1 groups.
    for (group, m, k, ag) in [(0u32, 16, 256, 32), (64, 24, 192, 64), (32, 8, 96, 16), (0, 16, 8448, 32)] {
        check(&s, Encoding::Ternary(TernaryParams { group }), m, k, ag, 100 + group as u64 + k as u64);
    }
}

#[test]
fn bcq_lut_matches_the_interpreter() {
    let s = JitSession::host().unwrap();
    let mut seed = 500;
    for bits in 1..=4u8 {
        for pot in [false, true] {
            for (m, k, group, ag) in [(16, 128, 64, 32), (8, 8320, 128, 64)] {
                let m = if bits > 2 { m / 2 } else { m };
                check(&s, Encoding::Bcq(BcqParams::row(bits, group, pot, 3)), m, k, ag, seed);
                seed += 1;
            }
        }
    }
}

#[test]
fn bad_parameters_are_errors() {
    let enc = Encoding::Gq(GqParams { bits: 2, group: 32, zero: false });
    let bytes = encode(enc, &[0.1; 12 * 64]).unwrap();
    // 12 rows is not a multiple of the 8-row block; act group 48 does not divide 32.
    assert!(LutWeights::pack(enc, &bytes, 12, 64, 32).is_err());
    let bytes = encode(enc, &[0.1; 8 * 64]).unwrap();
    assert!(LutWeights::pack(enc, &bytes, 8, 64, 48).is_err());
    assert!(LutWeights::pack(enc, &bytes[1..], 8, 64, 32).is_err());
    let packed = LutWeights::pack(enc, &bytes, 8, 64, 32).unwrap();
    let s = JitSession::host().unwrap();
    let kernel = LutKernel::new(&s, packed.spec()).unwrap();
    assert!(kernel.run(&packed, &[0.0; 63], &mut [0.0; 8], 1).is_err());
    assert!(kernel.run(&packed, &[0.0; 64], &mut [0.0; 7], 1).is_err());
}

/// T-MAC `tests/test_acc.py`: K = M = 4096, activation group 32, seeded.
/// MSE against the exact f32 product of (a) int8 activations (absmax per
/// group of 32) then an exact dot, and (b) int8 tables (this kernel).
#[test]
fn table_quantization_error_like_tmac() {
    let (m, k, ag) = (4096, 4096, 32);
    let mut rng = Rng(2024);
    let enc = Encoding::Gq(GqParams { bits: 2, group: 128, zero: false });
    let w = rng.vec(m * k, 0.02);
    let x = rng.vec(k, 1.0);
    let bytes = encode(enc, &w).unwrap();
    let mut deq = vec![0f32; m * k];
    flexc_ir::quant::decode(enc, &bytes, &mut deq).unwrap();
    let exact: Vec<f64> = (0..m).map(|r| (0..k).map(|c| deq[r * k + c] as f64 * x[c] as f64).sum()).collect();
    // (a) int8 activations.
    let mut xq = vec![0f64; k];
    for (xa, qa) in x.chunks(ag).zip(xq.chunks_mut(ag)) {
        let s = xa.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0;
        for (v, q) in xa.iter().zip(qa) {
            *q = if s > 0.0 { (v / s).round_ties_even() as f64 * s as f64 } else { 0.0 };
        }
    }
    let act8: Vec<f64> = (0..m).map(|r| (0..k).map(|c| deq[r * k + c] as f64 * xq[c]).sum()).collect();
    // (b) int8 tables.
    let packed = LutWeights::pack(enc, &bytes, m, k, ag).unwrap();
    let kernel = LutKernel::new(&JitSession::host().unwrap(), packed.spec()).unwrap();
    let mut y = vec![0f32; m];
    kernel.run(&packed, &x, &mut y, 1).unwrap();
    let mse = |v: &mut dyn Iterator<Item = f64>| v.sum::<f64>() / m as f64;
    let mse_act = mse(&mut exact.iter().zip(&act8).map(|(a, b)| (a - b).powi(2)));
    let mse_lut = mse(&mut exact.iter().zip(&y).map(|(a, &b)| (a - b as f64).powi(2)));
    let var = mse(&mut exact.iter().map(|a| a * a));
    println!("table-quantization MSE (K = M = 4096, act group 32, 2-bit #gq g128): int8 activations {mse_act:.3e}, int8 tables {mse_lut:.3e}, E[y²] {var:.3e}");
    // Tables quantize sums of 4 values with the same 8 bits: a few times the
    // activation-quantization error, still far below the signal.
    assert!(mse_lut < var * 1e-3, "LUT MSE {mse_lut} vs signal {var}");
}

/// The 1-, 2- and 3-bit kernels' inner loops (the block with the lookups)
/// have no stack traffic: accumulators, mask and multipliers stay in the 16
/// xmm registers. (Only the prologue touches the stack: arguments 7–8
/// arrive there.) The split layout (1 and 3 bits on 16-row blocks) loops
/// over pairs and interleaves its single plane with `punpck[lh]bw`, not a
/// general shuffle.
#[test]
fn low_bit_kernels_do_not_spill() {
    // (bits, rows, pshufb per lookup block: 2-bit 4 pairs × 2 per activation
    // group of 32, split one pair × vectors × 2).
    for (bits, m, lookups) in [(3u8, 16, 6), (2, 8, 8), (1, 16, 2)] {
        let enc = Encoding::Gq(GqParams { bits, group: 128, zero: false });
        let bytes = encode(enc, &vec![0.1; m * 256]).unwrap();
        let packed = LutWeights::pack(enc, &bytes, m, 256, 32).unwrap();
        let kernel = LutKernel::new(&JitSession::host().unwrap(), packed.spec()).unwrap();
        let vcode = kernel.compiled().vcode().unwrap_or_default();
        if std::env::var_os("FLEXC_PRINT_VCODE").is_some() {
            println!("{vcode}");
        }
        let inner: Vec<&str> = vcode.split("\nblock").filter(|b| b.contains("pshufb")).collect();
        assert_eq!(inner.len(), 1, "{bits} bits: one lookup block expected:\n{vcode}");
        assert!(!inner[0].contains("rsp") && !inner[0].contains("rbp"), "{bits} bits: stack traffic in the inner loop:\n{}", inner[0]);
        assert_eq!(inner[0].matches("pshufb").count(), lookups, "{bits} bits: lookups per block");
        if bits % 2 == 1 {
            assert_eq!((inner[0].matches("punpcklbw").count(), inner[0].matches("punpckhbw").count()), (1, 1), "{bits} bits:\n{}", inner[0]);
        }
    }
}
