//! Object key policy: the server, not the browser, chooses every key.
//!
//! A key is `{key prefix}{uuid v4}/{sanitized file name}`, or for a file of a folder the user
//! chose, `{key prefix}{uuid v4}/{sanitized folders}/{sanitized file name}`
//! ([`sanitize_folders`]: each folder cleaned like a name, at most [`MAX_FOLDER_DEPTH`] deep). The UUID makes keys unguessable and
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
//!
//! A key must also fit the store: S3 takes keys of up to [`S3_MAX_KEY_BYTES`], and a store may
//! take fewer ([`Store::max_key_bytes`](crate::store::Store::max_key_bytes); the embedded store
//! names files after whole keys, see `embedded/layout.rs`). The name is then cut further, so a
//! name of any length and script gets a key: the longest start of the sanitised name that fits,
//! cut between user-perceived characters (grapheme clusters, so never inside a character, an
//! accent's sequence or an emoji) and keeping the extension.

use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;
use uuid::Uuid;

use s3_direct_protocol::ErrorCode;

/// Why a file name or a key is refused; each kind is one stable [`ErrorCode`] of a 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A key that is not one this server issues, or a prefix that leaves no room for a name.
    #[error("{0}")]
    InvalidKey(String),
    /// A file name no browser sends for a real file.
    #[error("{0}")]
    InvalidFilename(String),
}

impl KeyError {
    /// The code the client sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidKey(_) => ErrorCode::InvalidKey,
            Self::InvalidFilename(_) => ErrorCode::InvalidFilename,
        }
    }
}

/// Longest file name accepted as input, in UTF-8 bytes.
pub const MAX_FILENAME_INPUT_BYTES: usize = 1024;
/// Longest sanitized name kept in a key, in UTF-8 bytes (the usual file-system name limit, so the
/// object can be downloaded under its own name).
pub const MAX_NAME_BYTES: usize = 255;
// Longest object key S3 accepts, in UTF-8 bytes: an S3 limit, so the protocol crate's.
use s3_direct_protocol::limits::MAX_KEY_BYTES as S3_MAX_KEY_BYTES;
/// Longest extension (with its dot) that truncation keeps intact.
const MAX_KEPT_EXTENSION_BYTES: usize = 16;
/// Fewest bytes a key must leave for the file name; a prefix leaving less is refused.
const MIN_NAME_BUDGET: usize = 8;
/// Bytes of a key after its prefix and before its name: a hyphenated UUID and `/`.
const ID_BYTES: usize = 36 + 1;
/// Deepest folder path a key keeps: the folders between the one the user chose and the file.
pub const MAX_FOLDER_DEPTH: usize = 32;
/// Longest relative path accepted as input, in UTF-8 bytes.
pub const MAX_RELATIVE_PATH_INPUT_BYTES: usize = 4096;
/// Name used when nothing is left after sanitizing.
const FALLBACK_NAME: &str = "file";

/// Issues keys and checks keys handed back by clients.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    prefix: String,
    /// Longest key the store takes.
    max_key_bytes: usize,
}

impl KeyPolicy {
    /// A policy issuing keys under `prefix` (e.g. `uploads/`) of at most S3's 1,024 bytes.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            max_key_bytes: S3_MAX_KEY_BYTES,
        }
    }

    /// The same policy for a store that takes keys of at most `max` bytes.
    #[must_use]
    pub fn with_max_key_bytes(mut self, max: usize) -> Self {
        self.max_key_bytes = max.min(S3_MAX_KEY_BYTES);
        self
    }

    /// Longest key this policy issues or accepts.
    pub fn max_key_bytes(&self) -> usize {
        self.max_key_bytes
    }

    /// The prefix every issued key starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A fresh key for a file the user called `filename`.
    pub fn issue(&self, filename: &str) -> Result<String, KeyError> {
        self.issue_under(&self.prefix, filename)
    }

    /// A fresh key under `prefix` (the policy's prefix plus a caller's own, already checked).
    ///
    /// The name is cut to what the store's key limit leaves after `prefix` and the id.
    pub fn issue_under(&self, prefix: &str, filename: &str) -> Result<String, KeyError> {
        self.issue_in(prefix, &[], filename)
    }

    /// A fresh key under `prefix` for a file in `folders` (from [`sanitize_folders`]): the
    /// folders kept whole, the name cut to what the store's key limit leaves after them. A
    /// folder path that leaves too little for a name is refused.
    pub fn issue_in(
        &self,
        prefix: &str,
        folders: &[String],
        filename: &str,
    ) -> Result<String, KeyError> {
        let name = sanitize_filename(filename)?;
        let mut budget = self.name_budget(prefix)?;
        let mut path = String::new();
        for folder in folders {
            path.push_str(folder);
            path.push('/');
        }
        if !path.is_empty() {
            let left = self
                .max_key_bytes
                .saturating_sub(prefix.len() + ID_BYTES + path.len());
            if left < MIN_NAME_BUDGET {
                return Err(KeyError::InvalidFilename(format!(
                    "the folder path {:?} ({} bytes) leaves {left} bytes for the file name under \
                     the store's {}-byte key limit; choose a folder nearer the file",
                    truncate_for_message(&path),
                    path.len(),
                    self.max_key_bytes,
                )));
            }
            budget = budget.min(left);
        }
        let name = fit_name(&name, budget);
        Ok(format!("{prefix}{}/{path}{name}", Uuid::new_v4()))
    }

    /// Bytes a key under `prefix` leaves for the file name.
    fn name_budget(&self, prefix: &str) -> Result<usize, KeyError> {
        let left = self
            .max_key_bytes
            .saturating_sub(prefix.len() + ID_BYTES)
            .min(MAX_NAME_BYTES);
        if left < MIN_NAME_BUDGET {
            return Err(KeyError::InvalidKey(format!(
                "the key prefix {:?} ({} bytes) leaves {left} bytes for the file name under \
                     the store's {}-byte key limit; use a key prefix shorter by {} bytes",
                truncate_for_message(prefix),
                prefix.len(),
                self.max_key_bytes,
                MIN_NAME_BUDGET - left
            )));
        }
        Ok(left)
    }

    /// Checks that `key` is one this policy could have issued.
    pub fn check<'k>(&self, key: &'k str) -> Result<&'k str, KeyError> {
        self.check_under(&self.prefix, key)
    }

    /// Checks that `key` is `{prefix}{uuid}/{folders/}{name}` as [`Self::issue_in`] makes them.
    pub fn check_under<'k>(&self, prefix: &str, key: &'k str) -> Result<&'k str, KeyError> {
        let invalid = |why: &str| {
            KeyError::InvalidKey(format!(
                "key {:?} {why}; pass the key returned when the upload was created",
                truncate_for_message(key)
            ))
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
        // A name or folder we issued is its own sanitized form; anything else ("..", an empty
        // segment, control characters, a denormalised spelling) was not issued by us.
        let issued = |segment: &str| {
            segment.len() <= MAX_NAME_BYTES
                && sanitize_filename(segment).ok().as_deref() == Some(segment)
        };
        if name.split('/').count() > MAX_FOLDER_DEPTH + 1 || !name.split('/').all(issued) {
            return Err(invalid("has a file name this server would not issue"));
        }
        if key.len() > self.max_key_bytes {
            return Err(invalid(&format!(
                "is longer than the store's {}-byte key limit",
                self.max_key_bytes
            )));
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
pub fn sanitize_filename(filename: &str) -> Result<String, KeyError> {
    if filename.len() > MAX_FILENAME_INPUT_BYTES {
        return Err(KeyError::InvalidFilename(format!(
            "file name of {} bytes is longer than the {MAX_FILENAME_INPUT_BYTES}-byte limit; \
                 rename the file",
            filename.len()
        )));
    }
    if filename.contains('\0') {
        return Err(KeyError::InvalidFilename(
            "file name contains a NUL character; send the file's own name".to_owned(),
        ));
    }
    if filename
        .split(['/', '\\'])
        .any(|segment| segment.trim() == "..")
    {
        return Err(KeyError::InvalidFilename(format!(
            "file name {filename:?} contains a '..' path segment; send the file's own name, \
                 without folders"
        )));
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
    Ok(fit_name(cleaned, MAX_NAME_BYTES))
}

/// The folders above a file, from its path relative to the folder the user chose
/// (`relative_path`, as `File.webkitRelativePath` gives it: `/`-separated, ending with the file's
/// own name, `filename`), each sanitised like a name ([`sanitize_filename`]) and cut to
/// [`MAX_NAME_BYTES`]. Empty and `.` segments are dropped.
///
/// Refused with `invalid_filename`, as no browser sends these for a real folder: a path over
/// [`MAX_RELATIVE_PATH_INPUT_BYTES`], a NUL, a `..` segment (a path leaving the chosen folder),
/// a last segment that is not `filename`, and more than [`MAX_FOLDER_DEPTH`] folders.
pub fn sanitize_folders(relative_path: &str, filename: &str) -> Result<Vec<String>, KeyError> {
    let refuse = |why: String| Err(KeyError::InvalidFilename(why));
    if relative_path.len() > MAX_RELATIVE_PATH_INPUT_BYTES {
        return refuse(format!(
            "relative path of {} bytes is longer than the {MAX_RELATIVE_PATH_INPUT_BYTES}-byte \
             limit; choose a folder nearer the file",
            relative_path.len()
        ));
    }
    if relative_path.contains('\0') {
        return refuse("relative path contains a NUL character".to_owned());
    }
    let mut segments: Vec<&str> = relative_path
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if segments.iter().any(|s| s.trim() == "..") {
        return refuse(format!(
            "relative path {:?} has a '..' segment; send the path within the chosen folder",
            truncate_for_message(relative_path)
        ));
    }
    if segments.pop() != Some(filename) {
        return refuse(format!(
            "relative path {:?} does not end with the file's name {:?}",
            truncate_for_message(relative_path),
            truncate_for_message(filename)
        ));
    }
    if segments.len() > MAX_FOLDER_DEPTH {
        return refuse(format!(
            "relative path is {} folders deep; at most {MAX_FOLDER_DEPTH} are kept, choose a \
             folder nearer the file",
            segments.len()
        ));
    }
    segments.into_iter().map(sanitize_filename).collect()
}

/// A sanitised `name` cut to at most `max` bytes (at least [`MIN_NAME_BUDGET`]), keeping its
/// extension; empty becomes `file`.
fn fit_name(name: &str, max: usize) -> String {
    let truncated = truncate_keeping_extension(name, max);
    let name = truncated.trim_end();
    if name.is_empty() {
        FALLBACK_NAME.to_owned()
    } else {
        name.to_owned()
    }
}

/// Bidirectional embeddings, overrides, isolates and marks (Unicode TR9): invisible characters
/// that reorder how a name is displayed, e.g. to make `exe.txt` show as `txt.exe`.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// `name` cut to at most `max` bytes between grapheme clusters, keeping an extension of up to
/// [`MAX_KEPT_EXTENSION_BYTES`] when at least one character of the stem fits before it.
fn truncate_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    if let Some(dot) = name.rfind('.') {
        let ext = &name[dot..];
        if dot > 0 && ext.len() <= MAX_KEPT_EXTENSION_BYTES && ext.len() < max {
            let stem = floor_grapheme_boundary(&name[..dot], max - ext.len()).trim_end();
            if !stem.is_empty() {
                return format!("{stem}{ext}");
            }
        }
    }
    floor_grapheme_boundary(name, max).to_owned()
}

/// The longest start of `s` of at most `max` bytes that ends between two grapheme clusters.
fn floor_grapheme_boundary(s: &str, max: usize) -> &str {
    let end = s
        .grapheme_indices(true)
        .map(|(at, g)| at + g.len())
        .take_while(|&end| end <= max)
        .last()
        .unwrap_or(0);
    &s[..end]
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
    fn truncation_cuts_between_characters_and_keeps_the_extension() {
        // Three-byte characters: a budget of 20 bytes keeps 15 + ".pdf", never mid-character.
        let cjk = format!("{}.pdf", "日本語".repeat(40));
        let out = truncate_keeping_extension(&cjk, 20);
        assert_eq!(out, "日本語日本.pdf");
        for max in 8..40 {
            let out = truncate_keeping_extension(&cjk, max);
            assert!(out.len() <= max && out.ends_with(".pdf"), "{max}: {out}");
            assert!(
                cjk.starts_with(out.trim_end_matches(".pdf")),
                "{max}: {out}"
            );
        }
        // A base letter and its combining mark (no precomposed form) stay together.
        let marked = "q\u{307}".repeat(50);
        assert_eq!(
            truncate_keeping_extension(&marked, 10),
            "q\u{307}".repeat(3)
        );
        // So do the two halves of a flag and the parts of a family emoji.
        let flags = format!("{}.png", "🇩🇪".repeat(20));
        assert_eq!(truncate_keeping_extension(&flags, 14), "🇩🇪.png");
        let family = "👨\u{200d}👩\u{200d}👧".repeat(10);
        assert_eq!(
            truncate_keeping_extension(&family, 30),
            "👨\u{200d}👩\u{200d}👧"
        );
        // An extension longer than what the budget leaves is cut with the rest.
        assert_eq!(truncate_keeping_extension("abcdef.tar12345", 6), "abcdef");
        // A single character wider than the budget leaves nothing: the fallback name.
        assert_eq!(
            fit_name(&"e\u{301}\u{302}\u{303}\u{304}".repeat(3), 8),
            "file"
        );
    }

    #[test]
    fn keys_fit_the_stores_key_limit() {
        // The embedded store's limit for the bucket "s3-direct" (embedded/layout.rs).
        let policy = KeyPolicy::new("uploads/").with_max_key_bytes(126);
        for name in [
            format!("{}.mp4", "a".repeat(300)),
            format!("{}.mp4", "日".repeat(120)),
            "é".repeat(100),
        ] {
            let key = policy.issue(&name).unwrap();
            assert!(key.len() <= 126, "{key}");
            assert_eq!(policy.check(&key).unwrap(), key);
            let kept = key.rsplit_once('/').unwrap().1;
            assert!(kept.len() > 70, "{kept}");
            let clean = sanitize_filename(&name).unwrap();
            if clean.ends_with(".mp4") {
                assert!(kept.ends_with(".mp4"), "{kept}");
            }
            let stem = kept.trim_end_matches(".mp4");
            assert!(clean.starts_with(stem), "{kept}");
        }
        // A caller prefix takes from the name's share.
        let key = policy
            .issue_under("uploads/users/42/", &"x".repeat(300))
            .unwrap();
        assert_eq!(key.len(), 126);
        // A key longer than the store takes was not issued here.
        let id = "0b6f4f0e-7a4c-4c59-9d0b-2f6f4a1d3c11";
        let long = format!("uploads/{id}/{}", "x".repeat(82));
        assert!(KeyPolicy::new("uploads/").check(&long).is_ok());
        let err = policy.check(&long).unwrap_err();
        assert!(err.to_string().contains("126-byte key limit"), "{err}");
        // S3's own limit is the most any store gets.
        assert_eq!(
            KeyPolicy::new("a/")
                .with_max_key_bytes(5000)
                .max_key_bytes(),
            S3_MAX_KEY_BYTES
        );
    }

    #[test]
    fn a_prefix_that_leaves_no_room_for_a_name_is_refused() {
        let policy = KeyPolicy::new("uploads/").with_max_key_bytes(126);
        let prefix = format!("uploads/{}/", "p".repeat(76));
        let err = policy.issue_under(&prefix, "a.bin").unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidKey);
        assert!(
            err.to_string().contains("leaves 4 bytes for the file name"),
            "{err}"
        );
        let fits = format!("uploads/{}/", "p".repeat(70));
        let key = policy.issue_under(&fits, "a.bin").unwrap();
        assert!(key.ends_with("/a.bin") && key.len() <= 126, "{key}");
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
            format!("uploads/{id}/a//b"),
            format!("uploads/{id}/a/../b"),
            format!("uploads/{id}/.git/b"),
            format!("uploads/{id}/{}b", "a/".repeat(MAX_FOLDER_DEPTH + 1)),
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

    fn folders(path: &str, name: &str) -> Result<Vec<String>, KeyError> {
        sanitize_folders(path, name)
    }

    #[test]
    fn a_file_in_a_folder_keeps_its_folders_each_sanitised() {
        assert_eq!(
            folders("Holiday 🎉/día 1/IMG 1.jpg", "IMG 1.jpg").unwrap(),
            ["Holiday 🎉", "día 1"]
        );
        assert_eq!(folders("a.txt", "a.txt").unwrap(), Vec::<String>::new());
        // Hidden folders lose their dot, backslashes are no separators, empty and '.' go.
        assert_eq!(
            folders("./top//.git/x\\y/f", "f").unwrap(),
            ["top", "git", "x_y"]
        );
        let policy = KeyPolicy::new("uploads/");
        let key = policy
            .issue_in(
                "uploads/",
                &folders("Holiday/día 1/a.jpg", "a.jpg").unwrap(),
                "a.jpg",
            )
            .unwrap();
        assert!(key.ends_with("/Holiday/día 1/a.jpg"), "{key}");
        assert_eq!(policy.check(&key).unwrap(), key);
    }

    #[test]
    fn paths_leaving_the_folder_or_naming_another_file_are_refused() {
        let long = "d/".repeat(MAX_RELATIVE_PATH_INPUT_BYTES / 2);
        let deep = format!("{}f", "d/".repeat(MAX_FOLDER_DEPTH + 1));
        for (path, name) in [
            ("../etc/f", "f"),
            ("a/../../f", "f"),
            ("a/ .. /f", "f"),
            ("a/b\0c/f", "f"),
            ("a/g", "f"),
            ("a/f/", "g"),
            ("", "f"),
            (long.as_str(), "f"),
            (deep.as_str(), "f"),
        ] {
            let err = folders(path, name).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidFilename, "{path:?}");
        }
        assert_eq!(
            folders(&format!("{}f", "d/".repeat(MAX_FOLDER_DEPTH)), "f")
                .unwrap()
                .len(),
            MAX_FOLDER_DEPTH
        );
    }

    #[test]
    fn folders_fit_the_key_limit_or_are_refused() {
        let policy = KeyPolicy::new("uploads/").with_max_key_bytes(200);
        let long_folder = vec!["d".repeat(120)];
        let key = policy
            .issue_in("uploads/", &long_folder, &"n".repeat(100))
            .unwrap();
        assert_eq!(key.len(), 200);
        assert_eq!(policy.check(&key).unwrap(), key);
        let too_long = vec!["d".repeat(150)];
        let err = policy.issue_in("uploads/", &too_long, "n").unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidFilename);
    }
}
