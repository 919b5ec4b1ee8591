//! Writing output files without ever leaving a partial one behind.
//!
//! Every file flexc writes goes to a temporary name next to its destination
//! and is renamed into place only after it is complete, so an error or a
//! Ctrl-C mid-write leaves either the old file or nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary name used while `dest` is being written.
pub fn temp_path(dest: &Path) -> PathBuf {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dest.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// Writes `bytes` to `dest` atomically (temporary file, then rename).
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(dest);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| std::io::Error::new(e.kind(), format!("{}: cannot write: {e}", dest.display())))
}
