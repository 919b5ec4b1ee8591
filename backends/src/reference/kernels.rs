//! Scalar semantics of every op, written to be obviously correct.
//!
//! Reductions accumulate in f64 and round once; elementwise float math is
//! done in f32 like the value types say. Nothing here is fast on purpose:
//! this is the oracle the JIT and the FlexCiM simulator are checked against.

use super::tensor::{round_to, Data, Tensor};
use flexc_ir::attrs;
use flexc_ir::ops::{GeluApprox, ReduceKind, RopeMode};
use flexc_ir::shape::{broadcast_indices, strides};
use flexc_ir::types::ElemType;

type KResult = Result<Tensor, String>;

fn floats(t: &Tensor) -> Result<&[f32], String> {
    t.as_f32().ok_or_else(|| format!("expected a plain float tensor, got {}", t.elem))
}

fn norm_axis(axis: i64, rank: usize) -> usize {
    if axis < 0 { (axis + rank as i64) as usize } else { axis as usize }
}

fn scalar(t: &Tensor) -> Result<i64, String> {
    match t.as_int() {
        Some([v]) => Ok(*v),
        _ => Err("expected a scalar integer".into()),
    }
}

/// The broadcast result shape of two concrete shapes.
pub(super) fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
            let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
            if da == db || db == 1 {
                Ok(da)
            } else if da == 1 {
                Ok(db)
            } else {
                Err(format!("shapes {a:?} and {b:?} do not broadcast"))
            }
        })
        .collect()
}

/// Which elementwise binary operation.
#[derive(Copy, Clone)]
pub enum Binary {
    /// +
    Add,
    /// −
    Sub,
    /// ×
    Mul,
    /// ÷
    Div,
    /// xʸ (floats only)
    Pow,
    /// max (NaN propagates)
    Max,
    /// min (NaN propagates)
    Min,
}

pub fn binary(op: Binary, a: &Tensor, b: &Tensor) -> KResult {
    let shape = broadcast_shape(&a.shape, &b.shape)?;
    let ia = broadcast_indices(&a.shape, &shape);
    let ib = broadcast_indices(&b.shape, &shape);
    match (&a.data, &b.data) {
        (Data::F32(x), Data::F32(y)) => {
            let out = ia
                .iter()
                .zip(&ib)
                .map(|(&i, &j)| match op {
                    Binary::Add => x[i] + y[j],
                    Binary::Sub => x[i] - y[j],
                    Binary::Mul => x[i] * y[j],
                    Binary::Div => x[i] / y[j],
                    Binary::Pow => x[i].powf(y[j]),
                    Binary::Max if x[i].is_nan() || y[j].is_nan() => f32::NAN,
                    Binary::Max => x[i].max(y[j]),
                    Binary::Min if x[i].is_nan() || y[j].is_nan() => f32::NAN,
                    Binary::Min => x[i].min(y[j]),
                })
                .collect();
            Ok(Tensor::float(a.elem, &shape, out))
        }
        (Data::Int(x), Data::Int(y)) => {
            let out = ia
                .iter()
                .zip(&ib)
                .map(|(&i, &j)| {
                    let (p, q) = (x[i], y[j]);
                    match op {
                        Binary::Add => p.checked_add(q),
                        Binary::Sub => p.checked_sub(q),
                        Binary::Mul => p.checked_mul(q),
                        Binary::Div if q == 0 => None,
                        Binary::Div => p.checked_div(q),
                        Binary::Max => Some(p.max(q)),
                        Binary::Min => Some(p.min(q)),
                        Binary::Pow => None,
                    }
                    .ok_or_else(|| match op {
                        Binary::Div if y[j] == 0 => "integer division by zero".to_string(),
                        Binary::Pow => "pow needs float operands".to_string(),
                        _ => "integer overflow".to_string(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Tensor::int(a.elem, &shape, out).map_err(|e| format!("integer overflow: {e}"))
        }
        _ => Err("operands must both be plain floats or both integers".into()),
    }
}

/// Which elementwise unary operation.
#[derive(Copy, Clone)]
pub enum Unary {
    /// −x
    Neg,
    /// eˣ
    Exp,
    /// tanh
    Tanh,
    /// max(x, 0)
    Relu,
    /// x·σ(x)
    Silu,
    /// GELU
    Gelu(GeluApprox),
    /// √x
    Sqrt,
    /// 1/x
    Reciprocal,
    /// erf
    Erf,
    /// σ(x) = 1/(1 + e^−x)
    Sigmoid,
    /// |x|
    Abs,
    /// nearest integer, ties to even
    Round,
}

/// erf(x) to about 1e-15 relative error, from the Maclaurin series for
/// |x| < 2.5 and the continued fraction of erfc beyond (both classical).
pub fn erf(x: f64) -> f64 {
    let ax = x.abs();
    if ax < 2.5 {
        let mut term = x;
        let mut sum = x;
        let x2 = x * x;
        for n in 1..200 {
            term *= -x2 / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc(x) = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
        let mut f = 0.0;
        for k in (1..60).rev() {
            f = (k as f64 / 2.0) / (ax + f);
        }
        let erfc = (-ax * ax).exp() / std::f64::consts::PI.sqrt() / (ax + f);
        (1.0 - erfc).copysign(x)
    }
}

pub fn unary(op: Unary, a: &Tensor) -> KResult {
    match &a.data {
        Data::Int(v) => {
            let out = v
                .iter()
                .map(|&x| match op {
                    Unary::Neg => x.checked_neg().ok_or("integer overflow"),
                    Unary::Relu => Ok(x.max(0)),
                    Unary::Abs => x.checked_abs().ok_or("integer overflow"),
                    _ => Err("this op needs a float operand"),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Tensor::int(a.elem, &a.shape, out).map_err(|e| format!("integer overflow: {e}"))
        }
        Data::F32(v) => {
            let out = v
                .iter()
                .map(|&x| match op {
                    Unary::Neg => -x,
                    Unary::Exp => x.exp(),
                    Unary::Tanh => x.tanh(),
                    Unary::Relu => x.max(0.0),
                    Unary::Silu => x / (1.0 + (-x).exp()),
                    Unary::Gelu(GeluApprox::Tanh) => {
                        let c = (2.0f32 / std::f32::consts::PI).sqrt();
                        0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
                    }
                    Unary::Gelu(GeluApprox::Erf) => (0.5 * x as f64 * (1.0 + erf(x as f64 / std::f64::consts::SQRT_2))) as f32,
                    Unary::Sqrt => x.sqrt(),
                    Unary::Reciprocal => 1.0 / x,
                    Unary::Erf => erf(x as f64) as f32,
                    Unary::Sigmoid => (1.0 / (1.0 + (-(x as f64)).exp())) as f32,
                    Unary::Abs => x.abs(),
                    Unary::Round => x.round_ties_even(),
                })
                .collect();
            Ok(Tensor::float(a.elem, &a.shape, out))
        }
        Data::Encoded(..) => Err("operand is encoded".into()),
    }
}

/// Splits a shape around an axis: (outer count, axis size, inner count).
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}

pub fn softmax(a: &Tensor, at: &attrs::Softmax) -> KResult {
    let x = floats(a)?;
    let axis = norm_axis(at.axis, a.shape.len());
    let (outer, n, inner) = around(&a.shape, axis);
    let mut out = vec![0f32; x.len()];
    for o in 0..outer {
        for i in 0..inner {
            let idx = |k: usize| (o * n + k) * inner + i;
            let max = (0..n).map(|k| x[idx(k)]).fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = (0..n).map(|k| ((x[idx(k)] - max) as f64).exp()).sum();
            for k in 0..n {
                out[idx(k)] = (((x[idx(k)] - max) as f64).exp() / sum) as f32;
            }
        }
    }
    Ok(Tensor::float(a.elem, &a.shape, out))
}

pub fn rmsnorm(a: &Tensor, w: &Tensor, eps: f64) -> KResult {
    let (x, w) = (floats(a)?, floats(w)?);
    let d = *a.shape.last().ok_or("rank 0")?;
    let mut out = vec![0f32; x.len()];
    for (row, o) in x.chunks(d.max(1)).zip(out.chunks_mut(d.max(1))) {
        let ms: f64 = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / d as f64;
        let r = 1.0 / (ms + eps).sqrt();
        for k in 0..d {
            o[k] = ((row[k] as f64 * r) as f32) * w[k];
        }
    }
    Ok(Tensor::float(a.elem, &a.shape, out))
}

pub fn layernorm(a: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> KResult {
    let (x, w, b) = (floats(a)?, floats(w)?, floats(b)?);
    let d = *a.shape.last().ok_or("rank 0")?;
    let mut out = vec![0f32; x.len()];
    for (row, o) in x.chunks(d.max(1)).zip(out.chunks_mut(d.max(1))) {
        let mean: f64 = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var: f64 = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        let r = 1.0 / (var + eps).sqrt();
        for k in 0..d {
            o[k] = (((row[k] as f64 - mean) * r) as f32) * w[k] + b[k];
        }
    }
    Ok(Tensor::float(a.elem, &a.shape, out))
}

pub fn rope(a: &Tensor, pos: &Tensor, at: &attrs::Rope) -> KResult {
    let x = floats(a)?;
    let pos = scalar(pos)?;
    let (s, h, d) = (a.shape[0], a.shape[1], a.shape[2]);
    let dims = if at.dims == 0 { d } else { at.dims as usize };
    let mut out = x.to_vec();
    for i in 0..s {
        let p = (pos + i as i64) as f64;
        for head in 0..h {
            let base = (i * h + head) * d;
            for j in 0..dims / 2 {
                let theta = p * at.base.powf(-2.0 * j as f64 / dims as f64);
                let (sin, cos) = theta.sin_cos();
                let (i0, i1) = match at.mode {
                    RopeMode::Neox => (base + j, base + j + dims / 2),
                    RopeMode::Norm => (base + 2 * j, base + 2 * j + 1),
                };
                let (x0, x1) = (x[i0] as f64, x[i1] as f64);
                out[i0] = (x0 * cos - x1 * sin) as f32;
                out[i1] = (x0 * sin + x1 * cos) as f32;
            }
        }
    }
    Ok(Tensor::float(a.elem, &a.shape, out))
}

/// For every output element of a (batched) matrix product, the flat indices
/// of the lhs and rhs elements it sums over, in order: the one statement of
/// the product's geometry, shared by the float and integer forms.
fn matmul_terms(a: &[usize], b: &[usize], transpose_b: bool, mut element: impl FnMut(&mut dyn Iterator<Item = (usize, usize)>) -> Result<(), String>) -> Result<Vec<usize>, String> {
    let r = a.len();
    let (m, k) = (a[r - 2], a[r - 1]);
    let br = b.len();
    let n = if transpose_b { b[br - 2] } else { b[br - 1] };
    let batch: usize = a[..r - 2].iter().product();
    let b_batched = br == r && br > 2;
    for bi in 0..batch {
        let (xo, wo) = (bi * m * k, if b_batched { bi * k * n } else { 0 });
        for i in 0..m {
            for j in 0..n {
                let mut terms = (0..k).map(|kk| (xo + i * k + kk, if transpose_b { wo + j * k + kk } else { wo + kk * n + j }));
                element(&mut terms)?;
            }
        }
    }
    let mut shape = a[..r - 1].to_vec();
    shape.push(n);
    Ok(shape)
}

pub fn matmul(a: &Tensor, b: &Tensor, transpose_b: bool) -> KResult {
    if let (Some(x), Some(w)) = (a.as_int(), b.as_int()) {
        // Integers: exact i64 sums, each checked to fit the i32 result.
        let mut out = Vec::new();
        let shape = matmul_terms(&a.shape, &b.shape, transpose_b, |terms| {
            let mut acc = 0i64;
            for (i, j) in terms {
                acc = x[i].checked_mul(w[j]).and_then(|p| acc.checked_add(p)).ok_or("integer matmul overflows i64")?;
            }
            out.push(acc);
            Ok(())
        })?;
        return Tensor::int(ElemType::I32, &shape, out).map_err(|e| format!("integer matmul result: {e}"));
    }
    let (x, w) = (floats(a)?, floats(b)?);
    let mut out = Vec::new();
    let shape = matmul_terms(&a.shape, &b.shape, transpose_b, |terms| {
        out.push(terms.map(|(i, j)| x[i] as f64 * w[j] as f64).sum::<f64>() as f32);
        Ok(())
    })?;
    Ok(Tensor::float(a.elem, &shape, out))
}

pub fn transpose(a: &Tensor, perm: &[i64]) -> KResult {
    let shape: Vec<usize> = perm.iter().map(|&p| a.shape[p as usize]).collect();
    let in_strides = strides(&a.shape);
    let total = a.numel();
    let mut idx = vec![0usize; shape.len()];
    let mut src = Vec::with_capacity(total);
    for _ in 0..total {
        src.push(idx.iter().zip(perm).map(|(&i, &p)| i * in_strides[p as usize]).sum::<usize>());
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(gather_flat(a, &src, shape))
}

/// A tensor of the elements of `a` at flat indices `src`, with a new shape.
fn gather_flat(a: &Tensor, src: &[usize], shape: Vec<usize>) -> Tensor {
    let data = match &a.data {
        Data::F32(v) => Data::F32(src.iter().map(|&i| v[i]).collect()),
        Data::Int(v) => Data::Int(src.iter().map(|&i| v[i]).collect()),
        Data::Encoded(..) => unreachable!("rules reject encoded operands of layout ops"),
    };
    Tensor { elem: a.elem, shape, data }
}

pub fn concat(parts: &[&Tensor], axis: i64) -> KResult {
    let first = parts[0];
    let axis = norm_axis(axis, first.shape.len());
    let outer: usize = first.shape[..axis].iter().product();
    let mut shape = first.shape.clone();
    shape[axis] = parts.iter().map(|p| p.shape[axis]).sum();
    let mut src: Vec<(usize, usize)> = Vec::new();
    for o in 0..outer {
        for (pi, p) in parts.iter().enumerate() {
            let chunk: usize = p.shape[axis..].iter().product();
            src.extend((0..chunk).map(|k| (pi, o * chunk + k)));
        }
    }
    let data = match &first.data {
        Data::F32(_) => Data::F32(src.iter().map(|&(p, i)| parts[p].as_f32().map_or(0.0, |v| v[i])).collect()),
        Data::Int(_) => Data::Int(src.iter().map(|&(p, i)| parts[p].as_int().map_or(0, |v| v[i])).collect()),
        Data::Encoded(..) => return Err("operand is encoded".into()),
    };
    Ok(Tensor { elem: first.elem, shape, data })
}

pub fn slice(a: &Tensor, at: &attrs::Slice) -> KResult {
    let axis = norm_axis(at.axis, a.shape.len());
    let (start, end) = (at.start as usize, at.end as usize);
    if end > a.shape[axis] {
        return Err(format!("slice end {end} is past dimension size {}", a.shape[axis]));
    }
    let (outer, n, inner) = around(&a.shape, axis);
    let src: Vec<usize> = (0..outer).flat_map(|o| (start..end).flat_map(move |k| (0..inner).map(move |i| (o * n + k) * inner + i))).collect();
    let mut shape = a.shape.clone();
    shape[axis] = end - start;
    Ok(gather_flat(a, &src, shape))
}

pub fn reduce(a: &Tensor, at: &attrs::Reduce) -> KResult {
    let axis = norm_axis(at.axis, a.shape.len());
    let (outer, n, inner) = around(&a.shape, axis);
    let mut shape = a.shape.clone();
    if at.keepdim {
        shape[axis] = 1;
    } else {
        shape.remove(axis);
    }
    // Integers reduce exactly (in i128): f64 would round i64 values above 2^53.
    if let Data::Int(v) = &a.data {
        if matches!(at.kind, ReduceKind::Mean) {
            return Err("mean of integers is not exact; cast to a float type first".into());
        }
        let mut out = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            for i in 0..inner {
                let it = (0..n).map(|k| v[(o * n + k) * inner + i] as i128);
                let r = match at.kind {
                    ReduceKind::Max => it.max().unwrap_or(i64::MIN as i128),
                    _ => it.sum::<i128>(),
                };
                out.push(i64::try_from(r).map_err(|_| format!("integer overflow: {r} does not fit {}", a.elem))?);
            }
        }
        return Tensor::int(a.elem, &shape, out).map_err(|e| format!("integer overflow: {e}"));
    }
    let vals = a.to_f64().ok_or("operand is encoded")?;
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let it = (0..n).map(|k| vals[(o * n + k) * inner + i]);
            out.push(match at.kind {
                ReduceKind::Sum => it.sum::<f64>(),
                ReduceKind::Mean => it.sum::<f64>() / n as f64,
                ReduceKind::Max => it.fold(f64::NEG_INFINITY, f64::max),
            });
        }
    }
    Ok(Tensor::float(a.elem, &shape, out.into_iter().map(|v| v as f32).collect()))
}

pub fn cast(a: &Tensor, to: ElemType) -> KResult {
    match &a.data {
        Data::F32(v) if to.is_float() => Ok(Tensor::float(to, &a.shape, v.clone())),
        Data::F32(v) => {
            let (lo, hi) = to.int_range().ok_or("bad cast target")?;
            // `as` truncates toward zero and saturates; NaN becomes 0.
            Tensor::int(to, &a.shape, v.iter().map(|&x| (x as i64).clamp(lo, hi)).collect())
        }
        // Round once, to the target type: rounding to f32 first double-rounds
        // to bf16 above 2^24 (2^25 + 2^17 + 1 would become 2^25, not 2^25 + 2^18).
        Data::Int(v) if to.is_float() => {
            let round = |x: i64| if to == ElemType::F32 { x as f32 } else { flexc_ir::weights::f64_to_f32_round_odd(x as f64) };
            Ok(Tensor::float(to, &a.shape, v.iter().map(|&x| round(x)).collect()))
        }
        Data::Int(v) => {
            let (lo, hi) = to.int_range().ok_or("bad cast target")?;
            Tensor::int(to, &a.shape, v.iter().map(|&x| x.clamp(lo, hi)).collect())
        }
        Data::Encoded(..) => Err("operand is encoded".into()),
    }
}

pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, pos: &Tensor, at: &attrs::Attention) -> KResult {
    let (qd, kd, vd) = (floats(q)?, floats(k)?, floats(v)?);
    let pos = scalar(pos)?;
    if pos < 0 {
        return Err(format!("attention position {pos} is negative"));
    }
    let pos = pos as usize;
    let (s, hq, d) = (q.shape[0], q.shape[1], q.shape[2]);
    let (t, hk, dv) = (k.shape[0], k.shape[1], v.shape[2]);
    let group = hq / hk;
    let valid = t.min(pos + s);
    let mut out = vec![0f32; s * hq * dv];
    for i in 0..s {
        let p = pos + i;
        for h in 0..hq {
            let kh = h / group;
            let visible: Vec<usize> = (0..valid)
                .filter(|&j| at.bidirectional || j <= p)
                .filter(|&j| at.window <= 0 || (p as i64 - j as i64) < at.window)
                .collect();
            let scores: Vec<f64> = visible
                .iter()
                .map(|&j| {
                    let dot: f64 = (0..d).map(|c| qd[(i * hq + h) * d + c] as f64 * kd[(j * hk + kh) * d + c] as f64).sum();
                    let x = dot * at.scale;
                    if at.softcap > 0.0 { at.softcap * (x / at.softcap).tanh() } else { x }
                })
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|&x| (x - max).exp()).collect();
            let sum: f64 = weights.iter().sum();
            for c in 0..dv {
                let acc: f64 = visible.iter().zip(&weights).map(|(&j, &w)| w * vd[(j * hk + kh) * dv + c] as f64).sum();
                // No visible key gives 0; NaN anywhere (a score, a value) stays NaN.
                out[(i * hq + h) * dv + c] = if sum == 0.0 { 0.0 } else { (acc / sum) as f32 };
            }
        }
    }
    Ok(Tensor::float(q.elem, &[s, hq, dv], out))
}

pub fn cache_write(cache: &Tensor, x: &Tensor, pos: &Tensor) -> KResult {
    let pos = scalar(pos)?;
    let (cap, n) = (cache.shape[0], x.shape[0]);
    if pos < 0 || pos as usize + n > cap {
        return Err(format!("cache write of {n} rows at position {pos} overflows the capacity {cap}"));
    }
    let row: usize = cache.shape[1..].iter().product();
    let at = pos as usize * row;
    let mut out = cache.clone();
    match (&mut out.data, &x.data) {
        (Data::F32(c), Data::F32(v)) => c[at..at + v.len()].copy_from_slice(v),
        (Data::Int(c), Data::Int(v)) => c[at..at + v.len()].copy_from_slice(v),
        _ => return Err("cache and rows must be plain tensors of one kind".into()),
    }
    if let Data::F32(c) = &mut out.data {
        c[at..at + n * row].iter_mut().for_each(|v| *v = round_to(cache.elem, *v));
    }
    Ok(out)
}

/// `kern.lut_precompute`: per group of 4 values of the last axis, the 16
/// sums `T[idx] = Σ_i (bit_i(idx) ? +x_i : −x_i)`, exact in f32.
pub fn lut_tables(a: &Tensor) -> KResult {
    let x = floats(a)?;
    let k = *a.shape.last().ok_or("x has no axes")?;
    if k % 4 != 0 {
        return Err(format!("the last axis ({k}) is not a multiple of 4"));
    }
    let mut out = Vec::with_capacity(x.len() * 4);
    for g in x.chunks_exact(4) {
        out.extend((0..16).map(|idx| g.iter().enumerate().map(|(i, &v)| if idx >> i & 1 == 1 { v } else { -v }).sum::<f32>()));
    }
    let mut shape = a.shape[..a.shape.len() - 1].to_vec();
    shape.extend([k / 4, 16]);
    Ok(Tensor::f32(&shape, out))
}

/// The activations behind LUT tables: `x_i = (T[2^i] − T[0]) / 2`, the
/// inverse of [`lut_tables`] (so a LUT GEMM's oracle is the plain product).
pub fn lut_activations(t: &Tensor) -> KResult {
    let v = floats(t)?;
    let r = t.shape.len();
    if r < 2 || t.shape[r - 1] != 16 {
        return Err(format!("tables must be [..., k/4, 16], got {:?}", t.shape));
    }
    let x = v.chunks_exact(16).flat_map(|g| (0..4).map(move |i| (g[1 << i] - g[0]) / 2.0)).collect();
    let mut shape = t.shape[..r - 2].to_vec();
    shape.push(t.shape[r - 2] * 4);
    Ok(Tensor::f32(&shape, x))
}
