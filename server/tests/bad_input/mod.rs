//! Bad requests: each gets a 4xx JSON error with the right code and message, and the fake store
//! recorded no call, so nothing was created, signed or deleted.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::wire::CreateMultipartResponse;
use s3_direct_server::store::FakeCall;
use serde_json::{Value, json};

use crate::common::{Reply, anon_upload_id, delete, enc, fake_app, get, post_json, send};

const ETAG: &str = "\"0123456789abcdef0123456789abcdef\"";
/// A key of the shape the server issues (but never created in the fake).
const KEY: &str = "uploads/0b6f4f0e-7a4c-4c59-9d0b-2f6f4a1d3c11/a.bin";
const UPLOAD: &str = "up-1";

/// Sends `req` to a fresh app and asserts the error and that the store was never called.
async fn refused(
    method_uri_body: (&str, &str, Option<&str>),
    status: StatusCode,
    code: ErrorCode,
) -> String {
    let (app, store) = fake_app();
    let (method, uri, body) = method_uri_body;
    let reply: Reply = match (method, body) {
        ("GET", _) => get(&app, uri).await,
        ("DELETE", _) => delete(&app, uri).await,
        ("POST", Some(body)) => post_json(&app, uri, body.to_owned()).await,
        other => panic!("unsupported {other:?}"),
    };
    let message = reply.error(status, code);
    assert!(
        store.calls().is_empty(),
        "{uri}: store was called: {:?}",
        store.calls()
    );
    assert!(message.chars().next().unwrap().is_lowercase(), "{message}");
    message
}

fn sign(part: &str) -> String {
    format!("/s3/multipart/{UPLOAD}/{part}?key={}", enc(KEY))
}

fn batch(numbers: &str) -> String {
    format!(
        "/s3/multipart/{UPLOAD}/batch?key={}&partNumbers={numbers}",
        enc(KEY)
    )
}

fn complete_uri() -> String {
    format!("/s3/multipart/{UPLOAD}/complete?key={}", enc(KEY))
}

fn parts(numbers: impl IntoIterator<Item = u32>) -> String {
    let parts: Vec<Value> = numbers
        .into_iter()
        .map(|n| json!({"PartNumber": n, "ETag": ETAG}))
        .collect();
    json!({ "parts": parts }).to_string()
}

#[tokio::test]
async fn part_numbers_out_of_range_or_not_numbers() {
    let bad = StatusCode::BAD_REQUEST;
    let m = refused(("GET", &sign("0"), None), bad, ErrorCode::InvalidPartNumber).await;
    assert_eq!(m, "part number 0 is out of range 1..=10000");
    let m = refused(
        ("GET", &sign("10001"), None),
        bad,
        ErrorCode::InvalidPartNumber,
    )
    .await;
    assert_eq!(m, "part number 10001 is out of range 1..=10000");
    let m = refused(
        ("GET", &sign("x1"), None),
        bad,
        ErrorCode::InvalidPartNumber,
    )
    .await;
    assert!(m.contains("\"x1\" is not a whole number"), "{m}");
    refused(
        ("GET", &sign("-1"), None),
        bad,
        ErrorCode::InvalidPartNumber,
    )
    .await;
}

#[tokio::test]
async fn batches_empty_too_large_or_with_duplicates() {
    let bad = StatusCode::BAD_REQUEST;
    refused(("GET", &batch(""), None), bad, ErrorCode::InvalidBatch).await;
    let no_param = format!("/s3/multipart/{UPLOAD}/batch?key={}", enc(KEY));
    refused(("GET", &no_param, None), bad, ErrorCode::InvalidBatch).await;
    let many = (1..=1001)
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let m = refused(("GET", &batch(&many), None), bad, ErrorCode::InvalidBatch).await;
    assert!(m.contains("1001"), "{m}");
    let m = refused(("GET", &batch("1,2,2"), None), bad, ErrorCode::InvalidBatch).await;
    assert!(m.contains("part number 2 appears more than once"), "{m}");
    let m = refused(
        ("GET", &batch("1,0,3"), None),
        bad,
        ErrorCode::InvalidPartNumber,
    )
    .await;
    assert_eq!(m, "part number 0 is out of range 1..=10000");
}

#[tokio::test]
async fn bad_part_lists() {
    let bad = StatusCode::BAD_REQUEST;
    let uri = complete_uri();
    let post = |body: String| async move {
        let uri = complete_uri();
        let (app, store) = fake_app();
        let r = post_json(&app, &uri, body).await;
        (r, store.calls())
    };

    let m = refused(
        ("POST", &uri, Some(&parts([]))),
        bad,
        ErrorCode::InvalidPartList,
    )
    .await;
    assert!(m.contains("empty"), "{m}");

    // 10,000 parts, the last two swapped.
    let mut order: Vec<u32> = (1..=10_000).collect();
    order.swap(9_998, 9_999);
    let (r, calls) = post(parts(order)).await;
    let m = r.error(bad, ErrorCode::InvalidPartList);
    assert!(m.contains("part 9999 follows part 10000"), "{m}");
    assert!(calls.is_empty());

    let m = refused(
        ("POST", &uri, Some(&parts([1, 2, 2]))),
        bad,
        ErrorCode::InvalidPartList,
    )
    .await;
    assert!(m.contains("part 2 appears more than once"), "{m}");

    let too_many = parts((1..=10_000).chain([10_000]));
    refused(
        ("POST", &uri, Some(&too_many)),
        bad,
        ErrorCode::InvalidPartList,
    )
    .await;

    refused(
        ("POST", &uri, Some(&parts([0, 1]))),
        bad,
        ErrorCode::InvalidPartNumber,
    )
    .await;
    refused(
        ("POST", &uri, Some(&parts([1, 10_001]))),
        bad,
        ErrorCode::InvalidPartNumber,
    )
    .await;

    let bad_etag = json!({"parts": [{"PartNumber": 1, "ETag": "<nope>"}]}).to_string();
    let m = refused(("POST", &uri, Some(&bad_etag)), bad, ErrorCode::InvalidEtag).await;
    assert!(m.contains("ExposeHeaders: ETag"), "{m}");
    let no_etag = json!({"parts": [{"PartNumber": 1, "ETag": ""}]}).to_string();
    refused(("POST", &uri, Some(&no_etag)), bad, ErrorCode::InvalidEtag).await;
}

#[tokio::test]
async fn malformed_json_bodies() {
    let bad = StatusCode::BAD_REQUEST;
    let m = refused(
        ("POST", "/s3/multipart", Some("{\"filename\": ")),
        bad,
        ErrorCode::InvalidJson,
    )
    .await;
    assert!(m.starts_with("request body is not valid JSON"), "{m}");
    let m = refused(
        ("POST", "/s3/multipart", Some("{\"type\": \"x\"}")),
        bad,
        ErrorCode::InvalidJson,
    )
    .await;
    assert!(m.contains("filename"), "{m}");
    refused(
        ("POST", &complete_uri(), Some("[1,2]")),
        bad,
        ErrorCode::InvalidJson,
    )
    .await;
    refused(
        (
            "POST",
            &complete_uri(),
            Some("{\"parts\": [{\"PartNumber\": \"one\"}]}"),
        ),
        bad,
        ErrorCode::InvalidJson,
    )
    .await;

    // No content type at all.
    let (app, store) = fake_app();
    let r = send(
        &app,
        Request::post("/s3/multipart")
            .body(Body::from(r#"{"filename":"a"}"#))
            .unwrap(),
    )
    .await;
    let m = r.error(bad, ErrorCode::InvalidJson);
    assert!(m.contains("content-type: application/json"), "{m}");
    assert!(store.calls().is_empty());
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let (app, store) = fake_app();
    let huge = format!("{{\"parts\": [], \"pad\": \"{}\"}}", "x".repeat(5 << 20));
    post_json(&app, &complete_uri(), huge)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge);
    let big_create = format!("{{\"filename\": \"{}\"}}", "x".repeat(100_000));
    post_json(&app, "/s3/multipart", big_create)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge);
    assert!(store.calls().is_empty());
}

#[tokio::test]
async fn sizes_s3_cannot_store() {
    let bad = StatusCode::BAD_REQUEST;
    let body = json!({"filename": "a", "size": (5u64 << 40) + 1}).to_string();
    let m = refused(
        ("POST", "/s3/multipart", Some(&body)),
        bad,
        ErrorCode::InvalidSize,
    )
    .await;
    assert!(m.contains("5 TiB"), "{m}");
    let uri = format!("/s3/params?filename=a&size={}", (5u64 << 30) + 1);
    let m = refused(("GET", &uri, None), bad, ErrorCode::InvalidSize).await;
    assert!(m.contains("use a multipart upload"), "{m}");
}

#[tokio::test]
async fn overlong_file_names_are_refused() {
    let bad = StatusCode::BAD_REQUEST;
    let long = "n".repeat(2000);
    let body = json!({ "filename": long }).to_string();
    let m = refused(
        ("POST", "/s3/multipart", Some(&body)),
        bad,
        ErrorCode::InvalidFilename,
    )
    .await;
    assert!(m.contains("2000 bytes"), "{m}");
    let uri = format!("/s3/params?filename={long}");
    refused(("GET", &uri, None), bad, ErrorCode::InvalidFilename).await;
    refused(("GET", "/s3/params", None), bad, ErrorCode::InvalidFilename).await;
}

#[tokio::test]
async fn path_traversal_and_nul_in_file_names_are_refused() {
    let bad = StatusCode::BAD_REQUEST;
    for name in [
        "../../etc/passwd",
        "..",
        "a\0b.txt",
        "x/../../y",
        "..\\x.bin",
    ] {
        let body = json!({ "filename": name }).to_string();
        refused(
            ("POST", "/s3/multipart", Some(&body)),
            bad,
            ErrorCode::InvalidFilename,
        )
        .await;
    }
    let uri = "/s3/params?filename=..%2F..%2Fetc%2Fpasswd";
    refused(("GET", uri, None), bad, ErrorCode::InvalidFilename).await;
    let uri = "/s3/params?filename=a%00b";
    refused(("GET", uri, None), bad, ErrorCode::InvalidFilename).await;
}

#[tokio::test]
async fn unsafe_but_harmless_file_names_are_sanitized_into_the_prefix() {
    let (app, store) = fake_app();
    for name in [
        "dir/file.txt",
        ".hidden",
        "a\nb.txt",
        "\u{202E}gpj.exe",
        "C:\\x\\y.bin",
    ] {
        let body = json!({ "filename": name }).to_string();
        let created: CreateMultipartResponse = post_json(&app, "/s3/multipart", body).await.ok();
        let key = created.key;
        let name_part = key.rsplit_once('/').unwrap().1;
        assert!(key.starts_with("uploads/"), "{key}");
        assert_eq!(key.matches('/').count(), 2, "{key}");
        assert!(!name_part.starts_with('.'), "{key}");
        assert!(!key.contains('\n') && !key.contains('\u{202E}'), "{key:?}");
    }
    assert_eq!(store.calls().len(), 5);
}

#[tokio::test]
async fn keys_this_server_did_not_issue() {
    let bad = StatusCode::BAD_REQUEST;
    let foreign = [
        "secret.txt".to_owned(),
        "other/0b6f4f0e-7a4c-4c59-9d0b-2f6f4a1d3c11/a.bin".to_owned(),
        "uploads/0b6f4f0e-7a4c-4c59-9d0b-2f6f4a1d3c11/../../secret".to_owned(),
        "uploads/../secret".to_owned(),
        "uploads/0b6f4f0e-7a4c-4c59-9d0b-2f6f4a1d3c11/a\0b".to_owned(),
        "uploads/whatever/a.bin".to_owned(),
    ];
    for key in &foreign {
        let k = enc(key);
        let m = refused(
            ("GET", &format!("/s3/multipart/{UPLOAD}/1?key={k}"), None),
            bad,
            ErrorCode::InvalidKey,
        )
        .await;
        assert!(m.contains("pass the key returned"), "{m}");
        refused(
            (
                "GET",
                &format!("/s3/multipart/{UPLOAD}/batch?key={k}&partNumbers=1"),
                None,
            ),
            bad,
            ErrorCode::InvalidKey,
        )
        .await;
        refused(
            ("GET", &format!("/s3/multipart/{UPLOAD}?key={k}"), None),
            bad,
            ErrorCode::InvalidKey,
        )
        .await;
        refused(
            ("DELETE", &format!("/s3/multipart/{UPLOAD}?key={k}"), None),
            bad,
            ErrorCode::InvalidKey,
        )
        .await;
        refused(
            (
                "POST",
                &format!("/s3/multipart/{UPLOAD}/complete?key={k}"),
                Some(&parts([1])),
            ),
            bad,
            ErrorCode::InvalidKey,
        )
        .await;
    }
    // No key at all.
    let m = refused(
        ("GET", &format!("/s3/multipart/{UPLOAD}/1"), None),
        bad,
        ErrorCode::InvalidKey,
    )
    .await;
    assert!(m.contains("missing query parameter `key`"), "{m}");
}

#[tokio::test]
async fn malformed_upload_ids() {
    let bad = StatusCode::BAD_REQUEST;
    for id in ["a%20b", "%00", "%C3%BC"] {
        let uri = format!("/s3/multipart/{id}/1?key={}", enc(KEY));
        let m = refused(("GET", &uri, None), bad, ErrorCode::InvalidRequest).await;
        assert!(m.contains("pass the uploadId returned by create"), "{m}");
    }
}

#[tokio::test]
async fn bad_content_type_and_metadata() {
    let bad = StatusCode::BAD_REQUEST;
    for ty in ["text/\u{7f}plain", "image/png,text/html", "text/", "a/b;c"] {
        let body = json!({"filename": "a", "type": ty}).to_string();
        refused(
            ("POST", "/s3/multipart", Some(&body)),
            bad,
            ErrorCode::InvalidContentType,
        )
        .await;
        let uri = format!("/s3/params?filename=a&size=1&type={}", enc(ty));
        refused(("GET", &uri, None), bad, ErrorCode::InvalidContentType).await;
    }
    let body = json!({"filename": "a", "metadata": {"bad name": "x"}}).to_string();
    refused(
        ("POST", "/s3/multipart", Some(&body)),
        bad,
        ErrorCode::InvalidRequest,
    )
    .await;
}

#[tokio::test]
async fn unknown_upload_ids_are_404_no_such_upload() {
    let (app, store) = fake_app();
    let key = enc(KEY);
    let nope = anon_upload_id("nope", KEY);
    get(&app, &format!("/s3/multipart/{nope}?key={key}"))
        .await
        .error(StatusCode::NOT_FOUND, ErrorCode::NoSuchUpload);
    delete(&app, &format!("/s3/multipart/{nope}?key={key}"))
        .await
        .error(StatusCode::NOT_FOUND, ErrorCode::NoSuchUpload);
    let m = post_json(
        &app,
        &format!("/s3/multipart/{nope}/complete?key={key}"),
        parts([1]),
    )
    .await
    .error(StatusCode::NOT_FOUND, ErrorCode::NoSuchUpload);
    assert!(m.contains("start a new upload"), "{m}");
    // Each reached the store once and created nothing (the completion also looked for an object
    // an earlier completion of the same parts made).
    assert_eq!(store.calls().len(), 4);
    assert!(matches!(
        store.calls().last(),
        Some(FakeCall::HeadObject { .. })
    ));
    assert!(
        !store
            .calls()
            .iter()
            .any(|c| matches!(c, FakeCall::CreateMultipart(_)))
    );
    assert!(store.open_uploads().is_empty());
}

#[tokio::test]
async fn error_answers_are_json_even_for_framework_rejections() {
    let (app, _) = fake_app();
    // A query string serde cannot decode into the expected shape.
    let r = get(&app, "/s3/params?filename=a&filename=b").await;
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
    assert!(r.status.is_client_error());
}
