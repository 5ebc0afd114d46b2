//! Every route of the signing API through `app(state)` over the fake store: the answers have the
//! Companion-compatible shapes, and the store was asked exactly what the request implied.

mod small;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{StatusCode, header};
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::limits::GIB;
use s3_direct_protocol::wire::{
    CompleteResponse, CompletedPart, CreateMultipartResponse, ListedPart, SignBatchResponse,
    SignPartResponse, SinglePutParams,
};
use s3_direct_server::config::SmallFileMethod;
use s3_direct_server::store::{FAKE_ENDPOINT, FakeCall, NewUpload, PartSigning, PostSigning};
use s3_direct_server::{ChecksumSetting, FakeStore, Settings, StoreError};
use serde_json::{Value, json};

use crate::common::{
    create, delete, enc, fake_app, fake_app_with, get, open_state, post_json, send, store_id,
};

const ETAG: &str = "\"0123456789abcdef0123456789abcdef\"";

#[tokio::test]
async fn healthz_answers_without_calling_the_store() {
    let (app, store) = fake_app();
    let v: Value = get(&app, "/healthz").await.ok();
    assert_eq!(v, json!({"status": "ok"}));
    assert!(store.calls().is_empty());
}

#[tokio::test]
async fn create_issues_a_key_under_the_prefix_and_passes_type_and_metadata() {
    let (app, store) = fake_app();
    let body = json!({
        "filename": "holiday.mp4",
        "type": "video/mp4",
        "metadata": {"Name": "holiday.mp4", "caption": "día 1"},
        "size": 123
    });
    let created: CreateMultipartResponse = post_json(&app, "/s3/multipart", body.to_string())
        .await
        .ok();
    assert_eq!(created.bucket, "fake-bucket");
    assert_eq!(store_id(&created.upload_id), "fake-upload-1");
    let rest = created.key.strip_prefix("uploads/").unwrap();
    let (id, name) = rest.split_once('/').unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    assert_eq!(name, "holiday.mp4");
    assert_eq!(
        store.calls(),
        vec![FakeCall::CreateMultipart(NewUpload {
            key: created.key.clone(),
            content_type: "video/mp4".into(),
            metadata: BTreeMap::from([
                ("caption".into(), "d%C3%ADa 1".into()),
                ("name".into(), "holiday.mp4".into()),
            ]),
            checksum: None,
        })]
    );
}

#[tokio::test]
async fn create_defaults_the_content_type_and_gives_each_upload_its_own_key() {
    let (app, store) = fake_app();
    let (k1, _) = create(&app, "same.bin").await;
    let r = post_json(&app, "/s3/multipart", r#"{"filename":"same.bin"}"#).await;
    let k2 = r.ok::<CreateMultipartResponse>().key;
    assert_ne!(k1, k2);
    let FakeCall::CreateMultipart(second) = &store.calls()[1] else {
        panic!("expected a create call");
    };
    assert_eq!(second.content_type, "application/octet-stream");
}

#[tokio::test]
async fn a_unicode_file_name_round_trips_into_the_key() {
    let (app, _) = fake_app();
    let name = "ñ 日本 🎉 a+b%20.bin";
    let (key, upload_id) = create(&app, name).await;
    assert!(key.ends_with(&format!("/{name}")), "{key}");
    // The key comes back through a query string, as Uppy sends it (encodeURIComponent).
    let signed: SignPartResponse = get(
        &app,
        &format!("/s3/multipart/{upload_id}/1?key={}", enc(&key)),
    )
    .await
    .ok();
    assert!(signed.url.contains(&format!("/{key}?")), "{}", signed.url);
}

#[tokio::test]
async fn sign_one_part() {
    let (app, store) = fake_app();
    let (key, upload_id) = create(&app, "a.bin").await;
    let signed: SignPartResponse = get(
        &app,
        &format!("/s3/multipart/{upload_id}/7?key={}", enc(&key)),
    )
    .await
    .ok();
    assert!(signed.url.contains("partNumber=7"), "{}", signed.url);
    assert_eq!(signed.expires, 900);
    assert_eq!(
        store.calls()[1],
        FakeCall::PresignPart {
            key,
            upload_id: store_id(&upload_id).to_owned(),
            part_number: 7,
            lifetime: Duration::from_secs(900),
            signing: PartSigning::default(),
        }
    );
}

#[tokio::test]
async fn sign_a_batch() {
    let (app, store) = fake_app();
    let (key, upload_id) = create(&app, "a.bin").await;
    let reply = get(
        &app,
        &format!(
            "/s3/multipart/{upload_id}/batch?key={}&partNumbers=3,1,2",
            enc(&key)
        ),
    )
    .await;
    let raw: Value = reply.json();
    // Companion's shape: string keys.
    assert!(raw["presignedUrls"]["1"].is_string(), "{raw}");
    let batch: SignBatchResponse = reply.ok();
    assert_eq!(
        batch.presigned_urls.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(batch.presigned_urls[&2].contains("partNumber=2"));
    assert_eq!(batch.expires, Some(900));
    let signed: Vec<u32> = store
        .calls()
        .iter()
        .filter_map(|c| match c {
            FakeCall::PresignPart { part_number, .. } => Some(*part_number),
            _ => None,
        })
        .collect();
    assert_eq!(signed, [3, 1, 2]);
}

#[tokio::test]
async fn a_create_whose_urls_cannot_be_signed_still_creates_the_upload() {
    const MIB: u64 = 1 << 20;
    // Part URLs come with the create answer only when no part checksum is asked for.
    let (app, store) = fake_app_with(Settings {
        checksum: ChecksumSetting::Off,
        ..Settings::default()
    });
    let body =
        json!({"filename": "a.bin", "size": 40 * MIB, "partSize": 8 * MIB, "presignParts": 4})
            .to_string();
    let created: CreateMultipartResponse =
        post_json(&app, "/s3/multipart", body.clone()).await.ok();
    let urls = created
        .presigned
        .expect("the first parts' URLs")
        .presigned_urls;
    assert_eq!(urls.keys().copied().collect::<Vec<_>>(), [1, 2, 3, 4]);

    // The store creates the next upload, then refuses to sign its first part.
    store.pass_next();
    store.fail_next(StoreError::unavailable("presign_part", "no credentials"));
    let reply = post_json(&app, "/s3/multipart", body).await;
    let raw: Value = reply.json();
    assert!(raw.get("presigned").is_none(), "{raw}");
    let created: CreateMultipartResponse = reply.ok();
    let id = store_id(&created.upload_id).to_owned();
    assert!(store.open_uploads().contains(&id), "{id}");
    // The client's own batch request signs them once the store answers again.
    let batch: SignBatchResponse = get(
        &app,
        &format!(
            "/s3/multipart/{}/batch?key={}&partNumbers=1,2",
            created.upload_id,
            enc(&created.key)
        ),
    )
    .await
    .ok();
    assert_eq!(
        batch.presigned_urls.keys().copied().collect::<Vec<_>>(),
        [1, 2]
    );
}

#[tokio::test]
async fn list_parts_is_a_bare_array_in_part_order() {
    let (app, store) = fake_app();
    let (key, upload_id) = create(&app, "a.bin").await;
    store.put_part(store_id(&upload_id), 2, ETAG, 10);
    store.put_part(store_id(&upload_id), 1, ETAG, 5 << 20);
    let reply = get(
        &app,
        &format!("/s3/multipart/{upload_id}?key={}", enc(&key)),
    )
    .await;
    let raw: Value = reply.json();
    assert_eq!(raw[0]["PartNumber"], 1);
    assert_eq!(raw[0]["ETag"], ETAG);
    assert_eq!(raw[1]["Size"], 10);
    let parts: Vec<ListedPart> = reply.ok();
    assert_eq!(parts.len(), 2);
}

#[tokio::test]
async fn complete_returns_location_etag_key_and_bucket() {
    let (app, store) = fake_app();
    let (key, upload_id) = create(&app, "a.bin").await;
    let body = json!({"parts": [
        {"PartNumber": 1, "ETag": ETAG},
        {"PartNumber": 2, "ETag": "abc-2"},
    ]});
    let done: CompleteResponse = post_json(
        &app,
        &format!("/s3/multipart/{upload_id}/complete?key={}", enc(&key)),
        body.to_string(),
    )
    .await
    .ok();
    assert_eq!(done.key, key);
    assert_eq!(done.bucket, "fake-bucket");
    assert_eq!(done.etag, "\"fake-etag-2\"");
    assert!(done.location.ends_with(&key));
    assert_eq!(
        store.calls()[1],
        FakeCall::Complete {
            key,
            upload_id: store_id(&upload_id).to_owned(),
            parts: vec![
                CompletedPart {
                    part_number: 1,
                    etag: ETAG.into(),
                    ..Default::default()
                },
                CompletedPart {
                    part_number: 2,
                    etag: "abc-2".into(),
                    ..Default::default()
                },
            ],
        }
    );
    assert!(store.open_uploads().is_empty());
}

#[tokio::test]
async fn complete_reads_the_object_back_and_answers_its_size_and_etag() {
    // A store that answers the completion without an ETag, as Ceph 16 does: the HEAD has it.
    let store = Arc::new(FakeStore::new().with_blank_completion_etags());
    let app = s3_direct_server::app(open_state(store.clone(), Settings::default()));
    let (key, upload_id) = create(&app, "a.bin").await;
    store.put_part(store_id(&upload_id), 1, ETAG, 5 << 20);
    store.put_part(store_id(&upload_id), 2, ETAG, 7);
    let body = json!({"parts": [
        {"PartNumber": 1, "ETag": ETAG},
        {"PartNumber": 2, "ETag": ETAG},
    ]});
    let done: CompleteResponse = post_json(
        &app,
        &format!("/s3/multipart/{upload_id}/complete?key={}", enc(&key)),
        body.to_string(),
    )
    .await
    .ok();
    assert_eq!(done.etag, "\"fake-etag-2\"");
    assert_eq!(done.size, (5 << 20) + 7);
    assert_eq!(
        store.calls().last(),
        Some(&FakeCall::HeadObject { key: key.clone() })
    );
    let raw: Value = serde_json::from_str(&serde_json::to_string(&done).unwrap()).unwrap();
    assert_eq!(raw["size"], (5 << 20) + 7);
}

#[tokio::test]
async fn a_bounded_completion_names_only_the_listed_parts_with_their_etags() {
    let (app, store) = fake_app();
    let body = json!({"filename": "a.bin", "size": 10 << 20});
    let created: CreateMultipartResponse = post_json(&app, "/s3/multipart", body.to_string())
        .await
        .ok();
    let (key, upload_id) = (created.key, created.upload_id);
    let id = store_id(&upload_id);
    let uri = format!("/s3/multipart/{upload_id}/complete?key={}", enc(&key));
    store.put_part(id, 1, ETAG, 5 << 20);
    let other = "\"ffffffffffffffffffffffffffffffff\"";
    let named = |second: &str| {
        json!({"parts": [{"PartNumber": 1, "ETag": ETAG}, {"PartNumber": 2, "ETag": second}]})
            .to_string()
    };
    // Part 2 is not listed: refused before the store is asked to complete.
    let m = post_json(&app, &uri, named(ETAG))
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPart);
    assert!(
        m.contains("part 2 is not among the parts the store holds"),
        "{m}"
    );
    // Listed with another ETag than named: refused too.
    store.put_part(id, 2, other, 5 << 20);
    let m = post_json(&app, &uri, named(ETAG))
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPart);
    assert!(m.contains("part 2 is named with ETag"), "{m}");
    assert!(
        !store
            .calls()
            .iter()
            .any(|c| matches!(c, FakeCall::Complete { .. })),
        "{:?}",
        store.calls()
    );
    assert_eq!(store.open_uploads(), [id]);
    let done: CompleteResponse = post_json(&app, &uri, named(other)).await.ok();
    assert_eq!(done.size, 10 << 20);
}

#[tokio::test]
async fn a_retried_completion_of_a_completed_upload_answers_its_object() {
    let (app, store) = fake_app();
    let (key, upload_id) = create(&app, "a.bin").await;
    let part = "\"0cc175b9c0f1b6a831c399e269772661\"";
    let uri = format!("/s3/multipart/{upload_id}/complete?key={}", enc(&key));
    let body = json!({"parts": [{"PartNumber": 1, "ETag": part}]}).to_string();
    post_json(&app, &uri, body.clone())
        .await
        .ok::<CompleteResponse>();
    // The fake's ETags are its own; an object with the multipart ETag of the named part is what
    // a real store leaves (MD5 of the part's MD5, "-1").
    let head = s3_direct_server::store::ObjectHead {
        size: 1,
        etag: "\"e3b60d4e1e1b7c0ed1d2e8a9c2e8a5cc-1\"".into(),
        ..Default::default()
    };
    store.put_object(&key, head.clone());
    post_json(&app, &uri, body.clone())
        .await
        .error(StatusCode::NOT_FOUND, ErrorCode::NoSuchUpload);
    let etag = format!(
        "\"{}\"",
        s3_direct_server::uploads::completion::multipart_etag(&[CompletedPart {
            part_number: 1,
            etag: part.into(),
            ..Default::default()
        }])
        .unwrap()
    );
    store.put_object(
        &key,
        s3_direct_server::store::ObjectHead {
            etag: etag.clone(),
            ..head
        },
    );
    let again: CompleteResponse = post_json(&app, &uri, body).await.ok();
    assert_eq!((again.etag, again.size), (etag, 1));
    assert_eq!(again.location, format!("{FAKE_ENDPOINT}/fake-bucket/{key}"));
}

#[tokio::test]
async fn complete_accepts_a_ten_thousand_part_list() {
    let (app, store) = fake_app();
    let (key, upload_id) = create(&app, "big.bin").await;
    let parts: Vec<Value> = (1..=10_000)
        .map(|n| json!({"PartNumber": n, "ETag": format!("\"{}\"", "a".repeat(128))}))
        .collect();
    let body = json!({ "parts": parts }).to_string();
    assert!(body.len() > 1_400_000, "{} bytes", body.len());
    let done: CompleteResponse = post_json(
        &app,
        &format!("/s3/multipart/{upload_id}/complete?key={}", enc(&key)),
        body,
    )
    .await
    .ok();
    assert_eq!(done.etag, "\"fake-etag-10000\"");
    // Create, complete, and the HEAD that reads the object back.
    assert_eq!(store.calls().len(), 3);
}

#[tokio::test]
async fn abort_answers_an_empty_object() {
    let (app, store) = fake_app();
    let (key, upload_id) = create(&app, "a.bin").await;
    let v: Value = delete(
        &app,
        &format!("/s3/multipart/{upload_id}?key={}", enc(&key)),
    )
    .await
    .ok();
    assert_eq!(v, json!({}));
    assert_eq!(
        store.calls()[1],
        FakeCall::Abort {
            key,
            upload_id: store_id(&upload_id).to_owned()
        }
    );
    assert!(store.open_uploads().is_empty());
}

/// A small file from a caller that passes its size (s3-direct's client): a presigned PUT with
/// that exact length signed in.
#[tokio::test]
async fn single_put_params() {
    let (app, store) = fake_app();
    let params: SinglePutParams = get(
        &app,
        &format!(
            "/s3/params?filename={}&type=text%2Fplain&size=42",
            enc("notes ü.txt")
        ),
    )
    .await
    .ok();
    assert_eq!(params.method, "PUT");
    assert_eq!(
        params.fields,
        BTreeMap::from([
            ("key".to_owned(), params.key.clone()),
            ("bucket".to_owned(), "fake-bucket".to_owned())
        ])
    );
    assert_eq!(params.headers["content-type"], "text/plain");
    assert_eq!(params.headers["content-length"], "42");
    assert_eq!(params.bucket, "fake-bucket");
    assert!(params.key.starts_with("uploads/") && params.key.ends_with("/notes ü.txt"));
    assert_eq!(
        store.calls(),
        vec![FakeCall::PresignPut {
            key: params.key.clone(),
            content_type: "text/plain".into(),
            content_length: Some(42),
            lifetime: Duration::from_secs(900),
        }]
    );
}

/// A small file from a Companion client (Uppy: no size): the POST policy form Companion answers,
/// which Uppy 6 requires and Uppy 5 follows. Its policy holds the file to S3's single-upload
/// limit, and the content type and metadata to what was asked for.
#[tokio::test]
async fn single_put_params_answer_companion_clients_a_post_form() {
    let (app, store) = fake_app();
    let raw: Value = get(
        &app,
        "/s3/params?filename=x.txt&type=text%2Fplain&metadata%5Bowner%5D=ada",
    )
    .await
    .json();
    assert_eq!(raw["method"], "POST");
    assert_eq!(raw["url"], format!("{FAKE_ENDPOINT}/fake-bucket"));
    let key = raw["key"].as_str().expect("the key, as an extension field");
    assert!(
        key.starts_with("uploads/") && key.ends_with("/x.txt"),
        "{key}"
    );
    assert_eq!(raw["fields"]["key"], key);
    assert_eq!(raw["fields"]["bucket"], "fake-bucket");
    assert_eq!(raw["fields"]["x-amz-meta-owner"], "ada");
    assert_eq!(raw["headers"], json!({}));
    assert_eq!(raw.get("checksum"), None);
    assert_eq!(
        store.calls(),
        vec![FakeCall::PresignPost {
            key: key.to_owned(),
            signing: PostSigning {
                content_type: "text/plain".into(),
                metadata: BTreeMap::from([("owner".into(), "ada".into())]),
                size: 0..=5 * GIB,
            },
            lifetime: Duration::from_secs(900),
        }]
    );
}

/// `method` picks the form whatever else the caller passes; a form takes no checksum.
#[tokio::test]
async fn single_put_params_follow_the_method_asked_for() {
    let (app, store) = fake_app();
    let asked = async |query: &str| -> SinglePutParams {
        get(&app, &format!("/s3/params?filename=a.bin&{query}"))
            .await
            .ok()
    };
    assert_eq!(asked("method=PUT").await.method, "PUT");
    assert_eq!(asked("method=put&size=5").await.method, "PUT");
    assert_eq!(asked("method=POST&size=5").await.method, "POST");
    match store.calls().last() {
        Some(FakeCall::PresignPost { signing, .. }) => assert_eq!(signing.size, 5..=5),
        other => panic!("{other:?}"),
    }
    // A checksum is signed into a PUT: passing one asks for a PUT.
    let md5 = enc("md5:/TPi6K08sb3T6o9WM/z1xw==");
    assert_eq!(asked(&format!("checksum={md5}")).await.method, "PUT");
    let calls = store.calls().len();
    for (query, says) in [
        (format!("method=POST&checksum={md5}"), "PUT only"),
        ("method=PATCH".to_owned(), "neither PUT nor POST"),
    ] {
        let m = get(&app, &format!("/s3/params?filename=a.bin&{query}"))
            .await
            .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest);
        assert!(m.contains(says), "{m}");
    }
    assert_eq!(
        store.calls().len(),
        calls,
        "refused requests reach no store"
    );
}

/// `--small-file-method put`: Companion clients get a presigned PUT (Uppy 5 with a store whose
/// form answer has no ETag header); asking with `method=POST` still gets a form.
#[tokio::test]
async fn small_file_method_put_answers_companion_clients_a_put() {
    let (app, store) = fake_app_with(Settings {
        small_file_method: SmallFileMethod::Put,
        ..Settings::default()
    });
    let asked = async |query: &str| -> SinglePutParams {
        get(&app, &format!("/s3/params?filename=a.bin&{query}"))
            .await
            .ok()
    };
    assert_eq!(asked("type=text%2Fplain").await.method, "PUT");
    assert_eq!(asked("method=POST").await.method, "POST");
    assert!(matches!(
        store.calls()[..],
        [FakeCall::PresignPut { .. }, FakeCall::PresignPost { .. }]
    ));
}

/// Uppy's @uppy/aws-s3 5.x reports a single upload's key and bucket from `fields.key` and
/// `fields.bucket` (Companion's POST policy fields), whatever the method. A store that signs no
/// POST policies gets Companion clients a PUT, with the key and bucket still in `fields`.
#[tokio::test]
async fn single_put_params_fall_back_to_a_put_with_the_key_in_fields() {
    let store = Arc::new(FakeStore::new().without_post_policies());
    let app = s3_direct_server::app(open_state(store.clone(), Settings::default()));
    let raw: Value = get(&app, "/s3/params?filename=x.txt&type=text%2Fplain")
        .await
        .json();
    assert_eq!(raw["method"], "PUT");
    let key = raw["key"].as_str().expect("the key, as an extension field");
    assert_eq!(raw["fields"], json!({"key": key, "bucket": "fake-bucket"}));
    assert_eq!(raw["bucket"], "fake-bucket");
    assert!(matches!(
        store.calls()[..],
        [FakeCall::PresignPost { .. }, FakeCall::PresignPut { .. }]
    ));
}

#[tokio::test]
async fn store_errors_become_stable_codes_and_hide_details() {
    let (app, store) = fake_app();
    let (key, upload_id) = create(&app, "a.bin").await;
    let complete_uri = format!("/s3/multipart/{upload_id}/complete?key={}", enc(&key));
    let body = json!({"parts": [{"PartNumber": 1, "ETag": ETAG}]}).to_string();

    store.fail_next(StoreError::InvalidPart {
        message: "part 1 etag mismatch".into(),
    });
    let m = post_json(&app, &complete_uri, body.clone())
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPart);
    assert!(m.contains("upload the affected parts again"), "{m}");

    store.fail_next(StoreError::EntityTooSmall {
        message: "part 1 is too small".into(),
    });
    post_json(&app, &complete_uri, body.clone())
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::EntityTooSmall);

    store.fail_next(StoreError::unavailable(
        "CompleteMultipartUpload",
        "connection refused to 10.1.2.3 with secret-detail",
    ));
    let m = post_json(&app, &complete_uri, body.clone())
        .await
        .error(StatusCode::BAD_GATEWAY, ErrorCode::StoreUnavailable);
    assert!(
        !m.contains("secret-detail") && !m.contains("10.1.2.3"),
        "{m}"
    );

    // The upload is still open after all these failures and completes.
    let done: CompleteResponse = post_json(&app, &complete_uri, body).await.ok();
    assert_eq!(done.key, key);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let (app, _) = fake_app();
    let m = get(&app, "/s3/nothing-here")
        .await
        .error(StatusCode::NOT_FOUND, ErrorCode::InvalidRequest);
    assert!(m.contains("GET /s3/nothing-here"), "{m}");
    let m = post_json(&app, "/s3/params", "{}")
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::InvalidRequest);
    assert!(m.contains("POST"), "{m}");
}

#[tokio::test]
async fn routes_follow_a_custom_or_empty_prefix() {
    for prefix in ["/api/upload", ""] {
        let (app, _) = fake_app_with(Settings {
            route_prefix: prefix.to_owned(),
            ..Settings::default()
        });
        let r = post_json(&app, &format!("{prefix}/multipart"), r#"{"filename":"a"}"#).await;
        r.ok::<CreateMultipartResponse>();
        // The default prefix is not served any more; the path falls through to the pages.
        let old = post_json(&app, "/s3/multipart", r#"{"filename":"a"}"#).await;
        assert!(old.status.is_client_error(), "{}", old.status);
        assert_eq!(get(&app, "/healthz").await.status, StatusCode::OK);
    }
    let (app, _) = fake_app_with(Settings {
        route_prefix: "/api/upload".to_owned(),
        ..Settings::default()
    });
    get(&app, "/api/upload/nope")
        .await
        .error(StatusCode::NOT_FOUND, ErrorCode::InvalidRequest);
}

#[tokio::test]
async fn demo_page_and_wasm_package_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web");
    let pkg = dir.path().join("pkg");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(web.join("index.html"), "<h1>demo</h1>").unwrap();
    std::fs::write(pkg.join("s3_direct_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(pkg.join("s3_direct.js"), "export {}").unwrap();
    let (app, store) = fake_app_with(Settings {
        web_dir: web,
        pkg_dir: pkg,
        ..Settings::default()
    });

    let page = get(&app, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(&page.body[..], b"<h1>demo</h1>");
    let wasm = get(&app, "/pkg/s3_direct_bg.wasm").await;
    assert_eq!(wasm.status, StatusCode::OK);
    assert_eq!(wasm.headers[header::CONTENT_TYPE], "application/wasm");
    // Revalidated on every use, so a rebuilt package is never served stale.
    assert_eq!(wasm.headers[header::CACHE_CONTROL], "no-cache");
    let js = get(&app, "/pkg/s3_direct.js").await;
    assert!(
        js.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    assert_eq!(
        get(&app, "/missing.html").await.status,
        StatusCode::NOT_FOUND
    );
    assert!(store.calls().is_empty());
}

#[tokio::test]
async fn the_package_is_gzipped_for_browsers_that_take_it_and_revalidated_with_a_304() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let module: Vec<u8> = (0..64_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    std::fs::write(pkg.join("s3_direct_bg.wasm"), &module).unwrap();
    let (app, _) = fake_app_with(Settings {
        pkg_dir: pkg,
        ..Settings::default()
    });
    let request = |headers: &[(header::HeaderName, &str)]| {
        let mut req = axum::http::Request::get("/pkg/s3_direct_bg.wasm");
        for (name, value) in headers {
            req = req.header(name, *value);
        }
        req.body(axum::body::Body::empty()).unwrap()
    };
    let plain = send(&app, request(&[])).await;
    assert_eq!(plain.body.len(), module.len());
    assert!(plain.headers.get(header::CONTENT_ENCODING).is_none());
    let gzipped = send(&app, request(&[(header::ACCEPT_ENCODING, "gzip, br")])).await;
    assert_eq!(gzipped.status, StatusCode::OK);
    assert_eq!(gzipped.headers[header::CONTENT_ENCODING], "gzip");
    assert_eq!(gzipped.headers[header::CONTENT_TYPE], "application/wasm");
    assert!(
        gzipped.body.len() < module.len() / 4,
        "{} bytes",
        gzipped.body.len()
    );
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&gzipped.body[..]),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(unzipped, module);
    let modified = plain.headers[header::LAST_MODIFIED].to_str().unwrap();
    let again = send(
        &app,
        request(&[
            (header::ACCEPT_ENCODING, "gzip"),
            (header::IF_MODIFIED_SINCE, modified),
        ]),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
}

#[tokio::test]
async fn a_missing_web_dir_is_a_plain_404() {
    let (app, _) = fake_app_with(Settings {
        web_dir: "/nonexistent/web".into(),
        ..Settings::default()
    });
    let r = send(
        &app,
        axum::http::Request::get("/")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
