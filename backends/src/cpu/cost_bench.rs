//! Measuring the CPU cost table (`flexc bench kernels --write-costs`).
//!
//! Every number times the runtime path the model prices: a small IR
//! function of `kern.` ops (one `kern.lut_precompute` feeding `copies` LUT
//! GEMMs, or `copies` shift-add / dense GEMMs on the same activations) is
//! compiled by [`CpuRuntime`] and run, and the per-step profile splits the
//! time into GEMMs, LUT tables and activation quantization. The `copies`
//! weights are distinct allocations adding up to `dram_bytes` (beyond L3),
//! so a call streams its weights from memory as a decode step does (the
//! compute-bound shift-add GEMM uses at most 4). Each figure is the best of
//! up to three means over `budget`.
//!
//! Per scheme: ns per weight at 1 and `gemm_rows` rows on `shape`, and the
//! per-call overhead: the time of a tiny GEMM (16 × 256, in cache). Tiles are measured on
//! one representative scheme per primitive (LUT `gq2` on `[n, 2k]`, so the
//! K tiles cut the row; dense `q4_0`) as time over the untiled time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flexc_ir::ops::Symbol;
use flexc_ir::quant::{BcqParams, GgmlType, GqParams, Nm, TernaryParams};
use flexc_ir::types::{Dim, ElemType};
use flexc_ir::weights::{WeightData, WeightSource};
use flexc_ir::{attrs, Encoding, Func, Module, Span, TensorType, Value};
use flexc_passes::target::Primitive;

use super::cost::{CostTable, KernelCost, LinearCost, TileCost, TABLE_VERSION};
use super::format::{ActKind, WeightFormat};
use crate::xorshift::XorShift;
use super::runtime::{CpuRuntime, Input, RuntimeOptions};

/// What to measure.
#[derive(Clone, Debug)]
pub struct CostBenchOptions {
    /// Runtime threads.
    pub threads: usize,
    /// Rows of the multi-row point.
    pub gemm_rows: usize,
    /// Weight shape `[n, k]` of the per-weight costs (`k` a multiple of 256).
    pub shape: (usize, usize),
    /// Bytes of weights per measurement (copies of the weight up to this).
    pub dram_bytes: usize,
    /// Timing per measurement.
    pub budget: Duration,
    /// Measure the tiles too.
    pub tiles: bool,
}

impl Default for CostBenchOptions {
    fn default() -> Self {
        Self { threads: super::runtime::default_threads(), gemm_rows: 16, shape: (1024, 4096), dram_bytes: 64 << 20, budget: Duration::from_millis(300), tiles: true }
    }
}

/// The schemes measured per primitive: (primitive, table scheme, weight
/// type encoding/element); an encoding's table scheme is its cost key.
fn schemes() -> Vec<(Primitive, String, Option<Encoding>)> {
    let mut encs: Vec<(Primitive, Encoding)> = Vec::new();
    for t in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q2_K, GgmlType::TQ2_0] {
        encs.push((Primitive::Dense, t.into()));
    }
    for bits in 1..=4u8 {
        encs.push((Primitive::Lut, GqParams { bits, group: 128, zero: false }.into()));
    }
    encs.push((Primitive::Lut, TernaryParams { group: 0 }.into()));
    // N:M sparse, priced per stored value: one pattern stands for all (the
    // kernel streams ~4.25–4.5 bytes per kept weight whatever N:M is).
    encs.push((Primitive::Sparse, Nm::of(2, 4).into()));
    for p in [Primitive::Lut, Primitive::ShiftAdd] {
        for bits in 1..=4u8 {
            encs.push((p, BcqParams::row(bits, 128, true, 3).into()));
        }
    }
    let mut v: Vec<(Primitive, String, Option<Encoding>)> = vec![(Primitive::Dense, "f32".into(), None)];
    v.extend(encs.into_iter().map(|(p, e)| (p, e.cost_key(), Some(e))));
    v
}

/// Storage bytes of an `[n, k]` weight: one random row (the encoding's
/// [`Encoding::random_storage`]: random codes, sane scales), repeated (the
/// kernels' speed does not depend on the values).
fn weight_bytes(enc: Option<Encoding>, n: usize, k: usize, seed: u64) -> Result<Vec<u8>, String> {
    let mut rng = XorShift(seed | 1);
    let row_bytes = match enc {
        None => rng.vec(k, 0.05).iter().flat_map(|v| v.to_le_bytes()).collect(),
        Some(e) => e.random_storage(&[k as u64], &mut |b| rng.fill(b))?,
    };
    // A per-tensor trailer (`#ternary<group = 0>`'s scale) comes once, at the end.
    let blocks = enc.map_or(row_bytes.len(), |e| (k as u64 / e.block_elems() * e.block_bytes()) as usize);
    let (body, trailer) = row_bytes.split_at(blocks.min(row_bytes.len()));
    let mut out: Vec<u8> = body.iter().copied().cycle().take(body.len() * n).collect();
    out.extend_from_slice(trailer);
    Ok(out)
}

fn seq_ty(d: usize) -> TensorType {
    TensorType { shape: vec![Dim::Sym("seq".into()), Dim::Fixed(d as u64)], elem: ElemType::F32, encoding: None }
}

/// `copies` GEMMs of `p` on distinct `[n, k]` weights of `enc`, all reading `x`.
fn module(p: Primitive, enc: Option<Encoding>, (n, k): (usize, usize), copies: usize, tile: Option<(usize, usize)>) -> Result<Module, String> {
    let wty = TensorType { shape: vec![Dim::Fixed(n as u64), Dim::Fixed(k as u64)], elem: ElemType::F32, encoding: enc };
    let bytes = weight_bytes(enc, n, k, 0x9e37_79b9 + n as u64)?;
    let mut f = Func::new("f", &[(Some("x".into()), seq_ty(k))], vec![seq_ty(n); copies]);
    let x = f.params[0];
    let mut m = Module::default();
    let tables = match p {
        Primitive::Lut => Some(f.append_typed(attrs::LutPrecompute { act_group: 32 }, &[x], None)?),
        _ => None,
    };
    let mut outs: Vec<Value> = Vec::new();
    for i in 0..copies {
        let name = format!("w{i}");
        // A fresh allocation per copy, so no two GEMMs share cache lines.
        m.weights.insert(WeightData { name: name.clone(), ty: wty.clone(), source: WeightSource::Derived(bytes.to_vec().into()), span: Span::default() }).map_err(|e| e.to_string())?;
        let mut w = f.append_typed(attrs::Weight { name: Symbol(name) }, &[], Some(wty.clone()))?;
        if let Some((tm, tk)) = tile {
            w = f.append_typed(attrs::Tile { m: tm as i64, k: tk as i64 }, &[w], None)?;
        }
        outs.push(match (p, tables) {
            (Primitive::Lut, Some(t)) => f.append_typed(attrs::LutGemm {}, &[t, w], None)?,
            (Primitive::ShiftAdd, _) => f.append_typed(attrs::ShiftaddGemm {}, &[x, w], None)?,
            (Primitive::Sparse, _) => f.append_typed(attrs::SparseGemm {}, &[x, w], None)?,
            _ => f.append_typed(attrs::DenseGemm {}, &[x, w], None)?,
        });
    }
    f.returns = outs;
    m.funcs.push(f);
    Ok(m)
}

/// ns per run of each step kind, per number of rows.
type Profile = BTreeMap<&'static str, f64>;

/// Compiles `m` and times it at each of `rows`: the best of up to three
/// means over `budget / 3` (fewer when one run is longer than that).
fn time(m: &Module, k: usize, rows: &[usize], o: &CostBenchOptions) -> Result<Vec<Profile>, String> {
    let mut rt = CpuRuntime::compile(m, "f", RuntimeOptions { threads: o.threads, ..Default::default() }).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for &r in rows {
        let x: Vec<f32> = (0..r * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
        rt.run(&[Input::F32(&x)], false).map_err(|e| e.to_string())?;
        let mut best = Profile::new();
        let all = Instant::now();
        for rep in 0..3 {
            if rep > 0 && all.elapsed() >= o.budget {
                break;
            }
            rt.enable_profile();
            let (t0, mut runs) = (Instant::now(), 0usize);
            while runs < 1 || t0.elapsed() < o.budget / 3 {
                rt.run(&[Input::F32(&x)], false).map_err(|e| e.to_string())?;
                runs += 1;
            }
            for &(kind, d) in rt.profile() {
                let ns = d.as_nanos() as f64 / runs as f64;
                let e = best.entry(kind).or_insert(f64::INFINITY);
                *e = e.min(ns);
            }
        }
        out.push(best);
    }
    Ok(out)
}

/// The GEMM step kind of a primitive in the runtime's profile.
fn gemm_kind(p: Primitive) -> &'static str {
    match p {
        Primitive::Lut => "lut gemv/gemm (jit)",
        Primitive::ShiftAdd => "shift-add gemm",
        Primitive::Sparse => "n:m sparse gemv/gemm (jit)",
        Primitive::Dense => "gemv/gemm (jit)",
    }
}

/// The weight whose GEMM time is taken as the per-call overhead (its
/// 4096 weights cost a few ns from cache).
const TINY: (usize, usize) = (16, 256);

/// Copies of a weight of `bytes` that add up to `dram` bytes.
fn copies(bytes: usize, dram: usize) -> usize {
    dram.div_ceil(bytes.max(1)).clamp(1, 64)
}

fn stored_bytes(enc: Option<Encoding>, n: usize, k: usize) -> usize {
    enc.and_then(|e| e.storage(&[n as u64, k as u64]).ok()).map_or(n * k * 4, |b| b as usize)
}

/// Measures the whole table; `progress` gets one line per measurement.
pub fn measure(o: &CostBenchOptions, progress: &mut dyn FnMut(&str)) -> Result<CostTable, String> {
    let (n, k) = o.shape;
    let rr = o.gemm_rows.max(2);
    let mut kernels = Vec::new();
    let (mut pre, mut quant) = (None, BTreeMap::new());
    for (p, name, enc) in schemes() {
        let mut c = copies(stored_bytes(enc, n, k), o.dram_bytes);
        if p == Primitive::ShiftAdd {
            // Compute-bound (well under 1 GB/s): where the weights come from
            // does not matter, and more copies only take longer.
            c = c.min(4);
        }
        let prof = time(&module(p, enc, (n, k), c, None)?, k, &[1, rr], o)?;
        // The model prices `#nm` per stored value (`n·k·N/M`), everything else per weight.
        let values = (n * k) as f64 * enc.map_or(1.0, |e| e.density());
        let per = |pr: &Profile| pr.get(gemm_kind(p)).copied().unwrap_or(0.0) / c as f64 / values;
        let (gemv_ns, gemm_ns) = (per(&prof[0]), per(&prof[1]));
        let tiny = time(&module(p, enc, TINY, 8, None)?, TINY.1, &[1], o)?;
        let overhead_ns = tiny[0].get(gemm_kind(p)).copied().unwrap_or(0.0) / 8.0;
        progress(&format!("{:<8} {:<8} {c:>2} × {n}×{k}: {gemv_ns:.4} ns/weight at 1 row, {gemm_ns:.4} at {rr} rows, overhead {overhead_ns:.0} ns", p.name(), name));
        if p == Primitive::Lut && pre.is_none() {
            let per_value = prof[1].get("lut tables").copied().unwrap_or(0.0) / (rr * k) as f64;
            pre = Some(LinearCost { overhead_ns: tiny[0].get("lut tables").copied().unwrap_or(0.0), ns_per_value: per_value });
        }
        if let Some(q) = prof[1].get("quantize-act") {
            // Only the int-dot formats quantize activations: Q8_K for 256-wide blocks.
            let act = enc.and_then(WeightFormat::of).map_or(ActKind::Q8_0, |f| f.activation());
            quant.entry(act.name().to_string()).or_insert(q / (rr * k) as f64);
        }
        kernels.push(KernelCost { primitive: p.name().into(), scheme: name, overhead_ns, gemv_ns, gemm_ns });
    }
    let tiles = if o.tiles { measure_tiles(o, progress)? } else { Vec::new() };
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|m| m.trim().to_string()))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let table = CostTable {
        version: TABLE_VERSION,
        machine,
        threads: o.threads,
        gemm_rows: rr as u64,
        shape: [n as u64, k as u64],
        lut_precompute: pre.ok_or("no LUT scheme was measured")?,
        act_quant_ns_per_value: quant,
        kernels,
        tiles,
    };
    let mut table = table;
    round_table(&mut table);
    table.check()?;
    Ok(table)
}

/// Four significant digits: the measurements are not more precise, and the
/// file stays readable.
fn sig(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let d = 10f64.powi(3 - v.abs().log10().floor() as i32);
    (v * d).round() / d
}

fn round_table(t: &mut CostTable) {
    t.lut_precompute = LinearCost { overhead_ns: sig(t.lut_precompute.overhead_ns), ns_per_value: sig(t.lut_precompute.ns_per_value) };
    t.act_quant_ns_per_value.values_mut().for_each(|v| *v = sig(*v));
    for e in &mut t.kernels {
        (e.overhead_ns, e.gemv_ns, e.gemm_ns) = (sig(e.overhead_ns), sig(e.gemv_ns), sig(e.gemm_ns));
    }
    for e in &mut t.tiles {
        (e.gemv_factor, e.gemm_factor) = (sig(e.gemv_factor), sig(e.gemm_factor));
    }
}

/// Tile factors: LUT `gq2` on `[n, 2k]` (K tiles 1024..4096 × rows per item
/// 64, 256) and dense `q4_0` on `[n, k]` (rows per item 32, 128). The tiled
/// and untiled functions are compiled together and timed in turns, three
/// rounds, so a change of machine load hits all of them alike.
fn measure_tiles(o: &CostBenchOptions, progress: &mut dyn FnMut(&str)) -> Result<Vec<TileCost>, String> {
    let (n, k) = o.shape;
    let rr = o.gemm_rows.max(2);
    let lut = (Primitive::Lut, Some(GqParams { bits: 2, group: 128, zero: false }.into()), (n, 2 * k));
    let dense = (Primitive::Dense, Some(GgmlType::Q4_0.into()), (n, k));
    let mut out = Vec::new();
    for (p, enc, shape, grid) in [
        (lut.0, lut.1, lut.2, [64u64, 256].iter().flat_map(|&m| [1024u64, 2048, 4096].map(|kt| (m, Some(kt)))).collect::<Vec<_>>()),
        (dense.0, dense.1, dense.2, vec![(32, None), (128, None)]),
    ] {
        let c = copies(stored_bytes(enc, shape.0, shape.1), o.dram_bytes / 2);
        let mut tiles = vec![None];
        tiles.extend(grid.iter().map(|&(m, kt)| Some((m as usize, kt.map_or(shape.1, |x| x as usize)))));
        let mut rts = Vec::new();
        for t in &tiles {
            rts.push(CpuRuntime::compile(&module(p, enc, shape, c, *t)?, "f", RuntimeOptions { threads: o.threads, ..Default::default() }).map_err(|e| e.to_string())?);
        }
        let mut best = vec![[f64::INFINITY; 2]; rts.len()];
        for (ri, r) in [1, rr].into_iter().enumerate() {
            let x: Vec<f32> = (0..r * shape.1).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
            for _round in 0..3 {
                for (rt, b) in rts.iter_mut().zip(&mut best) {
                    rt.enable_profile();
                    let (t0, mut runs) = (Instant::now(), 0usize);
                    while runs < 2 || t0.elapsed() < o.budget / 3 {
                        rt.run(&[Input::F32(&x)], false).map_err(|e| e.to_string())?;
                        runs += 1;
                    }
                    let ns = rt.profile().iter().find(|(kd, _)| *kd == gemm_kind(p)).map_or(0.0, |(_, d)| d.as_nanos() as f64) / runs as f64;
                    b[ri] = b[ri].min(ns);
                }
            }
        }
        for ((m, kt), b) in grid.into_iter().zip(&best[1..]) {
            let (gemv_factor, gemm_factor) = (b[0] / best[0][0].max(1e-9), b[1] / best[0][1].max(1e-9));
            progress(&format!("tile {:<5} m {m:>4} k {:>5}: ×{gemv_factor:.3} at 1 row, ×{gemm_factor:.3} at {rr} rows", p.name(), kt.map_or("row".to_string(), |x| x.to_string())));
            out.push(TileCost { primitive: p.name().into(), m, k: kt, gemv_factor, gemm_factor });
        }
    }
    Ok(out)
}
