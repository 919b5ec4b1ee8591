//! Differential tests of the JIT GEMV/GEMM kernels (`flexc_backends::cpu`).
//!
//! Every weight format, on random shapes from a small deterministic PRNG, is
//! checked against two references:
//! 1. the exact one: ggml's dequantised weights (`flexc_ir::quant::ggml`)
//!    dotted, in f64, with the dequantised Q8 activations. Kernel and
//!    reference compute the same integer sums, so the budget is 1e-5 relative
//!    to Σ|w·x| (only the f32 accumulation order differs);
//! 2. the plain f32 dot of the unquantised weights (where ggml has a
//!    quantiser for the format, otherwise of the dequantised weights) with the
//!    unquantised activations, with a looser per-format budget.
//! Plus: bit-exact activation quantisation against ggml's Q8_0/Q8_K, GEMM
//! tiles and 2 threads bit-identical to the 1-thread GEMV, fallback ISAs
//! (AVX2 without VNNI, SSE4.2) give the same answers, VNNI code really uses
//! `vpdpbusd`, and bad parameters / lengths are rejected before Cranelift.

use flexc_backends::cpu::{ActKind, ActivationQ8, GemvKernel, IsaSpec, JitError, JitSession, MAX_TILE, ROW_GROUP, WeightFormat, WideTier};
use flexc_ir::quant::ggml;
use half::f16;

/// splitmix64: small, deterministic, good enough for test data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    /// Roughly Gaussian (sum of uniforms), with occasional outliers.
    fn gauss(&mut self) -> f32 {
        let s: f32 = (0..4).map(|_| self.unit()).sum::<f32>() * 0.8;
        if self.below(64) == 0 { s * 8.0 } else { s }
    }
}

fn f16_bytes(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_bits().to_le_bytes()
}

/// Random weights in `fmt`'s byte layout, plus the f32 values they were
/// quantised from (when ggml has a quantiser for the format).
fn random_weights(rng: &mut Rng, fmt: WeightFormat, rows: usize, cols: usize) -> (Vec<u8>, Option<Vec<f32>>) {
    let ty = fmt.ggml_type();
    if fmt == WeightFormat::F32 {
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.gauss()).collect();
        let bytes = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        return (bytes, Some(w));
    }
    if ggml::can_quantize(ty) {
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.gauss() * 0.05).collect();
        let bytes = ggml::quantize_to_vec(ty, &w).unwrap();
        return (bytes, Some(w));
    }
    // No ggml quantiser (Q4_K, Q6_K): random codes, sane f16 scales, and now
    // and then a subnormal or zero scale to exercise the f16 conversion.
    let bb = fmt.block_bytes();
    let nblocks = rows * cols / fmt.block_elems();
    let mut bytes: Vec<u8> = (0..nblocks * bb).map(|_| rng.next() as u8).collect();
    for blk in bytes.chunks_exact_mut(bb) {
        let scale = |rng: &mut Rng| -> [u8; 2] {
            match rng.below(16) {
                0 => ((1 + rng.below(0x3ff)) as u16).to_le_bytes(), // subnormal
                1 => [0, 0],
                _ => f16_bytes(rng.unit() * 0.01),
            }
        };
        match fmt {
            WeightFormat::Q4_K => {
                let d = scale(rng);
                let m = scale(rng);
                blk[0..2].copy_from_slice(&d);
                blk[2..4].copy_from_slice(&m);
            }
            WeightFormat::Q6_K => {
                let d = scale(rng);
                blk[208..210].copy_from_slice(&d);
            }
            _ => unreachable!("{fmt:?} has a ggml quantiser"),
        }
    }
    (bytes, None)
}

fn dequant(fmt: WeightFormat, bytes: &[u8], n: usize) -> Vec<f32> {
    ggml::dequantize_to_vec(fmt.ggml_type(), bytes, n).unwrap()
}

/// Dequantised activations, via ggml's own Q8_0/Q8_K dequantiser on the
/// ggml-layout bytes of the activation records.
fn act_dequant(x: &ActivationQ8, row: usize) -> Vec<f32> {
    let ty = match x.kind() {
        ActKind::Q8_0 => ggml::GgmlType::Q8_0,
        ActKind::Q8_K => ggml::GgmlType::Q8_K,
        ActKind::F32 => unreachable!(),
    };
    ggml::dequantize_to_vec(ty, &x.ggml_block_bytes(row), x.cols()).unwrap()
}

/// `(Σ w·x, Σ |w·x|)` in f64.
fn dot64(w: &[f32], x: &[f32]) -> (f64, f64) {
    w.iter().zip(x).fold((0.0, 0.0), |(s, a), (&w, &x)| {
        let p = w as f64 * x as f64;
        (s + p, a + p.abs())
    })
}

/// Relative (to Σ|w·x|) budget against the plain f32 product.
fn f32_budget(fmt: WeightFormat) -> f64 {
    match fmt {
        WeightFormat::F32 => 1e-5,
        // Weight + activation quantisation error relative to Σ|w·x|; worst
        // at small cols, where a single outlier sets a block's scale.
        WeightFormat::Q8_0 => 3e-2,
        WeightFormat::Q4_K | WeightFormat::Q6_K => 3e-2, // activation error only
        WeightFormat::Q5_0 | WeightFormat::Q5_1 => 2.5e-1,
        WeightFormat::Q4_0 | WeightFormat::Q4_1 => 4e-1,
        // Two-bit / ternary codes of Gaussian weights: only a sanity bound.
        WeightFormat::Q2_K | WeightFormat::TQ2_0 => 1.0,
    }
}

struct Case {
    fmt: WeightFormat,
    rows: usize,
    cols: usize,
    batch: usize,
    w: Vec<u8>,
    w_f32: Vec<f32>,
    w_deq: Vec<f32>,
    x_f32: Vec<f32>,
}

fn make_case(rng: &mut Rng, fmt: WeightFormat, rows: usize, cols: usize, batch: usize) -> Case {
    let (w, orig) = random_weights(rng, fmt, rows, cols);
    let w_deq = dequant(fmt, &w, rows * cols);
    let w_f32 = orig.unwrap_or_else(|| w_deq.clone());
    let x_f32: Vec<f32> = (0..batch * cols).map(|_| rng.gauss()).collect();
    Case { fmt, rows, cols, batch, w, w_f32, w_deq, x_f32 }
}

/// Runs `kernel` on the case and checks both references; returns y.
fn run_and_check(case: &Case, kernel: &GemvKernel, threads: usize) -> Vec<f32> {
    let Case { fmt, rows, cols, batch, .. } = *case;
    let mut y = vec![f32::NAN; batch * rows];
    let x_deq: Vec<Vec<f32>> = if fmt == WeightFormat::F32 {
        kernel.run_f32(&case.w, &case.x_f32, &mut y, threads).unwrap();
        case.x_f32.chunks(cols).map(|c| c.to_vec()).collect()
    } else {
        let xq = ActivationQ8::quantize(fmt.activation(), &case.x_f32, batch, cols).unwrap();
        kernel.run(&case.w, &xq, &mut y, threads).unwrap();
        (0..batch).map(|b| act_dequant(&xq, b)).collect()
    };
    for b in 0..batch {
        let xf = &case.x_f32[b * cols..(b + 1) * cols];
        for r in 0..rows {
            let got = y[b * rows + r] as f64;
            let wr = &case.w_deq[r * cols..(r + 1) * cols];
            let (exact, mag) = dot64(wr, &x_deq[b]);
            let tol = 1e-5 * mag + 1e-30;
            assert!(
                (got - exact).abs() <= tol,
                "{fmt:?} {rows}x{cols} batch {batch} tile {} threads {threads}: y[{b},{r}] = {got}, exact {exact} (|err| {:.3e} > {tol:.3e})",
                kernel.tile(),
                (got - exact).abs()
            );
            let (plain, pmag) = dot64(&case.w_f32[r * cols..(r + 1) * cols], xf);
            let tol = f32_budget(fmt) * pmag + 1e-30;
            assert!(
                (got - plain).abs() <= tol,
                "{fmt:?} {rows}x{cols}: y[{b},{r}] = {got} vs f32 product {plain} (|err| {:.3e} > {tol:.3e})",
                (got - plain).abs()
            );
        }
    }
    y
}

fn random_cols(rng: &mut Rng, fmt: WeightFormat) -> usize {
    match fmt.block_elems() {
        1 => 1 + rng.below(300),
        32 => 32 * (1 + rng.below(24)),
        _ => 256 * (1 + rng.below(4)),
    }
}

#[test]
fn format_geometry_matches_ggml() {
    for fmt in WeightFormat::ALL {
        let ty = fmt.ggml_type();
        assert_eq!(fmt.block_elems(), ty.block_size(), "{fmt:?}");
        assert_eq!(fmt.block_bytes(), ty.type_size(), "{fmt:?}");
        assert_eq!(WeightFormat::from_ggml(ty), Some(fmt));
    }
}

#[test]
fn activation_quantization_is_bit_exact_with_ggml() {
    let mut rng = Rng(7);
    for (kind, ty, be) in [(ActKind::Q8_0, ggml::GgmlType::Q8_0, 32), (ActKind::Q8_K, ggml::GgmlType::Q8_K, 256)] {
        for trial in 0..40 {
            let cols = be * (1 + rng.below(6));
            let mut x: Vec<f32> = (0..cols).map(|_| rng.gauss() * 3.0).collect();
            match trial % 4 {
                // Exact ties after scaling: multiples of amax/254 and amax/(2·127).
                0 => x.iter_mut().enumerate().for_each(|(i, v)| *v = (i % 9) as f32 * 0.5 - 2.0),
                1 => x[..be].fill(0.0), // an all-zero block
                _ => {}
            }
            let q = ActivationQ8::quantize(kind, &x, 1, cols).unwrap();
            let reference = ggml::quantize_to_vec(ty, &x).unwrap();
            assert_eq!(q.ggml_block_bytes(0), reference, "{kind:?} trial {trial}");
        }
    }
}

#[test]
fn chunked_activation_quantization_gives_the_same_bytes() {
    // Any chunk count (the runtime splits large batches over its threads),
    // run in reverse order, reproduces the one-chunk bytes.
    let mut rng = Rng(17);
    for kind in [ActKind::Q8_0, ActKind::Q8_K] {
        let be = if kind == ActKind::Q8_0 { 32 } else { 256 };
        for chunks in [1, 2, 3, 7, 1000] {
            let (rows, cols) = (1 + rng.below(5), be * (1 + rng.below(4)));
            let x: Vec<f32> = (0..rows * cols).map(|_| rng.gauss()).collect();
            let whole = ActivationQ8::quantize(kind, &x, rows, cols).unwrap();
            let mut split = ActivationQ8::empty(kind);
            split.quantize_into_chunks(&x, rows, cols, chunks, &|n, job| {
                (0..n).rev().for_each(job);
                Ok(())
            }).unwrap();
            assert_eq!(split.bytes(), whole.bytes(), "{kind:?} {rows}x{cols} in {chunks} chunks");
        }
    }
}

#[test]
fn every_format_matches_references_on_random_shapes() {
    let session = JitSession::host().unwrap();
    let mut rng = Rng(0x5eed);
    for fmt in WeightFormat::ALL {
        for _ in 0..12 {
            let rows = 1 + rng.below(300);
            let cols = random_cols(&mut rng, fmt);
            let case = make_case(&mut rng, fmt, rows, cols, 1);
            let kernel = GemvKernel::new(&session, fmt, rows, cols).unwrap();
            run_and_check(&case, &kernel, 1);
        }
    }
}

#[test]
fn gemm_tiles_and_threads_match_gemv() {
    // Tiles change the f32 accumulation order (the GEMV unrolls the block
    // loop with two accumulators), so tile vs GEMV is checked through the
    // exact reference; thread counts never change it: bit-identical.
    let session = JitSession::host().unwrap();
    let mut rng = Rng(42);
    for fmt in WeightFormat::ALL {
        let rows = 1 + rng.below(200);
        let cols = random_cols(&mut rng, fmt);
        let batch = 1 + rng.below(9); // full tiles of 4 plus a remainder
        let case = make_case(&mut rng, fmt, rows, cols, batch);
        let gemv = GemvKernel::new(&session, fmt, rows, cols).unwrap();
        let gemm = GemvKernel::with_tile(&session, fmt, rows, cols, 4).unwrap();
        let y1 = run_and_check(&case, &gemv, 1);
        let y1t = run_and_check(&case, &gemv, 2);
        let y4 = run_and_check(&case, &gemm, 1);
        let y4t = run_and_check(&case, &gemm, 3);
        assert_eq!(y1, y1t, "{fmt:?}: GEMV on 2 threads differs from 1 thread");
        assert_eq!(y4, y4t, "{fmt:?}: GEMM on 3 threads differs from 1 thread");
    }
}

#[test]
fn row_group_kernels_match_references_on_every_tile_and_split() {
    // The 32-element block formats, Q4_K and Q6_K run whole groups of
    // ROW_GROUP weight rows on the register-blocked kernels and ragged range
    // ends one row at a time: rows that are and are not multiples of the
    // group, every tile size up to MAX_TILE, batches that leave remainder
    // tiles, thread counts whose splits land inside groups; threads never
    // change the result. The K-quant row-group kernel does the one-row
    // kernel's integer and f32 operations in the same order, so it is also
    // bit-identical to the GEMV.
    let mut rng = Rng(0x6e0u64 ^ 0x4c);
    let host = JitSession::host().unwrap();
    let avx2 = JitSession::new(IsaSpec::x86_64_avx2()).unwrap();
    let kquant = |f: WeightFormat| matches!(f, WeightFormat::Q4_K | WeightFormat::Q6_K);
    for session in [&host, &avx2] {
        if session.executable().is_err() {
            continue;
        }
        for fmt in WeightFormat::ALL.into_iter().filter(|&f| f.block_elems() == 32 || kquant(f)) {
            let tiles: Vec<usize> = if kquant(fmt) { (1..=MAX_TILE).collect() } else { vec![1 + rng.below(MAX_TILE); 5] };
            let shapes = [ROW_GROUP, 4 * ROW_GROUP, 7 * ROW_GROUP, 4 * ROW_GROUP + 3, 1 + rng.below(80)];
            for (i, tile) in tiles.into_iter().enumerate() {
                let rows = shapes[i % shapes.len()];
                let cols = random_cols(&mut rng, fmt);
                let batch = 1 + rng.below(2 * MAX_TILE + 1);
                let case = make_case(&mut rng, fmt, rows, cols, batch);
                let k = GemvKernel::with_tile(session, fmt, rows, cols, tile).unwrap();
                let wide = rows >= 8 && wide_expected(session, fmt);
                let grouped = tile > 1 && rows.is_multiple_of(ROW_GROUP) && (session.caps().vnni || fmt != WeightFormat::Q8_0);
                let want = if wide { 8 } else if grouped { ROW_GROUP } else { 1 };
                assert_eq!(k.row_group(), want, "{fmt:?} {rows}");
                let y1 = run_and_check(&case, &k, 1);
                let y3 = run_and_check(&case, &k, 3);
                assert_eq!(y1, y3, "{fmt:?} {rows}x{cols} tile {tile}: 3 threads differ from 1");
                if kquant(fmt) {
                    let gemv = GemvKernel::new(session, fmt, rows, cols).unwrap();
                    let y = run_and_check(&case, &gemv, 2);
                    assert_eq!(y1, y, "{fmt:?} {rows}x{cols} tile {tile}: differs from the one-row GEMV");
                }
            }
        }
    }
}

#[test]
fn row_group_kernel_runs_any_row_range() {
    // run_rows on ranges that start and end inside groups writes exactly
    // those rows, with the values of the whole-matrix run (up to f32
    // accumulation order for the ragged rows of the 32-element formats;
    // the K-quant kernels are bit-identical to their one-row kernels).
    // Cranelift's 4-row kernels: the wide tier is off (its own test is
    // wide_int_dot_kernel_runs_any_row_range).
    let session = JitSession::with_wide_cap(IsaSpec::Host, None).unwrap();
    let mut rng = Rng(7);
    for (fmt, cols, tile) in [(WeightFormat::Q5_0, 96, 3), (WeightFormat::Q4_K, 512, 3), (WeightFormat::Q6_K, 768, 5)] {
        run_row_ranges(&session, &mut rng, fmt, 6 * ROW_GROUP, cols, tile, ROW_GROUP);
    }
}

/// `run_rows` of a kernel whose whole groups are `group` rows, on ranges
/// that start and end inside groups.
fn run_row_ranges(session: &JitSession, rng: &mut Rng, fmt: WeightFormat, rows: usize, cols: usize, tile: usize, group: usize) {
    let case = make_case(rng, fmt, rows, cols, tile);
    let k = GemvKernel::with_tile(session, fmt, rows, cols, tile).unwrap();
    assert_eq!(k.row_group(), group);
    let full = run_and_check(&case, &k, 1);
    let xq = ActivationQ8::quantize(fmt.activation(), &case.x_f32, tile, cols).unwrap();
    for (rb, re) in [(1, 2), (1, 7), (3, 13), (3, 19), (4, 8), (8, 16), (0, rows), (5, rows - 1), (9, 9)] {
        let mut y = vec![f32::NAN; tile * rows];
        // SAFETY: w, x and y hold the whole matrix, tile rows and tile·rows floats.
        unsafe { k.run_rows(tile, case.w.as_ptr(), xq.bytes().as_ptr(), y.as_mut_ptr(), rb, re) };
        for (i, (&a, &b)) in y.iter().zip(&full).enumerate() {
            let r = i % rows;
            if (rb..re).contains(&r) {
                // Rows of whole groups inside the range take the same kernel
                // (bit-identical); ragged ones the one-row kernel, whose f32
                // accumulation order differs.
                let whole = r / group * group >= rb && (r / group + 1) * group <= re;
                let exact = whole || fmt.block_elems() == 256;
                let tol = if exact { 0.0 } else { 1e-5 * (b.abs() + 1.0) };
                assert!((a - b).abs() <= tol, "{fmt:?} rows {rb}..{re}: y[{i}] = {a} vs {b}");
            } else {
                assert!(a.is_nan(), "{fmt:?} rows {rb}..{re}: y[{i}] written");
            }
        }
    }
}

#[test]
fn fallback_isas_give_the_same_results() {
    let host = JitSession::host().unwrap();
    let mut rng = Rng(99);
    for spec in [IsaSpec::x86_64_avx2(), IsaSpec::x86_64_sse42()] {
        let session = JitSession::new(spec.clone()).unwrap();
        if session.executable().is_err() {
            continue; // the host lacks a flag of this preset
        }
        assert!(!session.caps().vnni);
        for fmt in WeightFormat::ALL {
            let rows = 1 + rng.below(100);
            let cols = random_cols(&mut rng, fmt);
            let case = make_case(&mut rng, fmt, rows, cols, 3);
            let k = GemvKernel::with_tile(&session, fmt, rows, cols, 2).unwrap();
            let code = k.compiled(1).unwrap().vcode().unwrap();
            assert!(!code.contains("dpbusd"), "{spec:?} {fmt:?} used vpdpbusd without VNNI");
            let y = run_and_check(&case, &k, 1);
            if fmt != WeightFormat::F32 && host.caps().fma == session.caps().fma {
                // Integer sums are exact on every path; only f32 rounding of
                // the per-block fma may differ, which run_and_check bounds.
                assert_eq!(y.len(), rows * 3);
            }
        }
    }
}

#[test]
fn vnni_hosts_use_vpdpbusd_and_pmaddubsw() {
    let session = JitSession::host().unwrap();
    let k = GemvKernel::new(&session, WeightFormat::Q4_1, 8, 64).unwrap();
    let vcode = k.compiled(1).unwrap().vcode().unwrap();
    if session.caps().vnni {
        assert!(vcode.contains("vpdpbusd"), "no vpdpbusd in:\n{vcode}");
    } else {
        assert!(vcode.contains("pmaddubsw"), "no pmaddubsw in:\n{vcode}");
    }
    // The K-quant path always uses pmaddubsw + pmaddwd with the scales.
    let k = GemvKernel::new(&session, WeightFormat::Q6_K, 8, 256).unwrap();
    let vcode = k.compiled(1).unwrap().vcode().unwrap();
    assert!(vcode.contains("pmaddubsw") && vcode.contains("pmaddwd"), "{vcode}");
    // Only xmm registers: the backend has no 256-bit vectors.
    assert!(!vcode.contains("ymm") && !vcode.contains("zmm"));
}

#[test]
fn explicit_isa_vcode_is_reproducible() {
    let a = JitSession::new(IsaSpec::x86_64_avx512vnni()).unwrap();
    let b = JitSession::new(IsaSpec::x86_64_avx512vnni()).unwrap();
    let ka = GemvKernel::new(&a, WeightFormat::Q5_0, 16, 128).unwrap();
    let kb = GemvKernel::new(&b, WeightFormat::Q5_0, 16, 128).unwrap();
    let (ca, cb) = (ka.compiled(1).unwrap(), kb.compiled(1).unwrap());
    assert_eq!(ca.code(), cb.code());
    assert!(ca.vcode().unwrap().contains("vpdpbusd"));
    assert!(a.isa_flags().contains("has_avx512vnni"));
}

#[test]
fn bad_parameters_are_rejected_before_cranelift() {
    let s = JitSession::host().unwrap();
    let inv = |r: Result<GemvKernel, JitError>| matches!(r, Err(JitError::InvalidParams(_)));
    assert!(inv(GemvKernel::new(&s, WeightFormat::Q4_1, 4, 48)));
    assert!(inv(GemvKernel::new(&s, WeightFormat::Q4_K, 4, 128)));
    assert!(inv(GemvKernel::new(&s, WeightFormat::Q8_0, 0, 32)));
    assert!(inv(GemvKernel::new(&s, WeightFormat::F32, 4, 0)));
    assert!(inv(GemvKernel::with_tile(&s, WeightFormat::Q8_0, 4, 32, 0)));
    assert!(inv(GemvKernel::with_tile(&s, WeightFormat::Q8_0, 4, 32, 99)));
    assert!(inv(GemvKernel::new(&s, WeightFormat::Q8_0, 1 << 30, 1 << 20)));
    assert!(JitSession::new(IsaSpec::Explicit(vec!["has_no_such_flag".into()])).is_err());
}

#[test]
fn buffer_lengths_and_kinds_are_checked() {
    let s = JitSession::host().unwrap();
    let k = GemvKernel::new(&s, WeightFormat::Q8_0, 3, 64).unwrap();
    let w = vec![0u8; k.weight_bytes()];
    let x = ActivationQ8::q8_0(&[0.5; 128], 2, 64).unwrap();
    let mut y = vec![0.0; 6];
    k.run(&w, &x, &mut y, 2).unwrap();
    assert!(matches!(k.run(&w[1..], &x, &mut y, 1), Err(JitError::Length(_))));
    assert!(matches!(k.run(&w, &x, &mut y[1..], 1), Err(JitError::Length(_))));
    let xk = ActivationQ8::q8_k(&[0.5; 256], 1, 256).unwrap();
    assert!(matches!(k.run(&w, &xk, &mut y[..3], 1), Err(JitError::InvalidParams(_))));
    let x_wrong_cols = ActivationQ8::q8_0(&[0.5; 96], 1, 96).unwrap();
    assert!(matches!(k.run(&w, &x_wrong_cols, &mut y[..3], 1), Err(JitError::Length(_))));
    assert!(matches!(k.run_f32(&w, &[0.0; 64], &mut y[..3], 1), Err(JitError::InvalidParams(_))));
    assert!(ActivationQ8::q8_0(&[0.0; 40], 1, 40).is_err());
    assert!(ActivationQ8::q8_0(&[0.0; 64], 1, 32).is_err());
}

#[test]
fn kernels_compiled_for_missing_features_refuse_to_run() {
    // Build a session with a flag this host lacks, if there is one.
    let candidates = ["has_avx_vnni", "has_avx512vnni", "has_avx512f"];
    let Some(flag) = candidates.iter().find(|f| {
        let s = JitSession::new(IsaSpec::Explicit(vec![
            "has_sse3".into(),
            "has_ssse3".into(),
            "has_sse41".into(),
            "has_sse42".into(),
            f.to_string(),
        ]))
        .unwrap();
        s.executable().is_err()
    }) else {
        return; // this host has every candidate flag
    };
    let s = JitSession::new(IsaSpec::Explicit(vec!["has_ssse3".into(), flag.to_string()])).unwrap();
    let k = GemvKernel::new(&s, WeightFormat::Q8_0, 1, 32).unwrap();
    let x = ActivationQ8::q8_0(&[1.0; 32], 1, 32).unwrap();
    let mut y = [0.0];
    assert!(matches!(k.run(&[0; 34], &x, &mut y, 1), Err(JitError::NotExecutable(_))));
}

#[test]
fn session_outlives_nothing_it_must_not() {
    // Kernels keep the code alive after the session handle is dropped.
    let k = {
        let s = JitSession::host().unwrap();
        GemvKernel::new(&s, WeightFormat::F32, 2, 5).unwrap()
    };
    let w: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, -1.0, 0.5, 0.25, 2.0, 1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut y = [0.0; 2];
    k.run_f32(&w, &[1.0, 1.0, 1.0, 1.0, 2.0], &mut y, 1).unwrap();
    assert_eq!(y, [20.0, 3.75]);
}

/// Whether `session` runs `fmt`'s GEMM tiles on a generated wide kernel:
/// Q4_0/Q4_1 on every wide tier, Q8_0 and (with BITALG) Q5_0/Q5_1 on AVX-512.
fn wide_expected(session: &JitSession, fmt: WeightFormat) -> bool {
    use WeightFormat::*;
    match session.caps().wide {
        None => false,
        Some(WideTier::Avx2) => matches!(fmt, Q4_0 | Q4_1),
        Some(WideTier::Avx512Vnni) => match fmt {
            Q4_0 | Q4_1 | Q8_0 => true,
            #[cfg(target_arch = "x86_64")]
            Q5_0 | Q5_1 => std::arch::is_x86_feature_detected!("avx512bitalg"),
            _ => false,
        },
    }
}

/// Sessions for every kernel tier this host supports: the best generated
/// (wide) tier, the AVX2 wide tier, and Cranelift's 128-bit kernels only.
fn tier_sessions() -> Vec<(String, JitSession)> {
    let mut v = Vec::new();
    for cap in [Some(WideTier::Avx512Vnni), Some(WideTier::Avx2), None] {
        let s = JitSession::with_wide_cap(IsaSpec::Host, cap).unwrap();
        if v.iter().all(|(_, o): &(String, JitSession)| o.caps().wide != s.caps().wide) {
            v.push((s.caps().wide.map_or("cranelift".into(), |w| w.name().to_string()), s));
        }
    }
    v
}

#[test]
fn wide_int_dot_kernels_match_references_on_every_tier() {
    // The generated 8-row kernels (Q4_0, Q4_1, tiles 2..=8) on every tier
    // the host has, with rows that do and do not fill groups of 8 (ragged
    // rows take the one-row Cranelift kernel), batches with remainder tiles,
    // and thread splits: every result within the exact reference's budget,
    // threads bit-identical, and the same answers (up to f32 order) as
    // Cranelift's 128-bit kernels.
    let tiers = tier_sessions();
    let mut rng = Rng(0x31de);
    for fmt in [WeightFormat::Q4_0, WeightFormat::Q4_1, WeightFormat::Q5_0, WeightFormat::Q5_1, WeightFormat::Q8_0] {
        for trial in 0..8 {
            let rows = [8, 16, 8 * (1 + rng.below(12)), 9 + rng.below(90)][trial % 4];
            let cols = random_cols(&mut rng, fmt);
            let tile = 2 + rng.below(MAX_TILE - 1);
            let batch = 1 + rng.below(2 * MAX_TILE + 1);
            let case = make_case(&mut rng, fmt, rows, cols, batch);
            for (name, session) in &tiers {
                let k = GemvKernel::with_tile(session, fmt, rows, cols, tile).unwrap();
                assert_eq!(k.wide_fn(tile).is_some(), wide_expected(session, fmt), "{name} {fmt:?}");
                if let (Some(f), Some(w)) = (k.wide_fn(tile), session.caps().wide) {
                    let listing = f.listing();
                    assert!(listing.contains("ymm"), "{name}: no ymm in\n{listing}");
                    let dot = if w == WideTier::Avx512Vnni { "vpdpbusd" } else { "vpmaddubsw" };
                    assert!(listing.contains(dot), "{name}: no {dot} in\n{listing}");
                }
                let y1 = run_and_check(&case, &k, 1);
                let y3 = run_and_check(&case, &k, 3);
                assert_eq!(y1, y3, "{name} {fmt:?} {rows}x{cols} tile {tile}: 3 threads differ from 1");
            }
        }
    }
    // CI runs on hosts of this kind: at least the AVX2 tier and Cranelift.
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        assert!(tiers.len() >= 2, "expected a wide tier and the Cranelift tier, got {:?}", tiers.iter().map(|t| &t.0).collect::<Vec<_>>());
        let avx512 = ["avx512f", "avx512vl", "avx512bw", "avx512vnni"].map(|f| match f {
            "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
            "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
            "avx512bw" => std::arch::is_x86_feature_detected!("avx512bw"),
            _ => std::arch::is_x86_feature_detected!("avx512vnni"),
        });
        if avx512.iter().all(|&b| b) {
            assert_eq!(tiers.len(), 3, "an AVX-512 VNNI host has three tiers");
            assert_eq!(tiers[0].1.caps().wide, Some(WideTier::Avx512Vnni));
        }
    }
}

#[test]
fn wide_int_dot_kernel_runs_any_row_range() {
    // run_rows on ranges starting and ending inside groups of 8 writes
    // exactly those rows: whole groups bit-identical to the whole-matrix run,
    // ragged rows (one-row kernel) equal up to f32 order.
    let mut rng = Rng(8);
    for (_, session) in tier_sessions() {
        if session.caps().wide.is_some() {
            run_row_ranges(&session, &mut rng, WeightFormat::Q4_1, 48, 160, 5, 8);
        }
    }
}
