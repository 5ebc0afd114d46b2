//! The state every handler shares ([`AppState`]: the store, the key policy, the authorizer, the
//! upload secrets, the rate limiters, the metrics, the receipt signer, the part checksum choice
//! and, when on, the completion events' notifier) and the [`Settings`] it is built from.
//!
//! Cheap to clone: one `Arc`. The store is wrapped in [`metrics::MeteredStore`] here, so every
//! store call a handler makes is timed and counted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use s3_direct_protocol::wire::ChecksumAlgorithm;

use crate::auth::{Authorizer, OpenAuth};
use crate::client_address::TrustedProxies;
use crate::config::{self, ServeConfig};
use crate::events;
use crate::guard;
use crate::keys::KeyPolicy;
use crate::metrics::{self, Metrics};
use crate::ratelimit::RateLimiter;
use crate::receipt::{self, ReceiptSigner};
use crate::store::{self, ChecksumChoice, ChecksumSetting, Store};
use crate::token::UploadSecrets;

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
    /// Proxies whose `X-Forwarded-For` names the client ([`TrustedProxies`]).
    pub trusted_proxies: TrustedProxies,
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
            trusted_proxies: TrustedProxies::default(),
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
            trusted_proxies: TrustedProxies::new(c.trusted_proxies.clone()),
        }
    }
}

/// Why completion events could not be turned on.
#[derive(Debug, thiserror::Error)]
pub enum EnableEventsError {
    /// The notifier refused its configuration.
    #[error("{0}")]
    Notifier(String),
    #[error("completion events are already on")]
    AlreadyOn,
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
    ) -> Result<Arc<events::Notifier>, EnableEventsError> {
        let notifier = Arc::new(
            events::Notifier::new(config, self.inner.store.clone(), self.inner.metrics.clone())
                .map_err(EnableEventsError::Notifier)?,
        );
        self.inner
            .notifier
            .set(notifier.clone())
            .map_err(|_| EnableEventsError::AlreadyOn)?;
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
