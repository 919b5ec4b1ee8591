//! GGUF export: a module whose every weight is ggml-typed (a ggml block
//! encoding, or plain f32 / f16 / bf16) written as a GGUF file llama.cpp
//! loads, carrying the source model's metadata and tokenizer.
//!
//! Names go back to GGUF's: a pass that re-encodes `@blk.0.attn_q.weight`
//! names the result `@blk.0.attn_q.weight.<format>`, and an untied LM head
//! `@token_embd.weight.head.<format>`; those become `blk.0.attn_q.weight` and
//! `output.weight`. Encodings are read through their `.fir` spelling
//! (`#q4_0` is ggml type `q4_0`), so any encoding without a ggml twin is
//! refused with the tensor's name and encoding.

use super::{GgmlType, GgufWriter, MetaValue};
use flexc_ir::types::{ElemType, TensorType};
use flexc_ir::weights::WeightSource;
use flexc_ir::Module;

/// The GGUF tensor name of a module weight.
pub fn gguf_name(weight: &str) -> String {
    for suffix in [".weight", ".bias"] {
        if let Some(i) = weight.find(&format!("{suffix}.")) {
            let rest = &weight[i + suffix.len() + 1..];
            return if rest.starts_with("head.") { format!("output{suffix}") } else { weight[..i + suffix.len()].to_string() };
        }
    }
    weight.to_string()
}

/// The ggml type storing `ty` byte for byte, if there is one.
pub fn ggml_type(ty: &TensorType) -> Option<GgmlType> {
    match &ty.encoding {
        Some(e) => {
            let text = e.to_string();
            let name = text.strip_prefix('#')?;
            GgmlType::from_name(name).filter(|_| !name.contains('<'))
        }
        None => match ty.elem {
            ElemType::F32 => Some(GgmlType::F32),
            ElemType::F16 => Some(GgmlType::F16),
            ElemType::BF16 => Some(GgmlType::BF16),
            _ => None,
        },
    }
}

/// The bytes of a GGUF file holding `module`'s weights (inline constants
/// excepted: they are not model tensors) after the metadata `meta`.
pub fn export(module: &Module, meta: &[(String, MetaValue)]) -> Result<Vec<u8>, String> {
    let mut w = GgufWriter::new(3);
    for (k, v) in meta {
        w.add_meta(k, v.clone());
    }
    let mut seen = std::collections::HashMap::new();
    for (id, wd) in module.weights.iter() {
        if matches!(wd.source, WeightSource::Inline(_)) {
            continue;
        }
        let name = gguf_name(&wd.name);
        let t = ggml_type(&wd.ty).ok_or_else(|| format!("weight @{}: {} has no ggml type (export writes ggml block formats and f32/f16/bf16 only; quantize with scheme=q4_0, q4_1, q5_0, q5_1 or q8_0)", wd.name, wd.ty))?;
        if let Some(other) = seen.insert(name.clone(), wd.name.clone()) {
            return Err(format!("weights @{other} and @{} both map to GGUF tensor {name}", wd.name));
        }
        let dims: Option<Vec<u64>> = wd.ty.shape.iter().rev().map(|d| d.fixed()).collect();
        let dims = dims.ok_or_else(|| format!("weight @{}: {} has a symbolic dimension", wd.name, wd.ty))?;
        let bytes = module.weights.bytes(id).map_err(|e| e.to_string())?;
        w.add_tensor(&name, &dims, t, bytes.to_vec()).map_err(|e| e.to_string())?;
    }
    w.to_bytes().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::gguf_name;

    #[test]
    fn names() {
        assert_eq!(gguf_name("blk.3.attn_q.weight"), "blk.3.attn_q.weight");
        assert_eq!(gguf_name("blk.3.attn_q.weight.q4_0"), "blk.3.attn_q.weight");
        assert_eq!(gguf_name("token_embd.weight.head.q8_0"), "output.weight");
        assert_eq!(gguf_name("blk.0.attn_q.bias.nm2_4"), "blk.0.attn_q.bias");
    }
}
