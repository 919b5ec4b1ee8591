//! The op table of the ONNX frontend: one arm per supported `(domain,
//! op_type)`, mapping the node onto `tensor.*` / `quant.*` ops. Anything not
//! listed (or an attribute value a translator does not handle) is an error
//! naming the node, its op type and its opset, never an approximation.

use super::cx::{Cx, Val};
use super::node::Node;
use super::shape::{self, ints, sym_ints};
use super::tensor::{elem_of, CData, Const, SymInt};
use flexc_ir::attrs;
use flexc_ir::ops::{CmpPred, GeluApprox, ReduceKind};
use flexc_ir::types::{Dim, ElemType, TensorType};
use flexc_ir::OpAttrs;
use std::sync::Arc;

type R<T> = Result<T, String>;

/// The ops of the default domain this frontend translates (for the README
/// and the conformance table).
pub const SUPPORTED: &[&str] = &[
    "Abs", "Add", "And", "Cast", "CastLike", "Concat", "Constant", "ConstantOfShape", "DequantizeLinear", "Div", "Dropout", "DynamicQuantizeLinear",
    "Equal", "Erf", "Exp", "Expand", "Flatten", "Gather", "GatherND", "Gelu", "Gemm", "Greater", "GreaterOrEqual", "Identity", "IsNaN", "LayerNormalization",
    "Less", "LessOrEqual", "MatMul", "MatMulInteger", "Max", "Mean", "Min", "Mul", "Neg", "Not", "Or", "Pow", "QuantizeLinear", "Range", "Reciprocal",
    "ReduceMax", "ReduceMean", "ReduceSum", "Relu", "Reshape", "RMSNormalization", "Shape", "Sigmoid", "SimplifiedLayerNormalization", "Size", "Slice",
    "Softmax", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tanh", "Transpose", "Unsqueeze", "Where",
];

fn scalar(elem: ElemType, v: f64) -> Val {
    let data = if elem.is_float() { CData::F(vec![v]) } else { CData::I(vec![SymInt::N(v as i64)]) };
    Val::C(Arc::new(Const { elem, shape: vec![], data }))
}

fn unary(cx: &mut Cx, a: impl Into<OpAttrs>, nd: &Node) -> R<Vec<Val>> {
    Ok(vec![cx.emit(a, &[nd.input(0)?], None)?])
}

/// Arithmetic that keeps symbolic shape integers where the answer is
/// still a dimension (x·1, x+0, x−0, x/1); otherwise the IR op.
fn arith(cx: &mut Cx, a: OpAttrs, x: &Val, y: &Val) -> R<Val> {
    if let (Some(cx_), Some(cy)) = (cx.known(x), cx.known(y)) {
        if let (CData::I(p), CData::I(q)) = (&cx_.data, &cy.data) {
            let has_sym = p.iter().chain(q.iter()).any(|s| s.n().is_none());
            if has_sym && p.len() == q.len() && cx_.shape == cy.shape {
                let out: Option<Vec<SymInt>> = p
                    .iter()
                    .zip(q)
                    .map(|(u, v)| match (&a, u, v) {
                        (_, SymInt::N(m), SymInt::N(n)) => match a {
                            OpAttrs::Add(_) => Some(SymInt::N(m + n)),
                            OpAttrs::Sub(_) => Some(SymInt::N(m - n)),
                            OpAttrs::Mul(_) => Some(SymInt::N(m * n)),
                            OpAttrs::Div(_) if *n != 0 => Some(SymInt::N(m.div_euclid(*n))),
                            _ => None,
                        },
                        (OpAttrs::Mul(_), s, SymInt::N(1)) | (OpAttrs::Mul(_), SymInt::N(1), s) | (OpAttrs::Div(_), s, SymInt::N(1)) => Some(s.clone()),
                        (OpAttrs::Add(_) | OpAttrs::Sub(_), s, SymInt::N(0)) | (OpAttrs::Add(_), SymInt::N(0), s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                return match out {
                    Some(v) => Ok(Val::C(Arc::new(Const { elem: cx_.elem, shape: cx_.shape.clone(), data: CData::I(v) }))),
                    None => Err("arithmetic on symbolic dimensions whose result is not a dimension".into()),
                };
            }
        }
    }
    cx.emit(a, &[x.clone(), y.clone()], None)
}

/// Comparison, with symbolic-dimension equality known at import.
fn compare(cx: &mut Cx, pred: CmpPred, x: &Val, y: &Val) -> R<Val> {
    if let (Some(p), Some(q), CmpPred::Eq) = (cx.known(x), cx.known(y), pred) {
        if let (CData::I(u), CData::I(v)) = (&p.data, &q.data) {
            if u.len() == v.len() && p.shape == q.shape && u.iter().chain(v).any(|s| s.n().is_none()) {
                let eq: Option<Vec<i64>> = u.iter().zip(v).map(|(a, b)| if a == b { Some(1) } else if a.n().is_some() && b.n().is_some() { Some(0) } else { None }).collect();
                let eq = eq.ok_or("comparing a symbolic dimension with a different value is not known at import")?;
                return Ok(Val::C(Arc::new(Const::ints(ElemType::I1, p.shape.clone(), eq))));
            }
        }
    }
    cx.emit(attrs::Compare { pred }, &[x.clone(), y.clone()], None)
}

fn variadic(cx: &mut Cx, nd: &Node, a: impl Fn() -> OpAttrs) -> R<Val> {
    let mut acc = nd.input(0)?;
    for i in 1..nd.ins.len() {
        acc = arith(cx, a(), &acc, &nd.input(i)?)?;
    }
    Ok(acc)
}

fn cast(cx: &mut Cx, x: &Val, to: ElemType) -> R<Val> {
    let ty = cx.ty(x);
    if ty.elem == to {
        return Ok(x.clone());
    }
    if let Some(c) = cx.known(x) {
        if let (CData::I(v), false) = (&c.data, to.is_float()) {
            if to != ElemType::I1 {
                return Ok(Val::C(Arc::new(Const { elem: to, shape: c.shape.clone(), data: CData::I(v.clone()) })));
            }
        }
    }
    if to == ElemType::I1 {
        // Nonzero is true (a saturating cast would make −1 false).
        let zero = scalar(ty.elem, 0.0);
        return cx.emit(attrs::Compare { pred: CmpPred::Ne }, &[x.clone(), zero], None);
    }
    cx.emit(attrs::Cast {}, std::slice::from_ref(x), Some(TensorType { elem: to, ..ty }))
}

fn axes_of(cx: &Cx, nd: &Node, input: usize) -> R<Option<Vec<i64>>> {
    if let Some(a) = nd.ints("axes") {
        return Ok(Some(a));
    }
    nd.opt(input).map(|v| ints(cx, &v, "axes")).transpose()
}

fn norm(axis: i64, rank: usize) -> R<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if (0..rank as i64).contains(&a) { Ok(a as usize) } else { Err(format!("axis {axis} is out of range for rank {rank}")) }
}

fn reduce(cx: &mut Cx, nd: &Node, kind: ReduceKind, axes_input_since: i64) -> R<Val> {
    let x = nd.input(0)?;
    let rank = cx.ty(&x).rank();
    let axes = if nd.opset >= axes_input_since { nd.opt(1).map(|v| ints(cx, &v, "axes")).transpose()? } else { nd.ints("axes") };
    let keep = nd.int("keepdims", 1) != 0;
    let mut axes: Vec<usize> = match axes {
        Some(a) if !a.is_empty() => a.iter().map(|&a| norm(a, rank)).collect::<R<_>>()?,
        _ if nd.int("noop_with_empty_axes", 0) != 0 => return Ok(x),
        _ => (0..rank).collect(),
    };
    axes.sort_unstable();
    axes.dedup();
    let mut v = x;
    for &a in axes.iter().rev() {
        v = cx.emit(attrs::Reduce { kind, axis: a as i64, keepdim: keep }, &[v], None)?;
    }
    Ok(v)
}

/// `x · w` with ONNX MatMul semantics (1-D operands, broadcast batch axes).
pub fn matmul(cx: &mut Cx, a: &Val, b: &Val) -> R<Val> {
    let (ta, tb) = (cx.ty(a), cx.ty(b));
    let mut a = a.clone();
    let mut b = b.clone();
    let (a1, b1) = (ta.rank() == 1, tb.rank() == 1);
    if a1 {
        a = shape::reshape(cx, &a, vec![Dim::Fixed(1), ta.shape[0].clone()])?;
    }
    if b1 {
        b = shape::reshape(cx, &b, vec![tb.shape[0].clone(), Dim::Fixed(1)])?;
    }
    let (ta, tb) = (cx.ty(&a), cx.ty(&b));
    if tb.rank() > 2 || ta.rank() < tb.rank() {
        // Broadcast the batch axes of both to one shape.
        let (ra, rb) = (ta.rank(), tb.rank());
        let batch = flexc_ir::shape::broadcast_shapes(&ta.shape[..ra - 2], &tb.shape[..rb - 2])?;
        let full = |t: &TensorType, r: usize| {
            let mut s = batch.clone();
            s.extend_from_slice(&t.shape[r - 2..]);
            s
        };
        let (sa, sb) = (full(&ta, ra), full(&tb, rb));
        a = shape::expand(cx, &a, &sa.iter().map(SymInt::of_dim).collect::<Vec<_>>())?;
        b = shape::expand(cx, &b, &sb.iter().map(SymInt::of_dim).collect::<Vec<_>>())?;
    }
    let elem_int = !cx.ty(&a).elem.is_float();
    let declared = if elem_int {
        let t = cx.ty(&a);
        let n = cx.ty(&b).shape.last().cloned().unwrap_or(Dim::Fixed(1));
        let mut s = t.shape.clone();
        *s.last_mut().expect("rank >= 2") = n;
        Some(TensorType { shape: s, elem: ElemType::I32, encoding: None })
    } else {
        None
    };
    let mut y = cx.emit(attrs::Matmul { transpose_b: false }, &[a, b], declared)?;
    let ty = cx.ty(&y);
    let r = ty.rank();
    if a1 || b1 {
        let mut s = ty.shape.clone();
        if b1 {
            s.remove(r - 1);
        }
        if a1 {
            s.remove(r - 2);
        }
        y = shape::reshape(cx, &y, s)?;
    }
    Ok(y)
}

fn gemm(cx: &mut Cx, nd: &Node) -> R<Val> {
    let mut a = nd.input(0)?;
    let b = nd.input(1)?;
    if nd.int("transA", 0) != 0 {
        a = shape::transpose(cx, &a, &[1, 0])?;
    }
    let tb = nd.int("transB", 0) != 0;
    let mut y = cx.emit(attrs::Matmul { transpose_b: tb }, &[a, b], None)?;
    let elem = cx.ty(&y).elem;
    let alpha = nd.float("alpha", 1.0);
    if alpha != 1.0 {
        y = cx.emit(attrs::Mul {}, &[y, scalar(elem, alpha)], None)?;
    }
    if let Some(c) = nd.opt(2) {
        let beta = nd.float("beta", 1.0);
        let c = if beta != 1.0 { cx.emit(attrs::Mul {}, &[c, scalar(elem, beta)], None)? } else { c };
        y = cx.emit(attrs::Add {}, &[y, c], None)?;
    }
    Ok(y)
}

fn layernorm(cx: &mut Cx, nd: &Node, rms: bool) -> R<Vec<Val>> {
    let x = nd.input(0)?;
    let ty = cx.ty(&x);
    let axis = norm(nd.int("axis", -1), ty.rank())?;
    if nd.outputs() > 1 {
        // Y, then Mean and InvStdDev over axes axis.. (kept as size-1 axes).
        let y = layernorm(cx, &Node { n: &strip_outputs(nd.n), ins: nd.ins.clone(), opset: nd.opset, fx: nd.fx }, rms)?.remove(0);
        let trail = ty.shape[axis..].to_vec();
        let mut flat = ty.shape[..axis].to_vec();
        flat.push(shape::product(&trail)?);
        let xf = shape::reshape(cx, &x, flat)?;
        let mean = cx.emit(attrs::Reduce { kind: ReduceKind::Mean, axis: -1, keepdim: true }, &[xf.clone()], None)?;
        let c = if rms { xf } else { cx.emit(attrs::Sub {}, &[xf, mean.clone()], None)? };
        let sq = cx.emit(attrs::Mul {}, &[c.clone(), c], None)?;
        let var = cx.emit(attrs::Reduce { kind: ReduceKind::Mean, axis: -1, keepdim: true }, &[sq], None)?;
        let e = Val::C(Arc::new(Const { elem: ty.elem, shape: vec![], data: CData::F(vec![nd.float("epsilon", 1e-5)]) }));
        let var = cx.emit(attrs::Add {}, &[var, e], None)?;
        let sd = cx.emit(attrs::Sqrt {}, &[var], None)?;
        let inv = cx.emit(attrs::Reciprocal {}, &[sd], None)?;
        let mut kept = ty.shape[..axis].to_vec();
        kept.extend(std::iter::repeat_n(Dim::Fixed(1), ty.rank() - axis));
        let mean = shape::reshape(cx, &mean, kept.clone())?;
        let inv = shape::reshape(cx, &inv, kept)?;
        return Ok(if rms { vec![y, inv] } else { vec![y, mean, inv] });
    }
    if axis != ty.rank() - 1 {
        // Normalising over axes axis.. = over the last axis of x flattened to
        // [x[..axis], Π x[axis..]], with scale and bias broadcast to x[axis..].
        let trail = ty.shape[axis..].to_vec();
        let mut flat = ty.shape[..axis].to_vec();
        flat.push(shape::product(&trail)?);
        let xf = shape::reshape(cx, &x, flat)?;
        let full = |cx: &mut Cx, v: Val| -> R<Val> {
            let e = shape::expand(cx, &v, &trail.iter().map(SymInt::of_dim).collect::<Vec<_>>())?;
            let n = shape::product(&trail)?;
            shape::reshape(cx, &e, vec![n])
        };
        let mut ins = vec![Some(xf), Some(full(cx, nd.input(1)?)?)];
        if let Some(b) = nd.opt(2) {
            ins.push(Some(full(cx, b)?));
        }
        let sub = Node { n: nd.n, ins, opset: nd.opset, fx: nd.fx };
        let y = layernorm(cx, &sub, rms)?.remove(0);
        return Ok(vec![shape::reshape(cx, &y, ty.shape.clone())?]);
    }
    let d = ty.shape[axis].clone();
    let vec_of = |cx: &mut Cx, v: Val| -> R<Val> {
        let t = cx.ty(&v);
        if t.shape.iter().rev().skip(1).any(|s| *s != Dim::Fixed(1)) || t.shape.last() != Some(&d) {
            return Err(format!("scale/bias of type {t} (not a vector over the last axis) is not supported"));
        }
        shape::reshape(cx, &v, vec![d.clone()])
    };
    let w = vec_of(cx, nd.input(1)?)?;
    let eps = nd.float("epsilon", 1e-5);
    if rms {
        return Ok(vec![cx.emit(attrs::Rmsnorm { eps }, &[x, w], None)?]);
    }
    let b = match nd.opt(2) {
        Some(b) => vec_of(cx, b)?,
        None => {
            let n = d.fixed().ok_or("a symbolic normalised axis")? as usize;
            Val::C(Arc::new(Const { elem: ty.elem, shape: vec![n], data: CData::F(vec![0.0; n]) }))
        }
    };
    Ok(vec![cx.emit(attrs::Layernorm { eps }, &[x, w, b], None)?])
}

/// The node with only its first output (for translating the main result alone).
fn strip_outputs(n: &super::proto::NodeProto) -> super::proto::NodeProto {
    super::proto::NodeProto { output: n.output.iter().take(1).cloned().collect(), ..n.clone() }
}

fn split(cx: &mut Cx, nd: &Node) -> R<Vec<Val>> {
    let x = nd.input(0)?;
    let ty = cx.ty(&x);
    let ax = norm(nd.int("axis", 0), ty.rank())?;
    let n = ty.shape[ax].fixed().ok_or("splitting a symbolic axis")? as i64;
    let k = nd.n.output.len() as i64;
    let sizes = match nd.opt(1) {
        Some(s) => ints(cx, &s, "split")?,
        None if nd.ints("split").is_some() => nd.ints("split").unwrap_or_default(),
        None => {
            let parts = if nd.has("num_outputs") { nd.int("num_outputs", k) } else { k };
            let each = (n + parts - 1) / parts.max(1);
            (0..parts).map(|i| each.min(n - i * each).max(0)).collect()
        }
    };
    if sizes.iter().sum::<i64>() != n || sizes.len() as i64 != k {
        return Err(format!("split sizes {sizes:?} do not cover the axis of size {n} in {k} outputs"));
    }
    let mut out = Vec::new();
    let mut at = 0;
    for s in sizes {
        let starts = Val::C(Arc::new(Const::ints(ElemType::I64, vec![1], vec![at])));
        let ends = Val::C(Arc::new(Const::ints(ElemType::I64, vec![1], vec![at + s])));
        let axes = Val::C(Arc::new(Const::ints(ElemType::I64, vec![1], vec![ax as i64])));
        let sub = Node { n: nd.n, ins: vec![Some(x.clone()), Some(starts), Some(ends), Some(axes)], opset: nd.opset, fx: nd.fx };
        out.push(shape::slice(cx, &sub)?);
        at += s;
    }
    Ok(out)
}

/// Translates one node of the default domain (or `com.microsoft`).
pub fn translate(cx: &mut Cx, domain: &str, nd: &Node) -> R<Vec<Val>> {
    let op = nd.n.op_type.as_deref().unwrap_or("");
    if domain == "com.microsoft" {
        return match op {
            "MatMulNBits" => Ok(vec![super::quant::matmul_nbits(cx, nd)?]),
            "SimplifiedLayerNormalization" => layernorm(cx, nd, true),
            _ => Err("this com.microsoft op is not supported (supported: MatMulNBits, SimplifiedLayerNormalization)".into()),
        };
    }
    let bin = |cx: &mut Cx, a: OpAttrs| -> R<Vec<Val>> { Ok(vec![arith(cx, a, &nd.input(0)?, &nd.input(1)?)?]) };
    let cmp = |cx: &mut Cx, p: CmpPred| -> R<Vec<Val>> { Ok(vec![compare(cx, p, &nd.input(0)?, &nd.input(1)?)?]) };
    match op {
        "Add" => bin(cx, attrs::Add {}.into()),
        "Sub" => bin(cx, attrs::Sub {}.into()),
        "Mul" => bin(cx, attrs::Mul {}.into()),
        "Div" => bin(cx, attrs::Div {}.into()),
        "Pow" => {
            let (x, y) = (nd.input(0)?, nd.input(1)?);
            let e = cx.ty(&x).elem;
            let y = cast(cx, &y, e)?;
            Ok(vec![cx.emit(attrs::Pow {}, &[x, y], None)?])
        }
        "Max" => Ok(vec![variadic(cx, nd, || attrs::Max {}.into())?]),
        "Min" => Ok(vec![variadic(cx, nd, || attrs::Min {}.into())?]),
        "Sum" => Ok(vec![variadic(cx, nd, || attrs::Add {}.into())?]),
        "Mean" => {
            let s = variadic(cx, nd, || attrs::Add {}.into())?;
            let e = cx.ty(&s).elem;
            Ok(vec![cx.emit(attrs::Div {}, &[s, scalar(e, nd.ins.len() as f64)], None)?])
        }
        "Equal" => cmp(cx, CmpPred::Eq),
        "Less" => cmp(cx, CmpPred::Lt),
        "LessOrEqual" => cmp(cx, CmpPred::Le),
        "Greater" => cmp(cx, CmpPred::Gt),
        "GreaterOrEqual" => cmp(cx, CmpPred::Ge),
        "And" => bin(cx, attrs::And {}.into()),
        "Or" => bin(cx, attrs::Or {}.into()),
        "Not" => unary(cx, attrs::Not {}, nd),
        "IsNaN" => unary(cx, attrs::Isnan {}, nd),
        "Where" => Ok(vec![cx.emit(attrs::Where {}, &[nd.input(0)?, nd.input(1)?, nd.input(2)?], None)?]),
        "Neg" => unary(cx, attrs::Neg {}, nd),
        "Abs" => unary(cx, attrs::Abs {}, nd),
        "Exp" => unary(cx, attrs::Exp {}, nd),
        "Tanh" => unary(cx, attrs::Tanh {}, nd),
        "Relu" => unary(cx, attrs::Relu {}, nd),
        "Sqrt" => unary(cx, attrs::Sqrt {}, nd),
        "Reciprocal" => unary(cx, attrs::Reciprocal {}, nd),
        "Erf" => unary(cx, attrs::Erf {}, nd),
        "Sigmoid" => unary(cx, attrs::Sigmoid {}, nd),
        "Gelu" => {
            let approx = match nd.string("approximate").as_deref().unwrap_or("none") {
                "none" => GeluApprox::Erf,
                "tanh" => GeluApprox::Tanh,
                other => return Err(format!("approximate = '{other}' is not supported")),
            };
            unary(cx, attrs::Gelu { approx }, nd)
        }
        "Identity" => Ok(vec![nd.input(0)?]),
        "Dropout" => {
            if nd.outputs() > 1 {
                return Err("the mask output of Dropout is not supported".into());
            }
            Ok(vec![nd.input(0)?])
        }
        "Cast" => {
            let to = elem_of(nd.int("to", 0) as i32)?;
            Ok(vec![cast(cx, &nd.input(0)?, to)?])
        }
        "CastLike" => {
            let to = cx.ty(&nd.input(1)?).elem;
            Ok(vec![cast(cx, &nd.input(0)?, to)?])
        }
        "Constant" => {
            let c = if let Some(t) = nd.tensor("value")? {
                t
            } else if nd.has("value_float") {
                Const { elem: ElemType::F32, shape: vec![], data: CData::F(vec![nd.float("value_float", 0.0)]) }
            } else if let Some(v) = nd.ints("value_ints") {
                Const::ints(ElemType::I64, vec![v.len()], v)
            } else if nd.has("value_int") {
                Const::ints(ElemType::I64, vec![], vec![nd.int("value_int", 0)])
            } else if nd.has("value_floats") {
                let v: Vec<f64> = nd.n.attribute.iter().find(|a| a.name.as_deref() == Some("value_floats")).map(|a| a.floats.iter().map(|&f| f as f64).collect()).unwrap_or_default();
                Const { elem: ElemType::F32, shape: vec![v.len()], data: CData::F(v) }
            } else {
                return Err("only value, value_float(s) and value_int(s) constants are supported".into());
            };
            Ok(vec![Val::C(Arc::new(c))])
        }
        "MatMul" => Ok(vec![matmul(cx, &nd.input(0)?, &nd.input(1)?)?]),
        "Gemm" => Ok(vec![gemm(cx, nd)?]),
        "Softmax" => {
            if nd.opset < 13 {
                return Err("Softmax before opset 13 (2-D coercion at the axis) is not supported".into());
            }
            let x = nd.input(0)?;
            Ok(vec![cx.emit(attrs::Softmax { axis: nd.int("axis", -1) }, &[x], None)?])
        }
        "LayerNormalization" => layernorm(cx, nd, false),
        "SimplifiedLayerNormalization" | "RMSNormalization" => layernorm(cx, nd, true),
        "ReduceMean" => Ok(vec![reduce(cx, nd, ReduceKind::Mean, 18)?]),
        "ReduceSum" => Ok(vec![reduce(cx, nd, ReduceKind::Sum, 13)?]),
        "ReduceMax" => Ok(vec![reduce(cx, nd, ReduceKind::Max, 18)?]),
        "Reshape" => {
            let x = nd.input(0)?;
            let target = sym_ints(cx, &nd.input(1)?, "shape")?;
            let s = shape::resolve_shape(&cx.ty(&x).shape, &target, nd.int("allowzero", 0) != 0)?;
            Ok(vec![shape::reshape(cx, &x, s)?])
        }
        "Flatten" => {
            let x = nd.input(0)?;
            let ty = cx.ty(&x);
            let ax = if nd.int("axis", 1) < 0 { nd.int("axis", 1) + ty.rank() as i64 } else { nd.int("axis", 1) } as usize;
            if ax > ty.rank() {
                return Err(format!("axis {ax} is out of range"));
            }
            let s = vec![shape::product(&ty.shape[..ax])?, shape::product(&ty.shape[ax..])?];
            Ok(vec![shape::reshape(cx, &x, s)?])
        }
        "Transpose" => {
            let x = nd.input(0)?;
            let r = cx.ty(&x).rank();
            let perm: Vec<usize> = match nd.ints("perm") {
                Some(p) => p.iter().map(|&a| norm(a, r)).collect::<R<_>>()?,
                None => (0..r).rev().collect(),
            };
            Ok(vec![shape::transpose(cx, &x, &perm)?])
        }
        "Unsqueeze" => {
            let x = nd.input(0)?;
            let axes = axes_of(cx, nd, 1)?.ok_or("axes are required")?;
            let ty = cx.ty(&x);
            let r = ty.rank() + axes.len();
            let mut ax: Vec<usize> = axes.iter().map(|&a| norm(a, r)).collect::<R<_>>()?;
            ax.sort_unstable();
            let mut s = ty.shape.clone();
            for a in ax {
                s.insert(a, Dim::Fixed(1));
            }
            Ok(vec![shape::reshape(cx, &x, s)?])
        }
        "Squeeze" => {
            let x = nd.input(0)?;
            let ty = cx.ty(&x);
            let axes: Vec<usize> = match axes_of(cx, nd, 1)? {
                Some(a) => a.iter().map(|&a| norm(a, ty.rank())).collect::<R<_>>()?,
                None => (0..ty.rank()).filter(|&i| ty.shape[i] == Dim::Fixed(1)).collect(),
            };
            if let Some(&a) = axes.iter().find(|&&a| ty.shape[a] != Dim::Fixed(1)) {
                return Err(format!("axis {a} has size {}, not 1", ty.shape[a]));
            }
            let s = ty.shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, d)| d.clone()).collect();
            Ok(vec![shape::reshape(cx, &x, s)?])
        }
        "Concat" => {
            let vs: Vec<Val> = (0..nd.ins.len()).map(|i| nd.input(i)).collect::<R<_>>()?;
            Ok(vec![shape::concat(cx, &vs, nd.int("axis", 0))?])
        }
        "Slice" if nd.opset < 10 => Err("Slice before opset 10 (bounds as attributes) is not supported".into()),
        "Slice" => Ok(vec![shape::slice(cx, nd)?]),
        "Split" => split(cx, nd),
        "Gather" => Ok(vec![shape::gather(cx, &nd.input(0)?, &nd.input(1)?, nd.int("axis", 0))?]),
        "GatherND" => Ok(vec![shape::gather_nd(cx, nd)?]),
        "Expand" => {
            let x = nd.input(0)?;
            let s = sym_ints(cx, &nd.input(1)?, "shape")?;
            Ok(vec![shape::expand(cx, &x, &s)?])
        }
        "Shape" => Ok(vec![shape::shape_of(cx, nd)?]),
        "Size" => Ok(vec![shape::size_of(cx, &nd.input(0)?)?]),
        "Range" => Ok(vec![shape::range(cx, nd)?]),
        "ConstantOfShape" => Ok(vec![shape::constant_of_shape(cx, nd)?]),
        "QuantizeLinear" => Ok(vec![super::quant::quantize_linear(cx, nd)?]),
        "DequantizeLinear" => Ok(vec![super::quant::dequantize_linear(cx, nd)?]),
        "DynamicQuantizeLinear" => super::quant::dynamic_quantize_linear(cx, nd),
        "MatMulInteger" => Ok(vec![super::quant::matmul_integer(cx, nd)?]),
        _ => Err("this op is not supported by flexc's ONNX frontend".into()),
    }
}
