//! `flexc compile MODEL --target flexcim -o OUT`: a whole model to one
//! FlexCiM instruction stream.
//!
//! The model goes through the same import and pipeline as `flexc sim MODEL`
//! ([`super::model::prepare`]); every block linear and the LM head is
//! lowered, in layout order, with the GEMM inputs the reference interpreter
//! computes on `--tokens` seeded random token ids (a stream carries its
//! data), and the function's other ops (norms, attention, the embedding
//! gather, ...) follow as `host` instructions. `flexc sim OUT` simulates it.

use super::super::error::{CliError, CliResult};
use super::model::{prepare, progress_bar, Prepared};
use super::{load_arch, write_stream, CompileArgs};
use flexc_backends::flexcim::fromir::IrWork;
use flexc_backends::flexcim::lower_program;
use flexc_backends::flexcim::model::{activations, stream_work};

fn input_err(e: impl std::fmt::Display) -> CliError {
    CliError::input(format!("error: {e}"))
}

/// Compiles a model to a stream at `args.output`.
pub fn compile_model(args: &CompileArgs) -> CliResult {
    if args.explain {
        return Err(CliError::usage("error: --explain applies to .fir input (a model's pipeline has no select-gemm to explain unless --pipeline adds one; use `flexc opt --explain`)"));
    }
    if args.opts.tokens == 0 {
        return Err(CliError::usage("error: --tokens must be at least 1"));
    }
    let arch = load_arch(&args.opts)?;
    let (rows, func) = (args.opts.tokens, args.opts.func.as_deref());
    let bar = progress_bar(0, "steps");
    let Prepared { layers, module, .. } = prepare(&args.input, rows, args.pipeline.as_deref(), args.stats.as_deref(), func, &bar)?;
    bar.set_message(format!("interpreting {rows} token{}", if rows == 1 { "" } else { "s" }));
    let acts = activations(&module, func, &layers.layers, rows, args.opts.seed).map_err(input_err)?;
    let IrWork { work, host } = stream_work(&layers, acts, rows).map_err(input_err)?;
    bar.set_message("lowering");
    bar.set_length(work.len() as u64);
    bar.set_position(0);
    let (program, _) = lower_program(&arch, &work, &host, true, &mut |d| bar.set_position(d as u64)).map_err(input_err)?;
    bar.set_message("writing");
    write_stream(&args.output, &program)?;
    bar.finish_and_clear();
    Ok(())
}
