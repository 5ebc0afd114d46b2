//! Integrity on by default (`--checksum auto`): the server asks for a part checksum the store
//! verifies — CRC32C where a probe shows the store refuses a wrong one, MD5 elsewhere, never
//! none — and a client that declares nothing (Uppy) still uploads without checksums.
//!
//! Over the fake store playing a store that verifies, one that ignores, and one that is down;
//! over the embedded store (known to verify CRC32C, no probe); and, through
//! [`auto_on_a_real_store`], on Garage and Ceph from the `checksums` module.

use std::sync::Arc;
use std::time::Duration;

use s3_direct_protocol::limits::MIB;
use s3_direct_protocol::wire::{
    ChecksumAlgorithm, CompleteResponse, CreateMultipartResponse, SignBatchResponse,
};
use s3_direct_server::store::FakeCall;
use s3_direct_server::store::integrity::{
    PROBE_PREFIX, Verification, judge_probe, probe_by_put, probe_key,
};
use s3_direct_server::{
    AppState, ChecksumSetting, FakeStore, FakeVerification, S3Store, Settings, Store,
};
use serde_json::{Value, json};

use crate::common::{
    Embedded, create_bucket, enc, fake_app_with, get, no_uploads_left, open_state, post_json,
};

/// Creates an upload as the browser client does (`"checksum": "auto"`, first parts asked for).
async fn create_auto(app: &axum::Router) -> CreateMultipartResponse {
    let body = json!({"filename": "a.bin", "size": 12 * MIB, "partSize": 6 * MIB,
        "presignParts": 2, "checksum": "auto"});
    post_json(app, "/s3/multipart", body.to_string()).await.ok()
}

/// The algorithm the fake store last created an upload with.
fn created_with(store: &FakeStore) -> Option<ChecksumAlgorithm> {
    match store
        .calls()
        .into_iter()
        .rfind(|c| matches!(c, FakeCall::CreateMultipart(_)))
    {
        Some(FakeCall::CreateMultipart(upload)) => upload.checksum,
        _ => panic!("no create call"),
    }
}

#[tokio::test]
async fn a_default_server_asks_for_crc32c_where_the_store_refuses_a_wrong_one() {
    let (app, store) = fake_app_with(Settings::default());
    let created = create_auto(&app).await;
    assert_eq!(created.checksum, Some(ChecksumAlgorithm::Crc32c));
    // No part URL is signed before the client has the parts' checksums.
    assert!(created.presigned.is_none());
    assert_eq!(created_with(&store), Some(ChecksumAlgorithm::Crc32c));
    let probes = store.probes();
    assert_eq!(probes.len(), 1, "{probes:?}");
    assert_eq!(probes[0].1, ChecksumAlgorithm::Crc32c);
    assert!(probes[0].0.starts_with(PROBE_PREFIX) && !probes[0].0.starts_with("uploads/"));
    // Settled: later creates and small files ask for the same without probing again.
    let again = create_auto(&app).await;
    assert_eq!(again.checksum, Some(ChecksumAlgorithm::Crc32c));
    let small: Value = get(&app, "/s3/params?filename=a.txt&size=8").await.ok();
    assert_eq!(small["checksum"], "crc32c", "{small}");
    assert_eq!(store.probes().len(), 1);
    let ready: Value = get(&app, "/readyz").await.ok();
    assert_eq!(ready["checksum"]["algorithm"], "crc32c", "{ready}");
    assert_eq!(ready["checksum"]["settled"], true, "{ready}");
    assert!(
        ready["checksum"]["reason"]
            .as_str()
            .unwrap()
            .contains("refused a part with a wrong crc32c checksum (BadDigest)"),
        "{ready}"
    );
}

#[tokio::test]
async fn a_default_server_asks_for_md5_where_the_store_ignores_crc32c() {
    let (app, store) = fake_app_with(Settings::default());
    store.set_verification(ChecksumAlgorithm::Crc32c, FakeVerification::Ignores);
    let created = create_auto(&app).await;
    assert_eq!(created.checksum, Some(ChecksumAlgorithm::Md5));
    // MD5 needs no declaring: the upload is created without an algorithm.
    assert_eq!(created_with(&store), None);
    let small: Value = get(&app, "/s3/params?filename=a.txt&size=8").await.ok();
    assert_eq!(small["checksum"], "md5", "{small}");
    let ready: Value = get(&app, "/readyz").await.ok();
    assert_eq!(ready["checksum"]["algorithm"], "md5", "{ready}");
    assert_eq!(ready["checksum"]["settled"], true, "{ready}");
    assert_eq!(store.probes().len(), 1);
}

#[tokio::test]
async fn a_probe_that_cannot_run_means_md5_until_a_later_probe_succeeds() {
    let store = Arc::new(FakeStore::new());
    store.set_verification(ChecksumAlgorithm::Crc32c, FakeVerification::Unreachable);
    let state = open_state(
        store.clone(),
        Settings {
            checksum_retry: Duration::from_secs(3600),
            ..Settings::default()
        },
    );
    // At start: not blocked, and not "no integrity".
    let decision = state.decide_checksum().await;
    assert_eq!(decision.algorithm, Some(ChecksumAlgorithm::Md5));
    assert!(!decision.settled && decision.reason.contains("could not run"));
    // Within the retry interval no create probes again.
    let app = s3_direct_server::app(state);
    store.set_verification(ChecksumAlgorithm::Crc32c, FakeVerification::Verifies);
    assert_eq!(
        create_auto(&app).await.checksum,
        Some(ChecksumAlgorithm::Md5)
    );
    assert_eq!(store.probes().len(), 1);
    let ready: Value = get(&app, "/readyz").await.ok();
    assert_eq!(ready["checksum"]["settled"], false, "{ready}");

    // With the interval passed (zero here), the next create probes again and settles it.
    let store = Arc::new(FakeStore::new());
    store.set_verification(ChecksumAlgorithm::Crc32c, FakeVerification::Unreachable);
    let state = open_state(
        store.clone(),
        Settings {
            checksum_retry: Duration::ZERO,
            ..Settings::default()
        },
    );
    assert_eq!(
        state.decide_checksum().await.algorithm,
        Some(ChecksumAlgorithm::Md5)
    );
    let app = s3_direct_server::app(state);
    store.set_verification(ChecksumAlgorithm::Crc32c, FakeVerification::Verifies);
    assert_eq!(
        create_auto(&app).await.checksum,
        Some(ChecksumAlgorithm::Crc32c)
    );
    assert_eq!(store.probes().len(), 2);
    assert_eq!(created_with(&store), Some(ChecksumAlgorithm::Crc32c));
}

#[tokio::test]
async fn checksum_off_and_a_fixed_algorithm_need_no_probe() {
    let (app, store) = fake_app_with(Settings {
        checksum: ChecksumSetting::Off,
        ..Settings::default()
    });
    let created = create_auto(&app).await;
    assert_eq!(created.checksum, None);
    assert!(
        created.presigned.is_some(),
        "no checksum: the first URLs come with the answer"
    );
    let ready: Value = get(&app, "/readyz").await.ok();
    assert_eq!(ready["checksum"]["algorithm"], "off", "{ready}");
    let (app, fixed) = fake_app_with(Settings {
        checksum: ChecksumSetting::Use(ChecksumAlgorithm::Sha256),
        ..Settings::default()
    });
    assert_eq!(
        create_auto(&app).await.checksum,
        Some(ChecksumAlgorithm::Sha256)
    );
    assert!(store.probes().is_empty() && fixed.probes().is_empty());
}

/// Uppy declares no checksums: with a default server its upload is created without an algorithm,
/// its parts are signed without checksums, and it completes by ETag — here on the embedded store,
/// with real PUTs.
#[tokio::test]
async fn a_client_that_declares_nothing_uploads_without_checksums_on_a_default_server() {
    let e = Embedded::start().await;
    let body = json!({"filename": "uppy.bin", "type": "application/octet-stream"});
    let up: CreateMultipartResponse = post_json(&e.app, "/s3/multipart", body.to_string())
        .await
        .ok();
    // The answer names what the server would like; Uppy does not read it.
    assert_eq!(up.checksum, Some(ChecksumAlgorithm::Crc32c));
    let (id, k) = (&up.upload_id, enc(&up.key));
    let batch: SignBatchResponse = get(
        &e.app,
        &format!("/s3/multipart/{id}/batch?key={k}&partNumbers=1"),
    )
    .await
    .ok();
    let data = vec![7u8; 1000];
    let res = crate::common::http()
        .put(&batch.presigned_urls[&1])
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let parts = json!({"parts": [{"PartNumber": 1, "ETag": etag}]});
    let done: CompleteResponse = post_json(
        &e.app,
        &format!("/s3/multipart/{id}/complete?key={k}"),
        parts.to_string(),
    )
    .await
    .ok();
    assert_eq!(done.size, 1000);
    assert!(done.checksum.is_none(), "{:?}", done.checksum);
}

#[tokio::test]
async fn the_embedded_store_gets_crc32c_without_a_probe_and_refuses_every_wrong_checksum() {
    let e = Embedded::start().await;
    let state = open_state(Arc::new(e.s3.clone()), Settings::default());
    let decision = state.decide_checksum().await;
    assert_eq!(decision.algorithm, Some(ChecksumAlgorithm::Crc32c));
    assert!(decision.settled && decision.reason.contains("no probe needed"));
    assert!(e.open_uploads().is_empty(), "a probe ran");
    // The probe itself, as doctor runs it: every algorithm's wrong checksum is refused, and
    // nothing is left behind.
    for algorithm in [
        ChecksumAlgorithm::Md5,
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Sha256,
    ] {
        // Through the API endpoint (the server's probe), and as a browser sends it (a presigned
        // URL, the default for stores that do not say otherwise).
        let answer = e.s3.probe_checksum(&probe_key(), algorithm).await.unwrap();
        let by_put = probe_by_put(&e.s3, &probe_key(), algorithm).await.unwrap();
        for answer in [answer, by_put] {
            assert!(
                matches!(judge_probe(&answer), Verification::Refuses(_)),
                "{algorithm}: {answer:?}"
            );
        }
    }
    assert!(e.open_uploads().is_empty(), "{:?}", e.open_uploads());
    assert!(e.stored_parts().is_empty(), "{:?}", e.stored_parts());
}

/// On a real store (a fresh bucket, created here): the CRC32C probe's verdict, `auto`'s choice
/// (`verifies_crc`: CRC32C, else MD5), MD5 refused when wrong, nothing left behind.
pub async fn auto_on_a_real_store(store: S3Store, verifies_crc: bool) {
    create_bucket(&store).await;
    let crc = store
        .probe_checksum(&probe_key(), ChecksumAlgorithm::Crc32c)
        .await
        .unwrap();
    let md5 = store
        .probe_checksum(&probe_key(), ChecksumAlgorithm::Md5)
        .await
        .unwrap();
    assert!(
        matches!(judge_probe(&md5), Verification::Refuses(_)),
        "{md5:?}"
    );
    if verifies_crc {
        assert!(
            matches!(judge_probe(&crc), Verification::Refuses(_)),
            "{crc:?}"
        );
    } else {
        assert_eq!(judge_probe(&crc), Verification::Stores, "{crc:?}");
    }
    let state: AppState = open_state(Arc::new(store.clone()), Settings::default());
    let decision = state.decide_checksum().await;
    let expected = if verifies_crc {
        ChecksumAlgorithm::Crc32c
    } else {
        ChecksumAlgorithm::Md5
    };
    assert_eq!(decision.algorithm, Some(expected), "{decision:?}");
    assert!(decision.settled, "{decision:?}");
    no_uploads_left(&store).await;
}
