//! Prints modules in `.fir` text. Parsing the output gives the same module,
//! and printing that again gives the same bytes.
//!
//! Values print under the name they were parsed with; values a pass created
//! get fresh numbers (`%0`, `%1`, …) that avoid every name already in use.

use crate::entity::Value;
use crate::func::Func;
use crate::module::Module;
use crate::ops::AttrLit;
use crate::weights::WeightSource;
use cranelift_entity::SecondaryMap;
use std::collections::HashSet;
use std::fmt::{self, Write};

/// Prints a whole module.
pub fn print_module(m: &Module) -> String {
    let mut out = String::new();
    let _ = write_module(&mut out, m);
    out
}

/// Prints one function.
pub fn print_func(f: &Func) -> String {
    let mut out = String::new();
    let _ = write_func(&mut out, f);
    out
}

fn write_attr_dict(out: &mut String, entries: &[(&str, AttrLit)]) -> fmt::Result {
    out.push('{');
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match v {
            AttrLit::Bool(true) => out.push_str(k),
            _ => write!(out, "{k} = {v}")?,
        }
    }
    out.push('}');
    Ok(())
}

fn write_module(out: &mut String, m: &Module) -> fmt::Result {
    let mut first = true;
    let mut sep = |out: &mut String| {
        if !first {
            out.push('\n');
        }
        first = false;
    };
    if m.name.is_some() || !m.meta.is_empty() {
        sep(out);
        out.push_str("module");
        if let Some(n) = &m.name {
            write!(out, " @{n}")?;
        }
        if !m.meta.is_empty() {
            out.push(' ');
            let entries: Vec<(&str, AttrLit)> = m.meta.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            write_attr_dict(out, &entries)?;
        }
        out.push('\n');
    }
    if !m.weights.is_empty() {
        sep(out);
        for (_, w) in m.weights.iter() {
            write!(out, "weight @{} : {} = ", w.name, w.ty)?;
            match &w.source {
                WeightSource::Inline(d) => write!(out, "{d}")?,
                WeightSource::File { path, offset, len } => {
                    write!(out, "file<{}, {offset}, {len}>", AttrLit::Str(path.display().to_string()))?
                }
                WeightSource::Derived(b) => write!(out, "{}", crate::ops::Dense::Bytes(b.to_vec()))?,
            }
            out.push('\n');
        }
    }
    for (_, f) in m.funcs.iter() {
        sep(out);
        write_func(out, f)?;
    }
    Ok(())
}

/// Chooses the printed name of every value of a function.
fn value_names(f: &Func) -> SecondaryMap<Value, String> {
    let mut names: SecondaryMap<Value, String> = SecondaryMap::new();
    let mut used: HashSet<String> = HashSet::new();
    let mut order: Vec<Value> = f.params.clone();
    order.extend(f.layout.iter().map(|&op| f.dfg.ops[op].result));
    // Parsed names win first, so a printed-then-parsed function keeps them all.
    let mut pending = Vec::new();
    for &v in &order {
        match &f.dfg.values[v].name {
            Some(n) if used.insert(n.clone()) => names[v] = n.clone(),
            _ => pending.push(v),
        }
    }
    let mut next = 0usize;
    for v in pending {
        while used.contains(&next.to_string()) {
            next += 1;
        }
        names[v] = next.to_string();
        used.insert(next.to_string());
    }
    names
}

fn write_func(out: &mut String, f: &Func) -> fmt::Result {
    let names = value_names(f);
    write!(out, "func @{}(", f.name)?;
    for (i, &p) in f.params.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write!(out, "%{}: {}", names[p], f.dfg.ty(p))?;
    }
    out.push(')');
    match f.results.as_slice() {
        [] => {}
        [t] => write!(out, " -> {t}")?,
        ts => {
            out.push_str(" -> (");
            for (i, t) in ts.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write!(out, "{t}")?;
            }
            out.push(')');
        }
    }
    out.push_str(" {\n");
    for &op in &f.layout {
        let data = &f.dfg.ops[op];
        write!(out, "  %{} = {}", names[data.result], data.attrs.opcode().mnemonic())?;
        let mut entries = data.attrs.entries();
        if let Some(i) = entries.iter().position(|(k, v)| *k == "name" && matches!(v, AttrLit::Symbol(_))) {
            let (_, sym) = entries.remove(i);
            write!(out, " {sym}")?;
        }
        for (i, &a) in data.args.iter().enumerate() {
            out.push_str(if i == 0 { " " } else { ", " });
            write!(out, "%{}", names[a])?;
        }
        if !entries.is_empty() {
            out.push(' ');
            write_attr_dict(out, &entries)?;
        }
        writeln!(out, " : {}", f.dfg.ty(data.result))?;
    }
    out.push_str("  return");
    for (i, &r) in f.returns.iter().enumerate() {
        out.push_str(if i == 0 { " " } else { ", " });
        write!(out, "%{}", names[r])?;
    }
    out.push_str("\n}\n");
    Ok(())
}
