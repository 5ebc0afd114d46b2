//! Command line and environment configuration of the `s3-direct` binary.
//!
//! Every option can also be given as an environment variable `S3_DIRECT_<NAME>` so that the same
//! binary runs unchanged from a shell, a container or a service manager. With no subcommand the
//! binary serves; operator subcommands hang off [`Command`].
//!
//! A value or a combination the server cannot start with is a [`ConfigError`], whose message names
//! the value and says what to use instead: clap shows it for a value it parses, `prepare` (startup.rs)
//! for what it checks at start (completion events here, receipt keys in `receipt.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use crate::store::ChecksumSetting;

pub mod error;
pub use error::ConfigError;

/// Longest lifetime SigV4 allows for a presigned URL (7 days).
pub const MAX_URL_LIFETIME_SECS: u64 = 7 * 24 * 60 * 60;
/// Default lifetime of an upload token: a week, enough to resume a big upload the next days.
pub const DEFAULT_TOKEN_LIFETIME_SECS: u64 = 7 * 24 * 60 * 60;
/// Default requests per minute per caller. A 100 GiB upload in 8 MiB parts needs ~13 signing
/// calls per 1,000 parts, but a queue of small files needs one call per file (two or three when
/// they go multipart): a folder of 1,000 photos is ~1,000 calls in well under a minute. 600 a
/// minute throttled a 200-file queue to 10 files a second, so the default is 100 a second, which
/// still stops floods (a signing call costs microseconds).
pub const DEFAULT_RATE_PER_MINUTE: u32 = 6000;
/// Default burst per caller: a queue's first few hundred files start without waiting.
pub const DEFAULT_RATE_BURST: u32 = 600;
/// Default requests per minute per client address whose credentials are not known yet (each may
/// cost a webhook call). A signed-in browser needs about one per `--webhook-cache-ttl`; ten a
/// second still lets a NAT or a proxy's worth of people sign in, and caps what one address can
/// make the application answer.
pub const DEFAULT_UNAUTHENTICATED_RATE_PER_MINUTE: u32 = 600;
/// Default burst of those per address.
pub const DEFAULT_UNAUTHENTICATED_RATE_BURST: u32 = 60;

/// How callers are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// No authentication: only allowed when listening on loopback.
    Open,
    /// `Authorization: Bearer <JWT>` (HS256, RS256 or ES256).
    Jwt,
    /// Ask the application's own endpoint (--webhook-url).
    Webhook,
}

/// A secret from the command line or environment: its `Debug` never shows it, it is wiped from
/// memory when dropped, and reading it takes `ExposeSecret::expose_secret`.
pub type Secret = secrecy::SecretString;

/// Signing server for browser-direct multipart uploads to S3-compatible storage.
///
/// Without --endpoint it starts an embedded S3-compatible store on loopback, so the demo page works
/// on a fresh machine with no configuration.
#[derive(Debug, Clone, Parser)]
#[command(name = "s3-direct", version, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub serve: ServeConfig,

    /// What to do; serving is the default.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Operator subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the signing server (the same as giving no subcommand).
    Serve,
    /// List, abort or purge incomplete multipart uploads (stored and billed until aborted).
    #[command(subcommand)]
    Uploads(crate::ops::UploadsCommand),
    /// Configure the bucket for browser uploads (CORS and lifecycle rules).
    #[command(subcommand)]
    Bucket(crate::ops::BucketCommand),
    /// Check that browsers can upload to the bucket (credentials, clock, CORS, ETag, lifecycle,
    /// credential lifetime) and print the configuration that fixes what fails.
    Doctor(crate::ops::DoctorArgs),
}

/// Everything the signing server needs to start. The options are global so that
/// `s3-direct serve --listen ...` and future operator subcommands accept them too.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address the signing API and demo page listen on.
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,

    /// Folder the embedded store keeps its buckets and objects in (only used without --endpoint).
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_DATA_DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,

    /// URL of the S3-compatible store the server talks to, e.g. http://127.0.0.1:3900.
    /// Absent: start the embedded store and use it.
    #[arg(long, global = true, env = "S3_DIRECT_ENDPOINT", value_parser = parse_url)]
    pub endpoint: Option<String>,

    /// URL browsers should see in presigned URLs, when they reach the store on another address
    /// than the server does (a proxy, a container network). Defaults to --endpoint.
    #[arg(long, global = true, env = "S3_DIRECT_PUBLIC_ENDPOINT", value_parser = parse_url)]
    pub public_endpoint: Option<String>,

    /// Bucket that uploads go to.
    #[arg(long, global = true, env = "S3_DIRECT_BUCKET", default_value = "s3-direct", value_parser = parse_bucket)]
    pub bucket: String,

    /// Region used both to sign URLs and to talk to the store (they must agree or signatures fail).
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_REGION",
        default_value = "us-east-1"
    )]
    pub region: String,

    /// Force path-style addressing (http://host/bucket/key) instead of virtual-hosted style.
    /// Most self-hosted stores need it; the embedded store always uses it.
    #[arg(long, global = true, env = "S3_DIRECT_PATH_STYLE")]
    pub path_style: bool,

    /// Lifetime of presigned URLs in seconds (at most 604800, 7 days, the SigV4 limit).
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_URL_LIFETIME",
        default_value_t = 900,
        value_parser = clap::value_parser!(u64).range(1..=MAX_URL_LIFETIME_SECS)
    )]
    pub url_lifetime: u64,

    /// Prefix of every object key the server issues; keys outside it are refused.
    #[arg(long, global = true, env = "S3_DIRECT_KEY_PREFIX", default_value = "uploads/", value_parser = parse_key_prefix)]
    pub key_prefix: String,

    /// Path prefix of the signing API routes (Uppy Companion uses /s3).
    #[arg(long, global = true, env = "S3_DIRECT_ROUTE_PREFIX", default_value = "/s3", value_parser = parse_route_prefix)]
    pub route_prefix: String,

    /// Folder served at / (the demo page).
    #[arg(long, global = true, env = "S3_DIRECT_WEB_DIR", default_value = "web")]
    pub web_dir: PathBuf,

    /// Folder served at /pkg/ (the WASM client package).
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_PKG_DIR",
        default_value = "wasm-client/pkg"
    )]
    pub pkg_dir: PathBuf,

    /// How callers are authenticated: open (no auth; loopback only), jwt or webhook.
    #[arg(long, global = true, env = "S3_DIRECT_AUTH", value_enum, default_value_t = AuthMode::Open)]
    pub auth: AuthMode,

    /// HS256 shared secret for --auth jwt (at least 32 bytes).
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_JWT_SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<Secret>,

    /// PEM public key file (RSA for RS256, P-256 for ES256) for --auth jwt.
    #[arg(long, global = true, env = "S3_DIRECT_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,

    /// Required `iss` claim of bearer tokens.
    #[arg(long, global = true, env = "S3_DIRECT_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` claim of bearer tokens.
    #[arg(long, global = true, env = "S3_DIRECT_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Endpoint of your application that --auth webhook asks (POST, with the caller's Cookie and
    /// Authorization headers); it answers 200 with {"id", "key_prefix"?, "max_size"?,
    /// "content_types"?} or 401/403. https://, or plain http:// on loopback or a private network.
    #[arg(long, global = true, env = "S3_DIRECT_WEBHOOK_URL", value_parser = parse_url)]
    pub webhook_url: Option<String>,

    /// Seconds a webhook's allow answer is reused for the same credentials (not for creates).
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_WEBHOOK_CACHE_TTL",
        default_value_t = 30
    )]
    pub webhook_cache_ttl: u64,

    /// Seconds a webhook's denial (401 or 403) is reused for the same credentials (401) or the
    /// same call (403); 0 asks again every time.
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_WEBHOOK_DENY_CACHE_TTL",
        default_value_t = crate::auth::DEFAULT_DENY_TTL_SECS
    )]
    pub webhook_deny_cache_ttl: u64,

    /// Most webhook calls in flight at once; a request that would need one more is answered 503
    /// (busy) with Retry-After.
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_WEBHOOK_MAX_IN_FLIGHT",
        default_value_t = crate::auth::DEFAULT_MAX_IN_FLIGHT,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub webhook_max_in_flight: u32,

    /// Secret that signs upload tokens (at least 32 bytes). Every replica must share it; without
    /// it a random one is made per process, and uploads survive neither restarts nor replicas.
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_UPLOAD_SECRET",
        hide_env_values = true
    )]
    pub upload_secret: Option<Secret>,

    /// The previous --upload-secret, still accepted while rotating to a new one.
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_UPLOAD_SECRET_PREVIOUS",
        hide_env_values = true
    )]
    pub upload_secret_previous: Option<Secret>,

    /// Seconds an upload token lives after create (signing, completing and aborting need it).
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_UPLOAD_TOKEN_LIFETIME",
        default_value_t = DEFAULT_TOKEN_LIFETIME_SECS,
        value_parser = clap::value_parser!(u64).range(60..)
    )]
    pub upload_token_lifetime: u64,

    /// Ed25519 private key (PKCS#8 PEM file) that signs upload receipts; every replica must share
    /// it. Without it a key is made at start, which only this process knows.
    #[arg(long, global = true, env = "S3_DIRECT_RECEIPT_KEY")]
    pub receipt_key: Option<PathBuf>,

    /// Ed25519 public key (PEM file) published beside the receipt key, so receipts signed with a
    /// key being rotated out still verify. Repeatable.
    #[arg(
        long = "receipt-public-key",
        global = true,
        env = "S3_DIRECT_RECEIPT_PUBLIC_KEYS",
        value_delimiter = ','
    )]
    pub receipt_public_keys: Vec<PathBuf>,

    /// The `iss` claim of receipts.
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_RECEIPT_ISSUER",
        default_value = "s3-direct"
    )]
    pub receipt_issuer: String,

    /// Content type anyone may upload, like video/* or application/pdf (repeatable, or
    /// comma-separated); none given allows any.
    #[arg(
        long = "content-type",
        global = true,
        env = "S3_DIRECT_CONTENT_TYPES",
        value_delimiter = ','
    )]
    pub content_types: Vec<String>,

    /// Checksum clients are asked to sign every part with, so the store refuses a corrupted one:
    /// auto (a checksum the store verifies: crc32c where a probe at start shows it refuses a
    /// wrong one, else md5, which every store verifies), off, md5, crc32, crc32c or sha256.
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_CHECKSUM",
        default_value = "auto",
        value_parser = parse_checksum
    )]
    pub checksum: ChecksumSetting,

    /// How `GET /s3/params` answers callers that pass no size and name no method (Companion
    /// clients such as Uppy): post, a POST policy form as Companion answers (Uppy 6 needs it);
    /// put, a presigned PUT (for Uppy 5 with a store whose form answer has no ETag header, such
    /// as Ceph 16: Uppy 5 waits for it).
    #[arg(long, global = true, env = "S3_DIRECT_SMALL_FILE_METHOD", value_enum, default_value_t = SmallFileMethod::Post)]
    pub small_file_method: SmallFileMethod,

    /// Requests per minute per caller (per client address when open); 0 disables the limit.
    #[arg(long, global = true, env = "S3_DIRECT_RATE_LIMIT", default_value_t = DEFAULT_RATE_PER_MINUTE)]
    pub rate_limit: u32,

    /// A proxy (an address or a network like 10.0.0.0/8) whose X-Forwarded-For names the client
    /// (repeatable, or comma-separated): behind a load balancer the per-address limits then key
    /// on the callers' addresses, not the balancer's. None: the header is ignored.
    #[arg(long = "trusted-proxy", global = true, env = "S3_DIRECT_TRUSTED_PROXIES", value_delimiter = ',', value_parser = crate::client_address::TrustedProxies::parse)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Requests a caller may make at once before the per-minute rate applies.
    #[arg(long, global = true, env = "S3_DIRECT_RATE_BURST", default_value_t = DEFAULT_RATE_BURST)]
    pub rate_burst: u32,

    /// Requests per minute per client address whose credentials are not known yet: each one
    /// the webhook must be asked about (charged before the call) and each refused as
    /// unauthenticated; 0 disables the limit.
    #[arg(long, global = true, env = "S3_DIRECT_UNAUTHENTICATED_RATE_LIMIT", default_value_t = DEFAULT_UNAUTHENTICATED_RATE_PER_MINUTE)]
    pub unauthenticated_rate_limit: u32,

    /// Such requests an address may make at once before its per-minute rate applies.
    #[arg(long, global = true, env = "S3_DIRECT_UNAUTHENTICATED_RATE_BURST", default_value_t = DEFAULT_UNAUTHENTICATED_RATE_BURST)]
    pub unauthenticated_rate_burst: u32,

    /// Origin allowed to call the signing API from another site, like https://app.example.com
    /// (repeatable, or comma-separated). None: same-origin only.
    #[arg(long = "cors-origin", global = true, env = "S3_DIRECT_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,

    /// Let the --cors-origin sites send cookies and Authorization (needed for webhook auth
    /// across origins).
    #[arg(long, global = true, env = "S3_DIRECT_CORS_CREDENTIALS")]
    pub cors_credentials: bool,

    /// Host the server answers, HOST or HOST:PORT (repeatable, or comma-separated); a HOST
    /// without a port matches any port. With --auth open the server answers only localhost,
    /// 127.0.0.1 and [::1] on its own port (against DNS rebinding), and these are added; in the
    /// other modes, when given, only these are answered (none given: any host). Other hosts get
    /// 421 misdirected_request; /healthz and /readyz answer any host.
    #[arg(long = "allowed-host", global = true, env = "S3_DIRECT_ALLOWED_HOSTS", value_delimiter = ',', value_parser = crate::guard::AllowedHost::parse)]
    pub allowed_hosts: Vec<crate::guard::AllowedHost>,

    /// Sweep abandoned uploads in the background: abort incomplete uploads under --key-prefix
    /// started at least this long ago (30m, 24h, 7d). Off when absent. Safe with several
    /// replicas sweeping; with the embedded store it cleans its data dir.
    #[arg(long, global = true, env = "S3_DIRECT_SWEEP_OLDER_THAN", value_parser = crate::ops::units::parse_age)]
    pub sweep_older_than: Option<Duration>,

    /// Time between two sweeps of --sweep-older-than (30m, 1h, 1d).
    #[arg(long, global = true, env = "S3_DIRECT_SWEEP_EVERY", default_value = "1h", value_parser = parse_period)]
    pub sweep_every: Duration,

    /// Completion events: `--notify-*` and `--events-prefix`.
    #[command(flatten)]
    pub notify: crate::events::NotifyArgs,

    /// Address the embedded store listens on (port 0 picks a free one).
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_EMBEDDED_LISTEN",
        default_value = "127.0.0.1:0"
    )]
    pub embedded_listen: SocketAddr,
}

impl ServeConfig {
    /// Lifetime of presigned URLs.
    pub fn url_lifetime(&self) -> Duration {
        Duration::from_secs(self.url_lifetime)
    }
}

pub(crate) fn parse_period(s: &str) -> Result<Duration, ConfigError> {
    match crate::ops::units::parse_age(s).map_err(ConfigError::Age)? {
        d if d.is_zero() => Err(ConfigError::NoTime {
            value: s.to_owned(),
            least: "1m",
            example: "1h",
        }),
        d => Ok(d),
    }
}

/// How a small file is sent in one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SmallFileMethod {
    /// A `multipart/form-data` POST of an S3 POST policy form.
    #[default]
    Post,
    /// A presigned PUT.
    Put,
}

fn parse_checksum(s: &str) -> Result<ChecksumSetting, ConfigError> {
    ChecksumSetting::parse(s).ok_or_else(|| ConfigError::Checksum {
        value: s.to_owned(),
    })
}

pub(crate) fn parse_origin(s: &str) -> Result<String, ConfigError> {
    let url = parse_url(s)?;
    let host = url.split_once("://").map_or("", |(_, h)| h);
    if host.contains('/') || url.contains('*') {
        return Err(ConfigError::NotOrigin {
            value: s.to_owned(),
        });
    }
    Ok(url)
}

pub(crate) fn parse_url(s: &str) -> Result<String, ConfigError> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| ConfigError::NotHttpUrl {
            value: s.to_owned(),
        })?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(ConfigError::NoHost {
            value: s.to_owned(),
        });
    }
    // A trailing slash would produce `//bucket` paths in presigned URLs.
    Ok(s.trim_end_matches('/').to_owned())
}

/// Bucket names as S3 defines them today (3..=63 of `[a-z0-9.-]`, starting and ending with a letter
/// or digit). Checking here also keeps the embedded store's bucket folder inside the data dir.
pub fn parse_bucket(s: &str) -> Result<String, ConfigError> {
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let ok_ends = s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if (3..=63).contains(&s.len()) && ok_chars && ok_ends && !s.contains("..") {
        Ok(s.to_owned())
    } else {
        Err(ConfigError::Bucket {
            value: s.to_owned(),
        })
    }
}

pub(crate) fn parse_key_prefix(s: &str) -> Result<String, ConfigError> {
    let bad_segment = s.split('/').any(|seg| seg == "." || seg == "..");
    if s.starts_with('/') || bad_segment || s.chars().any(char::is_control) {
        return Err(ConfigError::KeyPrefix {
            value: s.to_owned(),
        });
    }
    Ok(s.to_owned())
}

fn parse_route_prefix(s: &str) -> Result<String, ConfigError> {
    if !s.starts_with('/') {
        return Err(ConfigError::RoutePrefix {
            value: s.to_owned(),
        });
    }
    // "/" and "" both mean: the API routes sit at the root.
    Ok(s.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["s3-direct"]).unwrap();
        let c = cli.serve;
        assert!(cli.command.is_none());
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.bucket, "s3-direct");
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.url_lifetime(), Duration::from_secs(900));
        assert_eq!(c.key_prefix, "uploads/");
        assert_eq!(c.route_prefix, "/s3");
        assert_eq!(c.embedded_listen.port(), 0);
        assert!(c.endpoint.is_none() && !c.path_style);
        assert!(c.sweep_older_than.is_none());
        assert_eq!(c.sweep_every, Duration::from_secs(3600));
    }

    #[test]
    fn sweeper_and_operator_commands() {
        let cli = Cli::try_parse_from([
            "s3-direct",
            "--sweep-older-than",
            "24h",
            "--sweep-every",
            "30m",
        ])
        .unwrap();
        assert_eq!(
            cli.serve.sweep_older_than,
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(cli.serve.sweep_every, Duration::from_secs(1800));
        assert!(Cli::try_parse_from(["s3-direct", "--sweep-every", "0h"]).is_err());
        assert!(Cli::try_parse_from(["s3-direct", "--sweep-older-than", "1w"]).is_err());
        let cli = Cli::try_parse_from([
            "s3-direct",
            "bucket",
            "setup",
            "--cors-origin",
            "https://app.example.com",
            "--abort-incomplete-after",
            "3d",
            "--dry-run",
        ])
        .unwrap();
        let Some(Command::Bucket(crate::ops::BucketCommand::Setup(args))) = cli.command else {
            panic!("not bucket setup");
        };
        assert_eq!(args.abort_incomplete_after, 3);
        assert!(args.dry_run);
        assert_eq!(cli.serve.cors_origins, ["https://app.example.com"]);
        for bad in ["0d", "36h", "1.5d"] {
            assert!(
                Cli::try_parse_from([
                    "s3-direct",
                    "bucket",
                    "setup",
                    "--abort-incomplete-after",
                    bad
                ])
                .is_err(),
                "{bad}"
            );
        }
        let cli = Cli::try_parse_from([
            "s3-direct",
            "doctor",
            "--json",
            "--origin",
            "http://127.0.0.1:8080",
        ])
        .unwrap();
        assert!(
            matches!(cli.command, Some(Command::Doctor(ref d)) if d.json && d.origin.as_deref() == Some("http://127.0.0.1:8080"))
        );
    }

    #[test]
    fn lifetime_above_seven_days_is_refused() {
        assert!(Cli::try_parse_from(["s3-direct", "--url-lifetime", "604800"]).is_ok());
        assert!(Cli::try_parse_from(["s3-direct", "--url-lifetime", "604801"]).is_err());
        assert!(Cli::try_parse_from(["s3-direct", "--url-lifetime", "0"]).is_err());
    }

    #[test]
    fn urls_and_prefixes_are_normalised() {
        let cli = Cli::try_parse_from([
            "s3-direct",
            "--endpoint",
            "http://127.0.0.1:3900/",
            "serve",
            "--route-prefix",
            "/",
        ])
        .unwrap();
        assert_eq!(cli.serve.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(cli.serve.route_prefix, "");
        assert!(matches!(cli.command, Some(Command::Serve)));
        assert!(Cli::try_parse_from(["s3-direct", "--endpoint", "ftp://x"]).is_err());
        assert!(Cli::try_parse_from(["s3-direct", "--route-prefix", "s3"]).is_err());
        assert!(Cli::try_parse_from(["s3-direct", "--key-prefix", "a/../b/"]).is_err());
    }

    #[test]
    fn security_options() {
        let cli = Cli::try_parse_from([
            "s3-direct",
            "--auth",
            "jwt",
            "--jwt-secret",
            "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t",
            "--content-type",
            "video/*,image/png",
            "--cors-origin",
            "https://app.example.com/",
            "--checksum",
            "CRC32C",
            "--small-file-method",
            "put",
            "--allowed-host",
            "Upload.Example.com:443,[::1]",
            "--trusted-proxy",
            "10.0.0.0/8,192.0.2.1",
        ])
        .unwrap();
        let c = cli.serve;
        let proxies: Vec<String> = c.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(proxies, ["10.0.0.0/8", "192.0.2.1/32"]);
        assert!(Cli::try_parse_from(["s3-direct", "--trusted-proxy", "proxy.local"]).is_err());
        let hosts: Vec<String> = c.allowed_hosts.iter().map(ToString::to_string).collect();
        assert_eq!(hosts, ["upload.example.com:443", "[::1]"]);
        assert!(Cli::try_parse_from(["s3-direct", "--allowed-host", "https://a.com"]).is_err());
        assert_eq!(c.small_file_method, SmallFileMethod::Put);
        assert_eq!(c.auth, AuthMode::Jwt);
        assert_eq!(c.content_types, ["video/*", "image/png"]);
        assert_eq!(c.cors_origins, ["https://app.example.com"]);
        assert_eq!(
            c.checksum,
            ChecksumSetting::Use(s3_direct_protocol::wire::ChecksumAlgorithm::Crc32c)
        );
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(Cli::try_parse_from(["s3-direct", "--cors-origin", "https://a.com/x"]).is_err());
        assert!(Cli::try_parse_from(["s3-direct", "--checksum", "crc64"]).is_err());
        assert!(Cli::try_parse_from(["s3-direct", "--small-file-method", "patch"]).is_err());
        let d = Cli::try_parse_from(["s3-direct"]).unwrap().serve;
        assert_eq!(d.auth, AuthMode::Open);
        assert_eq!(d.checksum, ChecksumSetting::Auto);
        assert!(d.cors_origins.is_empty() && d.allowed_hosts.is_empty());
        let off = Cli::try_parse_from(["s3-direct", "--checksum", "off"]).unwrap();
        assert_eq!(off.serve.checksum, ChecksumSetting::Off);
        assert_eq!(d.small_file_method, SmallFileMethod::Post);
    }

    #[test]
    fn flood_limits_are_on_by_default_and_configurable() {
        let d = Cli::try_parse_from(["s3-direct"]).unwrap().serve;
        assert_eq!(d.unauthenticated_rate_limit, 600);
        assert_eq!(d.unauthenticated_rate_burst, 60);
        assert_eq!(d.webhook_deny_cache_ttl, 5);
        assert_eq!(d.webhook_max_in_flight, 32);
        let c = Cli::try_parse_from([
            "s3-direct",
            "--unauthenticated-rate-limit",
            "0",
            "--webhook-deny-cache-ttl",
            "0",
            "--webhook-max-in-flight",
            "4",
        ])
        .unwrap()
        .serve;
        assert_eq!(c.unauthenticated_rate_limit, 0);
        assert_eq!((c.webhook_deny_cache_ttl, c.webhook_max_in_flight), (0, 4));
        assert!(Cli::try_parse_from(["s3-direct", "--webhook-max-in-flight", "0"]).is_err());
    }

    /// The messages clap and the start-up log show: the value, and what to use instead.
    #[test]
    fn errors_name_the_value_and_the_fix() {
        let shown = |e: ConfigError| e.to_string();
        assert_eq!(
            shown(parse_url("ftp://x").unwrap_err()),
            r#""ftp://x" is not an http:// or https:// URL"#
        );
        assert_eq!(
            shown(parse_url("https:///a").unwrap_err()),
            r#""https:///a" has no host"#
        );
        assert_eq!(
            shown(parse_origin("https://a.com/x").unwrap_err()),
            r#""https://a.com/x" is not an origin; use scheme://host[:port], like https://app.example.com"#
        );
        assert_eq!(
            shown(parse_bucket("ab").unwrap_err()),
            r#""ab" is not a valid bucket name; use 3 to 63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit"#
        );
        assert_eq!(
            shown(parse_key_prefix("/a").unwrap_err()),
            r#""/a" is not a usable key prefix; use something like "uploads/" (no leading '/', no '.' or '..' segments)"#
        );
        assert_eq!(
            shown(parse_route_prefix("s3").unwrap_err()),
            r#""s3" must start with '/', like "/s3""#
        );
        assert_eq!(
            shown(parse_checksum("crc64").unwrap_err()),
            r#""crc64" is not a checksum setting; use auto, off, md5, crc32, crc32c or sha256"#
        );
        assert_eq!(
            shown(parse_period("0h").unwrap_err()),
            r#""0h" is no time at all; use 1m or more, like 1h"#
        );
        assert!(shown(parse_period("1w").unwrap_err()).contains("like 30m, 24h or 7d"));
    }

    #[test]
    fn bucket_names() {
        for ok in ["s3-direct", "abc", "my.bucket-1"] {
            assert!(parse_bucket(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "Upper", "../x", "a..b", "-ab", "ab-", "a/b"] {
            assert!(parse_bucket(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_option_documents_its_environment_variable() {
        let help = Cli::command().render_long_help().to_string();
        for name in [
            "LISTEN",
            "DATA_DIR",
            "ENDPOINT",
            "PUBLIC_ENDPOINT",
            "BUCKET",
            "REGION",
            "PATH_STYLE",
            "URL_LIFETIME",
            "KEY_PREFIX",
            "ROUTE_PREFIX",
            "WEB_DIR",
            "PKG_DIR",
            "EMBEDDED_LISTEN",
            "AUTH",
            "JWT_SECRET",
            "JWT_PUBLIC_KEY",
            "JWT_ISSUER",
            "JWT_AUDIENCE",
            "WEBHOOK_URL",
            "WEBHOOK_CACHE_TTL",
            "UPLOAD_SECRET",
            "UPLOAD_SECRET_PREVIOUS",
            "UPLOAD_TOKEN_LIFETIME",
            "CONTENT_TYPES",
            "CHECKSUM",
            "RATE_LIMIT",
            "RATE_BURST",
            "UNAUTHENTICATED_RATE_LIMIT",
            "UNAUTHENTICATED_RATE_BURST",
            "WEBHOOK_DENY_CACHE_TTL",
            "WEBHOOK_MAX_IN_FLIGHT",
            "CORS_ORIGINS",
            "CORS_CREDENTIALS",
            "SWEEP_OLDER_THAN",
            "SWEEP_EVERY",
            "NOTIFY_URL",
            "NOTIFY_SECRET",
            "EVENTS_PREFIX",
            "NOTIFY_GRACE",
            "NOTIFY_SCAN_EVERY",
            "NOTIFY_BACKOFF",
            "NOTIFY_GIVE_UP_AFTER",
            "NOTIFY_TIMEOUT",
            "NOTIFY_MAX_IN_FLIGHT",
        ] {
            assert!(
                help.contains(&format!("S3_DIRECT_{name}")),
                "missing S3_DIRECT_{name}"
            );
        }
    }
}
