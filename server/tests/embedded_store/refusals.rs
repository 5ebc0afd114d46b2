//! What the server refuses before the embedded store acts, and what the store keeps when it
//! refuses: unknown upload ids, an upload id under another key, a failed or too-small completion
//! (the upload stays for a retry), requests that leave the store untouched, and an upload larger
//! than declared.

use std::time::Duration;

use axum::http::StatusCode;
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::limits::MIB;
use s3_direct_protocol::wire::CompleteResponse;
use s3_direct_server::Store;
use s3_direct_server::store::PartSigning;
use serde_json::json;

use super::{complete, get_object, put, put_part, sign_batch, sign_sized};
use crate::common::{
    Embedded, anon_upload_id, create, delete, enc, get, post_json, store_id, test_bytes,
};

#[tokio::test]
async fn unknown_upload_ids_are_no_such_upload() {
    let e = Embedded::start().await;
    let (key, _) = create(&e.app, "a.bin").await;
    let k = enc(&key);
    for id in ["8d1f3c1e-3a43-4f4e-9a64-8c1f7f0b8a55", "not-a-uuid"] {
        // A genuine token for an upload the store does not hold.
        let id = &anon_upload_id(id, &key);
        get(&e.app, &format!("/s3/multipart/{id}?key={k}"))
            .await
            .error(StatusCode::NOT_FOUND, ErrorCode::NoSuchUpload);
        let r = complete(&e, &key, id, &[(1, "\"abc\"")]).await;
        r.error(StatusCode::NOT_FOUND, ErrorCode::NoSuchUpload);
        delete(&e.app, &format!("/s3/multipart/{id}?key={k}"))
            .await
            .error(StatusCode::NOT_FOUND, ErrorCode::NoSuchUpload);
    }
    assert!(e.objects().is_empty());
    assert_eq!(e.open_uploads().len(), 1);
}

#[tokio::test]
async fn an_upload_id_only_works_with_its_own_key() {
    let e = Embedded::start().await;
    let (key, upload_id) = create(&e.app, "mine.bin").await;
    let (other_key, _) = create(&e.app, "other.bin").await;
    let batch = sign_batch(&e, &key, &upload_id, "1").await;
    let etag = put_part(&batch.presigned_urls[&1], b"mine".to_vec()).await;

    // A well-formed key of another upload: the upload token is bound to its own key, so the
    // server refuses before the store is asked.
    complete(&e, &other_key, &upload_id, &[(1, &etag)])
        .await
        .error(StatusCode::FORBIDDEN, ErrorCode::InvalidUploadToken);
    get(
        &e.app,
        &format!("/s3/multipart/{upload_id}?key={}", enc(&other_key)),
    )
    .await
    .error(StatusCode::FORBIDDEN, ErrorCode::InvalidUploadToken);
    delete(
        &e.app,
        &format!("/s3/multipart/{upload_id}?key={}", enc(&other_key)),
    )
    .await
    .error(StatusCode::FORBIDDEN, ErrorCode::InvalidUploadToken);
    // And the store itself ties the id to its key (S3 answers NoSuchUpload, so must it).
    assert!(matches!(
        e.s3.list_parts(&other_key, store_id(&upload_id)).await,
        Err(s3_direct_server::StoreError::NoSuchUpload { .. })
    ));
    // A part URL presigned for the other key is refused too.
    let wrong =
        e.s3.presign_part(
            &other_key,
            store_id(&upload_id),
            2,
            Duration::from_secs(60),
            &PartSigning::default(),
        )
        .await
        .unwrap();
    assert_eq!(put(&wrong.url, b"x".to_vec()).await.status(), 404);
    assert!(e.objects().is_empty());
    assert_eq!(e.stored_parts().len(), 1);

    let done: CompleteResponse = complete(&e, &key, &upload_id, &[(1, &etag)]).await.ok();
    assert_eq!(done.key, key);
    assert_eq!(e.objects().len(), 1);
}

#[tokio::test]
async fn a_failed_complete_keeps_the_upload_for_a_retry() {
    let e = Embedded::start().await;
    let (key, upload_id) = create(&e.app, "a.bin").await;
    let batch = sign_batch(&e, &key, &upload_id, "1,2").await;
    let first = test_bytes((5 * MIB) as usize, 1);
    let etag1 = put_part(&batch.presigned_urls[&1], first.clone()).await;

    // Part 2 was never uploaded.
    let m = complete(&e, &key, &upload_id, &[(1, &etag1), (2, "\"abc\"")])
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPart);
    assert!(m.contains("part 2 has not been uploaded"), "{m}");
    assert_eq!(e.open_uploads(), [store_id(&upload_id)]);
    assert!(e.objects().is_empty());

    // Re-send and complete.
    let etag2 = put_part(&batch.presigned_urls[&2], b"tail".to_vec()).await;
    let done: CompleteResponse = complete(&e, &key, &upload_id, &[(1, &etag1), (2, &etag2)])
        .await
        .ok();
    assert!(done.etag.ends_with("-2\""), "{}", done.etag);
    let (stored, _) = get_object(&e, &key).await;
    assert_eq!(stored.len(), first.len() + 4);
}

#[tokio::test]
async fn small_non_last_parts_are_entity_too_small() {
    let e = Embedded::start().await;
    let (key, upload_id) = create(&e.app, "a.bin").await;
    let batch = sign_batch(&e, &key, &upload_id, "1,2").await;
    let etag1 = put_part(&batch.presigned_urls[&1], b"tiny".to_vec()).await;
    let etag2 = put_part(&batch.presigned_urls[&2], b"tail".to_vec()).await;
    complete(&e, &key, &upload_id, &[(1, &etag1), (2, &etag2)])
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::EntityTooSmall);
    assert_eq!(e.open_uploads(), [store_id(&upload_id)]);
    assert!(e.objects().is_empty());
}

#[tokio::test]
async fn refused_requests_leave_the_store_untouched() {
    let e = Embedded::start().await;
    let bad = StatusCode::BAD_REQUEST;
    let long = json!({"filename": "n".repeat(2000)}).to_string();
    post_json(&e.app, "/s3/multipart", long)
        .await
        .error(bad, ErrorCode::InvalidFilename);
    let huge = json!({"filename": "a", "size": (5u64 << 40) + 1}).to_string();
    post_json(&e.app, "/s3/multipart", huge)
        .await
        .error(bad, ErrorCode::InvalidSize);
    post_json(&e.app, "/s3/multipart", "{oops")
        .await
        .error(bad, ErrorCode::InvalidJson);
    assert!(e.open_uploads().is_empty());

    // An open upload: bad completions must neither complete nor destroy it.
    let (key, upload_id) = create(&e.app, "a.bin").await;
    let batch = sign_batch(&e, &key, &upload_id, "1").await;
    let etag = put_part(&batch.presigned_urls[&1], b"data".to_vec()).await;
    complete(&e, &key, &upload_id, &[])
        .await
        .error(bad, ErrorCode::InvalidPartList);
    complete(&e, &key, &upload_id, &[(1, &etag), (1, &etag)])
        .await
        .error(bad, ErrorCode::InvalidPartList);
    complete(&e, &key, &upload_id, &[(0, &etag)])
        .await
        .error(bad, ErrorCode::InvalidPartNumber);
    let outside = "uploads/../secret.bin";
    let r = post_json(
        &e.app,
        &format!("/s3/multipart/{upload_id}/complete?key={}", enc(outside)),
        json!({"parts": [{"PartNumber": 1, "ETag": etag}]}).to_string(),
    )
    .await;
    r.error(bad, ErrorCode::InvalidKey);
    get(
        &e.app,
        &format!("/s3/multipart/{upload_id}/0?key={}", enc(&key)),
    )
    .await
    .error(bad, ErrorCode::InvalidPartNumber);
    delete(&e.app, &format!("/s3/multipart/{upload_id}?key=secret.bin"))
        .await
        .error(bad, ErrorCode::InvalidKey);

    assert!(e.objects().is_empty(), "{:?}", e.objects());
    assert_eq!(e.open_uploads(), [store_id(&upload_id)]);
    assert_eq!(e.stored_parts().len(), 1);
}

#[tokio::test]
async fn completion_aborts_an_upload_larger_than_declared() {
    // Size declared, part size not: each part signs the length the client names, but only the
    // total shows the lie; it is checked at completion and an upload that broke it is aborted
    // in the store.
    let e = Embedded::start().await;
    let body = json!({"filename": "a.bin", "size": 6 * MIB});
    let created: s3_direct_protocol::wire::CreateMultipartResponse =
        post_json(&e.app, "/s3/multipart", body.to_string())
            .await
            .ok();
    let (key, upload_id) = (created.key, created.upload_id);
    let batch = sign_sized(&e, &key, &upload_id, &[(1, 5 * MIB), (2, 2 * MIB)]).await;
    let e1 = put_part(&batch.presigned_urls[&1], vec![1; (5 * MIB) as usize]).await;
    let e2 = put_part(&batch.presigned_urls[&2], vec![2; (2 * MIB) as usize]).await;
    let m = complete(&e, &key, &upload_id, &[(1, &e1), (2, &e2)])
        .await
        .error(StatusCode::CONFLICT, ErrorCode::PlanViolated);
    assert!(
        m.contains("7340032 bytes but the upload declared 6291456"),
        "{m}"
    );
    assert!(e.open_uploads().is_empty());
    assert!(e.stored_parts().is_empty());
    assert!(e.objects().is_empty());
    // Part 3 cannot even be signed: 6 MiB needs at most 2 parts.
    get(
        &e.app,
        &format!("/s3/multipart/{upload_id}/3?key={}", enc(&key)),
    )
    .await
    .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPartNumber);
}
