//! Differential tests of the N:M sparse JIT GEMV/GEMM (`cpu::sparse`: the
//! row kernels for 1–3 activation rows and the transposed 4-row GEMM)
//! against a plain reference: the `#nm` bytes decoded with
//! `flexc_ir::quant::decode` and multiplied densely in f64.
//!
//! Error budget: the kernel sums the same products in f32 in another order
//! (f32x4 lanes, several accumulators, fused multiply-adds), so per output
//! `|y − ref| ≤ 4·ε·Σ_k |w_k·x_k|` (ε = 2⁻²³): a few ulps relative to the
//! magnitude of the products, whatever the cancellation.

use flexc_backends::cpu::runtime::Pool;
use flexc_backends::cpu::sparse::{SparseKernel, SparseSpec, SparseWeights};
use flexc_backends::cpu::{IsaSpec, JitError, JitSession};
use flexc_ir::quant::{decode, encode, nm, Nm};
use flexc_ir::Encoding;

use flexc_backends::xorshift::XorShift as Rng;

/// Random `#nm<n, m>` bytes of a `[rows, cols]` weight (magnitude pruning of
/// random values, so the kept positions differ from group to group).
fn weights(rng: &mut Rng, n: u8, m: u8, rows: usize, cols: usize) -> Vec<u8> {
    encode(Encoding::Nm(Nm::of(n, m)), &rng.vec(rows * cols, 1.0)).expect("encodes")
}

fn dense(n: u8, m: u8, bytes: &[u8], rows: usize, cols: usize) -> Vec<f32> {
    let mut w = vec![0f32; rows * cols];
    decode(Encoding::Nm(Nm::of(n, m)), bytes, &mut w).expect("decodes");
    w
}

/// Checks `y` against `x · Wᵀ` within the budget of the module docs.
fn check(w: &[f32], x: &[f32], y: &[f32], rows: usize, cols: usize, what: &str) {
    let rows_x = x.len() / cols;
    assert_eq!(y.len(), rows_x * rows, "{what}: output length");
    for i in 0..rows_x {
        for r in 0..rows {
            let (mut s, mut a) = (0f64, 0f64);
            for k in 0..cols {
                let p = w[r * cols + k] as f64 * x[i * cols + k] as f64;
                s += p;
                a += p.abs();
            }
            let got = y[i * rows + r] as f64;
            let tol = 4.0 * f32::EPSILON as f64 * a + 1e-30;
            assert!((got - s).abs() <= tol, "{what}: y[{i}, {r}] = {got}, reference {s} (|Σ|wx|| = {a}, tolerance {tol})");
        }
    }
}

/// Every pattern FLOW picks, the dense ones, and general N:M up to M = 16
/// (including M that are not multiples of 4, which pad x, and M ≤ 2, which
/// fuse groups).
const PATTERNS: &[(u8, u8)] = &[
    (1, 4), (2, 4), (3, 4), (4, 4), (2, 8), (4, 8), (8, 8), (1, 8), (8, 16), (4, 16), (1, 16), (16, 16),
    (1, 2), (2, 2), (1, 1), (2, 3), (3, 5), (5, 7), (6, 12), (7, 13), (3, 6),
];

#[test]
fn packing_round_trips_to_the_decoded_weight() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for &(n, m) in PATTERNS {
        for (rows, groups) in [(1, 1), (5, 3), (8, 7), (13, 9)] {
            let cols = m as usize * groups;
            let b = weights(&mut rng, n, m, rows, cols);
            let p = SparseWeights::pack(Nm::of(n, m), &b, rows, cols).expect("packs");
            assert_eq!(p.to_dense(), dense(n, m, &b, rows, cols), "{n}:{m} {rows}×{cols}");
            // Only the kept weights are stored: per row block one unit (4
            // values) per kept weight of a row, plus each chunk's metadata.
            let l = p.layout();
            assert_eq!(l.units(), cols / m as usize * n as usize, "{n}:{m}");
            let tail = l.units() - l.chunks() * l.chunk_units();
            let meta = l.chunks() * l.meta_bytes(l.chunk_units()) + if tail > 0 { l.meta_bytes(tail) } else { 0 };
            assert_eq!(p.streamed_bytes(), l.row_blocks * (16 * l.units() + meta), "{n}:{m} {rows}×{cols}");
        }
    }
}

#[test]
fn streamed_bytes_stay_at_the_compressed_size() {
    let mut rng = Rng(77);
    let (rows, cols) = (64, 1536);
    for &(n, m) in &[(2u8, 4u8), (1, 4), (4, 8), (2, 8), (8, 16)] {
        let b = weights(&mut rng, n, m, rows, cols);
        let p = SparseWeights::pack(Nm::of(n, m), &b, rows, cols).expect("packs");
        let kept = (rows * cols / m as usize * n as usize) as f64;
        let per_kept = p.streamed_bytes() as f64 / kept;
        // 4 bytes of value plus b/8 of index (module docs): 1536 columns make
        // whole chunks for these patterns, so nothing is padded. Never above the codec.
        let b_bits = p.layout().index_bits as f64;
        assert!((per_kept - (4.0 + b_bits / 8.0)).abs() < 1e-9, "{n}:{m}: {per_kept} bytes per kept weight");
        assert!(p.streamed_bytes() <= b.len(), "{n}:{m}: {} streamed > {} codec", p.streamed_bytes(), b.len());
    }
}

#[test]
fn kernel_matches_reference_on_random_shapes() {
    let session = JitSession::host().expect("host session");
    let mut rng = Rng(0xfeed_beef_cafe_f00d);
    for (case, &(n, m)) in PATTERNS.iter().enumerate() {
        // Shapes: rows not a multiple of 4 included; cols rarely a multiple of 16·M.
        let rows = [1, 3, 4, 7, 12, 17, 33][rng.below(7)] + case % 3;
        let groups = 1 + rng.below(40);
        let cols = m as usize * groups;
        let bytes = weights(&mut rng, n, m, rows, cols);
        let w = dense(n, m, &bytes, rows, cols);
        let packed = SparseWeights::pack(Nm::of(n, m), &bytes, rows, cols).expect("packs");
        let tile = [1, 3, 4, 8][case % 4];
        let kernel = SparseKernel::with_tile(&session, packed.spec(), tile).expect("compiles");
        for rows_x in 1..=8 {
            let x = rng.vec(rows_x * cols, 1.0);
            for threads in [1, 2] {
                let mut y = vec![f32::NAN; rows_x * rows];
                kernel.run(&packed, &x, rows_x, &mut y, threads).expect("runs");
                check(&w, &x, &y, rows, cols, &format!("{n}:{m} {rows}×{cols} rows_x {rows_x} tile {tile} threads {threads}"));
            }
        }
    }
}

#[test]
fn flow_patterns_on_model_like_shapes() {
    let session = JitSession::host().expect("host session");
    let pool = Pool::new(2).expect("pool");
    let mut rng = Rng(99);
    for &(n, m) in &[(2u8, 4u8), (1, 4), (2, 8), (4, 8), (8, 16)] {
        // k = 576 is not a multiple of 16·M for M = 8, 16; rows 90 not of 4.
        for (rows, cols) in [(90, 576), (64, 1040)] {
            let bytes = weights(&mut rng, n, m, rows, cols);
            let w = dense(n, m, &bytes, rows, cols);
            let packed = SparseWeights::pack(Nm::of(n, m), &bytes, rows, cols).expect("packs");
            let kernel = SparseKernel::new(&session, packed.spec()).expect("compiles");
            for rows_x in [1, 5] {
                let x = rng.vec(rows_x * cols, 1.0);
                let mut y = vec![0f32; rows_x * rows];
                kernel.run_pool(&pool, &packed, &x, rows_x, &mut y, 2).expect("runs");
                check(&w, &x, &y, rows, cols, &format!("{n}:{m} {rows}×{cols} pool rows_x {rows_x}"));
                let mut y1 = vec![0f32; rows_x * rows];
                kernel.run(&packed, &x, rows_x, &mut y1, 1).expect("runs");
                // Same code on disjoint row blocks: identical bits whatever the split.
                assert_eq!(y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), y1.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            }
        }
    }
}

#[test]
fn older_isas_take_the_fallback_paths() {
    // SSE4.2 without AVX/FMA (mul + add, legacy pblendvb), and SSSE3 alone
    // (no blendv: compare + bitselect).
    let isas = [IsaSpec::x86_64_sse42(), IsaSpec::Explicit(vec!["has_sse3".into(), "has_ssse3".into()])];
    let mut rng = Rng(5);
    for isa in isas {
        let Ok(session) = JitSession::new(isa.clone()) else { continue };
        if session.executable().is_err() {
            continue;
        }
        for &(n, m) in &[(2u8, 4u8), (3, 8), (5, 12), (8, 16)] {
            let (rows, cols) = (10, m as usize * 11);
            let bytes = weights(&mut rng, n, m, rows, cols);
            let w = dense(n, m, &bytes, rows, cols);
            let packed = SparseWeights::pack(Nm::of(n, m), &bytes, rows, cols).expect("packs");
            let kernel = SparseKernel::with_tile(&session, packed.spec(), 4).expect("compiles");
            for rows_x in [3, 5] {
                let x = rng.vec(rows_x * cols, 1.0);
                let mut y = vec![0f32; rows_x * rows];
                kernel.run(&packed, &x, rows_x, &mut y, 1).expect("runs");
                check(&w, &x, &y, rows, cols, &format!("{isa:?} {n}:{m} rows_x {rows_x}"));
            }
        }
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let session = JitSession::host().expect("host session");
    let mut rng = Rng(3);
    let (n, m, rows, cols) = (2u8, 4u8, 6usize, 32usize);
    let bytes = weights(&mut rng, n, m, rows, cols);
    // Bad patterns and shapes.
    // Bad patterns cannot be built (the IR's `Nm` is valid by construction).
    for (n, m) in [(0i64, 4i64), (5, 4), (1, 17)] {
        assert!(Nm::new(n, m).is_err(), "{n}:{m}");
    }
    for (n, m, rows, cols) in [(2u8, 4u8, 6, 30), (2, 4, 0, 32), (2, 4, 6, 0)] {
        assert!(matches!(SparseWeights::pack(Nm::of(n, m), &bytes, rows, cols), Err(JitError::InvalidParams(_))), "{n}:{m} {rows}×{cols}");
        assert!(SparseKernel::new(&session, SparseSpec { nm: Nm::of(n, m), rows, cols }).is_err());
    }
    // Wrong byte count.
    assert!(matches!(SparseWeights::pack(Nm::of(n, m), &bytes[1..], rows, cols), Err(JitError::Length(_))));
    // Indices not strictly increasing: group 0 of row 0 gets indices 1, 1.
    let mut bad = bytes.clone();
    bad[8] = 0b0101;
    assert!(matches!(SparseWeights::pack(Nm::of(n, m), &bad, rows, cols), Err(JitError::InvalidParams(_))));
    assert!(nm::decode(Nm::of(n, m), &bad, &mut vec![0f32; rows * cols]).is_err());
    // A bad tile, mismatched weights, wrong x / y lengths.
    let spec = SparseSpec { nm: Nm::of(n, m), rows, cols };
    assert!(SparseKernel::with_tile(&session, spec, 0).is_err());
    assert!(SparseKernel::with_tile(&session, spec, 9).is_err());
    let kernel = SparseKernel::new(&session, spec).expect("compiles");
    let packed = SparseWeights::pack(Nm::of(n, m), &bytes, rows, cols).expect("packs");
    let other = SparseWeights::pack(Nm::of(1, 4), &weights(&mut rng, 1, 4, rows, cols), rows, cols).expect("packs");
    let x = rng.vec(2 * cols, 1.0);
    let mut y = vec![0f32; 2 * rows];
    assert!(matches!(kernel.run(&other, &x, 2, &mut y, 1), Err(JitError::InvalidParams(_))));
    assert!(matches!(kernel.run(&packed, &x[1..], 2, &mut y, 1), Err(JitError::Length(_))));
    assert!(matches!(kernel.run(&packed, &x, 2, &mut y[1..], 1), Err(JitError::Length(_))));
    assert!(matches!(kernel.run(&packed, &x, 3, &mut y, 1), Err(JitError::Length(_))));
    assert!(matches!(kernel.run(&packed, &x, usize::MAX, &mut y, 1), Err(JitError::Length(_))));
    // Zero activation rows is a valid empty call; oversize thread counts are clamped.
    kernel.run(&packed, &[], 0, &mut [], 4).expect("empty batch");
    kernel.run(&packed, &x, 2, &mut y, 64).expect("threads clamp to the row blocks");
    check(&dense(n, m, &bytes, rows, cols), &x, &y, rows, cols, "clamped threads");
}

#[test]
fn kernel_streams_compressed_weights_with_pshufb_gathers() {
    // The machine code reads the mask tables through pshufb, not a scalar
    // gather per weight: per unit one pshufb (M = 4) and one fma.
    let session = JitSession::new(IsaSpec::x86_64_avx2()).expect("avx2 session");
    let spec = SparseSpec { nm: Nm::TWO_FOUR, rows: 64, cols: 256 };
    let kernel = SparseKernel::with_tile(&session, spec, 1).expect("compiles");
    let vcode = kernel.compiled(1).and_then(|f| f.vcode()).expect("vcode");
    let count = |op: &str| vcode.lines().filter(|l| l.trim_start().starts_with(op)).count();
    let units = spec.layout().map(|l| l.unroll * l.slots).expect("layout");
    assert!(count("vpshufb") >= units && count("vpshufb") <= units + 2, "{} vpshufb for {units} units:\n{vcode}", count("vpshufb"));
    assert!(count("vmulps") >= units, "{} vmulps for {units} units:\n{vcode}", count("vmulps"));
    assert_eq!(count("vmovss") + count("vpinsr") + count("vinsertps"), 0, "no scalar gathers:\n{vcode}");
    // The transposed GEMM: per kept weight one broadcast of the value and one
    // multiply by the 4 activation rows' x at its column, no pshufb.
    let kernel = SparseKernel::with_tile(&session, spec, 4).expect("compiles");
    let vcode = kernel.compiled(4).and_then(|f| f.vcode()).expect("vcode");
    let count = |op: &str| vcode.lines().filter(|l| l.trim_start().starts_with(op)).count();
    assert!(count("vbroadcastss") >= 4 * units && count("vmulps") >= 4 * units, "{vcode}");
    assert_eq!(count("vpshufb"), 0, "{vcode}");
}
