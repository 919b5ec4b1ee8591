//! Fuzz target: the safetensors reader (header JSON, offsets, dtypes) and,
//! for files it accepts, the Hugging Face importer with a fixed tiny llama
//! `config.json` (written once to a temporary folder, since the importer
//! reads it from beside the model): an import either fails with an error or
//! yields a module that verifies.
#![no_main]
use flexc::frontend::decoder::ImportOptions;
use flexc::frontend::hf::import_safetensors;
use flexc::frontend::safetensors::SafetensorsFile;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

const CONFIG: &str = r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":8,"intermediate_size":16,"num_attention_heads":2,"num_key_value_heads":1,"num_hidden_layers":1,"rms_norm_eps":1e-5,"rope_theta":10000.0,"vocab_size":32,"hidden_act":"silu","max_position_embeddings":64,"tie_word_embeddings":true}"#;

fn model_path() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("flexc-fuzz-st-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        std::fs::write(d.join("config.json"), CONFIG).expect("write config.json");
        d.join("model.safetensors")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(st) = SafetensorsFile::from_bytes_named("fuzz.safetensors", data.to_vec()) else { return };
    for t in &st.tensors {
        assert_eq!(st.tensor_bytes(t).len() as u64, t.n_bytes);
        assert!(st.tensor(&t.name).is_some());
    }
    if let Ok(m) = import_safetensors(&st, model_path(), &ImportOptions { ctx: 16, ..Default::default() }) {
        if let Err(e) = flexc_ir::verify::verify_module(&m) {
            panic!("imported module does not verify: {}", e[0]);
        }
    }
});
