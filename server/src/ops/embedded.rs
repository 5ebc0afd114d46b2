//! [`MultipartAdmin`] over the embedded store's data dir, which answers `NotImplemented` to
//! `ListMultipartUploads`: its own bookkeeping names every open upload, so the sweeper can still
//! find and remove abandoned ones.
//!
//! s3s-fs 0.14.1 keeps, in its root (the data dir), per open upload: a record, the object's
//! attributes and each part (their names: `crate::embedded::layout`). Aborting removes all three,
//! as s3s-fs's own abort does. The record's modification time is when the upload started.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::embedded::layout::{self, Layout};

use super::error::OpsError;
use super::uploads::{Aborted, MultipartAdmin, PartPage, PendingUpload, UploadMarker, UploadPage};

/// Uploads per page, as S3 pages them.
const PAGE: usize = 1000;

/// The embedded store's uploads, read from its data dir.
#[derive(Debug, Clone)]
pub struct EmbeddedAdmin {
    layout: Layout,
    bucket: String,
}

impl EmbeddedAdmin {
    /// The uploads of `bucket` in the s3s-fs root `data_dir`.
    pub fn new(data_dir: &Path, bucket: &str) -> Self {
        Self {
            layout: Layout::new(data_dir),
            bucket: bucket.to_owned(),
        }
    }

    fn record(&self, upload_id: &str) -> PathBuf {
        self.layout.record(upload_id)
    }

    fn attributes(&self, key: &str, upload_id: &str) -> PathBuf {
        self.layout.attributes(&self.bucket, key, Some(upload_id))
    }

    /// The names of the data dir's files (those that are valid UTF-8; s3s-fs writes no others).
    async fn file_names(&self) -> Result<Vec<String>, OpsError> {
        let mut names = Vec::new();
        let mut dir = tokio::fs::read_dir(self.layout.root())
            .await
            .map_err(|e| io_error("read the data dir", self.layout.root(), &e))?;
        while let Some(entry) = dir
            .next_entry()
            .await
            .map_err(|e| io_error("read the data dir", self.layout.root(), &e))?
        {
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Every open upload of the bucket, sorted by key and upload id.
    async fn all_uploads(&self) -> Result<Vec<PendingUpload>, OpsError> {
        let head = Layout::attributes_prefix(&self.bucket);
        let mut found = Vec::new();
        for name in self.file_names().await? {
            let Some(rest) = name
                .strip_prefix(&head)
                .and_then(|n| n.strip_suffix(".metadata.json"))
            else {
                continue;
            };
            let Some((key, upload_id)) = rest.split_once(".upload-") else {
                continue;
            };
            let Some(key) = layout::decode(key) else {
                continue;
            };
            if uuid::Uuid::parse_str(upload_id).is_err() {
                continue;
            }
            // Without its record the upload is not open (a completion or abort is finishing).
            let Ok(meta) = tokio::fs::metadata(self.record(upload_id)).await else {
                continue;
            };
            found.push(PendingUpload {
                key,
                upload_id: upload_id.to_owned(),
                initiated: meta.modified().ok(),
            });
        }
        found.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
        Ok(found)
    }

    /// The part files of an upload: (part number, path, size).
    async fn parts(&self, upload_id: &str) -> Result<Vec<(u32, PathBuf, u64)>, OpsError> {
        let head = Layout::part_prefix(upload_id);
        let mut parts = Vec::new();
        for name in self.file_names().await? {
            let Some(number) = name.strip_prefix(&head).and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            // A part removed meanwhile is simply not counted.
            let path = self.layout.root().join(&name);
            if let Ok(meta) = tokio::fs::metadata(&path).await {
                parts.push((number, path, meta.len()));
            }
        }
        parts.sort_by_key(|p| p.0);
        Ok(parts)
    }
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> OpsError {
    OpsError::Store {
        operation: "embedded store data dir",
        detail: format!("cannot {what} {}: {e}", path.display()),
    }
}

/// Removes a file; one that is already gone (another sweep) is fine.
async fn remove(path: &Path) -> Result<bool, OpsError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("remove", path, &e)),
    }
}

#[async_trait]
impl MultipartAdmin for EmbeddedAdmin {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn list_uploads_page(
        &self,
        prefix: Option<&str>,
        marker: Option<&UploadMarker>,
    ) -> Result<UploadPage, OpsError> {
        let mut matching = self.all_uploads().await?.into_iter().filter(|u| {
            prefix.is_none_or(|p| u.key.starts_with(p))
                && marker.is_none_or(|m| (&u.key, &u.upload_id) > (&m.key, &m.upload_id))
        });
        let uploads: Vec<PendingUpload> = matching.by_ref().take(PAGE).collect();
        let next = match (matching.next(), uploads.last()) {
            (Some(_), Some(last)) => Some(UploadMarker {
                key: last.key.clone(),
                upload_id: last.upload_id.clone(),
            }),
            _ => None,
        };
        Ok(UploadPage { uploads, next })
    }

    async fn list_parts_page(
        &self,
        key: &str,
        upload_id: &str,
        _marker: Option<&str>,
    ) -> Result<PartPage, OpsError> {
        if !self.attributes(key, upload_id).is_file() || !self.record(upload_id).is_file() {
            return Err(OpsError::NoSuchUpload {
                key: key.to_owned(),
                upload_id: upload_id.to_owned(),
            });
        }
        // All parts on one page: a local directory has no reason to page.
        let sizes = self
            .parts(upload_id)
            .await?
            .into_iter()
            .map(|(_, _, size)| size)
            .collect();
        Ok(PartPage { sizes, next: None })
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<Aborted, OpsError> {
        if uuid::Uuid::parse_str(upload_id).is_err() {
            return Ok(Aborted::AlreadyGone);
        }
        // The attributes first: without them the upload no longer counts as open.
        let attributes = remove(&self.attributes(key, upload_id)).await?;
        for (_, path, _) in self.parts(upload_id).await? {
            remove(&path).await?;
        }
        let record = remove(&self.record(upload_id)).await?;
        Ok(if attributes && record {
            Aborted::Now
        } else {
            Aborted::AlreadyGone
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::ops::uploads::{self, Filter};
    use crate::{EmbeddedCredentials, EmbeddedStore};

    /// Makes an upload in the data dir look started at `to` (by its record).
    fn backdate(data_dir: &Path, upload_id: &str, to: SystemTime) {
        let file = std::fs::File::options()
            .write(true)
            .open(data_dir.join(format!(".upload-{upload_id}.json")))
            .unwrap();
        file.set_modified(to).unwrap();
    }

    /// Uploads through the real embedded store, then finds and aborts them from its data dir.
    #[tokio::test]
    async fn finds_and_aborts_the_embedded_stores_uploads_from_its_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let embedded = EmbeddedStore::start(
            listener,
            dir.path(),
            "sweep-me",
            EmbeddedCredentials::random(),
        )
        .await
        .unwrap();
        let store = embedded.s3_store("sweep-me", "us-east-1", None);
        let c = store.client();
        let mut ids = Vec::new();
        for (key, parts) in [
            ("uploads/old.bin", 2usize),
            ("uploads/new.bin", 1),
            ("x/old", 1),
        ] {
            let id = c
                .create_multipart_upload()
                .bucket("sweep-me")
                .key(key)
                .send()
                .await
                .unwrap()
                .upload_id()
                .unwrap()
                .to_owned();
            for n in 1..=parts {
                c.upload_part()
                    .bucket("sweep-me")
                    .key(key)
                    .upload_id(&id)
                    .part_number(i32::try_from(n).unwrap())
                    .body(vec![b'x'; 1000 * n].into())
                    .send()
                    .await
                    .unwrap();
            }
            ids.push(id);
        }
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        backdate(embedded.data_dir(), &ids[0], now - 2 * day);
        backdate(embedded.data_dir(), &ids[2], now - 2 * day);

        let admin = EmbeddedAdmin::new(embedded.data_dir(), "sweep-me");
        let all = uploads::list(&admin, &Filter::default(), now)
            .await
            .unwrap();
        assert_eq!(all.len(), 3, "{all:?}");
        let old = all
            .iter()
            .find(|u| u.upload.key == "uploads/old.bin")
            .unwrap();
        assert_eq!((old.parts, old.bytes), (2, 3000));
        assert_eq!(old.upload.upload_id, ids[0]);

        let filter = Filter {
            prefix: Some("uploads/".into()),
            older_than: Some(day),
        };
        let report = uploads::purge(&admin, &filter, now, false, false)
            .await
            .unwrap();
        assert_eq!(report.aborted.len(), 1);
        assert_eq!((report.parts(), report.bytes()), (2, 3000));
        // The store itself agrees the upload is gone, and the others still work.
        let gone = c
            .list_parts()
            .bucket("sweep-me")
            .key("uploads/old.bin")
            .upload_id(&ids[0])
            .send()
            .await;
        assert!(gone.is_err());
        c.list_parts()
            .bucket("sweep-me")
            .key("uploads/new.bin")
            .upload_id(&ids[1])
            .send()
            .await
            .unwrap();
        assert_eq!(
            admin
                .abort_upload("uploads/old.bin", &ids[0])
                .await
                .unwrap(),
            Aborted::AlreadyGone
        );
        let left = uploads::list(&admin, &Filter::default(), now)
            .await
            .unwrap();
        assert_eq!(left.len(), 2);
        let names: Vec<_> = std::fs::read_dir(embedded.data_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.iter().any(|n| n.contains(&ids[0])), "{names:?}");
    }
}
