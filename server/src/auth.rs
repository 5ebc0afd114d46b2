//! Who is calling, and what they may upload: the pluggable [`Authorizer`] and its three modes.
//!
//! - [`OpenAuth`]: no authentication; every caller is the principal `anonymous`. Only for a
//!   server on loopback (the zero-config demo): `prepare` refuses it on any other address.
//! - [`JwtAuth`]: `Authorization: Bearer <JWT>` (HS256 with a shared secret, or RS256/ES256 with a
//!   public key), so an app's existing backend mints upload permissions. Claims: `sub` (the
//!   principal), `exp`, optional `nbf` (a token is refused before it, with the same 30 s leeway
//!   as `exp`), optional `iss`/`aud`, and the s3-direct claims `key_prefix`, `max_size`,
//!   `content_types`.
//! - [`WebhookAuth`]: asks the app's own endpoint, forwarding the caller's `Cookie` and
//!   `Authorization` headers; allow answers are cached briefly per credentials and action,
//!   denials for a few seconds, and the calls in flight are bounded (over the bound: 503 with
//!   `Retry-After`), so no caller can make the server flood the application.
//!
//! Every mode yields a [`Principal`]; the routes enforce its limits and bind uploads to it.
//! Before an authorizer asks anyone else about credentials it asks the [`Admission`] (the rate
//! limits, `ratelimit.rs`), so requests with unknown credentials are limited per client address
//! before they cost the application a call.

use std::fmt;

use async_trait::async_trait;
use axum::http::{HeaderMap, header};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::media_type::MediaType;

mod webhook;

pub use webhook::{DEFAULT_DENY_TTL_SECS, DEFAULT_MAX_IN_FLIGHT, WebhookAuth};

/// Longest principal id accepted.
const MAX_PRINCIPAL_BYTES: usize = 256;
/// Clock difference tolerated on a bearer token's `exp` and `nbf`, in seconds.
pub const JWT_LEEWAY_SECS: u64 = 30;

/// Why what an authorizer handed over does not make a usable [`Principal`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    #[error("the principal id is empty, too long or has control characters")]
    BadId,
    #[error("key prefix {0:?} is not a relative path like \"users/42/\"")]
    BadKeyPrefix(String),
}

/// Why an authorizer cannot be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("a JWT secret of {0} bytes is too short for HS256; use at least 32")]
    ShortJwtSecret(usize),
    #[error("the JWT public key file is not a PEM RSA or EC (P-256) public key")]
    NotAPublicKey,
    #[error("--webhook-url {0:?} must be an http:// or https:// URL")]
    WebhookUrl(String),
    #[error("cannot build the webhook client: {0}")]
    WebhookClient(reqwest::Error),
}

/// An authenticated caller and the limits of its upload permission.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Principal {
    /// Stable id of the caller (a user id, a service name).
    #[serde(alias = "sub")]
    pub id: String,
    /// Sub-prefix under the server's key prefix that this caller writes under (`""`: anywhere
    /// under the server's prefix). Normalised to end with `/`.
    #[serde(default)]
    pub key_prefix: String,
    /// Largest object this caller may upload.
    #[serde(default)]
    pub max_size: Option<u64>,
    /// Content types this caller may upload (`video/*`, `*/*` allowed); `None` means any.
    #[serde(default)]
    pub content_types: Option<Vec<String>>,
}

impl Principal {
    /// The caller of an open server.
    pub fn anonymous() -> Self {
        Self {
            id: "anonymous".to_owned(),
            ..Self::default()
        }
    }

    /// Checks the fields an authorizer handed over and normalises the key prefix.
    pub fn checked(mut self) -> Result<Self, PrincipalError> {
        if self.id.is_empty()
            || self.id.len() > MAX_PRINCIPAL_BYTES
            || self.id.chars().any(char::is_control)
        {
            return Err(PrincipalError::BadId);
        }
        let p = &self.key_prefix;
        let body = p.strip_suffix('/').unwrap_or(p);
        let bad_segment = !p.is_empty()
            && body
                .split('/')
                .any(|seg| seg.is_empty() || seg == "." || seg == "..");
        if bad_segment || p.chars().any(char::is_control) || p.len() > 512 {
            return Err(PrincipalError::BadKeyPrefix(p.clone()));
        }
        if !p.is_empty() && !p.ends_with('/') {
            self.key_prefix.push('/');
        }
        Ok(self)
    }
}

/// Which call is being authorized (a webhook may decide differently per action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Sign,
    List,
    Complete,
    Abort,
}

/// What a create asks for, passed to a webhook.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CreateDetails {
    pub filename: String,
    /// The file's path within a folder the user chose, when it came from one.
    #[serde(rename = "relativePath", skip_serializing_if = "Option::is_none")]
    pub relative_path: Option<String>,
    #[serde(rename = "type")]
    pub content_type: String,
    pub size: Option<u64>,
}

/// What an authorizer asks before it asks someone else (the webhook) about a request's
/// credentials: whether this request may cost that call.
pub trait Admission: Send + Sync {
    /// `known`: the principal these credentials were allowed as a moment ago, if any (the call
    /// is then charged to that caller; otherwise to the client address). `Err` refuses the call.
    fn admit(&self, known: Option<&str>) -> Result<(), Error>;
}

/// Admits every call (for authorizers used outside a request's rate limits, and tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct AdmitAll;

impl Admission for AdmitAll {
    fn admit(&self, _: Option<&str>) -> Result<(), Error> {
        Ok(())
    }
}

/// Decides who a request comes from.
#[async_trait]
pub trait Authorizer: Send + Sync + fmt::Debug + 'static {
    /// The caller of a request with `headers`, or why it may not proceed. `admission` is asked
    /// before anyone outside this process is.
    async fn authorize(
        &self,
        headers: &HeaderMap,
        action: Action,
        create: Option<&CreateDetails>,
        admission: &dyn Admission,
    ) -> Result<Principal, Error>;

    /// True for [`OpenAuth`]: rate limits then key on the client address.
    fn is_open(&self) -> bool {
        false
    }
}

/// No authentication (loopback only).
#[derive(Debug, Clone, Default)]
pub struct OpenAuth;

#[async_trait]
impl Authorizer for OpenAuth {
    async fn authorize(
        &self,
        _: &HeaderMap,
        _: Action,
        _: Option<&CreateDetails>,
        _: &dyn Admission,
    ) -> Result<Principal, Error> {
        Ok(Principal::anonymous())
    }

    fn is_open(&self) -> bool {
        true
    }
}

/// The bearer token of a request, without echoing it anywhere.
fn bearer(headers: &HeaderMap) -> Result<&str, Error> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            Error::Unauthenticated(
                "missing Authorization header; send `Authorization: Bearer <token>` with a token \
                 from your application"
                    .into(),
            )
        })?
        .to_str()
        .map_err(|_| Error::Unauthenticated("the Authorization header is not ASCII".into()))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Error::Unauthenticated(
            "the Authorization header is not `Bearer <token>`".into(),
        ));
    }
    Ok(token.trim())
}

/// JWT claims s3-direct reads.
#[derive(Debug, Deserialize)]
struct JwtClaims {
    sub: String,
    #[serde(default)]
    key_prefix: String,
    #[serde(default)]
    max_size: Option<u64>,
    #[serde(default)]
    content_types: Option<Vec<String>>,
}

/// Bearer JWT authentication.
pub struct JwtAuth {
    key: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs, even a public one.
        f.debug_struct("JwtAuth")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl JwtAuth {
    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8]) -> Result<Self, AuthConfigError> {
        if secret.len() < 32 {
            return Err(AuthConfigError::ShortJwtSecret(secret.len()));
        }
        Ok(Self::with(
            DecodingKey::from_secret(secret),
            vec![Algorithm::HS256],
        ))
    }

    /// RS256 or ES256 with a PEM public key (the algorithm follows the key type).
    pub fn public_key_pem(pem: &[u8]) -> Result<Self, AuthConfigError> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Ok(Self::with(key, vec![Algorithm::RS256]));
        }
        if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            return Ok(Self::with(key, vec![Algorithm::ES256]));
        }
        Err(AuthConfigError::NotAPublicKey)
    }

    fn with(key: DecodingKey, algorithms: Vec<Algorithm>) -> Self {
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_aud = false;
        // `nbf` is optional, but honoured when present: a token minted for later is not valid now.
        validation.validate_nbf = true;
        // For both `exp` and `nbf`: the application's clock and ours may disagree a little.
        validation.leeway = JWT_LEEWAY_SECS;
        Self { key, validation }
    }

    /// Requires `iss` to be `issuer`.
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.validation.set_issuer(&[issuer]);
        self.validation.required_spec_claims.insert("iss".into());
        self
    }

    /// Requires `aud` to contain `audience`.
    pub fn audience(mut self, audience: &str) -> Self {
        self.validation.set_audience(&[audience]);
        self.validation.validate_aud = true;
        self.validation.required_spec_claims.insert("aud".into());
        self
    }
}

#[async_trait]
impl Authorizer for JwtAuth {
    async fn authorize(
        &self,
        headers: &HeaderMap,
        _: Action,
        _: Option<&CreateDetails>,
        _: &dyn Admission,
    ) -> Result<Principal, Error> {
        use jsonwebtoken::errors::ErrorKind;
        let token = bearer(headers)?;
        let data =
            jsonwebtoken::decode::<JwtClaims>(token, &self.key, &self.validation).map_err(|e| {
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "has expired",
                    ErrorKind::ImmatureSignature => {
                        "is not valid yet (its nbf claim is in the future); check the clock of the \
                         application that minted it, or mint it without nbf"
                    }
                    ErrorKind::InvalidClaimFormat(_) => {
                        "has an exp or nbf claim that is not a number of seconds"
                    }
                    ErrorKind::InvalidSignature => "has an invalid signature",
                    ErrorKind::InvalidIssuer => "has the wrong issuer",
                    ErrorKind::InvalidAudience => "has the wrong audience",
                    ErrorKind::InvalidAlgorithm => "uses an algorithm this server does not accept",
                    ErrorKind::MissingRequiredClaim(_) => "lacks a required claim (sub, exp)",
                    _ => "is malformed",
                };
                Error::Unauthenticated(format!(
                    "the bearer token {why}; ask your application for a fresh one"
                ))
            })?;
        let c = data.claims;
        Principal {
            id: c.sub,
            key_prefix: c.key_prefix,
            max_size: c.max_size,
            content_types: c.content_types,
        }
        .checked()
        .map_err(|why| {
            Error::Unauthenticated(format!("the bearer token's claims are unusable: {why}"))
        })
    }
}

/// Whether `content_type` matches one of `patterns` (`type/subtype`, `type/*`, `*/*`). Only the
/// parsed, lowercase `type/subtype` is compared; a value that is not exactly one media type
/// ([`MediaType`]) matches nothing.
pub fn content_type_allowed(content_type: &str, patterns: &[String]) -> bool {
    let Ok(parsed) = MediaType::parse(content_type.trim_matches([' ', '\t'])) else {
        return false;
    };
    let essence = parsed.essence();
    patterns.iter().any(|p| {
        let p = p.trim().to_ascii_lowercase();
        p == "*/*" || p == essence || p.strip_suffix("/*").is_some_and(|t| t == parsed.ty)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use axum::http::HeaderValue;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use s3_direct_protocol::ErrorCode;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn headers(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    fn mint(claims: serde_json::Value) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    async fn run(auth: &JwtAuth, token: &str) -> Result<Principal, Error> {
        auth.authorize(&headers(token), Action::Create, None, &AdmitAll)
            .await
    }

    #[tokio::test]
    async fn jwt_claims_become_the_principal() {
        let auth = JwtAuth::hs256(SECRET).unwrap();
        let t = mint(serde_json::json!({
            "sub": "alice", "exp": now() + 60, "key_prefix": "users/alice",
            "max_size": 100, "content_types": ["video/*"]
        }));
        let p = run(&auth, &t).await.unwrap();
        assert_eq!(p.id, "alice");
        assert_eq!(p.key_prefix, "users/alice/");
        assert_eq!(p.max_size, Some(100));
        assert_eq!(p.content_types.unwrap(), ["video/*"]);
    }

    #[tokio::test]
    async fn expired_forged_and_missing_tokens_are_unauthenticated() {
        let auth = JwtAuth::hs256(SECRET).unwrap();
        let expired = mint(serde_json::json!({"sub": "a", "exp": now() - 120}));
        let e = run(&auth, &expired).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Unauthenticated);
        assert!(e.to_string().contains("expired"), "{e}");
        assert!(!e.to_string().contains(&expired));

        let forged = encode(
            &Header::default(),
            &serde_json::json!({"sub": "a", "exp": now() + 60}),
            &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
        )
        .unwrap();
        let e = run(&auth, &forged).await.unwrap_err();
        assert!(e.to_string().contains("invalid signature"), "{e}");

        let none_alg = format!(
            "{}.{}.",
            base64_url(r#"{"alg":"none","typ":"JWT"}"#),
            base64_url(&format!(r#"{{"sub":"a","exp":{}}}"#, now() + 60))
        );
        assert!(run(&auth, &none_alg).await.is_err());

        let e = auth
            .authorize(&HeaderMap::new(), Action::Sign, None, &AdmitAll)
            .await
            .unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::UNAUTHORIZED);
        assert!(run(&auth, "not-a-jwt").await.is_err());

        let bad_prefix =
            mint(serde_json::json!({"sub": "a", "exp": now() + 60, "key_prefix": "../x/"}));
        assert!(run(&auth, &bad_prefix).await.is_err());
    }

    #[tokio::test]
    async fn issuer_and_audience_are_checked_when_configured() {
        let auth = JwtAuth::hs256(SECRET)
            .unwrap()
            .issuer("app")
            .audience("s3-direct");
        let good = mint(
            serde_json::json!({"sub": "a", "exp": now() + 60, "iss": "app", "aud": "s3-direct"}),
        );
        assert!(run(&auth, &good).await.is_ok());
        let wrong = mint(
            serde_json::json!({"sub": "a", "exp": now() + 60, "iss": "evil", "aud": "s3-direct"}),
        );
        assert!(run(&auth, &wrong).await.is_err());
        let missing = mint(serde_json::json!({"sub": "a", "exp": now() + 60}));
        assert!(run(&auth, &missing).await.is_err());
    }

    fn base64_url(s: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn webhooks_are_http_or_https() {
        assert!(WebhookAuth::new("https://app.example.com/auth", Duration::from_secs(1)).is_ok());
        assert!(WebhookAuth::new("http://127.0.0.1:9/auth", Duration::from_secs(1)).is_ok());
        for bad in [
            "ftp://app.example.com/auth",
            "app.example.com/auth",
            "HTTPS-ish://x",
        ] {
            let err = WebhookAuth::new(bad, Duration::from_secs(1))
                .unwrap_err()
                .to_string();
            assert!(err.contains("must be an http:// or https:// URL"), "{err}");
        }
    }

    #[tokio::test]
    async fn an_https_webhook_with_an_untrusted_certificate_is_a_tls_error() {
        let server = crate::test_tls::start().await;
        let auth = WebhookAuth::new(&server.url, Duration::from_secs(1)).unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("session=1"));
        let err = auth
            .authorize(&h, Action::Sign, None, &AdmitAll)
            .await
            .unwrap_err();
        let Error::Internal(message) = err else {
            panic!("{err:?}");
        };
        assert!(
            message.contains("the authorization webhook failed")
                && message.contains("invalid peer certificate"),
            "{message}"
        );
    }

    #[test]
    fn short_hs256_secrets_are_refused() {
        assert!(JwtAuth::hs256(b"short").is_err());
        assert!(JwtAuth::public_key_pem(b"not pem").is_err());
    }

    #[test]
    fn content_type_patterns() {
        let p = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(content_type_allowed("video/mp4", &p(&["video/*"])));
        assert!(content_type_allowed(
            "Video/MP4; codecs=x",
            &p(&["video/mp4"])
        ));
        assert!(content_type_allowed("a/b", &p(&["*/*"])));
        assert!(!content_type_allowed(
            "text/html",
            &p(&["video/*", "image/png"])
        ));
        assert!(!content_type_allowed("garbage", &p(&["*/*"])));
        // A list is not one type, whichever of its members the pattern names.
        for list in [
            "image/png,text/html",
            "image/png;x=,text/html",
            "text/html,image/png",
            "image/png;x=\"a,text/html\"",
            "image/",
        ] {
            assert!(!content_type_allowed(list, &p(&["image/*"])), "{list}");
            assert!(!content_type_allowed(list, &p(&["*/*"])), "{list}");
        }
        assert!(!content_type_allowed("video/mp4", &[]));
    }

    #[test]
    fn principal_prefixes_are_relative_paths() {
        let p = |prefix: &str| {
            Principal {
                id: "a".into(),
                key_prefix: prefix.into(),
                ..Principal::default()
            }
            .checked()
        };
        assert_eq!(p("").unwrap().key_prefix, "");
        assert_eq!(p("u/1").unwrap().key_prefix, "u/1/");
        for bad in ["/abs/", "../x/", "a/../b/", "a//b/", "a\n/"] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }
}
