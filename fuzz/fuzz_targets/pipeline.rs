//! Fuzz target: pipeline text (`--pipeline`/`--passes`): the parser, the
//! registry lookup and the typed option checks; a pipeline that builds is
//! run (verifying after each pass) on a small module with one dense linear
//! layer, so extreme option values (bits, group sizes, patterns, sparsity)
//! reach the passes. Failures must be error values, and no pass may leave
//! IR that does not verify.
#![no_main]
use flexc_ir::text::parse_module;
use flexc_passes::pipeline::parse_pipeline;
use flexc_passes::{ManagerOptions, PassManager, PipelineError};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn module_text() -> &'static str {
    static T: OnceLock<String> = OnceLock::new();
    T.get_or_init(|| {
        let (out, inp) = (16, 64);
        let vals: Vec<String> = (0..out * inp).map(|i| format!("{:?}", ((i * 37 % 101) as f64 - 50.0) / 64.0)).collect();
        format!(
            "weight @blk.0.ffn_up.weight : f32[{out}, {inp}] = dense<[{}]>\n\nfunc @f(%x: f32[4, {inp}]) -> f32[4, {out}] {{\n  %w = tensor.weight @blk.0.ffn_up.weight : f32[{out}, {inp}]\n  %y = tensor.matmul %x, %w {{transpose_b}} : f32[4, {out}]\n  %z = tensor.silu %y : f32[4, {out}]\n  return %z\n}}\n",
            vals.join(", ")
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = parse_pipeline(text);
    let Ok(mut pm) = PassManager::from_text(text, ManagerOptions { verify_each: true, ..Default::default() }) else { return };
    let _ = pm.pipeline_text();
    let mut m = parse_module(module_text()).expect("the fixed module parses");
    if let Err(e @ PipelineError::Verify { .. }) = pm.run(&mut m, &mut |_, _| {}) {
        panic!("pipeline {text:?} broke the IR: {e}");
    }
});
