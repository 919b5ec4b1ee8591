//! `GgufWriter`: builds a GGUF v2/v3 file in memory. Used by tests (round
//! trips, corrupted-file fixtures built by patching valid output) and by
//! importer tests that need small synthetic models; it is not a model
//! exporter, so it keeps everything in memory and favours simplicity.
//!
//! Arrays are written with the type of their first element; an empty array
//! is written as an array of u8 (the element type of an empty array carries
//! no information back through [`MetaValue`]).

use super::{DEFAULT_ALIGNMENT, GGUF_MAGIC, MetaType, MetaValue};
use flexc_ir::quant::GgmlType;

/// Why the writer refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GgufWriteError {
    #[error("metadata '{key}': array mixes element types {first} and {other}")]
    MixedArray {
        key: String,
        first: &'static str,
        other: &'static str,
    },
    #[error("tensor '{name}': {ty} data of {dims:?} needs {expected} bytes, got {got}")]
    TensorSize {
        name: String,
        ty: GgmlType,
        dims: Vec<u64>,
        expected: u64,
        got: usize,
    },
    #[error("tensor '{name}': {cause}")]
    BadShape { name: String, cause: String },
    #[error("general.alignment must be a u32 power of two")]
    BadAlignment,
}

struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    data: Vec<u8>,
}

/// An in-memory GGUF file under construction.
pub struct GgufWriter {
    version: u32,
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<PendingTensor>,
}

impl GgufWriter {
    /// A writer producing GGUF `version` (2 or 3 are what the reader accepts;
    /// other values are written as given, which tests use to build bad files).
    pub fn new(version: u32) -> GgufWriter {
        GgufWriter {
            version,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Append a key/value pair (order is kept; duplicates are written as is).
    pub fn add_meta(&mut self, key: &str, value: MetaValue) -> &mut Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    /// Append a tensor; `data` must hold exactly the bytes its type and
    /// dims need (dims in ggml order, `dims[0]` = row length).
    pub fn add_tensor(
        &mut self,
        name: &str,
        dims: &[u64],
        ty: GgmlType,
        data: Vec<u8>,
    ) -> Result<&mut Self, GgufWriteError> {
        let bad = |cause: String| GgufWriteError::BadShape {
            name: name.to_string(),
            cause,
        };
        let row = *dims
            .first()
            .ok_or_else(|| bad("no dimensions".to_string()))?;
        let rows = dims[1..]
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .ok_or_else(|| bad("dims overflow".into()))?;
        let row_bytes = ty.row_bytes(row).map_err(|e| bad(e.to_string()))?;
        let expected = row_bytes
            .checked_mul(rows)
            .ok_or_else(|| bad("byte size overflows".into()))?;
        if expected != data.len() as u64 {
            return Err(GgufWriteError::TensorSize {
                name: name.to_string(),
                ty,
                dims: dims.to_vec(),
                expected,
                got: data.len(),
            });
        }
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            ty,
            data,
        });
        Ok(self)
    }

    fn alignment(&self) -> Result<u64, GgufWriteError> {
        match self.metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => Ok(DEFAULT_ALIGNMENT),
            Some((_, MetaValue::U32(a))) if a.is_power_of_two() => Ok(u64::from(*a)),
            Some(_) => Err(GgufWriteError::BadAlignment),
        }
    }

    /// Serialize the file.
    pub fn to_bytes(&self) -> Result<Vec<u8>, GgufWriteError> {
        let alignment = self.alignment()?;
        let mut out = Vec::new();
        out.extend_from_slice(&GGUF_MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            write_str(&mut out, key);
            out.extend_from_slice(&(value.meta_type() as u32).to_le_bytes());
            write_value(&mut out, key, value)?;
        }
        let mut rel = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            offsets.push(rel);
            rel = (rel + t.data.len() as u64).div_ceil(alignment) * alignment;
        }
        for (t, off) in self.tensors.iter().zip(&offsets) {
            write_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.id().to_le_bytes());
            out.extend_from_slice(&off.to_le_bytes());
        }
        for t in &self.tensors {
            pad_to(&mut out, alignment);
            out.extend_from_slice(&t.data);
        }
        if !self.tensors.is_empty() {
            pad_to(&mut out, alignment);
        }
        Ok(out)
    }
}

fn pad_to(out: &mut Vec<u8>, alignment: u64) {
    let len = out.len() as u64;
    let target = len.div_ceil(alignment) * alignment;
    out.resize(target as usize, 0);
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn write_value(out: &mut Vec<u8>, key: &str, value: &MetaValue) -> Result<(), GgufWriteError> {
    match value {
        MetaValue::U8(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::Bool(v) => out.push(u8::from(*v)),
        MetaValue::Str(s) => write_str(out, s),
        MetaValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::Array(items) => {
            let elem = items.first().map_or(MetaType::U8, MetaValue::meta_type);
            if let Some(other) = items.iter().find(|v| v.meta_type() != elem) {
                return Err(GgufWriteError::MixedArray {
                    key: key.to_string(),
                    first: elem.name(),
                    other: other.meta_type().name(),
                });
            }
            out.extend_from_slice(&(elem as u32).to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                write_value(out, key, item)?;
            }
        }
    }
    Ok(())
}
