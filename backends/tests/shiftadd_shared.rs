//! Differential tests of the shift-add kernel on ShiftAddLLM's shared-scale
//! `#bcq` layouts (`scales = acc|lat`: α applied to the activations,
//! per-plane tables, no per-row scale) against the reference interpreter
//! (`quant.mpgemm`), on random shapes, bits, K tiles, threads and batches.
//!
//! Error budget: every table entry is an exact i32 sum of `x̂' =
//! round(α·x/λ)` (`≤ λ/2` off per activation and plane, `λ ≤ α_max·Σ|x|/2^30`),
//! each (plane, segment) sum is rounded once to f32 (relative 2^-24 of at
//! most `α_max·Σ|x|`), and the f32 sums add a few ulp of `Σ|ŵ·x|`.

mod common;
use common::interpreter;
use flexc_backends::cpu::shiftadd::{BcqTables, ShiftAddKernel, ShiftAddWeights};
use flexc_backends::cpu::JitSession;
use flexc_backends::xorshift::XorShift as Rng;
use flexc_ir::quant::{BcqParams, BcqScales};
use flexc_ir::Encoding;

/// Checks `y` (rows of `m`) against the interpreter for activation rows `xs`.
fn check_rows(p: BcqParams, bytes: &[u8], m: usize, k: usize, xs: &[f32], y: &[f32], what: &str) {
    let enc = Encoding::Bcq(p);
    let mut wd = vec![0f32; m * k];
    enc.decode(&[m, k], bytes, &mut wd).unwrap();
    let amax = p.shared_alphas(bytes, m, k).into_iter().fold(0f32, f32::max);
    for (x, yr) in xs.chunks_exact(k).zip(y.chunks_exact(m)) {
        let want = interpreter(enc, bytes, m, k, x);
        let l1x: f32 = x.iter().map(|v| v.abs()).sum();
        for r in 0..m {
            let mag: f32 = wd[r * k..(r + 1) * k].iter().zip(x).map(|(w, x)| (w * x).abs()).sum();
            let tol = 4e-6 * mag + 2e-7 * p.bits as f32 * amax * l1x * (k as f32 / 8.0).sqrt() + 1e-30;
            assert!((yr[r] - want[r]).abs() <= tol, "{what} {enc} {m}×{k} row {r}: {} vs {} (tol {tol})", yr[r], want[r]);
        }
    }
}

fn weight(rng: &mut Rng, p: BcqParams, m: usize, k: usize) -> Vec<u8> {
    let mut w = rng.vec(m * k, 0.05);
    // A zero column (acc) or zero block (lat) gives α = 0 sets.
    w.iter_mut().skip(3).step_by(k).for_each(|v| *v = 0.0);
    p.encode_shared(&w, m, k, 5).unwrap()
}

#[test]
fn shared_scales_match_the_interpreter_on_random_shapes() {
    let s = JitSession::host().unwrap();
    let mut rng = Rng(31);
    for case in 0..32 {
        let scales = if case % 2 == 0 { BcqScales::Acc } else { BcqScales::Lat };
        let bits = 1 + (case / 2 % 4) as u8;
        let (pot, apot) = (case % 7 != 0, 1 + (case % 3) as u8);
        let p = BcqParams::shared(bits, pot, if pot { apot } else { 3 }, scales);
        let m = if scales == BcqScales::Lat { rng.pick(&[32usize, 64, 96]) } else { rng.pick(&[1usize, 3, 4, 5, 16, 33]) };
        let k = 8 * rng.pick(&[1usize, 3, 8, 17, 32]);
        let k_tile = rng.pick(&[0usize, 8, 24, 64, 128, 100_000]);
        let threads = rng.pick(&[1usize, 2]);
        let bytes = weight(&mut rng, p, m, k);
        let w = ShiftAddWeights::pack(p, &bytes, m, k, k_tile).unwrap();
        let kernel = ShiftAddKernel::new(&s, w.spec()).unwrap();
        let x = rng.vec(k, 1.0);
        let mut y = vec![f32::NAN; m];
        kernel.run(&w, &x, &mut y, threads).unwrap();
        check_rows(p, &bytes, m, k, &x, &y, &format!("case {case} tile {k_tile} threads {threads}"));
    }
}

/// A batch of activation rows through `run_blocks` in two row ranges (as
/// the runtime's work items do), then the same tables for a second weight:
/// the α-scaled tables are rebuilt per weight.
#[test]
fn batches_and_table_reuse_across_weights() {
    let s = JitSession::host().unwrap();
    let mut rng = Rng(8);
    let (m, k, batch) = (64, 96, 3);
    let xs = rng.vec(batch * k, 1.0);
    let mut tables = vec![BcqTables::default(); batch];
    for scales in [BcqScales::Lat, BcqScales::Acc] {
        let p = BcqParams::shared(3, true, 3, scales);
        let bytes = weight(&mut rng, p, m, k);
        let w = ShiftAddWeights::pack(p, &bytes, m, k, 32).unwrap();
        let kernel = ShiftAddKernel::new(&s, w.spec()).unwrap();
        if scales == BcqScales::Lat {
            for (t, x) in tables.iter_mut().zip(xs.chunks_exact(k)) {
                t.fill(x, w.spec().group).unwrap();
            }
        }
        let mut y = vec![f32::NAN; batch * m];
        kernel.check(&w, &tables, y.len()).unwrap();
        let nb = w.spec().blocks();
        // SAFETY: `check` passed; the two ranges are disjoint and cover every block.
        unsafe {
            kernel.run_blocks(&w, &tables, y.as_mut_ptr(), 0, nb / 2 + 1);
            kernel.run_blocks(&w, &tables, y.as_mut_ptr(), nb / 2 + 1, nb);
        }
        check_rows(p, &bytes, m, k, &xs, &y, "batch");
    }
}

#[test]
fn bad_shapes_and_lengths_are_errors() {
    let mut rng = Rng(2);
    let lat = BcqParams::shared(2, true, 3, BcqScales::Lat);
    let bytes = weight(&mut rng, lat, 16, 64);
    // Lat rows must be whole 4-row kernel blocks per scale block (a multiple of 32).
    assert!(ShiftAddWeights::pack(lat, &bytes, 16, 64, 128).is_err());
    let acc = BcqParams::shared(2, true, 3, BcqScales::Acc);
    let bytes = weight(&mut rng, acc, 5, 64);
    assert!(ShiftAddWeights::pack(acc, &bytes[1..], 5, 64, 128).is_err());
    assert!(ShiftAddWeights::pack(acc, &bytes, 5, 56, 128).is_err());
    let s = JitSession::host().unwrap();
    let w = ShiftAddWeights::pack(acc, &bytes, 5, 64, 128).unwrap();
    let kernel = ShiftAddKernel::new(&s, w.spec()).unwrap();
    assert!(kernel.run(&w, &[0.0; 56], &mut [0.0; 5], 1).is_err());
    assert!(kernel.run(&w, &[f32::NAN; 64], &mut [0.0; 5], 1).is_err());
}
