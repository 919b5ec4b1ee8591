//! GGUF model files: an in-memory description of one file (metadata and
//! tensor table) with tensor bytes served straight out of a memory map.
//!
//! Shape of the module:
//! - `mod.rs` (this file): the public data types ([`GgufFile`], [`MetaValue`],
//!   [`TensorInfo`], [`GgufError`]) and the typed metadata getters;
//! - `reader.rs`: the parser. The file is untrusted input: every count,
//!   length and offset is checked against the bytes that are actually there
//!   before anything is allocated or sliced, and every failure is a
//!   [`GgufError`] naming the file, the byte offset and the cause;
//! - `writer.rs`: [`GgufWriter`], an in-memory writer (tests, importer
//!   fixtures, the `.flexc` metadata section, GGUF export);
//! - `export.rs`: a module's ggml-typed weights as a GGUF file (`flexc export`).
//!
//! GGUF versions 2 and 3 are read (they share one little-endian layout; v1 used
//! 32-bit counts and is rejected, as are big-endian files).

pub mod export;
mod reader;
mod writer;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

pub use flexc_ir::quant::GgmlType;
pub use writer::{GgufWriteError, GgufWriter};

/// The four magic bytes at the start of every GGUF file.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Data-section alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Longest string value or key accepted (bytes).
pub const MAX_STRING_LEN: u64 = 16 << 20;
/// Most elements accepted in one metadata array.
pub const MAX_ARRAY_LEN: u64 = 16 << 20;
/// Deepest nesting of arrays accepted.
pub const MAX_ARRAY_DEPTH: usize = 4;
/// Most metadata key/value pairs accepted.
pub const MAX_KV_COUNT: u64 = 1 << 20;
/// Most tensors accepted.
pub const MAX_TENSOR_COUNT: u64 = 1 << 20;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: u32 = 4;
/// ggml's `GGML_MAX_NAME` is 64 including the NUL terminator.
pub const MAX_TENSOR_NAME_LEN: u64 = 63;

/// GGUF metadata value type ids (`enum gguf_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MetaType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    Str = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl MetaType {
    /// The type with GGUF id `id`.
    pub fn from_u32(id: u32) -> Option<MetaType> {
        Some(match id {
            0 => MetaType::U8,
            1 => MetaType::I8,
            2 => MetaType::U16,
            3 => MetaType::I16,
            4 => MetaType::U32,
            5 => MetaType::I32,
            6 => MetaType::F32,
            7 => MetaType::Bool,
            8 => MetaType::Str,
            9 => MetaType::Array,
            10 => MetaType::U64,
            11 => MetaType::I64,
            12 => MetaType::F64,
            _ => return None,
        })
    }

    /// Lowercase name used in error messages ("u32", "string", "array").
    pub fn name(self) -> &'static str {
        match self {
            MetaType::U8 => "u8",
            MetaType::I8 => "i8",
            MetaType::U16 => "u16",
            MetaType::I16 => "i16",
            MetaType::U32 => "u32",
            MetaType::I32 => "i32",
            MetaType::F32 => "f32",
            MetaType::Bool => "bool",
            MetaType::Str => "string",
            MetaType::Array => "array",
            MetaType::U64 => "u64",
            MetaType::I64 => "i64",
            MetaType::F64 => "f64",
        }
    }

    /// Fewest bytes one value of this type occupies in a file (used to bound
    /// array counts by the bytes left before allocating).
    pub(crate) fn min_encoded_len(self) -> u64 {
        match self {
            MetaType::U8 | MetaType::I8 | MetaType::Bool => 1,
            MetaType::U16 | MetaType::I16 => 2,
            MetaType::U32 | MetaType::I32 | MetaType::F32 => 4,
            MetaType::U64 | MetaType::I64 | MetaType::F64 | MetaType::Str => 8,
            MetaType::Array => 12,
        }
    }
}

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    Array(Vec<MetaValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl MetaValue {
    /// The GGUF type of this value.
    pub fn meta_type(&self) -> MetaType {
        match self {
            MetaValue::U8(_) => MetaType::U8,
            MetaValue::I8(_) => MetaType::I8,
            MetaValue::U16(_) => MetaType::U16,
            MetaValue::I16(_) => MetaType::I16,
            MetaValue::U32(_) => MetaType::U32,
            MetaValue::I32(_) => MetaType::I32,
            MetaValue::F32(_) => MetaType::F32,
            MetaValue::Bool(_) => MetaType::Bool,
            MetaValue::Str(_) => MetaType::Str,
            MetaValue::Array(_) => MetaType::Array,
            MetaValue::U64(_) => MetaType::U64,
            MetaValue::I64(_) => MetaType::I64,
            MetaValue::F64(_) => MetaType::F64,
        }
    }

    /// A description for error messages: the type, and for arrays the type
    /// of the first element ("array of string").
    pub fn type_description(&self) -> String {
        match self {
            MetaValue::Array(items) => match items.first() {
                Some(first) => format!("array of {}", first.type_description()),
                None => "empty array".to_string(),
            },
            other => other.meta_type().name().to_string(),
        }
    }

    /// The value as a signed 128-bit integer if it is any integer type.
    pub fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            MetaValue::U8(v) => v.into(),
            MetaValue::I8(v) => v.into(),
            MetaValue::U16(v) => v.into(),
            MetaValue::I16(v) => v.into(),
            MetaValue::U32(v) => v.into(),
            MetaValue::I32(v) => v.into(),
            MetaValue::U64(v) => v.into(),
            MetaValue::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, if this is an array value.
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl fmt::Display for MetaValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaValue::U8(v) => write!(f, "{v}"),
            MetaValue::I8(v) => write!(f, "{v}"),
            MetaValue::U16(v) => write!(f, "{v}"),
            MetaValue::I16(v) => write!(f, "{v}"),
            MetaValue::U32(v) => write!(f, "{v}"),
            MetaValue::I32(v) => write!(f, "{v}"),
            MetaValue::F32(v) => write!(f, "{v}"),
            MetaValue::Bool(v) => write!(f, "{v}"),
            MetaValue::Str(v) => write!(f, "{v:?}"),
            MetaValue::U64(v) => write!(f, "{v}"),
            MetaValue::I64(v) => write!(f, "{v}"),
            MetaValue::F64(v) => write!(f, "{v}"),
            MetaValue::Array(items) => {
                write!(f, "[")?;
                for (i, item) in items.iter().take(8).enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{item}")?;
                }
                if items.len() > 8 {
                    write!(f, ", … ({} elements)", items.len())?;
                }
                write!(f, "]")
            }
        }
    }
}

/// One entry of the tensor table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the row length (the fastest-varying axis).
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Absolute file offset of the first byte (data offset + relative offset).
    pub offset: u64,
    /// Bytes the tensor occupies.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Number of elements (the product of `dims`; checked at load time).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().fold(1u64, |acc, &d| acc.saturating_mul(d))
    }

    /// Row length (`dims[0]`).
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Number of rows (the product of `dims[1..]`).
    pub fn n_rows(&self) -> u64 {
        self.dims
            .iter()
            .skip(1)
            .fold(1u64, |acc, &d| acc.saturating_mul(d))
    }
}

/// Why a GGUF file was rejected (the cause part of [`GgufError::Format`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GgufErrorKind {
    #[error("bad magic {0:02x?}: not a GGUF file (expected \"GGUF\")")]
    BadMagic([u8; 4]),
    #[error("GGUF version 1 is not supported (it used 32-bit counts); only versions 2 and 3 are")]
    VersionOne,
    #[error("GGUF version {0:#010x} looks byte-swapped: big-endian GGUF files are not supported")]
    BigEndian(u32),
    #[error("unsupported GGUF version {0}; only versions 2 and 3 are supported")]
    UnsupportedVersion(u32),
    #[error("truncated file: {what} needs {need} bytes but only {have} remain")]
    Truncated { what: String, need: u64, have: u64 },
    #[error("{what}: length {len} exceeds the limit of {max} bytes")]
    StringTooLong { what: String, len: u64, max: u64 },
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: String },
    #[error("{what}: array of {len} elements exceeds the limit of {max}")]
    ArrayTooLong { what: String, len: u64, max: u64 },
    #[error(
        "{what}: array of {len} {elem} elements needs at least {need} bytes but only {have} remain"
    )]
    ArrayPastEof {
        what: String,
        len: u64,
        elem: &'static str,
        need: u64,
        have: u64,
    },
    #[error("{what}: arrays nested deeper than {max} levels")]
    NestingTooDeep { what: String, max: usize },
    #[error("{what}: unknown metadata value type {id}")]
    UnknownValueType { what: String, id: u32 },
    #[error("{what} count {count} exceeds the limit of {max}")]
    CountTooLarge {
        what: &'static str,
        count: u64,
        max: u64,
    },
    #[error("{what} count {count} cannot fit in the {have} bytes that remain")]
    CountPastEof {
        what: &'static str,
        count: u64,
        have: u64,
    },
    #[error("duplicate metadata key '{0}'")]
    DuplicateKey(String),
    #[error("general.alignment must be a u32 power of two, got {0}")]
    BadAlignment(String),
    #[error("tensor name of {len} bytes exceeds ggml's limit of {max}")]
    TensorNameTooLong { len: u64, max: u64 },
    #[error("tensor '{name}' has {n_dims} dimensions (must be 1 to {max})")]
    BadDimCount { name: String, n_dims: u32, max: u32 },
    #[error("tensor '{name}' has a zero dimension {dims:?}")]
    ZeroDim { name: String, dims: Vec<u64> },
    #[error("tensor '{name}' dimensions {dims:?} overflow the element count")]
    DimsOverflow { name: String, dims: Vec<u64> },
    #[error("tensor '{name}' has unknown ggml type id {id}")]
    UnknownGgmlType { name: String, id: u32 },
    #[error(
        "tensor '{name}' of type {ty}: row length {row} is not a multiple of the block size {block}"
    )]
    RowNotBlockMultiple {
        name: String,
        ty: GgmlType,
        row: u64,
        block: usize,
    },
    #[error("tensor '{name}' offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        name: String,
        offset: u64,
        alignment: u64,
    },
    #[error("tensor '{name}' data ends at {end} past end of file ({file_len})")]
    TensorPastEof {
        name: String,
        end: u64,
        file_len: u64,
    },
    #[error("tensor '{name}' data at {start} overlaps tensor '{other}' (which ends at {other_end})")]
    TensorsOverlap {
        name: String,
        other: String,
        start: u64,
        other_end: u64,
    },
    #[error("duplicate tensor name '{0}'")]
    DuplicateTensor(String),
    #[error("data section starts at {offset} past end of file ({file_len})")]
    DataPastEof { offset: u64, file_len: u64 },
}

/// Any failure to load a GGUF file or to read a metadata key from it. The
/// Display form is one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: byte {offset}: {kind}")]
    Format {
        file: String,
        offset: u64,
        kind: GgufErrorKind,
    },
    #[error("{file}: metadata key '{key}' is missing")]
    MissingKey { file: String, key: String },
    #[error("{file}: metadata key '{key}' is {found}, expected {expected}")]
    WrongType {
        file: String,
        key: String,
        expected: &'static str,
        found: String,
    },
}

impl GgufError {
    /// The cause, for format errors.
    pub fn kind(&self) -> Option<&GgufErrorKind> {
        match self {
            GgufError::Format { kind, .. } => Some(kind),
            _ => None,
        }
    }
}

/// Backing bytes of a loaded model file (shared with the safetensors reader).
pub(crate) enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    /// Memory-maps the file at `path` (an empty file is held as no bytes).
    pub(crate) fn open(path: &Path) -> std::io::Result<Storage> {
        let file = flexc_ir::limits::open_regular(path)?;
        if file.metadata()?.len() == 0 {
            // Mapping an empty file fails on some platforms; the parsers
            // report the empty file as truncated instead.
            return Ok(Storage::Owned(Vec::new()));
        }
        // SAFETY: the map is read-only and private to this process. As with
        // every mmap-based model loader, the file must not be truncated or
        // rewritten by another process while it is open; model files in
        // flexc's cache are written once and never modified in place.
        Ok(Storage::Mapped(unsafe { memmap2::Mmap::map(&file) }?))
    }

    /// The file's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// A parsed GGUF file. Tensor data stays in the (memory-mapped) file and is
/// served as byte slices by [`GgufFile::tensor_data`].
pub struct GgufFile {
    pub version: u32,
    /// Key/value pairs in file order.
    pub metadata: Vec<(String, MetaValue)>,
    /// Tensor table in file order.
    pub tensors: Vec<TensorInfo>,
    /// `general.alignment`, or 32 when absent.
    pub alignment: u64,
    file_name: String,
    data_offset: u64,
    meta_index: HashMap<String, usize>,
    tensor_index: HashMap<String, usize>,
    storage: Storage,
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("file", &self.file_name)
            .field("version", &self.version)
            .field("n_metadata", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .field("data_offset", &self.data_offset)
            .finish()
    }
}

impl GgufFile {
    /// Memory-map and parse the file at `path`.
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let file_name = path.display().to_string();
        let io = |source| GgufError::Io {
            file: file_name.clone(),
            source,
        };
        let storage = Storage::open(path).map_err(io)?;
        Self::parse(file_name, storage)
    }

    /// Parse a file held in memory (tests, writer round trips).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        Self::parse("<memory>".to_string(), Storage::Owned(bytes))
    }

    /// Parse a file held in memory, naming it `name` in error messages.
    pub fn from_bytes_named(name: &str, bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        Self::parse(name.to_string(), Storage::Owned(bytes))
    }

    fn parse(file_name: String, storage: Storage) -> Result<GgufFile, GgufError> {
        let parsed = reader::parse(&file_name, storage.bytes())?;
        Ok(GgufFile {
            version: parsed.version,
            metadata: parsed.metadata,
            tensors: parsed.tensors,
            alignment: parsed.alignment,
            data_offset: parsed.data_offset,
            meta_index: parsed.meta_index,
            tensor_index: parsed.tensor_index,
            file_name,
            storage,
        })
    }

    /// The name used in error messages (the path as given, or `<memory>`).
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// Absolute file offset of the data section (tensor offsets in the file
    /// are relative to it; [`TensorInfo::offset`] is already absolute).
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Size of the whole file in bytes.
    pub fn file_len(&self) -> u64 {
        self.storage.bytes().len() as u64
    }

    /// The value of metadata key `key`.
    pub fn meta(&self, key: &str) -> Option<&MetaValue> {
        self.meta_index
            .get(key)
            .and_then(|&i| self.metadata.get(i))
            .map(|(_, v)| v)
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
    }

    /// The bytes of `info` inside the file. Offsets are validated at load
    /// time; a `TensorInfo` that does not describe bytes of this file (built
    /// by hand, or taken from another file) yields an empty slice.
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        let bytes = self.storage.bytes();
        let Some(end) = info.offset.checked_add(info.n_bytes) else {
            return &[];
        };
        match (usize::try_from(info.offset), usize::try_from(end)) {
            (Ok(start), Ok(end)) => bytes.get(start..end).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Count of tensors per ggml type, in type-id order.
    pub fn type_counts(&self) -> Vec<(GgmlType, usize)> {
        let mut counts: Vec<(GgmlType, usize)> = Vec::new();
        for t in &self.tensors {
            match counts.iter_mut().find(|(ty, _)| *ty == t.ggml_type) {
                Some((_, n)) => *n += 1,
                None => counts.push((t.ggml_type, 1)),
            }
        }
        counts.sort();
        counts
    }

    fn get(&self, key: &str) -> Result<&MetaValue, GgufError> {
        self.meta(key).ok_or_else(|| GgufError::MissingKey {
            file: self.file_name.clone(),
            key: key.to_string(),
        })
    }

    fn wrong(&self, key: &str, expected: &'static str, found: &MetaValue) -> GgufError {
        GgufError::WrongType {
            file: self.file_name.clone(),
            key: key.to_string(),
            expected,
            found: found.type_description(),
        }
    }

    fn integer<T: TryFrom<i128>>(&self, key: &str, expected: &'static str) -> Result<T, GgufError> {
        let v = self.get(key)?;
        v.as_integer()
            .and_then(|i| T::try_from(i).ok())
            .ok_or_else(|| self.wrong(key, expected, v))
    }

    /// An integer key as u32. Any integer type is accepted if its value fits
    /// (converters disagree on u32 vs u64 for counts).
    pub fn meta_u32(&self, key: &str) -> Result<u32, GgufError> {
        self.integer(key, "an integer that fits in u32")
    }

    /// An integer key as u64 (any integer type whose value fits).
    pub fn meta_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.integer(key, "an integer that fits in u64")
    }

    /// An integer key as i32 (any integer type whose value fits).
    pub fn meta_i32(&self, key: &str) -> Result<i32, GgufError> {
        self.integer(key, "an integer that fits in i32")
    }

    /// An integer key as i64 (any integer type whose value fits).
    pub fn meta_i64(&self, key: &str) -> Result<i64, GgufError> {
        self.integer(key, "an integer that fits in i64")
    }

    /// An f32 key (only f32 values are accepted).
    pub fn meta_f32(&self, key: &str) -> Result<f32, GgufError> {
        match self.get(key)? {
            MetaValue::F32(v) => Ok(*v),
            other => Err(self.wrong(key, "f32", other)),
        }
    }

    /// A float key as f64 (f32 or f64 values).
    pub fn meta_f64(&self, key: &str) -> Result<f64, GgufError> {
        match self.get(key)? {
            MetaValue::F32(v) => Ok(f64::from(*v)),
            MetaValue::F64(v) => Ok(*v),
            other => Err(self.wrong(key, "f32 or f64", other)),
        }
    }

    /// A bool key.
    pub fn meta_bool(&self, key: &str) -> Result<bool, GgufError> {
        match self.get(key)? {
            MetaValue::Bool(v) => Ok(*v),
            other => Err(self.wrong(key, "bool", other)),
        }
    }

    /// A string key.
    pub fn meta_str(&self, key: &str) -> Result<&str, GgufError> {
        match self.get(key)? {
            MetaValue::Str(v) => Ok(v),
            other => Err(self.wrong(key, "string", other)),
        }
    }

    /// An array key of any element type.
    pub fn meta_array(&self, key: &str) -> Result<&[MetaValue], GgufError> {
        match self.get(key)? {
            MetaValue::Array(v) => Ok(v),
            other => Err(self.wrong(key, "array", other)),
        }
    }

    /// An array of strings (e.g. `tokenizer.ggml.tokens`).
    pub fn meta_str_array(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        let v = self.get(key)?;
        let items = v
            .as_array()
            .ok_or_else(|| self.wrong(key, "array of string", v))?;
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| self.wrong(key, "array of string", v))
            })
            .collect()
    }

    /// An array of f32 (e.g. `tokenizer.ggml.scores`).
    pub fn meta_f32_array(&self, key: &str) -> Result<Vec<f32>, GgufError> {
        let v = self.get(key)?;
        let items = v
            .as_array()
            .ok_or_else(|| self.wrong(key, "array of f32", v))?;
        items
            .iter()
            .map(|item| match item {
                MetaValue::F32(x) => Ok(*x),
                _ => Err(self.wrong(key, "array of f32", v)),
            })
            .collect()
    }

    fn int_array<T: TryFrom<i128>>(
        &self,
        key: &str,
        expected: &'static str,
    ) -> Result<Vec<T>, GgufError> {
        let v = self.get(key)?;
        let items = v.as_array().ok_or_else(|| self.wrong(key, expected, v))?;
        items
            .iter()
            .map(|item| {
                item.as_integer()
                    .and_then(|i| T::try_from(i).ok())
                    .ok_or_else(|| self.wrong(key, expected, v))
            })
            .collect()
    }

    /// An array of integers as i32 (e.g. `tokenizer.ggml.token_type`); any
    /// integer element type is accepted if every value fits.
    pub fn meta_i32_array(&self, key: &str) -> Result<Vec<i32>, GgufError> {
        self.int_array(key, "array of integers that fit in i32")
    }

    /// An array of integers as u32 (any integer element type whose values fit).
    pub fn meta_u32_array(&self, key: &str) -> Result<Vec<u32>, GgufError> {
        self.int_array(key, "array of integers that fit in u32")
    }
}
