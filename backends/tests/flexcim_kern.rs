//! FlexCiM lowering of the `kern.` dialect: `kern.sparse_gemm` in the
//! weight's N:M mode, `kern.dense_gemm` on encoded weights, `kern.tile` as
//! the macro mapping (and its misfit error), LUT/shift-add rejected. Results
//! are checked bit for bit against the reference interpreter's int8 matmul
//! and, rescaled, against the interpreter's f32 result of the kern op itself.

use flexc_backends::flexcim::arch::{Arch, EnergyTable, Nm};
use flexc_backends::flexcim::fromir::{evaluate_values, find_gemms, from_ir, Mode};
use flexc_backends::flexcim::lower::{MagnitudePrune, Rng};
use flexc_backends::flexcim::mapping::macro_tile;
use flexc_backends::flexcim::{evaluate, Check};
use flexc_ir::types::Encoding;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A random `out × inp` weight, `#nm`-encoded (magnitude-pruned) when `nm` is given.
fn weight_decl(rng: &mut Rng, out: usize, inp: usize, enc: Option<Encoding>) -> (String, String) {
    let vals: Vec<f32> = (0..out * inp).map(|_| (rng.below(2001) as f32 - 1000.0) / 700.0).collect();
    match enc {
        Some(e) => {
            let bytes = flexc_ir::quant::encode(e, &vals).unwrap();
            (format!("f32[{out}, {inp}] {e}"), format!("dense<\"0x{}\">", hex(&bytes)))
        }
        None => (format!("f32[{out}, {inp}]"), format!("dense<[{}]>", vals.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", "))),
    }
}

/// Checks a module's flexcim run: functional check passed, and every
/// simulated int32 result, rescaled by the int8 scales, within the
/// quantization error bound of the interpreter's f32 result.
fn check_module(text: &str, tokens: usize, seed: u64) -> flexc_backends::flexcim::Evaluation {
    let m = flexc_ir::text::parse_module(text).unwrap_or_else(|d| panic!("{}\n{text}", d.message));
    let w = from_ir(&m, None, tokens, &MagnitudePrune(Nm::of(2, 4)), seed).unwrap();
    let ev = evaluate(&Arch::default_flexcim(), &EnergyTable::default_table(), &w.work, &w.host, &["dense".into(), "fixed-2:4".into()]).unwrap();
    assert_eq!(ev.check, Check::Passed, "{text}");
    // The f32 result of the kern op, on the same seeded inputs.
    let id = m.func("f").unwrap();
    let f = &m.funcs[id];
    let g = find_gemms(&m, None).unwrap();
    let vals = evaluate_values(&m, id, &[f.returns[0], g.gemms[0].x], tokens, seed).unwrap();
    let (y, x) = (vals[0].to_f64().unwrap(), vals[1].to_f64().unwrap());
    let work = &w.work[0];
    let (out, inp) = (work.layer.out, work.layer.inp);
    let sx = x.iter().fold(0.0f64, |a, b| a.max(b.abs())) / 127.0;
    let dense_w = work.layer.dense();
    let got = &ev.flexcim.result.outputs.iter().zip(&ev.flexcim.result.layers).find(|(_, l)| l.dense_macs > 0).unwrap().0;
    // Per-row weight scales from the decoded weight (the same rule as fromir).
    let wt = match flexc_backends::flexcim::fromir::weight_tensor(&m, &g.gemms[0]) {
        Some(t) => t.unwrap(),
        None => evaluate_values(&m, id, &[g.gemms[0].root], tokens, seed).unwrap().remove(0),
    };
    let wf: Vec<f64> = match &wt.data {
        flexc_backends::reference::Data::Encoded(e, b) => {
            let mut o = vec![0f32; out * inp];
            flexc_ir::quant::decode(*e, b, &mut o).unwrap();
            o.into_iter().map(f64::from).collect()
        }
        _ => wt.to_f64().unwrap(),
    };
    for t in 0..tokens {
        let xr = &x[t * inp..(t + 1) * inp];
        for o in 0..out {
            let wr = &wf[o * inp..(o + 1) * inp];
            let sw = wr.iter().fold(0.0f64, |a, b| a.max(b.abs())) / 127.0;
            let approx = got[t * out + o] as f64 * sx * sw;
            let bound = 0.5 * sw * xr.iter().map(|v| v.abs()).sum::<f64>() + 0.5 * sx * wr.iter().map(|v| v.abs()).sum::<f64>() + inp as f64 * sx * sw / 4.0 + 1e-6;
            assert!((approx - y[t * out + o]).abs() <= bound, "t{t} o{o}: sim {approx} vs interpreter {} (bound {bound})", y[t * out + o]);
            // The kept mask is the weight's own: pruned positions are zero in the layer.
            if o == 0 && t == 0 {
                for (k, &v) in wr.iter().enumerate() {
                    if v == 0.0 {
                        assert_eq!(dense_w[o * inp + k], 0, "pruned position {k} is stored");
                    }
                }
            }
        }
    }
    ev
}

#[test]
fn sparse_gemm_matches_the_interpreter_on_random_shapes_and_patterns() {
    let mut rng = Rng(2024);
    let pats = ["1:2", "2:4", "2:8", "4:8", "4:4", "8:8", "1:4", "3:8"];
    for (i, p) in pats.iter().enumerate() {
        let nm = Nm::parse(p).unwrap();
        let (out, inp, tokens) = (1 + rng.below(70), nm.m() * (1 + rng.below(24)), 1 + rng.below(6));
        let enc = Encoding::Nm(nm);
        let (ty, init) = weight_decl(&mut rng, out, inp, Some(enc));
        // Half the cases store the weight in the table, half quantize a constant in the function.
        let text = if i % 2 == 0 {
            format!("weight @w : {ty} = {init}\n\nfunc @f(%x: f32[seq, {inp}]) -> f32[seq, {out}] {{\n  %w = tensor.weight @w : {ty}\n  %y = kern.sparse_gemm %x, %w : f32[seq, {out}]\n  return %y\n}}\n")
        } else {
            let (pty, pinit) = weight_decl(&mut rng, out, inp, None);
            format!("func @f(%x: f32[seq, {inp}]) -> f32[seq, {out}] {{\n  %c = tensor.constant {{value = {pinit}}} : {pty}\n  %w = quant.quantize %c {{encoding = {enc}}} : {ty}\n  %y = kern.sparse_gemm %x, %w : f32[seq, {out}]\n  return %y\n}}\n")
        };
        let m = flexc_ir::text::parse_module(&text).unwrap();
        assert_eq!(find_gemms(&m, None).unwrap().gemms[0].mode, Mode::Sparse(nm), "{p}");
        let ev = check_module(&text, tokens, 7 + i as u64);
        // Sparse layers do at most the dense layer's cell MACs.
        let dense = ev.baselines.iter().find(|b| b.name == "dense").unwrap();
        assert!(ev.flexcim.result.total.macs <= dense.result.total.macs, "{p}");
    }
}

#[test]
fn dense_gemm_and_encoded_matmul_run_dense() {
    let mut rng = Rng(77);
    for (i, enc) in ["#q8_0", "#q4_0", ""].iter().enumerate() {
        let (out, inp, tokens) = (5 + rng.below(40), 32 * (1 + rng.below(3)), 1 + rng.below(4));
        let e = enc.strip_prefix('#').map(|n| Encoding::parse(n, &[]).unwrap());
        let (ty, init) = weight_decl(&mut rng, out, inp, e);
        for op in ["kern.dense_gemm", "quant.mpgemm"] {
            if op == "quant.mpgemm" && e.is_none() {
                continue;
            }
            let text = format!("weight @w : {ty} = {init}\n\nfunc @f(%x: f32[seq, {inp}]) -> f32[seq, {out}] {{\n  %w = tensor.weight @w : {ty}\n  %y = {op} %x, %w : f32[seq, {out}]\n  return %y\n}}\n");
            let m = flexc_ir::text::parse_module(&text).unwrap();
            assert_eq!(find_gemms(&m, None).unwrap().gemms[0].mode, Mode::Dense, "{op} {enc}");
            let ev = check_module(&text, tokens, 3 + i as u64);
            assert_eq!(ev.flexcim.plans[0].slots, ev.flexcim.plans[0].ideal_slots, "dense: every slot is a weight");
            assert_eq!(ev.flexcim.result.total.macs as usize, tokens * inp * out.div_ceil(32) * 32, "{op} {enc}: dense MACs over whole column tiles");
        }
    }
    // A dequantized encoded weight under tensor.matmul runs dense too (not pruned).
    let (ty, init) = weight_decl(&mut rng, 8, 32, Some(Encoding::parse("q8_0", &[]).unwrap()));
    let text = format!("weight @w : {ty} = {init}\n\nfunc @f(%x: f32[seq, 32]) -> f32[seq, 8] {{\n  %w = tensor.weight @w : {ty}\n  %d = quant.dequantize %w : f32[8, 32]\n  %y = tensor.matmul %x, %d {{transpose_b}} : f32[seq, 8]\n  return %y\n}}\n");
    assert_eq!(find_gemms(&flexc_ir::text::parse_module(&text).unwrap(), None).unwrap().gemms[0].mode, Mode::Dense);
    check_module(&text, 2, 1);
}

fn tiled_text(rng: &mut Rng, nm: Nm, out: usize, inp: usize, tm: u64, tk: u64) -> String {
    let enc = Encoding::Nm(nm);
    let (ty, init) = weight_decl(rng, out, inp, Some(enc));
    format!("weight @w : {ty} = {init}\n\nfunc @f(%x: f32[seq, {inp}]) -> f32[seq, {out}] {{\n  %w = tensor.weight @w : {ty}\n  %t = kern.tile %w {{m = {tm}, k = {tk}}} : {ty}\n  %y = kern.sparse_gemm %x, %t : f32[seq, {out}]\n  return %y\n}}\n")
}

#[test]
fn kern_tile_maps_onto_the_macro() {
    let arch = Arch::default_flexcim();
    let mut rng = Rng(5);
    for p in ["2:4", "2:8", "4:8", "1:2", "8:8"] {
        let nm = Nm::parse(p).unwrap();
        let full = macro_tile(&arch, nm);
        for (tm, tk) in [(full.m, full.k), (32, full.k), (full.m, full.k / 2 / nm.m() as u64 * nm.m() as u64)] {
            if tk == 0 {
                continue;
            }
            let (out, inp) = (70 + rng.below(60), 2 * full.k as usize + nm.m() * rng.below(8));
            let text = tiled_text(&mut rng, nm, out, inp, tm, tk);
            let ev = check_module(&text, 3, 11);
            let plan = &ev.flexcim.plans[0];
            assert_eq!(plan.tile, Some(flexc_passes::target::Tile { m: tm.min(out as u64), k: tk.min(inp as u64) }), "{p}");
            // Passes = output tiles × input tiles when every tile fits one residency (aligned or not, per tile).
            let otiles = out.div_ceil(tm as usize);
            let ktiles = (inp / nm.m()).div_ceil(tk as usize / nm.m());
            // Per-row (unaligned) masks may need up to M/N times the slots of an aligned one, never more.
            let most = otiles * ktiles * nm.m().div_ceil(nm.n());
            assert!(plan.passes >= otiles * ktiles && plan.passes <= most, "{p} {tm}x{tk}: {} passes, {otiles} x {ktiles} tiles", plan.passes);
        }
    }
}

#[test]
fn a_tile_that_does_not_fit_is_a_clear_error() {
    let mut rng = Rng(9);
    let nm = Nm::parse("2:4").unwrap();
    for (tm, tk, want) in [(256, 64, "m needs 8 column tiles of 32"), (64, 512, "k needs 256 cells per column"), (64, 66, "multiple of M = 4")] {
        let text = tiled_text(&mut rng, nm, 300, 1024, tm, tk);
        let m = flexc_ir::text::parse_module(&text).unwrap();
        let w = from_ir(&m, None, 2, &MagnitudePrune(nm), 1).unwrap();
        let e = flexc_backends::flexcim::run_arch(&Arch::default_flexcim(), "flexcim", &w.work, &w.host).unwrap_err();
        assert!(e.contains("does not fit the flexcim macro for 2:4") && e.contains(want), "{tm}x{tk}: {e}");
    }
}

#[test]
fn lut_and_shiftadd_are_unsupported() {
    let lut = "func @f(%x: f32[seq, 8], %c: f32[2, 8]) -> f32[seq, 2] {\n  %w = quant.quantize %c {encoding = #gq<bits = 2, group = 8, zero = false>} : f32[2, 8] #gq<bits = 2, group = 8, zero = false>\n  %t = kern.lut_precompute %x {act_group = 8} : f32[seq, 2, 16]\n  %y = kern.lut_gemm %t, %w : f32[seq, 2]\n  return %y\n}\n";
    let sa = "func @f(%x: f32[seq, 64], %c: f32[4, 64]) -> f32[seq, 4] {\n  %w = quant.quantize %c {encoding = #bcq<bits = 1, group = 64, pot = true, apot = 2>} : f32[4, 64] #bcq<bits = 1, group = 64, pot = true, apot = 2>\n  %y = kern.shiftadd_gemm %x, %w : f32[seq, 4]\n  return %y\n}\n";
    for (text, op) in [(lut, "kern.lut_precompute"), (sa, "kern.shiftadd_gemm")] {
        let e = find_gemms(&flexc_ir::text::parse_module(text).unwrap(), None).unwrap_err();
        assert!(e.starts_with(op) && e.contains("unsupported on flexcim"), "{e}");
    }
}
