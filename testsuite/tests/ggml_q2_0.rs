//! llama.cpp's `Q2_0` and `Q1_0` against llama.cpp itself: 4 rows of
//! SmolLM2's `blk.0.ffn_down` as shipped (Q4_1) and as `llama-quantize`
//! requantized them (fixture written by `testsuite/tools/gen_q2_0_fixture.sh`).
//! llama-quantize decodes Q4_1 and runs the reference quantizers, so flexc's
//! Q4_1 decoder followed by its Q2_0/Q1_0 encoders must give the same bytes;
//! decoding them checks the GGUF type ids and the row geometry.

use flexc_ir::quant::{Encoding, GgmlType};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

#[test]
fn q2_0_and_q1_0_match_llama_quantize() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ggml/smollm2-blk0-ffn_down-q2_0-q1_0.json");
    let fx: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let part = |k: &str| {
        let p = &fx[k];
        let ty = GgmlType::from_u32(p["ggml_type"].as_u64().expect("type") as u32).expect("known ggml type");
        (ty, p["cols"].as_u64().expect("cols") as usize, hex(p["hex"].as_str().expect("hex")))
    };
    let (src_ty, cols, src) = part("q4_1");
    assert_eq!(src_ty, GgmlType::Q4_1);
    let rows = 4;
    let mut w = vec![0f32; rows * cols];
    Encoding::Ggml(src_ty).decode(&[rows, cols], &src, &mut w).expect("q4_1 decodes");
    for (key, ty) in [("q2_0", GgmlType::Q2_0), ("q1_0", GgmlType::Q1_0)] {
        let (file_ty, file_cols, bytes) = part(key);
        assert_eq!((file_ty, file_cols), (ty, cols), "{key}: the GGUF type id names {ty}");
        let enc = Encoding::Ggml(ty);
        assert_eq!(enc.storage(&[rows as u64, cols as u64]).unwrap(), bytes.len() as u64, "{key}: storage");
        let ours = enc.encode(&[rows, cols], &w).expect("encodes");
        assert!(ours == bytes, "{key}: flexc's reference quantizer differs from llama-quantize");
        let mut back = vec![0f32; rows * cols];
        enc.decode(&[rows, cols], &bytes, &mut back).expect("decodes");
        // Every decoded value is a grid point of its block: Q2_0 {−1, 0, 1, 2}·d, Q1_0 ±d.
        let block = ty.block_size();
        for (b, vals) in bytes.chunks_exact(ty.type_size()).zip(back.chunks_exact(block)) {
            let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
            let grid: &[f32] = if ty == GgmlType::Q2_0 { &[-1.0, 0.0, 1.0, 2.0] } else { &[-1.0, 1.0] };
            assert!(vals.iter().all(|v| grid.iter().any(|g| g * d == *v)), "{key}: off-grid value");
        }
        // And it is a quantization of the source: bounded relative error.
        let err: f64 = w.iter().zip(&back).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>();
        let norm: f64 = w.iter().map(|a| (*a as f64).powi(2)).sum();
        let rel = (err / norm).sqrt();
        assert!(rel < if ty == GgmlType::Q2_0 { 0.9 } else { 1.2 }, "{key}: relative error {rel}");
    }
}
