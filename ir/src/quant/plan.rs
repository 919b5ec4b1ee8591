//! The sparsity plan: a typed, verified module attribute
//! `nm_plan = [[@weight, N, M], [@weight, fraction], ...]` (N kept of M, or an
//! unstructured fraction pruned per output row), written by `flow-nm` and
//! applied by `prune-nm`.
//!
//! The text form is an ordinary module attribute; [`SparsityPlan::from_attr`]
//! is its one reader and checks every entry ([`Nm::new`] for patterns, a
//! finite fraction in `0..=1`), so the parser rejects a bad plan at its
//! location and passes only ever see valid ones.

use super::Nm;
use crate::ops::AttrLit;

/// Module attribute key of the plan.
pub const PLAN_KEY: &str = "nm_plan";

/// What one weight is pruned to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PlanTarget {
    /// N:M (`n == m`: leave dense).
    Nm(Nm),
    /// Unstructured, per output row, this fraction pruned (OWL), in `0..=1`.
    Unstructured(f64),
}

/// The per-weight sparsity plan, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SparsityPlan(pub Vec<(String, PlanTarget)>);

impl PlanTarget {
    /// The unstructured target `frac`, checked (finite, in `0..=1`).
    pub fn unstructured(frac: f64) -> Result<PlanTarget, String> {
        if !(0.0..=1.0).contains(&frac) {
            return Err(format!("fraction pruned must be in 0..=1, got {frac}"));
        }
        Ok(PlanTarget::Unstructured(frac))
    }
}

impl SparsityPlan {
    /// Reads and checks the attribute value.
    pub fn from_attr(v: &AttrLit) -> Result<SparsityPlan, String> {
        let shape = || format!("{PLAN_KEY} must be a list of [@weight, N, M] or [@weight, fraction]");
        let AttrLit::List(items) = v else { return Err(shape()) };
        let entry = |e: &AttrLit| -> Result<(String, PlanTarget), String> {
            let AttrLit::List(e) = e else { return Err(shape()) };
            match e.as_slice() {
                [AttrLit::Symbol(w), AttrLit::Int(n), AttrLit::Int(m)] => Ok((w.clone(), PlanTarget::Nm(Nm::new(*n, *m).map_err(|e| format!("{PLAN_KEY} @{w}: {e}"))?))),
                [AttrLit::Symbol(w), AttrLit::Float(s)] => Ok((w.clone(), PlanTarget::unstructured(*s).map_err(|e| format!("{PLAN_KEY} @{w}: {e}"))?)),
                _ => Err(shape()),
            }
        };
        items.iter().map(entry).collect::<Result<_, _>>().map(SparsityPlan)
    }

    /// The attribute value.
    pub fn to_attr(&self) -> AttrLit {
        let entry = |(w, t): &(String, PlanTarget)| {
            let mut e = vec![AttrLit::Symbol(w.clone())];
            match t {
                PlanTarget::Nm(nm) => e.extend([AttrLit::Int(nm.n() as i64), AttrLit::Int(nm.m() as i64)]),
                PlanTarget::Unstructured(s) => e.push(AttrLit::Float(*s)),
            }
            AttrLit::List(e)
        };
        AttrLit::List(self.0.iter().map(entry).collect())
    }
}

/// Checks a module attribute whose key has a typed reader (today: [`PLAN_KEY`]).
pub fn check_module_attr(key: &str, v: &AttrLit) -> Result<(), String> {
    match key {
        PLAN_KEY => SparsityPlan::from_attr(v).map(|_| ()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(w: &str, rest: Vec<AttrLit>) -> AttrLit {
        AttrLit::List(vec![AttrLit::List([vec![AttrLit::Symbol(w.into())], rest].concat())])
    }

    #[test]
    fn bad_entries_are_errors_and_good_ones_round_trip() {
        let int = AttrLit::Int;
        assert!(SparsityPlan::from_attr(&entry("w", vec![AttrLit::Float(1.5)])).is_err());
        assert!(SparsityPlan::from_attr(&entry("w", vec![AttrLit::Float(f64::NAN)])).is_err());
        assert!(SparsityPlan::from_attr(&entry("w", vec![int(1), int(4294967296)])).is_err());
        assert!(SparsityPlan::from_attr(&entry("w", vec![int(4294967298), int(4294967300)])).is_err());
        assert!(SparsityPlan::from_attr(&entry("w", vec![int(3)])).is_err());
        for v in [entry("w", vec![int(2), int(4)]), entry("w", vec![AttrLit::Float(0.5)])] {
            assert_eq!(SparsityPlan::from_attr(&v).unwrap().to_attr(), v);
        }
    }
}
