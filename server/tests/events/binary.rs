//! Completion events and the `s3-direct` process: killed between its answer and the delivery, and
//! started again on the same embedded data dir, it delivers; a configuration that cannot work is
//! refused before anything starts.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

use super::{Answer, Application, DEADLINE, secret_text, upload};

/// Starts the binary in `dir` (data in `dir/data`) with events to `notify_url`; answers the
/// process and its API's base URL once it listens.
async fn start(dir: &Path, notify_url: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_s3-direct"))
        .args(["--listen", "127.0.0.1:0", "--notify-url", notify_url])
        .args(["--notify-grace", "300ms", "--notify-scan-every", "50ms"])
        .args(["--notify-backoff", "100ms"])
        .env("S3_DIRECT_NOTIFY_SECRET", secret_text())
        .current_dir(dir)
        .env("AWS_ACCESS_KEY_ID", "AKIDEVENTSTEST")
        .env("AWS_SECRET_ACCESS_KEY", "events-test-secret-key")
        .env("RUST_LOG", "warn")
        .env_remove("S3_DIRECT_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(addr) = line.strip_prefix("listening on ") {
                return addr.to_owned();
            }
        }
        panic!("the binary closed stdout before listening");
    })
    .await
    .expect("the binary did not listen in time");
    // Keep reading: a closed pipe would fail the binary's next line.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base)
}

#[tokio::test]
async fn an_event_outlives_a_killed_server_and_the_restarted_one_delivers_it() {
    let app = Application::start(&[], Answer::Hang).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut server, base) = start(dir.path(), &app.url).await;
    let done = upload(&base, "survivor.bin").await;

    // The browser has its answer; the first delivery is in flight, held by the application.
    let first = app.wait_for("the first attempt", |d| !d.is_empty()).await;
    server.start_kill().unwrap(); // SIGKILL: nothing is flushed or finished.
    timeout(DEADLINE, server.wait()).await.unwrap().unwrap();

    app.answer_from_now(Answer::Status(200));
    let (_server, _) = start(dir.path(), &app.url).await;
    let got = app
        .wait_for("the restarted server's delivery", |d| {
            d.iter().any(|d| d.answered == Answer::Status(200))
        })
        .await;
    let accepted = got
        .iter()
        .find(|d| d.answered == Answer::Status(200))
        .unwrap();
    accepted.assert_signed();
    assert_eq!(
        accepted.id, first[0].id,
        "the same webhook-id after the restart"
    );
    assert_eq!(accepted.body, first[0].body);
    assert_eq!(accepted.json()["data"]["key"], done.key.as_str());

    // Delivered, so deleted: no event file is left in the bucket.
    let events = dir.path().join("data/s3-direct/.s3-direct/events");
    let until = tokio::time::Instant::now() + DEADLINE;
    while std::fs::read_dir(&events).is_ok_and(|d| d.flatten().any(|e| e.path().is_file())) {
        assert!(
            tokio::time::Instant::now() < until,
            "the event was not deleted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Runs the binary with `args` (and `env`), expecting a refusal before anything starts: answers
/// its stderr.
async fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_s3-direct"))
        .args(args)
        .env_remove("S3_DIRECT_NOTIFY_SECRET")
        .envs(env.iter().copied())
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "{args:?} started");
    assert!(out.stdout.is_empty(), "{args:?} printed start-up lines");
    assert!(
        !dir.path().join("data").exists(),
        "{args:?} started the store"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn a_notify_configuration_that_cannot_work_is_refused_at_start() {
    let url = "http://127.0.0.1:9/hooks";
    let secret = secret_text();
    let err = refused(&["--notify-url", url], &[]).await;
    assert!(err.contains("--notify-url needs --notify-secret"), "{err}");

    for (prefix, why) in [
        ("", "must be a folder ending with '/'"),
        ("events", "must be a folder ending with '/'"),
        ("uploads/events/", "overlaps --key-prefix"),
        ("uploads/", "overlaps --key-prefix"),
    ] {
        let args = ["--notify-url", url, "--events-prefix", prefix];
        let err = refused(&args, &[("S3_DIRECT_NOTIFY_SECRET", &secret)]).await;
        assert!(err.contains(why), "{prefix:?}: {err}");
    }
    let args = [
        "--notify-url",
        url,
        "--key-prefix",
        "",
        "--events-prefix",
        "events/",
    ];
    let err = refused(&args, &[("S3_DIRECT_NOTIFY_SECRET", &secret)]).await;
    assert!(err.contains("overlaps --key-prefix"), "{err}");

    // A secret in another form is refused without being echoed.
    let plain = "not-a-standard-webhooks-secret-at-all";
    let err = refused(&["--notify-url", url, "--notify-secret", plain], &[]).await;
    assert!(err.contains("whsec_") && !err.contains(plain), "{err}");
    let short = "whsec_c2hvcnQtc2VjcmV0";
    let err = refused(
        &["--notify-url", url],
        &[("S3_DIRECT_NOTIFY_SECRET", short)],
    )
    .await;
    assert!(
        err.contains("at least 24") && !err.contains("c2hvcnQ"),
        "{err}"
    );
}
