//! The whole-file CRC32C on real stores: an upload with CRC32C parts completes with `crc32c`, in
//! the answer and in the receipt, equal to the CRC32C of the object's bytes read back, for a
//! fixed plan (full parts and a short last one) and for an upload without a declared size, whose
//! part lengths come from the store's listing. Ceph 16 ignores CRC checksums (docs/stores.md,
//! "Integrity"): there the upload completes and no whole-file CRC is claimed. A file sent as one
//! PUT with `x-amz-checksum-crc32c` is read back (HeadObject) with that whole-file value, which
//! `whole_file::of_single_put` turns into the same claim (none on Ceph 16).

use axum::Router;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use s3_direct_protocol::limits::MIB;
use s3_direct_protocol::wire::{CompleteResponse, CreateMultipartResponse, SignBatchResponse};
use s3_direct_server::{Store, whole_file};
use serde_json::{Value, json};

use super::put_signed;
use crate::common::{enc, get, post_json};

/// Deterministic bytes that are not all alike.
fn data(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i + seed).wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

/// The claims of a receipt (its signature is checked by `embedded_store` and the browser tests).
fn receipt_claims(receipt: Option<&str>) -> Value {
    let payload = receipt
        .expect("a completion answers a receipt")
        .split('.')
        .nth(1)
        .unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Uploads `parts` (their bytes, in order) with CRC32C part checksums and completes; `create`
/// is the create request's body.
async fn upload_crc32c(app: &Router, create: Value, parts: &[Vec<u8>]) -> CompleteResponse {
    let up: CreateMultipartResponse = post_json(app, "/s3/multipart", create.to_string())
        .await
        .ok();
    let (id, k) = (&up.upload_id, enc(&up.key));
    let sums: Vec<String> = parts
        .iter()
        .map(|p| STANDARD.encode(crc32c::crc32c(p).to_be_bytes()))
        .collect();
    let numbers: Vec<String> = (1..=parts.len()).map(|n| n.to_string()).collect();
    let checksums: Vec<String> = sums
        .iter()
        .zip(1..)
        .map(|(s, n)| format!("{n}:crc32c:{s}"))
        .collect();
    let lengths: Vec<String> = (1..)
        .zip(parts)
        .map(|(n, p)| format!("{n}:{}", p.len()))
        .collect();
    let batch: SignBatchResponse = get(
        app,
        &format!(
            "/s3/multipart/{id}/batch?key={k}&partNumbers={}&lengths={}&checksums={}",
            numbers.join(","),
            enc(&lengths.join(",")),
            enc(&checksums.join(","))
        ),
    )
    .await
    .ok();
    let mut named = Vec::new();
    for (n, (body, sum)) in (1..).zip(parts.iter().zip(&sums)) {
        let etag = put_signed(&batch, n, body.clone()).await;
        named.push(json!({"PartNumber": n, "ETag": etag, "ChecksumCRC32C": sum}));
    }
    let complete = format!("/s3/multipart/{id}/complete?key={k}");
    post_json(app, &complete, json!({ "parts": named }).to_string())
        .await
        .ok()
}

/// The CRC32C of the object under `key`, read back from the store, in S3's base64 form.
async fn crc32c_of_object(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let bytes = out.body.collect().await.unwrap().into_bytes();
    STANDARD.encode(crc32c::crc32c(&bytes).to_be_bytes())
}

/// `verifies`: whether the store verifies CRC32C part checksums (all but Ceph 16).
pub async fn whole_file_crc32c(
    app: &Router,
    client: &aws_sdk_s3::Client,
    bucket: &str,
    verifies: bool,
) {
    let full = (5 * MIB) as usize;
    // A fixed plan: two 5 MiB parts and a short last one.
    let parts = [data(full, 1), data(full, 2), data(12_345, 3)];
    let size: usize = parts.iter().map(Vec::len).sum();
    let create =
        json!({"filename": "clip.bin", "size": size, "partSize": full, "checksum": "crc32c"});
    // No declared size: the lengths come from the store's listing.
    let unplanned = [data(full, 4), data(777, 5)];
    let create_unplanned = json!({"filename": "stream.bin", "checksum": "crc32c"});
    for (create, parts) in [(create, &parts[..]), (create_unplanned, &unplanned[..])] {
        let done = upload_crc32c(app, create, parts).await;
        let claims = receipt_claims(done.receipt.as_deref());
        if !verifies {
            assert_eq!(
                done.whole_file.crc32c, None,
                "Ceph 16 did not check the part CRCs"
            );
            assert!(claims.get("crc32c").is_none(), "{claims}");
            continue;
        }
        let whole: Vec<u8> = parts.concat();
        let expected = STANDARD.encode(crc32c::crc32c(&whole).to_be_bytes());
        assert_eq!(crc32c_of_object(client, bucket, &done.key).await, expected);
        assert_eq!(done.whole_file.crc32c.as_deref(), Some(expected.as_str()));
        assert_eq!(done.whole_file.crc32, None);
        assert_eq!(claims["crc32c"], expected.as_str(), "{claims}");
        // The composite checksum is another value, of the part CRCs.
        let composite = done
            .checksum
            .expect("the store reports the composite checksum");
        assert!(
            composite.ends_with(&format!("-{}", parts.len())),
            "{composite}"
        );
        assert_eq!(claims["checksum"], composite.as_str());
    }
}

/// A file sent as one PUT with its CRC32C: the store's HeadObject reports it (`crc32c:BASE64`,
/// no `-N`), and `of_single_put` of that is the file's CRC32C. `verifies` as above.
pub async fn single_put_crc32c(
    store: &dyn Store,
    client: &aws_sdk_s3::Client,
    bucket: &str,
    verifies: bool,
) {
    let body = data(123_457, 6);
    let expected = STANDARD.encode(crc32c::crc32c(&body).to_be_bytes());
    let key = "single/clip.bin";
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .checksum_crc32_c(&expected)
        .body(body.into())
        .send()
        .await
        .unwrap();
    let head = store
        .head_object(key)
        .await
        .unwrap()
        .expect("the object is stored");
    let whole = whole_file::of_single_put(head.checksum.as_deref());
    if verifies {
        assert_eq!(head.checksum, Some(format!("crc32c:{expected}")));
        assert_eq!(whole.crc32c, Some(expected));
    } else {
        assert_eq!(whole.crc32c, None, "{:?}", head.checksum);
    }
}
