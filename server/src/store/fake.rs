//! An in-memory [`Store`] for route tests: it keeps uploads in a map, records every call, and can
//! be scripted to fail the next call, so a test can assert both what the handler asked for and
//! that a refused request asked for nothing at all.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use s3_direct_protocol::wire::{ChecksumAlgorithm, CompletedPart, ListedPart};

use super::{
    Completed, ListedObject, NewUpload, ObjectHead, PartProbe, PartSigning, PostSigning, Presigned,
    PresignedPost, PutSigning, Store, StoreError,
};

/// Base of the URLs the fake "presigns".
pub const FAKE_ENDPOINT: &str = "https://fake-store.test";

/// One call the fake received, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeCall {
    CreateMultipart(NewUpload),
    PresignPart {
        key: String,
        upload_id: String,
        part_number: u32,
        lifetime: Duration,
        signing: PartSigning,
    },
    ListParts {
        key: String,
        upload_id: String,
    },
    Complete {
        key: String,
        upload_id: String,
        parts: Vec<CompletedPart>,
    },
    Abort {
        key: String,
        upload_id: String,
    },
    HeadObject {
        key: String,
    },
    DeleteObject {
        key: String,
    },
    Ping,
    PresignPut {
        key: String,
        content_type: String,
        content_length: Option<u64>,
        lifetime: Duration,
    },
    PresignPost {
        key: String,
        signing: PostSigning,
        lifetime: Duration,
    },
}

/// What the fake does with a part whose checksum is wrong ([`Store::probe_checksum`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FakeVerification {
    /// Refuses it (`400 BadDigest`), as S3 and Garage do.
    #[default]
    Verifies,
    /// Stores it (`200`), as Ceph 16 does with `x-amz-checksum-*`.
    Ignores,
    /// The probe cannot run (the store is down).
    Unreachable,
}

/// The in-memory store. Cheap to share: wrap it in an `Arc` and keep a clone to inspect.
#[derive(Debug, Default)]
pub struct FakeStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    calls: Vec<FakeCall>,
    /// Open uploads: upload id -> (key, stored parts).
    uploads: BTreeMap<String, (String, Vec<ListedPart>)>,
    /// The checksum algorithm each upload was created with, if any.
    declared: BTreeMap<String, ChecksumAlgorithm>,
    /// The content type each upload was created with.
    content_types: BTreeMap<String, String>,
    /// Completed objects: key -> what a HEAD reports.
    objects: BTreeMap<String, ObjectHead>,
    next_id: u32,
    /// What the next calls do, in order, before anything else: fail with the error, or (`None`)
    /// go through.
    scripted: VecDeque<Option<StoreError>>,
    /// Answers `None` to [`Store::presign_post`], as a store that cannot sign POST policies.
    no_post_policies: bool,
    /// Answers completions with an empty ETag, as Ceph 16 does (docs/stores.md, "Completion").
    blank_completion_etags: bool,
    /// The server's own records ([`Store::write_object`]): key -> body and when written.
    records: BTreeMap<String, (Vec<u8>, SystemTime)>,
    /// What a checksum probe finds, per algorithm (missing: [`FakeVerification::Verifies`]).
    verification: std::collections::HashMap<ChecksumAlgorithm, FakeVerification>,
    /// The checksum probes received (kept apart from `calls`, which they would clutter).
    probes: Vec<(String, ChecksumAlgorithm)>,
}

impl FakeStore {
    /// An empty store with no uploads.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call received so far, in order.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.lock().calls.clone()
    }

    /// Makes the next call fail with `err` (calls queue up in order).
    pub fn fail_next(&self, err: StoreError) {
        self.lock().scripted.push_back(Some(err));
    }

    /// Lets the next call through: queued before [`fail_next`](Self::fail_next), it makes a later
    /// call fail (the second, for one `pass_next`).
    pub fn pass_next(&self) {
        self.lock().scripted.push_back(None);
    }

    /// Makes the store unable to sign POST policies ([`Store::presign_post`] answers `None`).
    pub fn without_post_policies(self) -> Self {
        self.lock().no_post_policies = true;
        self
    }

    /// Answers completions with an empty ETag (the object keeps its own), as Ceph 16 does.
    pub fn with_blank_completion_etags(self) -> Self {
        self.lock().blank_completion_etags = true;
        self
    }

    /// Makes checksum probes of `algorithm` find `verification` from now on.
    pub fn set_verification(&self, algorithm: ChecksumAlgorithm, verification: FakeVerification) {
        self.lock().verification.insert(algorithm, verification);
    }

    /// The checksum probes received so far: key and algorithm.
    pub fn probes(&self) -> Vec<(String, ChecksumAlgorithm)> {
        self.lock().probes.clone()
    }

    /// Pretends the browser uploaded part `part_number` of `upload_id`.
    ///
    /// # Panics
    /// If the upload does not exist: a test set-up mistake.
    pub fn put_part(&self, upload_id: &str, part_number: u32, etag: &str, size: u64) {
        let mut inner = self.lock();
        let (_, parts) = inner
            .uploads
            .get_mut(upload_id)
            .unwrap_or_else(|| panic!("fake store has no upload {upload_id:?}"));
        parts.retain(|p| p.part_number != part_number);
        parts.push(ListedPart {
            part_number,
            etag: etag.to_owned(),
            size,
            ..Default::default()
        });
    }

    /// Upload ids still open.
    pub fn open_uploads(&self) -> Vec<String> {
        self.lock().uploads.keys().cloned().collect()
    }

    /// The objects stored, by key.
    pub fn objects(&self) -> BTreeMap<String, ObjectHead> {
        self.lock().objects.clone()
    }

    /// Replaces what the store holds under `key` (as another writer, or a store that reports
    /// something else than it was asked to store, would).
    pub fn put_object(&self, key: &str, head: ObjectHead) {
        self.lock().objects.insert(key.to_owned(), head);
    }

    /// The server's own records ([`Store::write_object`]), by key.
    pub fn records(&self) -> BTreeMap<String, Vec<u8>> {
        let inner = self.lock();
        inner
            .records
            .iter()
            .map(|(k, (body, _))| (k.clone(), body.clone()))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread poisons the lock; the data is still usable for the others.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `call` and returns the scripted error, if any.
    fn record(&self, call: FakeCall) -> Result<MutexGuard<'_, Inner>, StoreError> {
        let mut inner = self.lock();
        inner.calls.push(call);
        match inner.scripted.pop_front().flatten() {
            Some(err) => Err(err),
            None => Ok(inner),
        }
    }
}

fn url(key: &str, query: &str) -> String {
    format!("{FAKE_ENDPOINT}/fake-bucket/{key}?{query}&X-Amz-Signature=fake")
}

fn no_such_upload(upload_id: &str) -> StoreError {
    StoreError::NoSuchUpload {
        upload_id: upload_id.to_owned(),
    }
}

#[async_trait]
impl Store for FakeStore {
    fn bucket(&self) -> &str {
        "fake-bucket"
    }

    fn object_location(&self, key: &str) -> String {
        format!("{FAKE_ENDPOINT}/fake-bucket/{key}")
    }

    async fn create_multipart(&self, upload: NewUpload) -> Result<String, StoreError> {
        let key = upload.key.clone();
        let checksum = upload.checksum;
        let content_type = upload.content_type.clone();
        let mut inner = self.record(FakeCall::CreateMultipart(upload))?;
        inner.next_id += 1;
        let id = format!("fake-upload-{}", inner.next_id);
        inner.uploads.insert(id.clone(), (key, Vec::new()));
        inner.content_types.insert(id.clone(), content_type);
        if let Some(algorithm) = checksum {
            inner.declared.insert(id.clone(), algorithm);
        }
        Ok(id)
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        lifetime: Duration,
        signing: &PartSigning,
    ) -> Result<Presigned, StoreError> {
        // Like S3, presigning is local: it does not check that the upload exists.
        drop(self.record(FakeCall::PresignPart {
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
            part_number,
            lifetime,
            signing: signing.clone(),
        })?);
        let mut headers = BTreeMap::new();
        if let Some(len) = signing.content_length {
            headers.insert("content-length".to_owned(), len.to_string());
        }
        if let Some((algo, value)) = &signing.checksum {
            headers.insert(algo.header().to_owned(), value.clone());
        }
        Ok(Presigned {
            url: url(
                key,
                &format!("partNumber={part_number}&uploadId={upload_id}"),
            ),
            headers,
        })
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<ListedPart>, StoreError> {
        let inner = self.record(FakeCall::ListParts {
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
        })?;
        let (_, parts) = inner
            .uploads
            .get(upload_id)
            .ok_or_else(|| no_such_upload(upload_id))?;
        let mut parts = parts.clone();
        parts.sort_by_key(|p| p.part_number);
        Ok(parts)
    }

    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<Completed, StoreError> {
        let mut inner = self.record(FakeCall::Complete {
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
            parts: parts.to_vec(),
        })?;
        if !inner.uploads.contains_key(upload_id) {
            return Err(no_such_upload(upload_id));
        }
        // As S3 and Garage do: every part carries the checksum of the algorithm the upload was
        // created with, and none of another.
        let declared = inner.declared.get(upload_id).copied();
        for p in parts {
            let carried = [
                ChecksumAlgorithm::Crc32,
                ChecksumAlgorithm::Crc32c,
                ChecksumAlgorithm::Sha256,
            ]
            .map(|algorithm| (algorithm, p.checksums.get(algorithm)));
            for (algorithm, value) in carried {
                if value.is_some() != (declared == Some(algorithm)) {
                    return Err(StoreError::InvalidPart {
                        message: format!(
                            "part {} carries {} {algorithm} checksum, the upload was created \
                             with {}",
                            p.part_number,
                            if value.is_some() { "a" } else { "no" },
                            declared.map_or("none".to_owned(), |a| a.to_string())
                        ),
                    });
                }
            }
        }
        // The object holds the named parts as stored (a part never stored counts as empty).
        let size = inner.uploads.remove(upload_id).map_or(0, |(_, stored)| {
            stored
                .iter()
                .filter(|s| parts.iter().any(|p| p.part_number == s.part_number))
                .map(|s| s.size)
                .sum()
        });
        inner.declared.remove(upload_id);
        let done = Completed {
            location: self.object_location(key),
            etag: format!("\"fake-etag-{}\"", parts.len()),
            checksum: declared.map(|a| format!("{a}:fake-{}", parts.len())),
        };
        let content_type = inner.content_types.remove(upload_id);
        inner.objects.insert(
            key.to_owned(),
            ObjectHead {
                size,
                etag: done.etag.clone(),
                checksum: done.checksum.clone(),
                content_type,
            },
        );
        if inner.blank_completion_etags {
            return Ok(Completed {
                etag: String::new(),
                ..done
            });
        }
        Ok(done)
    }

    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        let mut inner = self.record(FakeCall::Abort {
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
        })?;
        inner
            .uploads
            .remove(upload_id)
            .map(|_| ())
            .ok_or_else(|| no_such_upload(upload_id))
    }

    async fn head_object(&self, key: &str) -> Result<Option<ObjectHead>, StoreError> {
        let inner = self.record(FakeCall::HeadObject {
            key: key.to_owned(),
        })?;
        Ok(inner.objects.get(key).cloned())
    }

    async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        let mut inner = self.record(FakeCall::DeleteObject {
            key: key.to_owned(),
        })?;
        inner.objects.remove(key);
        inner.records.remove(key);
        Ok(())
    }

    async fn probe_checksum(
        &self,
        key: &str,
        algorithm: ChecksumAlgorithm,
    ) -> Result<PartProbe, StoreError> {
        let mut inner = self.lock();
        inner.probes.push((key.to_owned(), algorithm));
        match inner
            .verification
            .get(&algorithm)
            .copied()
            .unwrap_or_default()
        {
            FakeVerification::Verifies => Ok(PartProbe {
                status: 400,
                code: Some("BadDigest".to_owned()),
            }),
            FakeVerification::Ignores => Ok(PartProbe {
                status: 200,
                code: None,
            }),
            FakeVerification::Unreachable => Err(StoreError::unavailable(
                "CreateMultipartUpload",
                "connection refused (scripted)",
            )),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.record(FakeCall::Ping).map(drop)
    }

    async fn write_object(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner
            .records
            .insert(key.to_owned(), (body, SystemTime::now()));
        Ok(())
    }

    async fn read_object(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().records.get(key).map(|(body, _)| body.clone()))
    }

    async fn list_objects(&self, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        let inner = self.lock();
        let records = inner.records.iter().filter(|(k, _)| {
            k.strip_prefix(prefix)
                .is_some_and(|name| !name.contains('/'))
        });
        Ok(records
            .map(|(key, (body, at))| ListedObject {
                key: key.clone(),
                last_modified: *at,
                size: body.len() as u64,
            })
            .collect())
    }

    async fn presign_put(
        &self,
        key: &str,
        signing: &PutSigning,
        lifetime: Duration,
    ) -> Result<Presigned, StoreError> {
        drop(self.record(FakeCall::PresignPut {
            key: key.to_owned(),
            content_type: signing.content_type.clone(),
            content_length: signing.content_length,
            lifetime,
        })?);
        // What S3Store answers: every signed header the browser must send.
        let mut headers =
            BTreeMap::from([("content-type".to_owned(), signing.content_type.clone())]);
        if let Some(len) = signing.content_length {
            headers.insert("content-length".to_owned(), len.to_string());
        }
        for (name, value) in &signing.metadata {
            headers.insert(format!("x-amz-meta-{name}"), value.clone());
        }
        if let Some((algo, value)) = &signing.checksum {
            headers.insert(algo.header().to_owned(), value.clone());
        }
        Ok(Presigned {
            url: url(key, "x-id=PutObject"),
            headers,
        })
    }

    async fn presign_post(
        &self,
        key: &str,
        signing: &PostSigning,
        lifetime: Duration,
    ) -> Result<Option<PresignedPost>, StoreError> {
        let inner = self.record(FakeCall::PresignPost {
            key: key.to_owned(),
            signing: signing.clone(),
            lifetime,
        })?;
        if inner.no_post_policies {
            return Ok(None);
        }
        // The fields S3Store answers, the policy and its signature stand-ins.
        let mut fields = BTreeMap::from([
            ("bucket".to_owned(), "fake-bucket".to_owned()),
            ("key".to_owned(), key.to_owned()),
            ("Content-Type".to_owned(), signing.content_type.clone()),
            ("success_action_status".to_owned(), "201".to_owned()),
            ("policy".to_owned(), "fake-policy".to_owned()),
            ("x-amz-signature".to_owned(), "fake".to_owned()),
        ]);
        for (name, value) in &signing.metadata {
            fields.insert(format!("x-amz-meta-{name}"), value.clone());
        }
        Ok(Some(PresignedPost {
            url: format!("{FAKE_ENDPOINT}/fake-bucket"),
            fields,
        }))
    }
}
