//! [`MultipartAdmin`] and [`BucketRules`] over aws-sdk-s3: the operator commands against a real
//! store.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{BucketLifecycleConfiguration, CorsConfiguration};
use serde_json::Value;

use super::sdk_rules as rules;
use super::setup::BucketRules;

use super::error::OpsError;
use super::uploads::{Aborted, MultipartAdmin, PartPage, PendingUpload, UploadMarker, UploadPage};
use crate::S3Store;

#[async_trait]
impl MultipartAdmin for S3Store {
    fn bucket(&self) -> &str {
        &self.config().bucket
    }

    async fn list_uploads_page(
        &self,
        prefix: Option<&str>,
        marker: Option<&UploadMarker>,
    ) -> Result<UploadPage, OpsError> {
        const OP: &str = "ListMultipartUploads";
        let out = self
            .client()
            .list_multipart_uploads()
            .bucket(&self.config().bucket)
            .max_uploads(1000)
            .set_prefix(prefix.map(str::to_owned))
            .set_key_marker(marker.map(|m| m.key.clone()))
            .set_upload_id_marker(marker.map(|m| m.upload_id.clone()))
            .send()
            .await
            .map_err(|e| classify(OP, e, None))?;
        let uploads = out
            .uploads()
            .iter()
            .filter_map(|u| {
                Some(PendingUpload {
                    key: u.key()?.to_owned(),
                    upload_id: u.upload_id()?.to_owned(),
                    initiated: u.initiated().and_then(|t| SystemTime::try_from(*t).ok()),
                })
            })
            .collect::<Vec<_>>();
        let next = if out.is_truncated() == Some(true) {
            // Stores that leave the next markers out mean "continue after the last entry".
            let last = uploads.last();
            let key = out
                .next_key_marker()
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .or_else(|| last.map(|u| u.key.clone()));
            let upload_id = out
                .next_upload_id_marker()
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .or_else(|| last.map(|u| u.upload_id.clone()));
            match (key, upload_id) {
                (Some(key), Some(upload_id)) => Some(UploadMarker { key, upload_id }),
                _ => {
                    return Err(OpsError::Store {
                        operation: OP,
                        detail: "the listing is truncated but names no next marker".to_owned(),
                    });
                }
            }
        } else {
            None
        };
        Ok(UploadPage { uploads, next })
    }

    async fn list_parts_page(
        &self,
        key: &str,
        upload_id: &str,
        marker: Option<&str>,
    ) -> Result<PartPage, OpsError> {
        const OP: &str = "ListParts";
        let out = self
            .client()
            .list_parts()
            .bucket(&self.config().bucket)
            .key(key)
            .upload_id(upload_id)
            .max_parts(1000)
            .set_part_number_marker(marker.map(str::to_owned))
            .send()
            .await
            .map_err(|e| classify(OP, e, Some((key, upload_id))))?;
        let sizes = out
            .parts()
            .iter()
            .map(|p| p.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
            .collect::<Vec<_>>();
        let next = if out.is_truncated() == Some(true) {
            let from_parts = out
                .parts()
                .last()
                .and_then(|p| p.part_number())
                .map(|n| n.to_string());
            Some(
                out.next_part_number_marker()
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .or(from_parts)
                    .ok_or_else(|| OpsError::Store {
                        operation: OP,
                        detail: "the listing is truncated but names no next marker".to_owned(),
                    })?,
            )
        } else {
            None
        };
        Ok(PartPage { sizes, next })
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<Aborted, OpsError> {
        const OP: &str = "AbortMultipartUpload";
        match self
            .client()
            .abort_multipart_upload()
            .bucket(&self.config().bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| classify(OP, e, Some((key, upload_id))))
        {
            Ok(_) => Ok(Aborted::Now),
            Err(OpsError::NoSuchUpload { .. }) => Ok(Aborted::AlreadyGone),
            Err(e) => Err(e),
        }
    }
}

/// Maps an SDK failure to what the command can report.
fn classify<E>(operation: &'static str, err: SdkError<E>, upload: Option<(&str, &str)>) -> OpsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match (err.code(), upload) {
        (Some("NoSuchUpload"), Some((key, upload_id))) => OpsError::NoSuchUpload {
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
        },
        (Some("NotImplemented"), _) => OpsError::Unsupported { operation },
        (None, _) if status == Some(501) => OpsError::Unsupported { operation },
        (Some("NoSuchBucket"), _) => OpsError::Store {
            operation,
            detail: "the bucket does not exist; check --bucket".to_owned(),
        },
        (Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch"), _) => {
            OpsError::Store {
                operation,
                detail: format!(
                    "the store refused the credentials ({}); check AWS_ACCESS_KEY_ID / \
                     AWS_SECRET_ACCESS_KEY (or the profile) and that --region is the store's region",
                    err.code().unwrap_or_default()
                ),
            }
        }
        _ => OpsError::Store {
            operation,
            detail: DisplayErrorContext(&err).to_string(),
        },
    }
}

/// The bucket's CORS and lifecycle rules through aws-sdk-s3, converted to and from the JSON
/// shape of `aws s3api` (every field the S3 API defines for these rules, so rules of other
/// tools survive a merge unchanged).
#[async_trait]
impl BucketRules for S3Store {
    fn bucket(&self) -> &str {
        &self.config().bucket
    }

    fn endpoint(&self) -> &str {
        &self.config().endpoint
    }

    async fn cors_rules(&self) -> Result<Vec<Value>, OpsError> {
        const OP: &str = "GetBucketCors";
        match self
            .client()
            .get_bucket_cors()
            .bucket(&self.config().bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out.cors_rules().iter().map(rules::cors_to_json).collect()),
            Err(e) if e.code() == Some("NoSuchCORSConfiguration") => Ok(Vec::new()),
            Err(e) => Err(classify(OP, e, None)),
        }
    }

    async fn put_cors_rules(&self, rules: &[Value]) -> Result<(), OpsError> {
        const OP: &str = "PutBucketCors";
        let rules = rules
            .iter()
            .map(|r| rules::cors_from_json(OP, r))
            .collect::<Result<Vec<_>, _>>()?;
        let config = CorsConfiguration::builder()
            .set_cors_rules(Some(rules))
            .build()
            .map_err(|e| rules::invalid(OP, &e))?;
        self.client()
            .put_bucket_cors()
            .bucket(&self.config().bucket)
            .cors_configuration(config)
            .send()
            .await
            .map_err(|e| classify(OP, e, None))?;
        Ok(())
    }

    async fn lifecycle_rules(&self) -> Result<Vec<Value>, OpsError> {
        const OP: &str = "GetBucketLifecycleConfiguration";
        match self
            .client()
            .get_bucket_lifecycle_configuration()
            .bucket(&self.config().bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out.rules().iter().map(rules::lifecycle_to_json).collect()),
            Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => Ok(Vec::new()),
            Err(e) => Err(classify(OP, e, None)),
        }
    }

    async fn put_lifecycle_rules(&self, rules: &[Value]) -> Result<(), OpsError> {
        const OP: &str = "PutBucketLifecycleConfiguration";
        let rules = rules
            .iter()
            .map(|r| rules::lifecycle_from_json(OP, r))
            .collect::<Result<Vec<_>, _>>()?;
        let config = BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .map_err(|e| rules::invalid(OP, &e))?;
        self.client()
            .put_bucket_lifecycle_configuration()
            .bucket(&self.config().bucket)
            .lifecycle_configuration(config)
            .send()
            .await
            .map_err(|e| classify(OP, e, None))?;
        Ok(())
    }
}
