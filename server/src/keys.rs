//! Object key policy: the server, not the browser, chooses every key.
//!
//! A key is `{key prefix}{uuid v4}/{sanitized file name}`. The UUID makes keys unguessable and
//! collision-free; the file name keeps the object recognisable to people. Every route that takes a
//! key back from a client checks it has exactly this shape, so no crafted key can reach an object
//! outside the prefix or one this server did not issue.
//!
//! Refused with `invalid_filename` — no browser sends these for a real file, so they are mistakes
//! or attacks, and saying so beats storing a surprising name: a name over
//! [`MAX_FILENAME_INPUT_BYTES`] bytes, a NUL character (the classic C-string truncation trick), and
//! a `..` path segment (`../../etc/passwd`). Everything else is cleaned up rather than refused:
//! other control characters and bidi overrides are dropped, path separators become `_`, leading
//! dots go, and a name whose cleaned form exceeds [`MAX_NAME_BYTES`] is truncated, keeping its
//! extension.

use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use crate::error::Error;
use s3_direct_protocol::ErrorCode;

/// Longest file name accepted as input, in UTF-8 bytes.
pub const MAX_FILENAME_INPUT_BYTES: usize = 1024;
/// Longest sanitized name kept in a key, in UTF-8 bytes (the usual file-system name limit, so the
/// object can be downloaded under its own name).
pub const MAX_NAME_BYTES: usize = 255;
/// Longest extension (with its dot) that truncation keeps intact.
const MAX_KEPT_EXTENSION_BYTES: usize = 16;
/// Name used when nothing is left after sanitizing.
const FALLBACK_NAME: &str = "file";

/// Issues keys and checks keys handed back by clients.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    prefix: String,
}

impl KeyPolicy {
    /// A policy issuing keys under `prefix` (e.g. `uploads/`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix every issued key starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A fresh key for a file the user called `filename`.
    pub fn issue(&self, filename: &str) -> Result<String, Error> {
        self.issue_under(&self.prefix, filename)
    }

    /// A fresh key under `prefix` (the policy's prefix plus a caller's own, already checked).
    pub fn issue_under(&self, prefix: &str, filename: &str) -> Result<String, Error> {
        let name = sanitize_filename(filename)?;
        Ok(format!("{prefix}{}/{name}", Uuid::new_v4()))
    }

    /// Checks that `key` is one this policy could have issued.
    pub fn check<'k>(&self, key: &'k str) -> Result<&'k str, Error> {
        self.check_under(&self.prefix, key)
    }

    /// Checks that `key` is `{prefix}{uuid}/{name}` as [`Self::issue_under`] makes them.
    pub fn check_under<'k>(&self, prefix: &str, key: &'k str) -> Result<&'k str, Error> {
        let invalid = |why: &str| {
            Error::bad_request(
                ErrorCode::InvalidKey,
                format!(
                    "key {:?} {why}; pass the key returned when the upload was created",
                    truncate_for_message(key)
                ),
            )
        };
        let Some(rest) = key.strip_prefix(prefix) else {
            return Err(invalid(&format!("is outside the key prefix {prefix:?}")));
        };
        let Some((id, name)) = rest.split_once('/') else {
            return Err(invalid("does not have the shape {prefix}{uuid}/{name}"));
        };
        let is_v4 = Uuid::try_parse(id)
            .is_ok_and(|u| u.get_version_num() == 4 && u.hyphenated().to_string() == id);
        if !is_v4 {
            return Err(invalid("does not have the shape {prefix}{uuid}/{name}"));
        }
        // A name we issued is its own sanitized form; anything else (a '/', "..", control
        // characters, a denormalised spelling) was not issued by us.
        if name.len() > MAX_NAME_BYTES || sanitize_filename(name).ok().as_deref() != Some(name) {
            return Err(invalid("has a file name this server would not issue"));
        }
        Ok(key)
    }
}

/// Turns a user's file name into the last segment of an object key.
///
/// Unicode NFC; control characters (NUL included) and bidirectional formatting characters dropped
/// (they make a name display as something it is not); `/` and `\` become `_`; leading dots
/// stripped (no hidden names, no `..`); surrounding whitespace trimmed; at most
/// [`MAX_NAME_BYTES`] bytes, keeping the extension; empty becomes `file`. Everything else,
/// including any script, emoji, `+` and `%`, is kept as typed.
pub fn sanitize_filename(filename: &str) -> Result<String, Error> {
    if filename.len() > MAX_FILENAME_INPUT_BYTES {
        return Err(Error::bad_request(
            ErrorCode::InvalidFilename,
            format!(
                "file name of {} bytes is longer than the {MAX_FILENAME_INPUT_BYTES}-byte limit; \
                 rename the file",
                filename.len()
            ),
        ));
    }
    if filename.contains('\0') {
        return Err(Error::bad_request(
            ErrorCode::InvalidFilename,
            "file name contains a NUL character; send the file's own name",
        ));
    }
    if filename
        .split(['/', '\\'])
        .any(|segment| segment.trim() == "..")
    {
        return Err(Error::bad_request(
            ErrorCode::InvalidFilename,
            format!(
                "file name {filename:?} contains a '..' path segment; send the file's own name, \
                 without folders"
            ),
        ));
    }
    let cleaned: String = filename
        .nfc()
        .filter(|&c| !c.is_control() && !is_bidi_control(c))
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect();
    // Dots and spaces alternate in ". . .." style names: strip both until neither leads.
    let cleaned = cleaned
        .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .trim_end();
    let truncated = truncate_keeping_extension(cleaned, MAX_NAME_BYTES);
    let name = truncated.trim_end();
    Ok(if name.is_empty() {
        FALLBACK_NAME.to_owned()
    } else {
        name.to_owned()
    })
}

/// Bidirectional embeddings, overrides, isolates and marks (Unicode TR9): invisible characters
/// that reorder how a name is displayed, e.g. to make `exe.txt` show as `txt.exe`.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

fn truncate_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    if let Some(dot) = name.rfind('.') {
        let ext = &name[dot..];
        if dot > 0 && ext.len() <= MAX_KEPT_EXTENSION_BYTES {
            let stem = floor_char_boundary(&name[..dot], max - ext.len());
            return format!("{}{ext}", stem.trim_end());
        }
    }
    floor_char_boundary(name, max).to_owned()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn floor_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Keeps error messages readable when a client sends a huge value.
pub(crate) fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 120;
    if s.len() <= MAX {
        s.to_owned()
    } else {
        format!("{}...", floor_char_boundary(s, MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str) -> String {
        sanitize_filename(name).unwrap()
    }

    #[test]
    fn unicode_and_url_characters_are_kept() {
        assert_eq!(s("ñ 日本 🎉 a+b%20.bin"), "ñ 日本 🎉 a+b%20.bin");
    }

    #[test]
    fn names_are_nfc() {
        // "é" as e + combining acute becomes the single code point.
        assert_eq!(s("cafe\u{301}.txt"), "caf\u{e9}.txt");
    }

    #[test]
    fn separators_and_dots_cannot_form_paths() {
        assert_eq!(s("dir/sub/file.txt"), "dir_sub_file.txt");
        assert_eq!(s("windows\\x"), "windows_x");
        assert_eq!(s("a..b"), "a..b");
        assert_eq!(s(".hidden"), "hidden");
        // Found by the fuzz target: a dot after spaces after dots.
        assert_eq!(s(".. .."), "file");
        assert_eq!(s(". .x"), "x");
        assert_eq!(s("a/b"), "a_b");
    }

    #[test]
    fn path_traversal_and_nul_are_refused() {
        for name in [
            "../../etc/passwd",
            "..",
            "x/../../y",
            "..\\windows\\x",
            " .. /a",
            "a\0b.txt",
        ] {
            let err = sanitize_filename(name).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidFilename, "{name:?}");
        }
    }

    #[test]
    fn control_and_bidi_characters_are_dropped() {
        assert_eq!(s("a\tb\nc\u{7f}.txt"), "abc.txt");
        assert_eq!(s("invoice\u{202E}txt.exe"), "invoicetxt.exe");
        assert_eq!(s("\u{2066}x\u{2069}"), "x");
    }

    #[test]
    fn whitespace_is_trimmed_and_empty_becomes_file() {
        assert_eq!(s("  report.pdf \t"), "report.pdf");
        assert_eq!(s(""), "file");
        assert_eq!(s("\u{1}\u{2}"), "file");
        assert_eq!(s(" . "), "file");
    }

    #[test]
    fn long_names_are_truncated_keeping_the_extension() {
        let long = format!("{}.tar.gz", "日".repeat(200)); // 600 + 7 bytes
        let out = s(&long);
        assert!(out.len() <= MAX_NAME_BYTES);
        assert!(out.ends_with("日.gz"), "{out}");
        let no_ext = "x".repeat(300);
        assert_eq!(s(&no_ext).len(), MAX_NAME_BYTES);
    }

    #[test]
    fn names_over_the_input_limit_are_refused() {
        let err = sanitize_filename(&"a".repeat(2000)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidFilename);
        assert!(err.to_string().contains("2000 bytes"), "{err}");
        assert!(sanitize_filename(&"a".repeat(MAX_FILENAME_INPUT_BYTES)).is_ok());
    }

    #[test]
    fn sanitizing_is_idempotent() {
        let samples = [
            "ñ 日本 🎉 a+b%20.bin".to_owned(),
            "dir/.x/..y".to_owned(),
            format!("{} .bin", "a".repeat(250)),
            format!("{}  ", "b ".repeat(200)),
            format!("{}.{}", "c".repeat(300), "d".repeat(20)),
            "e\u{301}".repeat(100),
        ];
        for name in samples {
            let once = s(&name);
            assert_eq!(s(&once), once, "for {name:?}");
        }
    }

    #[test]
    fn issued_keys_pass_the_check() {
        let policy = KeyPolicy::new("uploads/");
        for name in ["ñ 日本 🎉 a+b%20.bin", "dir/x", "", &"z".repeat(400)] {
            let key = policy.issue(name).unwrap();
            assert!(key.starts_with("uploads/"));
            assert_eq!(policy.check(&key).unwrap(), key);
        }
    }

    #[test]
    fn foreign_keys_are_refused() {
        let policy = KeyPolicy::new("uploads/");
        let id = "0b6f4f0e-7a4c-4c59-9d0b-2f6f4a1d3c11";
        assert!(policy.check(&format!("uploads/{id}/a.bin")).is_ok());
        for bad in [
            "secret.txt".to_owned(),
            format!("other/{id}/a.bin"),
            format!("uploads/{id}"),
            format!("uploads/{id}/../../secret"),
            format!("uploads/{id}/a/b"),
            format!("uploads/{id}/a\0b"),
            format!("uploads/{id}/.."),
            format!("uploads/{id}/"),
            "uploads/not-a-uuid/a.bin".to_owned(),
            format!("uploads/{}/a.bin", id.to_uppercase()),
            // A version 1 UUID is not one we issue.
            "uploads/6ba7b810-9dad-11d1-80b4-00c04fd430c8/a.bin".to_owned(),
        ] {
            let err = policy.check(&bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidKey, "{bad:?}");
        }
    }
}
