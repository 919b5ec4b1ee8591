//! The pass registry and named pipeline presets.
//!
//! Every pass is listed once here by its [`PassInfo`] (kebab-case name,
//! one-line summary, typed options and constructor, declared in the pass's
//! own file); `flexc opt --list-passes` prints this table.

use crate::pass::PassInfo;
use crate::pipeline::{parse_pipeline, PassSpec, PipelineSyntaxError};

static REGISTRY: &[PassInfo] = &[
    crate::canonicalize::INFO,
    crate::cse::INFO,
    crate::dce::INFO,
    crate::sparsity::flow_nm::INFO,
    crate::sparsity::prune_nm::INFO,
    crate::quant::rotate::INFO,
    crate::quant::quantize::INFO,
    crate::quant::fuse_dequant::INFO,
    crate::egraph::INFO,
    crate::tile_gemm::INFO,
];

/// Every registered pass, in listing order.
pub fn registry() -> &'static [PassInfo] {
    REGISTRY
}

/// A registered pass by name.
pub fn lookup(name: &str) -> Option<&'static PassInfo> {
    REGISTRY.iter().find(|p| p.name == name)
}

/// A named pipeline: name, pipeline text, summary.
pub struct Preset {
    /// The name given to `--pipeline`.
    pub name: &'static str,
    /// What it expands to.
    pub pipeline: &'static str,
    /// One line saying what it is for.
    pub summary: &'static str,
}

static PRESETS: &[Preset] = &[
    Preset { name: "cleanup", pipeline: "canonicalize,cse,dce", summary: "simplify: fold constants and identities, merge duplicates, drop dead ops" },
    Preset { name: "cpu", pipeline: "canonicalize,cse,dce,select-gemm{target=cpu},tile-gemm{target=cpu}", summary: "the CPU JIT pipeline: simplify, pick each GEMM's kernel by the measured cost model (egg), tile it" },
    Preset { name: "flexcim", pipeline: "canonicalize,cse,dce,select-gemm{target=flexcim},tile-gemm{target=flexcim}", summary: "the FlexCiM pipeline: simplify, pick sparse or dense per GEMM by the analytical macro model (egg), tile to the macro" },
];

/// Every preset.
pub fn presets() -> &'static [Preset] {
    PRESETS
}

/// Parses a pipeline in which a preset name may stand for its passes
/// (`quantize{bpw=4},cpu`); the whole text may also be a preset name.
pub fn parse_with_presets(text: &str) -> Result<Vec<PassSpec>, PipelineSyntaxError> {
    let text = expand_preset(text).unwrap_or(text);
    let mut out = Vec::new();
    for spec in parse_pipeline(text)? {
        match expand_preset(&spec.name).filter(|_| spec.options.is_empty() && lookup(&spec.name).is_none()) {
            Some(p) => out.extend(parse_pipeline(p)?),
            None => out.push(spec),
        }
    }
    Ok(out)
}

/// The pipeline text of a preset name, if it is one.
pub fn expand_preset(name: &str) -> Option<&'static str> {
    PRESETS.iter().find(|p| p.name == name).map(|p| p.pipeline)
}

#[cfg(test)]
mod tests {
    use super::parse_with_presets;

    #[test]
    fn presets_expand_inside_a_pipeline() {
        let names = |t: &str| parse_with_presets(t).unwrap().into_iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(names("cpu"), ["canonicalize", "cse", "dce", "select-gemm", "tile-gemm"]);
        assert_eq!(names("quantize{bits=4},cpu"), ["quantize", "canonicalize", "cse", "dce", "select-gemm", "tile-gemm"]);
        assert_eq!(names("cleanup,dce"), ["canonicalize", "cse", "dce", "dce"]);
        // A preset name with options is not a preset (and not a pass either).
        assert_eq!(names("cpu{x=1}"), ["cpu"]);
    }
}
