//! The real path: the app over `S3Store` (aws-sdk-s3) against the embedded s3s-fs store on a
//! random loopback port, with parts PUT over HTTP to the presigned URLs as a browser would, and
//! the data dir inspected to prove what was (and was not) stored.

mod completion;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::limits::MIB;
use s3_direct_protocol::wire::{
    CompleteResponse, ListedPart, SignBatchResponse, SignPartResponse, SinglePutParams,
};
use s3_direct_server::store::PartSigning;
use s3_direct_server::{ChecksumSetting, OpenAuth, Settings, Store};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{
    BUCKET, Embedded, anon_upload_id, create, delete, enc, get, post_json, store_id, test_bytes,
};

mod long_names;
mod small;

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
async fn part_urls_answer_cors_and_expose_the_etag() {
    let e = Embedded::start().await;
    let (key, upload_id) = create(&e.app, "a.bin").await;
    let signed: SignPartResponse = get(
        &e.app,
        &format!("/s3/multipart/{upload_id}/1?key={}", enc(&key)),
    )
    .await
    .ok();
    let client = crate::common::http();
    let preflight = client
        .request(reqwest::Method::OPTIONS, &signed.url)
        .header("origin", "http://localhost:8080")
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allow = preflight.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(allow.contains("PUT"), "{allow}");

    let res = put(&signed.url, b"hello".to_vec()).await;
    assert_eq!(res.status(), 200);
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("etag"), "{exposed}");
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn tampered_part_urls_are_refused() {
    let e = Embedded::start().await;
    let (key, upload_id) = create(&e.app, "a.bin").await;
    let signed: SignPartResponse = get(
        &e.app,
        &format!("/s3/multipart/{upload_id}/1?key={}", enc(&key)),
    )
    .await
    .ok();

    // Flip the last hex digit of the signature.
    let (head, sig) = signed.url.rsplit_once("X-Amz-Signature=").unwrap();
    let (sig, tail) = sig.split_at(64);
    let last = if sig.ends_with('0') { '1' } else { '0' };
    let bad_sig = format!("{head}X-Amz-Signature={}{last}{tail}", &sig[..63]);
    let res = put(&bad_sig, b"x".to_vec()).await;
    assert_eq!(res.status(), 403, "{}", res.text().await.unwrap());

    // Another part number under the same signature.
    assert!(signed.url.contains("partNumber=1&"), "{}", signed.url);
    let other_part = signed.url.replace("partNumber=1&", "partNumber=2&");
    let res = put(&other_part, b"x".to_vec()).await;
    assert_eq!(res.status(), 403, "{}", res.text().await.unwrap());

    assert!(e.stored_parts().is_empty(), "{:?}", e.stored_parts());
    // The genuine URL still works.
    put_part(&signed.url, b"x".to_vec()).await;
    assert_eq!(e.stored_parts().len(), 1);
}

#[tokio::test]
async fn expired_part_urls_are_refused() {
    let e = Embedded::start().await;
    let (key, upload_id) = create(&e.app, "a.bin").await;
    // Signed an hour ago for one second: long expired, without waiting.
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let expired =
        e.s3.presign_part_at(
            &key,
            store_id(&upload_id),
            1,
            an_hour_ago,
            Duration::from_secs(1),
            &PartSigning::default(),
        )
        .await
        .unwrap();
    assert!(expired.url.contains("X-Amz-Expires=1&"), "{}", expired.url);
    let res = put(&expired.url, b"x".to_vec()).await;
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("expired"));
    // The same part signed now is accepted (for a minute: X-Amz-Date has whole seconds, so a
    // one-second URL may expire before a loaded machine sends it).
    let fresh =
        e.s3.presign_part_at(
            &key,
            store_id(&upload_id),
            1,
            SystemTime::now(),
            Duration::from_secs(60),
            &PartSigning::default(),
        )
        .await
        .unwrap();
    put_part(&fresh.url, b"x".to_vec()).await;
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
async fn single_put_params_upload_a_small_file() {
    let e = Embedded::start().await;
    let params: SinglePutParams = get(
        &e.app,
        "/s3/params?filename=note.txt&type=text%2Fplain&method=PUT",
    )
    .await
    .ok();
    assert_eq!(params.method, "PUT");
    assert!(
        !params.url.to_ascii_lowercase().contains("x-amz-checksum"),
        "{}",
        params.url
    );
    let mut req = crate::common::http().put(&params.url).body("hi there");
    for (name, value) in &params.headers {
        req = req.header(name, value);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let (stored, content_type) = get_object(&e, &params.key).await;
    assert_eq!(stored, b"hi there");
    assert_eq!(content_type.as_deref(), Some("text/plain"));
}

/// The queue's single PUTs: the file's metadata (`metadata[name]=value`, as Uppy sends it) and
/// an MD5 (`checksum=md5:…`) are signed into the URL, answered as headers to send, and stored.
#[tokio::test]
async fn single_put_params_sign_metadata_length_and_checksum() {
    let e = Embedded::start().await;
    let body = b"hi there";
    let md5 = "/TPi6K08sb3T6o9WM/z1xw==";
    let params: SinglePutParams = get(
        &e.app,
        &format!(
            "/s3/params?filename=note.txt&type=text%2Fplain&size={}&metadata%5BOrigin%5D=queue\
             &checksum={}",
            body.len(),
            enc(&format!("md5:{md5}"))
        ),
    )
    .await
    .ok();
    assert_eq!(
        params.headers["x-amz-meta-origin"], "queue",
        "names are lowercased"
    );
    assert_eq!(params.headers["content-md5"], md5);
    assert_eq!(params.headers["content-length"], body.len().to_string());
    let mut req = crate::common::http().put(&params.url).body(body.to_vec());
    for (name, value) in &params.headers {
        req = req.header(name, value);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let head =
        e.s3.client()
            .head_object()
            .bucket(BUCKET)
            .key(&params.key)
            .send()
            .await
            .unwrap();
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("origin"))
            .map(String::as_str),
        Some("queue")
    );

    // Metadata a header cannot carry, and a checksum that is not one, are refused up front.
    for query in [
        "metadata%5Bbad%20name%5D=x",
        "checksum=md5%3Anot-base64",
        "checksum=crc64%3AAAAA",
    ] {
        let r = get(&e.app, &format!("/s3/params?filename=n.txt&{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}");
    }
}

#[tokio::test]
async fn unknown_upload_ids_are_no_such_upload() {
    let e = Embedded::start().await;
    let (key, _) = create(&e.app, "a.bin").await;
    let k = enc(&key);
    for id in ["8d1f3c1e-3a43-4f4e-9a64-8c1f7f0b8a55", "not-a-uuid"] {
        // A genuine token for an upload the store does not hold.
        let id = &anon_upload_id(id, &key);
        get(&e.app, &format!("/s3/multipart/{id}?key={k}"))
            .await
            .error(StatusCode::NOT_FOUND, ErrorCode::NoSuchUpload);
        let r = complete(&e, &key, id, &[(1, "\"abc\"")]).await;
        r.error(StatusCode::NOT_FOUND, ErrorCode::NoSuchUpload);
        delete(&e.app, &format!("/s3/multipart/{id}?key={k}"))
            .await
            .error(StatusCode::NOT_FOUND, ErrorCode::NoSuchUpload);
    }
    assert!(e.objects().is_empty());
    assert_eq!(e.open_uploads().len(), 1);
}

#[tokio::test]
async fn an_upload_id_only_works_with_its_own_key() {
    let e = Embedded::start().await;
    let (key, upload_id) = create(&e.app, "mine.bin").await;
    let (other_key, _) = create(&e.app, "other.bin").await;
    let batch = sign_batch(&e, &key, &upload_id, "1").await;
    let etag = put_part(&batch.presigned_urls[&1], b"mine".to_vec()).await;

    // A well-formed key of another upload: the upload token is bound to its own key, so the
    // server refuses before the store is asked.
    complete(&e, &other_key, &upload_id, &[(1, &etag)])
        .await
        .error(StatusCode::FORBIDDEN, ErrorCode::InvalidUploadToken);
    get(
        &e.app,
        &format!("/s3/multipart/{upload_id}?key={}", enc(&other_key)),
    )
    .await
    .error(StatusCode::FORBIDDEN, ErrorCode::InvalidUploadToken);
    delete(
        &e.app,
        &format!("/s3/multipart/{upload_id}?key={}", enc(&other_key)),
    )
    .await
    .error(StatusCode::FORBIDDEN, ErrorCode::InvalidUploadToken);
    // And the store itself ties the id to its key (S3 answers NoSuchUpload, so must it).
    assert!(matches!(
        e.s3.list_parts(&other_key, store_id(&upload_id)).await,
        Err(s3_direct_server::StoreError::NoSuchUpload { .. })
    ));
    // A part URL presigned for the other key is refused too.
    let wrong =
        e.s3.presign_part(
            &other_key,
            store_id(&upload_id),
            2,
            Duration::from_secs(60),
            &PartSigning::default(),
        )
        .await
        .unwrap();
    assert_eq!(put(&wrong.url, b"x".to_vec()).await.status(), 404);
    assert!(e.objects().is_empty());
    assert_eq!(e.stored_parts().len(), 1);

    let done: CompleteResponse = complete(&e, &key, &upload_id, &[(1, &etag)]).await.ok();
    assert_eq!(done.key, key);
    assert_eq!(e.objects().len(), 1);
}

#[tokio::test]
async fn a_failed_complete_keeps_the_upload_for_a_retry() {
    let e = Embedded::start().await;
    let (key, upload_id) = create(&e.app, "a.bin").await;
    let batch = sign_batch(&e, &key, &upload_id, "1,2").await;
    let first = test_bytes((5 * MIB) as usize, 1);
    let etag1 = put_part(&batch.presigned_urls[&1], first.clone()).await;

    // Part 2 was never uploaded.
    let m = complete(&e, &key, &upload_id, &[(1, &etag1), (2, "\"abc\"")])
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPart);
    assert!(m.contains("part 2 has not been uploaded"), "{m}");
    assert_eq!(e.open_uploads(), [store_id(&upload_id)]);
    assert!(e.objects().is_empty());

    // Re-send and complete.
    let etag2 = put_part(&batch.presigned_urls[&2], b"tail".to_vec()).await;
    let done: CompleteResponse = complete(&e, &key, &upload_id, &[(1, &etag1), (2, &etag2)])
        .await
        .ok();
    assert!(done.etag.ends_with("-2\""), "{}", done.etag);
    let (stored, _) = get_object(&e, &key).await;
    assert_eq!(stored.len(), first.len() + 4);
}

#[tokio::test]
async fn small_non_last_parts_are_entity_too_small() {
    let e = Embedded::start().await;
    let (key, upload_id) = create(&e.app, "a.bin").await;
    let batch = sign_batch(&e, &key, &upload_id, "1,2").await;
    let etag1 = put_part(&batch.presigned_urls[&1], b"tiny".to_vec()).await;
    let etag2 = put_part(&batch.presigned_urls[&2], b"tail".to_vec()).await;
    complete(&e, &key, &upload_id, &[(1, &etag1), (2, &etag2)])
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::EntityTooSmall);
    assert_eq!(e.open_uploads(), [store_id(&upload_id)]);
    assert!(e.objects().is_empty());
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

#[tokio::test]
async fn refused_requests_leave_the_store_untouched() {
    let e = Embedded::start().await;
    let bad = StatusCode::BAD_REQUEST;
    let long = json!({"filename": "n".repeat(2000)}).to_string();
    post_json(&e.app, "/s3/multipart", long)
        .await
        .error(bad, ErrorCode::InvalidFilename);
    let huge = json!({"filename": "a", "size": (5u64 << 40) + 1}).to_string();
    post_json(&e.app, "/s3/multipart", huge)
        .await
        .error(bad, ErrorCode::InvalidSize);
    post_json(&e.app, "/s3/multipart", "{oops")
        .await
        .error(bad, ErrorCode::InvalidJson);
    assert!(e.open_uploads().is_empty());

    // An open upload: bad completions must neither complete nor destroy it.
    let (key, upload_id) = create(&e.app, "a.bin").await;
    let batch = sign_batch(&e, &key, &upload_id, "1").await;
    let etag = put_part(&batch.presigned_urls[&1], b"data".to_vec()).await;
    complete(&e, &key, &upload_id, &[])
        .await
        .error(bad, ErrorCode::InvalidPartList);
    complete(&e, &key, &upload_id, &[(1, &etag), (1, &etag)])
        .await
        .error(bad, ErrorCode::InvalidPartList);
    complete(&e, &key, &upload_id, &[(0, &etag)])
        .await
        .error(bad, ErrorCode::InvalidPartNumber);
    let outside = "uploads/../secret.bin";
    let r = post_json(
        &e.app,
        &format!("/s3/multipart/{upload_id}/complete?key={}", enc(outside)),
        json!({"parts": [{"PartNumber": 1, "ETag": etag}]}).to_string(),
    )
    .await;
    r.error(bad, ErrorCode::InvalidKey);
    get(
        &e.app,
        &format!("/s3/multipart/{upload_id}/0?key={}", enc(&key)),
    )
    .await
    .error(bad, ErrorCode::InvalidPartNumber);
    delete(&e.app, &format!("/s3/multipart/{upload_id}?key=secret.bin"))
        .await
        .error(bad, ErrorCode::InvalidKey);

    assert!(e.objects().is_empty(), "{:?}", e.objects());
    assert_eq!(e.open_uploads(), [store_id(&upload_id)]);
    assert_eq!(e.stored_parts().len(), 1);
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
async fn a_part_signed_for_5_mib_and_sent_with_6_mib_is_refused_by_the_store() {
    let e = Embedded::start().await;
    let body = json!({"filename": "a.bin", "size": 11 * MIB, "partSize": 5 * MIB});
    let created: s3_direct_protocol::wire::CreateMultipartResponse =
        post_json(&e.app, "/s3/multipart", body.to_string())
            .await
            .ok();
    let (key, upload_id) = (created.key, created.upload_id);
    let batch: s3_direct_protocol::wire::SignBatchResponse = get(
        &e.app,
        &format!(
            "/s3/multipart/{upload_id}/batch?key={}&partNumbers=1,2,3",
            enc(&key)
        ),
    )
    .await
    .ok();
    let signed = batch.presigned_urls[&1].to_ascii_lowercase();
    assert!(signed.contains("content-length"), "{signed}");
    assert_eq!(
        batch.part_headers[&1]["content-length"],
        (5 * MIB).to_string()
    );

    // The browser sends the body's true length; the signature covers the planned one.
    let res = put(&batch.presigned_urls[&1], vec![0; (6 * MIB) as usize]).await;
    assert_eq!(res.status(), 403, "{}", res.text().await.unwrap());
    let res = put(&batch.presigned_urls[&3], vec![0; (MIB - 1) as usize]).await;
    assert_eq!(res.status(), 403, "{}", res.text().await.unwrap());
    assert!(e.stored_parts().is_empty(), "{:?}", e.stored_parts());

    // The planned lengths go through, and the upload completes with its declared size.
    let data = test_bytes((11 * MIB) as usize, 3);
    let mut etags = Vec::new();
    for (n, range) in [
        (1u32, 0..5 * MIB),
        (2, 5 * MIB..10 * MIB),
        (3, 10 * MIB..11 * MIB),
    ] {
        let chunk = data[range.start as usize..range.end as usize].to_vec();
        etags.push((n, put_part(&batch.presigned_urls[&n], chunk).await));
    }
    let parts: Vec<(u32, &str)> = etags.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let done: CompleteResponse = complete(&e, &key, &upload_id, &parts).await.ok();
    let (stored, _) = get_object(&e, &done.key).await;
    assert_eq!(Sha256::digest(&stored), Sha256::digest(&data));
}

#[tokio::test]
async fn completion_aborts_an_upload_larger_than_declared() {
    // Size declared, part size not: each part signs the length the client names, but only the
    // total shows the lie; it is checked at completion and an upload that broke it is aborted
    // in the store.
    let e = Embedded::start().await;
    let body = json!({"filename": "a.bin", "size": 6 * MIB});
    let created: s3_direct_protocol::wire::CreateMultipartResponse =
        post_json(&e.app, "/s3/multipart", body.to_string())
            .await
            .ok();
    let (key, upload_id) = (created.key, created.upload_id);
    let batch = sign_sized(&e, &key, &upload_id, &[(1, 5 * MIB), (2, 2 * MIB)]).await;
    let e1 = put_part(&batch.presigned_urls[&1], vec![1; (5 * MIB) as usize]).await;
    let e2 = put_part(&batch.presigned_urls[&2], vec![2; (2 * MIB) as usize]).await;
    let m = complete(&e, &key, &upload_id, &[(1, &e1), (2, &e2)])
        .await
        .error(StatusCode::CONFLICT, ErrorCode::PlanViolated);
    assert!(
        m.contains("7340032 bytes but the upload declared 6291456"),
        "{m}"
    );
    assert!(e.open_uploads().is_empty());
    assert!(e.stored_parts().is_empty());
    assert!(e.objects().is_empty());
    // Part 3 cannot even be signed: 6 MiB needs at most 2 parts.
    get(
        &e.app,
        &format!("/s3/multipart/{upload_id}/3?key={}", enc(&key)),
    )
    .await
    .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPartNumber);
}

/// S3's ETag of a multipart object: the MD5 of the parts' MD5s, then `-` and the part count.
/// CompleteMultipartUpload of `parts` through the SDK, ready to send (or to add conditions to).
fn sdk_complete(
    client: &aws_sdk_s3::Client,
    key: &str,
    upload_id: &str,
    parts: Vec<aws_sdk_s3::types::CompletedPart>,
) -> aws_sdk_s3::operation::complete_multipart_upload::builders::CompleteMultipartUploadFluentBuilder
{
    client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
}

fn multipart_etag(parts: &[&[u8]]) -> String {
    use s3s::crypto::{Checksum, Md5};
    let mut all = Md5::new();
    for part in parts {
        all.update(&Md5::checksum(part));
    }
    let hex: String = all.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}-{}\"", parts.len())
}

#[tokio::test]
async fn completion_checks_every_named_etag_and_keeps_the_upload_when_one_is_wrong() {
    let e = Embedded::start().await;
    let (key, upload_id) = create(&e.app, "a.bin").await;
    let batch = sign_batch(&e, &key, &upload_id, "1,2").await;
    let first = test_bytes((5 * MIB) as usize, 3);
    let etag1 = put_part(&batch.presigned_urls[&1], first.clone()).await;
    let etag2 = put_part(&batch.presigned_urls[&2], b"tail".to_vec()).await;

    // Part 1 named with part 2's ETag: S3 refuses that, and so does the embedded store now.
    complete(&e, &key, &upload_id, &[(1, &etag2), (2, &etag2)])
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPart);
    assert_eq!(e.open_uploads(), [store_id(&upload_id)]);
    assert_eq!(e.stored_parts().len(), 2);
    assert!(e.objects().is_empty());

    let done: CompleteResponse = complete(&e, &key, &upload_id, &[(1, &etag1), (2, &etag2)])
        .await
        .ok();
    let expected = multipart_etag(&[&first, b"tail"]);
    assert_eq!(done.etag, expected);
    let head =
        e.s3.client()
            .head_object()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await
            .unwrap();
    assert_eq!(head.e_tag(), Some(expected.as_str()));
    assert_eq!(head.content_type(), Some("application/octet-stream"));
    let (stored, _) = get_object(&e, &key).await;
    assert_eq!(
        Sha256::digest(&stored),
        Sha256::digest([&first[..], b"tail"].concat())
    );
    assert!(e.open_uploads().is_empty());
    assert!(e.stored_parts().is_empty());
}

/// Completion takes each part's MD5 from the attribute stored with the part file instead of
/// reading the part again; without the attribute it hashes the part.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn completion_uses_the_md5_kept_with_each_part_and_hashes_parts_without_one() {
    use s3s::crypto::Checksum;
    const ATTRIBUTE: &str = "user.s3-direct.md5";
    let e = Embedded::start().await;
    let (key, upload_id) = create(&e.app, "a.bin").await;
    let batch = sign_batch(&e, &key, &upload_id, "1").await;
    let data = test_bytes(4096, 5);
    let etag = put_part(&batch.presigned_urls[&1], data.clone()).await;
    let part = e
        .store
        .data_dir()
        .join(format!(".upload_id-{}.part-1", store_id(&upload_id)));
    let mut kept = [0u8; 32];
    let len = rustix::fs::getxattr(&part, ATTRIBUTE, &mut kept[..]).unwrap();
    assert_eq!(kept[..len], s3s::crypto::Md5::checksum(&data));

    // The store believes the attribute: with a wrong digest there, the true ETag does not match.
    rustix::fs::setxattr(&part, ATTRIBUTE, &[0; 16], rustix::fs::XattrFlags::empty()).unwrap();
    complete(&e, &key, &upload_id, &[(1, &etag)])
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidPart);

    rustix::fs::removexattr(&part, ATTRIBUTE).unwrap();
    let done: CompleteResponse = complete(&e, &key, &upload_id, &[(1, &etag)]).await.ok();
    assert_eq!(done.etag, multipart_etag(&[&data]));
    assert_eq!(get_object(&e, &key).await.0, data);
}

#[tokio::test]
async fn the_store_verifies_the_checksum_signed_into_a_part_url() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use s3s::crypto::{Checksum, Crc32, Crc32c, Md5, Sha256 as S3Sha256};
    let e = Embedded::start().await;
    let data = test_bytes(100_000, 9);
    let mut altered = data.clone();
    altered[50_000] ^= 1;
    let sums = [
        ("md5", STANDARD.encode(Md5::checksum(&data))),
        ("crc32", STANDARD.encode(Crc32::checksum(&data))),
        ("crc32c", STANDARD.encode(Crc32c::checksum(&data))),
        ("sha256", STANDARD.encode(S3Sha256::checksum(&data))),
    ];
    for (algorithm, sum) in sums {
        let (key, upload_id) = create(&e.app, "a.bin").await;
        let checksums = enc(&format!("1:{algorithm}:{sum}"));
        let batch = sign_batch(&e, &key, &upload_id, &format!("1&checksums={checksums}")).await;
        let send = |body: Vec<u8>| {
            let mut put = crate::common::http()
                .put(&batch.presigned_urls[&1])
                .body(body);
            let own = batch.part_headers.get(&1).into_iter().flatten();
            for (name, value) in batch.headers.iter().chain(own) {
                if name != "content-length" {
                    put = put.header(name, value);
                }
            }
            put.send()
        };
        let refused = send(altered.clone()).await.unwrap();
        assert_eq!(refused.status(), 400, "{algorithm}");
        let text = refused.text().await.unwrap();
        assert!(
            text.contains("<Code>BadDigest</Code>"),
            "{algorithm}: {text}"
        );
        assert!(e.stored_parts().is_empty(), "{algorithm}");

        let stored = send(data.clone()).await.unwrap();
        assert_eq!(stored.status(), 200, "{algorithm}");
        let etag = stored.headers()["etag"].to_str().unwrap().to_owned();
        complete(&e, &key, &upload_id, &[(1, &etag)])
            .await
            .ok::<CompleteResponse>();
        assert_eq!(get_object(&e, &key).await.0, data, "{algorithm}");
    }
}

/// The AWS SDK with its default checksums sends each part's CRC32 in a trailer after an
/// aws-chunked body; the store decodes and verifies it, as operators' tools rely on.
#[tokio::test]
async fn an_sdk_client_with_its_default_checksums_uploads_parts() {
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::CompletedPart;
    let e = Embedded::start().await;
    let creds = e.store.credentials();
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(e.store.endpoint())
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            &creds.access_key,
            &creds.secret_key,
            None,
            None,
            "test",
        ))
        .build();
    let client = aws_sdk_s3::Client::from_conf(config);
    let key = "sdk/a.bin";
    let created = client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    let upload_id = created.upload_id().unwrap();
    let data = test_bytes((5 * MIB) as usize + 777, 11);
    let mut completed = Vec::new();
    for (number, chunk) in (1..).zip(data.chunks((5 * MIB) as usize)) {
        // A body from a file, which the SDK streams instead of hashing it ahead.
        let path = e.dir.path().join(format!("part-{number}"));
        std::fs::write(&path, chunk).unwrap();
        let out = client
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from_path(&path).await.unwrap())
            .send()
            .await
            .unwrap();
        assert!(
            out.checksum_crc32().is_some(),
            "part {number}: no checksum verified"
        );
        completed.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    sdk_complete(&client, key, upload_id, completed)
        .send()
        .await
        .unwrap();
    assert_eq!(get_object(&e, key).await.0, data);
}

/// `If-None-Match: *` and `If-Match` on completion, which s3s-fs honoured and the store's own
/// completion keeps: a refused condition leaves the upload open.
#[tokio::test]
async fn completion_honours_if_none_match_and_if_match() {
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::CompletedPart;
    let e = Embedded::start().await;
    let client = e.s3.client();
    let key = "conditions/a.bin";
    let old = client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from_static(b"old"))
        .send()
        .await
        .unwrap();
    let upload = client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap();
    let part = client
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"new"))
        .send()
        .await
        .unwrap();
    let complete = || {
        let part = CompletedPart::builder()
            .part_number(1)
            .e_tag(part.e_tag().unwrap())
            .build();
        sdk_complete(client, key, upload_id, vec![part])
    };
    for refused in [
        complete().if_none_match("*"),
        complete().if_match("\"0123456789abcdef0123456789abcdef\""),
    ] {
        let err = refused.send().await.unwrap_err();
        let code = err.raw_response().map(|r| r.status().as_u16());
        assert_eq!(code, Some(412), "{err:?}");
        assert_eq!(e.open_uploads().len(), 1);
    }
    complete()
        .if_match(old.e_tag().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(get_object(&e, key).await.0, b"new");
}

/// An upload created with a checksum algorithm is held to S3's rules for it: each part carries
/// that checksum and no other, completion names each part's, and the object gets the composite
/// checksum (the checksum of the parts' checksums, `-N`) in the answer and in HeadObject.
#[tokio::test]
async fn an_upload_created_with_a_checksum_algorithm_is_held_to_it() {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedPart};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use s3s::crypto::{Checksum, Crc32c, Sha256 as S3Sha256};
    let e = Embedded::start().await;
    let client = e.s3.client();
    let key = "declared/a.bin";
    let created = client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Crc32C)
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.checksum_algorithm(),
        Some(&ChecksumAlgorithm::Crc32C)
    );
    let upload_id = created.upload_id().unwrap();
    let data = [test_bytes((5 * MIB) as usize, 21), test_bytes(1000, 22)];
    let sums: Vec<String> = data
        .iter()
        .map(|d| STANDARD.encode(Crc32c::checksum(d)))
        .collect();
    let upload = |n: i32| {
        client
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(upload_id)
            .part_number(n)
            .body(ByteStream::from(data[n as usize - 1].clone()))
    };

    // A part without the checksum, or with another one, is refused and not stored.
    let refused = [
        (upload(1).send().await, "null"),
        (
            upload(1)
                .checksum_sha256(STANDARD.encode(S3Sha256::checksum(&data[0])))
                .send()
                .await,
            "sha256",
        ),
    ];
    for (answer, actual) in refused {
        let err = answer.unwrap_err();
        assert_eq!(err.code(), Some("InvalidRequest"), "{err:?}");
        assert_eq!(
            err.message(),
            Some(
                format!(
                    "Checksum Type mismatch occurred, expected checksum Type: crc32c, actual \
                     checksum Type: {actual}"
                )
                .as_str()
            )
        );
    }
    assert!(e.stored_parts().is_empty());

    let mut etags = Vec::new();
    for n in 1..=2 {
        let out = upload(n)
            .checksum_crc32_c(&sums[n as usize - 1])
            .send()
            .await
            .unwrap();
        assert_eq!(out.checksum_crc32_c(), Some(sums[n as usize - 1].as_str()));
        etags.push(out.e_tag().unwrap().to_owned());
    }
    let complete = |checksums: [Option<&str>; 2]| {
        let parts = (1..=2)
            .map(|n: i32| {
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(&etags[n as usize - 1])
                    .set_checksum_crc32_c(checksums[n as usize - 1].map(str::to_owned))
                    .build()
            })
            .collect();
        sdk_complete(client, key, upload_id, parts).send()
    };
    let missing = complete([Some(&sums[0]), None]).await.unwrap_err();
    assert_eq!(missing.code(), Some("InvalidRequest"), "{missing:?}");
    assert!(
        missing.message().unwrap().contains("missing for part 2"),
        "{missing:?}"
    );
    let wrong = complete([Some(&sums[1]), Some(&sums[1])])
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Some("InvalidPart"), "{wrong:?}");
    assert_eq!(
        e.stored_parts().len(),
        2,
        "a refused completion keeps the parts"
    );

    let done = complete([Some(&sums[0]), Some(&sums[1])]).await.unwrap();
    let mut composite = Crc32c::new();
    for sum in &sums {
        composite.update(&STANDARD.decode(sum).unwrap());
    }
    let expected = format!("{}-2", STANDARD.encode(composite.finalize()));
    assert_eq!(done.checksum_crc32_c(), Some(expected.as_str()));
    assert_eq!(done.checksum_type(), Some(&ChecksumType::Composite));
    let head = client
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_crc32_c(), Some(expected.as_str()));
    assert_eq!(get_object(&e, key).await.0, data.concat());
}

/// Two completions of one upload at once (a client retrying a completion whose answer it did not
/// get, while the first still runs): whatever the interleaving, at least one succeeds, the other
/// succeeds too or is told the upload is gone, and the object is whole, with its multipart ETag
/// and attributes, and nothing of the upload is left. No interleaving can be forced from here, so
/// the rounds repeat it on the blocking pool's threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_completions_at_once_leave_one_whole_object() {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::CompletedPart;
    let e = Embedded::start().await;
    let client = e.s3.client();
    let data = [test_bytes((5 * MIB) as usize, 31), test_bytes(4321, 32)];
    let expected_etag = multipart_etag(&[&data[0], &data[1]]);
    for round in 0..16 {
        let key = format!("race/{round}.bin");
        let upload = client
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(&key)
            .content_type("video/mp4")
            .send()
            .await
            .unwrap();
        let upload_id = upload.upload_id().unwrap();
        let mut parts = Vec::new();
        for (n, body) in (1..).zip(&data) {
            let out = client
                .upload_part()
                .bucket(BUCKET)
                .key(&key)
                .upload_id(upload_id)
                .part_number(n)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .unwrap();
            parts.push(
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(out.e_tag().unwrap())
                    .build(),
            );
        }
        let complete = || sdk_complete(client, &key, upload_id, parts.clone()).send();
        let (a, b) = tokio::join!(complete(), complete());
        let mut done = 0;
        for answer in [a, b] {
            match answer {
                Ok(out) => {
                    assert_eq!(out.e_tag(), Some(expected_etag.as_str()), "round {round}");
                    done += 1;
                }
                Err(err) => assert!(
                    matches!(err.code(), Some("NoSuchUpload" | "InvalidPart")),
                    "round {round}: {err:?}"
                ),
            }
        }
        assert!(done >= 1, "round {round}: neither completion succeeded");
        assert_eq!(get_object(&e, &key).await.0, data.concat(), "round {round}");
        let head = client
            .head_object()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.e_tag(), Some(expected_etag.as_str()), "round {round}");
        assert_eq!(head.content_type(), Some("video/mp4"), "round {round}");
        assert!(
            e.stored_parts().is_empty(),
            "round {round}: {:?}",
            e.stored_parts()
        );
    }
}
