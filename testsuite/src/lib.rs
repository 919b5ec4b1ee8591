//! The file-driven test harness: finds `.fir` cases, splits them, reads their
//! directives, and runs `// run:` lines on the reference interpreter.
//!
//! A case file holds one case, or several separated by a line `// -----`.
//! Directives are comments:
//! * `// test: passes=PIPELINE` — run the pipeline (verifying after each
//!   pass) and snapshot the printed IR;
//! * `// error: TEXT` — at the end of the line that must fail: parsing or
//!   verifying the case fails there with a message containing TEXT;
//! * `// run: @f x=[1, 2] y[2, 1]=[3, 4] => [4, 6], [7]` — run `@f` on the
//!   inputs (shapes from the signature unless given) and compare every
//!   result with the expected values;
//! * `// tolerance: 1e-4` — relative tolerance of `run` comparisons (default 1e-5).
//!
//! Every case without `// error:` must round-trip: printing the parsed module
//! gives the case text back, byte for byte, once comment lines are removed.

pub mod gate;
pub mod malformed;
pub mod onnx_synth;
pub mod synth;

use flexc_backends::reference::{Interpreter, Tensor};
use flexc_ir::types::Dim;
use flexc_ir::Module;
use std::path::{Path, PathBuf};

/// One case of a case file.
#[derive(Clone, Debug)]
pub struct Case {
    /// The file.
    pub file: PathBuf,
    /// Lines of the file before this case (to report file line numbers).
    pub line_offset: usize,
    /// The case text.
    pub text: String,
    /// `// test: passes=...`
    pub passes: Option<String>,
    /// `// error:` directives: (1-based line within the case, expected text).
    pub errors: Vec<(usize, String)>,
    /// `// run:` directives.
    pub runs: Vec<String>,
    /// `// tolerance:` (relative).
    pub tolerance: f64,
}

impl Case {
    /// `file:line` naming this case, for failure messages and snapshot names.
    pub fn name(&self) -> String {
        let rel = self.file.strip_prefix(cases_dir()).unwrap_or(&self.file);
        format!("{}:{}", rel.display(), self.line_offset + 1)
    }

    /// The text with comment-only lines removed and blank runs trimmed:
    /// what the printer must reproduce.
    pub fn canonical_text(&self) -> String {
        let lines: Vec<&str> = self
            .text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect();
        let mut out = lines.join("\n").trim_matches('\n').to_string();
        out.push('\n');
        out
    }
}

/// The `testsuite/cases` folder.
pub fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cases")
}

/// Every `.fir` file below a folder, sorted.
pub fn fir_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "fir") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Splits a file into cases and reads their directives.
pub fn load_cases(file: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut cases = Vec::new();
    let mut chunk: Vec<&str> = Vec::new();
    let mut offset = 0;
    let mut flush = |chunk: &mut Vec<&str>, offset: usize| {
        if chunk.iter().any(|l| !l.trim().is_empty()) {
            cases.push(parse_case(file, offset, &chunk.join("\n")));
        }
        chunk.clear();
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim() == "// -----" {
            flush(&mut chunk, offset);
            offset = i + 1;
        } else {
            chunk.push(line);
        }
    }
    flush(&mut chunk, offset);
    cases
}

fn parse_case(file: &Path, line_offset: usize, text: &str) -> Case {
    let mut case = Case { file: file.to_path_buf(), line_offset, text: format!("{text}\n"), passes: None, errors: Vec::new(), runs: Vec::new(), tolerance: 1e-5 };
    for (i, line) in text.lines().enumerate() {
        let Some(at) = line.find("//") else { continue };
        let comment = line[at + 2..].trim();
        if let Some(p) = comment.strip_prefix("test: passes=") {
            case.passes = Some(p.trim().to_string());
        } else if let Some(e) = comment.strip_prefix("error:") {
            case.errors.push((i + 1, e.trim().to_string()));
        } else if let Some(r) = comment.strip_prefix("run:") {
            case.runs.push(r.trim().to_string());
        } else if let Some(t) = comment.strip_prefix("tolerance:") {
            case.tolerance = t.trim().parse().unwrap_or_else(|_| panic!("{}: bad tolerance", file.display()));
        }
    }
    case
}

/// Every case of every file below `cases/<sub>`.
pub fn cases_in(sub: &str) -> Vec<Case> {
    fir_files(&cases_dir().join(sub)).iter().flat_map(|f| load_cases(f)).collect()
}

fn parse_list(s: &str) -> Result<(Vec<f64>, &str), String> {
    let s = s.trim_start();
    let body = s.strip_prefix('[').ok_or_else(|| format!("expected '[' at '{s}'"))?;
    let end = body.find(']').ok_or("unclosed '['")?;
    let vals = body[..end]
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| match x {
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            "nan" => Ok(f64::NAN),
            _ => x.parse::<f64>().map_err(|_| format!("bad number '{x}'")),
        })
        .collect::<Result<_, _>>()?;
    Ok((vals, &body[end + 1..]))
}

/// Executes one `// run:` directive against a module.
pub fn check_run(m: &Module, run: &str, tolerance: f64) -> Result<(), String> {
    let (call, expect) = run.split_once("=>").ok_or("a run line needs '=>'")?;
    let call = call.trim();
    let fname = call.split_whitespace().next().and_then(|f| f.strip_prefix('@')).ok_or("a run line starts with @func")?;
    let fid = m.func(fname).ok_or_else(|| format!("no function @{fname}"))?;
    let f = &m.funcs[fid];
    let mut rest = call[fname.len() + 1..].trim_start();
    let mut given: Vec<(String, Option<Vec<usize>>, Vec<f64>)> = Vec::new();
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or_else(|| format!("expected name=[...] at '{rest}'"))?;
        let head = rest[..eq].trim();
        let (name, shape) = match head.split_once('[') {
            Some((n, s)) => {
                let dims = s.trim_end_matches(']').split(',').map(str::trim).filter(|d| !d.is_empty()).map(|d| d.parse::<usize>().map_err(|_| format!("bad dim '{d}'"))).collect::<Result<Vec<_>, _>>()?;
                (n.to_string(), Some(dims))
            }
            None => (head.to_string(), None),
        };
        let (vals, r) = parse_list(&rest[eq + 1..])?;
        given.push((name, shape, vals));
        rest = r.trim_start();
    }
    let mut inputs = Vec::new();
    for &p in &f.params {
        let pname = f.dfg.values[p].name.clone().unwrap_or_default();
        let (_, shape, vals) = given.iter().find(|(n, _, _)| *n == pname).ok_or_else(|| format!("no value for %{pname}"))?;
        let ty = f.dfg.ty(p);
        let shape = match shape {
            Some(s) => s.clone(),
            None => ty.shape.iter().map(|d| match d { Dim::Fixed(n) => Ok(*n as usize), Dim::Sym(s) => Err(format!("%{pname} has symbolic dim {s}: give a shape, {pname}[..]=[..]")) }).collect::<Result<_, _>>()?,
        };
        inputs.push(if ty.elem.is_float() {
            Tensor::float(ty.elem, &shape, vals.iter().map(|&v| v as f32).collect())
        } else {
            Tensor::int(ty.elem, &shape, vals.iter().map(|&v| v as i64).collect())?
        });
    }
    let outputs = Interpreter::new(m).run_id(fid, inputs).map_err(|e| e.to_string())?;
    let mut rest = expect.trim();
    for (i, out) in outputs.iter().enumerate() {
        let (want, r) = parse_list(rest)?;
        rest = r.trim_start().trim_start_matches(',');
        let got = out.to_f64().ok_or("result is encoded")?;
        if got.len() != want.len() {
            return Err(format!("result {i}: {} values, expected {}", got.len(), want.len()));
        }
        for (k, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let ok = if w.is_nan() { g.is_nan() } else if w.is_infinite() { g == w } else { (g - w).abs() <= tolerance * w.abs().max(1.0) };
            if !ok {
                return Err(format!("result {i}[{k}] = {g}, expected {w} (tolerance {tolerance}); all: {got:?}"));
            }
        }
    }
    if !rest.trim().is_empty() {
        return Err(format!("more expected results than the function returns: '{rest}'"));
    }
    Ok(())
}

pub use gate::cached;
