//! The graph builder every model frontend shares: ops appended to one
//! function through `Func::append_typed`, weights declared once in the
//! module's weight table as `file<path, offset, len>` references (nothing is
//! copied), and the usual layer idioms (linear, norms, reshape).
//!
//! A frontend hands the builder a [`TensorSource`]: the file's tensor table
//! seen as IR types (outer dimension first), so GGUF and safetensors
//! checkpoints go through the same code.

use super::gguf::GgufError;
use super::safetensors::SafetensorsError;
use flexc_ir::attrs;
use flexc_ir::ops::{Dense, Symbol};
use flexc_ir::types::{Dim, ElemType, Encoding, TensorType};
use flexc_ir::weights::{WeightData, WeightSource};
use flexc_ir::{Func, Module, Span, Value};
use std::path::Path;

/// Why a model could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The GGUF file itself is malformed or lacks a key.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// The safetensors file itself is malformed.
    #[error(transparent)]
    Safetensors(#[from] SafetensorsError),
    /// The file cannot be opened or is of no known format.
    #[error("{file}: {message}")]
    Open {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// The architecture is not one flexc imports.
    #[error("{file}: unsupported architecture '{arch}' (supported: {supported})")]
    Arch {
        /// The file.
        file: String,
        /// What it says.
        arch: String,
        /// What flexc supports.
        supported: String,
    },
    /// An ONNX graph is malformed or uses something flexc does not import.
    #[error("{file}: {message}")]
    Onnx {
        /// The file.
        file: String,
        /// What is wrong (naming the node, its op type and opset).
        message: String,
    },
    /// A configuration file (`config.json`) is missing, malformed or lacks a key.
    #[error("{file}: {message}")]
    Config {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A tensor is missing or has the wrong shape or type.
    #[error("{file}: {message}")]
    Tensor {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
}

/// One tensor of a checkpoint as the builder sees it.
#[derive(Clone, Debug)]
pub struct TensorDesc {
    /// The name in the file (used as the weight's symbol).
    pub name: String,
    /// IR shape, outer dimension first.
    pub shape: Vec<u64>,
    /// Element type (of the decoded values when `encoding` is set).
    pub elem: ElemType,
    /// Block encoding of the stored bytes, if any.
    pub encoding: Option<Encoding>,
    /// Absolute byte offset in the file.
    pub offset: u64,
    /// Bytes stored.
    pub len: u64,
}

/// A checkpoint's tensor table.
pub trait TensorSource {
    /// The file name used in error messages.
    fn file_name(&self) -> &str;
    /// The tensor the importer calls `name`: `None` if absent, `Some(Err)`
    /// with the cause if present in a form flexc cannot use.
    fn describe(&self, name: &str) -> Option<Result<TensorDesc, String>>;
    /// What the file calls the tensor the importer calls `name` (for messages).
    fn stored_name(&self, name: &str) -> String {
        name.to_string()
    }
}

/// Builds the ops of one function, tracking the module's weights.
pub struct Builder<'a> {
    src: &'a dyn TensorSource,
    path: &'a Path,
    /// The module whose weight table grows.
    pub m: Module,
    /// The function being built.
    pub f: Func,
}

impl<'a> Builder<'a> {
    /// A builder of `f` reading weights of `src`, stored in the file `path`.
    pub fn new(src: &'a dyn TensorSource, path: &'a Path, f: Func) -> Builder<'a> {
        Builder { src, path, m: Module::default(), f }
    }

    /// Finishes the current function into the module and starts `f`.
    pub fn next_func(&mut self, f: Func) {
        let done = std::mem::replace(&mut self.f, f);
        self.m.funcs.push(done);
    }

    /// Finishes the current function and returns the module.
    pub fn finish(mut self) -> Module {
        self.m.funcs.push(self.f);
        self.m
    }

    /// An import error about this file.
    pub fn err(&self, message: String) -> ImportError {
        ImportError::Tensor { file: self.src.file_name().to_string(), message }
    }

    /// True if the checkpoint has tensor `name`.
    pub fn has(&self, name: &str) -> bool {
        self.src.describe(name).is_some()
    }

    /// Declares (once) and reads a weight, checking its IR shape `[rows, cols]` / `[n]`.
    pub fn weight(&mut self, name: &str, shape: &[usize]) -> Result<Value, ImportError> {
        let info = self
            .src
            .describe(name)
            .ok_or_else(|| self.err(format!("missing tensor '{}'", self.src.stored_name(name))))?
            .map_err(|m| self.err(m))?;
        if info.shape != shape.iter().map(|&d| d as u64).collect::<Vec<_>>() {
            return Err(self.err(format!("tensor '{}' has shape {:?} (outer first), expected {shape:?}", info.name, info.shape)));
        }
        let ty = TensorType { shape: info.shape.iter().map(|&d| Dim::Fixed(d)).collect(), elem: info.elem, encoding: info.encoding };
        if self.m.weights.lookup(&info.name).is_none() {
            let source = WeightSource::File { path: self.path.to_path_buf(), offset: info.offset, len: info.len };
            self.m.weights.insert(WeightData { name: info.name.clone(), ty: ty.clone(), source, span: Span::default() }).map_err(|e| self.err(e))?;
        }
        self.op(attrs::Weight { name: Symbol(info.name) }, &[], Some(ty))
    }

    /// Appends one op.
    pub fn op(&mut self, a: impl Into<flexc_ir::OpAttrs>, args: &[Value], ty: Option<TensorType>) -> Result<Value, ImportError> {
        let a = a.into();
        let what = a.opcode().mnemonic();
        self.f.append_typed(a, args, ty).map_err(|e| ImportError::Tensor { file: self.src.file_name().to_string(), message: format!("building {what}: {e}") })
    }

    /// A weight used as a float tensor: decoded if it is stored encoded.
    pub fn plain(&mut self, name: &str, shape: &[usize]) -> Result<Value, ImportError> {
        let w = self.weight(name, shape)?;
        self.decoded(w)
    }

    fn decoded(&mut self, w: Value) -> Result<Value, ImportError> {
        let ty = self.f.dfg.ty(w).clone();
        match (ty.encoding, ty.elem) {
            (Some(_), _) => self.op(attrs::Dequantize {}, &[w], None),
            (None, ElemType::F32) => Ok(w),
            (None, _) => self.op(attrs::Cast {}, &[w], Some(TensorType { elem: ElemType::F32, ..ty.decoded() })),
        }
    }

    /// `x · Wᵀ (+ b)` for a linear weight `[out, in]`.
    pub fn linear(&mut self, x: Value, name: &str, out: usize, inp: usize, bias: Option<&str>) -> Result<Value, ImportError> {
        let w = self.plain(name, &[out, inp])?;
        let y = self.op(attrs::Matmul { transpose_b: true }, &[x, w], None)?;
        match bias {
            Some(b) => {
                let b = self.plain(b, &[out])?;
                self.op(attrs::Add {}, &[y, b], None)
            }
            None => Ok(y),
        }
    }

    /// RMS normalisation with weight `name`.
    pub fn rmsnorm(&mut self, x: Value, name: &str, dim: usize, eps: f64) -> Result<Value, ImportError> {
        let w = self.plain(name, &[dim])?;
        self.op(attrs::Rmsnorm { eps }, &[x, w], None)
    }

    /// Layer normalisation with weight `{prefix}.weight` and bias `{prefix}.bias`.
    pub fn layernorm(&mut self, x: Value, prefix: &str, dim: usize, eps: f64) -> Result<Value, ImportError> {
        let w = self.plain(&format!("{prefix}.weight"), &[dim])?;
        let b = self.plain(&format!("{prefix}.bias"), &[dim])?;
        self.op(attrs::Layernorm { eps }, &[x, w, b], None)
    }

    /// The same f32 elements in another shape.
    pub fn reshape(&mut self, x: Value, shape: &[Dim]) -> Result<Value, ImportError> {
        self.op(attrs::Reshape {}, &[x], Some(TensorType { shape: shape.to_vec(), elem: ElemType::F32, encoding: None }))
    }

    /// An f32 constant of shape `shape` (every element `v`).
    pub fn splat(&mut self, v: f32, shape: &[usize]) -> Result<Value, ImportError> {
        let n = shape.iter().product();
        self.op(attrs::Constant { value: Dense::Float(vec![v as f64; n]) }, &[], Some(TensorType::new(ElemType::F32, &shape.iter().map(|&d| d as u64).collect::<Vec<_>>())))
    }

    /// An f32 scalar constant.
    pub fn scalar(&mut self, v: f32) -> Result<Value, ImportError> {
        self.splat(v, &[])
    }

    /// An i32 scalar constant.
    pub fn scalar_i32(&mut self, v: i32) -> Result<Value, ImportError> {
        self.op(attrs::Constant { value: Dense::Int(vec![v as i64]) }, &[], Some(TensorType::new(ElemType::I32, &[])))
    }
}
