//! Fuzz target: the FlexCiM assembly parser (through `read_stream`, which
//! also routes bytes starting with the binary magic to the decoder); a
//! stream that parses must print and re-parse to the same program, and is
//! then simulated on the default architecture.
#![no_main]
use flexc_backends::flexcim::arch::Arch;
use flexc_backends::flexcim::isa::{parse_asm, print_asm, read_stream};
use flexc_backends::flexcim::sim::simulate;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn arch() -> &'static Arch {
    static A: OnceLock<Arch> = OnceLock::new();
    A.get_or_init(Arch::default_flexcim)
}

fuzz_target!(|data: &[u8]| {
    let Ok(p) = read_stream(data) else { return };
    let text = print_asm(&p);
    assert_eq!(parse_asm(&text).as_ref(), Ok(&p), "printed assembly does not parse back:\n{text}");
    let _ = simulate(arch(), &p);
});
