//! Runtime tensors of the reference interpreter.
//!
//! Floats of every width are held as `f32` values already rounded to their
//! element type's precision (so an `f16` tensor holds exactly representable
//! f16 values); integers of every width are held as `i64` checked against
//! their type's range; encoded tensors keep their storage bytes untouched.

use flexc_ir::types::{ElemType, Encoding};
use std::sync::Arc;

/// Element storage.
#[derive(Clone, Debug)]
pub enum Data {
    /// Float values (any float element type).
    F32(Vec<f32>),
    /// Integer values (any integer element type).
    Int(Vec<i64>),
    /// Encoded storage bytes.
    Encoded(Encoding, Arc<[u8]>),
}

/// A concrete tensor: element type, shape, data.
#[derive(Clone, Debug)]
pub struct Tensor {
    /// Element type.
    pub elem: ElemType,
    /// Concrete shape.
    pub shape: Vec<usize>,
    /// Elements.
    pub data: Data,
}

/// Rounds an f32 to the precision of a float element type.
pub fn round_to(elem: ElemType, x: f32) -> f32 {
    match elem {
        ElemType::F16 => half::f16::from_f32(x).to_f32(),
        ElemType::BF16 => half::bf16::from_f32(x).to_f32(),
        _ => x,
    }
}

impl Tensor {
    /// An f32 tensor.
    pub fn f32(shape: &[usize], data: Vec<f32>) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor { elem: ElemType::F32, shape: shape.to_vec(), data: Data::F32(data) }
    }

    /// A float tensor of any float type (values are rounded to it).
    pub fn float(elem: ElemType, shape: &[usize], mut data: Vec<f32>) -> Tensor {
        if elem != ElemType::F32 {
            data.iter_mut().for_each(|x| *x = round_to(elem, *x));
        }
        Tensor { elem, shape: shape.to_vec(), data: Data::F32(data) }
    }

    /// An integer tensor; fails if a value does not fit the type.
    pub fn int(elem: ElemType, shape: &[usize], data: Vec<i64>) -> Result<Tensor, String> {
        let (lo, hi) = elem.int_range().ok_or_else(|| format!("{elem} is not an integer type"))?;
        if let Some(v) = data.iter().find(|&&v| v < lo || v > hi) {
            return Err(format!("value {v} does not fit {elem}"));
        }
        Ok(Tensor { elem, shape: shape.to_vec(), data: Data::Int(data) })
    }

    /// A scalar `i32[]`.
    pub fn scalar_i32(v: i32) -> Tensor {
        Tensor { elem: ElemType::I32, shape: vec![], data: Data::Int(vec![v as i64]) }
    }

    /// The element count.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The float values, if this is a plain float tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The integer values, if this is a plain integer tensor.
    pub fn as_int(&self) -> Option<&[i64]> {
        match &self.data {
            Data::Int(v) => Some(v),
            _ => None,
        }
    }

    /// Every element widened to f64 (plain tensors only).
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        match &self.data {
            Data::F32(v) => Some(v.iter().map(|&x| x as f64).collect()),
            Data::Int(v) => Some(v.iter().map(|&x| x as f64).collect()),
            Data::Encoded(..) => None,
        }
    }
}
