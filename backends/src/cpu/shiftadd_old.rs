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
//! **Work split.** [`ShiftAddGemm`] runs a range of weight rows for every
//! activation row (`kern.shiftadd_gemm` over a prefill): the runtime splits
//! the rows over its threads (in `kern.tile`'s `m`-row items) and builds
//! each activation row's tables once per call, shared by all items. Per
//! item the loop is activation-row-major (the item's weight rows stay in
//! cache across activation rows) and, within a row, group-major: one
//! group's tables stay in L1 while all the item's weight rows use them.
//!
//! This is portable Rust (the 256-entry tables do not fit a 16-byte
//! `pshufb`; a JIT version would be scalar loads too). The lookups of a
//! plane go to four independent accumulators (the loads, not the adds,
//! are the bottleneck).

use flexc_ir::quant::BcqParams;

use super::jit::JitError;

/// Per-chunk 256-entry tables of one activation vector.
#[derive(Clone, Debug, Default)]
pub struct BcqTables {
    /// `cols / 8` tables of 256 f32.
    pub tables: Vec<f32>,
}

impl BcqTables {
    /// Builds the tables of `x` (`x.len()` a multiple of 8).
    pub fn build(x: &[f32]) -> Result<BcqTables, JitError> {
        let mut t = BcqTables::default();
        t.fill(x)?;
        Ok(t)
    }

    /// Rebuilds the tables for `x` in place (reusing the allocation).
    pub fn fill(&mut self, x: &[f32]) -> Result<(), JitError> {
        if x.is_empty() || !x.len().is_multiple_of(8) {
            return Err(JitError::Length(format!("x has {} values, not a positive multiple of 8", x.len())));
        }
        self.tables.resize(x.len() * 32, 0.0);
        for (xc, t) in x.chunks_exact(8).zip(self.tables.chunks_exact_mut(256)) {
            t[0] = -xc.iter().sum::<f32>();
            for (s, &xs) in xc.iter().enumerate() {
                let step = 1 << s;
                for i in 0..step {
                    t[i + step] = t[i] + 2.0 * xs;
                }
            }
        }
        Ok(())
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
    let g = ShiftAddGemm::new(p, rows, cols)?;
    g.check(bytes, std::slice::from_ref(t), y.len())?;
    g.run_rows(bytes, t, y, 0);
    Ok(())
}

/// A shift-add GEMM over one `#bcq` weight shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShiftAddGemm {
    p: BcqParams,
    rows: usize,
    cols: usize,
}

impl ShiftAddGemm {
    /// Checks the shape against the encoding.
    pub fn new(p: BcqParams, rows: usize, cols: usize) -> Result<ShiftAddGemm, JitError> {
        let g = p.group as usize;
        if g == 0 || !g.is_multiple_of(8) || cols == 0 || !cols.is_multiple_of(g) || rows == 0 || !(1..=4).contains(&p.bits) {
            return Err(JitError::InvalidParams(format!("#bcq<bits = {}, group = {g}> {rows}×{cols}: cols must be whole groups of a multiple of 8", p.bits)));
        }
        Ok(ShiftAddGemm { p, rows, cols })
    }

    /// Output rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Checks the weight bytes, the tables of every activation row, and an
    /// output of `y_len` floats (`tables.len() × rows`).
    pub fn check(&self, bytes: &[u8], tables: &[BcqTables], y_len: usize) -> Result<(), JitError> {
        let want = self.rows * self.cols / self.p.group as usize * self.p.block_bytes();
        if bytes.len() != want || tables.iter().any(|t| t.tables.len() != self.cols * 32) || y_len != tables.len() * self.rows {
            return Err(JitError::Length(format!("#bcq {}×{}: {} weight bytes (want {want}), {} activation rows, {y_len} outputs", self.rows, self.cols, bytes.len(), tables.len())));
        }
        Ok(())
    }

    /// `y[j] = W[r0 + j, :]·x` for `j < y.len()`, with `x`'s tables `t`
    /// (after [`ShiftAddGemm::check`]; panics on a range outside the weight).
    /// Group-major: one group's tables (`group · 32` floats, 16 KiB at
    /// group 128) stay in L1 while every row of the range reads them; each
    /// row still adds its terms group by group, plane by plane.
    pub fn run_rows(&self, bytes: &[u8], t: &BcqTables, y: &mut [f32], r0: usize) {
        let p = self.p;
        let (g, bb) = (p.group as usize, p.block_bytes());
        let rowb = self.cols / g * bb;
        let wrows = &bytes[r0 * rowb..(r0 + y.len()) * rowb];
        y.fill(0.0);
        for (gi, tab) in t.tables.chunks_exact(g * 32).enumerate() {
            for (yr, wrow) in y.iter_mut().zip(wrows.chunks_exact(rowb)) {
                let blk = &wrow[gi * bb..(gi + 1) * bb];
                for i in 0..p.bits as usize {
                    let a = half::f16::from_le_bytes([blk[2 * i], blk[2 * i + 1]]).to_f32();
                    let acc = lookup_sum(p.plane(blk, i), tab);
                    *yr += if p.pot { shift_mul(acc, a) } else { a * acc };
                }
            }
        }
    }
}

/// `Σ_c T_c[plane[c]]` over one group's plane bytes, four chains at a time.
#[inline]
fn lookup_sum(plane: &[u8], tab: &[f32]) -> f32 {
    let mut acc = [0f32; 4];
    let (bytes4, tabs4) = (plane.chunks_exact(4), tab.chunks_exact(1024));
    let (rb, rt) = (bytes4.remainder(), &tab[plane.len() / 4 * 1024..]);
    for (b, t) in bytes4.zip(tabs4) {
        for j in 0..4 {
            acc[j] += t[256 * j + b[j] as usize];
        }
    }
    for (j, &b) in rb.iter().enumerate() {
        acc[j] += rt[256 * j + b as usize];
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
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
