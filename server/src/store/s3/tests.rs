//! The S3 store without a store: the URLs the direct signer writes, signature for signature
//! against the SDK's presigner, the addressing styles and endpoints they name, what they sign,
//! and expiring credentials' remaining life.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, SharedCredentialsProvider};
use s3_direct_protocol::wire::ChecksumAlgorithm;

use super::*;

fn store(path_style: bool, public: Option<&str>) -> S3Store {
    S3Store::with_credentials(
        S3StoreConfig {
            endpoint: "http://127.0.0.1:9".into(),
            public_endpoint: public.map(str::to_owned),
            bucket: "b".into(),
            region: "us-east-1".into(),
            path_style,
        },
        "AKIDEXAMPLE",
        "secret",
    )
}

/// URL path and query parameters, sorted, for comparing URLs whose parameter order differs.
fn url_parts(url: &str) -> (String, Vec<(String, String)>) {
    let (path, query) = url.split_once('?').unwrap();
    let mut params: Vec<(String, String)> = query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    params.sort();
    (path.to_owned(), params)
}

/// The direct signer writes the same URL (same signature) and headers as the SDK for every
/// kind of part URL the server hands out.
#[tokio::test]
async fn direct_part_signatures_match_the_sdk() {
    let session = S3Store::with_provider(
        aws_sdk_s3::config::Builder::new().behavior_version(BehaviorVersion::latest()),
        store(true, Some("https://files.example.net"))
            .config
            .clone(),
        SharedCredentialsProvider::new(Credentials::new(
            "ASIAEXAMPLE",
            "session-secret/+=",
            Some("token/with+special=chars".into()),
            Some(SystemTime::now() + Duration::from_secs(3600)),
            "test",
        )),
    );
    // Virtual-hosted addressing needs a bucket that can be a host name label.
    let hosted = |public: &str| {
        S3Store::with_credentials(
            S3StoreConfig {
                endpoint: "http://127.0.0.1:9".into(),
                public_endpoint: Some(public.to_owned()),
                bucket: "uploads-1".into(),
                region: "eu-west-3".into(),
                path_style: false,
            },
            "AKIDEXAMPLE",
            "secret",
        )
    };
    let stores = [
        store(true, None),
        store(false, None),
        hosted("https://s3.example.net"),
        hosted("http://localhost:3900/prefix"),
        store(true, Some("http://files.example.net:8000")),
        store(true, Some("http://files.example.net:80/")),
        hosted("https://s3.example.net:443"),
        store(true, Some("https://proxy.example.net/s3store")),
        session,
    ];
    let signings = [
        PartSigning::default(),
        PartSigning {
            content_length: Some(8_388_608),
            checksum: None,
        },
        PartSigning {
            content_length: Some(5),
            checksum: Some((ChecksumAlgorithm::Md5, "1B2M2Y8AsgTpgAmY7PhCfg==".into())),
        },
        PartSigning {
            content_length: None,
            checksum: Some((ChecksumAlgorithm::Crc32, "AAAAAA==".into())),
        },
        PartSigning {
            content_length: Some(1),
            checksum: Some((ChecksumAlgorithm::Crc32c, "yZRlqg==".into())),
        },
        PartSigning {
            content_length: Some(1),
            checksum: Some((
                ChecksumAlgorithm::Sha256,
                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into(),
            )),
        },
    ];
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_921_552);
    for s in &stores {
        // An endpoint with a path is left to the SDK (compared with itself below).
        let with_path = s
            .config
            .public_endpoint()
            .split('/')
            .nth(3)
            .is_some_and(|p| !p.is_empty());
        assert_eq!(s.part_signer.is_some(), !with_path, "{:?}", s.config);
        for signing in &signings {
            for (key, upload_id, n) in [
                ("uploads/0b6c/a.bin", "up1", 1),
                (
                    "uploads/x/ñ a+b=(c)~'!*&$@,;:.bin",
                    "2~Ab_c-D.e/f+g=",
                    10_000,
                ),
            ] {
                let direct = s
                    .presign_part_at(key, upload_id, n, start, Duration::from_secs(900), signing)
                    .await
                    .unwrap();
                let sdk = s
                    .presign_part_with_sdk(
                        key,
                        upload_id,
                        n,
                        start,
                        Duration::from_secs(900),
                        signing,
                    )
                    .await
                    .unwrap();
                assert_eq!(
                    url_parts(&direct.url),
                    url_parts(&sdk.url),
                    "{:?}",
                    s.config
                );
                assert_eq!(direct.headers, sdk.headers);
            }
        }
    }
}

/// A batch shares its dates, key, hash prefix and HMAC state between parts: parts with
/// different signed headers in one call (a checksum on some, another length on the last) still
/// get each the URL the SDK writes for it alone.
#[tokio::test]
async fn batches_of_mixed_parts_match_the_sdk_part_by_part() {
    let s = store(true, Some("http://files.example.net:8000"));
    let eight = |checksum| PartSigning {
        content_length: Some(8_388_608),
        checksum,
    };
    let parts = vec![
        (3, eight(None)),
        (
            1,
            eight(Some((ChecksumAlgorithm::Crc32c, "yZRlqg==".into()))),
        ),
        (2, eight(None)),
        (
            4,
            eight(Some((
                ChecksumAlgorithm::Md5,
                "1B2M2Y8AsgTpgAmY7PhCfg==".into(),
            ))),
        ),
        (10_000, PartSigning::default()),
        (
            5,
            eight(Some((ChecksumAlgorithm::Crc32c, "AAAAAA==".into()))),
        ),
        (
            6,
            PartSigning {
                content_length: Some(5),
                checksum: None,
            },
        ),
    ];
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_921_552);
    let lifetime = Duration::from_secs(900);
    let key = "uploads/x/ñ a+b.bin";
    let batch = s
        .presign_parts_at(key, "up~1/2", &parts, start, lifetime)
        .await
        .unwrap();
    assert_eq!(batch.len(), parts.len());
    for ((n, signing), direct) in parts.iter().zip(&batch) {
        let sdk = s
            .presign_part_with_sdk(key, "up~1/2", *n, start, lifetime, signing)
            .await
            .unwrap();
        assert_eq!(url_parts(&direct.url), url_parts(&sdk.url), "part {n}");
        assert_eq!(direct.headers, sdk.headers, "part {n}");
    }
    // An empty batch signs nothing.
    assert!(
        s.presign_parts_at(key, "u", &[], start, lifetime)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn direct_part_urls_refuse_lifetimes_over_seven_days() {
    let s = store(true, None);
    let long = Duration::from_secs(7 * 24 * 3600 + 1);
    assert!(
        s.presign_part("k", "u", 1, long, &PartSigning::default())
            .await
            .is_err()
    );
}

#[test]
fn object_urls_follow_the_addressing_style() {
    assert_eq!(
        store(true, None).object_url("k/x"),
        "http://127.0.0.1:9/b/k/x"
    );
    assert_eq!(
        store(false, Some("https://s3.example.net")).object_url("k"),
        "https://b.s3.example.net/k"
    );
}

#[tokio::test]
async fn part_urls_use_the_public_endpoint_and_carry_no_checksum() {
    let s = store(true, Some("http://files.example.net:8000"));
    let p = s
        .presign_part(
            "k/a.bin",
            "up1",
            7,
            Duration::from_secs(60),
            &PartSigning::default(),
        )
        .await
        .unwrap();
    assert!(
        p.url
            .starts_with("http://files.example.net:8000/b/k/a.bin?"),
        "{}",
        p.url
    );
    assert!(p.url.contains("partNumber=7") && p.url.contains("uploadId=up1"));
    assert!(p.url.contains("X-Amz-Expires=60"));
    let lower = p.url.to_ascii_lowercase();
    assert!(!lower.contains("x-amz-checksum"), "{}", p.url);
    assert!(!lower.contains("x-amz-sdk-checksum-algorithm"), "{}", p.url);
    assert!(p.headers.keys().all(|h| !h.starts_with("x-amz-checksum")));
}

#[tokio::test]
async fn expiring_credentials_report_their_remaining_life() {
    let expiry = SystemTime::now() + Duration::from_secs(120);
    let provider = SharedCredentialsProvider::new(Credentials::new(
        "AKIDEXAMPLE",
        "secret",
        Some("session".into()),
        Some(expiry),
        "test",
    ));
    let s = S3Store::with_provider(
        aws_sdk_s3::config::Builder::new().behavior_version(BehaviorVersion::latest()),
        store(true, None).config.clone(),
        provider,
    );
    let left = s.credentials_remaining().await.unwrap();
    assert!(
        left <= Duration::from_secs(120) && left > Duration::from_secs(100),
        "{left:?}"
    );
    // The presigner signs with them (the session token is in the URL).
    let p = s
        .presign_part(
            "k",
            "u",
            1,
            Duration::from_secs(60),
            &PartSigning::default(),
        )
        .await
        .unwrap();
    assert!(p.url.contains("X-Amz-Security-Token=session"), "{}", p.url);
    assert!(store(true, None).credentials_remaining().await.is_none());
}

#[tokio::test]
async fn a_planned_part_signs_its_length_and_checksum() {
    let s = store(true, None);
    let p = s
        .presign_part(
            "k/a.bin",
            "up1",
            2,
            Duration::from_secs(60),
            &PartSigning {
                content_length: Some(5_242_880),
                checksum: Some((ChecksumAlgorithm::Crc32c, "yZRlqg==".into())),
            },
        )
        .await
        .unwrap();
    let signed = p
        .url
        .split("X-Amz-SignedHeaders=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(signed.contains("content-length"), "{signed}");
    assert!(signed.contains("x-amz-checksum-crc32c"), "{signed}");
    assert_eq!(p.headers["content-length"], "5242880");
    assert_eq!(p.headers["x-amz-checksum-crc32c"], "yZRlqg==");
    assert!(
        !p.url
            .to_ascii_lowercase()
            .contains("x-amz-sdk-checksum-algorithm"),
        "{}",
        p.url
    );
    let md5 = s
        .presign_part(
            "k/a.bin",
            "up1",
            2,
            Duration::from_secs(60),
            &PartSigning {
                content_length: None,
                checksum: Some((ChecksumAlgorithm::Md5, "1B2M2Y8AsgTpgAmY7PhCfg==".into())),
            },
        )
        .await
        .unwrap();
    assert_eq!(md5.headers["content-md5"], "1B2M2Y8AsgTpgAmY7PhCfg==");
}

#[tokio::test]
async fn single_put_urls_sign_the_content_type() {
    let s = store(true, None);
    let signing = PutSigning {
        content_type: "text/plain".into(),
        ..PutSigning::default()
    };
    let p = s
        .presign_put("k/a.txt", &signing, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        p.headers.get("content-type").map(String::as_str),
        Some("text/plain")
    );
    assert!(p.url.contains("content-type"), "signed headers: {}", p.url);
    assert!(!p.url.to_ascii_lowercase().contains("x-amz-checksum"));
    assert!(!p.url.to_ascii_lowercase().contains("x-amz-meta"));
}

#[tokio::test]
async fn single_put_urls_sign_metadata_length_and_checksum() {
    let s = store(true, None);
    for (algo, value, header) in [
        (
            ChecksumAlgorithm::Md5,
            "1B2M2Y8AsgTpgAmY7PhCfg==",
            "content-md5",
        ),
        (
            ChecksumAlgorithm::Sha256,
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            "x-amz-checksum-sha256",
        ),
    ] {
        let signing = PutSigning {
            content_type: "text/plain".into(),
            content_length: Some(0),
            metadata: BTreeMap::from([("origin".to_owned(), "queue".to_owned())]),
            checksum: Some((algo, value.to_owned())),
        };
        let p = s
            .presign_put("k/a.txt", &signing, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(p.headers["x-amz-meta-origin"], "queue");
        assert_eq!(p.headers[header], value);
        assert_eq!(p.headers["content-length"], "0");
        let signed = p
            .url
            .split('&')
            .find_map(|kv| kv.strip_prefix("X-Amz-SignedHeaders="))
            .expect("a SigV4 query signature")
            .replace("%3B", ";");
        for name in [
            "content-length",
            "content-type",
            header,
            "x-amz-meta-origin",
        ] {
            assert!(signed.split(';').any(|h| h == name), "{name} in {signed}");
        }
    }
}
