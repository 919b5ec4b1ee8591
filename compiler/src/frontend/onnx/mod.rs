//! The ONNX frontend: a `.onnx` model graph into one IR function.
//!
//! The protobuf is decoded with the prost types generated from the official
//! `onnx.proto` (see `build.rs`) straight from the memory-mapped file, so
//! initializers stay byte ranges of the file (or of their external data
//! file, bounds-checked) and become weight-table entries without copies.
//! The graph is checked (opsets 13 and later of the default domain, unique
//! value names, every input defined, no cycles) and translated node by node
//! in dependency order ([`ops::translate`]); constant and shape subgraphs
//! fold at import, symbolic dimensions (`dim_param`) become named IR
//! dimensions, and every result type is inferred by the IR's own rules, so
//! a graph without `value_info` imports the same as one with it.
//!
//! The function is `@forward`, with the graph inputs (minus initializers)
//! as parameters and the graph outputs as results. flexc runs one sequence
//! per call: the leading dimension of every input of rank ≥ 2 whose size is
//! symbolic is bound to `OnnxOptions::batch` (0 keeps it symbolic).

pub mod cx;
pub mod node;
pub mod ops;
pub mod quant;
pub mod shape;
pub mod tensor;

/// The types generated from `onnx.proto`.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

use super::builder::ImportError;
use bytes::Bytes;
use cx::{dim_name, Cx, Val};
use flexc_ir::ops::AttrLit;
use flexc_ir::types::{Dim, TensorType};
use flexc_ir::{Func, Module};
use node::Node;
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tensor::FileCx;

/// The oldest default-domain opset flexc imports. Models declare the
/// opset their ops last changed in, so graphs of ops unchanged since opset
/// 7 are read as they are; the ops whose meaning changed since (Softmax
/// before 13, Slice before 10) are refused by their translators.
pub const MIN_OPSET: i64 = 7;
/// The newest default-domain opset flexc knows (onnx 1.23's).
pub const MAX_OPSET: i64 = 28;

/// How to import an ONNX graph.
#[derive(Clone, Debug)]
pub struct OnnxOptions {
    /// The size bound to a symbolic leading (batch) dimension of the inputs; 0 keeps it symbolic.
    pub batch: u64,
    /// Graph inputs given fixed values at import (they become constants and
    /// are no longer parameters), e.g. a shape or axes fed as an input.
    pub bind: Vec<(String, tensor::Const)>,
}

impl Default for OnnxOptions {
    fn default() -> Self {
        OnnxOptions { batch: 1, bind: Vec::new() }
    }
}

/// A decoded `.onnx` file.
#[derive(Debug)]
pub struct OnnxFile {
    /// The file.
    pub path: PathBuf,
    bytes: Bytes,
    /// The model.
    pub model: proto::ModelProto,
}

/// True if the first bytes look like an ONNX `ModelProto` (field 1,
/// `ir_version`, as a varint, comes first in every exporter's output).
pub fn looks_like_onnx(head: &[u8]) -> bool {
    head.first() == Some(&0x08)
}

impl OnnxFile {
    /// Maps and decodes a `.onnx` file.
    pub fn open(path: &Path) -> Result<OnnxFile, ImportError> {
        let err = |message: String| ImportError::Open { file: path.display().to_string(), message };
        let f = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
        // SAFETY: mapped read-only; the file must not change while in use
        // (the same contract as every weight file flexc maps).
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| err(e.to_string()))?;
        Self::from_bytes(path, Bytes::from_owner(map))
    }

    /// Decodes a model held in memory; `path` names it in errors and is
    /// where external data is looked for.
    pub fn from_bytes(path: &Path, bytes: Bytes) -> Result<OnnxFile, ImportError> {
        let model = proto::ModelProto::decode(bytes.clone()).map_err(|e| ImportError::Onnx { file: path.display().to_string(), message: format!("not a valid ONNX model (protobuf): {e}") })?;
        Ok(OnnxFile { path: path.to_path_buf(), bytes, model })
    }

    fn err(&self, message: String) -> ImportError {
        ImportError::Onnx { file: self.path.display().to_string(), message }
    }

    /// The opset of a domain (`""` is the default one).
    pub fn opset(&self, domain: &str) -> Option<i64> {
        self.model.opset_import.iter().find(|o| {
            let d = o.domain.as_deref().unwrap_or("");
            d == domain || (domain.is_empty() && d == "ai.onnx")
        }).and_then(|o| o.version)
    }

    /// Imports the graph into a module with one function, `@forward`.
    pub fn import(&self, opts: &OnnxOptions) -> Result<Module, ImportError> {
        let g = self.model.graph.as_ref().ok_or_else(|| self.err("the model has no graph".into()))?;
        let opset = self.opset("").ok_or_else(|| self.err("the model imports no default-domain opset".into()))?;
        if !(MIN_OPSET..=MAX_OPSET).contains(&opset) {
            return Err(self.err(format!("default-domain opset {opset} is not supported (flexc imports opsets {MIN_OPSET} to {MAX_OPSET})")));
        }
        let fx = FileCx { file: &self.bytes, path: &self.path };
        // Initializers: small ones fold, large ones become weights.
        let mut inits: HashMap<String, Val> = HashMap::new();
        for (i, t) in g.initializer.iter().enumerate() {
            let name = t.name.clone().unwrap_or_default();
            if name.is_empty() {
                return Err(self.err(format!("initializer {i} has no name")));
            }
            let v = tensor::load(&name, t, &fx).map_err(|e| self.err(format!("initializer '{name}': {e}")))?;
            let v = match v {
                Ok(c) => Val::C(Arc::new(c)),
                Err(w) => Val::W(Arc::new(w)),
            };
            if inits.insert(name.clone(), v).is_some() {
                return Err(self.err(format!("initializer '{name}' is defined twice")));
            }
        }
        for (name, c) in &opts.bind {
            inits.insert(name.clone(), Val::C(Arc::new(c.clone())));
        }
        // Parameters: graph inputs that are not initializers.
        let mut params = Vec::new();
        let mut pnames = Vec::new();
        for vi in g.input.iter().filter(|vi| !inits.contains_key(vi.name.as_deref().unwrap_or(""))) {
            let name = vi.name.clone().unwrap_or_default();
            let ty = self.value_type(vi, opts, true).map_err(|e| self.err(format!("graph input '{name}': {e}")))?;
            params.push((Some(cx::symbol_name(&name).replace('-', "_")), ty));
            pnames.push(name);
        }
        let mut cx = Cx::new(Func::new("forward", &params, Vec::new()));
        for (i, n) in pnames.iter().enumerate() {
            let p = cx.f.params[i];
            cx.vals.insert(n.clone(), Val::Ir(p));
        }
        for (k, v) in inits {
            cx.vals.entry(k).or_insert(v);
        }
        // Nodes in dependency order (cycles and undefined inputs are errors).
        let order = self.order(g, &cx.vals.keys().cloned().collect())?;
        for i in order {
            let n = &g.node[i];
            let domain = n.domain.as_deref().unwrap_or("");
            let domain = if domain == "ai.onnx" { "" } else { domain };
            let op = n.op_type.as_deref().unwrap_or("?");
            let v = match domain {
                "" => opset,
                "com.microsoft" => self.opset("com.microsoft").unwrap_or(1),
                d => return Err(self.err(format!("node '{}' ({op}): domain '{d}' is not supported", n.name.as_deref().unwrap_or("")))),
            };
            let where_ = || format!("node '{}' ({}{op}, opset {v})", n.name.as_deref().unwrap_or(""), if domain.is_empty() { String::new() } else { format!("{domain}.") });
            let ins: Vec<Option<Val>> = n.input.iter().map(|s| if s.is_empty() { None } else { cx.vals.get(s).cloned() }).collect();
            let nd = Node { n, ins, opset: v, fx: &fx };
            let outs = ops::translate(&mut cx, domain, &nd).map_err(|e| self.err(format!("{}: {e}", where_())))?;
            if outs.len() < nd.outputs() {
                return Err(self.err(format!("{}: produces {} outputs, the node names {}", where_(), outs.len(), nd.outputs())));
            }
            for (name, v) in n.output.iter().zip(outs) {
                if !name.is_empty() {
                    cx.vals.insert(name.clone(), v);
                }
            }
        }
        // Results.
        if g.output.is_empty() {
            return Err(self.err("the graph has no outputs".into()));
        }
        let mut results = Vec::new();
        for vo in &g.output {
            let name = vo.name.clone().unwrap_or_default();
            let v = cx.vals.get(&name).cloned().ok_or_else(|| self.err(format!("graph output '{name}' is never computed")))?;
            let x = cx.ir(&v).map_err(|e| self.err(format!("graph output '{name}': {e}")))?;
            let got = cx.f.dfg.ty(x).clone();
            if let Ok(want) = self.value_type(vo, opts, false) {
                if !compatible(&want, &got) {
                    return Err(self.err(format!("graph output '{name}' is declared {want} but computes to {got}")));
                }
            }
            results.push(x);
        }
        cx.f.results = results.iter().map(|&r| cx.f.dfg.ty(r).clone()).collect();
        cx.f.returns = results;
        let mut m = cx.m;
        m.funcs.push(cx.f);
        let stem = self.path.file_stem().and_then(|s| s.to_str()).unwrap_or("onnx");
        m.name = Some(super::decoder::module_name(stem));
        m.meta = vec![
            ("arch".into(), AttrLit::Str("onnx".into())),
            ("source".into(), AttrLit::Str(self.path.display().to_string())),
            ("opset".into(), AttrLit::Int(opset)),
            ("producer".into(), AttrLit::Str(format!("{} {}", self.model.producer_name.as_deref().unwrap_or(""), self.model.producer_version.as_deref().unwrap_or("")).trim().to_string())),
            ("inputs".into(), AttrLit::Str(pnames.join(","))),
        ];
        Ok(m)
    }

    /// The IR type of a graph input or output (`dim_param` → named dims).
    fn value_type(&self, vi: &proto::ValueInfoProto, opts: &OnnxOptions, bind_batch: bool) -> Result<TensorType, String> {
        use proto::type_proto::Value as TV;
        let tt = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(TV::TensorType(t)) => t,
            Some(_) => return Err("only tensor inputs and outputs are supported".into()),
            None => return Err("no type".into()),
        };
        let elem = tensor::elem_of(tt.elem_type.unwrap_or(0))?;
        let dims = tt.shape.as_ref().ok_or("no shape (flexc needs the rank of every input)")?;
        let rank = dims.dim.len();
        let mut shape = Vec::with_capacity(rank);
        for (i, d) in dims.dim.iter().enumerate() {
            use proto::tensor_shape_proto::dimension::Value as DV;
            let sym = |s: String| {
                if bind_batch && i == 0 && rank >= 2 && opts.batch > 0 { Dim::Fixed(opts.batch) } else { Dim::Sym(Arc::from(dim_name(&s))) }
            };
            shape.push(match &d.value {
                Some(DV::DimValue(v)) if *v >= 0 && *v <= 1 << 40 => Dim::Fixed(*v as u64),
                Some(DV::DimValue(v)) => return Err(format!("dimension {i} is {v}")),
                Some(DV::DimParam(s)) if !s.is_empty() => sym(s.clone()),
                _ => sym(format!("{}_d{i}", vi.name.as_deref().unwrap_or("x"))),
            });
        }
        Ok(TensorType { shape, elem, encoding: None })
    }

    /// Node indices in an order where every input is computed first.
    fn order(&self, g: &proto::GraphProto, defined: &HashSet<String>) -> Result<Vec<usize>, ImportError> {
        let mut producer: HashMap<&str, usize> = HashMap::new();
        for (i, n) in g.node.iter().enumerate() {
            for o in n.output.iter().filter(|o| !o.is_empty()) {
                if defined.contains(o) || producer.insert(o, i).is_some() {
                    return Err(self.err(format!("value '{o}' is defined twice (node '{}')", n.name.as_deref().unwrap_or(""))));
                }
            }
        }
        let mut state = vec![0u8; g.node.len()]; // 0 new, 1 on the stack, 2 done
        let mut order = Vec::with_capacity(g.node.len());
        for root in 0..g.node.len() {
            let mut stack = vec![(root, 0usize)];
            while let Some(&mut (i, ref mut k)) = stack.last_mut() {
                if *k == 0 {
                    if state[i] == 2 {
                        stack.pop();
                        continue;
                    }
                    state[i] = 1;
                }
                let n = &g.node[i];
                if *k < n.input.len() {
                    let inp = &n.input[*k];
                    *k += 1;
                    if inp.is_empty() || defined.contains(inp) {
                        continue;
                    }
                    match producer.get(inp.as_str()) {
                        None => return Err(self.err(format!("node '{}' ({}): input '{inp}' is never defined", n.name.as_deref().unwrap_or(""), n.op_type.as_deref().unwrap_or("?")))),
                        Some(&p) if state[p] == 1 => return Err(self.err(format!("the graph has a cycle through node '{}' ({})", n.name.as_deref().unwrap_or(""), n.op_type.as_deref().unwrap_or("?")))),
                        Some(&p) if state[p] == 0 => stack.push((p, 0)),
                        _ => {}
                    }
                } else {
                    state[i] = 2;
                    order.push(i);
                    stack.pop();
                }
            }
        }
        Ok(order)
    }
}

/// A declared output type matches a computed one (symbols may differ in name).
fn compatible(want: &TensorType, got: &TensorType) -> bool {
    want.elem == got.elem && want.rank() == got.rank() && want.shape.iter().zip(&got.shape).all(|(a, b)| matches!((a, b), (Dim::Fixed(x), Dim::Fixed(y)) if x == y) || matches!(a, Dim::Sym(_)) || matches!(b, Dim::Sym(_)))
}
