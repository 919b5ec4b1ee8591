//! The ggml block formats as registry entries ([`Scheme`] for [`GgmlType`]):
//! `#q4_0`, `#q4_k`, … take no parameters; a row along the last axis is a run
//! of blocks laid out as llama.cpp stores them. Only the types flexc can
//! decode ([`crate::quant::is_ggml_encoding`]) are encodings. The 32-wide
//! legacy formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) are affine group grids
//! ([`AffineScheme`]) the data-aware quantizers can fit.

use super::{put_f16, GgmlType, ScaleField};
use crate::quant::encoding::{random_bytes, AffineFit, AffineGrid, AffineScheme, GridOffset, ParamValue, ParseScheme, Primitive, Scheme};

impl ParseScheme for GgmlType {
    fn parse(name: &str, params: &[(String, ParamValue)]) -> Option<Result<GgmlType, String>> {
        let t = GgmlType::from_name(name).filter(|&t| crate::quant::is_ggml_encoding(t))?;
        Some(match params.first() {
            None => Ok(t),
            Some((k, _)) => Err(format!("encoding #{name} takes no parameters, got '{k}'")),
        })
    }
}

impl Scheme for GgmlType {
    fn name(&self) -> &'static str {
        GgmlType::name(*self)
    }

    fn params(&self) -> Vec<(&'static str, ParamValue)> {
        Vec::new()
    }

    fn block_elems(&self) -> u64 {
        self.block_size() as u64
    }

    fn block_bytes(&self) -> u64 {
        self.type_size() as u64
    }

    fn decode(&self, _shape: &[usize], bytes: &[u8], out: &mut [f32]) -> Result<(), String> {
        super::dequantize(*self, bytes, out).map_err(|e| e.to_string())
    }

    fn encode(&self, _shape: &[usize], values: &[f32]) -> Result<Vec<u8>, String> {
        super::quantize_to_vec(*self, values).map_err(|e| e.to_string())
    }

    fn primitives(&self) -> &'static [Primitive] {
        &[Primitive::Dense]
    }

    fn cost_key(&self) -> String {
        GgmlType::name(*self).to_string()
    }

    fn affine(&self) -> Option<&dyn AffineScheme> {
        matches!(self, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0).then_some(self as &dyn AffineScheme)
    }

    /// Random blocks with every float scale field ([`GgmlType::scale_fields`])
    /// 0.01 (the K-quants have no encoder to fall back on).
    fn random_storage(&self, shape: &[u64], fill: &mut dyn FnMut(&mut [u8])) -> Result<Vec<u8>, String> {
        let mut b = random_bytes(self, shape, fill)?;
        for blk in b.chunks_exact_mut(self.type_size()) {
            for &f in self.scale_fields() {
                match f {
                    ScaleField::F16(at) => {
                        put_f16(blk, at, 0.01);
                    }
                    ScaleField::F32(at) => blk[at..at + 4].copy_from_slice(&0.01f32.to_le_bytes()),
                }
            }
        }
        Ok(b)
    }
}

impl AffineScheme for GgmlType {
    fn grid(&self) -> AffineGrid {
        let (qmax, offset) = match self {
            GgmlType::Q4_0 => (15, GridOffset::Fixed(8.0)),
            GgmlType::Q4_1 => (15, GridOffset::FloatMin),
            GgmlType::Q5_0 => (31, GridOffset::Fixed(16.0)),
            GgmlType::Q5_1 => (31, GridOffset::FloatMin),
            _ => (254, GridOffset::Fixed(127.0)),
        };
        AffineGrid { group: 32, qmax, offset }
    }

    /// `block_q4_0`/`q4_1`/`q5_0`/`q5_1`/`q8_0` of `ggml-common.h`.
    fn pack(&self, fit: &AffineFit, codes: &[u32], out: &mut [u8]) {
        out.fill(0);
        put_f16(out, 0, fit.d);
        let nibbles = |qs: &mut [u8]| {
            for j in 0..16 {
                qs[j] = (codes[j] & 0x0f) as u8 | (((codes[j + 16] & 0x0f) as u8) << 4);
            }
        };
        let high_bits = |qh: &mut [u8]| {
            let h = codes.iter().enumerate().fold(0u32, |h, (j, &q)| h | ((q >> 4) & 1) << j);
            qh.copy_from_slice(&h.to_le_bytes());
        };
        match self {
            GgmlType::Q4_0 => nibbles(&mut out[2..18]),
            GgmlType::Q4_1 => {
                put_f16(out, 2, fit.m);
                nibbles(&mut out[4..20]);
            }
            GgmlType::Q5_0 => {
                high_bits(&mut out[2..6]);
                nibbles(&mut out[6..22]);
            }
            GgmlType::Q5_1 => {
                put_f16(out, 2, fit.m);
                high_bits(&mut out[4..8]);
                nibbles(&mut out[8..24]);
            }
            _ => {
                for (o, &q) in out[2..34].iter_mut().zip(codes) {
                    *o = (q as i32 - 127) as i8 as u8;
                }
            }
        }
    }
}
