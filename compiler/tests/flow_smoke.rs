//! Real-model smoke test of FLOW: SmolLM2-135M calibrated on a few short
//! windows, flow-nm at 50% + prune-nm, a few greedy tokens on the reference
//! interpreter. Slow: runs in release builds, with FLEXC_SLOW_TESTS=1 or in
//! CI, when the model and the text are cached; a skip says SKIPPED on
//! stderr, and fails in CI (`flexc_testsuite::gate`).

use flexc_testsuite::gate;
use std::process::Command;

/// The measured allocation with few, short probes (the test checks the
/// plumbing, not the plan).
const SMALL: &str = "flow-nm{sparsity=0.5,probes=2:8,4:8,probe-samples=1,probe-seqlen=16},prune-nm";

#[test]
fn flow_prunes_smollm2_and_generates() {
    if !gate::slow("FLOW on SmolLM2") || gate::cached("models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf").is_none() || gate::cached("texts/sense_and_sensibility.txt").is_none() {
        return;
    }
    let exe = env!("CARGO_BIN_EXE_flexc");
    let stats = std::env::temp_dir().join(format!("flexc-flow-smoke-{}.json", std::process::id()));
    let cal = Command::new(exe).args(["calibrate", "smollm2-135m", "--samples", "2", "--seqlen", "32", "-o"]).arg(&stats).output().expect("runs");
    assert!(cal.status.success(), "calibration failed: {}", String::from_utf8_lossy(&cal.stderr));
    let rep = Command::new(exe).args(["sparsity-report", "smollm2-135m", "--format", "json", "--pipeline", SMALL, "--stats"]).arg(&stats).output().expect("runs");
    assert!(rep.status.success(), "{}", String::from_utf8_lossy(&rep.stderr));
    let v: serde_json::Value = serde_json::from_slice(&rep.stdout).expect("json");
    assert_eq!(v["blocks"].as_array().map(|b| b.len()), Some(30));
    assert_eq!(v["mode"], "nearest");
    let run = Command::new(exe)
        .args(["run", "smollm2-135m", "-p", "The capital of France is", "-n", "4", "--ctx", "32", "--pipeline", SMALL, "--stats-file"])
        .arg(&stats)
        .output()
        .expect("runs");
    let _ = std::fs::remove_file(&stats);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(!String::from_utf8_lossy(&run.stdout).trim().is_empty());
}
