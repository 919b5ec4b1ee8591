//! The weight table: named tensors a module references but never inlines.
//!
//! An entry is a symbol, a type, and where its bytes live: a byte range of a
//! model file (memory-mapped on first use, shared by every entry of the same
//! file), inline data for small tensors, or bytes a pass derived (pruned,
//! quantized, packed). Bytes are always in the type's storage layout: plain
//! little-endian elements, or the encoding's blocks.

use crate::entity::WeightId;
use crate::func::Span;
use crate::ops::Dense;
use crate::types::{ElemType, TensorType};
use cranelift_entity::PrimaryMap;
use memmap2::Mmap;
use std::collections::HashMap;
use std::ops::{Deref, Range};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where an entry's bytes come from.
#[derive(Clone, Debug)]
pub enum WeightSource {
    /// Inline data from the text (`= dense<[...]>`).
    Inline(Dense),
    /// A byte range of a file (`= file<"model.gguf", offset, len>`).
    File {
        /// The file.
        path: PathBuf,
        /// First byte.
        offset: u64,
        /// Byte count.
        len: u64,
    },
    /// Bytes created by a pass.
    Derived(Arc<[u8]>),
}

/// One entry of the table.
#[derive(Clone, Debug)]
pub struct WeightData {
    /// The symbol (without `@`).
    pub name: String,
    /// Its type (fixed shape).
    pub ty: TensorType,
    /// Its bytes.
    pub source: WeightSource,
    /// Where it was declared, when parsed from text.
    pub span: Span,
}

/// An error reading a weight's bytes.
#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    /// The file could not be opened or mapped.
    #[error("{path}: cannot read weight '{name}': {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The weight.
        name: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The range lies outside the file or the size disagrees with the type.
    #[error("weight '{name}': {message}")]
    Layout {
        /// The weight.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// A weight's bytes: a view into a mapped file or an owned buffer.
#[derive(Clone)]
pub enum WeightBytes {
    /// A range of a memory-mapped file.
    Mapped(Arc<Mmap>, Range<usize>),
    /// Owned bytes.
    Owned(Arc<[u8]>),
}

impl Deref for WeightBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            WeightBytes::Mapped(m, r) => &m[r.clone()],
            WeightBytes::Owned(b) => b,
        }
    }
}

/// The named weights of a module.
#[derive(Default)]
pub struct WeightTable {
    entries: PrimaryMap<WeightId, WeightData>,
    by_name: HashMap<String, WeightId>,
    maps: Mutex<HashMap<PathBuf, Arc<Mmap>>>,
}

impl Clone for WeightTable {
    fn clone(&self) -> Self {
        WeightTable { entries: self.entries.clone(), by_name: self.by_name.clone(), maps: Mutex::default() }
    }
}

impl std::fmt::Debug for WeightTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.entries.values().map(|w| &w.name)).finish()
    }
}

impl WeightTable {
    /// Adds an entry; fails if the name is taken.
    pub fn insert(&mut self, data: WeightData) -> Result<WeightId, String> {
        if self.by_name.contains_key(&data.name) {
            return Err(format!("weight @{} is declared twice", data.name));
        }
        let name = data.name.clone();
        let id = self.entries.push(data);
        self.by_name.insert(name, id);
        Ok(id)
    }

    /// Looks an entry up by name.
    pub fn lookup(&self, name: &str) -> Option<WeightId> {
        self.by_name.get(name).copied()
    }

    /// The entry of an id.
    pub fn get(&self, id: WeightId) -> &WeightData {
        &self.entries[id]
    }

    /// Every entry, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (WeightId, &WeightData)> {
        self.entries.iter()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry `keep` rejects (names are freed; ids are not reused).
    pub fn retain(&mut self, mut keep: impl FnMut(&WeightData) -> bool) {
        let old = std::mem::take(&mut self.entries);
        self.by_name.clear();
        for (_, w) in old.into_iter() {
            if keep(&w) {
                let name = w.name.clone();
                let id = self.entries.push(w);
                self.by_name.insert(name, id);
            }
        }
    }

    /// Reads an entry's bytes in its storage layout, checking their size.
    pub fn bytes(&self, id: WeightId) -> Result<WeightBytes, WeightError> {
        let w = &self.entries[id];
        let layout = |message: String| WeightError::Layout { name: w.name.clone(), message };
        let want = w.ty.storage_bytes().ok_or_else(|| layout(format!("type {} has no fixed storage size", w.ty)))?;
        let bytes = match &w.source {
            WeightSource::Inline(d) => WeightBytes::Owned(dense_bytes(d, w.ty.elem).into()),
            WeightSource::Derived(b) => WeightBytes::Owned(b.clone()),
            WeightSource::File { path, offset, len } => {
                let map = self.map(path).map_err(|source| WeightError::Io { path: path.clone(), name: w.name.clone(), source })?;
                let end = offset.checked_add(*len).filter(|&e| e <= map.len() as u64).ok_or_else(|| {
                    layout(format!("bytes {offset}..{offset}+{len} lie outside {} ({} bytes)", path.display(), map.len()))
                })?;
                WeightBytes::Mapped(map, *offset as usize..end as usize)
            }
        };
        if bytes.len() as u64 != want {
            return Err(layout(format!("{} needs {want} bytes, the source has {}", w.ty, bytes.len())));
        }
        Ok(bytes)
    }

    fn map(&self, path: &Path) -> std::io::Result<Arc<Mmap>> {
        let mut maps = self.maps.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = maps.get(path) {
            return Ok(m.clone());
        }
        let file = crate::limits::open_regular(path)?;
        // SAFETY: the map is read-only; flexc never writes model files, and a
        // file truncated underneath us is the same hazard every mmap reader has.
        let map = Arc::new(unsafe { Mmap::map(&file)? });
        maps.insert(path.to_path_buf(), map.clone());
        Ok(map)
    }
}

/// Rounds an f64 to f32 with round-to-odd: a following round-to-nearest-even
/// to f16 or bf16 (far narrower than f32) then gives exactly the correctly
/// rounded result. `half`'s own `from_f64` rounds twice (through f32, or after
/// dropping the low 32 mantissa bits), which misrounds values just past a
/// halfway point (2049.0000001 to f16 gave 2048, not 2050).
pub fn f64_to_f32_round_odd(x: f64) -> f32 {
    let f = x as f32;
    if !x.is_finite() || f as f64 == x {
        return f;
    }
    // Truncate toward zero, then record the inexactness in the lowest bit.
    let mut bits = f.to_bits();
    if (f as f64).abs() > x.abs() {
        bits -= 1;
    }
    f32::from_bits(bits | 1)
}

/// Encodes inline values into plain little-endian storage of `elem`.
pub fn dense_bytes(d: &Dense, elem: ElemType) -> Vec<u8> {
    let mut out = Vec::with_capacity(d.len() * elem.storage_bytes());
    match d {
        Dense::Bytes(b) => out.extend_from_slice(b),
        Dense::Float(v) => {
            for &x in v {
                match elem {
                    ElemType::F16 => out.extend_from_slice(&half::f16::from_f32(f64_to_f32_round_odd(x)).to_le_bytes()),
                    ElemType::BF16 => out.extend_from_slice(&half::bf16::from_f32(f64_to_f32_round_odd(x)).to_le_bytes()),
                    _ => out.extend_from_slice(&(x as f32).to_le_bytes()),
                }
            }
        }
        Dense::Int(v) => {
            for &x in v {
                let b = x.to_le_bytes();
                out.extend_from_slice(&b[..elem.storage_bytes()]);
            }
        }
    }
    out
}
