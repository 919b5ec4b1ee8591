//! CLI errors: one line on stderr, an exit code per class.
//!
//! * 1: bad input (a file that does not parse or verify, a model file that is
//!   corrupt, an execution that fails on the given inputs);
//! * 2: bad usage (unknown flag, unknown pass, wrong option value) — clap
//!   uses 2 for its own usage errors too;
//! * 3: internal error (a bug in flexc: please report it).

use std::fmt;

/// The class of a CLI failure, which decides the exit code.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The input is wrong.
    Input,
    /// The command line is wrong.
    Usage,
    /// flexc is wrong.
    Internal,
}

/// A failure reported to the user.
#[derive(Debug)]
pub struct CliError {
    /// Its class.
    pub class: ErrorClass,
    /// The message: the first line names file, place and cause; rendered
    /// diagnostics may add the source line and a caret after it.
    pub message: String,
}

impl CliError {
    /// An input error.
    pub fn input(message: impl Into<String>) -> CliError {
        CliError { class: ErrorClass::Input, message: message.into() }
    }

    /// A usage error.
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError { class: ErrorClass::Usage, message: message.into() }
    }

    /// An internal error.
    pub fn internal(message: impl Into<String>) -> CliError {
        CliError { class: ErrorClass::Internal, message: message.into() }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self.class {
            ErrorClass::Input => 1,
            ErrorClass::Usage => 2,
            ErrorClass::Internal => 3,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        CliError::input(e.to_string())
    }
}

/// Results of CLI commands.
pub type CliResult<T = ()> = Result<T, CliError>;
