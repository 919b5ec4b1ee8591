//! Finding the residual stream `rotate` turns: from the token-embedding
//! gather, through every `tensor.add` of a linear layer's output (the
//! *writers*: attention output and FFN down projections), to every
//! `tensor.rmsnorm` and the linear layers that read it (the *readers*:
//! q/k/v, gate/up, and the LM head after the final norm).
//!
//! The stream can be turned by an orthogonal `Q` without changing the
//! model's outputs only when nothing else touches it: RMS normalisation
//! commutes with `Q` once its weight is folded into the readers, adds of two
//! turned vectors stay turned, and linear layers absorb `Q` on their input or
//! output side. Anything else on the stream (a post-norm, a scale, a returned
//! hidden state, a weight read elsewhere) is an error naming the op, so the
//! pass never rotates a model it cannot rotate exactly.

use flexc_ir::{FuncId, Module, Op, OpAttrs, Value};
use std::collections::{HashMap, HashSet};

/// A linear layer reading the normalised stream.
#[derive(Clone, Debug)]
pub struct Reader {
    /// Its weight `[out, width]`.
    pub weight: String,
    /// The RMSNorm weight folded into it.
    pub norm: String,
    /// The matmul (to re-point a tied head at its own copy).
    pub matmul: Op,
}

/// The residual stream of `@forward` and the weights that touch it.
#[derive(Clone, Debug)]
pub struct Stream {
    /// The function.
    pub func: FuncId,
    /// The gathered token-embedding table `[vocab, width]`.
    pub embedding: String,
    /// The stream's width.
    pub width: usize,
    /// The readers, in program order.
    pub readers: Vec<Reader>,
    /// The writers' weights `[width, in]`, in program order.
    pub writers: Vec<String>,
    /// The RMSNorm weights on the stream.
    pub norms: Vec<String>,
}

/// The weight a value is read from, through `quant.dequantize` / `tensor.cast`.
fn weight_of(m: &Module, f: &flexc_ir::Func, mut v: Value) -> Option<String> {
    loop {
        let def = f.dfg.def_op(v)?;
        match &f.dfg.ops[def].attrs {
            OpAttrs::Dequantize(_) | OpAttrs::Cast(_) => v = f.dfg.ops[def].args[0],
            OpAttrs::Weight(w) => return m.weights.lookup(&w.name.0).map(|_| w.name.0.clone()),
            _ => return None,
        }
    }
}

/// A weight's fixed shape.
fn shape(m: &Module, name: &str) -> Vec<u64> {
    m.weights.lookup(name).and_then(|id| m.weights.get(id).ty.fixed_shape()).unwrap_or_default()
}

/// Finds the stream of `@forward` (module docs), or says why it cannot be rotated.
pub fn find(m: &Module) -> Result<Stream, String> {
    let fid = m.func("forward").ok_or("rotate: the module has no @forward")?;
    let f = &m.funcs[fid];
    let here = |op: Op| -> String {
        let d = &f.dfg.ops[op];
        format!("{} (result {})", d.attrs.opcode().mnemonic(), d.result)
    };
    let mut users: HashMap<Value, Vec<Op>> = HashMap::new();
    for &op in &f.layout {
        for &a in &f.dfg.ops[op].args {
            users.entry(a).or_default().push(op);
        }
    }
    let users_of = |v: Value| users.get(&v).cloned().unwrap_or_default();
    let gathers: Vec<Op> = f.layout.iter().copied().filter(|&op| matches!(f.dfg.ops[op].attrs, OpAttrs::Gather(_)) && weight_of(m, f, f.dfg.ops[op].args[0]).is_some()).collect();
    let [gather] = gathers[..] else {
        return Err(format!("rotate: @forward gathers from {} weight tables; the residual stream starts at exactly one token-embedding gather", gathers.len()));
    };
    let embedding = weight_of(m, f, f.dfg.ops[gather].args[0]).unwrap_or_default();
    let es = shape(m, &embedding);
    let [_, width] = es[..] else {
        return Err(format!("rotate: the embedding table @{embedding} is not a matrix"));
    };
    let width = width as usize;
    let linear = |op: Op, input: Value| -> Option<String> {
        let d = &f.dfg.ops[op];
        let OpAttrs::Matmul(mm) = &d.attrs else { return None };
        (mm.transpose_b && d.args[0] == input && d.args[1] != input).then(|| weight_of(m, f, d.args[1])).flatten()
    };
    let (mut readers, mut writers, mut norms) = (Vec::new(), Vec::new(), Vec::new());
    let mut consumers: HashSet<Op> = HashSet::from([gather]);
    let mut work = vec![f.dfg.ops[gather].result];
    let mut seen = HashSet::new();
    while let Some(r) = work.pop() {
        if !seen.insert(r) {
            continue;
        }
        if f.returns.contains(&r) {
            return Err("rotate: @forward returns a residual-stream value (a hidden state), which would come out rotated".into());
        }
        for u in users_of(r) {
            let d = &f.dfg.ops[u];
            match &d.attrs {
                OpAttrs::Rmsnorm(_) if d.args[0] == r => {
                    let g = weight_of(m, f, d.args[1]).filter(|g| shape(m, g) == [width as u64]).ok_or_else(|| format!("rotate: {} has no [{width}] weight to fold", here(u)))?;
                    let nv = d.result;
                    if f.returns.contains(&nv) {
                        return Err(format!("rotate: @forward returns the output of {}", here(u)));
                    }
                    for reader in users_of(nv) {
                        let w = linear(reader, nv).ok_or_else(|| format!("rotate: the output of {} feeds {}; only linear layers may read the normalised stream", here(u), here(reader)))?;
                        if shape(m, &w).get(1) != Some(&(width as u64)) {
                            return Err(format!("rotate: @{w} ({}) does not read {width} channels", here(reader)));
                        }
                        if readers.iter().any(|x: &Reader| x.weight == w && x.norm != g) {
                            return Err(format!("rotate: @{w} reads two differently weighted norms"));
                        }
                        consumers.insert(reader);
                        readers.push(Reader { weight: w, norm: g.clone(), matmul: reader });
                    }
                    consumers.insert(u);
                    if !norms.contains(&g) {
                        norms.push(g);
                    }
                }
                OpAttrs::Add(_) => {
                    let other = if d.args[0] == r { d.args[1] } else { d.args[0] };
                    let (def, w) = f
                        .dfg
                        .def_op(other)
                        .filter(|_| other != r)
                        .and_then(|o| linear(o, f.dfg.ops[o].args[0]).map(|w| (o, w)))
                        .ok_or_else(|| format!("rotate: {} adds to the residual stream a value that is not a linear layer's output", here(u)))?;
                    if users_of(other).len() != 1 || f.returns.contains(&other) {
                        return Err(format!("rotate: the output of {} is used besides the residual add", here(def)));
                    }
                    if shape(m, &w).first() != Some(&(width as u64)) {
                        return Err(format!("rotate: @{w} ({}) does not write {width} channels", here(def)));
                    }
                    consumers.insert(def);
                    consumers.insert(u);
                    if !writers.contains(&w) {
                        writers.push(w);
                    }
                    work.push(d.result);
                }
                _ => return Err(format!("rotate: the residual stream feeds {}; only tensor.rmsnorm read by linear layers and tensor.add of a linear layer's output can be rotated", here(u))),
            }
        }
    }
    // Every weight that is turned must be read only where the stream is.
    let touched: HashSet<&str> = readers.iter().map(|r| r.weight.as_str()).chain(writers.iter().map(String::as_str)).chain(norms.iter().map(String::as_str)).chain([embedding.as_str()]).collect();
    for (id, g) in m.funcs.iter() {
        for &op in &g.layout {
            let OpAttrs::Weight(w) = &g.dfg.ops[op].attrs else { continue };
            if !touched.contains(w.name.0.as_str()) {
                continue;
            }
            if id != fid {
                return Err(format!("rotate: @{} is also read by @{}", w.name.0, g.name));
            }
            let mut frontier = vec![g.dfg.ops[op].result];
            while let Some(v) = frontier.pop() {
                for u in users_of(v) {
                    match &f.dfg.ops[u].attrs {
                        OpAttrs::Dequantize(_) | OpAttrs::Cast(_) => frontier.push(f.dfg.ops[u].result),
                        _ if consumers.contains(&u) => {}
                        _ => return Err(format!("rotate: @{} is also read by {}", w.name.0, here(u))),
                    }
                }
            }
        }
    }
    if readers.is_empty() {
        return Err("rotate: no linear layer reads the residual stream".into());
    }
    Ok(Stream { func: fid, embedding, width, readers, writers, norms })
}
