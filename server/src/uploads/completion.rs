//! Completing an upload the application can trust ([`VerifiedUpload::complete`]).
//!
//! 1. The part list (already checked as input, `validate::part_list`) must fit the upload's plan,
//!    and carry each part's checksum of the upload's algorithm and no other
//!    ([`policy::check_part_list_against_plan`], [`policy::completion_checksums`]).
//! 2. [`check_listed`]: when the upload has a size bound or is a stream, the parts a completion
//!    names must be the ones the store lists, with the listed ETags, and their sizes must fit the
//!    plan (a stream's: its part size, every part but the last exactly) and the caller's limit; parts holding more than was signed or allowed abort the upload (here, and
//!    nowhere else). The store then assembles exactly the listed parts (it checks each named
//!    ETag), so a part re-sent between the listing and the completion cannot slip in.
//! 3. After `CompleteMultipartUpload` the object is read back with `HeadObject`: it exists, holds
//!    what the plan or the listed parts say and no more than the caller may store. An object that
//!    breaks those limits is deleted. The answer's facts ([`VerifiedObject`]) are the store's,
//!    read back: Ceph 16's completion answer has an empty ETag (`docs/stores.md`, "Completion");
//!    the HEAD fills it. For parts with CRCs, the CRC of the whole object is combined from theirs
//!    and their lengths (`whole_file.rs`), which is why an upload with CRC parts and no fixed plan
//!    is listed before completing, bounded or not.
//! 4. A completion retried after its answer was lost finds no upload: when the object under the
//!    key has the ETag the named parts give a multipart object ([`multipart_etag`]), it is this
//!    upload's result, and the retry gets the same answer (held to the same limits).
//!
//! Then the answer: the receipt of what was verified, once the completion event (if events are
//! on) is in the store.

use s3_direct_protocol::wire::{
    ChecksumAlgorithm, CompleteResponse, CompletedPart, ListedPart, WholeFileChecksum,
};

use super::VerifiedUpload;
use crate::error::Error;
use crate::policy::{self, bounded, part_length};
use crate::store::{ObjectHead, Store, StoreError};
use crate::token::UploadClaims;
use crate::whole_file;

/// What the server verified about a completed object, read back from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedObject {
    pub key: String,
    /// The object's size in bytes.
    pub size: u64,
    /// The object's ETag (quotes included), as the store reports it.
    pub etag: String,
    /// The object's checksum, `ALGO:BASE64` (`-N` for a composite), when the store reports one.
    pub checksum: Option<String>,
    /// The object's content type, when the store reports one.
    pub content_type: Option<String>,
    /// The CRC of the whole object, when its parts' CRCs were verified by the store.
    pub whole_file: WholeFileChecksum,
}

/// A completed upload: the verified object and where browsers find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub object: VerifiedObject,
    /// URL of the object.
    pub location: String,
    /// Whether the upload had been completed by an earlier call (whose answer was lost).
    pub earlier: bool,
}

/// How the stored parts break the plan, if they do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// More bytes than signed or allowed: the caller got around a limit; abort the upload.
    Abort(String),
    /// A part missing, not the listed one, or short (an interrupted re-send can leave a short part
    /// on some stores). Nothing was bypassed; the client re-sends and completes.
    Resend(String),
}

/// Checks the parts a completion names against the store's list, and returns the bytes they
/// hold. Every named part must be listed, with the listed ETag (where the store lists ETags);
/// sizes must match the plan, the declared size and the caller's limit.
pub fn check_listed(
    claims: &UploadClaims,
    parts: &[CompletedPart],
    listed: &[ListedPart],
) -> Result<u64, Broken> {
    let mut total: u64 = 0;
    for p in parts {
        let n = p.part_number;
        let Some(stored) = listed.iter().find(|l| l.part_number == n) else {
            return Err(Broken::Resend(format!(
                "part {n} is not among the parts the store holds"
            )));
        };
        if !stored.etag.is_empty() && !same_etag(&stored.etag, &p.etag) {
            return Err(Broken::Resend(format!(
                "part {n} is named with ETag {} but the store holds {}",
                p.etag, stored.etag
            )));
        }
        if let Some(expected) = part_length(claims, n)
            && stored.size != expected
        {
            let why = format!(
                "part {n} holds {} bytes but the upload's plan says {expected}",
                stored.size
            );
            return Err(if stored.size > expected {
                Broken::Abort(why)
            } else {
                Broken::Resend(why)
            });
        }
        if let Some(part_size) = claims.part_size.filter(|_| policy::streamed(claims)) {
            if stored.size > part_size {
                return Err(Broken::Abort(format!(
                    "part {n} holds {} bytes, more than the stream's part size of {part_size}",
                    stored.size
                )));
            }
            let last = parts.last().map(|p| p.part_number) == Some(n);
            if !last && stored.size != part_size {
                return Err(Broken::Resend(format!(
                    "part {n} holds {} bytes; every part of a stream but the last holds its part \
                     size of {part_size}",
                    stored.size
                )));
            }
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
    Ok(total)
}

/// Whether two ETags are the same, quotes and hex case aside.
pub fn same_etag(a: &str, b: &str) -> bool {
    a.trim_matches('"')
        .eq_ignore_ascii_case(b.trim_matches('"'))
}

/// The ETag S3 gives the multipart object assembled from `parts`: the hex MD5 of the parts'
/// binary MD5s, then `-` and the part count (unquoted). `None` when a part's ETag is not a hex
/// MD5, as with stores that make ETags of their own.
pub fn multipart_etag(parts: &[CompletedPart]) -> Option<String> {
    use md5::{Digest, Md5};
    let mut all = Md5::new();
    for p in parts {
        let hex = p.etag.trim_matches('"');
        let mut digest = [0u8; 16];
        if hex.len() != 32 {
            return None;
        }
        for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(pair, 16).ok()?;
        }
        all.update(digest);
    }
    let hex: String = all.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("{hex}-{}", parts.len()))
}

impl VerifiedUpload<'_> {
    /// Completes the upload from the parts `parts` names (each checked as input already) and
    /// answers the verified object with its receipt; see the module docs.
    pub async fn complete(&self, parts: &[CompletedPart]) -> Result<CompleteResponse, Error> {
        policy::check_part_list_against_plan(&self.claims, parts)?;
        let checked = policy::completion_checksums(&self.claims, parts)?;
        let done = self.finish(&checked).await?;
        let object = &done.object;
        if !done.earlier {
            self.state().metrics().bytes_completed.inc_by(object.size);
        }
        tracing::info!(
            key = %object.key, upload = %self.store_id, parts = parts.len(),
            size = object.size, etag = %object.etag, earlier = done.earlier,
            "upload completed"
        );
        self.caller.answer(done, self.store_id).await
    }

    /// Completes the upload from `parts` (checked against the plan and with the checksums the
    /// store must receive) and verifies the object.
    async fn finish(&self, parts: &[CompletedPart]) -> Result<Finished, Error> {
        let store = self.state().store();
        let (key, store_id, claims) = (self.key, self.store_id, &self.claims);
        let mut expected = claims.size;
        let mut listed = Vec::new();
        let held_to_listing = bounded(claims) || policy::streamed(claims);
        if held_to_listing || needs_listed_lengths(claims, parts) {
            listed = match store.list_parts(key, store_id).await {
                Err(e @ StoreError::NoSuchUpload { .. }) => {
                    return self.completed_earlier(parts, e).await;
                }
                listed => listed?,
            };
        }
        if held_to_listing {
            match check_listed(claims, parts, &listed) {
                Ok(total) => expected = Some(total),
                Err(Broken::Abort(why)) => {
                    tracing::warn!(%key, upload = %store_id, "aborting an upload that broke its plan: {why}");
                    store.abort(key, store_id).await?;
                    return Err(Error::PlanViolated(format!(
                        "{why}; the upload was aborted, start a new one"
                    )));
                }
                Err(Broken::Resend(why)) => {
                    return Err(Error::Store(StoreError::InvalidPart { message: why }));
                }
            }
        }
        let done = match store.complete(key, store_id, parts).await {
            Err(e @ StoreError::NoSuchUpload { .. }) => {
                return self.completed_earlier(parts, e).await;
            }
            done => done?,
        };
        let head = store.head_object(key).await?.ok_or_else(|| {
            StoreError::unavailable(
                "HeadObject",
                format!("the store holds no object under {key:?} just after completing it"),
            )
        })?;
        let mut object = hold_to_limits(store, key, claims, expected, head).await?;
        // Ceph 16 answers the completion with an empty ETag, and the HEAD with the real one.
        if object.etag.is_empty() {
            object.etag = done.etag;
        }
        // The completion's checksum is the one every store tested reports alike.
        if done.checksum.is_some() {
            object.checksum = done.checksum;
        }
        object.whole_file = whole_file_crc(claims, parts, &listed, &object);
        // The location is built from the address browsers use, never the store's own answer
        // (Garage names its `root_domain` there), so a retried completion answers the same.
        let location = store.object_location(&object.key);
        Ok(Finished {
            object,
            location,
            earlier: false,
        })
    }

    /// The answer to a completion whose upload is gone: the object under the key, when its ETag
    /// is the one `parts` give a multipart object (held to the limits as a first completion is);
    /// otherwise `gone`.
    async fn completed_earlier(
        &self,
        parts: &[CompletedPart],
        gone: StoreError,
    ) -> Result<Finished, Error> {
        let (store, key) = (self.state().store(), self.key);
        let Some(etag) = multipart_etag(parts) else {
            return Err(gone.into());
        };
        let head = match store.head_object(key).await? {
            Some(head) if same_etag(&head.etag, &etag) => head,
            _ => return Err(gone.into()),
        };
        tracing::info!(%key, upload = %self.store_id, "the upload was completed earlier; answering its object");
        let mut object = hold_to_limits(store, key, &self.claims, self.claims.size, head).await?;
        // The parts' lengths are the plan's, if fixed: the listing is gone with the upload.
        object.whole_file = whole_file_crc(&self.claims, parts, &[], &object);
        Ok(Finished {
            object,
            location: store.object_location(key),
            earlier: true,
        })
    }
}

/// The object's facts, when it holds `expected` bytes (if known) and no more than the caller's
/// limit; otherwise it is deleted and the caller told why.
async fn hold_to_limits(
    store: &dyn Store,
    key: &str,
    claims: &UploadClaims,
    expected: Option<u64>,
    head: ObjectHead,
) -> Result<VerifiedObject, Error> {
    let size = head.size;
    let broken = match (claims.max_size, expected) {
        (Some(max), _) if size > max => Some(format!(
            "the object holds {size} bytes, more than this caller's limit of {max}"
        )),
        (_, Some(expected)) if size != expected => Some(format!(
            "the object holds {size} bytes, but its parts held {expected} when it was completed"
        )),
        _ => None,
    };
    if let Some(why) = broken {
        tracing::warn!(%key, "deleting an object that broke its upload's limits: {why}");
        store.delete_object(key).await?;
        return Err(Error::PlanViolated(format!(
            "{why}; the object was deleted, upload the file again"
        )));
    }
    Ok(VerifiedObject {
        key: key.to_owned(),
        size,
        etag: head.etag,
        checksum: head.checksum,
        content_type: head.content_type,
        whole_file: WholeFileChecksum::default(),
    })
}

fn is_crc(algorithm: Option<ChecksumAlgorithm>) -> bool {
    matches!(
        algorithm,
        Some(ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c)
    )
}

/// Whether completing needs the store's listing for the parts' lengths alone: the parts have
/// CRCs to combine and the plan does not fix every named part's length.
fn needs_listed_lengths(claims: &UploadClaims, parts: &[CompletedPart]) -> bool {
    is_crc(claims.checksum)
        && parts
            .iter()
            .any(|p| part_length(claims, p.part_number).is_none())
}

/// The whole object's CRC from the named parts' CRCs and their lengths (listed, else planned),
/// when the lengths add up to the object's size and the store's composite checksum is the one
/// the named CRCs give (see `whole_file.rs`).
fn whole_file_crc(
    claims: &UploadClaims,
    parts: &[CompletedPart],
    listed: &[ListedPart],
    object: &VerifiedObject,
) -> WholeFileChecksum {
    let length = |n: u32| {
        listed
            .iter()
            .find(|l| l.part_number == n)
            .map(|l| l.size)
            .or_else(|| part_length(claims, n))
    };
    let total = parts
        .iter()
        .try_fold(0u64, |sum, p| sum.checked_add(length(p.part_number)?));
    if total != Some(object.size) {
        return WholeFileChecksum::default();
    }
    whole_file::of_parts(claims.checksum, parts, length, object.checksum.as_deref())
}

#[cfg(test)]
mod tests {
    use s3_direct_protocol::limits::MIB;

    use super::*;
    use crate::policy::tests::{claims, part};

    fn listed(n: u32, size: u64) -> ListedPart {
        ListedPart {
            part_number: n,
            etag: String::new(),
            size,
            ..Default::default()
        }
    }

    #[test]
    fn completion_checks_sizes_against_plan_and_limits() {
        let fixed = claims(Some(11 * MIB), Some(5 * MIB), None);
        let parts = [part(1), part(2), part(3)];
        let good = [listed(1, 5 * MIB), listed(2, 5 * MIB), listed(3, MIB)];
        assert_eq!(check_listed(&fixed, &parts, &good), Ok(11 * MIB));
        let bad = [listed(1, 6 * MIB), listed(2, 4 * MIB), listed(3, MIB)];
        let Err(Broken::Abort(e)) = check_listed(&fixed, &parts, &bad) else {
            panic!("a longer part than planned must abort");
        };
        assert!(e.contains("part 1 holds 6291456 bytes"), "{e}");
        let short = [listed(1, 5 * MIB), listed(2, 4 * MIB), listed(3, MIB)];
        assert!(matches!(
            check_listed(&fixed, &parts, &short),
            Err(Broken::Resend(_))
        ));
        // Size only: the total must match; more is an abort, less a re-send.
        let sized = claims(Some(11 * MIB), None, None);
        let over = [listed(1, 6 * MIB), listed(2, 5 * MIB), listed(3, MIB)];
        assert!(matches!(
            check_listed(&sized, &parts, &over),
            Err(Broken::Abort(_))
        ));
        assert!(matches!(
            check_listed(&sized, &parts, &short),
            Err(Broken::Resend(_))
        ));
        assert!(check_listed(&sized, &parts, &good).is_ok());
        // A limit: the total must stay under it.
        let limited = claims(None, None, Some(10 * MIB));
        assert!(matches!(
            check_listed(&limited, &parts, &good),
            Err(Broken::Abort(_))
        ));
    }

    #[test]
    fn named_parts_must_be_the_listed_ones() {
        let limited = claims(None, None, Some(100 * MIB));
        let parts = [part(1), part(2)];
        // A part the listing lacks is refused, not left to the store.
        let Err(Broken::Resend(e)) = check_listed(&limited, &parts, &[listed(1, MIB)]) else {
            panic!("a part missing from the listing must be refused");
        };
        assert_eq!(e, "part 2 is not among the parts the store holds");
        // A listed ETag must be the named one (quotes and case aside).
        let mut other = listed(2, MIB);
        other.etag = "\"F\"".into();
        let Err(Broken::Resend(e)) = check_listed(&limited, &parts, &[listed(1, MIB), other])
        else {
            panic!("another ETag than the listed one must be refused");
        };
        assert!(e.contains("part 2 is named with ETag \"e\""), "{e}");
        let mut same = listed(2, MIB);
        same.etag = "E".into();
        assert_eq!(
            check_listed(&limited, &parts, &[listed(1, MIB), same]),
            Ok(2 * MIB)
        );
    }

    #[test]
    fn multipart_etags_are_the_md5_of_the_part_md5s() {
        // Two parts, "a" and "b": MD5s 0cc175b9…, 92eb5ffe…; S3's ETag of the object.
        let parts = [
            CompletedPart {
                part_number: 1,
                etag: "\"0cc175b9c0f1b6a831c399e269772661\"".into(),
                ..CompletedPart::default()
            },
            CompletedPart {
                part_number: 2,
                etag: "92EB5FFEE6AE2FEC3AD71C777531578F".into(),
                ..CompletedPart::default()
            },
        ];
        assert_eq!(
            multipart_etag(&parts).as_deref(),
            Some("96e024ba2074fe77e8e965ba43a704be-2")
        );
        assert_eq!(multipart_etag(&[part(1)]), None);
        assert!(same_etag("\"ab-2\"", "AB-2") && !same_etag("ab-2", "ab-3"));
    }
}
