//! The block structs of ggml's `ggml-common.h`, field for field, with
//! compile-time size checks. flexc's codecs read blocks from unaligned byte
//! slices (memory-mapped GGUF data), so they never cast bytes to these structs;
//! instead the byte offsets the codecs use are derived from the structs with
//! `offset_of!` below, which ties the codecs to this one statement of the
//! layout. fp16 fields are `u16` bit patterns (ggml's `ggml_half`).

// Structs and fields carry ggml-common.h's names (`d`, `dmin`, `qs`, `qh`,
// `scales`, `bsums`), documented there and in the module docs above.
#![allow(missing_docs)]

use core::mem::{offset_of, size_of};

use super::QK_K;

/// Elements per block of the 32-wide formats.
pub const QK32: usize = 32;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4_0 {
    pub d: u16,
    pub qs: [u8; QK32 / 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4_1 {
    pub d: u16,
    pub m: u16,
    pub qs: [u8; QK32 / 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ5_0 {
    pub d: u16,
    pub qh: [u8; 4],
    pub qs: [u8; QK32 / 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ5_1 {
    pub d: u16,
    pub m: u16,
    pub qh: [u8; 4],
    pub qs: [u8; QK32 / 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8_0 {
    pub d: u16,
    pub qs: [i8; QK32],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8_1 {
    pub d: u16,
    /// fp16 of `d * sum(qs)`.
    pub s: u16,
    pub qs: [i8; QK32],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ2K {
    /// Low nibble: 4-bit scale code; high nibble: 4-bit min code.
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: u16,
    pub dmin: u16,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    /// Sixteen 6-bit scales packed into 12 bytes.
    pub scales: [u8; 12],
    pub d: u16,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4K {
    pub d: u16,
    pub dmin: u16,
    /// Eight 6-bit scales and eight 6-bit mins packed into 12 bytes.
    pub scales: [u8; 12],
    pub qs: [u8; QK_K / 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ5K {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; 12],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: u16,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8K {
    /// A plain f32 scale (not fp16).
    pub d: f32,
    pub qs: [i8; QK_K],
    /// Sums of `qs` in groups of 16.
    pub bsums: [i16; QK_K / 16],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockTQ1_0 {
    /// 5 trits per byte (3^5 = 243 < 256).
    pub qs: [u8; (QK_K - 4 * QK_K / 64) / 5],
    /// 4 trits per byte.
    pub qh: [u8; QK_K / 64],
    pub d: u16,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockTQ2_0 {
    pub qs: [u8; QK_K / 4],
    pub d: u16,
}

const _: () = assert!(size_of::<BlockQ4_0>() == 18);
const _: () = assert!(size_of::<BlockQ4_1>() == 20);
const _: () = assert!(size_of::<BlockQ5_0>() == 22);
const _: () = assert!(size_of::<BlockQ5_1>() == 24);
const _: () = assert!(size_of::<BlockQ8_0>() == 34);
const _: () = assert!(size_of::<BlockQ8_1>() == 36);
const _: () = assert!(size_of::<BlockQ2K>() == 84);
const _: () = assert!(size_of::<BlockQ3K>() == 110);
const _: () = assert!(size_of::<BlockQ4K>() == 144);
const _: () = assert!(size_of::<BlockQ5K>() == 176);
const _: () = assert!(size_of::<BlockQ6K>() == 210);
const _: () = assert!(size_of::<BlockQ8K>() == 292);
const _: () = assert!(size_of::<BlockTQ1_0>() == 54);
const _: () = assert!(size_of::<BlockTQ2_0>() == 66);

/// Byte offsets of the fields, as the codecs use them.
pub(crate) mod off {
    use super::*;

    pub const Q4_0_QS: usize = offset_of!(BlockQ4_0, qs);
    pub const Q4_1_M: usize = offset_of!(BlockQ4_1, m);
    pub const Q4_1_QS: usize = offset_of!(BlockQ4_1, qs);
    pub const Q5_0_QH: usize = offset_of!(BlockQ5_0, qh);
    pub const Q5_0_QS: usize = offset_of!(BlockQ5_0, qs);
    pub const Q5_1_M: usize = offset_of!(BlockQ5_1, m);
    pub const Q5_1_QH: usize = offset_of!(BlockQ5_1, qh);
    pub const Q5_1_QS: usize = offset_of!(BlockQ5_1, qs);
    pub const Q8_0_QS: usize = offset_of!(BlockQ8_0, qs);
    pub const Q2K_SCALES: usize = offset_of!(BlockQ2K, scales);
    pub const Q2K_QS: usize = offset_of!(BlockQ2K, qs);
    pub const Q2K_D: usize = offset_of!(BlockQ2K, d);
    pub const Q2K_DMIN: usize = offset_of!(BlockQ2K, dmin);
    pub const Q3K_HMASK: usize = offset_of!(BlockQ3K, hmask);
    pub const Q3K_QS: usize = offset_of!(BlockQ3K, qs);
    pub const Q3K_SCALES: usize = offset_of!(BlockQ3K, scales);
    pub const Q3K_D: usize = offset_of!(BlockQ3K, d);
    pub const Q4K_D: usize = offset_of!(BlockQ4K, d);
    pub const Q4K_DMIN: usize = offset_of!(BlockQ4K, dmin);
    pub const Q4K_SCALES: usize = offset_of!(BlockQ4K, scales);
    pub const Q4K_QS: usize = offset_of!(BlockQ4K, qs);
    pub const Q5K_D: usize = offset_of!(BlockQ5K, d);
    pub const Q5K_DMIN: usize = offset_of!(BlockQ5K, dmin);
    pub const Q5K_SCALES: usize = offset_of!(BlockQ5K, scales);
    pub const Q5K_QH: usize = offset_of!(BlockQ5K, qh);
    pub const Q5K_QS: usize = offset_of!(BlockQ5K, qs);
    pub const Q6K_QL: usize = offset_of!(BlockQ6K, ql);
    pub const Q6K_QH: usize = offset_of!(BlockQ6K, qh);
    pub const Q6K_SCALES: usize = offset_of!(BlockQ6K, scales);
    pub const Q6K_D: usize = offset_of!(BlockQ6K, d);
    pub const Q8K_QS: usize = offset_of!(BlockQ8K, qs);
    pub const Q8K_BSUMS: usize = offset_of!(BlockQ8K, bsums);
    pub const TQ1_QS: usize = offset_of!(BlockTQ1_0, qs);
    pub const TQ1_QS_LEN: usize = (QK_K - 4 * QK_K / 64) / 5;
    pub const TQ1_QH: usize = offset_of!(BlockTQ1_0, qh);
    pub const TQ1_QH_LEN: usize = QK_K / 64;
    pub const TQ1_D: usize = offset_of!(BlockTQ1_0, d);
    pub const TQ2_QS: usize = offset_of!(BlockTQ2_0, qs);
    pub const TQ2_D: usize = offset_of!(BlockTQ2_0, d);

    // The 32-wide formats start with `d` at 0, as does Q8_K.
    const _: () = assert!(offset_of!(BlockQ4_0, d) == 0 && offset_of!(BlockQ8K, d) == 0);
    const _: () = assert!(offset_of!(BlockQ5_0, d) == 0 && offset_of!(BlockQ8_0, d) == 0);
}
