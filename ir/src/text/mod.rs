//! The `.fir` text format: lexer, parser and printer.
//!
//! ```text
//! module    := [ "module" [symbol] [attrs] ] { weight | func }
//! weight    := "weight" symbol ":" type "=" ( dense | "file" "<" string "," int "," int ">" )
//! func      := "func" symbol "(" [ param { "," param } ] ")" [ "->" results ] "{" { op } return "}"
//! param     := value ":" type
//! results   := type | "(" [ type { "," type } ] ")"
//! op        := value "=" mnemonic [ symbol ] [ value { "," value } ] [ attrs ] ":" type
//! return    := "return" [ value { "," value } ]
//! type      := elem "[" [ dim { "," dim } ] "]" [ encoding ]
//! dim       := int | ident                        (a fixed size or a named symbol)
//! attrs     := "{" [ attr { "," attr } ] "}"
//! attr      := ident [ "=" lit ]                  (a bare key means true)
//! lit       := int | float | "true" | "false" | ident | string | symbol | encoding
//!            | "[" [ lit { "," lit } ] "]" | dense
//! dense     := "dense" "<" ( "[" [ number { "," number } ] "]" | "\"0x" hex "\"" ) ">"
//! value     := "%" name        symbol := "@" name        encoding := "#" name
//! ```
//!
//! `//` starts a comment to the end of the line. Printing then parsing is the
//! identity; the printer's output is the canonical form.

pub mod lexer;
pub mod parser;
pub mod printer;

pub use parser::{parse_module, parse_type};
pub use printer::{print_func, print_module};
