//! Media types (`Content-Type` values) parsed strictly, as RFC 9110 §8.3.1 defines them:
//!
//! ```text
//! media-type = type "/" subtype parameters
//! parameters = *( OWS ";" OWS [ parameter ] )
//! parameter  = parameter-name "=" parameter-value
//! parameter-value = ( token / quoted-string )
//! ```
//!
//! with `token` as in §5.6.2 and `quoted-string` as in §5.6.4 (without obs-text: the value
//! becomes a header, so it stays visible ASCII). A value that is not exactly one media type is
//! refused rather than guessed at: a list (`image/png,text/html`, which browsers read as its
//! last type), an empty type or subtype, a wildcard, a bad parameter, a parameter given twice,
//! or a comma anywhere (even quoted: a reader that splits header values on commas would see two
//! types). The `mime` crate's parser is not used because it is not this strict.

use std::fmt;

/// How a value is not exactly one media type; its text completes "… is not one valid media type:".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaTypeError {
    #[error("a comma makes it a list of types")]
    List,
    #[error("it has no \"/\" between type and subtype")]
    NoSlash,
    /// `what` is `type` or `subtype`.
    #[error("its {what} {part:?} is not an RFC 9110 token")]
    NotAToken { what: &'static str, part: String },
    #[error("its {0} is a wildcard, not a file's type")]
    Wildcard(&'static str),
    #[error("its parameter {0:?} is given twice")]
    ParameterTwice(String),
    #[error("{0:?} follows a parameter without a \";\"")]
    NoSemicolon(String),
    #[error("its parameter {0:?} has no \"=\"")]
    NoEquals(String),
    #[error("its parameter name {0:?} is not a token")]
    NameNotAToken(String),
    #[error("the quoted value of its parameter {0:?} is malformed")]
    BadQuotedValue(String),
    #[error("the value {value:?} of its parameter {name:?} is neither a token nor a quoted string")]
    BadValue { value: String, name: String },
}

/// A parsed media type: lowercase `type/subtype` and its parameters in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// Lowercase type, e.g. `image`.
    pub ty: String,
    /// Lowercase subtype, e.g. `png`.
    pub subtype: String,
    /// `(lowercase name, value)` pairs; values unquoted, as they mean.
    pub params: Vec<(String, String)>,
}

impl MediaType {
    /// Parses `raw`, or says what is wrong with it.
    pub fn parse(raw: &str) -> Result<Self, MediaTypeError> {
        if raw.contains(',') {
            return Err(MediaTypeError::List);
        }
        let (essence, rest) = raw.split_once(';').unwrap_or((raw, ""));
        let (ty, subtype) = essence
            .trim_matches(is_ows)
            .split_once('/')
            .ok_or(MediaTypeError::NoSlash)?;
        for (what, part) in [("type", ty), ("subtype", subtype)] {
            if !is_token(part) {
                return Err(MediaTypeError::NotAToken {
                    what,
                    part: part.to_owned(),
                });
            }
            if part == "*" {
                return Err(MediaTypeError::Wildcard(what));
            }
        }
        let mut params: Vec<(String, String)> = Vec::new();
        let mut rest = rest;
        loop {
            rest = rest.trim_start_matches(is_ows);
            if rest.is_empty() {
                break;
            }
            if let Some(after) = rest.strip_prefix(';') {
                // An empty parameter, which RFC 9110 allows.
                rest = after;
                continue;
            }
            let (name, value, after) = parameter(rest)?;
            if params.iter().any(|(n, _)| *n == name) {
                return Err(MediaTypeError::ParameterTwice(name));
            }
            params.push((name, value));
            rest = after.trim_start_matches(is_ows);
            match rest.strip_prefix(';') {
                Some(after) => rest = after,
                None if rest.is_empty() => break,
                None => return Err(MediaTypeError::NoSemicolon(rest.to_owned())),
            }
        }
        Ok(Self {
            ty: ty.to_ascii_lowercase(),
            subtype: subtype.to_ascii_lowercase(),
            params,
        })
    }

    /// `type/subtype`, lowercase, without parameters: what allow-lists compare.
    pub fn essence(&self) -> String {
        format!("{}/{}", self.ty, self.subtype)
    }
}

/// The normalised form: `type/subtype;name=value`, lowercase names, each value a token where it
/// can be and a quoted-string otherwise.
impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ty, self.subtype)?;
        for (name, value) in &self.params {
            if is_token(value) {
                write!(f, ";{name}={value}")?;
            } else {
                f.write_str(";")?;
                f.write_str(name)?;
                f.write_str("=\"")?;
                for c in value.chars() {
                    if c == '"' || c == '\\' {
                        f.write_str("\\")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("\"")?;
            }
        }
        Ok(())
    }
}

/// One `name=value` at the start of `s`: the lowercase name, the value, and what follows it.
fn parameter(s: &str) -> Result<(String, String, &str), MediaTypeError> {
    let (name, rest) = s
        .split_once('=')
        .ok_or_else(|| MediaTypeError::NoEquals(first_word(s).to_owned()))?;
    if !is_token(name) {
        return Err(MediaTypeError::NameNotAToken(name.to_owned()));
    }
    let name = name.to_ascii_lowercase();
    if let Some(quoted) = rest.strip_prefix('"') {
        let (value, after) =
            quoted_string(quoted).ok_or_else(|| MediaTypeError::BadQuotedValue(name.clone()))?;
        return Ok((name, value, after));
    }
    let end = rest.find(|c| c == ';' || is_ows(c)).unwrap_or(rest.len());
    let value = &rest[..end];
    if !is_token(value) {
        return Err(MediaTypeError::BadValue {
            value: value.to_owned(),
            name,
        });
    }
    Ok((name, value.to_owned(), &rest[end..]))
}

/// The contents of a quoted-string whose opening quote is already consumed, and what follows
/// its closing quote.
fn quoted_string(s: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e)) if e == '\t' || e == ' ' || e.is_ascii_graphic() => value.push(e),
                _ => return None,
            },
            c if c == '\t' || c == ' ' || c.is_ascii_graphic() => value.push(c),
            _ => return None,
        }
    }
    None
}

fn first_word(s: &str) -> &str {
    s.split(|c| c == ';' || is_ows(c)).next().unwrap_or(s)
}

/// Optional whitespace (RFC 9110 §5.6.3): space and horizontal tab.
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `token = 1*tchar` (RFC 9110 §5.6.2).
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(input, normalised form or None for refused)`.
    const CASES: &[(&str, Option<&str>)] = &[
        ("image/png", Some("image/png")),
        ("Image/PNG", Some("image/png")),
        ("  image/png\t", Some("image/png")),
        (
            "text/plain; charset=utf-8",
            Some("text/plain;charset=utf-8"),
        ),
        ("text/plain;CHARSET=UTF-8", Some("text/plain;charset=UTF-8")),
        (
            "text/plain ;\tcharset=utf-8 ",
            Some("text/plain;charset=utf-8"),
        ),
        (
            "text/plain; charset=\"utf-8\"",
            Some("text/plain;charset=utf-8"),
        ),
        (
            "application/x;a=\"b c\";d=e",
            Some("application/x;a=\"b c\";d=e"),
        ),
        (
            "application/x;a=\"q\\\"uote\"",
            Some("application/x;a=\"q\\\"uote\""),
        ),
        ("application/x;a=\"\"", Some("application/x;a=\"\"")),
        ("image/png;", Some("image/png")),
        ("image/png;;x=1", Some("image/png;x=1")),
        ("application/vnd.ms-excel", Some("application/vnd.ms-excel")),
        ("image/svg+xml", Some("image/svg+xml")),
        // Lists, in every spelling.
        ("image/png,text/html", None),
        ("image/png, text/html", None),
        ("image/png;x=,text/html", None),
        ("image/png;x=\"a,text/html\"", None),
        ("image/png,", None),
        (",image/png", None),
        // Empty or missing parts.
        ("image/", None),
        ("/png", None),
        ("/", None),
        ("image", None),
        ("image/png/x", None),
        ("image /png", None),
        ("image/ png", None),
        // Wildcards are ranges, not a file's type.
        ("*/*", None),
        ("image/*", None),
        // Bad tokens.
        ("im@ge/png", None),
        ("image/p(n)g", None),
        ("image/pñg", None),
        ("image/png\n", None),
        ("text/html\u{0}", None),
        // Bad parameters.
        ("image/png;x=", None),
        ("image/png;x", None),
        ("image/png;=1", None),
        ("image/png;x y=1", None),
        ("image/png;x=a b", None),
        ("image/png;x=a;x=b", None),
        ("image/png;X=a;x=b", None),
        ("image/png;x=\"open", None),
        ("image/png;x=\"a\"b", None),
        ("image/png;x=\"a\\\u{1}\"", None),
        ("image/png;x=a=b", None),
        ("image/png text/html", None),
    ];

    #[test]
    fn media_types_parse_as_rfc_9110_says() {
        for (raw, want) in CASES {
            let got = MediaType::parse(raw).map(|m| m.to_string());
            match want {
                Some(want) => assert_eq!(got.as_deref(), Ok(*want), "{raw:?}"),
                None => assert!(got.is_err(), "{raw:?} was accepted as {got:?}"),
            }
        }
    }

    #[test]
    fn the_normalised_form_parses_to_itself() {
        for (raw, want) in CASES {
            if want.is_some() {
                let once = MediaType::parse(raw).unwrap();
                assert_eq!(
                    MediaType::parse(&once.to_string()).unwrap(),
                    once,
                    "{raw:?}"
                );
            }
        }
    }

    #[test]
    fn the_essence_is_lowercase_type_and_subtype() {
        let m = MediaType::parse("Video/MP4; codecs=\"avc1\"").unwrap();
        assert_eq!(m.essence(), "video/mp4");
        assert_eq!(m.params, [("codecs".to_owned(), "avc1".to_owned())]);
    }
}
