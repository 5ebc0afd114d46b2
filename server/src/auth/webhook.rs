//! [`WebhookAuth`]: asks the application's own endpoint whether a call is allowed, forwarding the
//! caller's `Cookie` and `Authorization` headers.
//!
//! Every call to the application is one a caller made the server send, so each is bounded:
//!
//! - answers are kept ([`crate::answers`]): allow answers per (credentials, action) for
//!   `--webhook-cache-ttl` (never for creates, whose answer depends on the file), 401 denials
//!   per credentials and 403 denials per call for `--webhook-deny-cache-ttl`;
//! - before a call the request's [`Admission`] charges it to the caller these credentials were
//!   last allowed as, or else to the client address (`ratelimit.rs`), so a flood of unknown
//!   cookies from one address costs the application at most that address's limit;
//! - at most `--webhook-max-in-flight` calls are out at once; a request beyond that is answered
//!   503 `busy` with `Retry-After` at once rather than queued behind a slow application.

use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::http::{HeaderMap, header};
use s3_direct_protocol::ErrorCode;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::{Action, Admission, AuthConfigError, Authorizer, CreateDetails, Principal};
use crate::answers::{self, Answers};
use crate::error::Error;

/// Default seconds a denial (401/403) is kept.
pub const DEFAULT_DENY_TTL_SECS: u64 = 5;
/// Default bound on webhook calls in flight at once.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 32;
/// How long a caller refused for a full pipeline is asked to wait.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// A refusal the webhook answered, kept to answer the same credentials again.
#[derive(Debug, Clone)]
enum Denial {
    /// 401: the application does not know these credentials (whatever the call).
    Unauthenticated(String),
    /// 403 (or another 4xx): it refuses this call.
    Forbidden(String),
}

impl From<Denial> for Error {
    fn from(d: Denial) -> Self {
        match d {
            Denial::Unauthenticated(m) => Error::Unauthenticated(m),
            Denial::Forbidden(message) => Error::Forbidden {
                code: ErrorCode::Forbidden,
                message,
            },
        }
    }
}

/// Asks the application's endpoint whether a call is allowed.
pub struct WebhookAuth {
    url: String,
    ttl: Duration,
    client: reqwest::Client,
    /// Allow answers per digest of (credentials, action).
    allowed: Answers<Principal>,
    /// The principal id a digest of credentials was last allowed as.
    known: Answers<String>,
    /// Denials per digest of credentials (401) or of the call (403).
    denied: Answers<Denial>,
    /// Permits for calls in flight.
    in_flight: Semaphore,
    max_in_flight: u32,
}

impl fmt::Debug for WebhookAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookAuth")
            .field("url", &self.url)
            .field("ttl", &self.ttl)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

/// The body POSTed to the webhook.
#[derive(Debug, Serialize)]
struct WebhookQuestion<'a> {
    action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    create: Option<&'a CreateDetails>,
}

impl WebhookAuth {
    /// Asks `url`, keeping allow answers for `ttl` and denials for
    /// [`DEFAULT_DENY_TTL_SECS`], with at most [`DEFAULT_MAX_IN_FLIGHT`] calls at once.
    ///
    /// `http://` or `https://`; an `https://` webhook's certificate is verified against the
    /// system's root certificates. Plain `http://` only belongs on loopback or a private network
    /// (the webhook sees the browser's cookies).
    pub fn new(url: &str, ttl: Duration) -> Result<Self, AuthConfigError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(AuthConfigError::WebhookUrl(url.to_owned()));
        }
        let client = crate::http_client()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(AuthConfigError::WebhookClient)?;
        Ok(Self {
            url: url.to_owned(),
            ttl,
            client,
            allowed: Answers::new(ttl, answers::MAX_ENTRIES),
            known: Answers::new(ttl, answers::MAX_ENTRIES),
            denied: Answers::new(
                Duration::from_secs(DEFAULT_DENY_TTL_SECS),
                answers::MAX_ENTRIES,
            ),
            in_flight: Semaphore::new(DEFAULT_MAX_IN_FLIGHT as usize),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        })
    }

    /// Keeps denials for `ttl` instead (zero: asks again every time).
    #[must_use]
    pub fn deny_ttl(mut self, ttl: Duration) -> Self {
        self.denied = Answers::new(ttl, answers::MAX_ENTRIES);
        self
    }

    /// Allows at most `max` (at least 1) calls in flight at once.
    #[must_use]
    pub fn max_in_flight(mut self, max: u32) -> Self {
        self.max_in_flight = max.max(1);
        self.in_flight = Semaphore::new(self.max_in_flight as usize);
        self
    }

    /// A digest of the request's credentials, then of whatever `extra` adds.
    fn digest(headers: &HeaderMap, extra: impl FnOnce(&mut Sha256)) -> answers::Digest {
        let mut h = Sha256::new();
        for name in [header::COOKIE, header::AUTHORIZATION] {
            for v in headers.get_all(&name) {
                h.update((v.len() as u64).to_be_bytes());
                h.update(v.as_bytes());
            }
            h.update([0xff]);
        }
        extra(&mut h);
        h.finalize().into()
    }

    /// Sends the question; the answer's status and body.
    async fn ask(
        &self,
        headers: &HeaderMap,
        question: &WebhookQuestion<'_>,
    ) -> Result<reqwest::Response, Error> {
        let mut req = self.client.post(&self.url).json(question);
        for name in [header::COOKIE, header::AUTHORIZATION] {
            for v in headers.get_all(&name) {
                req = req.header(name.clone(), v.clone());
            }
        }
        req.send().await.map_err(|e| {
            // reqwest's error names the URL only, never headers; its causes say why (a refused
            // connection, a certificate this machine does not trust, ...).
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                let text = cause.to_string();
                if !why.contains(&text) {
                    why = format!("{why}: {text}");
                }
                source = cause.source();
            }
            Error::Internal(format!("the authorization webhook failed: {why}"))
        })
    }

    /// The webhook's answer as a principal or a refusal, kept for the next calls.
    async fn judge(
        &self,
        res: reqwest::Response,
        action: Action,
        credentials: answers::Digest,
        call: answers::Digest,
    ) -> Result<Principal, Error> {
        let status = res.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            let denial = Denial::Unauthenticated(
                "the application did not recognise these credentials; sign in again".into(),
            );
            self.denied
                .insert(credentials, denial.clone(), Instant::now());
            return Err(denial.into());
        }
        if status.is_client_error() {
            let denial = Denial::Forbidden(
                format!("the application refused this {action:?} call (it answered {status})")
                    .to_lowercase(),
            );
            self.denied.insert(call, denial.clone(), Instant::now());
            return Err(denial.into());
        }
        if !status.is_success() {
            return Err(Error::Internal(format!(
                "the authorization webhook answered {status}"
            )));
        }
        let principal: Principal = res.json().await.map_err(|e| {
            Error::Internal(format!(
                "the authorization webhook's answer is not a principal: {e}"
            ))
        })?;
        let principal = principal
            .checked()
            .map_err(|why| Error::Internal(format!("the authorization webhook's answer: {why}")))?;
        let now = Instant::now();
        if action != Action::Create {
            self.allowed.insert(call, principal.clone(), now);
        }
        self.known.insert(credentials, principal.id.clone(), now);
        Ok(principal)
    }
}

#[async_trait]
impl Authorizer for WebhookAuth {
    async fn authorize(
        &self,
        headers: &HeaderMap,
        action: Action,
        create: Option<&CreateDetails>,
        admission: &dyn Admission,
    ) -> Result<Principal, Error> {
        if headers.get(header::COOKIE).is_none() && headers.get(header::AUTHORIZATION).is_none() {
            return Err(Error::Unauthenticated(
                "no Cookie or Authorization header; sign in to the application first".into(),
            ));
        }
        let question = WebhookQuestion { action, create };
        let credentials = Self::digest(headers, |_| {});
        let call = Self::digest(headers, |h| {
            // Serialising these plain structs cannot fail.
            h.update(serde_json::to_vec(&question).unwrap_or_default());
        });
        let now = Instant::now();
        if let Some(denial) = self
            .denied
            .get(&credentials, now)
            .or_else(|| self.denied.get(&call, now))
        {
            return Err(denial.into());
        }
        // Creates are decided per call (the answer depends on the file); the limits in the answer
        // are enforced here either way, so other calls can reuse an answer for a while.
        if action != Action::Create
            && let Some(p) = self.allowed.get(&call, now)
        {
            return Ok(p);
        }
        admission.admit(self.known.get(&credentials, now).as_deref())?;
        let Ok(_permit) = self.in_flight.try_acquire() else {
            return Err(Error::Busy {
                message: format!(
                    "the server is already waiting for {} answers of the application's \
                     authorization webhook; retry in {BUSY_RETRY_AFTER_SECS} s",
                    self.max_in_flight
                ),
                retry_after_secs: BUSY_RETRY_AFTER_SECS,
            });
        };
        let res = self.ask(headers, &question).await?;
        self.judge(res, action, credentials, call).await
    }
}
