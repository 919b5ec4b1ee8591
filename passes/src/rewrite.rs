//! The one way passes rewrite a function: redirect uses, then drop what died.
//!
//! Passes never edit operand lists or the layout by hand; they call
//! [`replace_value`] (every use of the old value now reads the new one) and
//! [`remove_dead_ops`] (pure ops whose results nobody reads leave the layout).
//! A pass that rewrites many ops in one walk records its replacements in
//! [`Renames`] instead, which applies them in one linear sweep (calling
//! [`replace_value`] per rewrite scans the whole function each time:
//! quadratic on a 100k-op module).

use flexc_ir::{Func, Op, Value};
use std::collections::HashMap;

/// Replacements recorded during one forward walk over a layout.
#[derive(Default)]
pub struct Renames {
    to: HashMap<Value, Value>,
}

impl Renames {
    /// From now on, uses of `old` read `new`.
    pub fn record(&mut self, old: Value, new: Value) {
        let new = self.resolve(new);
        if new != old {
            self.to.insert(old, new);
        }
    }

    /// `v` after every recorded replacement.
    pub fn resolve(&self, mut v: Value) -> Value {
        while let Some(&n) = self.to.get(&v) {
            v = n;
        }
        v
    }

    /// Redirects `op`'s operands (call before looking at `op`).
    pub fn apply_to_op(&self, f: &mut Func, op: Op) {
        if self.to.is_empty() {
            return;
        }
        for i in 0..f.dfg.ops[op].args.len() {
            let a = f.dfg.ops[op].args[i];
            f.dfg.ops[op].args[i] = self.resolve(a);
        }
    }

    /// Redirects every op's operands and the returns.
    pub fn apply(&self, f: &mut Func) {
        for i in 0..f.layout.len() {
            self.apply_to_op(f, f.layout[i]);
        }
        for i in 0..f.returns.len() {
            f.returns[i] = self.resolve(f.returns[i]);
        }
    }
}

/// Replaces every use of `old` with `new` (operands and returns).
pub fn replace_value(f: &mut Func, old: Value, new: Value) {
    f.replace_all_uses(old, new);
}

/// Removes pure ops ([`flexc_ir::Opcode::is_pure`]) whose results are not
/// used, transitively. Returns how many.
pub fn remove_dead_ops(f: &mut Func) -> usize {
    let mut uses = f.use_counts();
    let mut live = vec![true; f.layout.len()];
    // Walking backwards frees operands before their definitions are visited.
    for i in (0..f.layout.len()).rev() {
        let data = &f.dfg.ops[f.layout[i]];
        if uses[data.result] == 0 && data.attrs.opcode().is_pure() {
            live[i] = false;
            for &a in &data.args {
                uses[a] -= 1;
            }
        }
    }
    let before = f.layout.len();
    let mut it = live.into_iter();
    f.layout.retain(|_| it.next().unwrap_or(true));
    before - f.layout.len()
}
