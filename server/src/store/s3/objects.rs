//! The server's own small records in the bucket (pending completion events, `events.rs`):
//! whole-object `PutObject`, `GetObject` and a paged `ListObjectsV2`, never used for uploads.

use std::time::SystemTime;

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;

use super::{S3Store, classify};
use crate::store::{ListedObject, StoreError};

impl S3Store {
    pub(super) async fn put_record(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        self.api
            .put_object()
            .bucket(&self.config.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify("PutObject", "", e))?;
        Ok(())
    }

    pub(super) async fn get_record(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        const OP: &str = "GetObject";
        let out = match self
            .api
            .get_object()
            .bucket(&self.config.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                return Ok(None);
            }
            Err(e) => return Err(classify(OP, "", e)),
        };
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::unavailable(OP, DisplayErrorContext(&e).to_string()))?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    pub(super) async fn list_records(&self, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        let mut found = Vec::new();
        let mut pages = self
            .api
            .list_objects_v2()
            .bucket(&self.config.bucket)
            .prefix(prefix)
            // Sub-folders come back as common prefixes, which are not listed.
            .delimiter("/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("ListObjectsV2", "", e))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let last_modified = object
                    .last_modified()
                    .and_then(|t| SystemTime::try_from(*t).ok())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                found.push(ListedObject {
                    key: key.to_owned(),
                    last_modified,
                    size: object
                        .size()
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0),
                });
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }
}
