//! Golden tests of the ggml codecs against vectors produced outside flexc
//! (see `fixtures/ggml/make_golden.py`: gguf-py's `gguf.quants`, and ggml's
//! own C reference for Q8_K and the Q2_K quantizer). Every dequantized value
//! must match bit for bit (f32 bit patterns compared) and every quantizer
//! must reproduce the reference bytes exactly. The real-tensor test reads
//! the first rows of tensors of every type in the two real models (when they
//! are cached) straight from the file offsets recorded in the fixture.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use flexc_ir::quant::ggml::{self, GgmlType};

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ggml")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

const DEQUANT_TYPES: [GgmlType; 16] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::Q8_K,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
];

const QUANT_TYPES: [GgmlType; 12] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8_K,
    GgmlType::Q2_K,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
];

/// Index and both bit patterns of the first mismatch, if any.
fn first_bit_mismatch(got: &[f32], want: &[f32]) -> Option<(usize, u32, u32)> {
    got.iter().zip(want).enumerate().find_map(|(i, (g, w))| {
        (g.to_bits() != w.to_bits()).then_some((i, g.to_bits(), w.to_bits()))
    })
}

#[test]
fn dequantize_matches_golden_bit_exactly() {
    for ty in DEQUANT_TYPES {
        assert!(ggml::can_dequantize(ty));
        let packed = fixture(&format!("dq_{}.in", ty.name()));
        let want = f32s(&fixture(&format!("dq_{}.out", ty.name())));
        assert!(want.len() >= ty.block_size(), "{ty}: fixture too small");
        let got = ggml::dequantize_to_vec(ty, &packed, want.len())
            .unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert_eq!(got.len(), want.len());
        if let Some((i, g, w)) = first_bit_mismatch(&got, &want) {
            panic!(
                "{ty}: element {i}: got {:e} ({g:#010x}), want {:e} ({w:#010x})",
                f32::from_bits(g),
                f32::from_bits(w)
            );
        }
        // The fixtures are not degenerate: a good share of values are non-zero
        // (ternary codes and the zero-scale edge block make many exact zeros).
        assert!(
            want.iter().filter(|v| **v != 0.0).count() > want.len() / 3,
            "{ty}"
        );
    }
}

#[test]
fn quantize_matches_golden_bytes_exactly() {
    for ty in QUANT_TYPES {
        assert!(ggml::can_quantize(ty));
        let input = f32s(&fixture(&format!("q_{}.in", ty.name())));
        let want = fixture(&format!("q_{}.out", ty.name()));
        let got = ggml::quantize_to_vec(ty, &input).unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert_eq!(got.len(), want.len(), "{ty}");
        if let Some(i) = got.iter().zip(&want).position(|(g, w)| g != w) {
            let block = i / ty.type_size();
            panic!(
                "{ty}: byte {i} (block {block}, offset {}): got {:#04x}, want {:#04x}",
                i % ty.type_size(),
                got[i],
                want[i]
            );
        }
    }
}

#[test]
fn quantize_then_dequantize_is_close() {
    // Round trips stay within each format's step size: a sanity check on
    // top of the exact byte comparisons.
    let x: Vec<f32> = (0..1024)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect();
    for (ty, tol) in [
        (GgmlType::Q8_0, 0.02),
        (GgmlType::Q4_0, 0.3),
        (GgmlType::Q4_1, 0.15),
        (GgmlType::Q5_0, 0.15),
        (GgmlType::Q5_1, 0.08),
        (GgmlType::Q8_K, 0.02),
        (GgmlType::Q2_K, 0.7),
        (GgmlType::BF16, 0.01),
        (GgmlType::F16, 0.001),
    ] {
        let q = ggml::quantize_to_vec(ty, &x).expect("quantize");
        let y = ggml::dequantize_to_vec(ty, &q, x.len()).expect("dequantize");
        let err = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err <= tol, "{ty}: max error {err}");
    }
}

#[test]
fn q8_k_bsums_are_the_block_sums() {
    let input = f32s(&fixture("q_q8_k.in"));
    let q = ggml::quantize_to_vec(GgmlType::Q8_K, &input).expect("quantize");
    for block in q.chunks_exact(GgmlType::Q8_K.type_size()) {
        let qs = &block[4..260];
        for g in 0..16 {
            let sum: i32 = qs[16 * g..16 * g + 16]
                .iter()
                .map(|&b| i32::from(b as i8))
                .sum();
            let at = 260 + 2 * g;
            assert_eq!(
                i32::from(i16::from_le_bytes([block[at], block[at + 1]])),
                sum
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Real models.

/// The skip gate shared by every cache-gated test (`flexc_testsuite::gate`;
/// included by path: the suite crate depends on this one).
#[path = "../../testsuite/src/gate.rs"]
#[allow(dead_code)]
mod gate;

fn fnv1a64(values: &[f32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in values {
        for b in v.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[test]
fn real_model_tensors_match_gguf_py() {
    let entries: serde_json::Value =
        serde_json::from_slice(&fixture("real_tensors.json")).expect("real_tensors.json parses");
    let entries = entries.as_array().expect("array");
    assert!(!entries.is_empty());
    let Some(cache) = gate::cache_root() else {
        gate::skip("no cache folder (FLEXC_CACHE_DIR, XDG_CACHE_HOME and HOME unset)");
        return;
    };
    let mut checked = std::collections::BTreeSet::new();
    for e in entries {
        let s = |k: &str| {
            e[k].as_str()
                .unwrap_or_else(|| panic!("field {k}"))
                .to_string()
        };
        let u = |k: &str| e[k].as_u64().unwrap_or_else(|| panic!("field {k}"));
        let path = cache.join(s("file"));
        if !path.is_file() {
            gate::skip(&format!("{} is not cached (run `flexc pull`); tensor {} not checked", path.display(), s("tensor")));
            continue;
        }
        let ty = GgmlType::from_name(&s("type")).expect("known type");
        let (rows, row_len) = (u("rows"), u("row_len"));
        let n = (rows * row_len) as usize;
        let n_bytes = ty.row_bytes(row_len).expect("row bytes") * rows;
        let mut f = std::fs::File::open(&path).expect("open model");
        f.seek(SeekFrom::Start(u("offset"))).expect("seek");
        let mut packed = vec![0u8; n_bytes as usize];
        f.read_exact(&mut packed).expect("read tensor rows");
        let got = ggml::dequantize_to_vec(ty, &packed, n).expect("dequantize");
        let name = format!("{}:{} ({ty})", s("model"), s("tensor"));
        for pair in e["samples"].as_array().expect("samples") {
            let i = pair[0].as_u64().expect("index") as usize;
            let bits = pair[1].as_u64().expect("bits") as u32;
            assert_eq!(got[i].to_bits(), bits, "{name}: element {i}");
        }
        assert_eq!(
            format!("{:016x}", fnv1a64(&got)),
            s("fnv1a64"),
            "{name}: checksum of {n} values"
        );
        checked.insert((s("model"), ty));
    }
    println!("real tensors checked for (model, type): {checked:?}");
}
