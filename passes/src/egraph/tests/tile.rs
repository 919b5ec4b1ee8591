//! `tile-gemm`: the cheapest proposed tile goes between weight and GEMM.

use super::model::{count, linear, run, run_with, weight, TestModel};

const GQ2: &str = "f32[64, 64] #gq<bits = 2, group = 32, zero = false>";
const NM: &str = "f32[64, 64] #nm<n = 2, m = 4>";

#[test]
fn tiles_follow_the_chosen_primitive() {
    let mut src = weight("a", GQ2) + &weight("b", NM);
    src += "\nfunc @f(%x: f32[seq, 64]) -> (f32[seq, 64], f32[seq, 64]) {\n";
    src += &(linear("ya", "x", "a", GQ2) + &linear("yb", "x", "b", NM));
    src += "  return %ya, %yb\n}\n";
    let (ir, report) = run(&src, "select-gemm,tile-gemm");
    // LUT offers 8x32 and 32x64; 32x64 is cheaper. Sparse offers no tiles.
    assert!(ir.contains("= kern.tile %a {m = 32, k = 64} : f32[64, 64] #gq<bits = 2, group = 32, zero = false>"), "{ir}");
    assert_eq!(count(&ir, "kern.tile"), 1, "{ir}");
    assert!(ir.contains("%yb = kern.sparse_gemm %x, %b"), "{ir}");
    let e = report.explain.unwrap();
    assert_eq!(e.tiles.len(), 1);
    let t = &e.tiles[0];
    assert_eq!((t.op.as_str(), t.primitive.as_str(), t.chosen.m, t.chosen.k, t.candidates.len()), ("%ya", "lut", 32, 64, 2));
    assert!(e.text().contains("tile-gemm:\n  %ya (lut): 32x64"), "{}", e.text());
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["tiles"][0]["chosen"]["m"], 32);
    // Tiled weights are left alone by a second run.
    let (again, _) = run(&ir, "tile-gemm");
    assert_eq!(again, ir);
}

#[test]
fn shared_weights_are_tiled_once_and_activations_never() {
    // Two dense GEMMs read weight %e; a third GEMM's weight is a parameter.
    let plain = "f32[64, 64]";
    let mut src = weight("e", plain);
    src += "\nfunc @f(%x: f32[seq, 64], %z: f32[seq, 64], %p: f32[64, 64]) -> (f32[seq, 64], f32[seq, 64], f32[seq, 64]) {\n";
    src += "  %e = tensor.weight @e : f32[64, 64]\n";
    src += "  %y1 = kern.dense_gemm %x, %e : f32[seq, 64]\n";
    src += "  %y2 = kern.dense_gemm %z, %e : f32[seq, 64]\n";
    src += "  %y3 = kern.dense_gemm %x, %p : f32[seq, 64]\n";
    src += "  return %y1, %y2, %y3\n}\n";
    let (ir, _) = run(&src, "tile-gemm");
    assert_eq!(count(&ir, "kern.tile"), 1, "{ir}");
    let t = ir.lines().find(|l| l.contains("kern.tile")).and_then(|l| l.split_whitespace().next()).unwrap();
    assert!(ir.contains(&format!("%y1 = kern.dense_gemm %x, {t}")) && ir.contains(&format!("%y2 = kern.dense_gemm %z, {t}")), "{ir}");
    assert!(ir.contains("%y3 = kern.dense_gemm %x, %p"), "{ir}");
}

#[test]
fn a_target_without_a_cost_model_is_an_error() {
    let src = weight("e", "f32[64, 64]") + "\nfunc @f(%x: f32[seq, 64]) -> f32[seq, 64] {\n  %e = tensor.weight @e : f32[64, 64]\n  %y = kern.dense_gemm %x, %e : f32[seq, 64]\n  return %y\n}\n";
    let err = run_with(&src, "tile-gemm{target=flexcim}", TestModel::default()).unwrap_err();
    assert!(err.contains("pass 'tile-gemm' failed: no cost model for target 'flexcim' (the driver provided: cpu)"), "{err}");
}
