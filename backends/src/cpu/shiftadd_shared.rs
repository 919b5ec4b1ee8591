//! The shift-add kernel on ShiftAddLLM's shared-scale `#bcq` layouts
//! (`scales = acc|lat`, `flexc_ir::quant::bcq_shared`): `α` is applied to
//! the **activations**, never to a row's sums.
//!
//! `y[r] = Σ_i Σ_c B_i[r, c]·x'_{i,c}` with `x'_{i,c} = α_{i,s(r,c)}·x_c`. The
//! `α` set of a column is the same for every row of a scale block (acc: all
//! rows; lat: each of the 8 blocks of rows/8 rows), so per activation row,
//! scale block and plane `i` this module builds the 256-entry 8-activation
//! tables of `x'_i` ([`ScaledTables`], incrementally as `BcqTables`), and the
//! JIT kernel (`shiftadd.rs`, `ShiftAddSpec::scales` ≠ row) sums plane
//! `i`'s lookups in its own tables with **no per-row scale**: one i32 chain
//! per (row, plane, K segment), converted to f32 and added. For APoT `α`
//! (`Σ_t 2^e_t`) `α·x_c` is the sum of `x_c` with its exponent shifted by
//! each `e_t`; it is one f32 multiply per (plane, column), outside the
//! kernel loop, exact up to f32 rounding.
//!
//! Integers: `x̂'_{i,c} = round(x'_{i,c}/λ)` with one `λ` per activation
//! row such that every (scale block, plane, segment) has `Σ|x̂'| ≤ 2^30`, so
//! every table entry and lookup sum is exact in i32; `λ` is applied once
//! per output, as for the row layout.
//!
//! Packed weights: as the row layout with one group slice per K segment and
//! no scale words: per (segment, row block of 4), per plane, per row its
//! `seg_cols/8` sign bytes. Lat needs rows a multiple of 32, so that every
//! kernel row block lies in one scale block.

use flexc_ir::quant::{BcqParams, BcqScales};

use super::jit::JitError;
use super::shiftadd::{build_table, ShiftAddSpec, ShiftAddWeights, BLOCK_ROWS, MAX_K_TILE};

/// Scale blocks along the rows of a layout.
pub fn scale_blocks(scales: BcqScales) -> usize {
    if scales == BcqScales::Lat { 8 } else { 1 }
}

/// Packs a shared-scale `#bcq` weight `[rows, cols]` (module docs).
pub(super) fn pack_shared(p: BcqParams, bytes: &[u8], rows: usize, cols: usize, k_tile: usize) -> Result<ShiftAddWeights, JitError> {
    let want = p.shared_bytes(rows as u64, cols as u64).map_err(JitError::InvalidParams)?;
    if want != bytes.len() as u64 {
        return Err(JitError::Length(format!("#bcq scales = {} {rows}×{cols}: {} weight bytes, want {want}", p.scales().name(), bytes.len())));
    }
    let seg_cols = ShiftAddSpec::seg_cols_for(8, cols, k_tile.clamp(8, MAX_K_TILE));
    let spec = ShiftAddSpec { rows, cols, bits: p.bits, group: seg_cols, terms: 0, seg_cols, scales: p.scales() };
    spec.validate()?;
    let (b, nch) = (p.bits as usize, seg_cols / 8);
    let mut out = Vec::with_capacity(spec.weight_bytes());
    for seg in 0..spec.segments() {
        for rb in 0..spec.blocks() {
            for i in 0..b {
                for lane in 0..BLOCK_ROWS {
                    let r = rb * BLOCK_ROWS + lane;
                    for j in seg * nch..(seg + 1) * nch {
                        out.push(if r < rows { p.shared_sign_byte(bytes, cols, r, j, i) } else { 0 });
                    }
                }
            }
        }
    }
    debug_assert_eq!(out.len(), spec.weight_bytes());
    Ok(ShiftAddWeights::new(spec, out, p.shared_alphas(bytes, rows, cols)))
}

/// The `α`-scaled tables of one activation row for one weight.
#[derive(Debug)]
pub struct ScaledTables {
    /// The packed weights these were built for (`ShiftAddWeights::id`).
    pub(super) key: u64,
    /// `[scale block][segment][plane][chunk][256]`.
    pub(super) tables: Vec<i32>,
    /// `x' ≈ λ·x̂'`.
    pub(super) lambda: f32,
}

impl ScaledTables {
    /// Builds the tables of `x` (`spec.cols` values, finite) for weights of
    /// `spec` with `alphas` (`cols · bits`, set-major).
    pub(super) fn build(spec: &ShiftAddSpec, alphas: &[f32], x: &[f32], key: u64) -> ScaledTables {
        let (q, cols, nb) = (spec.bits as usize, spec.cols, scale_blocks(spec.scales));
        let p = BcqParams::shared(spec.bits, false, 1, spec.scales);
        // Rows of scale block `lb` start at `lb · rows/8` (lat) or 0 (acc).
        let alpha = |lb: usize, i: usize, c: usize| alphas[p.shared_set(spec.rows, cols, lb * (spec.rows / nb), c) * q + i];
        let mut l1 = 0f32;
        for lb in 0..nb {
            for i in 0..q {
                for seg in x.chunks_exact(spec.seg_cols).enumerate() {
                    let s: f32 = seg.1.iter().enumerate().map(|(c, v)| (alpha(lb, i, seg.0 * spec.seg_cols + c) * v).abs()).sum();
                    l1 = l1.max(s);
                }
            }
        }
        let lambda = l1 / (1u32 << 30) as f32;
        let inv = if lambda > 0.0 { 1.0 / lambda } else { 0.0 };
        let mut tables = vec![0i32; nb * q * cols * 32];
        let nch = spec.seg_cols / 8;
        for (n, t) in tables.chunks_exact_mut(256).enumerate() {
            // n = ((lb·segments + seg)·q + i)·nch + chunk.
            let (chunk, i, rest) = (n % nch, n / nch % q, n / nch / q);
            let (lb, seg) = (rest / spec.segments(), rest % spec.segments());
            let c0 = seg * spec.seg_cols + 8 * chunk;
            let xq: [i32; 8] = std::array::from_fn(|j| (alpha(lb, i, c0 + j) * x[c0 + j] * inv).round() as i32);
            build_table(xq, t);
        }
        ScaledTables { key, tables, lambda }
    }

    /// i32 entries of one (scale block, segment).
    pub(super) fn segment_entries(spec: &ShiftAddSpec) -> usize {
        spec.bits as usize * spec.seg_cols * 32
    }
}
