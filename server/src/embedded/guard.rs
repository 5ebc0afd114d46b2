//! An [`S3Access`] hook that checks upload-scoped requests against s3s-fs's on-disk state before
//! the store acts on them. s3s-fs 0.14.1 answers an unknown upload id `AccessDenied` (or, for
//! ListParts, an empty list) instead of `NoSuchUpload`, and does not tie an upload id to its key,
//! so a part could be sent to, or an upload completed into, another object. The hook answers
//! `NoSuchUpload` as S3 does unless the upload is open for that very bucket and key.

use s3s::access::{S3Access, S3AccessContext};
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
    /// An upload is open for `bucket`/`key` if s3s-fs holds both its record and the object
    /// attributes it saved for that very bucket and key at creation (removed on complete and
    /// abort). The store has one access key (`SimpleAuth::from_single`), so every upload is the
    /// caller's: the record's owner need not be compared.
    async fn scoped<T: UploadScoped + Send + Sync>(&self, req: &S3Request<T>) -> S3Result<()> {
        let (bucket, key, upload_id) = req.input.upload();
        let open = Uuid::parse_str(upload_id).is_ok_and(|id| {
            let id = id.hyphenated();
            self.layout.record(id).is_file()
                && self.layout.attributes(bucket, key, Some(id)).is_file()
        });
        if open {
            Ok(())
        } else {
            Err(s3_error!(
                NoSuchUpload,
                "The specified upload does not exist."
            ))
        }
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
