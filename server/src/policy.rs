//! The signing policy: who may act on which upload, and the limits every signature carries.
//!
//! Each route calls these before the store:
//!
//! 1. [`authorize`]: the [`Authorizer`](crate::auth::Authorizer) names the caller, then the
//!    per-caller rate limit applies (per client address when the server is open).
//! 2. [`verify_upload`] (every call on an existing upload): the key is under the caller's prefix,
//!    the upload token in `uploadId` verifies for this store upload id and key, has not expired,
//!    and was issued to this caller.
//! 3. [`max_part_number`] / [`part_length`]: a declared size (and part size) bounds the part
//!    numbers and fixes each part's exact `Content-Length` in its signature.
//! 4. [`check_completion`]: at completion the stored part sizes must match the plan and limits;
//!    the route aborts an upload that broke them.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::PartPlan;
use s3_direct_protocol::limits::{MAX_PART_NUMBER, MIN_PART_SIZE};
use s3_direct_protocol::wire::{ChecksumAlgorithm, CompletedPart, ListedPart, PartChecksums};

use crate::AppState;
use crate::auth::{Action, CreateDetails, Principal};
use crate::error::Error;
use crate::keys::truncate_for_message;
use crate::ratelimit::Gate;
use crate::token::{UploadClaims, principal_digest, split_upload_id};
use crate::validate;

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Authenticates the caller and charges the request to its rate limit (before a webhook call
/// for credentials not known yet, to the client address's; see `ratelimit.rs`).
pub async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    action: Action,
    create: Option<&CreateDetails>,
) -> Result<Principal, Error> {
    let gate = Gate::new(
        state.limiter(),
        state.address_limiter(),
        peer,
        state.authorizer().is_open(),
    );
    let outcome = state
        .authorizer()
        .authorize(headers, action, create, &gate)
        .await;
    gate.settle(outcome)
}

/// The full key prefix of `principal`: the server's prefix plus its own.
pub fn prefix_of(state: &AppState, principal: &Principal) -> String {
    format!("{}{}", state.keys().prefix(), principal.key_prefix)
}

/// The `key` query parameter: present, of the shape this server issues, under the caller's prefix.
pub fn checked_key<'a>(
    state: &AppState,
    principal: &Principal,
    key: Option<&'a str>,
) -> Result<&'a str, Error> {
    let key = key.ok_or_else(|| {
        Error::bad_request(
            ErrorCode::InvalidKey,
            "missing query parameter `key`; pass the key returned when the upload was created",
        )
    })?;
    let prefix = prefix_of(state, principal);
    if principal.key_prefix.is_empty() || key.starts_with(&prefix) {
        return state.keys().check_under(&prefix, key);
    }
    Err(Error::Forbidden {
        code: ErrorCode::Forbidden,
        message: format!(
            "key {:?} is outside the prefix {prefix:?} this caller may write under",
            truncate_for_message(key)
        ),
    })
}

/// An existing upload the caller has proved it owns.
#[derive(Debug, Clone)]
pub struct UploadRef<'a> {
    /// The store's upload id (the part of `uploadId` before the last `.`).
    pub store_id: &'a str,
    pub key: &'a str,
    pub claims: UploadClaims,
}

/// Checks `uploadId` + `key` belong to `principal` (see the module docs).
pub fn verify_upload<'a>(
    state: &AppState,
    principal: &Principal,
    raw_upload_id: &'a str,
    key: Option<&'a str>,
) -> Result<UploadRef<'a>, Error> {
    let raw = validate::upload_id(raw_upload_id)?;
    let key = checked_key(state, principal, key)?;
    let (store_id, token) = split_upload_id(raw)?;
    let claims = state.secrets().open(store_id, key, token, now_secs())?;
    if claims.principal != principal_digest(&principal.id) {
        return Err(Error::Forbidden {
            code: ErrorCode::Forbidden,
            message: "this upload belongs to another principal".to_owned(),
        });
    }
    Ok(UploadRef {
        store_id,
        key,
        claims,
    })
}

/// The plan fixed at create, when both size and part size were declared.
pub fn plan_of(claims: &UploadClaims) -> Option<PartPlan> {
    PartPlan::with_part_size(claims.size?, claims.part_size?).ok()
}

/// The highest part number the upload can have: the plan's count, or, with only a size (or a
/// size limit) known, the count at S3's 5 MiB minimum part size.
pub fn max_part_number(claims: &UploadClaims) -> u32 {
    if let Some(plan) = plan_of(claims) {
        return plan.part_count;
    }
    match claims.size.or(claims.max_size) {
        Some(size) => {
            let count = size
                .div_ceil(MIN_PART_SIZE)
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

/// Exact length of part `n` when the plan is fixed.
pub fn part_length(claims: &UploadClaims, n: u32) -> Option<u64> {
    plan_of(claims)
        .filter(|p| (1..=p.part_count).contains(&n))
        .map(|p| p.part_len(n))
}

/// Parses `ALGO:BASE64`, checking the digest has the algorithm's length.
pub fn checksum(raw: &str) -> Result<(ChecksumAlgorithm, String), Error> {
    let invalid = |why: String| Error::bad_request(ErrorCode::InvalidRequest, why);
    let (algo, value) = raw.split_once(':').ok_or_else(|| {
        invalid(format!(
            "checksum {:?} is not ALGO:BASE64, like crc32c:yZRlqg==",
            truncate_for_message(raw)
        ))
    })?;
    let algo = ChecksumAlgorithm::parse(algo).ok_or_else(|| {
        invalid(format!(
            "checksum algorithm {:?} is not one of md5, crc32, crc32c, sha256",
            truncate_for_message(algo)
        ))
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
) -> Result<std::collections::BTreeMap<u32, (ChecksumAlgorithm, String)>, Error> {
    let mut out = std::collections::BTreeMap::new();
    for item in raw.split(',').filter(|s| !s.trim().is_empty()) {
        let (n, rest) = item.split_once(':').unwrap_or((item, ""));
        let n = validate::part_number(n)?;
        if !numbers.contains(&n) {
            return Err(Error::bad_request(
                ErrorCode::InvalidBatch,
                format!("checksums names part {n}, which is not in partNumbers"),
            ));
        }
        if out.insert(n, checksum(rest)?).is_some() {
            return Err(Error::bad_request(
                ErrorCode::InvalidBatch,
                format!("checksums names part {n} more than once"),
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
/// algorithm the upload was created with, and no other (a store refuses part checksums of an
/// upload created without them).
pub fn completion_checksums(
    claims: &UploadClaims,
    parts: &[CompletedPart],
) -> Result<Vec<CompletedPart>, Error> {
    parts
        .iter()
        .map(|p| {
            let mut kept = CompletedPart {
                part_number: p.part_number,
                etag: p.etag.clone(),
                ..CompletedPart::default()
            };
            let Some(declared) = claims.checksum.filter(|a| *a != ChecksumAlgorithm::Md5) else {
                return Ok(kept);
            };
            match p.checksums.get(declared) {
                Some(value) => {
                    checksum(&format!("{declared}:{value}"))?;
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

/// Whether completion must look at the stored part sizes first.
pub fn completion_needs_sizes(claims: &UploadClaims) -> bool {
    claims.size.is_some() || claims.max_size.is_some()
}

/// How the stored parts break the plan, if they do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// More bytes than signed or allowed: the caller got around a limit; abort the upload.
    Abort(String),
    /// Fewer bytes than planned: a part is missing data (an interrupted re-send can leave a
    /// short part on some stores). Nothing was bypassed; the client re-sends and completes.
    Resend(String),
}

/// Checks the stored sizes of the parts being completed. Parts missing from `listed` are left
/// to the store, which refuses them.
pub fn check_completion(
    claims: &UploadClaims,
    parts: &[CompletedPart],
    listed: &[ListedPart],
) -> Result<(), Broken> {
    let mut total: u64 = 0;
    for p in parts {
        let Some(stored) = listed.iter().find(|l| l.part_number == p.part_number) else {
            return Ok(());
        };
        if let Some(expected) = part_length(claims, p.part_number)
            && stored.size != expected
        {
            let why = format!(
                "part {} holds {} bytes but the upload's plan says {expected}",
                p.part_number, stored.size
            );
            return Err(if stored.size > expected {
                Broken::Abort(why)
            } else {
                Broken::Resend(why)
            });
        }
        total = total.saturating_add(stored.size);
    }
    if let Some(max) = claims.max_size
        && total > max
    {
        return Err(Broken::Abort(format!(
            "the parts hold {total} bytes, more than this caller's limit of {max}"
        )));
    }
    if let Some(size) = claims.size
        && total != size
    {
        let why = format!("the parts hold {total} bytes but the upload declared {size}");
        return Err(if total > size {
            Broken::Abort(why)
        } else {
            Broken::Resend(why)
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3_direct_protocol::limits::MIB;

    fn claims(size: Option<u64>, part_size: Option<u64>, max: Option<u64>) -> UploadClaims {
        UploadClaims {
            principal: principal_digest("a"),
            expires_at: u64::MAX,
            size,
            part_size,
            max_size: max,
            checksum: None,
        }
    }

    fn part(n: u32) -> CompletedPart {
        CompletedPart {
            part_number: n,
            etag: "\"e\"".into(),
            ..CompletedPart::default()
        }
    }

    fn listed(n: u32, size: u64) -> ListedPart {
        ListedPart {
            part_number: n,
            etag: String::new(),
            size,
            ..Default::default()
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
        assert_eq!(part_length(&claims(Some(10), None, None), 1), None);
    }

    #[test]
    fn completion_checks_sizes_against_plan_and_limits() {
        let fixed = claims(Some(11 * MIB), Some(5 * MIB), None);
        let parts = [part(1), part(2), part(3)];
        let good = [listed(1, 5 * MIB), listed(2, 5 * MIB), listed(3, MIB)];
        assert!(check_completion(&fixed, &parts, &good).is_ok());
        let bad = [listed(1, 6 * MIB), listed(2, 4 * MIB), listed(3, MIB)];
        let Err(Broken::Abort(e)) = check_completion(&fixed, &parts, &bad) else {
            panic!("a longer part than planned must abort");
        };
        assert!(e.contains("part 1 holds 6291456 bytes"), "{e}");
        let short = [listed(1, 5 * MIB), listed(2, 4 * MIB), listed(3, MIB)];
        assert!(matches!(
            check_completion(&fixed, &parts, &short),
            Err(Broken::Resend(_))
        ));
        // Size only: the total must match; more is an abort, less a re-send.
        let sized = claims(Some(11 * MIB), None, None);
        let over = [listed(1, 6 * MIB), listed(2, 5 * MIB), listed(3, MIB)];
        assert!(matches!(
            check_completion(&sized, &parts, &over),
            Err(Broken::Abort(_))
        ));
        assert!(matches!(
            check_completion(&sized, &parts, &short),
            Err(Broken::Resend(_))
        ));
        assert!(check_completion(&sized, &parts, &good).is_ok());
        // A limit: the total must stay under it.
        let limited = claims(None, None, Some(10 * MIB));
        assert!(matches!(
            check_completion(&limited, &parts, &good),
            Err(Broken::Abort(_))
        ));
        // Missing parts are the store's to refuse.
        assert!(check_completion(&fixed, &parts, &good[..2]).is_ok());
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
