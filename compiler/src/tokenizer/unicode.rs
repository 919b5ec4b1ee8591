//! Unicode helpers for the tokenizers: general categories (from the generated
//! `unicode_tables.rs`), llama.cpp-style category flags, whitespace, NFD decomposition
//! and the GPT-2 byte↔unicode mapping.
//!
//! Sources of truth: categories and decompositions come from the committed table
//! generated from Python's `unicodedata`; whitespace is Rust's `char::is_whitespace`
//! (the Unicode `White_Space` property), which is exactly the set llama.cpp uses for
//! `\s` (`unicode_set_whitespace`); lowercasing is Rust's `char::to_lowercase`, which is
//! what HF `tokenizers` uses for BERT.

use super::unicode_tables::{CATEGORY_RANGES, NFD_DATA, NFD_KEYS, NFD_OFFSETS};

/// Unicode general category, in the order used by the generated table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum GeneralCategory {
    Cn,
    Lu,
    Ll,
    Lt,
    Lm,
    Lo,
    Mn,
    Mc,
    Me,
    Nd,
    Nl,
    No,
    Pc,
    Pd,
    Ps,
    Pe,
    Pi,
    Pf,
    Po,
    Sm,
    Sc,
    Sk,
    So,
    Zs,
    Zl,
    Zp,
    Cc,
    Cf,
    Cs,
    Co,
}

const ALL_CATEGORIES: [GeneralCategory; 30] = {
    use GeneralCategory::*;
    [
        Cn, Lu, Ll, Lt, Lm, Lo, Mn, Mc, Me, Nd, Nl, No, Pc, Pd, Ps, Pe, Pi, Pf, Po, Sm, Sc, Sk, So,
        Zs, Zl, Zp, Cc, Cf, Cs, Co,
    ]
};

/// The general category of a code point (unassigned and out-of-range ones are `Cn`).
pub fn category(cp: u32) -> GeneralCategory {
    if cp >= 0x11_0000 {
        return GeneralCategory::Cn;
    }
    // Last range whose start is <= cp; the table starts at 0 so idx >= 1.
    let idx = CATEGORY_RANGES.partition_point(|&(start, _)| start <= cp);
    let cat = CATEGORY_RANGES[idx.saturating_sub(1)].1 as usize;
    ALL_CATEGORIES
        .get(cat)
        .copied()
        .unwrap_or(GeneralCategory::Cn)
}

/// llama.cpp's `unicode_cpt_flags` (category part plus whitespace), as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u16);

impl Flags {
    pub const UNDEFINED: u16 = 0x0001;
    pub const NUMBER: u16 = 0x0002;
    pub const LETTER: u16 = 0x0004;
    pub const SEPARATOR: u16 = 0x0008;
    pub const ACCENT_MARK: u16 = 0x0010;
    pub const PUNCTUATION: u16 = 0x0020;
    pub const SYMBOL: u16 = 0x0040;
    pub const CONTROL: u16 = 0x0080;
    pub const WHITESPACE: u16 = 0x0100;

    /// Flags of "no code point" (llama.cpp returns all-zero flags outside a fragment).
    pub const NONE: Flags = Flags(0);

    #[inline]
    pub fn is_letter(self) -> bool {
        self.0 & Self::LETTER != 0
    }
    #[inline]
    pub fn is_number(self) -> bool {
        self.0 & Self::NUMBER != 0
    }
    #[inline]
    pub fn is_whitespace(self) -> bool {
        self.0 & Self::WHITESPACE != 0
    }
    #[inline]
    pub fn is_punctuation(self) -> bool {
        self.0 & Self::PUNCTUATION != 0
    }
    /// Any flag at all (llama.cpp's `as_uint() != 0`): false only outside the fragment.
    #[inline]
    pub fn any(self) -> bool {
        self.0 != 0
    }
}

fn category_flags(cat: GeneralCategory) -> u16 {
    use GeneralCategory::*;
    match cat {
        Cn => Flags::UNDEFINED,
        Lu | Ll | Lt | Lm | Lo => Flags::LETTER,
        Mn | Mc | Me => Flags::ACCENT_MARK,
        Nd | Nl | No => Flags::NUMBER,
        Pc | Pd | Ps | Pe | Pi | Pf | Po => Flags::PUNCTUATION,
        Sm | Sc | Sk | So => Flags::SYMBOL,
        Zs | Zl | Zp => Flags::SEPARATOR,
        Cc | Cf | Cs | Co => Flags::CONTROL,
    }
}

/// Flags for the 128 ASCII code points, computed once at compile time would need a
/// const table lookup; a small match is just as fast.
#[inline]
fn ascii_flags(b: u8) -> u16 {
    match b {
        b'\t' | b'\n' | 0x0B | 0x0C | b'\r' => Flags::CONTROL | Flags::WHITESPACE,
        b' ' => Flags::SEPARATOR | Flags::WHITESPACE,
        b'0'..=b'9' => Flags::NUMBER,
        b'a'..=b'z' | b'A'..=b'Z' => Flags::LETTER,
        b'$' | b'+' | b'<' | b'=' | b'>' | b'^' | b'`' | b'|' | b'~' => Flags::SYMBOL,
        0x21..=0x7E => Flags::PUNCTUATION,
        _ => Flags::CONTROL,
    }
}

/// llama.cpp-compatible flags of a code point.
#[inline]
pub fn flags(c: char) -> Flags {
    let cp = c as u32;
    if cp < 0x80 {
        return Flags(ascii_flags(cp as u8));
    }
    let mut f = category_flags(category(cp));
    if c.is_whitespace() {
        f |= Flags::WHITESPACE;
    }
    Flags(f)
}

/// Unicode punctuation (any `P*` category).
pub fn is_punctuation(c: char) -> bool {
    flags(c).is_punctuation()
}

/// Appends the canonical decomposition (NFD, without canonical reordering) of `c`.
pub fn push_nfd(c: char, out: &mut String) {
    let cp = c as u32;
    // Hangul syllables: arithmetic decomposition (Unicode §3.12).
    const S_BASE: u32 = 0xAC00;
    const L_BASE: u32 = 0x1100;
    const V_BASE: u32 = 0x1161;
    const T_BASE: u32 = 0x11A7;
    const T_COUNT: u32 = 28;
    const N_COUNT: u32 = 21 * 28;
    if (S_BASE..S_BASE + 11172).contains(&cp) {
        let s = cp - S_BASE;
        let l = L_BASE + s / N_COUNT;
        let v = V_BASE + (s % N_COUNT) / T_COUNT;
        let t = T_BASE + s % T_COUNT;
        for x in [l, v] {
            out.extend(char::from_u32(x));
        }
        if t != T_BASE {
            out.extend(char::from_u32(t));
        }
        return;
    }
    if cp < 0xC0 {
        out.push(c);
        return;
    }
    match NFD_KEYS.binary_search(&cp) {
        Ok(i) => {
            let (a, b) = (NFD_OFFSETS[i] as usize, NFD_OFFSETS[i + 1] as usize);
            for &d in &NFD_DATA[a..b] {
                out.extend(char::from_u32(d));
            }
        }
        Err(_) => out.push(c),
    }
}

/// GPT-2's byte → printable code point mapping (`bytes_to_unicode`).
pub fn byte_to_unicode_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable =
            (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        let cp = if printable {
            b
        } else {
            n += 1;
            255 + n
        };
        table[b as usize] = char::from_u32(cp).unwrap_or('\u{FFFD}');
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_of_known_characters() {
        assert_eq!(category('A' as u32), GeneralCategory::Lu);
        assert_eq!(category('é' as u32), GeneralCategory::Ll);
        assert_eq!(category('中' as u32), GeneralCategory::Lo);
        assert_eq!(category('٣' as u32), GeneralCategory::Nd);
        assert_eq!(category('\u{301}' as u32), GeneralCategory::Mn);
        assert_eq!(category('—' as u32), GeneralCategory::Pd);
        assert_eq!(category('😀' as u32), GeneralCategory::So);
        assert_eq!(category(0x10FFFF), GeneralCategory::Cn);
        assert_eq!(category(0x0378), GeneralCategory::Cn);
    }

    #[test]
    fn ascii_fast_path_agrees_with_the_table() {
        for b in 0u8..0x80 {
            let c = b as char;
            let mut slow = category_flags(category(b as u32));
            if c.is_whitespace() {
                slow |= Flags::WHITESPACE;
            }
            assert_eq!(ascii_flags(b), slow, "byte {b:#x}");
        }
    }

    #[test]
    fn nfd_decomposes_accents_and_hangul() {
        let mut s = String::new();
        for c in "é한ǖ".chars() {
            push_nfd(c, &mut s);
        }
        assert_eq!(s, "e\u{301}\u{1112}\u{1161}\u{11AB}u\u{308}\u{304}");
    }

    #[test]
    fn gpt2_byte_mapping() {
        let t = byte_to_unicode_table();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[0xAD], 'Ń');
        let mut seen: Vec<char> = t.to_vec();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 256);
    }
}
