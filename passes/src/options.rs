//! Typed pass options.
//!
//! Each pass declares its options (name, type, default, help) in its registry
//! entry; [`Options`] checks raw `key=value` text against that declaration so
//! passes read typed values and users get an error listing valid keys.

use crate::pipeline::PassSpec;

/// The type of an option value.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OptKind {
    /// `true` / `false`.
    Bool,
    /// An integer.
    Int,
    /// A number.
    Float,
    /// Free text (enumerations list their values in the help).
    Str,
}

/// One declared option.
#[derive(Copy, Clone, Debug)]
pub struct OptDecl {
    /// The key.
    pub name: &'static str,
    /// Its type.
    pub kind: OptKind,
    /// Its default, as text.
    pub default: &'static str,
    /// One line of help.
    pub help: &'static str,
}

/// Checked options of one pass instance.
#[derive(Clone, Debug)]
pub struct Options {
    pass: String,
    values: Vec<(&'static str, String)>,
    given: Vec<&'static str>,
}

impl Options {
    /// Checks a spec's options against the declarations (unknown keys and
    /// ill-typed values are errors); missing keys take their defaults.
    pub fn check(spec: &PassSpec, decls: &'static [OptDecl]) -> Result<Options, String> {
        let mut values: Vec<(&'static str, String)> = decls.iter().map(|d| (d.name, d.default.to_string())).collect();
        let mut given = Vec::new();
        for (k, v) in &spec.options {
            let Some(d) = decls.iter().find(|d| d.name == k) else {
                let valid: Vec<_> = decls.iter().map(|d| d.name).collect();
                return Err(if valid.is_empty() {
                    format!("pass '{}' takes no options, got '{k}'", spec.name)
                } else {
                    format!("unknown option '{k}' for pass '{}' (valid: {})", spec.name, valid.join(", "))
                });
            };
            let ok = match d.kind {
                OptKind::Bool => v == "true" || v == "false",
                OptKind::Int => v.parse::<i64>().is_ok(),
                OptKind::Float => v.parse::<f64>().is_ok_and(f64::is_finite),
                OptKind::Str => true,
            };
            if !ok {
                return Err(format!("option '{k}' of pass '{}' must be {:?}, got '{v}'", spec.name, d.kind));
            }
            if let Some(slot) = values.iter_mut().find(|(n, _)| *n == d.name) {
                slot.1 = v.clone();
            }
            given.push(d.name);
        }
        Ok(Options { pass: spec.name.clone(), values, given })
    }

    fn raw(&self, key: &str) -> &str {
        self.values.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    /// A boolean option.
    pub fn bool(&self, key: &str) -> bool {
        self.raw(key) == "true"
    }

    /// An integer option.
    pub fn int(&self, key: &str) -> i64 {
        self.raw(key).parse().unwrap_or(0)
    }

    /// A float option.
    pub fn float(&self, key: &str) -> f64 {
        self.raw(key).parse().unwrap_or(0.0)
    }

    /// A text option.
    pub fn str(&self, key: &str) -> &str {
        self.raw(key)
    }

    /// Whether `key` was written in the pipeline (not left at its default).
    pub fn given(&self, key: &str) -> bool {
        self.given.contains(&key)
    }

    /// Refuses options that were written but have no effect in this
    /// configuration (`what`, e.g. `method=uniform`): a silent no-op hides
    /// a mistake.
    pub fn reject_unused(&self, keys: &[&str], what: &str) -> Result<(), String> {
        match keys.iter().find(|k| self.given(k)) {
            Some(k) => Err(format!("{}: option '{k}' has no effect with {what}", self.pass)),
            None => Ok(()),
        }
    }

    /// The pass these options are for.
    pub fn pass(&self) -> &str {
        &self.pass
    }
}
