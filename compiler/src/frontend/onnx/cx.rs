//! The import context: ONNX values by name, the function and module being
//! built, and emission with constant folding.
//!
//! Every ONNX value is a [`Val`]: an IR value, a folded [`Const`] or a large
//! initializer ([`Init`]) that becomes a weight when first used as data. An
//! op whose operands are all constants is evaluated at import by the
//! reference interpreter (the same semantics the IR gives it), so shape
//! subgraphs, scales and masks computed from constants fold away; anything
//! depending on an input is emitted as IR.

use super::tensor::{CData, Const, Init, SymInt, FOLD_LIMIT};
use flexc_backends::reference::{Data, Interpreter, Tensor};
use flexc_ir::attrs;
use flexc_ir::ops::{Dense, Symbol};
use flexc_ir::types::{Dim, TensorType};
use flexc_ir::weights::WeightData;
use flexc_ir::{Func, Module, OpAttrs, Span, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// One ONNX value during import.
#[derive(Clone, Debug)]
pub enum Val {
    /// Computed at run time.
    Ir(Value),
    /// Known at import.
    C(Arc<Const>),
    /// A large initializer (a weight once used).
    W(Arc<Init>),
}

/// Import state of one graph.
pub struct Cx {
    /// The function being built.
    pub f: Func,
    /// The module (its weight table grows).
    pub m: Module,
    /// Values by ONNX name.
    pub vals: HashMap<String, Val>,
    weight_ops: HashMap<String, Value>,
    used_symbols: HashMap<String, usize>,
}

/// A symbol-safe spelling of an ONNX name (`[A-Za-z0-9_.$-]`).
pub fn symbol_name(s: &str) -> String {
    let t: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || "_.$-".contains(c) { c } else { '_' }).collect();
    if t.is_empty() { "_".into() } else { t }
}

/// A dimension-name-safe spelling (an identifier).
pub fn dim_name(s: &str) -> String {
    let mut t: String = s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if !t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        t.insert(0, 'd');
    }
    t
}

fn fixed(shape: &[usize]) -> Vec<Dim> {
    shape.iter().map(|&d| Dim::Fixed(d as u64)).collect()
}

impl Cx {
    /// A context building `f` into a fresh module.
    pub fn new(f: Func) -> Cx {
        Cx { f, m: Module::default(), vals: HashMap::new(), weight_ops: HashMap::new(), used_symbols: HashMap::new() }
    }

    /// The type of a value.
    pub fn ty(&self, v: &Val) -> TensorType {
        match v {
            Val::Ir(x) => self.f.dfg.ty(*x).clone(),
            Val::C(c) => TensorType { shape: fixed(&c.shape), elem: c.elem, encoding: None },
            Val::W(w) => TensorType { shape: fixed(&w.shape), elem: w.elem, encoding: None },
        }
    }

    /// The value as an IR value: constants become `tensor.constant`,
    /// initializers `tensor.weight` (declared once).
    pub fn ir(&mut self, v: &Val) -> Result<Value, String> {
        match v {
            Val::Ir(x) => Ok(*x),
            Val::C(c) => self.constant(c),
            Val::W(w) => {
                if let Some(&x) = self.weight_ops.get(&w.name) {
                    return Ok(x);
                }
                let base = symbol_name(&w.name);
                let n = self.used_symbols.entry(base.clone()).or_insert(0);
                let sym = if *n == 0 { base.clone() } else { format!("{base}.{n}") };
                *n += 1;
                let ty = self.ty(v);
                self.m.weights.insert(WeightData { name: sym.clone(), ty: ty.clone(), source: w.source.clone(), span: Span::default() })?;
                let x = self.f.append_typed(attrs::Weight { name: Symbol(sym) }, &[], Some(ty))?;
                self.weight_ops.insert(w.name.clone(), x);
                Ok(x)
            }
        }
    }

    fn constant(&mut self, c: &Const) -> Result<Value, String> {
        let value = match &c.data {
            CData::F(v) => Dense::Float(v.clone()),
            CData::I(v) => Dense::Int(
                v.iter()
                    .map(|x| x.n().ok_or_else(|| format!("the size of dimension '{x}' is used as data; flexc binds dimensions only in shapes")))
                    .collect::<Result<_, _>>()?,
            ),
        };
        let ty = TensorType { shape: fixed(&c.shape), elem: c.elem, encoding: None };
        self.f.append_typed(attrs::Constant { value }, &[], Some(ty))
    }

    /// Emits an op over `args`, or folds it when every operand is a known
    /// constant and the result is small.
    pub fn emit(&mut self, a: impl Into<OpAttrs>, args: &[Val], declared: Option<TensorType>) -> Result<Val, String> {
        let a = a.into();
        let known: Option<Vec<Arc<Const>>> = args
            .iter()
            .map(|v| match v {
                Val::C(c) if c.known_ints().is_some() || matches!(c.data, CData::F(_)) => Some(c.clone()),
                _ => None,
            })
            .collect();
        if let Some(cs) = known {
            let cs: Vec<&Const> = cs.iter().map(|c| c.as_ref()).collect();
            let tys: Vec<TensorType> = cs.iter().map(|c| TensorType { shape: fixed(&c.shape), elem: c.elem, encoding: None }).collect();
            let ty = a.infer(&tys.iter().collect::<Vec<_>>(), declared.as_ref())?;
            let small = ty.numel().is_some_and(|n| n as usize <= FOLD_LIMIT);
            if small && !matches!(a, OpAttrs::Weight(_)) {
                return fold(a, &cs, ty).map(|c| Val::C(Arc::new(c)));
            }
        }
        let xs = args.iter().map(|v| self.ir(v)).collect::<Result<Vec<_>, _>>()?;
        Ok(Val::Ir(self.f.append_typed(a, &xs, declared)?))
    }

    /// Emits an op on IR operands.
    pub fn op(&mut self, a: impl Into<OpAttrs>, args: &[Value], declared: Option<TensorType>) -> Result<Value, String> {
        self.f.append_typed(a, args, declared)
    }

    /// The constant of a value, if known at import (weights up to
    /// [`FOLD_LIMIT`] elements are read for it).
    pub fn known(&self, v: &Val) -> Option<Arc<Const>> {
        match v {
            Val::C(c) => Some(c.clone()),
            Val::W(w) if w.shape.iter().product::<usize>() <= FOLD_LIMIT => super::tensor::init_values(w).ok().map(Arc::new),
            _ => None,
        }
    }
}

/// Evaluates one op on constants with the reference interpreter.
fn fold(a: OpAttrs, cs: &[&Const], ty: TensorType) -> Result<Const, String> {
    let mut f = Func::new("fold", &[], vec![ty.clone()]);
    let mut xs = Vec::new();
    for c in cs {
        let value = match &c.data {
            CData::F(v) => Dense::Float(v.clone()),
            CData::I(v) => Dense::Int(v.iter().filter_map(SymInt::n).collect()),
        };
        xs.push(f.append_typed(attrs::Constant { value }, &[], Some(TensorType { shape: fixed(&c.shape), elem: c.elem, encoding: None }))?);
    }
    let r = f.append_typed(a, &xs, Some(ty.clone()))?;
    f.returns = vec![r];
    let mut m = Module::default();
    m.funcs.push(f);
    let mut out = Interpreter::new(&m).run("fold", Vec::new()).map_err(|e| e.message)?;
    let t = out.pop().ok_or("folding produced no value")?;
    Ok(from_tensor(&t))
}

/// A reference-interpreter tensor as a constant.
pub fn from_tensor(t: &Tensor) -> Const {
    let data = match &t.data {
        Data::F32(v) => CData::F(v.iter().map(|&x| x as f64).collect()),
        Data::Int(v) => CData::I(v.iter().map(|&x| SymInt::N(x)).collect()),
        Data::Encoded(..) => CData::F(Vec::new()),
    };
    Const { elem: t.elem, shape: t.shape.clone(), data }
}
