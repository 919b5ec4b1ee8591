//! Weights packed for the CPU kernels ahead of time: what a `.flexc`
//! artifact stores beside the encoded weights so that loading it runs no
//! packer.
//!
//! The LUT kernel's stream ([`LutWeights`]) is a bit-plane transposition of
//! the encoded codes with the group scales interleaved: the dearest part of
//! a low-bit model's start-up (about 0.25 s of the 0.4 s first token of a
//! 3-bit SmolLM2 on 2 cores). [`pack_module`] builds the runtime's plan of a
//! function once, at compile time, and returns every LUT stream it packed,
//! keyed by weight name, activation group and K tile; [`Prepacked`] hands
//! such streams back to the planner ([`super::runtime::RuntimeOptions::prepacked`]),
//! which checks each against its weight and uses it in place. The layout
//! depends only on the encoding, the shape and the key, never on the host
//! CPU, so a stored stream is valid on any machine. Weights without a stored
//! stream (the shift-add and N:M packings, or an artifact written before
//! this existed) are packed at load as before.

use std::collections::HashMap;

use flexc_ir::weights::WeightBytes;
use flexc_ir::{Encoding, Module};
use serde::{Deserialize, Serialize};

use super::jit::JitSession;
use super::lut::{LutSpec, LutWeights};
use super::runtime::{RuntimeError, RuntimeOptions, plan};

/// What a LUT stream was packed for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LutKey {
    /// The weight's symbol (without `@`).
    pub weight: String,
    /// The activation group of the tables it is multiplied with.
    pub act_group: usize,
    /// Its K tile (columns).
    pub k_tile: usize,
}

/// One stored stream: its key, its kernel parameters and its bytes' range
/// in the blob [`pack_module`] returns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PackRecord {
    /// What it was packed for.
    #[serde(flatten)]
    pub key: LutKey,
    /// The kernel parameters of the stream.
    pub spec: LutSpec,
    /// First byte, relative to the blob.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

/// Packed LUT streams by key, for the planner.
#[derive(Default)]
pub struct Prepacked {
    lut: HashMap<LutKey, LutWeights>,
}

impl std::fmt::Debug for Prepacked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Prepacked({} LUT streams)", self.lut.len())
    }
}

impl Prepacked {
    /// The streams of `records`, whose bytes `bytes(offset, len)` returns
    /// (`None`: outside the blob). Fails on a range outside the blob, a spec
    /// the kernel rejects, a length the spec does not give, or a repeated key.
    pub fn from_records(
        records: &[PackRecord],
        bytes: impl Fn(u64, u64) -> Option<WeightBytes>,
    ) -> Result<Prepacked, String> {
        let mut lut = HashMap::with_capacity(records.len());
        for r in records {
            let at = || {
                format!(
                    "packed stream of @{} (act_group {}, k_tile {})",
                    r.key.weight, r.key.act_group, r.key.k_tile
                )
            };
            let b = bytes(r.offset, r.len).ok_or_else(|| {
                format!(
                    "{}: bytes {}..+{} are outside the packed section",
                    at(),
                    r.offset,
                    r.len
                )
            })?;
            let w = LutWeights::from_packed(r.spec, b).map_err(|e| format!("{}: {e}", at()))?;
            if r.spec.act_group != r.key.act_group || r.spec.k_tile != r.key.k_tile {
                return Err(format!(
                    "{}: its spec says act_group {}, k_tile {}",
                    at(),
                    r.spec.act_group,
                    r.spec.k_tile
                ));
            }
            if lut.insert(r.key.clone(), w).is_some() {
                return Err(format!("{}: stored twice", at()));
            }
        }
        Ok(Prepacked { lut })
    }

    /// Number of stored streams.
    pub fn len(&self) -> usize {
        self.lut.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.lut.is_empty()
    }

    /// The stream stored for `key`, checked against the weight it is for
    /// (`enc`, `[rows, cols]`): `Ok(None)` when none is stored, an error when
    /// the stored one was packed for another weight shape or encoding.
    pub(crate) fn lut_for(
        &self,
        key: &LutKey,
        enc: &Encoding,
        rows: usize,
        cols: usize,
    ) -> Result<Option<LutWeights>, String> {
        let Some(w) = self.lut.get(key) else {
            return Ok(None);
        };
        let s = w.spec();
        let (bits, group) = match enc {
            Encoding::Gq(p) => (Some(p.bits), Some(p.group as usize)),
            Encoding::Bcq(p) => (Some(p.bits), None),
            // Ternary's kernel group is chosen from the shape by the packer.
            _ => (Some(2), None),
        };
        let fits = s.rows == rows
            && s.cols == cols
            && bits.is_none_or(|b| b == s.bits)
            && group.is_none_or(|g| g == s.group)
            && s.bcq == matches!(enc, Encoding::Bcq(_));
        if !fits {
            return Err(format!(
                "the packed stream of @{} is {}×{} {}-bit (group {}), the weight is {enc} {rows}×{cols}",
                key.weight, s.rows, s.cols, s.bits, s.group
            ));
        }
        Ok(Some(w.clone()))
    }
}

/// Packs, as the runtime's planner does, every LUT stream `func` of `module`
/// reads. Returns their records and one blob holding them, each at a
/// multiple of `align` bytes. Costs one plan build (kernels are compiled
/// too): run it when an artifact is written, not at load.
pub fn pack_module(
    module: &Module,
    func: &str,
    align: u64,
) -> Result<(Vec<PackRecord>, Vec<u8>), RuntimeError> {
    let session = JitSession::host()?;
    let p = plan::build(module, func, &session, &RuntimeOptions::default())?;
    let mut records = Vec::new();
    let mut blob = Vec::new();
    for (key, w) in p.lut_keys.iter().zip(&p.lut_weights) {
        let Some(key) = key else { continue };
        let offset = (blob.len() as u64).div_ceil(align.max(1)) * align.max(1);
        blob.resize(offset as usize, 0);
        blob.extend_from_slice(w.bytes());
        records.push(PackRecord {
            key: key.clone(),
            spec: w.spec(),
            offset,
            len: w.bytes().len() as u64,
        });
    }
    Ok((records, blob))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flexc_ir::quant::GqParams;

    /// A packed 3-bit `#gq` weight of 32×128 (deterministic bytes) and its record.
    fn one() -> (Encoding, LutWeights, PackRecord) {
        let enc = Encoding::Gq(GqParams {
            bits: 3,
            group: 64,
            zero: true,
        });
        let n = enc.storage(&[32, 128]).expect("storage") as usize;
        // f16 scales of 1.0 (0x3c00) keep every block valid; codes vary.
        let mut bytes: Vec<u8> = (0..n).map(|i| (i * 131 % 251) as u8).collect();
        let block = n / (32 * 128 / 64);
        for b in bytes.chunks_exact_mut(block) {
            b[..2].copy_from_slice(&0x3c00u16.to_le_bytes());
        }
        let w = LutWeights::pack_tiled(enc, &bytes, 32, 128, 32, 64).expect("packs");
        let rec = PackRecord {
            key: LutKey {
                weight: "w".into(),
                act_group: 32,
                k_tile: 64,
            },
            spec: w.spec(),
            offset: 0,
            len: w.bytes().len() as u64,
        };
        (enc, w, rec)
    }

    fn store(recs: &[PackRecord], blob: &[u8]) -> Result<Prepacked, String> {
        Prepacked::from_records(recs, |o, l| {
            let end = o.checked_add(l)?;
            (end <= blob.len() as u64)
                .then(|| WeightBytes::Owned(blob[o as usize..end as usize].into()))
        })
    }

    #[test]
    fn stored_streams_come_back_byte_for_byte_and_are_checked_against_their_weight() {
        let (enc, w, rec) = one();
        let pre = store(std::slice::from_ref(&rec), w.bytes()).expect("a valid record");
        assert_eq!(pre.len(), 1);
        let got = pre
            .lut_for(&rec.key, &enc, 32, 128)
            .expect("fits")
            .expect("stored");
        assert_eq!(got.bytes(), w.bytes());
        assert_eq!(got.spec(), w.spec());
        let other = LutKey {
            k_tile: 128,
            ..rec.key.clone()
        };
        assert!(
            pre.lut_for(&other, &enc, 32, 128)
                .expect("no error")
                .is_none(),
            "another K tile is not stored"
        );
        assert!(
            pre.lut_for(&rec.key, &enc, 16, 128).is_err(),
            "another shape is refused"
        );
        let four = Encoding::Gq(GqParams {
            bits: 4,
            group: 64,
            zero: true,
        });
        assert!(
            pre.lut_for(&rec.key, &four, 32, 128).is_err(),
            "another encoding is refused"
        );
    }

    #[test]
    fn bad_records_are_errors_naming_the_weight() {
        let (_, w, rec) = one();
        let blob = w.bytes();
        let cases = [
            (
                "outside",
                PackRecord {
                    offset: 64,
                    ..rec.clone()
                },
            ),
            (
                "short",
                PackRecord {
                    len: rec.len - 1,
                    ..rec.clone()
                },
            ),
            (
                "offset overflow",
                PackRecord {
                    offset: u64::MAX - 1,
                    ..rec.clone()
                },
            ),
            (
                "bad spec",
                PackRecord {
                    spec: LutSpec {
                        rows: 0,
                        ..rec.spec
                    },
                    ..rec.clone()
                },
            ),
            (
                "key and spec disagree",
                PackRecord {
                    key: LutKey {
                        act_group: 64,
                        ..rec.key.clone()
                    },
                    spec: LutSpec {
                        act_group: 32,
                        ..rec.spec
                    },
                    ..rec.clone()
                },
            ),
        ];
        for (what, r) in cases {
            let e = store(&[r], blob).expect_err(what);
            assert!(e.contains("@w"), "{what}: {e}");
        }
        let e = store(&[rec.clone(), rec], blob).expect_err("twice");
        assert!(e.contains("twice"), "{e}");
    }
}
