//! The one error type of the fetcher.
//!
//! Every failure names what was being fetched and what went wrong, so that the
//! CLI can print it as is: the package and the last lines of a registry
//! client's stderr, the file and both hashes on a checksum mismatch, the lock
//! file when another pull is running.

use std::path::PathBuf;

use super::rdata::RdataError;

/// Why fetching, unpacking or verifying an artifact failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// None of `$FLEXC_CACHE_DIR`, `$XDG_CACHE_HOME`, `$HOME` is set.
    #[error(
        "cannot find a cache folder: set FLEXC_CACHE_DIR (or XDG_CACHE_HOME or HOME) to a writable folder"
    )]
    NoCacheDir,

    /// A file-system operation on `path` failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A registry client or unpacker could not be started at all.
    #[error("cannot run `{program}` (needed to fetch {package}): {source}")]
    Spawn {
        program: String,
        package: String,
        #[source]
        source: std::io::Error,
    },

    /// `pip download` exited unsuccessfully.
    #[error(
        "`pip download {package}` failed ({status}); last lines of pip's output:\n{stderr_tail}"
    )]
    Pip {
        package: String,
        status: String,
        stderr_tail: String,
    },

    /// pip reported success but the expected wheel is not in its output folder.
    #[error("pip downloaded no wheel for {package} into {}", dir.display())]
    WheelNotFound { package: String, dir: PathBuf },

    /// apt does not know the package: its package lists were never downloaded.
    #[error(
        "apt-get cannot locate the Debian package {package}: the package lists are missing or stale; \
         run `sudo apt-get update` once, then pull again"
    )]
    AptUpdateNeeded { package: String },

    /// `apt-get download` or `apt-get update` exited unsuccessfully.
    #[error(
        "`apt-get {command}` for {package} failed ({status}); last lines of its output:\n{stderr_tail}"
    )]
    Apt {
        command: &'static str,
        package: String,
        status: String,
        stderr_tail: String,
    },

    /// `dpkg-deb -x` could not unpack the downloaded package.
    #[error("`dpkg-deb -x` could not unpack {}: ({status}) {stderr_tail}", deb.display())]
    Dpkg {
        deb: PathBuf,
        status: String,
        stderr_tail: String,
    },

    /// A wheel is not a readable zip archive.
    #[error("cannot read the wheel {}: {source}", wheel.display())]
    Zip {
        wheel: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },

    /// A member the artifact needs is not in the wheel.
    #[error("the wheel {} has no member {member}", wheel.display())]
    MemberMissing { wheel: PathBuf, member: String },

    /// A wheel member's name would escape the destination folder.
    #[error("the wheel {} has a member with an unsafe name: {member:?}", wheel.display())]
    UnsafeMember { wheel: PathBuf, member: String },

    /// A fetched file does not have the size it must have.
    #[error("{} has {actual} bytes, expected {expected}; nothing was kept", path.display())]
    SizeMismatch {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },

    /// A fetched file does not have the sha256 it must have.
    #[error("sha256 mismatch for {}: expected {expected}, got {actual}; nothing was kept", path.display())]
    ShaMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    /// A file inside a downloaded package is not valid R lazy-load data.
    #[error("cannot decode the R data in {}: {source}", path.display())]
    Rdata {
        path: PathBuf,
        #[source]
        source: RdataError,
    },

    /// The R data decoded, but holds no text of the wanted name.
    #[error("{package} holds no text named {record} (found: {found})")]
    RecordNotFound {
        package: String,
        record: String,
        found: String,
    },

    /// Another process is pulling the same artifact right now.
    #[error(
        "another `flexc pull` of {name} is running{}; wait for it to finish and try again (lock: {})",
        holder.as_ref().map(|p| format!(" (pid {p})")).unwrap_or_default(),
        lock.display()
    )]
    Locked {
        name: String,
        lock: PathBuf,
        holder: Option<String>,
    },

    /// `resolve_model` got neither an existing path nor a known model name.
    #[error("`{arg}` is neither an existing file nor a known model; known models: {known}")]
    UnknownModel { arg: String, known: String },
}

impl FetchError {
    /// Wraps an I/O error with what was being done to which path.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| FetchError::Io {
            action,
            path,
            source,
        }
    }
}
