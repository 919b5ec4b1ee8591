//! Building a `.flexc` file from a compiled module: the weights are copied
//! out of wherever they live (the source model's map, a pass's buffers) into
//! one aligned section, and the IR is printed with references to it.

use super::container::build;
use super::{ArtifactError, Provenance, PACK_DATA, PACK_INDEX, SECTION_ALIGN, WEIGHTS_REF, WEIGHT_ALIGN};
use flexc_backends::cpu::prepack::PackRecord;
use crate::frontend::gguf::{GgufWriter, MetaValue};
use flexc_ir::text::print_module;
use flexc_ir::weights::{WeightData, WeightSource, WeightTable};
use flexc_ir::Module;

/// Streams packed ahead of time: the records and the blob they index
/// ([`flexc_backends::cpu::prepack::pack_module`]).
pub type Packed<'a> = (&'a [PackRecord], &'a [u8]);

/// The bytes of a `.flexc` file for `module` (after its pipeline), the source
/// model's metadata `meta` (tokenizer included), its provenance and,
/// optionally, its LUT streams packed ahead of time. `file` names the
/// destination in errors.
pub fn to_bytes(file: &str, module: &Module, meta: &[(String, MetaValue)], prov: &Provenance, packed: Option<Packed<'_>>) -> Result<Vec<u8>, ArtifactError> {
    let err = |section: &str, message: String| ArtifactError::new(file, Some(section), message);
    let mut weights: Vec<u8> = Vec::new();
    let mut table = WeightTable::default();
    for (id, w) in module.weights.iter() {
        let source = match &w.source {
            WeightSource::Inline(d) => WeightSource::Inline(d.clone()),
            WeightSource::File { .. } | WeightSource::Derived(_) => {
                let bytes = module.weights.bytes(id).map_err(|e| err("weights", e.to_string()))?;
                let offset = (weights.len() as u64).div_ceil(WEIGHT_ALIGN) * WEIGHT_ALIGN;
                weights.resize(offset as usize, 0);
                weights.extend_from_slice(&bytes);
                WeightSource::File { path: WEIGHTS_REF.into(), offset, len: bytes.len() as u64 }
            }
        };
        table.insert(WeightData { source, ..w.clone() }).map_err(|e| err("ir", e))?;
    }
    let ir = print_module(&Module { weights: table, calibration: None, ..module.clone() });
    let mut g = GgufWriter::new(3);
    for (k, v) in meta {
        g.add_meta(k, v.clone());
    }
    let meta = g.to_bytes().map_err(|e| err("meta", e.to_string()))?;
    let prov = serde_json::to_vec_pretty(prov).map_err(|e| err("prov", e.to_string()))?;
    let mut parts: Vec<(&str, u64, &[u8])> = vec![("meta", 8, &meta), ("prov", 8, &prov), ("ir", 8, ir.as_bytes()), ("weights", SECTION_ALIGN, &weights)];
    let index;
    if let Some((records, blob)) = packed {
        index = serde_json::to_vec(records).map_err(|e| err(PACK_INDEX, e.to_string()))?;
        parts.push((PACK_INDEX, 8, &index));
        parts.push((PACK_DATA, SECTION_ALIGN, blob));
    }
    Ok(build(&parts))
}
