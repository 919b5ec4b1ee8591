//! T-MAC-style LUT mixed-precision GEMV (`y = W·x`, W low-bit, x f32) as a
//! Cranelift JIT kernel, for `#gq` (1–4 bits), `#ternary` and `#bcq`
//! (LUT-GEMM / ShiftAddLLM binary-coding) weights.
//!
//! **Math.** A b-bit code `q = Σ_i 2^i·q_i` is read bit-serially with
//! T-MAC's ±1 reinterpretation `s_i = 2q_i − 1`: `q − (2^b − 1)/2 = Σ_i 2^(i−1)·s_i`.
//! So for a group with scale `d` and offset `z`,
//! `Σ_k (q_k − z)·d·x_k = d·(Σ_i 2^(i−1)·Σ_k s_{i,k}·x_k + c·Σ_k x_k)` with
//! `c = (2^b − 1)/2 − z`: 0 for symmetric `#gq` (mid-rise), `zc − z` per row
//! for asymmetric `#gq`, and ½ for ternary (codes `t + 1` as 2-bit). The
//! bias `c·Σx` uses exact f32 sums of x rather than the quantized table
//! (kept per activation group, so the tables never depend on the weight).
//!
//! BCQ (`w = Σ_i α_i·b_i`, `b_i ∈ ±1`) uses the same ±1 tables: each plane's
//! sign bits are the code bits, and each (row, group, plane) has its own `α`,
//! so the planes are accumulated apart (two `pmaddubsw` with 0/1 multipliers
//! over the even and the odd lanes) and scaled by `α` per lane at the end of
//! the group; the lanes of a row are summed once per row block. APoT `α`
//! (`pot = true`) are applied with the same FMA: on x86 a multiply by a power
//! of two costs one FMA, less than exponent adds would; the shift-add form is
//! in `shiftadd.rs`.
//!
//! **Tables** ([`LutActivation`]). Activations are split in groups of 4; each
//! gets a 16-entry table `T[idx] = Σ_i (bit_i(idx) ? +x_i : −x_i)`. Only the 8
//! odd entries are computed; the even ones are mirrored (`T[15 − g] = −T[g]`).
//! Tables are quantized to int8 per activation group of `A` values (`A/4`
//! tables): `λ = max_4-groups(Σ|x|)/127`, entries `round(T/λ)` (ties to even).
//!
//! **Weight layout** ([`LutWeights`], packed once at compile time). A 16-byte
//! code vector covers two consecutive 4-groups of some rows: the low nibble
//! of a byte lane is one row's bit-plane index (bit i = that plane's bit of
//! column i) for group `2p`, the high nibble for group `2p + 1`. One
//! `x86_pshufb` per nibble looks up 16 values (two tables per pair, shared by
//! all of the pair's vectors). Two layouts:
//! - *Padded* (2 and 4 bits, `#bcq`, ternary; 1 and 3 bits when the rows are
//!   not whole 16-row blocks): one vector holds `R = 16/P` rows × `P`
//!   bit-planes (lane `l` = row `l / P`, plane `l % P`; `P = 2` for 1–2
//!   bits, 4 for 3–4 bits, unused planes are zero padding). One
//!   `x86_pmaddubsw` with the constant multipliers `2^plane` (0 for
//!   padding) combines the planes of a row and widens to i16. With 4 lanes
//!   per row (3–4 bits) and VNNI, one `vpdpbusd` with the same multipliers
//!   combines all 4 planes of a row straight into i32 instead (4
//!   accumulators in turn, summed per activation group): 7 instead of 9
//!   vector ops per code vector, +5–10% on 4-bit GEMVs
//!   (`bench/results/lowbit-kernels.md`).
//! - *Split* (`#gq` 1 and 3 bits, rows in blocks of `R = 16`; [`LutSpec::split`]):
//!   no padding, so 1 and 3 bits stream 1 and 3 bits per weight. Per pair,
//!   3-bit codes have three vectors: planes 0–1 of rows 0–7 and of rows
//!   8–15 (the 2-bit layout, `pmaddubsw` with multipliers 1, 2, one i16
//!   accumulator per 8 rows), then plane 2 of rows 0–15 (lane = row). The
//!   single-plane vector's two lookups are interleaved per row
//!   (`punpcklbw`/`punpckhbw`: rows 0–7, 8–15) and one `pmaddubsw` with
//!   multiplier 4 sums and scales them into the same two accumulators.
//!   1-bit codes have only the single-plane vector (multiplier 1).
//!
//! i16 bound: a row gets one lookup (|T| ≤ 127) per 4-group and plane,
//! weighted `2^plane`, so per activation group of `A ≤ 64` (16 4-groups)
//! `|sum| ≤ 16·127·(2^b − 1) ≤ 16·127·15 < 2^15` when a row's planes share an
//! accumulator (padded 4-bit `pmaddubsw`: planes 0–1 and 2–3 in separate
//! i16 lanes, ≤ 16·127·12; split 3-bit ≤ 16·127·7); a single `pmaddubsw`
//! sum (two products) is at most 127·12 and never saturates. Per row block:
//! for each weight group, its `G/8` pairs of code vectors (1 or 3 each), then `R` scales `d`,
//! then (asymmetric only) `R` offsets `c` (both f16 when every one is an exact
//! f16, as for `#gq`, else f32); for BCQ, 16 f32 `2·α` (one
//! per lane, even lanes then odd lanes). Row blocks are contiguous, so
//! a row-block range is one sequential weight stream.
//!
//! **Kernel.** K is cut into tiles of `k_tile` columns (whole weight groups;
//! by default 4096, 16 KiB of tables, resident in L1d; `kern.tile`'s `k`
//! sets it), and the packed weights are
//! stored tile-major: `[tile][row block][group in tile]`, one sequential
//! stream per tile. Per tile and row block: per activation group, i16
//! accumulation over its `A/4` groups, then to f32 with `λ/2` (the
//! multipliers are `2·α_i`); per weight group `× d` (+ bias); the tile's
//! partial sums are added into `y`. The tables are re-read from L1 for every
//! row block rather than pinned in registers (16 xmm registers cannot hold a
//! tile's tables plus the accumulators). In the padded layout 1 and 3 bits
//! pay for the padding planes (the cost of 2 and 4 bits); the split layout
//! streams their true size (`bench/results/lut-3bit.md`).

use super::SendPtr;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, F32X4, I16X8, I32X4, I64, I8X16};
use cranelift_codegen::ir::{ConstantData, InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;
use flexc_ir::quant::{BcqParams, GqParams, TernaryParams};
use flexc_ir::weights::WeightBytes;
use flexc_ir::Encoding;
use rayon::prelude::*;

use super::codegen::Cg;
use super::jit::{CompiledFn, JitError, JitSession};

/// How a group's bias `c·Σx` enters.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LutBias {
    /// None (symmetric groups).
    None,
    /// One constant for every group (ternary: ½).
    Const(f32),
    /// Per row and group, stored after the scales (asymmetric groups).
    PerRow,
}

/// What one LUT kernel is specialised on.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LutSpec {
    /// Output rows M.
    pub rows: usize,
    /// Input columns K.
    pub cols: usize,
    /// Code bits, 1..=4.
    pub bits: u8,
    /// Weight scale group G (elements along K).
    pub group: usize,
    /// Activation (table-quantization) group A: a multiple of 8, at most 64, dividing G.
    pub act_group: usize,
    /// Bias handling.
    pub bias: LutBias,
    /// BCQ planes (`#bcq`): every (row, group, plane) has its own `α`, so the
    /// planes are accumulated separately instead of combined by `2^plane`.
    pub bcq: bool,
    /// Columns per K tile (rounded down to whole weight groups, at least
    /// one): the tables of one tile (`4·k_tile` bytes) are what every row
    /// block re-reads from L1. [`DEFAULT_K_TILE`] unless `kern.tile` says.
    pub k_tile: usize,
    /// Scales `d` and offsets `c` stored as f16 (not BCQ): chosen by the
    /// packer when every one of them is exactly an f16 (always for `#gq`,
    /// whose `d` is an f16 and `c` a half-integer), which halves their bytes.
    pub half_scales: bool,
    /// 1- or 3-bit codes streamed without padding planes (the split layout
    /// of the module docs; 16-row blocks): chosen by the packer for `#gq`
    /// when the rows are whole 16-row blocks
    /// ([`flexc_ir::Encoding::lut_stream_planes`]).
    pub split: bool,
}

/// Kernel ABI: `(w, tables, lambdas, sums, y, block_begin, block_end,
/// groups)`; `lambdas` and `sums` are per activation group.
const LUT_PARAMS: usize = 8;
type LutFn = unsafe extern "C" fn(*const u8, *const i8, *const f32, *const f32, *mut f32, u64, u64, u64);

/// Columns per K tile by default (16 KiB of int8 tables, half of L1d).
pub const DEFAULT_K_TILE: usize = 4096;

impl LutSpec {
    /// Lanes per row in a 16-byte vector of the padded layout (bit-planes
    /// incl. padding: 2 for 1–2 bits, 4 for 3–4).
    pub fn planes(&self) -> usize {
        if self.bits <= 2 { 2 } else { 4 }
    }

    /// Bit planes streamed per weight, padding included: `bits` in the split
    /// layout, else [`LutSpec::planes`].
    pub fn stream_planes(&self) -> usize {
        if self.split { self.bits.into() } else { self.planes() }
    }

    /// Rows per row block (16 in the split layout, else `16 / planes`).
    pub fn block_rows(&self) -> usize {
        if self.split { 16 } else { 16 / self.planes() }
    }

    /// 16-byte code vectors per pair of 4-groups and row block (1, or 3 for
    /// split 3-bit codes).
    pub fn pair_vectors(&self) -> usize {
        self.block_rows() * self.stream_planes() / 16
    }

    /// The (row in the row block, bit plane) of byte lane `lane` of code
    /// vector `v` of a pair (module docs); a plane `≥ bits` is padding.
    pub fn lane(&self, v: usize, lane: usize) -> (usize, usize) {
        if !self.split {
            (lane / self.planes(), lane % self.planes())
        } else if v + 1 < self.pair_vectors() {
            (8 * v + lane / 2, lane % 2)
        } else {
            (lane, usize::from(self.bits) - 1)
        }
    }

    /// Bytes of one row block's packed weights for one group.
    pub fn group_bytes(&self) -> usize {
        2 * self.group * self.pair_vectors() + self.scale_bytes()
    }

    /// Bytes of one row block's scales per group: `R` f32 or f16 `d` (+ `R`
    /// `c`), or for BCQ 16 f32 `α` (one per lane: even lanes, then odd lanes).
    pub fn scale_bytes(&self) -> usize {
        if self.bcq {
            64
        } else {
            self.scale_width() * self.block_rows() * if self.bias == LutBias::PerRow { 2 } else { 1 }
        }
    }

    /// Bytes of one stored `d` or `c`.
    pub fn scale_width(&self) -> usize {
        if self.half_scales { 2 } else { 4 }
    }

    /// Weight groups per K tile: the tables of one tile (`4·k_tile` bytes)
    /// stay in L1d while every row block streams by.
    pub fn groups_per_tile(&self) -> usize {
        (self.k_tile / self.group).max(1)
    }

    /// The K tiles as group ranges.
    pub fn tiles(&self) -> Vec<(usize, usize)> {
        let (n, t) = (self.cols / self.group, self.groups_per_tile());
        (0..n.div_ceil(t)).map(|i| (i * t, ((i + 1) * t).min(n))).collect()
    }

    /// Total packed bytes.
    pub fn weight_bytes(&self) -> usize {
        self.rows / self.block_rows() * (self.cols / self.group) * self.group_bytes()
    }

    /// Checks the parameters before anything reaches Cranelift.
    pub fn validate(&self) -> Result<(), JitError> {
        let bad = |m: String| Err(JitError::InvalidParams(m));
        if !(1..=4).contains(&self.bits) {
            return bad(format!("bits = {} must be in 1..=4", self.bits));
        }
        let a = self.act_group;
        if a == 0 || !a.is_multiple_of(8) || a > 64 {
            return bad(format!("act_group = {a} must be a positive multiple of 8, at most 64"));
        }
        if self.group == 0 || !self.group.is_multiple_of(a) || self.cols == 0 || !self.cols.is_multiple_of(self.group) {
            return bad(format!("group {} must be a multiple of act_group {a} and divide cols {}", self.group, self.cols));
        }
        if self.rows == 0 || !self.rows.is_multiple_of(self.block_rows()) {
            return bad(format!("rows {} must be a positive multiple of {} for {} bits", self.rows, self.block_rows(), self.bits));
        }
        if self.weight_bytes() > isize::MAX as usize / 2 || self.cols > (1 << 28) {
            return bad(format!("{}×{} is too large for one kernel", self.rows, self.cols));
        }
        if self.k_tile == 0 {
            return bad("k_tile must be positive".into());
        }
        if self.bcq && self.bias != LutBias::None {
            return bad("BCQ weights have no bias term".into());
        }
        if self.bcq && self.half_scales {
            return bad("BCQ plane scales are stored as f32".into());
        }
        if self.split && (self.bcq || self.bits.is_multiple_of(2)) {
            return bad("only 1- and 3-bit codes with row scales have the split layout".into());
        }
        if let LutBias::Const(c) = self.bias
            && !c.is_finite()
        {
            return bad("bias constant must be finite".into());
        }
        Ok(())
    }
}

/// Weights packed for a [`LutKernel`].
#[derive(Clone, Debug)]
pub struct LutWeights {
    spec: LutSpec,
    bytes: PackedBytes,
}

/// Where a packed stream lives: packed now, or packed at compile time and
/// read in place (a `.flexc` file's map, [`crate::cpu::prepack`]).
#[derive(Clone)]
enum PackedBytes {
    Packed(Vec<u8>),
    Stored(WeightBytes),
}

impl std::fmt::Debug for PackedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PackedBytes::Packed(b) => write!(f, "Packed({} bytes)", b.len()),
            PackedBytes::Stored(b) => write!(f, "Stored({} bytes)", b.len()),
        }
    }
}

impl LutWeights {
    /// Packs an encoded `[rows, cols]` weight (`#gq`, `#ternary` or `#bcq`)
    /// with activation group `act_group` and the default K tile.
    pub fn pack(enc: Encoding, bytes: &[u8], rows: usize, cols: usize, act_group: usize) -> Result<LutWeights, JitError> {
        Self::pack_tiled(enc, bytes, rows, cols, act_group, DEFAULT_K_TILE)
    }

    /// [`LutWeights::pack`] with K tiles of `k_tile` columns (whole weight
    /// groups; `kern.tile`'s `k`).
    pub fn pack_tiled(enc: Encoding, bytes: &[u8], rows: usize, cols: usize, act_group: usize, k_tile: usize) -> Result<LutWeights, JitError> {
        let bad = |m: String| JitError::InvalidParams(m);
        let n = rows.checked_mul(cols).ok_or_else(|| bad("shape overflows".into()))?;
        if !flexc_ir::ops::lut_encoding(&enc) {
            return Err(bad(format!("the LUT kernel takes #gq (1-4 bits), #ternary or #bcq with per-row scales, got {enc}")));
        }
        let want = enc.storage(&[rows as u64, cols as u64]).map_err(bad)?;
        if want != bytes.len() as u64 {
            return Err(JitError::Length(format!("{enc} {rows}×{cols} needs {want} bytes, got {}", bytes.len())));
        }
        // Per row: codes (bit i = plane i) and per-group scales ([d, c] or α).
        let (bits, group, bias, codes, scales): Unpacked = match enc {
            Encoding::Gq(p) => gq_codes(p, bytes, n)?,
            Encoding::Ternary(p) => ternary_codes(p, bytes, n, cols, act_group, k_tile)?,
            Encoding::Bcq(p) => bcq_codes(p, bytes, n)?,
            other => return Err(bad(format!("the LUT kernel takes #gq, #ternary or #bcq weights, got {other}"))),
        };
        let bcq = matches!(enc, Encoding::Bcq(_));
        let f16_exact = |x: f32| half::f16::from_f32(x).to_f32() == x;
        let half_scales = !bcq && scales.iter().all(|s| f16_exact(s[0]) && f16_exact(s[1]));
        let split = bits % 2 == 1 && enc.lut_stream_planes(rows as u64) == Some(bits);
        let spec = LutSpec { rows, cols, bits, group, act_group, bias, bcq, k_tile, half_scales, split };
        spec.validate()?;
        // The packed stream is a sequence of (K tile, row block) segments of
        // whole groups; they are independent, so they are written in parallel.
        let r = spec.block_rows();
        let gbytes = spec.group_bytes();
        let segments: Vec<(usize, usize, usize)> = spec.tiles().into_iter().flat_map(|(ga, gb)| (0..rows / r).map(move |rb| (ga, gb, rb))).collect();
        let mut out = vec![0u8; spec.weight_bytes()];
        let mut dsts: Vec<&mut [u8]> = Vec::with_capacity(segments.len());
        let mut rest = out.as_mut_slice();
        for &(ga, gb, _) in &segments {
            let (dst, tail) = rest.split_at_mut((gb - ga) * gbytes);
            dsts.push(dst);
            rest = tail;
        }
        let lanes: Vec<[(usize, usize); 16]> = (0..spec.pair_vectors()).map(|v| std::array::from_fn(|lane| spec.lane(v, lane))).collect();
        let cx = Packer { spec: &spec, codes: &codes, scales: &scales, lanes: &lanes };
        dsts.into_par_iter().zip(segments.par_iter()).for_each(|(dst, &(ga, gb, rb))| {
            for (g, dst) in (ga..gb).zip(dst.chunks_exact_mut(gbytes)) {
                cx.group(rb, g, dst);
            }
        });
        debug_assert_eq!(out.len(), spec.weight_bytes());
        Ok(LutWeights { spec, bytes: PackedBytes::Packed(out) })
    }

    /// Weights packed earlier (by [`LutWeights::pack_tiled`], then stored):
    /// `bytes` must be exactly the stream `spec` describes.
    pub fn from_packed(spec: LutSpec, bytes: WeightBytes) -> Result<LutWeights, JitError> {
        spec.validate()?;
        if bytes.len() != spec.weight_bytes() {
            return Err(JitError::Length(format!("a packed {}×{} LUT stream needs {} bytes, got {}", spec.rows, spec.cols, spec.weight_bytes(), bytes.len())));
        }
        Ok(LutWeights { spec, bytes: PackedBytes::Stored(bytes) })
    }

    /// The kernel parameters these weights need.
    pub fn spec(&self) -> LutSpec {
        self.spec
    }

    /// The packed bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            PackedBytes::Packed(b) => b,
            PackedBytes::Stored(b) => b,
        }
    }
}

/// What [`LutWeights::pack_tiled`] writes one group of one row block from.
struct Packer<'a> {
    spec: &'a LutSpec,
    /// One code per weight (bit i = plane i), row-major.
    codes: &'a [u8],
    /// Per (row, group): `[d, c]` or the plane `α`s.
    scales: &'a [[f32; 4]],
    /// [`LutSpec::lane`] of every byte lane of every code vector of a pair.
    lanes: &'a [[(usize, usize); 16]],
}

impl Packer<'_> {
    /// Writes group `g` of row block `rb` (`spec.group_bytes()` bytes):
    /// its code vectors, then its scales.
    fn group(&self, rb: usize, g: usize, dst: &mut [u8]) {
        let spec = self.spec;
        let (r, cols, group) = (spec.block_rows(), spec.cols, spec.group);
        let ngroups = cols / group;
        let mut at = 0;
        // Code vectors: pairs of 4-groups along the group.
        for pair in 0..group / 8 {
            for lanes in self.lanes {
                for &(row, plane) in lanes {
                    let row = rb * r + row;
                    let mut byte = 0u8;
                    if plane < usize::from(spec.bits) {
                        let k0 = row * cols + g * group + pair * 8;
                        for (i, &c) in self.codes[k0..k0 + 8].iter().enumerate() {
                            byte |= (c >> plane & 1) << i;
                        }
                    }
                    dst[at] = byte;
                    at += 1;
                }
            }
        }
        let mut put = |b: &[u8]| {
            dst[at..at + b.len()].copy_from_slice(b);
            at += b.len();
        };
        if spec.bcq {
            // α per byte lane: the even lanes, then the odd ones (the
            // i16 lanes of the two pmaddubsw accumulators).
            for lane in (0..16).step_by(2).chain((1..16).step_by(2)) {
                let (row, plane) = spec.lane(0, lane);
                let row = rb * r + row;
                // Doubled: the tables' λ/2 assumes multipliers 2·α (module docs).
                put(&(2.0 * self.scales[row * ngroups + g][plane]).to_le_bytes());
            }
        } else {
            let fields = if spec.bias == LutBias::PerRow { 2 } else { 1 };
            for field in 0..fields {
                for row in rb * r..(rb + 1) * r {
                    let v = self.scales[row * ngroups + g][field];
                    if spec.half_scales {
                        put(&half::f16::from_f32(v).to_le_bytes());
                    } else {
                        put(&v.to_le_bytes());
                    }
                }
            }
        }
        debug_assert_eq!(at, dst.len());
    }
}

type Unpacked = (u8, usize, LutBias, Vec<u8>, Vec<[f32; 4]>);

fn gq_codes(p: GqParams, bytes: &[u8], n: usize) -> Result<Unpacked, JitError> {
    let (g, bb) = (p.group as usize, p.block_bytes());
    let zc = p.max_code() as f32 / 2.0;
    let mut codes = vec![0u8; n];
    let mut scales = vec![[0f32; 4]; n / g];
    bytes.par_chunks_exact(bb).zip(codes.par_chunks_exact_mut(g)).zip(scales.par_iter_mut()).with_min_len(256).for_each(|((blk, dst), sc)| {
        let (d, z) = p.scale_zero(blk);
        *sc = [d, zc - z, 0.0, 0.0];
        let c = p.codes(blk);
        for (i, q) in dst.iter_mut().enumerate() {
            *q = flexc_ir::quant::lowbit::get_code(c, i, p.bits.into()) as u8;
        }
    });
    let bias = if p.zero { LutBias::PerRow } else { LutBias::None };
    Ok((p.bits, g, bias, codes, scales))
}

/// Per-tensor ternary has one scale, so any split of K into kernel groups is
/// exact: the largest divisor of `cols` (and of `k_tile` when that is
/// smaller, so the K tiles are exactly `k_tile`) that is a multiple of
/// `act_group` and at most 1024 (so K tiles exist), else the whole row.
fn ternary_codes(p: TernaryParams, bytes: &[u8], n: usize, cols: usize, act_group: usize, k_tile: usize) -> Result<Unpacked, JitError> {
    let (t, s) = p.trits(bytes, n).map_err(JitError::InvalidParams)?;
    let fits = |g: usize| g > 0 && cols.is_multiple_of(g) && (k_tile >= cols || k_tile.is_multiple_of(g));
    let split = (1..=1024 / act_group.max(1)).rev().map(|i| i * act_group).find(|&g| fits(g)).unwrap_or(cols);
    let g = if p.group == 0 { split } else { p.group as usize };
    let scales = if p.group == 0 { vec![[s[0], 0.0, 0.0, 0.0]; n / g] } else { s.into_iter().map(|d| [d, 0.0, 0.0, 0.0]).collect() };
    Ok((2, g, LutBias::Const(0.5), t.into_iter().map(|v| (v + 1) as u8).collect(), scales))
}

/// BCQ: the code's bit i is plane i's sign bit (1 = +1), so the ±1
/// reinterpretation is the identity; scales are the plane `α`s.
fn bcq_codes(p: BcqParams, bytes: &[u8], n: usize) -> Result<Unpacked, JitError> {
    let (g, bb) = (p.row_block_elems(), p.block_bytes());
    let mut codes = vec![0u8; n];
    let mut scales = Vec::with_capacity(n / g);
    for (blk, dst) in bytes.chunks_exact(bb).zip(codes.chunks_exact_mut(g)) {
        let mut a = [0f32; 4];
        for (i, ai) in p.alphas(blk).into_iter().enumerate() {
            a[i] = ai;
            for (j, c) in p.plane(blk, i).iter().flat_map(|&byte| (0..8).map(move |b| byte >> b & 1)).zip(dst.iter_mut()) {
                *c |= j << i;
            }
        }
        scales.push(a);
    }
    Ok((p.bits, g, LutBias::None, codes, scales))
}

/// Activation-side precompute for one input vector (`kern.lut_precompute`):
/// int8 tables, their scales (`λ/2` per activation group) and exact f32
/// sums per activation group. It depends only on `x` and the activation
/// group, never on a weight, so one serves every LUT GEMM reading `x`.
#[derive(Clone, Debug, Default)]
pub struct LutActivation {
    /// Activations per table-quantization group.
    pub act_group: usize,
    /// `cols/4` tables of 16 int8 entries.
    pub tables: Vec<i8>,
    /// `λ/2` per activation group.
    pub lambdas: Vec<f32>,
    /// `Σx` per activation group (the kernel adds up a weight group's).
    pub sums: Vec<f32>,
}

impl LutActivation {
    /// Builds the tables of `x` for a kernel (`x.len() == spec.cols`).
    pub fn build(spec: &LutSpec, x: &[f32]) -> Result<LutActivation, JitError> {
        if x.len() != spec.cols {
            return Err(JitError::Length(format!("x has {} values, the kernel takes {}", x.len(), spec.cols)));
        }
        let mut a = LutActivation { act_group: spec.act_group, ..Default::default() };
        a.fill(x)?;
        Ok(a)
    }

    /// Columns these tables cover.
    pub fn cols(&self) -> usize {
        self.tables.len() / 4
    }

    /// Rebuilds the tables for `x` with activation group `self.act_group`,
    /// reusing the allocations (a decode step allocates nothing).
    pub fn fill(&mut self, x: &[f32]) -> Result<(), JitError> {
        let ag = self.act_group;
        if ag == 0 || !ag.is_multiple_of(8) || ag > 64 || x.is_empty() || !x.len().is_multiple_of(ag) {
            return Err(JitError::Length(format!("{} activations are not whole groups of act_group {ag} (a multiple of 8, at most 64)", x.len())));
        }
        self.tables.resize(x.len() * 4, 0);
        self.lambdas.clear();
        self.sums.clear();
        for (a, xa) in x.chunks_exact(ag).enumerate() {
            let amax = xa.chunks_exact(4).map(|q| q.iter().map(|v| v.abs()).sum::<f32>()).fold(0f32, f32::max);
            let lambda = amax / 127.0;
            let inv = if lambda > 0.0 { 1.0 / lambda } else { 0.0 };
            self.lambdas.push(lambda / 2.0);
            self.sums.push(xa.iter().sum());
            for (j, q) in xa.chunks_exact(4).enumerate() {
                let t = &mut self.tables[(a * ag / 4 + j) * 16..][..16];
                // The 8 odd entries (bit 0 set; bit i of the index is the
                // sign of x_i, summed left to right), then the mirror
                // T[15 − g] = −T[g].
                let (x0, x1, x2, x3) = (q[0], q[1], q[2], q[3]);
                let odd = [x0 - x1 - x2 - x3, x0 + x1 - x2 - x3, x0 - x1 + x2 - x3, x0 + x1 + x2 - x3, x0 - x1 - x2 + x3, x0 + x1 - x2 + x3, x0 - x1 + x2 + x3, x0 + x1 + x2 + x3];
                for (h, v) in odd.into_iter().enumerate() {
                    let e = round_even(v * inv).clamp(-127.0, 127.0) as i8;
                    t[2 * h + 1] = e;
                    t[14 - 2 * h] = -e;
                }
            }
        }
        Ok(())
    }

    /// `Σx` over weight group `g` of `group` columns, added up in the
    /// kernel's order.
    fn group_sum(&self, g: usize, group: usize) -> f32 {
        let per = group / self.act_group;
        self.sums[g * per..(g + 1) * per].iter().fold(0.0, |s, &v| s + v)
    }

    /// The kernel's result computed in scalar Rust with the same int8 tables
    /// (the differential-test model; equal to the JIT up to f32 reassociation).
    pub fn model(&self, w: &LutWeights) -> Vec<f32> {
        let s = w.spec;
        let (r, p, nv) = (s.block_rows(), s.planes(), s.pair_vectors());
        let mut y = vec![0f32; s.rows];
        let mut tile_base = 0;
        for (ga, gb) in s.tiles() {
          let tb = (gb - ga) * s.group_bytes();
          for rb in 0..s.rows / r {
            let blk = &w.bytes()[tile_base + rb * tb..][..tb];
            let mut off = 0;
            for g in ga..gb {
                // Accumulators per row, or per lane for BCQ.
                let nacc = if s.bcq { 16 } else { r };
                let mut gacc = vec![0f32; nacc];
                for a in 0..s.group / s.act_group {
                    let mut acc = vec![0i32; nacc];
                    for pair in 0..s.act_group / 8 {
                        let j = (g * s.group + a * s.act_group) / 4 + 2 * pair;
                        for (v, lane) in (0..nv).flat_map(|v| (0..16).map(move |l| (v, l))) {
                            let byte = blk[off + (pair * nv + v) * 16 + lane];
                            let lo = self.tables[j * 16 + (byte & 15) as usize] as i32;
                            let hi = self.tables[(j + 1) * 16 + (byte >> 4) as usize] as i32;
                            let (row, plane) = s.lane(v, lane);
                            let (slot, mult) = match () {
                                _ if s.bcq => (lane, 1),
                                _ if plane < s.bits as usize => (row, 1i32 << plane),
                                _ => (row, 0),
                            };
                            acc[slot] += (lo + hi) * mult;
                        }
                    }
                    off += s.act_group / 8 * nv * 16;
                    let lam = self.lambdas[(g * s.group + a * s.act_group) / s.act_group];
                    for (ga, &ac) in gacc.iter_mut().zip(&acc) {
                        *ga += lam * ac as f32;
                    }
                }
                let f = |o: usize| f32::from_le_bytes(blk[o..o + 4].try_into().expect("4 bytes"));
                let sw = s.scale_width();
                let sc = |o: usize| if s.half_scales { half::f16::from_le_bytes([blk[o], blk[o + 1]]).to_f32() } else { f(o) };
                if s.bcq {
                    // 2α per lane, even lanes first (see the packing).
                    for (k, lane) in (0..16).step_by(2).chain((1..16).step_by(2)).enumerate() {
                        y[rb * r + lane / p] += f(off + 4 * k) * gacc[lane];
                    }
                    off += s.scale_bytes();
                    continue;
                }
                for (i, ga) in gacc.iter().enumerate() {
                    let c = match s.bias {
                        LutBias::None => 0.0,
                        LutBias::Const(c) => c,
                        LutBias::PerRow => sc(off + sw * (r + i)),
                    };
                    y[rb * r + i] += sc(off + sw * i) * (ga + c * self.group_sum(g, s.group));
                }
                off += s.scale_bytes();
            }
          }
          tile_base += s.rows / r * tb;
        }
        y
    }
}

/// `v` rounded to the nearest integer, ties to even, for `|v| < 2^22` (table
/// entries are within ±128): adding and removing 1.5·2^23 leaves no
/// fraction bits, so the FPU's round-to-nearest-even does the rounding
/// (`f32::round_ties_even` is a library call on baseline x86-64).
#[inline]
fn round_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// A compiled LUT GEMV for one [`LutSpec`].
#[derive(Debug)]
pub struct LutKernel {
    spec: LutSpec,
    f: CompiledFn,
}

impl LutKernel {
    /// Compiles the kernel.
    pub fn new(session: &JitSession, spec: LutSpec) -> Result<LutKernel, JitError> {
        spec.validate()?;
        let caps = session.caps();
        let f = session.compile("lut_gemv", LUT_PARAMS, |b, args| build_lut(b, args, &spec, caps))?;
        Ok(LutKernel { spec, f })
    }

    /// The parameters.
    pub fn spec(&self) -> LutSpec {
        self.spec
    }

    /// The compiled function (VCode, machine code, compile time).
    pub fn compiled(&self) -> &CompiledFn {
        &self.f
    }

    /// `y = W·x`: builds the tables, then runs on `threads` workers.
    pub fn run(&self, w: &LutWeights, x: &[f32], y: &mut [f32], threads: usize) -> Result<(), JitError> {
        let act = LutActivation::build(&self.spec, x)?;
        self.run_prepared(w, &act, y, threads)
    }

    /// `y = W·x` with tables already built.
    pub fn run_prepared(&self, w: &LutWeights, act: &LutActivation, y: &mut [f32], threads: usize) -> Result<(), JitError> {
        let acts = std::slice::from_ref(act);
        self.check(w, acts, y.len())?;
        let nblocks = self.blocks();
        let yp = SendPtr(y.as_mut_ptr());
        // SAFETY: `check` passed; [b0, b1) ⊆ [0, nblocks) and workers get
        // disjoint ranges, so the y rows written never overlap.
        super::split_ranges(nblocks, threads, |b0, b1| unsafe { self.run_blocks(w, acts, { yp }.0, b0, b1) });
        Ok(())
    }

    /// Row blocks of the weights (`rows / block_rows`), the unit the rows are
    /// split in over threads.
    pub fn blocks(&self) -> usize {
        self.spec.rows / self.spec.block_rows()
    }

    /// Checks `w`, the activation rows `acts` and an output of `y_len`
    /// floats (`acts.len() × rows`) against the spec, and that the code can run.
    pub fn check(&self, w: &LutWeights, acts: &[LutActivation], y_len: usize) -> Result<(), JitError> {
        let s = self.spec;
        if w.spec != s {
            return Err(JitError::InvalidParams(format!("weights packed for {:?}, kernel is {s:?}", w.spec)));
        }
        if let Some(a) = acts.iter().find(|a| a.act_group != s.act_group) {
            return Err(JitError::InvalidParams(format!("tables of act_group {}, the kernel was packed for {}", a.act_group, s.act_group)));
        }
        let na = s.cols / s.act_group;
        let mut lens = vec![(y_len, acts.len() * s.rows), (w.bytes().len(), s.weight_bytes())];
        lens.extend(acts.iter().flat_map(|a| [(a.tables.len(), s.cols * 4), (a.lambdas.len(), na), (a.sums.len(), na)]));
        if let Some((got, want)) = lens.iter().find(|(g, w)| g != w) {
            return Err(JitError::Length(format!("a LUT kernel buffer has {got} elements, expected {want}")));
        }
        self.f.executable()
    }

    /// Computes row blocks `b0..b1` of `y[i·rows ..][..rows] = W·x_i` for
    /// every activation row `i`. Per K tile, the block range's weights are
    /// streamed once per activation row, so a small range (`kern.tile`'s
    /// `m`) stays in cache across the rows of a prefill.
    ///
    /// # Safety
    /// [`LutKernel::check`] passed for `w`, `acts` and `acts.len() · rows`
    /// floats at `y`; `b0 ≤ b1 ≤ blocks()`; nothing else accesses the rows
    /// of `y` in the range concurrently.
    pub unsafe fn run_blocks(&self, w: &LutWeights, acts: &[LutActivation], y: *mut f32, b0: usize, b1: usize) {
        let s = self.spec;
        let (r, nblocks) = (s.block_rows(), self.blocks());
        let f: LutFn = unsafe { std::mem::transmute(self.f.ptr()) };
        for i in 0..acts.len() {
            // SAFETY: rows b0·r..b1·r of activation row i are inside y (caller).
            unsafe { std::slice::from_raw_parts_mut(y.add(i * s.rows + b0 * r), (b1 - b0) * r).fill(0.0) };
        }
        let mut wbase = 0;
        for (ga, gb) in s.tiles() {
            let (k0, ng) = (ga * s.group, gb - ga);
            for (i, a) in acts.iter().enumerate() {
                // SAFETY: every buffer length was checked against the spec the
                // kernel was compiled for; tile offsets stay inside them (tiles
                // partition the groups); the kernel writes rows of [b0, b1) only.
                unsafe {
                    f(w.bytes().as_ptr().add(wbase), a.tables.as_ptr().add(k0 * 4), a.lambdas.as_ptr().add(k0 / s.act_group), a.sums.as_ptr().add(k0 / s.act_group), y.add(i * s.rows), b0 as u64, b1 as u64, ng as u64)
                };
            }
            wbase += nblocks * ng * s.group_bytes();
        }
    }
}

/// Loads the 4 f32 `d` or `c` from entry `first` of a row block's scale
/// record: f32 directly, or f16 widened exactly with integer ops (the
/// magnitude's bits moved to f32's position, rebased by ×2^112, which is
/// exact for normal and subnormal halves, and the sign ORed back).
fn load_scales(cg: &mut Cg<'_, '_>, s: &LutSpec, wp: Value, first: usize) -> Value {
    if !s.half_scales {
        return cg.ld(F32X4, wp, (4 * first) as i32);
    }
    let flags = MemFlagsData::new().with_notrap().with_readonly().with_can_move();
    let h = cg.b.ins().uload16x4(flags, wp, (2 * first) as i32);
    let mag_mask = cg.b.ins().iconst(cranelift_codegen::ir::types::I32, 0x7fff);
    let mag_mask = cg.b.ins().splat(I32X4, mag_mask);
    let mag = cg.b.ins().band(h, mag_mask);
    let sign = cg.b.ins().bxor(h, mag);
    let mag = cg.b.ins().ishl_imm_u(mag, 13);
    let sign = cg.b.ins().ishl_imm_u(sign, 16);
    let mag = cg.cast(F32X4, mag);
    let rebase = cg.b.ins().f32const(f32::from_bits(0x7780_0000)); // 2^112
    let rebase = cg.b.ins().splat(F32X4, rebase);
    let mag = cg.b.ins().fmul(mag, rebase);
    let mag = cg.cast(I32X4, mag);
    let v = cg.b.ins().bor(mag, sign);
    cg.cast(F32X4, v)
}

/// Emits the kernel body (see the module docs for the layout).
fn build_lut(b: &mut FunctionBuilder<'_>, args: &[Value], s: &LutSpec, caps: super::jit::IsaCaps) -> Result<(), JitError> {
    s.validate()?;
    if args.len() != LUT_PARAMS {
        return Err(JitError::InvalidParams(format!("LUT ABI has {LUT_PARAMS} parameters, got {}", args.len())));
    }
    let (w, tables, lambdas, sums, y, b0, b1, ngroups) = (args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7]);
    let f0 = args[0]; // placeholder for Cg's unused f16 table
    let mut cg = Cg { b, caps, f16_table: f0 };
    let (r, p, nv) = (s.block_rows(), s.planes(), s.pair_vectors());
    let nvec = r / 4; // f32x4 vectors per row block
    let pairs = s.act_group / 8;
    // pmaddubsw multipliers. Scaled codes: one accumulator, `2^plane` per
    // lane (0 for padding), so a row's planes are combined as they widen.
    // BCQ: two accumulators, even lanes and odd lanes, each plane kept apart.
    // Split: two accumulators (rows 0–7, 8–15); `1, 2` for the paired planes
    // 0–1 of 3-bit codes, then `2^(bits−1)` for the single plane.
    let mults: Vec<Value> = if s.split {
        let mut m = Vec::new();
        if s.bits == 3 {
            m.push(cg.vconst(std::array::from_fn(|l| 1 << (l % 2))));
        }
        m.push(cg.splat8(1 << (s.bits - 1)));
        m
    } else if s.bcq {
        let (mut even, mut odd) = ([0u8; 16], [0u8; 16]);
        for l in 0..16 {
            let m = u8::from(l % p < s.bits as usize);
            if l % 2 == 0 { even[l] = m } else { odd[l] = m }
        }
        vec![cg.vconst(even), cg.vconst(odd)]
    } else {
        let mut mult = [0u8; 16];
        for (l, m) in mult.iter_mut().enumerate() {
            *m = if l % p < s.bits as usize { 1 << (l % p) } else { 0 };
        }
        vec![cg.vconst(mult)]
    };
    // f32x4 accumulators: per group (BCQ: elo, ehi, olo, ohi lanes) and output.
    let (ngacc, nout) = if s.bcq { (4, 2) } else { (nvec, nvec) };
    let m0f = cg.splat8(0x0f);
    let zero16 = cg.vconst_ty(I16X8, [0; 16]);
    // 4 lanes per row (3–4 bits): with VNNI, one `vpdpbusd` per lookup
    // vector combines a row's planes (× 2^plane) straight into i32, instead
    // of `pmaddubsw` + `paddw` now and `pmaddwd` per activation group.
    let dot4 = caps.vnni && !s.bcq && !s.split && p == 4;
    let zero32 = cg.vconst_ty(I32X4, [0; 16]);
    let zerof = cg.vconst_ty(F32X4, [0; 16]);
    // Nothing here is 16-byte aligned (Vec<f32>/Vec<i8>): never claim alignment.
    let flags = MemFlagsData::new().with_notrap().with_readonly().with_can_move();

    // Row-block loop.
    let (blocks, rb) = cg.counted_loop(b0, b1);
    let bbytes = cg.b.ins().imul_imm_s(ngroups, s.group_bytes() as i64);
    let woff = cg.b.ins().imul(rb, bbytes);
    let w0 = cg.b.ins().iadd(w, woff);
    let out: Vec<_> = (0..nout).map(|_| cg.var(F32X4, zerof)).collect();
    let wp_var = cg.var(I64, w0);
    let tp_var = cg.var(I64, tables);
    let lp_var = cg.var(I64, lambdas);
    let sp_var = cg.var(I64, sums);
    let tbytes = cg.b.ins().imul_imm_s(ngroups, (s.group * 4) as i64);
    let tend = cg.b.ins().iadd(tables, tbytes);

    // Weight-group loop.
    let (glp, gafter) = (cg.b.create_block(), cg.b.create_block());
    cg.b.ins().jump(glp, &[]);
    cg.b.switch_to_block(glp);
    let gacc: Vec<_> = (0..ngacc).map(|_| cg.var(F32X4, zerof)).collect();
    // Σx of the weight group, from the per-activation-group sums (bias only).
    let has_bias = s.bias != LutBias::None;
    let fz = cg.b.ins().f32const(0.0);
    let sx_var = cg.var(F32, fz);
    let tg = cg.b.use_var(tp_var);
    let tgend = cg.b.ins().iadd_imm_s(tg, (s.group * 4) as i64);

    // Activation-group loop inside the weight group.
    let (alp, aafter) = (cg.b.create_block(), cg.b.create_block());
    cg.b.ins().jump(alp, &[]);
    cg.b.switch_to_block(alp);
    let (wp, tp, lp) = (cg.b.use_var(wp_var), cg.b.use_var(tp_var), cg.b.use_var(lp_var));
    let mut accs = vec![zero16; if s.split { 2 } else { mults.len() }];
    let mut dots = [zero32; 4];
    // Byte interleaves of two lookup vectors (`punpcklbw`, `punpckhbw`).
    let zip = |cg: &mut Cg<'_, '_>, a: Value, b: Value, half: usize| {
        let m: [u8; 16] = std::array::from_fn(|i| (8 * half + i / 2 + 16 * (i % 2)) as u8);
        let imm = cg.b.func.dfg.immediates.push(ConstantData::from(&m[..]));
        cg.b.ins().shuffle(a, b, imm)
    };
    if s.split {
        // One pair per iteration: the two i16 accumulators (rows 0–7, 8–15)
        // both read every vector of a pair, so an unrolled body would keep
        // all of its pairs' tables and lookups live at once (spills).
        let pw_var = cg.var(I64, wp);
        let pt_var = cg.var(I64, tp);
        let acc_vars: Vec<_> = accs.iter().map(|&a| cg.var(I16X8, a)).collect();
        let pend = cg.b.ins().iadd_imm_s(tp, (s.act_group * 4) as i64);
        let (plp, pafter) = (cg.b.create_block(), cg.b.create_block());
        cg.b.ins().jump(plp, &[]);
        cg.b.switch_to_block(plp);
        let (pw, pt) = (cg.b.use_var(pw_var), cg.b.use_var(pt_var));
        let t0 = cg.b.ins().load(I8X16, flags, pt, 0);
        let t1 = cg.b.ins().load(I8X16, flags, pt, 16);
        let mut a: Vec<Value> = acc_vars.iter().map(|&v| cg.b.use_var(v)).collect();
        for v in 0..nv {
            let wv = cg.ld(I8X16, pw, (v * 16) as i32);
            let lo = cg.b.ins().band(wv, m0f);
            let sh = cg.shr_bytes_unmasked(wv, 4);
            let hi = cg.b.ins().band(sh, m0f);
            let r0 = cg.b.ins().x86_pshufb(t0, lo);
            let r1 = cg.b.ins().x86_pshufb(t1, hi);
            if v + 1 == nv {
                // One plane of 16 rows: the two lookups of row i side by
                // side (rows 0–7, then 8–15), summed and scaled by one pmaddubsw.
                let m = mults[mults.len() - 1];
                for (h, acc) in a.iter_mut().enumerate() {
                    let z = zip(&mut cg, r0, r1, h);
                    let z = cg.maddubs(z, m);
                    *acc = cg.b.ins().iadd(*acc, z);
                }
            } else {
                // Planes 0–1 of rows 8v..8v + 8, as for 2-bit codes.
                let m0 = cg.maddubs(r0, mults[0]);
                let m1 = cg.maddubs(r1, mults[0]);
                let m = cg.b.ins().iadd(m0, m1);
                a[v] = cg.b.ins().iadd(a[v], m);
            }
        }
        for (&var, &val) in acc_vars.iter().zip(&a) {
            cg.b.def_var(var, val);
        }
        let pw2 = cg.b.ins().iadd_imm_s(pw, (nv * 16) as i64);
        let pt2 = cg.b.ins().iadd_imm_s(pt, 32);
        cg.b.def_var(pw_var, pw2);
        cg.b.def_var(pt_var, pt2);
        let c = cg.b.ins().icmp(IntCC::UnsignedLessThan, pt2, pend);
        cg.b.ins().brif(c, plp, &[], pafter, &[]);
        cg.b.switch_to_block(pafter);
        accs = acc_vars.iter().map(|&v| cg.b.use_var(v)).collect();
    }
    for pr in (0..pairs).filter(|_| !s.split) {
        let wv = cg.ld(I8X16, wp, (pr * 16) as i32);
        let lo = cg.b.ins().band(wv, m0f);
        let sh = cg.shr_bytes_unmasked(wv, 4);
        let hi = cg.b.ins().band(sh, m0f);
        let t0 = cg.b.ins().load(I8X16, flags, tp, (pr * 32) as i32);
        let t1 = cg.b.ins().load(I8X16, flags, tp, (pr * 32 + 16) as i32);
        let r0 = cg.b.ins().x86_pshufb(t0, lo);
        let r1 = cg.b.ins().x86_pshufb(t1, hi);
        if dot4 {
            // Alternate over 4 i32 accumulators: short vpdpbusd chains.
            let a = 2 * (pr % 2);
            dots[a] = cg.dpbusd(dots[a], r0, mults[0]);
            dots[a + 1] = cg.dpbusd(dots[a + 1], r1, mults[0]);
            continue;
        }
        for (acc, &mult) in accs.iter_mut().zip(&mults) {
            let m0 = cg.maddubs(r0, mult);
            let m1 = cg.maddubs(r1, mult);
            let m = cg.b.ins().iadd(m0, m1);
            *acc = cg.b.ins().iadd(*acc, m);
        }
    }
    let lam = cg.b.ins().load(F32, flags, lp, 0);
    let lam = cg.b.ins().splat(F32X4, lam);
    let ints: Vec<Value> = if dot4 {
        let d01 = cg.b.ins().iadd(dots[0], dots[1]);
        let d23 = cg.b.ins().iadd(dots[2], dots[3]);
        vec![cg.b.ins().iadd(d01, d23)]
    } else if p == 4 && !s.bcq && !s.split {
        let acc = accs[0];
        let l = cg.b.ins().swiden_low(acc);
        let h = cg.b.ins().swiden_high(acc);
        vec![cg.b.ins().iadd_pairwise(l, h)]
    } else {
        // One i16 lane per row (BCQ: per even or odd lane), in order.
        accs.iter().flat_map(|&a| [cg.b.ins().swiden_low(a), cg.b.ins().swiden_high(a)]).collect()
    };
    for (v, i) in gacc.iter().zip(ints) {
        let f = cg.b.ins().fcvt_from_sint(F32X4, i);
        let a = cg.b.use_var(*v);
        let a = cg.fma(lam, f, a);
        cg.b.def_var(*v, a);
    }
    let wp2 = cg.b.ins().iadd_imm_s(wp, (pairs * nv * 16) as i64);
    let tp2 = cg.b.ins().iadd_imm_s(tp, (s.act_group * 4) as i64);
    let lp2 = cg.b.ins().iadd_imm_s(lp, 4);
    if has_bias {
        let sp = cg.b.use_var(sp_var);
        let sa = cg.b.ins().load(F32, flags, sp, 0);
        let sx = cg.b.use_var(sx_var);
        let sx = cg.b.ins().fadd(sx, sa);
        cg.b.def_var(sx_var, sx);
        let sp2 = cg.b.ins().iadd_imm_s(sp, 4);
        cg.b.def_var(sp_var, sp2);
    }
    cg.b.def_var(wp_var, wp2);
    cg.b.def_var(tp_var, tp2);
    cg.b.def_var(lp_var, lp2);
    let c = cg.b.ins().icmp(IntCC::UnsignedLessThan, tp2, tgend);
    cg.b.ins().brif(c, alp, &[], aafter, &[]);

    // End of a weight group: scales, bias, accumulate.
    cg.b.switch_to_block(aafter);
    let wp = cg.b.use_var(wp_var);
    let sx = cg.b.use_var(sx_var);
    let sx = cg.b.ins().splat(F32X4, sx);
    if s.bcq {
        // out_lo += 2α_elo·gacc_elo + 2α_olo·gacc_olo, out_hi likewise.
        for (i, g) in gacc.iter().enumerate() {
            let a = cg.ld(F32X4, wp, (16 * i) as i32);
            let ga = cg.b.use_var(*g);
            let acc = cg.b.use_var(out[i % 2]);
            let acc = cg.fma(a, ga, acc);
            cg.b.def_var(out[i % 2], acc);
        }
    }
    for (i, (o, g)) in out.iter().zip(&gacc).enumerate().filter(|_| !s.bcq) {
        let d = load_scales(&mut cg, s, wp, 4 * i);
        let mut ga = cg.b.use_var(*g);
        match s.bias {
            LutBias::None => {}
            LutBias::Const(cst) => {
                let cs = cg.b.ins().f32const(cst);
                let cs = cg.b.ins().splat(F32X4, cs);
                ga = cg.fma(cs, sx, ga);
            }
            LutBias::PerRow => {
                let cv = load_scales(&mut cg, s, wp, r + 4 * i);
                ga = cg.fma(cv, sx, ga);
            }
        }
        let acc = cg.b.use_var(*o);
        let acc = cg.fma(d, ga, acc);
        cg.b.def_var(*o, acc);
    }
    let wp2 = cg.b.ins().iadd_imm_s(wp, s.scale_bytes() as i64);
    cg.b.def_var(wp_var, wp2);
    let tp = cg.b.use_var(tp_var);
    let c = cg.b.ins().icmp(IntCC::UnsignedLessThan, tp, tend);
    cg.b.ins().brif(c, glp, &[], gafter, &[]);

    cg.b.switch_to_block(gafter);
    let yoff = cg.b.ins().imul_imm_s(rb, (r * 4) as i64);
    let yp = cg.b.ins().iadd(y, yoff);
    let mut vals: Vec<Value> = out.iter().map(|o| cg.b.use_var(*o)).collect();
    if s.bcq && p == 4 {
        // Lanes are rows [0, 0, 1, 1] and [2, 2, 3, 3] (two plane pairs each):
        // rows = even lanes + odd lanes across both vectors.
        let (a, b) = (cg.cast(I8X16, vals[0]), cg.cast(I8X16, vals[1]));
        let pick = |cg: &mut Cg<'_, '_>, first: u8| {
            let mut m = [0u8; 16];
            for (i, v) in m.iter_mut().enumerate() {
                *v = (i / 4) as u8 * 8 + first * 4 + (i % 4) as u8;
            }
            let imm = cg.b.func.dfg.immediates.push(ConstantData::from(&m[..]));
            let v = cg.b.ins().shuffle(a, b, imm);
            cg.cast(F32X4, v)
        };
        let (ev, od) = (pick(&mut cg, 0), pick(&mut cg, 1));
        vals = vec![cg.b.ins().fadd(ev, od)];
    }
    for (i, v) in vals.into_iter().enumerate() {
        let prev = cg.b.ins().load(F32X4, MemFlagsData::new().with_notrap(), yp, (16 * i) as i32);
        let v = cg.b.ins().fadd(prev, v);
        cg.b.ins().store(MemFlagsData::new().with_notrap(), v, yp, (16 * i) as i32);
    }
    blocks.close(&mut cg, rb);
    cg.b.ins().return_(&[]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_the_rounded_signed_sums() {
        let x: Vec<f32> = (0..64).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
        let mut a = LutActivation { act_group: 32, ..Default::default() };
        a.fill(&x).unwrap();
        for (g, q) in x.chunks_exact(4).enumerate() {
            let lambda = 2.0 * a.lambdas[g / 8];
            for idx in 0..16 {
                let v: f32 = (0..4).map(|i| if idx >> i & 1 == 1 { q[i] } else { -q[i] }).sum();
                let want = if idx % 2 == 1 { (v / lambda).round_ties_even() } else { -(-v / lambda).round_ties_even() };
                assert!((a.tables[g * 16 + idx] as f32 - want.clamp(-127.0, 127.0)).abs() <= 1.0, "group {g} entry {idx}");
            }
        }
        for v in [0.5f32, 1.5, 2.5, -0.5, -1.5, 126.5, -127.49, 3.7] {
            assert_eq!(round_even(v), v.round_ties_even(), "{v}");
        }
    }
}
