//! Round-trip and error-location tests of the `.fir` text format on small inline cases.

use flexc_ir::text::{parse_module, print_module};
use flexc_ir::verify::verify_module;

const FFN: &str = "\
module @tiny {arch = \"llama\", layers = 2}

weight @w_up : f32[4, 2] = dense<[1.0, 0.5, -1.0, 2.0, 0.0, 0.25, 3.0, -0.5]>
weight @w_q : f32[2, 32] #q8_0 = dense<\"0x003c0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20003c0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20\">

func @ffn(%x: f32[seq, 2], %pos: i32[]) -> (f32[seq, 4], f32[seq, 2]) {
  %w = tensor.weight @w_up : f32[4, 2]
  %y = tensor.matmul %x, %w {transpose_b} : f32[seq, 4]
  %g = tensor.gelu %y {approx = erf} : f32[seq, 4]
  %s = tensor.softmax %g : f32[seq, 4]
  %wq = tensor.weight @w_q : f32[2, 32] #q8_0
  %wd = quant.dequantize %wq : f32[2, 32]
  %c = tensor.constant {value = dense<[1e-6, 2.5]>} : f32[2]
  %z = tensor.add %x, %c : f32[seq, 2]
  return %s, %z
}
";

#[test]
fn print_parse_is_identity() {
    let m = parse_module(FFN).unwrap_or_else(|e| panic!("{}", e.render("ffn.fir", FFN)));
    verify_module(&m).unwrap_or_else(|es| panic!("{}", es[0].render("ffn.fir", FFN)));
    assert_eq!(print_module(&m), FFN);
}

#[test]
fn errors_are_located() {
    let src = "func @f(%x: f32[2]) -> f32[2] {\n  %y = tensor.add %x, %nope : f32[2]\n  return %y\n}\n";
    let e = parse_module(src).unwrap_err();
    assert_eq!(e.line_col(src), (2, 23));
    assert!(e.render("t.fir", src).starts_with("t.fir:2:23: error: undefined value %nope"), "{}", e.render("t.fir", src));
}

#[test]
fn verifier_checks_result_types() {
    let src = "func @f(%x: f32[2, 3]) -> f32[2, 3] {\n  %y = tensor.transpose %x {perm = [1, 0]} : f32[2, 3]\n  return %y\n}\n";
    let m = parse_module(src).unwrap();
    let errs = verify_module(&m).unwrap_err();
    let r = errs[0].render("t.fir", src);
    assert!(r.starts_with("t.fir:2:3: error: result type f32[2, 3] does not match 'tensor.transpose', which gives f32[3, 2]"), "{r}");
}
