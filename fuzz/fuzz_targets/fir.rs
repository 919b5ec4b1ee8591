//! Fuzz target: `.fir` text through the lexer, parser and verifier; a module
//! that verifies must print, re-parse, re-verify and print identically (the
//! printer/parser identity), and survive the `cleanup` pipeline with the
//! verifier run after every pass.
#![no_main]
use flexc_ir::text::{parse_module, print_module};
use flexc_ir::verify::verify_module;
use flexc_passes::{ManagerOptions, PassManager, PipelineError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(mut m) = parse_module(text) else { return };
    if verify_module(&m).is_err() {
        return;
    }
    let printed = print_module(&m);
    let again = match parse_module(&printed) {
        Ok(a) => a,
        Err(d) => panic!("printed module does not re-parse: {}\n{printed}", d.render("<printed>", &printed)),
    };
    assert!(verify_module(&again).is_ok(), "printed module does not re-verify:\n{printed}");
    assert_eq!(print_module(&again), printed, "print/parse is not the identity");
    let mut pm = PassManager::from_text("cleanup", ManagerOptions { verify_each: true, ..Default::default() }).expect("the cleanup preset exists");
    // Passes may refuse input (an error value); a verifier failure after a pass is a bug.
    if let Err(e @ PipelineError::Verify { .. }) = pm.run(&mut m, &mut |_, _| {}) {
        panic!("a pass broke the IR: {e}\n{printed}");
    }
});
