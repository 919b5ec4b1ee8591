//! ONNX tensors at import time: data types, initializers (inline, typed
//! fields or external files, with bounds checks) and the folded constants
//! the importer computes with.
//!
//! A [`Const`] holds small tensors whose values the importer needs (shapes,
//! axes, scales, folded shape subgraphs). Integers are [`SymInt`]s so that
//! `Shape` of a tensor with symbolic dimensions still folds: the element is
//! the dimension's name. Large initializers stay [`Init`]s: byte ranges that
//! become weight-table entries and are never copied.

use super::proto;
use bytes::Bytes;
use flexc_ir::types::{Dim, ElemType};
use flexc_ir::weights::WeightSource;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Tensors at most this large are decoded when an op needs their values.
pub const FOLD_LIMIT: usize = 1 << 16;

/// Float initializers up to this size are folded constants; larger ones weights.
pub const INLINE_LIMIT: usize = 64;

/// More elements than any real tensor has (a dimension product past this is an error).
const MAX_ELEMS: u64 = 1 << 40;

/// An integer known at import: a number or a symbolic dimension.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SymInt {
    /// A number.
    N(i64),
    /// The size bound to this dimension name at run time.
    S(Arc<str>),
}

impl SymInt {
    /// The number, if known.
    pub fn n(&self) -> Option<i64> {
        match self {
            SymInt::N(v) => Some(*v),
            SymInt::S(_) => None,
        }
    }

    /// This integer as a (non-negative) dimension.
    pub fn dim(&self) -> Option<Dim> {
        match self {
            SymInt::N(v) => u64::try_from(*v).ok().map(Dim::Fixed),
            SymInt::S(s) => Some(Dim::Sym(s.clone())),
        }
    }

    /// A dimension as an integer.
    pub fn of_dim(d: &Dim) -> SymInt {
        match d {
            Dim::Fixed(n) => SymInt::N(*n as i64),
            Dim::Sym(s) => SymInt::S(s.clone()),
        }
    }
}

impl std::fmt::Display for SymInt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SymInt::N(v) => write!(f, "{v}"),
            SymInt::S(s) => f.write_str(s),
        }
    }
}

/// Values of a folded constant.
#[derive(Clone, PartialEq, Debug)]
pub enum CData {
    /// Float elements.
    F(Vec<f64>),
    /// Integer (and boolean) elements.
    I(Vec<SymInt>),
}

/// A constant the importer computes with (row-major).
#[derive(Clone, PartialEq, Debug)]
pub struct Const {
    /// Element type.
    pub elem: ElemType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Elements.
    pub data: CData,
}

impl Const {
    /// Element count.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// An integer constant.
    pub fn ints(elem: ElemType, shape: Vec<usize>, v: Vec<i64>) -> Const {
        Const { elem, shape, data: CData::I(v.into_iter().map(SymInt::N).collect()) }
    }

    /// The integer elements, if every one is a known number.
    pub fn known_ints(&self) -> Option<Vec<i64>> {
        match &self.data {
            CData::I(v) => v.iter().map(SymInt::n).collect(),
            CData::F(_) => None,
        }
    }

    /// The elements as f64 (integers converted), if every one is known.
    pub fn floats(&self) -> Option<Vec<f64>> {
        match &self.data {
            CData::F(v) => Some(v.clone()),
            CData::I(v) => v.iter().map(|x| x.n().map(|n| n as f64)).collect(),
        }
    }
}

/// An initializer too large to fold: a byte range that becomes a weight.
#[derive(Clone, Debug)]
pub struct Init {
    /// The initializer's name (the weight's symbol).
    pub name: String,
    /// Element type.
    pub elem: ElemType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Where its bytes are.
    pub source: WeightSource,
}

/// The flexc element type of an ONNX `TensorProto.DataType`.
pub fn elem_of(dt: i32) -> Result<ElemType, String> {
    use proto::tensor_proto::DataType as D;
    Ok(match D::try_from(dt) {
        Ok(D::Float) => ElemType::F32,
        Ok(D::Float16) => ElemType::F16,
        Ok(D::Bfloat16) => ElemType::BF16,
        Ok(D::Double) => ElemType::F32,
        Ok(D::Int64) => ElemType::I64,
        Ok(D::Int32) => ElemType::I32,
        Ok(D::Int16) => ElemType::I16,
        Ok(D::Int8) => ElemType::I8,
        Ok(D::Uint8) => ElemType::U8,
        Ok(D::Uint16) => ElemType::I32,
        Ok(D::Uint32) => ElemType::I64,
        Ok(D::Bool) => ElemType::I1,
        Ok(D::Int4) => ElemType::I4,
        Ok(D::Uint4) => ElemType::U4,
        Ok(other) => return Err(format!("data type {} is not supported", other.as_str_name())),
        Err(_) => return Err(format!("unknown data type {dt}")),
    })
}

/// True for the ONNX types stored at another width than flexc's (f64,
/// packed 4-bit): their values are converted while reading.
fn converted(dt: i32) -> bool {
    use proto::tensor_proto::DataType as D;
    matches!(D::try_from(dt), Ok(D::Double | D::Int4 | D::Uint4 | D::Uint16 | D::Uint32))
}

/// Where an initializer's bytes are, checked against the file they are in.
pub struct Located {
    /// Plain little-endian bytes in ONNX layout.
    pub bytes: Bytes,
    /// The file and offset they were read from (for a weight-table reference).
    pub at: Option<(PathBuf, u64)>,
}

/// Reads a tensor's shape (checked) and the location of its bytes.
pub fn shape_of(t: &proto::TensorProto) -> Result<Vec<usize>, String> {
    let mut n: u64 = 1;
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        let d = u64::try_from(d).map_err(|_| format!("negative dimension {d}"))?;
        n = n.checked_mul(d).filter(|&n| n <= MAX_ELEMS).ok_or_else(|| format!("dimensions {:?} are too large", t.dims))?;
        shape.push(d as usize);
    }
    Ok(shape)
}

/// The model file's memory-mapped bytes and the folder external data is read from.
pub struct FileCx<'a> {
    /// The whole model file.
    pub file: &'a Bytes,
    /// The model file's path.
    pub path: &'a Path,
}

/// Reads one tensor: its element type, shape and data (raw, typed fields or external).
pub fn read(t: &proto::TensorProto, fx: &FileCx<'_>) -> Result<(ElemType, Vec<usize>, Located), String> {
    let elem = elem_of(t.data_type.unwrap_or(0))?;
    let shape = shape_of(t)?;
    let n: usize = shape.iter().product();
    let dt = t.data_type.unwrap_or(0);
    let stored_width = match proto::tensor_proto::DataType::try_from(dt) {
        Ok(proto::tensor_proto::DataType::Double) => 8,
        Ok(proto::tensor_proto::DataType::Int4 | proto::tensor_proto::DataType::Uint4) => 0,
        Ok(proto::tensor_proto::DataType::Uint16) => 2,
        Ok(proto::tensor_proto::DataType::Uint32) => 4,
        _ => elem.storage_bytes(),
    };
    let want = if stored_width == 0 { n.div_ceil(2) } else { n * stored_width };
    let external = t.data_location == Some(proto::tensor_proto::DataLocation::External as i32);
    let loc = if external {
        external_bytes(t, fx, want)?
    } else if let Some(raw) = t.raw_data.as_ref().filter(|r| !r.is_empty() || n == 0) {
        if raw.len() != want {
            return Err(format!("raw_data holds {} bytes, {} {elem}{shape:?} needs {want}", raw.len(), n));
        }
        let off = (raw.as_ptr() as usize).wrapping_sub(fx.file.as_ptr() as usize);
        let inside = raw.as_ptr() as usize >= fx.file.as_ptr() as usize && off + raw.len() <= fx.file.len();
        Located { bytes: raw.clone(), at: inside.then(|| (fx.path.to_path_buf(), off as u64)) }
    } else {
        Located { bytes: typed_bytes(t, elem, n)?, at: None }
    };
    if converted(dt) {
        let bytes = convert(dt, &loc.bytes, n);
        return Ok((elem, shape, Located { bytes, at: None }));
    }
    Ok((elem, shape, loc))
}

fn external_bytes(t: &proto::TensorProto, fx: &FileCx<'_>, want: usize) -> Result<Located, String> {
    let get = |k: &str| t.external_data.iter().find(|e| e.key.as_deref() == Some(k)).and_then(|e| e.value.clone());
    let loc = get("location").ok_or("external data without a 'location'")?;
    let rel = Path::new(&loc);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(format!("external data location '{loc}' is outside the model's folder"));
    }
    let path = fx.path.parent().unwrap_or(Path::new(".")).join(rel);
    let num = |k: &str| -> Result<Option<u64>, String> { get(k).map(|v| v.parse::<u64>().map_err(|_| format!("external data {k} '{v}' is not a number"))).transpose() };
    let offset = num("offset")?.unwrap_or(0);
    let len = num("length")?.unwrap_or(want as u64);
    if len != want as u64 {
        return Err(format!("external data length {len} does not match the {want} bytes the tensor needs"));
    }
    let size = std::fs::metadata(&path).map_err(|e| format!("external data file {}: {e}", path.display()))?.len();
    if offset.checked_add(len).is_none_or(|end| end > size) {
        return Err(format!("external data [{offset}, +{len}) lies outside {} ({size} bytes)", path.display()));
    }
    let f = std::fs::File::open(&path).map_err(|e| format!("external data file {}: {e}", path.display()))?;
    // SAFETY: the file is mapped read-only; like every weight file flexc
    // reads, it must not be modified while the model is in use.
    let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| format!("external data file {}: {e}", path.display()))?;
    let bytes = Bytes::from_owner(map).slice(offset as usize..(offset + len) as usize);
    Ok(Located { bytes, at: Some((path, offset)) })
}

/// Little-endian bytes from the typed repeated fields.
fn typed_bytes(t: &proto::TensorProto, elem: ElemType, n: usize) -> Result<Bytes, String> {
    let dt = t.data_type.unwrap_or(0);
    use proto::tensor_proto::DataType as D;
    let mut out: Vec<u8> = Vec::new();
    let count = |have: usize| if have == n { Ok(()) } else { Err(format!("holds {have} values, its shape needs {n}")) };
    match D::try_from(dt) {
        Ok(D::Float) => {
            count(t.float_data.len())?;
            t.float_data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        Ok(D::Double) => {
            count(t.double_data.len())?;
            t.double_data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        Ok(D::Int64) => {
            count(t.int64_data.len())?;
            t.int64_data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        Ok(D::Uint32) => {
            count(t.uint64_data.len())?;
            t.uint64_data.iter().for_each(|v| out.extend_from_slice(&(*v as u32).to_le_bytes()));
        }
        Ok(D::Float16 | D::Bfloat16 | D::Int16 | D::Uint16) => {
            count(t.int32_data.len())?;
            t.int32_data.iter().for_each(|v| out.extend_from_slice(&(*v as u16).to_le_bytes()));
        }
        Ok(D::Int32) => {
            count(t.int32_data.len())?;
            t.int32_data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        Ok(D::Int8 | D::Uint8 | D::Bool) => {
            count(t.int32_data.len())?;
            t.int32_data.iter().for_each(|v| out.push(*v as u8));
        }
        Ok(D::Int4 | D::Uint4) => {
            count(if t.int32_data.len() == n.div_ceil(2) { n } else { t.int32_data.len() * 2 })?;
            t.int32_data.iter().for_each(|v| out.push(*v as u8));
        }
        _ => return Err(format!("{elem} values in typed fields are not supported")),
    }
    Ok(Bytes::from(out))
}

/// f64 → f32 and packed 4-bit → one byte per element.
fn convert(dt: i32, b: &[u8], n: usize) -> Bytes {
    use proto::tensor_proto::DataType as D;
    let mut out = Vec::new();
    match D::try_from(dt) {
        Ok(D::Double) => b.chunks_exact(8).for_each(|c| out.extend_from_slice(&(f64::from_le_bytes(c.try_into().unwrap_or_default()) as f32).to_le_bytes())),
        // Unsigned 16/32-bit values widen into i32/i64.
        Ok(D::Uint16) => b.chunks_exact(2).for_each(|c| out.extend_from_slice(&(u16::from_le_bytes([c[0], c[1]]) as i32).to_le_bytes())),
        Ok(D::Uint32) => b.chunks_exact(4).for_each(|c| out.extend_from_slice(&(u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).to_le_bytes())),
        Ok(D::Int4) => (0..n).for_each(|i| {
            let nib = (b[i / 2] >> (4 * (i % 2))) & 15;
            out.push(((nib << 4) as i8 >> 4) as u8);
        }),
        _ => (0..n).for_each(|i| out.push((b[i / 2] >> (4 * (i % 2))) & 15)),
    }
    Bytes::from(out)
}

/// Decodes little-endian bytes of `elem` into a constant.
pub fn decode(elem: ElemType, shape: Vec<usize>, b: &[u8]) -> Const {
    let w = elem.storage_bytes();
    let words = b.chunks_exact(w);
    let data = match elem {
        ElemType::F32 => CData::F(words.map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect()),
        ElemType::F16 => CData::F(words.map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64()).collect()),
        ElemType::BF16 => CData::F(words.map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64()).collect()),
        e => {
            let signed = e.int_range().is_some_and(|(lo, _)| lo < 0);
            CData::I(
                words
                    .map(|c| {
                        let mut full = [0u8; 8];
                        full[..w].copy_from_slice(c);
                        let raw = i64::from_le_bytes(full);
                        let bits = 8 * w as u32;
                        SymInt::N(if signed && bits < 64 { (raw << (64 - bits)) >> (64 - bits) } else { raw })
                    })
                    .collect(),
            )
        }
    };
    let data = match (elem, data) {
        (ElemType::I1, CData::I(v)) => CData::I(v.into_iter().map(|x| SymInt::N((x != SymInt::N(0)) as i64)).collect()),
        (_, d) => d,
    };
    Const { elem, shape, data }
}

/// Reads a tensor as a folded constant or, if large, as a weight.
pub fn load(name: &str, t: &proto::TensorProto, fx: &FileCx<'_>) -> Result<Result<Const, Init>, String> {
    let (elem, shape, loc) = read(t, fx)?;
    let n: usize = shape.iter().product();
    // Small tensors and integer ones (shapes, indices, position ids) fold;
    // float data of any size stays a weight (decoded on demand when an op
    // needs its values, see `Cx::known`).
    if n <= INLINE_LIMIT || (n <= FOLD_LIMIT && !elem.is_float()) {
        return Ok(Ok(decode(elem, shape, &loc.bytes)));
    }
    let source = match loc.at {
        Some((path, offset)) => WeightSource::File { path, offset, len: loc.bytes.len() as u64 },
        None => WeightSource::Derived(Arc::from(&loc.bytes[..])),
    };
    Ok(Err(Init { name: name.to_string(), elem, shape, source }))
}

/// Decodes a weight's bytes into a constant (for ops that need the values).
pub fn init_values(init: &Init) -> Result<Const, String> {
    let bytes: Vec<u8> = match &init.source {
        WeightSource::Derived(b) => b.to_vec(),
        WeightSource::File { path, offset, len } => {
            use std::io::{Read, Seek, SeekFrom};
            let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            f.seek(SeekFrom::Start(*offset)).map_err(|e| e.to_string())?;
            let mut b = vec![0u8; *len as usize];
            f.read_exact(&mut b).map_err(|e| e.to_string())?;
            b
        }
        WeightSource::Inline(_) => return Err("inline weight".into()),
    };
    Ok(decode(init.elem, init.shape.clone(), &bytes))
}

/// A constant as a reference-interpreter tensor (symbols are not allowed).
pub fn to_tensor(c: &Const) -> Result<flexc_backends::reference::Tensor, String> {
    use flexc_backends::reference::Tensor;
    match &c.data {
        CData::F(v) => Ok(Tensor::float(c.elem, &c.shape, v.iter().map(|&x| x as f32).collect())),
        CData::I(_) => Tensor::int(c.elem, &c.shape, c.known_ints().ok_or("symbolic values")?),
    }
}

/// Reads a serialized `TensorProto` file (ONNX's test data): its name and values.
pub fn read_pb(path: &Path) -> Result<(String, flexc_backends::reference::Tensor), String> {
    use prost::Message;
    let bytes = Bytes::from(std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?);
    let t = proto::TensorProto::decode(bytes.clone()).map_err(|e| format!("{}: not a TensorProto: {e}", path.display()))?;
    let (elem, shape, loc) = read(&t, &FileCx { file: &bytes, path })?;
    Ok((t.name.clone().unwrap_or_default(), to_tensor(&decode(elem, shape, &loc.bytes))?))
}
