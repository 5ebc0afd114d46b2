//! The embedded store's own multipart path (`server/src/embedded/multipart.rs`), driven with the
//! aws-sdk-s3 directly: every named ETag checked, the MD5 kept with each part, checksums signed
//! into part URLs verified, the SDK's default checksums, `If-None-Match` / `If-Match`, uploads
//! created with a checksum algorithm held to it, and two completions at once.

use axum::http::StatusCode;
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::limits::MIB;
use s3_direct_protocol::wire::CompleteResponse;
use sha2::{Digest, Sha256};

use super::{complete, get_object, put_part, sign_batch};
use crate::common::{BUCKET, Embedded, create, enc, store_id, test_bytes};

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
