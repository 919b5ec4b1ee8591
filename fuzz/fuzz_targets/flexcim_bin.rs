//! Fuzz target: the FlexCiM binary stream decoder; a stream that decodes
//! must encode back to the same bytes and is then simulated on the default
//! architecture (out-of-range instructions must be simulator errors).
#![no_main]
use flexc_backends::flexcim::arch::Arch;
use flexc_backends::flexcim::isa::{decode, encode, print_asm, parse_asm};
use flexc_backends::flexcim::sim::simulate;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn arch() -> &'static Arch {
    static A: OnceLock<Arch> = OnceLock::new();
    A.get_or_init(Arch::default_flexcim)
}

fuzz_target!(|data: &[u8]| {
    let Ok(p) = decode(data) else { return };
    assert_eq!(encode(&p), data, "decode/encode is not the identity");
    let text = print_asm(&p);
    assert_eq!(parse_asm(&text).as_ref(), Ok(&p), "printed assembly does not parse back");
    let _ = simulate(arch(), &p);
});
