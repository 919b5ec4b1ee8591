//! `--explain`: why `select-gemm` and `tile-gemm` chose what they chose.
//!
//! The passes fill an [`Explain`] in the pass context; the manager hands it
//! out in `RunReport::explain`. As JSON it is
//! `{"gemms": [{"op", "candidates": [{"primitive", "cost"}], "chosen"}],
//! "runner": {"stop_reason", "iterations", "nodes", "classes"}}` (plus
//! `"tiles"` once `tile-gemm` ran); [`Explain::text`] renders the same data
//! for people, with the shared LUT tables decisions spelled out.

use serde::Serialize;
use std::fmt::Write;

/// Everything the GEMM passes decided.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Explain {
    /// One entry per GEMM `select-gemm` decided, in program order.
    pub gemms: Vec<GemmExplain>,
    /// The equality-saturation run (`None` until `select-gemm` ran).
    pub runner: Option<RunnerExplain>,
    /// One entry per GEMM `tile-gemm` tiled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tiles: Vec<TileExplain>,
    /// Per activation, whether its LUT tables are built (text only).
    #[serde(skip)]
    pub tables: Vec<TablesExplain>,
    /// Target, unit and rows the costs are for (text only).
    #[serde(skip)]
    pub header: String,
}

/// One GEMM's decision.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GemmExplain {
    /// The IR value it computes (`%q`).
    pub op: String,
    /// Each primitive the e-graph offers for it with its modelled cost; a
    /// `lut` cost includes an even share of its activation's tables.
    pub candidates: Vec<Candidate>,
    /// The primitive chosen, or the op kept when no primitive applies.
    pub chosen: String,
}

/// A primitive and its modelled cost (in the cost model's unit).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    /// `lut`, `shiftadd`, `sparse` or `dense`.
    pub primitive: String,
    /// The modelled cost.
    pub cost: f64,
}

/// The runner's report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunnerExplain {
    /// Why saturation stopped (`saturated`, `iteration limit 16`, ...).
    pub stop_reason: String,
    /// Iterations run.
    pub iterations: usize,
    /// E-nodes in the final e-graph.
    pub nodes: usize,
    /// E-classes in the final e-graph.
    pub classes: usize,
}

/// The LUT tables of one activation: built or not, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct TablesExplain {
    /// The activation (`%x`).
    pub activation: String,
    /// The cost of building its tables once.
    pub cost: f64,
    /// GEMMs reading it that could use the tables.
    pub sharers: usize,
    /// GEMMs that read the tables in the plan (0: not built).
    pub users: usize,
    /// Total cost of those GEMMs with the tables built (tables counted once).
    pub with_tables: f64,
    /// Total cost of those GEMMs without tables.
    pub without_tables: f64,
}

/// One GEMM's weight tiling.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TileExplain {
    /// The GEMM (`%q`).
    pub op: String,
    /// Its primitive.
    pub primitive: String,
    /// Each tile the target proposed with its modelled GEMM cost.
    pub candidates: Vec<TileCandidate>,
    /// The tile inserted.
    pub chosen: TileCandidate,
}

/// A tile shape and its modelled cost.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TileCandidate {
    /// Output rows per tile.
    pub m: u64,
    /// Input columns per tile.
    pub k: u64,
    /// The GEMM's modelled cost with this tiling.
    pub cost: f64,
}

impl Explain {
    /// The human rendering.
    pub fn text(&self) -> String {
        let mut s = String::new();
        if !self.header.is_empty() {
            let _ = writeln!(s, "{}", self.header);
        }
        let width = self.gemms.iter().map(|g| g.op.len()).max().unwrap_or(0);
        for g in &self.gemms {
            let cands: Vec<String> = g
                .candidates
                .iter()
                .map(|c| format!("{}{} {}", if c.primitive == g.chosen { "*" } else { "" }, c.primitive, num(c.cost)))
                .collect();
            let _ = writeln!(s, "  {:<width$}  -> {:<9} [{}]", g.op, g.chosen, cands.join(", "));
        }
        for t in &self.tables {
            let verdict = if t.users > 0 {
                format!("built, read by {} ({} with vs {} without)", t.users, num(t.with_tables), num(t.without_tables))
            } else {
                format!("not built ({} with vs {} without)", num(t.with_tables), num(t.without_tables))
            };
            let _ = writeln!(s, "  tables of {}: cost {}, {} GEMM(s) could share them: {verdict}", t.activation, num(t.cost), t.sharers);
        }
        if let Some(r) = &self.runner {
            let _ = writeln!(s, "runner: {}; {} iteration(s), {} e-nodes, {} e-classes", r.stop_reason, r.iterations, r.nodes, r.classes);
        }
        if !self.tiles.is_empty() {
            s += "tile-gemm:\n";
        }
        for t in &self.tiles {
            let cands: Vec<String> = t.candidates.iter().map(|c| format!("{}x{} {}", c.m, c.k, num(c.cost))).collect();
            let _ = writeln!(s, "  {} ({}): {}x{} [{}]", t.op, t.primitive, t.chosen.m, t.chosen.k, cands.join(", "));
        }
        s
    }
}

/// A cost with one decimal, `inf` when unbounded.
fn num(x: f64) -> String {
    if x.is_finite() { format!("{x:.1}") } else { "inf".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_issue_shape() {
        let e = Explain {
            gemms: vec![GemmExplain {
                op: "%q".into(),
                candidates: vec![Candidate { primitive: "lut".into(), cost: 12.5 }, Candidate { primitive: "dense".into(), cost: 30.0 }],
                chosen: "lut".into(),
            }],
            runner: Some(RunnerExplain { stop_reason: "saturated".into(), iterations: 3, nodes: 20, classes: 9 }),
            header: "not in json".into(),
            ..Explain::default()
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"gemms":[{"op":"%q","candidates":[{"primitive":"lut","cost":12.5},{"primitive":"dense","cost":30.0}],"chosen":"lut"}],"runner":{"stop_reason":"saturated","iterations":3,"nodes":20,"classes":9}}"#
        );
        let text = e.text();
        assert!(text.contains("%q  -> lut       [*lut 12.5, dense 30.0]"), "{text}");
        assert!(text.contains("runner: saturated; 3 iteration(s), 20 e-nodes, 9 e-classes"), "{text}");
    }
}
