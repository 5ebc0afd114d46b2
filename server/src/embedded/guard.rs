//! An [`S3Access`] hook that checks upload-scoped requests against s3s-fs's on-disk state before
//! the store acts on them. s3s-fs 0.14.1 answers an unknown upload id `AccessDenied` (or, for
//! ListParts, an empty list) instead of `NoSuchUpload`, and does not tie an upload id to its key,
//! so a part could be sent to, or an upload completed into, another object. The hook answers
//! `NoSuchUpload` as S3 does unless the upload is open for that very bucket and key, and
//! `AccessDenied` unless the caller's access key is the one that created it.

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::Credentials;
use s3s::dto::{
    AbortMultipartUploadInput, CompleteMultipartUploadInput, ListPartsInput, UploadPartInput,
};
use s3s::{S3Request, S3Result, s3_error};
use uuid::Uuid;

use super::layout::Layout;

pub(super) struct UploadGuard {
    pub(super) layout: Layout,
}

impl UploadGuard {
    async fn scoped<T: UploadScoped + Send + Sync>(&self, req: &S3Request<T>) -> S3Result<()> {
        let (bucket, key, upload_id) = req.input.upload();
        self.check_upload(req.credentials.as_ref(), bucket, key, upload_id)
            .await
            .map(drop)
    }

    /// An upload is open for `bucket`/`key` if s3s-fs holds both its record and the object
    /// attributes it saved for that very bucket and key at creation (removed on complete and
    /// abort). The record names the access key that created it.
    async fn check_upload(
        &self,
        credentials: Option<&Credentials>,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> S3Result<Uuid> {
        let no_such = || s3_error!(NoSuchUpload, "The specified upload does not exist.");
        let id = Uuid::parse_str(upload_id).map_err(|_| no_such())?;
        let id = id.hyphenated();
        if !self.layout.attributes(bucket, key, Some(id)).is_file() {
            return Err(no_such());
        }
        let record = match tokio::fs::read(self.layout.record(id)).await {
            Ok(record) => record,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(no_such()),
            Err(e) => {
                return Err(s3_error!(
                    e,
                    InternalError,
                    "cannot read the upload's record"
                ));
            }
        };
        let owner: Option<String> = serde_json::from_slice(&record)
            .map_err(|e| s3_error!(e, InternalError, "the upload's record is not readable"))?;
        if owner.as_deref() != credentials.map(|c| c.access_key.as_str()) {
            return Err(s3_error!(
                AccessDenied,
                "The upload belongs to another access key."
            ));
        }
        Ok(id.into_uuid())
    }
}

#[async_trait::async_trait]
impl S3Access for UploadGuard {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        // Same as s3s's default: every request must be signed.
        match cx.credentials() {
            Some(_) => Ok(()),
            None => Err(s3_error!(AccessDenied, "Signature is required")),
        }
    }

    async fn upload_part(&self, req: &mut S3Request<UploadPartInput>) -> S3Result<()> {
        self.scoped(req).await
    }

    async fn list_parts(&self, req: &mut S3Request<ListPartsInput>) -> S3Result<()> {
        self.scoped(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: &mut S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<()> {
        self.scoped(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: &mut S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<()> {
        self.scoped(req).await
    }
}

/// A request about one upload: its bucket, key and upload id.
trait UploadScoped {
    fn upload(&self) -> (&str, &str, &str);
}

macro_rules! upload_scoped {
    ($($input:ty),*) => {$(
        impl UploadScoped for $input {
            fn upload(&self) -> (&str, &str, &str) {
                (&self.bucket, &self.key, &self.upload_id)
            }
        }
    )*};
}

upload_scoped!(
    UploadPartInput,
    ListPartsInput,
    AbortMultipartUploadInput,
    CompleteMultipartUploadInput
);
