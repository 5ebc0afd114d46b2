//! File types are parsed as RFC 9110 media types before any allow-list or webhook sees them: a
//! list such as `image/png,text/html` (which browsers read as its last type) cannot slip an
//! HTML page into an "images only" bucket, on the create route, the small-file route, with the
//! server's `--content-type` and a token's `content_types`, and is never sent to a webhook.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::wire::{CreateMultipartResponse, SinglePutParams};
use s3_direct_server::store::FakeCall;
use s3_direct_server::{AppState, FakeStore, Settings, app};
use serde_json::{Value, json};

use super::{as_cookie, call, create_as, jwt, jwt_app_with};
use crate::common::{enc, test_secrets};

/// Every spelling of "more than one type" or "not quite a type" that must be refused.
const NOT_ONE_TYPE: &[&str] = &[
    "image/png,text/html",
    "image/png, text/html",
    "image/png;x=,text/html",
    "image/png;x=\"a,text/html\"",
    "image/png;x=",
    "image/png;x=a;x=b",
    "image/",
    "image/png text/html",
    "image/*",
];

/// What the store was asked to create or sign, as content types.
fn stored_types(store: &FakeStore) -> Vec<String> {
    store
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            FakeCall::CreateMultipart(up) => Some(up.content_type),
            FakeCall::PresignPut { content_type, .. } => Some(content_type),
            FakeCall::PresignPost { signing, .. } => Some(signing.content_type),
            _ => None,
        })
        .collect()
}

async fn params(app: &Router, token: &str, ty: &str) -> super::Reply {
    let uri = format!("/s3/params?filename=a.png&type={}&size=10", enc(ty));
    call(app, Method::GET, &uri, Some(token), "").await
}

#[tokio::test]
async fn a_list_of_types_is_refused_before_the_allow_lists_on_every_route() {
    let (app, store) = jwt_app_with(Settings {
        content_types: Some(vec!["image/*".into()]),
        ..Settings::default()
    });
    let token = jwt("alice", json!({"content_types": ["image/png"]}));
    for ty in NOT_ONE_TYPE {
        let m = create_as(&app, &token, json!({"filename": "a.png", "type": ty}))
            .await
            .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidContentType);
        assert!(m.contains("media type"), "{ty}: {m}");
        params(&app, &token, ty)
            .await
            .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidContentType);
    }
    assert!(stored_types(&store).is_empty(), "{:?}", store.calls());
    // One type, in any case and spacing, is allowed and stored normalised.
    let up: CreateMultipartResponse = create_as(
        &app,
        &token,
        json!({"filename": "a.png", "type": " Image/PNG ; X=\"1\""}),
    )
    .await
    .ok();
    assert!(up.key.ends_with("a.png"));
    let p: SinglePutParams = params(&app, &token, "IMAGE/png").await.ok();
    assert_eq!(p.method, "PUT");
    assert_eq!(stored_types(&store), ["image/png;x=1", "image/png"]);
}

#[tokio::test]
async fn without_any_allow_list_a_list_of_types_is_still_refused() {
    let (app, store) = jwt_app_with(Settings::default());
    let token = jwt("bob", json!({}));
    for ty in NOT_ONE_TYPE {
        create_as(&app, &token, json!({"filename": "a.png", "type": ty}))
            .await
            .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidContentType);
    }
    // The POST form (Uppy's small files) is signed for the normalised type too.
    let uri = format!(
        "/s3/params?filename=a.txt&type={}",
        enc("Text/Plain; Charset=utf-8")
    );
    let p: SinglePutParams = call(&app, Method::GET, &uri, Some(&token), "").await.ok();
    assert_eq!(p.method, "POST");
    assert_eq!(stored_types(&store), ["text/plain;charset=utf-8"]);
}

/// A webhook that records the `create.type` of every call and allows everything.
async fn recording_webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let router = Router::new().route(
        "/may-upload",
        axum::routing::post(move |axum::Json(q): axum::Json<Value>| {
            let record = record.clone();
            async move {
                record.lock().unwrap().push(q["create"]["type"].clone());
                axum::Json(json!({"id": "carol"}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}/may-upload"), seen)
}

#[tokio::test]
async fn a_webhook_sees_only_one_normalised_type() {
    let (url, seen) = recording_webhook().await;
    let store = Arc::new(FakeStore::new());
    let app = app(AppState::with_auth(
        store.clone(),
        Settings::default(),
        Arc::new(s3_direct_server::WebhookAuth::new(&url, Duration::from_secs(60)).unwrap()),
        test_secrets(),
    ));
    for ty in NOT_ONE_TYPE {
        let body = json!({"filename": "a.png", "type": ty}).to_string();
        as_cookie(&app, Method::POST, "/s3/multipart", "session=c", &body)
            .await
            .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidContentType);
        let uri = format!("/s3/params?filename=a.png&type={}", enc(ty));
        as_cookie(&app, Method::GET, &uri, "session=c", "")
            .await
            .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidContentType);
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
    let body = json!({"filename": "a.png", "type": "Image/PNG;X=1"}).to_string();
    as_cookie(&app, Method::POST, "/s3/multipart", "session=c", &body)
        .await
        .ok::<CreateMultipartResponse>();
    let uri = format!("/s3/params?filename=a.png&type={}", enc("Image/PNG"));
    as_cookie(&app, Method::GET, &uri, "session=c", "")
        .await
        .ok::<SinglePutParams>();
    assert_eq!(
        *seen.lock().unwrap(),
        [json!("image/png;x=1"), json!("image/png")]
    );
}
