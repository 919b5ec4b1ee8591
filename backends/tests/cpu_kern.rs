//! The `kern.` dialect on the CPU JIT runtime against the reference
//! interpreter, on random shapes: every GEMM primitive runs the kernel it
//! names (LUT tables shared by q/k/v, shift-add, dense int-dot and decoded
//! f32), with and without `kern.tile`, for one and several activation rows,
//! on one and two threads, and the N:M sparse kernel for several patterns.
//!
//! Error budgets, per activation row (each row of a result against that
//! row's own largest |y|, so a small row cannot hide behind a large one): the
//! LUT kernel quantizes its tables to int8 per activation group and the ggml
//! int-dot kernels quantize activations to Q8, so those outputs may differ by
//! about 1/127 of the largest partial sums per group: max |Δ| ≤ 2% of the
//! row's max |y| (the reference is exact f64). The shift-add and f32 kernels
//! read f32 activations: 1e-4 relative. A row off by 2× (as a 2-bit kernel
//! with a wrong scale would be) fails every budget
//! (`a_row_off_by_2x_fails_the_budget`).

use flexc_backends::cpu::runtime::{CpuRuntime, Input, RuntimeOptions};
use flexc_backends::reference::{Interpreter, Tensor};
use flexc_ir::quant::{BcqParams, BcqScales, GgmlType, GqParams, Nm, TernaryParams};
use flexc_ir::Encoding;

use flexc_backends::xorshift::XorShift as Rng;

/// A weight declaration `@name : f32[n, k] enc` with random values.
fn weight(rng: &mut Rng, name: &str, n: usize, k: usize, enc: Option<Encoding>) -> String {
    let vals = rng.vec(n * k, 0.1);
    let data = match enc {
        Some(e) => format!("\"0x{}\"", e.encode(&[n, k], &vals).expect("encodes").iter().map(|b| format!("{b:02x}")).collect::<String>()),
        None => format!("[{}]", vals.iter().map(|v| format!("{v:.6}")).collect::<Vec<_>>().join(", ")),
    };
    format!("weight @{name} : f32[{n}, {k}]{} = dense<{data}>\n", ty_enc(enc))
}

fn ty_enc(enc: Option<Encoding>) -> String {
    enc.map(|e| format!(" {e}")).unwrap_or_default()
}

/// Per activation row of `[rows, n]` results: max |got − want| within `tol`
/// of that row's max |want| (at least 1e-3).
fn rows_close(got: &[f32], want: &[f32], rows: usize, tol: f32) -> Result<(), String> {
    if got.len() != want.len() || rows == 0 || want.len() % rows != 0 {
        return Err(format!("{} values, want {} in {rows} rows", got.len(), want.len()));
    }
    let n = want.len() / rows;
    for (r, (g, w)) in got.chunks(n).zip(want.chunks(n)).enumerate() {
        let scale = w.iter().fold(0f32, |a, v| a.max(v.abs())).max(1e-3);
        let err = g.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(0f32, |a, e| if a.is_nan() || e.is_nan() { f32::NAN } else { a.max(e) });
        if !(err <= tol * scale) {
            return Err(format!("row {r}: max |Δ| {err} > {tol} × {scale} (the row's max |y|)"));
        }
    }
    Ok(())
}

#[test]
fn a_row_off_by_2x_fails_the_budget() {
    // Row 0 is large, row 1 small: a global budget (2% of 100) would let row 1 be off by 2×.
    let want = [100.0, -50.0, 1.0, -0.5];
    assert!(rows_close(&want, &want, 2, 0.02).is_ok());
    for f in [2.0, 0.5] {
        let got = [100.0, -50.0, f, -0.5 * f];
        assert!(rows_close(&got, &want, 2, 0.02).is_err(), "row 1 ×{f} passed");
        let got = [100.0 * f, -50.0 * f, 1.0, -0.5];
        assert!(rows_close(&got, &want, 2, 0.02).is_err(), "row 0 ×{f} passed");
    }
    assert!(rows_close(&[100.0, -50.0, f32::NAN, -0.5], &want, 2, 0.02).is_err(), "NaN passed");
}

/// Runs `@f` on the interpreter and on the JIT (1 and 2 threads, every call
/// split over the pool) with `rows` random activation rows of `k`; checks
/// every result row within `tol` of its largest reference value.
fn check(src: &str, k: usize, rows: usize, tol: f32, seed: u64) -> CpuRuntime {
    // The function, without the weight data.
    let func = &src[src.find("func").unwrap_or(0)..];
    let module = flexc_ir::text::parse_module(src).unwrap_or_else(|e| panic!("{e:?}\n{func}"));
    let x = Rng(seed).vec(rows * k, 1.0);
    let want = Interpreter::new(&module).run("f", vec![Tensor::f32(&[rows, k], x.clone())]).expect("interpreter runs");
    let mut last = None;
    for threads in [1, 2] {
        let opts = RuntimeOptions { threads, par_min_bytes: 0, ..Default::default() };
        let mut rt = CpuRuntime::compile(&module, "f", opts).unwrap_or_else(|e| panic!("{e}\n{func}"));
        // Twice: the second call reuses the tables and buffers.
        for _ in 0..2 {
            rt.run(&[Input::F32(&x)], false).expect("runs");
        }
        for (i, w) in want.iter().enumerate() {
            let w = w.as_f32().expect("f32");
            let got = rt.output(i).expect("output");
            assert_eq!(got.len(), w.len(), "result {i}");
            if let Err(e) = rows_close(got, w, rows, tol) {
                panic!("result {i}, {threads} threads: {e}\n{func}");
            }
        }
        last = Some(rt);
    }
    last.expect("ran")
}

fn lut_encodings() -> Vec<Encoding> {
    let mut v: Vec<Encoding> = (1..=4u8).map(|bits| Encoding::Gq(GqParams { bits, group: 64, zero: bits % 2 == 0 })).collect();
    // 1 and 3 bits also with a zero point (split layout on 16-row multiples).
    v.extend([1u8, 3].map(|bits| Encoding::Gq(GqParams { bits, group: 64, zero: true })));
    v.push(Encoding::Ternary(TernaryParams { group: 0 }));
    v.push(Encoding::Ternary(TernaryParams { group: 64 }));
    v.extend([2u8, 3].map(|bits| Encoding::Bcq(BcqParams::row(bits, 64, true, 3))));
    v
}

#[test]
fn lut_gemm_matches_the_interpreter() {
    let mut rng = Rng(7);
    for (i, enc) in lut_encodings().into_iter().enumerate() {
        let k = 64 * rng.pick(&[2usize, 3, 8]);
        let rows = rng.pick(&[1usize, 3]);
        let ag = rng.pick(&[16usize, 32, 64]);
        // Rows in 8-row blocks, and in 16-row blocks (the split layout of 1
        // and 3 bits); untiled, then tiled in m-row items and K tiles of 128 columns.
        let ns = [8 * rng.pick(&[1usize, 3]), 16 * rng.pick(&[1usize, 3])];
        for (n, tile) in ns.into_iter().flat_map(|n| [(n, None), (n, Some((12, 128)))]) {
            let mut src = weight(&mut rng, "w", n, k, Some(enc));
            let wt = match tile {
                Some((m, kt)) => format!("  %wt = kern.tile %w {{m = {m}, k = {kt}}} : f32[{n}, {k}]{e}\n", e = ty_enc(Some(enc))),
                None => String::new(),
            };
            let wv = if tile.is_some() { "%wt" } else { "%w" };
            src += &format!(
                "func @f(%x: f32[seq, {k}]) -> f32[seq, {n}] {{\n  %w = tensor.weight @w : f32[{n}, {k}]{e}\n{wt}  %t = kern.lut_precompute %x {{act_group = {ag}}} : f32[seq, {g}, 16]\n  %y = kern.lut_gemm %t, {wv} : f32[seq, {n}]\n  return %y\n}}\n",
                e = ty_enc(Some(enc)),
                g = k / 4
            );
            check(&src, k, rows, 0.02, 100 + i as u64);
        }
    }
}

#[test]
fn qkv_share_one_lut_precompute() {
    let mut rng = Rng(11);
    let (k, kv) = (256, 64);
    let enc = Encoding::Gq(GqParams { bits: 2, group: 64, zero: false });
    let e = ty_enc(Some(enc));
    let mut src = weight(&mut rng, "q", k, k, Some(enc)) + &weight(&mut rng, "k", kv, k, Some(enc)) + &weight(&mut rng, "v", kv, k, Some(enc));
    src += &format!(
        "func @f(%x: f32[seq, {k}]) -> (f32[seq, {k}], f32[seq, {kv}], f32[seq, {kv}]) {{
  %wq = tensor.weight @q : f32[{k}, {k}]{e}
  %wk = tensor.weight @k : f32[{kv}, {k}]{e}
  %wv = tensor.weight @v : f32[{kv}, {k}]{e}
  %t = kern.lut_precompute %x : f32[seq, {g}, 16]
  %q = kern.lut_gemm %t, %wq : f32[seq, {k}]
  %kk = kern.lut_gemm %t, %wk : f32[seq, {kv}]
  %v = kern.lut_gemm %t, %wv : f32[seq, {kv}]
  return %q, %kk, %v
}}
",
        g = k / 4
    );
    for rows in [1, 5] {
        let rt = check(&src, k, rows, 0.02, 3 + rows as u64);
        let kinds = rt.step_kinds();
        assert_eq!(kinds.iter().filter(|s| **s == "lut tables").count(), 1, "{kinds:?}");
        assert_eq!(kinds.iter().filter(|s| s.starts_with("lut gemv")).count(), 3, "{kinds:?}");
    }
}

#[test]
fn shiftadd_gemm_matches_the_interpreter() {
    let mut rng = Rng(23);
    for bits in 1..=4u8 {
        for pot in [true, false] {
            let enc = Encoding::Bcq(BcqParams::row(bits, rng.pick(&[32u32, 64, 128]), pot, 2));
            let (n, k, rows) = (rng.pick(&[5usize, 16, 33]), 128 * rng.pick(&[1usize, 2, 3]), rng.pick(&[1usize, 4]));
            let e = ty_enc(Some(enc));
            let (wt, wv) = if pot { (format!("  %wt = kern.tile %w {{m = 4, k = 128}} : f32[{n}, {k}]{e}\n"), "%wt") } else { (String::new(), "%w") };
            let src = weight(&mut rng, "w", n, k, Some(enc))
                + &format!("func @f(%x: f32[seq, {k}]) -> f32[seq, {n}] {{\n  %w = tensor.weight @w : f32[{n}, {k}]{e}\n{wt}  %y = kern.shiftadd_gemm %x, {wv} : f32[seq, {n}]\n  return %y\n}}\n");
            let rt = check(&src, k, rows, 1e-4, 40 + bits as u64);
            assert_eq!(rt.step_kinds(), ["shift-add gemm"]);
        }
    }
}

/// ShiftAddLLM's shared-scale layouts (α on the activations) through the
/// runtime: several activation rows, `kern.tile` row items crossing the
/// lat scale blocks, one and two threads.
#[test]
fn shiftadd_gemm_on_shared_scales_matches_the_interpreter() {
    let mut rng = Rng(29);
    for (i, scales) in [BcqScales::Acc, BcqScales::Lat, BcqScales::Acc, BcqScales::Lat].into_iter().enumerate() {
        let enc = Encoding::Bcq(BcqParams::shared(1 + i as u8, true, 3, scales));
        let n = if scales == BcqScales::Lat { 64 } else { rng.pick(&[5usize, 33]) };
        let (k, rows) = (8 * rng.pick(&[24usize, 40]), rng.pick(&[1usize, 3]));
        let e = ty_enc(Some(enc));
        let src = weight(&mut rng, "w", n, k, Some(enc))
            + &format!("func @f(%x: f32[seq, {k}]) -> f32[seq, {n}] {{\n  %w = tensor.weight @w : f32[{n}, {k}]{e}\n  %wt = kern.tile %w {{m = 12, k = 64}} : f32[{n}, {k}]{e}\n  %y = kern.shiftadd_gemm %x, %wt : f32[seq, {n}]\n  return %y\n}}\n");
        let rt = check(&src, k, rows, 1e-4, 60 + i as u64);
        assert_eq!(rt.step_kinds(), ["shift-add gemm"]);
    }
}

#[test]
fn dense_gemm_matches_the_interpreter() {
    let mut rng = Rng(31);
    // (encoding, tolerance): int-dot ggml kernels quantize activations to Q8;
    // the rest are decoded to f32 at compile time.
    let cases: Vec<(Option<Encoding>, f32)> = vec![
        (Some(Encoding::Ggml(GgmlType::Q4_0)), 0.02),
        (Some(Encoding::Ggml(GgmlType::Q8_0)), 0.02),
        (Some(Encoding::Ggml(GgmlType::Q2_K)), 0.02),
        (Some(Encoding::Ggml(GgmlType::TQ2_0)), 0.02),
        // No int-dot kernel for TQ1_0: decoded at compile time.
        (Some(Encoding::Ggml(GgmlType::TQ1_0)), 1e-4),
        (Some(Encoding::Gq(GqParams { bits: 3, group: 64, zero: true })), 1e-4),
        (Some(Encoding::Bcq(BcqParams::row(2, 64, false, 2))), 1e-4),
        (Some(Encoding::Nm(Nm::of(2, 4))), 1e-4),
        (None, 1e-4),
    ];
    for (i, (enc, tol)) in cases.into_iter().enumerate() {
        let (n, k, rows) = (rng.pick(&[7usize, 16, 40]), 256 * rng.pick(&[1usize, 2]), rng.pick(&[1usize, 3, 9]));
        let e = ty_enc(enc);
        let tiled = i % 2 == 0;
        let (wt, wv) = if tiled { (format!("  %wt = kern.tile %w {{m = 3, k = 256}} : f32[{n}, {k}]{e}\n"), "%wt") } else { (String::new(), "%w") };
        let src = weight(&mut rng, "w", n, k, enc)
            + &format!("func @f(%x: f32[seq, {k}]) -> f32[seq, {n}] {{\n  %w = tensor.weight @w : f32[{n}, {k}]{e}\n{wt}  %y = kern.dense_gemm %x, {wv} : f32[seq, {n}]\n  return %y\n}}\n");
        let rt = check(&src, k, rows, tol, 60 + i as u64);
        assert_eq!(rt.step_kinds().last(), Some(&"gemv/gemm (jit)"));
    }
}

/// `quant.mpgemm` (what fuse-dequant emits) keeps its lowering: the int-dot
/// kernel for ggml formats, the LUT kernel for low-bit ones.
#[test]
fn mpgemm_on_weights_matches_the_interpreter() {
    let mut rng = Rng(37);
    for (i, enc) in [Encoding::Ggml(GgmlType::Q4_0), Encoding::Gq(GqParams { bits: 2, group: 64, zero: false }), Encoding::Ternary(TernaryParams { group: 0 })].into_iter().enumerate() {
        let (n, k) = (16, 256);
        let e = ty_enc(Some(enc));
        let src = weight(&mut rng, "w", n, k, Some(enc))
            + &format!("func @f(%x: f32[seq, {k}]) -> f32[seq, {n}] {{\n  %w = tensor.weight @w : f32[{n}, {k}]{e}\n  %y = quant.mpgemm %x, %w : f32[seq, {n}]\n  return %y\n}}\n");
        let rt = check(&src, k, 3, 0.02, 80 + i as u64);
        let want = if i == 0 { "gemv/gemm (jit)" } else { "lut gemv/gemm (jit)" };
        assert_eq!(rt.step_kinds().last(), Some(&want));
    }
}

/// A matmul (here `quant.mpgemm`) on shared-scale `#bcq` weights, with no
/// `select-gemm` before it, takes the shift-add kernel: the only one that
/// reads acc/lat scales.
#[test]
fn mpgemm_on_shared_scale_bcq_takes_the_shiftadd_kernel() {
    let mut rng = Rng(41);
    for (i, scales) in [BcqScales::Acc, BcqScales::Lat].into_iter().enumerate() {
        let enc = Encoding::Bcq(BcqParams::shared(3, true, 3, scales));
        let (n, k) = (64, 256);
        let e = ty_enc(Some(enc));
        let src = weight(&mut rng, "w", n, k, Some(enc))
            + &format!("func @f(%x: f32[seq, {k}]) -> f32[seq, {n}] {{\n  %w = tensor.weight @w : f32[{n}, {k}]{e}\n  %y = quant.mpgemm %x, %w : f32[seq, {n}]\n  return %y\n}}\n");
        let rt = check(&src, k, 3, 1e-4, 90 + i as u64);
        assert_eq!(rt.step_kinds(), ["shift-add gemm"]);
    }
}

#[test]
fn dense_gemm_takes_a_constant_weight() {
    let vals: Vec<String> = (0..32).map(|i| format!("{}.0", i % 5)).collect();
    let src = format!(
        "func @f(%x: f32[seq, 8]) -> f32[seq, 4] {{\n  %c = tensor.constant {{value = dense<[{}]>}} : f32[4, 8]\n  %y = kern.dense_gemm %x, %c : f32[seq, 4]\n  return %y\n}}\n",
        vals.join(", ")
    );
    check(&src, 8, 2, 1e-5, 5);
}

#[test]
fn sparse_gemm_runs_the_nm_kernel() {
    let mut rng = Rng(41);
    for (i, (n, m, rows_w, k)) in [(2u8, 4u8, 8usize, 64usize), (1, 4, 13, 96), (4, 8, 20, 128), (8, 16, 6, 64), (2, 3, 5, 48)].into_iter().enumerate() {
        let enc = Encoding::Nm(Nm::of(n, m));
        let src = weight(&mut rng, "w", rows_w, k, Some(enc))
            + &format!("func @f(%x: f32[seq, {k}]) -> f32[seq, {rows_w}] {{\n  %w = tensor.weight @w : f32[{rows_w}, {k}] {enc}\n  %y = kern.sparse_gemm %x, %w : f32[seq, {rows_w}]\n  return %y\n}}\n");
        for rows in [1, 5] {
            let rt = check(&src, k, rows, 1e-4, 90 + i as u64);
            assert_eq!(rt.step_kinds().last(), Some(&"n:m sparse gemv/gemm (jit)"));
        }
    }
}

#[test]
fn incompatible_lut_groups_are_errors() {
    let mut rng = Rng(43);
    // Weight groups of 32 cannot hold activation groups of 64.
    let enc = Encoding::Gq(GqParams { bits: 2, group: 32, zero: false });
    let e = ty_enc(Some(enc));
    let src = weight(&mut rng, "w", 8, 128, Some(enc))
        + &format!("func @f(%x: f32[seq, 128]) -> f32[seq, 8] {{\n  %w = tensor.weight @w : f32[8, 128]{e}\n  %t = kern.lut_precompute %x {{act_group = 64}} : f32[seq, 32, 16]\n  %y = kern.lut_gemm %t, %w : f32[seq, 8]\n  return %y\n}}\n");
    let module = flexc_ir::text::parse_module(&src).expect("parses");
    let err = CpuRuntime::compile(&module, "f", RuntimeOptions::default()).expect_err("incompatible groups");
    assert!(err.to_string().contains("kern.lut_gemm") && err.to_string().contains("act_group"), "{err}");
}
