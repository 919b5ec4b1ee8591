//! Generated tokens to text: bytes are held until they form complete UTF-8,
//! and text that may be the start of a stop string is held until it is
//! known not to be one, so a caller never sees part of a stop string.

/// An incremental detokenizer with stop strings.
pub struct TextStream {
    stop: Vec<String>,
    bytes: Vec<u8>,
    held: String,
}

impl TextStream {
    /// A stream cut at the first occurrence of any of `stop` (empty strings are ignored).
    pub fn new(stop: Vec<String>) -> TextStream {
        TextStream { stop: stop.into_iter().filter(|s| !s.is_empty()).collect(), bytes: Vec::new(), held: String::new() }
    }

    /// Adds a token's bytes and appends the text now safe to show to `out`.
    /// Returns true when a stop string appeared: `out` then ends just before it.
    pub fn push(&mut self, piece: &[u8], out: &mut String) -> bool {
        self.bytes.extend_from_slice(piece);
        let valid = match std::str::from_utf8(&self.bytes) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_some() => self.bytes.len(), // invalid, not incomplete: show it replaced
            Err(e) => e.valid_up_to(),
        };
        self.held.push_str(&String::from_utf8_lossy(&self.bytes[..valid]));
        self.bytes.drain(..valid);
        if let Some(at) = self.stop.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            out.push_str(&self.held[..at]);
            self.held.clear();
            self.bytes.clear();
            return true;
        }
        // Keep the longest tail that begins some stop string.
        let keep = self
            .held
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| self.stop.iter().any(|s| s.starts_with(&self.held[i..])))
            .unwrap_or(self.held.len());
        out.push_str(&self.held[..keep]);
        self.held.drain(..keep);
        false
    }

    /// Appends everything held back (the sequence ended without a stop string).
    pub fn flush(&mut self, out: &mut String) {
        out.push_str(&self.held);
        out.push_str(&String::from_utf8_lossy(&self.bytes));
        self.held.clear();
        self.bytes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stop: &[&str], pieces: &[&[u8]]) -> (Vec<String>, bool, String) {
        let mut t = TextStream::new(stop.iter().map(|s| s.to_string()).collect());
        let mut shown = Vec::new();
        for p in pieces {
            let mut out = String::new();
            if t.push(p, &mut out) {
                shown.push(out);
                return (shown, true, String::new());
            }
            shown.push(out);
        }
        let mut rest = String::new();
        t.flush(&mut rest);
        (shown, false, rest)
    }

    #[test]
    fn utf8_is_joined_across_tokens() {
        let e = "é".as_bytes();
        let (shown, stopped, rest) = run(&[], &[b"caf", &e[..1], &e[1..], b"!"]);
        assert_eq!(shown, ["caf", "", "é", "!"]);
        assert!(!stopped && rest.is_empty());
    }

    #[test]
    fn stop_strings_are_cut_and_never_shown() {
        let (shown, stopped, _) = run(&["\nUser:"], &[b"Hi", b" there\n", b"Us", b"er:", b" more"]);
        assert_eq!(shown.concat(), "Hi there");
        assert_eq!(shown, ["Hi", " there", "", ""]);
        assert!(stopped);
        // A false start is released once it cannot match.
        let (shown, stopped, rest) = run(&["END"], &[b"EN", b"D?", b"x"]);
        assert_eq!((shown.concat(), stopped, rest), (String::new(), true, String::new()));
        let (shown, stopped, rest) = run(&["END"], &[b"EN", b"x"]);
        assert_eq!((shown, stopped, rest), (vec![String::new(), "ENx".to_string()], false, String::new()));
        // Held text comes out at the end when no stop string completes.
        let (shown, _, rest) = run(&["END"], &[b"a E"]);
        assert_eq!((shown.concat(), rest), ("a ".to_string(), "E".to_string()));
    }
}
