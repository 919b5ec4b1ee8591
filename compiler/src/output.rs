//! Writing output files without ever leaving a partial one behind, and
//! without clobbering what the path names.
//!
//! A regular file is written to a temporary name next to its destination and
//! renamed into place only when complete, so an error, Ctrl-C or SIGTERM
//! mid-write leaves either the old file or nothing (the temporary is
//! registered with [`crate::signals`], which deletes it on a signal). The
//! rename keeps the old file's permission bits. What a rename would break is
//! handled first:
//!
//! * a symbolic link is followed: its target is replaced, the link stays;
//! * anything that is not a regular file (`/dev/null`, a FIFO, a socket,
//!   a terminal) is written through, never replaced by a regular file;
//!   a directory is refused;
//! * a regular file with more than one hard link is written in place
//!   (truncated, then written) so every link sees the new content, as a
//!   shell's `>` does.
//!
//! Temporaries of killed runs (`.NAME.partial-PID` whose PID no longer
//! exists) in the destination's folder are deleted before writing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::signals::Partial;

/// The temporary name used while `dest` is being written.
pub fn temp_path(dest: &Path) -> PathBuf {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dest.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// Writes `bytes` to `dest` (see the module doc for what `dest` may be).
/// The error names `dest`.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    write_resolved(dest, bytes).map_err(|e| io::Error::new(e.kind(), format!("{}: cannot write: {e}", dest.display())))
}

fn write_resolved(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let target = follow_links(dest)?;
    let meta = match fs::metadata(&target) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if let Some(m) = &meta {
        if m.is_dir() {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
        }
        if !m.is_file() {
            // A device, FIFO or socket: write to it, as `cat > path` would.
            return OpenOptions::new().write(true).open(&target)?.write_all(bytes);
        }
        if hard_links(m) > 1 {
            let mut f = OpenOptions::new().write(true).truncate(true).open(&target)?;
            f.write_all(bytes)?;
            return f.sync_all();
        }
    }
    sweep_stale_partials(&target);
    let tmp = temp_path(&target);
    let _guard = Partial::track(tmp.clone());
    let result = (|| {
        let mut f = File::create(&tmp)?;
        if let Some(m) = &meta {
            f.set_permissions(m.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `path` with every symbolic link in its last component followed (a
/// dangling link resolves to the file it would create); at most 40 links.
fn follow_links(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = fs::read_link(&p)?;
                p = match p.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

#[cfg(unix)]
fn hard_links(m: &fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::nlink(m)
}

#[cfg(not(unix))]
fn hard_links(_: &fs::Metadata) -> u64 {
    1
}

/// Deletes `.NAME.partial-PID` files in `target`'s folder whose PID is not
/// a running process (Linux: no `/proc/PID`; elsewhere nothing is swept).
pub fn sweep_stale_partials(target: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = fs::read_dir(dir) else { return };
    let me = std::process::id();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = stale_pid(&name.to_string_lossy()) else { continue };
        if pid != me && !Path::new(&format!("/proc/{pid}")).exists() && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// The PID of a temporary's name `.NAME.partial-PID`.
fn stale_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (base, pid) = rest.rsplit_once(".partial-")?;
    if base.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("flexc-output-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn parses_only_partial_names() {
        assert_eq!(stale_pid(".out.fir.partial-123"), Some(123));
        assert_eq!(stale_pid("out.fir.partial-123"), None);
        assert_eq!(stale_pid(".out.partial-12x"), None);
        assert_eq!(stale_pid("..partial-1"), None);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_followed_and_the_mode_is_kept() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let d = dir("link");
        let real = d.join("real.txt");
        fs::write(&real, "old").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
        let link = d.join("link.txt");
        symlink("real.txt", &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
        assert_eq!(fs::read(&real).unwrap(), b"new");
        assert_eq!(fs::metadata(&real).unwrap().permissions().mode() & 0o777, 0o640);
        // A dangling link creates its target.
        let dangling = d.join("dangling.txt");
        symlink("made.txt", &dangling).unwrap();
        write_atomic(&dangling, b"x").unwrap();
        assert_eq!(fs::read(d.join("made.txt")).unwrap(), b"x");
        fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn hard_links_are_written_in_place() {
        let d = dir("hard");
        let a = d.join("a.txt");
        fs::write(&a, "old").unwrap();
        fs::hard_link(&a, d.join("b.txt")).unwrap();
        write_atomic(&a, b"new").unwrap();
        assert_eq!(fs::read(d.join("b.txt")).unwrap(), b"new", "both links see the new content");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn special_files_are_written_through_and_directories_refused() {
        if Path::new("/dev/null").exists() {
            write_atomic(Path::new("/dev/null"), b"x").unwrap();
            assert!(!fs::metadata("/dev/null").unwrap().is_file(), "/dev/null stays a device");
        }
        let d = dir("dir");
        let e = write_atomic(&d, b"x").unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn stale_partials_of_dead_processes_are_swept() {
        if !Path::new("/proc/self").exists() {
            return;
        }
        let d = dir("sweep");
        // PID 2^22 + 1 is above Linux's pid_max limit, so no process has it.
        let stale = d.join(".out.fir.partial-4194305");
        let live = d.join(format!(".other.fir.partial-{}", std::process::id()));
        fs::write(&stale, "x").unwrap();
        fs::write(&live, "x").unwrap();
        write_atomic(&d.join("out.fir"), b"done").unwrap();
        assert!(!stale.exists() && live.exists());
        fs::remove_dir_all(&d).unwrap();
    }
}
