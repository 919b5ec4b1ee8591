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

use super::arch::{Arch, Nm};
use super::isa::{Instr, Program};

/// An int8 N:M layer.
#[derive(Clone, Debug, PartialEq)]
pub struct NmLayer {
    /// A name for reports.
    pub name: String,
    /// Output channels.
    pub out: usize,
    /// Input channels (a multiple of M).
    pub inp: usize,
    /// The pattern.
    pub nm: Nm,
    /// Kept values `[out][in / M][N]`.
    pub values: Vec<i8>,
    /// Their positions in the group, increasing, `[out][in / M][N]`.
    pub idx: Vec<u8>,
}

/// A source of N:M layouts for a weight: today magnitude pruning of a dense
/// matrix; the `#nm` encoding (FLOW) will implement the same trait by reading
/// its stored values and indices.
pub trait NmSource {
    /// The layout of an `out × in` int8 weight.
    fn layout(&self, name: &str, out: usize, inp: usize, w: &[i8]) -> Result<NmLayer, String>;
}

/// Keeps the N largest |w| of every group (ties: the lower position).
#[derive(Copy, Clone, Debug)]
pub struct MagnitudePrune(pub Nm);

impl NmSource for MagnitudePrune {
    fn layout(&self, name: &str, out: usize, inp: usize, w: &[i8]) -> Result<NmLayer, String> {
        NmLayer::prune(name, out, inp, w, self.0)
    }
}

impl NmLayer {
    /// Groups per output row.
    pub fn groups(&self) -> usize {
        self.inp / self.nm.m
    }

    /// Checks sizes, positions and order.
    pub fn validate(&self) -> Result<(), String> {
        let Nm { n, m } = self.nm;
        if self.out == 0 || self.inp == 0 || self.inp % m != 0 {
            return Err(format!("layer {}: in = {} must be a positive multiple of M = {m} (out = {})", self.name, self.inp, self.out));
        }
        let len = self.out * self.groups() * n;
        if self.values.len() != len || self.idx.len() != len {
            return Err(format!("layer {}: {} values and {} indices, {n}:{m} of {}×{} needs {len}", self.name, self.values.len(), self.idx.len(), self.out, self.inp));
        }
        for (gi, g) in self.idx.chunks(n).enumerate() {
            if g.iter().any(|&i| i as usize >= m) || g.windows(2).any(|p| p[0] >= p[1]) {
                return Err(format!("layer {}: row {} group {}: positions {g:?} must increase and be below {m}", self.name, gi / self.groups(), gi % self.groups()));
            }
        }
        Ok(())
    }

    /// Magnitude N:M pruning of a dense `out × in` int8 matrix.
    pub fn prune(name: &str, out: usize, inp: usize, w: &[i8], nm: Nm) -> Result<NmLayer, String> {
        if w.len() != out * inp || inp % nm.m != 0 {
            return Err(format!("layer {name}: {} weights for {out}×{inp}, in must be a multiple of {}", w.len(), nm.m));
        }
        let (mut values, mut idx) = (Vec::new(), Vec::new());
        for g in w.chunks(nm.m) {
            let mut order: Vec<usize> = (0..nm.m).collect();
            order.sort_by_key(|&i| (std::cmp::Reverse((g[i] as i32).abs()), i));
            let mut keep = order[..nm.n].to_vec();
            keep.sort_unstable();
            values.extend(keep.iter().map(|&i| g[i]));
            idx.extend(keep.iter().map(|&i| i as u8));
        }
        Ok(NmLayer { name: name.to_string(), out, inp, nm, values, idx })
    }

    /// The dense `out × in` matrix (pruned entries 0).
    pub fn dense(&self) -> Vec<i8> {
        let mut w = vec![0i8; self.out * self.inp];
        let n = self.nm.n;
        for (gi, (v, ix)) in self.values.chunks(n).zip(self.idx.chunks(n)).enumerate() {
            for (&val, &i) in v.iter().zip(ix) {
                w[gi * self.nm.m + i as usize] = val;
            }
        }
        w
    }

    /// The same matrix under pattern `to`, if every group of `to` holds at
    /// most `to.n` of this layer's kept positions (padding with zeros).
    pub fn as_pattern(&self, to: Nm) -> Option<NmLayer> {
        if self.inp % to.m != 0 {
            return None;
        }
        let n = self.nm.n;
        let mut kept = vec![false; self.out * self.inp];
        for (gi, ix) in self.idx.chunks(n).enumerate() {
            ix.iter().for_each(|&i| kept[gi * self.nm.m + i as usize] = true);
        }
        let dense = self.dense();
        let (mut values, mut idx) = (Vec::new(), Vec::new());
        for (k, w) in kept.chunks(to.m).zip(dense.chunks(to.m)) {
            let mut pos: Vec<usize> = (0..to.m).filter(|&i| k[i]).collect();
            if pos.len() > to.n {
                return None;
            }
            pos.extend((0..to.m).filter(|&i| !k[i]).take(to.n - pos.len()));
            pos.sort_unstable();
            values.extend(pos.iter().map(|&i| w[i]));
            idx.extend(pos.iter().map(|&i| i as u8));
        }
        Some(NmLayer { name: self.name.clone(), out: self.out, inp: self.inp, nm: to, values, idx })
    }

    /// Kept weights (MACs per input vector).
    pub fn kept(&self) -> usize {
        self.values.len()
    }
}

/// The layer as the architecture runs it: its own pattern when supported,
/// else the sparsest supported pattern holding its mask (ties: larger M).
pub fn fit_pattern(arch: &Arch, layer: &NmLayer) -> Result<NmLayer, String> {
    if arch.supports(layer.nm) {
        return Ok(layer.clone());
    }
    let mut cands = arch.patterns.clone();
    cands.sort_by(|a, b| a.density().total_cmp(&b.density()).then(b.m.cmp(&a.m)));
    cands
        .into_iter()
        .find_map(|p| layer.as_pattern(p))
        .ok_or_else(|| format!("layer {}: no supported pattern of {} holds its {} mask (in = {})", layer.name, arch.name, layer.nm, layer.inp))
}

/// Plain integer matmul `x [tokens × in] · wᵀ`, the functional oracle
/// (i64 accumulation; a sum outside i32 is an error).
pub fn reference_matmul(layer: &NmLayer, x: &[i8], tokens: usize) -> Result<Vec<i32>, String> {
    let w = layer.dense();
    let mut y = Vec::with_capacity(tokens * layer.out);
    for t in 0..tokens {
        let xr = &x[t * layer.inp..(t + 1) * layer.inp];
        for o in 0..layer.out {
            let s: i64 = w[o * layer.inp..(o + 1) * layer.inp].iter().zip(xr).map(|(&a, &b)| a as i64 * b as i64).sum();
            y.push(i32::try_from(s).map_err(|_| format!("layer {}: sum {s} overflows int32", layer.name))?);
        }
    }
    Ok(y)
}

/// One slot: a pair of one group, with each column's weight and metadata bit.
struct Slot {
    group: usize,
    pair: usize,
    /// The element of the pair when every column uses the same one (dense).
    elem: u8,
    w: Vec<i8>,
    meta: Vec<u8>,
}

/// The slots of one tile of output columns, group by group.
fn tile_slots(layer: &NmLayer, cols: std::ops::Range<usize>) -> Vec<Slot> {
    let Nm { n, m } = layer.nm;
    let g_n = layer.groups();
    let width = cols.len();
    let mut slots = Vec::new();
    for g in 0..g_n {
        // per column, per pair: the kept (value, meta) in order
        let mut per: Vec<Vec<Vec<(i8, u8)>>> = vec![vec![Vec::new(); m / 2]; width];
        for (c, o) in cols.clone().enumerate() {
            let base = (o * g_n + g) * n;
            for k in 0..n {
                let i = layer.idx[base + k] as usize;
                per[c][i / 2].push((layer.values[base + k], (i % 2) as u8));
            }
        }
        for p in 0..m / 2 {
            let need = per.iter().map(|c| c[p].len()).max().unwrap_or(0);
            for k in 0..need {
                let (w, meta): (Vec<i8>, Vec<u8>) = per.iter().map(|c| c[p].get(k).copied().unwrap_or((0, 0))).unzip();
                let elem = per.iter().find_map(|c| c[p].get(k).map(|x| x.1)).unwrap_or(0);
                slots.push(Slot { group: g, pair: p, elem, w, meta });
            }
        }
    }
    slots
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
}

/// The merger set size for a pattern: the largest divisor of P not above
/// min(N, the arch's aggregation).
pub fn aggregation_for(arch: &Arch, nm: Nm) -> usize {
    let p = arch.array.sub_macros;
    (1..=nm.n.min(arch.sparsity.aggregation)).rev().find(|d| p % d == 0).unwrap_or(1)
}

/// Appends the stream for one layer on activations `x [tokens × in]`.
pub fn lower_layer(arch: &Arch, layer: &NmLayer, x: &[i8], tokens: usize, prog: &mut Program) -> Result<Plan, String> {
    layer.validate()?;
    if x.len() != tokens * layer.inp || tokens == 0 {
        return Err(format!("layer {}: {} activations for {tokens} tokens × {}", layer.name, x.len(), layer.inp));
    }
    let layer = &fit_pattern(arch, layer)?;
    let (p, r, c) = (arch.array.sub_macros, arch.array.rows, arch.array.columns);
    let agg = aggregation_for(arch, layer.nm);
    let sets = p / agg;
    let per_token_words = sets * c;
    let tc = tokens.min(arch.buffers.activation_bytes / layer.inp).min(arch.buffers.output_words / per_token_words);
    if tc == 0 {
        return Err(format!("layer {}: one input vector ({} bytes) or one result ({per_token_words} words) does not fit the buffers", layer.name, layer.inp));
    }
    let u32of = |v: usize, what: &str| u32::try_from(v).map_err(|_| format!("layer {}: {what} = {v} does not fit the ISA's 32 bits", layer.name));
    prog.instrs.push(Instr::Layer { name: layer.name.clone(), tokens: u32of(tokens, "tokens")?, out: u32of(layer.out, "out")?, inp: u32of(layer.inp, "in")? });
    prog.instrs.push(Instr::Cfg { n: layer.nm.n as u8, m: layer.nm.m as u8, agg: agg as u8 });
    let tiles: Vec<std::ops::Range<usize>> = (0..layer.out.div_ceil(c)).map(|t| t * c..((t + 1) * c).min(layer.out)).collect();
    let tile_slots: Vec<Vec<Slot>> = tiles.iter().map(|t| tile_slots(layer, t.clone())).collect();
    let mut plan = Plan { agg, ..Plan::default() };
    plan.slots = tile_slots.iter().map(Vec::len).sum();
    plan.ideal_slots = tiles.len() * layer.groups() * layer.nm.n;
    let per_pass = agg * r;
    let mut rowstate: Vec<Option<Instr>> = vec![None; r];
    for t0 in (0..tokens).step_by(tc) {
        let n_t = tc.min(tokens - t0);
        prog.instrs.push(Instr::Ldx { addr: 0, data: x[t0 * layer.inp..(t0 + n_t) * layer.inp].to_vec() });
        for bundle in (0..tiles.len()).collect::<Vec<_>>().chunks(sets) {
            let passes = bundle.iter().map(|&t| tile_slots[t].len().div_ceil(per_pass)).max().unwrap_or(0);
            for pass in 0..passes {
                plan.passes += 1;
                // Position q of set e: row q / agg, sub-macro e·agg + q % agg.
                let mut grid: Vec<Option<(&Slot, usize)>> = (0..p * r).map(|_| None).collect();
                for (e, &t) in bundle.iter().enumerate() {
                    let chunk = tile_slots[t].iter().skip(pass * per_pass).take(per_pass);
                    for (q, s) in chunk.enumerate() {
                        grid[(q / agg) * p + e * agg + q % agg] = Some((s, tiles[t].len()));
                    }
                }
                for s in 0..p {
                    let used = (0..r).rev().find(|&row| grid[row * p + s].is_some()).map_or(0, |row| row + 1);
                    if used == 0 {
                        continue;
                    }
                    let width = (0..used).find_map(|row| grid[row * p + s].map(|g| g.1)).unwrap_or(c);
                    let (mut w, mut meta) = (Vec::with_capacity(used * width), Vec::with_capacity(used * width));
                    for row in 0..used {
                        match grid[row * p + s] {
                            Some((sl, _)) if arch.array.meta_bits == 0 => {
                                if sl.meta.iter().any(|&b| b != sl.elem) {
                                    return Err(format!("layer {}: {} has no metadata bit, but a slot's columns use different elements of a pair", layer.name, arch.name));
                                }
                                w.extend_from_slice(&sl.w);
                                meta.extend(std::iter::repeat_n(0, width));
                            }
                            Some((sl, _)) => {
                                w.extend_from_slice(&sl.w);
                                meta.extend_from_slice(&sl.meta);
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
                    // Without a metadata bit (a dense DCiM) a row is wired to one
                    // activation: the bus points at the element, the pair select is 0.
                    let wired = arch.array.meta_bits == 0;
                    let bus = cells.iter().map(|g| g.map(|(sl, _)| (sl.group * layer.nm.m + if wired { 2 * sl.pair + sl.elem as usize } else { 0 }) as u32)).collect();
                    let s1 = cells.iter().map(|g| g.map_or(0, |(sl, _)| if wired { 0 } else { sl.pair as u8 })).collect();
                    let s2 = cells.iter().enumerate().map(|(s, g)| g.map(|_| s as u8)).collect();
                    let d = Instr::Dsel { row: row as u16, bus, s1, s2 };
                    if state.as_ref() != Some(&d) {
                        prog.instrs.push(d.clone());
                        *state = Some(d);
                    }
                }
                prog.instrs.push(Instr::Mac { x: 0, xstride: layer.inp as u32, y: 0, count: n_t as u32, acc: pass > 0 });
            }
            for (e, &t) in bundle.iter().enumerate() {
                let dst = u32of(t0 * layer.out + tiles[t].start, "output offset")?;
                prog.instrs.push(Instr::St { y: (e * c) as u32, count: n_t as u32, cols: tiles[t].len() as u16, dst, dstride: layer.out as u32 });
            }
        }
    }
    prog.instrs.push(Instr::Sync);
    Ok(plan)
}

/// A small deterministic PRNG (xorshift64*), for synthetic layers and tests.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// A uniform int8.
    pub fn i8(&mut self) -> i8 {
        self.next_u64() as i8
    }
}

/// A synthetic N:M layer. `aligned`: every tile of `tile` output rows keeps
/// the same pairs per group (the mask the macro runs without padding slots),
/// else each row's positions are drawn independently.
pub fn synthetic_layer(name: &str, out: usize, inp: usize, nm: Nm, aligned: bool, tile: usize, rng: &mut Rng) -> NmLayer {
    let groups = inp / nm.m;
    let (mut values, mut idx) = (Vec::new(), Vec::new());
    let mut tile_choice: Vec<Vec<usize>> = Vec::new();
    for o in 0..out {
        if o % tile.max(1) == 0 {
            tile_choice = (0..groups).map(|_| pick(nm, rng)).collect();
        }
        for choice in tile_choice.iter().take(groups) {
            let pos = if aligned { choice.clone() } else { pick(nm, rng) };
            for &i in &pos {
                values.push(rng.i8());
                idx.push(i as u8);
            }
        }
    }
    NmLayer { name: name.to_string(), out, inp, nm, values, idx }
}

fn pick(nm: Nm, rng: &mut Rng) -> Vec<usize> {
    let mut pos: Vec<usize> = (0..nm.m).collect();
    for i in 0..nm.n {
        let j = i + rng.below(nm.m - i);
        pos.swap(i, j);
    }
    let mut keep = pos[..nm.n].to_vec();
    keep.sort_unstable();
    keep
}
