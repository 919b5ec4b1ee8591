//! From an IR function to FlexCiM workloads.
//!
//! Every `tensor.matmul {transpose_b}` whose right operand is a plain rank-2
//! `tensor.weight` (f32 or an integer type) becomes a macro layer; every
//! other op is host work, counted by its result's element count.
//!
//! Until FLOW's `#nm` encoding lands, weights arrive dense and are brought to
//! int8 N:M here with a documented rule (the [`NmSource`] trait is where an
//! encoding-backed source plugs in):
//! * weights: f32 → int8 per output row, symmetric, scale = max|w| / 127,
//!   round half away from zero; integer weights must already fit int8;
//!   then N:M by magnitude (the N largest |w| per group, ties → lower index);
//! * activations: the matmul's left operand, computed by the reference
//!   interpreter on seeded random inputs, quantized per tensor, symmetric,
//!   scale = max|x| / 127 (the host would do the same before streaming).
//!
//! The int32 results are then checked against the reference interpreter
//! running `i8 × i8 → i32` `tensor.matmul` on the same operands.

use super::lower::{NmLayer, NmSource, Rng};
use super::Workload;
use crate::reference::{Interpreter, Tensor};
use flexc_ir::dfg::ValueDef;
use flexc_ir::types::{Dim, ElemType, TensorType};
use flexc_ir::{Module, OpAttrs};

/// The layers and host work of one function.
#[derive(Clone, Debug, Default)]
pub struct IrWork {
    /// Macro layers.
    pub work: Vec<Workload>,
    /// Host ops: (mnemonic, elements).
    pub host: Vec<(String, u64)>,
}

fn concrete(t: &TensorType, tokens: usize) -> Vec<usize> {
    t.shape.iter().map(|d| match d {
        Dim::Fixed(n) => *n as usize,
        Dim::Sym(_) => tokens,
    }).collect()
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

/// Symmetric int8 quantization of a row: scale = max|v| / 127.
pub fn quantize_row(v: &[f64]) -> Vec<i8> {
    let max = v.iter().fold(0.0f64, |a, &b| a.max(b.abs()));
    if max == 0.0 {
        return vec![0; v.len()];
    }
    v.iter().map(|&x| (x * 127.0 / max).round().clamp(-127.0, 127.0) as i8).collect()
}

fn to_i8(t: &Tensor, per_row: Option<usize>) -> Result<Vec<i8>, String> {
    if let Some(ints) = t.as_int() {
        return ints.iter().map(|&v| i8::try_from(v).map_err(|_| format!("integer weight {v} does not fit int8"))).collect();
    }
    let v = t.to_f64().ok_or("encoded operand")?;
    Ok(match per_row {
        Some(k) => v.chunks(k.max(1)).flat_map(quantize_row).collect(),
        None => quantize_row(&v),
    })
}

/// Extracts the macro layers of `func` (the first function when `None`).
pub fn from_ir(module: &Module, func: Option<&str>, tokens: usize, source: &dyn NmSource, seed: u64) -> Result<IrWork, String> {
    let id = match func {
        Some(n) => module.func(n).ok_or_else(|| format!("no function @{n}"))?,
        None => module.funcs.keys().next().ok_or("the module has no function")?,
    };
    let f = &module.funcs[id];
    let mut out = IrWork::default();
    let mut mms = Vec::new();
    for &op in &f.layout {
        let data = &f.dfg.ops[op];
        let is_weight = |v| matches!(f.dfg.values[v].def, ValueDef::Result(o) if matches!(f.dfg.ops[o].attrs, OpAttrs::Weight(_)));
        let rty = f.dfg.ty(data.result);
        match &data.attrs {
            OpAttrs::Matmul(m) if m.transpose_b && data.args.len() == 2 && is_weight(data.args[1]) && f.dfg.ty(data.args[1]).rank() == 2 && f.dfg.ty(data.args[1]).encoding.is_none() => {
                mms.push((f.dfg.values[data.result].name.clone().unwrap_or_else(|| format!("matmul{}", mms.len())), data.args[0], data.args[1]));
            }
            OpAttrs::Weight(_) | OpAttrs::Constant(_) => {}
            other => out.host.push((other.opcode().mnemonic().to_string(), concrete(rty, tokens).iter().product::<usize>() as u64)),
        }
    }
    if mms.is_empty() {
        return Ok(out);
    }
    // Run the function once, returning every matmul's operands.
    let mut m2 = module.clone();
    let g = &mut m2.funcs[id];
    g.returns = mms.iter().flat_map(|&(_, a, w)| [a, w]).collect();
    g.results = g.returns.iter().map(|&v| g.dfg.ty(v).clone()).collect();
    let mut rng = Rng(seed | 1);
    let inputs = f.params.iter().map(|&p| random_input(f.dfg.ty(p), tokens, &mut rng)).collect::<Result<Vec<_>, _>>()?;
    let vals = Interpreter::new(&m2).run_id(id, inputs).map_err(|e| e.to_string())?;
    for (i, (name, _, _)) in mms.iter().enumerate() {
        let (x, w) = (&vals[2 * i], &vals[2 * i + 1]);
        let (o, k) = (w.shape[0], w.shape[1]);
        let t = x.numel() / k.max(1);
        let wq = to_i8(w, Some(k))?;
        let xq = to_i8(x, None)?;
        let layer: NmLayer = source.layout(name, o, k, &wq)?;
        let oracle = interpreter_matmul(&layer, &xq, t)?;
        out.work.push(Workload { layer, x: xq, tokens: t, oracle: Some(oracle) });
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
