//! `flexc exec`: run one function of a `.fir` module on given inputs with
//! the reference interpreter, and print or save its results.

use super::error::{CliError, CliResult};
use super::source::{load_module, read_source};
use crate::npy;
use crate::output::write_atomic;
use clap::Args;
use flexc_backends::reference::{Data, Interpreter, Tensor};
use flexc_ir::limits::check_memory;
use flexc_ir::types::Dim;
use std::collections::HashMap;
use flexc_ir::TensorType;
use std::path::PathBuf;

/// Arguments of `flexc exec`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  flexc exec add.fir --func add --input x=1,2,3 --input y=10,20,30\n  flexc exec ffn.fir --func ffn --input x=x.npy --output-dir out/\n\nInline values fill the parameter's declared (fixed) shape row-major;\nparameters with symbolic dimensions take .npy files.")]
pub struct ExecArgs {
    /// The `.fir` file (`-` for stdin).
    pub input: PathBuf,
    /// The function to run (default: the module's only or first function).
    #[arg(long = "func", short = 'f')]
    pub func: Option<String>,
    /// A parameter value: `NAME=FILE.npy` or `NAME=v1,v2,...` (NAME without `%`).
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// Write each result to `DIR/result<N>.npy` instead of printing it.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// Refuse to run when the function's tensors would need more than this
    /// (from the types, before allocating): bytes, or with a K/M/G/T suffix.
    #[arg(long, default_value = "8G", value_parser = flexc_ir::limits::parse_bytes)]
    pub max_memory: u64,
}

fn parse_input(spec: &str, ty: &TensorType) -> CliResult<Tensor> {
    let (_, value) = spec.split_once('=').unwrap_or(("", spec));
    if value.ends_with(".npy") {
        let bytes = flexc_ir::limits::read_regular(std::path::Path::new(value), flexc_ir::limits::DEFAULT_MAX_MEMORY).map_err(|e| CliError::input(format!("{value}: cannot read: {e}")))?;
        return npy::read(&bytes).map_err(|e| CliError::input(format!("{value}: {e}")));
    }
    let shape: Vec<usize> = ty
        .shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => Ok(*n as usize),
            Dim::Sym(s) => Err(CliError::usage(format!("error: --input {spec}: the parameter has symbolic dimension '{s}'; pass a .npy file"))),
        })
        .collect::<CliResult<_>>()?;
    let items: Vec<&str> = value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let want = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| CliError::input(format!("error: --input {spec}: {ty} has more elements than fit in memory")))?;
    if items.len() != want {
        return Err(CliError::usage(format!("error: --input {spec}: {ty} needs {want} values, got {}", items.len())));
    }
    let bad = |s: &str| CliError::usage(format!("error: --input {spec}: '{s}' is not a number"));
    if ty.elem.is_float() {
        let v = items.iter().map(|s| s.parse::<f32>().map_err(|_| bad(s))).collect::<CliResult<Vec<_>>>()?;
        Ok(Tensor::float(ty.elem, &shape, v))
    } else {
        let v = items.iter().map(|s| s.parse::<i64>().map_err(|_| bad(s))).collect::<CliResult<Vec<_>>>()?;
        Tensor::int(ty.elem, &shape, v).map_err(|e| CliError::usage(format!("error: --input {spec}: {e}")))
    }
}

/// Formats a tensor as nested lists, numpy style.
pub fn format_tensor(t: &Tensor) -> String {
    fn rec(out: &mut String, shape: &[usize], vals: &[String]) {
        if shape.is_empty() {
            out.push_str(&vals[0]);
            return;
        }
        let step = vals.len() / shape[0].max(1);
        out.push('[');
        for i in 0..shape[0] {
            if i > 0 {
                out.push_str(", ");
            }
            rec(out, &shape[1..], &vals[i * step..(i + 1) * step]);
        }
        out.push(']');
    }
    let vals: Vec<String> = match &t.data {
        Data::F32(v) => v.iter().map(|x| format!("{x}")).collect(),
        Data::Int(v) => v.iter().map(|x| x.to_string()).collect(),
        Data::Encoded(e, b) => return format!("<{} bytes of {e} storage>", b.len()),
    };
    let mut out = String::new();
    rec(&mut out, &t.shape, &vals);
    out
}

/// Runs `flexc exec`.
pub fn run(args: ExecArgs) -> CliResult {
    let src = read_source(&args.input)?;
    let module = load_module(&src)?;
    let fname = match args.func {
        Some(f) => f.trim_start_matches('@').to_string(),
        None => module.funcs.values().next().map(|f| f.name.clone()).ok_or_else(|| CliError::input(format!("{}: the module has no functions", src.name)))?,
    };
    let fid = module.func(&fname).ok_or_else(|| {
        let names: Vec<String> = module.funcs.values().map(|f| format!("@{}", f.name)).collect();
        CliError::usage(format!("error: no function @{fname} in {} (it has: {})", src.name, names.join(", ")))
    })?;
    let f = &module.funcs[fid];
    // Fixed shapes first, before any input is parsed or sized by them.
    check_memory(f, &|_| None, args.max_memory).map_err(|e| CliError::input(format!("{}: error: {e}", src.name)))?;
    let mut inputs = Vec::new();
    for (i, &p) in f.params.iter().enumerate() {
        let name = f.dfg.values[p].name.clone().unwrap_or_else(|| i.to_string());
        let spec = args
            .inputs
            .iter()
            .find(|s| s.split_once('=').is_some_and(|(n, _)| n.trim_start_matches('%') == name))
            .ok_or_else(|| CliError::usage(format!("error: missing --input {name}=... for parameter %{name}: {}", f.dfg.ty(p))))?;
        inputs.push(parse_input(spec, f.dfg.ty(p))?);
    }
    for s in &args.inputs {
        let n = s.split_once('=').map_or(s.as_str(), |(n, _)| n).trim_start_matches('%');
        if !f.params.iter().any(|&p| f.dfg.values[p].name.as_deref() == Some(n)) {
            return Err(CliError::usage(format!("error: --input {s}: @{fname} has no parameter %{n}")));
        }
    }
    // Then with the symbols the inputs bind (`seq` from a .npy file's shape).
    let mut bound: HashMap<String, u64> = HashMap::new();
    for (&p, t) in f.params.iter().zip(&inputs) {
        for (d, &n) in f.dfg.ty(p).shape.iter().zip(&t.shape) {
            if let Dim::Sym(s) = d {
                bound.entry(s.to_string()).or_insert(n as u64);
            }
        }
    }
    check_memory(f, &|s| bound.get(s).copied(), args.max_memory).map_err(|e| CliError::input(format!("{}: error: {e}", src.name)))?;
    let outputs = Interpreter::new(&module).run_id(fid, inputs).map_err(|e| CliError::input(format!("{}: error: {e}", src.name)))?;
    for (i, t) in outputs.iter().enumerate() {
        match &args.output_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| CliError::input(format!("{}: {e}", dir.display())))?;
                let bytes = npy::write(t).map_err(CliError::input)?;
                write_atomic(&dir.join(format!("result{i}.npy")), &bytes)?;
            }
            None => println!("result {i}: {} = {}", f.results[i], format_tensor(t)),
        }
    }
    Ok(())
}
