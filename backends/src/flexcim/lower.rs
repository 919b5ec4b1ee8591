//! Lowering an int8 N:M layer to a FlexCiM instruction stream.
//!
//! A layer is `out × in` int8 weights in N:M form: for every output row and
//! every group of M consecutive inputs, N kept values and their positions.
//! The mapping ([INFERRED], shared/reference/papers.md §1.4):
//!
//! * a kept weight at group position i sits in one cell; `i % 2` is the cell's
//!   metadata bit (which activation of the pair) and `i / 2` the pair, which
//!   the row's stage-1 mux selects for that sub-macro;
//! * a pair select is shared by the 32 columns of a row, so for one group and
//!   one tile of columns the lowering allocates *slots* (pair p, k-th kept in
//!   p): `need(p) = max over columns of kept(p)`. Masks whose pair choice agrees
//!   across the tile need exactly N slots; disagreeing masks need up to M (never
//!   more than dense), padded with zero weights;
//! * slots fill the sub-macros of a merger set at one row, then the next row: an
//!   aligned N:M group lands on N sub-macros at one row (aggregation); with
//!   N < P the P/agg sets serve different output tiles at once
//!   (disaggregation); a dense 8:8 group takes two rows, and layers larger than
//!   the array take several passes whose results accumulate;
//! * each sub-macro position (s, row) gets its own bus group carrying the
//!   group's activations (the patent's "N identical sets"), stage 2 is the
//!   identity.
//!
//! Layers whose pattern the architecture does not support run as the
//! sparsest supported pattern that holds their mask (the baselines' rule).
//! The loop nest (token chunks, output tiles, input tiles, passes) comes
//! from [`super::mapping`], which a `kern.tile` parameterises.

use super::arch::Arch;
use super::isa::{Instr, Program};
use super::mapping::Mapping;
pub use super::layer::{fit_pattern, reference_matmul, synthetic_layer, DenseLayout, MagnitudePrune, NmLayer, NmSource, Rng};
pub use super::mapping::aggregation_for;
use flexc_passes::target::Tile;
use std::ops::Range;

/// One slot: a pair of one group; its columns' weights and metadata bits
/// are at `at · width` in its [`TileSlots`] buffers.
struct Slot {
    group: usize,
    pair: usize,
    /// The element of the pair when every column uses the same one (dense).
    elem: u8,
    at: usize,
}

/// The slots of one column tile over some groups, with their cell contents.
struct TileSlots {
    slots: Vec<Slot>,
    w: Vec<i8>,
    meta: Vec<u8>,
    width: usize,
}

impl TileSlots {
    fn w(&self, s: &Slot) -> &[i8] {
        &self.w[s.at * self.width..(s.at + 1) * self.width]
    }
    fn meta(&self, s: &Slot) -> &[u8] {
        &self.meta[s.at * self.width..(s.at + 1) * self.width]
    }
}

/// The slots of one tile of output columns over `groups`, group by group.
fn tile_slots(layer: &NmLayer, cols: Range<usize>, groups: Range<usize>) -> TileSlots {
    let (n, m) = (layer.nm.n(), layer.nm.m());
    let (g_n, pairs, width) = (layer.groups(), m / 2, cols.len());
    let cap = groups.len() * n * width;
    let mut out = TileSlots { slots: Vec::with_capacity(groups.len() * n), w: Vec::with_capacity(cap), meta: Vec::with_capacity(cap), width };
    // Per column and pair: up to two kept (value, meta), in index order.
    let mut kept = vec![[(0i8, 0u8); 2]; width * pairs];
    let mut count = vec![0u8; width * pairs];
    for g in groups {
        count.iter_mut().for_each(|c| *c = 0);
        for (c, o) in cols.clone().enumerate() {
            let base = (o * g_n + g) * n;
            for k in 0..n {
                let i = layer.idx[base + k] as usize;
                let at = c * pairs + i / 2;
                kept[at][count[at] as usize] = (layer.values[base + k], (i % 2) as u8);
                count[at] += 1;
            }
        }
        for p in 0..pairs {
            let need = (0..width).map(|c| count[c * pairs + p]).max().unwrap_or(0);
            for k in 0..need {
                // Column c's k-th kept weight of pair p, or a zero pad.
                let cell = |c: usize| if count[c * pairs + p] > k { kept[c * pairs + p][k as usize] } else { (0, 0) };
                out.w.extend((0..width).map(|c| cell(c).0));
                out.meta.extend((0..width).map(|c| cell(c).1));
                let elem = (0..width).find(|&c| count[c * pairs + p] > k).map_or(0, |c| cell(c).1);
                out.slots.push(Slot { group: g, pair: p, elem, at: out.slots.len() });
            }
        }
    }
    out
}

/// How the lowering used the macro for one layer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Sub-macros per merger set.
    pub agg: usize,
    /// Weight passes (array loads) over all token chunks.
    pub passes: usize,
    /// Slots allocated (each one cell per column).
    pub slots: usize,
    /// Slots an aligned mask would need (N per group per column tile).
    pub ideal_slots: usize,
    /// The tile used (output rows × input channels).
    pub tile: Option<Tile>,
}

/// Appends the stream for one layer on activations `x [tokens × in]`, with
/// the default tiling.
pub fn lower_layer(arch: &Arch, layer: &NmLayer, x: &[i8], tokens: usize, prog: &mut Program) -> Result<Plan, String> {
    lower_layer_tiled(arch, layer, x, tokens, None, prog)
}

/// Appends the stream for one layer with weight tile `tile` (`kern.tile`),
/// which must fit the macro for the pattern the layer runs as.
pub fn lower_layer_tiled(arch: &Arch, layer: &NmLayer, x: &[i8], tokens: usize, tile: Option<Tile>, prog: &mut Program) -> Result<Plan, String> {
    layer.validate()?;
    if x.len() != tokens * layer.inp || tokens == 0 {
        return Err(format!("layer {}: {} activations for {tokens} tokens × {}", layer.name, x.len(), layer.inp));
    }
    let layer = &fit_pattern(arch, layer)?;
    let map = Mapping::new(arch, layer.nm, layer.out, layer.inp, tile).map_err(|e| format!("layer {}: {e}", layer.name))?;
    let (p, r, c) = (arch.array.sub_macros, arch.array.rows, arch.array.columns);
    let (agg, per_pass) = (map.agg, map.per_pass);
    let tc = map.token_chunk(arch, layer.inp, tokens).map_err(|e| format!("layer {}: {e}", layer.name))?;
    let u32of = |v: usize, what: &str| u32::try_from(v).map_err(|_| format!("layer {}: {what} = {v} does not fit the ISA's 32 bits", layer.name));
    prog.instrs.push(Instr::Layer { name: layer.name.clone(), tokens: u32of(tokens, "tokens")?, out: u32of(layer.out, "out")?, inp: u32of(layer.inp, "in")? });
    prog.instrs.push(Instr::Cfg { n: layer.nm.n() as u8, m: layer.nm.m() as u8, agg: agg as u8, bypass: arch.bypasses(layer.nm) });
    let bundles = map.bundles(arch, layer.out);
    let ktiles = map.ktiles(layer.inp);
    // slots[bundle][k tile][set]
    let slots: Vec<Vec<Vec<TileSlots>>> = bundles.iter().map(|cols| ktiles.iter().map(|g| cols.iter().map(|t| tile_slots(layer, t.clone(), g.clone())).collect()).collect()).collect();
    let col_tiles: usize = bundles.iter().map(Vec::len).sum();
    let mut plan = Plan { agg, tile: Some(Tile { m: map.m as u64, k: map.k as u64 }), ..Plan::default() };
    plan.slots = slots.iter().flatten().flatten().map(|t| t.slots.len()).sum();
    plan.ideal_slots = col_tiles * layer.groups() * layer.nm.n();
    let mut rowstate: Vec<Option<Instr>> = vec![None; r];
    for t0 in (0..tokens).step_by(tc) {
        let n_t = tc.min(tokens - t0);
        prog.instrs.push(Instr::Ldx { addr: 0, data: x[t0 * layer.inp..(t0 + n_t) * layer.inp].to_vec() });
        for (b, cols) in bundles.iter().enumerate() {
            let mut first = true;
            for per_set in &slots[b] {
                let passes = per_set.iter().map(|s| s.slots.len().div_ceil(per_pass)).max().unwrap_or(0);
                for pass in 0..passes {
                    plan.passes += 1;
                    // Position q of set e: row q / agg, sub-macro e·agg + q % agg.
                    let mut grid: Vec<Option<(&Slot, &TileSlots)>> = (0..p * r).map(|_| None).collect();
                    for (e, ts) in per_set.iter().enumerate() {
                        for (q, s) in ts.slots.iter().skip(pass * per_pass).take(per_pass).enumerate() {
                            grid[(q / agg) * p + e * agg + q % agg] = Some((s, ts));
                        }
                    }
                    emit_pass(arch, layer, &grid, &mut rowstate, prog)?;
                    prog.instrs.push(Instr::Mac { x: 0, xstride: layer.inp as u32, y: 0, count: n_t as u32, acc: !first });
                    first = false;
                }
            }
            for (e, t) in cols.iter().enumerate() {
                let dst = u32of(t0 * layer.out + t.start, "output offset")?;
                prog.instrs.push(Instr::St { y: (e * c) as u32, count: n_t as u32, cols: t.len() as u16, dst, dstride: layer.out as u32 });
            }
        }
    }
    prog.instrs.push(Instr::Sync);
    Ok(plan)
}

/// The `ldw`s and changed `dsel`s of one pass over `grid` (row-major, P per row).
fn emit_pass(arch: &Arch, layer: &NmLayer, grid: &[Option<(&Slot, &TileSlots)>], rowstate: &mut [Option<Instr>], prog: &mut Program) -> Result<(), String> {
    let (p, r, c) = (arch.array.sub_macros, arch.array.rows, arch.array.columns);
    // A dense DCiM (no metadata bit) or the dense bypass: each row is wired
    // to one activation (the bus points at the element, the pair select is 0,
    // the metadata bits are 0).
    let wired = arch.wired_for(layer.nm);
    for s in 0..p {
        let used = (0..r).rev().find(|&row| grid[row * p + s].is_some()).map_or(0, |row| row + 1);
        if used == 0 {
            continue;
        }
        let width = (0..used).find_map(|row| grid[row * p + s].map(|g| g.1.width)).unwrap_or(c);
        let (mut w, mut meta) = (Vec::with_capacity(used * width), Vec::with_capacity(used * width));
        for row in 0..used {
            match grid[row * p + s] {
                Some((sl, ts)) if wired => {
                    if ts.meta(sl).iter().any(|&b| b != sl.elem) {
                        return Err(format!("layer {}: {} wires each row to one activation, but a slot's columns use different elements of a pair", layer.name, arch.name));
                    }
                    w.extend_from_slice(ts.w(sl));
                    meta.extend(std::iter::repeat_n(0, width));
                }
                Some((sl, ts)) => {
                    w.extend_from_slice(ts.w(sl));
                    meta.extend_from_slice(ts.meta(sl));
                }
                None => {
                    w.extend(std::iter::repeat_n(0, width));
                    meta.extend(std::iter::repeat_n(0, width));
                }
            }
        }
        prog.instrs.push(Instr::Ldw { sm: s as u8, row: 0, col: 0, rows: used as u16, cols: width as u16, w, meta });
    }
    for (row, state) in rowstate.iter_mut().enumerate() {
        let cells = &grid[row * p..(row + 1) * p];
        let bus = cells.iter().map(|g| g.map(|(sl, _)| (sl.group * layer.nm.m() + if wired { 2 * sl.pair + sl.elem as usize } else { 0 }) as u32)).collect();
        let s1 = cells.iter().map(|g| g.map_or(0, |(sl, _)| if wired { 0 } else { sl.pair as u8 })).collect();
        let s2 = cells.iter().enumerate().map(|(s, g)| g.map(|_| s as u8)).collect();
        let d = Instr::Dsel { row: row as u16, bus, s1, s2 };
        if state.as_ref() != Some(&d) {
            prog.instrs.push(d.clone());
            *state = Some(d);
        }
    }
    Ok(())
}
