//! Operating the server: `/metrics` counts what the routes did, `/readyz` asks the store,
//! every response carries `x-request-id` and every log line of a request names it.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use s3_direct_protocol::wire::CreateMultipartResponse;
use s3_direct_server::StoreError;
use serde_json::{Value, json};

use crate::common::{delete, enc, fake_app, get, post_json, send, store_id};

const ETAG: &str = "\"0123456789abcdef0123456789abcdef\"";

/// The value of the sample line starting with `name` (labels included) in a text exposition.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

async fn metrics(app: &axum::Router) -> String {
    let r = get(app, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .contains("text"),
    );
    String::from_utf8(r.body.to_vec()).unwrap()
}

#[tokio::test]
async fn metrics_count_creates_signs_completes_aborts_and_bytes() {
    let (app, store) = fake_app();
    let m = metrics(&app).await;
    assert_eq!(sample(&m, "s3direct_uploads_created_total"), 0.0);

    let created: CreateMultipartResponse = post_json(
        &app,
        "/s3/multipart",
        json!({"filename": "a.bin", "size": 123}).to_string(),
    )
    .await
    .ok();
    let (key, upload_id) = (created.key, created.upload_id);
    let r = get(
        &app,
        &format!("/s3/multipart/{upload_id}/1?key={}", enc(&key)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // A batch counts each of its URLs (this upload has one part).
    let r = get(
        &app,
        &format!(
            "/s3/multipart/{upload_id}/batch?key={}&partNumbers=1",
            enc(&key)
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    store.put_part(store_id(&upload_id), 1, ETAG, 123);
    let body = json!({"parts": [{"PartNumber": 1, "ETag": ETAG}]});
    let r = post_json(
        &app,
        &format!("/s3/multipart/{upload_id}/complete?key={}", enc(&key)),
        body.to_string(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    let created: CreateMultipartResponse =
        post_json(&app, "/s3/multipart", r#"{"filename":"b.bin"}"#)
            .await
            .ok();
    let r = delete(
        &app,
        &format!(
            "/s3/multipart/{}?key={}",
            created.upload_id,
            enc(&created.key)
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    let m = metrics(&app).await;
    assert_eq!(sample(&m, "s3direct_uploads_created_total"), 2.0);
    assert_eq!(sample(&m, "s3direct_parts_signed_total"), 2.0);
    assert_eq!(sample(&m, "s3direct_uploads_completed_total"), 1.0);
    assert_eq!(sample(&m, "s3direct_uploads_aborted_total"), 1.0);
    assert_eq!(sample(&m, "s3direct_bytes_completed_total"), 123.0);
    assert_eq!(sample(&m, "s3direct_signing_duration_seconds_count"), 2.0);
    assert_eq!(
        sample(
            &m,
            "s3direct_store_call_duration_seconds_count{operation=\"create_multipart\"}"
        ),
        2.0
    );
    assert!(!m.contains("s3direct_store_errors_total{"), "{m}");
}

#[tokio::test]
async fn metrics_count_store_errors_by_operation() {
    let (app, store) = fake_app();
    store.fail_next(StoreError::unavailable("CreateMultipartUpload", "down"));
    let r = post_json(&app, "/s3/multipart", r#"{"filename":"a.bin"}"#).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    let m = metrics(&app).await;
    assert_eq!(
        sample(
            &m,
            "s3direct_store_errors_total{operation=\"create_multipart\"}"
        ),
        1.0
    );
    assert_eq!(sample(&m, "s3direct_uploads_created_total"), 0.0);
}

#[tokio::test]
async fn readyz_pings_the_store() {
    let (app, store) = fake_app();
    let v: Value = get(&app, "/readyz").await.ok();
    assert_eq!(v, json!({"status": "ready"}));

    store.fail_next(StoreError::unavailable("HeadBucket", "connection refused"));
    let r = get(&app, "/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = r.json();
    assert_eq!(v["error"], "store_unavailable");
    assert!(v["message"].as_str().unwrap().contains("HeadBucket"), "{v}");
    let m = metrics(&app).await;
    assert_eq!(
        sample(&m, "s3direct_store_errors_total{operation=\"ping\"}"),
        1.0
    );
}

#[tokio::test]
async fn responses_echo_a_given_request_id_or_carry_a_generated_one() {
    let (app, _) = fake_app();
    let req = Request::get("/healthz")
        .header("x-request-id", "given-id-42")
        .body(Body::empty())
        .unwrap();
    let r = send(&app, req).await;
    assert_eq!(r.headers["x-request-id"], "given-id-42");

    let r = get(&app, "/s3/no-such-route").await;
    let id = r.headers["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The log of this test binary, captured by a global subscriber installed on first use.
///
/// Global, not a per-test `set_default`: tracing caches per-callsite interest, and tests on other
/// threads without a subscriber can race that cache and drop the span from a thread-local
/// subscriber's lines. Lines are told apart by their unique request ids.
fn captured_logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test installs a global subscriber");
        logs
    })
}

#[tokio::test]
async fn log_lines_inside_a_handler_carry_the_request_id() {
    let logs = captured_logs();
    let (app, _) = fake_app();
    let created: CreateMultipartResponse =
        post_json(&app, "/s3/multipart", r#"{"filename":"a.bin"}"#)
            .await
            .ok();
    let request_id = format!("abort-{}", uuid::Uuid::new_v4());
    let req = Request::delete(format!(
        "/s3/multipart/{}?key={}",
        created.upload_id,
        enc(&created.key)
    ))
    .header("x-request-id", &request_id)
    .body(Body::empty())
    .unwrap();
    let r = send(&app, req).await;
    assert_eq!(r.status, StatusCode::OK);

    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("upload aborted") && l.contains(&created.key))
        .unwrap_or_else(|| panic!("no abort log line for {} in:\n{text}", created.key));
    assert!(line.contains(&format!("request_id={request_id}")), "{line}");
}

#[tokio::test]
async fn readyz_sends_head_bucket_to_a_real_store() {
    let e = crate::common::Embedded::start().await;
    let v: Value = get(&e.app, "/readyz").await.ok();
    assert_eq!(v, json!({"status": "ready"}));

    // The same store, but a bucket it does not have: not ready.
    let missing = e.store.s3_store("no-such-bucket", "us-east-1", None);
    let state =
        s3_direct_server::AppState::new(Arc::new(missing), s3_direct_server::Settings::default());
    let app = s3_direct_server::app(state);
    let r = get(&app, "/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = r.json();
    assert_eq!(v["error"], "store_unavailable");
}
