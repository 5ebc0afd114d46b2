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

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::{
    self, ChecksumAlgorithm, CompleteMultipartUploadInput, CompleteMultipartUploadOutput,
    CompletedPart, CreateMultipartUploadInput, CreateMultipartUploadOutput, ETag, ETagCondition,
    ListPartsInput, ListPartsOutput, PutObjectInput, PutObjectOutput, UploadPartInput,
    UploadPartOutput,
};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::layout::Layout;

/// The smallest size of a non-last part (S3's rule).
const MIN_PART_SIZE: u64 = s3_direct_protocol::limits::MIN_PART_SIZE;

/// How much of a part is buffered before it is written: one blocking-pool trip per MiB instead of
/// one per network read.
const WRITE_BUFFER: usize = 1 << 20;

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
                part.e_tag = kept_md5(&file).map(|md5| ETag::Strong(hex(&md5)));
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

        let temp = TempFile(self.layout.temp());
        let file = tokio::fs::File::create(&temp.0).await.map_err(internal)?;
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
        temp.persist(&self.layout.part(id.hyphenated(), input.part_number))
            .await?;
        Ok(UploadPartOutput {
            e_tag: Some(ETag::Strong(hex(&md5))),
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

/// Joins the parts into the object and retires the upload; the object's ETag, and its composite
/// checksum when the upload was created with an algorithm.
fn assemble(
    layout: &Layout,
    id: Uuid,
    parts: &[CompletedPart],
    declared: Option<Composite>,
    bucket: &str,
    key: &str,
    object: &Path,
) -> S3Result<(String, Option<dto::Checksum>)> {
    let id = id.hyphenated();
    // Every part is checked before anything is written, so a refused completion leaves the
    // upload as it was, for the caller to send the parts again.
    // The part files are not held open between the passes: an upload may have 10,000 parts,
    // far more than a process may usually keep open.
    let mut checked = Vec::with_capacity(parts.len());
    let mut digests = Md5::new();
    let mut composite = declared.map(|a| (a, a.hasher()));
    for (index, part) in parts.iter().enumerate() {
        let number = i32::try_from(index + 1).unwrap_or(i32::MAX);
        if part.part_number != Some(number) {
            return Err(s3_error!(
                InvalidPart,
                "The embedded store needs parts numbered 1..={} without gaps; part {number} is missing",
                parts.len()
            ));
        }
        let path = layout.part(id, number);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(s3_error!(
                    InvalidPart,
                    "Part {number} has not been uploaded"
                ));
            }
            Err(e) => return Err(internal(e)),
        };
        let size = file.metadata().map_err(internal)?.len();
        if index + 1 < parts.len() && size < MIN_PART_SIZE {
            return Err(s3_error!(
                EntityTooSmall,
                "Part {number} is {size} bytes, below the 5 MiB minimum for all but the last part"
            ));
        }
        let kept = kept_md5(&file);
        let md5 = match kept {
            Some(md5) => md5,
            None => {
                tracing::debug!(
                    part = number,
                    "embedded store: no MD5 kept with the part; hashing it"
                );
                md5_of(&file).map_err(internal)?
            }
        };
        let named = part.e_tag.as_ref().map(|t| t.value().trim_matches('"'));
        if !named.is_some_and(|named| named.eq_ignore_ascii_case(&hex(&md5))) {
            return Err(s3_error!(
                InvalidPart,
                "Part {number}'s ETag does not match the part the store holds"
            ));
        }
        if let Some((algorithm, hasher)) = &mut composite {
            let digest = part_checksum(&file, *algorithm, number, part)?;
            hasher.update(&digest);
        }
        digests.update(&md5);
        checked.push((number, path, kept));
    }

    let started = std::time::Instant::now();
    let temp = TempFile(layout.temp());
    let mut out = File::create(&temp.0).map_err(internal)?;
    for (number, path, kept) in &checked {
        let mut file = File::open(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                s3_error!(
                    NoSuchUpload,
                    "The upload was completed or aborted meanwhile."
                )
            }
            _ => internal(e),
        })?;
        // A part sent again since the check carries another digest (or none).
        if kept_md5(&file) != *kept {
            return Err(s3_error!(
                InvalidPart,
                "Part {number} was replaced while the upload was being completed"
            ));
        }
        // File to file: copy_file_range on Linux, so the bytes stay in the kernel.
        io::copy(&mut file, &mut out).map_err(internal)?;
    }
    drop(out);
    tracing::debug!(elapsed = ?started.elapsed(), "embedded store: parts joined");
    if let Some(dir) = object.parent() {
        std::fs::create_dir_all(dir).map_err(internal)?;
    }
    temp.persist_blocking(object)?;

    let e_tag = format!("{}-{}", hex(&digests.finalize()), parts.len());
    // The new object's ETag and checksum; those of an earlier object at this key do not carry
    // over.
    let mut info = serde_json::Map::new();
    info.insert("e_tag".to_owned(), e_tag.clone().into());
    let checksum = composite.and_then(|(algorithm, hasher)| {
        let value = format!("{}-{}", algorithm.pick(&hasher.finalize())?, parts.len());
        info.insert(algorithm.info_key().to_owned(), value.clone().into());
        Some(algorithm.checksum(value))
    });
    let info = serde_json::Value::Object(info).to_string();
    let info_temp = TempFile(layout.temp());
    std::fs::write(&info_temp.0, info).map_err(internal)?;
    info_temp.persist_blocking(&layout.internal_info(bucket, key))?;
    // The attributes given at creation become the object's. (Gone only if a second completion
    // of the same upload got here first, with the same attributes.)
    match std::fs::rename(
        layout.attributes(bucket, key, Some(id)),
        layout.attributes(bucket, key, None::<&str>),
    ) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(internal(e)),
        _ => {}
    }
    remove_if_present(&layout.record(id))?;
    for (_, path, _) in &checked {
        remove_if_present(path)?;
    }
    Ok((e_tag, checksum))
}

/// The digest of `part` of the algorithm the upload was created with: the completion must name
/// it, and it must be the one kept with the part (or, where none was kept, its hash).
fn part_checksum(
    file: &File,
    algorithm: Composite,
    number: i32,
    part: &CompletedPart,
) -> S3Result<Vec<u8>> {
    let named = algorithm.named_in(part).ok_or_else(|| {
        s3_error!(
            InvalidRequest,
            "The upload was created using a {} checksum. The complete request must include the \
             checksum for each part. It was missing for part {number} in the request.",
            algorithm.name().to_ascii_lowercase()
        )
    })?;
    let held = match kept_checksum(file) {
        Some(value) => value,
        None => {
            let mut hasher = algorithm.hasher();
            hash_file(file, |chunk| hasher.update(chunk)).map_err(internal)?;
            algorithm
                .pick(&hasher.finalize())
                .cloned()
                .unwrap_or_default()
        }
    };
    let held = decode_base64(&held);
    if held.is_none() || held != decode_base64(named) {
        return Err(s3_error!(
            InvalidPart,
            "Part {number}'s {} checksum does not match the part the store holds",
            algorithm.name()
        ));
    }
    Ok(held.unwrap_or_default())
}

fn decode_base64(value: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(value).ok()
}

/// An algorithm an upload can be created with, whose object then gets a composite checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Composite {
    Crc32,
    Crc32c,
    Sha1,
    Sha256,
}

impl Composite {
    const ALL: [Self; 4] = [Self::Crc32, Self::Crc32c, Self::Sha1, Self::Sha256];

    /// The algorithm a create asks for, if any; one the store cannot hold to is refused.
    fn declared(input: &CreateMultipartUploadInput) -> S3Result<Option<Self>> {
        if input
            .checksum_type
            .as_ref()
            .is_some_and(|t| t.as_str() != dto::ChecksumType::COMPOSITE)
        {
            return Err(s3_error!(
                NotImplemented,
                "The embedded store keeps composite checksums only"
            ));
        }
        let Some(name) = input
            .checksum_algorithm
            .as_ref()
            .map(ChecksumAlgorithm::as_str)
        else {
            return Ok(None);
        };
        Self::from_name(name).map(Some).ok_or_else(|| {
            s3_error!(
                NotImplemented,
                "The embedded store keeps composite checksums of CRC32, CRC32C, SHA1 and SHA256, \
                 not {name}"
            )
        })
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// S3's name (`x-amz-checksum-algorithm`).
    fn name(self) -> &'static str {
        match self {
            Self::Crc32 => ChecksumAlgorithm::CRC32,
            Self::Crc32c => ChecksumAlgorithm::CRC32C,
            Self::Sha1 => ChecksumAlgorithm::SHA1,
            Self::Sha256 => ChecksumAlgorithm::SHA256,
        }
    }

    fn hasher(self) -> ChecksumHasher {
        let mut hasher = ChecksumHasher::default();
        match self {
            Self::Crc32 => hasher.crc32 = Some(Default::default()),
            Self::Crc32c => hasher.crc32c = Some(Default::default()),
            Self::Sha1 => hasher.sha1 = Some(Default::default()),
            Self::Sha256 => hasher.sha256 = Some(Default::default()),
        }
        hasher
    }

    /// This algorithm's value in `checksum`.
    fn pick(self, checksum: &dto::Checksum) -> Option<&String> {
        match self {
            Self::Crc32 => checksum.checksum_crc32.as_ref(),
            Self::Crc32c => checksum.checksum_crc32c.as_ref(),
            Self::Sha1 => checksum.checksum_sha1.as_ref(),
            Self::Sha256 => checksum.checksum_sha256.as_ref(),
        }
    }

    /// This algorithm's value a completion names for `part`.
    fn named_in(self, part: &CompletedPart) -> Option<&str> {
        match self {
            Self::Crc32 => part.checksum_crc32.as_deref(),
            Self::Crc32c => part.checksum_crc32c.as_deref(),
            Self::Sha1 => part.checksum_sha1.as_deref(),
            Self::Sha256 => part.checksum_sha256.as_deref(),
        }
        .filter(|v| !v.is_empty())
    }

    /// A composite checksum of this algorithm.
    fn checksum(self, value: String) -> dto::Checksum {
        let mut checksum = dto::Checksum {
            checksum_type: Some(dto::ChecksumType::from_static(dto::ChecksumType::COMPOSITE)),
            ..Default::default()
        };
        match self {
            Self::Crc32 => checksum.checksum_crc32 = Some(value),
            Self::Crc32c => checksum.checksum_crc32c = Some(value),
            Self::Sha1 => checksum.checksum_sha1 = Some(value),
            Self::Sha256 => checksum.checksum_sha256 = Some(value),
        }
        checksum
    }

    /// Its key in the object's internal info, where s3s-fs's HeadObject and GetObject read it.
    fn info_key(self) -> &'static str {
        match self {
            Self::Crc32 => "checksum_crc32",
            Self::Crc32c => "checksum_crc32c",
            Self::Sha1 => "checksum_sha1",
            Self::Sha256 => "checksum_sha256",
        }
    }
}

/// The algorithm the upload was created with, from its record. (An upload without a record is
/// refused by the upload guard before it gets here, or was completed meanwhile.)
fn declared_algorithm(layout: &Layout, id: Uuid) -> S3Result<Option<Composite>> {
    let mut name = [0u8; 16];
    match read_attribute(
        &layout.record(id.hyphenated()),
        ALGORITHM_ATTRIBUTE,
        &mut name,
    ) {
        Some(n) => std::str::from_utf8(&name[..n])
            .ok()
            .and_then(Composite::from_name)
            .map(Some)
            .ok_or_else(|| {
                s3_error!(
                    InternalError,
                    "the upload's checksum algorithm is unreadable"
                )
            }),
        None => Ok(None),
    }
}

/// `If-None-Match: *` and `If-Match` on completion, as s3s-fs handled them.
fn check_conditions(
    layout: &Layout,
    bucket: &str,
    key: &str,
    object: &Path,
    if_match: Option<ETagCondition>,
    if_none_match: Option<ETagCondition>,
) -> S3Result<()> {
    if if_none_match.as_ref().is_some_and(ETagCondition::is_any) && object.exists() {
        return Err(s3_error!(PreconditionFailed, "Object already exists"));
    }
    let Some(condition) = if_match else {
        return Ok(());
    };
    if !object.exists() {
        return Err(s3_error!(PreconditionFailed, "Object does not exist"));
    }
    let Some(expected) = condition.as_etag() else {
        return Ok(()); // `*`: it exists
    };
    let stored = std::fs::read(layout.internal_info(bucket, key))
        .ok()
        .and_then(|info| serde_json::from_slice::<serde_json::Value>(&info).ok())
        .and_then(|info| info.get("e_tag")?.as_str().map(str::to_owned));
    let current = match stored {
        Some(e_tag) => e_tag,
        None => hex(&md5_of(&File::open(object).map_err(internal)?).map_err(internal)?),
    };
    if ETag::Strong(current).strong_cmp(expected) {
        Ok(())
    } else {
        Err(s3_error!(PreconditionFailed, "ETag does not match"))
    }
}

/// The checksums a part's sender declared, and the hashers that check them.
struct Digests {
    hasher: ChecksumHasher,
    declared: dto::Checksum,
    /// The algorithms the part names (a value in a header, or the algorithm of a trailer).
    named: Vec<&'static str>,
}

impl Digests {
    fn wanted(input: &UploadPartInput) -> S3Result<Self> {
        let mut hasher = ChecksumHasher::default();
        let declared = dto::Checksum {
            checksum_crc32: input.checksum_crc32.clone(),
            checksum_crc32c: input.checksum_crc32c.clone(),
            checksum_sha1: input.checksum_sha1.clone(),
            checksum_sha256: input.checksum_sha256.clone(),
            checksum_crc64nvme: input.checksum_crc64nvme.clone(),
            checksum_type: None,
        };
        // A value in a header, or only the algorithm, with the value to come in a trailer.
        let algorithm = input
            .checksum_algorithm
            .as_ref()
            .map(ChecksumAlgorithm::as_str);
        let mut named = Vec::new();
        let mut is_named = |value: &Option<String>, name: &'static str| {
            let yes = value.is_some() || algorithm == Some(name);
            if yes {
                named.push(name);
            }
            yes
        };
        if is_named(&declared.checksum_crc32, ChecksumAlgorithm::CRC32) {
            hasher.crc32 = Some(Default::default());
        }
        if is_named(&declared.checksum_crc32c, ChecksumAlgorithm::CRC32C) {
            hasher.crc32c = Some(Default::default());
        }
        if is_named(&declared.checksum_sha1, ChecksumAlgorithm::SHA1) {
            hasher.sha1 = Some(Default::default());
        }
        if is_named(&declared.checksum_sha256, ChecksumAlgorithm::SHA256) {
            hasher.sha256 = Some(Default::default());
        }
        if is_named(&declared.checksum_crc64nvme, ChecksumAlgorithm::CRC64NVME) {
            hasher.crc64nvme = Some(Default::default());
        }
        if let Some(name) = algorithm
            && ![
                ChecksumAlgorithm::CRC32,
                ChecksumAlgorithm::CRC32C,
                ChecksumAlgorithm::SHA1,
                ChecksumAlgorithm::SHA256,
                ChecksumAlgorithm::CRC64NVME,
            ]
            .contains(&name)
        {
            return Err(s3_error!(
                InvalidArgument,
                "Unsupported checksum algorithm {name}"
            ));
        }
        Ok(Self {
            hasher,
            declared,
            named,
        })
    }

    /// S3's rule for an upload created with `algorithm`: each part carries that checksum, and no
    /// other.
    fn check_type(&self, algorithm: Composite) -> S3Result<()> {
        if self.named == [algorithm.name()] {
            return Ok(());
        }
        let actual = match self.named.as_slice() {
            [] => "null".to_owned(),
            names => names.join(",").to_ascii_lowercase(),
        };
        Err(s3_error!(
            InvalidRequest,
            "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum \
             Type: {actual}",
            algorithm.name().to_ascii_lowercase()
        ))
    }

    /// Compares what arrived with every declared value (headers first, then trailers); the
    /// verified values.
    fn verify(self, trailers: Option<&axum::http::HeaderMap>) -> S3Result<dto::Checksum> {
        let mut declared = self.declared;
        if let Some(trailers) = trailers {
            let fields = [
                ("x-amz-checksum-crc32", &mut declared.checksum_crc32),
                ("x-amz-checksum-crc32c", &mut declared.checksum_crc32c),
                ("x-amz-checksum-sha1", &mut declared.checksum_sha1),
                ("x-amz-checksum-sha256", &mut declared.checksum_sha256),
                ("x-amz-checksum-crc64nvme", &mut declared.checksum_crc64nvme),
            ];
            for (name, field) in fields {
                if let Some(value) = trailers.get(name) {
                    let value = value
                        .to_str()
                        .map_err(|_| s3_error!(InvalidArgument, "{name} is not text"))?;
                    *field = Some(value.to_owned());
                }
            }
        }
        let computed = self.hasher.finalize();
        let pairs = [
            ("CRC32", &declared.checksum_crc32, &computed.checksum_crc32),
            (
                "CRC32C",
                &declared.checksum_crc32c,
                &computed.checksum_crc32c,
            ),
            ("SHA1", &declared.checksum_sha1, &computed.checksum_sha1),
            (
                "SHA256",
                &declared.checksum_sha256,
                &computed.checksum_sha256,
            ),
            (
                "CRC64NVME",
                &declared.checksum_crc64nvme,
                &computed.checksum_crc64nvme,
            ),
        ];
        for (name, declared, computed) in pairs {
            if declared.is_some() && declared != computed {
                return Err(s3_error!(
                    BadDigest,
                    "The {name} you specified did not match the calculated checksum."
                ));
            }
        }
        Ok(declared)
    }
}

/// A temporary file in the store's root, removed unless it is renamed into place.
struct TempFile(PathBuf);

impl TempFile {
    async fn persist(self, to: &Path) -> S3Result<()> {
        tokio::fs::rename(&self.0, to).await.map_err(internal)?;
        std::mem::forget(self);
        Ok(())
    }

    fn persist_blocking(self, to: &Path) -> S3Result<()> {
        std::fs::rename(&self.0, to).map_err(internal)?;
        std::mem::forget(self);
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The attribute that carries a part file's MD5.
#[cfg(target_os = "linux")]
const MD5_ATTRIBUTE: &str = "user.s3-direct.md5";
/// The attribute of a part file that carries its checksum of the upload's algorithm (base64).
#[cfg(target_os = "linux")]
const CHECKSUM_ATTRIBUTE: &str = "user.s3-direct.checksum";
/// The attribute of an upload's record that names the algorithm it was created with.
const ALGORITHM_ATTRIBUTE: &str = "user.s3-direct.checksum-algorithm";

/// Sets an extended attribute of the file at `path`.
fn keep_attribute(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        rustix::fs::setxattr(path, name, value, rustix::fs::XattrFlags::empty())
            .map_err(io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (path, name, value);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "extended attributes are used on Linux only",
        ))
    }
}

/// Reads an extended attribute of the file at `path` into `buf`: its length, or `None` when the
/// file has none (or it does not fit).
fn read_attribute(path: &Path, name: &str, buf: &mut [u8]) -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        rustix::fs::getxattr(path, name, buf).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (path, name, buf);
        None
    }
}

/// Attaches the checksum of the upload's algorithm to the part file; where the file system
/// cannot keep it, completion hashes the part again.
fn keep_checksum(file: &File, value: &str) {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::fs::fsetxattr(
        file,
        CHECKSUM_ATTRIBUTE,
        value.as_bytes(),
        rustix::fs::XattrFlags::empty(),
    ) {
        tracing::debug!(
            "embedded store: a part's checksum is not kept ({e}); completion will hash it"
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, value);
}

fn kept_checksum(file: &File) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        // Base64 of a SHA-256 is 44 characters.
        let mut value = [0u8; 64];
        let n = rustix::fs::fgetxattr(file, CHECKSUM_ATTRIBUTE, &mut value).ok()?;
        String::from_utf8(value[..n].to_vec()).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

/// Attaches the MD5 to the part file; where the file system cannot keep it, completion hashes
/// the part again.
fn keep_md5(file: &File, md5: &[u8; 16]) {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::fs::fsetxattr(file, MD5_ATTRIBUTE, md5, rustix::fs::XattrFlags::empty())
    {
        tracing::debug!("embedded store: a part's MD5 is not kept ({e}); completion will hash it");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, md5);
}

fn kept_md5(file: &File) -> Option<[u8; 16]> {
    #[cfg(target_os = "linux")]
    {
        let mut md5 = [0u8; 16];
        match rustix::fs::fgetxattr(file, MD5_ATTRIBUTE, &mut md5) {
            Ok(16) => Some(md5),
            _ => None,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

/// The MD5 of a file, from its start.
fn md5_of(file: &File) -> io::Result<[u8; 16]> {
    let mut md5 = Md5::new();
    hash_file(file, |chunk| md5.update(chunk))?;
    Ok(md5.finalize())
}

/// Feeds a file from its start to `update`, and leaves it at its start again.
fn hash_file(mut file: &File, mut update: impl FnMut(&[u8])) -> io::Result<()> {
    file.rewind()?;
    let mut buf = vec![0u8; WRITE_BUFFER];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        update(&buf[..n]);
    }
    file.rewind()
}

fn remove_if_present(path: &Path) -> S3Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(internal(e)),
        _ => Ok(()),
    }
}

/// The object's URL as the browser reached the store, for a POST form's `Location`: the `Host`
/// it sent, the bucket and the key (percent-encoded but for `/`).
fn form_location(req: &S3Request<PutObjectInput>) -> Option<axum::http::HeaderValue> {
    let host = req.headers.get(axum::http::header::HOST)?.to_str().ok()?;
    let mut url = format!("http://{host}/");
    crate::store::uri_encode_into(&mut url, &req.input.bucket, false);
    url.push('/');
    crate::store::uri_encode_into(&mut url, &req.input.key, false);
    axum::http::HeaderValue::from_str(&url).ok()
}

fn upload_uuid(upload_id: &str) -> S3Result<Uuid> {
    Uuid::parse_str(upload_id)
        .map_err(|_| s3_error!(NoSuchUpload, "The specified upload does not exist."))
}

fn internal(e: io::Error) -> S3Error {
    S3Error::with_source(S3ErrorCode::InternalError, Box::new(e))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
