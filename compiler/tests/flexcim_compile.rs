//! `flexc compile MODEL --target flexcim -o OUT` on a tiny random llama
//! (GGUF, f32): the written stream decodes, text and binary
//! hold the same program, `flexc sim OUT` runs it, and every layer's
//! simulated int32 results equal the integer matmul of the same layer and
//! activations, rebuilt in-process through the same import and pipeline.

use flexc::frontend::decoder::ImportOptions;
use flexc::frontend::gguf::{GgmlType, GgufWriter, MetaValue};
use flexc::frontend::Checkpoint;
use flexc_backends::flexcim::arch::Arch;
use flexc_backends::flexcim::fromir::IrWork;
use flexc_backends::flexcim::isa::{decode, parse_asm};
use flexc_backends::flexcim::lower::reference_matmul;
use flexc_backends::flexcim::model::{activations, model_layers, stream_work};
use flexc_backends::flexcim::sim::simulate;
use flexc_backends::xorshift::XorShift;
use flexc_passes::{ManagerOptions, PassManager};
use std::path::{Path, PathBuf};
use std::process::Command;

const EMBD: usize = 32;
const FFN: usize = 64;
const VOCAB: usize = 48;
const LAYERS: usize = 2;
const PIPELINE: &str = "flow-nm{method=flow-reference,sparsity=0.5,mode=nearest,score=magnitude},prune-nm{score=magnitude}";
const TOKENS: &str = "3";

/// A two-block llama GGUF (4 heads of 8, 2 KV heads) with an untied LM head.
fn write_model(dir: &Path) -> PathBuf {
    let mut rng = XorShift(0x5eed);
    let mut w = GgufWriter::new(3);
    for (k, v) in [("block_count", LAYERS), ("embedding_length", EMBD), ("feed_forward_length", FFN), ("attention.head_count", 4), ("attention.head_count_kv", 2), ("vocab_size", VOCAB)] {
        w.add_meta(&format!("llama.{k}"), MetaValue::U32(v as u32));
    }
    w.add_meta("general.architecture", MetaValue::Str("llama".into()))
        .add_meta("llama.attention.layer_norm_rms_epsilon", MetaValue::F32(1e-5))
        .add_meta("llama.rope.freq_base", MetaValue::F32(10000.0));
    let mut names: Vec<(String, Vec<usize>)> = vec![("token_embd.weight".into(), vec![VOCAB, EMBD])];
    for l in 0..LAYERS {
        for (n, shape) in [
            ("attn_norm", vec![EMBD]),
            ("attn_q", vec![EMBD, EMBD]),
            ("attn_k", vec![EMBD / 2, EMBD]),
            ("attn_v", vec![EMBD / 2, EMBD]),
            ("attn_output", vec![EMBD, EMBD]),
            ("ffn_norm", vec![EMBD]),
            ("ffn_gate", vec![FFN, EMBD]),
            ("ffn_up", vec![FFN, EMBD]),
            ("ffn_down", vec![EMBD, FFN]),
        ] {
            names.push((format!("blk.{l}.{n}.weight"), shape));
        }
    }
    names.push(("output_norm.weight".into(), vec![EMBD]));
    names.push(("output.weight".into(), vec![VOCAB, EMBD]));
    for (name, shape) in &names {
        let norm = shape.len() == 1;
        let bytes: Vec<u8> = rng.vec(shape.iter().product(), 0.5).iter().flat_map(|x| (if norm { 1.0 + x * 0.2 } else { *x }).to_le_bytes()).collect();
        let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
        w.add_tensor(name, &dims, GgmlType::F32, bytes).expect("add tensor");
    }
    let path = dir.join("tiny.gguf");
    std::fs::write(&path, w.to_bytes().expect("gguf bytes")).expect("write gguf");
    path
}

fn flexc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flexc")).args(args).output().expect("flexc runs")
}

#[test]
fn a_compiled_model_stream_decodes_simulates_and_checks() {
    let dir = std::env::temp_dir().join(format!("flexc-compile-flexcim-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let model = write_model(&dir);
    let (bin, asm) = (dir.join("m.bin"), dir.join("m.s"));
    for out in [&bin, &asm] {
        let o = flexc(&["compile", model.to_str().expect("utf-8"), "--target", "flexcim", "--pipeline", PIPELINE, "--tokens", TOKENS, "-o", out.to_str().expect("utf-8")]);
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let prog = decode(&std::fs::read(&bin).expect("read .bin")).expect("the .bin decodes");
    assert_eq!(parse_asm(&std::fs::read_to_string(&asm).expect("read .s")).expect("the .s parses"), prog, "text and binary hold the same stream");

    // The same layers and activations in-process, and their integer matmuls.
    let ck = Checkpoint::open(&model).expect("open");
    let mut m = ck.import(&model, &ImportOptions { ctx: 3, ..Default::default() }).expect("import");
    PassManager::from_text(PIPELINE, ManagerOptions::default()).expect("pipeline").run(&mut m, &mut |_, _| {}).expect("pipeline runs");
    let layers = model_layers(&m, None, &mut |_, _| {}).expect("layers");
    assert_eq!(layers.layers.len(), LAYERS * 7 + 1, "every block linear and the LM head");
    assert_eq!(layers.layers.last().map(|l| (l.block, l.layer.out)), Some((None, VOCAB)));
    let acts = activations(&m, None, &layers.layers, 3, 1).expect("activations");
    let IrWork { work, host } = stream_work(&layers, acts, 3).expect("work");
    let r = simulate(&Arch::default_flexcim(), &prog).expect("the stream simulates");
    let outs: Vec<&Vec<i32>> = r.outputs.iter().zip(&r.layers).filter(|(_, s)| s.dense_macs > 0).map(|(o, _)| o).collect();
    assert_eq!(outs.len(), work.len());
    for (w, got) in work.iter().zip(outs) {
        assert_eq!(got, &reference_matmul(&w.layer, &w.x, w.tokens).expect("oracle"), "{}: simulated = integer matmul", w.layer.name);
    }
    assert_eq!(r.total.host_elems, host.iter().map(|h| h.1).sum::<u64>(), "host work is in the stream");
    assert!(host.iter().any(|h| h.0 == "tensor.gather"), "the embedding lookup stays host work: {host:?}");

    // `flexc sim OUT` runs the written stream.
    let o = flexc(&["sim", bin.to_str().expect("utf-8"), "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(j["regimes"][1]["regime"], "streamed");
    assert_eq!(j["regimes"][1]["cycles"].as_u64(), Some(r.total.total_cycles()), "the default arch file prices streamed weights");
    assert_eq!(j["functional_check"], "skipped", "a stream alone has no oracle");

    // A stream is not compile input; a failed compile leaves no file.
    let o = flexc(&["compile", bin.to_str().expect("utf-8"), "--target", "flexcim", "-o", dir.join("x.s").to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(2));
    let bad = dir.join("bad.bin");
    let o = flexc(&["compile", model.to_str().expect("utf-8"), "--target", "flexcim", "--pipeline", "no-such-pass", "-o", bad.to_str().expect("utf-8")]);
    assert_ne!(o.status.code(), Some(0));
    assert!(!bad.exists(), "no partial output");
    let _ = std::fs::remove_dir_all(&dir);
}
