//! Limits enforced by a real distributed store: Ceph radosgw. These tests run only when
//! `S3_DIRECT_TEST_CEPH_ENDPOINT`, `_ACCESS_KEY`, `_SECRET_KEY` (and optionally `_REGION`) are
//! set, e.g. from `tests/stores/ceph.sh start DIR`; otherwise they return at once.

use reqwest::StatusCode as HttpStatus;
use s3_direct_protocol::limits::MIB;
use s3_direct_protocol::wire::{CreateMultipartResponse, SignBatchResponse};
use serde_json::json;

use crate::common::{enc, get, open_app_on_new_bucket, post_json, store_from_env};

#[tokio::test]
async fn ceph_refuses_a_part_longer_than_signed_and_a_wrong_content_md5() {
    let Some(store) = store_from_env("CEPH", "sec") else {
        crate::common::store_not_configured("S3_DIRECT_TEST_CEPH_ENDPOINT");
        return;
    };
    let app = open_app_on_new_bucket(&store).await;
    let body = json!({"filename": "a.bin", "size": 6 * MIB, "partSize": 5 * MIB});
    let up: CreateMultipartResponse = post_json(&app, "/s3/multipart", body.to_string())
        .await
        .ok();
    let (id, k) = (&up.upload_id, enc(&up.key));
    // md5 of 1 MiB of zeros.
    let md5 = "ttgbNgpWctgMJ0MPORU+LA==";
    let batch: SignBatchResponse = get(
        &app,
        &format!(
            "/s3/multipart/{id}/batch?key={k}&partNumbers=1,2&checksums={}",
            enc(&format!("2:md5:{md5}"))
        ),
    )
    .await
    .ok();
    let client = crate::common::http();
    let res = client
        .put(&batch.presigned_urls[&1])
        .body(vec![0u8; (6 * MIB) as usize])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        HttpStatus::FORBIDDEN,
        "{}",
        res.text().await.unwrap()
    );
    let res = client
        .put(&batch.presigned_urls[&1])
        .body(vec![0u8; (5 * MIB) as usize])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        HttpStatus::OK,
        "{}",
        res.text().await.unwrap()
    );

    // Part 2 signed with the md5 of zeros: other bytes of the right length are refused.
    let send_part2 = |bytes: Vec<u8>| {
        let mut req = client.put(&batch.presigned_urls[&2]).body(bytes);
        for (name, value) in &batch.part_headers[&2] {
            if name != "content-length" {
                req = req.header(name, value);
            }
        }
        req.send()
    };
    let res = send_part2(vec![1u8; MIB as usize]).await.unwrap();
    assert_eq!(
        res.status(),
        HttpStatus::BAD_REQUEST,
        "{}",
        res.text().await.unwrap()
    );
    let res = send_part2(vec![0u8; MIB as usize]).await.unwrap();
    assert_eq!(
        res.status(),
        HttpStatus::OK,
        "{}",
        res.text().await.unwrap()
    );
}
