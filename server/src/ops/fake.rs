//! An in-memory [`MultipartAdmin`] that pages like S3 (1,000 per page) and yields at every call,
//! so concurrent purges interleave.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use async_trait::async_trait;

use super::error::OpsError;
use super::uploads::{Aborted, MultipartAdmin, PartPage, PendingUpload, UploadMarker, UploadPage};

/// Uploads by (key, upload id): when started and the size of each part, by part number.
type Uploads = BTreeMap<(String, String), (SystemTime, BTreeMap<u32, u64>)>;

/// The fake store, with counters of the calls it answered.
#[derive(Debug, Default)]
pub struct FakeAdmin {
    pub uploads: Mutex<Uploads>,
    pub upload_pages: AtomicUsize,
    pub part_pages: AtomicUsize,
    pub aborts: AtomicUsize,
    /// Answer every listing with NotImplemented, as s3s-fs does.
    pub unsupported: bool,
}

const PAGE: usize = 1000;

impl FakeAdmin {
    pub fn add(&self, key: &str, upload_id: &str, initiated: SystemTime, part_sizes: &[u64]) {
        let parts = (1u32..).zip(part_sizes.iter().copied()).collect();
        self.uploads
            .lock()
            .unwrap()
            .insert((key.to_owned(), upload_id.to_owned()), (initiated, parts));
    }

    pub fn len(&self) -> usize {
        self.uploads.lock().unwrap().len()
    }

    pub fn contains(&self, key: &str, upload_id: &str) -> bool {
        self.uploads
            .lock()
            .unwrap()
            .contains_key(&(key.to_owned(), upload_id.to_owned()))
    }
}

#[async_trait]
impl MultipartAdmin for FakeAdmin {
    fn bucket(&self) -> &str {
        "fake-bucket"
    }

    async fn list_uploads_page(
        &self,
        prefix: Option<&str>,
        marker: Option<&UploadMarker>,
    ) -> Result<UploadPage, OpsError> {
        tokio::task::yield_now().await;
        if self.unsupported {
            return Err(OpsError::Unsupported {
                operation: "ListMultipartUploads",
            });
        }
        self.upload_pages.fetch_add(1, Ordering::SeqCst);
        let uploads = self.uploads.lock().unwrap();
        let after = marker.map(|m| (m.key.clone(), m.upload_id.clone()));
        let mut matching = uploads
            .iter()
            .filter(|((k, _), _)| prefix.is_none_or(|p| k.starts_with(p)))
            .filter(|(id, _)| after.as_ref().is_none_or(|a| *id > a));
        let page: Vec<PendingUpload> = matching
            .by_ref()
            .take(PAGE)
            .map(|((key, upload_id), (t, _))| PendingUpload {
                key: key.clone(),
                upload_id: upload_id.clone(),
                initiated: Some(*t),
            })
            .collect();
        let next = match (matching.next(), page.last()) {
            (Some(_), Some(last)) => Some(UploadMarker {
                key: last.key.clone(),
                upload_id: last.upload_id.clone(),
            }),
            _ => None,
        };
        Ok(UploadPage {
            uploads: page,
            next,
        })
    }

    async fn list_parts_page(
        &self,
        key: &str,
        upload_id: &str,
        marker: Option<&str>,
    ) -> Result<PartPage, OpsError> {
        tokio::task::yield_now().await;
        self.part_pages.fetch_add(1, Ordering::SeqCst);
        let uploads = self.uploads.lock().unwrap();
        let Some((_, parts)) = uploads.get(&(key.to_owned(), upload_id.to_owned())) else {
            return Err(OpsError::NoSuchUpload {
                key: key.to_owned(),
                upload_id: upload_id.to_owned(),
            });
        };
        let after: u32 = marker.map_or(0, |m| m.parse().unwrap());
        let mut rest = parts.range(after + 1..);
        let page: Vec<(u32, u64)> = rest.by_ref().take(PAGE).map(|(n, s)| (*n, *s)).collect();
        let next = match (rest.next(), page.last()) {
            (Some(_), Some((n, _))) => Some(n.to_string()),
            _ => None,
        };
        Ok(PartPage {
            sizes: page.into_iter().map(|(_, s)| s).collect(),
            next,
        })
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<Aborted, OpsError> {
        tokio::task::yield_now().await;
        self.aborts.fetch_add(1, Ordering::SeqCst);
        let removed = self
            .uploads
            .lock()
            .unwrap()
            .remove(&(key.to_owned(), upload_id.to_owned()));
        Ok(if removed.is_some() {
            Aborted::Now
        } else {
            Aborted::AlreadyGone
        })
    }
}
