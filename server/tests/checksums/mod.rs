//! Part checksums end to end on real stores: a part signed with `x-amz-checksum-crc32`, PUT with
//! that header, and the upload completed with the part's `ChecksumCRC32` as the client sends it.
//! Runs on Garage when `S3_DIRECT_TEST_GARAGE_ENDPOINT`, `_ACCESS_KEY`, `_SECRET_KEY`, `_REGION`
//! are set and on Ceph radosgw when `S3_DIRECT_TEST_CEPH_*` are; otherwise returns at once.

use std::sync::Arc;

use reqwest::StatusCode as HttpStatus;
use s3_direct_protocol::limits::MIB;
use s3_direct_protocol::wire::{CreateMultipartResponse, SignBatchResponse};
use s3_direct_server::{S3Store, Settings};
use serde_json::json;

use crate::common::{enc, get, open_state, post_json, store_from_env};

/// CRC-32 of 1 MiB of zero bytes, base64 of its 4 big-endian bytes.
const CRC32_OF_ZEROS: &str = "pzjqHA==";

async fn a_crc32_checksummed_upload_completes(store: S3Store) {
    store
        .client()
        .create_bucket()
        .bucket(&store.config().bucket)
        .send()
        .await
        .unwrap();
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
    let mut put = crate::common::http()
        .put(&batch.presigned_urls[&1])
        .body(vec![0u8; MIB as usize]);
    // Headers every signed part shares are in `headers`, the others in `partHeaders`.
    let own = batch.part_headers.get(&1).into_iter().flatten();
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
    let parts = json!({"parts": [{"PartNumber": 1, "ETag": etag.unwrap(), "ChecksumCRC32": CRC32_OF_ZEROS}]});
    let done: serde_json::Value = post_json(
        &app,
        &format!("/s3/multipart/{id}/complete?key={k}"),
        parts.to_string(),
    )
    .await
    .ok();
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

#[tokio::test]
async fn garage_completes_an_upload_whose_parts_carry_crc32_checksums() {
    let Some(store) = store_from_env("GARAGE", "ck") else {
        eprintln!("S3_DIRECT_TEST_GARAGE_ENDPOINT not set; skipping");
        return;
    };
    a_crc32_checksummed_upload_completes(store).await;
}

#[tokio::test]
async fn ceph_completes_an_upload_whose_parts_carry_crc32_checksums() {
    let Some(store) = store_from_env("CEPH", "ck") else {
        eprintln!("S3_DIRECT_TEST_CEPH_ENDPOINT not set; skipping");
        return;
    };
    a_crc32_checksummed_upload_completes(store).await;
}
