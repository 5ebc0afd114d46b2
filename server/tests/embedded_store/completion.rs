//! Verified completion on the embedded store: a completion retried after its answer was lost
//! gets the same answer, and the caller's size limit holds against a part re-sent bigger between
//! the server's listing of the parts and the store's completion, made deterministic by a store
//! wrapper that pauses there.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::http::StatusCode;
use md5::{Digest, Md5};
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::limits::MIB;
use s3_direct_protocol::wire::{
    CompleteResponse, CompletedPart, CreateMultipartResponse, ListedPart,
};
use s3_direct_server::store::{
    Completed, NewUpload, ObjectHead, PartSigning, PostSigning, Presigned, PresignedPost,
    PutSigning,
};
use s3_direct_server::{S3Store, Settings, Store, StoreError};
use serde_json::json;
use tokio::sync::oneshot;

use super::{complete, put_part, sign_sized};
use crate::common::{Embedded, Limited, create, enc, post_json, test_bytes};

/// The quoted hex MD5 of `bytes`: the ETag a store gives the part.
fn part_etag(bytes: &[u8]) -> String {
    let hex: String = Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("\"{hex}\"")
}

#[tokio::test]
async fn a_completion_retried_after_its_answer_was_lost_gets_the_same_answer() {
    let e = Embedded::start().await;
    let (key, upload_id) = create(&e.app, "retried.bin").await;
    let first = test_bytes((5 * MIB) as usize, 11);
    let batch = super::sign_batch(&e, &key, &upload_id, "1,2").await;
    let etag1 = put_part(&batch.presigned_urls[&1], first.clone()).await;
    let etag2 = put_part(&batch.presigned_urls[&2], b"tail".to_vec()).await;
    let parts = [(1, etag1.as_str()), (2, etag2.as_str())];

    let done: CompleteResponse = complete(&e, &key, &upload_id, &parts).await.ok();
    assert_eq!(done.size, 5 * MIB + 4);
    assert!(done.etag.ends_with("-2\""), "{}", done.etag);
    // The first answer was lost: the retry finds no upload, and the object those parts make.
    let again: CompleteResponse = complete(&e, &key, &upload_id, &parts).await.ok();
    // The same answer, with a receipt of its own (signed at its own second).
    assert!(again.receipt.is_some() && done.receipt.is_some());
    let without_receipt = |r: &CompleteResponse| CompleteResponse {
        receipt: None,
        ..r.clone()
    };
    assert_eq!(without_receipt(&again), without_receipt(&done));
    assert_eq!(e.objects().len(), 1);

    // Other parts did not make that object: the upload is gone, as before.
    let other = part_etag(b"other");
    complete(
        &e,
        &key,
        &upload_id,
        &[(1, etag1.as_str()), (2, other.as_str())],
    )
    .await
    .error(StatusCode::NOT_FOUND, ErrorCode::NoSuchUpload);
    complete(&e, &key, &upload_id, &[(1, etag1.as_str())])
        .await
        .error(StatusCode::NOT_FOUND, ErrorCode::NoSuchUpload);
}

/// The embedded store, except that the first `ListParts` answers only once the test lets it
/// (after telling the test the listing is done), and, when `hide_etags`, lists no part ETags (as
/// stock s3s-fs lists none).
#[derive(Debug)]
struct Pausing {
    inner: S3Store,
    hide_etags: bool,
    /// Told when the listing is done; then waits for the test's go.
    pause: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
}

#[async_trait]
impl Store for Pausing {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }
    fn object_location(&self, key: &str) -> String {
        self.inner.object_location(key)
    }
    async fn create_multipart(&self, upload: NewUpload) -> Result<String, StoreError> {
        self.inner.create_multipart(upload).await
    }
    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        lifetime: Duration,
        signing: &PartSigning,
    ) -> Result<Presigned, StoreError> {
        self.inner
            .presign_part(key, upload_id, part_number, lifetime, signing)
            .await
    }
    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<ListedPart>, StoreError> {
        let mut listed = self.inner.list_parts(key, upload_id).await?;
        if self.hide_etags {
            for part in &mut listed {
                part.etag.clear();
            }
        }
        let pause = self.pause.lock().unwrap().take();
        if let Some((listed_done, go)) = pause {
            listed_done.send(()).unwrap();
            go.await.unwrap();
        }
        Ok(listed)
    }
    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<Completed, StoreError> {
        self.inner.complete(key, upload_id, parts).await
    }
    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.inner.abort(key, upload_id).await
    }
    async fn head_object(&self, key: &str) -> Result<Option<ObjectHead>, StoreError> {
        self.inner.head_object(key).await
    }
    async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete_object(key).await
    }
    async fn presign_put(
        &self,
        key: &str,
        signing: &PutSigning,
        lifetime: Duration,
    ) -> Result<Presigned, StoreError> {
        self.inner.presign_put(key, signing, lifetime).await
    }
    async fn presign_post(
        &self,
        key: &str,
        signing: &PostSigning,
        lifetime: Duration,
    ) -> Result<Option<PresignedPost>, StoreError> {
        self.inner.presign_post(key, signing, lifetime).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

/// A caller limited to 12 MiB uploads parts of 5 MiB and 1 MiB, asks to complete them naming
/// an 8 MiB part 2, and re-sends part 2 with those 8 MiB (a URL it may get: 8 MiB is within its
/// limit) while the server's listing is done but the store's completion not yet asked for.
/// Returns the completion's answer.
async fn race_a_bigger_part_into_the_completion(
    hide_etags: bool,
) -> (Embedded, crate::common::Reply) {
    const LIMIT: u64 = 12 * MIB;
    let (listed_done, listed) = oneshot::channel();
    let (go, wait) = oneshot::channel();
    let e = Embedded::start_wrapped(Settings::default(), Arc::new(Limited(LIMIT)), |inner| {
        Arc::new(Pausing {
            inner,
            hide_etags,
            pause: Mutex::new(Some((listed_done, wait))),
        })
    })
    .await;
    let created: CreateMultipartResponse = post_json(
        &e.app,
        "/s3/multipart",
        json!({"filename": "raced.bin"}).to_string(),
    )
    .await
    .ok();
    let (key, upload_id) = (created.key, created.upload_id);
    let part1 = test_bytes((5 * MIB) as usize, 1);
    let small = test_bytes(MIB as usize, 2);
    let big = test_bytes((8 * MIB) as usize, 3);
    let batch = sign_sized(&e, &key, &upload_id, &[(1, 5 * MIB), (2, MIB)]).await;
    let etag1 = put_part(&batch.presigned_urls[&1], part1).await;
    put_part(&batch.presigned_urls[&2], small).await;

    // The completion names the bigger part 2 (its ETag is its MD5, known in advance).
    let app = e.app.clone();
    let uri = format!("/s3/multipart/{upload_id}/complete?key={}", enc(&key));
    let body = json!({"parts": [
        {"PartNumber": 1, "ETag": etag1},
        {"PartNumber": 2, "ETag": part_etag(&big)},
    ]});
    let completing = tokio::spawn(async move { post_json(&app, &uri, body.to_string()).await });
    tokio::time::timeout(Duration::from_secs(30), listed)
        .await
        .expect("the server never listed the parts")
        .unwrap();
    let bigger = sign_sized(&e, &key, &upload_id, &[(2, 8 * MIB)]).await;
    put_part(&bigger.presigned_urls[&2], big).await;
    go.send(()).unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(30), completing)
        .await
        .expect("the completion never answered")
        .unwrap();
    (e, reply)
}

#[tokio::test]
async fn a_part_re_sent_bigger_after_the_listing_is_refused_by_its_etag() {
    let (e, reply) = race_a_bigger_part_into_the_completion(false).await;
    let m = reply.error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPart);
    assert!(m.contains("part 2 is named with ETag"), "{m}");
    assert!(e.objects().is_empty(), "{:?}", e.objects());
}

#[tokio::test]
async fn where_the_store_lists_no_etags_the_object_read_back_is_deleted() {
    let (e, reply) = race_a_bigger_part_into_the_completion(true).await;
    let m = reply.error(StatusCode::CONFLICT, ErrorCode::PlanViolated);
    assert!(
        m.contains("the object holds 13631488 bytes, more than this caller's limit of 12582912"),
        "{m}"
    );
    assert!(m.contains("the object was deleted"), "{m}");
    assert!(e.objects().is_empty(), "{:?}", e.objects());
}

#[tokio::test]
async fn a_caller_with_a_size_limit_signs_no_part_without_its_length() {
    let e = Embedded::start_with(Settings::default(), Arc::new(Limited(12 * MIB))).await;
    let (key, upload_id) = create(&e.app, "a.bin").await;
    let one = |query: &str| format!("/s3/multipart/{upload_id}/1?key={}{query}", enc(&key));
    let m = crate::common::get(&e.app, &one(""))
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidSize);
    assert!(m.contains("part 1 has no length"), "{m}");
    crate::common::get(&e.app, &one(&format!("&length={}", 12 * MIB + 1)))
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidSize);
    // With its length, the store refuses any other body.
    let signed: s3_direct_protocol::wire::SignPartResponse =
        crate::common::get(&e.app, &one("&length=10")).await.ok();
    let res = super::put(&signed.url, vec![0; 11]).await;
    assert_eq!(res.status(), 403);
    put_part(&signed.url, vec![0; 10]).await;
}
