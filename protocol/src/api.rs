//! The signing API's routes and the syntax of its query values, shared so that the client builds
//! exactly what the server routes and parses.
//!
//! Paths are relative to the route prefix (`/s3` by default) and written as templates in axum's
//! syntax, `{name}` for a path parameter: the server routes them as they are, the client fills
//! them in with [`fill`].
//!
//! Query values that carry something per part of a batch (`checksums=N:ALGO:BASE64,…`,
//! `lengths=N:BYTES,…`) are built by [`per_part`] and split by [`parse_per_part`]; a checksum,
//! of a part or of a whole small file, is `ALGO:BASE64` ([`checksum`], [`parse_checksum`]). Part
//! numbers are listed as `partNumbers=1,2,3`.

use std::fmt::{Display, Write};

use crate::wire::ChecksumAlgorithm;

/// `POST`: create a multipart upload.
pub const CREATE: &str = "/multipart";
/// `GET`: the parts the store holds; `DELETE`: abort the upload.
pub const UPLOAD: &str = "/multipart/{upload_id}";
/// `GET`: presigned URLs for a batch of parts (`partNumbers`, `checksums`, `lengths`).
pub const SIGN_BATCH: &str = "/multipart/{upload_id}/batch";
/// `POST`: complete the upload.
pub const COMPLETE: &str = "/multipart/{upload_id}/complete";
/// `GET`: the presigned URL of one part (`checksum`, `length`).
pub const SIGN_PART: &str = "/multipart/{upload_id}/{part_number}";
/// `GET`: a presigned PUT or POST form for a small file.
pub const PARAMS: &str = "/params";
/// `POST`: a small file sent as one PUT or POST form is done.
pub const PARAMS_COMPLETE: &str = "/params/complete";

/// `template` with its `{…}` parameters replaced, in order, by `values` (already
/// percent-encoded); a parameter without a value is left empty.
pub fn fill(template: &str, values: &[&str]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|v| v.len()).sum::<usize>());
    let mut values = values.iter();
    let mut rest = template;
    // `split_once` rather than slicing at found indices: nothing here can panic, so a client
    // that builds its routes with this carries no slice-error message.
    while let Some((before, after)) = rest.split_once('{') {
        out.push_str(before);
        out.push_str(values.next().copied().unwrap_or_default());
        rest = after.split_once('}').map_or("", |(_, r)| r);
    }
    out.push_str(rest);
    out
}

/// `N:VALUE` items joined by `,` for the parts of `parts` that `value_of` gives a value for, in
/// the order of `parts`; empty when there are none.
pub fn per_part<T: Display>(parts: &[u32], value_of: impl Fn(u32) -> Option<T>) -> String {
    let mut list = String::new();
    for &n in parts {
        if let Some(value) = value_of(n) {
            if !list.is_empty() {
                list.push(',');
            }
            // Writing to a String cannot fail.
            let _ = write!(list, "{n}:{value}");
        }
    }
    list
}

/// The items of a [`per_part`] value, each as its part number and its value, both as written
/// (an item without `:` has an empty value); blank items are skipped.
pub fn parse_per_part(raw: &str) -> impl Iterator<Item = (&str, &str)> {
    raw.split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| item.split_once(':').unwrap_or((item, "")))
}

/// A checksum as the query carries it: `ALGO:BASE64`, like `crc32c:yZRlqg==`.
pub fn checksum(algorithm: ChecksumAlgorithm, base64: &str) -> String {
    format!("{algorithm}:{base64}")
}

/// How a checksum in a query is not `ALGO:BASE64`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumSyntaxError {
    /// No `:` separates an algorithm from the value.
    #[error("not ALGO:BASE64")]
    NoAlgorithm,
    /// The algorithm is not one of md5, crc32, crc32c, sha256.
    #[error("unknown checksum algorithm {0:?}")]
    UnknownAlgorithm(String),
}

/// The algorithm and the value (as written; not decoded) of a checksum `ALGO:BASE64`.
pub fn parse_checksum(raw: &str) -> Result<(ChecksumAlgorithm, &str), ChecksumSyntaxError> {
    let (algorithm, value) = raw
        .split_once(':')
        .ok_or(ChecksumSyntaxError::NoAlgorithm)?;
    let algorithm = ChecksumAlgorithm::parse(algorithm)
        .ok_or_else(|| ChecksumSyntaxError::UnknownAlgorithm(algorithm.to_owned()))?;
    Ok((algorithm, value))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn templates_are_filled_in_order() {
        assert_eq!(fill(CREATE, &[]), "/multipart");
        assert_eq!(fill(UPLOAD, &["a%2Eb"]), "/multipart/a%2Eb");
        assert_eq!(fill(SIGN_BATCH, &["id"]), "/multipart/id/batch");
        assert_eq!(fill(COMPLETE, &["id"]), "/multipart/id/complete");
        assert_eq!(fill(SIGN_PART, &["id", "7"]), "/multipart/id/7");
        assert_eq!(fill(SIGN_PART, &["id"]), "/multipart/id/");
        assert_eq!(fill("/a/{x", &["v"]), "/a/v");
    }

    #[test]
    fn per_part_values_round_trip() {
        let sums = BTreeMap::from([(2, "md5:AbC+/w=="), (9, "crc32:AAAAAA==")]);
        let built = per_part(&[1, 2, 3, 9], |n| sums.get(&n));
        assert_eq!(built, "2:md5:AbC+/w==,9:crc32:AAAAAA==");
        assert_eq!(per_part(&[1], |n| sums.get(&n)), "");
        let parsed: Vec<_> = parse_per_part(&built).collect();
        assert_eq!(parsed, [("2", "md5:AbC+/w=="), ("9", "crc32:AAAAAA==")]);
        let lengths = BTreeMap::from([(1, 8_388_608u64), (2, 17)]);
        assert_eq!(per_part(&[1, 2], |n| lengths.get(&n)), "1:8388608,2:17");
        // Blank items are skipped; an item without a value keeps its number.
        let odd: Vec<_> = parse_per_part(" ,1:5,,2, ").collect();
        assert_eq!(odd, [("1", "5"), ("2", "")]);
        assert_eq!(parse_per_part("").count(), 0);
    }

    #[test]
    fn checksums_are_algorithm_colon_value() {
        let built = checksum(ChecksumAlgorithm::Crc32c, "yZRlqg==");
        assert_eq!(built, "crc32c:yZRlqg==");
        assert_eq!(
            parse_checksum(&built),
            Ok((ChecksumAlgorithm::Crc32c, "yZRlqg=="))
        );
        // The value is not checked here: the server decodes it.
        assert_eq!(
            parse_checksum("sha256:"),
            Ok((ChecksumAlgorithm::Sha256, ""))
        );
        assert_eq!(
            parse_checksum("crc32c"),
            Err(ChecksumSyntaxError::NoAlgorithm)
        );
        assert_eq!(
            parse_checksum("crc64:AAAA"),
            Err(ChecksumSyntaxError::UnknownAlgorithm("crc64".into()))
        );
    }
}
