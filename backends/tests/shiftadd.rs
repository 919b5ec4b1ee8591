//! Differential tests of the JIT shift-add (μ = 8, i32 tables) kernel
//! against the reference interpreter (`quant.mpgemm` = `matmul(x,
//! dequantize(w))`) on random shapes, encodings and K tiles.
//!
//! Error budget: the tables are exact integer sums of `x̂ = round(x/λ)`, so
//! `|x − λ·x̂| ≤ λ/2` per activation and a row is off by at most
//! `Σ_k |ŵ_k|·λ/2`; the `α` exponent adds are exact, and the f32 sums add
//! rounding of a few ulp of `Σ_k |ŵ_k·x_k|`.

mod common;
use common::interpreter;
use flexc_backends::cpu::shiftadd::{BcqTables, ShiftAddKernel, ShiftAddWeights};
use flexc_backends::cpu::JitSession;
use flexc_backends::xorshift::XorShift as Rng;
use flexc_ir::quant::{decode, encode, BcqParams};
use flexc_ir::Encoding;

/// Runs the kernel on `bytes` and checks every row against the interpreter
/// within the budget of the module docs; returns the packed spec's terms.
fn check(s: &JitSession, p: BcqParams, bytes: &[u8], m: usize, k: usize, k_tile: usize, threads: usize, x: &[f32]) -> u8 {
    let enc = Encoding::Bcq(p);
    let w = ShiftAddWeights::pack(p, bytes, m, k, k_tile).unwrap();
    let kernel = ShiftAddKernel::new(s, w.spec()).unwrap();
    let mut y = vec![f32::NAN; m];
    kernel.run(&w, x, &mut y, threads).unwrap();
    let want = interpreter(enc, bytes, m, k, x);
    let mut wd = vec![0f32; m * k];
    decode(enc, bytes, &mut wd).unwrap();
    let lambda = BcqTables::build(x, p.row_block_elems()).unwrap().lambda;
    for r in 0..m {
        let row = &wd[r * k..(r + 1) * k];
        let l1: f32 = row.iter().map(|v| v.abs()).sum();
        let mag: f32 = row.iter().zip(x).map(|(w, x)| (w * x).abs()).sum();
        let tol = l1 * lambda / 2.0 + 4e-6 * mag + 1e-30;
        assert!((y[r] - want[r]).abs() <= tol, "{enc} {m}×{k} tile {k_tile} row {r}: {} vs {} (tol {tol})", y[r], want[r]);
    }
    w.spec().terms
}

#[test]
fn shiftadd_matches_the_interpreter_on_random_shapes() {
    let s = JitSession::host().unwrap();
    let mut rng = Rng(77);
    for case in 0..40 {
        let bits = 1 + (case % 4) as u8;
        let pot = case % 5 != 0;
        let apot = 1 + (case % 3) as u8;
        let group = rng.pick(&[8u32, 16, 32, 64, 128, 192]);
        let k = group as usize * rng.pick(&[1usize, 2, 3, 5]);
        let m = rng.pick(&[1usize, 3, 4, 5, 16, 33]);
        let k_tile = rng.pick(&[0usize, 8, 24, 64, 128, 256, 100_000]);
        let threads = rng.pick(&[1usize, 2]);
        let p = BcqParams::row(bits, group, pot, apot);
        let mut w = rng.vec(m * k, 0.05);
        // An all-zero row gives α = 0 groups (masked in the exponent path).
        if m > 2 {
            w[k..2 * k].fill(0.0);
        }
        let x = rng.vec(k, 1.0);
        let bytes = encode(Encoding::Bcq(p), &w).unwrap();
        let terms = check(&s, p, &bytes, m, k, k_tile, threads, &x);
        assert_eq!(terms > 0, pot, "case {case}: APoT α of {apot} terms");
        assert!(terms <= apot, "case {case}: {terms} terms for apot {apot}");
    }
}

/// `pot` weights whose α are not sums of ≤ 4 powers of two (a hand-made
/// block) fall back to multiplies; 4-term α use every byte of the word.
#[test]
fn hand_made_alphas_use_the_right_path() {
    let s = JitSession::host().unwrap();
    let mut rng = Rng(9);
    let (m, k) = (6, 64);
    let x = rng.vec(k, 2.0);
    let p = BcqParams::row(2, 32, true, 3);
    for (a, terms) in [(0.1f32, 0u8), (0.5 + 0.125 + 0.03125 + 0.0078125, 4), (0.25, 1)] {
        let mut bytes = rng.bytes(m * k / 32 * p.block_bytes());
        let h = half::f16::from_f32(a).to_le_bytes();
        for blk in bytes.chunks_exact_mut(p.block_bytes()) {
            blk[0..2].copy_from_slice(&h);
            blk[2..4].copy_from_slice(&h);
        }
        assert_eq!(check(&s, p, &bytes, m, k, 128, 1, &x), terms, "α = {a}");
    }
}

#[test]
fn activations_with_outliers_stay_in_budget() {
    let s = JitSession::host().unwrap();
    let mut rng = Rng(5);
    let (m, k) = (8, 4096);
    let p = BcqParams::row(3, 4096, true, 3);
    let mut x = rng.vec(k, 1.0);
    x[17] = 3000.0;
    x[900] = -1e-7;
    let bytes = encode(Encoding::Bcq(p), &rng.vec(m * k, 0.02)).unwrap();
    check(&s, p, &bytes, m, k, 128, 2, &x);
}

#[test]
fn bad_inputs_are_errors() {
    let s = JitSession::host().unwrap();
    let p = BcqParams::row(2, 32, true, 2);
    let bytes = encode(Encoding::Bcq(p), &[0.1; 4 * 64]).unwrap();
    assert!(ShiftAddWeights::pack(p, &bytes[1..], 4, 64, 128).is_err());
    assert!(ShiftAddWeights::pack(p, &bytes, 4, 60, 128).is_err());
    let w = ShiftAddWeights::pack(p, &bytes, 4, 64, 128).unwrap();
    let kernel = ShiftAddKernel::new(&s, w.spec()).unwrap();
    assert!(kernel.run(&w, &[0.0; 63], &mut [0.0; 4], 1).is_err());
    assert!(kernel.run(&w, &[0.0; 64], &mut [0.0; 3], 1).is_err());
    assert!(kernel.run(&w, &[f32::INFINITY; 64], &mut [0.0; 4], 1).is_err());
    let other = ShiftAddWeights::pack(p, &bytes, 4, 64, 32).unwrap();
    assert!(kernel.run(&other, &[0.0; 64], &mut [0.0; 4], 1).is_err());
}
