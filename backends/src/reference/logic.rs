//! Reference semantics of the comparison, boolean, selection and shape-making
//! ops (`tensor.compare`, `and`, `or`, `not`, `isnan`, `where`, `iota`,
//! `expand`): booleans are `i1` tensors holding 0 or 1.

use super::kernels::broadcast_shape;
use super::tensor::{Data, Tensor};
use flexc_ir::ops::CmpPred;
use flexc_ir::shape::broadcast_indices;
use flexc_ir::types::ElemType;

type KResult = Result<Tensor, String>;

fn bools(shape: &[usize], v: Vec<i64>) -> KResult {
    Tensor::int(ElemType::I1, shape, v)
}

/// `a pred b` elementwise (numpy broadcasting), as `i1`.
pub fn compare(pred: CmpPred, a: &Tensor, b: &Tensor) -> KResult {
    let shape = broadcast_shape(&a.shape, &b.shape)?;
    let (ia, ib) = (broadcast_indices(&a.shape, &shape), broadcast_indices(&b.shape, &shape));
    let test = |o: Option<std::cmp::Ordering>| -> i64 {
        use std::cmp::Ordering::*;
        let r = match pred {
            CmpPred::Eq => o == Some(Equal),
            CmpPred::Ne => o != Some(Equal),
            CmpPred::Lt => o == Some(Less),
            CmpPred::Le => matches!(o, Some(Less | Equal)),
            CmpPred::Gt => o == Some(Greater),
            CmpPred::Ge => matches!(o, Some(Greater | Equal)),
        };
        r as i64
    };
    let out = match (&a.data, &b.data) {
        (Data::F32(x), Data::F32(y)) => ia.iter().zip(&ib).map(|(&i, &j)| test(x[i].partial_cmp(&y[j]))).collect(),
        (Data::Int(x), Data::Int(y)) => ia.iter().zip(&ib).map(|(&i, &j)| test(Some(x[i].cmp(&y[j])))).collect(),
        _ => return Err("operands must both be plain floats or both integers".into()),
    };
    bools(&shape, out)
}

/// Which boolean combination.
#[derive(Copy, Clone)]
pub enum Logic {
    /// a ∧ b
    And,
    /// a ∨ b
    Or,
}

/// `a op b` over `i1` tensors (numpy broadcasting).
pub fn logic(op: Logic, a: &Tensor, b: &Tensor) -> KResult {
    let (Some(x), Some(y)) = (a.as_int(), b.as_int()) else { return Err("operands must be i1".into()) };
    let shape = broadcast_shape(&a.shape, &b.shape)?;
    let (ia, ib) = (broadcast_indices(&a.shape, &shape), broadcast_indices(&b.shape, &shape));
    let out = ia
        .iter()
        .zip(&ib)
        .map(|(&i, &j)| match op {
            Logic::And => (x[i] != 0 && y[j] != 0) as i64,
            Logic::Or => (x[i] != 0 || y[j] != 0) as i64,
        })
        .collect();
    bools(&shape, out)
}

/// ¬a over an `i1` tensor.
pub fn not(a: &Tensor) -> KResult {
    let x = a.as_int().ok_or("operand must be i1")?;
    bools(&a.shape, x.iter().map(|&v| (v == 0) as i64).collect())
}

/// 1 where a float is NaN.
pub fn isnan(a: &Tensor) -> KResult {
    let x = a.as_f32().ok_or("operand must be a plain float tensor")?;
    bools(&a.shape, x.iter().map(|v| v.is_nan() as i64).collect())
}

/// `cond ? a : b` elementwise, all three broadcast together.
pub fn select(cond: &Tensor, a: &Tensor, b: &Tensor) -> KResult {
    let c = cond.as_int().ok_or("cond must be i1")?;
    let shape = broadcast_shape(&cond.shape, &broadcast_shape(&a.shape, &b.shape)?)?;
    let ic = broadcast_indices(&cond.shape, &shape);
    let (ia, ib) = (broadcast_indices(&a.shape, &shape), broadcast_indices(&b.shape, &shape));
    match (&a.data, &b.data) {
        (Data::F32(x), Data::F32(y)) => {
            let out = (0..ic.len()).map(|k| if c[ic[k]] != 0 { x[ia[k]] } else { y[ib[k]] }).collect();
            Ok(Tensor::float(a.elem, &shape, out))
        }
        (Data::Int(x), Data::Int(y)) => {
            let out = (0..ic.len()).map(|k| if c[ic[k]] != 0 { x[ia[k]] } else { y[ib[k]] }).collect();
            Tensor::int(a.elem, &shape, out)
        }
        _ => Err("a and b must both be plain floats or both integers".into()),
    }
}

/// The index along `axis` of every element of `shape`, as `elem`.
pub fn iota(elem: ElemType, shape: &[usize], axis: usize) -> KResult {
    let n: usize = shape.iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let len = shape[axis];
    let idx = (0..n).map(|k| (k / inner.max(1)) % len.max(1));
    if elem.is_float() {
        Ok(Tensor::float(elem, shape, idx.map(|i| i as f32).collect()))
    } else {
        Tensor::int(elem, shape, idx.map(|i| i as i64).collect())
    }
}

/// `a` broadcast to `shape`.
pub fn expand(a: &Tensor, shape: &[usize]) -> KResult {
    if broadcast_shape(&a.shape, shape)? != shape {
        return Err(format!("{:?} does not broadcast to {shape:?}", a.shape));
    }
    let idx = broadcast_indices(&a.shape, shape);
    Ok(match &a.data {
        Data::F32(x) => Tensor { elem: a.elem, shape: shape.to_vec(), data: Data::F32(idx.iter().map(|&i| x[i]).collect()) },
        Data::Int(x) => Tensor { elem: a.elem, shape: shape.to_vec(), data: Data::Int(idx.iter().map(|&i| x[i]).collect()) },
        Data::Encoded(..) => return Err("operand is encoded".into()),
    })
}
