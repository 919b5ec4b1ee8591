//! The `.flexc` container: a fixed header, a table of named sections, and the
//! sections' bytes, each with its own CRC-32 so a damaged file is reported by
//! the section it hit.
//!
//! ```text
//! 0   magic      8 bytes  89 'F' 'L' 'E' 'X' 'C' '\r' '\n'
//! 8   version    u32      FORMAT_VERSION
//! 12  sections   u32      number of table entries (1..=MAX_SECTIONS)
//! 16  file_len   u64      total bytes (a truncated copy is caught here)
//! 24  table_crc  u32      CRC-32 of the section table
//! 28  reserved   u32      0
//! 32  table      sections × 32 bytes: tag [u8; 8] (ASCII, zero-padded),
//!                offset u64, len u64, crc u32, reserved u32
//! ..  section bytes at their offsets (the writer page-aligns the last one,
//!     `weights`, so tensors can be used in place from a memory map)
//! ```
//!
//! All integers are little-endian. Parsing works on one byte slice: every
//! range is checked against the slice before it is touched, so a truncated or
//! hostile file is an [`ArtifactError`], never a panic or an out-of-bounds read.

use super::ArtifactError;

/// The first eight bytes of every `.flexc` file (PNG-style: a high byte, the
/// name, CR LF, so a text-mode transfer is detected as corruption).
pub const MAGIC: [u8; 8] = [0x89, b'F', b'L', b'E', b'X', b'C', b'\r', b'\n'];
/// The container version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// At most this many sections (a sanity bound on the table size).
pub const MAX_SECTIONS: u32 = 64;
const HEADER: usize = 32;
const ENTRY: usize = 32;

/// One section as the table describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Its tag (`meta`, `prov`, `ir`, `weights`).
    pub tag: String,
    /// Absolute offset of its first byte.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
    /// CRC-32 of its bytes.
    pub crc: u32,
}

/// A parsed header and section table over the file's bytes.
#[derive(Debug)]
pub struct Container {
    /// The format version.
    pub version: u32,
    /// The sections, in table order.
    pub sections: Vec<Section>,
}

/// Serialises sections: `parts` are (tag, alignment, bytes), laid out in
/// order, each at the next multiple of its alignment.
pub fn build(parts: &[(&str, u64, &[u8])]) -> Vec<u8> {
    let table_end = HEADER + ENTRY * parts.len();
    let mut sections = Vec::with_capacity(parts.len());
    let mut at = table_end as u64;
    for (tag, align, bytes) in parts {
        at = at.div_ceil(*align) * align;
        sections.push(Section { tag: tag.to_string(), offset: at, len: bytes.len() as u64, crc: crc32fast::hash(bytes) });
        at += bytes.len() as u64;
    }
    let mut out = Vec::with_capacity(at as usize);
    let mut table = Vec::with_capacity(ENTRY * parts.len());
    for s in &sections {
        let mut tag = [0u8; 8];
        tag[..s.tag.len().min(8)].copy_from_slice(&s.tag.as_bytes()[..s.tag.len().min(8)]);
        table.extend_from_slice(&tag);
        table.extend_from_slice(&s.offset.to_le_bytes());
        table.extend_from_slice(&s.len.to_le_bytes());
        table.extend_from_slice(&s.crc.to_le_bytes());
        table.extend_from_slice(&0u32.to_le_bytes());
    }
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&table).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&table);
    for (s, (_, _, bytes)) in sections.iter().zip(parts) {
        out.resize(s.offset as usize, 0);
        out.extend_from_slice(bytes);
    }
    out
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Parses the header and table of `bytes` (the whole file) and checks that
/// every section lies inside it. Section checksums are checked by [`Container::section`].
pub fn parse(file: &str, bytes: &[u8]) -> Result<Container, ArtifactError> {
    let err = |message: String| ArtifactError::new(file, None, message);
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(err("not a .flexc file (bad magic)".into()));
    }
    if bytes.len() < HEADER {
        return Err(err(format!("truncated: the header needs {HEADER} bytes, the file has {}", bytes.len())));
    }
    let version = le_u32(bytes, 8);
    if version > FORMAT_VERSION {
        return Err(err(format!("format version {version} is newer than this flexc reads ({FORMAT_VERSION}); recompile the model with this flexc or upgrade flexc")));
    }
    if version == 0 {
        return Err(err("format version 0 is not a valid version".into()));
    }
    if le_u32(bytes, 28) != 0 {
        return Err(err("header: reserved field is not zero (the file is corrupt)".into()));
    }
    let count = le_u32(bytes, 12);
    if count == 0 || count > MAX_SECTIONS {
        return Err(err(format!("header: {count} sections (expected 1..={MAX_SECTIONS})")));
    }
    let file_len = le_u64(bytes, 16);
    if file_len != bytes.len() as u64 {
        let how = if file_len > bytes.len() as u64 { "truncated" } else { "trailing bytes" };
        return Err(err(format!("{how}: the header records {file_len} bytes, the file has {}", bytes.len())));
    }
    let table_end = HEADER + ENTRY * count as usize;
    if table_end > bytes.len() {
        return Err(err(format!("truncated: the section table needs {table_end} bytes, the file has {}", bytes.len())));
    }
    let table = &bytes[HEADER..table_end];
    if crc32fast::hash(table) != le_u32(bytes, 24) {
        return Err(err("header: section table checksum mismatch (the file is corrupt)".into()));
    }
    let mut sections: Vec<Section> = Vec::with_capacity(count as usize);
    for e in table.chunks_exact(ENTRY) {
        let raw = &e[..8];
        let end = raw.iter().position(|&c| c == 0).unwrap_or(8);
        let tag = std::str::from_utf8(&raw[..end]).ok().filter(|t| !t.is_empty() && t.bytes().all(|c| c.is_ascii_graphic()) && raw[end..].iter().all(|&c| c == 0));
        let tag = tag.ok_or_else(|| err(format!("section table: entry {} has a malformed tag", sections.len())))?.to_string();
        let (offset, len, crc) = (le_u64(e, 8), le_u64(e, 16), le_u32(e, 24));
        if sections.iter().any(|s| s.tag == tag) {
            return Err(ArtifactError::new(file, Some(&tag), "the section appears twice".into()));
        }
        if offset < table_end as u64 || offset.checked_add(len).is_none_or(|end| end > file_len) {
            return Err(ArtifactError::new(file, Some(&tag), format!("bytes {offset}..+{len} lie outside the file's {file_len} bytes")));
        }
        sections.push(Section { tag, offset, len, crc });
    }
    Ok(Container { version, sections })
}

impl Container {
    /// The bytes of section `tag`, checksum verified.
    pub fn section<'b>(&self, file: &str, bytes: &'b [u8], tag: &str) -> Result<(&Section, &'b [u8]), ArtifactError> {
        let s = self.sections.iter().find(|s| s.tag == tag).ok_or_else(|| ArtifactError::new(file, Some(tag), "missing".into()))?;
        // `parse` checked the range against the file.
        let data = &bytes[s.offset as usize..(s.offset + s.len) as usize];
        if crc32fast::hash(data) != s.crc {
            return Err(ArtifactError::new(file, Some(tag), "checksum mismatch (the file is corrupt)".into()));
        }
        Ok((s, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let b = build(&[("a", 1, b"hello"), ("weights", 4096, &[7u8; 100])]);
        let c = parse("t", &b).unwrap();
        assert_eq!(c.sections[1].offset % 4096, 0);
        assert_eq!(c.section("t", &b, "a").unwrap().1, b"hello");
        assert_eq!(c.section("t", &b, "weights").unwrap().1, &[7u8; 100][..]);
        // Every truncation is an error, never a panic.
        for n in 0..b.len() {
            assert!(parse("t", &b[..n]).is_err(), "truncated to {n}");
        }
        // A flipped byte anywhere is caught by the header, the table or a section checksum.
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 0x40;
            let ok = parse("t", &d).and_then(|c| c.section("t", &d, "a").and(c.section("t", &d, "weights")).map(|_| ()));
            let padding = (96 + 5..4096).contains(&i);
            assert!(ok.is_err() || padding, "flip at {i} went unnoticed");
        }
        let mut v = b.clone();
        v[8] = 2;
        assert!(parse("t", &v).unwrap_err().to_string().contains("version 2 is newer"));
    }
}
