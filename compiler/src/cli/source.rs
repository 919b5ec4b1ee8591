//! Reading `.fir` input for the CLI: a file or `-` for stdin, parsed and
//! verified, with located diagnostics on failure.

use super::error::{CliError, CliResult};
use flexc_ir::text::parse_module;
use flexc_ir::verify::verify_module;
use flexc_ir::Module;
use flexc_ir::limits::{read_bounded, read_regular, MAX_TEXT_BYTES};
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
        let bytes = read_bounded(std::io::stdin().lock(), MAX_TEXT_BYTES).map_err(|e| CliError::input(format!("<stdin>: cannot read: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|e| CliError::input(format!("<stdin>: byte {}: the input is not UTF-8 text", e.utf8_error().valid_up_to())))?;
        return Ok(Source { name: "<stdin>".into(), text });
    }
    let bytes = read_regular(path, MAX_TEXT_BYTES).map_err(|e| CliError::input(format!("{}: cannot read: {e}", path.display())))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        CliError::input(format!("{}: byte {at}: the file is not UTF-8 text", path.display()))
    })?;
    Ok(Source { name: path.display().to_string(), text })
}

/// Reads a text file (a prompt, a book), refusing FIFOs and devices and
/// anything over [`MAX_TEXT_BYTES`].
pub fn read_text_file(path: &Path) -> CliResult<String> {
    let bytes = read_regular(path, MAX_TEXT_BYTES).map_err(|e| CliError::input(format!("{}: cannot read: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|e| CliError::input(format!("{}: byte {}: the file is not UTF-8 text", path.display(), e.utf8_error().valid_up_to())))
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
