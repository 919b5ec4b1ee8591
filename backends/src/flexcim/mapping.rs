//! How a layer's weights are cut into the blocks the macro holds at once:
//! the merger aggregation for a pattern, weight tiles (`kern.tile {m, k}`)
//! and whether they fit, the token chunks the buffers allow, and the slot
//! counts of a column tile. Shared by the lowering ([`super::lower`]) and the
//! analytical model ([`super::analytic`]) so both walk the same loop nest.
//!
//! A tile of `m` output rows × `k` input channels is one residency of the
//! macro ([INFERRED] mapping, ISA.md): its `m` rows are split into column
//! tiles of at most C outputs, one per merger set (so `ceil(m / C) ≤ P/agg`),
//! and each column tile's groups (`k / M` of them, N slots each when the mask
//! is aligned) fill the `agg` sub-macros × R rows of its set (so
//! `k / M · N ≤ agg · R`). Tiles along `k` accumulate into the same outputs.
//! Without a tile the lowering uses `m = P/agg · C` and one `k` tile holding
//! every group, cut into as many passes as its slots need.

use super::arch::{Arch, Nm};
use super::layer::NmLayer;
use flexc_passes::target::Tile;
use std::ops::Range;

/// The merger set size for a pattern: the largest divisor of P not above
/// min(N, the arch's aggregation).
pub fn aggregation_for(arch: &Arch, nm: Nm) -> usize {
    let p = arch.array.sub_macros;
    (1..=nm.n().min(arch.sparsity.aggregation)).rev().find(|d| p.is_multiple_of(*d)).unwrap_or(1)
}

/// The tile that fills the macro once for an aligned `nm` mask: every merger
/// set's C columns and every row of its `agg` sub-macros.
pub fn macro_tile(arch: &Arch, nm: Nm) -> Tile {
    let agg = aggregation_for(arch, nm);
    let sets = arch.array.sub_macros / agg;
    let groups = (agg * arch.array.rows / nm.n()).max(1);
    Tile { m: (sets * arch.array.columns) as u64, k: (groups * nm.m()) as u64 }
}

/// Checks that `tile` fits the macro for pattern `nm` (see the module doc),
/// with a message naming the limit that fails.
pub fn check_tile(arch: &Arch, nm: Nm, tile: Tile) -> Result<(), String> {
    let (r, c) = (arch.array.rows as u64, arch.array.columns as u64);
    let agg = aggregation_for(arch, nm) as u64;
    let sets = arch.array.sub_macros as u64 / agg;
    let (n, m) = (nm.n() as u64, nm.m() as u64);
    let what = format!("kern.tile {{m = {}, k = {}}} does not fit the {} macro for {nm}", tile.m, tile.k, arch.name);
    if tile.m == 0 || tile.k == 0 {
        return Err(format!("{what}: tile sizes must be positive"));
    }
    if !tile.k.is_multiple_of(m) {
        return Err(format!("{what}: k must be a multiple of M = {m} (a group cannot straddle two tiles)"));
    }
    if tile.m.div_ceil(c) > sets {
        return Err(format!("{what}: m needs {} column tiles of {c}, but {nm} leaves {sets} merger set(s) of {agg} sub-macros (m <= {})", tile.m.div_ceil(c), sets * c));
    }
    let cells = tile.k / m * n;
    if cells > agg * r {
        return Err(format!("{what}: k needs {cells} cells per column ({} groups x {n} kept), a merger set holds {agg} sub-macros x {r} rows = {} (k <= {})", tile.k / m, agg * r, agg * r / n * m));
    }
    Ok(())
}

/// The loop nest of one layer on one architecture.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapping {
    /// The pattern as run.
    pub nm: Nm,
    /// Sub-macros per merger set.
    pub agg: usize,
    /// Merger sets (P / agg): column tiles in flight at once.
    pub sets: usize,
    /// Slots one set holds per pass (agg × rows).
    pub per_pass: usize,
    /// Output rows per tile.
    pub m: usize,
    /// Input channels per tile (a multiple of M).
    pub k: usize,
    /// Whether a `kern.tile` fixed the tile (else the default).
    pub explicit: bool,
}

impl Mapping {
    /// The mapping of an `out × inp` layer in `nm` (the pattern as run), with
    /// `tile` (clamped to the layer) or the default.
    pub fn new(arch: &Arch, nm: Nm, out: usize, inp: usize, tile: Option<Tile>) -> Result<Mapping, String> {
        let agg = aggregation_for(arch, nm);
        let sets = arch.array.sub_macros / agg;
        let per_pass = agg * arch.array.rows;
        let (m, k) = match tile {
            Some(t) => {
                let eff = Tile { m: t.m.min(out as u64), k: t.k.min(inp as u64) };
                check_tile(arch, nm, eff)?;
                (eff.m as usize, eff.k as usize)
            }
            None => (sets * arch.array.columns, inp),
        };
        Ok(Mapping { nm, agg, sets, per_pass, m, k, explicit: tile.is_some() })
    }

    /// Output tiles of `m` rows, each as its column tiles (one per merger set).
    pub fn bundles(&self, arch: &Arch, out: usize) -> Vec<Vec<Range<usize>>> {
        let c = arch.array.columns;
        (0..out)
            .step_by(self.m.max(1))
            .map(|o| {
                let end = (o + self.m).min(out);
                (o..end).step_by(c).map(|s| s..(s + c).min(end)).collect()
            })
            .collect()
    }

    /// Input tiles as group ranges.
    pub fn ktiles(&self, inp: usize) -> Vec<Range<usize>> {
        let (g, per) = (inp / self.nm.m(), (self.k / self.nm.m()).max(1));
        (0..g).step_by(per).map(|s| s..(s + per).min(g)).collect()
    }

    /// Vectors per activation-buffer load: as many as the activation buffer
    /// and the accumulator hold.
    pub fn token_chunk(&self, arch: &Arch, inp: usize, tokens: usize) -> Result<usize, String> {
        let words = self.sets * arch.array.columns;
        let tc = tokens.min(arch.buffers.activation_bytes / inp.max(1)).min(arch.buffers.output_words / words);
        if tc == 0 {
            return Err(format!("one input vector ({inp} bytes) or one result ({words} words) does not fit the buffers"));
        }
        Ok(tc)
    }
}

/// What a slot's `dsel` and activation reads depend on.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct SlotKey {
    /// The group.
    pub group: u32,
    /// The pair within the group.
    pub pair: u8,
    /// The element of the pair the first kept column uses.
    pub elem: u8,
}

/// The slots of `cols` over `groups` of a real layer, in the lowering's
/// order: per group and pair, as many as the most any column keeps there.
pub fn slot_keys(layer: &NmLayer, cols: Range<usize>, groups: Range<usize>) -> Vec<SlotKey> {
    let (n, m) = (layer.nm.n(), layer.nm.m());
    let (g_n, pairs) = (layer.groups(), m / 2);
    let mut out = Vec::new();
    // Per pair: how many slots so far, and the element each slot's first column uses.
    let mut need = vec![(0u8, [0u8; 2]); pairs];
    let mut here = vec![(0u8, [0u8; 2]); pairs];
    for g in groups {
        need.iter_mut().for_each(|v| v.0 = 0);
        for o in cols.clone() {
            here.iter_mut().for_each(|v| v.0 = 0);
            for &i in &layer.idx[(o * g_n + g) * n..(o * g_n + g + 1) * n] {
                let h = &mut here[i as usize / 2];
                h.1[h.0 as usize] = i % 2;
                h.0 += 1;
            }
            // The first column with a k-th kept weight in a pair names that slot's element.
            for (nd, h) in need.iter_mut().zip(&here) {
                while nd.0 < h.0 {
                    nd.1[nd.0 as usize] = h.1[nd.0 as usize];
                    nd.0 += 1;
                }
            }
        }
        for (p, nd) in need.iter().enumerate() {
            out.extend(nd.1[..nd.0 as usize].iter().map(|&e| SlotKey { group: g as u32, pair: p as u8, elem: e }));
        }
    }
    out
}
