//! Writes the seed corpora of the fuzz targets (`fuzz/fuzz_targets/*.rs`).
//!
//! `cargo run -p flexc-testsuite --example fuzz_seeds -- fuzz/corpus` fills
//! `fuzz/corpus/<target>/` with small valid inputs built in memory
//! ([`flexc_testsuite::synth`]), every `.fir` case file of the testsuite,
//! the checked-in malformed corpus (`testsuite/malformed/`) and the presets
//! and examples of pipeline text. Seeds are generated, never committed: the
//! corpus directory is ignored by git, and `fuzz/run.sh` runs this first.

use flexc_backends::flexcim::arch::{DEFAULT_ARCH, DEFAULT_ENERGY};
use flexc_backends::flexcim::isa::{encode, print_asm};
use flexc_testsuite::synth;
use std::path::{Path, PathBuf};

/// A minimal BERT-style `tokenizer.json` (WordPiece).
pub const WORDPIECE_JSON: &str = r###"{"model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,"vocab":{"[PAD]":0,"[UNK]":1,"[CLS]":2,"[SEP]":3,"the":4,"cat":5,"sat":6,"##s":7,"a":8,"on":9,".":10,"mat":11}},"added_tokens":[{"id":0,"content":"[PAD]","special":true},{"id":2,"content":"[CLS]","special":true},{"id":3,"content":"[SEP]","special":true}],"normalizer":{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true},"pre_tokenizer":{"type":"BertPreTokenizer"},"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"[CLS]","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"[SEP]","type_id":0}}],"special_tokens":{"[CLS]":{"id":"[CLS]","ids":[2],"tokens":["[CLS]"]},"[SEP]":{"id":"[SEP]","ids":[3],"tokens":["[SEP]"]}}}}"###;

fn put(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("create corpus dir");
    std::fs::write(d.join(name), bytes).expect("write seed");
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into()));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));

    put(&dir, "gguf", "llama-bpe.gguf", &synth::llama_gguf(synth::Vocab::Bpe));
    put(&dir, "gguf", "llama-spm.gguf", &synth::llama_gguf(synth::Vocab::Spm));
    let (st, config) = synth::llama_safetensors();
    put(&dir, "safetensors", "llama.safetensors", &st);
    put(&dir, "safetensors", "config.json", config.as_bytes());
    put(&dir, "fir", "linear.fir", synth::linear_fir(8, 16, 2).as_bytes());
    // The artifact target reads whole files, and `meta\n--\nprov\n--\nir\n--\nweights` section contents.
    let art = synth::llama_flexc();
    put(&dir, "artifact", "tiny.flexc", &art);
    if let Ok(c) = flexc::artifact::container::parse("tiny.flexc", &art) {
        let parts: Vec<&[u8]> = c.sections.iter().map(|s| &art[s.offset as usize..(s.offset + s.len) as usize]).collect();
        put(&dir, "artifact", "sections", &parts.join(&b"\n--\n"[..]));
        // The same with one packed LUT stream (an index record and its bytes).
        let spec = flexc_backends::cpu::lut::LutSpec { rows: 16, cols: 64, bits: 2, group: 64, act_group: 32, bias: flexc_backends::cpu::lut::LutBias::None, bcq: false, k_tile: 4096, half_scales: true, split: false };
        let rec = serde_json::json!([{"weight": "blk.0.attn_q.weight", "act_group": 32, "k_tile": 4096, "spec": spec, "offset": 0, "len": spec.weight_bytes()}]);
        let idx = serde_json::to_vec(&rec).expect("json");
        let blob = vec![0x5au8; spec.weight_bytes()];
        let mut packed = parts.clone();
        packed.extend([idx.as_slice(), blob.as_slice()]);
        put(&dir, "artifact", "sections-packed", &packed.join(&b"\n--\n"[..]));
    }
    let prog = synth::flexcim_program();
    put(&dir, "flexcim_bin", "layer.bin", &encode(&prog));
    put(&dir, "flexcim_asm", "layer.s", print_asm(&prog).as_bytes());
    put(&dir, "flexcim_config", "arch.toml", format!("\x00{DEFAULT_ARCH}").as_bytes());
    put(&dir, "flexcim_config", "energy.toml", format!("\x01{DEFAULT_ENERGY}").as_bytes());
    // Tokenizer seeds: the first byte picks the tokenizer (0 BPE, 1 SPM, 2 tokenizer.json).
    for (i, text) in ["Hello the world", " the  in\ta\n", "naïve café 中文 🦙", "<|endoftext|> <s> </s>", ""].iter().enumerate() {
        put(&dir, "tokenizer", &format!("bpe-{i}"), &[&[0u8][..], text.as_bytes()].concat());
        put(&dir, "tokenizer", &format!("spm-{i}"), &[&[1u8][..], text.as_bytes()].concat());
    }
    put(&dir, "tokenizer", "wordpiece.json", &[&[2u8][..], WORDPIECE_JSON.as_bytes()].concat());
    let pipelines = [
        "cleanup",
        "cpu",
        "canonicalize,cse,dce",
        "quantize{scheme=rtn,bits=4,group=8}",
        "quantize{scheme=ternary,group=0},fuse-dequant",
        "quantize{scheme=bcq,bits=2,group=8},fuse-dequant,cse",
        "quantize{scheme=shiftadd,bits=3,apot=2,group=16}",
        "flow-nm{method=uniform,pattern=2:4},prune-nm{score=magnitude}",
        "flow-nm{sparsity=0.5,mode=nearest,candidates=2:4,4:8,8:8,score=magnitude},prune-nm{score=magnitude}",
        "prune-nm{pattern=2:4,score=magnitude}",
    ];
    for (i, p) in pipelines.iter().enumerate() {
        put(&dir, "pipeline", &format!("p{i}"), p.as_bytes());
    }

    // Every testsuite case and every checked-in malformed input.
    let mut all = Vec::new();
    files(&root.join("cases"), &mut all);
    for (i, p) in all.iter().enumerate() {
        if let Ok(b) = std::fs::read(p) {
            put(&dir, "fir", &format!("case-{i}.fir"), &b);
        }
    }
    let mut bad = Vec::new();
    files(&root.join("malformed"), &mut bad);
    for p in &bad {
        let Ok(b) = std::fs::read(p) else { continue };
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let target = match p.extension().and_then(|e| e.to_str()).unwrap_or("") {
            "fir" => "fir",
            "s" => "flexcim_asm",
            "pipeline" => "pipeline",
            "toml" if name.starts_with("energy") => {
                put(&dir, "flexcim_config", &name, &[&[1u8][..], &b].concat());
                continue;
            }
            "toml" => {
                put(&dir, "flexcim_config", &name, &[&[0u8][..], &b].concat());
                continue;
            }
            "json" => "safetensors",
            _ => continue,
        };
        put(&dir, target, &name, &b);
    }
    println!("seeds written under {}", dir.display());
}
