//! Helpers shared by the integration tests: building the app over the fake or the embedded store,
//! sending requests through the router without a socket, and looking inside the embedded store's
//! data dir to prove that refused requests left nothing behind.

#![allow(dead_code)] // Each test module uses a different subset.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::wire::ErrorBody;
use s3_direct_server::auth::{Action, Admission, CreateDetails, Principal};
use s3_direct_server::token::{UploadClaims, principal_digest};
use s3_direct_server::{
    AppState, Authorizer, EmbeddedCredentials, EmbeddedStore, FakeStore, OpenAuth, S3Store,
    S3StoreConfig, Settings, Store, UploadSecrets, app,
};
use serde::de::DeserializeOwned;
use tempfile::TempDir;
use tokio::io::AsyncBufReadExt as _;
use tower::ServiceExt;

/// An HTTP client for the server and stores over sockets. reqwest's TLS needs the process's
/// crypto provider installed before any client is built; the library's builder does that.
pub fn http() -> reqwest::Client {
    s3_direct_server::http_client().build().unwrap()
}

/// A path-style store from `S3_DIRECT_TEST_{store}_ENDPOINT`, `_ACCESS_KEY`, `_SECRET_KEY` (and
/// optionally `_REGION`), on a fresh bucket name starting with `bucket_prefix` (not created
/// yet); `None` when the variables are unset (see [`store_not_configured`]).
pub fn store_from_env(store: &str, bucket_prefix: &str) -> Option<S3Store> {
    let var = |name: &str| std::env::var(format!("S3_DIRECT_TEST_{store}_{name}")).ok();
    let endpoint = var("ENDPOINT")?;
    let bucket = format!(
        "{bucket_prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    Some(S3Store::with_credentials(
        S3StoreConfig {
            endpoint,
            public_endpoint: None,
            bucket,
            region: var("REGION").unwrap_or_else(|| "us-east-1".into()),
            path_style: true,
        },
        &var("ACCESS_KEY")?,
        &var("SECRET_KEY")?,
    ))
}

/// Called by a test whose store is not configured, before it returns. Under `CI=true` that is a
/// failure: a broken set-up must not pass quietly (`scripts/test.sh` starts every store).
/// Elsewhere the test is skipped, saying why, so a plain `cargo test` needs no store.
pub fn store_not_configured(variable: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{variable} is not set: under CI=true every store test must run (scripts/test.sh \
             starts the stores and sets it)"
        );
    }
    eprintln!("{variable} not set; skipping (under CI=true this fails)");
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON of type `T`.
    ///
    /// # Panics
    /// If it is not, showing the body.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not the expected JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts a successful JSON answer and returns it.
    pub fn ok<T: DeserializeOwned>(&self) -> T {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()
    }

    /// Asserts a JSON error with `status` and `code`, and returns its message.
    pub fn error(&self, status: StatusCode, code: ErrorCode) -> String {
        let body: ErrorBody = self.json();
        assert_eq!(
            (self.status, body.error),
            (status, code),
            "message: {}",
            body.message
        );
        assert_eq!(
            self.headers.get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        body.message
    }
}

/// Sends one request through the router (no socket).
pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn get(app: &Router, uri: &str) -> Reply {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

pub async fn delete(app: &Router, uri: &str) -> Reply {
    send(
        app,
        Request::builder()
            .method(Method::DELETE)
            .uri(uri)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

pub async fn post_json(app: &Router, uri: &str, body: impl Into<Body>) -> Reply {
    let req = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap();
    send(app, req).await
}

/// Percent-encodes a query parameter value the way `encodeURIComponent` does.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The app over a fresh fake store, with default settings.
pub fn fake_app() -> (Router, Arc<FakeStore>) {
    fake_app_with(Settings::default())
}

pub fn fake_app_with(settings: Settings) -> (Router, Arc<FakeStore>) {
    let store = Arc::new(FakeStore::new());
    (app(open_state(store.clone(), settings)), store)
}

/// The upload secret every test app uses, so tests can mint upload ids for uploads they did not
/// create through the API.
pub const TEST_SECRET: &[u8] = b"test-upload-secret-test-upload-secret";

pub fn test_secrets() -> UploadSecrets {
    UploadSecrets::new(TEST_SECRET, None).unwrap()
}

/// An open (no auth) state with [`TEST_SECRET`].
pub fn open_state(store: Arc<dyn Store>, settings: Settings) -> AppState {
    AppState::with_auth(store, settings, Arc::new(OpenAuth), test_secrets())
}

/// Creates `store`'s bucket (a fresh name from [`store_from_env`]).
pub async fn create_bucket(store: &S3Store) {
    store
        .client()
        .create_bucket()
        .bucket(&store.config().bucket)
        .send()
        .await
        .unwrap();
}

/// Creates `store`'s bucket (a fresh name from [`store_from_env`]) and returns an open app over
/// it with the default settings.
pub async fn open_app_on_new_bucket(store: &S3Store) -> Router {
    create_bucket(store).await;
    s3_direct_server::app(open_state(Arc::new(store.clone()), Settings::default()))
}

/// Asserts that `store`'s bucket holds no multipart upload: tests and probes left nothing behind.
pub async fn no_uploads_left(store: &S3Store) {
    let out = store
        .client()
        .list_multipart_uploads()
        .bucket(&store.config().bucket)
        .send()
        .await
        .unwrap();
    assert!(out.uploads().is_empty(), "left behind: {:?}", out.uploads());
}

/// The `uploadId` a test app would issue to `principal` for store upload `store_id` and `key`.
pub fn upload_id_for(store_id: &str, key: &str, principal: &str) -> String {
    let claims = UploadClaims {
        principal: principal_digest(principal),
        expires_at: u64::MAX / 2,
        size: None,
        part_size: None,
        max_size: None,
        checksum: None,
    };
    format!("{store_id}.{}", test_secrets().seal(store_id, key, &claims))
}

/// [`upload_id_for`] the open server's `anonymous` caller.
pub fn anon_upload_id(store_id: &str, key: &str) -> String {
    upload_id_for(store_id, key, "anonymous")
}

/// The store's id inside an API `uploadId`.
pub fn store_id(upload_id: &str) -> &str {
    upload_id.rsplit_once('.').unwrap().0
}

/// Creates an upload through the API and returns `(key, upload_id)`.
pub async fn create(app: &Router, filename: &str) -> (String, String) {
    let body = serde_json::json!({ "filename": filename, "type": "application/octet-stream" });
    let reply = post_json(app, "/s3/multipart", body.to_string()).await;
    let created: s3_direct_protocol::wire::CreateMultipartResponse = reply.ok();
    (created.key, created.upload_id)
}

pub const BUCKET: &str = "it-bucket";

/// The app over an embedded s3s-fs store on a random loopback port, with data in a temp dir.
pub struct Embedded {
    pub app: Router,
    pub s3: S3Store,
    pub store: EmbeddedStore,
    /// Keeps the data dir alive for the test.
    pub dir: TempDir,
}

impl Embedded {
    pub async fn start() -> Self {
        Self::start_with(Settings::default(), Arc::new(OpenAuth)).await
    }

    /// The embedded store behind an app with `settings` and `auth`.
    pub async fn start_with(settings: Settings, auth: Arc<dyn Authorizer>) -> Self {
        Self::start_wrapped(settings, auth, |s3| Arc::new(s3)).await
    }

    /// [`Self::start_with`], the app reaching the store through what `wrap` makes of it.
    pub async fn start_wrapped(
        settings: Settings,
        auth: Arc<dyn Authorizer>,
        wrap: impl FnOnce(S3Store) -> Arc<dyn Store>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let store = EmbeddedStore::start(
            listener,
            &dir.path().join("data"),
            BUCKET,
            EmbeddedCredentials::random(),
        )
        .await
        .unwrap();
        let s3 = store.s3_store(BUCKET, "us-east-1", None);
        let state = AppState::with_auth(wrap(s3.clone()), settings, auth, test_secrets());
        Self {
            app: app(state),
            s3,
            store,
            dir,
        }
    }

    /// Every file under the bucket folder: the stored objects.
    pub fn objects(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(&self.store.data_dir().join(BUCKET), &mut out);
        out.retain(|p| p.is_file());
        out
    }

    /// Upload ids s3s-fs holds open (its `.upload-{id}.json` records).
    pub fn open_uploads(&self) -> Vec<String> {
        self.root_files()
            .iter()
            .filter_map(|name| name.strip_prefix(".upload-")?.strip_suffix(".json"))
            .map(str::to_owned)
            .collect()
    }

    /// Stored parts of open uploads (s3s-fs's `.upload_id-{id}.part-{n}` files).
    pub fn stored_parts(&self) -> Vec<String> {
        self.root_files()
            .into_iter()
            .filter(|name| name.starts_with(".upload_id-"))
            .collect()
    }

    fn root_files(&self) -> Vec<String> {
        std::fs::read_dir(self.store.data_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        }
        out.push(path);
    }
}

/// Deterministic pseudo-random bytes (xorshift), so a failure reproduces.
pub fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A caller whose uploads may hold at most `max_size` bytes.
#[derive(Debug)]
pub struct Limited(pub u64);

#[async_trait]
impl Authorizer for Limited {
    async fn authorize(
        &self,
        headers: &HeaderMap,
        action: Action,
        create: Option<&CreateDetails>,
        admission: &dyn Admission,
    ) -> Result<Principal, s3_direct_server::Error> {
        let caller = OpenAuth
            .authorize(headers, action, create, admission)
            .await?;
        Ok(Principal {
            max_size: Some(self.0),
            ..caller
        })
    }
}

/// The log lines (`RUST_LOG=info`) of the binary started with `args` and `env` (no endpoint
/// unless `env` names one: the embedded store), up to the moment it listens; then it is killed.
pub async fn start_up_log(args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_s3-direct"))
        .args(args)
        .current_dir(dir.path())
        .env_remove("S3_DIRECT_ENDPOINT")
        .env_remove("S3_DIRECT_CHECKSUM")
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            if line.starts_with("listening on") {
                return;
            }
        }
        panic!("the server never listened");
    })
    .await
    .expect("the server did not listen in time");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let mut log = Vec::new();
    while let Some(line) = stderr.next_line().await.unwrap() {
        log.push(line);
    }
    log
}
