//! Quantized ONNX ops: QuantizeLinear / DequantizeLinear (per tensor, per
//! axis, blocked), DynamicQuantizeLinear, MatMulInteger and ONNX Runtime's
//! `com.microsoft.MatMulNBits`.
//!
//! MatMulNBits stores `B` as `[N, K/block, block·bits/8]` codes, LSB first,
//! with one scale (and zero point, default 2^(bits−1)) per row and block:
//! exactly flexc's `#gq<bits, group = block, zero = true>` layout except that
//! `#gq` keeps its scale in f16. When every scale is exactly an f16 the
//! weight becomes a `#gq` weight (repacked, value for value identical) read
//! through `quant.dequantize`, so the low-bit kernels apply; otherwise the
//! codes are dequantized by IR arithmetic with the f32 scales (exact).

use super::cx::{Cx, Val};
use super::node::Node;
use super::shape;
use super::tensor::{CData, Const, SymInt};
use flexc_ir::attrs;
use flexc_ir::ops::ReduceKind;
use flexc_ir::quant::lowbit::GqParams;
use flexc_ir::types::{Dim, ElemType, Encoding, TensorType};
use flexc_ir::weights::{WeightData, WeightSource};
use flexc_ir::Span;
use std::sync::Arc;

type R<T> = Result<T, String>;

fn scalar(elem: ElemType, v: f64) -> Val {
    let data = if elem.is_float() { CData::F(vec![v]) } else { CData::I(vec![SymInt::N(v as i64)]) };
    Val::C(Arc::new(Const { elem, shape: vec![], data }))
}

fn to_f32(cx: &mut Cx, v: &Val) -> R<Val> {
    let ty = cx.ty(v);
    if ty.elem == ElemType::F32 {
        return Ok(v.clone());
    }
    cx.emit(attrs::Cast {}, std::slice::from_ref(v), Some(TensorType { elem: ElemType::F32, ..ty }))
}

/// Reshapes a per-axis (or blocked) scale / zero point so it broadcasts
/// against `x` (rank `rank`) along `axis`; blocked ones are repeated
/// `block` times along the axis.
fn along(cx: &mut Cx, s: &Val, rank: usize, axis: i64, block: i64, xshape: &[Dim]) -> R<Val> {
    let st = cx.ty(s);
    if st.rank() == 0 || (st.rank() == 1 && st.shape[0] == Dim::Fixed(1)) {
        return shape::reshape(cx, s, vec![]);
    }
    let ax = if axis < 0 { axis + rank as i64 } else { axis } as usize;
    if ax >= rank {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    if block > 0 {
        // Blocked: s has x's shape with the axis divided by the block size.
        if st.rank() != rank {
            return Err(format!("a blocked scale of type {st} for rank {rank}"));
        }
        let n = st.shape[ax].fixed().ok_or("a symbolic blocked axis")?;
        let mut s5 = st.shape.clone();
        s5.insert(ax + 1, Dim::Fixed(1));
        let r = shape::reshape(cx, s, s5.clone())?;
        s5[ax + 1] = Dim::Fixed(block as u64);
        let e = shape::expand(cx, &r, &s5.iter().map(SymInt::of_dim).collect::<Vec<_>>())?;
        let mut flat = st.shape.clone();
        flat[ax] = Dim::Fixed(n * block as u64);
        let v = shape::reshape(cx, &e, flat.clone())?;
        if flat[ax] != xshape[ax] {
            let end = xshape[ax].fixed().ok_or("a symbolic blocked axis")? as i64;
            return cx.emit(attrs::Slice { axis: ax as i64, start: 0, end }, &[v], None);
        }
        return Ok(v);
    }
    if st.rank() != 1 {
        return Err(format!("a per-axis scale must be 1-D, got {st}"));
    }
    let mut s2 = vec![Dim::Fixed(1); rank];
    s2[ax] = st.shape[0].clone();
    shape::reshape(cx, s, s2)
}

/// `DequantizeLinear`: `(x − zero_point) · scale`.
pub fn dequantize_linear(cx: &mut Cx, nd: &Node) -> R<Val> {
    let x = nd.input(0)?;
    let xt = cx.ty(&x);
    let (axis, block) = (nd.int("axis", 1), nd.int("block_size", 0));
    let scale = nd.input(1)?;
    let out_elem = cx.ty(&scale).elem;
    let s = along(cx, &scale, xt.rank(), axis, block, &xt.shape)?;
    let s = to_f32(cx, &s)?;
    let mut v = to_f32(cx, &x)?;
    if let Some(zp) = nd.opt(2) {
        let z = along(cx, &zp, xt.rank(), axis, block, &xt.shape)?;
        let z = to_f32(cx, &z)?;
        v = cx.emit(attrs::Sub {}, &[v, z], None)?;
    }
    let y = cx.emit(attrs::Mul {}, &[v, s], None)?;
    if out_elem == ElemType::F32 {
        return Ok(y);
    }
    let ty = cx.ty(&y);
    cx.emit(attrs::Cast {}, &[y], Some(TensorType { elem: out_elem, ..ty }))
}

/// `round(x / scale) + zero_point`, saturated to `elem` (the cast saturates).
fn quantize_to(cx: &mut Cx, x: Val, s: Val, z: Option<Val>, elem: ElemType) -> R<Val> {
    let x = to_f32(cx, &x)?;
    let s = to_f32(cx, &s)?;
    let q = cx.emit(attrs::Div {}, &[x, s], None)?;
    let mut q = cx.emit(attrs::Round {}, &[q], None)?;
    if let Some(z) = z {
        let z = to_f32(cx, &z)?;
        q = cx.emit(attrs::Add {}, &[q, z], None)?;
    }
    let ty = cx.ty(&q);
    cx.emit(attrs::Cast {}, &[q], Some(TensorType { elem, ..ty }))
}

/// `QuantizeLinear`: `saturate(round(x / scale) + zero_point)`.
pub fn quantize_linear(cx: &mut Cx, nd: &Node) -> R<Val> {
    let x = nd.input(0)?;
    let xt = cx.ty(&x);
    let (axis, block) = (nd.int("axis", 1), nd.int("block_size", 0));
    let s = along(cx, &nd.input(1)?, xt.rank(), axis, block, &xt.shape)?;
    let (z, elem) = match nd.opt(2) {
        Some(zp) => {
            let e = cx.ty(&zp).elem;
            (Some(along(cx, &zp, xt.rank(), axis, block, &xt.shape)?), e)
        }
        None => (None, if nd.has("output_dtype") { super::tensor::elem_of(nd.int("output_dtype", 2) as i32)? } else { ElemType::U8 }),
    };
    if !matches!(elem, ElemType::U8 | ElemType::I8 | ElemType::I16 | ElemType::U4 | ElemType::I4) {
        return Err(format!("quantizing to {elem} is not supported"));
    }
    if nd.int("saturate", 1) == 0 {
        return Err("saturate = 0 is not supported".into());
    }
    quantize_to(cx, x, s, z, elem)
}

/// `DynamicQuantizeLinear`: u8 codes with a scale and zero point from the
/// range of `x` widened to include 0.
pub fn dynamic_quantize_linear(cx: &mut Cx, nd: &Node) -> R<Vec<Val>> {
    let x = to_f32(cx, &nd.input(0)?)?;
    let rank = cx.ty(&x).rank();
    let all = |cx: &mut Cx, v: Val, neg: bool| -> R<Val> {
        let mut v = if neg { cx.emit(attrs::Neg {}, &[v], None)? } else { v };
        for a in (0..rank).rev() {
            v = cx.emit(attrs::Reduce { kind: ReduceKind::Max, axis: a as i64, keepdim: false }, &[v], None)?;
        }
        Ok(v)
    };
    let zero = scalar(ElemType::F32, 0.0);
    let hi = all(cx, x.clone(), false)?;
    let hi = cx.emit(attrs::Max {}, &[hi, zero.clone()], None)?;
    let neg_lo = all(cx, x.clone(), true)?;
    let neg_lo = cx.emit(attrs::Max {}, &[neg_lo, zero.clone()], None)?; // −min(lo, 0)
    let range = cx.emit(attrs::Add {}, &[hi, neg_lo.clone()], None)?;
    let scale = cx.emit(attrs::Div {}, &[range, scalar(ElemType::F32, 255.0)], None)?;
    // zero point = saturate(round(−lo / scale)) as u8
    let zf = cx.emit(attrs::Div {}, &[neg_lo, scale.clone()], None)?;
    let zf = cx.emit(attrs::Round {}, &[zf], None)?;
    let zt = cx.ty(&zf);
    let zp = cx.emit(attrs::Cast {}, &[zf.clone()], Some(TensorType { elem: ElemType::U8, ..zt }))?;
    let y = quantize_to(cx, x, scale.clone(), Some(zf), ElemType::U8)?;
    Ok(vec![y, scale, zp])
}

/// `MatMulInteger`: `(A − a_zp) · (B − b_zp)` exactly, as i32.
pub fn matmul_integer(cx: &mut Cx, nd: &Node) -> R<Val> {
    let widen = |cx: &mut Cx, v: Val, zp: Option<Val>, b_side: bool| -> R<Val> {
        let ty = cx.ty(&v);
        let w = cx.emit(attrs::Cast {}, &[v], Some(TensorType { elem: ElemType::I32, ..ty.clone() }))?;
        let Some(zp) = zp else { return Ok(w) };
        let zt = cx.ty(&zp);
        // A's zero point is per row (axis −2 … a scalar or [M]); B's per column.
        let z = if zt.rank() == 1 && zt.shape[0] != Dim::Fixed(1) {
            let r = ty.rank();
            let mut s = vec![Dim::Fixed(1); r];
            s[if b_side { r - 1 } else { r - 2 }] = zt.shape[0].clone();
            shape::reshape(cx, &zp, s)?
        } else {
            shape::reshape(cx, &zp, vec![])?
        };
        let zt = cx.ty(&z);
        let z = cx.emit(attrs::Cast {}, &[z], Some(TensorType { elem: ElemType::I32, ..zt }))?;
        cx.emit(attrs::Sub {}, &[w, z], None)
    };
    let a = widen(cx, nd.input(0)?, nd.opt(2), false)?;
    let b = widen(cx, nd.input(1)?, nd.opt(3), true)?;
    super::ops::matmul(cx, &a, &b)
}

/// `com.microsoft.MatMulNBits`: `A · dequantize(B)ᵀ (+ bias)`.
pub fn matmul_nbits(cx: &mut Cx, nd: &Node) -> R<Val> {
    let (k, n, bits, block) = (nd.int("K", 0), nd.int("N", 0), nd.int("bits", 4), nd.int("block_size", 0));
    if k <= 0 || n <= 0 || block < 16 || block & (block - 1) != 0 || !(2..=8).contains(&bits) {
        return Err(format!("K = {k}, N = {n}, bits = {bits}, block_size = {block} are not valid"));
    }
    if nd.opt(4).is_some() {
        return Err("g_idx (act-order) is not supported".into());
    }
    let a = nd.input(0)?;
    let blocks = (k + block - 1) / block;
    let blob = block * bits / 8;
    let b = nd.input(1)?;
    let bt = cx.ty(&b);
    if bt.elem != ElemType::U8 || bt.shape != [Dim::Fixed(n as u64), Dim::Fixed(blocks as u64), Dim::Fixed(blob as u64)] {
        return Err(format!("B of type {bt}, expected u8[{n}, {blocks}, {blob}]"));
    }
    let codes = packed_bytes(&b)?;
    let scales = values(&nd.input(2)?, "scales")?;
    if scales.len() != (n * blocks) as usize {
        return Err(format!("{} scales for {n} × {blocks} blocks", scales.len()));
    }
    let mid = 1i64 << (bits - 1);
    let zps: Vec<f64> = match nd.opt(3) {
        None => vec![mid as f64; scales.len()],
        Some(z) if cx.ty(&z).elem == ElemType::U8 => {
            let raw = packed_bytes(&z)?;
            let per_row = ((blocks * bits + 7) / 8) as usize;
            if raw.len() != n as usize * per_row {
                return Err(format!("{} packed zero-point bytes, expected {}", raw.len(), n as usize * per_row));
            }
            (0..(n * blocks) as usize).map(|i| get_bits(&raw[(i / blocks as usize) * per_row..], (i % blocks as usize) * bits as usize, bits as usize) as f64).collect()
        }
        Some(z) => values(&z, "zero_points")?,
    };
    let elem = cx.ty(&a).elem;
    let f16_exact = scales.iter().all(|&s| half::f16::from_f64(s).to_f64() == s);
    let int_zp = zps.iter().all(|&z| z.fract() == 0.0 && (0.0..(1u32 << bits) as f64).contains(&z));
    let gq = bits <= 4 && k % block == 0 && block % 8 == 0 && f16_exact && int_zp;
    let name = super::cx::symbol_name(nd.n.input.get(1).map(String::as_str).unwrap_or("B"));
    let wv = if gq {
        let p = GqParams { bits: bits as u8, group: block as u32, zero: true };
        let mut bytes = Vec::with_capacity((n * blocks) as usize * p.block_bytes());
        for i in 0..(n * blocks) as usize {
            bytes.extend_from_slice(&half::f16::from_f64(scales[i]).to_le_bytes());
            bytes.push(zps[i] as u8);
            let src = &codes[i * blob as usize..(i + 1) * blob as usize];
            // 4-bit codes are already LSB first; narrower ones are re-packed.
            if bits == 4 {
                bytes.extend_from_slice(src);
            } else {
                let mut c = vec![0u8; p.code_bytes()];
                for j in 0..block as usize {
                    let q = get_bits(src, j * bits as usize, bits as usize);
                    set_bits(&mut c, j * bits as usize, q);
                }
                bytes.extend_from_slice(&c);
            }
        }
        let ty = TensorType { shape: vec![Dim::Fixed(n as u64), Dim::Fixed(k as u64)], elem: ElemType::F32, encoding: Some(Encoding::Gq(p)) };
        let w = weight(cx, &name, ty, bytes)?;
        cx.op(attrs::Dequantize {}, &[w], None)?
    } else {
        // Exact: (q − z)·s over [N, K] in f32, computed once (weight-only).
        let mut w = vec![0f32; (n * k) as usize];
        for row in 0..n as usize {
            for col in 0..k as usize {
                let (blk, j) = (col / block as usize, col % block as usize);
                let i = row * blocks as usize + blk;
                let q = get_bits(&codes[i * blob as usize..], j * bits as usize, bits as usize) as f64;
                w[row * k as usize + col] = ((q - zps[i]) * scales[i]) as f32;
            }
        }
        let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
        weight(cx, &name, TensorType::new(ElemType::F32, &[n as u64, k as u64]), bytes)?
    };
    let wv = if elem == ElemType::F32 { wv } else {
        let t = cx.f.dfg.ty(wv).clone();
        cx.op(attrs::Cast {}, &[wv], Some(TensorType { elem, ..t }))?
    };
    let av = cx.ir(&a)?;
    let mut y = Val::Ir(cx.op(attrs::Matmul { transpose_b: true }, &[av, wv], None)?);
    if let Some(bias) = nd.opt(5) {
        y = cx.emit(attrs::Add {}, &[y, bias], None)?;
    }
    Ok(y)
}

fn get_bits(b: &[u8], at: usize, bits: usize) -> u32 {
    (0..bits).map(|i| (((b[(at + i) / 8] >> ((at + i) % 8)) & 1) as u32) << i).sum()
}

fn set_bits(b: &mut [u8], at: usize, v: u32) {
    for i in 0..32 {
        if v >> i == 0 {
            break;
        }
        if (v >> i) & 1 == 1 {
            b[(at + i) / 8] |= 1 << ((at + i) % 8);
        }
    }
}

fn packed_bytes(v: &Val) -> R<Vec<u8>> {
    match v {
        Val::C(c) => c.known_ints().map(|x| x.iter().map(|&b| b as u8).collect()).ok_or_else(|| "symbolic bytes".to_string()),
        Val::W(w) => super::tensor::init_values(w).map(|c| c.known_ints().unwrap_or_default().iter().map(|&b| b as u8).collect()),
        Val::Ir(_) => Err("MatMulNBits weights must be initializers".into()),
    }
}

fn values(v: &Val, what: &str) -> R<Vec<f64>> {
    let c = match v {
        Val::C(c) => (**c).clone(),
        Val::W(w) => super::tensor::init_values(w)?,
        Val::Ir(_) => return Err(format!("{what} must be initializers")),
    };
    c.floats().ok_or_else(|| format!("{what} are symbolic"))
}

fn weight(cx: &mut Cx, name: &str, ty: TensorType, bytes: Vec<u8>) -> R<flexc_ir::Value> {
    let mut sym = name.to_string();
    let mut i = 1;
    while cx.m.weights.lookup(&sym).is_some() {
        sym = format!("{name}.{i}");
        i += 1;
    }
    cx.m.weights.insert(WeightData { name: sym.clone(), ty: ty.clone(), source: WeightSource::Derived(Arc::from(bytes)), span: Span::default() })?;
    cx.op(attrs::Weight { name: flexc_ir::ops::Symbol(sym) }, &[], Some(ty))
}
