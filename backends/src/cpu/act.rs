//! Quantised activations (Q8_0 / Q8_K) in the record layout the JIT kernels read.
//!
//! Quantisation is plain Rust and bit-exact with ggml's reference
//! `quantize_row_q8_0_ref` (amax/127, f16 scale, `roundf`) and
//! `quantize_row_q8_K_ref` (iscale = −127/max, `nearest_int`, i16 sums of 16).
//! The *storage* is not ggml's: each block is a 16-byte aligned record that
//! also carries the integer/float block sums the kernels use for the offset
//! and min corrections, with the f16 scale already widened to f32 (the same
//! value; Cranelift has no f16 conversion). [`ActivationQ8::ggml_block_bytes`]
//! gives the exact ggml block bytes back for comparison with ggml.
//!
//! Q8_0 record, 48 bytes: `qs: [i8; 32]` @0, `d: f32` @32, `s = d·Σqs: f32` @36,
//! `Σqs: i32` @40, pad.
//! Q8_K record, 320 bytes: `qs: [i8; 256]` @0, `bsums: [i16; 16]` @256 (sums of
//! 16), `sums32: [i16; 8]` @288 (sums of 32), `d: f32` @304, `Σqs: i32` @308, pad.

use super::format::ActKind;
use half::f16;

/// Runs a job for every chunk index in `0..chunks` (any order, any threads):
/// the shape of the runtime pool's `run`.
pub type ChunkRunner<'a> = dyn Fn(usize, &(dyn Fn(usize) + Sync)) -> Result<(), String> + 'a;

/// Record size of one Q8_0 activation block.
pub const Q8_0_RECORD: usize = 48;
/// Record size of one Q8_K activation block.
pub const Q8_K_RECORD: usize = 320;

pub(crate) mod q8_0_off {
    pub const QS: i32 = 0;
    pub const D: i32 = 32;
    pub const S: i32 = 36;
    pub const SUM: i32 = 40;
}
pub(crate) mod q8_k_off {
    pub const BSUMS: i32 = 256;
    pub const SUMS32: i32 = 288;
    pub const D: i32 = 304;
    pub const SUM: i32 = 308;
}

#[derive(Clone, Copy, Default)]
#[repr(C, align(16))]
struct A16([u8; 16]);

/// A 16-byte aligned byte buffer.
#[derive(Clone, Default)]
pub(crate) struct AlignedBytes {
    buf: Vec<A16>,
    len: usize,
}

impl AlignedBytes {
    pub(crate) fn zeroed(len: usize) -> Self {
        Self { buf: vec![A16::default(); len.div_ceil(16)], len }
    }
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: A16 is 16 plain bytes with no padding; len <= 16 * buf.len().
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr().cast::<u8>(), self.len) }
    }
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and we hold &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.buf.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

/// A batch of activation rows quantised for the integer kernels.
#[derive(Clone)]
pub struct ActivationQ8 {
    kind: ActKind,
    rows: usize,
    cols: usize,
    data: AlignedBytes,
}

impl std::fmt::Debug for ActivationQ8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivationQ8")
            .field("kind", &self.kind)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish()
    }
}

/// ggml's `nearest_int`: round half to even through the 1.5·2^23 trick.
#[inline]
fn nearest_int(v: f32) -> i32 {
    let f = v + 12_582_912.0f32;
    (f.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

impl ActivationQ8 {
    /// Quantises `rows` rows of `cols` values (`x.len() == rows * cols`).
    /// `cols` must be a positive multiple of the block size of `kind`, which
    /// must be `Q8_0` or `Q8_K`.
    pub fn quantize(kind: ActKind, x: &[f32], rows: usize, cols: usize) -> Result<Self, String> {
        let be = kind.block_elems();
        if kind == ActKind::F32 {
            return Err("ActivationQ8 holds Q8_0 or Q8_K activations, not f32".into());
        }
        if cols == 0 || !cols.is_multiple_of(be) {
            return Err(format!("{kind:?}: cols = {cols} is not a positive multiple of {be}"));
        }
        if rows.checked_mul(cols) != Some(x.len()) {
            return Err(format!("{kind:?}: x has {} values, expected {rows} × {cols}", x.len()));
        }
        let mut a = Self::empty(kind);
        a.quantize_into(x, rows, cols)?;
        Ok(a)
    }

    /// An empty batch of `kind` activations (quantise into it with
    /// [`ActivationQ8::quantize_into`]).
    pub fn empty(kind: ActKind) -> Self {
        Self { kind, rows: 0, cols: 0, data: AlignedBytes::zeroed(0) }
    }

    /// Re-quantises `rows` rows of `cols` values into this batch, reusing its
    /// buffer (it only grows): no allocation once the largest batch was seen.
    pub fn quantize_into(&mut self, x: &[f32], rows: usize, cols: usize) -> Result<(), String> {
        self.quantize_into_chunks(x, rows, cols, 1, &|n, job| {
            (0..n).for_each(job);
            Ok(())
        })
    }

    /// [`ActivationQ8::quantize_into`] with the blocks cut into `chunks`
    /// contiguous ranges handed to `run` (which calls the job once per chunk
    /// index, on any threads: a pool's `run`). Same bytes for any `chunks`.
    pub fn quantize_into_chunks(&mut self, x: &[f32], rows: usize, cols: usize, chunks: usize, run: &ChunkRunner<'_>) -> Result<(), String> {
        let kind = self.kind;
        let be = kind.block_elems();
        if kind == ActKind::F32 || cols == 0 || !cols.is_multiple_of(be) || rows.checked_mul(cols) != Some(x.len()) {
            return Err(format!("{kind:?}: cannot quantise {} values as {rows} × {cols}", x.len()));
        }
        let rec = Self::record_bytes(kind);
        let blocks = rows * (cols / be);
        let need = blocks * rec;
        if self.data.buf.len() * 16 < need {
            self.data = AlignedBytes::zeroed(need);
        }
        self.data.len = need;
        self.rows = rows;
        self.cols = cols;
        let out = super::SendPtr(self.data.bytes_mut().as_mut_ptr());
        let chunks = chunks.clamp(1, blocks.max(1));
        run(chunks, &|c| {
            let r = blocks * c / chunks..blocks * (c + 1) / chunks;
            let out = &out;
            // SAFETY: the chunks' block ranges are disjoint and inside the
            // `need` bytes just sized.
            let o = unsafe { std::slice::from_raw_parts_mut(out.0.add(r.start * rec), r.len() * rec) };
            quantize_blocks(kind, &x[r.start * be..r.end * be], o, be, rec);
        })
    }

    /// Q8_0 activations (for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 weights).
    pub fn q8_0(x: &[f32], rows: usize, cols: usize) -> Result<Self, String> {
        Self::quantize(ActKind::Q8_0, x, rows, cols)
    }

    /// Q8_K activations (for K-quant and TQ2_0 weights).
    pub fn q8_k(x: &[f32], rows: usize, cols: usize) -> Result<Self, String> {
        Self::quantize(ActKind::Q8_K, x, rows, cols)
    }

    /// Bytes per block record.
    pub fn record_bytes(kind: ActKind) -> usize {
        match kind {
            ActKind::Q8_0 => Q8_0_RECORD,
            ActKind::Q8_K => Q8_K_RECORD,
            ActKind::F32 => 4,
        }
    }

    /// The quantisation kind.
    pub fn kind(&self) -> ActKind {
        self.kind
    }
    /// Number of activation rows (the batch).
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Elements per row.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Bytes per activation row.
    pub fn row_stride(&self) -> usize {
        self.cols / self.kind.block_elems() * Self::record_bytes(self.kind)
    }
    /// The raw records (what the kernels read).
    pub fn bytes(&self) -> &[u8] {
        self.data.bytes()
    }

    fn record(&self, row: usize, block: usize) -> &[u8] {
        let rec = Self::record_bytes(self.kind);
        let off = row * self.row_stride() + block * rec;
        &self.bytes()[off..off + rec]
    }

    /// The quantised values of a row.
    pub fn row_qs(&self, row: usize) -> Vec<i8> {
        let be = self.kind.block_elems();
        (0..self.cols / be)
            .flat_map(|b| self.record(row, b)[..be].iter().map(|&v| v as i8).collect::<Vec<_>>())
            .collect()
    }

    /// Per-block scales of a row (as f32; for Q8_0 the f16 value widened).
    pub fn row_scales(&self, row: usize) -> Vec<f32> {
        let be = self.kind.block_elems();
        let d_off = match self.kind {
            ActKind::Q8_0 => q8_0_off::D,
            _ => q8_k_off::D,
        } as usize;
        (0..self.cols / be)
            .map(|b| {
                let r = self.record(row, b);
                f32::from_le_bytes(r[d_off..d_off + 4].try_into().unwrap())
            })
            .collect()
    }

    /// The dequantised row: `d · q` per element.
    pub fn dequantize_row(&self, row: usize) -> Vec<f32> {
        let be = self.kind.block_elems();
        let d = self.row_scales(row);
        self.row_qs(row).iter().enumerate().map(|(i, &q)| d[i / be] * q as f32).collect()
    }

    /// The row in ggml's block layout (`block_q8_0`: f16 d + 32 i8;
    /// `block_q8_K`: f32 d + 256 i8 + 16 i16 bsums), byte for byte.
    pub fn ggml_block_bytes(&self, row: usize) -> Vec<u8> {
        let be = self.kind.block_elems();
        let mut out = Vec::new();
        for b in 0..self.cols / be {
            let r = self.record(row, b);
            match self.kind {
                ActKind::Q8_0 => {
                    let d = f32::from_le_bytes(r[32..36].try_into().unwrap());
                    out.extend_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
                    out.extend_from_slice(&r[..32]);
                }
                ActKind::Q8_K => {
                    out.extend_from_slice(&r[304..308]);
                    out.extend_from_slice(&r[..256]);
                    out.extend_from_slice(&r[256..288]);
                }
                ActKind::F32 => unreachable!(),
            }
        }
        out
    }
}

/// Quantises whole blocks of `x` into `out` (AVX2 code when present).
fn quantize_blocks(kind: ActKind, x: &[f32], out: &mut [u8], be: usize, rec: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was just detected.
        return unsafe { quantize_blocks_avx2(kind, x, out, be, rec) };
    }
    quantize_blocks_body(kind, x, out, be, rec)
}

#[inline(always)]
fn quantize_blocks_body(kind: ActKind, x: &[f32], out: &mut [u8], be: usize, rec: usize) {
    for (xb, ob) in x.chunks_exact(be).zip(out.chunks_exact_mut(rec)) {
        match kind {
            ActKind::Q8_0 => quantize_block_q8_0(xb, ob),
            _ => quantize_block_q8_k(xb, ob),
        }
    }
}

/// [`quantize_blocks_body`] compiled for AVX2 (same results: only the
/// instruction selection changes, e.g. `roundf` becomes `vroundps`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_blocks_avx2(kind: ActKind, x: &[f32], out: &mut [u8], be: usize, rec: usize) {
    quantize_blocks_body(kind, x, out, be, rec)
}

#[inline(always)]
fn quantize_block_q8_0(x: &[f32], out: &mut [u8]) {
    let mut amax = 0.0f32;
    for &v in x {
        amax = amax.max(v.abs());
    }
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let dh = f16::from_f32(d).to_f32();
    let mut sum = 0i32;
    for (j, &v) in x.iter().enumerate() {
        let q = (v * id).round() as i8;
        out[j] = q as u8;
        sum += q as i32;
    }
    out[32..36].copy_from_slice(&dh.to_le_bytes());
    out[36..40].copy_from_slice(&(dh * sum as f32).to_le_bytes());
    out[40..44].copy_from_slice(&sum.to_le_bytes());
}

#[inline(always)]
fn quantize_block_q8_k(x: &[f32], out: &mut [u8]) {
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax == 0.0 {
        out.fill(0);
        return;
    }
    let iscale = -127.0f32 / max;
    for (j, &v) in x.iter().enumerate() {
        out[j] = nearest_int(iscale * v).min(127) as i8 as u8;
    }
    let mut total = 0i32;
    for j in 0..16 {
        let s: i32 = out[16 * j..16 * j + 16].iter().map(|&q| q as i8 as i32).sum();
        total += s;
        out[256 + 2 * j..258 + 2 * j].copy_from_slice(&(s as i16).to_le_bytes());
    }
    for j in 0..8 {
        let s: i32 = out[32 * j..32 * j + 32].iter().map(|&q| q as i8 as i32).sum();
        out[288 + 2 * j..290 + 2 * j].copy_from_slice(&(s as i16).to_le_bytes());
    }
    out[304..308].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    out[308..312].copy_from_slice(&total.to_le_bytes());
}
