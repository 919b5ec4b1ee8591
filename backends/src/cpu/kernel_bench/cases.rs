//! The benchmark's cases: for one shape, every primitive × scheme as packed
//! weights (rotating copies), a compiled kernel and the per-call work
//! (activation preprocessing, then the kernel split over the pool), and the
//! dequant baseline each scheme is compared with (module docs of
//! [`super`]).
//!
//! Weights are random codes with sane scales (each encoding's
//! `random_storage`: f16 0.01; throughput does not depend on the values, NaN
//! scales would be unrealistic). Except ternary (one per-tensor scale), one
//! random row is made and repeated `m` times:
//! identical rows stream exactly like distinct ones and build in no time on
//! the 262144-row heads.

use std::sync::Arc;

use flexc_ir::quant::{encode, BcqParams, GqParams, Nm, TernaryParams};
use flexc_ir::Encoding;

use super::{split_blocks, BenchPrimitive, BenchShape, KernelBenchOptions};
use crate::cpu::act::ActivationQ8;
use crate::cpu::codegen::MAX_TILE;
use crate::cpu::format::WeightFormat;
use crate::cpu::gemv::GemvKernel;
use crate::cpu::jit::{JitError, JitSession};
use crate::cpu::lut::{LutActivation, LutKernel, LutWeights};
use crate::cpu::runtime::{pooled_gemv, GemvArg, Pool};
use crate::cpu::shiftadd::{BcqTables, ShiftAddKernel, ShiftAddWeights};
use crate::cpu::sparse::{SparseKernel, SparseWeights};
use crate::cpu::SendPtr;
use crate::xorshift::XorShift as Xs;

/// One timed primitive × scheme on one shape.
pub(super) struct Case {
    pub primitive: BenchPrimitive,
    pub scheme: String,
    /// Code bits (ternary log2 3, Q8_0 8, f32 32).
    pub nominal_bits: f64,
    /// Weight bytes one call streams.
    pub bytes: usize,
    x: Vec<f32>,
    kind: Kind,
}

enum Kind {
    /// Dequant int-dot (`q` holds the reused Q8 activations) or dense f32 (`q` = None).
    Gemv { kernel: GemvKernel, w: Vec<Vec<u8>>, q: Option<ActivationQ8> },
    Lut { kernel: LutKernel, w: Vec<LutWeights>, acts: Vec<LutActivation> },
    ShiftAdd { kernel: Arc<ShiftAddKernel>, w: Vec<ShiftAddWeights>, tables: Vec<BcqTables> },
    Sparse { kernel: SparseKernel, w: Vec<SparseWeights>, batch: usize },
}

fn rotate<T: Clone>(w: &mut Vec<T>, n: usize) {
    w.truncate(1);
    let first = w[0].clone();
    w.resize(n.max(1), first);
}

impl Case {
    /// Keeps `n` copies of the weights to rotate over.
    pub fn set_copies(&mut self, n: usize) {
        match &mut self.kind {
            Kind::Gemv { w, .. } => rotate(w, n),
            Kind::Lut { w, .. } => rotate(w, n),
            Kind::ShiftAdd { w, .. } => rotate(w, n),
            Kind::Sparse { w, .. } => rotate(w, n),
        }
    }

    /// One call on weight copy `copy % copies`: activation preprocessing,
    /// then the kernel over `threads` threads of `pool`.
    pub fn run(&mut self, pool: &Pool, threads: usize, copy: usize, y: &mut [f32]) -> Result<(), JitError> {
        let x = &self.x;
        let yp = SendPtr(y.as_mut_ptr());
        match &mut self.kind {
            Kind::Gemv { kernel, w, q } => {
                let w = &w[copy % w.len()];
                let arg = match q {
                    Some(q) => {
                        q.quantize_into(x, x.len() / kernel.cols(), kernel.cols()).map_err(JitError::InvalidParams)?;
                        GemvArg::Q(q)
                    }
                    None => GemvArg::F32(x),
                };
                pooled_gemv(pool, kernel, w, arg, y, threads).map_err(|e| JitError::InvalidParams(e.to_string()))
            }
            Kind::Lut { kernel, w, acts } => {
                for (a, xr) in acts.iter_mut().zip(x.chunks_exact(kernel.spec().cols)) {
                    a.fill(xr)?;
                }
                let (w, acts) = (&w[copy % w.len()], &*acts);
                kernel.check(w, acts, y.len())?;
                // SAFETY: `check` passed for `y`; split_blocks hands out disjoint block ranges.
                split_blocks(pool, threads, kernel.blocks(), &|b0, b1| unsafe { kernel.run_blocks(w, acts, { yp }.0, b0, b1) })
            }
            Kind::ShiftAdd { kernel, w, tables } => {
                let s = kernel.spec();
                for (t, xr) in tables.iter_mut().zip(x.chunks_exact(s.cols)) {
                    t.fill(xr, s.group)?;
                }
                let (w, tables) = (&w[copy % w.len()], &*tables);
                kernel.check(w, tables, y.len())?;
                // SAFETY: as above.
                split_blocks(pool, threads, s.blocks(), &|b0, b1| unsafe { kernel.run_blocks(w, tables, { yp }.0, b0, b1) })
            }
            Kind::Sparse { kernel, w, batch } => kernel.run_pool(pool, &w[copy % w.len()], x, *batch, y, threads),
        }
    }
}

/// The dequant format a row of `primitive` at `bits` (fractional = ternary)
/// is compared with on `k` columns (module docs of [`super`]); `None` for
/// dequant rows and when no baseline fits `k`.
pub(super) fn baseline_for(primitive: BenchPrimitive, bits: f64, k: usize) -> Option<WeightFormat> {
    let want = match primitive {
        BenchPrimitive::Dequant => return None,
        BenchPrimitive::Sparse | BenchPrimitive::Dense => WeightFormat::Q8_0,
        BenchPrimitive::Lut | BenchPrimitive::ShiftAdd if bits.fract() != 0.0 || bits <= 1.0 => WeightFormat::TQ2_0,
        BenchPrimitive::Lut | BenchPrimitive::ShiftAdd if bits <= 3.0 => WeightFormat::Q2_K,
        BenchPrimitive::Lut | BenchPrimitive::ShiftAdd => WeightFormat::Q4_0,
    };
    let f = if k.is_multiple_of(want.block_elems()) { want } else { WeightFormat::Q4_0 };
    k.is_multiple_of(f.block_elems()).then_some(f)
}

/// The scale group of the `#gq` / `#bcq` schemes: T-MAC's 128, or the
/// largest of 64 and 32 that divides `k` when 128 does not (SmolLM2's 576).
fn group_for(k: usize) -> u32 {
    [128u32, 64, 32].into_iter().find(|g| k.is_multiple_of(*g as usize)).unwrap_or(128)
}

/// Random storage of an `[m, k]` weight in `enc` (the encoding's
/// [`Encoding::random_storage`]: random codes, sane scales): one row
/// repeated `m` times when rows are stored on their own.
fn random_weight(enc: Encoding, (m, k): (usize, usize), rng: &mut Xs) -> Result<Vec<u8>, JitError> {
    let mut fill = |b: &mut [u8]| rng.fill(b);
    Ok(if enc.row_local() {
        enc.random_storage(&[k as u64], &mut fill).map_err(JitError::InvalidParams)?.repeat(m)
    } else {
        enc.random_storage(&[m as u64, k as u64], &mut fill).map_err(JitError::InvalidParams)?
    })
}

/// One random row of `fmt` (ggml blocks with sane scales, or f32 in [−1, 1)).
fn ggml_row(fmt: WeightFormat, k: usize, rng: &mut Xs) -> Result<Vec<u8>, JitError> {
    if fmt == WeightFormat::F32 {
        return Ok(rng.vec(k, 1.0).iter().flat_map(|v| v.to_le_bytes()).collect());
    }
    random_weight(Encoding::from(fmt.ggml_type()), (1, k), rng)
}

struct Builder<'a> {
    session: &'a JitSession,
    shape: &'a BenchShape,
    batch: usize,
    x: Vec<f32>,
    rng: Xs,
}

impl Builder<'_> {
    fn case(&self, primitive: BenchPrimitive, scheme: String, nominal_bits: f64, bytes: usize, kind: Kind) -> Case {
        Case { primitive, scheme, nominal_bits, bytes, x: self.x.clone(), kind }
    }

    fn gemv(&mut self, fmt: WeightFormat) -> Result<Case, JitError> {
        let (m, k) = (self.shape.m, self.shape.k);
        let kernel = GemvKernel::with_tile(self.session, fmt, m, k, self.batch.min(MAX_TILE))?;
        let w = ggml_row(fmt, k, &mut self.rng)?.repeat(m);
        let q = match fmt {
            WeightFormat::F32 => None,
            f => Some(ActivationQ8::quantize(f.activation(), &self.x, self.batch, k).map_err(JitError::InvalidParams)?),
        };
        let (p, bits) = match fmt {
            WeightFormat::F32 => (BenchPrimitive::Dense, 32.0),
            WeightFormat::TQ2_0 => (BenchPrimitive::Dequant, 3f64.log2()),
            WeightFormat::Q2_K => (BenchPrimitive::Dequant, 2.0),
            WeightFormat::Q4_0 => (BenchPrimitive::Dequant, 4.0),
            _ => (BenchPrimitive::Dequant, 8.0),
        };
        Ok(self.case(p, fmt.name().to_string(), bits, w.len(), Kind::Gemv { kernel, w: vec![w], q }))
    }

    fn lut(&mut self, enc: Encoding, act_group: usize) -> Result<Case, JitError> {
        let (m, k) = (self.shape.m, self.shape.k);
        // Named by the cost-table key (`gq2`, `ternary`), at the codes' nominal bits.
        let (scheme, bits) = (enc.cost_key(), enc.code_bits());
        let raw = random_weight(enc, (m, k), &mut self.rng)?;
        let packed = LutWeights::pack(enc, &raw, m, k, act_group)?;
        let kernel = LutKernel::new(self.session, packed.spec())?;
        let acts = (0..self.batch).map(|_| LutActivation { act_group, ..Default::default() }).collect();
        Ok(self.case(BenchPrimitive::Lut, scheme, bits, packed.bytes().len(), Kind::Lut { kernel, w: vec![packed], acts }))
    }

    fn shiftadd(&mut self, bits: u8) -> Result<Case, JitError> {
        let (m, k) = (self.shape.m, self.shape.k);
        let p = BcqParams::row(bits, group_for(k), true, 3);
        let raw = random_weight(p.into(), (m, k), &mut self.rng)?;
        let (kernel, packed) = ShiftAddKernel::for_weight(self.session, p, &raw, m, k)?;
        let tables = (0..self.batch).map(|_| BcqTables::default()).collect();
        Ok(self.case(BenchPrimitive::ShiftAdd, format!("bcq{bits}-apot"), bits.into(), packed.bytes().len(), Kind::ShiftAdd { kernel, w: vec![packed], tables }))
    }

    fn sparse(&mut self, n: u8, mm: u8) -> Result<Case, JitError> {
        let (m, k) = (self.shape.m, self.shape.k);
        let row = self.rng.vec(k, 1.0);
        let pattern = Nm::new(n.into(), mm.into()).map_err(JitError::InvalidParams)?;
        let codec = encode(Encoding::Nm(pattern), &row).map_err(JitError::InvalidParams)?.repeat(m);
        let packed = SparseWeights::pack(pattern, &codec, m, k)?;
        let kernel = SparseKernel::with_tile(self.session, packed.spec(), self.batch.min(MAX_TILE))?;
        let bytes = packed.streamed_bytes();
        // `bits` of a sparse row is its effective bits per dense weight (set by the caller from `bytes`).
        Ok(self.case(BenchPrimitive::Sparse, format!("nm{n}:{mm}"), 0.0, bytes, Kind::Sparse { kernel, w: vec![packed], batch: self.batch }))
    }
}

/// Every case `o` asks for on `shape`; a scheme the shape does not fit (its
/// kernel rejects the shape) is skipped with a note to `progress`.
pub(super) fn build(session: &JitSession, shape: &BenchShape, o: &KernelBenchOptions, progress: &mut dyn FnMut(&str)) -> Result<Vec<Case>, JitError> {
    let (m, k) = (shape.m, shape.k);
    let mut rng = Xs(0x9e37_79b9_7f4a_7c15 ^ ((m as u64) << 32 | k as u64));
    let x = rng.vec(o.batch * k, 1.0);
    let mut b = Builder { session, shape, batch: o.batch, x, rng };
    let want = |p: BenchPrimitive| o.primitives.contains(&p);
    let mut out = Vec::new();
    let mut add = |what: String, r: Result<Case, JitError>, out: &mut Vec<Case>| match r {
        Ok(c) => out.push(c),
        Err(e) => progress(&format!("{} {m}x{k}: skipping {what}: {e}", shape.label)),
    };
    if want(BenchPrimitive::Lut) {
        for bits in 1..=4u8 {
            let enc = Encoding::Gq(GqParams { bits, group: group_for(k), zero: false });
            add(format!("lut gq{bits}"), b.lut(enc, o.act_group), &mut out);
        }
        add("lut ternary".into(), b.lut(Encoding::Ternary(TernaryParams { group: 0 }), o.act_group), &mut out);
    }
    if want(BenchPrimitive::ShiftAdd) {
        for bits in 1..=4u8 {
            add(format!("shiftadd bcq{bits}"), b.shiftadd(bits), &mut out);
        }
    }
    if want(BenchPrimitive::Sparse) {
        for &(n, mm) in &o.patterns {
            add(format!("sparse {n}:{mm}"), b.sparse(n, mm), &mut out);
        }
    }
    if want(BenchPrimitive::Dense) || want(BenchPrimitive::Sparse) {
        add("dense f32".into(), b.gemv(WeightFormat::F32), &mut out);
    }
    let mut fmts: Vec<WeightFormat> = if want(BenchPrimitive::Dequant) {
        [WeightFormat::Q4_0, WeightFormat::Q2_K, WeightFormat::TQ2_0, WeightFormat::Q8_0].into_iter().filter(|f| k.is_multiple_of(f.block_elems())).collect()
    } else {
        Vec::new()
    };
    for c in &out {
        if let Some(f) = baseline_for(c.primitive, c.nominal_bits, k)
            && !fmts.contains(&f)
        {
            fmts.push(f);
        }
    }
    for f in fmts {
        add(format!("dequant {}", f.name()), b.gemv(f), &mut out);
    }
    Ok(out)
}
