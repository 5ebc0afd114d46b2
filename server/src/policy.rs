//! The signing policy: pure rules over an upload's claims ([`UploadClaims`]), applied by the use
//! cases ([`crate::uploads`]) before anything reaches the store. No I/O, no state.
//!
//! - The plan: a declared size (and part size) bounds the part numbers ([`max_part_number`]);
//!   wherever a size bound exists (a declared size, the caller's `max_size`), and for a stream (a
//!   part size without a size, [`streamed`]), every part URL signs its exact `Content-Length`: the
//!   plan's, or the one the client names ([`signed_length`]); a completion names the plan's parts
//!   ([`check_part_list_against_plan`]).
//! - Checksums: the algorithm an upload is created with ([`declared_checksum`]), which every part
//!   must then be signed with ([`check_part_checksum`]) and completed with
//!   ([`completion_checksums`]).
//! - The query values that carry these (`length=`, `checksum=`, `lengths=`, `checksums=`),
//!   parsed and held to their part numbers.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::PartPlan;
use s3_direct_protocol::api::{self, ChecksumSyntaxError};
use s3_direct_protocol::limits::{MAX_PART_NUMBER, MAX_PART_SIZE, MIN_PART_SIZE};
use s3_direct_protocol::wire::{ChecksumAlgorithm, CompletedPart, PartChecksums};

use crate::error::Error;
use crate::keys::truncate_for_message;
use crate::token::UploadClaims;
use crate::validate;

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The plan fixed at create, when both size and part size were declared.
pub fn plan_of(claims: &UploadClaims) -> Option<PartPlan> {
    PartPlan::with_part_size(claims.size?, claims.part_size?).ok()
}

/// Whether the upload is a stream: its part size declared, its size not known (the client cuts
/// parts of that size as bytes arrive, the last one shorter).
pub fn streamed(claims: &UploadClaims) -> bool {
    claims.size.is_none() && claims.part_size.is_some()
}

/// The highest part number the upload can have: the plan's count, or, with only a size (or a
/// size limit) known, the count at the declared part size (S3's 5 MiB minimum without one).
pub fn max_part_number(claims: &UploadClaims) -> u32 {
    if let Some(plan) = plan_of(claims) {
        return plan.part_count;
    }
    match claims.size.or(claims.max_size) {
        Some(size) => {
            let count = size
                .div_ceil(claims.part_size.unwrap_or(MIN_PART_SIZE).max(1))
                .clamp(1, u64::from(MAX_PART_NUMBER));
            // Clamped to 10,000 just above.
            count as u32
        }
        None => MAX_PART_NUMBER,
    }
}

/// Refuses part numbers beyond [`max_part_number`].
pub fn check_part_in_plan(claims: &UploadClaims, n: u32) -> Result<(), Error> {
    let max = max_part_number(claims);
    if n > max {
        return Err(Error::bad_request(
            ErrorCode::InvalidPartNumber,
            format!("part number {n} is beyond this upload's plan of {max} parts"),
        ));
    }
    Ok(())
}

/// Exact length of part `n` when the plan is fixed, or when a declared size fits one part only
/// (that part is the whole file).
pub fn part_length(claims: &UploadClaims, n: u32) -> Option<u64> {
    if let Some(plan) = plan_of(claims) {
        return (1..=plan.part_count).contains(&n).then(|| plan.part_len(n));
    }
    claims
        .size
        .filter(|_| n == 1 && max_part_number(claims) == 1)
}

/// Whether the upload has a size bound (a declared size or the caller's limit): then every part
/// URL signs its exact length, so no part can hold more than was signed for it.
pub fn bounded(claims: &UploadClaims) -> bool {
    claims.size.is_some() || claims.max_size.is_some()
}

/// The `Content-Length` to sign into part `n`'s URL, given the length the client named for it:
/// the plan's when the plan is fixed (a named length must agree); for a bounded or streamed
/// upload without a plan the named one, which is required and held to the part size limit, the
/// declared part size, the declared size and the caller's limit; for an unbounded upload the
/// named one, if any.
pub fn signed_length(
    claims: &UploadClaims,
    n: u32,
    named: Option<u64>,
) -> Result<Option<u64>, Error> {
    let invalid = |why: String| Error::bad_request(ErrorCode::InvalidSize, why);
    if let Some(planned) = part_length(claims, n) {
        return match named {
            Some(len) if len != planned => Err(invalid(format!(
                "part {n} is {planned} bytes in this upload's plan, not {len}; sign it with \
                 length={planned} or without a length"
            ))),
            _ => Ok(Some(planned)),
        };
    }
    let Some(len) = named else {
        if bounded(claims) || streamed(claims) {
            return Err(invalid(format!(
                "part {n} has no length; this upload has a size limit or a part size without a \
                 size, so every part URL signs its exact length: pass the part's size in bytes as \
                 `length` (sign one) or `lengths=N:BYTES,…` (batch), or declare size and partSize \
                 at create"
            )));
        }
        return Ok(None);
    };
    let limits = [
        (Some(MAX_PART_SIZE), "S3's 5 GiB part size limit"),
        (claims.part_size, "the upload's part size"),
        (claims.size, "the upload's declared size"),
        (claims.max_size, "this caller's size limit"),
    ];
    for (limit, what) in limits {
        if let Some(limit) = limit
            && len > limit
        {
            return Err(invalid(format!(
                "part {n}'s length {len} exceeds {what} ({limit} bytes)"
            )));
        }
    }
    Ok(Some(len))
}

/// Parses a part's length as the client names it (`length=` of sign-one).
pub fn length(n: u32, raw: &str) -> Result<u64, Error> {
    let digits = raw.trim();
    Some(digits)
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| {
            Error::bad_request(
                ErrorCode::InvalidSize,
                format!(
                    "part {n}'s length {:?} is not a whole number of bytes",
                    truncate_for_message(raw)
                ),
            )
        })
}

/// Parses `ALGO:BASE64` ([`api::parse_checksum`]), checking the digest has the algorithm's
/// length.
pub fn checksum(raw: &str) -> Result<(ChecksumAlgorithm, String), Error> {
    let invalid = |why: String| Error::bad_request(ErrorCode::InvalidRequest, why);
    let (algo, value) = api::parse_checksum(raw).map_err(|e| {
        invalid(match e {
            ChecksumSyntaxError::NoAlgorithm => format!(
                "checksum {:?} is not ALGO:BASE64, like crc32c:yZRlqg==",
                truncate_for_message(raw)
            ),
            ChecksumSyntaxError::UnknownAlgorithm(algo) => format!(
                "checksum algorithm {:?} is not one of md5, crc32, crc32c, sha256",
                truncate_for_message(&algo)
            ),
        })
    })?;
    // A `+` in an unencoded query string arrives as a space.
    let value = value.trim().replace(' ', "+");
    let len = STANDARD.decode(&value).map(|d| d.len()).ok();
    if len != Some(algo.digest_len()) {
        return Err(invalid(format!(
            "{algo} checksum {:?} is not the base64 of a {}-byte digest",
            truncate_for_message(&value),
            algo.digest_len()
        )));
    }
    Ok((algo, value))
}

/// Parses `checksums=N:ALGO:BASE64,M:ALGO:BASE64` for a batch of `numbers`.
pub fn batch_checksums(
    raw: &str,
    numbers: &[u32],
) -> Result<BTreeMap<u32, (ChecksumAlgorithm, String)>, Error> {
    per_part("checksums", raw, numbers, |_, value| checksum(value))
}

/// Parses `lengths=N:BYTES,M:BYTES` for a batch of `numbers`.
pub fn batch_lengths(raw: &str, numbers: &[u32]) -> Result<BTreeMap<u32, u64>, Error> {
    per_part("lengths", raw, numbers, length)
}

/// Parses a batch parameter `name` of `N:VALUE` items ([`api::parse_per_part`]), each naming a
/// part of `numbers` once.
fn per_part<T>(
    name: &str,
    raw: &str,
    numbers: &[u32],
    value: impl Fn(u32, &str) -> Result<T, Error>,
) -> Result<BTreeMap<u32, T>, Error> {
    let mut out = BTreeMap::new();
    for (n, rest) in api::parse_per_part(raw) {
        let n = validate::part_number(n)?;
        if !numbers.contains(&n) {
            return Err(Error::bad_request(
                ErrorCode::InvalidBatch,
                format!("{name} names part {n}, which is not in partNumbers"),
            ));
        }
        if out.insert(n, value(n, rest)?).is_some() {
            return Err(Error::bad_request(
                ErrorCode::InvalidBatch,
                format!("{name} names part {n} more than once"),
            ));
        }
    }
    Ok(out)
}

/// The algorithm to create an upload with: the one the client declared it will send (`auto`: the
/// one the server asks for), unless that is MD5, which S3 checks on any upload.
pub fn declared_checksum(
    declared: Option<PartChecksums>,
    asked: Option<ChecksumAlgorithm>,
) -> Option<ChecksumAlgorithm> {
    declared
        .and_then(|d| d.resolve(asked))
        .filter(|a| *a != ChecksumAlgorithm::Md5)
}

/// Refuses to sign part `n` of an upload created with a checksum algorithm without that
/// algorithm's checksum: the store would refuse the PUT ("checksum type mismatch").
pub fn check_part_checksum(
    claims: &UploadClaims,
    n: u32,
    checksum: Option<&(ChecksumAlgorithm, String)>,
) -> Result<(), Error> {
    let Some(declared) = claims.checksum else {
        return Ok(());
    };
    match checksum {
        Some((algorithm, _)) if *algorithm == declared => Ok(()),
        other => Err(Error::bad_request(
            ErrorCode::InvalidRequest,
            format!(
                "part {n} is asked for with {}, but this upload was created for {declared} part \
                 checksums and the store refuses a part without one; sign it with \
                 {declared}:BASE64 of the part",
                match other {
                    Some((algorithm, _)) => format!("a {algorithm} checksum"),
                    None => "no checksum".to_owned(),
                }
            ),
        )),
    }
}

/// The completion list as the store must receive it: each part with its checksum of the
/// algorithm the upload was created with. A part checksum of another algorithm (or any, for an
/// upload created without one) is refused: the store would refuse it, or not check it.
pub fn completion_checksums(
    claims: &UploadClaims,
    parts: &[CompletedPart],
) -> Result<Vec<CompletedPart>, Error> {
    let declared = claims.checksum.filter(|a| *a != ChecksumAlgorithm::Md5);
    parts
        .iter()
        .map(|p| {
            let mut kept = CompletedPart {
                part_number: p.part_number,
                etag: p.etag.clone(),
                ..CompletedPart::default()
            };
            let foreign = [
                ChecksumAlgorithm::Crc32,
                ChecksumAlgorithm::Crc32c,
                ChecksumAlgorithm::Sha256,
            ]
            .into_iter()
            .find(|a| Some(*a) != declared && p.checksums.get(*a).is_some());
            if let Some(foreign) = foreign {
                return Err(Error::bad_request(
                    ErrorCode::InvalidPartList,
                    format!(
                        "part {} carries a {foreign} checksum, but this upload was created {}; \
                         send only the checksums of the upload's algorithm",
                        p.part_number,
                        declared.map_or("without part checksums".to_owned(), |d| format!(
                            "for {d} part checksums"
                        ))
                    ),
                ));
            }
            let Some(declared) = declared else {
                return Ok(kept);
            };
            match p.checksums.get(declared) {
                Some(value) => {
                    checksum(&api::checksum(declared, value))?;
                    kept.checksums.set(declared, value.to_owned());
                    Ok(kept)
                }
                None => Err(Error::bad_request(
                    ErrorCode::InvalidPartList,
                    format!(
                        "part {} has no {declared} checksum; this upload was created for {declared} \
                         part checksums, and the store completes it only with each part's",
                        p.part_number
                    ),
                )),
            }
        })
        .collect()
}

/// Checks a completion list against the plan before anything is asked of the store.
pub fn check_part_list_against_plan(
    claims: &UploadClaims,
    parts: &[CompletedPart],
) -> Result<(), Error> {
    if let Some(plan) = plan_of(claims) {
        let numbers_ok = parts.len() == plan.part_count as usize
            && parts
                .iter()
                .zip(1..)
                .all(|(p, n): (&CompletedPart, u32)| p.part_number == n);
        if !numbers_ok {
            return Err(Error::bad_request(
                ErrorCode::InvalidPartList,
                format!(
                    "this upload's plan has parts 1..={}; send each of them exactly once, in order",
                    plan.part_count
                ),
            ));
        }
    }
    for p in parts {
        check_part_in_plan(claims, p.part_number)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::token::principal_digest;
    use s3_direct_protocol::limits::{GIB, MIB};

    /// Claims of an upload with these sizes.
    pub(crate) fn claims(
        size: Option<u64>,
        part_size: Option<u64>,
        max: Option<u64>,
    ) -> UploadClaims {
        UploadClaims {
            principal: principal_digest("a"),
            expires_at: u64::MAX,
            size,
            part_size,
            max_size: max,
            checksum: None,
        }
    }

    /// Part `n` named with the ETag `"e"`.
    pub(crate) fn part(n: u32) -> CompletedPart {
        CompletedPart {
            part_number: n,
            etag: "\"e\"".into(),
            ..CompletedPart::default()
        }
    }

    #[test]
    fn part_numbers_are_bounded_by_what_is_known() {
        let fixed = claims(Some(11 * MIB), Some(5 * MIB), None);
        assert_eq!(max_part_number(&fixed), 3);
        assert_eq!(part_length(&fixed, 1), Some(5 * MIB));
        assert_eq!(part_length(&fixed, 3), Some(MIB));
        assert_eq!(part_length(&fixed, 4), None);
        assert!(check_part_in_plan(&fixed, 4).is_err());
        assert_eq!(max_part_number(&claims(Some(11 * MIB), None, None)), 3);
        assert_eq!(max_part_number(&claims(Some(0), None, None)), 1);
        assert_eq!(max_part_number(&claims(None, None, Some(20 * MIB))), 4);
        assert_eq!(max_part_number(&claims(None, None, None)), 10_000);
        // A declared size that fits one part fixes that part's length.
        assert_eq!(part_length(&claims(Some(10), None, None), 1), Some(10));
        assert_eq!(part_length(&claims(Some(6 * MIB), None, None), 1), None);
    }

    #[test]
    fn bounded_uploads_sign_every_part_length() {
        let fixed = claims(Some(11 * MIB), Some(5 * MIB), None);
        assert_eq!(signed_length(&fixed, 3, None).unwrap(), Some(MIB));
        assert_eq!(signed_length(&fixed, 3, Some(MIB)).unwrap(), Some(MIB));
        let e = signed_length(&fixed, 3, Some(2 * MIB)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidSize);
        assert!(
            e.to_string()
                .contains("part 3 is 1048576 bytes in this upload's plan")
        );
        // A size or a limit without a plan: the client must name the length, within the bounds.
        for bounded in [
            claims(Some(20 * MIB), None, None),
            claims(None, None, Some(20 * MIB)),
        ] {
            let e = signed_length(&bounded, 2, None).unwrap_err();
            assert!(e.to_string().contains("part 2 has no length"), "{e}");
            assert_eq!(
                signed_length(&bounded, 2, Some(7 * MIB)).unwrap(),
                Some(7 * MIB)
            );
            let e = signed_length(&bounded, 2, Some(20 * MIB + 1)).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidSize);
        }
        let e = signed_length(&claims(None, None, Some(u64::MAX)), 1, Some(6 * GIB)).unwrap_err();
        assert!(e.to_string().contains("S3's 5 GiB part size limit"), "{e}");
        // Unbounded: a length is signed when named.
        let open = claims(None, None, None);
        assert_eq!(signed_length(&open, 1, None).unwrap(), None);
        assert_eq!(signed_length(&open, 1, Some(9)).unwrap(), Some(9));
        assert_eq!(
            batch_lengths("1:5,2:6", &[1, 2]).unwrap(),
            BTreeMap::from([(1, 5), (2, 6)])
        );
        for bad in ["1:x", "1:-1", "3:5", "1:5,1:6", "1:"] {
            assert!(batch_lengths(bad, &[1, 2]).is_err(), "{bad}");
        }
    }

    #[test]
    fn part_lists_must_match_a_fixed_plan() {
        let fixed = claims(Some(11 * MIB), Some(5 * MIB), None);
        assert!(check_part_list_against_plan(&fixed, &[part(1), part(2), part(3)]).is_ok());
        assert!(check_part_list_against_plan(&fixed, &[part(1), part(2)]).is_err());
        assert!(check_part_list_against_plan(&fixed, &[part(1), part(3), part(4)]).is_err());
        let open = claims(None, None, None);
        assert!(check_part_list_against_plan(&open, &[part(1), part(9_999)]).is_ok());
    }

    #[test]
    fn checksums_parse_and_check_the_digest_length() {
        let (a, v) = checksum("crc32c:yZRlqg==").unwrap();
        assert_eq!((a, v.as_str()), (ChecksumAlgorithm::Crc32c, "yZRlqg=="));
        assert_eq!(
            checksum("md5:1B2M2Y8AsgTpgAmY7PhCfg==").unwrap().0,
            ChecksumAlgorithm::Md5
        );
        // `+` decoded as a space by the query parser.
        assert!(checksum("sha256:47DEQpj8HBSa /TImW 5JCeuQeRkm5NMpJWZG3hSuFU=").is_ok());
        for bad in [
            "crc32c",
            "crc64:AAAA",
            "crc32c:AAAAAAAA",
            "md5:!!!",
            "sha256:",
        ] {
            assert!(checksum(bad).is_err(), "{bad}");
        }
        let m = batch_checksums("1:crc32:AAAAAA==,2:crc32:AAAAAQ==", &[1, 2]).unwrap();
        assert_eq!(m.len(), 2);
        assert!(batch_checksums("3:crc32:AAAAAA==", &[1, 2]).is_err());
        assert!(batch_checksums("1:crc32:AAAAAA==,1:crc32:AAAAAA==", &[1]).is_err());
        assert!(batch_checksums("", &[1]).unwrap().is_empty());
    }
}
