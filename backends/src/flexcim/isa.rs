//! The FlexCiM-like instruction set: the instructions, a text assembly
//! (parse + print) and a binary encoding (encode + decode).
//!
//! `ISA.md` beside this file is the reference. The instructions carry their
//! data (weights, metadata, activations) so a stream is self-contained and
//! can be simulated from a file alone. Both readers return errors as values
//! with a place: the text parser a line and column, the decoder a byte offset.
//! Lengths tied to the architecture (sub-macros per `dsel`, cells per `ldw`)
//! are checked by the simulator, which knows the architecture.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

/// One instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instr {
    /// Starts a layer: results `tokens × out` int32, inputs `in` wide.
    Layer { name: String, tokens: u32, out: u32, inp: u32 },
    /// Configures the pattern (N kept of M), the merger's aggregation
    /// (sub-macros per output) and, for a dense pattern on a macro with the
    /// dense bypass, whether rows skip the distribution network.
    Cfg { n: u8, m: u8, agg: u8, bypass: bool },
    /// Writes weights and metadata bits into rows × cols cells of sub-macro `sm` at (row, col), row-major.
    Ldw { sm: u8, row: u16, col: u16, rows: u16, cols: u16, w: Vec<i8>, meta: Vec<u8> },
    /// Sets one row's distribution network: bus group b carries activations from
    /// vector offset `bus[b]` (None: idle), stage 1 of group b picks pair `s1[b]`,
    /// stage 2 routes group `s2[s]` to sub-macro s (None: the row is disabled there).
    Dsel { row: u16, bus: Vec<Option<u32>>, s1: Vec<u8>, s2: Vec<Option<u8>> },
    /// Loads int8 activations from off-macro into the activation buffer at `addr`.
    Ldx { addr: u32, data: Vec<i8> },
    /// Streams `count` vectors (vector t at `x + t·xstride`) through the
    /// distribution muxes, the cells and adder trees, the psum FIFOs and the
    /// merger; result t goes to accumulator words `y + t·(P/agg)·columns`,
    /// added to what is there when `acc`, else overwriting it.
    Mac { x: u32, xstride: u32, y: u32, count: u32, acc: bool },
    /// Writes back `count` results of `cols` words from accumulator `y` (stride
    /// `(P/agg)·columns`) to the layer output at `dst + t·dstride`.
    St { y: u32, count: u32, cols: u16, dst: u32, dstride: u32 },
    /// Work left to the host (a non-GEMM op), counted, not simulated.
    Host { op: String, elems: u64 },
    /// Waits until the macro pipeline has drained.
    Sync,
}

/// A stream: instructions in order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Program {
    /// The instructions.
    pub instrs: Vec<Instr>,
}

/// A stream that does not parse or decode: where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// Text assembly: 1-based line and column.
    Asm { line: usize, col: usize, message: String },
    /// Binary: byte offset.
    Bin { offset: usize, message: String },
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Asm { line, col, message } => write!(f, "line {line}, column {col}: {message}"),
            StreamError::Bin { offset, message } => write!(f, "byte offset {offset}: {message}"),
        }
    }
}

impl std::error::Error for StreamError {}

/// The binary magic and version.
pub const MAGIC: &[u8; 4] = b"FXCM";
/// The binary format version written (2: `cfg` has a flags byte); version 1
/// streams (no flags byte, no bypass) are still read.
pub const VERSION: u16 = 2;

const OPS: [&str; 9] = ["layer", "cfg", "ldw", "dsel", "ldx", "mac", "st", "host", "sync"];

impl Instr {
    /// The mnemonic.
    pub fn mnemonic(&self) -> &'static str {
        OPS[self.opcode() as usize]
    }

    /// The binary opcode.
    pub fn opcode(&self) -> u8 {
        match self {
            Instr::Layer { .. } => 0,
            Instr::Cfg { .. } => 1,
            Instr::Ldw { .. } => 2,
            Instr::Dsel { .. } => 3,
            Instr::Ldx { .. } => 4,
            Instr::Mac { .. } => 5,
            Instr::St { .. } => 6,
            Instr::Host { .. } => 7,
            Instr::Sync => 8,
        }
    }
}

// ---------------------------------------------------------------- text.

fn hex(bytes: impl Iterator<Item = u8>) -> String {
    let mut s = String::from("0x");
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Packs 0/1 values LSB-first into bytes.
pub fn pack_bits(bits: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, &b) in bits.iter().enumerate() {
        out[i / 8] |= (b & 1) << (i % 8);
    }
    out
}

fn unpack_bits(bytes: &[u8], n: usize) -> Vec<u8> {
    (0..n).map(|i| (bytes[i / 8] >> (i % 8)) & 1).collect()
}

fn list<T>(v: &[T], f: impl Fn(&T) -> String) -> String {
    v.iter().map(f).collect::<Vec<_>>().join(",")
}

fn opt_str<T: fmt::Display>(o: &Option<T>) -> String {
    o.as_ref().map_or("-".to_string(), |v| v.to_string())
}

impl fmt::Display for Instr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.mnemonic();
        match self {
            Instr::Layer { name, tokens, out, inp } => write!(f, "{m} name={name} tokens={tokens} out={out} in={inp}"),
            Instr::Cfg { n, m: mm, agg, bypass } => write!(f, "{m} n={n} m={mm} agg={agg}{}", if *bypass { " bypass=1" } else { "" }),
            Instr::Ldw { sm, row, col, rows, cols, w, meta } => {
                write!(f, "{m} sm={sm} row={row} col={col} rows={rows} cols={cols} w={} meta={}", hex(w.iter().map(|&x| x as u8)), hex(pack_bits(meta).into_iter()))
            }
            Instr::Dsel { row, bus, s1, s2 } => write!(f, "{m} row={row} bus={} s1={} s2={}", list(bus, opt_str), list(s1, |v| v.to_string()), list(s2, opt_str)),
            Instr::Ldx { addr, data } => write!(f, "{m} addr={addr} data={}", hex(data.iter().map(|&x| x as u8))),
            Instr::Mac { x, xstride, y, count, acc } => write!(f, "{m} x={x} xstride={xstride} y={y} count={count} acc={}", *acc as u8),
            Instr::St { y, count, cols, dst, dstride } => write!(f, "{m} y={y} count={count} cols={cols} dst={dst} dstride={dstride}"),
            Instr::Host { op, elems } => write!(f, "{m} op={op} elems={elems}"),
            Instr::Sync => f.write_str(m),
        }
    }
}

/// Prints a stream as assembly text, one instruction a line.
pub fn print_asm(p: &Program) -> String {
    let mut s = String::from("; flexcim stream v1 (FlexCiM-like macro; see backends/src/flexcim/ISA.md)\n");
    for i in &p.instrs {
        let _ = writeln!(s, "{i}");
    }
    s
}

struct Fields<'a> {
    line: usize,
    map: HashMap<&'a str, (&'a str, usize)>,
    mnemonic_col: usize,
}

impl<'a> Fields<'a> {
    fn err(&self, col: usize, message: String) -> StreamError {
        StreamError::Asm { line: self.line, col, message }
    }

    fn raw(&mut self, key: &str) -> Result<(&'a str, usize), StreamError> {
        self.map.remove(key).ok_or_else(|| StreamError::Asm { line: self.line, col: self.mnemonic_col, message: format!("missing field `{key}=`") })
    }

    fn num<T: std::str::FromStr>(&mut self, key: &str) -> Result<T, StreamError> {
        let (v, col) = self.raw(key)?;
        v.parse().map_err(|_| self.err(col, format!("`{key}`: `{v}` is not a valid {} number", std::any::type_name::<T>())))
    }

    fn name(&mut self, key: &str) -> Result<String, StreamError> {
        let (v, col) = self.raw(key)?;
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic() && b != b'=' && b != b';') {
            return Err(self.err(col, format!("`{key}`: `{v}` is not a name")));
        }
        Ok(v.to_string())
    }

    fn bytes(&mut self, key: &str) -> Result<Vec<u8>, StreamError> {
        let (v, col) = self.raw(key)?;
        let h = v.strip_prefix("0x").ok_or_else(|| self.err(col, format!("`{key}`: hex data must start with 0x")))?;
        // Check the digits before slicing pairs: a multi-byte character would
        // otherwise put a slice boundary inside it (a panic, found by fuzzing).
        if let Some((i, c)) = h.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
            return Err(self.err(col + 2 + i, format!("`{key}`: {c:?} is not a hex digit")));
        }
        if h.len() % 2 != 0 {
            return Err(self.err(col, format!("`{key}`: odd number of hex digits ({})", h.len())));
        }
        (0..h.len() / 2)
            .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).map_err(|_| self.err(col + 2 + 2 * i, format!("`{key}`: `{}` is not a hex byte", &h[2 * i..2 * i + 2]))))
            .collect()
    }

    fn list<T: std::str::FromStr>(&mut self, key: &str) -> Result<Vec<Option<T>>, StreamError> {
        let (v, col) = self.raw(key)?;
        // The printer writes an empty list as `key=`: read it back as empty
        // (a zero-group `dsel` decoded from binary did not round-trip; fuzzing).
        if v.is_empty() {
            return Ok(Vec::new());
        }
        v.split(',')
            .map(|s| if s == "-" { Ok(None) } else { s.parse().map(Some).map_err(|_| self.err(col, format!("`{key}`: `{s}` is not a number or `-`"))) })
            .collect()
    }

    fn done(self) -> Result<(), StreamError> {
        match self.map.iter().min_by_key(|(_, (_, c))| *c) {
            Some((k, (_, c))) => Err(StreamError::Asm { line: self.line, col: *c, message: format!("unknown field `{k}`") }),
            None => Ok(()),
        }
    }
}

fn parse_line(line: usize, text: &str) -> Result<Option<Instr>, StreamError> {
    let code = text.split(';').next().unwrap_or("");
    let mut toks = Vec::new();
    let mut pos = 0;
    for t in code.split([' ', '\t']) {
        if !t.is_empty() {
            toks.push((t, pos + 1));
        }
        pos += t.len() + 1;
    }
    let Some(&(mn, mcol)) = toks.first() else { return Ok(None) };
    let mut f = Fields { line, map: HashMap::new(), mnemonic_col: mcol };
    for &(t, col) in &toks[1..] {
        let (k, v) = t.split_once('=').ok_or_else(|| f.err(col, format!("expected key=value, got `{t}`")))?;
        if f.map.insert(k, (v, col + k.len() + 1)).is_some() {
            return Err(f.err(col, format!("field `{k}` given twice")));
        }
    }
    let i = match mn {
        "layer" => Instr::Layer { name: f.name("name")?, tokens: f.num("tokens")?, out: f.num("out")?, inp: f.num("in")? },
        "cfg" => {
            let (n, m, agg) = (f.num("n")?, f.num("m")?, f.num("agg")?);
            let bypass: u8 = if f.map.contains_key("bypass") { f.num("bypass")? } else { 0 };
            if bypass > 1 {
                return Err(f.err(mcol, format!("`bypass` is 0 or 1, got {bypass}")));
            }
            Instr::Cfg { n, m, agg, bypass: bypass == 1 }
        }
        "ldw" => {
            let (sm, row, col, rows, cols): (u8, u16, u16, u16, u16) = (f.num("sm")?, f.num("row")?, f.num("col")?, f.num("rows")?, f.num("cols")?);
            let cells = rows as usize * cols as usize;
            let wcol = f.map.get("w").map_or(mcol, |x| x.1);
            let w: Vec<i8> = f.bytes("w")?.into_iter().map(|b| b as i8).collect();
            if w.len() != cells {
                return Err(f.err(wcol, format!("`w` holds {} bytes, rows × cols = {cells}", w.len())));
            }
            let mcol2 = f.map.get("meta").map_or(mcol, |x| x.1);
            let mb = f.bytes("meta")?;
            if mb.len() != cells.div_ceil(8) {
                return Err(f.err(mcol2, format!("`meta` holds {} bytes, {cells} bits need {}", mb.len(), cells.div_ceil(8))));
            }
            Instr::Ldw { sm, row, col, rows, cols, w, meta: unpack_bits(&mb, cells) }
        }
        "dsel" => {
            let row = f.num("row")?;
            let bus = f.list("bus")?;
            let s1col = f.map.get("s1").map_or(mcol, |x| x.1);
            let s1 = f.list::<u8>("s1")?.into_iter().map(|v| v.ok_or_else(|| f.err(s1col, "`s1`: every bus group needs a pair select".into()))).collect::<Result<Vec<_>, _>>()?;
            let s2 = f.list("s2")?;
            if bus.len() != s1.len() || bus.len() != s2.len() {
                return Err(f.err(mcol, format!("`bus`, `s1`, `s2` have {}, {}, {} entries; they must agree", bus.len(), s1.len(), s2.len())));
            }
            Instr::Dsel { row, bus, s1, s2 }
        }
        "ldx" => Instr::Ldx { addr: f.num("addr")?, data: f.bytes("data")?.into_iter().map(|b| b as i8).collect() },
        "mac" => {
            let (x, xstride, y, count) = (f.num("x")?, f.num("xstride")?, f.num("y")?, f.num("count")?);
            let acc: u8 = f.num("acc")?;
            if acc > 1 {
                return Err(f.err(mcol, format!("`acc` is 0 or 1, got {acc}")));
            }
            Instr::Mac { x, xstride, y, count, acc: acc == 1 }
        }
        "st" => Instr::St { y: f.num("y")?, count: f.num("count")?, cols: f.num("cols")?, dst: f.num("dst")?, dstride: f.num("dstride")? },
        "host" => Instr::Host { op: f.name("op")?, elems: f.num("elems")? },
        "sync" => Instr::Sync,
        other => return Err(f.err(mcol, format!("unknown instruction `{other}` (known: {})", OPS.join(", ")))),
    };
    f.done()?;
    Ok(Some(i))
}

/// Parses assembly text (`;` starts a comment).
pub fn parse_asm(text: &str) -> Result<Program, StreamError> {
    let mut instrs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(ins) = parse_line(i + 1, line)? {
            instrs.push(ins);
        }
    }
    Ok(Program { instrs })
}

// -------------------------------------------------------------- binary.

struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn blob(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
}

/// Encodes a stream: `FXCM`, version u16, count u32, then per instruction an
/// opcode byte and little-endian fields (see ISA.md).
pub fn encode(p: &Program) -> Vec<u8> {
    let mut e = Enc(MAGIC.to_vec());
    e.u16(VERSION);
    e.u32(p.instrs.len() as u32);
    for i in &p.instrs {
        e.u8(i.opcode());
        match i {
            Instr::Layer { name, tokens, out, inp } => {
                e.blob(name.as_bytes());
                [*tokens, *out, *inp].into_iter().for_each(|v| e.u32(v));
            }
            Instr::Cfg { n, m, agg, bypass } => [*n, *m, *agg, *bypass as u8].into_iter().for_each(|v| e.u8(v)),
            Instr::Ldw { sm, row, col, rows, cols, w, meta } => {
                e.u8(*sm);
                [*row, *col, *rows, *cols].into_iter().for_each(|v| e.u16(v));
                e.blob(&w.iter().map(|&x| x as u8).collect::<Vec<_>>());
                e.blob(&pack_bits(meta));
            }
            Instr::Dsel { row, bus, s1, s2 } => {
                e.u16(*row);
                e.u8(bus.len() as u8);
                bus.iter().for_each(|b| e.u32(b.unwrap_or(u32::MAX)));
                s1.iter().for_each(|&v| e.u8(v));
                s2.iter().for_each(|v| e.u8(v.unwrap_or(u8::MAX)));
            }
            Instr::Ldx { addr, data } => {
                e.u32(*addr);
                e.blob(&data.iter().map(|&x| x as u8).collect::<Vec<_>>());
            }
            Instr::Mac { x, xstride, y, count, acc } => {
                [*x, *xstride, *y, *count].into_iter().for_each(|v| e.u32(v));
                e.u8(*acc as u8);
            }
            Instr::St { y, count, cols, dst, dstride } => {
                e.u32(*y);
                e.u32(*count);
                e.u16(*cols);
                e.u32(*dst);
                e.u32(*dstride);
            }
            Instr::Host { op, elems } => {
                e.blob(op.as_bytes());
                e.0.extend_from_slice(&elems.to_le_bytes());
            }
            Instr::Sync => {}
        }
    }
    e.0
}

struct Dec<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Dec<'a> {
    fn err(&self, at: usize, message: String) -> StreamError {
        StreamError::Bin { offset: at, message }
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], StreamError> {
        if self.b.len() - self.at < n {
            return Err(self.err(self.at, format!("truncated: {what} needs {n} bytes, {} left", self.b.len() - self.at)));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8, StreamError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, StreamError> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().unwrap_or_default()))
    }
    fn u32(&mut self, what: &str) -> Result<u32, StreamError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap_or_default()))
    }
    fn blob(&mut self, what: &str) -> Result<&'a [u8], StreamError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }
    fn text(&mut self, what: &str) -> Result<String, StreamError> {
        let at = self.at;
        let b = self.blob(what)?;
        let s = std::str::from_utf8(b).map_err(|_| self.err(at, format!("{what} is not UTF-8")))?;
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_graphic() && c != b'=' && c != b';') {
            return Err(self.err(at, format!("{what} `{s}` is not a name")));
        }
        Ok(s.to_string())
    }
}

/// Decodes a binary stream.
pub fn decode(bytes: &[u8]) -> Result<Program, StreamError> {
    let mut d = Dec { b: bytes, at: 0 };
    if d.take(4, "magic")? != MAGIC {
        return Err(d.err(0, "not a flexcim stream (magic is not FXCM)".into()));
    }
    let v = d.u16("version")?;
    if !(1..=VERSION).contains(&v) {
        return Err(d.err(4, format!("unsupported version {v} (this flexc reads 1 to {VERSION})")));
    }
    let count = d.u32("instruction count")?;
    let mut instrs = Vec::new();
    for _ in 0..count {
        let at = d.at;
        let op = d.u8("opcode")?;
        let i = match op {
            0 => Instr::Layer { name: d.text("layer name")?, tokens: d.u32("tokens")?, out: d.u32("out")?, inp: d.u32("in")? },
            1 => {
                let (n, m, agg) = (d.u8("n")?, d.u8("m")?, d.u8("agg")?);
                let fat = d.at;
                let bypass = match if v >= 2 { d.u8("cfg flags")? } else { 0 } {
                    0 => false,
                    1 => true,
                    f => return Err(d.err(fat, format!("cfg: flags {f:#04x}, only bit 0 (bypass) is defined"))),
                };
                Instr::Cfg { n, m, agg, bypass }
            }
            2 => {
                let (sm, row, col, rows, cols) = (d.u8("sm")?, d.u16("row")?, d.u16("col")?, d.u16("rows")?, d.u16("cols")?);
                let cells = rows as usize * cols as usize;
                let wat = d.at;
                let w: Vec<i8> = d.blob("weights")?.iter().map(|&b| b as i8).collect();
                if w.len() != cells {
                    return Err(d.err(wat, format!("ldw: {} weight bytes, rows × cols = {cells}", w.len())));
                }
                let mat = d.at;
                let mb = d.blob("metadata")?;
                if mb.len() != cells.div_ceil(8) {
                    return Err(d.err(mat, format!("ldw: {} metadata bytes, {cells} bits need {}", mb.len(), cells.div_ceil(8))));
                }
                Instr::Ldw { sm, row, col, rows, cols, w, meta: unpack_bits(mb, cells) }
            }
            3 => {
                let row = d.u16("row")?;
                let k = d.u8("bus groups")? as usize;
                let bus = (0..k).map(|_| d.u32("bus offset").map(|v| (v != u32::MAX).then_some(v))).collect::<Result<Vec<_>, _>>()?;
                let s1 = (0..k).map(|_| d.u8("s1")).collect::<Result<Vec<_>, _>>()?;
                let s2 = (0..k).map(|_| d.u8("s2").map(|v| (v != u8::MAX).then_some(v))).collect::<Result<Vec<_>, _>>()?;
                Instr::Dsel { row, bus, s1, s2 }
            }
            4 => Instr::Ldx { addr: d.u32("addr")?, data: d.blob("activations")?.iter().map(|&b| b as i8).collect() },
            5 => {
                let (x, xstride, y, count) = (d.u32("x")?, d.u32("xstride")?, d.u32("y")?, d.u32("count")?);
                let aat = d.at;
                let acc = match d.u8("acc")? {
                    0 => false,
                    1 => true,
                    v => return Err(d.err(aat, format!("mac: acc is 0 or 1, got {v}"))),
                };
                Instr::Mac { x, xstride, y, count, acc }
            }
            6 => Instr::St { y: d.u32("y")?, count: d.u32("count")?, cols: d.u16("cols")?, dst: d.u32("dst")?, dstride: d.u32("dstride")? },
            7 => {
                let op = d.text("host op")?;
                let e = d.take(8, "elems")?;
                Instr::Host { op, elems: u64::from_le_bytes(e.try_into().unwrap_or_default()) }
            }
            8 => Instr::Sync,
            other => return Err(d.err(at, format!("unknown opcode {other}"))),
        };
        instrs.push(i);
    }
    if d.at != bytes.len() {
        return Err(d.err(d.at, format!("{} trailing bytes after the last instruction", bytes.len() - d.at)));
    }
    Ok(Program { instrs })
}

/// Reads a stream file's bytes: binary if it starts with the magic, else assembly text.
pub fn read_stream(bytes: &[u8]) -> Result<Program, StreamError> {
    if bytes.starts_with(MAGIC) {
        return decode(bytes);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| StreamError::Bin { offset: e.valid_up_to(), message: "neither a binary stream (no FXCM magic) nor UTF-8 assembly text".into() })?;
    parse_asm(text)
}
