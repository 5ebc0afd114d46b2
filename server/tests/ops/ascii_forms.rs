//! `s3-direct doctor` against a store that drops every POST-form field that is not visible ASCII,
//! as Garage 2.5.0 does when built without `--locked` (it then resolves `http` 1.6, whose
//! `HeaderValue::from_str` refuses such bytes, and Garage skips the field): the small-file check
//! must name the cause and the remedy. The stand-in is the embedded store behind a loopback proxy
//! that strips those fields from multipart bodies and passes everything else through unchanged.

use std::net::SocketAddr;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use s3_direct_server::{EmbeddedCredentials, EmbeddedStore};

use super::bucket::{ORIGIN, check_named, checks_with, run};

const BUCKET: &str = "forms";

/// The embedded store, and the environment the binary needs to reach it at `endpoint`.
async fn embedded(dir: &std::path::Path) -> (EmbeddedStore, Vec<(String, String)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store = EmbeddedStore::start(listener, dir, BUCKET, EmbeddedCredentials::random())
        .await
        .unwrap();
    let env = vec![
        ("S3_DIRECT_BUCKET".to_owned(), BUCKET.to_owned()),
        ("S3_DIRECT_REGION".to_owned(), "us-east-1".to_owned()),
        ("S3_DIRECT_PATH_STYLE".to_owned(), "true".to_owned()),
        ("S3_DIRECT_CORS_ORIGINS".to_owned(), ORIGIN.to_owned()),
        (
            "AWS_ACCESS_KEY_ID".to_owned(),
            store.credentials().access_key.clone(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".to_owned(),
            store.credentials().secret_key.to_string(),
        ),
    ];
    (store, env)
}

/// The boundary of a `multipart/form-data` request, if it is one.
fn boundary(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get("content-type")?.to_str().ok()?;
    let rest = ct.strip_prefix("multipart/form-data")?;
    let b = rest
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?;
    Some(b.trim_matches('"').to_owned())
}

/// `body` without the form fields (every part but `file`) whose value `http` 1.6's
/// `HeaderValue::from_str` refuses: anything but visible ASCII, space and tab.
fn strip_non_ascii_fields(body: &[u8], boundary: &str) -> Vec<u8> {
    let delimiter = format!("--{boundary}");
    let mut pieces = Vec::new();
    let mut rest = body;
    while let Some(at) = find(rest, delimiter.as_bytes()) {
        pieces.push(&rest[..at]);
        rest = &rest[at + delimiter.len()..];
    }
    pieces.push(rest);
    // pieces[0] is the preamble, the last one starts with "--" (the closing delimiter).
    let mut out = pieces[0].to_vec();
    for piece in &pieces[1..] {
        let keep = match find(piece, b"\r\n\r\n") {
            Some(split) if !is_file_part(&piece[..split]) => {
                let value = piece[split + 4..].strip_suffix(b"\r\n").unwrap_or(&[]);
                value
                    .iter()
                    .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
            }
            _ => true,
        };
        if keep {
            out.extend_from_slice(delimiter.as_bytes());
            out.extend_from_slice(piece);
        }
    }
    out
}

fn is_file_part(head: &[u8]) -> bool {
    String::from_utf8_lossy(head).contains("name=\"file\"")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Forwards every request to `upstream` as it came (the `Host` header too, which the signatures
/// cover), except that form bodies lose their non-ASCII fields.
async fn forward(State(upstream): State<String>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let body = match boundary(&parts.headers) {
        Some(b) if parts.method == "POST" => Bytes::from(strip_non_ascii_fields(&body, &b)),
        _ => body,
    };
    let url = format!(
        "{upstream}{}",
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut headers = parts.headers.clone();
    headers.remove("content-length");
    let answer = crate::common::http()
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap();
    let mut out = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != "transfer-encoding" && name != "content-length" {
            out = out.header(name, value);
        }
    }
    out.body(Body::from(answer.bytes().await.unwrap())).unwrap()
}

async fn stand_in(upstream: &str) -> SocketAddr {
    let router = Router::new()
        .fallback(forward)
        .with_state(upstream.to_owned());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Objects left in the bucket folder of the embedded store's data dir.
fn objects_left(store: &EmbeddedStore) -> Vec<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(&store.data_dir().join(BUCKET), &mut out);
    out
}

#[tokio::test]
async fn doctor_names_a_store_that_drops_non_ascii_form_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (store, env) = embedded(dir.path()).await;

    // Straight to the store: the form with the non-ASCII name is taken.
    let mut direct = env.clone();
    direct.push(("S3_DIRECT_ENDPOINT".to_owned(), store.endpoint().to_owned()));
    let doctor = run(&direct, &["doctor", "--json"]).await;
    let report = doctor.json();
    let (status, message) = check_named(&report, "small-file form");
    assert_eq!(status, "ok", "{message}");
    assert!(message.contains("not ASCII"), "{message}");

    // Through the stand-in: the key field is dropped, so the store refuses the form.
    let proxy = stand_in(store.endpoint()).await;
    let mut through = env.clone();
    through.push(("S3_DIRECT_ENDPOINT".to_owned(), format!("http://{proxy}")));
    let doctor = run(&through, &["doctor", "--json"]).await;
    let report = doctor.json();
    assert_eq!(
        checks_with(&report, "ok"),
        [
            "credentials",
            "clock",
            "checksums",
            "browser upload",
            "credential lifetime"
        ],
        "{report:#}"
    );
    let (status, message) = check_named(&report, "small-file form");
    assert_eq!(status, "warn", "{message}");
    for hint in [
        "it drops form fields that are not ASCII",
        "took the same form with an ASCII name",
        "cargo install --locked garage --version 2.5.0",
        "--small-file-method put",
    ] {
        assert!(message.contains(hint), "{hint:?} missing from {message}");
    }
    assert_eq!(objects_left(&store), Vec::<String>::new());
}
