//! `cse`: common-subexpression elimination. Two pure ops
//! ([`Opcode::is_pure`]) with the same opcode, attributes, operands and
//! result type compute the same value, so the later one is replaced by the
//! earlier.

use crate::pass::{Changed, Pass, PassCx, PassInfo};
use crate::rewrite::{remove_dead_ops, replace_value};
use flexc_ir::{Module, Op, Opcode, Value};
use smallvec::SmallVec;
use std::collections::HashMap;

pub(crate) const INFO: PassInfo = PassInfo {
    name: "cse",
    summary: "merge ops that compute the same value from the same operands",
    options: &[],
    make: |_| Ok(Box::new(Cse)),
};

struct Cse;

impl Pass for Cse {
    fn name(&self) -> &'static str {
        "cse"
    }

    fn run(&mut self, m: &mut Module, _cx: &mut PassCx) -> Result<Changed, String> {
        let mut changed = false;
        for (_, f) in m.funcs.iter_mut() {
            let mut seen: HashMap<(Opcode, SmallVec<[Value; 4]>), Vec<Op>> = HashMap::new();
            for i in 0..f.layout.len() {
                let op = f.layout[i];
                let data = &f.dfg.ops[op];
                if !data.attrs.opcode().is_pure() {
                    continue;
                }
                let key = (data.attrs.opcode(), data.args.clone());
                let bucket = seen.entry(key).or_default();
                let twin = bucket.iter().copied().find(|&o| {
                    let d = &f.dfg.ops[o];
                    d.attrs == data.attrs && f.dfg.ty(d.result) == f.dfg.ty(data.result)
                });
                match twin {
                    Some(o) => {
                        let (old, new) = (data.result, f.dfg.ops[o].result);
                        replace_value(f, old, new);
                        changed = true;
                    }
                    None => bucket.push(op),
                }
            }
            remove_dead_ops(f);
        }
        Ok(Changed::from(changed))
    }
}
