//! Int8 N:M layers as the FlexCiM lowering sees them: kept values and their
//! in-group positions per output row, how they are made (magnitude pruning,
//! an `#nm` weight's stored positions, dense), the pattern an architecture
//! runs them as, the integer oracle, and seeded synthetic layers for tests.

use super::arch::{Arch, Nm};

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

/// A source of N:M layouts for an int8 weight without an `#nm` encoding
/// (magnitude pruning, or [`DenseLayout`]); `#nm` weights bring their own
/// positions ([`NmLayer::from_positions`]).
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

/// Keeps every weight: the dense pattern of [`NmLayer::dense_pattern`].
#[derive(Copy, Clone, Debug)]
pub struct DenseLayout;

impl NmSource for DenseLayout {
    fn layout(&self, name: &str, out: usize, inp: usize, w: &[i8]) -> Result<NmLayer, String> {
        let nm = NmLayer::dense_pattern(inp).ok_or_else(|| format!("layer {name}: in = {inp} is odd; the macro streams activations in pairs"))?;
        NmLayer::prune(name, out, inp, w, nm)
    }
}

impl NmLayer {
    /// The dense pattern (M:M) a dense layer of `inp` inputs is laid out in:
    /// the largest of 8, 4, 2 dividing it (the lowering converts it to a
    /// dense pattern the architecture supports).
    pub fn dense_pattern(inp: usize) -> Option<Nm> {
        [8u8, 4, 2].into_iter().find(|&m| inp.is_multiple_of(m as usize)).map(|m| Nm::of(m, m))
    }

    /// The layout of an `out × in` int8 matrix `w` keeping exactly the given
    /// in-group positions (`positions[row · groups + g]`, N increasing each):
    /// an `#nm` weight's stored mask, kept even where a value quantized to 0.
    pub fn from_positions(name: &str, out: usize, inp: usize, nm: Nm, w: &[i8], positions: &[Vec<usize>]) -> Result<NmLayer, String> {
        if w.len() != out * inp || !inp.is_multiple_of(nm.m()) || positions.len() != out * (inp / nm.m()) {
            return Err(format!("layer {name}: {} weights and {} groups for {out}×{inp} in {nm}", w.len(), positions.len()));
        }
        let (mut values, mut idx) = (Vec::with_capacity(out * inp / nm.m() * nm.n()), Vec::with_capacity(out * inp / nm.m() * nm.n()));
        for (g, pos) in positions.iter().enumerate() {
            if pos.len() != nm.n() {
                return Err(format!("layer {name}: group {g} keeps {} positions, {nm} keeps {}", pos.len(), nm.n()));
            }
            values.extend(pos.iter().map(|&i| w[g * nm.m() + i.min(nm.m() - 1)]));
            idx.extend(pos.iter().map(|&i| i as u8));
        }
        let l = NmLayer { name: name.to_string(), out, inp, nm, values, idx };
        l.validate()?;
        Ok(l)
    }

    /// Groups per output row.
    pub fn groups(&self) -> usize {
        self.inp / self.nm.m()
    }

    /// Checks sizes, positions and order.
    pub fn validate(&self) -> Result<(), String> {
        let (n, m) = (self.nm.n(), self.nm.m());
        if self.out == 0 || self.inp == 0 || !self.inp.is_multiple_of(m) {
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
        if w.len() != out * inp || !inp.is_multiple_of(nm.m()) {
            return Err(format!("layer {name}: {} weights for {out}×{inp}, in must be a multiple of {}", w.len(), nm.m()));
        }
        if nm.is_dense() {
            // Every position kept: the weights as they are.
            let idx = (0..out * inp).map(|i| (i % nm.m()) as u8).collect();
            return Ok(NmLayer { name: name.to_string(), out, inp, nm, values: w.to_vec(), idx });
        }
        let (mut values, mut idx) = (Vec::with_capacity(out * inp / nm.m() * nm.n()), Vec::with_capacity(out * inp / nm.m() * nm.n()));
        for g in w.chunks(nm.m()) {
            let mut order: Vec<usize> = (0..nm.m()).collect();
            order.sort_by_key(|&i| (std::cmp::Reverse((g[i] as i32).abs()), i));
            let mut keep = order[..nm.n()].to_vec();
            keep.sort_unstable();
            values.extend(keep.iter().map(|&i| g[i]));
            idx.extend(keep.iter().map(|&i| i as u8));
        }
        Ok(NmLayer { name: name.to_string(), out, inp, nm, values, idx })
    }

    /// N:M pruning with one mask per tile of `tile` output rows (the
    /// macro's column tile, so every slot is shared: N per group): in each
    /// group the N positions of largest Σ|w| over the tile's rows.
    pub fn prune_aligned(name: &str, out: usize, inp: usize, w: &[i8], nm: Nm, tile: usize) -> Result<NmLayer, String> {
        if w.len() != out * inp || !inp.is_multiple_of(nm.m()) || nm.is_dense() {
            return NmLayer::prune(name, out, inp, w, nm);
        }
        let (g_n, m, n) = (inp / nm.m(), nm.m(), nm.n());
        let (mut values, mut idx) = (vec![0i8; out * g_n * n], vec![0u8; out * g_n * n]);
        for t0 in (0..out).step_by(tile.max(1)) {
            let rows = t0..(t0 + tile.max(1)).min(out);
            for g in 0..g_n {
                let score = |i: usize| rows.clone().map(|o| (w[o * inp + g * m + i] as i32).abs()).sum::<i32>();
                let mut order: Vec<usize> = (0..m).collect();
                order.sort_by_key(|&i| (std::cmp::Reverse(score(i)), i));
                let mut keep = order[..n].to_vec();
                keep.sort_unstable();
                for o in rows.clone() {
                    for (k, &i) in keep.iter().enumerate() {
                        values[(o * g_n + g) * n + k] = w[o * inp + g * m + i];
                        idx[(o * g_n + g) * n + k] = i as u8;
                    }
                }
            }
        }
        Ok(NmLayer { name: name.to_string(), out, inp, nm, values, idx })
    }

    /// The dense `out × in` matrix (pruned entries 0).
    pub fn dense(&self) -> Vec<i8> {
        let mut w = vec![0i8; self.out * self.inp];
        let n = self.nm.n();
        for (gi, (v, ix)) in self.values.chunks(n).zip(self.idx.chunks(n)).enumerate() {
            for (&val, &i) in v.iter().zip(ix) {
                w[gi * self.nm.m() + i as usize] = val;
            }
        }
        w
    }

    /// The same matrix under pattern `to`, if every group of `to` holds at
    /// most `to.n` of this layer's kept positions (padding with zeros).
    pub fn as_pattern(&self, to: Nm) -> Option<NmLayer> {
        if !self.inp.is_multiple_of(to.m()) {
            return None;
        }
        let n = self.nm.n();
        let mut kept = vec![false; self.out * self.inp];
        for (gi, ix) in self.idx.chunks(n).enumerate() {
            ix.iter().for_each(|&i| kept[gi * self.nm.m() + i as usize] = true);
        }
        let dense = self.dense();
        let len = self.out * self.inp / to.m() * to.n();
        let (mut values, mut idx) = (Vec::with_capacity(len), Vec::with_capacity(len));
        for (k, w) in kept.chunks(to.m()).zip(dense.chunks(to.m())) {
            // Kept positions as bits (M <= 64), padded with the lowest free ones.
            let mut bits: u64 = k.iter().enumerate().filter(|x| *x.1).map(|(i, _)| 1u64 << i).sum();
            let count = bits.count_ones() as usize;
            if count > to.n() {
                return None;
            }
            for _ in count..to.n() {
                bits |= !bits & bits.wrapping_add(1); // the lowest zero bit
            }
            for i in (0..to.m()).filter(|&i| bits >> i & 1 == 1) {
                values.push(w[i]);
                idx.push(i as u8);
            }
        }
        Some(NmLayer { name: self.name.clone(), out: self.out, inp: self.inp, nm: to, values, idx })
    }

    /// Kept weights (MACs per input vector).
    pub fn kept(&self) -> usize {
        self.values.len()
    }
}

/// The layer as the architecture runs it: its own pattern when supported,
/// else the sparsest supported pattern holding its mask (ties: larger M);
/// with `sparsity.reprune`, a sparse layer no sparse pattern holds is
/// re-pruned instead ([`reprune_target`]).
pub fn fit_pattern(arch: &Arch, layer: &NmLayer) -> Result<NmLayer, String> {
    if arch.supports(layer.nm) {
        return Ok(layer.clone());
    }
    let mut cands = arch.patterns.clone();
    cands.sort_by(|a, b| a.density().total_cmp(&b.density()).then(b.m().cmp(&a.m())));
    if let Some(to) = reprune_target(arch, layer.nm, layer.inp) {
        if let Some(l) = cands.iter().filter(|p| !p.is_dense()).find_map(|&p| layer.as_pattern(p)) {
            return Ok(l);
        }
        return NmLayer::prune_aligned(&layer.name, layer.out, layer.inp, &layer.dense(), to, arch.array.columns);
    }
    cands
        .into_iter()
        .find_map(|p| layer.as_pattern(p))
        .ok_or_else(|| format!("layer {}: no supported pattern of {} holds its {} mask (in = {})", layer.name, arch.name, layer.nm, layer.inp))
}

/// Under `sparsity.reprune`, the pattern a sparse `nm` layer of `inp` inputs
/// is re-pruned to when no supported sparse pattern holds it: the densest
/// supported sparse pattern not denser than `nm` (ties: larger M); the
/// re-pruned mask is aligned over each column tile, as `prune-nm{align}` makes FlexCiM's.
pub fn reprune_target(arch: &Arch, nm: Nm, inp: usize) -> Option<Nm> {
    if !arch.sparsity.reprune || nm.is_dense() {
        return None;
    }
    let mut c: Vec<Nm> = arch.patterns.iter().copied().filter(|p| !p.is_dense() && p.density() <= nm.density() && inp.is_multiple_of(p.m())).collect();
    c.sort_by(|a, b| b.density().total_cmp(&a.density()).then(b.m().cmp(&a.m())));
    c.first().copied()
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
    let groups = inp / nm.m();
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
    let mut pos: Vec<usize> = (0..nm.m()).collect();
    for i in 0..nm.n() {
        let j = i + rng.below(nm.m() - i);
        pos.swap(i, j);
    }
    let mut keep = pos[..nm.n()].to_vec();
    keep.sort_unstable();
    keep
}
