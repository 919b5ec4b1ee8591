//! `fuse-dequant`: `tensor.matmul{transpose_b}(x, quant.dequantize(w))` with a
//! rank-2 encoded `w: [n, k]` becomes `quant.mpgemm(x, w)`.
//!
//! `quant.mpgemm` is MixPE's "dequantize after the group reduction":
//! `y[i, j] = Σ_g s_g·(Σ_{k∈g} q_k·x_k − z_g·Σ_{k∈g} x_k)` for a scale/zero
//! encoding, or `Σ_b α_b·Σ_k b_k·x_k` for BCQ. Its value equals
//! `tensor.matmul(x, quant.dequantize(w))` exactly in real arithmetic; in
//! floating point it differs only by reassociation of the sums (the
//! reference interpreter computes it literally as that matmul, so on the
//! interpreter the rewrite is bit-exact). A `quant.dequantize` with other
//! users stays for them.

use crate::pass::{Changed, Pass, PassCx, PassInfo};
use crate::rewrite::remove_dead_ops;
use flexc_ir::{attrs, Module, OpAttrs};

pub(crate) const INFO: PassInfo = PassInfo {
    name: "fuse-dequant",
    summary: "turn dequantize→matmul{transpose_b} into one quant.mpgemm (dequantize after group reduction)",
    options: &[],
    make: |_| Ok(Box::new(FuseDequant)),
};

struct FuseDequant;

impl Pass for FuseDequant {
    fn name(&self) -> &'static str {
        "fuse-dequant"
    }

    fn run(&mut self, m: &mut Module, _cx: &mut PassCx) -> Result<Changed, String> {
        let mut fused = 0;
        for (_, f) in m.funcs.iter_mut() {
            let mut i = 0;
            while i < f.layout.len() {
                let d = &f.dfg.ops[f.layout[i]];
                let (OpAttrs::Matmul(mm), [x, rhs]) = (&d.attrs, d.args.as_slice()) else {
                    i += 1;
                    continue;
                };
                let (x, old) = (*x, d.result);
                let w = match f.dfg.def_op(*rhs).map(|o| &f.dfg.ops[o]) {
                    Some(deq) if mm.transpose_b && matches!(deq.attrs, OpAttrs::Dequantize(_)) => deq.args[0],
                    _ => {
                        i += 1;
                        continue;
                    }
                };
                let wt = f.dfg.ty(w);
                if wt.rank() != 2 || wt.encoding.is_none() {
                    i += 1;
                    continue;
                }
                let declared = Some(f.dfg.ty(old).clone());
                // The op table re-checks the types; a mismatch leaves the matmul alone.
                let Ok(new) = f.insert_at(i, OpAttrs::Mpgemm(attrs::Mpgemm { transpose_b: true }), &[x, w], declared) else {
                    i += 1;
                    continue;
                };
                f.replace_all_uses(old, new);
                fused += 1;
                i += 2;
            }
            remove_dead_ops(f);
        }
        Ok(Changed::from(fused > 0))
    }
}
