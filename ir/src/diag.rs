//! Located diagnostics: `file:line:col: error: message`, the source line, and a caret.
//!
//! Parse and verify errors carry a [`Span`] into the source text; rendering
//! turns it into the one-line `file:line:col` form editors understand, plus
//! the offending line with a `^~~~` marker under the span.

use crate::func::Span;
use std::fmt::Write;

/// An error at a place in a source text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where (a byte range of the source).
    pub span: Span,
    /// What is wrong, one line.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic at a span.
    pub fn new(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic { span, message: message.into() }
    }

    /// The 1-based line and column of the span's start.
    pub fn line_col(&self, src: &str) -> (usize, usize) {
        line_col(src, self.span.start as usize)
    }

    /// `file:line:col: error: message`, the source line, and a caret line.
    pub fn render(&self, file: &str, src: &str) -> String {
        let start = (self.span.start as usize).min(src.len());
        let (line, col) = line_col(src, start);
        let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = src[start..].find('\n').map_or(src.len(), |i| start + i);
        // A very long line (minified or hostile input) is cut to a window
        // around the error, so the excerpt stays a few lines of terminal.
        let (from, to) = if line_end - line_start > MAX_EXCERPT {
            let from = floor_char(src, start.saturating_sub(MAX_EXCERPT / 2).max(line_start));
            (from, floor_char(src, (from + MAX_EXCERPT).min(line_end)))
        } else {
            (line_start, line_end)
        };
        let (pre, post) = (if from > line_start { "…" } else { "" }, if to < line_end { "…" } else { "" });
        let text = &src[from..to];
        let width = (self.span.end as usize).clamp(start + 1, to.max(start + 1)) - start;
        let mut out = format!("{file}:{line}:{col}: error: {}\n", self.message);
        let pad: String = pre.chars().chain(src[from..start].chars()).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        let _ = write!(out, "  {pre}{text}{post}\n  {pad}^{}", "~".repeat(width.saturating_sub(1).min(200)));
        out
    }
}

/// Longest source excerpt (bytes) shown under a diagnostic.
const MAX_EXCERPT: usize = 240;

/// The largest char boundary of `s` at or before `i`.
fn floor_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The 1-based line and column (in characters) of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before[before.rfind('\n').map_or(0, |i| i + 1)..].chars().count() + 1;
    (line, col)
}
