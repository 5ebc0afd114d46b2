//! Every policy decision through the router: JWT principals, upload ownership, forged, expired
//! and replayed upload tokens, key prefixes, size and content-type limits, plan-bound part
//! signing, the rate limit and CORS. Refused requests must not reach the store.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use jsonwebtoken::{EncodingKey, Header, encode};
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::limits::MIB;
use s3_direct_protocol::wire::{
    CompleteResponse, CreateMultipartResponse, SignBatchResponse, SignPartResponse, SinglePutParams,
};
use s3_direct_server::store::{FakeCall, PartSigning};
use s3_direct_server::token::{UploadClaims, principal_digest};
use s3_direct_server::{AppState, ChecksumSetting, FakeStore, JwtAuth, Settings, app};
use serde_json::{Value, json};

use crate::common::{Reply, enc, send, store_id, test_secrets};

mod content_types;
mod hosts;
mod not_before;
mod webhook_flood;

const JWT_SECRET: &[u8] = b"jwt-secret-jwt-secret-jwt-secret!";
const ETAG: &str = "\"0123456789abcdef0123456789abcdef\"";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// A bearer token for `sub` with extra claims.
fn jwt(sub: &str, extra: Value) -> String {
    let mut claims = json!({"sub": sub, "exp": now() + 600});
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(JWT_SECRET),
    )
    .unwrap()
}

fn jwt_app_with(settings: Settings) -> (Router, Arc<FakeStore>) {
    let store = Arc::new(FakeStore::new());
    let state = AppState::with_auth(
        store.clone(),
        settings,
        Arc::new(JwtAuth::hs256(JWT_SECRET).unwrap()),
        test_secrets(),
    );
    (app(state), store)
}

fn jwt_app() -> (Router, Arc<FakeStore>) {
    jwt_app_with(Settings::default())
}

async fn call(app: &Router, method: Method, uri: &str, token: Option<&str>, body: &str) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if !body.is_empty() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    send(app, req.body(Body::from(body.to_owned())).unwrap()).await
}

async fn create_as(app: &Router, token: &str, body: Value) -> Reply {
    call(
        app,
        Method::POST,
        "/s3/multipart",
        Some(token),
        &body.to_string(),
    )
    .await
}

async fn created(app: &Router, token: &str, body: Value) -> CreateMultipartResponse {
    create_as(app, token, body).await.ok()
}

/// The four calls on an existing upload, as `token`.
/// Completes `up` as `token` with parts `1..=parts`, every one with [`ETAG`].
async fn complete_as(app: &Router, token: &str, up: &CreateMultipartResponse, parts: u32) -> Reply {
    let parts: Vec<Value> = (1..=parts)
        .map(|n| json!({"PartNumber": n, "ETag": ETAG}))
        .collect();
    let uri = format!(
        "/s3/multipart/{}/complete?key={}",
        up.upload_id,
        enc(&up.key)
    );
    call(
        app,
        Method::POST,
        &uri,
        Some(token),
        &json!({ "parts": parts }).to_string(),
    )
    .await
}

async fn every_upload_call(app: &Router, token: &str, upload_id: &str, key: &str) -> Vec<Reply> {
    let k = enc(key);
    let parts = json!({"parts": [{"PartNumber": 1, "ETag": ETAG}]}).to_string();
    vec![
        call(
            app,
            Method::GET,
            &format!("/s3/multipart/{upload_id}/1?key={k}"),
            Some(token),
            "",
        )
        .await,
        call(
            app,
            Method::GET,
            &format!("/s3/multipart/{upload_id}/batch?key={k}&partNumbers=1"),
            Some(token),
            "",
        )
        .await,
        call(
            app,
            Method::GET,
            &format!("/s3/multipart/{upload_id}?key={k}"),
            Some(token),
            "",
        )
        .await,
        call(
            app,
            Method::POST,
            &format!("/s3/multipart/{upload_id}/complete?key={k}"),
            Some(token),
            &parts,
        )
        .await,
        call(
            app,
            Method::DELETE,
            &format!("/s3/multipart/{upload_id}?key={k}"),
            Some(token),
            "",
        )
        .await,
    ]
}

/// Store calls other than the create(s).
fn calls_after_create(store: &FakeStore) -> Vec<FakeCall> {
    store
        .calls()
        .into_iter()
        .filter(|c| !matches!(c, FakeCall::CreateMultipart(_)))
        .collect()
}

#[tokio::test]
async fn without_a_valid_bearer_token_nothing_happens() {
    let (app, store) = jwt_app();
    let body = r#"{"filename":"a.bin"}"#;
    let r = call(&app, Method::POST, "/s3/multipart", None, body).await;
    let m = r.error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated);
    assert!(m.contains("Authorization"), "{m}");
    assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");

    let expired = encode(
        &Header::default(),
        &json!({"sub": "alice", "exp": now() - 600}),
        &EncodingKey::from_secret(JWT_SECRET),
    )
    .unwrap();
    let r = call(&app, Method::POST, "/s3/multipart", Some(&expired), body).await;
    let m = r.error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated);
    assert!(m.contains("expired") && !m.contains(&expired), "{m}");

    let forged = encode(
        &Header::default(),
        &json!({"sub": "alice", "exp": now() + 600}),
        &EncodingKey::from_secret(b"not-the-secret-not-the-secret-xx"),
    )
    .unwrap();
    call(&app, Method::POST, "/s3/multipart", Some(&forged), body)
        .await
        .error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated);
    assert!(store.calls().is_empty());
}

#[tokio::test]
async fn principal_b_cannot_sign_list_complete_or_abort_principal_a_upload() {
    let (app, store) = jwt_app();
    let alice = jwt("alice", json!({}));
    let bob = jwt("bob", json!({}));
    let up = created(&app, &alice, json!({"filename": "a.bin"})).await;
    for r in every_upload_call(&app, &bob, &up.upload_id, &up.key).await {
        let m = r.error(StatusCode::FORBIDDEN, ErrorCode::Forbidden);
        assert!(m.contains("another principal"), "{m}");
    }
    assert!(calls_after_create(&store).is_empty(), "{:?}", store.calls());
    // Alice herself can.
    let signed: SignPartResponse = call(
        &app,
        Method::GET,
        &format!("/s3/multipart/{}/1?key={}", up.upload_id, enc(&up.key)),
        Some(&alice),
        "",
    )
    .await
    .ok();
    assert!(signed.url.contains("partNumber=1"));
}

#[tokio::test]
async fn forged_expired_and_replayed_upload_tokens_are_refused() {
    let (app, store) = jwt_app();
    let alice = jwt("alice", json!({}));
    let one = created(&app, &alice, json!({"filename": "one.bin"})).await;
    let two = created(&app, &alice, json!({"filename": "two.bin"})).await;
    let (id1, id2) = (store_id(&one.upload_id), store_id(&two.upload_id));
    let token1 = one.upload_id.rsplit_once('.').unwrap().1;

    // Upload one's token on upload two's id (same key or the other key), and on a made-up id.
    let replayed = [
        (format!("{id2}.{token1}"), two.key.clone()),
        (format!("{id2}.{token1}"), one.key.clone()),
        (format!("made-up.{token1}"), one.key.clone()),
    ];
    // Another secret's token, for a valid id and key.
    let claims = UploadClaims {
        principal: principal_digest("alice"),
        expires_at: now() + 600,
        size: None,
        part_size: None,
        max_size: None,
        checksum: None,
    };
    let other = s3_direct_server::UploadSecrets::new(&[9; 32], None).unwrap();
    let forged = format!("{id1}.{}", other.seal(id1, &one.key, &claims));
    // An expired token made with the right secret.
    let expired_claims = UploadClaims {
        expires_at: now() - 1,
        ..claims
    };
    let expired = format!(
        "{id1}.{}",
        test_secrets().seal(id1, &one.key, &expired_claims)
    );
    let cases = replayed.into_iter().chain([
        (forged, one.key.clone()),
        (expired.clone(), one.key.clone()),
        (format!("{id1}.garbage"), one.key.clone()),
        (id1.to_owned(), one.key.clone()),
    ]);
    for (upload_id, key) in cases {
        for r in every_upload_call(&app, &alice, &upload_id, &key).await {
            r.error(StatusCode::FORBIDDEN, ErrorCode::InvalidUploadToken);
        }
    }
    let r = call(
        &app,
        Method::DELETE,
        &format!("/s3/multipart/{expired}?key={}", enc(&one.key)),
        Some(&alice),
        "",
    )
    .await;
    let m = r.error(StatusCode::FORBIDDEN, ErrorCode::InvalidUploadToken);
    assert!(m.contains("expired"), "{m}");
    assert!(calls_after_create(&store).is_empty(), "{:?}", store.calls());
}

#[tokio::test]
async fn keys_follow_the_principal_prefix_and_others_are_refused() {
    let (app, store) = jwt_app();
    let alice = jwt("alice", json!({"key_prefix": "users/alice/"}));
    let up = created(&app, &alice, json!({"filename": "x.bin"})).await;
    assert!(up.key.starts_with("uploads/users/alice/"), "{}", up.key);
    assert_eq!(up.key.matches('/').count(), 4, "{}", up.key);

    // A key of the right shape under another user's prefix, with alice's own upload id.
    let outside = up.key.replace("/alice/", "/bob/");
    for r in every_upload_call(&app, &alice, &up.upload_id, &outside).await {
        let m = r.error(StatusCode::FORBIDDEN, ErrorCode::Forbidden);
        assert!(m.contains("outside the prefix"), "{m}");
    }
    // Directly under the server prefix, outside hers.
    let top = format!(
        "uploads/{}",
        up.key.strip_prefix("uploads/users/alice/").unwrap()
    );
    for r in every_upload_call(&app, &alice, &up.upload_id, &top).await {
        r.error(StatusCode::FORBIDDEN, ErrorCode::Forbidden);
    }
    assert!(calls_after_create(&store).is_empty());
}

#[tokio::test]
async fn sizes_over_the_limit_and_types_not_allowed_create_nothing() {
    let (app, store) = jwt_app_with(Settings {
        content_types: Some(vec!["video/*".into(), "image/png".into()]),
        ..Settings::default()
    });
    let alice = jwt(
        "alice",
        json!({"max_size": 100 * MIB, "content_types": ["video/mp4"]}),
    );
    let m = create_as(
        &app,
        &alice,
        json!({"filename": "a.mp4", "type": "video/mp4", "size": 100 * MIB + 1}),
    )
    .await
    .error(StatusCode::FORBIDDEN, ErrorCode::Forbidden);
    assert!(m.contains("104857601") && m.contains("limit"), "{m}");
    // Allowed by the server but not by the token.
    let m = create_as(
        &app,
        &alice,
        json!({"filename": "a.webm", "type": "video/webm"}),
    )
    .await
    .error(StatusCode::FORBIDDEN, ErrorCode::ContentTypeNotAllowed);
    assert!(m.contains("video/mp4"), "{m}");
    // Allowed by neither; and the single-PUT route applies the same rules.
    let open = jwt("bob", json!({}));
    create_as(
        &app,
        &open,
        json!({"filename": "a.html", "type": "text/html"}),
    )
    .await
    .error(StatusCode::FORBIDDEN, ErrorCode::ContentTypeNotAllowed);
    call(
        &app,
        Method::GET,
        "/s3/params?filename=a.html&type=text%2Fhtml",
        Some(&open),
        "",
    )
    .await
    .error(StatusCode::FORBIDDEN, ErrorCode::ContentTypeNotAllowed);
    // A PUT URL without a length could carry any size.
    call(
        &app,
        Method::GET,
        "/s3/params?filename=a.mp4&type=video%2Fmp4&method=PUT",
        Some(&alice),
        "",
    )
    .await
    .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidSize);
    call(
        &app,
        Method::GET,
        &format!(
            "/s3/params?filename=a.mp4&type=video%2Fmp4&size={}",
            100 * MIB + 1
        ),
        Some(&alice),
        "",
    )
    .await
    .error(StatusCode::FORBIDDEN, ErrorCode::Forbidden);
    assert!(store.calls().is_empty(), "{:?}", store.calls());

    // Within the limits: created, and a single PUT signs its exact length.
    created(
        &app,
        &alice,
        json!({"filename": "a.mp4", "type": "video/mp4", "size": 100 * MIB}),
    )
    .await;
    let params: SinglePutParams = call(
        &app,
        Method::GET,
        "/s3/params?filename=a.mp4&type=video%2Fmp4&size=1000",
        Some(&alice),
        "",
    )
    .await
    .ok();
    assert_eq!(params.headers["content-length"], "1000");

    // Without a size (Uppy's way), a POST form whose policy holds the file to the limit.
    let params: SinglePutParams = call(
        &app,
        Method::GET,
        "/s3/params?filename=a.mp4&type=video%2Fmp4",
        Some(&alice),
        "",
    )
    .await
    .ok();
    assert_eq!(params.method, "POST");
    match store.calls().last() {
        Some(FakeCall::PresignPost { signing, .. }) => {
            assert_eq!(signing.size, 0..=100 * MIB);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_declared_plan_fixes_part_lengths_and_bounds_part_numbers() {
    let (app, store) = jwt_app();
    let alice = jwt("alice", json!({}));
    let up = created(
        &app,
        &alice,
        json!({"filename": "a.bin", "size": 11 * MIB, "partSize": 5 * MIB}),
    )
    .await;
    assert_eq!(up.part_size, Some(5 * MIB));
    let (id, k) = (&up.upload_id, enc(&up.key));
    let batch: SignBatchResponse = call(
        &app,
        Method::GET,
        &format!("/s3/multipart/{id}/batch?key={k}&partNumbers=1,2,3"),
        Some(&alice),
        "",
    )
    .await
    .ok();
    // The lengths differ, so each part carries its own.
    assert!(batch.headers.is_empty(), "{:?}", batch.headers);
    assert_eq!(
        batch.part_headers[&1]["content-length"],
        (5 * MIB).to_string()
    );
    assert_eq!(batch.part_headers[&3]["content-length"], MIB.to_string());
    let signed: Vec<Option<u64>> = store
        .calls()
        .iter()
        .filter_map(|c| match c {
            FakeCall::PresignPart { signing, .. } => Some(signing.content_length),
            _ => None,
        })
        .collect();
    assert_eq!(signed, [Some(5 * MIB), Some(5 * MIB), Some(MIB)]);

    let before = store.calls().len();
    let m = call(
        &app,
        Method::GET,
        &format!("/s3/multipart/{id}/4?key={k}"),
        Some(&alice),
        "",
    )
    .await
    .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPartNumber);
    assert!(m.contains("beyond this upload's plan of 3 parts"), "{m}");
    call(
        &app,
        Method::GET,
        &format!("/s3/multipart/{id}/batch?key={k}&partNumbers=2,9"),
        Some(&alice),
        "",
    )
    .await
    .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPartNumber);
    // Completing with fewer parts than the plan.
    let two = json!({"parts": [{"PartNumber": 1, "ETag": ETAG}, {"PartNumber": 2, "ETag": ETAG}]});
    call(
        &app,
        Method::POST,
        &format!("/s3/multipart/{id}/complete?key={k}"),
        Some(&alice),
        &two.to_string(),
    )
    .await
    .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPartList);
    assert_eq!(store.calls().len(), before);

    // A part size S3 would refuse, with a size or without (a stream).
    create_as(&app, &alice, json!({"filename": "a", "partSize": MIB}))
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidSize);
    create_as(
        &app,
        &alice,
        json!({"filename": "a", "size": 10, "partSize": MIB}),
    )
    .await
    .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidSize);
}

#[tokio::test]
async fn completion_aborts_an_upload_whose_parts_break_the_plan() {
    let (app, store) = jwt_app();
    let alice = jwt("alice", json!({}));
    let up = created(
        &app,
        &alice,
        json!({"filename": "a.bin", "size": 11 * MIB, "partSize": 5 * MIB}),
    )
    .await;
    let sid = store_id(&up.upload_id);
    // Parts of the wrong sizes (a store that does not enforce the signed length).
    store.put_part(sid, 1, ETAG, 6 * MIB);
    store.put_part(sid, 2, ETAG, 4 * MIB);
    store.put_part(sid, 3, ETAG, MIB);
    let m = complete_as(&app, &alice, &up, 3)
        .await
        .error(StatusCode::CONFLICT, ErrorCode::PlanViolated);
    assert!(
        m.contains("part 1 holds 6291456 bytes") && m.contains("aborted"),
        "{m}"
    );
    assert!(store.open_uploads().is_empty());
    assert!(
        !store
            .calls()
            .iter()
            .any(|c| matches!(c, FakeCall::Complete { .. })),
        "{:?}",
        store.calls()
    );
}

#[tokio::test]
async fn the_jwt_size_limit_is_checked_at_completion_when_no_size_was_declared() {
    let (app, store) = jwt_app();
    let alice = jwt("alice", json!({"max_size": 10 * MIB}));
    let up = created(&app, &alice, json!({"filename": "a.bin"})).await;
    let sid = store_id(&up.upload_id);
    // Parts beyond what 10 MiB can need are not even signed.
    call(
        &app,
        Method::GET,
        &format!("/s3/multipart/{}/3?key={}", up.upload_id, enc(&up.key)),
        Some(&alice),
        "",
    )
    .await
    .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPartNumber);
    store.put_part(sid, 1, ETAG, 6 * MIB);
    store.put_part(sid, 2, ETAG, 6 * MIB);
    let m = complete_as(&app, &alice, &up, 2)
        .await
        .error(StatusCode::CONFLICT, ErrorCode::PlanViolated);
    assert!(m.contains("limit of 10485760"), "{m}");
    assert!(store.open_uploads().is_empty());
}

/// A single PUT's answer names the checksum the server wants, as the create answer does, so that
/// a client that sent none can hash the file and ask again; with `--checksum off` it names none.
#[tokio::test]
async fn single_put_params_name_the_checksum_the_server_wants() {
    let alice = jwt("alice", json!({}));
    for (wanted, named) in [
        (
            ChecksumSetting::Use(s3_direct_protocol::wire::ChecksumAlgorithm::Sha256),
            Some("sha256"),
        ),
        (ChecksumSetting::Off, None),
    ] {
        let (app, _store) = jwt_app_with(Settings {
            checksum: wanted,
            ..Settings::default()
        });
        let raw: Value = call(
            &app,
            Method::GET,
            "/s3/params?filename=a.txt&size=8",
            Some(&alice),
            "",
        )
        .await
        .ok();
        assert_eq!(raw.get("checksum").and_then(Value::as_str), named, "{raw}");
        assert!(raw["url"].as_str().is_some_and(|u| !u.is_empty()), "{raw}");
    }
}

#[tokio::test]
async fn checksums_are_signed_per_part_and_passed_on_at_completion() {
    let (app, store) = jwt_app_with(Settings {
        checksum: ChecksumSetting::Use(s3_direct_protocol::wire::ChecksumAlgorithm::Crc32c),
        ..Settings::default()
    });
    let alice = jwt("alice", json!({}));
    let raw: Value = create_as(
        &app,
        &alice,
        json!({"filename": "a.bin", "presignParts": 4, "checksum": "auto"}),
    )
    .await
    .json();
    assert_eq!(raw["checksum"], "crc32c");
    assert!(
        raw.get("presigned").is_none(),
        "no URL is signed before its part's checksum is known: {raw}"
    );
    // The client follows the server: the upload is created for CRC32C part checksums.
    let Some(FakeCall::CreateMultipart(created)) = store.calls().last().cloned() else {
        panic!("expected a create call");
    };
    assert_eq!(
        created.checksum,
        Some(s3_direct_protocol::wire::ChecksumAlgorithm::Crc32c)
    );
    let up: CreateMultipartResponse = serde_json::from_value(raw).unwrap();
    let (id, k) = (&up.upload_id, enc(&up.key));
    let one: SignPartResponse = call(
        &app,
        Method::GET,
        &format!("/s3/multipart/{id}/1?key={k}&checksum=crc32c%3AyZRlqg%3D%3D"),
        Some(&alice),
        "",
    )
    .await
    .ok();
    assert_eq!(one.headers["x-amz-checksum-crc32c"], "yZRlqg==");
    let batch: SignBatchResponse = call(
        &app,
        Method::GET,
        &format!(
            "/s3/multipart/{id}/batch?key={k}&partNumbers=1,2&checksums={}",
            enc("1:crc32c:AAAAAA==,2:crc32c:AAAAAQ==")
        ),
        Some(&alice),
        "",
    )
    .await
    .ok();
    assert!(batch.headers.is_empty(), "{:?}", batch.headers);
    assert_eq!(batch.part_headers[&1]["x-amz-checksum-crc32c"], "AAAAAA==");
    assert_eq!(batch.part_headers[&2]["x-amz-checksum-crc32c"], "AAAAAQ==");
    let signing: Vec<PartSigning> = store
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            FakeCall::PresignPart { signing, .. } => Some(signing),
            _ => None,
        })
        .collect();
    assert_eq!(signing.len(), 3);
    // Malformed checksums, and parts without the upload's algorithm, which the store would
    // refuse ("checksum type mismatch"): nothing is signed.
    let one = |query: &str| format!("/s3/multipart/{id}/1?key={k}{query}");
    let batch = |numbers: &str, checksums: &str| {
        format!(
            "/s3/multipart/{id}/batch?key={k}&partNumbers={numbers}&checksums={}",
            enc(checksums)
        )
    };
    let refused = [
        (one("&checksum=crc32c%3Anope"), ErrorCode::InvalidRequest),
        (
            one("&checksum=crc64%3AAAAAAA%3D%3D"),
            ErrorCode::InvalidRequest,
        ),
        (one("&checksum=crc32c"), ErrorCode::InvalidRequest),
        (
            one("&checksum=md5%3A1B2M2Y8AsgTpgAmY7PhCfg%3D%3D"),
            ErrorCode::InvalidRequest,
        ),
        (one(""), ErrorCode::InvalidRequest),
        (batch("1,2", "1:crc32c:AAAAAA=="), ErrorCode::InvalidRequest),
        (batch("1", "2:crc32c:AAAAAA=="), ErrorCode::InvalidBatch),
    ];
    for (uri, code) in refused {
        call(&app, Method::GET, &uri, Some(&alice), "")
            .await
            .error(StatusCode::BAD_REQUEST, code);
    }
    assert_eq!(
        store
            .calls()
            .iter()
            .filter(|c| matches!(c, FakeCall::PresignPart { .. }))
            .count(),
        3,
        "a refused part was signed"
    );

    let complete = format!("/s3/multipart/{id}/complete?key={k}");
    let without = json!({"parts": [{"PartNumber": 1, "ETag": ETAG}]});
    let message = call(
        &app,
        Method::POST,
        &complete,
        Some(&alice),
        &without.to_string(),
    )
    .await
    .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPartList);
    assert!(
        message.contains("part 1 has no crc32c checksum"),
        "{message}"
    );
    // Another algorithm's checksum is refused, not dropped: the store would not check it.
    let foreign = json!({"parts": [{
        "PartNumber": 1, "ETag": ETAG, "ChecksumCRC32C": "AAAAAA==", "ChecksumCRC32": "AAAAAA=="
    }]});
    let message = call(
        &app,
        Method::POST,
        &complete,
        Some(&alice),
        &foreign.to_string(),
    )
    .await
    .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPartList);
    assert!(
        message.contains("part 1 carries a crc32 checksum, but this upload was created for crc32c"),
        "{message}"
    );
    let parts = json!({"parts": [{"PartNumber": 1, "ETag": ETAG, "ChecksumCRC32C": "AAAAAA=="}]});
    let done: CompleteResponse = call(
        &app,
        Method::POST,
        &complete,
        Some(&alice),
        &parts.to_string(),
    )
    .await
    .ok();
    assert_eq!(done.checksum.as_deref(), Some("crc32c:fake-1"));
    let Some(FakeCall::Complete { parts, .. }) = store
        .calls()
        .into_iter()
        .rfind(|c| matches!(c, FakeCall::Complete { .. }))
    else {
        panic!("expected a complete call");
    };
    assert_eq!(parts[0].checksums.crc32c.as_deref(), Some("AAAAAA=="));
}

/// A client that declares no part checksums (one from before the declaration, or Uppy) gets an
/// upload created without an algorithm: any part may be signed with any checksum or none, and
/// completion takes no part checksums, which a store refuses (or ignores) for such an upload.
#[tokio::test]
async fn an_upload_created_without_a_checksum_algorithm_completes_by_etag() {
    let (app, store) = jwt_app_with(Settings {
        checksum: ChecksumSetting::Use(s3_direct_protocol::wire::ChecksumAlgorithm::Crc32c),
        ..Settings::default()
    });
    let alice = jwt("alice", json!({}));
    let up: CreateMultipartResponse = create_as(&app, &alice, json!({"filename": "a.bin"}))
        .await
        .ok();
    let Some(FakeCall::CreateMultipart(created)) = store.calls().last().cloned() else {
        panic!("expected a create call");
    };
    assert_eq!(created.checksum, None);
    let (id, k) = (&up.upload_id, enc(&up.key));
    for query in [
        "",
        "&checksum=md5%3A1B2M2Y8AsgTpgAmY7PhCfg%3D%3D",
        "&checksum=crc32c%3AyZRlqg%3D%3D",
    ] {
        call(
            &app,
            Method::GET,
            &format!("/s3/multipart/{id}/1?key={k}{query}"),
            Some(&alice),
            "",
        )
        .await
        .ok::<SignPartResponse>();
    }
    let complete = format!("/s3/multipart/{id}/complete?key={k}");
    let with = json!({"parts": [{"PartNumber": 1, "ETag": ETAG, "ChecksumCRC32C": "AAAAAA=="}]});
    let message = call(
        &app,
        Method::POST,
        &complete,
        Some(&alice),
        &with.to_string(),
    )
    .await
    .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPartList);
    assert!(
        message.contains("created without part checksums"),
        "{message}"
    );
    let parts = json!({"parts": [{"PartNumber": 1, "ETag": ETAG}]});
    let done: CompleteResponse = call(
        &app,
        Method::POST,
        &complete,
        Some(&alice),
        &parts.to_string(),
    )
    .await
    .ok();
    assert_eq!(done.checksum, None);
    let Some(FakeCall::Complete { parts, .. }) = store
        .calls()
        .into_iter()
        .rfind(|c| matches!(c, FakeCall::Complete { .. }))
    else {
        panic!("expected a complete call");
    };
    assert_eq!(parts[0].checksums.crc32c, None);
}

/// MD5 needs no declaring: S3 checks `Content-MD5` on any upload (`auto`: the server asks
/// for MD5, as `--checksum auto` does on a store that ignores CRC checksums).
#[tokio::test]
async fn an_md5_client_creates_its_upload_without_an_algorithm() {
    let (app, store) = jwt_app_with(Settings {
        checksum: ChecksumSetting::Use(s3_direct_protocol::wire::ChecksumAlgorithm::Md5),
        ..Settings::default()
    });
    let alice = jwt("alice", json!({}));
    for checksum in ["md5", "auto"] {
        create_as(
            &app,
            &alice,
            json!({"filename": "a.bin", "checksum": checksum}),
        )
        .await
        .ok::<CreateMultipartResponse>();
        let Some(FakeCall::CreateMultipart(created)) = store.calls().last().cloned() else {
            panic!("expected a create call");
        };
        assert_eq!(created.checksum, None, "{checksum}");
    }
    create_as(
        &app,
        &alice,
        json!({"filename": "a.bin", "checksum": "sha256"}),
    )
    .await
    .ok::<CreateMultipartResponse>();
    let Some(FakeCall::CreateMultipart(created)) = store.calls().last().cloned() else {
        panic!("expected a create call");
    };
    assert_eq!(
        created.checksum,
        Some(s3_direct_protocol::wire::ChecksumAlgorithm::Sha256)
    );
}

#[tokio::test]
async fn a_flood_from_one_caller_gets_429_with_retry_after() {
    let (app, _) = jwt_app_with(Settings {
        rate_per_minute: 60,
        rate_burst: 3,
        ..Settings::default()
    });
    let alice = jwt("alice", json!({}));
    let bob = jwt("bob", json!({}));
    for _ in 0..3 {
        create_as(&app, &alice, json!({"filename": "a"}))
            .await
            .ok::<Value>();
    }
    let r = create_as(&app, &alice, json!({"filename": "a"})).await;
    r.error(StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited);
    assert_eq!(r.headers[header::RETRY_AFTER], "1");
    // Bob has his own budget.
    create_as(&app, &bob, json!({"filename": "a"}))
        .await
        .ok::<Value>();
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_rate_limit() {
    use axum::extract::ConnectInfo;
    use s3_direct_server::client_address::TrustedProxies;
    // An open server limits per address: one request at once, then one a second.
    let app_trusting = |nets: &[&str]| {
        crate::common::fake_app_with(Settings {
            rate_per_minute: 60,
            rate_burst: 1,
            trusted_proxies: TrustedProxies::new(
                nets.iter()
                    .map(|n| TrustedProxies::parse(n).unwrap())
                    .collect(),
            ),
            ..Settings::default()
        })
        .0
    };
    let balancer: std::net::SocketAddr = "10.0.0.2:41000".parse().unwrap();
    let create_for = |app: Router, client: &'static str| async move {
        let req = axum::http::Request::post("/s3/multipart")
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-forwarded-for", client)
            .extension(ConnectInfo(balancer))
            .body(axum::body::Body::from(r#"{"filename":"a"}"#))
            .unwrap();
        crate::common::send(&app, req).await
    };
    let app = app_trusting(&["10.0.0.0/8"]);
    create_for(app.clone(), "203.0.113.7").await.ok::<Value>();
    create_for(app.clone(), "198.51.100.9").await.ok::<Value>();
    create_for(app.clone(), "203.0.113.7")
        .await
        .error(StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited);
    // Trusting no proxy (the default), every caller is the balancer: one bucket for all.
    let app = app_trusting(&[]);
    create_for(app.clone(), "203.0.113.7").await.ok::<Value>();
    create_for(app.clone(), "198.51.100.9")
        .await
        .error(StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited);
}

#[tokio::test]
async fn cors_allows_the_configured_origins_only() {
    let (app, _) = jwt_app_with(Settings {
        cors_origins: vec!["https://app.example.com".into()],
        cors_credentials: true,
        ..Settings::default()
    });
    let preflight = |origin: &'static str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/s3/multipart")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization,content-type",
            )
            .body(Body::empty())
            .unwrap()
    };
    let ok = send(&app, preflight("https://app.example.com")).await;
    assert_eq!(
        ok.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    assert_eq!(ok.headers[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    let bad = send(&app, preflight("https://evil.example.net")).await;
    assert!(
        bad.headers
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );

    // Without --cors-origin there are no CORS headers at all (same origin only).
    let (plain, _) = jwt_app();
    let r = send(&plain, preflight("https://app.example.com")).await;
    assert!(r.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    let _ = HeaderValue::from_static("x");
}

#[tokio::test]
async fn url_lifetimes_never_exceed_the_configured_one() {
    let (app, store) = jwt_app_with(Settings {
        url_lifetime: Duration::from_secs(60),
        ..Settings::default()
    });
    let alice = jwt("alice", json!({}));
    let up = created(&app, &alice, json!({"filename": "a"})).await;
    let signed: SignPartResponse = call(
        &app,
        Method::GET,
        &format!("/s3/multipart/{}/1?key={}", up.upload_id, enc(&up.key)),
        Some(&alice),
        "",
    )
    .await
    .ok();
    assert_eq!(signed.expires, 60);
    assert!(store.calls().iter().any(|c| matches!(
        c,
        FakeCall::PresignPart { lifetime, .. } if *lifetime == Duration::from_secs(60)
    )));
}

/// The application's own "may this caller upload?" endpoint, on a loopback port: cookie
/// `session=alice` or `session=bob` are signed in, anything else is not. Counts its calls.
async fn app_webhook() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::extract::State;
    use axum::http::HeaderMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let router = Router::new()
        .route(
            "/may-upload",
            axum::routing::post(
                |State(calls): State<Arc<AtomicUsize>>,
                 headers: HeaderMap,
                 axum::Json(q): axum::Json<Value>| async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let cookie = headers
                        .get("cookie")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    if q["action"] == "create" && q["create"]["type"] == "text/html" {
                        return (StatusCode::FORBIDDEN, axum::Json(json!({}))).into_response();
                    }
                    match cookie {
                        "session=alice" => axum::Json(
                            json!({"id": "alice", "key_prefix": "users/alice/", "max_size": 1000}),
                        )
                        .into_response(),
                        "session=bob" => axum::Json(json!({"id": "bob"})).into_response(),
                        _ => (StatusCode::UNAUTHORIZED, axum::Json(json!({}))).into_response(),
                    }
                },
            ),
        )
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}/may-upload"), calls)
}

async fn as_cookie(app: &Router, method: Method, uri: &str, cookie: &str, body: &str) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if !cookie.is_empty() {
        req = req.header(header::COOKIE, cookie);
    }
    if !body.is_empty() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    send(app, req.body(Body::from(body.to_owned())).unwrap()).await
}

use axum::response::IntoResponse;

#[tokio::test]
async fn the_webhook_decides_with_the_callers_cookies_and_answers_are_cached() {
    use std::sync::atomic::Ordering;
    let (url, calls) = app_webhook().await;
    let store = Arc::new(FakeStore::new());
    let state = AppState::with_auth(
        store.clone(),
        Settings::default(),
        Arc::new(s3_direct_server::WebhookAuth::new(&url, Duration::from_secs(60)).unwrap()),
        test_secrets(),
    );
    let app = app(state);
    let body = r#"{"filename":"a.bin","size":10}"#;

    let up: CreateMultipartResponse =
        as_cookie(&app, Method::POST, "/s3/multipart", "session=alice", body)
            .await
            .ok();
    assert!(up.key.starts_with("uploads/users/alice/"), "{}", up.key);
    // Limits from the webhook's answer apply.
    as_cookie(
        &app,
        Method::POST,
        "/s3/multipart",
        "session=alice",
        r#"{"filename":"a","size":1001}"#,
    )
    .await
    .error(StatusCode::FORBIDDEN, ErrorCode::Forbidden);
    // The app refuses this create.
    as_cookie(
        &app,
        Method::POST,
        "/s3/multipart",
        "session=alice",
        r#"{"filename":"a","type":"text/html"}"#,
    )
    .await
    .error(StatusCode::FORBIDDEN, ErrorCode::Forbidden);
    as_cookie(&app, Method::POST, "/s3/multipart", "session=mallory", body)
        .await
        .error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated);
    as_cookie(&app, Method::POST, "/s3/multipart", "", body)
        .await
        .error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated);

    let sign = format!("/s3/multipart/{}/1?key={}", up.upload_id, enc(&up.key));
    as_cookie(&app, Method::GET, &sign, "session=alice", "")
        .await
        .ok::<SignPartResponse>();
    let before = calls.load(Ordering::SeqCst);
    for _ in 0..3 {
        as_cookie(&app, Method::GET, &sign, "session=alice", "")
            .await
            .ok::<SignPartResponse>();
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before,
        "sign answers are cached"
    );
    // Bob is signed in, but it is not his upload: its key is not even one he could be issued
    // (he writes directly under the server prefix).
    as_cookie(&app, Method::GET, &sign, "session=bob", "")
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidKey);
    // Creates always ask.
    as_cookie(&app, Method::POST, "/s3/multipart", "session=alice", body)
        .await
        .ok::<Value>();
    assert_eq!(calls.load(Ordering::SeqCst), before + 2);
}

/// Signs part `n` of `up` with `length` (or none), as the caller `token`.
async fn sign_length(
    app: &Router,
    token: &str,
    up: &CreateMultipartResponse,
    n: u32,
    length: Option<u64>,
) -> Reply {
    let length = length.map_or(String::new(), |l| format!("&length={l}"));
    let uri = format!(
        "/s3/multipart/{}/{n}?key={}{length}",
        up.upload_id,
        enc(&up.key)
    );
    call(app, Method::GET, &uri, Some(token), "").await
}

#[tokio::test]
async fn a_stream_signs_each_part_s_length_up_to_its_part_size_and_completes_with_a_short_last_part()
 {
    let (app, store) = jwt_app();
    let alice = jwt("alice", json!({}));
    let up = created(
        &app,
        &alice,
        json!({"filename": "rec.webm", "partSize": 5 * MIB}),
    )
    .await;
    assert_eq!(
        up.part_size,
        Some(5 * MIB),
        "the answer names the stream's part size"
    );
    // Every part URL signs the length the client names, at most the part size.
    let m = sign_length(&app, &alice, &up, 1, None)
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidSize);
    assert!(m.contains("has no length"), "{m}");
    let m = sign_length(&app, &alice, &up, 1, Some(5 * MIB + 1))
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidSize);
    assert!(m.contains("the upload's part size"), "{m}");
    let signed: SignPartResponse = sign_length(&app, &alice, &up, 1, Some(5 * MIB)).await.ok();
    assert_eq!(signed.headers["content-length"], (5 * MIB).to_string());
    // Up to 10,000 parts.
    sign_length(&app, &alice, &up, 10_000, Some(1))
        .await
        .ok::<SignPartResponse>();
    sign_length(&app, &alice, &up, 10_001, Some(1))
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPartNumber);

    let sid = store_id(&up.upload_id);
    store.put_part(sid, 1, ETAG, 5 * MIB);
    store.put_part(sid, 2, ETAG, 5 * MIB);
    store.put_part(sid, 3, ETAG, 17);
    let done: CompleteResponse = complete_as(&app, &alice, &up, 3).await.ok();
    assert_eq!(done.key, up.key);
}

#[tokio::test]
async fn a_stream_s_parts_are_held_to_its_part_size_and_the_caller_s_limit_at_completion() {
    let (app, store) = jwt_app();
    let alice = jwt("alice", json!({}));
    let stream = json!({"filename": "rec.webm", "partSize": 5 * MIB});
    // A middle part shorter than the part size: re-send it, the upload is kept.
    let up = created(&app, &alice, stream.clone()).await;
    let sid = store_id(&up.upload_id);
    store.put_part(sid, 1, ETAG, 5 * MIB);
    store.put_part(sid, 2, ETAG, MIB);
    store.put_part(sid, 3, ETAG, MIB);
    let m = complete_as(&app, &alice, &up, 3)
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPart);
    assert!(m.contains("every part of a stream but the last"), "{m}");
    assert_eq!(store.open_uploads(), [sid]);
    // A part over the part size (a store that let more in than was signed): aborted.
    let up = created(&app, &alice, stream.clone()).await;
    let sid = store_id(&up.upload_id);
    store.put_part(sid, 1, ETAG, 5 * MIB + 1);
    complete_as(&app, &alice, &up, 1)
        .await
        .error(StatusCode::CONFLICT, ErrorCode::PlanViolated);
    assert!(!store.open_uploads().contains(&sid.to_owned()));
    // A caller limited to 12 MiB: three parts of 5 MiB at most, and no more than 12 MiB in all.
    let bob = jwt("bob", json!({"max_size": 12 * MIB}));
    let up = created(&app, &bob, stream).await;
    sign_length(&app, &bob, &up, 4, Some(MIB))
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPartNumber);
    let sid = store_id(&up.upload_id);
    for n in 1..=3 {
        store.put_part(sid, n, ETAG, 5 * MIB);
    }
    let m = complete_as(&app, &bob, &up, 3)
        .await
        .error(StatusCode::CONFLICT, ErrorCode::PlanViolated);
    assert!(m.contains("more than this caller's limit"), "{m}");
}

#[tokio::test]
async fn a_short_part_at_completion_asks_for_a_resend_and_keeps_the_upload() {
    let (app, store) = jwt_app();
    let alice = jwt("alice", json!({}));
    let up = created(&app, &alice, json!({"filename": "a.bin", "size": 6 * MIB})).await;
    let sid = store_id(&up.upload_id);
    store.put_part(sid, 1, ETAG, 5 * MIB);
    store.put_part(sid, 2, ETAG, MIB - 10);
    let m = complete_as(&app, &alice, &up, 2)
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPart);
    assert!(m.contains("upload the affected parts again"), "{m}");
    assert_eq!(store.open_uploads(), [sid]);
}

#[tokio::test]
async fn rs256_and_es256_tokens_verify_with_a_public_key_file_and_nothing_else() {
    use jsonwebtoken::Algorithm;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");
    let read = |name: &str| std::fs::read(format!("{dir}/{name}")).unwrap();
    for (alg, private, public) in [
        (Algorithm::RS256, "rs256-private.pem", "rs256-public.pem"),
        (Algorithm::ES256, "es256-private.pem", "es256-public.pem"),
    ] {
        let store = Arc::new(FakeStore::new());
        let auth = JwtAuth::public_key_pem(&read(public)).unwrap();
        let app = app(AppState::with_auth(
            store.clone(),
            Settings::default(),
            Arc::new(auth),
            test_secrets(),
        ));
        let claims = json!({"sub": "svc", "exp": now() + 600});
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&read(private)).unwrap(),
            _ => EncodingKey::from_ec_pem(&read(private)).unwrap(),
        };
        let good = encode(&Header::new(alg), &claims, &key).unwrap();
        create_as(&app, &good, json!({"filename": "a"}))
            .await
            .ok::<Value>();
        // Algorithm confusion: HS256 keyed with the public key's bytes.
        let confused = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&read(public)),
        )
        .unwrap();
        create_as(&app, &confused, json!({"filename": "a"}))
            .await
            .error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated);
        // A shared-secret token means nothing to a public-key server.
        create_as(&app, &jwt("svc", json!({})), json!({"filename": "a"}))
            .await
            .error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated);
        assert_eq!(store.calls().len(), 1, "{alg:?}");
    }
}

#[tokio::test]
async fn an_open_server_rate_limits_per_client_address() {
    let store = Arc::new(FakeStore::new());
    let state = crate::common::open_state(
        store,
        Settings {
            rate_per_minute: 60,
            rate_burst: 2,
            ..Settings::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(s3_direct_server::serve(
        listener,
        state,
        std::future::pending(),
    ));
    let client = crate::common::http();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let res = client
            .post(format!("http://{addr}/s3/multipart"))
            .header("content-type", "application/json")
            .body(r#"{"filename":"a"}"#)
            .send()
            .await
            .unwrap();
        statuses.push((
            res.status().as_u16(),
            res.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
        ));
    }
    assert_eq!(
        statuses,
        [(200, None), (200, None), (429, Some("1".to_owned()))]
    );
}

#[tokio::test]
async fn urls_never_outlive_the_signing_credentials() {
    use aws_credential_types::Credentials;
    use aws_sdk_s3::config::{BehaviorVersion, SharedCredentialsProvider};
    use s3_direct_server::{S3Store, S3StoreConfig};
    let expiry = std::time::SystemTime::now() + Duration::from_secs(120);
    let store = S3Store::with_provider(
        aws_sdk_s3::config::Builder::new().behavior_version(BehaviorVersion::latest()),
        S3StoreConfig {
            endpoint: "http://127.0.0.1:9".into(),
            public_endpoint: None,
            bucket: "b".into(),
            region: "us-east-1".into(),
            path_style: true,
        },
        SharedCredentialsProvider::new(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            Some("session".into()),
            Some(expiry),
            "test",
        )),
    );
    let app = app(crate::common::open_state(
        Arc::new(store),
        Settings::default(),
    ));
    let key = "uploads/0b6f4f0e-7a4c-4c59-9d0b-2f6f4a1d3c11/a.bin";
    let id = crate::common::anon_upload_id("up1", key);
    let signed: SignPartResponse = call(
        &app,
        Method::GET,
        &format!("/s3/multipart/{id}/1?key={}", enc(key)),
        None,
        "",
    )
    .await
    .ok();
    assert!(
        signed.expires <= 120 && signed.expires > 100,
        "{}",
        signed.expires
    );
    assert!(
        signed
            .url
            .contains(&format!("X-Amz-Expires={}&", signed.expires)),
        "{}",
        signed.url
    );
}
