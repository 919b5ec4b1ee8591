//! all-MiniLM-L6-v2 end to end against an independent numpy implementation:
//! `testsuite/fixtures/minilm/minilm_embeddings.json` was made by
//! `make_fixture.py` (float64 numpy BERT from the same model.safetensors, HF
//! `tokenizers` ids). When the model is in the flexc cache, flexc's token ids
//! must match exactly, every embedding component within 1e-4, and the cosine
//! similarities within 1e-5. Without the model (`flexc pull minilm-l6`) the
//! test says SKIPPED, and fails in CI (`flexc_testsuite::gate`).

use flexc::frontend::bert::{cosine, SentenceEncoder};
use flexc::frontend::decoder::ImportOptions;
use flexc::frontend::Checkpoint;
use flexc_ir::text::{parse_module, print_module};
use flexc_ir::verify::verify_module;
use std::path::PathBuf;

fn fixture() -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testsuite/fixtures/minilm/minilm_embeddings.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture")).expect("fixture JSON")
}

#[test]
fn minilm_matches_numpy() {
    let Some(path) = flexc_testsuite::cached("models/minilm-l6/model.safetensors") else { return };
    let fx = fixture();
    let m = Checkpoint::open(&path).expect("open").import(&path, &ImportOptions::default()).expect("import");
    verify_module(&m).expect("verifies");
    // The printed module parses back (weights stay file references).
    let text = print_module(&m);
    assert!(text.contains("file<") && text.contains("@embed"), "module text");
    parse_module(&text).expect("printed module parses");

    let enc = SentenceEncoder::new(m, &path).expect("encoder");
    let sents = fx["sentences"].as_array().expect("sentences");
    let texts: Vec<String> = sents.iter().map(|s| s["text"].as_str().expect("text").to_string()).collect();
    let out = enc.embed(&texts).expect("embeds");
    let mut worst = 0f64;
    for (s, (ids, e)) in sents.iter().zip(&out) {
        let want_ids: Vec<u32> = s["ids"].as_array().expect("ids").iter().map(|v| v.as_u64().expect("id") as u32).collect();
        assert_eq!(ids, &want_ids, "token ids of {:?}", s["text"]);
        let want: Vec<f64> = s["embedding"].as_array().expect("embedding").iter().map(|v| v.as_f64().expect("f64")).collect();
        assert_eq!(e.len(), want.len());
        for (i, (&g, &w)) in e.iter().zip(&want).enumerate() {
            let d = (g as f64 - w).abs();
            worst = worst.max(d);
            assert!(d <= 1e-4, "{:?} component {i}: flexc {g}, numpy {w}", s["text"]);
        }
        for (i, w) in s["first16"].as_array().expect("first16").iter().enumerate() {
            assert!((e[i] as f64 - w.as_f64().expect("f64")).abs() <= 1e-4);
        }
        let sum: f64 = e.iter().map(|&x| x as f64).sum();
        assert!((sum - s["sum"].as_f64().expect("sum")).abs() <= 384.0 * 1e-4, "checksum");
        let norm = e.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() <= 1e-5, "norm {norm}");
    }
    let cos = fx["cosine"].as_array().expect("cosine");
    let mut worst_cos = 0f64;
    for i in 0..out.len() {
        for j in 0..out.len() {
            let want = cos[i][j].as_f64().expect("cos");
            let got = cosine(&out[i].1, &out[j].1);
            worst_cos = worst_cos.max((got - want).abs());
            assert!((got - want).abs() <= 1e-5, "cosine [{i}][{j}]: flexc {got}, numpy {want}");
        }
    }
    println!("minilm vs numpy: max |Δ| per component {worst:.3e}, max |Δ| cosine {worst_cos:.3e}");
}
