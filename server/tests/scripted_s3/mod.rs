//! `S3Store` against a scripted S3 endpoint on a random loopback port: ListParts paging over
//! several pages (the embedded store answers in one page) and the mapping of real S3 XML errors
//! to our error codes. The upload id picks the script, so each case is deterministic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::wire::CompletedPart;
use s3_direct_server::{S3Store, S3StoreConfig, Settings, Store, StoreError, app};

use crate::common::{anon_upload_id, enc, get, open_state, post_json};

const KEY: &str = "uploads/0b6f4f0e-7a4c-4c59-9d0b-2f6f4a1d3c11/a.bin";
/// Parts the "paged" upload holds: three pages of at most 1,000.
const PAGED_PARTS: u32 = 2_500;

type Log = Arc<Mutex<Vec<String>>>;

/// Starts the scripted endpoint; returns a store pointed at it and the request log.
async fn scripted() -> (S3Store, Log) {
    let log: Log = Arc::default();
    let router = Router::new().fallback(answer).with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let store = S3Store::with_credentials(
        S3StoreConfig {
            endpoint: format!("http://{addr}"),
            public_endpoint: Some("https://files.example.net".into()),
            bucket: "b".into(),
            region: "us-east-1".into(),
            path_style: true,
        },
        "AKIDEXAMPLE",
        "secret",
    );
    (store, log)
}

fn xml(status: StatusCode, body: String) -> Response {
    (status, [("content-type", "application/xml")], body).into_response()
}

fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    xml(
        status,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
             <Message>{message}</Message><RequestId>r1</RequestId></Error>"
        ),
    )
}

async fn answer(
    State(log): State<Log>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let checksum_headers: Vec<&str> = headers
        .keys()
        .map(|h| h.as_str())
        .filter(|h| h.starts_with("x-amz-checksum") || h.starts_with("x-amz-sdk-checksum"))
        .collect();
    log.lock().unwrap().push(format!(
        "{method} {} {checksum_headers:?}",
        uri.path_and_query().unwrap()
    ));
    let upload_id = q.get("uploadId").map(String::as_str).unwrap_or_default();
    match upload_id {
        "missing" => {
            return s3_error(
                StatusCode::NOT_FOUND,
                "NoSuchUpload",
                "The specified upload does not exist.",
            );
        }
        "badpart" => {
            return s3_error(
                StatusCode::BAD_REQUEST,
                "InvalidPart",
                "One or more of the specified parts could not be found.",
            );
        }
        "small" => {
            return s3_error(
                StatusCode::BAD_REQUEST,
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed object size.",
            );
        }
        "denied" => {
            return s3_error(StatusCode::FORBIDDEN, "AccessDenied", "Access Denied");
        }
        _ => {}
    }
    if method == Method::GET {
        let marker: u32 = q
            .get("part-number-marker")
            .map_or(0, |m| m.parse().unwrap());
        let max: u32 = q.get("max-parts").map_or(1000, |m| m.parse().unwrap());
        // "stuck" claims more pages but never moves the marker.
        let (end, next) = if upload_id == "stuck" {
            (marker + 1, marker)
        } else {
            let end = (marker + max).min(PAGED_PARTS);
            (end, end)
        };
        let parts: String = (marker + 1..=end)
            .rev() // Out of order on purpose: the store must sort.
            .map(|n| {
                format!(
                    "<Part><PartNumber>{n}</PartNumber><ETag>\"e{n}\"</ETag><Size>{n}</Size></Part>"
                )
            })
            .collect();
        let truncated = upload_id == "stuck" || end < PAGED_PARTS;
        return xml(
            StatusCode::OK,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
                 <ListPartsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <Bucket>b</Bucket><Key>k</Key><UploadId>{upload_id}</UploadId>\
                 <PartNumberMarker>{marker}</PartNumberMarker>\
                 <NextPartNumberMarker>{next}</NextPartNumberMarker>\
                 <MaxParts>{max}</MaxParts><IsTruncated>{truncated}</IsTruncated>{parts}\
                 </ListPartsResult>"
            ),
        );
    }
    if method == Method::POST && q.contains_key("uploadId") {
        return xml(
            StatusCode::OK,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <CompleteMultipartUploadResult><Location>http://internal:9000/b/k</Location>\
             <Bucket>b</Bucket><Key>k</Key><ETag>\"abc-2\"</ETag></CompleteMultipartUploadResult>"
                .to_owned(),
        );
    }
    if method == Method::PUT {
        return (StatusCode::OK, [("etag", "\"e\"")]).into_response();
    }
    StatusCode::NOT_IMPLEMENTED.into_response()
}

fn one_part() -> Vec<CompletedPart> {
    vec![CompletedPart {
        part_number: 1,
        etag: "\"e1\"".into(),
        ..CompletedPart::default()
    }]
}

#[tokio::test]
async fn list_parts_follows_every_page_and_sorts() {
    let (store, log) = scripted().await;
    let parts = store.list_parts(KEY, "paged").await.unwrap();
    assert_eq!(parts.len(), PAGED_PARTS as usize);
    assert!(parts.iter().zip(1..).all(|(p, n)| p.part_number == n
        && p.size == u64::from(n)
        && p.etag == format!("\"e{n}\"")));
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(!log[0].contains("part-number-marker"), "{}", log[0]);
    assert!(log[0].contains("max-parts=1000"), "{}", log[0]);
    assert!(log[1].contains("part-number-marker=1000"), "{}", log[1]);
    assert!(log[2].contains("part-number-marker=2000"), "{}", log[2]);
}

#[tokio::test]
async fn list_parts_refuses_paging_that_does_not_advance() {
    let (store, log) = scripted().await;
    let err = store.list_parts(KEY, "stuck").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Unavailable {
                operation: "ListParts",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(log.lock().unwrap().len() <= 2);
}

#[tokio::test]
async fn s3_error_codes_map_to_ours() {
    let (store, _) = scripted().await;
    let err = store
        .complete(KEY, "missing", &one_part())
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::NoSuchUpload { upload_id } if upload_id == "missing"));
    let err = store
        .complete(KEY, "badpart", &one_part())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidPart { message } if message == "one or more of the specified parts could not be found"),
        "{err:?}"
    );
    let err = store.complete(KEY, "small", &one_part()).await.unwrap_err();
    assert!(matches!(err, StoreError::EntityTooSmall { .. }), "{err:?}");
    let err = store.abort(KEY, "denied").await.unwrap_err();
    let StoreError::Unavailable { operation, source } = err else {
        panic!("expected unavailable");
    };
    assert_eq!(operation, "AbortMultipartUpload");
    assert!(source.to_string().contains("AccessDenied"), "{source}");
    let err = store.list_parts(KEY, "missing").await.unwrap_err();
    assert!(matches!(err, StoreError::NoSuchUpload { .. }));
}

#[tokio::test]
async fn api_calls_send_no_default_checksums() {
    let (store, log) = scripted().await;
    store
        .client()
        .put_object()
        .bucket("b")
        .key(KEY)
        .body(b"payload".to_vec().into())
        .send()
        .await
        .unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 1);
    assert!(
        log[0].starts_with("PUT ") && log[0].ends_with(" []"),
        "{}",
        log[0]
    );
}

#[tokio::test]
async fn complete_reports_a_location_browsers_can_reach() {
    let (store, _) = scripted().await;
    let done = store.complete(KEY, "ok", &one_part()).await.unwrap();
    assert_eq!(done.etag, "\"abc-2\"");
    // The store's Location names its internal address; the public endpoint replaces it.
    assert_eq!(
        done.location,
        "https://files.example.net/b/uploads/0b6f4f0e-7a4c-4c59-9d0b-2f6f4a1d3c11/a.bin"
    );
}

#[tokio::test]
async fn store_failures_reach_the_client_as_json_with_details_hidden() {
    let (store, _) = scripted().await;
    let app = app(open_state(Arc::new(store), Settings::default()));
    let reply = get(
        &app,
        &format!(
            "/s3/multipart/{}?key={}",
            anon_upload_id("denied", KEY),
            enc(KEY)
        ),
    )
    .await;
    let message = reply.error(StatusCode::BAD_GATEWAY, ErrorCode::StoreUnavailable);
    assert!(!message.contains("AccessDenied"), "{message}");
    assert!(message.contains("ListParts"), "{message}");
    let body = serde_json::json!({"parts": [{"PartNumber": 1, "ETag": "\"e1\""}]}).to_string();
    post_json(
        &app,
        &format!(
            "/s3/multipart/{}/complete?key={}",
            anon_upload_id("small", KEY),
            enc(KEY)
        ),
        body,
    )
    .await
    .error(StatusCode::BAD_REQUEST, ErrorCode::EntityTooSmall);
}
