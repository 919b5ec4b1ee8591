//! Helpers shared by the kernel tests: the reference interpreter's answer
//! for one low-bit GEMV, the oracle every JIT kernel is checked against.

use flexc_backends::reference::{Interpreter, Tensor};
use flexc_ir::Encoding;

/// `y = W·x` on the reference interpreter, through a parsed `.fir` module.
pub fn interpreter(enc: Encoding, bytes: &[u8], m: usize, k: usize, x: &[f32]) -> Vec<f32> {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let src = format!(
        "weight @w : f32[{m}, {k}] {enc} = dense<\"0x{hex}\">\n\nfunc @f(%x: f32[1, {k}]) -> f32[1, {m}] {{\n  %w = tensor.weight @w : f32[{m}, {k}] {enc}\n  %y = quant.mpgemm %x, %w : f32[1, {m}]\n  return %y\n}}\n"
    );
    let module = flexc_ir::text::parse_module(&src).expect("module parses");
    let out = Interpreter::new(&module).run("f", vec![Tensor::f32(&[1, k], x.to_vec())]).expect("interpreter runs");
    out[0].as_f32().expect("f32 result").to_vec()
}
