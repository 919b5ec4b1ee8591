//! GPTQ/OPTQ Hessians for `flexc calibrate --hessian`: a fast `XᵀX` of one
//! window's `[tokens, channels]` activation, and the running-mean update of
//! [`ChannelStats::hessian`] with exactly the semantics of the reference
//! [`ChannelStats::add_sequence_hessian`] (`H *= n/(n+1); n += 1; H += (2/n)·XᵀX`),
//! which stays the oracle in the tests.
//!
//! The kernel computes only the tiles of the upper triangle and mirrors it
//! once at the end. It is cache-blocked over tokens ([`TOKEN_BLOCK`] rows of
//! `X` stay in L2 while every tile of the triangle reads them) and
//! register-tiled: a [`MR`]×[`NR`] tile of f32 accumulators is updated per
//! token with `MR` broadcasts times one contiguous `NR`-wide channel slice,
//! a loop LLVM auto-vectorises. The body is compiled twice, once for the
//! baseline target and once with AVX2+FMA enabled (chosen at run time), and
//! tile rows are split across threads.
//!
//! Precision: products and sums are f32 (the reference sums in f64). Each
//! entry is a sum over the window's tokens accumulated tile-wise in f32, so
//! its relative error is about `tokens·ε_f32` in the worst case and
//! `√tokens·ε_f32` typically (≈ 1e-5 for 2048 tokens) — far below what
//! OPTQ's damped inverse is sensitive to.

use flexc_ir::calib::ChannelStats;

/// Rows of a register tile (broadcast operands).
const MR: usize = 4;
/// Columns of a register tile (one contiguous channel slice).
const NR: usize = 16;
/// Tokens per cache block.
const TOKEN_BLOCK: usize = 64;

/// Adds one sequence's `XᵀX` (from [`xtx`]) to `s.hessian`, starting it if
/// absent, exactly as [`ChannelStats::add_sequence_hessian`] does; call it
/// before [`ChannelStats::add_sequence`] for the same sequence.
pub fn add_xtx(s: &mut ChannelStats, xtx: &[f32], channels: usize) {
    let h = s.hessian.get_or_insert_with(|| vec![0.0; channels * channels]);
    let n = s.nsamples as f32 + 1.0;
    let shrink = s.nsamples as f32 / n;
    for (hv, &v) in h.iter_mut().zip(xtx) {
        *hv = *hv * shrink + 2.0 * v / n;
    }
}

/// `XᵀX` (`channels × channels`, row-major, symmetric) of `x`
/// (`[tokens, channels]` row-major), using up to `threads` threads.
pub fn xtx(x: &[f32], channels: usize, threads: usize) -> Vec<f32> {
    let c = channels;
    let mut out = vec![0f32; c * c];
    if c == 0 {
        return out;
    }
    let tiles: Vec<(usize, &mut [f32])> = out.chunks_mut(MR * c).enumerate().collect();
    // Row tile t costs ∝ c − t·MR: deal them round-robin so threads get equal work.
    let threads = threads.clamp(1, tiles.len());
    let mut shares: Vec<Vec<(usize, &mut [f32])>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, t) in tiles.into_iter().enumerate() {
        shares[i % threads].push(t);
    }
    if threads == 1 {
        rows(x, c, &mut shares[0]);
    } else {
        std::thread::scope(|s| {
            for share in &mut shares {
                s.spawn(move || rows(x, c, share));
            }
        });
    }
    // Mirror the upper triangle into the lower one.
    for i in 0..c {
        for j in 0..i {
            out[i * c + j] = out[j * c + i];
        }
    }
    out
}

/// Computes the upper-triangle part of the row tiles `share` (tile index,
/// its `MR` rows of the output), with the widest vector unit available.
fn rows(x: &[f32], c: usize, share: &mut [(usize, &mut [f32])]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features `rows_avx2` is compiled for.
        return unsafe { rows_avx2(x, c, share) };
    }
    rows_generic(x, c, share)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_avx2(x: &[f32], c: usize, share: &mut [(usize, &mut [f32])]) {
    rows_generic(x, c, share)
}

#[inline(always)]
fn rows_generic(x: &[f32], c: usize, share: &mut [(usize, &mut [f32])]) {
    let tokens = x.len() / c;
    for t0 in (0..tokens).step_by(TOKEN_BLOCK) {
        let block = &x[t0 * c..(t0 + TOKEN_BLOCK).min(tokens) * c];
        for (tile, out) in share.iter_mut() {
            let i0 = *tile * MR;
            let mr = out.len() / c;
            // Columns from the tile containing the diagonal on.
            let mut j0 = i0 / NR * NR;
            while j0 < c {
                let nr = NR.min(c - j0);
                if mr == MR && nr == NR {
                    full_tile(block, c, i0, j0, out);
                } else {
                    edge_tile(block, c, i0, mr, j0, nr, out);
                }
                j0 += NR;
            }
        }
    }
}

/// `out[ii][j0..j0+NR] += Σ_t x[t][i0+ii]·x[t][j0..j0+NR]` for a full tile,
/// accumulating in registers.
#[inline(always)]
fn full_tile(block: &[f32], c: usize, i0: usize, j0: usize, out: &mut [f32]) {
    let mut acc = [[0f32; NR]; MR];
    for row in block.chunks_exact(c) {
        let b: &[f32; NR] = row[j0..j0 + NR].try_into().expect("NR columns");
        let a: &[f32; MR] = row[i0..i0 + MR].try_into().expect("MR rows");
        for (acc_row, &av) in acc.iter_mut().zip(a) {
            for (s, &bv) in acc_row.iter_mut().zip(b) {
                *s += av * bv;
            }
        }
    }
    for (ii, acc_row) in acc.iter().enumerate() {
        for (o, s) in out[ii * c + j0..ii * c + j0 + NR].iter_mut().zip(acc_row) {
            *o += s;
        }
    }
}

/// The same for a partial tile at the matrix's right or bottom edge.
fn edge_tile(block: &[f32], c: usize, i0: usize, mr: usize, j0: usize, nr: usize, out: &mut [f32]) {
    for row in block.chunks_exact(c) {
        for ii in 0..mr {
            let av = row[i0 + ii];
            for (o, &bv) in out[ii * c + j0..ii * c + j0 + nr].iter_mut().zip(&row[j0..j0 + nr]) {
                *o += av * bv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flexc_backends::xorshift::XorShift;

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut r = XorShift(seed);
        (0..len).map(|_| r.below(2001) as f32 / 1000.0 - 1.0).collect()
    }

    #[test]
    fn running_hessian_matches_the_reference_on_random_shapes() {
        for (k, (tokens, channels, threads)) in [(1, 1, 1), (3, 5, 2), (70, 17, 2), (130, 37, 1), (65, 64, 2), (200, 100, 3)].into_iter().enumerate() {
            let mut fast = ChannelStats::default();
            let mut reference = ChannelStats::default();
            for seq in 0..3 {
                let x = random(tokens * channels, 1 + k as u64 * 10 + seq);
                add_xtx(&mut fast, &xtx(&x, channels, threads), channels);
                fast.add_sequence(&x, channels);
                reference.add_sequence_hessian(&x, channels);
                reference.add_sequence(&x, channels);
            }
            let (f, r) = (fast.hessian.unwrap(), reference.hessian.unwrap());
            assert_eq!(f.len(), channels * channels);
            let scale = r.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (i, (a, b)) in f.iter().zip(&r).enumerate() {
                assert!((a - b).abs() <= 1e-5 * scale.max(1e-6) + 1e-5 * b.abs(), "{tokens}×{channels} entry {i}: {a} vs {b}");
            }
            for i in 0..channels {
                for j in 0..channels {
                    assert_eq!(f[i * channels + j], f[j * channels + i], "symmetric");
                }
            }
        }
    }
}
