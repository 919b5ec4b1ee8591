//! Structural ONNX ops (Reshape, Transpose, Squeeze/Unsqueeze, Flatten,
//! Concat, Slice, Split, Gather, GatherND, Expand, Shape, Size, Range,
//! ConstantOfShape, Identity): on constants they move elements at import,
//! symbolic dimensions included, so shape subgraphs fold; on run-time values
//! they become `tensor.reshape/transpose/concat/slice/gather/expand/iota`.

use super::cx::{Cx, Val};
use super::node::Node;
use super::tensor::{CData, Const, SymInt};
use flexc_ir::attrs;
use flexc_ir::ops::CmpPred;
use flexc_ir::types::{Dim, ElemType, TensorType};
use std::sync::Arc;

type R<T> = Result<T, String>;

fn norm(axis: i64, rank: usize) -> R<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if (0..rank as i64).contains(&a) { Ok(a as usize) } else { Err(format!("axis {axis} is out of range for rank {rank}")) }
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// A constant made of elements of `c` at flat positions `src`.
fn pick(c: &Const, shape: Vec<usize>, src: impl Iterator<Item = usize>) -> Const {
    let data = match &c.data {
        CData::F(v) => CData::F(src.map(|i| v[i]).collect()),
        CData::I(v) => CData::I(src.map(|i| v[i].clone()).collect()),
    };
    Const { elem: c.elem, shape, data }
}

/// The integers of a 1-D (or scalar) constant operand (symbols allowed).
pub fn sym_ints(cx: &Cx, v: &Val, what: &str) -> R<Vec<SymInt>> {
    match cx.known(v) {
        Some(c) => match &c.data {
            CData::I(x) => Ok(x.clone()),
            CData::F(_) => Err(format!("{what} must be integers")),
        },
        None => Err(format!("{what} must be known when the model is imported (a constant or computed from shapes), not computed from the inputs")),
    }
}

/// The integers of a constant operand, every one known.
pub fn ints(cx: &Cx, v: &Val, what: &str) -> R<Vec<i64>> {
    sym_ints(cx, v, what)?.iter().map(|x| x.n().ok_or_else(|| format!("{what} depends on the symbolic dimension '{x}'"))).collect()
}

/// `v` with a new shape (same elements).
pub fn reshape(cx: &mut Cx, v: &Val, shape: Vec<Dim>) -> R<Val> {
    if let Some(c) = cx.known(v) {
        if let Some(s) = shape.iter().map(Dim::fixed).collect::<Option<Vec<_>>>() {
            return Ok(Val::C(Arc::new(Const { shape: s.iter().map(|&d| d as usize).collect(), ..(*c).clone() })));
        }
    }
    let ty = cx.ty(v);
    if ty.shape == shape {
        return Ok(v.clone());
    }
    cx.emit(attrs::Reshape {}, std::slice::from_ref(v), Some(TensorType { shape, ..ty }))
}

/// Resolves an ONNX Reshape target (0 copies, −1 infers) against `input`.
pub fn resolve_shape(input: &[Dim], target: &[SymInt], allowzero: bool) -> R<Vec<Dim>> {
    let mut out: Vec<Option<Dim>> = Vec::new();
    let mut infer = None;
    for (i, t) in target.iter().enumerate() {
        match t {
            SymInt::N(0) if !allowzero => out.push(Some(input.get(i).cloned().ok_or("a 0 in the shape has no input dimension to copy")?)),
            SymInt::N(-1) if infer.is_none() => {
                infer = Some(i);
                out.push(None);
            }
            SymInt::N(n) if *n >= 0 => out.push(Some(Dim::Fixed(*n as u64))),
            SymInt::N(n) => return Err(format!("shape entry {n} is invalid")),
            SymInt::S(s) => out.push(Some(Dim::Sym(s.clone()))),
        }
    }
    if let Some(k) = infer {
        // numel(input) / numel(known target dims), symbols cancelled by name.
        let mut syms: Vec<Arc<str>> = Vec::new();
        let mut num: u128 = 1;
        for d in input {
            match d {
                Dim::Fixed(n) => num *= *n as u128,
                Dim::Sym(s) => syms.push(s.clone()),
            }
        }
        let mut den: u128 = 1;
        for d in out.iter().flatten() {
            match d {
                Dim::Fixed(n) => den *= *n as u128,
                Dim::Sym(s) => match syms.iter().position(|x| x == s) {
                    Some(p) => {
                        syms.remove(p);
                    }
                    None => return Err(format!("cannot infer the -1 of the shape: '{s}' does not divide the input's size")),
                },
            }
        }
        if den == 0 || num % den != 0 {
            return Err(format!("cannot infer the -1 of the shape: {num} elements do not divide by {den}"));
        }
        out[k] = Some(match (syms.as_slice(), num / den) {
            ([], q) => Dim::Fixed(q as u64),
            ([s], 1) => Dim::Sym(s.clone()),
            _ => return Err("cannot infer the -1 of the shape: it would be a product of symbolic dimensions".into()),
        });
    }
    Ok(out.into_iter().flatten().collect())
}

/// `Transpose` with a permutation.
pub fn transpose(cx: &mut Cx, v: &Val, perm: &[usize]) -> R<Val> {
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(v.clone());
    }
    if let Some(c) = cx.known(v) {
        let shape: Vec<usize> = perm.iter().map(|&p| c.shape[p]).collect();
        let (st, n) = (strides(&c.shape), c.numel());
        let ost = strides(&shape);
        let src: Vec<usize> = (0..n).map(|k| perm.iter().enumerate().map(|(i, &p)| (k / ost[i]) % shape[i].max(1) * st[p]).sum()).collect();
        let src = src.into_iter();
        return Ok(Val::C(Arc::new(pick(&c, shape, src))));
    }
    cx.emit(attrs::Transpose { perm: perm.iter().map(|&p| p as i64).collect() }, std::slice::from_ref(v), None)
}

/// `Concat` along an axis.
pub fn concat(cx: &mut Cx, vs: &[Val], axis: i64) -> R<Val> {
    let rank = cx.ty(&vs[0]).rank();
    let ax = norm(axis, rank)?;
    let cs: Option<Vec<Arc<Const>>> = vs.iter().map(|v| cx.known(v)).collect();
    if let Some(cs) = cs {
        let outer: usize = cs[0].shape[..ax].iter().product();
        let mut shape = cs[0].shape.clone();
        shape[ax] = cs.iter().map(|c| c.shape[ax]).sum();
        let mut data = match cs[0].data {
            CData::F(_) => CData::F(Vec::new()),
            CData::I(_) => CData::I(Vec::new()),
        };
        for o in 0..outer {
            for c in &cs {
                let inner: usize = c.shape[ax..].iter().product();
                match (&mut data, &c.data) {
                    (CData::F(d), CData::F(s)) => d.extend_from_slice(&s[o * inner..(o + 1) * inner]),
                    (CData::I(d), CData::I(s)) => d.extend_from_slice(&s[o * inner..(o + 1) * inner]),
                    _ => return Err("concatenated tensors have different element types".into()),
                }
            }
        }
        return Ok(Val::C(Arc::new(Const { elem: cs[0].elem, shape, data })));
    }
    let vs: Vec<Val> = vs.iter().filter(|v| cx.ty(v).shape.get(ax) != Some(&Dim::Fixed(0))).cloned().collect();
    if vs.len() == 1 {
        return Ok(vs[0].clone());
    }
    cx.emit(attrs::Concat { axis: ax as i64 }, &vs, None)
}

/// Clamps an ONNX slice bound to `[0, n]` (or `[-1, n-1]` for negative steps).
fn clamp(x: i64, n: i64, step: i64) -> i64 {
    let x = if x < 0 { x + n } else { x };
    if step > 0 { x.clamp(0, n) } else { x.clamp(-1, n - 1) }
}

/// `Slice` (opset ≥ 10 inputs: data, starts, ends, axes, steps).
pub fn slice(cx: &mut Cx, nd: &Node) -> R<Val> {
    let x = nd.input(0)?;
    let starts = sym_ints(cx, &nd.input(1)?, "starts")?;
    let ends = sym_ints(cx, &nd.input(2)?, "ends")?;
    let ty = cx.ty(&x);
    let rank = ty.rank();
    let axes = match nd.opt(3) {
        Some(a) => ints(cx, &a, "axes")?,
        None => (0..starts.len() as i64).collect(),
    };
    let steps = match nd.opt(4) {
        Some(s) => ints(cx, &s, "steps")?,
        None => vec![1; starts.len()],
    };
    if starts.len() != ends.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err("starts, ends, axes and steps differ in length".into());
    }
    let mut v = x;
    for i in 0..axes.len() {
        let ax = norm(axes[i], rank)?;
        let step = steps[i];
        if step == 0 {
            return Err("a slice step is 0".into());
        }
        let dim = cx.ty(&v).shape[ax].clone();
        // Symbolic bounds: the whole axis, or a symbolic prefix of a constant.
        let (start, end) = match (&starts[i], &ends[i], &dim) {
            (SymInt::N(s), SymInt::N(e), Dim::Fixed(n)) => (clamp(*s, *n as i64, step), clamp(*e, *n as i64, step)),
            (SymInt::N(s), SymInt::N(e), Dim::Sym(_)) if step == 1 && (*s == 0 || *s <= -(1 << 62)) && *e >= (1 << 62) => continue,
            (SymInt::N(0), SymInt::S(e), Dim::Sym(d)) if step == 1 && e == d => continue,
            (SymInt::N(0), SymInt::S(e), Dim::Fixed(_)) if step == 1 => {
                v = iota_prefix(cx, &v, ax, e)?;
                continue;
            }
            _ => return Err(format!("slice bounds {}..{} (step {step}) of a dimension of size {dim} are not supported", starts[i], ends[i])),
        };
        let n = dim.fixed().unwrap_or(0) as i64;
        if let Some(c) = cx.known(&v) {
            let idx: Vec<i64> = if step > 0 { (start..end).step_by(step as usize).collect() } else { (end + 1..=start).rev().step_by((-step) as usize).collect() };
            v = Val::C(Arc::new(take_axis(&c, ax, &idx)));
            continue;
        }
        if step != 1 {
            return Err(format!("a slice with step {step} of a run-time value is not supported"));
        }
        if start == 0 && end == n {
            continue;
        }
        v = cx.emit(attrs::Slice { axis: ax as i64, start, end: end.max(start) }, &[v], None)?;
    }
    Ok(v)
}

/// The constant `c` restricted to indices `idx` along `ax`.
fn take_axis(c: &Const, ax: usize, idx: &[i64]) -> Const {
    let outer: usize = c.shape[..ax].iter().product();
    let inner: usize = c.shape[ax + 1..].iter().product();
    let n = c.shape[ax];
    let mut shape = c.shape.clone();
    shape[ax] = idx.len();
    let src = (0..outer).flat_map(move |o| idx.iter().flat_map(move |&i| (0..inner).map(move |k| (o * n + i as usize) * inner + k)));
    pick(c, shape, src.collect::<Vec<_>>().into_iter())
}

/// `c[.., 0..sym, ..]` of a constant that counts 0, 1, 2, … along `ax`
/// (position ids): a `tensor.iota` with the symbolic length.
fn iota_prefix(cx: &mut Cx, v: &Val, ax: usize, sym: &Arc<str>) -> R<Val> {
    let c = cx.known(v).ok_or_else(|| format!("slicing to the symbolic length '{sym}' needs a constant"))?;
    let vals = c.known_ints().ok_or("a symbolic-length slice of symbolic values")?;
    let (n, st) = (c.shape[ax], strides(&c.shape));
    let counts = vals.iter().enumerate().all(|(k, &x)| x == ((k / st[ax]) % n) as i64);
    if !counts {
        return Err(format!("slicing to the symbolic length '{sym}' is supported only for a constant counting 0, 1, 2, … along the axis"));
    }
    let mut shape: Vec<Dim> = c.shape.iter().map(|&d| Dim::Fixed(d as u64)).collect();
    shape[ax] = Dim::Sym(sym.clone());
    let x = cx.op(attrs::Iota { axis: ax as i64 }, &[], Some(TensorType { shape, elem: c.elem, encoding: None }))?;
    Ok(Val::Ir(x))
}

/// `Gather` along `axis` (negative indices count from the end).
pub fn gather(cx: &mut Cx, data: &Val, idx: &Val, axis: i64) -> R<Val> {
    let dt = cx.ty(data);
    let ax = norm(axis, dt.rank())?;
    if let (Some(c), Some(i)) = (cx.known(data), cx.known(idx)) {
        let n = c.shape[ax] as i64;
        let ids = i.known_ints().ok_or("gather indices are symbolic")?;
        let ids: Vec<i64> = ids.iter().map(|&k| if k < 0 { k + n } else { k }).collect();
        if let Some(bad) = ids.iter().find(|&&k| k < 0 || k >= n) {
            return Err(format!("gather index {bad} is out of range for a dimension of size {n}"));
        }
        let t = take_axis(&c, ax, &ids);
        let mut shape = c.shape[..ax].to_vec();
        shape.extend_from_slice(&i.shape);
        shape.extend_from_slice(&c.shape[ax + 1..]);
        return Ok(Val::C(Arc::new(Const { shape, ..t })));
    }
    let it = cx.ty(idx);
    let n = dt.shape[ax].clone();
    // Negative indices wrap: idx < 0 ? idx + n : idx (skipped for known non-negative ones).
    let idx = match (cx.known(idx), n.fixed()) {
        (Some(c), Some(nn)) => {
            let v = c.known_ints().ok_or("gather indices are symbolic")?;
            Val::C(Arc::new(Const::ints(it.elem, c.shape.clone(), v.iter().map(|&k| if k < 0 { k + nn as i64 } else { k }).collect())))
        }
        (None, Some(nn)) => {
            let zero = Val::C(Arc::new(Const::ints(it.elem, vec![], vec![0])));
            let nv = Val::C(Arc::new(Const::ints(it.elem, vec![], vec![nn as i64])));
            let neg = cx.emit(attrs::Compare { pred: CmpPred::Lt }, &[idx.clone(), zero], None)?;
            let wrapped = cx.emit(attrs::Add {}, &[idx.clone(), nv], None)?;
            cx.emit(attrs::Where {}, &[neg, wrapped, idx.clone()], None)?
        }
        _ => idx.clone(),
    };
    // Move the axis to the front and flatten the rest into one row.
    let mut perm: Vec<usize> = vec![ax];
    perm.extend((0..dt.rank()).filter(|&i| i != ax));
    let moved = transpose(cx, data, &perm)?;
    let rest: Vec<Dim> = perm[1..].iter().map(|&p| dt.shape[p].clone()).collect();
    let row = product(&rest)?;
    let table = reshape(cx, &moved, vec![n, row])?;
    let rows = cx.emit(attrs::Gather {}, &[table, idx], None)?;
    let mut shape = it.shape.clone();
    shape.extend(rest);
    let out = reshape(cx, &rows, shape)?;
    // Result axes: idx dims then data[:ax] then data[ax+1:] → data[:ax], idx, data[ax+1:].
    let q = it.rank();
    let mut back: Vec<usize> = (q..q + ax).collect();
    back.extend(0..q);
    back.extend(q + ax..q + dt.rank() - 1);
    transpose(cx, &out, &back)
}

/// The product of dimensions as one dimension (at most one symbol).
pub fn product(dims: &[Dim]) -> R<Dim> {
    let mut n: u64 = 1;
    let mut sym: Option<Arc<str>> = None;
    for d in dims {
        match d {
            Dim::Fixed(k) => n = n.checked_mul(*k).ok_or("dimension product overflows")?,
            Dim::Sym(s) if sym.is_none() => sym = Some(s.clone()),
            Dim::Sym(s) => return Err(format!("the product of symbolic dimensions '{}' and '{s}' is not a dimension flexc can name", sym.unwrap_or_default())),
        }
    }
    match sym {
        None => Ok(Dim::Fixed(n)),
        Some(s) if n == 1 => Ok(Dim::Sym(s)),
        Some(s) => Err(format!("{n} × '{s}' is not a dimension flexc can name")),
    }
}

/// `GatherND` with `batch_dims = 0`: index rows address the leading axes of
/// `data`; leading axes of size 1 contribute nothing to the flat row index.
pub fn gather_nd(cx: &mut Cx, nd: &Node) -> R<Val> {
    if nd.int("batch_dims", 0) != 0 {
        return Err("batch_dims other than 0 is not supported".into());
    }
    let (data, idx) = (nd.input(0)?, nd.input(1)?);
    let (dt, it) = (cx.ty(&data), cx.ty(&idx));
    let q = it.shape.last().and_then(Dim::fixed).ok_or("the last dimension of the indices must be fixed")? as usize;
    if q == 0 || q > dt.rank() {
        return Err(format!("index rows of length {q} for data of rank {}", dt.rank()));
    }
    // Flat row = Σ idx[..., j] · stride_j over the addressed axes.
    let lead = &dt.shape[..q];
    let mut flat: Option<Val> = None;
    for j in 0..q {
        if lead[j] == Dim::Fixed(1) {
            continue;
        }
        let stride = product(&lead[j + 1..])?;
        let Dim::Fixed(stride) = stride else { return Err(format!("a row stride of {stride} is symbolic")) };
        let mut col_shape = it.shape.clone();
        *col_shape.last_mut().expect("rank >= 1") = Dim::Fixed(1);
        let col = if q == 1 { idx.clone() } else { cx.emit(attrs::Slice { axis: -1, start: j as i64, end: j as i64 + 1 }, &[idx.clone()], None)? };
        let s = Val::C(Arc::new(Const::ints(it.elem, vec![], vec![stride as i64])));
        let term = if stride == 1 { col } else { cx.emit(attrs::Mul {}, &[col, s], None)? };
        flat = Some(match flat {
            None => term,
            Some(f) => cx.emit(attrs::Add {}, &[f, term], None)?,
        });
    }
    let rows_shape: Vec<Dim> = it.shape[..it.rank() - 1].to_vec();
    let flat = match flat {
        Some(f) => reshape(cx, &f, rows_shape.clone())?,
        None => {
            let zeros = Val::C(Arc::new(Const::ints(it.elem, vec![], vec![0])));
            cx.emit(attrs::Expand {}, &[zeros], Some(TensorType { shape: rows_shape.clone(), elem: it.elem, encoding: None }))?
        }
    };
    let rest: Vec<Dim> = dt.shape[q..].to_vec();
    let table = reshape(cx, &data, vec![product(lead)?, product(&rest)?])?;
    let rows = cx.emit(attrs::Gather {}, &[table, flat], None)?;
    let mut shape = rows_shape;
    shape.extend(rest);
    reshape(cx, &rows, shape)
}

/// `Expand` to a shape (numpy broadcasting, both directions).
pub fn expand(cx: &mut Cx, v: &Val, target: &[SymInt]) -> R<Val> {
    let ty = cx.ty(v);
    let target: Vec<Dim> = target.iter().map(|s| s.dim().ok_or_else(|| format!("shape entry {s} is invalid"))).collect::<R<_>>()?;
    let shape = flexc_ir::shape::broadcast_shapes(&ty.shape, &target)?;
    if shape == ty.shape {
        return Ok(v.clone());
    }
    if let Some(c) = cx.known(v) {
        if let Some(s) = shape.iter().map(Dim::fixed).collect::<Option<Vec<u64>>>() {
            let s: Vec<usize> = s.iter().map(|&d| d as usize).collect();
            let idx = flexc_ir::shape::broadcast_indices(&c.shape, &s);
            return Ok(Val::C(Arc::new(pick(&c, s, idx.into_iter()))));
        }
    }
    cx.emit(attrs::Expand {}, std::slice::from_ref(v), Some(TensorType { shape, ..ty }))
}

/// `Shape` with optional `start`/`end` (opset 15).
pub fn shape_of(cx: &Cx, nd: &Node) -> R<Val> {
    let ty = cx.ty(&nd.input(0)?);
    let r = ty.rank() as i64;
    let clampr = |x: i64| (if x < 0 { x + r } else { x }).clamp(0, r) as usize;
    let (s, e) = (clampr(nd.int("start", 0)), clampr(nd.int("end", r)));
    let dims: Vec<SymInt> = ty.shape[s..e.max(s)].iter().map(SymInt::of_dim).collect();
    Ok(Val::C(Arc::new(Const { elem: ElemType::I64, shape: vec![dims.len()], data: CData::I(dims) })))
}

/// `Size`: the element count (a symbol when exactly one dimension is symbolic).
pub fn size_of(cx: &Cx, v: &Val) -> R<Val> {
    let d = product(&cx.ty(v).shape)?;
    Ok(Val::C(Arc::new(Const { elem: ElemType::I64, shape: vec![], data: CData::I(vec![SymInt::of_dim(&d)]) })))
}

/// `Range(start, limit, delta)`: folded when all are numbers, else
/// `start + delta · iota` over a symbolic length.
pub fn range(cx: &mut Cx, nd: &Node) -> R<Val> {
    let (s, l, d) = (nd.input(0)?, nd.input(1)?, nd.input(2)?);
    let elem = cx.ty(&s).elem;
    let (cs, cl, cd) = (cx.known(&s), cx.known(&l), cx.known(&d));
    let (Some(cs), Some(cl), Some(cd)) = (cs, cl, cd) else {
        return Err("Range bounds must be known at import".into());
    };
    if let (Some(a), Some(b), Some(c)) = (cs.floats(), cl.floats(), cd.floats()) {
        let (a, b, c) = (a[0], b[0], c[0]);
        if c == 0.0 {
            return Err("Range delta is 0".into());
        }
        let n = ((b - a) / c).ceil().max(0.0) as usize;
        if n > super::tensor::FOLD_LIMIT {
            return Err(format!("Range of {n} elements is too large to fold"));
        }
        let data = if elem.is_float() { CData::F((0..n).map(|i| a + c * i as f64).collect()) } else { CData::I((0..n).map(|i| SymInt::N(a as i64 + c as i64 * i as i64)).collect()) };
        return Ok(Val::C(Arc::new(Const { elem, shape: vec![n], data })));
    }
    // 0..sym with step 1 (the positions of a sequence).
    match (cs.known_ints().as_deref(), &cl.data, cd.known_ints().as_deref()) {
        (Some([0]), CData::I(l), Some([1])) if matches!(l.as_slice(), [SymInt::S(_)]) => {
            let SymInt::S(sym) = &l[0] else { unreachable!("matched above") };
            let x = cx.op(attrs::Iota { axis: 0 }, &[], Some(TensorType { shape: vec![Dim::Sym(sym.clone())], elem, encoding: None }))?;
            Ok(Val::Ir(x))
        }
        _ => Err("Range over a symbolic length is supported from 0 with step 1".into()),
    }
}

/// `ConstantOfShape`.
pub fn constant_of_shape(cx: &mut Cx, nd: &Node) -> R<Val> {
    let shape = sym_ints(cx, &nd.input(0)?, "shape")?;
    let value = nd.tensor("value")?.unwrap_or(Const { elem: ElemType::F32, shape: vec![1], data: CData::F(vec![0.0]) });
    if value.numel() != 1 {
        return Err("value must hold one element".into());
    }
    let scalar = Val::C(Arc::new(Const { shape: vec![], ..value }));
    expand(cx, &scalar, &shape)
}
