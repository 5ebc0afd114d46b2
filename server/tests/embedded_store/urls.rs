//! What a presigned URL of the embedded store allows and refuses: CORS on part PUTs with a
//! readable ETag, tampered and expired URLs, a body longer than the length signed into it, and a
//! small file's single PUT with its signed metadata, length and checksum.

use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use s3_direct_protocol::limits::MIB;
use s3_direct_protocol::wire::{CompleteResponse, SignPartResponse, SinglePutParams};
use s3_direct_server::store::PartSigning;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{complete, get_object, put, put_part};
use crate::common::{BUCKET, Embedded, create, enc, get, post_json, store_id, test_bytes};

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
