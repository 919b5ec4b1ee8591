//! The reference interpreter: executes any verified function, op by op.
//!
//! It is the oracle every other backend is checked against, and the engine
//! of last resort for calibration, so it favours clarity over speed: scalar
//! loops, f64 accumulation, and a check of every result shape against the
//! type the IR declared (binding symbolic dimensions as it meets them).
//! Weights are read from the module's weight table once and shared.

pub mod kernels;
pub mod logic;
pub mod tensor;

use flexc_ir::dfg::ValueDef;
use flexc_ir::types::{Dim, ElemType, Encoding, TensorType};
use flexc_ir::{FuncId, Module, OpAttrs, Value, WeightId};
use kernels::{Binary, Unary};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
pub use tensor::{Data, Tensor};

/// A failure while executing.
#[derive(Debug, thiserror::Error)]
#[error("in @{func}{}: {message}", op.as_ref().map(|o| format!(", {o}")).unwrap_or_default())]
pub struct ExecError {
    /// The function.
    pub func: String,
    /// The op, as `%name = dialect.op`.
    pub op: Option<String>,
    /// What went wrong.
    pub message: String,
}

/// Executes functions of one module.
///
/// Values computed only from weights and constants (a dequantized weight, a
/// folded scale) do not depend on the inputs, so each is computed once and
/// kept for every later run of the same function.
pub struct Interpreter<'m> {
    module: &'m Module,
    weights: HashMap<WeightId, Arc<Tensor>>,
    weight_only: HashMap<(FuncId, Value), Arc<Tensor>>,
    observer: Option<Box<Observer<'m>>>,
}

/// A hook called before each input-dependent op executes, with the function,
/// the op and its operand values (calibration records activations this way).
/// Ops computed only from weights and constants are not reported.
pub type Observer<'m> = dyn FnMut(&flexc_ir::Func, flexc_ir::Op, &[Arc<Tensor>]) + 'm;

impl<'m> Interpreter<'m> {
    /// An interpreter over a verified module.
    pub fn new(module: &'m Module) -> Interpreter<'m> {
        Interpreter { module, weights: HashMap::new(), weight_only: HashMap::new(), observer: None }
    }

    /// Installs (or removes) the operand observer.
    pub fn set_observer(&mut self, observer: Option<Box<Observer<'m>>>) {
        self.observer = observer;
    }

    /// Runs a function by name on the given inputs.
    pub fn run(&mut self, func: &str, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ExecError> {
        let id = self.module.func(func).ok_or_else(|| ExecError {
            func: func.to_string(),
            op: None,
            message: format!("no such function (the module has: {})", self.module.funcs.values().map(|f| format!("@{}", f.name)).collect::<Vec<_>>().join(", ")),
        })?;
        self.run_id(id, inputs)
    }

    /// Runs a function by id on the given inputs.
    pub fn run_id(&mut self, id: FuncId, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ExecError> {
        let f = &self.module.funcs[id];
        let fail = |op: Option<String>, message: String| ExecError { func: f.name.clone(), op, message };
        if inputs.len() != f.params.len() {
            return Err(fail(None, format!("expected {} inputs, got {}", f.params.len(), inputs.len())));
        }
        let mut syms: HashMap<Arc<str>, usize> = HashMap::new();
        let mut env: HashMap<Value, Arc<Tensor>> = HashMap::new();
        for (i, (t, &p)) in inputs.into_iter().zip(&f.params).enumerate() {
            check_type(&t, f.dfg.ty(p), &mut syms).map_err(|m| fail(None, format!("input {i}: {m}")))?;
            env.insert(p, Arc::new(t));
        }
        // The last layout position reading each value, so memory is freed early.
        let mut last_use: HashMap<Value, usize> = HashMap::new();
        for (i, &op) in f.layout.iter().enumerate() {
            for &a in &f.dfg.ops[op].args {
                last_use.insert(a, i);
            }
        }
        for &r in &f.returns {
            last_use.insert(r, usize::MAX);
        }
        let mut input_free: HashSet<Value> = HashSet::new();
        for (i, &op) in f.layout.iter().enumerate() {
            let data = &f.dfg.ops[op];
            // A result whose type has a symbolic dimension depends on the
            // call's bindings (`tensor.iota : i64[seq]`), so it is never cached.
            let weight_only = data.args.iter().all(|a| input_free.contains(a)) && f.dfg.ty(data.result).shape.iter().all(|d| matches!(d, Dim::Fixed(_)));
            if weight_only {
                input_free.insert(data.result);
                if let Some(t) = self.weight_only.get(&(id, data.result)) {
                    env.insert(data.result, t.clone());
                    continue;
                }
            }
            let describe = || {
                let name = f.dfg.values[data.result].name.clone().unwrap_or_else(|| data.result.to_string().trim_start_matches('%').to_string());
                format!("%{name} = {}", data.attrs.opcode().mnemonic())
            };
            let args: Vec<Arc<Tensor>> = data.args.iter().map(|a| env[a].clone()).collect();
            if !weight_only {
                if let Some(obs) = self.observer.as_mut() {
                    obs(f, op, &args);
                }
            }
            let declared = f.dfg.ty(data.result);
            let out = self.exec(&data.attrs, &args, declared, &syms).map_err(|m| fail(Some(describe()), m))?;
            check_type(&out, declared, &mut syms).map_err(|m| fail(Some(describe()), format!("result: {m}")))?;
            let out = Arc::new(out);
            if weight_only {
                self.weight_only.insert((id, data.result), out.clone());
            }
            env.insert(data.result, out);
            for a in &data.args {
                if last_use.get(a) == Some(&i) && !matches!(f.dfg.values[*a].def, ValueDef::Param(_)) {
                    env.remove(a);
                }
            }
        }
        Ok(f.returns.iter().map(|r| Arc::unwrap_or_clone(env[r].clone())).collect())
    }

    fn weight(&mut self, name: &str, ty: &TensorType) -> Result<Arc<Tensor>, String> {
        let id = self.module.weights.lookup(name).ok_or_else(|| format!("unknown weight @{name}"))?;
        if let Some(t) = self.weights.get(&id) {
            return Ok(t.clone());
        }
        let bytes = self.module.weights.bytes(id).map_err(|e| e.to_string())?;
        let shape = concrete(ty, &HashMap::new())?;
        let t = Arc::new(from_storage(ty, &shape, &bytes)?);
        self.weights.insert(id, t.clone());
        Ok(t)
    }

    fn exec(&mut self, attrs: &OpAttrs, args: &[Arc<Tensor>], declared: &TensorType, syms: &HashMap<Arc<str>, usize>) -> Result<Tensor, String> {
        let a = |i: usize| args[i].as_ref();
        Ok(match attrs {
            OpAttrs::Weight(w) => return self.weight(&w.name.0, declared).map(Arc::unwrap_or_clone),
            OpAttrs::Constant(c) => {
                let shape = concrete(declared, syms)?;
                let bytes = flexc_ir::weights::dense_bytes(&c.value, declared.elem);
                from_storage(declared, &shape, &bytes)?
            }
            OpAttrs::Matmul(m) => kernels::matmul(a(0), a(1), m.transpose_b)?,
            OpAttrs::Add(_) => kernels::binary(Binary::Add, a(0), a(1))?,
            OpAttrs::Sub(_) => kernels::binary(Binary::Sub, a(0), a(1))?,
            OpAttrs::Mul(_) => kernels::binary(Binary::Mul, a(0), a(1))?,
            OpAttrs::Div(_) => kernels::binary(Binary::Div, a(0), a(1))?,
            OpAttrs::Neg(_) => kernels::unary(Unary::Neg, a(0))?,
            OpAttrs::Exp(_) => kernels::unary(Unary::Exp, a(0))?,
            OpAttrs::Tanh(_) => kernels::unary(Unary::Tanh, a(0))?,
            OpAttrs::Relu(_) => kernels::unary(Unary::Relu, a(0))?,
            OpAttrs::Silu(_) => kernels::unary(Unary::Silu, a(0))?,
            OpAttrs::Gelu(g) => kernels::unary(Unary::Gelu(g.approx), a(0))?,
            OpAttrs::Sqrt(_) => kernels::unary(Unary::Sqrt, a(0))?,
            OpAttrs::Reciprocal(_) => kernels::unary(Unary::Reciprocal, a(0))?,
            OpAttrs::Erf(_) => kernels::unary(Unary::Erf, a(0))?,
            OpAttrs::Sigmoid(_) => kernels::unary(Unary::Sigmoid, a(0))?,
            OpAttrs::Abs(_) => kernels::unary(Unary::Abs, a(0))?,
            OpAttrs::Round(_) => kernels::unary(Unary::Round, a(0))?,
            OpAttrs::Pow(_) => kernels::binary(Binary::Pow, a(0), a(1))?,
            OpAttrs::Max(_) => kernels::binary(Binary::Max, a(0), a(1))?,
            OpAttrs::Min(_) => kernels::binary(Binary::Min, a(0), a(1))?,
            OpAttrs::Compare(c) => logic::compare(c.pred, a(0), a(1))?,
            OpAttrs::And(_) => logic::logic(logic::Logic::And, a(0), a(1))?,
            OpAttrs::Or(_) => logic::logic(logic::Logic::Or, a(0), a(1))?,
            OpAttrs::Not(_) => logic::not(a(0))?,
            OpAttrs::Isnan(_) => logic::isnan(a(0))?,
            OpAttrs::Where(_) => logic::select(a(0), a(1), a(2))?,
            OpAttrs::Iota(io) => {
                let shape = concrete(declared, syms)?;
                let axis = if io.axis < 0 { io.axis + shape.len() as i64 } else { io.axis } as usize;
                logic::iota(declared.elem, &shape, axis)?
            }
            OpAttrs::Expand(_) => logic::expand(a(0), &concrete(declared, syms)?)?,
            OpAttrs::Softmax(s) => kernels::softmax(a(0), s)?,
            OpAttrs::Rmsnorm(r) => kernels::rmsnorm(a(0), a(1), r.eps)?,
            OpAttrs::Layernorm(l) => kernels::layernorm(a(0), a(1), a(2), l.eps)?,
            OpAttrs::Rope(r) => kernels::rope(a(0), a(1), r)?,
            OpAttrs::Gather(_) => gather(a(0), a(1))?,
            OpAttrs::Reshape(_) => {
                let shape = concrete_reshape(declared, a(0).numel(), syms)?;
                Tensor { shape, ..a(0).clone() }
            }
            OpAttrs::Transpose(t) => kernels::transpose(a(0), &t.perm)?,
            OpAttrs::Concat(c) => kernels::concat(&args.iter().map(|t| t.as_ref()).collect::<Vec<_>>(), c.axis)?,
            OpAttrs::Slice(s) => kernels::slice(a(0), s)?,
            OpAttrs::Reduce(r) => kernels::reduce(a(0), r)?,
            OpAttrs::Cast(_) => kernels::cast(a(0), declared.elem)?,
            OpAttrs::Attention(at) => kernels::attention(a(0), a(1), a(2), a(3), at)?,
            OpAttrs::CacheWrite(_) => kernels::cache_write(a(0), a(1), a(2))?,
            OpAttrs::Quantize(q) => quantize(a(0), q.encoding)?,
            OpAttrs::Dequantize(_) => dequantize(a(0))?,
            OpAttrs::Mpgemm(m) => kernels::matmul(a(0), &dequantize(a(1))?, m.transpose_b)?,
            OpAttrs::LutPrecompute(_) => kernels::lut_tables(a(0))?,
            OpAttrs::LutGemm(_) => kernels::matmul(&kernels::lut_activations(a(0))?, &dequantize(a(1))?, true)?,
            OpAttrs::ShiftaddGemm(_) | OpAttrs::SparseGemm(_) => kernels::matmul(a(0), &dequantize(a(1))?, true)?,
            OpAttrs::DenseGemm(_) => match a(1).data {
                Data::Encoded(..) => kernels::matmul(a(0), &dequantize(a(1))?, true)?,
                _ => kernels::matmul(a(0), a(1), true)?,
            },
            OpAttrs::Tile(_) => a(0).clone(),
        })
    }
}

/// Checks a tensor against a declared type, binding symbolic dimensions.
fn check_type(t: &Tensor, ty: &TensorType, syms: &mut HashMap<Arc<str>, usize>) -> Result<(), String> {
    let enc = match &t.data {
        Data::Encoded(e, _) => Some(*e),
        _ => None,
    };
    if t.elem != ty.elem || enc != ty.encoding || t.shape.len() != ty.rank() {
        return Err(format!("expected {ty}, got {}{:?}", t.elem, t.shape));
    }
    for (&n, d) in t.shape.iter().zip(&ty.shape) {
        match d {
            Dim::Fixed(k) if *k as usize != n => return Err(format!("expected {ty}, got shape {:?}", t.shape)),
            Dim::Sym(s) => match syms.get(s) {
                Some(&bound) if bound != n => return Err(format!("symbol {s} is {bound} but this dimension is {n}")),
                Some(_) => {}
                None => {
                    syms.insert(s.clone(), n);
                }
            },
            _ => {}
        }
    }
    Ok(())
}

fn concrete(ty: &TensorType, syms: &HashMap<Arc<str>, usize>) -> Result<Vec<usize>, String> {
    ty.shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => Ok(*n as usize),
            Dim::Sym(s) => syms.get(s).copied().ok_or_else(|| format!("symbol {s} is not bound")),
        })
        .collect()
}

/// A reshape's concrete shape; at most one unbound symbol takes what is left.
fn concrete_reshape(ty: &TensorType, numel: usize, syms: &HashMap<Arc<str>, usize>) -> Result<Vec<usize>, String> {
    let known: usize = ty.shape.iter().filter_map(|d| match d {
        Dim::Fixed(n) => Some(*n as usize),
        Dim::Sym(s) => syms.get(s).copied(),
    }).product();
    let unbound = ty.shape.iter().filter(|d| matches!(d, Dim::Sym(s) if !syms.contains_key(s))).count();
    let shape: Vec<usize> = ty.shape.iter().map(|d| match d {
        Dim::Fixed(n) => *n as usize,
        Dim::Sym(s) => syms.get(s).copied().unwrap_or(if known == 0 { 0 } else { numel / known }),
    }).collect();
    if unbound > 1 || shape.iter().product::<usize>() != numel {
        return Err(format!("cannot reshape {numel} elements to {ty}"));
    }
    Ok(shape)
}

/// Decodes plain little-endian storage (or wraps encoded bytes).
fn from_storage(ty: &TensorType, shape: &[usize], bytes: &[u8]) -> Result<Tensor, String> {
    if let Some(enc) = ty.encoding {
        return Ok(Tensor { elem: ty.elem, shape: shape.to_vec(), data: Data::Encoded(enc, Arc::from(bytes)) });
    }
    let n: usize = shape.iter().product();
    let w = ty.elem.storage_bytes();
    if bytes.len() != n * w {
        return Err(format!("{ty} needs {} bytes, got {}", n * w, bytes.len()));
    }
    let word = |i: usize| &bytes[i * w..(i + 1) * w];
    Ok(match ty.elem {
        ElemType::F32 => Tensor::f32(shape, (0..n).map(|i| f32::from_le_bytes(word(i).try_into().unwrap_or_default())).collect()),
        ElemType::F16 => Tensor::float(ty.elem, shape, (0..n).map(|i| half::f16::from_le_bytes([word(i)[0], word(i)[1]]).to_f32()).collect()),
        ElemType::BF16 => Tensor::float(ty.elem, shape, (0..n).map(|i| half::bf16::from_le_bytes([word(i)[0], word(i)[1]]).to_f32()).collect()),
        e => {
            let vals = (0..n)
                .map(|i| {
                    let b = word(i);
                    let mut full = [0u8; 8];
                    full[..w].copy_from_slice(b);
                    let raw = i64::from_le_bytes(full);
                    // Sign-extend signed types from their storage width.
                    let bits = 8 * w as u32;
                    let signed = e.int_range().is_some_and(|(lo, _)| lo < 0);
                    if signed && bits < 64 { (raw << (64 - bits)) >> (64 - bits) } else { raw }
                })
                .collect();
            Tensor::int(e, shape, vals)?
        }
    })
}


fn dequantize(t: &Tensor) -> Result<Tensor, String> {
    let Data::Encoded(enc, bytes) = &t.data else { return Err("operand is not encoded".into()) };
    let mut out = vec![0f32; t.numel()];
    enc.decode(&t.shape, bytes, &mut out)?;
    Ok(Tensor::float(t.elem, &t.shape, out))
}

fn quantize(t: &Tensor, enc: Encoding) -> Result<Tensor, String> {
    let x = t.as_f32().ok_or("operand must be a plain float tensor")?;
    let bytes = enc.encode(&t.shape, x)?;
    Ok(Tensor { elem: t.elem, shape: t.shape.clone(), data: Data::Encoded(enc, bytes.into()) })
}

fn gather(table: &Tensor, ids_t: &Tensor) -> Result<Tensor, String> {
    let ids = ids_t.as_int().ok_or("ids must be integers")?;
    let (vocab, d) = (table.shape[0], table.shape[1]);
    let row = |id: i64| usize::try_from(id).ok().filter(|&i| i < vocab).ok_or_else(|| format!("id {id} is outside the table (0..{vocab})"));
    let mut shape = ids_t.shape.clone();
    shape.push(d);
    // The type rule accepts a table of any plain element type: integer rows
    // are copied like float ones.
    if let Data::Int(v) = &table.data {
        let mut out = Vec::with_capacity(ids.len() * d);
        for &id in ids {
            let r = row(id)?;
            out.extend_from_slice(&v[r * d..(r + 1) * d]);
        }
        return Tensor::int(table.elem, &shape, out);
    }
    let mut out = vec![0f32; ids.len() * d];
    for (dst, &id) in out.chunks_mut(d.max(1)).zip(ids) {
        let id = row(id)?;
        match &table.data {
            Data::F32(v) => dst.copy_from_slice(&v[id * d..(id + 1) * d]),
            Data::Encoded(enc, bytes) => {
                let rb = enc.storage(&[d as u64])? as usize;
                flexc_ir::quant::decode(*enc, &bytes[id * rb..(id + 1) * rb], dst)?;
            }
            Data::Int(_) => unreachable!("integer tables are handled above"),
        }
    }
    Ok(Tensor::float(table.elem, &shape, out))
}
