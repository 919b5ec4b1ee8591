//! Gates of the tests that need something outside the repository: a file of
//! flexc's cache (a real model or text that `flexc pull` fetches, llama.cpp's
//! vocabularies) or time (the slow real-model checks).
//!
//! In CI (`CI` set to `true` or `1`; `.ci/run` exports it) nothing skips: a
//! missing file fails the test, and the slow checks run. Elsewhere a skip
//! prints `SKIPPED <test>: <why>` on the test process's real stderr: libtest
//! captures the `println!`/`eprintln!` output of a passing test, which used
//! to hide every skip behind an `ok`.
//!
//! This file depends on nothing but `std`, so crates below `flexc` (the IR's
//! own tests) include it with `#[path]` instead of depending on the suite.

use std::path::PathBuf;

/// Whether the tests run in CI (`CI=true` or `CI=1`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The running test's name (libtest names each test's thread after it).
pub fn test_name() -> String {
    std::thread::current().name().unwrap_or("<test>").to_string()
}

/// A line on the process's stderr that libtest does not capture.
pub fn say(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

/// Skips the running test for `why`: says `SKIPPED <test>: <why>`; in CI
/// fails it instead.
#[track_caller]
pub fn skip(why: &str) {
    if in_ci() {
        panic!("{}: {why} (CI=true: a test that cannot run fails instead of skipping)", test_name());
    }
    say(&format!("SKIPPED {}: {why}", test_name()));
}

/// flexc's cache folder: `$FLEXC_CACHE_DIR`, `$XDG_CACHE_HOME/flexc` or
/// `~/.cache/flexc`, as `flexc_fetch::cache_dir` (a test checks they agree).
pub fn cache_root() -> Option<PathBuf> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    non_empty("FLEXC_CACHE_DIR").or_else(|| non_empty("XDG_CACHE_HOME").map(|p| p.join("flexc"))).or_else(|| non_empty("HOME").map(|p| p.join(".cache").join("flexc")))
}

/// A file or folder of flexc's cache (`models/...`, `texts/...`), or `None`
/// after [`skip`] (a failure in CI) when it is absent.
#[track_caller]
pub fn cached(rel: &str) -> Option<PathBuf> {
    let Some(root) = cache_root() else {
        skip(&format!("no cache folder for {rel} (FLEXC_CACHE_DIR, XDG_CACHE_HOME and HOME unset)"));
        return None;
    };
    let path = root.join(rel);
    if path.exists() {
        return Some(path);
    }
    skip(&format!("{} is not cached (run `flexc pull` first)", path.display()));
    None
}

/// Whether a slow check runs: in release builds, with `FLEXC_SLOW_TESTS=1`,
/// and always in CI; otherwise it is skipped with a note saying how to run it.
#[track_caller]
pub fn slow(what: &str) -> bool {
    if !cfg!(debug_assertions) || std::env::var("FLEXC_SLOW_TESTS").is_ok_and(|v| v == "1") || in_ci() {
        return true;
    }
    skip(&format!("{what} is slow in a debug build (set FLEXC_SLOW_TESTS=1 or use --release)"));
    false
}
