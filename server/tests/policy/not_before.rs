//! A bearer token's `nbf` (not before) claim is honoured, with the leeway `exp` has.

use axum::http::{Method, StatusCode, header};
use s3_direct_protocol::ErrorCode;
use s3_direct_server::auth::JWT_LEEWAY_SECS;
use serde_json::{Value, json};

use super::{call, jwt, jwt_app, now};

#[tokio::test]
async fn a_token_used_before_its_nbf_is_refused_and_nothing_is_created() {
    let (app, store) = jwt_app();
    let body = r#"{"filename":"a.bin"}"#;
    let early = jwt("alice", json!({"nbf": now() + 600}));
    let r = call(&app, Method::POST, "/s3/multipart", Some(&early), body).await;
    let m = r.error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated);
    assert!(m.contains("not valid yet") && m.contains("nbf"), "{m}");
    assert!(!m.contains(&early), "{m}");
    assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
    assert!(store.calls().is_empty(), "{:?}", store.calls());
}

#[tokio::test]
async fn nbf_has_the_same_leeway_as_exp() {
    let (app, _) = jwt_app();
    let body = r#"{"filename":"a.bin"}"#;
    // Minted by a clock a little ahead of ours: within the leeway.
    let slightly_early = jwt("alice", json!({"nbf": now() + JWT_LEEWAY_SECS / 2}));
    call(
        &app,
        Method::POST,
        "/s3/multipart",
        Some(&slightly_early),
        body,
    )
    .await
    .ok::<Value>();
    let past = jwt("alice", json!({"nbf": now() - 60}));
    call(&app, Method::POST, "/s3/multipart", Some(&past), body)
        .await
        .ok::<Value>();
    // Just past the leeway.
    let beyond = jwt("alice", json!({"nbf": now() + JWT_LEEWAY_SECS + 60}));
    call(&app, Method::POST, "/s3/multipart", Some(&beyond), body)
        .await
        .error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated);
    // A malformed nbf is refused, not ignored.
    let text = jwt("alice", json!({"nbf": "tomorrow"}));
    let m = call(&app, Method::POST, "/s3/multipart", Some(&text), body)
        .await
        .error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated);
    assert!(m.contains("nbf"), "{m}");
}
