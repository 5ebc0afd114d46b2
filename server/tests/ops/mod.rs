//! `s3-direct uploads list|purge` against real stores: paging past 1,000 uploads and 1,000 parts,
//! exact counts and bytes, dry runs that change nothing, and two purges racing.
//!
//! Garage runs when `S3_DIRECT_TEST_GARAGE_ENDPOINT`, `_ACCESS_KEY`, `_SECRET_KEY`, `_REGION` and
//! `_BUCKET` are set (from `tests/stores/garage.sh start DIR`); Ceph radosgw when
//! `S3_DIRECT_TEST_CEPH_ENDPOINT`, `_ACCESS_KEY`, `_SECRET_KEY` (and optionally `_REGION`) are set
//! (from `tests/stores/ceph.sh start DIR`); purges racing on different nodes of a 3-node Garage
//! when `S3_DIRECT_TEST_GARAGE3_ENDPOINTS` and its siblings are set. Otherwise those tests return
//! at once. The embedded store and the binary's refusals are tested always.

mod ascii_forms;
mod bucket;

use std::process::Stdio;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;
use s3_direct_server::ops::uploads::{self, Filter};
use s3_direct_server::ops::{MultipartAdmin, OpsError, PurgeReport};
use s3_direct_server::{EmbeddedCredentials, EmbeddedStore, S3Store, S3StoreConfig};
use tokio::process::Command;

/// A hang guard, not a speed target: each real-store test ends within this (once it holds
/// [`HEAVY`]), on a machine as busy as it may be. Its times are printed; speed is the benchmarks' job.
const BOUND: Duration = Duration::from_secs(600);
/// The thousands-of-uploads tests take turns: run at once on two cores, with the stores on the
/// same machine, each takes twice as long.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Requests in flight while filling a store.
const FILL_CONCURRENCY: usize = 32;

/// A store with credentials from `S3_DIRECT_TEST_<NAME>_*`, or `None` when not configured.
/// Without `_BUCKET` a fresh bucket is created.
async fn store_from_env(name: &str) -> Option<(S3Store, Vec<(String, String)>)> {
    let var = |v: &str| std::env::var(format!("S3_DIRECT_TEST_{name}_{v}")).ok();
    let endpoint = var("ENDPOINT")?;
    let (access_key, secret_key) = (var("ACCESS_KEY")?, var("SECRET_KEY")?);
    let region = var("REGION").unwrap_or_else(|| "us-east-1".into());
    let (bucket, create) = match var("BUCKET") {
        Some(b) => (b, false),
        None => (
            format!("ops-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            true,
        ),
    };
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
    if create {
        store
            .client()
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
    }
    // What the binary needs to reach the same store.
    let env = vec![
        ("S3_DIRECT_ENDPOINT".to_owned(), endpoint),
        ("S3_DIRECT_BUCKET".to_owned(), bucket),
        ("S3_DIRECT_REGION".to_owned(), region),
        ("S3_DIRECT_PATH_STYLE".to_owned(), "true".to_owned()),
        ("AWS_ACCESS_KEY_ID".to_owned(), access_key),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), secret_key),
    ];
    Some((store, env))
}

/// A key prefix no other test run uses.
fn unique_prefix() -> String {
    format!("ops-test/{}/", uuid::Uuid::new_v4().simple())
}

/// Creates an upload of `key` with parts `1..=sizes.len()` of the given sizes; returns its id.
async fn abandoned_upload(store: &S3Store, key: &str, sizes: &[usize]) -> String {
    let c = store.client();
    let bucket = &store.config().bucket;
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
    let results: Vec<()> = futures::stream::iter(sizes.iter().enumerate().map(|(i, size)| {
        let id = id.clone();
        async move {
            c.upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(id)
                .part_number(i32::try_from(i + 1).unwrap())
                .body(ByteStream::from(vec![b'p'; *size]))
                .send()
                .await
                .unwrap();
        }
    }))
    .buffer_unordered(FILL_CONCURRENCY)
    .collect()
    .await;
    assert_eq!(results.len(), sizes.len());
    id
}

/// How many distinct uploads two racing purges aborted between them. Each upload is aborted
/// by at least one; a store may also answer the loser of a race with success instead of
/// NoSuchUpload (Garage with three nodes does), so both can count it.
fn aborted_by_either(a: &PurgeReport, b: &PurgeReport) -> usize {
    let mut ids: Vec<&str> = a
        .aborted
        .iter()
        .chain(&b.aborted)
        .map(|u| u.upload.upload_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

/// 1,200 uploads with one part of 1..=7 bytes and 2 uploads with 2,000 parts of 3 bytes, under
/// a fresh prefix; lists them exactly, dry-runs, then purges twice at once.
async fn list_and_purge_exactly(store: S3Store, env: Vec<(String, String)>) {
    const SMALL: usize = 1200;
    const BIG_PARTS: usize = 2000;
    let prefix = unique_prefix();
    let started = std::time::Instant::now();
    let small: Vec<String> = futures::stream::iter((0..SMALL).map(|i| {
        let (store, key) = (&store, format!("{prefix}small/{i:05}.bin"));
        async move { abandoned_upload(store, &key, &[i % 7 + 1]).await }
    }))
    .buffer_unordered(FILL_CONCURRENCY)
    .collect()
    .await;
    assert_eq!(small.len(), SMALL);
    for i in 0..2 {
        abandoned_upload(&store, &format!("{prefix}big/{i}.bin"), &[3; BIG_PARTS]).await;
    }
    eprintln!("filled the store in {:?}", started.elapsed());

    let expected_parts = (SMALL + 2 * BIG_PARTS) as u64;
    let expected_bytes =
        (0..SMALL).map(|i| (i % 7 + 1) as u64).sum::<u64>() + 2 * 3 * BIG_PARTS as u64;
    let filter = Filter {
        prefix: Some(prefix.clone()),
        older_than: None,
    };
    let now = SystemTime::now();
    let found = uploads::list(&store, &filter, now).await.unwrap();
    assert_eq!(found.len(), SMALL + 2);
    assert_eq!(found.iter().map(|u| u.parts).sum::<u64>(), expected_parts);
    assert_eq!(found.iter().map(|u| u.bytes).sum::<u64>(), expected_bytes);
    let big: Vec<_> = found.iter().filter(|u| u.parts > 1).collect();
    assert_eq!(big.len(), 2);
    assert!(big.iter().all(|u| (u.parts, u.bytes) == (2000, 6000)));
    // Every upload once.
    let mut ids: Vec<&str> = found.iter().map(|u| u.upload.upload_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), SMALL + 2);
    eprintln!("listed in {:?}", started.elapsed());

    // The binary says the same of the two big ones, through the AWS credential chain.
    let big_prefix = format!("{prefix}big/");
    let out = Command::new(env!("CARGO_BIN_EXE_s3-direct"))
        .args(["uploads", "list", "--json", "--prefix", &big_prefix])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn")
        .env_remove("AWS_PROFILE")
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["total"],
        serde_json::json!({"uploads": 2, "parts": 2 * BIG_PARTS, "bytes": 2 * 3 * BIG_PARTS})
    );

    // Nothing is old enough yet.
    let old = Filter {
        prefix: Some(prefix.clone()),
        older_than: Some(Duration::from_secs(3600)),
    };
    assert!(uploads::list(&store, &old, now).await.unwrap().is_empty());

    let dry = uploads::purge(&store, &filter, now, true, false)
        .await
        .unwrap();
    assert_eq!(dry.aborted.len(), SMALL + 2);
    assert_eq!(dry.bytes(), expected_bytes);
    let still = uploads::pending_uploads(&store, &filter, now)
        .await
        .unwrap();
    assert_eq!(still.len(), SMALL + 2, "a dry run aborted uploads");

    let (a, b) = tokio::join!(
        uploads::purge(&store, &filter, now, false, false),
        uploads::purge(&store, &filter, now, false, false),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(aborted_by_either(&a, &b), SMALL + 2);
    assert!(a.bytes() + b.bytes() >= expected_bytes);
    assert!(
        uploads::pending_uploads(&store, &filter, now)
            .await
            .unwrap()
            .is_empty(),
        "uploads left after purging"
    );
    eprintln!("purged in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_lists_and_purges_thousands_of_uploads_exactly() {
    let Some((store, env)) = store_from_env("GARAGE").await else {
        crate::common::store_not_configured("S3_DIRECT_TEST_GARAGE_ENDPOINT");
        return;
    };
    let _turn = HEAVY.lock().await;
    tokio::time::timeout(BOUND, list_and_purge_exactly(store, env))
        .await
        .expect("the Garage test did not finish within 10 minutes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceph_lists_and_purges_thousands_of_uploads_exactly() {
    let Some((store, env)) = store_from_env("CEPH").await else {
        crate::common::store_not_configured("S3_DIRECT_TEST_CEPH_ENDPOINT");
        return;
    };
    let _turn = HEAVY.lock().await;
    tokio::time::timeout(BOUND, list_and_purge_exactly(store, env))
        .await
        .expect("the Ceph test did not finish within 10 minutes");
}

#[tokio::test]
async fn the_embedded_store_says_it_cannot_list_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let embedded = EmbeddedStore::start(
        listener,
        dir.path(),
        "ops-bucket",
        EmbeddedCredentials::random(),
    )
    .await
    .unwrap();
    let store = embedded.s3_store("ops-bucket", "us-east-1", None);
    let err = uploads::list(&store, &Filter::default(), SystemTime::now())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            OpsError::Unsupported {
                operation: "ListMultipartUploads"
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.bucket(), "ops-bucket");
}

/// Runs the binary with no store configured (the embedded one) in a temp dir, until it exits
/// (at most 30 s: these commands do not serve).
async fn run_embedded(args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_s3-direct"))
        .args(args)
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .env_remove("S3_DIRECT_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("s3-direct {args:?} is still running after 30 s"))
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_binary_explains_what_it_cannot_or_will_not_do() {
    let (ok, stdout, stderr) = run_embedded(&["uploads", "list"]).await;
    assert!(!ok && stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("note: the embedded store cannot list multipart uploads (ListMultipartUploads); reading its data dir ./data instead")
            && stderr.contains("error: embedded store data dir failed: cannot read the data dir ./data: No such file"),
        "{stderr}"
    );

    let (ok, _, stderr) = run_embedded(&["uploads", "purge"]).await;
    assert!(!ok);
    assert!(
        stderr.contains("refusing to purge every incomplete upload"),
        "{stderr}"
    );

    let (ok, _, stderr) = run_embedded(&["uploads", "purge", "--older-than", "1w"]).await;
    assert!(!ok);
    assert!(stderr.contains("like 30m, 24h or 7d"), "{stderr}");
}

/// A prefix that sweeps or purges must be non-empty and end with '/': the sweeper is refused at
/// start, before the embedded store or the listener, and a purge before it lists anything.
#[tokio::test]
async fn the_binary_refuses_to_sweep_or_purge_under_a_prefix_that_reaches_other_apps() {
    for prefix in ["", "uploads"] {
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--key-prefix",
            prefix,
            "--sweep-older-than",
            "7d",
        ];
        let (ok, stdout, stderr) = run_embedded(&args).await;
        assert!(!ok && stdout.is_empty(), "{prefix:?}: {stdout}");
        assert!(
            stderr.contains(
                "error: refusing to sweep: --sweep-older-than aborts old uploads under --key-prefix"
            ),
            "{prefix:?}: {stderr}"
        );
        let purge = ["uploads", "purge", "--prefix", prefix, "--older-than", "7d"];
        let (ok, _, stderr) = run_embedded(&purge).await;
        assert!(!ok);
        assert!(
            stderr.contains("error: refusing to purge: the prefix"),
            "{prefix:?}: {stderr}"
        );
    }
    let (ok, _, stderr) =
        run_embedded(&["--key-prefix", "", "uploads", "purge", "--older-than", "7d"]).await;
    assert!(!ok);
    assert!(stderr.contains("whole bucket"), "{stderr}");
}

/// Without --endpoint the commands say the embedded store cannot list uploads and read its data
/// dir instead: list, purge and abort work there.
#[tokio::test]
async fn on_the_embedded_store_the_commands_read_its_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let embedded =
        EmbeddedStore::start(listener, &data, "s3-direct", EmbeddedCredentials::random())
            .await
            .unwrap();
    let store = embedded.s3_store("s3-direct", "us-east-1", None);
    let first = abandoned_upload(&store, "uploads/a.bin", &[5, 6]).await;
    let second = abandoned_upload(&store, "uploads/b.bin", &[7]).await;
    let binary = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3-direct"));
        cmd.args(args)
            .arg("--data-dir")
            .arg(&data)
            .env("RUST_LOG", "warn")
            .env_remove("S3_DIRECT_ENDPOINT")
            .env_remove("S3_DIRECT_BUCKET");
        cmd
    };
    let out = binary(&["uploads", "list", "--json"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("note: the embedded store cannot list multipart uploads (ListMultipartUploads); reading its data dir"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["total"],
        serde_json::json!({"uploads": 2, "parts": 3, "bytes": 18})
    );

    let out = binary(&["uploads", "abort", "uploads/a.bin", &first])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("aborted uploads/a.bin {first}: freed 11 B in 2 part(s)\n")
    );
    let out = binary(&["uploads", "purge", "--prefix", "uploads/", "--json"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["freed"],
        serde_json::json!({"uploads": 1, "parts": 1, "bytes": 7})
    );
    assert_eq!(json["aborted"][0]["upload_id"], second.as_str());
    // The store agrees: both uploads are gone.
    for (key, id) in [("uploads/a.bin", &first), ("uploads/b.bin", &second)] {
        let err = store
            .client()
            .list_parts()
            .bucket("s3-direct")
            .key(key)
            .upload_id(id)
            .send()
            .await;
        assert!(err.is_err(), "{key} still listed");
    }
}

/// Two purges through different nodes of a 3-node Garage (`S3_DIRECT_TEST_GARAGE3_ENDPOINTS`
/// (comma-separated), `_ACCESS_KEY`, `_SECRET_KEY`, `_REGION`, `_BUCKET`, from
/// `garage.sh start DIR --nodes 3`): every node lists the same uploads, and purges racing on
/// different nodes leave nothing on any node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_purges_racing_on_different_nodes_agree() {
    let var = |v: &str| std::env::var(format!("S3_DIRECT_TEST_GARAGE3_{v}")).ok();
    let Some(endpoints) = var("ENDPOINTS") else {
        crate::common::store_not_configured("S3_DIRECT_TEST_GARAGE3_ENDPOINTS");
        return;
    };
    let (access_key, secret_key) = (var("ACCESS_KEY").unwrap(), var("SECRET_KEY").unwrap());
    let nodes: Vec<S3Store> = endpoints
        .split(',')
        .map(|endpoint| {
            S3Store::with_credentials(
                S3StoreConfig {
                    endpoint: endpoint.to_owned(),
                    public_endpoint: None,
                    bucket: var("BUCKET").unwrap(),
                    region: var("REGION").unwrap(),
                    path_style: true,
                },
                &access_key,
                &secret_key,
            )
        })
        .collect();
    assert!(nodes.len() >= 2, "{endpoints}");
    let test = async {
        let prefix = unique_prefix();
        for i in 0..40 {
            let node = &nodes[i % nodes.len()];
            abandoned_upload(node, &format!("{prefix}{i:03}.bin"), &[5, 5]).await;
        }
        let filter = Filter {
            prefix: Some(prefix.clone()),
            older_than: None,
        };
        let now = SystemTime::now();
        for node in &nodes {
            let found = uploads::list(node, &filter, now).await.unwrap();
            assert_eq!(
                found.len(),
                40,
                "{}: {:?}",
                node.config().endpoint,
                found
                    .iter()
                    .filter(|u| u.parts != 2)
                    .map(|u| (&u.upload.key, u.parts))
                    .collect::<Vec<_>>()
            );
            assert_eq!(found.iter().map(|u| u.bytes).sum::<u64>(), 400);
        }
        let (a, b) = tokio::join!(
            uploads::purge(&nodes[0], &filter, now, false, false),
            uploads::purge(&nodes[1], &filter, now, false, false),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(aborted_by_either(&a, &b), 40);
        // Every node agrees, once the aborts have reached it: two uploads aborted while the
        // other node aborted them too were listed by a third node for a moment once (a run under
        // load). A node that still lists one after CONVERGED has not agreed.
        const CONVERGED: Duration = Duration::from_secs(20);
        for node in &nodes {
            let since = std::time::Instant::now();
            loop {
                let left = uploads::pending_uploads(node, &filter, now).await.unwrap();
                if left.is_empty() {
                    break;
                }
                assert!(
                    since.elapsed() < CONVERGED,
                    "{}: {left:?}",
                    node.config().endpoint
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    tokio::time::timeout(BOUND, test)
        .await
        .expect("the 3-node Garage test did not finish within 10 minutes");
}
