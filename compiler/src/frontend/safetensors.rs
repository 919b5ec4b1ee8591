//! safetensors checkpoints: the tensor table of one file, with tensor bytes
//! served straight out of a memory map.
//!
//! Layout: a u64 little-endian header length `N`, `N` bytes of UTF-8 JSON
//! (an object mapping tensor names to `{dtype, shape, data_offsets: [begin,
//! end]}` plus an optional `__metadata__` string-to-string object), then the
//! data section; offsets are relative to its start.
//!
//! The file is untrusted input: the header length is capped, the JSON is read
//! without letting duplicate keys merge silently, and every tensor's byte
//! range is checked against its dtype and shape and against the file (ranges
//! must tile the data section, as the reference implementation requires).
//! Every failure is one line naming the file, the byte offset or the tensor,
//! and the cause.

use super::builder::{TensorDesc, TensorSource};
use flexc_ir::types::ElemType;
use super::gguf::Storage;
use serde::de::{Deserializer, MapAccess, Visitor};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// Longest JSON header accepted (bytes).
pub const MAX_HEADER_LEN: u64 = 100 << 20;
/// Most dimensions accepted for one tensor.
pub const MAX_DIMS: usize = 16;

/// A safetensors element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    Bool,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F16,
    BF16,
    F32,
    F64,
    F8E4M3,
    F8E5M2,
}

impl Dtype {
    const ALL: [(Dtype, &'static str); 15] = [
        (Dtype::Bool, "BOOL"),
        (Dtype::U8, "U8"),
        (Dtype::I8, "I8"),
        (Dtype::U16, "U16"),
        (Dtype::I16, "I16"),
        (Dtype::U32, "U32"),
        (Dtype::I32, "I32"),
        (Dtype::U64, "U64"),
        (Dtype::I64, "I64"),
        (Dtype::F16, "F16"),
        (Dtype::BF16, "BF16"),
        (Dtype::F32, "F32"),
        (Dtype::F64, "F64"),
        (Dtype::F8E4M3, "F8_E4M3"),
        (Dtype::F8E5M2, "F8_E5M2"),
    ];

    /// Parses the header spelling (`"F32"`, `"BF16"`, `"F8_E4M3"`).
    pub fn from_name(s: &str) -> Option<Dtype> {
        Dtype::ALL.iter().find(|(_, n)| *n == s).map(|(d, _)| *d)
    }

    /// The header spelling.
    pub fn name(self) -> &'static str {
        Dtype::ALL.iter().find(|(d, _)| *d == self).map(|(_, n)| *n).unwrap_or("?")
    }

    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 | Dtype::F8E4M3 | Dtype::F8E5M2 => 1,
            Dtype::U16 | Dtype::I16 | Dtype::F16 | Dtype::BF16 => 2,
            Dtype::U32 | Dtype::I32 | Dtype::F32 => 4,
            Dtype::U64 | Dtype::I64 | Dtype::F64 => 8,
        }
    }

    /// The IR element type with the same storage, if there is one.
    pub fn elem(self) -> Option<ElemType> {
        Some(match self {
            Dtype::F32 => ElemType::F32,
            Dtype::F16 => ElemType::F16,
            Dtype::BF16 => ElemType::BF16,
            Dtype::I64 => ElemType::I64,
            Dtype::I32 => ElemType::I32,
            Dtype::I16 => ElemType::I16,
            Dtype::I8 => ElemType::I8,
            Dtype::U8 => ElemType::U8,
            _ => return None,
        })
    }
}

/// One entry of the tensor table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StTensor {
    /// The name.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape, outer dimension first (PyTorch order).
    pub shape: Vec<u64>,
    /// Absolute file offset of the first byte.
    pub offset: u64,
    /// Bytes the tensor occupies.
    pub n_bytes: u64,
}

/// Why a safetensors file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The layout or header is malformed at a byte offset.
    #[error("{file}: byte {offset}: {message}")]
    Format {
        /// The file.
        file: String,
        /// Where.
        offset: u64,
        /// The cause.
        message: String,
    },
    /// One tensor entry is malformed.
    #[error("{file}: tensor '{tensor}': {message}")]
    Tensor {
        /// The file.
        file: String,
        /// The tensor's name.
        tensor: String,
        /// The cause.
        message: String,
    },
}

/// One parsed safetensors file.
pub struct SafetensorsFile {
    file_name: String,
    storage: Storage,
    /// Where the data section starts (8 + header length).
    pub data_offset: u64,
    /// The `__metadata__` pairs, in file order.
    pub metadata: Vec<(String, String)>,
    /// The tensors, in data order.
    pub tensors: Vec<StTensor>,
    index: HashMap<String, usize>,
}

impl fmt::Debug for SafetensorsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafetensorsFile").field("file", &self.file_name).field("tensors", &self.tensors.len()).finish()
    }
}

/// The header's top-level object, with keys kept in order and duplicates kept.
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Entries, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of tensor entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    out.push((k, v));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// True if the bytes start like a safetensors file: a plausible header
/// length followed by `{`.
pub fn looks_like_safetensors(head: &[u8]) -> bool {
    head.len() >= 9 && u64::from_le_bytes(head[..8].try_into().unwrap_or([0; 8])) <= MAX_HEADER_LEN && head[8] == b'{'
}

impl SafetensorsFile {
    /// Opens and parses a file (memory-mapped).
    pub fn open(path: &Path) -> Result<SafetensorsFile, SafetensorsError> {
        let file_name = path.display().to_string();
        let io = |source| SafetensorsError::Io { file: file_name.clone(), source };
        let storage = Storage::open(path).map_err(io)?;
        SafetensorsFile::parse(file_name, storage)
    }

    /// Parses bytes held in memory; `name` is used in error messages.
    pub fn from_bytes_named(name: &str, bytes: Vec<u8>) -> Result<SafetensorsFile, SafetensorsError> {
        SafetensorsFile::parse(name.to_string(), Storage::Owned(bytes))
    }

    /// The file name used in error messages.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&StTensor> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// The stored bytes of a tensor (checked at load time to lie in the file).
    pub fn tensor_bytes(&self, t: &StTensor) -> &[u8] {
        &self.bytes()[t.offset as usize..(t.offset + t.n_bytes) as usize]
    }

    fn parse(file_name: String, storage: Storage) -> Result<SafetensorsFile, SafetensorsError> {
        let buf = storage.bytes();
        let file_len = buf.len() as u64;
        let at = |offset: u64, message: String| SafetensorsError::Format { file: file_name.clone(), offset, message };
        if file_len < 8 {
            return Err(at(0, format!("truncated file: the header length needs 8 bytes but the file has {file_len}")));
        }
        let n = u64::from_le_bytes(buf[..8].try_into().map_err(|_| at(0, "unreadable header length".into()))?);
        if n > MAX_HEADER_LEN {
            return Err(at(0, format!("header length {n} exceeds the limit of {MAX_HEADER_LEN} bytes")));
        }
        if n > file_len - 8 {
            return Err(at(0, format!("truncated file: the header needs {n} bytes but only {} remain", file_len - 8)));
        }
        let header = &buf[8..8 + n as usize];
        let text = std::str::from_utf8(header).map_err(|e| at(8 + e.valid_up_to() as u64, "header is not valid UTF-8".into()))?;
        if !text.starts_with('{') {
            return Err(at(8, "header is not a JSON object (it must start with '{')".into()));
        }
        let entries: Entries = serde_json::from_str(text).map_err(|e| {
            // serde_json reports line/column; turn it into a file offset.
            let line_start: usize = text.split_inclusive('\n').take(e.line().saturating_sub(1)).map(str::len).sum();
            at(8 + (line_start + e.column().saturating_sub(1)) as u64, format!("header JSON: {e}"))
        })?;
        let data_offset = 8 + n;
        let data_len = file_len - data_offset;
        let bad = |tensor: &str, message: String| SafetensorsError::Tensor { file: file_name.clone(), tensor: tensor.to_string(), message };

        let mut metadata = Vec::new();
        let mut seen_meta = false;
        let mut tensors: Vec<StTensor> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (name, v) in entries.0 {
            if name == "__metadata__" {
                if seen_meta {
                    return Err(at(8, "duplicate '__metadata__' entry".into()));
                }
                seen_meta = true;
                let obj = v.as_object().ok_or_else(|| at(8, "'__metadata__' must be an object of strings".into()))?;
                for (k, v) in obj {
                    let s = v.as_str().ok_or_else(|| at(8, format!("'__metadata__' value of '{k}' must be a string, got {v}")))?;
                    metadata.push((k.clone(), s.to_string()));
                }
                continue;
            }
            if index.contains_key(&name) {
                return Err(bad(&name, "duplicate tensor name".into()));
            }
            let t = tensor_entry(&name, &v, data_offset, data_len).map_err(|m| bad(&name, m))?;
            index.insert(name, tensors.len());
            tensors.push(t);
        }

        // The ranges must tile the data section: no overlap, no hole, no tail.
        let mut order: Vec<usize> = (0..tensors.len()).collect();
        order.sort_by_key(|&i| (tensors[i].offset, tensors[i].n_bytes));
        let mut end = data_offset;
        for &i in &order {
            let t = &tensors[i];
            if t.offset < end {
                return Err(bad(&t.name, format!("data at file bytes {}..{} overlaps the previous tensor (which ends at {end})", t.offset, t.offset + t.n_bytes)));
            }
            if t.offset > end {
                return Err(bad(&t.name, format!("data starts at file byte {} but the previous tensor ends at {end}: the data section has a hole", t.offset)));
            }
            end = t.offset + t.n_bytes;
        }
        if end != file_len {
            return Err(at(end, format!("{} bytes after the last tensor's data (the file is {file_len} bytes)", file_len - end)));
        }
        // Keep data order for display.
        let tensors: Vec<StTensor> = order.into_iter().map(|i| tensors[i].clone()).collect();
        let index = tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Ok(SafetensorsFile { file_name, storage, data_offset, metadata, tensors, index })
    }
}

/// Checks one `{dtype, shape, data_offsets}` entry.
fn tensor_entry(name: &str, v: &serde_json::Value, data_offset: u64, data_len: u64) -> Result<StTensor, String> {
    let obj = v.as_object().ok_or_else(|| format!("entry must be an object, got {v}"))?;
    for k in obj.keys() {
        if !matches!(k.as_str(), "dtype" | "shape" | "data_offsets") {
            return Err(format!("unknown key '{k}' (expected dtype, shape, data_offsets)"));
        }
    }
    let dtype_s = obj.get("dtype").ok_or("missing 'dtype'")?.as_str().ok_or("'dtype' must be a string")?;
    let dtype = Dtype::from_name(dtype_s).ok_or_else(|| format!("unknown dtype '{dtype_s}'"))?;
    let shape_v = obj.get("shape").ok_or("missing 'shape'")?.as_array().ok_or("'shape' must be an array")?;
    if shape_v.len() > MAX_DIMS {
        return Err(format!("{} dimensions exceed the limit of {MAX_DIMS}", shape_v.len()));
    }
    let shape: Vec<u64> = shape_v.iter().map(|d| d.as_u64().ok_or_else(|| format!("shape entry {d} is not a non-negative integer"))).collect::<Result<_, _>>()?;
    let offs = obj.get("data_offsets").ok_or("missing 'data_offsets'")?.as_array().ok_or("'data_offsets' must be an array")?;
    let [b, e] = offs.as_slice() else {
        return Err(format!("'data_offsets' must be [begin, end], got {} values", offs.len()));
    };
    let (begin, end) = match (b.as_u64(), e.as_u64()) {
        (Some(b), Some(e)) => (b, e),
        _ => return Err(format!("'data_offsets' [{b}, {e}] must be non-negative integers")),
    };
    if begin > end {
        return Err(format!("data_offsets [{begin}, {end}] end before they begin"));
    }
    if end > data_len {
        return Err(format!("data_offsets [{begin}, {end}] end past the data section ({data_len} bytes, file byte {})", data_offset + data_len));
    }
    let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or_else(|| format!("shape {shape:?} overflows the element count"))?;
    let want = numel.checked_mul(dtype.size()).ok_or_else(|| format!("shape {shape:?} overflows the byte count"))?;
    if want != end - begin {
        return Err(format!("{} {shape:?} needs {want} bytes but data_offsets [{begin}, {end}] hold {}", dtype.name(), end - begin));
    }
    Ok(StTensor { name: name.to_string(), dtype, shape, offset: data_offset + begin, n_bytes: end - begin })
}

impl TensorSource for SafetensorsFile {
    fn file_name(&self) -> &str {
        &self.file_name
    }

    fn describe(&self, name: &str) -> Option<Result<TensorDesc, String>> {
        let t = self.tensor(name)?;
        Some(match t.dtype.elem() {
            Some(elem) => Ok(TensorDesc { name: name.to_string(), shape: t.shape.clone(), elem, encoding: None, offset: t.offset, len: t.n_bytes }),
            None => Err(format!("tensor '{name}' has dtype {} which flexc does not import", t.dtype.name())),
        })
    }
}

/// Writes a safetensors file in memory (for tests and fixtures): tensors in
/// the given order, `(name, dtype, shape, bytes)`.
pub fn write_safetensors(metadata: &[(&str, &str)], tensors: &[(&str, Dtype, &[u64], &[u8])]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let m: serde_json::Map<String, serde_json::Value> = metadata.iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string()))).collect();
        header.insert("__metadata__".into(), serde_json::Value::Object(m));
    }
    let mut off = 0u64;
    for (name, dtype, shape, bytes) in tensors {
        let end = off + bytes.len() as u64;
        header.insert(name.to_string(), serde_json::json!({ "dtype": dtype.name(), "shape": shape, "data_offsets": [off, end] }));
        off = end;
    }
    let mut text = serde_json::Value::Object(header).to_string().into_bytes();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    for (_, _, _, bytes) in tensors {
        out.extend_from_slice(bytes);
    }
    out
}
