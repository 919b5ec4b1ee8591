//! The weight-encoding registry: [`Encoding`] and the [`Scheme`] interface
//! every encoding implements.
//!
//! An encoding is one entry of the table at the bottom of this file (in the
//! spirit of MLIR's `sparse_tensor.encoding` attribute: one typed attribute
//! that owns its parameters and knows its storage). Each entry names a
//! parameter type that lives in the encoding's own file and implements
//! [`Scheme`]: parse/print of `#name<key = value, ...>`, verification against
//! a shape, `storage(shape)`, `decode`/`encode` given the shape, the GEMM
//! [`Primitive`]s it admits, its cost-table key and its size, and what the
//! consumers need to know of it: the quantizer family that fits it
//! ([`Scheme::affine`], [`Scheme::binary_coded`]), its N:M pattern
//! ([`Scheme::nm`]), the LUT kernel's streamed planes, the tag of derived
//! weight names, its nominal bits and random storage for benchmarks.
//! Everything else (the type verifier, the interpreter, the quantizer, the
//! cost models, the benchmarks, the packers' dispatch) asks the scheme and
//! never matches on the variant (only a kernel's own file takes apart the
//! encoding it reads: `backends/src/cpu/lut.rs`, `prepack.rs`), so a new
//! encoding is its own file plus one line in [`encodings!`]'s invocation
//! (a new ggml block type is one file plus one row of `ggml::types`' table).
//!
//! Shapes are the tensor's dimensions, outermost first; storage runs along
//! the last axis in blocks of [`Scheme::block_elems`]. Row-local schemes
//! ([`Scheme::row_local`]) store every row on its own, so a run of whole rows
//! can be decoded as a rank-1 shape ([`crate::quant::decode`]); the others
//! (`#bcq` with shared scales) need the whole `[rows, cols]` matrix.

use crate::quant::{BcqParams, Nm};
use std::fmt;

/// The value of one encoding parameter (`bits = 2`, `pot = true`,
/// `scales = acc`). Encodings own their parameter values: the op table's
/// attribute literals ([`crate::ops::AttrLit`]) contain encodings, so the
/// registry cannot be built on them without a cycle.
#[derive(Clone, PartialEq, Debug)]
pub enum ParamValue {
    /// An integer.
    Int(i64),
    /// `true` / `false` (a bare key is `true`).
    Bool(bool),
    /// A bare identifier (`acc`).
    Ident(String),
    /// Any other literal, as written (no encoding accepts one; kept so that
    /// the error can quote it).
    Other(String),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Ident(s) | ParamValue::Other(s) => f.write_str(s),
        }
    }
}

/// The GEMM primitives a weight may run on (the `kern.*_gemm` ops).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Primitive {
    /// Table lookup over bit-serial weight planes (T-MAC / LUT-GEMM): `kern.lut_gemm`.
    Lut,
    /// Binary-coded weights with power-of-two scales (ShiftAddLLM): `kern.shiftadd_gemm`.
    ShiftAdd,
    /// N:M sparse weights read compressed: `kern.sparse_gemm`.
    Sparse,
    /// Dense: integer dot products on block-quantized weights, or weights
    /// dequantized ahead of time: `kern.dense_gemm`.
    Dense,
}

impl Primitive {
    /// Every primitive, in listing order.
    pub const ALL: [Primitive; 4] = [Primitive::Lut, Primitive::ShiftAdd, Primitive::Sparse, Primitive::Dense];

    /// The name used in options, reports and cost tables.
    pub fn name(self) -> &'static str {
        match self {
            Primitive::Lut => "lut",
            Primitive::ShiftAdd => "shiftadd",
            Primitive::Sparse => "sparse",
            Primitive::Dense => "dense",
        }
    }

    /// The primitive with this [`Primitive::name`].
    pub fn from_name(s: &str) -> Option<Primitive> {
        Primitive::ALL.into_iter().find(|p| p.name() == s)
    }
}

impl fmt::Display for Primitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What every weight encoding provides. Implemented by each encoding's
/// parameter type in its own file; reached through [`Encoding::scheme`].
pub trait Scheme {
    /// The name after `#`.
    fn name(&self) -> &'static str;

    /// The parameters printed in `<...>` (empty: printed as `#name`).
    fn params(&self) -> Vec<(&'static str, ParamValue)>;

    /// Elements per storage block along the last axis.
    fn block_elems(&self) -> u64;

    /// Bytes per storage block.
    fn block_bytes(&self) -> u64;

    /// True when every row (run along the last axis) is stored on its own,
    /// so rows can be gathered and decoded one by one.
    fn row_local(&self) -> bool {
        true
    }

    /// Checks that a tensor of `shape` can be stored in this encoding.
    fn verify(&self, shape: &[u64]) -> Result<(), String> {
        let Some(&last) = shape.last() else { return Err(format!("{} needs at least one dimension", self.spelling())) };
        if !last.is_multiple_of(self.block_elems()) {
            return Err(format!("{} needs the last dimension to be a multiple of {}, got {last}", self.spelling(), self.block_elems()));
        }
        Ok(())
    }

    /// Storage bytes of a tensor of `shape` (verified first).
    fn storage(&self, shape: &[u64]) -> Result<u64, String> {
        self.verify(shape)?;
        let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or_else(|| format!("{}: {shape:?} is too large", self.spelling()))?;
        (numel / self.block_elems()).checked_mul(self.block_bytes()).ok_or_else(|| format!("{}: {shape:?} is too large", self.spelling()))
    }

    /// Decodes the storage of a tensor of `shape` into `out` (its numel
    /// values; [`Encoding::decode`] has checked both against `shape`).
    fn decode(&self, shape: &[usize], bytes: &[u8], out: &mut [f32]) -> Result<(), String>;

    /// Encodes the values of a tensor of `shape` (the reference quantizer;
    /// [`Encoding::encode`] has checked them against `shape`).
    fn encode(&self, shape: &[usize], values: &[f32]) -> Result<Vec<u8>, String>;

    /// The GEMM primitives that read this encoding directly (dense is always
    /// possible by decoding ahead of time; it is listed when a kernel reads
    /// the encoded blocks themselves).
    fn primitives(&self) -> &'static [Primitive];

    /// The cost-table key of this encoding's kernels (`gq2`, `bcq3`, `nm`, `q4_0`).
    fn cost_key(&self) -> String;

    /// Fraction of the logical elements that are stored (N:M keeps n/m).
    fn density(&self) -> f64 {
        1.0
    }

    /// Bit planes a LUT kernel reads per weight (when it admits [`Primitive::Lut`]).
    fn lut_planes(&self) -> Option<u8> {
        None
    }

    /// Bit planes the CPU LUT kernel streams per weight of a `[rows, _]`
    /// matrix, padding included (`backends/src/cpu/lut.rs`): by default the
    /// [`Scheme::lut_planes`] padded to 2 or 4 (every plane of `#bcq` has its
    /// own `α`; ternary is 2); `#gq` overrides it.
    fn lut_stream_planes(&self, _rows: u64) -> Option<u8> {
        self.lut_planes().map(padded_planes)
    }

    /// The affine group grid of this encoding, when it is one (what the
    /// data-aware quantizers fit: `passes::quant::grid`).
    fn affine(&self) -> Option<&dyn AffineScheme> {
        None
    }

    /// The binary-coding parameters when this encoding stores `Σ α_i·b_i`
    /// sign planes (what LUT-GEMM's and ShiftAddLLM's quantizers fit:
    /// `passes::quant::optq`, `optq_shared`).
    fn binary_coded(&self) -> Option<BcqParams> {
        None
    }

    /// The N:M pattern of the stored weights, when the encoding keeps only
    /// `n` of every `m` (what sparse accelerators such as FlexCiM run).
    fn nm(&self) -> Option<Nm> {
        None
    }

    /// The kept in-group positions of every N:M group of `bytes` (exactly
    /// `n` each), when the encoding is sparse ([`Scheme::nm`]).
    fn kept_positions(&self, _bytes: &[u8]) -> Option<Result<Vec<Vec<usize>>, String>> {
        None
    }

    /// Nominal bits per weight (a benchmark's bits axis): the code width
    /// where the encoding has one (`#gq` b, `#bcq` planes, ternary log2 3);
    /// by default the storage bits per weight.
    fn code_bits(&self) -> f64 {
        self.block_bytes() as f64 * 8.0 / self.block_elems() as f64
    }

    /// A short tag for names derived from an encoded weight (`quantize`
    /// writes `@w.<tag>`): by default the name.
    fn tag(&self) -> String {
        self.name().to_string()
    }

    /// Storage of a tensor of `shape` with random codes and sane scales
    /// (benchmarks: kernel speed does not depend on the values, but NaN or
    /// huge scales would be unrealistic); `fill` randomises a byte slice.
    /// By default: [`encode_random`].
    fn random_storage(&self, shape: &[u64], fill: &mut dyn FnMut(&mut [u8])) -> Result<Vec<u8>, String> {
        encode_random(self, shape, fill)
    }

    /// The spelling `#name<...>` (for messages).
    fn spelling(&self) -> String {
        let mut s = format!("#{}", self.name());
        let params = self.params();
        if !params.is_empty() {
            s.push('<');
            for (i, (k, v)) in params.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                s.push_str(&format!("{k} = {v}"));
            }
            s.push('>');
        }
        s
    }
}

/// The LUT planes of `planes`-bit codes padded to the kernel's 2 or 4.
pub(crate) fn padded_planes(planes: u8) -> u8 {
    if planes <= 2 { 2 } else { 4 }
}

/// `storage(shape)` bytes, allocated fallibly and randomised by `fill`
/// (the start of every [`Scheme::random_storage`]).
pub(crate) fn random_bytes<S: Scheme + ?Sized>(s: &S, shape: &[u64], fill: &mut dyn FnMut(&mut [u8])) -> Result<Vec<u8>, String> {
    let len = usize::try_from(s.storage(shape)?).map_err(|_| format!("{}: {shape:?} does not fit in memory", s.spelling()))?;
    let mut b = Vec::new();
    b.try_reserve_exact(len).map_err(|_| format!("{}: cannot allocate {len} bytes for {shape:?}", s.spelling()))?;
    b.resize(len, 0);
    fill(&mut b);
    Ok(b)
}

/// The default [`Scheme::random_storage`]: values uniform in `[−0.05, 0.05)`
/// (from `fill`'s bytes) encoded by the scheme's reference quantizer.
pub fn encode_random<S: Scheme + ?Sized>(s: &S, shape: &[u64], fill: &mut dyn FnMut(&mut [u8])) -> Result<Vec<u8>, String> {
    s.verify(shape)?;
    let dims: Vec<usize> = shape.iter().map(|&d| usize::try_from(d)).collect::<Result<_, _>>().map_err(|_| format!("{}: {shape:?} does not fit in memory", s.spelling()))?;
    let bytes = dims.iter().try_fold(4usize, |a, &d| a.checked_mul(d)).ok_or_else(|| format!("{}: {shape:?} is too large", s.spelling()))?;
    let mut raw = Vec::new();
    raw.try_reserve_exact(bytes).map_err(|_| format!("{}: cannot allocate the values of {shape:?}", s.spelling()))?;
    raw.resize(bytes, 0);
    fill(&mut raw);
    let values: Vec<f32> = raw.chunks_exact(4).map(|b| ((u32::from_le_bytes([b[0], b[1], b[2], b[3]]) >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.1).collect();
    s.encode(&dims, &values)
}

/// Where an affine group's zero level comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GridOffset {
    /// `value = (q − c)·d` for a fixed `c`.
    Fixed(f32),
    /// `value = (q − z)·d` with a stored integer zero point `z ∈ [0, qmax]`.
    IntZero,
    /// `value = q·d + m` with a stored fp16 `m`.
    FloatMin,
}

/// An affine group grid: every group of `group` elements along a row is one
/// block holding an fp16 scale `d`, its offset and codes `q ∈ 0..=qmax`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineGrid {
    /// Elements per group (one block).
    pub group: usize,
    /// The largest code.
    pub qmax: u32,
    /// Where the zero level comes from.
    pub offset: GridOffset,
}

/// One group's fitted parameters, already rounded to what the block stores:
/// `d` (fp16-exact), the offset code `c` (`Fixed`; the integer zero point for
/// `IntZero`) and `m` (`FloatMin`; fp16-exact).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineFit {
    /// The scale.
    pub d: f32,
    /// The offset code.
    pub c: f32,
    /// The additive offset.
    pub m: f32,
}

/// An encoding that is an affine group grid ([`Scheme::affine`]).
pub trait AffineScheme {
    /// The grid.
    fn grid(&self) -> AffineGrid;

    /// Writes one block (`out.len() == block_bytes`, `codes.len() == group`)
    /// so that it decodes to `fit`'s value of every code.
    fn pack(&self, fit: &AffineFit, codes: &[u32], out: &mut [u8]);
}

/// How an encoding's parameter type is parsed from text (`#name<...>`).
pub trait ParseScheme: Sized {
    /// `None` when `name` is not this encoding's; otherwise the checked parameters.
    fn parse(name: &str, params: &[(String, ParamValue)]) -> Option<Result<Self, String>>;
}

/// Declares [`Encoding`] from the registry table: one line per encoding.
macro_rules! encodings {
    ($($(#[$doc:meta])* $variant:ident($params:ty),)*) => {
        /// The storage scheme of an encoded tensor: one variant per registry
        /// entry, each holding its typed parameters (see [`Scheme`]).
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum Encoding {
            $($(#[$doc])* $variant($params),)*
        }

        impl Encoding {
            /// The scheme that implements this encoding (the one dispatch point).
            pub fn scheme(&self) -> &dyn Scheme {
                match self {
                    $(Encoding::$variant(p) => p,)*
                }
            }

            /// Parses `#name` or `#name<key = value, ...>` (the part after `#`).
            pub fn parse(name: &str, params: &[(String, ParamValue)]) -> Result<Encoding, String> {
                $(if let Some(r) = <$params as ParseScheme>::parse(name, params) {
                    return r.map(Encoding::$variant);
                })*
                Err(format!("unknown encoding #{name}"))
            }
        }

        $(impl From<$params> for Encoding {
            fn from(p: $params) -> Encoding {
                Encoding::$variant(p)
            }
        })*
    };
}

encodings! {
    /// A ggml block format (`#q4_k`, `#q8_0`, …): rows along the last axis are
    /// runs of blocks laid out exactly as llama.cpp stores them.
    Ggml(crate::quant::GgmlType),
    /// N:M structured sparsity (`#nm<n = 2, m = 4>`, see `quant::nm`).
    Nm(crate::quant::Nm),
    /// Group-wise k-bit round-to-nearest (`#gq<bits, group, zero>`, see `quant::gq`).
    Gq(crate::quant::GqParams),
    /// BitNet b1.58 ternary, absmean scale (`#ternary<group>`, see `quant::ternary`).
    Ternary(crate::quant::TernaryParams),
    /// Binary-coding quantization (`#bcq<bits, group, pot, apot>`, see `quant::bcq`).
    Bcq(crate::quant::BcqParams),
}

impl Encoding {
    /// The name after `#`.
    pub fn name(&self) -> &'static str {
        self.scheme().name()
    }

    /// The parameters printed in `<...>` (none for the ggml formats).
    pub fn params(&self) -> Vec<(&'static str, ParamValue)> {
        self.scheme().params()
    }

    /// Elements per storage block along the last axis.
    pub fn block_elems(&self) -> u64 {
        self.scheme().block_elems()
    }

    /// Bytes per storage block.
    pub fn block_bytes(&self) -> u64 {
        self.scheme().block_bytes()
    }

    /// True when rows are stored (and can be decoded or gathered) one by one.
    pub fn row_local(&self) -> bool {
        self.scheme().row_local()
    }

    /// Checks that a tensor of `shape` can be stored in this encoding.
    pub fn verify(&self, shape: &[u64]) -> Result<(), String> {
        self.scheme().verify(shape)
    }

    /// Storage bytes of a tensor of `shape`.
    pub fn storage(&self, shape: &[u64]) -> Result<u64, String> {
        self.scheme().storage(shape)
    }

    /// Decodes a tensor of `shape` (its numel values into `out`).
    pub fn decode(&self, shape: &[usize], bytes: &[u8], out: &mut [f32]) -> Result<(), String> {
        let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if numel != Some(out.len()) {
            return Err(format!("{self}: a {shape:?} tensor does not have {} elements", out.len()));
        }
        self.verify(&shape.iter().map(|&d| d as u64).collect::<Vec<_>>())?;
        self.scheme().decode(shape, bytes, out)
    }

    /// Encodes the values of a tensor of `shape` (the reference quantizer).
    pub fn encode(&self, shape: &[usize], values: &[f32]) -> Result<Vec<u8>, String> {
        let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if numel != Some(values.len()) {
            return Err(format!("{self}: a {shape:?} tensor does not have {} elements", values.len()));
        }
        self.verify(&shape.iter().map(|&d| d as u64).collect::<Vec<_>>())?;
        self.scheme().encode(shape, values)
    }

    /// True when a kernel for `p` reads this encoding directly.
    pub fn admits(&self, p: Primitive) -> bool {
        self.scheme().primitives().contains(&p)
    }

    /// The cost-table key (`gq2`, `bcq3`, `ternary`, `nm`, `q4_0`).
    pub fn cost_key(&self) -> String {
        self.scheme().cost_key()
    }

    /// Fraction of the logical elements stored (n/m for N:M, else 1).
    pub fn density(&self) -> f64 {
        self.scheme().density()
    }

    /// Bit planes a LUT kernel reads per weight.
    pub fn lut_planes(&self) -> Option<u8> {
        self.scheme().lut_planes()
    }

    /// Bit planes the CPU LUT kernel streams per weight of a `[rows, _]`
    /// matrix, padding included ([`Scheme::lut_stream_planes`]).
    pub fn lut_stream_planes(&self, rows: u64) -> Option<u8> {
        self.scheme().lut_stream_planes(rows)
    }

    /// The binary-coding parameters of a `Σ α_i·b_i` encoding ([`Scheme::binary_coded`]).
    pub fn binary_coded(&self) -> Option<BcqParams> {
        self.scheme().binary_coded()
    }

    /// The N:M pattern of a sparse encoding ([`Scheme::nm`]).
    pub fn nm(&self) -> Option<Nm> {
        self.scheme().nm()
    }

    /// The kept positions of every N:M group of `bytes` ([`Scheme::kept_positions`]).
    pub fn kept_positions(&self, bytes: &[u8]) -> Option<Result<Vec<Vec<usize>>, String>> {
        self.scheme().kept_positions(bytes)
    }

    /// Nominal bits per weight ([`Scheme::code_bits`]).
    pub fn code_bits(&self) -> f64 {
        self.scheme().code_bits()
    }

    /// The tag of names derived from a weight in this encoding ([`Scheme::tag`]).
    pub fn tag(&self) -> String {
        self.scheme().tag()
    }

    /// Random storage of a tensor of `shape` ([`Scheme::random_storage`]).
    pub fn random_storage(&self, shape: &[u64], fill: &mut dyn FnMut(&mut [u8])) -> Result<Vec<u8>, String> {
        self.scheme().random_storage(shape, fill)
    }

    /// Storage bits per logical weight of a `[rows, cols]` matrix.
    pub fn bits_per_weight(&self, rows: u64, cols: u64) -> Result<f64, String> {
        Ok(self.storage(&[rows, cols])? as f64 * 8.0 / (rows * cols).max(1) as f64)
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.scheme().spelling())
    }
}

/// Checked `key = value` parameters of one encoding spelling (shared by the
/// schemes' [`ParseScheme`] implementations).
pub(crate) struct Params<'a> {
    pub(crate) name: &'a str,
    pub(crate) given: &'a [(String, ParamValue)],
}

impl Params<'_> {
    /// Rejects keys outside `allowed`.
    pub(crate) fn check_keys(&self, allowed: &[&str]) -> Result<(), String> {
        for (k, _) in self.given {
            if !allowed.contains(&k.as_str()) {
                return Err(format!("encoding #{} has no parameter '{k}' (valid: {})", self.name, allowed.join(", ")));
            }
        }
        Ok(())
    }

    /// The value of `key`, if given.
    pub(crate) fn get(&self, key: &str) -> Option<&ParamValue> {
        self.given.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// An integer in `range` (inclusive), or `default` when absent.
    pub(crate) fn int(&self, key: &str, default: Option<i64>, range: (i64, i64)) -> Result<i64, String> {
        let v = match (self.get(key), default) {
            (Some(ParamValue::Int(v)), _) => *v,
            (Some(other), _) => return Err(format!("#{}: '{key}' must be an integer, got {other}", self.name)),
            (None, Some(d)) => d,
            (None, None) => return Err(format!("#{} needs '{key}'", self.name)),
        };
        if v < range.0 || v > range.1 {
            return Err(format!("#{}: '{key}' must be in {}..={}, got {v}", self.name, range.0, range.1));
        }
        Ok(v)
    }

    /// A boolean, `default` when absent.
    pub(crate) fn boolean(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some(ParamValue::Bool(b)) => Ok(*b),
            Some(other) => Err(format!("#{}: '{key}' must be true or false, got {other}", self.name)),
        }
    }

    /// A group size: a positive multiple of 8 (whole bytes of 1-bit codes).
    pub(crate) fn group(&self, allow_zero: bool) -> Result<u32, String> {
        let g = self.int("group", None, (0, 1 << 20))?;
        if (g == 0 && !allow_zero) || g % 8 != 0 {
            let zero = if allow_zero { "0 or " } else { "" };
            return Err(format!("#{}: 'group' must be {zero}a positive multiple of 8, got {g}", self.name));
        }
        Ok(g as u32)
    }
}

#[cfg(test)]
mod tests;
