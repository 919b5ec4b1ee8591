//! Resource limits: how much memory running a function would take, known
//! from its types before anything is allocated.
//!
//! A `.fir` file may declare any shape (`f32[4294967296, 4294967296]` is a
//! well-typed tensor). Executors (the reference interpreter behind `flexc
//! exec`, the FlexCiM front end behind `flexc sim`) allocate every value they
//! compute, so a hostile or mistaken file would abort the process with an
//! out-of-memory error or overflow a size computation. [`check_memory`] adds
//! up the element storage of every parameter and op result, with symbolic
//! dimensions bound by the caller, in checked arithmetic, and refuses the run
//! with an error naming the largest value when the total exceeds a budget.

//!
//! Input files get the same treatment: [`open_regular`] refuses anything
//! that is not a regular file before opening it (a FIFO would block the
//! open forever, `/dev/urandom` would be read without end), and
//! [`read_bounded`] reads at most a given number of bytes.

use crate::func::Func;
use crate::types::{Dim, TensorType};
use std::io::Read;
use std::path::Path;

/// The most bytes a text input (`.fir`, assembly, a prompt file) may have: 1 GiB.
pub const MAX_TEXT_BYTES: u64 = 1 << 30;

/// Opens `path` for reading if it is a regular file (after following
/// symlinks); a FIFO, device, socket or directory is an `InvalidInput` error
/// saying what it is, returned without opening it.
pub fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        let what = if meta.is_dir() { "a directory" } else { special_kind(&meta) };
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("is {what}, not a regular file")));
    }
    std::fs::File::open(path)
}

#[cfg(unix)]
fn special_kind(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::Metadata) -> &'static str {
    "a special file"
}

/// Reads all of `r`, failing once it passes `max` bytes.
pub fn read_bounded(r: impl Read, max: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(max.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("longer than the limit of {} bytes", max)));
    }
    Ok(out)
}

/// A regular file's bytes, at most `max` of them ([`open_regular`], [`read_bounded`]).
pub fn read_regular(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    read_bounded(open_regular(path)?, max)
}

/// Bytes an executor may need per element: the reference interpreter holds
/// floats as f32 and integers as i64, so 8 is the worst case.
pub const BYTES_PER_ELEMENT: u64 = 8;

/// The default budget of `--max-memory` (8 GiB).
pub const DEFAULT_MAX_MEMORY: u64 = 8 << 30;

/// Elements of `ty` with symbols bound by `bind` (`None` when a symbol is
/// unbound or the count overflows u64).
pub fn numel_bound(ty: &TensorType, bind: &dyn Fn(&str) -> Option<u64>) -> Option<u64> {
    ty.shape.iter().try_fold(1u64, |acc, d| {
        let n = match d {
            Dim::Fixed(n) => *n,
            Dim::Sym(s) => bind(s)?,
        };
        acc.checked_mul(n)
    })
}

/// Checks that running `f` keeps at most `max_bytes` of values alive (every
/// parameter and op result at once, the interpreter's worst case). Values
/// with an unbound symbol are skipped; an element count that overflows is an
/// error. The error names the largest value.
pub fn check_memory(f: &Func, bind: &dyn Fn(&str) -> Option<u64>, max_bytes: u64) -> Result<u64, String> {
    let values = f.params.iter().copied().chain(f.layout.iter().map(|&op| f.dfg.ops[op].result));
    let mut total: u64 = 0;
    let mut largest: Option<(u64, crate::entity::Value)> = None;
    for v in values {
        let ty = f.dfg.ty(v);
        let bytes = match numel_bound(ty, bind).and_then(|n| n.checked_mul(BYTES_PER_ELEMENT)) {
            Some(b) => b,
            None if ty.shape.iter().all(|d| matches!(d, Dim::Fixed(_)) || matches!(d, Dim::Sym(s) if bind(s).is_some())) => {
                return Err(format!("@{}: value {} of type {ty} has more elements than fit in 64 bits", f.name, name(f, v)));
            }
            None => continue,
        };
        if largest.is_none_or(|(b, _)| bytes > b) {
            largest = Some((bytes, v));
        }
        total = total.saturating_add(bytes);
    }
    if total > max_bytes {
        let (b, v) = largest.expect("a non-zero total has a largest value");
        return Err(format!(
            "@{} needs about {} of tensor memory (largest: {} of type {}, {}), more than the limit of {} (see --max-memory)",
            f.name,
            human(total),
            name(f, v),
            f.dfg.ty(v),
            human(b),
            human(max_bytes)
        ));
    }
    Ok(total)
}

fn name(f: &Func, v: crate::entity::Value) -> String {
    f.dfg.values[v].name.as_ref().map_or_else(|| format!("{v}"), |n| format!("%{n}"))
}

/// Bytes as `12.0 GiB` style text.
pub fn human(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = b as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{b} B") } else { format!("{x:.1} {}", UNITS[u]) }
}

/// Parses a byte count with an optional binary suffix (`512M`, `8G`, `1T`, `4096`).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("'{s}': unknown size suffix '{c}' (use K, M, G or T)")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = num.trim().parse().map_err(|_| format!("'{s}' is not a byte count like 512M or 8G"))?;
    n.checked_mul(1u64 << shift).ok_or_else(|| format!("'{s}' does not fit in 64 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::parse_module;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("8G"), Ok(8 << 30));
        assert_eq!(parse_bytes("512m"), Ok(512 << 20));
        assert!(parse_bytes("8X").is_err());
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("99999999999T").is_err());
    }

    #[test]
    fn huge_and_overflowing_shapes_are_refused_before_running() {
        let m = parse_module("func @f(%x: f32[100000, 100000]) -> f32[100000, 100000] {\n  %y = tensor.add %x, %x : f32[100000, 100000]\n  return %y\n}\n").expect("parses");
        let f = &m.funcs[m.func("f").expect("f")];
        let e = check_memory(f, &|_| None, DEFAULT_MAX_MEMORY).expect_err("160 GB is over 8 GiB");
        assert!(e.contains("%x") && e.contains("149.0 GiB") && e.contains("--max-memory"), "{e}");
        let m = parse_module("func @f(%x: f32[4294967296, 4294967296, 4]) -> f32[4294967296, 4294967296, 4] {\n  return %x\n}\n").expect("parses");
        let f = &m.funcs[m.func("f").expect("f")];
        assert!(check_memory(f, &|_| None, u64::MAX).expect_err("overflows").contains("64 bits"));
        let m = parse_module("func @f(%x: f32[seq, 4]) -> f32[seq, 4] {\n  return %x\n}\n").expect("parses");
        let f = &m.funcs[m.func("f").expect("f")];
        assert_eq!(check_memory(f, &|_| None, 1), Ok(0), "unbound symbols are skipped");
        assert_eq!(check_memory(f, &|s| (s == "seq").then_some(2), 1 << 10), Ok(64));
    }
}
