//! The provenance record of a `.flexc` file: what it was compiled from and
//! how, so a shipped artifact can be traced and reproduced. Stored as JSON
//! (the `prov` section); `flexc inspect` prints it.

use serde::{Deserialize, Serialize};

/// A file an artifact was built from: its name, size and sha256.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileRecord {
    /// The path as it was given to `flexc compile` (canonicalised).
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its sha256, lowercase hex.
    pub sha256: String,
}

/// How an artifact was made.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Provenance {
    /// The flexc version that wrote it (`CARGO_PKG_VERSION`).
    pub flexc_version: String,
    /// The target (`cpu`).
    pub target: String,
    /// The model file it was compiled from.
    pub source: FileRecord,
    /// The pass pipeline as given (`none` when no pass ran).
    pub pipeline: String,
    /// The calibration statistics the pipeline read, if any.
    pub calibration: Option<FileRecord>,
    /// The statistics' own description (model, text, samples, seqlen, seed).
    pub calibration_source: Option<String>,
    /// Where select-gemm's and tile-gemm's CPU costs came from.
    pub cost_table: String,
    /// The KV-cache capacity in tokens the model was imported with.
    pub ctx: usize,
    /// Parameters of the source model (before the pipeline): the
    /// denominator of bits per weight. 0 in files written before it was recorded.
    #[serde(default)]
    pub parameters: u64,
    /// The passes' remarks (e.g. `quantize`'s format, bytes and error per
    /// tensor), so a benchmark of the artifact reports what was chosen.
    /// Empty in files written before they were recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remarks: Vec<String>,
}
