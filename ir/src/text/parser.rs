//! Recursive-descent parser for `.fir` text, with spans on every error.
//!
//! The grammar (EBNF) is in the [`text`](super) module docs. The parser builds
//! ops with the result types written in the text and leaves type checking to
//! the verifier, so a type error is reported once, by the rule that owns it.
//! Names are resolved as they are read: a use before its definition is an
//! "undefined value" error at the use.

use super::lexer::Tok;
use crate::diag::Diagnostic;
use crate::func::{Func, Span};
use crate::module::Module;
use crate::ops::{AttrLit, Dense, OpAttrs, Opcode};
use crate::quant::ParamValue;
use crate::types::{Dim, ElemType, Encoding, TensorType};
use crate::weights::{WeightData, WeightSource};
use logos::Logos;
use std::collections::HashMap;
use std::sync::Arc;

type PResult<T> = Result<T, Diagnostic>;

/// Parses a whole module.
pub fn parse_module(src: &str) -> PResult<Module> {
    let mut p = Parser::new(src)?;
    p.module()
}

/// Parses a type such as `f32[1, seq] #q8_0`.
pub fn parse_type(src: &str) -> PResult<TensorType> {
    let mut p = Parser::new(src)?;
    let t = p.ty()?;
    p.expect_end()?;
    Ok(t)
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<(Tok, Span)>,
    pos: usize,
    /// Nesting depth of attribute lists (`[[...]]`), bounded by
    /// [`MAX_NESTING`] so hostile text cannot overflow the stack.
    depth: usize,
}

/// The deepest attribute-list nesting accepted (`lit` recurses once per level;
/// without a bound, `[[[[...` a few hundred thousand deep overflows the stack).
pub const MAX_NESTING: usize = 64;

impl<'s> Parser<'s> {
    fn new(src: &'s str) -> PResult<Parser<'s>> {
        if src.len() > u32::MAX as usize {
            return Err(Diagnostic::new(Span::default(), "input is larger than 4 GiB"));
        }
        let mut toks = Vec::new();
        let mut lex = Tok::lexer(src);
        while let Some(t) = lex.next() {
            let r = lex.span();
            let span = Span::new(r.start, r.end);
            match t {
                Ok(t) => toks.push((t, span)),
                Err(()) => {
                    let text: String = src[r.start..].chars().take(1).collect();
                    let msg = if text == "\"" { "unterminated string".to_string() } else { format!("unexpected character {text:?}") };
                    return Err(Diagnostic::new(span, msg));
                }
            }
        }
        Ok(Parser { src, toks, pos: 0, depth: 0 })
    }

    fn peek(&self) -> Option<Tok> {
        self.toks.get(self.pos).map(|t| t.0)
    }

    fn peek_text(&self) -> &'s str {
        self.toks.get(self.pos).map_or("", |(_, s)| &self.src[s.start as usize..s.end as usize])
    }

    fn span(&self) -> Span {
        match self.toks.get(self.pos) {
            Some((_, s)) => *s,
            // At the end of input, point just past the last token (on its
            // line) rather than at a trailing newline or comment.
            None => self.toks.last().map_or(Span::new(self.src.len(), self.src.len()), |(_, s)| Span { start: s.end, end: s.end }),
        }
    }

    fn err<T>(&self, msg: impl Into<String>) -> PResult<T> {
        Err(Diagnostic::new(self.span(), msg))
    }

    fn unexpected<T>(&self, wanted: &str) -> PResult<T> {
        match self.peek() {
            None => self.err(format!("expected {wanted}, found end of input")),
            Some(_) => self.err(format!("expected {wanted}, found '{}'", self.peek_text())),
        }
    }

    fn bump(&mut self) -> (&'s str, Span) {
        let text = self.peek_text();
        let span = self.span();
        self.pos += 1;
        (text, span)
    }

    fn eat(&mut self, t: Tok) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: Tok) -> PResult<(&'s str, Span)> {
        if self.peek() == Some(t) { Ok(self.bump()) } else { self.unexpected(t.describe()) }
    }

    fn expect_keyword(&mut self, kw: &str) -> PResult<Span> {
        if self.peek() == Some(Tok::Ident) && self.peek_text() == kw { Ok(self.bump().1) } else { self.unexpected(&format!("'{kw}'")) }
    }

    fn at_keyword(&self, kw: &str) -> bool {
        self.peek() == Some(Tok::Ident) && self.peek_text() == kw
    }

    fn expect_end(&self) -> PResult<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.err(format!("unexpected '{}' after the end", self.peek_text())),
        }
    }

    /// `a, b, c` until `close`, with `item` parsing each.
    fn list<T>(&mut self, close: Tok, mut item: impl FnMut(&mut Self) -> PResult<T>) -> PResult<Vec<T>> {
        let mut out = Vec::new();
        if self.eat(close) {
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            if self.eat(close) {
                return Ok(out);
            }
            if !self.eat(Tok::Comma) {
                return self.unexpected(&format!("',' or {}", close.describe()));
            }
        }
    }

    fn module(&mut self) -> PResult<Module> {
        let mut m = Module::default();
        if self.at_keyword("module") {
            self.bump();
            if self.peek() == Some(Tok::Symbol) {
                m.name = Some(self.bump().0[1..].to_string());
            }
            if self.eat(Tok::LBrace) {
                for (k, kspan, v) in self.attr_entries()? {
                    crate::quant::plan::check_module_attr(&k, &v).map_err(|e| Diagnostic::new(kspan, e))?;
                    m.meta.push((k, v));
                }
            }
        }
        while let Some(t) = self.peek() {
            if t == Tok::Ident && self.peek_text() == "weight" {
                self.weight(&mut m)?;
            } else if t == Tok::Ident && self.peek_text() == "func" {
                let f = self.func()?;
                if m.func(&f.name).is_some() {
                    return Err(Diagnostic::new(f.span, format!("function @{} is defined twice", f.name)));
                }
                m.funcs.push(f);
            } else {
                return self.unexpected("'func' or 'weight'");
            }
        }
        Ok(m)
    }

    fn weight(&mut self, m: &mut Module) -> PResult<()> {
        let start = self.expect_keyword("weight")?;
        let (name, nspan) = self.expect(Tok::Symbol)?;
        self.expect(Tok::Colon)?;
        let ty = self.ty()?;
        self.expect(Tok::Eq)?;
        let source = if self.at_keyword("file") {
            self.bump();
            self.expect(Tok::Lt)?;
            let path = self.string()?;
            self.expect(Tok::Comma)?;
            let offset = self.uint()?;
            self.expect(Tok::Comma)?;
            let len = self.uint()?;
            self.expect(Tok::Gt)?;
            WeightSource::File { path: path.into(), offset, len }
        } else if self.at_keyword("dense") {
            WeightSource::Inline(self.dense()?)
        } else {
            return self.unexpected("'dense<...>' or 'file<\"path\", offset, len>'");
        };
        let span = Span { start: start.start, end: self.toks[self.pos - 1].1.end };
        m.weights.insert(WeightData { name: name[1..].to_string(), ty, source, span }).map_err(|e| Diagnostic::new(nspan, e))?;
        Ok(())
    }

    fn func(&mut self) -> PResult<Func> {
        let start = self.expect_keyword("func")?;
        let (name, _) = self.expect(Tok::Symbol)?;
        self.expect(Tok::LParen)?;
        let params = self.list(Tok::RParen, |p| {
            let (v, vspan) = p.expect(Tok::Value)?;
            p.expect(Tok::Colon)?;
            Ok((v[1..].to_string(), vspan, p.ty()?))
        })?;
        let results = if self.eat(Tok::Arrow) {
            if self.eat(Tok::LParen) { self.list(Tok::RParen, |p| p.ty())? } else { vec![self.ty()?] }
        } else {
            Vec::new()
        };
        let named: Vec<_> = params.iter().map(|(n, _, t)| (Some(n.clone()), t.clone())).collect();
        let mut f = Func::new(&name[1..], &named, results);
        let mut scope: HashMap<String, ()> = HashMap::new();
        for (n, span, _) in &params {
            if scope.insert(n.clone(), ()).is_some() {
                return Err(Diagnostic::new(*span, format!("parameter %{n} is declared twice")));
            }
        }
        let mut names: HashMap<String, crate::entity::Value> = params.iter().map(|(n, _, _)| n.clone()).zip(f.params.iter().copied()).collect();
        self.expect(Tok::LBrace)?;
        loop {
            match self.peek() {
                Some(Tok::Value) => self.op(&mut f, &mut names)?,
                Some(Tok::Ident) if self.peek_text() == "return" => {
                    let (_, ret_span) = self.bump();
                    if self.peek() == Some(Tok::Value) {
                        loop {
                            let v = self.use_value(&names)?;
                            f.returns.push(v);
                            if !self.eat(Tok::Comma) {
                                break;
                            }
                        }
                    }
                    let close = self.span();
                    if !self.eat(Tok::RBrace) {
                        return if self.peek().is_none() { Err(Diagnostic::new(close, format!("function @{} is not closed: expected '}}'", f.name))) } else { self.unexpected("'}' after return") };
                    }
                    f.span = Span { start: start.start, end: close.end };
                    f.return_span = Span { start: ret_span.start, end: self.toks[self.pos - 2].1.end };
                    return Ok(f);
                }
                Some(Tok::RBrace) => return self.err(format!("function @{} has no 'return'", f.name)),
                None => return self.err(format!("function @{} is not closed: expected an op or 'return'", f.name)),
                Some(_) => return self.unexpected("an op ('%name = dialect.op ...') or 'return'"),
            }
        }
    }

    fn use_value(&mut self, names: &HashMap<String, crate::entity::Value>) -> PResult<crate::entity::Value> {
        let (v, span) = self.expect(Tok::Value)?;
        names.get(&v[1..]).copied().ok_or_else(|| {
            // Say so when the value is defined later in the same function.
            let later = self.toks[self.pos..]
                .iter()
                .take_while(|(t, s)| !(*t == Tok::Ident && &self.src[s.start as usize..s.end as usize] == "func"))
                .zip(self.toks[self.pos..].iter().skip(1))
                .any(|((t, s), (next, _))| *t == Tok::Value && &self.src[s.start as usize..s.end as usize] == v && *next == Tok::Eq);
            let msg = if later { format!("value {v} is used before it is defined") } else { format!("undefined value {v}") };
            Diagnostic::new(span, msg)
        })
    }

    fn op(&mut self, f: &mut Func, names: &mut HashMap<String, crate::entity::Value>) -> PResult<()> {
        let (res, res_span) = self.bump();
        self.expect(Tok::Eq)?;
        if self.peek() != Some(Tok::Ident) {
            return self.unexpected("an op name (dialect.op)");
        }
        let (mnemonic, mspan) = self.bump();
        let opcode = Opcode::from_mnemonic(mnemonic).ok_or_else(|| {
            let hint = if mnemonic.contains('.') { String::new() } else { " (op names are dialect-qualified, like tensor.add)".into() };
            Diagnostic::new(mspan, format!("unknown op '{mnemonic}'{hint}"))
        })?;
        let mut entries = Vec::new();
        if self.peek() == Some(Tok::Symbol) {
            let (s, _) = self.bump();
            entries.push(("name".to_string(), AttrLit::Symbol(s[1..].to_string())));
        }
        let mut args = Vec::new();
        if self.peek() == Some(Tok::Value) {
            loop {
                args.push(self.use_value(names)?);
                if !self.eat(Tok::Comma) {
                    break;
                }
            }
        }
        if !opcode.arity().accepts(args.len()) {
            return Err(Diagnostic::new(mspan, format!("'{mnemonic}' takes {} {}, got {}", opcode.arity(), opcode.operand_names(), args.len())));
        }
        let attr_span = self.span();
        if self.eat(Tok::LBrace) {
            for (k, kspan, v) in self.attr_entries()? {
                if entries.iter().any(|(k2, _)| *k2 == k) {
                    return Err(Diagnostic::new(kspan, format!("attribute '{k}' is given twice")));
                }
                entries.push((k, v));
            }
        }
        let attrs = OpAttrs::from_entries(opcode, entries).map_err(|m| Diagnostic::new(attr_span, m))?;
        if !self.eat(Tok::Colon) {
            return self.unexpected("':' and the result type");
        }
        let ty = self.ty()?;
        let name = res[1..].to_string();
        if names.contains_key(&name) {
            return Err(Diagnostic::new(res_span, format!("value {res} is defined twice")));
        }
        let (op, v) = f.dfg.make_op(attrs, &args, ty, Some(name.clone()));
        f.layout.push(op);
        f.srclocs[op] = Span { start: res_span.start, end: self.toks[self.pos - 1].1.end };
        names.insert(name, v);
        Ok(())
    }

    /// Entries after `{` up to and including `}`.
    fn attr_entries(&mut self) -> PResult<Vec<(String, Span, AttrLit)>> {
        self.list(Tok::RBrace, |p| {
            let (k, kspan) = p.expect(Tok::Ident)?;
            let v = if p.eat(Tok::Eq) { p.lit()? } else { AttrLit::Bool(true) };
            Ok((k.to_string(), kspan, v))
        })
    }

    fn lit(&mut self) -> PResult<AttrLit> {
        let span = self.span();
        Ok(match self.peek() {
            Some(Tok::Int) => AttrLit::Int(self.int()?),
            Some(Tok::Float) => AttrLit::Float(self.float()?),
            Some(Tok::Str) => AttrLit::Str(self.string()?),
            Some(Tok::Symbol) => AttrLit::Symbol(self.bump().0[1..].to_string()),
            Some(Tok::Hash) => AttrLit::Encoding(self.encoding()?),
            Some(Tok::LBracket) => {
                if self.depth >= MAX_NESTING {
                    return self.err(format!("attribute lists nest deeper than {MAX_NESTING} levels"));
                }
                self.bump();
                self.depth += 1;
                let items = self.list(Tok::RBracket, |p| p.lit());
                self.depth -= 1;
                AttrLit::List(items?)
            }
            Some(Tok::Ident) => match self.peek_text() {
                "true" | "false" => AttrLit::Bool(self.bump().0 == "true"),
                "inf" | "nan" => AttrLit::Float(self.float()?),
                "dense" => AttrLit::Dense(self.dense()?),
                _ => AttrLit::Ident(self.bump().0.to_string()),
            },
            _ => return Err(Diagnostic::new(span, format!("expected an attribute value, found '{}'", self.peek_text()))),
        })
    }

    fn dense(&mut self) -> PResult<Dense> {
        self.expect_keyword("dense")?;
        self.expect(Tok::Lt)?;
        let d = if self.peek() == Some(Tok::Str) {
            let span = self.span();
            let s = self.string()?;
            let hex = s.strip_prefix("0x").ok_or_else(|| Diagnostic::new(span, "raw bytes are written as \"0x...\""))?;
            if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Diagnostic::new(span, "raw bytes must be an even number of hex digits"));
            }
            Dense::Bytes((0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0)).collect())
        } else {
            self.expect(Tok::LBracket)?;
            let lits = self.list(Tok::RBracket, |p| match p.peek() {
                Some(Tok::Int) => Ok(AttrLit::Int(p.int()?)),
                Some(Tok::Float) => Ok(AttrLit::Float(p.float()?)),
                Some(Tok::Ident) if matches!(p.peek_text(), "inf" | "nan") => Ok(AttrLit::Float(p.float()?)),
                _ => p.unexpected("a number"),
            })?;
            if lits.iter().all(|l| matches!(l, AttrLit::Int(_))) && !lits.is_empty() {
                Dense::Int(lits.iter().map(|l| if let AttrLit::Int(i) = l { *i } else { 0 }).collect())
            } else {
                Dense::Float(lits.iter().map(|l| match l { AttrLit::Int(i) => *i as f64, AttrLit::Float(x) => *x, _ => 0.0 }).collect())
            }
        };
        self.expect(Tok::Gt)?;
        Ok(d)
    }

    fn int(&mut self) -> PResult<i64> {
        let (t, span) = self.expect(Tok::Int)?;
        t.parse().map_err(|_| Diagnostic::new(span, format!("integer {t} does not fit in 64 bits")))
    }

    fn uint(&mut self) -> PResult<u64> {
        let (t, span) = self.expect(Tok::Int)?;
        t.parse().map_err(|_| Diagnostic::new(span, format!("expected a non-negative integer that fits in 64 bits, got {t}")))
    }

    fn float(&mut self) -> PResult<f64> {
        let (t, span) = self.bump();
        match t {
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            "nan" => Ok(f64::NAN),
            _ => t.parse().map_err(|_| Diagnostic::new(span, format!("bad float {t}"))),
        }
    }

    fn string(&mut self) -> PResult<String> {
        let (t, span) = self.expect(Tok::Str)?;
        let mut out = String::new();
        let mut chars = t[1..t.len() - 1].chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                // The printer writes strings with Rust's `{:?}`, which escapes
                // NUL as `\0` (and may escape `'`): accept both so printing
                // then parsing stays the identity (found by fuzzing).
                Some('0') => out.push('\0'),
                Some('\'') => out.push('\''),
                Some('u') => {
                    let rest: String = chars.clone().collect();
                    let close = rest.find('}').filter(|_| rest.starts_with('{'));
                    let c = close.and_then(|i| u32::from_str_radix(&rest[1..i], 16).ok()).and_then(char::from_u32);
                    match (c, close) {
                        (Some(c), Some(i)) => {
                            out.push(c);
                            for _ in 0..=i {
                                chars.next();
                            }
                        }
                        _ => return Err(Diagnostic::new(span, "bad \\u{...} escape in string")),
                    }
                }
                other => return Err(Diagnostic::new(span, format!("unknown escape \\{} in string", other.map(String::from).unwrap_or_default()))),
            }
        }
        Ok(out)
    }

    fn encoding(&mut self) -> PResult<Encoding> {
        let (t, span) = self.expect(Tok::Hash)?;
        let params = if self.eat(Tok::Lt) {
            self.list(Tok::Gt, |p| {
                let (k, _) = p.expect(Tok::Ident)?;
                let v = if p.eat(Tok::Eq) { p.lit()?.to_param() } else { ParamValue::Bool(true) };
                Ok((k.to_string(), v))
            })?
        } else {
            Vec::new()
        };
        let end = self.toks[self.pos - 1].1.end;
        Encoding::parse(&t[1..], &params).map_err(|m| Diagnostic::new(Span { start: span.start, end }, m))
    }

    fn ty(&mut self) -> PResult<TensorType> {
        if self.peek() != Some(Tok::Ident) {
            return self.unexpected("a type like f32[2, 3]");
        }
        let (e, span) = self.bump();
        let elem = ElemType::from_name(e).ok_or_else(|| Diagnostic::new(span, format!("unknown element type '{e}'")))?;
        self.expect(Tok::LBracket)?;
        let shape = self.list(Tok::RBracket, |p| match p.peek() {
            Some(Tok::Int) if p.peek_text().starts_with('-') => p.err(format!("a dimension must be a non-negative size or a symbol, got {}", p.peek_text())),
            Some(Tok::Int) => Ok(Dim::Fixed(p.uint()?)),
            Some(Tok::Ident) => Ok(Dim::Sym(Arc::from(p.bump().0))),
            _ => p.unexpected("a dimension (a size or a symbol)"),
        })?;
        let encoding = if self.peek() == Some(Tok::Hash) { Some(self.encoding()?) } else { None };
        Ok(TensorType { shape, elem, encoding })
    }
}
