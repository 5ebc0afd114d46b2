//! `POST /s3/params/complete` over the fake store: a small file sent as one PUT or POST form is
//! read back, held to what its token signed (deleted when it breaks it) and answered with a
//! receipt, the same on every call.

use std::sync::Arc;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::wire::{CompleteResponse, SinglePutParams};
use s3_direct_server::store::{FakeCall, ObjectHead};
use s3_direct_server::token::{ObjectClaims, principal_digest};
use s3_direct_server::{AppState, FakeStore, ReceiptClaims, Settings};
use serde_json::json;

use crate::common::{Limited, Reply, fake_app, get, post_json, test_secrets};

const ETAG: &str = "\"0123456789abcdef0123456789abcdef\"";

async fn params(app: &axum::Router, query: &str) -> SinglePutParams {
    get(
        app,
        &format!("/s3/params?filename=note.txt&type=text%2Fplain&{query}"),
    )
    .await
    .ok()
}

async fn complete(app: &axum::Router, key: &str, token: &str) -> Reply {
    let body = json!({ "key": key, "token": token }).to_string();
    post_json(app, "/s3/params/complete", body).await
}

fn stored(size: u64, content_type: &str) -> ObjectHead {
    ObjectHead {
        size,
        etag: ETAG.into(),
        checksum: Some("CRC32:AAAAAA==".into()),
        content_type: Some(content_type.into()),
    }
}

/// The claims of a receipt (its signature is checked on the embedded store and in the browser).
fn claims_of(receipt: &str) -> ReceiptClaims {
    let payload = receipt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn a_small_file_completes_with_a_receipt_and_again_with_the_same_answer() {
    let (app, store) = fake_app();
    for query in ["size=5&method=PUT", "method=POST"] {
        let p = params(&app, query).await;
        let token = p.token.clone().expect("the params answer carries a token");
        store.put_object(&p.key, stored(5, "text/plain"));
        let done: CompleteResponse = complete(&app, &p.key, &token).await.ok();
        assert_eq!(
            (
                done.key.as_str(),
                done.size,
                done.etag.as_str(),
                done.bucket.as_str()
            ),
            (p.key.as_str(), 5, ETAG, "fake-bucket")
        );
        assert_eq!(done.checksum.as_deref(), Some("CRC32:AAAAAA=="));
        assert!(done.location.ends_with("/note.txt"), "{}", done.location);
        let receipt = claims_of(done.receipt.as_deref().unwrap());
        assert_eq!(
            (receipt.key.as_str(), receipt.size, receipt.etag.as_str()),
            (p.key.as_str(), 5, ETAG)
        );
        assert_eq!(
            (receipt.sub.as_str(), receipt.content_type.as_str()),
            ("anonymous", "text/plain")
        );
        assert_eq!(
            receipt.upload_id, p.key,
            "a single PUT's upload id is its key"
        );

        // Asked again: the same answer; nothing was changed in the store.
        let again: CompleteResponse = complete(&app, &p.key, &token).await.ok();
        let bare = |r: &CompleteResponse| CompleteResponse {
            receipt: None,
            ..r.clone()
        };
        assert_eq!(bare(&again), bare(&done));
        assert!(store.objects().contains_key(&p.key));
    }
    assert!(
        !store
            .calls()
            .iter()
            .any(|c| matches!(c, FakeCall::DeleteObject { .. })),
        "{:?}",
        store.calls()
    );
}

#[tokio::test]
async fn a_small_file_that_breaks_its_token_is_deleted() {
    let (app, store) = fake_app();
    // Another size than declared.
    let p = params(&app, "size=5&method=PUT").await;
    store.put_object(&p.key, stored(6, "text/plain"));
    let message = complete(&app, &p.key, p.token.as_deref().unwrap())
        .await
        .error(StatusCode::CONFLICT, ErrorCode::PlanViolated);
    assert!(
        message.contains("6 bytes, but 5 were declared"),
        "{message}"
    );
    assert!(!store.objects().contains_key(&p.key));
    // Another content type than signed.
    let p = params(&app, "size=5&method=PUT").await;
    store.put_object(&p.key, stored(5, "text/html"));
    let message = complete(&app, &p.key, p.token.as_deref().unwrap())
        .await
        .error(StatusCode::FORBIDDEN, ErrorCode::ContentTypeNotAllowed);
    assert!(message.contains("\"text/html\""), "{message}");
    assert!(!store.objects().contains_key(&p.key));
    // Nothing under the key: nothing to verify, nothing deleted.
    let p = params(&app, "size=5&method=PUT").await;
    complete(&app, &p.key, p.token.as_deref().unwrap())
        .await
        .error(StatusCode::NOT_FOUND, ErrorCode::NoSuchUpload);
}

#[tokio::test]
async fn a_small_file_token_holds_for_its_key_and_caller_only() {
    let (app, store) = fake_app();
    let a = params(&app, "size=5&method=PUT").await;
    let b = params(&app, "size=5&method=PUT").await;
    for p in [&a, &b] {
        store.put_object(&p.key, stored(5, "text/plain"));
    }
    let before = store.calls().len();
    // Another file's token, a forged one, none.
    let a_token = a.token.as_deref().unwrap();
    for token in [b.token.as_deref().unwrap(), "AAAA", ""] {
        complete(&app, &a.key, token)
            .await
            .error(StatusCode::FORBIDDEN, ErrorCode::InvalidUploadToken);
    }
    // A good token, sealed for another caller.
    let theirs = ObjectClaims {
        principal: principal_digest("someone-else"),
        expires_at: u64::MAX / 2,
        size: Some(5),
        max_size: None,
        content_type: "text/plain".into(),
    };
    let token = test_secrets().seal_object(&a.key, &theirs);
    complete(&app, &a.key, &token)
        .await
        .error(StatusCode::FORBIDDEN, ErrorCode::Forbidden);
    // A multipart upload's token in its place.
    let upload_id = crate::common::anon_upload_id("up-1", &a.key);
    let upload_token = upload_id.rsplit_once('.').unwrap().1;
    complete(&app, &a.key, upload_token)
        .await
        .error(StatusCode::FORBIDDEN, ErrorCode::InvalidUploadToken);
    // A key this server did not issue.
    complete(&app, "elsewhere/x.txt", a_token)
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidKey);
    assert_eq!(
        store.calls().len(),
        before,
        "no refused call reached the store"
    );
    assert_eq!(store.objects().len(), 2);
}

/// A form without a declared size is bound by the caller's limit: the store holds the form to
/// it, and the completion reads the object back and holds it to it again.
#[tokio::test]
async fn a_form_without_a_size_is_held_to_the_callers_limit() {
    let store = Arc::new(FakeStore::new());
    let state = AppState::with_auth(
        store.clone(),
        Settings::default(),
        Arc::new(Limited(100)),
        test_secrets(),
    );
    let app = s3_direct_server::app(state);
    let p = params(&app, "method=POST").await;
    assert_eq!(p.method, "POST");
    store.put_object(&p.key, stored(100, "text/plain"));
    let done: CompleteResponse = complete(&app, &p.key, p.token.as_deref().unwrap())
        .await
        .ok();
    assert_eq!(done.size, 100);
    store.put_object(&p.key, stored(101, "text/plain"));
    let message = complete(&app, &p.key, p.token.as_deref().unwrap())
        .await
        .error(StatusCode::CONFLICT, ErrorCode::PlanViolated);
    assert!(
        message.contains("more than this caller's limit of 100"),
        "{message}"
    );
    assert!(store.objects().is_empty());
}

#[tokio::test]
async fn a_malformed_report_is_refused_before_the_store() {
    let (app, store) = fake_app();
    for body in ["", "{}", "{\"key\": \"uploads/x\"}", "[]"] {
        post_json(&app, "/s3/params/complete", body)
            .await
            .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidJson);
    }
    get(&app, "/s3/params/complete")
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::InvalidRequest);
    assert!(store.calls().is_empty());
}
