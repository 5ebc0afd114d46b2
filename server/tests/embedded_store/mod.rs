//! The real path: the app over `S3Store` (aws-sdk-s3) against the embedded s3s-fs store on a
//! random loopback port, with parts PUT over HTTP to the presigned URLs as a browser would, and
//! the data dir inspected to prove what was (and was not) stored.

mod completion;
mod folders;
mod long_names;
mod multipart_path;
mod refusals;
mod small;
mod streams;
mod urls;

use std::sync::Arc;

use s3_direct_protocol::limits::MIB;
use s3_direct_protocol::wire::{CompleteResponse, ListedPart, SignBatchResponse};
use s3_direct_server::{ChecksumSetting, OpenAuth, Settings, Store};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{BUCKET, Embedded, create, delete, enc, get, post_json, store_id, test_bytes};

/// PUTs `body` to a presigned URL like a browser would (with an Origin, so CORS applies).
async fn put(url: &str, body: Vec<u8>) -> reqwest::Response {
    crate::common::http()
        .put(url)
        .header("origin", "http://127.0.0.1:8080")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// PUTs a part and returns its ETag, asserting success.
async fn put_part(url: &str, body: Vec<u8>) -> String {
    let res = put(url, body).await;
    let status = res.status();
    let etag = res
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = res.text().await.unwrap();
    assert_eq!(status, 200, "PUT {url}: {text}");
    etag.expect("the part PUT answered no ETag")
}

async fn sign_batch(e: &Embedded, key: &str, upload_id: &str, numbers: &str) -> SignBatchResponse {
    get(
        &e.app,
        &format!(
            "/s3/multipart/{upload_id}/batch?key={}&partNumbers={numbers}",
            enc(key)
        ),
    )
    .await
    .ok()
}

/// Signs parts of an upload with a size bound: each with its length (`N`, `BYTES`).
async fn sign_sized(
    e: &Embedded,
    key: &str,
    upload_id: &str,
    parts: &[(u32, u64)],
) -> SignBatchResponse {
    let numbers: Vec<String> = parts.iter().map(|(n, _)| n.to_string()).collect();
    let lengths: Vec<String> = parts.iter().map(|(n, l)| format!("{n}:{l}")).collect();
    let numbers = format!("{}&lengths={}", numbers.join(","), enc(&lengths.join(",")));
    sign_batch(e, key, upload_id, &numbers).await
}

async fn complete(
    e: &Embedded,
    key: &str,
    upload_id: &str,
    parts: &[(u32, &str)],
) -> crate::common::Reply {
    let parts: Vec<Value> = parts
        .iter()
        .map(|(n, etag)| json!({"PartNumber": n, "ETag": etag}))
        .collect();
    post_json(
        &e.app,
        &format!("/s3/multipart/{upload_id}/complete?key={}", enc(key)),
        json!({ "parts": parts }).to_string(),
    )
    .await
}

/// The claims of `receipt`, verified as a backend does: with the key its `kid` names in the JWK
/// Set the server publishes.
async fn verified_receipt(e: &Embedded, receipt: Option<&str>) -> s3_direct_server::ReceiptClaims {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
    let receipt = receipt.expect("a completion answers a receipt");
    let jwks: JwkSet = get(&e.app, "/.well-known/jwks.json").await.ok();
    let kid = jsonwebtoken::decode_header(receipt).unwrap().kid.unwrap();
    let key = DecodingKey::from_jwk(jwks.find(&kid).expect("the kid is published")).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["s3-direct"]);
    validation.set_required_spec_claims(&["iss", "sub", "iat"]);
    validation.validate_exp = false;
    jsonwebtoken::decode(receipt, &key, &validation)
        .unwrap()
        .claims
}

async fn get_object(e: &Embedded, key: &str) -> (Vec<u8>, Option<String>) {
    let out =
        e.s3.client()
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
    let content_type = out.content_type().map(str::to_owned);
    let bytes = out.body.collect().await.unwrap().into_bytes().to_vec();
    (bytes, content_type)
}

#[tokio::test]
async fn full_multipart_upload_through_presigned_urls() {
    let e = Embedded::start().await;
    let body = json!({"filename": "video.mp4", "type": "video/mp4", "size": 11 * MIB + 1234});
    let created: s3_direct_protocol::wire::CreateMultipartResponse =
        post_json(&e.app, "/s3/multipart", body.to_string())
            .await
            .ok();
    assert_eq!(created.bucket, BUCKET);
    let (key, upload_id) = (created.key, created.upload_id);
    assert_eq!(e.open_uploads(), [store_id(&upload_id)]);

    let data = test_bytes((11 * MIB + 1234) as usize, 7);
    let chunks = [
        &data[..(5 * MIB) as usize],
        &data[(5 * MIB) as usize..(10 * MIB) as usize],
        &data[(10 * MIB) as usize..],
    ];
    // A declared size without a part size: the client names each part's length.
    let lengths = [(1, 5 * MIB), (2, 5 * MIB), (3, MIB + 1234)];
    let batch = sign_sized(&e, &key, &upload_id, &lengths).await;
    assert_eq!(batch.presigned_urls.len(), 3);
    assert!(batch.headers.is_empty(), "{:?}", batch.headers);
    let mut etags = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let n = u32::try_from(i + 1).unwrap();
        let url = &batch.presigned_urls[&n];
        let lower = url.to_ascii_lowercase();
        assert!(!lower.contains("x-amz-checksum"), "{url}");
        assert!(!lower.contains("x-amz-sdk-checksum-algorithm"), "{url}");
        let etag = put_part(url, chunk.to_vec()).await;
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        etags.push(etag);
    }

    let listed: Vec<ListedPart> = get(
        &e.app,
        &format!("/s3/multipart/{upload_id}?key={}", enc(&key)),
    )
    .await
    .ok();
    let sizes: Vec<(u32, u64)> = listed.iter().map(|p| (p.part_number, p.size)).collect();
    assert_eq!(sizes, [(1, 5 * MIB), (2, 5 * MIB), (3, MIB + 1234)]);
    let listed_etags: Vec<String> = listed
        .iter()
        .map(|p| format!("\"{}\"", p.etag.trim_matches('"')))
        .collect();
    assert_eq!(listed_etags, etags);

    let parts: Vec<(u32, &str)> = etags
        .iter()
        .enumerate()
        .map(|(i, t)| (u32::try_from(i + 1).unwrap(), t.as_str()))
        .collect();
    let done: CompleteResponse = complete(&e, &key, &upload_id, &parts).await.ok();
    assert_eq!(done.key, key);
    assert_eq!(done.bucket, BUCKET);
    assert!(
        done.etag.starts_with('"') && done.etag.ends_with("-3\""),
        "{}",
        done.etag
    );
    assert_eq!(done.size, 11 * MIB + 1234);
    assert!(
        done.location
            .starts_with(&format!("{}/{BUCKET}/uploads/", e.store.endpoint())),
        "{}",
        done.location
    );
    let receipt = verified_receipt(&e, done.receipt.as_deref()).await;
    assert_eq!(
        (receipt.key.as_str(), receipt.size, receipt.etag.as_str()),
        (key.as_str(), done.size, done.etag.as_str())
    );
    assert_eq!(
        (
            receipt.bucket.as_str(),
            receipt.sub.as_str(),
            receipt.content_type.as_str()
        ),
        (BUCKET, "anonymous", "video/mp4")
    );
    assert_eq!(receipt.upload_id, store_id(&upload_id));

    let (stored, content_type) = get_object(&e, &key).await;
    assert_eq!(stored.len(), data.len());
    assert_eq!(Sha256::digest(&stored), Sha256::digest(&data));
    assert_eq!(content_type.as_deref(), Some("video/mp4"));
    assert!(e.open_uploads().is_empty());
    assert!(e.stored_parts().is_empty());
}

#[tokio::test]
async fn the_create_answer_can_bring_the_first_part_urls() {
    // Part URLs come with the create answer only when no part checksum is asked for (a URL signs
    // its part's checksum, which the client has not computed yet).
    let e = Embedded::start_with(
        Settings {
            checksum: ChecksumSetting::Off,
            ..Settings::default()
        },
        Arc::new(OpenAuth),
    )
    .await;
    let size = 11 * MIB + 1234;
    let body = json!({"filename": "v.bin", "size": size, "partSize": 5 * MIB, "presignParts": 12});
    let created: s3_direct_protocol::wire::CreateMultipartResponse =
        post_json(&e.app, "/s3/multipart", body.to_string())
            .await
            .ok();
    let batch = created
        .presigned
        .expect("the create answer signs the first parts");
    // Asked for 12, the plan has 3.
    assert_eq!(
        batch.presigned_urls.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(batch.expires, Some(900));
    assert_eq!(
        batch.part_headers[&1]["content-length"],
        (5 * MIB).to_string()
    );
    assert_eq!(
        batch.part_headers[&3]["content-length"],
        (MIB + 1234).to_string()
    );

    let data = test_bytes(size as usize, 3);
    let mut etags = Vec::new();
    for (n, url) in &batch.presigned_urls {
        let start = (u64::from(*n) - 1) * 5 * MIB;
        let end = (start + 5 * MIB).min(size);
        etags.push((
            *n,
            put_part(url, data[start as usize..end as usize].to_vec()).await,
        ));
    }
    let parts: Vec<(u32, &str)> = etags.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let _: CompleteResponse = complete(&e, &created.key, &created.upload_id, &parts)
        .await
        .ok();
    let (stored, _) = get_object(&e, &created.key).await;
    assert_eq!(Sha256::digest(&stored), Sha256::digest(&data));

    // Without `presignParts`, nothing is signed ahead.
    let plain: serde_json::Value = post_json(
        &e.app,
        "/s3/multipart",
        json!({"filename": "w.bin"}).to_string(),
    )
    .await
    .ok();
    assert!(plain.get("presigned").is_none(), "{plain}");
}

#[tokio::test]
async fn a_unicode_file_name_round_trips_into_the_stored_key() {
    let e = Embedded::start().await;
    let name = "ñ 日本 🎉 a+b%20.bin";
    let (key, upload_id) = create(&e.app, name).await;
    assert!(key.ends_with(&format!("/{name}")), "{key}");
    let batch = sign_batch(&e, &key, &upload_id, "1").await;
    let etag = put_part(&batch.presigned_urls[&1], b"unicode".to_vec()).await;
    let done: CompleteResponse = complete(&e, &key, &upload_id, &[(1, &etag)]).await.ok();
    assert_eq!(done.key, key);
    let (stored, _) = get_object(&e, &key).await;
    assert_eq!(stored, b"unicode");
    let listed =
        e.s3.client()
            .list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, [key.as_str()]);
}

#[tokio::test]
async fn list_parts_returns_more_than_one_thousand_parts_in_order() {
    // s3s-fs answers ListParts in one page, so this checks our sorting and the real answer shape
    // for a long list rather than the paging loop itself (covered against Ceph/Garage in tests/).
    let e = Embedded::start().await;
    let (key, upload_id) = create(&e.app, "many.bin").await;
    let numbers: Vec<String> = (1..=1000).map(|n| n.to_string()).collect();
    let batch = sign_batch(&e, &key, &upload_id, &numbers.join(",")).await;
    let batch2 = sign_batch(&e, &key, &upload_id, "1001,1002").await;
    let client = crate::common::http();
    for url in batch
        .presigned_urls
        .values()
        .chain(batch2.presigned_urls.values())
    {
        let res = client.put(url).body(vec![1u8]).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    let listed = e.s3.list_parts(&key, store_id(&upload_id)).await.unwrap();
    assert_eq!(listed.len(), 1002);
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].part_number < w[1].part_number)
    );
}

#[tokio::test]
async fn abort_deletes_the_upload_and_its_parts() {
    let e = Embedded::start().await;
    let (key, upload_id) = create(&e.app, "a.bin").await;
    let batch = sign_batch(&e, &key, &upload_id, "1").await;
    put_part(&batch.presigned_urls[&1], b"part".to_vec()).await;
    assert_eq!(e.stored_parts().len(), 1);
    let v: Value = delete(
        &e.app,
        &format!("/s3/multipart/{upload_id}?key={}", enc(&key)),
    )
    .await
    .ok();
    assert_eq!(v, json!({}));
    assert!(e.open_uploads().is_empty());
    assert!(e.stored_parts().is_empty());
    assert!(e.objects().is_empty());
}
