//! flexc's own low-bit encodings: their parameters and the shared helpers of
//! their codecs ([`super::gq`], [`super::ternary`],
//! [`super::bcq`]).
//!
//! Every scheme stores blocks of one quantization group along the last axis
//! (`block_elems = group`), so rows stay independently addressable; the one
//! exception is per-tensor ternary (`#ternary<group = 0>`), whose single f32
//! scale trails the packed codes (as bitnet.cpp's I2_S does).
//!
//! Bit packing is LSB-first throughout: element `i` of a packed run of `b`-bit
//! codes occupies bits `[i·b, i·b + b)` counted from bit 0 of byte 0.

/// Group-wise k-bit round-to-nearest: `#gq<bits = 1..4, group = G, zero = true|false>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct GqParams {
    /// Code width, 1..=4.
    pub bits: u8,
    /// Elements per group (a multiple of 8).
    pub group: u32,
    /// Asymmetric: an integer zero point per group.
    pub zero: bool,
}

/// BitNet b1.58 ternary with an absmean scale: `#ternary<group = 0|G>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TernaryParams {
    /// Elements per scale group; 0 = one scale for the whole tensor.
    pub group: u32,
}

/// Binary-coding quantization `W ≈ Σ_i α_i·b_i`, `b_i ∈ {±1}`:
/// `#bcq<bits = 1..4, group = G, pot = true|false[, apot = 1..3]>` (α per
/// row and group), or ShiftAddLLM's shared-scale layouts
/// `#bcq<bits = 1..4, pot = …[, apot = …], scales = acc|lat>` (see
/// [`BcqScales`] and `quant::bcq_shared`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BcqParams {
    /// Number of binary planes, 1..=4.
    pub bits: u8,
    /// Where the `α` sets live (and, per row, the group size).
    pub layout: BcqLayout,
    /// ShiftAddLLM: every α is a sum of at most `apot` powers of two.
    pub pot: bool,
    /// Powers of two per α when `pot` (ShiftAddLLM's `apot_nums`, default 3).
    pub apot: u8,
}

/// The layout of a `#bcq` weight's `α` sets (ShiftAddLLM's three layouts).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BcqLayout {
    /// One set per (output row, group of `group` input columns); `group` is a
    /// positive multiple of 8.
    Row {
        /// Elements per α group along a row.
        group: u32,
    },
    /// "Acc.": one set per input column, shared by every output row.
    Acc,
    /// "Lat.": one set per (block of 8 input columns, block of rows/8 output rows).
    Lat,
}

/// The kind of a [`BcqLayout`], without its group (for comparisons and names).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BcqScales {
    /// [`BcqLayout::Row`].
    Row,
    /// [`BcqLayout::Acc`].
    Acc,
    /// [`BcqLayout::Lat`].
    Lat,
}

impl BcqScales {
    /// The text spelling (`scales = row|acc|lat`).
    pub fn name(self) -> &'static str {
        match self {
            BcqScales::Row => "row",
            BcqScales::Acc => "acc",
            BcqScales::Lat => "lat",
        }
    }
}

impl BcqParams {
    /// The per-row layout with groups of `group` elements.
    pub fn row(bits: u8, group: u32, pot: bool, apot: u8) -> BcqParams {
        BcqParams { bits, layout: BcqLayout::Row { group }, pot, apot }
    }

    /// A shared-scale layout's parameters (`scales` is `Acc` or `Lat`; `Row`
    /// needs a group: use [`BcqParams::row`]).
    pub fn shared(bits: u8, pot: bool, apot: u8, scales: BcqScales) -> BcqParams {
        let layout = if scales == BcqScales::Acc { BcqLayout::Acc } else { BcqLayout::Lat };
        BcqParams { bits, layout, pot, apot }
    }

    /// The scale layout's kind.
    pub fn scales(&self) -> BcqScales {
        match self.layout {
            BcqLayout::Row { .. } => BcqScales::Row,
            BcqLayout::Acc => BcqScales::Acc,
            BcqLayout::Lat => BcqScales::Lat,
        }
    }

    /// The α group of the per-row layout, `None` for the shared layouts.
    pub fn group(&self) -> Option<u32> {
        match self.layout {
            BcqLayout::Row { group } => Some(group),
            _ => None,
        }
    }
}

/// Reads the `b`-bit code at index `i` of an LSB-first packed run.
#[inline]
pub fn get_code(packed: &[u8], i: usize, b: u32) -> u32 {
    let bit = i * b as usize;
    let (byte, sh) = (bit / 8, bit % 8);
    let lo = packed[byte] as u32;
    let hi = packed.get(byte + 1).copied().unwrap_or(0) as u32;
    ((lo | hi << 8) >> sh) & ((1 << b) - 1)
}

/// Writes the `b`-bit code `v` at index `i` of an LSB-first packed run
/// (the run starts zeroed; codes are ORed in).
#[inline]
pub fn put_code(packed: &mut [u8], i: usize, b: u32, v: u32) {
    let bit = i * b as usize;
    let (byte, sh) = (bit / 8, bit % 8);
    let w = (v & ((1 << b) - 1)) << sh;
    packed[byte] |= w as u8;
    if w > 0xff {
        packed[byte + 1] |= (w >> 8) as u8;
    }
}

/// Round to nearest, ties to even (the one rounding every codec here uses).
#[inline]
pub fn round(v: f32) -> f32 {
    v.round_ties_even()
}

/// Checks that `bytes` holds exactly `want` bytes for `n` elements.
pub(crate) fn check_len(enc: &str, n: usize, want: usize, got: usize) -> Result<(), String> {
    if want != got {
        return Err(format!("{enc}: {n} elements take {want} bytes, got {got}"));
    }
    Ok(())
}

/// Checks that `n` is a whole number of groups.
pub(crate) fn check_groups(enc: &str, n: usize, group: usize) -> Result<usize, String> {
    if group == 0 || !n.is_multiple_of(group) {
        return Err(format!("{enc}: {n} elements is not a multiple of the group size {group}"));
    }
    Ok(n / group)
}
