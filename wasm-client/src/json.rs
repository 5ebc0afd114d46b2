//! JSON for the page's module: a value tree, a parser and a writer, and (in [`wire`]) the signing
//! API's bodies and the resume records read from and written to it by hand.
//!
//! The page's module used `serde_json`, whose parser and writer are monomorphised per type, with
//! the derived visitors of the wire types. One value type, read field by field, took the page from
//! 569,822 to 524,343 bytes (187,361 to 167,537 gzipped; BENCHMARKS.md, "Page weight"). The JSON
//! on the wire is the same: fields in the order the protocol's types declare them, escaped as
//! `serde_json` escapes (the tests compare the bytes with `serde_json`'s).
//!
//! Numbers are read as whole numbers only: every number of the signing API and of the resume
//! records is one (a fraction of zeros, as an `f64` is written, is allowed). Parsing floats would
//! bring the float parser back for no field that needs it.

pub mod wire;

use std::fmt::Write as _;

/// A JSON value. Objects keep their fields in order, duplicates and all (the first one counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Json {
    Null,
    Bool(bool),
    /// A number: its value when it is a whole number that fits a `u64`, else `None`.
    Number(Option<u64>),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// How deep arrays and objects may nest (as `serde_json`'s default), so that a hostile answer
/// cannot overflow the stack.
const MAX_DEPTH: u32 = 128;

impl Json {
    /// Parses `text`, which must hold one value and nothing but whitespace around it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parser = Parser {
            bytes: text.as_bytes(),
            at: 0,
        };
        let value = parser.value(0)?;
        parser.space();
        if parser.at < parser.bytes.len() {
            return Err(parser.error("trailing characters"));
        }
        Ok(value)
    }

    /// The value as JSON text, without whitespace.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Self::Null => out.push_str("null"),
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Number(Some(n)) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "{n}");
            }
            Self::Number(None) => out.push_str("null"),
            Self::String(s) => write_string(out, s),
            Self::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Self::Object(fields) => {
                out.push('{');
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(out, name);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Self {
        Self::String(s.to_owned())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Self {
        Self::String(s)
    }
}

impl From<u64> for Json {
    fn from(n: u64) -> Self {
        Self::Number(Some(n))
    }
}

impl From<u32> for Json {
    fn from(n: u32) -> Self {
        Self::Number(Some(n.into()))
    }
}

/// `s` as a JSON string, escaped as `serde_json` escapes: quote, backslash and control
/// characters only.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> String {
        format!("{what} at byte {}", self.at)
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.space();
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let ate = self.peek() == Some(byte);
        if ate {
            self.at += 1;
        }
        ate
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, String> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a value"))
        }
    }

    fn value(&mut self, depth: u32) -> Result<Json, String> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deep"));
        }
        match self.peek() {
            Some(b'{') => {
                self.at += 1;
                let mut fields = Vec::new();
                if !self.eat(b'}') {
                    loop {
                        if self.peek() != Some(b'"') {
                            return Err(self.error("expected a field name"));
                        }
                        let name = self.string()?;
                        if !self.eat(b':') {
                            return Err(self.error("expected `:`"));
                        }
                        fields.push((name, self.value(depth + 1)?));
                        if self.eat(b'}') {
                            break;
                        }
                        if !self.eat(b',') {
                            return Err(self.error("expected `,` or `}`"));
                        }
                    }
                }
                Ok(Json::Object(fields))
            }
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                if !self.eat(b']') {
                    loop {
                        items.push(self.value(depth + 1)?);
                        if self.eat(b']') {
                            break;
                        }
                        if !self.eat(b',') {
                            return Err(self.error("expected `,` or `]`"));
                        }
                    }
                }
                Ok(Json::Array(items))
            }
            Some(b'"') => self.string().map(Json::String),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a value")),
            None => Err(self.error("unexpected end")),
        }
    }

    /// Digits from here on, possibly none; returns them.
    fn digits(&mut self) -> &[u8] {
        let start = self.at;
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        &self.bytes[start..self.at]
    }

    fn number(&mut self) -> Result<Json, String> {
        let negative = self.bytes[self.at] == b'-';
        if negative {
            self.at += 1;
        }
        let whole = self.digits();
        if whole.is_empty() || (whole.len() > 1 && whole[0] == b'0') {
            return Err(self.error("malformed number"));
        }
        // ASCII digits are UTF-8.
        let mut value = std::str::from_utf8(whole)
            .ok()
            .and_then(|w| w.parse::<u64>().ok());
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            let fraction = self.digits();
            if fraction.is_empty() {
                return Err(self.error("malformed number"));
            }
            if fraction.iter().any(|&d| d != b'0') {
                value = None;
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            if self.digits().is_empty() {
                return Err(self.error("malformed number"));
            }
            value = None;
        }
        if negative && value != Some(0) {
            value = None;
        }
        Ok(Json::Number(value))
    }

    /// A string, the opening quote next.
    fn string(&mut self) -> Result<String, String> {
        self.at += 1;
        let mut out = String::new();
        loop {
            let start = self.at;
            while let Some(&b) = self.bytes.get(self.at) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.at += 1;
            }
            // The text is a &str and the run stops only at ASCII bytes, so it is whole UTF-8.
            out.push_str(std::str::from_utf8(&self.bytes[start..self.at]).unwrap_or_default());
            match self.bytes.get(self.at) {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    let escaped = self.bytes.get(self.at).copied();
                    self.at += 1;
                    out.push(match escaped {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => self.unicode()?,
                        _ => return Err(self.error("malformed escape")),
                    });
                }
                Some(_) => return Err(self.error("control character in a string")),
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    /// The character of a `\u` escape, the hex digits next; a surrogate pair is two escapes.
    fn unicode(&mut self) -> Result<char, String> {
        let high = self.hex4()?;
        let code = if (0xd800..0xdc00).contains(&high) && self.bytes[self.at..].starts_with(b"\\u")
        {
            self.at += 2;
            let low = self.hex4()?;
            if !(0xdc00..0xe000).contains(&low) {
                return Err(self.error("unpaired surrogate"));
            }
            0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)
        } else {
            high
        };
        char::from_u32(code).ok_or_else(|| self.error("unpaired surrogate"))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .bytes
            .get(self.at..self.at + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("malformed escape"))?;
        self.at += 4;
        u32::from_str_radix(digits, 16).map_err(|_| self.error("malformed escape"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_serde_json_writes_and_writes_the_same_bytes() {
        let text = r#"{"a":[1,true,false,null,"x\"\\\n\t\u0001é"],"b":{},"c":[],"d":18446744073709551615}"#;
        let value = Json::parse(text).unwrap();
        assert_eq!(value.to_text(), text);
        let theirs: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&theirs).unwrap(), text);
    }

    #[test]
    fn reads_escapes_whitespace_and_surrogate_pairs() {
        let value = Json::parse(" { \"k\" : \"\\u00e9\\/\\ud83d\\ude00\\b\\f\\r\" } \n").unwrap();
        assert_eq!(
            value,
            Json::Object(vec![("k".into(), Json::String("é/😀\u{8}\u{c}\r".into()))])
        );
        assert_eq!(
            Json::String("\u{1f}\u{7f}".into()).to_text(),
            serde_json::to_string("\u{1f}\u{7f}").unwrap()
        );
    }

    #[test]
    fn numbers_are_whole_or_none() {
        let numbers =
            Json::parse("[0, 12, 1765000000000.0, 1.5, -1, -0, 1e3, 18446744073709551616]")
                .unwrap();
        assert_eq!(
            numbers,
            Json::Array(vec![
                Json::Number(Some(0)),
                Json::Number(Some(12)),
                Json::Number(Some(1_765_000_000_000)),
                Json::Number(None),
                Json::Number(None),
                Json::Number(Some(0)),
                Json::Number(None),
                Json::Number(None),
            ])
        );
    }

    #[test]
    fn refuses_what_is_not_json() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "{\"a\":1,}",
            "01",
            "1.",
            "-",
            "1e",
            "\"\\x\"",
            "\"a",
            "\"\u{1}\"",
            "\"\\ud800\\u0041\"",
            "nul",
            "{} x",
            "{1:2}",
        ] {
            assert!(Json::parse(bad).is_err(), "{bad:?} parsed");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(Json::parse(&deep).unwrap_err().contains("nested too deep"));
        let fine = "[".repeat(100) + &"]".repeat(100);
        assert!(Json::parse(&fine).is_ok());
    }
}
