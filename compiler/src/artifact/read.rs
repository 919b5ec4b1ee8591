//! Opening a `.flexc` file: map it, check the header, the table and every
//! section's checksum, parse the metadata, provenance and IR, and point each
//! weight at its bytes inside the map. No pass runs; what remains for a
//! backend is code generation.

use super::container::{parse, Container, Section, MAGIC};
use super::{ArtifactError, Provenance, PACK_DATA, PACK_INDEX, WEIGHTS_REF, WEIGHT_ALIGN};
use flexc_backends::cpu::prepack::{PackRecord, Prepacked};
use flexc_ir::weights::WeightBytes;
use std::sync::Arc;
use crate::frontend::gguf::GgufFile;
use flexc_ir::text::parse_module;
use flexc_ir::verify::verify_module;
use flexc_ir::weights::{WeightData, WeightSource, WeightTable};
use flexc_ir::Module;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A loaded artifact.
pub struct Artifact {
    /// The file (canonical path).
    pub path: PathBuf,
    /// Its container version.
    pub version: u32,
    /// Its sections.
    pub sections: Vec<Section>,
    /// How it was made.
    pub provenance: Provenance,
    /// The source model's metadata and tokenizer (a tensor-less GGUF).
    pub meta: GgufFile,
    /// The compiled module; its weights are ranges of this file.
    pub module: Module,
    /// The LUT streams stored packed (sections `lutidx` + `lutpack`), if
    /// the artifact has them.
    pub prepacked: Option<Prepacked>,
}

/// True when `path` is a file that starts with the `.flexc` magic or is
/// named `*.flexc` (so a damaged artifact gets the artifact reader's error).
pub fn is_artifact(path: &Path) -> bool {
    if !path.is_file() {
        return false;
    }
    let mut head = Vec::with_capacity(MAGIC.len());
    path.extension().is_some_and(|e| e == "flexc") || (std::fs::File::open(path).and_then(|f| f.take(MAGIC.len() as u64).read_to_end(&mut head)).is_ok() && head == MAGIC)
}

fn map(path: &Path) -> Result<(String, PathBuf, Arc<memmap2::Mmap>), ArtifactError> {
    let name = path.display().to_string();
    let io = |e: std::io::Error| ArtifactError::new(&name, None, format!("cannot read: {e}"));
    let canonical = std::fs::canonicalize(path).map_err(io)?;
    let file = std::fs::File::open(&canonical).map_err(io)?;
    // SAFETY: read-only map; as for every mmap model loader, the file must not
    // be truncated or rewritten underneath a running process (flexc writes
    // artifacts to a temporary name and renames them, never in place).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    Ok((name, canonical, Arc::new(map)))
}

fn meta_of(name: &str, c: &Container, bytes: &[u8]) -> Result<GgufFile, ArtifactError> {
    let (_, meta) = c.section(name, bytes, "meta")?;
    GgufFile::from_bytes_named(&format!("{name}: section meta"), meta.to_vec()).map_err(|e| ArtifactError::new(name, Some("meta"), e.to_string()))
}

/// Reads only an artifact's metadata (tokenizer included), checking the
/// header, the table and that section (what `tokenize` needs).
pub fn open_meta(path: &Path) -> Result<GgufFile, ArtifactError> {
    let (name, _, map) = map(path)?;
    let c = parse(&name, &map)?;
    meta_of(&name, &c, &map)
}

/// Opens and checks a `.flexc` file; its packed streams are read in place
/// from the map.
pub fn open(path: &Path) -> Result<Artifact, ArtifactError> {
    let (name, path, map) = map(path)?;
    load_with(&name, path, &map, Some(&map))
}

/// Checks and loads the bytes of an artifact stored at `path` (named `name`
/// in errors); its weights refer to `path`, its packed streams are copied.
/// [`open`] maps the file and reads it in place; fuzzers call this on
/// arbitrary bytes.
pub fn load(name: &str, path: PathBuf, bytes: &[u8]) -> Result<Artifact, ArtifactError> {
    load_with(name, path, bytes, None)
}

/// The packed LUT streams of sections `lutidx` (JSON records) and `lutpack`
/// (their bytes), when either is present: ranges of `map` if given (the map
/// `bytes` is), else copies.
fn prepacked(name: &str, c: &Container, bytes: &[u8], map: Option<&Arc<memmap2::Mmap>>) -> Result<Option<Prepacked>, ArtifactError> {
    let has = |tag: &str| c.sections.iter().any(|s| s.tag == tag);
    if !has(PACK_INDEX) && !has(PACK_DATA) {
        return Ok(None);
    }
    let (_, idx) = c.section(name, bytes, PACK_INDEX)?;
    let (data, _) = c.section(name, bytes, PACK_DATA)?;
    let records: Vec<PackRecord> = serde_json::from_slice(idx).map_err(|e| ArtifactError::new(name, Some(PACK_INDEX), e.to_string()))?;
    let range = |offset: u64, len: u64| -> Option<std::ops::Range<usize>> {
        let end = offset.checked_add(len).filter(|&e| e <= data.len)?;
        Some(usize::try_from(data.offset + offset).ok()?..usize::try_from(data.offset + end).ok()?)
    };
    let stream = |offset: u64, len: u64| -> Option<WeightBytes> {
        let r = range(offset, len)?;
        Some(match map {
            Some(m) => WeightBytes::Mapped(m.clone(), r),
            None => WeightBytes::Owned(bytes.get(r)?.into()),
        })
    };
    Prepacked::from_records(&records, stream).map(Some).map_err(|e| ArtifactError::new(name, Some(PACK_INDEX), e))
}

fn load_with(name: &str, path: PathBuf, bytes: &[u8], map: Option<&Arc<memmap2::Mmap>>) -> Result<Artifact, ArtifactError> {
    let name = name.to_string();
    let c = parse(&name, bytes)?;
    let sec = |tag: &str| c.section(&name, bytes, tag);
    let err = |tag: &str, message: String| ArtifactError::new(&name, Some(tag), message);
    let meta = meta_of(&name, &c, bytes)?;
    let (_, prov) = sec("prov")?;
    let provenance: Provenance = serde_json::from_slice(prov).map_err(|e| err("prov", e.to_string()))?;
    let (_, ir) = sec("ir")?;
    let ir = std::str::from_utf8(ir).map_err(|e| err("ir", format!("byte {}: not UTF-8", e.valid_up_to())))?;
    let (ws, _) = sec("weights")?;
    let (w_off, w_len) = (ws.offset, ws.len);

    let mut module = parse_module(ir).map_err(|d| {
        let (line, col) = d.line_col(ir);
        err("ir", format!("{line}:{col}: {}", d.message))
    })?;
    verify_module(&module).map_err(|es| err("ir", es.first().map(ToString::to_string).unwrap_or_default()))?;
    let mut table = WeightTable::default();
    for (_, w) in module.weights.iter() {
        let source = match &w.source {
            WeightSource::File { path: p, offset, len } => {
                if p.as_os_str() != WEIGHTS_REF {
                    return Err(err("ir", format!("weight @{} refers to {} outside the artifact", w.name, p.display())));
                }
                if offset.checked_add(*len).is_none_or(|end| end > w_len) || offset % WEIGHT_ALIGN != 0 {
                    return Err(err("ir", format!("weight @{}: bytes {offset}..+{len} are not an aligned range of the {w_len}-byte weights section", w.name)));
                }
                if w.ty.storage_bytes() != Some(*len) {
                    return Err(err("ir", format!("weight @{}: {} needs {:?} bytes, the artifact holds {len}", w.name, w.ty, w.ty.storage_bytes())));
                }
                WeightSource::File { path: path.clone(), offset: w_off + offset, len: *len }
            }
            other => other.clone(),
        };
        table.insert(WeightData { source, ..w.clone() }).map_err(|e| err("ir", e))?;
    }
    module.weights = table;
    let prepacked = prepacked(&name, &c, bytes, map)?;
    Ok(Artifact { path, version: c.version, sections: c.sections, provenance, meta, module, prepacked })
}
