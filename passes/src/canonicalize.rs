//! `canonicalize`: algebraic identities and folding of small constants.
//!
//! Rewrites (each replaces the op's result; dead ops are dropped after):
//! * `x + (−0) → x`, `(−0) + x → x`, `x − (+0) → x` (exact for every x, even −0;
//!   `x + (+0)` is not: it turns −0 into +0), integer `x ± 0 → x`, `x · 1 → x`, `1 · x → x`, `x / 1 → x`
//!   (only when the result type equals x's, so broadcasting is preserved);
//! * `−(−x) → x`;
//! * `transpose(transpose(x, p), q) → transpose(x, p∘q)`, identity perm → x;
//! * `reshape(reshape(x)) → reshape(x)`, reshape or cast to x's own type → x;
//! * folding: add/sub/mul/div/neg/reshape of `tensor.constant`s with at most
//!   [`FOLD_LIMIT`] elements become one constant, computed exactly as the
//!   reference interpreter does (f32 arithmetic; integers only when the
//!   result fits the type, and never a division by zero). f16/bf16 are not
//!   folded.

use crate::pass::{Changed, Pass, PassCx, PassInfo};
use crate::rewrite::{remove_dead_ops, Renames};
use flexc_ir::attrs;
use flexc_ir::ops::Dense;
use flexc_ir::shape::broadcast_indices;
use flexc_ir::{ElemType, Func, Module, OpAttrs, TensorType, Value};

/// Constants larger than this are left alone.
pub const FOLD_LIMIT: u64 = 4096;

pub(crate) const INFO: PassInfo = PassInfo {
    name: "canonicalize",
    summary: "apply algebraic identities and fold small constants",
    options: &[],
    make: |_| Ok(Box::new(Canonicalize)),
};

struct Canonicalize;

impl Pass for Canonicalize {
    fn name(&self) -> &'static str {
        "canonicalize"
    }

    fn run(&mut self, m: &mut Module, _cx: &mut PassCx) -> Result<Changed, String> {
        let mut changed = false;
        for (_, f) in m.funcs.iter_mut() {
            // One forward walk, linear in the ops: operands are redirected as
            // each op is reached (earlier rewrites are already known), new ops
            // go into a fresh layout just before the op they replace.
            let old = std::mem::take(&mut f.layout);
            let mut layout = Vec::with_capacity(old.len());
            let mut renames = Renames::default();
            for &op in &old {
                renames.apply_to_op(f, op);
                let result = f.dfg.ops[op].result;
                match simplify(f, op)? {
                    Some(Simplified::Existing(v)) => {
                        renames.record(result, v);
                        changed = true;
                    }
                    Some(Simplified::New(attrs, args, ty)) => {
                        let ty = attrs.infer(&f.dfg.arg_types_of(&args), Some(&ty))?;
                        let (new_op, v) = f.dfg.make_op(attrs, &args, ty, None);
                        layout.push(new_op);
                        renames.record(result, v);
                        changed = true;
                    }
                    None => {}
                }
                layout.push(op);
            }
            f.layout = layout;
            renames.apply(f);
            remove_dead_ops(f);
        }
        Ok(Changed::from(changed))
    }
}

enum Simplified {
    Existing(Value),
    New(OpAttrs, Vec<Value>, TensorType),
}

fn constant(f: &Func, v: Value) -> Option<&Dense> {
    match &f.dfg.ops[f.dfg.def_op(v)?].attrs {
        OpAttrs::Constant(c) => Some(&c.value),
        _ => None,
    }
}

fn is_splat(f: &Func, v: Value, x: f64) -> bool {
    match constant(f, v) {
        // Bitwise, so +0.0 and -0.0 differ: only x + (-0.0) is exactly x.
        Some(Dense::Float(vals)) => vals.iter().all(|&a| a.to_bits() == x.to_bits()),
        Some(Dense::Int(vals)) => vals.iter().all(|&a| a as f64 == x),
        _ => false,
    }
}

fn simplify(f: &Func, op: flexc_ir::Op) -> Result<Option<Simplified>, String> {
    let data = &f.dfg.ops[op];
    let ty = f.dfg.ty(data.result);
    let arg = |k: usize| data.args[k];
    let keeps_type = |v: Value| f.dfg.ty(v) == ty;
    if let Some(folded) = fold(f, &data.attrs, &data.args, ty) {
        return Ok(Some(folded));
    }
    Ok(match &data.attrs {
        OpAttrs::Add(_) if is_splat(f, arg(1), -0.0) && keeps_type(arg(0)) => Some(Simplified::Existing(arg(0))),
        OpAttrs::Add(_) if is_splat(f, arg(0), -0.0) && keeps_type(arg(1)) => Some(Simplified::Existing(arg(1))),
        OpAttrs::Sub(_) if is_splat(f, arg(1), 0.0) && keeps_type(arg(0)) => Some(Simplified::Existing(arg(0))),
        OpAttrs::Mul(_) if is_splat(f, arg(1), 1.0) && keeps_type(arg(0)) => Some(Simplified::Existing(arg(0))),
        OpAttrs::Mul(_) if is_splat(f, arg(0), 1.0) && keeps_type(arg(1)) => Some(Simplified::Existing(arg(1))),
        OpAttrs::Div(_) if is_splat(f, arg(1), 1.0) && keeps_type(arg(0)) => Some(Simplified::Existing(arg(0))),
        OpAttrs::Neg(_) => match f.dfg.def_op(arg(0)).map(|o| &f.dfg.ops[o]) {
            Some(inner) if matches!(inner.attrs, OpAttrs::Neg(_)) => Some(Simplified::Existing(inner.args[0])),
            _ => None,
        },
        OpAttrs::Transpose(t) => {
            let identity = t.perm.iter().enumerate().all(|(i, &p)| p == i as i64);
            match f.dfg.def_op(arg(0)).map(|o| &f.dfg.ops[o]) {
                _ if identity => Some(Simplified::Existing(arg(0))),
                Some(inner) => match &inner.attrs {
                    OpAttrs::Transpose(t0) => {
                        // result[i] = inner[t.perm[i]] = x[t0.perm[t.perm[i]]]
                        let perm: Vec<i64> = t.perm.iter().map(|&p| t0.perm[p as usize]).collect();
                        if perm.iter().enumerate().all(|(i, &p)| p == i as i64) {
                            Some(Simplified::Existing(inner.args[0]))
                        } else {
                            Some(Simplified::New(attrs::Transpose { perm }.into(), vec![inner.args[0]], ty.clone()))
                        }
                    }
                    _ => None,
                },
                None => None,
            }
        }
        OpAttrs::Reshape(_) | OpAttrs::Cast(_) if keeps_type(arg(0)) => Some(Simplified::Existing(arg(0))),
        OpAttrs::Reshape(_) => match f.dfg.def_op(arg(0)).map(|o| &f.dfg.ops[o]) {
            Some(inner) if matches!(inner.attrs, OpAttrs::Reshape(_)) => {
                Some(Simplified::New(attrs::Reshape {}.into(), vec![inner.args[0]], ty.clone()))
            }
            _ => None,
        },
        _ => None,
    })
}

/// Folds an op whose operands are all small constants.
fn fold(f: &Func, a: &OpAttrs, args: &[Value], ty: &TensorType) -> Option<Simplified> {
    if !matches!(ty.elem, ElemType::F32) && ty.elem.is_float() || ty.encoding.is_some() || ty.numel()? > FOLD_LIMIT {
        return None;
    }
    let consts: Vec<&Dense> = args.iter().map(|&v| constant(f, v)).collect::<Option<_>>()?;
    let shape = |v: Value| -> Option<Vec<usize>> { f.dfg.ty(v).fixed_shape().map(|s| s.iter().map(|&d| d as usize).collect()) };
    let out_shape: Vec<usize> = ty.fixed_shape()?.iter().map(|&d| d as usize).collect();
    let value = match (a, consts.as_slice()) {
        (OpAttrs::Reshape(_), [c]) => (*c).clone(),
        (OpAttrs::Neg(_), [Dense::Float(x)]) => Dense::Float(x.iter().map(|&v| -(v as f32) as f64).collect()),
        (OpAttrs::Neg(_), [Dense::Int(x)]) => {
            // -(-128) does not fit i8: only fold when every result fits the type.
            let (lo, hi) = ty.elem.int_range()?;
            Dense::Int(x.iter().map(|&v| v.checked_neg().filter(|n| (lo..=hi).contains(n))).collect::<Option<_>>()?)
        }
        (OpAttrs::Add(_) | OpAttrs::Sub(_) | OpAttrs::Mul(_) | OpAttrs::Div(_), [l, r]) => {
            let li = broadcast_indices(&shape(args[0])?, &out_shape);
            let ri = broadcast_indices(&shape(args[1])?, &out_shape);
            match (l, r) {
                (Dense::Float(l), Dense::Float(r)) => Dense::Float(
                    li.iter()
                        .zip(&ri)
                        .map(|(&i, &j)| {
                            let (x, y) = (l[i] as f32, r[j] as f32);
                            (match a {
                                OpAttrs::Add(_) => x + y,
                                OpAttrs::Sub(_) => x - y,
                                OpAttrs::Mul(_) => x * y,
                                _ => x / y,
                            }) as f64
                        })
                        .collect(),
                ),
                (Dense::Int(l), Dense::Int(r)) => {
                    let (lo, hi) = ty.elem.int_range()?;
                    Dense::Int(
                        li.iter()
                            .zip(&ri)
                            .map(|(&i, &j)| {
                                let (x, y) = (l[i], r[j]);
                                let v = match a {
                                    OpAttrs::Add(_) => x.checked_add(y),
                                    OpAttrs::Sub(_) => x.checked_sub(y),
                                    OpAttrs::Mul(_) => x.checked_mul(y),
                                    _ => x.checked_div(y),
                                }?;
                                (lo..=hi).contains(&v).then_some(v)
                            })
                            .collect::<Option<_>>()?,
                    )
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(Simplified::New(attrs::Constant { value }.into(), vec![], ty.clone()))
}
