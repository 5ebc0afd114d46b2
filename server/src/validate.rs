//! Input checks that run before any store call, so a bad request creates, signs or deletes nothing.
//!
//! The store is not trusted to enforce S3's rules: the embedded store accepts part number 0, Ceph
//! leaves part numbers unchecked, Garage has no 5 MiB minimum (`docs/stores.md`, "Part numbers
//! and sizes"). Each check names the offending value and the allowed range.

use std::collections::{BTreeMap, BTreeSet};

use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::limits::{
    MAX_BATCH_PARTS, MAX_OBJECT_SIZE, MAX_PART_NUMBER, MAX_SINGLE_PUT_SIZE, MIN_PART_NUMBER,
};
use s3_direct_protocol::wire::CompletedPart;

use crate::error::Error;
use crate::keys::truncate_for_message;
use crate::media_type::MediaType;

/// Longest ETag accepted, quotes excluded.
const MAX_ETAG_CHARS: usize = 128;
/// S3's limit on the total size of user metadata.
const MAX_METADATA_BYTES: usize = 2048;
/// Longest content type accepted.
const MAX_CONTENT_TYPE_BYTES: usize = 255;
/// Content type used when the browser does not know the file's type.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Parses and checks a part number from a path or query string.
pub fn part_number(raw: &str) -> Result<u32, Error> {
    let digits = raw.trim();
    // Plain digits only: `parse` would also take a sign (`+1`).
    let n: u32 = Some(digits)
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
        .ok_or(())
        .map_err(|()| {
            Error::bad_request(
                ErrorCode::InvalidPartNumber,
                format!(
                    "part number {:?} is not a whole number; use 1..={MAX_PART_NUMBER}",
                    truncate_for_message(raw)
                ),
            )
        })?;
    check_part_number(n)
}

/// Checks a part number is in S3's range.
pub fn check_part_number(n: u32) -> Result<u32, Error> {
    if (MIN_PART_NUMBER..=MAX_PART_NUMBER).contains(&n) {
        Ok(n)
    } else {
        Err(Error::bad_request(
            ErrorCode::InvalidPartNumber,
            format!("part number {n} is out of range {MIN_PART_NUMBER}..={MAX_PART_NUMBER}"),
        ))
    }
}

/// Parses `partNumbers=1,2,3`: 1..=1000 distinct, valid part numbers.
pub fn batch(raw: &str) -> Result<Vec<u32>, Error> {
    let invalid = |message: String| Error::bad_request(ErrorCode::InvalidBatch, message);
    if raw.trim().is_empty() {
        return Err(invalid(format!(
            "partNumbers is empty; ask for 1 to {MAX_BATCH_PARTS} part numbers, like partNumbers=1,2,3"
        )));
    }
    let count = raw.split(',').count();
    if count > MAX_BATCH_PARTS {
        return Err(invalid(format!(
            "batch of {count} part numbers is larger than the {MAX_BATCH_PARTS} allowed; \
             split it into several requests"
        )));
    }
    let mut seen = BTreeSet::new();
    let mut numbers = Vec::with_capacity(count);
    for item in raw.split(',') {
        let n = part_number(item)?;
        if !seen.insert(n) {
            return Err(invalid(format!(
                "part number {n} appears more than once in partNumbers"
            )));
        }
        numbers.push(n);
    }
    Ok(numbers)
}

/// Checks a completion list: 1..=10,000 parts, strictly ascending (so no duplicates), each with a
/// part number in range, an ETag of a shape stores return, and checksums (if any) in base64.
pub fn part_list(parts: &[CompletedPart]) -> Result<(), Error> {
    let invalid = |message: String| Error::bad_request(ErrorCode::InvalidPartList, message);
    if parts.is_empty() {
        return Err(invalid(
            "the part list is empty; send every uploaded part as {PartNumber, ETag}".to_owned(),
        ));
    }
    if parts.len() > MAX_PART_NUMBER as usize {
        return Err(invalid(format!(
            "the part list has {} parts, more than S3's {MAX_PART_NUMBER}",
            parts.len()
        )));
    }
    let mut previous: Option<u32> = None;
    for (index, part) in parts.iter().enumerate() {
        check_part_number(part.part_number)?;
        if let Some(prev) = previous {
            if part.part_number == prev {
                return Err(invalid(format!(
                    "part {} appears more than once in the part list",
                    part.part_number
                )));
            }
            if part.part_number < prev {
                return Err(invalid(format!(
                    "the part list is not in ascending order: part {} follows part {prev} \
                     (entry {index}); sort it by PartNumber",
                    part.part_number
                )));
            }
        }
        etag(part.part_number, &part.etag)?;
        previous = Some(part.part_number);
    }
    for p in parts {
        for (name, value) in p.checksums.named() {
            let Some(value) = value else { continue };
            let ok = value.len() <= 64
                && !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
            if !ok {
                return Err(Error::bad_request(
                    ErrorCode::InvalidPartList,
                    format!(
                        "part {} has {name} {:?}, which is not base64",
                        p.part_number,
                        truncate_for_message(value)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Checks an ETag looks like one a store returns: optional surrounding quotes around 1..=128
/// characters of `[A-Za-z0-9-]`.
pub fn etag(part_number: u32, raw: &str) -> Result<(), Error> {
    let inner = raw
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(raw);
    let ok = (1..=MAX_ETAG_CHARS).contains(&inner.len())
        && inner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request(
            ErrorCode::InvalidEtag,
            format!(
                "part {part_number} has ETag {:?}, which is not one a store returns; send the \
                 ETag response header of the part's PUT unchanged (if it is missing, add \
                 ExposeHeaders: ETag to the bucket's CORS rule)",
                truncate_for_message(raw)
            ),
        ))
    }
}

/// Checks a declared multipart object size.
pub fn object_size(size: u64) -> Result<(), Error> {
    if size > MAX_OBJECT_SIZE {
        return Err(Error::bad_request(
            ErrorCode::InvalidSize,
            format!("file size {size} exceeds S3's 5 TiB ({MAX_OBJECT_SIZE} bytes) object limit"),
        ));
    }
    Ok(())
}

/// Checks a declared single-PUT object size.
pub fn single_put_size(size: u64) -> Result<(), Error> {
    if size > MAX_SINGLE_PUT_SIZE {
        return Err(Error::bad_request(
            ErrorCode::InvalidSize,
            format!(
                "file size {size} exceeds S3's 5 GiB ({MAX_SINGLE_PUT_SIZE} bytes) limit for a \
                 single PUT; use a multipart upload"
            ),
        ));
    }
    Ok(())
}

/// Returns the content type to store: the given one parsed and normalised
/// ([`MediaType`]: exactly one `type/subtype` with its parameters, as RFC 9110 defines it), or
/// `application/octet-stream` when empty. Anything else (a list, an empty subtype, a bad
/// parameter) is refused before any allow-list sees it.
pub fn content_type(raw: &str) -> Result<MediaType, Error> {
    let trimmed = raw.trim_matches([' ', '\t']);
    if trimmed.is_empty() {
        return Ok(MediaType::parse(DEFAULT_CONTENT_TYPE).expect("the default type parses"));
    }
    let why = if trimmed.len() > MAX_CONTENT_TYPE_BYTES {
        format!("it is longer than {MAX_CONTENT_TYPE_BYTES} bytes")
    } else {
        match MediaType::parse(trimmed) {
            Ok(parsed) => return Ok(parsed),
            Err(why) => why.to_string(),
        }
    };
    Err(Error::bad_request(
        ErrorCode::InvalidContentType,
        format!(
            "content type {:?} is not one valid media type: {why}; use something like \
             \"video/mp4\" or leave it empty",
            truncate_for_message(raw)
        ),
    ))
}

/// Turns request metadata into S3 user metadata.
///
/// Names become lowercase (S3 lowercases them anyway) and must be `[a-z0-9_-]`; values are sent as
/// HTTP headers, so characters outside visible ASCII (a Unicode file name, say) are
/// percent-encoded rather than refused: Uppy sends `metadata.name` = the file name.
pub fn metadata(raw: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    let mut total = 0;
    for (name, value) in raw {
        let lower = name.to_ascii_lowercase();
        let ok_name = !lower.is_empty()
            && lower.len() <= 128
            && lower
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok_name {
            return Err(Error::bad_request(
                ErrorCode::InvalidRequest,
                format!(
                    "metadata name {:?} is not usable; use letters, digits, '-' and '_'",
                    truncate_for_message(name)
                ),
            ));
        }
        let value = header_safe(value);
        total += lower.len() + value.len();
        out.insert(lower, value);
    }
    if total > MAX_METADATA_BYTES {
        return Err(Error::bad_request(
            ErrorCode::InvalidRequest,
            format!(
                "metadata takes {total} bytes, more than S3's {MAX_METADATA_BYTES}-byte limit; \
                 send fewer or shorter fields"
            ),
        ));
    }
    Ok(out)
}

fn header_safe(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (b.is_ascii_graphic() && b != b'%') || b == b' ' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<impl std::fmt::Debug, Error>) -> ErrorCode {
        r.unwrap_err().code()
    }

    fn part(n: u32, etag: &str) -> CompletedPart {
        CompletedPart {
            part_number: n,
            etag: etag.to_owned(),
            ..CompletedPart::default()
        }
    }

    #[test]
    fn part_numbers() {
        assert_eq!(part_number("1").unwrap(), 1);
        assert_eq!(part_number("10000").unwrap(), 10_000);
        let err = part_number("0").unwrap_err();
        assert_eq!(err.to_string(), "part number 0 is out of range 1..=10000");
        assert_eq!(code(part_number("10001")), ErrorCode::InvalidPartNumber);
        let err = part_number("abc").unwrap_err();
        assert!(
            err.to_string().contains("\"abc\" is not a whole number"),
            "{err}"
        );
        assert_eq!(code(part_number("-1")), ErrorCode::InvalidPartNumber);
    }

    #[test]
    fn batches() {
        assert_eq!(batch("3,1,2").unwrap(), vec![3, 1, 2]);
        assert_eq!(code(batch("")), ErrorCode::InvalidBatch);
        let big = (1..=1001)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(code(batch(&big)), ErrorCode::InvalidBatch);
        let max = (1..=1000)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(batch(&max).unwrap().len(), 1000);
        let err = batch("1,2,1").unwrap_err();
        assert!(
            err.to_string()
                .contains("part number 1 appears more than once")
        );
        assert_eq!(code(batch("1,0")), ErrorCode::InvalidPartNumber);
        assert_eq!(code(batch("1,,2")), ErrorCode::InvalidPartNumber);
    }

    #[test]
    fn part_lists() {
        let e = "\"0123456789abcdef0123456789abcdef\"";
        assert!(part_list(&[part(1, e), part(2, "abc-3"), part(5, e)]).is_ok());
        assert_eq!(code(part_list(&[])), ErrorCode::InvalidPartList);
        assert_eq!(
            code(part_list(&[part(2, e), part(1, e)])),
            ErrorCode::InvalidPartList
        );
        assert_eq!(
            code(part_list(&[part(1, e), part(1, e)])),
            ErrorCode::InvalidPartList
        );
        assert_eq!(code(part_list(&[part(0, e)])), ErrorCode::InvalidPartNumber);
        let many: Vec<_> = (1..=10_001).map(|n| part(n.min(10_000), e)).collect();
        assert_eq!(code(part_list(&many)), ErrorCode::InvalidPartList);
    }

    #[test]
    fn etags() {
        for ok in ["\"abc\"", "abc", "d41d8cd98f00b204e9800998ecf8427e-12"] {
            assert!(etag(1, ok).is_ok(), "{ok}");
        }
        for bad in ["", "\"\"", "a b", "\"abc", "x\"", "<xml>", &"a".repeat(129)] {
            assert_eq!(code(etag(1, bad)), ErrorCode::InvalidEtag, "{bad:?}");
        }
        let err = etag(3, "W/\"x\"").unwrap_err();
        assert!(err.to_string().starts_with("part 3 has ETag"), "{err}");
    }

    #[test]
    fn sizes() {
        assert!(object_size(5 << 40).is_ok());
        assert_eq!(code(object_size((5 << 40) + 1)), ErrorCode::InvalidSize);
        assert!(single_put_size(5 << 30).is_ok());
        assert_eq!(code(single_put_size((5 << 30) + 1)), ErrorCode::InvalidSize);
    }

    #[test]
    fn content_types() {
        let ct = |raw: &str| content_type(raw).map(|m| m.to_string());
        assert_eq!(ct("").unwrap(), DEFAULT_CONTENT_TYPE);
        assert_eq!(ct(" \t").unwrap(), DEFAULT_CONTENT_TYPE);
        assert_eq!(
            ct("Text/Plain; charset=utf-8").unwrap(),
            "text/plain;charset=utf-8"
        );
        for bad in [
            "text/\nplain",
            "image/png,text/html",
            "image/png;x=,text/html",
            "image/",
            &format!("a/{}", "b".repeat(MAX_CONTENT_TYPE_BYTES)),
        ] {
            assert_eq!(code(ct(bad)), ErrorCode::InvalidContentType, "{bad:?}");
        }
    }

    #[test]
    fn metadata_values_are_made_header_safe() {
        let raw = BTreeMap::from([
            ("Name".to_owned(), "ñ 日本.bin".to_owned()),
            ("type".to_owned(), "video/mp4".to_owned()),
        ]);
        let out = metadata(&raw).unwrap();
        assert_eq!(out["name"], "%C3%B1 %E6%97%A5%E6%9C%AC.bin");
        assert_eq!(out["type"], "video/mp4");
        let bad = BTreeMap::from([("a b".to_owned(), String::new())]);
        assert_eq!(code(metadata(&bad)), ErrorCode::InvalidRequest);
        let big = BTreeMap::from([("x".to_owned(), "y".repeat(3000))]);
        assert_eq!(code(metadata(&big)), ErrorCode::InvalidRequest);
    }
}
