//! flexc's own low-bit encodings: their parameters, text parameters and the
//! shared helpers of their codecs ([`super::gq`], [`super::ternary`],
//! [`super::bcq`]).
//!
//! Every scheme stores blocks of one quantization group along the last axis
//! (`block_elems = group`), so rows stay independently addressable; the one
//! exception is per-tensor ternary (`#ternary<group = 0>`), whose single f32
//! scale trails the packed codes (as bitnet.cpp's I2_S does).
//!
//! Bit packing is LSB-first throughout: element `i` of a packed run of `b`-bit
//! codes occupies bits `[i·b, i·b + b)` counted from bit 0 of byte 0.

use crate::ops::AttrLit;

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
    /// Elements per α group along a row (a multiple of 8), or
    /// [`BCQ_GROUP_ACC`] / [`BCQ_GROUP_LAT`] for the shared-scale layouts
    /// (read it through [`BcqParams::scales`]). The layout lives in this
    /// field, not a field of its own, so that the struct keeps the four
    /// fields other crates spell out; neither marker is a multiple of 8, so
    /// code that takes `group` for a length rejects them.
    pub group: u32,
    /// ShiftAddLLM: every α is a sum of at most `apot` powers of two.
    pub pot: bool,
    /// Powers of two per α when `pot` (ShiftAddLLM's `apot_nums`, default 3).
    pub apot: u8,
}

/// `BcqParams::group` of the "acc" layout ([`BcqScales::Acc`]).
pub const BCQ_GROUP_ACC: u32 = u32::MAX;
/// `BcqParams::group` of the "lat" layout ([`BcqScales::Lat`]).
pub const BCQ_GROUP_LAT: u32 = u32::MAX - 1;

/// Where a `#bcq` weight's `α` sets live (ShiftAddLLM's three layouts).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BcqScales {
    /// One set per (output row, group of `group` input columns).
    Row,
    /// "Acc.": one set per input column, shared by every output row.
    Acc,
    /// "Lat.": one set per (block of 8 input columns, block of rows/8 output rows).
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
    /// The scale layout.
    pub fn scales(&self) -> BcqScales {
        match self.group {
            BCQ_GROUP_ACC => BcqScales::Acc,
            BCQ_GROUP_LAT => BcqScales::Lat,
            _ => BcqScales::Row,
        }
    }

    /// A shared-scale layout's parameters (`scales` is `Acc` or `Lat`; `Row` needs a group).
    pub fn shared(bits: u8, pot: bool, apot: u8, scales: BcqScales) -> BcqParams {
        let group = if scales == BcqScales::Acc { BCQ_GROUP_ACC } else { BCQ_GROUP_LAT };
        BcqParams { bits, group, pot, apot }
    }
}

/// Checked `key = value` parameters of one encoding spelling.
struct Params<'a> {
    name: &'a str,
    given: &'a [(String, AttrLit)],
}

impl Params<'_> {
    fn check_keys(&self, allowed: &[&str]) -> Result<(), String> {
        for (k, _) in self.given {
            if !allowed.contains(&k.as_str()) {
                return Err(format!("encoding #{} has no parameter '{k}' (valid: {})", self.name, allowed.join(", ")));
            }
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Option<&AttrLit> {
        self.given.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn int(&self, key: &str, default: Option<i64>, range: (i64, i64)) -> Result<i64, String> {
        let v = match (self.get(key), default) {
            (Some(AttrLit::Int(v)), _) => *v,
            (Some(other), _) => return Err(format!("#{}: '{key}' must be an integer, got {other}", self.name)),
            (None, Some(d)) => d,
            (None, None) => return Err(format!("#{} needs '{key}'", self.name)),
        };
        if v < range.0 || v > range.1 {
            return Err(format!("#{}: '{key}' must be in {}..={}, got {v}", self.name, range.0, range.1));
        }
        Ok(v)
    }

    fn boolean(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some(AttrLit::Bool(b)) => Ok(*b),
            Some(other) => Err(format!("#{}: '{key}' must be true or false, got {other}", self.name)),
        }
    }

    /// A group size: a positive multiple of 8 (whole bytes of 1-bit codes).
    fn group(&self, allow_zero: bool) -> Result<u32, String> {
        let g = self.int("group", None, (0, 1 << 20))?;
        if (g == 0 && !allow_zero) || g % 8 != 0 {
            let zero = if allow_zero { "0 or " } else { "" };
            return Err(format!("#{}: 'group' must be {zero}a positive multiple of 8, got {g}", self.name));
        }
        Ok(g as u32)
    }
}

/// The low-bit encodings by name, `None` when `name` is not one of them.
pub(crate) fn parse(name: &str, given: &[(String, AttrLit)]) -> Option<Result<crate::types::Encoding, String>> {
    use crate::types::Encoding;
    let p = Params { name, given };
    let r = match name {
        "gq" => (|| {
            p.check_keys(&["bits", "group", "zero"])?;
            Ok(Encoding::Gq(GqParams { bits: p.int("bits", None, (1, 4))? as u8, group: p.group(false)?, zero: p.boolean("zero", false)? }))
        })(),
        "ternary" => (|| {
            p.check_keys(&["group"])?;
            Ok(Encoding::Ternary(TernaryParams { group: p.group(true)? }))
        })(),
        "bcq" => (|| {
            p.check_keys(&["bits", "group", "pot", "apot", "scales"])?;
            let pot = p.boolean("pot", false)?;
            let apot = p.int("apot", Some(3), (1, 3))? as u8;
            if !pot && p.get("apot").is_some() {
                return Err("#bcq: 'apot' needs pot = true".to_string());
            }
            let bits = p.int("bits", None, (1, 4))? as u8;
            let scales = match p.get("scales") {
                None => BcqScales::Row,
                Some(AttrLit::Ident(s)) if s == "row" => BcqScales::Row,
                Some(AttrLit::Ident(s)) if s == "acc" => BcqScales::Acc,
                Some(AttrLit::Ident(s)) if s == "lat" => BcqScales::Lat,
                Some(other) => return Err(format!("#bcq: 'scales' must be row, acc or lat, got {other}")),
            };
            if scales == BcqScales::Row {
                return Ok(Encoding::Bcq(BcqParams { bits, group: p.group(false)?, pot, apot }));
            }
            if p.get("group").is_some() {
                return Err(format!("#bcq: scales = {} shares α across rows and takes no 'group'", scales.name()));
            }
            Ok(Encoding::Bcq(BcqParams::shared(bits, pot, apot, scales)))
        })(),
        _ => return None,
    };
    Some(r)
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
