//! Small files as S3 POST policy forms, the way Companion clients (Uppy 6 always, Uppy 5 when
//! told) send them: `GET /s3/params` without `size` answers a form, the browser POSTs it with the
//! file to the bucket, and the store holds the form to the policy — the key, content type and
//! metadata exactly as signed, the size within its range, the signature and the expiry — storing
//! nothing it refuses.
//!
//! Runs on the embedded store always, on Garage when `S3_DIRECT_TEST_GARAGE_*` are set and on
//! Ceph radosgw when `S3_DIRECT_TEST_CEPH_*` are.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use axum::Router;
use reqwest::StatusCode as HttpStatus;
use s3_direct_protocol::wire::{CompleteResponse, SinglePutParams};
use s3_direct_server::S3Store;
use s3s::crypto::{Checksum as _, Md5};
use serde_json::json;

use crate::common::{
    Embedded, enc, get, open_app_on_new_bucket, post_json, store_from_env, test_bytes,
};

/// POSTs `fields` and then `file` as a `multipart/form-data` form to `url`, as a browser's
/// `FormData` does (the file last: S3 ignores fields after it); the status and body.
pub(crate) async fn post_form(
    url: &str,
    fields: &BTreeMap<String, String>,
    file: &[u8],
) -> (HttpStatus, String) {
    let (status, _, body) = post_form_answer(url, fields, file).await;
    (status, body)
}

/// [`post_form`] with the answer's headers.
async fn post_form_answer(
    url: &str,
    fields: &BTreeMap<String, String>,
    file: &[u8],
) -> (HttpStatus, reqwest::header::HeaderMap, String) {
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in fields {
        form = form.text(name.clone(), value.clone());
    }
    form = form.part(
        "file",
        reqwest::multipart::Part::bytes(file.to_vec()).file_name("blob"),
    );
    let res = crate::common::http()
        .post(url)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, res.text().await.unwrap())
}

/// Asks the app for the form of a small file; `query` follows `filename=`.
async fn form(app: &Router, query: &str) -> SinglePutParams {
    let params: SinglePutParams = get(app, &format!("/s3/params?filename={query}")).await.ok();
    assert_eq!(params.method, "POST", "{params:?}");
    assert_eq!(params.fields["key"], params.key);
    assert!(params.headers.is_empty(), "{params:?}");
    params
}

/// Whether the store holds an object under `key`.
async fn stored(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bool {
    client
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .is_ok()
}

/// `answers_in_headers`: whether the store answers a form with `ETag` and `Location` headers,
/// as S3 does (Ceph 16 writes them in the XML body only).
async fn forms_are_held_to_their_policy(
    app: &Router,
    store: &S3Store,
    client: &aws_sdk_s3::Client,
    bucket: &str,
    answers_in_headers: bool,
) {
    // A form as Uppy asks for it: no size, the type and metadata as query parameters.
    let body = test_bytes(150_007, 1);
    let params = form(
        app,
        &format!(
            "{}&type=text%2Fplain&metadata%5Bowner%5D=ada",
            enc("notes ü.txt")
        ),
    )
    .await;
    assert_eq!(params.fields["Content-Type"], "text/plain");
    assert_eq!(params.fields["x-amz-meta-owner"], "ada");
    let (status, headers, answer) = post_form_answer(&params.url, &params.fields, &body).await;
    assert_eq!(status, HttpStatus::CREATED, "{answer}");
    assert!(answer.contains("<ETag>"), "{answer}");
    if answers_in_headers {
        // As S3 answers a form, and Uppy 5 needs: it waits for the ETag header.
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        let md5: String = Md5::checksum(&body)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(header("etag"), Some(format!("\"{md5}\"")), "{headers:?}");
        let location = header("location").unwrap_or_else(|| panic!("{headers:?}"));
        assert!(
            location.starts_with("http") && location.ends_with("/notes%20%C3%BC.txt"),
            "{location}"
        );
    }
    let object = client
        .get_object()
        .bucket(bucket)
        .key(&params.key)
        .send()
        .await
        .unwrap();
    assert_eq!(object.content_type(), Some("text/plain"));
    assert_eq!(
        object
            .metadata()
            .and_then(|m| m.get("owner"))
            .map(String::as_str),
        Some("ada")
    );
    let stored_body = object.body.collect().await.unwrap().into_bytes();
    assert!(
        stored_body == body,
        "the stored object differs from the file"
    );
    // Reported done, it is read back (its size and the signed type, as this store reports them)
    // and answered with a receipt.
    let report = json!({ "key": params.key, "token": params.token }).to_string();
    let done: CompleteResponse = post_json(app, "/s3/params/complete", report).await.ok();
    assert_eq!(
        (done.key.as_str(), done.size),
        (params.key.as_str(), 150_007)
    );
    assert!(!done.etag.is_empty() && done.receipt.is_some(), "{done:?}");

    // What the store must refuse, each storing nothing under the form's key.
    let refused = async |what: &str,
                         params: &SinglePutParams,
                         fields: &BTreeMap<String, String>,
                         file: &[u8]| {
        let (status, answer) = post_form(&params.url, fields, file).await;
        assert!(
            status.is_client_error(),
            "{what}: the store answered {status}: {answer}"
        );
        assert!(
            !stored(client, bucket, &params.key).await,
            "{what}: the store kept the object"
        );
    };

    // A declared size is the only size the form takes.
    let sized = form(
        app,
        "exact.bin&type=application%2Foctet-stream&size=1000&method=POST",
    )
    .await;
    refused("one byte more", &sized, &sized.fields, &test_bytes(1001, 2)).await;
    refused("one byte less", &sized, &sized.fields, &test_bytes(999, 2)).await;

    let params = form(app, "a.bin&type=application%2Foctet-stream").await;
    let small = test_bytes(1000, 3);
    for (what, field, value) in [
        ("another key", "key", format!("{}-elsewhere", params.key)),
        (
            "another content type",
            "Content-Type",
            "text/html".to_owned(),
        ),
        ("other metadata", "x-amz-meta-owner", "mallory".to_owned()),
        ("a changed signature", "x-amz-signature", "0".repeat(64)),
    ] {
        let mut fields = params.fields.clone();
        fields.insert(field.to_owned(), value.clone());
        refused(what, &params, &fields, &small).await;
        if field == "key" {
            assert!(!stored(client, bucket, &value).await, "{what}: stored");
        }
    }

    // An expired form: signed an hour ago for a minute.
    let expired = store
        .presign_post_at(
            &params.key,
            &s3_direct_server::store::PostSigning {
                content_type: "application/octet-stream".to_owned(),
                metadata: BTreeMap::new(),
                size: 0..=1_000_000,
            },
            SystemTime::now() - Duration::from_secs(3600),
            Duration::from_secs(60),
        )
        .await
        .unwrap()
        .expect("the store signs forms");
    let as_params = SinglePutParams {
        url: expired.url,
        fields: expired.fields.clone(),
        ..params.clone()
    };
    refused("an expired form", &as_params, &expired.fields, &small).await;

    // The untouched form still works after all that.
    let (status, answer) = post_form(&params.url, &params.fields, &small).await;
    assert_eq!(status, HttpStatus::CREATED, "{answer}");
    assert!(stored(client, bucket, &params.key).await);
}

async fn on_store(store: S3Store, answers_in_headers: bool) {
    let app = open_app_on_new_bucket(&store).await;
    let client = store.client().clone();
    let bucket = store.config().bucket.clone();
    forms_are_held_to_their_policy(&app, &store, &client, &bucket, answers_in_headers).await;
}

#[tokio::test]
async fn the_embedded_store_holds_post_forms_to_their_policy() {
    let e = Embedded::start().await;
    forms_are_held_to_their_policy(&e.app, &e.s3, e.s3.client(), &e.s3.config().bucket, true).await;
}

#[tokio::test]
async fn garage_holds_post_forms_to_their_policy() {
    let Some(store) = store_from_env("GARAGE", "pf") else {
        crate::common::store_not_configured("S3_DIRECT_TEST_GARAGE_ENDPOINT");
        return;
    };
    on_store(store, true).await;
}

#[tokio::test]
async fn ceph_holds_post_forms_to_their_policy() {
    let Some(store) = store_from_env("CEPH", "pf") else {
        crate::common::store_not_configured("S3_DIRECT_TEST_CEPH_ENDPOINT");
        return;
    };
    on_store(store, false).await;
}
