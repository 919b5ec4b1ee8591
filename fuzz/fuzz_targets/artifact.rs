//! Fuzz target: the `.flexc` artifact reader. The input is tried twice: as a
//! whole file (header, section table, checksums), and, so mutations reach the
//! section parsers past the checksums, split at `\n--\n` into the contents
//! of the meta, prov, ir and weights sections of a freshly built container,
//! plus, when the input has six parts, the packed LUT streams' `lutidx`
//! records and `lutpack` bytes. Either way the reader returns a value or an
//! error, never panics.
#![no_main]
use flexc::artifact::container::build;
use flexc::artifact::read::load;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;

fuzz_target!(|data: &[u8]| {
    let _ = load("fuzz.flexc", PathBuf::from("fuzz.flexc"), data);
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut rest = data;
    while parts.len() < 5 {
        match rest.windows(4).position(|w| w == b"\n--\n") {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + 4..];
            }
            None => break,
        }
    }
    parts.push(rest);
    let packed = parts.len() == 6;
    parts.resize(6, &[]);
    let mut sections = vec![("meta", 8, parts[0]), ("prov", 8, parts[1]), ("ir", 8, parts[2]), ("weights", 4096, parts[3])];
    if packed {
        sections.extend([("lutidx", 8, parts[4]), ("lutpack", 4096, parts[5])]);
    }
    let file = build(&sections);
    if let Ok(a) = load("fuzz.flexc", PathBuf::from("fuzz.flexc"), &file) {
        if let Err(e) = flexc_ir::verify::verify_module(&a.module) {
            panic!("a loaded artifact does not verify: {}", e[0]);
        }
    }
});
