//! The one way passes rewrite a function: redirect uses, then drop what died.
//!
//! Passes never edit operand lists or the layout by hand; they call
//! [`replace_value`] (every use of the old value now reads the new one) and
//! [`remove_dead_ops`] (ops whose results nobody reads leave the layout).

use flexc_ir::{Func, Value};

/// Replaces every use of `old` with `new` (operands and returns).
pub fn replace_value(f: &mut Func, old: Value, new: Value) {
    f.replace_all_uses(old, new);
}

/// Removes ops whose results are not used, transitively. Returns how many.
pub fn remove_dead_ops(f: &mut Func) -> usize {
    let mut uses = f.use_counts();
    let mut live = vec![true; f.layout.len()];
    // Walking backwards frees operands before their definitions are visited.
    for i in (0..f.layout.len()).rev() {
        let data = &f.dfg.ops[f.layout[i]];
        if uses[data.result] == 0 {
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
