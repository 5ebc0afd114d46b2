//! Start-up: from a [`ServeConfig`] to a ready [`AppState`] ([`prepare`]). It builds the
//! authorizer and upload secrets (refusing an open server off loopback), the receipt signer, the
//! store (an [`S3Store`] for `--endpoint`, else the embedded store), the sweeper and the
//! completion events' notifier when asked, then decides the part checksum.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret as _;
use tokio::net::TcpListener;

use crate::auth::{AuthConfigError, Authorizer, JwtAuth, OpenAuth, WebhookAuth};
use crate::config::{AuthMode, ServeConfig};
use crate::embedded::{EmbeddedCredentials, EmbeddedStore};
use crate::receipt::{self, ReceiptSigner};
use crate::state::{AppState, EnableEventsError, Settings};
use crate::store::{S3Store, S3StoreConfig, Store};
use crate::token::{SecretTooShort, UploadSecrets};
use crate::{events, ops};

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

/// A configuration that cannot work, found at start; its message names the option and the fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "refusing to serve without authentication on {0}: anyone who can reach it could write \
         to the bucket; use --auth jwt or --auth webhook, or listen on loopback (127.0.0.1) \
         behind your own proxy"
    )]
    OpenOffLoopback(std::net::SocketAddr),
    #[error("cannot read --jwt-public-key {}: {source}", path.display())]
    JwtKeyUnreadable {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "--auth jwt needs exactly one of --jwt-secret (HS256) or --jwt-public-key FILE \
         (RS256/ES256)"
    )]
    JwtKeyChoice,
    #[error("--auth webhook needs --webhook-url, the endpoint of your application that decides")]
    NoWebhookUrl,
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
    #[error(transparent)]
    Secret(#[from] SecretTooShort),
    /// The sweeper's options.
    #[error(transparent)]
    Sweep(#[from] crate::ops::sweeper::SweepConfigError),
    /// An option's value, refused by its parser (`config/`, the completion events' options).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Events(#[from] EnableEventsError),
}

impl From<StartError> for std::io::Error {
    /// A configuration error is `InvalidInput`: the binary prints its message alone.
    fn from(e: StartError) -> Self {
        Self::new(std::io::ErrorKind::InvalidInput, e)
    }
}

/// The authorizer and upload secrets `config` asks for.
///
/// Refuses an open server on a non-loopback address: anyone who can reach it could write to the
/// bucket. Warns when the upload secret is random (replicas and restarts then disagree).
pub fn security_from_config(
    config: &ServeConfig,
) -> Result<(Arc<dyn Authorizer>, UploadSecrets), StartError> {
    let authorizer: Arc<dyn Authorizer> = match config.auth {
        AuthMode::Open => {
            if !config.listen.ip().is_loopback() {
                return Err(StartError::OpenOffLoopback(config.listen));
            }
            Arc::new(OpenAuth)
        }
        AuthMode::Jwt => Arc::new(jwt_auth(config)?),
        AuthMode::Webhook => {
            let url = config
                .webhook_url
                .as_deref()
                .ok_or(StartError::NoWebhookUrl)?;
            Arc::new(
                WebhookAuth::new(url, Duration::from_secs(config.webhook_cache_ttl))?
                    .deny_ttl(Duration::from_secs(config.webhook_deny_cache_ttl))
                    .max_in_flight(config.webhook_max_in_flight),
            )
        }
    };
    Ok((authorizer, upload_secrets(config)?))
}

/// The bearer JWT authorizer: exactly one of `--jwt-secret` and `--jwt-public-key`, and the
/// issuer and audience to require, if any.
fn jwt_auth(config: &ServeConfig) -> Result<JwtAuth, StartError> {
    let auth = match (&config.jwt_secret, &config.jwt_public_key) {
        (Some(secret), None) => JwtAuth::hs256(secret.expose_secret().as_bytes())?,
        (None, Some(path)) => {
            let pem = std::fs::read(path).map_err(|source| StartError::JwtKeyUnreadable {
                path: path.clone(),
                source,
            })?;
            JwtAuth::public_key_pem(&pem)?
        }
        _ => return Err(StartError::JwtKeyChoice),
    };
    let auth = match &config.jwt_issuer {
        Some(iss) => auth.issuer(iss),
        None => auth,
    };
    Ok(match &config.jwt_audience {
        Some(aud) => auth.audience(aud),
        None => auth,
    })
}

/// The upload secrets `--upload-secret` (and `--upload-secret-previous`) give, or a random one
/// for this process alone (with a warning, unless the server is open).
fn upload_secrets(config: &ServeConfig) -> Result<UploadSecrets, StartError> {
    let Some(secret) = &config.upload_secret else {
        if config.auth != AuthMode::Open {
            tracing::warn!(
                "no --upload-secret: using a random one for this process; uploads will not \
                 survive a restart, and replicas must all be given the same secret"
            );
        }
        return Ok(UploadSecrets::random());
    };
    let previous = config
        .upload_secret_previous
        .as_ref()
        .map(|s| s.expose_secret().as_bytes());
    Ok(UploadSecrets::new(
        secret.expose_secret().as_bytes(),
        previous,
    )?)
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
    let (authorizer, secrets) = security_from_config(config)?;
    ops::sweeper::check_config(config.sweep_older_than, &config.key_prefix)
        .map_err(StartError::from)?;
    let notify = events::NotifyConfig::from_serve(config).map_err(StartError::from)?;
    let receipts = Arc::new(receipt_signer(config)?);
    let (store, admin, embedded) = match &config.endpoint {
        Some(endpoint) => {
            let store = remote_store(config, endpoint).await;
            let admin: Arc<dyn ops::MultipartAdmin> = Arc::new(store.clone());
            (store, admin, None)
        }
        None => {
            let (store, embedded) = embedded_store(config).await?;
            let admin: Arc<dyn ops::MultipartAdmin> = Arc::new(ops::embedded::EmbeddedAdmin::new(
                embedded.data_dir(),
                &config.bucket,
            ));
            (store, admin, Some(embedded))
        }
    };
    let state = AppState::with_security(Arc::new(store), settings, authorizer, secrets, receipts);
    let embedded_dir = embedded.as_ref().map(EmbeddedStore::data_dir);
    let sweeper = sweeper_for(config, &state, admin, embedded_dir);
    let notifier = match notify {
        Some(notify) => {
            let notifier = state.enable_events(notify).map_err(StartError::from)?;
            tracing::info!("{}", notifier.describe());
            Some(notifier)
        }
        None => None,
    };
    Ok(Prepared {
        state,
        embedded,
        sweeper,
        notifier,
    })
}

/// The client of the store at `endpoint`, with the standard AWS credential chain; says at start
/// when its credentials expire.
async fn remote_store(config: &ServeConfig, endpoint: &str) -> S3Store {
    let store = S3Store::from_env(S3StoreConfig {
        endpoint: endpoint.to_owned(),
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
    store
}

/// The embedded store, started on `--embedded-listen` with its data in `--data-dir`, and the
/// client that signs for it.
async fn embedded_store(config: &ServeConfig) -> std::io::Result<(S3Store, EmbeddedStore)> {
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
    Ok((store, embedded))
}
