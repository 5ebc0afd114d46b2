//! `s3-direct bucket setup` and `s3-direct doctor` through the binary: against Garage and Ceph
//! radosgw on fresh buckets (when `S3_DIRECT_TEST_GARAGE_*` / `S3_DIRECT_TEST_CEPH_*` are set),
//! and against the embedded store always. Also the sweeper's start-up line on the embedded store.
//!
//! Garage 2.5 and Ceph radosgw 16.2 both implement PutBucketCors and
//! PutBucketLifecycleConfiguration (with `AbortIncompleteMultipartUpload`); these tests would
//! see a `NotImplemented` as a setup that exits non-zero and says so.

use std::process::Stdio;
use std::time::Duration;

use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, CorsConfiguration, CorsRule, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
};
use s3_direct_server::{S3Store, S3StoreConfig};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::common::no_uploads_left;

/// The page origin the tests configure (doctor sends it as `Origin`; nothing listens there).
pub(super) const ORIGIN: &str = "http://127.0.0.1:8080";
/// A hang guard, not a speed target: each real-store step ends within this, on a machine as busy
/// as it may be.
const BOUND: Duration = Duration::from_secs(600);

/// A fresh bucket on the store `S3_DIRECT_TEST_<NAME>_*` names, and the environment the binary
/// needs to reach it; `None` when the store is not configured.
async fn fresh_bucket(name: &str) -> Option<(S3Store, Vec<(String, String)>)> {
    let var = |v: &str| std::env::var(format!("S3_DIRECT_TEST_{name}_{v}")).ok();
    let endpoint = var("ENDPOINT")?;
    let (access_key, secret_key) = (var("ACCESS_KEY")?, var("SECRET_KEY")?);
    let region = var("REGION").unwrap_or_else(|| "us-east-1".into());
    let bucket = format!("setup-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let store = S3Store::with_credentials(
        S3StoreConfig {
            endpoint: endpoint.clone(),
            public_endpoint: None,
            bucket: bucket.clone(),
            region: region.clone(),
            path_style: true,
        },
        &access_key,
        &secret_key,
    );
    store
        .client()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let env = vec![
        ("S3_DIRECT_ENDPOINT".to_owned(), endpoint),
        ("S3_DIRECT_BUCKET".to_owned(), bucket),
        ("S3_DIRECT_REGION".to_owned(), region),
        ("S3_DIRECT_PATH_STYLE".to_owned(), "true".to_owned()),
        ("S3_DIRECT_CORS_ORIGINS".to_owned(), ORIGIN.to_owned()),
        ("AWS_ACCESS_KEY_ID".to_owned(), access_key),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), secret_key),
    ];
    Some((store, env))
}

pub(super) struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    pub(super) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", self.stdout, self.stderr))
    }
}

/// Runs the binary with `env` in a temp dir.
pub(super) async fn run(env: &[(String, String)], args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_s3-direct"))
        .args(args)
        .current_dir(dir.path())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn")
        .env_remove("AWS_PROFILE")
        .output()
        .await
        .unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Names of the checks with the given status in `doctor --json` output.
pub(super) fn checks_with(report: &Value, status: &str) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == status)
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Doctor's small-file test objects are deleted again.
async fn no_objects_left(store: &S3Store) {
    let out = store
        .client()
        .list_objects_v2()
        .bucket(&store.config().bucket)
        .send()
        .await
        .unwrap();
    assert!(
        out.contents().is_empty(),
        "left behind: {:?}",
        out.contents()
    );
}

async fn cors_ids(store: &S3Store) -> Vec<String> {
    let out = store
        .client()
        .get_bucket_cors()
        .bucket(&store.config().bucket)
        .send()
        .await
        .unwrap();
    out.cors_rules()
        .iter()
        .map(|r| r.id().unwrap_or("-").to_owned())
        .collect()
}

/// The status and message of the check called `name` in `doctor --json` output.
pub(super) fn check_named(report: &Value, name: &str) -> (String, String) {
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {report:#}"));
    (
        check["status"].as_str().unwrap().to_owned(),
        check["message"].as_str().unwrap().to_owned(),
    )
}

/// With `--checksum`, doctor's test part is created, signed and sent as the client does it, and a
/// damaged copy must be refused. `verifies_crc`: whether the store checks `x-amz-checksum-*`
/// (Ceph 16 does not; every store checks `Content-MD5`). Without `--checksum` (auto), doctor
/// names what the store refuses and what auto asks for: crc32c where it is verified, else md5.
async fn doctor_checks_the_checksum_the_server_asks_for(
    store: &S3Store,
    env: &[(String, String)],
    verifies_crc: bool,
) {
    let auto = run(env, &["doctor", "--json"]).await;
    let (status, message) = check_named(&auto.json(), "checksums");
    assert_eq!(status, "ok", "{message}");
    if verifies_crc {
        assert!(message.contains("stored anyway for: none"), "{message}");
        assert!(message.contains("auto asks for crc32c"), "{message}");
    } else {
        assert!(
            message.contains("stored anyway for: crc32, crc32c, sha256"),
            "{message}"
        );
        assert!(message.contains("auto asks for md5"), "{message}");
    }
    assert!(message.contains("refused for: md5 ("), "{message}");
    let (status, message) = check_named(&auto.json(), "browser upload");
    assert_eq!(status, "ok", "{message}");
    let asked = if verifies_crc { "crc32c" } else { "md5" };
    assert!(
        message.contains(&format!(
            "with its {asked} checksum, and a damaged copy was refused"
        )),
        "{message}"
    );

    let md5 = run(env, &["doctor", "--json", "--checksum", "md5"]).await;
    let (status, message) = check_named(&md5.json(), "browser upload");
    assert_eq!(status, "ok", "{message}");
    assert!(message.contains("a damaged copy was refused"), "{message}");

    let crc = run(env, &["doctor", "--json", "--checksum", "crc32c"]).await;
    let (status, message) = check_named(&crc.json(), "browser upload");
    if verifies_crc {
        assert_eq!(status, "ok", "{message}");
        assert!(
            message.contains("with its crc32c checksum, and a damaged copy was refused"),
            "{message}"
        );
    } else {
        assert_eq!(status, "warn", "{message}");
        assert!(
            message.contains("does not verify x-amz-checksum-crc32c — use --checksum md5"),
            "{message}"
        );
    }
    no_uploads_left(store).await;
}

/// `form_etag`: whether the store answers a small-file form with an `ETag` header (Ceph 16 does
/// not: doctor then warns that Uppy 5 needs `--small-file-method put`).
async fn setup_then_doctor_passes(store: S3Store, env: Vec<(String, String)>, form_etag: bool) {
    let setup = run(&env, &["bucket", "setup", "--json"]).await;
    assert!(setup.ok, "{}\n{}", setup.stdout, setup.stderr);
    let report = setup.json();
    assert_eq!(report["cors"]["status"], "added", "{report}");
    assert_eq!(report["lifecycle"]["status"], "added", "{report}");
    assert_eq!(report["cors"]["applied"], true);

    let doctor = run(&env, &["doctor", "--json"]).await;
    let report = doctor.json();
    assert!(doctor.ok, "{report:#}\n{}", doctor.stderr);
    assert_eq!(report["passed"], true);
    let mut ok = vec![
        "credentials",
        "clock",
        "checksums",
        "browser upload",
        "small-file form",
        "lifecycle",
        "credential lifetime",
    ];
    if !form_etag {
        ok.retain(|c| *c != "small-file form");
        assert_eq!(
            checks_with(&report, "warn"),
            ["small-file form"],
            "{report:#}"
        );
        let (_, form) = check_named(&report, "small-file form");
        assert!(form.contains("--small-file-method put"), "{form}");
    }
    assert_eq!(checks_with(&report, "ok"), ok, "{report:#}");
    assert_eq!(report["fixes"], serde_json::json!([]));
    no_uploads_left(&store).await;
    no_objects_left(&store).await;
}

/// A bucket whose CORS rule for the page lacks `ExposeHeaders: ETag`, beside rules of other
/// tools: doctor fails and prints the fix; setup (twice) fixes it and keeps the other rules.
async fn doctor_fails_without_expose_headers_and_setup_fixes_it(
    store: S3Store,
    env: Vec<(String, String)>,
) {
    let c = store.client();
    let bucket = &store.config().bucket;
    let rule = |id: &str, origin: &str, methods: &[&str]| {
        CorsRule::builder()
            .id(id)
            .allowed_origins(origin)
            .set_allowed_methods(Some(methods.iter().map(|m| (*m).to_owned()).collect()))
            .allowed_headers("*")
            .build()
            .unwrap()
    };
    c.put_bucket_cors()
        .bucket(bucket)
        .cors_configuration(
            CorsConfiguration::builder()
                .cors_rules(rule("old-uploads", ORIGIN, &["PUT", "GET"]))
                .cors_rules(rule("website", "https://www.example.com", &["GET"]))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    c.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(
                    LifecycleRule::builder()
                        .id("logs")
                        .status(ExpirationStatus::Enabled)
                        .filter(LifecycleRuleFilter::builder().prefix("logs/").build())
                        .expiration(LifecycleExpiration::builder().days(30).build())
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let doctor = run(&env, &["doctor"]).await;
    let text = &doctor.stdout;
    assert!(!doctor.ok, "{text}");
    assert!(
        doctor
            .stderr
            .contains("doctor found failures: browser upload"),
        "{}",
        doctor.stderr
    );
    let failed = text
        .lines()
        .find(|l| l.starts_with("FAIL  browser upload"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        failed.contains("add ExposeHeaders: ETag to the bucket's CORS rule"),
        "{failed}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("warn  lifecycle")),
        "{text}"
    );
    // The old rule does not allow POST: the store takes Uppy's small-file form, but the page
    // could not read the answer.
    let form = text
        .lines()
        .find(|l| l.starts_with("warn  small-file form"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(form.contains("allow POST"), "{form}");
    assert_eq!(
        text.matches("aws s3api put-bucket-cors").count(),
        1,
        "one CORS fix: {text}"
    );
    // The fixes: the CORS configuration with ours first and the others kept, the lifecycle
    // configuration with the logs rule kept, and the setup command.
    let cors_fix = text
        .split("aws s3api put-bucket-cors")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    let json = cors_fix
        .split("--cors-configuration '")
        .nth(1)
        .and_then(|j| j.split("'\n").next())
        .unwrap();
    let fix: Value = serde_json::from_str(json).unwrap();
    let ids: Vec<&str> = fix["CORSRules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["s3-direct-browser-uploads", "old-uploads", "website"]);
    assert_eq!(fix["CORSRules"][0]["ExposeHeaders"][0], "ETag");
    assert!(
        text.contains("aws s3api put-bucket-lifecycle-configuration"),
        "{text}"
    );
    assert!(text.contains("\"ID\": \"logs\""), "{text}");
    assert!(
        text.contains(&format!(
            "s3-direct bucket setup --endpoint {} --bucket {bucket} --cors-origin {ORIGIN}",
            store.config().endpoint
        )),
        "{text}"
    );
    no_uploads_left(&store).await;

    let first = run(&env, &["bucket", "setup", "--json"]).await;
    assert!(first.ok, "{}\n{}", first.stdout, first.stderr);
    let first = first.json();
    assert_eq!(
        (&first["cors"]["status"], &first["lifecycle"]["status"]),
        (&"added".into(), &"added".into()),
        "{first}"
    );
    assert_eq!(first["cors"]["other_rules"], 2);
    let second = run(&env, &["bucket", "setup", "--json"]).await;
    assert!(second.ok, "{}", second.stderr);
    let second = second.json();
    assert_eq!(second["cors"]["status"], "unchanged", "{second}");
    assert_eq!(second["lifecycle"]["status"], "unchanged", "{second}");
    assert_eq!(second["cors"]["applied"], false);

    assert_eq!(
        cors_ids(&store).await,
        ["s3-direct-browser-uploads", "old-uploads", "website"]
    );
    let lifecycle = c
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let logs = lifecycle
        .rules()
        .iter()
        .find(|r| r.id() == Some("logs"))
        .expect("the logs rule was dropped");
    assert_eq!(
        logs.expiration().and_then(LifecycleExpiration::days),
        Some(30)
    );
    assert!(
        lifecycle
            .rules()
            .iter()
            .any(|r| r.id() == Some("s3-direct-abort-incomplete-uploads"))
    );

    let doctor = run(&env, &["doctor", "--json"]).await;
    let report = doctor.json();
    assert!(doctor.ok, "{report:#}");
    assert_eq!(checks_with(&report, "fail"), Vec::<String>::new());
    no_uploads_left(&store).await;
}

#[tokio::test]
async fn garage_setup_then_doctor_passes_on_a_fresh_bucket() {
    let Some((store, env)) = fresh_bucket("GARAGE").await else {
        crate::common::store_not_configured("S3_DIRECT_TEST_GARAGE_ENDPOINT");
        return;
    };
    tokio::time::timeout(BOUND, async {
        setup_then_doctor_passes(store.clone(), env.clone(), true).await;
        doctor_checks_the_checksum_the_server_asks_for(&store, &env, true).await;
    })
    .await
    .expect("did not finish within 10 minutes");
}

#[tokio::test]
async fn ceph_setup_then_doctor_passes_on_a_fresh_bucket() {
    let Some((store, env)) = fresh_bucket("CEPH").await else {
        crate::common::store_not_configured("S3_DIRECT_TEST_CEPH_ENDPOINT");
        return;
    };
    tokio::time::timeout(BOUND, async {
        setup_then_doctor_passes(store.clone(), env.clone(), false).await;
        doctor_checks_the_checksum_the_server_asks_for(&store, &env, false).await;
    })
    .await
    .expect("did not finish within 10 minutes");
}

#[tokio::test]
async fn garage_doctor_fails_without_expose_headers_and_setup_fixes_it() {
    let Some((store, env)) = fresh_bucket("GARAGE").await else {
        crate::common::store_not_configured("S3_DIRECT_TEST_GARAGE_ENDPOINT");
        return;
    };
    tokio::time::timeout(
        BOUND,
        doctor_fails_without_expose_headers_and_setup_fixes_it(store, env),
    )
    .await
    .expect("did not finish within 10 minutes");
}

#[tokio::test]
async fn ceph_doctor_fails_without_expose_headers_and_setup_fixes_it() {
    let Some((store, env)) = fresh_bucket("CEPH").await else {
        crate::common::store_not_configured("S3_DIRECT_TEST_CEPH_ENDPOINT");
        return;
    };
    tokio::time::timeout(
        BOUND,
        doctor_fails_without_expose_headers_and_setup_fixes_it(store, env),
    )
    .await
    .expect("did not finish within 10 minutes");
}

#[tokio::test]
async fn on_the_embedded_store_doctor_says_what_does_not_apply_and_setup_is_not_needed() {
    let env: Vec<(String, String)> = Vec::new();
    let doctor = run(&env, &["doctor", "--json", "--listen", "127.0.0.1:8080"]).await;
    let report = doctor.json();
    assert!(doctor.ok, "{report:#}\n{}", doctor.stderr);
    assert_eq!(report["origin"], "http://127.0.0.1:8080");
    assert_eq!(
        checks_with(&report, "ok"),
        [
            "credentials",
            "checksums",
            "browser upload",
            "small-file form"
        ]
    );
    assert_eq!(
        checks_with(&report, "n/a"),
        ["clock", "lifecycle", "credential lifetime"]
    );
    let (_, lifecycle) = check_named(&report, "lifecycle");
    assert!(lifecycle.contains("--sweep-older-than"), "{lifecycle}");
    // The embedded store verifies every checksum; auto asks for crc32c without a probe.
    let (_, checksums) = check_named(&report, "checksums");
    assert!(
        checksums.contains("stored anyway for: none")
            && checksums.contains("auto asks for crc32c (the store is known to verify crc32c)"),
        "{checksums}"
    );

    let setup = run(&env, &["bucket", "setup"]).await;
    assert!(setup.ok, "{}", setup.stderr);
    assert!(
        setup
            .stdout
            .starts_with("the embedded store needs no setup"),
        "{}",
        setup.stdout
    );
}

/// `serve --sweep-older-than` on the embedded store says once, before serving, that it cleans
/// the data dir instead of listing uploads.
#[tokio::test]
async fn the_sweeper_says_once_at_start_what_it_does_on_the_embedded_store() {
    // The start-up lines come before the server prints where it listens.
    let log = crate::common::start_up_log(
        &[
            "--listen",
            "127.0.0.1:0",
            "--sweep-older-than",
            "1d",
            "--sweep-every",
            "1h",
        ],
        &[],
    )
    .await;
    let said: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("cannot list multipart uploads"))
        .collect();
    assert_eq!(said.len(), 1, "{log:#?}");
    assert!(
        said[0].contains(
            "sweeper on: every 1h aborting incomplete uploads under \"uploads/\" in bucket s3-direct older than 1d"
        ),
        "{}",
        said[0]
    );
    assert!(
        said[0].contains("finds them in its data dir"),
        "{}",
        said[0]
    );
}

/// `serve --sweep-older-than 0s` against a real store: the sweep at start aborts the abandoned
/// upload under the key prefix (and nothing else), and `/metrics` counts what it freed.
async fn the_sweeper_in_serve_frees_abandoned_uploads(store: S3Store, env: Vec<(String, String)>) {
    let c = store.client();
    let bucket = &store.config().bucket;
    let mut ids = Vec::new();
    for key in ["uploads/abandoned.bin", "elsewhere/kept.bin"] {
        let id = c
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap()
            .upload_id()
            .unwrap()
            .to_owned();
        for n in 1..=2 {
            c.upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(&id)
                .part_number(n)
                .body(b"abc".to_vec().into())
                .send()
                .await
                .unwrap();
        }
        ids.push(id);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_s3-direct"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--sweep-older-than",
            "0s",
            "--sweep-every",
            "1h",
        ])
        .current_dir(dir.path())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = stdout
            .next_line()
            .await
            .unwrap()
            .expect("no listening line");
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.to_owned();
        }
    };
    // The first sweep runs at start; wait for its count, not for a fixed time.
    let metric = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let text = crate::common::http()
            .get(format!("{addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metric(&text, "s3direct_sweeps_total").unwrap_or(0) >= 1 {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no sweep counted within 60 s of start:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        metric(&metrics, "s3direct_sweep_uploads_aborted_total"),
        Some(1),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "s3direct_sweep_parts_freed_total"),
        Some(2)
    );
    assert_eq!(
        metric(&metrics, "s3direct_sweep_bytes_freed_total"),
        Some(6)
    );
    assert_eq!(metric(&metrics, "s3direct_sweep_errors_total"), Some(0));
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let left = c
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let left: Vec<(&str, &str)> = left
        .uploads()
        .iter()
        .map(|u| (u.key().unwrap(), u.upload_id().unwrap()))
        .collect();
    assert_eq!(left, [("elsewhere/kept.bin", ids[1].as_str())]);
}

#[tokio::test]
async fn garage_sweeper_in_serve_frees_abandoned_uploads() {
    let Some((store, env)) = fresh_bucket("GARAGE").await else {
        crate::common::store_not_configured("S3_DIRECT_TEST_GARAGE_ENDPOINT");
        return;
    };
    tokio::time::timeout(
        BOUND,
        the_sweeper_in_serve_frees_abandoned_uploads(store, env),
    )
    .await
    .expect("did not finish within 10 minutes");
}

#[tokio::test]
async fn ceph_sweeper_in_serve_frees_abandoned_uploads() {
    let Some((store, env)) = fresh_bucket("CEPH").await else {
        crate::common::store_not_configured("S3_DIRECT_TEST_CEPH_ENDPOINT");
        return;
    };
    tokio::time::timeout(
        BOUND,
        the_sweeper_in_serve_frees_abandoned_uploads(store, env),
    )
    .await
    .expect("did not finish within 10 minutes");
}
