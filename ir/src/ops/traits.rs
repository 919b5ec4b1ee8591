//! Op traits: properties each op declares in the op table (`defs.rs`, the
//! `[...]` after its operands), in the spirit of MLIR's op traits. Passes and
//! backends ask [`Opcode::is_pure`], [`Opcode::is_elementwise`] and
//! [`Opcode::is_gemm_like`] instead of listing opcodes in their own `match`,
//! so a new op is classified where it is declared.

use super::{OpAttrs, Opcode};

/// A property an op declares in the op table.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum OpTrait {
    /// No side effects: the result depends only on the operands and
    /// attributes, so two identical ops may be merged (CSE) and an op whose
    /// result is unused may be dropped (DCE).
    Pure,
    /// Every result element depends only on the operand elements at the same
    /// index (operands broadcast numpy-style to the result's shape).
    Elementwise,
    /// A matrix product `[..., m, k] · [k, n]` (or `· [n, k]ᵀ`): the
    /// `tensor.matmul`, `quant.mpgemm` and `kern.*_gemm` family.
    GemmLike,
}

impl Opcode {
    /// True when the op declares `t`.
    pub fn has_trait(self, t: OpTrait) -> bool {
        self.traits().contains(&t)
    }

    /// [`OpTrait::Pure`]: free of side effects (CSE and DCE may touch it).
    pub fn is_pure(self) -> bool {
        self.has_trait(OpTrait::Pure)
    }

    /// [`OpTrait::Elementwise`].
    pub fn is_elementwise(self) -> bool {
        self.has_trait(OpTrait::Elementwise)
    }

    /// [`OpTrait::GemmLike`].
    pub fn is_gemm_like(self) -> bool {
        self.has_trait(OpTrait::GemmLike)
    }
}

impl OpAttrs {
    /// A GEMM-like op in linear-layer form: `x · wᵀ` with its right operand
    /// (the weight) stored `[n, k]`. Every `kern.*_gemm` is; `tensor.matmul`
    /// and `quant.mpgemm` are with `transpose_b`.
    pub fn is_linear(&self) -> bool {
        self.opcode().is_gemm_like()
            && match self {
                OpAttrs::Matmul(a) => a.transpose_b,
                OpAttrs::Mpgemm(a) => a.transpose_b,
                _ => true,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(t: OpTrait) -> Vec<&'static str> {
        Opcode::ALL.iter().filter(|o| o.has_trait(t)).map(|o| o.mnemonic()).collect()
    }

    #[test]
    fn every_op_is_pure() {
        // Values are immutable (`tensor.cache_write` returns a new cache), so
        // no op has side effects today; an op that gets one drops the trait.
        assert_eq!(members(OpTrait::Pure).len(), Opcode::ALL.len());
    }

    #[test]
    fn elementwise_ops() {
        let want = [
            "tensor.add", "tensor.sub", "tensor.mul", "tensor.div", "tensor.neg", "tensor.exp", "tensor.tanh", "tensor.relu", "tensor.silu", "tensor.gelu", "tensor.sqrt",
            "tensor.reciprocal", "tensor.erf", "tensor.sigmoid", "tensor.abs", "tensor.round", "tensor.pow", "tensor.max", "tensor.min", "tensor.compare", "tensor.and",
            "tensor.or", "tensor.not", "tensor.isnan", "tensor.where", "tensor.cast",
        ];
        assert_eq!(members(OpTrait::Elementwise), want);
    }

    #[test]
    fn gemm_like_ops() {
        assert_eq!(members(OpTrait::GemmLike), ["tensor.matmul", "quant.mpgemm", "kern.lut_gemm", "kern.shiftadd_gemm", "kern.sparse_gemm", "kern.dense_gemm"]);
        assert!(Opcode::Matmul.is_gemm_like() && !Opcode::LutPrecompute.is_gemm_like() && !Opcode::Tile.is_gemm_like());
    }

    #[test]
    fn linear_form_follows_transpose_b() {
        use crate::ops::attrs;
        assert!(OpAttrs::from(attrs::Matmul { transpose_b: true }).is_linear());
        assert!(!OpAttrs::from(attrs::Matmul { transpose_b: false }).is_linear());
        assert!(!OpAttrs::from(attrs::Mpgemm { transpose_b: false }).is_linear());
        assert!(OpAttrs::from(attrs::SparseGemm {}).is_linear());
        assert!(!OpAttrs::from(attrs::Add {}).is_linear());
    }
}
