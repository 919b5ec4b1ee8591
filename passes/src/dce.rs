//! `dce`: dead-code elimination. Drops pure ops whose results are never used
//! and weights that no function references any more.

use crate::pass::{Changed, Pass, PassCx, PassInfo};
use crate::rewrite::remove_dead_ops;
use flexc_ir::{Module, OpAttrs};
use std::collections::HashSet;

pub(crate) const INFO: PassInfo = PassInfo {
    name: "dce",
    summary: "remove ops whose results are unused and weights nothing references",
    options: &[],
    make: |_| Ok(Box::new(Dce)),
};

struct Dce;

impl Pass for Dce {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn run(&mut self, m: &mut Module, _cx: &mut PassCx) -> Result<Changed, String> {
        let mut removed = 0;
        for (_, f) in m.funcs.iter_mut() {
            removed += remove_dead_ops(f);
        }
        let mut used = HashSet::new();
        for (_, f) in m.funcs.iter() {
            for &op in &f.layout {
                if let OpAttrs::Weight(w) = &f.dfg.ops[op].attrs {
                    used.insert(w.name.0.clone());
                }
            }
        }
        let before = m.weights.len();
        m.weights.retain(|w| used.contains(&w.name));
        Ok(Changed::from(removed > 0 || m.weights.len() != before))
    }
}
