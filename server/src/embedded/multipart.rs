//! The embedded store's own UploadPart and CompleteMultipartUpload; s3s-fs answers everything
//! else. s3s-fs 0.14.1 completes an upload by reading every part in 64 KiB steps through
//! tokio's blocking pool and hashing all of it again with MD5, which took 2.7 s for 1 GiB on the
//! benchmark machine — as long as sending the parts. It also ignores part checksums, does not
//! compare the ETags a completion names, and deletes the upload before it has checked the parts.
//!
//! Here a part's MD5 (its ETag) is computed as it arrives, as before, and also kept in an extended
//! attribute of the part file (`user.s3-direct.md5`), set before the file is renamed into place,
//! so the digest always belongs to the bytes beside it. Completion checks every named part first
//! (numbered 1..=N, present, at least 5 MiB but the last, the ETag the caller names), then joins
//! them with `copy_file_range` (`std::io::copy` between files on Linux, no copy through this
//! process) and derives the multipart ETag from the kept digests. A part without the attribute
//! (written by UploadPartCopy, or on a file system without user attributes) is hashed again.
//! UploadPart verifies `Content-MD5` and the `x-amz-checksum-*` values, in headers or trailers.
//! ListParts reports the kept ETags, where s3s-fs lists none.
//!
//! An upload created with a checksum algorithm (`x-amz-checksum-algorithm`: CRC32, CRC32C, SHA1
//! or SHA256; s3s-fs ignores it) is held to S3's rules for it: the algorithm is kept in an
//! attribute of the upload's record, every part must carry that checksum and no other ("checksum
//! type mismatch"), the value is kept with the part (`user.s3-direct.checksum`), completion must
//! name each part's checksum, and the object gets the composite checksum — the checksum of the
//! parts' checksums, with `-N` — in its answer and in HeadObject. An upload created without one
//! takes parts with any checksum, each verified, as s3s-fs did.
//!
//! This module is the [`S3`] implementation and the part's arrival; `assemble.rs` completes,
//! `checksums.rs` checks part checksums, `xattr.rs` keeps digests with the files, `files.rs` holds
//! the file plumbing.

use std::fs::File;

use futures::StreamExt;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::{
    self, ChecksumAlgorithm, CompleteMultipartUploadInput, CompleteMultipartUploadOutput,
    CreateMultipartUploadInput, CreateMultipartUploadOutput, ETag, ListPartsInput, ListPartsOutput,
    PutObjectInput, PutObjectOutput, UploadPartInput, UploadPartOutput,
};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::assemble::{assemble, check_conditions};
use super::checksums::{Composite, Digests, declared_algorithm};
use super::files::{WRITE_BUFFER, create_temp_async, internal, persist_async};
use super::layout::Layout;
use super::xattr::{
    ALGORITHM_ATTRIBUTE, keep_attribute, keep_checksum, keep_md5, kept_checksum, kept_md5,
};
use crate::store::encode_key;

/// s3s-fs with its multipart path replaced.
pub(super) struct EmbeddedFs {
    fs: s3s_fs::FileSystem,
    layout: Layout,
}

impl EmbeddedFs {
    pub(super) fn new(fs: s3s_fs::FileSystem, layout: Layout) -> Self {
        Self { fs, layout }
    }
}

/// Implements [`S3`] for `EmbeddedFs`: the listed operations go to s3s-fs, the items after them
/// are this module's. (One macro for the whole impl, because `async_trait` rewrites the methods
/// it sees and would not see ones a macro inside the impl makes.)
macro_rules! s3_impl {
    ({ $($name:ident: $input:ident -> $output:ident),* $(,)? } $($own:tt)*) => {
        #[async_trait::async_trait]
        impl S3 for EmbeddedFs {
            $(
                async fn $name(
                    &self,
                    req: S3Request<dto::$input>,
                ) -> S3Result<S3Response<dto::$output>> {
                    self.fs.$name(req).await
                }
            )*
            $($own)*
        }
    };
}

s3_impl! {
    {
        create_bucket: CreateBucketInput -> CreateBucketOutput,
        delete_bucket: DeleteBucketInput -> DeleteBucketOutput,
        head_bucket: HeadBucketInput -> HeadBucketOutput,
        get_bucket_location: GetBucketLocationInput -> GetBucketLocationOutput,
        list_buckets: ListBucketsInput -> ListBucketsOutput,
        list_objects: ListObjectsInput -> ListObjectsOutput,
        list_objects_v2: ListObjectsV2Input -> ListObjectsV2Output,
        get_object: GetObjectInput -> GetObjectOutput,
        head_object: HeadObjectInput -> HeadObjectOutput,
        copy_object: CopyObjectInput -> CopyObjectOutput,
        delete_object: DeleteObjectInput -> DeleteObjectOutput,
        delete_objects: DeleteObjectsInput -> DeleteObjectsOutput,
        upload_part_copy: UploadPartCopyInput -> UploadPartCopyOutput,
        abort_multipart_upload: AbortMultipartUploadInput -> AbortMultipartUploadOutput,
    }

    /// s3s-fs's PUT. A POST form comes here too (s3s's `post_object` hands it on), and is
    /// answered as S3 answers one: with the object's `ETag` and `Location` as headers as well as
    /// in the XML body (s3s writes only the body; Uppy 5 waits for the `ETag` header).
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let form = (req.method == axum::http::Method::POST).then(|| form_location(&req));
        let mut answer = self.fs.put_object(req).await?;
        if let Some(location) = form {
            if let Some(etag) = answer.output.e_tag.as_ref() {
                let etag = etag
                    .to_http_header()
                    .map_err(|e| s3_error!(e, InternalError))?;
                answer.headers.insert(axum::http::header::ETAG, etag);
            }
            if let Some(location) = location {
                answer.headers.insert(axum::http::header::LOCATION, location);
            }
        }
        Ok(answer)
    }

    /// s3s-fs's create, keeping the checksum algorithm the upload is created with.
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let algorithm = Composite::declared(&req.input)?;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let mut answer = self.fs.create_multipart_upload(req).await?;
        let Some(algorithm) = algorithm else {
            return Ok(answer);
        };
        let id = answer
            .output
            .upload_id
            .as_deref()
            .map(upload_uuid)
            .transpose()?
            .ok_or_else(|| s3_error!(InternalError, "s3s-fs gave no upload id"))?
            .hyphenated();
        let record = self.layout.record(id);
        if let Err(e) = keep_attribute(&record, ALGORITHM_ATTRIBUTE, algorithm.name().as_bytes()) {
            // Without the algorithm the upload would not be held to it: take it back.
            let _ = std::fs::remove_file(&record);
            let _ = std::fs::remove_file(self.layout.attributes(&bucket, &key, Some(id)));
            return Err(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                format!(
                    "The embedded store cannot keep the upload's checksum algorithm here: {e}"
                ),
            ));
        }
        let output = &mut answer.output;
        output.checksum_algorithm = Some(ChecksumAlgorithm::from(algorithm.name().to_owned()));
        output.checksum_type = Some(dto::ChecksumType::from_static(
            dto::ChecksumType::COMPOSITE,
        ));
        Ok(answer)
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.receive_part(req).await.map(S3Response::new)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.complete(req.input).await.map(S3Response::new)
    }

    /// s3s-fs's list, with each part's ETag where its MD5 was kept (s3s-fs lists none), and, for
    /// an upload created with a checksum algorithm, each part's checksum of it.
    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let id = upload_uuid(&req.input.upload_id)?;
        let mut answer = self.fs.list_parts(req).await?;
        let mut parts = answer.output.parts.take().unwrap_or_default();
        let layout = self.layout.clone();
        let parts = tokio::task::spawn_blocking(move || {
            let declared = declared_algorithm(&layout, id).ok().flatten();
            for part in &mut parts {
                let Some(number) = part.part_number else { continue };
                let Ok(file) = File::open(layout.part(id.hyphenated(), number)) else {
                    continue;
                };
                part.e_tag = kept_md5(&file).map(|md5| ETag::Strong(hex::encode(md5)));
                if let (Some(algorithm), Some(value)) = (declared, kept_checksum(&file)) {
                    let listed = algorithm.checksum(value);
                    part.checksum_crc32 = listed.checksum_crc32;
                    part.checksum_crc32c = listed.checksum_crc32c;
                    part.checksum_sha1 = listed.checksum_sha1;
                    part.checksum_sha256 = listed.checksum_sha256;
                }
            }
            parts
        })
        .await
        .map_err(|e| s3_error!(InternalError, "listing stopped: {e}"))?;
        answer.output.parts = Some(parts);
        Ok(answer)
    }
}

impl EmbeddedFs {
    /// Streams a part into a temporary file, hashing it on the way, checks the digests the caller
    /// sent, and renames it into place with its MD5 attached. (The upload guard has checked that
    /// the upload is open for this bucket and key, and the caller's.)
    async fn receive_part(&self, req: S3Request<UploadPartInput>) -> S3Result<UploadPartOutput> {
        let S3Request {
            input,
            trailing_headers,
            ..
        } = req;
        if !(1..=10_000).contains(&input.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        let id = upload_uuid(&input.upload_id)?;
        let mut wanted = Digests::wanted(&input)?;
        let declared = declared_algorithm(&self.layout, id)?;
        if let Some(algorithm) = declared {
            wanted.check_type(algorithm)?;
        }
        let mut body = input.body.ok_or_else(|| s3_error!(IncompleteBody))?;

        let (file, temp) = create_temp_async(&self.layout).await?;
        let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut md5 = Md5::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| S3Error::with_source(S3ErrorCode::IncompleteBody, e))?;
            md5.update(&chunk);
            wanted.hasher.update(&chunk);
            out.write_all(&chunk).await.map_err(internal)?;
        }
        out.flush().await.map_err(internal)?;
        let file = out.into_inner().into_std().await;
        let md5 = md5.finalize();

        if let Some(content_md5) = &input.content_md5 {
            use base64::Engine as _;
            let sent = base64::engine::general_purpose::STANDARD
                .decode(content_md5)
                .map_err(|_| s3_error!(InvalidDigest, "Content-MD5 is not base64"))?;
            if sent != md5 {
                return Err(s3_error!(
                    BadDigest,
                    "The Content-MD5 you specified did not match what we received."
                ));
            }
        }
        let trailers = trailing_headers.and_then(|t| t.take());
        let verified = wanted.verify(trailers.as_ref())?;

        keep_md5(&file, &md5);
        if let Some(value) = declared.and_then(|a| a.pick(&verified)) {
            keep_checksum(&file, value);
        }
        drop(file);
        persist_async(temp, self.layout.part(id.hyphenated(), input.part_number)).await?;
        Ok(UploadPartOutput {
            e_tag: Some(ETag::Strong(hex::encode(md5))),
            checksum_crc32: verified.checksum_crc32,
            checksum_crc32c: verified.checksum_crc32c,
            checksum_sha1: verified.checksum_sha1,
            checksum_sha256: verified.checksum_sha256,
            checksum_crc64nvme: verified.checksum_crc64nvme,
            ..Default::default()
        })
    }

    async fn complete(
        &self,
        input: CompleteMultipartUploadInput,
    ) -> S3Result<CompleteMultipartUploadOutput> {
        let CompleteMultipartUploadInput {
            bucket,
            key,
            upload_id,
            multipart_upload,
            if_match,
            if_none_match,
            ..
        } = input;
        let id = upload_uuid(&upload_id)?;
        let parts = multipart_upload.and_then(|m| m.parts).unwrap_or_default();
        if parts.is_empty() {
            return Err(s3_error!(InvalidPart, "You must specify at least one part"));
        }
        let object = self.layout.object(&bucket, &key).ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The embedded store cannot keep an object under this key"
            )
        })?;
        let layout = self.layout.clone();
        let (b, k) = (bucket.clone(), key.clone());
        let (e_tag, checksum) = tokio::task::spawn_blocking(move || {
            let declared = declared_algorithm(&layout, id)?;
            check_conditions(&layout, &b, &k, &object, if_match, if_none_match)?;
            assemble(&layout, id, &parts, declared, &b, &k, &object)
        })
        .await
        .map_err(|e| s3_error!(InternalError, "completion stopped: {e}"))??;
        let checksum = checksum.unwrap_or_default();
        Ok(CompleteMultipartUploadOutput {
            bucket: Some(bucket),
            key: Some(key),
            e_tag: Some(ETag::Strong(e_tag)),
            checksum_crc32: checksum.checksum_crc32,
            checksum_crc32c: checksum.checksum_crc32c,
            checksum_sha1: checksum.checksum_sha1,
            checksum_sha256: checksum.checksum_sha256,
            checksum_type: checksum.checksum_type,
            ..Default::default()
        })
    }
}

/// The object's URL as the browser reached the store, for a POST form's `Location`: the `Host`
/// it sent, the bucket and the key (percent-encoded but for `/`).
fn form_location(req: &S3Request<PutObjectInput>) -> Option<axum::http::HeaderValue> {
    let host = req.headers.get(axum::http::header::HOST)?.to_str().ok()?;
    let url = format!(
        "http://{host}/{}/{}",
        encode_key(&req.input.bucket),
        encode_key(&req.input.key)
    );
    axum::http::HeaderValue::from_str(&url).ok()
}

fn upload_uuid(upload_id: &str) -> S3Result<Uuid> {
    Uuid::parse_str(upload_id)
        .map_err(|_| s3_error!(NoSuchUpload, "The specified upload does not exist."))
}
