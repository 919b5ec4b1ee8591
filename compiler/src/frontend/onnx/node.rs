//! One ONNX node as the op translators see it: its operands (absent optional
//! inputs are `None`), typed attribute getters with defaults, and the opset
//! of its domain.

use super::cx::Val;
use super::proto;
use super::tensor::{self, Const, FileCx};

/// A node being translated.
pub struct Node<'a> {
    /// The protobuf node.
    pub n: &'a proto::NodeProto,
    /// Its operands, in order (`None` for an empty optional input).
    pub ins: Vec<Option<Val>>,
    /// The opset version of the node's domain.
    pub opset: i64,
    /// The model file (for tensor attributes).
    pub fx: &'a FileCx<'a>,
}

impl Node<'_> {
    fn attr(&self, name: &str) -> Option<&proto::AttributeProto> {
        self.n.attribute.iter().find(|a| a.name.as_deref() == Some(name))
    }

    /// True if the attribute is present.
    pub fn has(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }

    /// An integer attribute.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.attr(name).and_then(|a| a.i).unwrap_or(default)
    }

    /// A float attribute.
    pub fn float(&self, name: &str, default: f64) -> f64 {
        self.attr(name).and_then(|a| a.f).map_or(default, |f| f as f64)
    }

    /// An integer-list attribute.
    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.attr(name).map(|a| a.ints.clone())
    }

    /// A string attribute.
    pub fn string(&self, name: &str) -> Option<String> {
        self.attr(name).and_then(|a| a.s.as_ref()).map(|s| String::from_utf8_lossy(s).into_owned())
    }

    /// A tensor attribute, decoded.
    pub fn tensor(&self, name: &str) -> Result<Option<Const>, String> {
        let Some(t) = self.attr(name).and_then(|a| a.t.as_ref()) else { return Ok(None) };
        let (elem, shape, loc) = tensor::read(t, self.fx).map_err(|e| format!("attribute '{name}': {e}"))?;
        Ok(Some(tensor::decode(elem, shape, &loc.bytes)))
    }

    /// Operand `i`, required.
    pub fn input(&self, i: usize) -> Result<Val, String> {
        self.ins.get(i).cloned().flatten().ok_or_else(|| format!("input {i} is required"))
    }

    /// Operand `i`, optional.
    pub fn opt(&self, i: usize) -> Option<Val> {
        self.ins.get(i).cloned().flatten()
    }

    /// Number of outputs the node names (trailing empty names excluded).
    pub fn outputs(&self) -> usize {
        let mut k = self.n.output.len();
        while k > 0 && self.n.output[k - 1].is_empty() {
            k -= 1;
        }
        k
    }
}
