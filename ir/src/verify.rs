//! The verifier: checks every invariant the rest of flexc relies on.
//!
//! Invariants, in the order they are checked:
//!
//! 1. **Unique names.** Function names are unique in a module; weight names
//!    are unique (the table enforces it on insert).
//! 2. **Weights.** Every weight has a fixed shape; inline data has the right
//!    kind and count of values for its type (raw bytes of exactly the storage
//!    size for encoded types); file ranges have exactly the storage size.
//! 3. **SSA.** Every op appears in the layout once; every operand is a
//!    parameter of the function or the result of an op earlier in the layout.
//! 4. **Arity and types.** Each op has the operand count its table entry
//!    declares, and its result type is exactly what the op's rule computes
//!    from the operand types and attributes (rules also check attribute
//!    ranges: axes, permutations, eps, window, rope dims, block multiples).
//! 5. **Weight references.** `tensor.weight @w` names a weight of the module
//!    and has that weight's type.
//! 6. **Phase order.** Encoded (quantized) tensors are read only by ops that
//!    understand encodings (`quant.dequantize`, the weight of `quant.mpgemm`
//!    and of the `kern.*_gemm` ops, `kern.tile`, `tensor.gather`'s table;
//!    each kern GEMM accepts only the encodings its primitive reads); every
//!    other op rejects them through its rule,
//!    so no quantized `tensor.matmul` can reach a backend.
//! 7. **Returns.** The returned values match the signature in count and type.
//! 8. **Typed module attributes.** Attributes with a typed reader (the
//!    sparsity plan `nm_plan`, `quant::plan`) hold valid values.
//!
//! Errors carry the span of the offending op when the function came from text.

use crate::diag::Diagnostic;
use crate::entity::Value;
use crate::func::{Func, Span};
use crate::module::Module;
use crate::ops::OpAttrs;
use crate::weights::WeightSource;
use cranelift_entity::EntitySet;
use std::collections::HashSet;

/// One verifier finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// The function, if the error is inside one.
    pub func: Option<String>,
    /// Where in the source, if known.
    pub span: Option<Span>,
    /// What is wrong.
    pub message: String,
}

impl VerifyError {
    /// Renders as `file:line:col: error: ...` when located, else `file: error: in @f: ...`.
    pub fn render(&self, file: &str, src: &str) -> String {
        match self.span {
            Some(span) if span != Span::default() => Diagnostic::new(span, self.message.clone()).render(file, src),
            _ => match &self.func {
                Some(f) => format!("{file}: error: in @{f}: {}", self.message),
                None => format!("{file}: error: {}", self.message),
            },
        }
    }
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.func {
            Some(func) => write!(f, "in @{func}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Checks a whole module, returning every finding.
pub fn verify_module(m: &Module) -> Result<(), Vec<VerifyError>> {
    let mut errs = Vec::new();
    let mut names = HashSet::new();
    for (_, f) in m.funcs.iter() {
        if !names.insert(f.name.as_str()) {
            errs.push(VerifyError { func: None, span: Some(f.span), message: format!("function @{} is defined twice", f.name) });
        }
    }
    for (_, w) in m.weights.iter() {
        let mut err = |message: String| errs.push(VerifyError { func: None, span: Some(w.span), message: format!("weight @{}: {message}", w.name) });
        let Some(bytes) = w.ty.storage_bytes() else {
            err(format!("type {} needs a fixed shape (and whole blocks for its encoding)", w.ty));
            continue;
        };
        match &w.source {
            WeightSource::Inline(d) => {
                if let Err(e) = crate::ops::rules_check_dense(d, &w.ty) {
                    err(e);
                }
            }
            WeightSource::File { len, .. } if *len != bytes => err(format!("{} takes {bytes} bytes, the file range has {len}", w.ty)),
            WeightSource::Derived(b) if b.len() as u64 != bytes => err(format!("{} takes {bytes} bytes, the data has {}", w.ty, b.len())),
            _ => {}
        }
    }
    for (k, v) in &m.meta {
        if let Err(e) = crate::quant::plan::check_module_attr(k, v) {
            errs.push(VerifyError { func: None, span: None, message: format!("module attribute {k}: {e}") });
        }
    }
    for (_, f) in m.funcs.iter() {
        verify_func(m, f, &mut errs);
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

fn verify_func(m: &Module, f: &Func, errs: &mut Vec<VerifyError>) {
    let mut defined: EntitySet<Value> = EntitySet::new();
    for &p in &f.params {
        defined.insert(p);
    }
    let mut placed = HashSet::new();
    for &op in &f.layout {
        let span = Some(f.srclocs[op]);
        let mut err = |message: String| errs.push(VerifyError { func: Some(f.name.clone()), span, message });
        if !placed.insert(op) {
            err(format!("{op} appears twice in the layout"));
            continue;
        }
        let data = &f.dfg.ops[op];
        if let Some(&a) = data.args.iter().find(|&&a| !defined.contains(a)) {
            err(format!("operand {a} is used before it is defined"));
            continue;
        }
        let declared = f.dfg.ty(data.result);
        match data.attrs.infer(&f.dfg.arg_types(op), Some(declared)) {
            Ok(t) if t == *declared => {}
            Ok(t) => err(format!("result type {declared} does not match '{}', which gives {t}", data.attrs.opcode().mnemonic())),
            Err(e) => err(e),
        }
        if let OpAttrs::Weight(w) = &data.attrs {
            match m.weights.lookup(&w.name.0) {
                None => err(format!("unknown weight @{}", w.name.0)),
                Some(id) if m.weights.get(id).ty != *declared => {
                    err(format!("weight @{} has type {}, not {declared}", w.name.0, m.weights.get(id).ty))
                }
                Some(_) => {}
            }
        }
        defined.insert(data.result);
    }
    let at = if f.return_span != Span::default() { f.return_span } else { f.span };
    let err = |message: String| VerifyError { func: Some(f.name.clone()), span: Some(at), message };
    if f.returns.len() != f.results.len() {
        errs.push(err(format!("returns {} values, the signature says {}", f.returns.len(), f.results.len())));
        return;
    }
    for (i, (&r, t)) in f.returns.iter().zip(&f.results).enumerate() {
        if !defined.contains(r) {
            errs.push(err(format!("returned value {r} is not defined")));
        } else if f.dfg.ty(r) != t {
            errs.push(err(format!("result {i} has type {}, the signature says {t}", f.dfg.ty(r))));
        }
    }
}
