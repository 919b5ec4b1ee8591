//! From an IR function to FlexCiM workloads.
//!
//! The GEMMs the macro runs ([`find_gemms`]), each `x · wᵀ` with `w: [out, in]`
//! computed from weights alone (through `quant.dequantize`, `tensor.cast` and
//! `kern.tile`, whose `{m, k}` becomes the layer's tile):
//! * `kern.sparse_gemm` (an `#nm<n, m>` weight): the macro's N:M mode, with
//!   the weight's stored mask ([`NmLayer::from_positions`]);
//! * `kern.dense_gemm` and `quant.mpgemm` (any encoding, decoded offline):
//!   dense mode; an `#nm` weight under `quant.mpgemm` runs sparse;
//! * `tensor.matmul {transpose_b}`: sparse for an `#nm` weight, dense for any
//!   other encoding, and for plain weights whatever the [`NmSource`] says
//!   (`flexc sim --nm`: magnitude N:M pruning);
//! * `kern.lut_gemm`, `kern.shiftadd_gemm`, `kern.lut_precompute`: an error,
//!   the macro has no such datapath.
//!
//! Every other op is host work, counted by its result's element count,
//! except ops computed from weights alone (decoded offline).
//! Weights become int8 per output row (symmetric, scale = max|w| / 127,
//! round half away from zero; integer weights must fit int8). Activations
//! are the GEMM's left operand as the reference interpreter computes it on
//! seeded random inputs, quantized per tensor the same way. The int32
//! results are checked against the reference interpreter running
//! `i8 × i8 → i32` `tensor.matmul` on the same operands.

use super::arch::Nm;
use super::layer::{DenseLayout, NmLayer, NmSource, Rng};
use super::Workload;
use crate::reference::{Data, Interpreter, Tensor};
use flexc_ir::dfg::ValueDef;
use flexc_ir::ops::Opcode;
use flexc_ir::types::{Dim, ElemType, TensorType};
use flexc_ir::{FuncId, Module, OpAttrs, Value};
use flexc_passes::target::Tile;

/// How a GEMM's weight is laid out on the macro.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// N:M mode with the weight's own `#nm` mask.
    Sparse(Nm),
    /// Dense mode (weights decoded offline).
    Dense,
    /// A plain weight under `tensor.matmul`: the caller's [`NmSource`] decides.
    Plain,
}

/// One GEMM of a function.
#[derive(Clone, Debug)]
pub struct Gemm {
    /// The weight's name (`blk.0.attn_q.weight`) or the result's.
    pub name: String,
    /// The op's mnemonic.
    pub op: &'static str,
    /// The activations operand.
    pub x: Value,
    /// The weight value below dequantize/cast/tile.
    pub root: Value,
    /// The weight table entry `root` reads, if it is a `tensor.weight`.
    pub weight: Option<String>,
    /// The layout mode.
    pub mode: Mode,
    /// The `kern.tile` on the weight path, if any.
    pub tile: Option<Tile>,
    /// Output channels.
    pub out: usize,
    /// Input channels.
    pub inp: usize,
}

/// The GEMMs and host ops of one function.
#[derive(Clone, Debug, Default)]
pub struct IrGemms {
    /// The function.
    pub func: Option<FuncId>,
    /// Macro GEMMs, in layout order.
    pub gemms: Vec<Gemm>,
    /// Host ops: (mnemonic, result type).
    pub host: Vec<(String, TensorType)>,
}

/// The layers and host work of one function.
#[derive(Clone, Debug, Default)]
pub struct IrWork {
    /// Macro layers.
    pub work: Vec<Workload>,
    /// Host ops: (mnemonic, elements).
    pub host: Vec<(String, u64)>,
}

/// Elements of a type with symbolic dimensions bound to `tokens`.
pub fn elems(t: &TensorType, tokens: usize) -> u64 {
    concrete(t, tokens).iter().product::<usize>() as u64
}

fn concrete(t: &TensorType, tokens: usize) -> Vec<usize> {
    t.shape.iter().map(|d| match d {
        Dim::Fixed(n) => *n as usize,
        Dim::Sym(_) => tokens,
    }).collect()
}

fn weight_only(f: &flexc_ir::Func, v: Value, memo: &mut std::collections::HashMap<Value, bool>) -> bool {
    if let Some(&b) = memo.get(&v) {
        return b;
    }
    let b = match f.dfg.values[v].def {
        ValueDef::Param(_) => false,
        ValueDef::Result(op) => f.dfg.ops[op].args.clone().into_iter().all(|a| weight_only(f, a, memo)),
    };
    memo.insert(v, b);
    b
}

/// Finds the GEMMs of `func` (the first function when `None`).
pub fn find_gemms(module: &Module, func: Option<&str>) -> Result<IrGemms, String> {
    let id = match func {
        Some(n) => module.func(n).ok_or_else(|| format!("no function @{n}"))?,
        None => module.funcs.keys().next().ok_or("the module has no function")?,
    };
    let f = &module.funcs[id];
    let mut out = IrGemms { func: Some(id), ..IrGemms::default() };
    let mut memo = std::collections::HashMap::new();
    for &op in &f.layout {
        let data = &f.dfg.ops[op];
        let code = data.attrs.opcode();
        match code {
            Opcode::LutGemm | Opcode::ShiftaddGemm | Opcode::LutPrecompute => {
                return Err(format!("{} is unsupported on flexcim: the macro has no table-lookup or shift-add datapath (select-gemm{{target=flexcim}} chooses kern.sparse_gemm or kern.dense_gemm)", code.mnemonic()));
            }
            Opcode::Weight | Opcode::Constant => continue,
            _ => {}
        }
        let w = data.args.get(1).copied();
        let is_gemm = data.attrs.is_linear() && data.args.len() == 2 && w.is_some_and(|w| f.dfg.ty(w).rank() == 2 && weight_only(f, w, &mut memo));
        let Some(w) = w.filter(|_| is_gemm) else {
            if matches!(code, Opcode::SparseGemm | Opcode::DenseGemm) {
                return Err(format!("{}: the weight operand must be computed from weights alone to be stored in the macro", code.mnemonic()));
            }
            // Ops on weights alone (dequantize, cast, tile) are done offline, not host work.
            if !weight_only(f, data.result, &mut memo) {
                out.host.push((code.mnemonic().to_string(), f.dfg.ty(data.result).clone()));
            }
            continue;
        };
        // Walk below dequantize / cast / tile to the stored weight.
        let (mut root, mut tile) = (w, None);
        while let Some(d) = f.dfg.def_op(root) {
            match &f.dfg.ops[d].attrs {
                OpAttrs::Dequantize(_) | OpAttrs::Cast(_) => root = f.dfg.ops[d].args[0],
                OpAttrs::Tile(t) => {
                    tile = tile.or(Some(Tile { m: t.m.max(1) as u64, k: t.k.max(1) as u64 }));
                    root = f.dfg.ops[d].args[0];
                }
                _ => break,
            }
        }
        let rty = f.dfg.ty(root);
        let shape = f.dfg.ty(w).fixed_shape().ok_or_else(|| format!("{}: the weight needs a fixed shape", code.mnemonic()))?;
        let nm = rty.encoding.and_then(|e| e.nm());
        let mode = match (code, nm, &rty.encoding) {
            (Opcode::DenseGemm, _, _) => Mode::Dense,
            (_, Some(nm), _) => Mode::Sparse(nm),
            (Opcode::Matmul, None, None) => Mode::Plain,
            _ => Mode::Dense,
        };
        let weight = f.dfg.def_op(root).and_then(|d| match &f.dfg.ops[d].attrs {
            OpAttrs::Weight(wt) => Some(wt.name.0.clone()),
            _ => None,
        });
        let name = weight.clone().or_else(|| f.dfg.values[data.result].name.clone()).unwrap_or_else(|| format!("gemm{}", out.gemms.len()));
        out.gemms.push(Gemm { name, op: code.mnemonic(), x: data.args[0], root, weight, mode, tile, out: shape[0] as usize, inp: shape[1] as usize });
    }
    Ok(out)
}

fn random_input(t: &TensorType, tokens: usize, rng: &mut Rng) -> Result<Tensor, String> {
    let shape = concrete(t, tokens);
    let n: usize = shape.iter().product();
    if t.encoding.is_some() {
        return Err(format!("input of encoded type {t} cannot be generated"));
    }
    if t.elem.is_float() {
        return Ok(Tensor::float(t.elem, &shape, (0..n).map(|_| (rng.below(2001) as f32 - 1000.0) / 1000.0).collect()));
    }
    // Integers: positions and ids kept small so gathers and ropes stay in range.
    Tensor::int(t.elem, &shape, (0..n).map(|_| if shape.is_empty() { 0 } else { rng.below(2) as i64 }).collect())
}

/// Runs `func` once on seeded random inputs (symbolic dimensions = `tokens`)
/// and returns `values` as the reference interpreter computes them.
pub fn evaluate_values(module: &Module, id: FuncId, values: &[Value], tokens: usize, seed: u64) -> Result<Vec<Tensor>, String> {
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let f = &module.funcs[id];
    let mut m2 = module.clone();
    let g = &mut m2.funcs[id];
    g.returns = values.to_vec();
    g.results = values.iter().map(|&v| g.dfg.ty(v).clone()).collect();
    let mut rng = Rng(seed | 1);
    let inputs = f.params.iter().map(|&p| random_input(f.dfg.ty(p), tokens, &mut rng)).collect::<Result<Vec<_>, _>>()?;
    Interpreter::new(&m2).run_id(id, inputs).map_err(|e| e.to_string())
}

/// Symmetric int8 quantization of a row: scale = max|v| / 127.
pub fn quantize_row(v: &[f64]) -> Vec<i8> {
    let max = v.iter().fold(0.0f64, |a, &b| a.max(b.abs()));
    if max == 0.0 {
        return vec![0; v.len()];
    }
    v.iter().map(|&x| (x * 127.0 / max).round().clamp(-127.0, 127.0) as i8).collect()
}

/// Kept in-group positions per group of an `#nm` weight.
type Mask = Vec<Vec<usize>>;

/// A tensor's values as f64 (encoded ones decoded) and, for `#nm`, its mask.
fn values_of(t: &Tensor) -> Result<(Vec<f64>, Option<Mask>), String> {
    match &t.data {
        Data::Encoded(enc, bytes) => {
            let mut out = vec![0f32; t.numel()];
            enc.decode(&t.shape, bytes, &mut out)?;
            let mask = enc.kept_positions(bytes).transpose()?;
            Ok((out.into_iter().map(f64::from).collect(), mask))
        }
        _ => Ok((t.to_f64().ok_or("operand has no values")?, None)),
    }
}

/// Int8 activations of a tensor (per-tensor scale; integers must fit int8).
pub fn activations_i8(t: &Tensor) -> Result<Vec<i8>, String> {
    if let Some(ints) = t.as_int() {
        return ints.iter().map(|&v| i8::try_from(v).map_err(|_| format!("integer activation {v} does not fit int8"))).collect();
    }
    Ok(quantize_row(&values_of(t)?.0))
}

/// The int8 layer of one GEMM from its weight tensor.
pub fn layer_of(g: &Gemm, w: &Tensor, plain: &dyn NmSource) -> Result<NmLayer, String> {
    let (out, inp) = (g.out, g.inp);
    let int = w.as_int().map(|v| v.iter().map(|&x| i8::try_from(x).map_err(|_| format!("{}: integer weight {x} does not fit int8", g.name))).collect::<Result<Vec<i8>, _>>());
    let (wq, mask) = match int {
        Some(v) => (v?, None),
        None => {
            let (v, mask) = values_of(w)?;
            (v.chunks(inp.max(1)).flat_map(quantize_row).collect(), mask)
        }
    };
    match (g.mode, mask) {
        (Mode::Sparse(nm), Some(mask)) => NmLayer::from_positions(&g.name, out, inp, nm, &wq, &mask),
        (Mode::Sparse(nm), None) => Err(format!("{}: a {nm} weight without its mask", g.name)),
        (Mode::Dense, _) => DenseLayout.layout(&g.name, out, inp, &wq),
        (Mode::Plain, _) => plain.layout(&g.name, out, inp, &wq),
    }
}

/// A GEMM's weight as the interpreter would produce it, read straight from
/// the weight table when the root is a `tensor.weight`.
pub fn weight_tensor(module: &Module, g: &Gemm) -> Option<Result<Tensor, String>> {
    let name = g.weight.as_ref()?;
    let id = module.weights.lookup(name)?;
    let wd = module.weights.get(id);
    let shape = [g.out, g.inp];
    Some((|| {
        let bytes = module.weights.bytes(id).map_err(|e| e.to_string())?;
        Ok(match wd.ty.encoding {
            Some(enc) => Tensor { elem: wd.ty.elem, shape: shape.to_vec(), data: Data::Encoded(enc, std::sync::Arc::from(&bytes[..])) },
            None if wd.ty.elem.is_float() => Tensor::f32(&shape, flexc_passes::sparsity::weight_f32(module, name)?),
            None => return Err(format!("@{name}: integer table weights go through the interpreter")),
        })
    })())
}

/// Extracts the macro layers of `func` (the first function when `None`),
/// with activations and the reference interpreter's int32 results.
pub fn from_ir(module: &Module, func: Option<&str>, tokens: usize, source: &dyn NmSource, seed: u64) -> Result<IrWork, String> {
    let found = find_gemms(module, func)?;
    let mut out = IrWork { work: Vec::new(), host: found.host.iter().map(|(op, t)| (op.clone(), elems(t, tokens))).collect() };
    let Some(id) = found.func else { return Ok(out) };
    let table: Vec<Option<Tensor>> = found.gemms.iter().map(|g| weight_tensor(module, g).and_then(Result::ok)).collect();
    let mut want: Vec<Value> = found.gemms.iter().map(|g| g.x).collect();
    want.extend(found.gemms.iter().zip(&table).filter(|(_, t)| t.is_none()).map(|(g, _)| g.root));
    let mut vals = evaluate_values(module, id, &want, tokens, seed)?.into_iter();
    let xs: Vec<Tensor> = vals.by_ref().take(found.gemms.len()).collect();
    for ((g, x), t) in found.gemms.iter().zip(&xs).zip(table) {
        let w = match t {
            Some(t) => t,
            None => vals.next().ok_or("the interpreter returned too few values")?,
        };
        let layer = layer_of(g, &w, source)?;
        let xq = activations_i8(x)?;
        let t = xq.len() / g.inp.max(1);
        let oracle = interpreter_matmul(&layer, &xq, t)?;
        out.work.push(Workload { layer, x: xq, tokens: t, oracle: Some(oracle), tile: g.tile });
    }
    Ok(out)
}

/// The reference interpreter's `i8 × i8 → i32` matmul of a layer's operands.
pub fn interpreter_matmul(layer: &NmLayer, x: &[i8], tokens: usize) -> Result<Vec<i32>, String> {
    let (o, k) = (layer.out, layer.inp);
    let text = format!("func @mm(%x: i8[{tokens}, {k}], %w: i8[{o}, {k}]) -> i32[{tokens}, {o}] {{\n  %y = tensor.matmul %x, %w {{transpose_b}} : i32[{tokens}, {o}]\n  return %y\n}}\n");
    let m = flexc_ir::text::parse_module(&text).map_err(|d| d.message.clone())?;
    let xt = Tensor::int(ElemType::I8, &[tokens, k], x.iter().map(|&v| v as i64).collect())?;
    let wt = Tensor::int(ElemType::I8, &[o, k], layer.dense().iter().map(|&v| v as i64).collect())?;
    let r = Interpreter::new(&m).run("mm", vec![xt, wt]).map_err(|e| e.to_string())?;
    let ints = r[0].as_int().ok_or("the interpreter returned no integers")?;
    Ok(ints.iter().map(|&v| v as i32).collect())
}
