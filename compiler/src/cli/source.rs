//! Reading `.fir` input for the CLI: a file or `-` for stdin, parsed and
//! verified, with located diagnostics on failure.

use super::error::{CliError, CliResult};
use flexc_ir::text::parse_module;
use flexc_ir::verify::verify_module;
use flexc_ir::Module;
use std::io::Read;
use std::path::Path;

/// Source text and the name to report it under.
pub struct Source {
    /// The file name (`<stdin>` for `-`).
    pub name: String,
    /// The text.
    pub text: String,
}

/// Reads a file, or stdin when the path is `-`.
pub fn read_source(path: &Path) -> CliResult<Source> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| CliError::input(format!("<stdin>: cannot read: {e}")))?;
        return Ok(Source { name: "<stdin>".into(), text });
    }
    let bytes = std::fs::read(path).map_err(|e| CliError::input(format!("{}: cannot read: {e}", path.display())))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        CliError::input(format!("{}: byte {at}: the file is not UTF-8 text", path.display()))
    })?;
    Ok(Source { name: path.display().to_string(), text })
}

/// Parses and verifies a source into a module.
pub fn load_module(src: &Source) -> CliResult<Module> {
    let m = parse_module(&src.text).map_err(|d| CliError::input(d.render(&src.name, &src.text)))?;
    verify_module(&m).map_err(|errs| {
        let shown: Vec<String> = errs.iter().take(10).map(|e| e.render(&src.name, &src.text)).collect();
        let more = if errs.len() > 10 { format!("\n({} more errors)", errs.len() - 10) } else { String::new() };
        CliError::input(format!("{}{more}", shown.join("\n")))
    })?;
    Ok(m)
}
