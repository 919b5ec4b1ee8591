//! Shift-add BCQ GEMV (LUT-GEMM / ShiftAddLLM) over `#bcq` weights, read in
//! place: `y[m] = Σ_g Σ_i α_{m,g,i} · Σ_{c∈g} T_c[plane_i byte c]`.
//!
//! **Tables.** Per chunk of μ = 8 activations a 256-entry f32 table
//! `T[byte] = Σ_j (bit_j(byte) ? +x_j : −x_j)`, built incrementally as
//! LUT-GEMM's kernel does: `T[0] = −Σx`, then `T[i + 2^s] = T[i] + 2·x_s` for
//! `i < 2^s` (255 adds per chunk instead of 8·256). One byte of a bit-plane
//! (8 weights, LSB-first as in the `#bcq` layout) indexes one table.
//!
//! **Scales.** `α` is applied once per (row, group, plane), after the
//! lookups. With `pot = true` every `α` is a sum of at most `apot` powers of
//! two, so `α·acc` is computed as exponent adds (`acc·2^e` by adding `e` to
//! the f32 exponent field: a shift in floating point) and adds; a result that
//! would leave the normal range falls back to a multiply, so the value is
//! exactly `Σ_t acc·2^(e_t)` either way.
//!
//! This is portable Rust (the 256-entry tables do not fit a 16-byte
//! `pshufb`; a JIT version would be scalar loads too). It is the semantic
//! reference for a future vectorised kernel and runs in the benchmark.

use flexc_ir::quant::BcqParams;

use super::jit::JitError;

/// Per-chunk 256-entry tables of one activation vector.
#[derive(Clone, Debug)]
pub struct BcqTables {
    /// `cols / 8` tables of 256 f32.
    pub tables: Vec<f32>,
}

impl BcqTables {
    /// Builds the tables of `x` (`x.len()` a multiple of 8).
    pub fn build(x: &[f32]) -> Result<BcqTables, JitError> {
        if x.is_empty() || !x.len().is_multiple_of(8) {
            return Err(JitError::Length(format!("x has {} values, not a positive multiple of 8", x.len())));
        }
        let mut tables = vec![0f32; x.len() * 32];
        for (xc, t) in x.chunks_exact(8).zip(tables.chunks_exact_mut(256)) {
            t[0] = -xc.iter().sum::<f32>();
            for (s, &xs) in xc.iter().enumerate() {
                let step = 1 << s;
                for i in 0..step {
                    t[i + step] = t[i] + 2.0 * xs;
                }
            }
        }
        Ok(BcqTables { tables })
    }
}

/// `acc·α` for an APoT `α` as a sum of shifts: one exponent add per set
/// bit of `α` (its leading power of two and every set mantissa bit).
#[inline]
fn shift_mul(acc: f32, a: f32) -> f32 {
    if a == 0.0 {
        return 0.0;
    }
    let bits = a.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut mant = bits & 0x7f_ffff;
    let mut sum = shift(acc, e);
    while mant != 0 {
        let b = 31 - mant.leading_zeros() as i32;
        sum += shift(acc, e - (23 - b));
        mant &= !(1 << b);
    }
    sum
}

/// `v·2^e` by adding `e` to the exponent field; a multiply when `v` or the
/// result is not a normal number.
#[inline]
fn shift(v: f32, e: i32) -> f32 {
    let ex = ((v.to_bits() >> 23) & 0xff) as i32;
    if v == 0.0 || ex == 0 || ex + e <= 0 || ex + e >= 255 {
        return v * 2f32.powi(e);
    }
    f32::from_bits((v.to_bits() as i32 + (e << 23)) as u32)
}

/// `y = W·x` for a `#bcq` weight `[rows, cols]` stored as `bytes`.
pub fn bcq_gemv(p: BcqParams, bytes: &[u8], rows: usize, cols: usize, t: &BcqTables, y: &mut [f32]) -> Result<(), JitError> {
    let g = p.group as usize;
    if !cols.is_multiple_of(g) || !g.is_multiple_of(8) {
        return Err(JitError::InvalidParams(format!("cols {cols} must be whole groups of {g}")));
    }
    let ngroups = cols / g;
    let bb = p.block_bytes();
    if bytes.len() != rows * ngroups * bb || t.tables.len() != cols * 32 || y.len() != rows {
        return Err(JitError::Length(format!("#bcq {rows}×{cols}: {} weight bytes, {} table entries, {} outputs", bytes.len(), t.tables.len(), y.len())));
    }
    for (r, yr) in y.iter_mut().enumerate() {
        let mut acc_row = 0f32;
        for gi in 0..ngroups {
            let blk = &bytes[(r * ngroups + gi) * bb..][..bb];
            let tab = &t.tables[gi * g * 32..][..g * 32];
            for i in 0..p.bits as usize {
                let a = half::f16::from_le_bytes([blk[2 * i], blk[2 * i + 1]]).to_f32();
                let acc: f32 = p.plane(blk, i).iter().zip(tab.chunks_exact(256)).map(|(&byte, tc)| tc[byte as usize]).sum();
                acc_row += if p.pot { shift_mul(acc, a) } else { a * acc };
            }
        }
        *yr = acc_row;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_tables_are_the_signed_sums() {
        let x: Vec<f32> = (0..8).map(|i| i as f32 * 0.5 - 1.0).collect();
        let t = BcqTables::build(&x).unwrap();
        for byte in 0..256usize {
            let want: f32 = (0..8).map(|j| if byte >> j & 1 == 1 { x[j] } else { -x[j] }).sum();
            assert_eq!(t.tables[byte], want);
        }
    }

    #[test]
    fn pot_terms_and_shifts_are_exact() {
        assert_eq!(shift_mul(3.0, 0.6875), 3.0 * 0.6875);
        assert_eq!(shift_mul(-1.5, 0.0), 0.0);
        assert_eq!(shift(3.0, -2), 0.75);
        assert_eq!(shift(0.0, 5), 0.0);
        assert_eq!(shift(f32::MIN_POSITIVE, -3), f32::MIN_POSITIVE / 8.0);
    }
}
