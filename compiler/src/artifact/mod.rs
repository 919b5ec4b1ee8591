//! The CPU artifact: one `.flexc` file holding a model compiled for the CPU
//! target, which every verb loads without importing or running a pass again.
//!
//! A `.flexc` is a [`container`] of four sections:
//!
//! - `meta`: the source model's metadata (architecture facts and the
//!   tokenizer) as a GGUF file with no tensors, read back by the GGUF reader;
//! - `prov`: the [`Provenance`] record (JSON);
//! - `ir`: the module after the pipeline as `.fir` text, every weight
//!   declared `file<"flexc:weights", offset, len>` (offsets relative to the
//!   `weights` section; encodings in their `.fir` spelling);
//! - `weights`: every weight's bytes in its type's storage layout (the
//!   encoding's blocks, planes or values), page-aligned section, each tensor
//!   at a 64-byte boundary, so the runtime reads them in place from the map;
//! - `lutidx` + `lutpack` (optional): every LUT kernel stream the CPU
//!   runtime would pack at load, packed at compile time
//!   ([`flexc_backends::cpu::prepack`]): JSON records (weight, activation
//!   group, K tile, kernel spec, range) and the page-aligned streams, used in
//!   place, so a low-bit artifact loads with no packing. An artifact without
//!   them still loads (its weights are packed at load).
//!
//! [`write::to_bytes`] builds one; [`read::open`] checks and loads one.

pub mod container;
pub mod provenance;
pub mod read;
pub mod write;

pub use provenance::{FileRecord, Provenance};
pub use read::{is_artifact, open, open_meta, Artifact};

/// The section of packed-stream records.
pub const PACK_INDEX: &str = "lutidx";
/// The section of packed streams.
pub const PACK_DATA: &str = "lutpack";

/// The file name weights of an artifact's IR refer to: the artifact's own
/// `weights` section.
pub const WEIGHTS_REF: &str = "flexc:weights";
/// Every tensor in the `weights` section starts at a multiple of this.
pub const WEIGHT_ALIGN: u64 = 64;
/// The `weights` section starts at a multiple of this (a page).
pub const SECTION_ALIGN: u64 = 4096;

/// A `.flexc` file that cannot be written or read: one line naming the file,
/// the section (when the damage is inside one) and the cause.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {}{message}", section.as_deref().map(|s| format!("section {s}: ")).unwrap_or_default())]
pub struct ArtifactError {
    /// The file.
    pub file: String,
    /// The section, if the error is inside one.
    pub section: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ArtifactError {
    /// An error in `file` (and `section`, if given).
    pub fn new(file: &str, section: Option<&str>, message: String) -> ArtifactError {
        ArtifactError { file: file.to_string(), section: section.map(str::to_string), message }
    }
}
