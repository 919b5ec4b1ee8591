//! The GGUF parser. Works on one byte slice (a memory map or a Vec) with a
//! cursor; every read is bounds-checked and every count is compared with the
//! bytes that remain before it is used to size an allocation, so a corrupt or
//! hostile file yields a [`GgufError`] and never a panic or a huge allocation.
//!
//! Layout (GGUF v2/v3, little-endian): magic "GGUF", u32 version, u64 tensor
//! count, u64 metadata count, the key/value pairs (u64-length strings, u32
//! value type, value), the tensor infos (name, u32 n_dims, u64 dims, u32 ggml
//! type, u64 offset relative to the data section), padding to
//! `general.alignment`, then the data section.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::{
    DEFAULT_ALIGNMENT, GGUF_MAGIC, GgufError, GgufErrorKind, MAX_ARRAY_DEPTH, MAX_ARRAY_LEN,
    MAX_DIMS, MAX_KV_COUNT, MAX_STRING_LEN, MAX_TENSOR_COUNT, MAX_TENSOR_NAME_LEN, MetaType,
    MetaValue, TensorInfo,
};
use flexc_ir::quant::GgmlType;

/// What [`parse`] found; `GgufFile` adds the storage.
pub(super) struct Parsed {
    pub version: u32,
    pub metadata: Vec<(String, MetaValue)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    pub data_offset: u64,
    pub meta_index: HashMap<String, usize>,
    pub tensor_index: HashMap<String, usize>,
}

struct Cursor<'a> {
    file: &'a str,
    buf: &'a [u8],
    pos: usize,
}

type R<T> = Result<T, GgufError>;

impl<'a> Cursor<'a> {
    fn err_at(&self, offset: usize, kind: GgufErrorKind) -> GgufError {
        GgufError::Format {
            file: self.file.to_string(),
            offset: offset as u64,
            kind,
        }
    }

    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos.min(self.buf.len())) as u64
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> R<&'a [u8]> {
        let have = self.remaining();
        if n > have {
            return Err(self.err_at(
                self.pos,
                GgufErrorKind::Truncated {
                    what: what(),
                    need: n,
                    have,
                },
            ));
        }
        let start = self.pos;
        let end = start + n as usize; // n <= remaining, so this fits in usize
        self.pos = end;
        Ok(&self.buf[start..end])
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> R<[u8; N]> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> R<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> R<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A u64-length-prefixed string of at most `max` bytes.
    fn string(&mut self, max: u64, what: &dyn Fn() -> String) -> R<String> {
        let at = self.pos;
        let len = self.u64(&|| format!("length of {}", what()))?;
        if len > max {
            return Err(self.err_at(
                at,
                GgufErrorKind::StringTooLong {
                    what: what(),
                    len,
                    max,
                },
            ));
        }
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(self.err_at(at + 8, GgufErrorKind::InvalidUtf8 { what: what() })),
        }
    }

    fn value(&mut self, ty: MetaType, depth: usize, what: &dyn Fn() -> String) -> R<MetaValue> {
        Ok(match ty {
            MetaType::U8 => MetaValue::U8(u8::from_le_bytes(self.array(what)?)),
            MetaType::I8 => MetaValue::I8(i8::from_le_bytes(self.array(what)?)),
            MetaType::U16 => MetaValue::U16(u16::from_le_bytes(self.array(what)?)),
            MetaType::I16 => MetaValue::I16(i16::from_le_bytes(self.array(what)?)),
            MetaType::U32 => MetaValue::U32(u32::from_le_bytes(self.array(what)?)),
            MetaType::I32 => MetaValue::I32(i32::from_le_bytes(self.array(what)?)),
            MetaType::F32 => MetaValue::F32(f32::from_le_bytes(self.array(what)?)),
            MetaType::U64 => MetaValue::U64(u64::from_le_bytes(self.array(what)?)),
            MetaType::I64 => MetaValue::I64(i64::from_le_bytes(self.array(what)?)),
            MetaType::F64 => MetaValue::F64(f64::from_le_bytes(self.array(what)?)),
            // ggml reads a bool as one byte and treats any non-zero byte as true.
            MetaType::Bool => MetaValue::Bool(self.array::<1>(what)?[0] != 0),
            MetaType::Str => MetaValue::Str(self.string(MAX_STRING_LEN, what)?),
            MetaType::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.err_at(
                        self.pos,
                        GgufErrorKind::NestingTooDeep {
                            what: what(),
                            max: MAX_ARRAY_DEPTH,
                        },
                    ));
                }
                let at = self.pos;
                let elem_id = self.u32(&|| format!("element type of {}", what()))?;
                let elem = MetaType::from_u32(elem_id).ok_or_else(|| {
                    self.err_at(
                        at,
                        GgufErrorKind::UnknownValueType {
                            what: what(),
                            id: elem_id,
                        },
                    )
                })?;
                let len_at = self.pos;
                let len = self.u64(&|| format!("length of {}", what()))?;
                if len > MAX_ARRAY_LEN {
                    return Err(self.err_at(
                        len_at,
                        GgufErrorKind::ArrayTooLong {
                            what: what(),
                            len,
                            max: MAX_ARRAY_LEN,
                        },
                    ));
                }
                let have = self.remaining();
                let need = len.saturating_mul(elem.min_encoded_len());
                if need > have {
                    return Err(self.err_at(
                        len_at,
                        GgufErrorKind::ArrayPastEof {
                            what: what(),
                            len,
                            elem: elem.name(),
                            need,
                            have,
                        },
                    ));
                }
                // `len` is now bounded by the bytes left, so sizing the Vec by it is safe.
                let mut items = Vec::with_capacity(len as usize);
                for i in 0..len {
                    let item_what = || format!("{}[{i}]", what());
                    items.push(self.value(elem, depth + 1, &item_what)?);
                }
                MetaValue::Array(items)
            }
        })
    }

    /// A u64 count checked against `max` and against the bytes left
    /// (`min_each` bytes per item at least).
    fn count(&mut self, what: &'static str, max: u64, min_each: u64) -> R<u64> {
        let at = self.pos;
        let count = self.u64(&|| format!("{what} count"))?;
        if count > max {
            return Err(self.err_at(at, GgufErrorKind::CountTooLarge { what, count, max }));
        }
        let have = self.remaining();
        if count.saturating_mul(min_each) > have {
            return Err(self.err_at(at, GgufErrorKind::CountPastEof { what, count, have }));
        }
        Ok(count)
    }
}

/// Parse a whole GGUF file held in `buf`; `file` names it in errors.
pub(super) fn parse(file: &str, buf: &[u8]) -> Result<Parsed, GgufError> {
    let mut c = Cursor { file, buf, pos: 0 };

    let magic: [u8; 4] = c.array(&|| "magic".to_string())?;
    if magic != GGUF_MAGIC {
        return Err(c.err_at(0, GgufErrorKind::BadMagic(magic)));
    }
    let version = c.u32(&|| "version".to_string())?;
    match version {
        2 | 3 => {}
        1 => return Err(c.err_at(4, GgufErrorKind::VersionOne)),
        v if v != 0 && v & 0xFFFF == 0 && v.swap_bytes() <= 3 => {
            return Err(c.err_at(4, GgufErrorKind::BigEndian(v)));
        }
        v => return Err(c.err_at(4, GgufErrorKind::UnsupportedVersion(v))),
    }

    // Smallest tensor info: 8-byte name length + 1 name byte + 4 n_dims +
    // 8 (one dim) + 4 type + 8 offset. Smallest KV: 8 key length + 1 key
    // byte + 4 type + 1 value byte.
    let n_tensors = c.count("tensor", MAX_TENSOR_COUNT, 33)?;
    let n_kv = c.count("metadata key/value", MAX_KV_COUNT, 14)?;

    let mut metadata: Vec<(String, MetaValue)> = Vec::with_capacity(n_kv as usize);
    let mut meta_index: HashMap<String, usize> = HashMap::with_capacity(n_kv as usize);
    for i in 0..n_kv {
        let key_at = c.pos;
        let key = c.string(MAX_STRING_LEN, &|| format!("metadata key #{i}"))?;
        let ty_at = c.pos;
        let key_esc = esc(&key);
        let what = || format!("metadata '{key_esc}'");
        let ty_id = c.u32(&|| format!("value type of {}", what()))?;
        let ty = MetaType::from_u32(ty_id).ok_or_else(|| {
            c.err_at(
                ty_at,
                GgufErrorKind::UnknownValueType {
                    what: what(),
                    id: ty_id,
                },
            )
        })?;
        let value = c.value(ty, 0, &what)?;
        match meta_index.entry(key.clone()) {
            Entry::Occupied(_) => {
                return Err(c.err_at(key_at, GgufErrorKind::DuplicateKey(esc(&key))));
            }
            Entry::Vacant(e) => {
                e.insert(metadata.len());
            }
        }
        metadata.push((key, value));
    }

    let alignment = match meta_index
        .get("general.alignment")
        .and_then(|&i| metadata.get(i))
    {
        None => DEFAULT_ALIGNMENT,
        Some((_, MetaValue::U32(a))) if a.is_power_of_two() => u64::from(*a),
        Some((_, v)) => {
            return Err(c.err_at(
                c.pos,
                GgufErrorKind::BadAlignment(format!("{} {v}", v.type_description())),
            ));
        }
    };

    // Tensor infos: offsets are relative until the data section is known.
    struct Raw {
        at: usize,
        name: String,
        dims: Vec<u64>,
        ggml_type: GgmlType,
        rel_offset: u64,
        n_bytes: u64,
    }
    let mut raws: Vec<Raw> = Vec::with_capacity(n_tensors as usize);
    let mut tensor_index: HashMap<String, usize> = HashMap::with_capacity(n_tensors as usize);
    for i in 0..n_tensors {
        let at = c.pos;
        let name_len_at = c.pos;
        let name = c.string(MAX_STRING_LEN, &|| format!("name of tensor #{i}"))?;
        if name.len() as u64 > MAX_TENSOR_NAME_LEN {
            return Err(c.err_at(
                name_len_at,
                GgufErrorKind::TensorNameTooLong {
                    len: name.len() as u64,
                    max: MAX_TENSOR_NAME_LEN,
                },
            ));
        }
        let dims_at = c.pos;
        let n_dims = c.u32(&|| format!("dimension count of tensor '{}'", esc(&name)))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(c.err_at(
                dims_at,
                GgufErrorKind::BadDimCount {
                    name: esc(&name),
                    n_dims,
                    max: MAX_DIMS,
                },
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            dims.push(c.u64(&|| format!("dimension {d} of tensor '{}'", esc(&name)))?);
        }
        if dims.contains(&0) {
            return Err(c.err_at(
                dims_at,
                GgufErrorKind::ZeroDim {
                    name: esc(&name),
                    dims,
                },
            ));
        }
        // ggml stores dims as int64_t: the element count must fit in i64.
        let n_elems = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let n_elems = match n_elems {
            Some(n) if n <= i64::MAX as u64 => n,
            _ => {
                return Err(c.err_at(
                    dims_at,
                    GgufErrorKind::DimsOverflow {
                        name: esc(&name),
                        dims,
                    },
                ));
            }
        };
        let ty_at = c.pos;
        let ty_id = c.u32(&|| format!("ggml type of tensor '{}'", esc(&name)))?;
        let Some(ggml_type) = GgmlType::from_u32(ty_id) else {
            return Err(c.err_at(
                ty_at,
                GgufErrorKind::UnknownGgmlType {
                    name: esc(&name),
                    id: ty_id,
                },
            ));
        };
        let row = dims[0];
        let block = ggml_type.block_size();
        let n_bytes = match ggml_type.row_bytes(row) {
            Ok(rb) => rb.checked_mul(n_elems / row),
            Err(_) => {
                return Err(c.err_at(
                    ty_at,
                    GgufErrorKind::RowNotBlockMultiple {
                        name: esc(&name),
                        ty: ggml_type,
                        row,
                        block,
                    },
                ));
            }
        };
        let Some(n_bytes) = n_bytes else {
            return Err(c.err_at(
                dims_at,
                GgufErrorKind::DimsOverflow {
                    name: esc(&name),
                    dims,
                },
            ));
        };
        let off_at = c.pos;
        let rel_offset = c.u64(&|| format!("data offset of tensor '{}'", esc(&name)))?;
        if rel_offset % alignment != 0 {
            return Err(c.err_at(
                off_at,
                GgufErrorKind::MisalignedTensor {
                    name: esc(&name),
                    offset: rel_offset,
                    alignment,
                },
            ));
        }
        match tensor_index.entry(name.clone()) {
            Entry::Occupied(_) => {
                return Err(c.err_at(at, GgufErrorKind::DuplicateTensor(esc(&name))));
            }
            Entry::Vacant(e) => {
                e.insert(raws.len());
            }
        }
        raws.push(Raw {
            at: off_at,
            name,
            dims,
            ggml_type,
            rel_offset,
            n_bytes,
        });
    }

    let file_len = buf.len() as u64;
    let end_of_infos = c.pos as u64;
    // end_of_infos <= file_len < 2^63, so rounding up cannot overflow.
    let data_offset = end_of_infos.div_ceil(alignment) * alignment;
    if !raws.is_empty() && data_offset > file_len {
        return Err(c.err_at(
            c.pos,
            GgufErrorKind::DataPastEof {
                offset: data_offset,
                file_len,
            },
        ));
    }

    let mut tensors = Vec::with_capacity(raws.len());
    let mut ats = Vec::with_capacity(raws.len());
    for raw in raws {
        ats.push(raw.at);
        let end = data_offset
            .checked_add(raw.rel_offset)
            .and_then(|start| start.checked_add(raw.n_bytes).map(|end| (start, end)));
        match end {
            Some((start, end)) if end <= file_len => tensors.push(TensorInfo {
                name: raw.name,
                dims: raw.dims,
                ggml_type: raw.ggml_type,
                offset: start,
                n_bytes: raw.n_bytes,
            }),
            _ => {
                let end = data_offset
                    .saturating_add(raw.rel_offset)
                    .saturating_add(raw.n_bytes);
                return Err(c.err_at(
                    raw.at,
                    GgufErrorKind::TensorPastEof {
                        name: esc(&raw.name),
                        end,
                        file_len,
                    },
                ));
            }
        }
    }

    // Two tensors may not share bytes (llama.cpp rejects such files too):
    // a write through one would change the other, and an importer that
    // dequantizes both would silently read aliased weights.
    let mut order: Vec<usize> = (0..tensors.len()).filter(|&i| tensors[i].n_bytes > 0).collect();
    order.sort_by_key(|&i| tensors[i].offset);
    for w in order.windows(2) {
        let (a, b) = (&tensors[w[0]], &tensors[w[1]]);
        if a.offset + a.n_bytes > b.offset {
            return Err(c.err_at(
                ats[w[1]],
                GgufErrorKind::TensorsOverlap {
                    name: esc(&b.name),
                    other: esc(&a.name),
                    start: b.offset,
                    other_end: a.offset + a.n_bytes,
                },
            ));
        }
    }

    Ok(Parsed {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
        meta_index,
        tensor_index,
    })
}

/// A name from the file made safe for a one-line message (control
/// characters and quotes escaped as Rust would).
fn esc(s: &str) -> String {
    s.escape_debug().to_string()
}
