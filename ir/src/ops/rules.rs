//! Result-type rules, one function per op family, named in the op table.
//!
//! A rule checks its operands and attributes and returns the result type, or
//! a one-line message saying what is wrong. Rules are pure: the verifier and
//! the builder call the same ones. Symbolic dimensions compare by name.

use super::attr::Dense;
use super::attrs;
use super::RuleCx;
use crate::quant::Primitive;
use crate::types::{Dim, ElemType, Encoding, TensorType};

type Rule = Result<TensorType, String>;

fn norm_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!("axis {axis} is out of range for rank {rank}"))
    }
}

fn plain<'a>(t: &'a TensorType, what: &str) -> Result<&'a TensorType, String> {
    match &t.encoding {
        None => Ok(t),
        Some(e) => Err(format!("{what} is encoded ({e}); decode it with quant.dequantize first")),
    }
}

fn float<'a>(t: &'a TensorType, what: &str) -> Result<&'a TensorType, String> {
    plain(t, what)?;
    if t.elem.is_float() {
        Ok(t)
    } else {
        Err(format!("{what} must have a float element type, got {t}"))
    }
}

fn need_declared<'a, A>(cx: &RuleCx<'a, A>, op: &str) -> Result<&'a TensorType, String> {
    cx.declared.ok_or_else(|| format!("'{op}' needs its result type written out"))
}

fn same_elem(a: &TensorType, b: &TensorType) -> Result<(), String> {
    if a.elem == b.elem {
        Ok(())
    } else {
        Err(format!("element types differ: {} vs {}", a.elem, b.elem))
    }
}

fn rank_is(t: &TensorType, rank: usize, what: &str) -> Result<(), String> {
    if t.rank() == rank {
        Ok(())
    } else {
        Err(format!("{what} must have rank {rank}, got {t}"))
    }
}

fn scalar_pos(t: &TensorType) -> Result<(), String> {
    if t.rank() == 0 && t.elem == ElemType::I32 && t.encoding.is_none() {
        Ok(())
    } else {
        Err(format!("pos must be a scalar i32[], got {t}"))
    }
}

/// The result type is the declared one (`tensor.weight`).
pub(super) fn declared(cx: &RuleCx<'_, attrs::Weight>) -> Rule {
    Ok(need_declared(cx, "tensor.weight")?.clone())
}

pub(super) fn constant(cx: &RuleCx<'_, attrs::Constant>) -> Rule {
    let ty = need_declared(cx, "tensor.constant")?;
    check_dense(&cx.attrs.value, ty)?;
    Ok(ty.clone())
}

/// Checks that inline data fits a type: the right kind of values and the
/// right count (storage bytes for encoded types).
pub fn check_dense(value: &Dense, ty: &TensorType) -> Result<(), String> {
    let numel = ty.numel().ok_or_else(|| format!("inline data needs a fixed shape, got {ty}"))?;
    let (kind_ok, expected, kind) = match (&ty.encoding, value) {
        (Some(_), Dense::Bytes(_)) => (true, ty.storage_bytes().unwrap_or(u64::MAX), "bytes"),
        (Some(e), _) => return Err(format!("encoded type ({e}) needs raw bytes: dense<\"0x...\">")),
        (None, Dense::Float(_)) => (ty.elem.is_float(), numel, "values"),
        (None, Dense::Int(_)) => (!ty.elem.is_float(), numel, "values"),
        (None, Dense::Bytes(_)) => (false, numel, "values"),
    };
    if !kind_ok {
        let want = if ty.elem.is_float() { "float values like 1.0" } else { "integer values" };
        return Err(format!("data for {ty} must be {want}"));
    }
    if value.len() as u64 != expected {
        return Err(format!("{ty} needs {expected} {kind}, got {}", value.len()));
    }
    if let (Dense::Int(v), Some((lo, hi))) = (value, ty.elem.int_range()) {
        if let Some(x) = v.iter().find(|&&x| x < lo || x > hi) {
            return Err(format!("value {x} does not fit {} ({lo}..={hi})", ty.elem));
        }
    }
    Ok(())
}

/// Shapes of a matrix product's operands, shared by `tensor.matmul` and `quant.mpgemm`.
fn matmul_shape(lhs: &TensorType, rhs: &TensorType, transpose_b: bool) -> Rule {
    if lhs.rank() < 2 {
        return Err(format!("lhs must have rank >= 2, got {lhs}"));
    }
    if rhs.rank() != 2 && rhs.rank() != lhs.rank() {
        return Err(format!("rhs must have rank 2 or the rank of lhs ({}), got {rhs}", lhs.rank()));
    }
    let lr = lhs.rank();
    let rr = rhs.rank();
    let (rk, rn) = if transpose_b { (&rhs.shape[rr - 1], &rhs.shape[rr - 2]) } else { (&rhs.shape[rr - 2], &rhs.shape[rr - 1]) };
    let k = &lhs.shape[lr - 1];
    if k != rk {
        return Err(format!("contraction sizes differ: lhs has {k}, rhs has {rk} (transpose_b = {transpose_b})"));
    }
    if rr == lr && lhs.shape[..lr - 2] != rhs.shape[..rr - 2] {
        return Err(format!("batch dimensions differ: {lhs} vs {rhs}"));
    }
    let mut shape = lhs.shape[..lr - 1].to_vec();
    shape.push(rn.clone());
    Ok(TensorType { shape, elem: lhs.elem, encoding: None })
}

pub(super) fn matmul(cx: &RuleCx<'_, attrs::Matmul>) -> Rule {
    let (l, r) = (plain(cx.args[0], "lhs")?, plain(cx.args[1], "rhs")?);
    if !l.elem.is_float() && !r.elem.is_float() {
        // Integer operands (i8 x i8 for FlexCiM) accumulate exactly into i32,
        // which the result type must say.
        same_elem(l, r)?;
        let t = matmul_shape(l, r, cx.attrs.transpose_b)?;
        return match cx.declared {
            Some(d) if d.elem == ElemType::I32 => Ok(TensorType { elem: ElemType::I32, ..t }),
            _ => Err(format!("an integer matmul ({} operands) accumulates into i32: declare the result as i32[...]", l.elem)),
        };
    }
    let lhs = float(cx.args[0], "lhs")?;
    let rhs = float(cx.args[1], "rhs")?;
    same_elem(lhs, rhs)?;
    matmul_shape(lhs, rhs, cx.attrs.transpose_b)
}

pub(super) fn broadcast<A>(cx: &RuleCx<'_, A>) -> Rule {
    let a = plain(cx.args[0], "lhs")?;
    let b = plain(cx.args[1], "rhs")?;
    same_elem(a, b)?;
    Ok(a.with_shape(crate::shape::broadcast_shapes(&a.shape, &b.shape)?))
}

pub(super) fn broadcast_float<A>(cx: &RuleCx<'_, A>) -> Rule {
    float(cx.args[0], "lhs")?;
    float(cx.args[1], "rhs")?;
    broadcast(cx)
}

pub(super) fn compare(cx: &RuleCx<'_, attrs::Compare>) -> Rule {
    Ok(TensorType { elem: ElemType::I1, ..broadcast(cx)? })
}

fn boolean<'a>(t: &'a TensorType, what: &str) -> Result<&'a TensorType, String> {
    plain(t, what)?;
    if t.elem == ElemType::I1 { Ok(t) } else { Err(format!("{what} must be i1 (boolean), got {t}")) }
}

pub(super) fn logical<A>(cx: &RuleCx<'_, A>) -> Rule {
    boolean(cx.args[0], "lhs")?;
    boolean(cx.args[1], "rhs")?;
    broadcast(cx)
}

pub(super) fn logical_not(cx: &RuleCx<'_, attrs::Not>) -> Rule {
    Ok(boolean(cx.args[0], "operand")?.clone())
}

pub(super) fn isnan(cx: &RuleCx<'_, attrs::Isnan>) -> Rule {
    Ok(TensorType { elem: ElemType::I1, ..float(cx.args[0], "operand")?.clone() })
}

pub(super) fn select(cx: &RuleCx<'_, attrs::Where>) -> Rule {
    let c = boolean(cx.args[0], "cond")?;
    let (a, b) = (plain(cx.args[1], "a")?, plain(cx.args[2], "b")?);
    same_elem(a, b)?;
    let ab = crate::shape::broadcast_shapes(&a.shape, &b.shape)?;
    Ok(a.with_shape(crate::shape::broadcast_shapes(&c.shape, &ab)?))
}

pub(super) fn iota(cx: &RuleCx<'_, attrs::Iota>) -> Rule {
    let ty = need_declared(cx, "tensor.iota")?;
    plain(ty, "result")?;
    if ty.elem == ElemType::Ternary {
        return Err(format!("tensor.iota cannot produce {ty}"));
    }
    norm_axis(cx.attrs.axis, ty.rank())?;
    Ok(ty.clone())
}

pub(super) fn expand(cx: &RuleCx<'_, attrs::Expand>) -> Rule {
    let x = plain(cx.args[0], "operand")?;
    let ty = need_declared(cx, "tensor.expand")?;
    plain(ty, "result")?;
    same_elem(x, ty)?;
    match crate::shape::broadcast_shapes(&x.shape, &ty.shape) {
        Ok(s) if s == ty.shape => Ok(ty.clone()),
        _ => Err(format!("{x} does not broadcast to {ty}")),
    }
}

pub(super) fn same<A>(cx: &RuleCx<'_, A>) -> Rule {
    Ok(plain(cx.args[0], "operand")?.clone())
}

pub(super) fn same_float<A>(cx: &RuleCx<'_, A>) -> Rule {
    Ok(float(cx.args[0], "operand")?.clone())
}

pub(super) fn softmax(cx: &RuleCx<'_, attrs::Softmax>) -> Rule {
    let x = float(cx.args[0], "operand")?;
    norm_axis(cx.attrs.axis, x.rank())?;
    Ok(x.clone())
}

fn norm_weight(x: &TensorType, w: &TensorType, what: &str) -> Result<(), String> {
    float(w, what)?;
    same_elem(x, w)?;
    match (x.shape.last(), w.shape.as_slice()) {
        (Some(d), [wd]) if d == wd => Ok(()),
        (None, _) => Err("operand must have rank >= 1".into()),
        _ => Err(format!("{what} must be [{}], got {w}", x.shape.last().map(ToString::to_string).unwrap_or_default())),
    }
}

fn check_eps(eps: f64) -> Result<(), String> {
    if eps.is_finite() && eps >= 0.0 {
        Ok(())
    } else {
        Err(format!("eps must be finite and >= 0, got {eps:?}"))
    }
}

pub(super) fn rmsnorm(cx: &RuleCx<'_, attrs::Rmsnorm>) -> Rule {
    let x = float(cx.args[0], "operand")?;
    norm_weight(x, cx.args[1], "weight")?;
    check_eps(cx.attrs.eps)?;
    Ok(x.clone())
}

pub(super) fn layernorm(cx: &RuleCx<'_, attrs::Layernorm>) -> Rule {
    let x = float(cx.args[0], "operand")?;
    norm_weight(x, cx.args[1], "weight")?;
    norm_weight(x, cx.args[2], "bias")?;
    check_eps(cx.attrs.eps)?;
    Ok(x.clone())
}

pub(super) fn rope(cx: &RuleCx<'_, attrs::Rope>) -> Rule {
    let x = float(cx.args[0], "operand")?;
    rank_is(x, 3, "rope operand [seq, heads, head_dim]")?;
    scalar_pos(cx.args[1])?;
    let hd = x.shape[2].fixed().ok_or("head_dim must be a fixed size")?;
    let dims = cx.attrs.dims;
    if dims < 0 || dims as u64 > hd || dims % 2 != 0 || (dims == 0 && hd % 2 != 0) {
        return Err(format!("rope dims must be even and within head_dim {hd}, got {dims}"));
    }
    if !(cx.attrs.base.is_finite() && cx.attrs.base > 0.0) {
        return Err(format!("rope base must be > 0, got {:?}", cx.attrs.base));
    }
    Ok(x.clone())
}

pub(super) fn gather(cx: &RuleCx<'_, attrs::Gather>) -> Rule {
    let table = cx.args[0];
    let ids = plain(cx.args[1], "ids")?;
    rank_is(table, 2, "table")?;
    if table.encoding.is_some_and(|e| !e.row_local()) {
        return Err(format!("table {table} shares its scales across rows: it cannot be gathered row by row"));
    }
    if !matches!(ids.elem, ElemType::I32 | ElemType::I64) {
        return Err(format!("ids must be i32 or i64, got {ids}"));
    }
    let mut shape = ids.shape.clone();
    shape.push(table.shape[1].clone());
    Ok(TensorType { shape, elem: table.elem, encoding: None })
}

/// Checks that two shapes hold the same number of elements; symbolic
/// dimensions must appear on both sides equally often.
fn same_numel(a: &[Dim], b: &[Dim]) -> bool {
    fn split(s: &[Dim]) -> (u128, Vec<&str>) {
        let mut fixed = 1u128;
        let mut syms: Vec<&str> = Vec::new();
        for d in s {
            match d {
                Dim::Fixed(n) => fixed = fixed.saturating_mul(*n as u128),
                Dim::Sym(name) => syms.push(name),
            }
        }
        syms.sort_unstable();
        (fixed, syms)
    }
    split(a) == split(b)
}

pub(super) fn reshape(cx: &RuleCx<'_, attrs::Reshape>) -> Rule {
    let x = plain(cx.args[0], "operand")?;
    let ty = need_declared(cx, "tensor.reshape")?;
    plain(ty, "result")?;
    same_elem(x, ty)?;
    if !same_numel(&x.shape, &ty.shape) {
        return Err(format!("reshape changes the element count: {x} to {ty}"));
    }
    Ok(ty.clone())
}

pub(super) fn transpose(cx: &RuleCx<'_, attrs::Transpose>) -> Rule {
    let x = plain(cx.args[0], "operand")?;
    let perm = &cx.attrs.perm;
    let mut seen = vec![false; x.rank()];
    if perm.len() != x.rank() {
        return Err(format!("perm must have {} entries, got {}", x.rank(), perm.len()));
    }
    for &p in perm {
        match usize::try_from(p).ok().filter(|&p| p < x.rank()) {
            Some(p) if !seen[p] => seen[p] = true,
            _ => return Err(format!("perm {perm:?} is not a permutation of 0..{}", x.rank())),
        }
    }
    Ok(x.with_shape(perm.iter().map(|&p| x.shape[p as usize].clone()).collect()))
}

pub(super) fn concat(cx: &RuleCx<'_, attrs::Concat>) -> Rule {
    let first = plain(cx.args[0], "operand")?;
    let axis = norm_axis(cx.attrs.axis, first.rank())?;
    let mut total = 0u64;
    for (i, t) in cx.args.iter().enumerate() {
        plain(t, "operand")?;
        same_elem(first, t)?;
        if t.rank() != first.rank() {
            return Err(format!("operand {i} has rank {}, expected {}", t.rank(), first.rank()));
        }
        for (d, (a, b)) in first.shape.iter().zip(&t.shape).enumerate() {
            if d != axis && a != b {
                return Err(format!("operand {i} differs in dimension {d}: {b} vs {a}"));
            }
        }
        total += t.shape[axis].fixed().ok_or("concat needs a fixed size along its axis")?;
    }
    let mut shape = first.shape.clone();
    shape[axis] = Dim::Fixed(total);
    Ok(first.with_shape(shape))
}

pub(super) fn slice(cx: &RuleCx<'_, attrs::Slice>) -> Rule {
    let x = plain(cx.args[0], "operand")?;
    let axis = norm_axis(cx.attrs.axis, x.rank())?;
    let (start, end) = (cx.attrs.start, cx.attrs.end);
    let bound = x.shape[axis].fixed().map_or(i64::MAX, |n| n as i64);
    if start < 0 || end < start || end > bound {
        return Err(format!("slice [{start}, {end}) is out of range for dimension {}", x.shape[axis]));
    }
    let mut shape = x.shape.clone();
    shape[axis] = Dim::Fixed((end - start) as u64);
    Ok(x.with_shape(shape))
}

pub(super) fn reduce(cx: &RuleCx<'_, attrs::Reduce>) -> Rule {
    let x = plain(cx.args[0], "operand")?;
    let axis = norm_axis(cx.attrs.axis, x.rank())?;
    let mut shape = x.shape.clone();
    if cx.attrs.keepdim {
        shape[axis] = Dim::Fixed(1);
    } else {
        shape.remove(axis);
    }
    Ok(x.with_shape(shape))
}

pub(super) fn cast(cx: &RuleCx<'_, attrs::Cast>) -> Rule {
    let x = plain(cx.args[0], "operand")?;
    let ty = need_declared(cx, "tensor.cast")?;
    plain(ty, "result")?;
    if ty.shape != x.shape {
        return Err(format!("cast keeps the shape: {x} to {ty}"));
    }
    Ok(ty.clone())
}

pub(super) fn attention(cx: &RuleCx<'_, attrs::Attention>) -> Rule {
    let (q, k, v) = (float(cx.args[0], "q")?, float(cx.args[1], "k")?, float(cx.args[2], "v")?);
    rank_is(q, 3, "q [seq, heads, head_dim]")?;
    rank_is(k, 3, "k [kv_len, kv_heads, head_dim]")?;
    rank_is(v, 3, "v [kv_len, kv_heads, v_dim]")?;
    scalar_pos(cx.args[3])?;
    same_elem(q, k)?;
    same_elem(q, v)?;
    if q.shape[2] != k.shape[2] {
        return Err(format!("q and k head sizes differ: {} vs {}", q.shape[2], k.shape[2]));
    }
    if k.shape[0] != v.shape[0] || k.shape[1] != v.shape[1] {
        return Err(format!("k and v must agree in kv_len and kv_heads: {k} vs {v}"));
    }
    if let (Some(hq), Some(hk)) = (q.shape[1].fixed(), k.shape[1].fixed()) {
        if hk == 0 || hq % hk != 0 {
            return Err(format!("query heads ({hq}) must be a multiple of key heads ({hk})"));
        }
    }
    let a = cx.attrs;
    if a.window < 0 {
        return Err(format!("attention window must be >= 0 (0 for none), got {}", a.window));
    }
    if !(a.softcap.is_finite() && a.softcap >= 0.0) {
        return Err(format!("attention softcap must be finite and >= 0 (0 for none), got {:?}", a.softcap));
    }
    if !a.scale.is_finite() {
        return Err(format!("attention scale must be finite, got {:?}", a.scale));
    }
    Ok(q.with_shape(vec![q.shape[0].clone(), q.shape[1].clone(), v.shape[2].clone()]))
}

pub(super) fn cache_write(cx: &RuleCx<'_, attrs::CacheWrite>) -> Rule {
    let cache = plain(cx.args[0], "cache")?;
    let x = plain(cx.args[1], "x")?;
    scalar_pos(cx.args[2])?;
    same_elem(cache, x)?;
    if cache.rank() == 0 || cache.rank() != x.rank() || cache.shape[1..] != x.shape[1..] {
        return Err(format!("x must be [n, ...] with the cache's trailing dimensions: {x} into {cache}"));
    }
    Ok(cache.clone())
}

pub(super) fn quantize(cx: &RuleCx<'_, attrs::Quantize>) -> Rule {
    let x = float(cx.args[0], "operand")?;
    let enc = cx.attrs.encoding;
    x.shape.last().and_then(Dim::fixed).ok_or("the last dimension must be fixed to quantize")?;
    let ty = TensorType { shape: x.shape.clone(), elem: x.elem, encoding: Some(enc) };
    encoded_shape(&ty)?;
    Ok(ty)
}

/// Checks an encoded type's shape with its scheme: the whole shape when it
/// is fixed; otherwise the last dimension, and encodings that are not
/// row-local (`#bcq` with shared scales) need a fixed shape.
fn encoded_shape(t: &TensorType) -> Result<(), String> {
    let Some(enc) = t.encoding else { return Ok(()) };
    if let Some(shape) = t.fixed_shape() {
        return enc.verify(&shape);
    }
    if !enc.row_local() {
        return Err(format!("{t}: {enc} is not stored row by row and needs a fixed shape"));
    }
    match t.shape.last().and_then(Dim::fixed) {
        Some(last) => enc.verify(&[last]),
        None => Ok(()),
    }
}

pub(super) fn dequantize(cx: &RuleCx<'_, attrs::Dequantize>) -> Rule {
    let x = cx.args[0];
    if x.encoding.is_none() {
        return Err(format!("operand is not encoded: {x}"));
    }
    encoded_shape(x)?;
    Ok(x.decoded())
}

pub(super) fn mpgemm(cx: &RuleCx<'_, attrs::Mpgemm>) -> Rule {
    let x = float(cx.args[0], "x")?;
    let w = cx.args[1];
    if w.encoding.is_none() {
        return Err(format!("w must be encoded (use tensor.matmul for plain weights), got {w}"));
    }
    rank_is(w, 2, "w")?;
    if !cx.attrs.transpose_b {
        return Err("block encodings run along the contraction axis: w must be [n, k] (transpose_b)".into());
    }
    same_elem(x, w)?;
    matmul_shape(x, w, true)
}

// ------------------------------------------------------------------ kern.

/// `w` of a kern GEMM: rank 2 `[n, k]`, the element type of `x`, and an
/// encoding that admits primitive `p` (`what` names the family in the error).
fn kern_weight<'a>(x: &TensorType, w: &'a TensorType, what: &str, p: Primitive) -> Result<&'a TensorType, String> {
    rank_is(w, 2, "w")?;
    same_elem(x, w)?;
    match &w.encoding {
        Some(e) if e.admits(p) => Ok(w),
        _ => Err(format!("w must be {what}, got {w}")),
    }
}

/// Weights a LUT GEMM reads as bit planes (`#gq`, `#ternary`, `#bcq` with
/// per-row scales: the encodings that admit [`Primitive::Lut`]).
pub fn lut_encoding(e: &Encoding) -> bool {
    e.admits(Primitive::Lut)
}

pub(super) fn lut_precompute(cx: &RuleCx<'_, attrs::LutPrecompute>) -> Rule {
    let x = float(cx.args[0], "x")?;
    let g = cx.attrs.act_group;
    if g < 8 || g > 64 || g % 8 != 0 {
        return Err(format!("act_group must be a multiple of 8 in 8..=64, got {g}"));
    }
    let k = x.shape.last().and_then(Dim::fixed).ok_or("the last dimension of x must be fixed")?;
    if k % 4 != 0 {
        return Err(format!("the last dimension of x must be a multiple of 4, got {k}"));
    }
    let mut shape = x.shape[..x.rank() - 1].to_vec();
    shape.extend([Dim::Fixed(k / 4), Dim::Fixed(16)]);
    Ok(TensorType { shape, elem: ElemType::F32, encoding: None })
}

pub(super) fn lut_gemm(cx: &RuleCx<'_, attrs::LutGemm>) -> Rule {
    let t = float(cx.args[0], "tables")?;
    if t.rank() < 3 || t.shape[t.rank() - 1] != Dim::Fixed(16) {
        return Err(format!("tables must be [..., k/4, 16] from kern.lut_precompute, got {t}"));
    }
    let groups = t.shape[t.rank() - 2].fixed().ok_or("tables need a fixed group count")?;
    let x = TensorType { shape: [&t.shape[..t.rank() - 2], &[Dim::Fixed(groups * 4)]].concat(), elem: t.elem, encoding: None };
    let w = kern_weight(&x, cx.args[1], "#gq (1-4 bits), #ternary or #bcq with per-row scales", Primitive::Lut)?;
    matmul_shape(&x, w, true)
}

pub(super) fn shiftadd_gemm(cx: &RuleCx<'_, attrs::ShiftaddGemm>) -> Rule {
    let x = float(cx.args[0], "x")?;
    let w = kern_weight(x, cx.args[1], "#bcq", Primitive::ShiftAdd)?;
    matmul_shape(x, w, true)
}

pub(super) fn sparse_gemm(cx: &RuleCx<'_, attrs::SparseGemm>) -> Rule {
    let x = float(cx.args[0], "x")?;
    let w = kern_weight(x, cx.args[1], "#nm", Primitive::Sparse)?;
    matmul_shape(x, w, true)
}

pub(super) fn dense_gemm(cx: &RuleCx<'_, attrs::DenseGemm>) -> Rule {
    let x = float(cx.args[0], "x")?;
    let w = cx.args[1];
    rank_is(w, 2, "w")?;
    same_elem(x, w)?;
    matmul_shape(x, w, true)
}

pub(super) fn tile(cx: &RuleCx<'_, attrs::Tile>) -> Rule {
    let w = cx.args[0];
    rank_is(w, 2, "w")?;
    let (m, k) = (cx.attrs.m, cx.attrs.k);
    if m < 1 || k < 1 {
        return Err(format!("tile sizes must be positive, got m = {m}, k = {k}"));
    }
    if let Some(e) = &w.encoding
        && k as u64 % e.block_elems() != 0
    {
        return Err(format!("k = {k} must cover whole {e} blocks of {}", e.block_elems()));
    }
    Ok(w.clone())
}
