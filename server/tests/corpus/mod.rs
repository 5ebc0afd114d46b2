//! The bad-input corpus: hundreds of malformed requests (broken JSON, wrong types, huge and
//! negative numbers, deep nesting, 10 MB bodies, invalid UTF-8, every route without each of its
//! fields) sent over a real socket to the server on the embedded store. Each must get a 4xx JSON
//! error with a known code and a message; the server must stay up; and afterwards the store must
//! hold no object and no multipart upload the corpus created.

use std::sync::Arc;

use reqwest::Method;
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::limits::MIB;
use s3_direct_protocol::wire::{CreateMultipartResponse, ErrorBody};
use s3_direct_server::{OpenAuth, Settings};
use serde_json::{Value, json};

use crate::common::{Embedded, enc};

pub(crate) mod http;

/// One request of the corpus.
struct Case {
    method: Method,
    /// Path and query, already percent-encoded where needed.
    uri: String,
    body: Option<Vec<u8>>,
    /// `content-type` header, when not the JSON default for bodies.
    content_type: Option<&'static str>,
}

fn get(uri: impl Into<String>) -> Case {
    Case {
        method: Method::GET,
        uri: uri.into(),
        body: None,
        content_type: None,
    }
}

fn delete(uri: impl Into<String>) -> Case {
    Case {
        method: Method::DELETE,
        ..get(uri)
    }
}

fn post(uri: impl Into<String>, body: impl Into<Vec<u8>>) -> Case {
    Case {
        method: Method::POST,
        body: Some(body.into()),
        ..get(uri)
    }
}

/// Broken JSON documents, for every route with a body.
fn malformed_json() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = [
        "",
        " ",
        "{",
        "}",
        "[",
        "]",
        "null",
        "true",
        "0",
        "-1",
        "\"text\"",
        "[]",
        "{\"filename\":}",
        "{filename: \"a\"}",
        "{'filename': 'a'}",
        "{\"filename\":\"a\",}",
        "{\"filename\":\"a\"} trailing",
        "{\"filename\":\"a\"}{}",
        "{\"filename\" \"a\"}",
        "{\"filename\":\"a\"",
        "{\"filename\":\"\\u00\"}",
        "{\"filename\":\"\\x41\"}",
        "{\"parts\":NaN}",
        "{\"parts\":Infinity}",
        "{\"size\":1e400,\"filename\":\"a\"}",
        "\u{feff}{\"filename\":\"a\"}",
        "{\"filename\":\"a\"\u{0}}",
        "<xml/>",
        "filename=a",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // Invalid UTF-8 inside a string and as raw bytes.
    out.push(b"{\"filename\":\"\xff\xfe\"}".to_vec());
    out.push(b"{\"parts\":[{\"PartNumber\":1,\"ETag\":\"\xc3\x28\"}]}".to_vec());
    out.push(vec![0xff; 64]);
    // Deep nesting, past serde_json's recursion limit.
    out.push(format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes());
    out.push(
        format!(
            "{{\"filename\":\"a\",\"metadata\":{}1{}}}",
            "{\"a\":".repeat(5_000),
            "}".repeat(5_000)
        )
        .into_bytes(),
    );
    out
}

/// Create bodies that parse as JSON but are wrong.
fn bad_create_bodies() -> Vec<Value> {
    let mut out = vec![
        json!({}),
        json!({"type": "video/mp4"}),
        json!({"metadata": {}}),
        json!({"size": 10}),
        json!({"partSize": 5 * MIB}),
    ];
    for wrong in [
        json!(1),
        json!(1.5),
        json!(true),
        json!(null),
        json!([]),
        json!({}),
        json!(["a"]),
    ] {
        out.push(json!({"filename": wrong}));
        // `null` is a missing (defaulted) field, `{}` empty metadata: both fine.
        if !wrong.is_null() {
            out.push(json!({"filename": "a", "type": wrong}));
        }
        if !wrong.is_null() && wrong != json!({}) {
            out.push(json!({"filename": "a", "metadata": wrong}));
        }
        out.push(json!({"filename": "a", "metadata": {"name": wrong}}));
    }
    for size in [
        json!(-1),
        json!(-9_223_372_036_854_775_808_i64),
        json!(1.5),
        json!("10"),
        json!(true),
        json!([]),
        json!({}),
        json!(1e30),
        json!(5u64 << 40 | 1),
        json!(u64::MAX),
    ] {
        out.push(json!({"filename": "a", "size": size}));
        out.push(json!({"filename": "a", "size": 10 * MIB, "partSize": size}));
    }
    for part_size in [0, 1, MIB, 5 * MIB - 1, (5u64 << 30) + 1] {
        out.push(json!({"filename": "a", "size": 10 * MIB, "partSize": part_size}));
    }
    // 10,001 parts at the minimum part size.
    out.push(json!({"filename": "a", "size": 10_001 * 5 * MIB, "partSize": 5 * MIB}));
    // A stream (a part size, no size) whose part size S3 would refuse.
    out.push(json!({"filename": "a", "partSize": MIB}));
    out.push(json!({"filename": "a", "partSize": (5u64 << 30) + 1}));
    // Folder paths leaving the folder, or naming another file.
    out.push(json!({"filename": "a", "relativePath": "../a"}));
    out.push(json!({"filename": "a", "relativePath": "d/b"}));
    out.push(json!({"filename": "n".repeat(1025)}));
    out.push(json!({"filename": "ü".repeat(600)}));
    for ty in [
        "text/\nplain",
        "a\u{0}b",
        "vidéo/mp4",
        &"x".repeat(300),
        "text/plain\r\nx-evil: 1",
    ] {
        out.push(json!({"filename": "a", "type": ty}));
    }
    for name in ["", "a b", "ü", "a/b", "a:b", &"n".repeat(200), "a\nb"] {
        out.push(json!({"filename": "a", "metadata": {name: "v"}}));
    }
    out.push(json!({"filename": "a", "metadata": {"big": "v".repeat(3000)}}));
    let many: serde_json::Map<String, Value> = (0..300)
        .map(|i| (format!("k{i}"), json!("0123456789")))
        .collect();
    out.push(json!({"filename": "a", "metadata": many}));
    out
}

/// Complete bodies that parse as JSON but are wrong.
fn bad_complete_bodies() -> Vec<Value> {
    let etag = "\"0123456789abcdef0123456789abcdef\"";
    let mut out = vec![
        json!({}),
        json!({"parts": null}),
        json!({"parts": {}}),
        json!({"parts": "1"}),
        json!({"parts": 1}),
        json!({"parts": []}),
        json!({"parts": [null]}),
        json!({"parts": [1]}),
        json!({"parts": [[1, etag]]}),
        json!({"parts": [{}]}),
        json!({"parts": [{"PartNumber": 1}]}),
        json!({"parts": [{"ETag": etag}]}),
        json!({"Parts": [{"PartNumber": 1, "ETag": etag}]}),
    ];
    for n in [
        json!(0),
        json!(-1),
        json!(10_001),
        json!(1.5),
        json!("1"),
        json!(null),
        json!(u64::MAX),
        json!(1e30),
    ] {
        out.push(json!({"parts": [{"PartNumber": n, "ETag": etag}]}));
    }
    for e in [
        json!(""),
        json!("\"\""),
        json!("a b"),
        json!("<x>"),
        json!("\"abc"),
        json!("a".repeat(200)),
        json!(1),
        json!(null),
        json!(["x"]),
    ] {
        out.push(json!({"parts": [{"PartNumber": 1, "ETag": e}]}));
    }
    out.push(json!({"parts": [
        {"PartNumber": 2, "ETag": etag}, {"PartNumber": 1, "ETag": etag}
    ]}));
    out.push(json!({"parts": [
        {"PartNumber": 1, "ETag": etag}, {"PartNumber": 1, "ETag": etag}
    ]}));
    // The fixture's plan has 3 parts.
    out.push(json!({"parts": [{"PartNumber": 1, "ETag": etag}]}));
    out.push(json!({"parts": [
        {"PartNumber": 1, "ETag": etag}, {"PartNumber": 2, "ETag": etag},
        {"PartNumber": 3, "ETag": etag}, {"PartNumber": 4, "ETag": etag}
    ]}));
    for c in [json!("not base64!"), json!(1), json!("A".repeat(100))] {
        out.push(json!({"parts": [{"PartNumber": 1, "ETag": etag, "ChecksumCRC32C": c}]}));
    }
    out
}

/// Every request of the corpus, given a genuine upload (`id`, `key`) to aim the deeper checks at.
fn corpus(id: &str, key: &str) -> Vec<Case> {
    let k = enc(key);
    let mut c = Vec::new();

    // create
    for body in malformed_json() {
        c.push(post("/s3/multipart", body));
    }
    for body in bad_create_bodies() {
        c.push(post("/s3/multipart", body.to_string()));
    }
    c.push(post("/s3/multipart", vec![b' '; 10 << 20]));
    c.push(post(
        "/s3/multipart",
        format!("{{\"filename\":\"{}\"}}", "a".repeat(10 << 20)),
    ));
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        c.push(Case {
            content_type: Some(ct.unwrap_or("")),
            ..post("/s3/multipart", r#"{"filename":"a"}"#)
        });
    }

    // Upload ids that are not ours, on every route that takes one.
    let bad_ids = [
        "no-token".to_owned(),
        format!("{}.AAAA", id.rsplit_once('.').unwrap().0),
        format!("{id}x"),
        format!("x{id}"),
        "a%20b.c".to_owned(),
        "%FF%FE.x".to_owned(),
        "%00.x".to_owned(),
        ".".to_owned(),
        format!("{}.", id.rsplit_once('.').unwrap().0),
        "a".repeat(2000),
    ];
    for bad in &bad_ids {
        c.push(get(format!("/s3/multipart/{bad}/1?key={k}")));
        c.push(get(format!(
            "/s3/multipart/{bad}/batch?key={k}&partNumbers=1"
        )));
        c.push(get(format!("/s3/multipart/{bad}?key={k}")));
        c.push(delete(format!("/s3/multipart/{bad}?key={k}")));
        c.push(post(
            format!("/s3/multipart/{bad}/complete?key={k}"),
            r#"{"parts":[{"PartNumber":1,"ETag":"\"abc\""}]}"#,
        ));
    }

    // Keys that are not this upload's, on every route that takes one (and no key at all).
    let other = format!("uploads/0b6f4f0e-7a4c-4c59-9d0b-2f6f4a1d3c11/{}", "x.bin");
    let bad_keys = [
        None,
        Some(String::new()),
        Some("secret.txt".to_owned()),
        Some(other),
        Some(format!("{key}/../../x")),
        Some(format!("../{key}")),
        Some(key.to_uppercase()),
        Some("%FF%FE".to_owned()),
        Some("uploads/%00".to_owned()),
        Some("k".repeat(5000)),
    ];
    for bad in &bad_keys {
        let q = match bad {
            None => String::new(),
            Some(b) if b.contains('%') => format!("key={b}"),
            Some(b) => format!("key={}", enc(b)),
        };
        c.push(get(format!("/s3/multipart/{id}/1?{q}")));
        c.push(get(format!("/s3/multipart/{id}/batch?{q}&partNumbers=1")));
        c.push(get(format!("/s3/multipart/{id}?{q}")));
        c.push(delete(format!("/s3/multipart/{id}?{q}")));
        c.push(post(
            format!("/s3/multipart/{id}/complete?{q}"),
            r#"{"parts":[{"PartNumber":1,"ETag":"\"abc\""}]}"#,
        ));
    }

    // sign one part
    for n in [
        "0",
        "-1",
        "4",
        "10001",
        "99999999999999999999",
        "1.5",
        "1e3",
        "abc",
        "%20",
        "%FF",
        "0x1",
        "+1",
        "１",
    ] {
        c.push(get(format!("/s3/multipart/{id}/{}?key={k}", enc(n))));
    }
    for cs in [
        "crc32c",
        "crc32c:",
        "crc32c:nope!",
        "crc64:AAAAAA==",
        "md5:AAAAAA==",
        "sha256:AAAA",
        ":",
        "%FF",
    ] {
        let cs = if cs.contains('%') {
            cs.to_owned()
        } else {
            enc(cs)
        };
        c.push(get(format!("/s3/multipart/{id}/1?key={k}&checksum={cs}")));
    }

    // sign a batch
    let many = (1..=1001)
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",");
    for numbers in [
        None,
        Some(""),
        Some(","),
        Some("1,,2"),
        Some("1,1"),
        Some("0"),
        Some("4"),
        Some("1,2,3,4"),
        Some("-1"),
        Some("a,b"),
        Some("1;2"),
        Some("99999999999999999999"),
        Some(many.as_str()),
    ] {
        let q = numbers.map_or(String::new(), |n| format!("&partNumbers={}", enc(n)));
        c.push(get(format!("/s3/multipart/{id}/batch?key={k}{q}")));
    }
    for cs in [
        "1",
        "1:crc32c",
        "5:crc32c:AAAAAA==",
        "1:crc32c:AAAAAA==,1:crc32c:AAAAAA==",
        "x:crc32c:AAAAAA==",
        "1:crc64:AAAAAA==",
        "1:md5:AAAA",
    ] {
        c.push(get(format!(
            "/s3/multipart/{id}/batch?key={k}&partNumbers=1,2&checksums={}",
            enc(cs)
        )));
    }

    // complete
    for body in malformed_json() {
        c.push(post(format!("/s3/multipart/{id}/complete?key={k}"), body));
    }
    for body in bad_complete_bodies() {
        c.push(post(
            format!("/s3/multipart/{id}/complete?key={k}"),
            body.to_string(),
        ));
    }
    c.push(post(
        format!("/s3/multipart/{id}/complete?key={k}"),
        vec![b' '; 10 << 20],
    ));
    c.push(Case {
        content_type: Some("text/plain"),
        ..post(
            format!("/s3/multipart/{id}/complete?key={k}"),
            r#"{"parts":[{"PartNumber":1,"ETag":"\"abc\""}]}"#,
        )
    });

    // single PUT parameters
    for q in [
        "",
        "type=text%2Fplain",
        "filename=a&size=-1",
        "filename=a&size=abc",
        "filename=a&size=1.5",
        "filename=a&size=99999999999999999999",
        "filename=a&size=5368709121",
        "filename=a&type=text%2F%0Aplain",
        "filename=%FF",
        "filename=a&filename=b",
        &format!("filename={}", "n".repeat(1025)),
    ] {
        c.push(get(format!("/s3/params?{q}")));
    }

    // routes and methods that do not exist
    for (m, uri) in [
        (Method::PUT, "/s3/multipart"),
        (Method::GET, "/s3/multipart"),
        (Method::DELETE, "/s3/multipart"),
        (Method::PATCH, &format!("/s3/multipart/{id}") as &str),
        (Method::PUT, &format!("/s3/multipart/{id}/1?key={k}")),
        (Method::POST, &format!("/s3/multipart/{id}/1?key={k}")),
        (Method::GET, &format!("/s3/multipart/{id}/complete?key={k}")),
        (Method::POST, "/s3/params"),
        (Method::GET, "/s3/nothing"),
        (Method::GET, &format!("/s3/multipart/{id}/1/2?key={k}")),
    ] {
        c.push(Case {
            method: m,
            ..get(uri.to_owned())
        });
    }
    c
}

#[tokio::test]
async fn every_bad_request_gets_a_4xx_json_error_and_leaves_the_store_clean() {
    let e = Embedded::start_with(
        Settings {
            // The corpus comes from one address; the rate limit is tested elsewhere.
            rate_per_minute: 0,
            ..Settings::default()
        },
        Arc::new(OpenAuth),
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = e.app.clone();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    let base = format!("http://{addr}");
    let client = crate::common::http();

    // A genuine upload for the checks behind the token to aim at; aborted at the end.
    let fixture: CreateMultipartResponse = client
        .post(format!("{base}/s3/multipart"))
        .header("content-type", "application/json")
        .body(json!({"filename": "f.bin", "size": 11 * MIB, "partSize": 5 * MIB}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, key) = (fixture.upload_id.clone(), fixture.key.clone());
    assert_eq!(e.open_uploads().len(), 1);

    let cases = corpus(&id, &key);
    assert!(cases.len() >= 300, "only {} cases", cases.len());
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for (i, case) in cases.iter().enumerate() {
        let mut req = client.request(case.method.clone(), format!("{base}{}", case.uri));
        if let Some(body) = &case.body {
            match case.content_type {
                Some("") => {}
                Some(ct) => req = req.header("content-type", ct),
                None => req = req.header("content-type", "application/json"),
            }
            req = req.body(body.clone());
        }
        let res = req.send().await.unwrap_or_else(|err| {
            panic!(
                "case {i} {} {}: the server dropped it: {err}",
                case.method, case.uri
            )
        });
        let status = res.status();
        let content_type = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = res.text().await.unwrap();
        let what = format!(
            "case {i} {} {:.120}: {status} {text:.300}",
            case.method, case.uri
        );
        assert!(status.is_client_error(), "{what}");
        assert_eq!(content_type.as_deref(), Some("application/json"), "{what}");
        let body: ErrorBody = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}"));
        assert!(
            !matches!(body.error, ErrorCode::Unknown | ErrorCode::Internal),
            "{what}"
        );
        assert!(body.message.len() > 10, "{what}");
        *codes.entry(body.error.to_string()).or_default() += 1;
    }
    eprintln!("corpus of {} requests: {codes:?}", cases.len());

    // Still up, and the corpus created nothing: only the fixture is open, with no parts.
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(e.open_uploads().len(), 1, "{:?}", e.open_uploads());
    assert!(e.stored_parts().is_empty(), "{:?}", e.stored_parts());
    assert!(e.objects().is_empty(), "{:?}", e.objects());
    let res = client
        .delete(format!("{base}/s3/multipart/{id}?key={}", enc(&key)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(e.open_uploads().is_empty());
    let listed =
        e.s3.client()
            .list_objects_v2()
            .bucket(crate::common::BUCKET)
            .send()
            .await
            .unwrap();
    assert_eq!(listed.key_count(), Some(0));
}
