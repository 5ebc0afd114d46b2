//! Finding and removing incomplete multipart uploads.
//!
//! A store keeps (and bills) the parts of an upload until it is completed or aborted. The logic
//! here pages through `ListMultipartUploads` and `ListParts` and aborts, over the
//! [`MultipartAdmin`] trait so that it is tested against a fake; [`S3Store`](crate::S3Store)
//! implements the trait with aws-sdk-s3.
//!
//! Removal is idempotent: an upload that is gone when we reach it (another purge, a client that
//! completed or cancelled it) counts as already gone, so two purges may run at once.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;

use super::error::OpsError;

/// How many uploads are inspected (ListParts) or aborted at once.
const CONCURRENCY: usize = 16;

/// S3 allows 10,000 parts; a store that pages further than that is not advancing.
const MAX_PART_PAGES: usize = 11;

/// One incomplete upload as `ListMultipartUploads` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    pub key: String,
    pub upload_id: String,
    /// When the upload was created; `None` if the store did not say.
    pub initiated: Option<SystemTime>,
}

/// Where the next page of uploads starts (`key-marker`, `upload-id-marker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadMarker {
    pub key: String,
    pub upload_id: String,
}

/// A page of `ListMultipartUploads`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadPage {
    pub uploads: Vec<PendingUpload>,
    /// `Some` when the listing is truncated: ask again from here.
    pub next: Option<UploadMarker>,
}

/// A page of `ListParts`: the sizes of the parts on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartPage {
    pub sizes: Vec<u64>,
    /// `Some` when the listing is truncated: the next part-number marker.
    pub next: Option<String>,
}

/// What an abort found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aborted {
    /// The upload existed and is now aborted.
    Now,
    /// The upload did not exist any more (aborted or completed by someone else).
    AlreadyGone,
}

/// The multipart-upload housekeeping calls of an S3 store.
#[async_trait]
pub trait MultipartAdmin: Send + Sync {
    /// Bucket the calls go to.
    fn bucket(&self) -> &str;

    /// One page (at most 1,000) of incomplete uploads whose keys start with `prefix`, from
    /// `marker` on.
    async fn list_uploads_page(
        &self,
        prefix: Option<&str>,
        marker: Option<&UploadMarker>,
    ) -> Result<UploadPage, OpsError>;

    /// One page (at most 1,000) of the parts of an upload, after part number `marker`.
    /// A missing upload is [`OpsError::NoSuchUpload`].
    async fn list_parts_page(
        &self,
        key: &str,
        upload_id: &str,
        marker: Option<&str>,
    ) -> Result<PartPage, OpsError>;

    /// Aborts the upload; a missing one is [`Aborted::AlreadyGone`], not an error.
    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<Aborted, OpsError>;
}

/// Which uploads a command is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// Only uploads started at least this long ago (uploads of unknown age are left out).
    pub older_than: Option<Duration>,
}

impl Filter {
    /// True when the filter names no subset: every upload in the bucket.
    pub fn is_unbounded(&self) -> bool {
        self.prefix.as_deref().is_none_or(str::is_empty) && self.older_than.is_none()
    }

    fn keeps(&self, upload: &PendingUpload, now: SystemTime) -> bool {
        match self.older_than {
            None => true,
            Some(min) => upload
                .initiated
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age >= min),
        }
    }
}

/// An incomplete upload with what it stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadUsage {
    pub upload: PendingUpload,
    pub parts: u64,
    pub bytes: u64,
}

/// Every incomplete upload matching `filter`, oldest pages first as the store lists them
/// (all pages of `ListMultipartUploads`).
pub async fn pending_uploads(
    admin: &dyn MultipartAdmin,
    filter: &Filter,
    now: SystemTime,
) -> Result<Vec<PendingUpload>, OpsError> {
    const OP: &str = "ListMultipartUploads";
    let prefix = filter.prefix.as_deref().filter(|p| !p.is_empty());
    let mut out = Vec::new();
    let mut marker: Option<UploadMarker> = None;
    loop {
        let page = admin.list_uploads_page(prefix, marker.as_ref()).await?;
        out.extend(page.uploads.into_iter().filter(|u| filter.keeps(u, now)));
        match page.next {
            None => return Ok(out),
            // A store that says "truncated" without moving the marker would loop forever.
            Some(next) if Some(&next) == marker.as_ref() => {
                return Err(OpsError::Store {
                    operation: OP,
                    detail: format!(
                        "the store's paging did not advance past key {:?}, upload {:?}",
                        next.key, next.upload_id
                    ),
                });
            }
            Some(next) => marker = Some(next),
        }
    }
}

/// Parts and bytes an upload stores (all pages of `ListParts`); `None` if it is gone.
pub async fn usage_of(
    admin: &dyn MultipartAdmin,
    upload: &PendingUpload,
) -> Result<Option<(u64, u64)>, OpsError> {
    let (mut parts, mut bytes) = (0u64, 0u64);
    let mut marker: Option<String> = None;
    for _ in 0..MAX_PART_PAGES {
        let page = match admin
            .list_parts_page(&upload.key, &upload.upload_id, marker.as_deref())
            .await
        {
            Ok(page) => page,
            Err(OpsError::NoSuchUpload { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        parts += page.sizes.len() as u64;
        bytes = page
            .sizes
            .iter()
            .fold(bytes, |sum, s| sum.saturating_add(*s));
        match page.next {
            None => return Ok(Some((parts, bytes))),
            Some(next) if Some(&next) == marker.as_ref() => break,
            Some(next) => marker = Some(next),
        }
    }
    Err(OpsError::Store {
        operation: "ListParts",
        detail: format!(
            "the store's paging of upload {:?} did not advance (after {parts} parts)",
            upload.upload_id
        ),
    })
}

/// Every incomplete upload matching `filter` with its parts and bytes. Uploads that disappear
/// while being inspected (completed or aborted meanwhile) are left out.
pub async fn list(
    admin: &dyn MultipartAdmin,
    filter: &Filter,
    now: SystemTime,
) -> Result<Vec<UploadUsage>, OpsError> {
    let pending = pending_uploads(admin, filter, now).await?;
    let inspected: Vec<Result<Option<UploadUsage>, OpsError>> =
        futures::stream::iter(pending.into_iter().map(|upload| async move {
            Ok(usage_of(admin, &upload)
                .await?
                .map(|(parts, bytes)| UploadUsage {
                    upload,
                    parts,
                    bytes,
                }))
        }))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut out = Vec::with_capacity(inspected.len());
    for usage in inspected {
        out.extend(usage?);
    }
    Ok(out)
}

/// What a purge did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// True when nothing was aborted on purpose.
    pub dry_run: bool,
    /// Uploads aborted by this run (dry: that would be aborted), with what they stored.
    pub aborted: Vec<UploadUsage>,
    /// Uploads that were gone by the time this run reached them (another purge, a client).
    pub already_gone: u64,
}

impl PurgeReport {
    /// Parts freed by this run.
    pub fn parts(&self) -> u64 {
        self.aborted.iter().map(|u| u.parts).sum()
    }

    /// Bytes freed by this run.
    pub fn bytes(&self) -> u64 {
        self.aborted
            .iter()
            .fold(0u64, |sum, u| sum.saturating_add(u.bytes))
    }
}

/// Why a prefix cannot bound a purge or a sweep; the message continues a sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafePrefix {
    /// No prefix: the whole bucket, other applications' uploads included.
    #[error(
        "the prefix is empty, which is the whole bucket: it would also abort the uploads of \
         every other application writing to it"
    )]
    Empty,
    /// `uploads` also matches `uploads-archive/…` and `uploads2/…`.
    #[error(
        "the prefix {0:?} does not end with '/': it would also abort uploads under {0:?} \
         followed by anything, like \"{0}-archive/…\"; use \"{0}/\""
    )]
    NoSlash(String),
}

/// Why `prefix` cannot bound a purge or a sweep, if it cannot: it must be non-empty and end with
/// `/`.
pub fn check_sweeping_prefix(prefix: &str) -> Result<(), UnsafePrefix> {
    if prefix.is_empty() {
        return Err(UnsafePrefix::Empty);
    }
    if !prefix.ends_with('/') {
        return Err(UnsafePrefix::NoSlash(prefix.to_owned()));
    }
    Ok(())
}

/// Aborts every incomplete upload matching `filter` (with `dry_run`, only reports them).
///
/// Refuses, unless `all` is set, an unbounded filter (a purge of a whole bucket also kills the
/// uploads in progress right now) and a prefix [`check_sweeping_prefix`] refuses (no prefix is
/// the whole bucket).
pub async fn purge(
    admin: &dyn MultipartAdmin,
    filter: &Filter,
    now: SystemTime,
    dry_run: bool,
    all: bool,
) -> Result<PurgeReport, OpsError> {
    if filter.is_unbounded() && !all {
        return Err(OpsError::Refused(
            "refusing to purge every incomplete upload in the bucket, including uploads in \
             progress right now; give --older-than (e.g. --older-than 24h) or --prefix, or \
             --yes to really abort them all"
                .to_owned(),
        ));
    }
    if !all {
        check_sweeping_prefix(filter.prefix.as_deref().unwrap_or_default()).map_err(|why| {
            OpsError::Refused(format!(
                "refusing to purge: {why}. Pass a --prefix that ends with '/', like \
                 --prefix uploads/ (the default is --key-prefix), or --yes to purge everything \
                 it matches"
            ))
        })?;
    }
    let found = list(admin, filter, now).await?;
    let before = found.len() as u64;
    let mut report = PurgeReport {
        dry_run,
        ..PurgeReport::default()
    };
    if dry_run {
        report.aborted = found;
        return Ok(report);
    }
    let results: Vec<Result<(Aborted, UploadUsage), OpsError>> =
        futures::stream::iter(found.into_iter().map(|usage| async move {
            let outcome = admin
                .abort_upload(&usage.upload.key, &usage.upload.upload_id)
                .await?;
            Ok((outcome, usage))
        }))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    for result in results {
        match result? {
            (Aborted::Now, usage) => report.aborted.push(usage),
            (Aborted::AlreadyGone, _) => report.already_gone += 1,
        }
    }
    debug_assert_eq!(report.aborted.len() as u64 + report.already_gone, before);
    Ok(report)
}

/// Aborts one upload; a missing one is [`OpsError::NoSuchUpload`] so the operator learns that
/// the key or id was wrong (or someone was faster).
pub async fn abort_one(
    admin: &dyn MultipartAdmin,
    key: &str,
    upload_id: &str,
) -> Result<Option<(u64, u64)>, OpsError> {
    let upload = PendingUpload {
        key: key.to_owned(),
        upload_id: upload_id.to_owned(),
        initiated: None,
    };
    let usage = usage_of(admin, &upload).await.ok().flatten();
    match admin.abort_upload(key, upload_id).await? {
        Aborted::Now => Ok(usage),
        Aborted::AlreadyGone => Err(OpsError::NoSuchUpload {
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
        }),
    }
}
