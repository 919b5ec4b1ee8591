//! Character vectors out of an R lazy-load database (`data/Rdata.rdb`), and
//! the paragraph-unwrapping rule for the eval texts.
//!
//! This is a byte-exact port of the stdlib Python extractor in
//! `shared/reference/models.md` §3, whose output defines the reference
//! texts (`pride_and_prejudice.unwrapped.txt` has sha256 `0770f4ba…`). A
//! `.rdb` file is a sequence of records, each a 4-byte big-endian length
//! followed by one zlib stream holding an XDR-serialized R object. Only
//! character vectors (STRSXP) are decoded; other objects are skipped.
//!
//! Python's notion of whitespace (`str.isspace`, `re`'s `\s`, `str.splitlines`)
//! differs from Rust's `char::is_whitespace` in a few control characters, so
//! the rule is spelled out here character by character instead of borrowing
//! Rust's `trim`/`lines`. Everything read from the file is bounds-checked:
//! a corrupt record is an [`RdataError`], never a panic.

use std::io::Read;

use flate2::bufread::ZlibDecoder;

/// R's SEXP type number of a character vector.
const STRSXP: u32 = 16;
/// Bit of a CHARSXP's flags that marks UTF-8 (R's `UTF8_MASK << 12`).
const UTF8_FLAG: u32 = 1 << 15;
/// A record whose header claims more than this is rejected before inflating.
const MAX_RECORD: usize = 1 << 30;

/// Why R data could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum RdataError {
    /// The zlib stream of a record is corrupt or cut short.
    #[error("record {record} at byte {offset}: corrupt zlib stream: {source}")]
    Zlib {
        record: usize,
        offset: usize,
        #[source]
        source: std::io::Error,
    },
    /// A record inflated to a different length than its header says.
    #[error(
        "record {record} at byte {offset}: header says {declared} bytes, stream holds {actual}"
    )]
    LengthMismatch {
        record: usize,
        offset: usize,
        declared: usize,
        actual: usize,
    },
    /// The object is not in R's XDR (big-endian binary) serialization.
    #[error("not an XDR-serialized R object (starts with {0:?})")]
    NotXdr(Vec<u8>),
    /// The serialized object ends before a field it announces.
    #[error("serialized object cut short: need {need} bytes at offset {at}, have {len}")]
    Truncated { at: usize, need: usize, len: usize },
    /// A negative length other than NA's -1.
    #[error("invalid length {len} at offset {at}")]
    BadLength { at: usize, len: i64 },
    /// A string flagged UTF-8 is not valid UTF-8.
    #[error("element {index} is flagged UTF-8 but is not valid UTF-8")]
    InvalidUtf8 { index: usize },
}

/// Splits an `.rdb` blob into its inflated records.
pub fn records(blob: &[u8]) -> Result<Vec<Vec<u8>>, RdataError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 4 <= blob.len() {
        let record = out.len();
        let declared =
            u32::from_be_bytes([blob[pos], blob[pos + 1], blob[pos + 2], blob[pos + 3]]) as usize;
        if declared > MAX_RECORD {
            return Err(RdataError::LengthMismatch {
                record,
                offset: pos,
                declared,
                actual: 0,
            });
        }
        let mut dec = ZlibDecoder::new(&blob[pos + 4..]);
        let mut data = Vec::with_capacity(declared.min(64 << 20));
        // One byte more than declared: enough to tell "too long" without
        // letting a corrupt header inflate without bound.
        (&mut dec)
            .take(declared as u64 + 1)
            .read_to_end(&mut data)
            .map_err(|source| RdataError::Zlib {
                record,
                offset: pos,
                source,
            })?;
        if data.len() != declared {
            return Err(RdataError::LengthMismatch {
                record,
                offset: pos,
                declared,
                actual: data.len(),
            });
        }
        let rest = dec.into_inner().len();
        pos = blob.len() - rest;
        out.push(data);
    }
    Ok(out)
}

/// A bounds-checked big-endian reader over one serialized object.
struct Xdr<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Xdr<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], RdataError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return Err(RdataError::Truncated {
                at: self.pos,
                need: n,
                len: self.data.len(),
            });
        };
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn int(&mut self) -> Result<i32, RdataError> {
        let b = self.bytes(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a length that must be non-negative.
    fn len(&mut self) -> Result<usize, RdataError> {
        let at = self.pos;
        let n = self.int()?;
        usize::try_from(n).map_err(|_| RdataError::BadLength { at, len: n.into() })
    }
}

/// Decodes one serialized object: `Some(strings)` for a character vector,
/// `None` for any other object. NA elements become empty strings; each
/// element is decoded as UTF-8 when flagged so, else as Latin-1.
pub fn strings(data: &[u8]) -> Result<Option<Vec<String>>, RdataError> {
    if !data.starts_with(b"X\n") {
        return Err(RdataError::NotXdr(data.iter().take(8).copied().collect()));
    }
    let mut r = Xdr { data, pos: 2 };
    let version = r.int()?;
    r.bytes(8)?; // writer version, minimal reader version
    if version == 3 {
        let n = r.len()?;
        r.bytes(n)?; // native encoding name
    }
    let flags = r.int()? as u32;
    if flags & 0xFF != STRSXP {
        return Ok(None);
    }
    let n = r.len()?;
    // Each element takes at least 8 bytes: never reserve more than the data allows.
    let mut out = Vec::with_capacity(n.min(data.len() / 8));
    for index in 0..n {
        let f = r.int()? as u32;
        let at = r.pos;
        let len = r.int()?;
        if len == -1 {
            out.push(String::new()); // NA_character_
            continue;
        }
        let len = usize::try_from(len).map_err(|_| RdataError::BadLength {
            at,
            len: len.into(),
        })?;
        let bytes = r.bytes(len)?;
        let s = if f & UTF8_FLAG != 0 {
            std::str::from_utf8(bytes)
                .map_err(|_| RdataError::InvalidUtf8 { index })?
                .to_owned()
        } else {
            bytes.iter().map(|&b| char::from(b)).collect()
        };
        out.push(s);
    }
    Ok(Some(out))
}

/// Python's `str.isspace`: Rust's White_Space plus the four information
/// separators U+001C..U+001F.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` with no argument.
fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Python's `str.splitlines()` (without keepends): splits on `\n`, `\r\n`,
/// `\r`, `\v`, `\f`, U+001C..U+001E, U+0085, U+2028, U+2029; no empty last
/// line after a trailing break.
fn py_splitlines(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\u{0b}'
                | '\u{0c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if !is_break {
            continue;
        }
        out.push(&s[start..i]);
        let mut end = i + c.len_utf8();
        if c == '\r' && it.peek().map(|&(_, n)| n) == Some('\n') {
            it.next();
            end += 1;
        }
        start = end;
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// Python's `re.split(r"\n\s*\n", text)`: splits at every run that starts and
/// ends with `\n` and holds only whitespace. The regex is greedy, so from a
/// `\n` the match extends to the last `\n` of the whitespace run after it.
fn split_paragraphs(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\n' {
            i += 1;
            continue;
        }
        // The maximal whitespace run after this '\n', and its last '\n'.
        let mut last_nl = None;
        for (j, c) in text[i + 1..].char_indices() {
            if !is_py_space(c) {
                break;
            }
            if c == '\n' {
                last_nl = Some(i + 1 + j);
            }
        }
        match last_nl {
            Some(end) => {
                out.push(&text[start..i]);
                start = end + 1;
                i = end + 1;
            }
            None => i += 1,
        }
    }
    out.push(&text[start..]);
    out
}

/// Joins hard-wrapped lines into one line per paragraph, with one blank line
/// between paragraphs and a final newline (models.md §3 `unwrap`).
pub fn unwrap(text: &str) -> String {
    let paras: Vec<String> = split_paragraphs(text)
        .into_iter()
        .map(|p| {
            py_splitlines(p)
                .into_iter()
                .map(py_strip)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|p| !p.is_empty())
        .collect();
    let mut out = paras.join("\n\n");
    out.push('\n');
    out
}

/// The whole text of a character vector: its elements joined by newlines,
/// plus a final newline (the `.txt` file).
pub fn raw_text(v: &[String]) -> String {
    let mut out = v.join("\n");
    out.push('\n');
    out
}

/// The name the reference extractor gives a text: its first non-blank line,
/// without a BOM, lower-cased, runs of anything but `[a-z0-9]` turned into
/// `_`, trimmed of `_`, at most 40 characters.
pub fn record_name(v: &[String]) -> String {
    let first = v
        .iter()
        .find(|l| !py_strip(l).is_empty())
        .map_or("untitled", |s| s.as_str());
    let first = first.trim_start_matches('\u{feff}');
    let lower = py_strip(first).to_lowercase();
    let mut name = String::new();
    let mut in_gap = false;
    for c in lower.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
            in_gap = false;
        } else if !in_gap {
            name.push('_');
            in_gap = true;
        }
    }
    name.trim_matches('_').chars().take(40).collect()
}

/// Every non-empty character vector in an `.rdb` blob, with its name.
pub fn texts(blob: &[u8]) -> Result<Vec<(String, Vec<String>)>, RdataError> {
    let mut out = Vec::new();
    for data in records(blob)? {
        if let Some(v) = strings(&data)?
            && !v.is_empty()
        {
            out.push((record_name(&v), v));
        }
    }
    Ok(out)
}

/// Serialises a character vector the way R's `saveRDS`/lazy-load does
/// (XDR, format 3): `None` is `NA`, `(true, bytes)` a UTF-8 string,
/// `(false, bytes)` a Latin-1 one. The inverse of the decoder, for tests and
/// fixtures.
pub fn write_strsxp(elems: &[Option<(bool, &[u8])>]) -> Vec<u8> {
    fn be(out: &mut Vec<u8>, v: i32) {
        out.extend_from_slice(&v.to_be_bytes());
    }
    let mut d = b"X\n".to_vec();
    be(&mut d, 3);
    be(&mut d, 0x0004_0201);
    be(&mut d, 0x0003_0500);
    be(&mut d, 5);
    d.extend_from_slice(b"UTF-8");
    be(&mut d, 16);
    be(&mut d, elems.len() as i32);
    for e in elems {
        match e {
            None => {
                be(&mut d, 9);
                be(&mut d, -1);
            }
            Some((utf8, s)) => {
                be(&mut d, if *utf8 { 0x8009 } else { 0x0009 });
                be(&mut d, s.len() as i32);
                d.extend_from_slice(s);
            }
        }
    }
    d
}

/// One `.rdb` record: the 4-byte big-endian length, then the zlib stream.
pub fn write_record(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use flate2::{write::ZlibEncoder, Compression};
    use std::io::Write;
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(data)?;
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend(z.finish()?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(out: &mut Vec<u8>, v: i32) {
        out.extend_from_slice(&v.to_be_bytes());
    }

    fn strsxp(elems: &[Option<(bool, &[u8])>]) -> Vec<u8> {
        write_strsxp(elems)
    }

    fn record(data: &[u8]) -> Vec<u8> {
        write_record(data).expect("in-memory zlib")
    }

    #[test]
    fn decodes_na_latin1_and_utf8() {
        let obj = strsxp(&[
            Some((false, b"PERSUASION")),
            None,
            Some((false, b"caf\xe9")),
            Some((true, "naïve ☃".as_bytes())),
        ]);
        let mut blob = record(&obj);
        // A second record that is not a character vector (an INTSXP) is skipped.
        let mut ints = b"X\n".to_vec();
        be(&mut ints, 2);
        be(&mut ints, 0);
        be(&mut ints, 0);
        be(&mut ints, 13);
        be(&mut ints, 1);
        be(&mut ints, 42);
        blob.extend(record(&ints));
        let recs = records(&blob).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(strings(&recs[1]).unwrap(), None);
        let t = texts(&blob).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].0, "persuasion");
        assert_eq!(t[0].1, ["PERSUASION", "", "café", "naïve ☃"]);
        assert_eq!(raw_text(&t[0].1), "PERSUASION\n\ncafé\nnaïve ☃\n");
    }

    #[test]
    fn corrupt_records_are_errors() {
        let obj = strsxp(&[Some((false, b"hello"))]);
        let good = record(&obj);

        // Flipped bytes inside the zlib stream.
        let mut bad = good.clone();
        for b in &mut bad[8..14] {
            *b ^= 0x5A;
        }
        assert!(records(&bad).is_err());

        // Stream cut short.
        let cut = &good[..good.len() - 6];
        assert!(matches!(
            records(cut),
            Err(RdataError::Zlib { .. } | RdataError::LengthMismatch { .. })
        ));

        // Header length disagrees with the stream.
        let mut wrong = good.clone();
        wrong[3] = wrong[3].wrapping_add(1);
        assert!(matches!(
            records(&wrong),
            Err(RdataError::LengthMismatch { .. })
        ));

        // Serialized object truncated inside an element.
        let short = &obj[..obj.len() - 2];
        assert!(matches!(strings(short), Err(RdataError::Truncated { .. })));

        // Not XDR, and an absurd element count.
        assert!(matches!(strings(b"A\n123"), Err(RdataError::NotXdr(_))));
        let mut huge = obj.clone();
        let count_at = obj.len() - 4 - 4 - 5 - 4;
        huge[count_at..count_at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(strings(&huge), Err(RdataError::Truncated { .. })));

        // Invalid UTF-8 in an element flagged UTF-8.
        let bad_utf8 = strsxp(&[Some((true, b"\xff\xfe"))]);
        assert!(matches!(
            strings(&bad_utf8),
            Err(RdataError::InvalidUtf8 { index: 0 })
        ));
    }

    #[test]
    fn unwrap_joins_lines_and_normalises_blank_runs() {
        let text = "Title\n\n\nChapter 1\n\nIt is a truth  \n  universally acknowledged,\nthat a man\n \t \n\nEnd.\n";
        assert_eq!(
            unwrap(text),
            "Title\n\nChapter 1\n\nIt is a truth universally acknowledged, that a man\n\nEnd.\n"
        );
        // Whitespace-only and empty inputs give a lone newline, as in Python.
        assert_eq!(unwrap(""), "\n");
        assert_eq!(unwrap(" \n\n \n"), "\n");
        // Python-only whitespace (U+001F) and line breaks (\r, U+2028, \x0c).
        assert_eq!(
            unwrap("a\u{1f}\nb\rc\u{2028}d\n\u{1f}\ne"),
            "a b c d\n\ne\n"
        );
        // A single newline with trailing spaces is not a paragraph break.
        assert_eq!(unwrap("a\n  b"), "a b\n");
        // NBSP is whitespace for Python's strip.
        assert_eq!(unwrap("\u{a0}x\u{a0}\n\ny"), "x\n\ny\n");
    }

    #[test]
    fn splitlines_matches_python() {
        assert_eq!(py_splitlines("a\r\nb\n\nc\n"), ["a", "b", "", "c"]);
        assert_eq!(py_splitlines("a\u{85}b\u{1e}c"), ["a", "b", "c"]);
        assert_eq!(py_splitlines(""), Vec::<&str>::new());
        assert_eq!(split_paragraphs("a\n \n b\nc"), ["a", " b\nc"]);
        assert_eq!(split_paragraphs("a\n\n\n\nb"), ["a", "b"]);
    }

    #[test]
    fn record_names_follow_the_reference_rule() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            record_name(&v(&["", "  ", "\u{feff}PRIDE AND PREJUDICE"])),
            "pride_and_prejudice"
        );
        assert_eq!(
            record_name(&v(&[
                "The Project Gutenberg EBook of Moby Dick; or The Whale, by Herman Melville"
            ])),
            "the_project_gutenberg_ebook_of_moby_dick"
        );
        assert_eq!(record_name(&v(&[" "])), "untitled");
    }
}
