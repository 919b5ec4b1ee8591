//! Tokens of the `.fir` text format (a logos lexer).
//!
//! Shapes are bracketed (`f32[1, 640]`) so no token ever needs re-lexing, and
//! every sigil says what follows: `%` values, `@` symbols, `#` encodings.
//! `//` comments are skipped here; test directives in comments are read by
//! the test harness from the raw lines.

use logos::Logos;

/// A token kind.
#[derive(Logos, Copy, Clone, Debug, PartialEq, Eq)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip(r"//[^\n]*", allow_greedy = true))]
pub enum Tok {
    /// `%name`
    #[regex(r"%[A-Za-z0-9_.$]+")]
    Value,
    /// `@name` (dots and dashes allowed: `@blk.0.attn_q.weight`)
    #[regex(r"@[A-Za-z0-9_.$\-]+")]
    Symbol,
    /// `#name`
    #[regex(r"#[A-Za-z0-9_]+")]
    Hash,
    /// identifiers and dotted mnemonics (`func`, `f32`, `tensor.matmul`)
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")]
    Ident,
    /// integers
    #[regex(r"-?[0-9]+")]
    Int,
    /// floats (always with `.` or an exponent)
    #[regex(r"-?[0-9]+\.[0-9]*([eE][-+]?[0-9]+)?")]
    #[regex(r"-?[0-9]+[eE][-+]?[0-9]+")]
    #[token("-inf")]
    Float,
    /// `"..."` strings with backslash escapes
    #[regex(r#""([^"\\\n]|\\.)*""#)]
    Str,
    /// `[`
    #[token("[")]
    LBracket,
    /// `]`
    #[token("]")]
    RBracket,
    /// `(`
    #[token("(")]
    LParen,
    /// `)`
    #[token(")")]
    RParen,
    /// `{`
    #[token("{")]
    LBrace,
    /// `}`
    #[token("}")]
    RBrace,
    /// `<`
    #[token("<")]
    Lt,
    /// `>`
    #[token(">")]
    Gt,
    /// `,`
    #[token(",")]
    Comma,
    /// `:`
    #[token(":")]
    Colon,
    /// `=`
    #[token("=")]
    Eq,
    /// `->`
    #[token("->")]
    Arrow,
}

impl Tok {
    /// How the token kind is named in error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Tok::Value => "a value (%name)",
            Tok::Symbol => "a symbol (@name)",
            Tok::Hash => "an encoding (#name)",
            Tok::Ident => "an identifier",
            Tok::Int => "an integer",
            Tok::Float => "a float",
            Tok::Str => "a string",
            Tok::LBracket => "'['",
            Tok::RBracket => "']'",
            Tok::LParen => "'('",
            Tok::RParen => "')'",
            Tok::LBrace => "'{'",
            Tok::RBrace => "'}'",
            Tok::Lt => "'<'",
            Tok::Gt => "'>'",
            Tok::Comma => "','",
            Tok::Colon => "':'",
            Tok::Eq => "'='",
            Tok::Arrow => "'->'",
        }
    }
}
