//! Small files on the embedded store: sent as a presigned PUT or a POST form, reported done at
//! `POST /s3/params/complete`, answered with a receipt a backend verifies against the published
//! keys; an object another writer replaced with other bytes is refused and deleted.

use axum::http::StatusCode;
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::wire::{CompleteResponse, SinglePutParams};
use s3_direct_server::Store;
use serde_json::json;

use super::verified_receipt;
use crate::common::{BUCKET, Embedded, get, post_json};

async fn complete(e: &Embedded, p: &SinglePutParams) -> crate::common::Reply {
    let body = json!({ "key": p.key, "token": p.token.as_deref().unwrap() });
    post_json(&e.app, "/s3/params/complete", body.to_string()).await
}

#[tokio::test]
async fn small_files_sent_as_a_put_or_a_form_complete_with_a_verified_receipt() {
    let e = Embedded::start().await;
    let body = b"hello, receipts".to_vec();
    let put: SinglePutParams = get(
        &e.app,
        &format!(
            "/s3/params?filename=a.txt&type=text%2Fplain&method=PUT&size={}",
            body.len()
        ),
    )
    .await
    .ok();
    let mut req = crate::common::http().put(&put.url).body(body.clone());
    for (name, value) in &put.headers {
        req = req.header(name, value);
    }
    assert_eq!(req.send().await.unwrap().status(), 200);
    let form: SinglePutParams = get(&e.app, "/s3/params?filename=b.txt&type=text%2Fplain")
        .await
        .ok();
    assert_eq!(form.method, "POST");
    let (status, answer) = crate::post_forms::post_form(&form.url, &form.fields, &body).await;
    assert!(status.is_success(), "{status}: {answer}");

    for p in [&put, &form] {
        let done: CompleteResponse = complete(&e, p).await.ok();
        assert_eq!((done.key.as_str(), done.size), (p.key.as_str(), 15));
        assert!(!done.etag.is_empty());
        let receipt = verified_receipt(&e, done.receipt.as_deref()).await;
        assert_eq!(
            (receipt.key.as_str(), receipt.size, receipt.etag.as_str()),
            (p.key.as_str(), 15, done.etag.as_str())
        );
        assert_eq!(
            (receipt.bucket.as_str(), receipt.content_type.as_str()),
            (BUCKET, "text/plain")
        );
        assert_eq!(receipt.upload_id, p.key);
        // Reported again: the same facts.
        let again: CompleteResponse = complete(&e, p).await.ok();
        assert_eq!((again.etag, again.size), (done.etag, done.size));
    }

    // Another writer replaced the object with more bytes than were declared for it.
    e.s3.client()
        .put_object()
        .bucket(BUCKET)
        .key(&put.key)
        .content_type("text/plain")
        .body(b"hello, receipts and more".to_vec().into())
        .send()
        .await
        .unwrap();
    complete(&e, &put)
        .await
        .error(StatusCode::CONFLICT, ErrorCode::PlanViolated);
    assert!(
        e.s3.head_object(&put.key).await.unwrap().is_none(),
        "the object that broke its token was deleted"
    );
    complete(&e, &put)
        .await
        .error(StatusCode::NOT_FOUND, ErrorCode::NoSuchUpload);
}
