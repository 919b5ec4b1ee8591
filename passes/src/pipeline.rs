//! Pipeline text: `canonicalize,flow-nm{sparsity=0.5,mode=nearest},dce`.
//!
//! A pipeline is a comma-separated list of pass names, each optionally
//! followed by `{key=value,...}`. Inside braces a comma that is not followed
//! by `key=` continues the previous value, so list-valued options read
//! naturally: `candidates=2:4,4:8,8:8`. Errors give the byte column.

use std::fmt;

/// One pass of a pipeline with its raw options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassSpec {
    /// The kebab-case pass name.
    pub name: String,
    /// `key = value` pairs, in order, values unparsed.
    pub options: Vec<(String, String)>,
}

impl fmt::Display for PassSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.options.is_empty() {
            f.write_str("{")?;
            for (i, (k, v)) in self.options.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{k}={v}")?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

/// A pipeline-text error at a byte column.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pipeline column {}: {message}", column + 1)]
pub struct PipelineSyntaxError {
    /// 0-based byte offset in the pipeline text.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Parses pipeline text into pass specs (names are not checked here).
pub fn parse_pipeline(text: &str) -> Result<Vec<PassSpec>, PipelineSyntaxError> {
    let err = |column: usize, message: String| PipelineSyntaxError { column, message };
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < bytes.len() && bytes[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    if i == bytes.len() {
        return Ok(out);
    }
    loop {
        skip_ws(&mut i);
        let start = i;
        while i < bytes.len() && is_name_char(bytes[i] as char) {
            i += 1;
        }
        if i == start {
            let found = text[i..].chars().next().map_or("end of text".to_string(), |c| format!("'{c}'"));
            return Err(err(i, format!("expected a pass name, found {found}")));
        }
        let name = text[start..i].to_string();
        let mut options: Vec<(String, String)> = Vec::new();
        skip_ws(&mut i);
        if i < bytes.len() && bytes[i] == b'{' {
            let open = i;
            let close = text[i..].find('}').map(|k| i + k).ok_or_else(|| err(open, format!("'{{' of pass '{name}' is not closed")))?;
            let body = &text[i + 1..close];
            let mut offset = i + 1;
            for part in body.split(',') {
                let trimmed = part.trim();
                match trimmed.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() && k.trim().chars().all(is_name_char) => {
                        let k = k.trim().to_string();
                        if options.iter().any(|(k2, _)| *k2 == k) {
                            return Err(err(offset, format!("option '{k}' of pass '{name}' is given twice")));
                        }
                        options.push((k, v.trim().to_string()));
                    }
                    _ if !trimmed.is_empty() && !options.is_empty() => {
                        let last = options.last_mut().expect("checked non-empty");
                        last.1.push(',');
                        last.1.push_str(trimmed);
                    }
                    _ if body.trim().is_empty() => {}
                    _ => return Err(err(offset, format!("expected key=value in the options of '{name}', found '{trimmed}'"))),
                }
                offset += part.len() + 1;
            }
            i = close + 1;
        }
        out.push(PassSpec { name, options });
        skip_ws(&mut i);
        if i == bytes.len() {
            return Ok(out);
        }
        if bytes[i] != b',' {
            let found = text[i..].chars().next().unwrap_or(' ');
            return Err(err(i, format!("expected ',' between passes, found '{found}'")));
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_continue_values() {
        let p = parse_pipeline("canonicalize, flow-nm{sparsity=0.5,candidates=2:4,4:8,mode=reference},dce").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[1].options, vec![("sparsity".into(), "0.5".into()), ("candidates".into(), "2:4,4:8".into()), ("mode".into(), "reference".into())]);
        assert_eq!(p[1].to_string(), "flow-nm{sparsity=0.5,candidates=2:4,4:8,mode=reference}");
    }

    #[test]
    fn errors_have_columns() {
        assert_eq!(parse_pipeline("dce{x=1").unwrap_err().column, 3);
        assert_eq!(parse_pipeline("dce;cse").unwrap_err().column, 3);
        assert_eq!(parse_pipeline("dce,,cse").unwrap_err().column, 4);
        assert!(parse_pipeline("dce{=1}").is_err());
        assert!(parse_pipeline("dce{a=1,a=2}").is_err());
        assert!(parse_pipeline("").unwrap().is_empty());
    }
}
