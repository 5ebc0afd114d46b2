//! Completion events (`--notify-url`): the application's endpoint is a scripted HTTP server on a
//! random port that records every delivery and answers as the test says (a status, or never).
//! Uploads go over HTTP to a served state or to the `s3-direct` binary, on the embedded store.
//! Every wait has a deadline; the intervals are made small by the `--notify-*` settings.

mod binary;
mod stores;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use s3_direct_protocol::wire::{CompleteResponse, CreateMultipartResponse, SignBatchResponse};
use s3_direct_server::events::{NotifyConfig, WebhookSecret};
use s3_direct_server::{
    AppState, EmbeddedCredentials, EmbeddedStore, OpenAuth, S3Store, Settings, Store,
};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::common::{BUCKET, enc, test_secrets};

/// Longest any step may take on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(60);

/// The HMAC key's raw bytes, and the same key as the server takes it.
const KEY: &[u8] = b"completion-events-test-key-32-by";

fn secret_text() -> String {
    format!("whsec_{}", STANDARD.encode(KEY))
}

/// How the application answers a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Status(u16),
    /// Never: the request hangs until the sender gives up or dies.
    Hang,
}

/// One delivery the application received.
#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
    answered: Answer,
}

impl Delivery {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    fn upload_id(&self) -> String {
        self.json()["data"]["upload_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Checks the signature as an application does, with its own HMAC: the key is the base64
    /// after `whsec_`, the signed content `{id}.{timestamp}.{body}`.
    fn assert_signed(&self) {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(KEY).unwrap();
        mac.update(format!("{}.{}.{}", self.id, self.timestamp, self.body).as_bytes());
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        assert!(
            self.signature.split(' ').any(|s| s == expected),
            "{} is not {expected}",
            self.signature
        );
        let ts: u64 = self
            .timestamp
            .parse()
            .expect("webhook-timestamp is unix seconds");
        let now = s3_direct_server::policy::now_secs();
        assert!(ts.abs_diff(now) < 300, "timestamp {ts} is not now ({now})");
    }
}

#[derive(Default)]
struct Script {
    /// Answers for the next deliveries, in order; then `otherwise`.
    next: VecDeque<Answer>,
    otherwise: Option<Answer>,
    received: Vec<Delivery>,
}

/// The application's endpoint.
#[derive(Clone)]
struct Application {
    url: String,
    script: Arc<Mutex<Script>>,
    seen: watch::Sender<usize>,
}

impl Application {
    async fn start(next: &[Answer], otherwise: Answer) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/uploads", listener.local_addr().unwrap());
        let app = Self {
            url,
            script: Arc::new(Mutex::new(Script {
                next: next.iter().copied().collect(),
                otherwise: Some(otherwise),
                received: Vec::new(),
            })),
            seen: watch::channel(0).0,
        };
        let router = axum::Router::new()
            .route("/hooks/uploads", axum::routing::post(receive))
            .with_state(app.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        app
    }

    fn answer_from_now(&self, answer: Answer) {
        self.script.lock().unwrap().otherwise = Some(answer);
    }

    fn received(&self) -> Vec<Delivery> {
        self.script.lock().unwrap().received.clone()
    }

    /// Waits (with the deadline) until the deliveries received satisfy `done`.
    async fn wait_for(&self, what: &str, done: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        let mut rx = self.seen.subscribe();
        let waited = tokio::time::timeout(
            DEADLINE,
            rx.wait_for(|_| done(&self.script.lock().unwrap().received)),
        )
        .await;
        assert!(
            waited.is_ok(),
            "{what}: not in time; got {:#?}",
            self.received()
        );
        self.received()
    }
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

async fn receive(State(app): State<Application>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let answer = {
        let mut script = app.script.lock().unwrap();
        let answer = script.next.pop_front().or(script.otherwise).unwrap();
        script.received.push(Delivery {
            id: header(&headers, "webhook-id"),
            timestamp: header(&headers, "webhook-timestamp"),
            signature: header(&headers, "webhook-signature"),
            body: String::from_utf8(body.to_vec()).unwrap(),
            answered: answer,
        });
        answer
    };
    app.seen.send_modify(|n| *n += 1);
    match answer {
        Answer::Status(code) => StatusCode::from_u16(code).unwrap(),
        Answer::Hang => std::future::pending().await,
    }
}

/// Short intervals so a test sees several attempts in well under a second each.
fn quick(url: &str) -> NotifyConfig {
    NotifyConfig {
        grace: Duration::from_millis(300),
        scan_every: Duration::from_millis(50),
        backoff: Duration::from_millis(100),
        timeout: Duration::from_secs(5),
        ..NotifyConfig::new(url, WebhookSecret::parse(&secret_text()).unwrap())
    }
}

/// Uploads `name` (one small part) through the signing API at `base` and completes it.
async fn upload(base: &str, name: &str) -> CompleteResponse {
    upload_completing(base, name, 1).await
}

/// [`upload`], sending the completion `times` times (as a client whose answers were lost);
/// answers the last answer.
async fn upload_completing(base: &str, name: &str, times: usize) -> CompleteResponse {
    let http = crate::common::http();
    let created: CreateMultipartResponse = http
        .post(format!("{base}/s3/multipart"))
        .json(&json!({"filename": name, "type": "application/octet-stream"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (key, id) = (enc(&created.key), &created.upload_id);
    let batch: SignBatchResponse = http
        .get(format!(
            "{base}/s3/multipart/{id}/batch?key={key}&partNumbers=1"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut put = http.put(&batch.presigned_urls[&1]).body(name.repeat(100));
    for (name, value) in &batch.headers {
        put = put.header(name, value);
    }
    let put = put.send().await.unwrap();
    assert_eq!(put.status(), 200);
    let etag = put.headers()["etag"].to_str().unwrap().to_owned();
    let mut answers = Vec::new();
    for _ in 0..times {
        let done = http
            .post(format!("{base}/s3/multipart/{id}/complete?key={key}"))
            .json(&json!({"parts": [{"PartNumber": 1, "ETag": etag}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 200);
        answers.push(done.json().await.unwrap());
    }
    answers.pop().unwrap()
}

/// A served replica over `store` with events on; its deliverer runs until the test ends.
async fn replica(store: &S3Store, notify: NotifyConfig) -> (String, AppState) {
    let state = AppState::with_auth(
        Arc::new(store.clone()),
        Settings::default(),
        Arc::new(OpenAuth),
        test_secrets(),
    );
    let notifier = state.enable_events(notify).unwrap();
    tokio::spawn(notifier.run(std::future::pending()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(s3_direct_server::serve(
        listener,
        state.clone(),
        std::future::pending(),
    ));
    (base, state)
}

async fn embedded(dir: &std::path::Path) -> (EmbeddedStore, S3Store) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store = EmbeddedStore::start(listener, dir, BUCKET, EmbeddedCredentials::random())
        .await
        .unwrap();
    let s3 = store.s3_store(BUCKET, "us-east-1", None);
    (store, s3)
}

/// Waits (with the deadline) until no event is pending under the default prefix.
async fn assert_drained(store: &S3Store) {
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let left = store
            .list_objects(s3_direct_server::events::DEFAULT_PREFIX)
            .await
            .unwrap();
        if left.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "events still pending: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn metric(state: &AppState, name: &str) -> u64 {
    let text = state.metrics().render();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("s3direct_{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn an_application_down_at_first_gets_the_event_once_it_is_up_signed() {
    let app = Application::start(
        &[Answer::Status(503), Answer::Status(503)],
        Answer::Status(200),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (_embedded, store) = embedded(&dir.path().join("data")).await;
    let (base, state) = replica(&store, quick(&app.url)).await;

    let done = upload(&base, "report.pdf").await;
    let got = app
        .wait_for("a delivery the application accepts", |d| {
            d.iter().any(|d| d.answered == Answer::Status(200))
        })
        .await;
    assert_eq!(
        got.len(),
        3,
        "two refusals, then the accepted one: {got:#?}"
    );
    let ids: BTreeSet<_> = got.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids.len(), 1, "one webhook-id for one upload: {ids:?}");
    for d in &got {
        d.assert_signed();
        assert_eq!(d.body, got[0].body, "every attempt sends the same body");
    }
    let body = got[2].json();
    assert_eq!(body["type"], "upload.completed");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'), "{body}");
    let data = &body["data"];
    assert_eq!(data["key"], done.key.as_str());
    assert_eq!(data["bucket"], BUCKET);
    assert_eq!(data["size"], done.size);
    assert_eq!(data["etag"], done.etag.as_str());
    assert_eq!(data["sub"], "anonymous");
    assert_eq!(data["receipt"], done.receipt.as_deref().unwrap());

    assert_drained(&store).await;
    assert_eq!(metric(&state, "events_delivered_total"), 1);
    assert_eq!(metric(&state, "events_retried_total"), 2);
    assert_eq!(metric(&state, "events_failed_total"), 0);
    assert_eq!(
        app.received().len(),
        3,
        "nothing is sent after the 2xx: {:#?}",
        app.received()
    );
}

#[tokio::test]
async fn two_replicas_deliver_every_upload_duplicates_only_under_one_id() {
    let app = Application::start(&[], Answer::Status(503)).await;
    let dir = tempfile::tempdir().unwrap();
    let (_embedded, store) = embedded(&dir.path().join("data")).await;
    let (a, _) = replica(&store, quick(&app.url)).await;
    let (b, _) = replica(&store, quick(&app.url)).await;

    let mut uploads = BTreeSet::new();
    for (i, base) in [&a, &b, &a, &b, &a, &b].into_iter().enumerate() {
        let done = upload(base, &format!("file-{i}.bin")).await;
        let receipt = done.receipt.unwrap();
        uploads.insert(receipt);
    }
    // Every event was tried and refused at least once, so both replicas' scans hold them all.
    app.wait_for("a first attempt of every upload", |d| {
        d.iter()
            .map(|d| d.id.clone())
            .collect::<BTreeSet<_>>()
            .len()
            == 6
    })
    .await;
    app.answer_from_now(Answer::Status(200));
    let got = app
        .wait_for("an accepted delivery of every upload", |d| {
            let accepted: BTreeSet<_> = d
                .iter()
                .filter(|d| d.answered == Answer::Status(200))
                .map(|d| d.id.clone())
                .collect();
            accepted.len() == 6
        })
        .await;
    assert_drained(&store).await;
    let got = [got, app.received()].concat();
    let mut ids_by_upload: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in &got {
        d.assert_signed();
        ids_by_upload
            .entry(d.upload_id())
            .or_default()
            .insert(d.id.clone());
    }
    assert_eq!(ids_by_upload.len(), 6, "{ids_by_upload:#?}");
    for (upload, ids) in &ids_by_upload {
        assert_eq!(ids.len(), 1, "upload {upload} came under {ids:?}");
    }
    let receipts: BTreeSet<String> = got
        .iter()
        .map(|d| d.json()["data"]["receipt"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        receipts, uploads,
        "each upload's own receipt, and nothing else"
    );
}

#[tokio::test]
async fn an_event_failing_past_the_give_up_age_is_counted_and_kept_aside() {
    let app = Application::start(&[], Answer::Status(500)).await;
    let dir = tempfile::tempdir().unwrap();
    let (_embedded, store) = embedded(&dir.path().join("data")).await;
    let notify = NotifyConfig {
        give_up_after: Duration::ZERO,
        ..quick(&app.url)
    };
    let (base, state) = replica(&store, notify).await;
    upload(&base, "nobody-wants-it.bin").await;

    let until = tokio::time::Instant::now() + DEADLINE;
    while metric(&state, "events_failed_total") == 0 {
        assert!(tokio::time::Instant::now() < until, "never given up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The writer's attempt and one scan attempt, then no more.
    let got = app.received();
    assert_eq!(got.len(), 2, "{got:#?}");
    let prefix = s3_direct_server::events::DEFAULT_PREFIX;
    assert_eq!(store.list_objects(prefix).await.unwrap(), []);
    let left: Vec<String> = store
        .list_objects(&format!("{prefix}failed/"))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(left, [format!("{prefix}failed/{}.json", got[0].id)]);
    let kept: Value =
        serde_json::from_slice(&store.read_object(&left[0]).await.unwrap().unwrap()).unwrap();
    assert_eq!(
        kept["body"],
        got[0].body.as_str(),
        "kept to be replayed as sent"
    );
    assert_eq!(metric(&state, "events_retried_total"), 1);
    assert_eq!(metric(&state, "events_delivered_total"), 0);
}

#[tokio::test]
async fn a_retried_completion_sends_its_event_again_under_the_same_id() {
    let app = Application::start(&[], Answer::Status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let (_embedded, store) = embedded(&dir.path().join("data")).await;
    let (base, _) = replica(&store, quick(&app.url)).await;
    let done = upload_completing(&base, "twice.bin", 2).await;
    // Each completion writes the event; a delivery may take both writes away at once, so the
    // application sees it once or twice, but under one id.
    assert_drained(&store).await;
    let got = app.received();
    assert!((1..=2).contains(&got.len()), "{got:#?}");
    assert!(
        got.iter().all(|d| d.id == got[0].id),
        "one upload, one webhook-id: {got:#?}"
    );
    assert_eq!(got[0].json()["data"]["key"], done.key.as_str());
}
