//! The skip gate of cache-gated tests (`flexc_testsuite::gate`): a missing
//! file fails the test in CI and prints `SKIPPED <test>: <why>` on the real
//! stderr elsewhere. Checked by running this test binary again as a child.

use std::process::Command;

/// Only does something in the child run below.
#[test]
fn child_needs_a_missing_model() {
    if std::env::var_os("FLEXC_GATE_CHILD").is_none() {
        return;
    }
    assert!(flexc_testsuite::cached("models/not-a-model/none.gguf").is_none());
}

fn child(ci: Option<&str>) -> std::process::Output {
    let mut c = Command::new(std::env::current_exe().expect("test binary"));
    c.args(["--exact", "child_needs_a_missing_model", "--test-threads=1"]).env("FLEXC_GATE_CHILD", "1");
    match ci {
        Some(v) => c.env("CI", v),
        None => c.env_remove("CI"),
    };
    c.output().expect("runs the test binary")
}

#[test]
fn a_missing_model_fails_in_ci_and_says_skipped_elsewhere() {
    let out = child(None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "outside CI a skip passes: {err}");
    assert!(err.contains("SKIPPED child_needs_a_missing_model: ") && err.contains("not-a-model/none.gguf is not cached"), "the skip is on stderr: {err}");
    for ci in ["true", "1"] {
        let out = child(Some(ci));
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "CI={ci}: a missing model must fail: {text}");
        assert!(text.contains("CI=true: a test that cannot run fails"), "{text}");
    }
}

#[test]
fn the_gate_and_flexc_agree_on_the_cache_folder() {
    assert_eq!(flexc_testsuite::gate::cache_root(), flexc_fetch::cache_dir().ok());
}
