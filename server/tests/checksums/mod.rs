//! Part checksums end to end on real stores, as the client sends them:
//! - declared at create (`"checksum": "crc32"`): the upload is created with CRC32, each part is
//!   signed and PUT with its `x-amz-checksum-crc32`, completion passes each part's `ChecksumCRC32`,
//!   and the store answers the object's composite checksum;
//! - not declared (a client from before the declaration): the part still carries its checksum,
//!   and completion goes by ETag alone, which is what the store accepts for such an upload;
//! - the completion's answer is read back from the store (size, ETag), and a retried completion
//!   gets the same answer;
//! - with CRC32C parts, the whole object's CRC32C, combined from the parts' (`whole_file.rs`).
//!
//! Runs on the embedded store always, on Garage when `S3_DIRECT_TEST_GARAGE_ENDPOINT`,
//! `_ACCESS_KEY`, `_SECRET_KEY`, `_REGION` are set and on Ceph radosgw when
//! `S3_DIRECT_TEST_CEPH_*` are.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode as HttpStatus;
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::limits::MIB;
use s3_direct_protocol::wire::{
    ChecksumAlgorithm, CompleteResponse, CreateMultipartResponse, ListedPart, SignBatchResponse,
};
use s3_direct_server::{S3Store, Settings};
use s3s::crypto::{Checksum, Crc32};
use serde_json::json;

mod whole_file;

use crate::common::{
    Embedded, enc, get, open_app_on_new_bucket, open_state, post_json, store_from_env,
};

/// CRC-32 of 1 MiB of zero bytes, base64 of its 4 big-endian bytes.
const CRC32_OF_ZEROS: &str = "pzjqHA==";

/// PUTs `body` to part `n`'s URL with the headers its batch answer names; the part's ETag.
async fn put_signed(batch: &SignBatchResponse, n: u32, body: Vec<u8>) -> String {
    let mut put = crate::common::http()
        .put(&batch.presigned_urls[&n])
        .body(body);
    // Headers every signed part shares are in `headers`, the others in `partHeaders`.
    let own = batch.part_headers.get(&n).into_iter().flatten();
    for (name, value) in batch.headers.iter().chain(own) {
        if name != "content-length" {
            put = put.header(name, value);
        }
    }
    let res = put.send().await.unwrap();
    let status = res.status();
    let etag = res
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(status, HttpStatus::OK, "{}", res.text().await.unwrap());
    etag.expect("the part PUT answered no ETag")
}

/// An upload created for CRC32 part checksums, of a 5 MiB and a 1 MiB part of zeros. `reports`:
/// whether the store answers the composite checksum (Ceph 16 knows no `x-amz-checksum-*`).
async fn a_declared_crc32_upload_completes_with_its_composite_checksum(
    app: &Router,
    client: &aws_sdk_s3::Client,
    bucket: &str,
    reports: bool,
) {
    let body =
        json!({"filename": "zeros.bin", "size": 6 * MIB, "partSize": 5 * MIB, "checksum": "crc32"});
    let up: CreateMultipartResponse = post_json(app, "/s3/multipart", body.to_string()).await.ok();
    let (id, k) = (&up.upload_id, enc(&up.key));
    let sums = [
        STANDARD.encode(Crc32::checksum(&vec![0u8; (5 * MIB) as usize])),
        CRC32_OF_ZEROS.to_owned(),
    ];

    // A part without its checksum is not signed: the store would refuse it.
    let message = get(
        app,
        &format!("/s3/multipart/{id}/batch?key={k}&partNumbers=1,2"),
    )
    .await
    .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest);
    assert!(message.contains("crc32"), "{message}");

    let checksums = enc(&format!("1:crc32:{},2:crc32:{}", sums[0], sums[1]));
    let batch: SignBatchResponse = get(
        app,
        &format!("/s3/multipart/{id}/batch?key={k}&partNumbers=1,2&checksums={checksums}"),
    )
    .await
    .ok();
    let etags = [
        put_signed(&batch, 1, vec![0u8; (5 * MIB) as usize]).await,
        put_signed(&batch, 2, vec![0u8; MIB as usize]).await,
    ];
    // The store lists each part with its checksum, which a resuming client completes with.
    let listed: Vec<ListedPart> = get(app, &format!("/s3/multipart/{id}?key={k}")).await.ok();
    let listed: Vec<Option<&str>> = listed
        .iter()
        .map(|p| p.checksums.get(ChecksumAlgorithm::Crc32))
        .collect();
    if reports {
        assert_eq!(listed, [Some(sums[0].as_str()), Some(sums[1].as_str())]);
    } else {
        assert_eq!(listed.len(), 2);
    }
    let complete = format!("/s3/multipart/{id}/complete?key={k}");

    // Completion needs every part's checksum of the declared algorithm.
    let parts = json!({"parts": [
        {"PartNumber": 1, "ETag": etags[0], "ChecksumCRC32": sums[0]},
        {"PartNumber": 2, "ETag": etags[1]},
    ]});
    let message = post_json(app, &complete, parts.to_string())
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPartList);
    assert!(
        message.contains("part 2 has no crc32 checksum"),
        "{message}"
    );

    // Another algorithm's checksum is refused: the store would refuse it, or not check it.
    let parts = json!({"parts": [
        {"PartNumber": 1, "ETag": etags[0], "ChecksumCRC32": sums[0], "ChecksumSHA256": "x"},
        {"PartNumber": 2, "ETag": etags[1], "ChecksumCRC32": sums[1]},
    ]});
    let message = post_json(app, &complete, parts.to_string())
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPartList);
    assert!(
        message.contains("part 1 carries a sha256 checksum"),
        "{message}"
    );

    let parts = json!({"parts": [
        {"PartNumber": 1, "ETag": etags[0], "ChecksumCRC32": sums[0]},
        {"PartNumber": 2, "ETag": etags[1], "ChecksumCRC32": sums[1]},
    ]});
    let done: CompleteResponse = post_json(app, &complete, parts.to_string()).await.ok();
    // Read back from the store: its size, and its ETag (Ceph 16 answers the completion with an
    // empty one).
    assert_eq!(done.size, 6 * MIB);
    assert!(done.etag.ends_with("-2\""), "{}", done.etag);
    // The answer was lost: the retry gets the same one.
    let again: CompleteResponse = post_json(app, &complete, parts.to_string()).await.ok();
    // The same answer, with a receipt of its own (signed at another second).
    assert!(again.receipt.is_some() && done.receipt.is_some());
    let without_receipt = |r: &CompleteResponse| CompleteResponse {
        receipt: None,
        ..r.clone()
    };
    assert_eq!(without_receipt(&again), without_receipt(&done));
    let mut composite = Crc32::new();
    for sum in &sums {
        composite.update(&STANDARD.decode(sum).unwrap());
    }
    let expected = format!("crc32:{}-2", STANDARD.encode(composite.finalize()));
    if reports {
        assert_eq!(done.checksum.as_deref(), Some(expected.as_str()));
    } else {
        assert!(
            done.checksum.is_none() || done.checksum.as_deref() == Some(expected.as_str()),
            "{:?}",
            done.checksum
        );
    }
    let head = client
        .head_object()
        .bucket(bucket)
        .key(&up.key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some((6 * MIB) as i64));
}

/// A client that does not declare its part checksums (from before the declaration): the upload
/// is created without an algorithm, and completes by ETag (naming the part checksums is refused:
/// the store would refuse them for such an upload).
async fn an_undeclared_crc32_upload_completes(store: S3Store) {
    let client = store.client().clone();
    let bucket = store.config().bucket.clone();
    let app = s3_direct_server::app(open_state(Arc::new(store), Settings::default()));
    let body = json!({"filename": "zeros.bin", "size": MIB, "partSize": 5 * MIB});
    let up: CreateMultipartResponse = post_json(&app, "/s3/multipart", body.to_string())
        .await
        .ok();
    let (id, k) = (&up.upload_id, enc(&up.key));
    let batch: SignBatchResponse = get(
        &app,
        &format!(
            "/s3/multipart/{id}/batch?key={k}&partNumbers=1&checksums={}",
            enc(&format!("1:crc32:{CRC32_OF_ZEROS}"))
        ),
    )
    .await
    .ok();
    let etag = put_signed(&batch, 1, vec![0u8; MIB as usize]).await;
    let complete = format!("/s3/multipart/{id}/complete?key={k}");
    let parts =
        json!({"parts": [{"PartNumber": 1, "ETag": etag, "ChecksumCRC32": CRC32_OF_ZEROS}]});
    post_json(&app, &complete, parts.to_string())
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPartList);
    let parts = json!({"parts": [{"PartNumber": 1, "ETag": etag}]});
    let done: serde_json::Value = post_json(&app, &complete, parts.to_string()).await.ok();
    assert!(done["location"].is_string(), "{done}");
    let head = client
        .head_object()
        .bucket(&bucket)
        .key(&up.key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(MIB as i64));
}

async fn on_store(store: S3Store, reports: bool) {
    let app = open_app_on_new_bucket(&store).await;
    let client = store.client().clone();
    let bucket = store.config().bucket.clone();
    a_declared_crc32_upload_completes_with_its_composite_checksum(&app, &client, &bucket, reports)
        .await;
    whole_file::whole_file_crc32c(&app, &client, &bucket, reports).await;
    whole_file::single_put_crc32c(&store, &client, &bucket, reports).await;
    an_undeclared_crc32_upload_completes(store).await;
}

#[tokio::test]
async fn the_embedded_store_completes_declared_and_undeclared_checksummed_uploads() {
    let e = Embedded::start().await;
    a_declared_crc32_upload_completes_with_its_composite_checksum(
        &e.app,
        e.s3.client(),
        &e.s3.config().bucket,
        true,
    )
    .await;
    whole_file::whole_file_crc32c(&e.app, e.s3.client(), &e.s3.config().bucket, true).await;
    whole_file::single_put_crc32c(&e.s3, e.s3.client(), &e.s3.config().bucket, true).await;
}

#[tokio::test]
async fn garage_completes_declared_and_undeclared_checksummed_uploads() {
    let Some(store) = store_from_env("GARAGE", "ck") else {
        crate::common::store_not_configured("S3_DIRECT_TEST_GARAGE_ENDPOINT");
        return;
    };
    on_store(store, true).await;
}

#[tokio::test]
async fn ceph_completes_declared_and_undeclared_checksummed_uploads() {
    let Some(store) = store_from_env("CEPH", "ck") else {
        crate::common::store_not_configured("S3_DIRECT_TEST_CEPH_ENDPOINT");
        return;
    };
    on_store(store, false).await;
}

/// `--checksum auto` on Garage: it refuses a part with a wrong CRC32C, so CRC32C is asked for.
#[tokio::test]
async fn garage_gets_crc32c_by_default() {
    let Some(store) = store_from_env("GARAGE", "auto") else {
        crate::common::store_not_configured("S3_DIRECT_TEST_GARAGE_ENDPOINT");
        return;
    };
    crate::integrity::auto_on_a_real_store(store, true).await;
}

/// `--checksum auto` on Ceph 16: it stores a part with a wrong CRC32C (docs/stores.md,
/// "Integrity"), so MD5 is asked for, which it verifies.
#[tokio::test]
async fn ceph_gets_md5_by_default() {
    let Some(store) = store_from_env("CEPH", "auto") else {
        crate::common::store_not_configured("S3_DIRECT_TEST_CEPH_ENDPOINT");
        return;
    };
    crate::integrity::auto_on_a_real_store(store, false).await;
}
