//! A tiny JSON writer for events and batches, plus the string cutting that keeps
//! every field within the protocol's limits.
//!
//! No serde and no `format!`: both would pull std's formatting into the wasm.
//! The tracker builds each event as a [`Json`] object once, when it happens, and
//! keeps the finished text in its queue; a batch is those texts joined.

use alloc::string::String;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `s` cut to at most `max` bytes, on a char boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// `s` without its `#fragment`.
pub(crate) fn no_fragment(s: &str) -> &str {
    before(s, b'#')
}

/// `s` up to the first `c` (an ASCII char), or all of it. Byte loops like this
/// one keep core's string searchers (and their panic paths) out of the wasm.
pub(crate) fn before(s: &str, c: u8) -> &str {
    s.get(..s.bytes().position(|b| b == c).unwrap_or(s.len()))
        .unwrap_or(s)
}

/// `s` with runs of whitespace collapsed to one space, trimmed, and cut to `max` chars.
pub(crate) fn squash(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut n = 0;
    for word in s.split_whitespace() {
        if n > 0 {
            if n + 1 >= max {
                break;
            }
            out.push(' ');
            n += 1;
        }
        for c in word.chars() {
            if n == max {
                return out;
            }
            out.push(c);
            n += 1;
        }
    }
    out
}

/// Append `bytes` as lowercase hex.
pub(crate) fn hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
}

/// Whether `s` is 32 lowercase hex chars (an event or session id).
pub(crate) fn is_hex_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| HEX.contains(&b))
}

/// Append `v` in decimal.
pub(crate) fn int(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    let n = v.unsigned_abs();
    let mut div = 1u64;
    while n / div >= 10 {
        div *= 10;
    }
    loop {
        out.push(char::from(b'0' + (n / div % 10) as u8));
        if div == 1 {
            break;
        }
        div /= 10;
    }
}

/// Append `s` as a JSON string literal.
pub(crate) fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                out.push_str("\\u00");
                hex(out, &[c as u8]);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Whether `s`, the output of `JSON.stringify`, is an object the collector will
/// accept: `{…}`, at most `max` bytes, not nested absurdly deep, and without the
/// `\udXXX` escapes `JSON.stringify` writes for lone surrogates (`serde_json` rejects
/// those, and with them the whole batch).
pub(crate) fn acceptable_props(s: &str, max: usize) -> bool {
    if !s.starts_with('{') || s.len() > max {
        return false;
    }
    let (mut depth, mut in_str, mut escaped) = (0u32, false, false);
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if escaped {
            escaped = false;
            // `\u` + `d8`..`df`: a surrogate (JSON.stringify never escapes valid pairs).
            if b == b'u'
                && bytes.next() == Some(b'd')
                && matches!(bytes.next(), Some(b'8'..=b'9' | b'a'..=b'f'))
            {
                return false;
            }
        } else if in_str {
            match b {
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_str = true,
                b'{' | b'[' => {
                    depth += 1;
                    if depth > 32 {
                        return false;
                    }
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    true
}

/// A JSON object being written, one field at a time.
pub(crate) struct Json(String);

impl Json {
    pub(crate) fn object() -> Self {
        Json(String::from("{"))
    }

    fn key(&mut self, k: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push('"');
        self.0.push_str(k);
        self.0.push_str("\":");
    }

    /// A string field, cut to `max` bytes.
    pub(crate) fn str(&mut self, k: &str, v: &str, max: usize) {
        self.key(k);
        quote(&mut self.0, cut(v, max));
    }

    pub(crate) fn int(&mut self, k: &str, v: i64) {
        self.key(k);
        int(&mut self.0, v);
    }

    pub(crate) fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.0.push_str(if v { "true" } else { "false" });
    }

    /// A field whose value is already JSON.
    pub(crate) fn raw(&mut self, k: &str, v: &str) {
        self.key(k);
        self.0.push_str(v);
    }

    /// What is written so far.
    pub(crate) fn text(&self) -> &str {
        &self.0
    }

    pub(crate) fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_char_boundaries() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("héllo", 3), "hé");
        assert_eq!(cut("abc", 10), "abc");
        assert_eq!(no_fragment("https://a.b/c?d#e#f"), "https://a.b/c?d");
        assert_eq!(squash("  Add \n\t to   cart  ", 64), "Add to cart");
        assert_eq!(squash("abc def", 4), "abc");
        assert_eq!(squash("abcdef", 4), "abcd");
        assert_eq!(squash(&"é".repeat(100), 64).chars().count(), 64);
    }

    #[test]
    fn writes_numbers_strings_and_objects() {
        let mut s = String::new();
        for v in [0, 7, 10, -42, 1_732_412_345_678, i64::MIN, i64::MAX] {
            s.clear();
            int(&mut s, v);
            assert_eq!(s, v.to_string());
        }
        let mut j = Json::object();
        j.str("a", "q\"b\\s\n\u{1}é", 100);
        j.int("n", -3);
        j.bool("e", true);
        j.raw("p", "{\"x\":1}");
        let text = j.finish();
        assert_eq!(
            text,
            r#"{"a":"q\"b\\s\n\u0001é","n":-3,"e":true,"p":{"x":1}}"#
        );
        let mut q = String::new();
        quote(&mut q, "\tü\u{1f}x\r\"");
        assert_eq!(q, r#""\tü\u001fx\r\"""#);
        q.clear();
        quote(&mut q, "");
        assert_eq!(q, r#""""#);
        let mut h = String::new();
        hex(&mut h, &[0, 0xab, 0xff]);
        assert_eq!(h, "00abff");
        assert!(is_hex_id("0123456789abcdef0123456789abcdef"));
        assert!(!is_hex_id("0123456789ABCDEF0123456789abcdef"));
    }

    #[test]
    fn accepts_only_props_the_collector_takes() {
        assert!(acceptable_props(
            r#"{"plan":"pro","n":3,"x":{"y":[1,2]}}"#,
            2048
        ));
        assert!(acceptable_props(r#"{"s":"\\ud800 is text"}"#, 2048));
        assert!(!acceptable_props(r#"{"s":"\ud800"}"#, 2048));
        assert!(!acceptable_props("[1]", 2048));
        assert!(!acceptable_props(r#"{"a":"long"}"#, 5));
        let deep = "{\"a\":".to_string() + &"[".repeat(40) + &"]".repeat(40) + "}";
        assert!(!acceptable_props(&deep, 2048));
    }
}
