//! The s3-direct signing service: creates S3 multipart uploads and hands browsers presigned URLs
//! so that file bytes go straight to the store, never through this server.
//!
//! The crate is a library with a thin binary (`s3-direct`), in the style of mini-redis:
//!
//! - [`app`] builds the whole HTTP router from an [`AppState`]; tests drive it with
//!   `tower::ServiceExt::oneshot`, no socket needed.
//! - [`serve`] runs it on a listener until a shutdown future resolves.
//! - [`prepare`] turns a [`ServeConfig`] into an [`AppState`], starting the
//!   [embedded store](embedded) when no endpoint is configured.
//!
//! The store sits behind the [`Store`] trait ([`S3Store`] for real stores, [`FakeStore`] for tests).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use s3_direct_protocol::wire::ChecksumAlgorithm;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;

mod answers;
pub mod auth;
pub mod config;
pub mod embedded;
pub mod error;
pub mod events;
pub mod guard;
pub mod keys;
pub mod media_type;
pub mod metrics;
pub mod ops;
pub mod policy;
pub mod ratelimit;
pub mod receipt;
pub mod routes;
pub mod store;
pub mod token;
pub mod validate;
pub mod whole_file;

pub use auth::{Authorizer, JwtAuth, OpenAuth, Principal, WebhookAuth};
pub use config::{Cli, Command, ServeConfig};
pub use embedded::{EmbeddedCredentials, EmbeddedStore};
pub use error::Error;
pub use keys::KeyPolicy;
pub use metrics::Metrics;
pub use ratelimit::RateLimiter;
pub use receipt::{ReceiptClaims, ReceiptSigner};
pub use store::{
    ChecksumChoice, ChecksumSetting, FakeStore, FakeVerification, S3Store, S3StoreConfig, Store,
    StoreError,
};
pub use token::UploadSecrets;

/// Installs rustls's aws-lc-rs crypto provider as the process default, once.
///
/// reqwest's rustls backend (built without a provider of its own, so that no second crypto
/// library is linked next to the AWS SDK's) panics when building a client unless a default is
/// installed. If one is already there (the AWS SDK installs the same one), it is kept.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error only says another provider won the race; either is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// A reqwest client builder with TLS ready: `https://` URLs are verified against the system's
/// root certificates.
pub fn http_client() -> reqwest::ClientBuilder {
    install_tls_provider();
    reqwest::Client::builder()
}

/// A loopback HTTPS listener for tests, with a self-signed certificate made by the `openssl` CLI.
#[cfg(test)]
pub(crate) mod test_tls {
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A running listener; it stops with the test's runtime.
    #[derive(Debug)]
    pub(crate) struct Server {
        /// `https://127.0.0.1:PORT/`.
        pub url: String,
        /// The self-signed certificate it presents (for 127.0.0.1), trusted by no one.
        pub cert: CertificateDer<'static>,
        _dir: tempfile::TempDir,
    }

    /// The body of every answer: a principal, for webhook tests.
    pub(crate) const BODY: &str = r#"{"id":"tls-client"}"#;

    /// Answers every request `200` with a `Date` header and [`BODY`].
    pub(crate) async fn start() -> Server {
        crate::install_tls_provider();
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        // A server certificate (not a CA, which rustls refuses as a server's) for 127.0.0.1.
        let config_path = dir.path().join("req.cnf");
        std::fs::write(
            &config_path,
            "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n\
             [dn]\nCN = 127.0.0.1\n\
             [ext]\nbasicConstraints = critical,CA:FALSE\nsubjectAltName = IP:127.0.0.1\n\
             keyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        let out = std::process::Command::new("/usr/bin/openssl")
            .args(["req", "-x509", "-config"])
            .arg(&config_path)
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-nodes", "-days", "1", "-keyout"])
            .arg(&key_path)
            .arg("-out")
            .arg(&cert_path)
            .output()
            .expect("the openssl CLI makes the test certificate");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cert = CertificateDer::from_pem_file(&cert_path).unwrap();
        let key = PrivateKeyDer::from_pem_file(&key_path).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake here.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let date = aws_sdk_s3::primitives::DateTime::from(std::time::SystemTime::now())
                        .fmt(aws_sdk_s3::primitives::DateTimeFormat::HttpDate)
                        .unwrap();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ndate: {date}\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{BODY}",
                        BODY.len()
                    );
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Server {
            url,
            cert,
            _dir: dir,
        }
    }
}

/// The settings handlers need, apart from the store.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Prefix of every issued key, e.g. `uploads/`.
    pub key_prefix: String,
    /// Path prefix of the API routes, e.g. `/s3`; empty puts them at the root.
    pub route_prefix: String,
    /// Lifetime of presigned URLs.
    pub url_lifetime: Duration,
    /// Folder served at `/`; a missing folder just answers 404.
    pub web_dir: PathBuf,
    /// Folder served at `/pkg/`.
    pub pkg_dir: PathBuf,
    /// How long an upload token (and so the upload's signing rights) lives after create.
    pub token_lifetime: Duration,
    /// Content types anyone may upload (`video/*` patterns); `None` allows any.
    pub content_types: Option<Vec<String>>,
    /// The part checksum asked of clients at create and for small files (`--checksum`; `auto`:
    /// one the store verifies, [`store::integrity`]).
    pub checksum: ChecksumSetting,
    /// How long `auto` goes on with MD5 after a probe that could not run before a create probes
    /// again.
    pub checksum_retry: Duration,
    /// How `GET /s3/params` answers callers that pass no size and name no method.
    pub small_file_method: config::SmallFileMethod,
    /// Requests per minute per caller (0: no limit) and the burst allowed at once.
    pub rate_per_minute: u32,
    pub rate_burst: u32,
    /// Requests per minute per client address whose credentials are not known yet (0: no
    /// limit), and the burst: charged before a webhook call and on every 401.
    pub unauthenticated_rate_per_minute: u32,
    pub unauthenticated_rate_burst: u32,
    /// Origins allowed to call the API from another origin (CORS); empty: same origin only.
    pub cors_origins: Vec<String>,
    /// Let those origins send cookies / credentials.
    pub cors_credentials: bool,
    /// Hosts answered besides an open server's loopback names; in the other modes, when not
    /// empty, the only hosts answered ([`guard::HostPolicy`]).
    pub allowed_hosts: Vec<guard::AllowedHost>,
}

impl Default for Settings {
    /// The CLI's defaults.
    fn default() -> Self {
        Self {
            key_prefix: "uploads/".to_owned(),
            route_prefix: "/s3".to_owned(),
            url_lifetime: Duration::from_secs(900),
            web_dir: PathBuf::from("web"),
            pkg_dir: PathBuf::from("wasm-client/pkg"),
            token_lifetime: Duration::from_secs(config::DEFAULT_TOKEN_LIFETIME_SECS),
            content_types: None,
            checksum: ChecksumSetting::Auto,
            checksum_retry: store::integrity::DEFAULT_RETRY_EVERY,
            small_file_method: config::SmallFileMethod::Post,
            rate_per_minute: config::DEFAULT_RATE_PER_MINUTE,
            rate_burst: config::DEFAULT_RATE_BURST,
            unauthenticated_rate_per_minute: config::DEFAULT_UNAUTHENTICATED_RATE_PER_MINUTE,
            unauthenticated_rate_burst: config::DEFAULT_UNAUTHENTICATED_RATE_BURST,
            cors_origins: Vec::new(),
            cors_credentials: false,
            allowed_hosts: Vec::new(),
        }
    }
}

impl From<&ServeConfig> for Settings {
    fn from(c: &ServeConfig) -> Self {
        Self {
            key_prefix: c.key_prefix.clone(),
            route_prefix: c.route_prefix.clone(),
            url_lifetime: c.url_lifetime(),
            web_dir: c.web_dir.clone(),
            pkg_dir: c.pkg_dir.clone(),
            token_lifetime: Duration::from_secs(c.upload_token_lifetime),
            content_types: (!c.content_types.is_empty()).then(|| c.content_types.clone()),
            checksum: c.checksum,
            checksum_retry: store::integrity::DEFAULT_RETRY_EVERY,
            small_file_method: c.small_file_method,
            rate_per_minute: c.rate_limit,
            rate_burst: c.rate_burst,
            unauthenticated_rate_per_minute: c.unauthenticated_rate_limit,
            unauthenticated_rate_burst: c.unauthenticated_rate_burst,
            cors_origins: c.cors_origins.clone(),
            cors_credentials: c.cors_credentials,
            allowed_hosts: c.allowed_hosts.clone(),
        }
    }
}

/// Shared state of every handler: the store and the settings. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    store: Arc<dyn Store>,
    keys: KeyPolicy,
    settings: Settings,
    authorizer: Arc<dyn Authorizer>,
    secrets: UploadSecrets,
    limiter: RateLimiter,
    address_limiter: RateLimiter,
    metrics: Arc<Metrics>,
    receipts: Arc<ReceiptSigner>,
    /// Completion events, once [`AppState::enable_events`] turned them on.
    notifier: std::sync::OnceLock<Arc<events::Notifier>>,
    checksum: Arc<ChecksumChoice>,
}

impl AppState {
    /// State serving `store` with `settings`, open (no authentication) and a random upload
    /// secret: the zero-config demo and most tests.
    pub fn new(store: Arc<dyn Store>, settings: Settings) -> Self {
        Self::with_auth(store, settings, Arc::new(OpenAuth), UploadSecrets::random())
    }

    /// State with an explicit authorizer and upload secrets, signing receipts with a key made
    /// now.
    pub fn with_auth(
        store: Arc<dyn Store>,
        settings: Settings,
        authorizer: Arc<dyn Authorizer>,
        secrets: UploadSecrets,
    ) -> Self {
        let receipts = Arc::new(ReceiptSigner::generate(receipt::DEFAULT_ISSUER));
        Self::with_security(store, settings, authorizer, secrets, receipts)
    }

    /// State with an explicit authorizer, upload secrets and receipt signer.
    pub fn with_security(
        store: Arc<dyn Store>,
        settings: Settings,
        authorizer: Arc<dyn Authorizer>,
        secrets: UploadSecrets,
        receipts: Arc<ReceiptSigner>,
    ) -> Self {
        let metrics = Arc::new(Metrics::new());
        let keys =
            KeyPolicy::new(settings.key_prefix.clone()).with_max_key_bytes(store.max_key_bytes());
        let store: Arc<dyn Store> = Arc::new(metrics::MeteredStore::new(store, metrics.clone()));
        Self {
            inner: Arc::new(Shared {
                store,
                metrics,
                keys,
                limiter: RateLimiter::new(settings.rate_per_minute, settings.rate_burst),
                address_limiter: RateLimiter::new(
                    settings.unauthenticated_rate_per_minute,
                    settings.unauthenticated_rate_burst,
                ),
                checksum: Arc::new(ChecksumChoice::new(
                    settings.checksum,
                    settings.checksum_retry,
                )),
                settings,
                authorizer,
                secrets,
                receipts,
                notifier: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Turns completion events on (`--notify-url`): every verified completion is then written to
    /// the store and sent. Answers the notifier, whose [`events::Notifier::run`] must run beside
    /// the server to deliver what the first attempts leave. Once per state.
    pub fn enable_events(
        &self,
        config: events::NotifyConfig,
    ) -> Result<Arc<events::Notifier>, String> {
        let notifier = Arc::new(events::Notifier::new(
            config,
            self.inner.store.clone(),
            self.inner.metrics.clone(),
        )?);
        self.inner
            .notifier
            .set(notifier.clone())
            .map_err(|_| "completion events are already on".to_owned())?;
        Ok(notifier)
    }

    /// The completion events' notifier, when they are on.
    pub fn notifier(&self) -> Option<&Arc<events::Notifier>> {
        self.inner.notifier.get()
    }

    /// Who is calling.
    pub fn authorizer(&self) -> &dyn Authorizer {
        self.inner.authorizer.as_ref()
    }

    /// The secrets of upload tokens.
    pub fn secrets(&self) -> &UploadSecrets {
        &self.inner.secrets
    }

    /// What signs upload receipts and the keys it publishes.
    pub fn receipts(&self) -> &ReceiptSigner {
        &self.inner.receipts
    }

    /// The per-caller rate limit.
    pub fn limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    /// The per-address rate limit of requests whose credentials are not known yet.
    pub fn address_limiter(&self) -> &RateLimiter {
        &self.inner.address_limiter
    }

    /// The store handlers call.
    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// This state's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// This state's metrics, shared (the background sweeper counts into them).
    pub fn metrics_handle(&self) -> Arc<Metrics> {
        self.inner.metrics.clone()
    }

    /// The key policy.
    pub fn keys(&self) -> &KeyPolicy {
        &self.inner.keys
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The part checksum to ask clients for now (`None`: none); an `auto` choice that no probe
    /// has settled yet may probe the store first ([`ChecksumChoice::asked`]).
    pub async fn checksum_asked(&self) -> Option<ChecksumAlgorithm> {
        self.inner.checksum.asked(&self.inner.store).await
    }

    /// The part checksum decided so far, and why (`None`: `auto`, not probed yet).
    pub fn checksum_decision(&self) -> Option<store::Decision> {
        self.inner.checksum.current()
    }

    /// Decides the part checksum now (probing the store for `auto`) and says in one line which
    /// and why: start-up calls it.
    pub async fn decide_checksum(&self) -> store::Decision {
        let decision = self.inner.checksum.decide(&self.inner.store).await;
        let name = store::integrity::name(decision.algorithm);
        if decision.settled {
            tracing::info!("part checksum {name}: {}", decision.reason);
        } else {
            tracing::warn!(
                "part checksum {name}: {}; a create probes again after {} s",
                decision.reason,
                self.inner.settings.checksum_retry.as_secs()
            );
        }
        decision
    }

    /// Lifetime of presigned URLs.
    pub fn url_lifetime(&self) -> Duration {
        self.inner.settings.url_lifetime
    }

    /// Lifetime of a URL signed now: the configured one, cut to what the signing credentials
    /// have left (a URL is dead once they expire, whatever its own expiry says).
    pub async fn url_lifetime_now(&self) -> Duration {
        let configured = self.url_lifetime();
        match self.store().credentials_remaining().await {
            Some(left) => configured.min(left).max(Duration::from_secs(1)),
            None => configured,
        }
    }
}

/// The whole HTTP surface: the signing API under the route prefix, `/healthz`, `/readyz`,
/// `/metrics`, the WASM package at `/pkg/` and the demo page at `/`.
pub fn app(state: AppState) -> Router {
    let settings = state.settings();
    let api = routes::api_router();
    let api = match cors(settings) {
        Some(layer) => api.layer(layer),
        None => api,
    };
    let pages = Router::new()
        .nest_service("/pkg", ServeDir::new(&settings.pkg_dir))
        .fallback_service(ServeDir::new(&settings.web_dir));
    let router = if settings.route_prefix.is_empty() {
        // API at the root: unknown paths fall through to the static files.
        ops_routes(api).merge(pages)
    } else {
        // Unknown paths under the prefix get a JSON 404, not the demo page's HTML 404.
        ops_routes(Router::new())
            .nest(&settings.route_prefix, api.fallback(routes::no_route))
            .merge(pages)
    };
    router
        // Bodies the server would misread are refused before any route sees them.
        .layer(axum::middleware::from_fn(guard::check_message))
        .layer(CatchPanicLayer::custom(panic_response))
        // The span names the method and the route *pattern* only: paths carry upload tokens and
        // keys, query strings carry keys and checksums, headers carry credentials.
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let route = req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map_or("-", axum::extract::MatchedPath::as_str)
                    .to_owned();
                // The request id (given or generated) is on every log line of the request.
                let request_id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned();
                tracing::info_span!(
                    "request",
                    method = %req.method(),
                    route = %route,
                    request_id = %request_id
                )
            }),
        )
        // Give the request an `x-request-id` (a UUID when the caller sent none) and echo it on
        // the response.
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        // Outermost: a caller's id that is not short visible ASCII is dropped, so one is made.
        .layer(axum::middleware::map_request(drop_unusable_request_id))
        .with_state(state)
}

/// The request id header.
const REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// Longest caller-supplied request id kept.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A caller's request id is used only when it is 1..=128 visible ASCII characters: it goes into
/// every log line and back into the response, so it must not be able to forge log lines, carry
/// control characters or flood the logs.
pub fn usable_request_id(value: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&value.len()) && value.iter().all(|b| b.is_ascii_graphic())
}

async fn drop_unusable_request_id(
    mut req: axum::http::Request<axum::body::Body>,
) -> axum::http::Request<axum::body::Body> {
    let given = req
        .headers()
        .get_all(&REQUEST_ID)
        .iter()
        .collect::<Vec<_>>();
    // Several ids are as unusable as a bad one: which would the logs name?
    let usable = matches!(given.as_slice(), [one] if usable_request_id(one.as_bytes()));
    if !given.is_empty() && !usable {
        req.headers_mut().remove(&REQUEST_ID);
    }
    req
}

/// The operator's routes: liveness, readiness and metrics.
fn ops_routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics))
        .route(receipt::JWKS_PATH, get(jwks))
}

/// The public keys of receipts, as a JWK Set (RFC 7517). Cacheable for a while: a new key is
/// published before receipts are signed with it (`--receipt-public-key` while rotating).
async fn jwks(State(state): State<AppState>) -> Response {
    (
        [(axum::http::header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.receipts().jwks().clone()),
    )
        .into_response()
}

/// CORS for the signing API from the configured origins (the store's CORS is separate: it is the
/// bucket's rule, or the embedded store's own layer).
fn cors(settings: &Settings) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if settings.cors_origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = settings
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-requested-with"),
            ])
            .expose_headers([header::RETRY_AFTER])
            .allow_credentials(settings.cors_credentials)
            .max_age(Duration::from_secs(600)),
    )
}

/// A panicking handler is a bug: answer the documented `internal` JSON error (the panic message
/// goes to the log only) instead of dropping the connection.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("no panic message");
    Error::Internal(format!("handler panicked: {detail}")).into_response()
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then lets in-flight requests finish.
///
/// Outside [`app`], because it needs the listening port: every request must name exactly one
/// `Host` the server answers ([`guard::check_host`]; an open server, only its loopback names on
/// this port, against DNS rebinding).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hosts = Arc::new(guard::HostPolicy::new(
        state.authorizer().is_open(),
        &state.settings().allowed_hosts,
        listener.local_addr()?,
    ));
    let app = app(state).layer(axum::middleware::from_fn_with_state(
        hosts,
        guard::check_host,
    ));
    // Connection info gives open mode's rate limit the client address.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// A ready-to-serve state and, in embedded mode, the store it uses (keep it alive while serving).
#[derive(Debug)]
pub struct Prepared {
    pub state: AppState,
    pub embedded: Option<EmbeddedStore>,
    /// The background sweeper when `--sweep-older-than` is given; run it beside the server.
    pub sweeper: Option<Arc<ops::sweeper::Sweeper>>,
    /// The completion events' deliverer when `--notify-url` is given; run it beside the server.
    pub notifier: Option<Arc<events::Notifier>>,
}

/// The sweeper `config` asks for, counting into `state`'s metrics. Says once, at start, what it
/// will do (and, for the embedded store, that it reads the data dir instead of listing).
fn sweeper_for(
    config: &ServeConfig,
    state: &AppState,
    admin: Arc<dyn ops::MultipartAdmin>,
    embedded_dir: Option<&std::path::Path>,
) -> Option<Arc<ops::sweeper::Sweeper>> {
    let older_than = config.sweep_older_than?;
    let token_lifetime = Duration::from_secs(config.upload_token_lifetime);
    if older_than < token_lifetime {
        tracing::warn!(
            "--sweep-older-than ({} s) is shorter than --upload-token-lifetime ({} s): an \
             upload its client could still resume is aborted once it is that old, and the \
             client then starts it over",
            older_than.as_secs(),
            token_lifetime.as_secs()
        );
    }
    let sweeper = ops::sweeper::Sweeper::new(
        admin,
        ops::sweeper::SweepConfig {
            older_than,
            every: config.sweep_every,
            prefix: config.key_prefix.clone(),
        },
        state.metrics_handle(),
    );
    match embedded_dir {
        Some(dir) => tracing::info!(
            "sweeper on: {}; the embedded store cannot list multipart uploads \
             (ListMultipartUploads), so the sweeper finds them in its data dir {} instead",
            sweeper.describe(),
            dir.display()
        ),
        None => tracing::info!("sweeper on: {}", sweeper.describe()),
    }
    Some(Arc::new(sweeper))
}

/// The authorizer and upload secrets `config` asks for.
///
/// Refuses an open server on a non-loopback address: anyone who can reach it could write to the
/// bucket. Warns when the upload secret is random (replicas and restarts then disagree).
pub fn security_from_config(
    config: &ServeConfig,
) -> Result<(Arc<dyn Authorizer>, UploadSecrets), String> {
    use config::AuthMode;
    let authorizer: Arc<dyn Authorizer> = match config.auth {
        AuthMode::Open => {
            if !config.listen.ip().is_loopback() {
                return Err(format!(
                    "refusing to serve without authentication on {}: anyone who can reach it could \
                     write to the bucket; use --auth jwt or --auth webhook, or listen on loopback \
                     (127.0.0.1) behind your own proxy",
                    config.listen
                ));
            }
            Arc::new(OpenAuth)
        }
        AuthMode::Jwt => {
            let auth = match (&config.jwt_secret, &config.jwt_public_key) {
                (Some(secret), None) => JwtAuth::hs256(secret.0.as_bytes())?,
                (None, Some(path)) => {
                    let pem = std::fs::read(path).map_err(|e| {
                        format!("cannot read --jwt-public-key {}: {e}", path.display())
                    })?;
                    JwtAuth::public_key_pem(&pem)?
                }
                _ => {
                    return Err("--auth jwt needs exactly one of --jwt-secret (HS256) or \
                         --jwt-public-key FILE (RS256/ES256)"
                        .to_owned());
                }
            };
            let auth = match &config.jwt_issuer {
                Some(iss) => auth.issuer(iss),
                None => auth,
            };
            let auth = match &config.jwt_audience {
                Some(aud) => auth.audience(aud),
                None => auth,
            };
            Arc::new(auth)
        }
        AuthMode::Webhook => {
            let url = config.webhook_url.as_deref().ok_or(
                "--auth webhook needs --webhook-url, the endpoint of your application that \
                 decides",
            )?;
            Arc::new(
                WebhookAuth::new(url, Duration::from_secs(config.webhook_cache_ttl))?
                    .deny_ttl(Duration::from_secs(config.webhook_deny_cache_ttl))
                    .max_in_flight(config.webhook_max_in_flight),
            )
        }
    };
    let secrets = match &config.upload_secret {
        Some(secret) => UploadSecrets::new(
            secret.0.as_bytes(),
            config
                .upload_secret_previous
                .as_ref()
                .map(|s| s.0.as_bytes()),
        )?,
        None => {
            if config.auth != AuthMode::Open {
                tracing::warn!(
                    "no --upload-secret: using a random one for this process; uploads will not \
                     survive a restart, and replicas must all be given the same secret"
                );
            }
            UploadSecrets::random()
        }
    };
    Ok((authorizer, secrets))
}

/// The receipt signer `--receipt-key` names, or one with a key made now (with a warning: replicas
/// and restarts do not share it).
fn receipt_signer(config: &ServeConfig) -> std::io::Result<ReceiptSigner> {
    match &config.receipt_key {
        Some(path) => {
            ReceiptSigner::from_files(path, &config.receipt_public_keys, &config.receipt_issuer)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))
        }
        None => {
            let signer = ReceiptSigner::generate(&config.receipt_issuer);
            tracing::warn!(
                kid = signer.kid(),
                "no --receipt-key: receipts are signed with a key made at start, which only this \
                 process publishes at {}; give every replica the same --receipt-key",
                receipt::JWKS_PATH
            );
            Ok(signer)
        }
    }
}

/// Builds the [`AppState`] for `config`: an [`S3Store`] for `--endpoint` with the standard AWS
/// credential chain, or, without an endpoint, the embedded store on `--embedded-listen`.
///
/// A security configuration that cannot work is an error of kind `InvalidInput` whose message
/// says why.
pub async fn prepare(config: &ServeConfig) -> std::io::Result<Prepared> {
    let prepared = prepare_store(config).await?;
    prepared.state.decide_checksum().await;
    Ok(prepared)
}

/// [`prepare`] without deciding the part checksum.
async fn prepare_store(config: &ServeConfig) -> std::io::Result<Prepared> {
    let settings = Settings::from(config);
    let (authorizer, secrets) = security_from_config(config)
        .and_then(|s| {
            ops::sweeper::check_config(config.sweep_older_than, &config.key_prefix).map(|()| s)
        })
        .map_err(|m| std::io::Error::new(std::io::ErrorKind::InvalidInput, m))?;
    let notify = events::NotifyConfig::from_serve(config)
        .map_err(|m| std::io::Error::new(std::io::ErrorKind::InvalidInput, m))?;
    let receipts = Arc::new(receipt_signer(config)?);
    let state = |store: Arc<dyn Store>| {
        AppState::with_security(store, settings, authorizer, secrets, receipts)
    };
    let events_for = |state: &AppState| -> std::io::Result<Option<Arc<events::Notifier>>> {
        let Some(notify) = notify else {
            return Ok(None);
        };
        let notifier = state
            .enable_events(notify)
            .map_err(|m| std::io::Error::new(std::io::ErrorKind::InvalidInput, m))?;
        tracing::info!("{}", notifier.describe());
        Ok(Some(notifier))
    };
    match &config.endpoint {
        Some(endpoint) => {
            let store = S3Store::from_env(S3StoreConfig {
                endpoint: endpoint.clone(),
                public_endpoint: config.public_endpoint.clone(),
                bucket: config.bucket.clone(),
                region: config.region.clone(),
                path_style: config.path_style,
            })
            .await;
            match store.credentials_remaining().await {
                Some(left) => tracing::info!(
                    "signing credentials expire in {} s; presigned URLs never outlive them \
                     (they are refreshed before expiry)",
                    left.as_secs()
                ),
                None => tracing::info!("signing credentials do not expire"),
            }
            let admin: Arc<dyn ops::MultipartAdmin> = Arc::new(store.clone());
            let state = state(Arc::new(store));
            Ok(Prepared {
                sweeper: sweeper_for(config, &state, admin, None),
                notifier: events_for(&state)?,
                state,
                embedded: None,
            })
        }
        None => {
            let listener = TcpListener::bind(config.embedded_listen).await?;
            let embedded = EmbeddedStore::start(
                listener,
                &config.data_dir,
                &config.bucket,
                EmbeddedCredentials::from_env_or_random(),
            )
            .await?;
            let store = embedded.s3_store(
                &config.bucket,
                &config.region,
                config.public_endpoint.clone(),
            );
            let admin: Arc<dyn ops::MultipartAdmin> = Arc::new(ops::embedded::EmbeddedAdmin::new(
                embedded.data_dir(),
                &config.bucket,
            ));
            let state = state(Arc::new(store));
            Ok(Prepared {
                sweeper: sweeper_for(config, &state, admin, Some(embedded.data_dir())),
                notifier: events_for(&state)?,
                state,
                embedded: Some(embedded),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    /// The `x-request-id` the server answers a request carrying `given` with.
    async fn answered_id(given: &[&[u8]]) -> String {
        let app = app(AppState::new(
            Arc::new(FakeStore::new()),
            Settings::default(),
        ));
        let mut req = axum::http::Request::get("/healthz");
        for g in given {
            req = req.header(
                "x-request-id",
                axum::http::HeaderValue::from_bytes(g).unwrap(),
            );
        }
        let res = app
            .oneshot(req.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let ids: Vec<_> = res.headers().get_all("x-request-id").iter().collect();
        assert_eq!(ids.len(), 1, "{ids:?}");
        ids[0].to_str().unwrap().to_owned()
    }

    fn is_uuid(s: &str) -> bool {
        uuid::Uuid::parse_str(s).is_ok()
    }

    #[tokio::test]
    async fn a_short_visible_ascii_request_id_is_kept() {
        assert_eq!(answered_id(&[b"req-42"]).await, "req-42");
        let longest = "a".repeat(MAX_REQUEST_ID_LEN);
        assert_eq!(answered_id(&[longest.as_bytes()]).await, longest);
        let punctuation = "!#$%&'()*+,-./:;<=>?@[]^_`{|}~\\\"";
        assert_eq!(answered_id(&[punctuation.as_bytes()]).await, punctuation);
    }

    #[tokio::test]
    async fn any_other_request_id_is_replaced_by_a_fresh_one() {
        let too_long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        for bad in [
            too_long.as_bytes(),
            b"",
            b"two words",
            b"tab\there",
            "caf\u{e9}".as_bytes(),
            b"\xff\xfe",
        ] {
            let id = answered_id(&[bad]).await;
            assert!(is_uuid(&id), "{bad:?} gave {id:?}");
        }
        // Two ids: neither is trusted.
        let id = answered_id(&[b"one", b"two"]).await;
        assert!(is_uuid(&id), "{id}");
        // None: one is made.
        assert!(is_uuid(&answered_id(&[]).await));
        // DEL and NUL cannot even travel in a header value; the check refuses them anyway.
        assert!(!usable_request_id(b"fake\x7f") && !usable_request_id(b"a\0b"));
        assert!(usable_request_id(b"~") && !usable_request_id(b" "));
    }

    #[tokio::test]
    async fn a_panic_becomes_an_internal_json_error_without_details() {
        let res = panic_response(Box::new("secret state at line 42".to_owned()));
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let body: s3_direct_protocol::wire::ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(body.error, s3_direct_protocol::ErrorCode::Internal);
        assert!(!body.message.contains("secret"), "{}", body.message);
    }
}
