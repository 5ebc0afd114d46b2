//! The `s3-direct` binary itself: the stdout lines scripts parse, configuration from
//! `S3_DIRECT_*` and `AWS_*` variables, and a clean exit on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use s3_direct_server::{S3Store, S3StoreConfig};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;

/// Generous bound for a debug build starting on a loaded 2-core machine.
const STEP: Duration = Duration::from_secs(60);

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    timeout(STEP, lines.next_line())
        .await
        .expect("the binary printed nothing in time")
        .unwrap()
        .expect("the binary closed stdout early")
}

fn spawn(dir: &std::path::Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_s3-direct"))
        .args(args)
        .current_dir(dir)
        .env("S3_DIRECT_BUCKET", "env-bucket")
        .env("AWS_ACCESS_KEY_ID", "AKIDBINARYTEST")
        .env("AWS_SECRET_ACCESS_KEY", "binary-test-secret-key")
        .env("RUST_LOG", "warn")
        .env_remove("S3_DIRECT_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn prints_its_addresses_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("web")).unwrap();
    std::fs::write(dir.path().join("web/index.html"), "demo").unwrap();
    let mut child = spawn(dir.path(), &["--listen", "127.0.0.1:0"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    let embedded = next_line(&mut lines).await;
    let rest = embedded
        .strip_prefix("embedded store: http://127.0.0.1:")
        .unwrap_or_else(|| panic!("{embedded:?}"));
    let (port, tail) = rest.split_once(' ').unwrap();
    let store_port: u16 = port.parse().unwrap();
    assert_eq!(tail, "(bucket env-bucket, data ./data)");

    let listening = next_line(&mut lines).await;
    let addr = listening
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{listening:?}"))
        .to_owned();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );
    assert_eq!(
        next_line(&mut lines).await,
        format!("demo page: http://{addr}/")
    );

    let client = crate::common::http();
    let health = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let page = client.get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(page.text().await.unwrap(), "demo");
    let created = client
        .post(format!("http://{addr}/s3/multipart"))
        .header("content-type", "application/json")
        .body(r#"{"filename":"a.bin"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);

    // The embedded store took the AWS_* credentials and created the bucket in ./data.
    assert!(dir.path().join("data/env-bucket").is_dir());
    let store = S3Store::with_credentials(
        S3StoreConfig {
            endpoint: format!("http://127.0.0.1:{store_port}"),
            public_endpoint: None,
            bucket: "env-bucket".into(),
            region: "us-east-1".into(),
            path_style: true,
        },
        "AKIDBINARYTEST",
        "binary-test-secret-key",
    );
    store
        .client()
        .head_bucket()
        .bucket("env-bucket")
        .send()
        .await
        .unwrap();

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = timeout(STEP, child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn bad_options_are_refused_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_s3-direct"))
        .args(["--url-lifetime", "604801"])
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("604801") && err.contains("--url-lifetime"),
        "{err}"
    );
    assert!(!dir.path().join("data").exists());
}

#[tokio::test]
async fn refuses_to_start_open_on_a_public_address_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &'static [&'static str]| {
        Command::new(env!("CARGO_BIN_EXE_s3-direct"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("S3_DIRECT_AUTH")
            .env_remove("S3_DIRECT_JWT_SECRET")
            .output()
    };
    let out = run(&["--listen", "0.0.0.0:0"]).await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve without authentication on 0.0.0.0:0")
            && err.contains("--auth jwt"),
        "{err}"
    );
    let out = run(&["--listen", "0.0.0.0:0", "--auth", "jwt"])
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--jwt-secret"),
        "{err}"
    );
    let out = run(&["--auth", "jwt", "--jwt-secret", "too-short"])
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("too short"), "{err}");
    assert!(!err.contains("too-short"), "the secret is echoed: {err}");
    assert!(!dir.path().join("data").exists());
}

#[tokio::test]
async fn secrets_and_tokens_never_reach_the_log() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    const JWT_SECRET: &str = "log-test-jwt-secret-log-test-jwt-secret";
    const UPLOAD_SECRET: &str = "log-test-upload-secret-log-test-upload";
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_s3-direct"))
        .args(["--listen", "127.0.0.1:0", "--auth", "jwt"])
        .current_dir(dir.path())
        .env("S3_DIRECT_JWT_SECRET", JWT_SECRET)
        .env("S3_DIRECT_UPLOAD_SECRET", UPLOAD_SECRET)
        .env("AWS_ACCESS_KEY_ID", "AKIDLOGTEST")
        .env("AWS_SECRET_ACCESS_KEY", "log-test-aws-secret-key")
        .env("RUST_LOG", "debug")
        .env_remove("S3_DIRECT_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    next_line(&mut lines).await; // embedded store
    let listening = next_line(&mut lines).await;
    let addr = listening
        .strip_prefix("listening on http://")
        .unwrap()
        .to_owned();

    let now = jsonwebtoken::get_current_timestamp();
    let token = encode(
        &Header::default(),
        &serde_json::json!({"sub": "alice", "exp": now + 600}),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    let client = crate::common::http();
    let created: serde_json::Value = client
        .post(format!("http://{addr}/s3/multipart"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"filename":"a.bin"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upload_id = created["uploadId"].as_str().unwrap().to_owned();
    let key = created["key"].as_str().unwrap();
    let upload_token = upload_id.rsplit_once('.').unwrap().1.to_owned();
    let k: String = key
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    for uri in [
        format!("/s3/multipart/{upload_id}/1?key={k}"),
        format!("/s3/multipart/{upload_id}/batch?key={k}&partNumbers=1,2"),
        format!("/s3/multipart/{upload_id}/99999?key={k}"),
        format!("/s3/multipart/{upload_id}x/1?key={k}"),
    ] {
        client
            .get(format!("http://{addr}{uri}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
    }
    // A bad bearer token is refused without being echoed.
    let refused = client
        .post(format!("http://{addr}/s3/multipart"))
        .bearer_auth(format!("{token}x"))
        .header("content-type", "application/json")
        .body(r#"{"filename":"a.bin"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(!refused.text().await.unwrap().contains(&token));

    let pid = child.id().unwrap().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    let out = timeout(STEP, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("multipart upload created"),
        "debug log missing: {log}"
    );
    for secret in [
        JWT_SECRET,
        UPLOAD_SECRET,
        "log-test-aws-secret-key",
        token.as_str(),
        &token[token.len() - 20..],
        upload_token.as_str(),
    ] {
        assert!(!log.contains(secret), "the log holds {secret:?}:\n{log}");
    }
}

/// One line at start says which part checksum the server asks for and why: CRC32C on the
/// embedded store (no probe); MD5 when the store cannot be probed — the server still starts.
#[tokio::test]
async fn the_part_checksum_is_decided_and_said_at_start() {
    let listen = [
        "--listen",
        "127.0.0.1:0",
        "--embedded-listen",
        "127.0.0.1:0",
    ];
    let log = crate::common::start_up_log(&listen, &[]).await;
    let said: Vec<&String> = log.iter().filter(|l| l.contains("part checksum")).collect();
    assert_eq!(said.len(), 1, "{log:#?}");
    assert!(
        said[0].contains("part checksum crc32c: the store is known to verify crc32c"),
        "{}",
        said[0]
    );

    // Nothing listens on port 1: the probe cannot run.
    let down = [
        ("S3_DIRECT_ENDPOINT", "http://127.0.0.1:1"),
        ("AWS_ACCESS_KEY_ID", "AKIDBINARYTEST"),
        ("AWS_SECRET_ACCESS_KEY", "binary-test-secret-key"),
    ];
    let log = crate::common::start_up_log(&["--listen", "127.0.0.1:0"], &down).await;
    let said: Vec<&String> = log.iter().filter(|l| l.contains("part checksum")).collect();
    assert_eq!(said.len(), 1, "{log:#?}");
    assert!(
        said[0].contains("WARN")
            && said[0].contains("part checksum md5: the crc32c probe could not run")
            && said[0].contains("a create probes again after 60 s"),
        "{}",
        said[0]
    );
}
