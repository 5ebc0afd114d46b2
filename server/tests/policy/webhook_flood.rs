//! Webhook mode cannot be used to flood the application, with the default settings: requests
//! with unknown credentials are limited per client address before the webhook is asked, denials
//! are kept for a few seconds, and the calls in flight are bounded (503 `busy` beyond).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::IntoResponse;
use s3_direct_protocol::ErrorCode;
use s3_direct_server::config::{
    DEFAULT_UNAUTHENTICATED_RATE_BURST, DEFAULT_UNAUTHENTICATED_RATE_PER_MINUTE,
};
use s3_direct_server::{AppState, FakeStore, Settings, WebhookAuth, app};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::as_cookie;
use crate::common::{Reply, send, test_secrets};

/// What the fake application saw.
#[derive(Debug, Default)]
struct Seen {
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

/// The application's webhook on a loopback port: `session=alice` is signed in, any other cookie
/// is not (401), and a create of `text/html` is refused (403). Each answer waits for a permit of
/// `gate` (then gives it back), so a test can hold answers.
async fn counting_webhook(gate: Arc<Semaphore>) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let router = Router::new()
        .route(
            "/may-upload",
            axum::routing::post(
                |State((seen, gate)): State<(Arc<Seen>, Arc<Semaphore>)>,
                 headers: HeaderMap,
                 axum::Json(q): axum::Json<Value>| async move {
                    seen.calls.fetch_add(1, Ordering::SeqCst);
                    let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    seen.most_in_flight.fetch_max(now, Ordering::SeqCst);
                    drop(gate.acquire().await.unwrap());
                    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
                    let cookie = headers.get("cookie").and_then(|v| v.to_str().ok());
                    if q["create"]["type"] == "text/html" {
                        return StatusCode::FORBIDDEN.into_response();
                    }
                    match cookie {
                        Some("session=alice") => axum::Json(json!({"id": "alice"})).into_response(),
                        _ => StatusCode::UNAUTHORIZED.into_response(),
                    }
                },
            ),
        )
        .with_state((seen.clone(), gate));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}/may-upload"), seen)
}

/// A webhook that answers at once.
async fn open_webhook() -> (String, Arc<Seen>) {
    counting_webhook(Arc::new(Semaphore::new(Semaphore::MAX_PERMITS))).await
}

/// A webhook-mode state with every default setting.
fn webhook_state(url: &str) -> AppState {
    AppState::with_auth(
        Arc::new(FakeStore::new()),
        Settings::default(),
        Arc::new(WebhookAuth::new(url, Duration::from_secs(30)).unwrap()),
        test_secrets(),
    )
}

const CREATE: &str = r#"{"filename":"a.bin"}"#;

#[tokio::test]
async fn unknown_cookies_from_one_address_cost_the_webhook_at_most_its_limit() {
    let (url, seen) = open_webhook().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(s3_direct_server::serve(
        listener,
        webhook_state(&url),
        std::future::pending(),
    ));
    let client = crate::common::http();
    let n = DEFAULT_UNAUTHENTICATED_RATE_BURST as usize + 60;
    let started = Instant::now();
    let mut statuses = Vec::new();
    for i in 0..n {
        let res = client
            .post(format!("http://{addr}/s3/multipart"))
            .header("content-type", "application/json")
            .header("cookie", format!("session=guess-{i}"))
            .body(CREATE)
            .send()
            .await
            .unwrap();
        let retry_after = res.headers().get("retry-after").cloned();
        statuses.push((res.status(), retry_after));
    }
    // The burst, plus what the per-minute rate refilled while the test ran.
    let refilled =
        started.elapsed().as_secs_f64() * f64::from(DEFAULT_UNAUTHENTICATED_RATE_PER_MINUTE) / 60.0;
    let bound = DEFAULT_UNAUTHENTICATED_RATE_BURST as usize + refilled.ceil() as usize;
    let calls = seen.calls.load(Ordering::SeqCst);
    assert!(
        calls <= bound && calls < n,
        "{calls} webhook calls for {n} unknown cookies (bound {bound})"
    );
    let refused = statuses
        .iter()
        .filter(|(s, _)| *s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(refused, calls, "each call answered 401");
    let limited: Vec<_> = statuses
        .iter()
        .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(refused + limited.len(), n, "{statuses:?}");
    assert!(limited.iter().all(|(_, r)| r.is_some()), "{limited:?}");
}

#[tokio::test]
async fn a_denied_cookie_is_asked_about_once_within_the_denial_window() {
    let (url, seen) = open_webhook().await;
    let app = app(webhook_state(&url));
    for _ in 0..10 {
        as_cookie(
            &app,
            Method::POST,
            "/s3/multipart",
            "session=mallory",
            CREATE,
        )
        .await
        .error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated);
    }
    assert_eq!(seen.calls.load(Ordering::SeqCst), 1);
    // A 401 is about the credentials: the other routes do not ask again either.
    as_cookie(
        &app,
        Method::GET,
        "/s3/multipart/x.y?key=k",
        "session=mallory",
        "",
    )
    .await
    .error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated);
    assert_eq!(seen.calls.load(Ordering::SeqCst), 1);

    // A 403 is about the call: the same refused create is asked once, another create again.
    let html = r#"{"filename":"a.html","type":"text/html"}"#;
    for _ in 0..5 {
        as_cookie(&app, Method::POST, "/s3/multipart", "session=alice", html)
            .await
            .error(StatusCode::FORBIDDEN, ErrorCode::Forbidden);
    }
    assert_eq!(seen.calls.load(Ordering::SeqCst), 2);
    as_cookie(&app, Method::POST, "/s3/multipart", "session=alice", CREATE)
        .await
        .ok::<Value>();
    assert_eq!(seen.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn webhook_calls_in_flight_are_bounded_and_the_rest_are_told_to_retry() {
    let gate = Arc::new(Semaphore::new(0));
    let (url, seen) = counting_webhook(gate.clone()).await;
    let app = app(webhook_state(&url));
    let bound = s3_direct_server::auth::DEFAULT_MAX_IN_FLIGHT as usize;
    let extra = 8;
    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel::<Reply>();
    for i in 0..bound + extra {
        let (app, done_tx) = (app.clone(), done_tx.clone());
        tokio::spawn(async move {
            let req = Request::builder()
                .method(Method::POST)
                .uri("/s3/multipart")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::COOKIE, format!("session=guess-{i}"))
                .body(Body::from(CREATE))
                .unwrap();
            let _ = done_tx.send(send(&app, req).await);
        });
    }
    // While the application holds its answers, only the requests beyond the bound finish: at
    // once, with 503 busy and a Retry-After.
    let deadline = Duration::from_secs(20);
    for _ in 0..extra {
        let r = tokio::time::timeout(deadline, done.recv())
            .await
            .expect("a request beyond the bound was kept waiting")
            .unwrap();
        let m = r.error(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Busy);
        assert!(m.contains("retry in"), "{m}");
        assert_eq!(r.headers[header::RETRY_AFTER], "1");
    }
    tokio::time::timeout(deadline, async {
        while seen.in_flight.load(Ordering::SeqCst) < bound {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the webhook never saw the bound's worth of calls");
    assert!(done.try_recv().is_err(), "a held request finished");
    gate.add_permits(Semaphore::MAX_PERMITS / 2);
    for _ in 0..bound {
        let r = tokio::time::timeout(deadline, done.recv())
            .await
            .unwrap()
            .unwrap();
        r.error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated);
    }
    assert_eq!(seen.most_in_flight.load(Ordering::SeqCst), bound);
    assert_eq!(seen.calls.load(Ordering::SeqCst), bound);
}

#[tokio::test]
async fn bad_bearer_tokens_are_limited_per_address_too() {
    let (app, store) = super::jwt_app();
    let burst = DEFAULT_UNAUTHENTICATED_RATE_BURST as usize;
    let started = Instant::now();
    let mut refused = 0;
    let limited = loop {
        let token = format!("bad-{refused}");
        let r = super::call(&app, Method::POST, "/s3/multipart", Some(&token), CREATE).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            break r;
        }
        r.error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated);
        refused += 1;
        assert!(refused <= 10 * burst, "no 429 after {refused} bad tokens");
    };
    // The burst, plus what the per-minute rate refilled meanwhile (a loaded machine is slow).
    let refilled =
        started.elapsed().as_secs_f64() * f64::from(DEFAULT_UNAUTHENTICATED_RATE_PER_MINUTE) / 60.0;
    assert!(
        refused >= burst && refused <= burst + refilled.ceil() as usize,
        "{refused} bad tokens answered 401 before the first 429"
    );
    limited.error(StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited);
    assert!(limited.headers.contains_key(header::RETRY_AFTER));
    // A valid token is the caller's own budget, not the address's.
    let alice = super::jwt("alice", json!({}));
    super::call(&app, Method::POST, "/s3/multipart", Some(&alice), CREATE)
        .await
        .ok::<Value>();
    assert_eq!(store.calls().len(), 1);
}
