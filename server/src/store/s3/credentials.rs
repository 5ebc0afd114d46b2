//! The credentials that sign: a cache in front of the SDK's provider that refreshes
//! [`REFRESH_BEFORE`] expiry and can say how long the current credentials live, so URLs are never
//! signed to outlive them.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::future;
use aws_sdk_s3::config::{Credentials, ProvideCredentials, SharedCredentialsProvider};

/// Credentials are refreshed this long before they expire, so a URL signed just before a refresh
/// still has a useful life.
pub(super) const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// A credentials cache that refreshes [`REFRESH_BEFORE`] expiry and can say how long the current
/// credentials live.
///
/// Every signing request reads it, so the read is a short `std` lock that never waits on a
/// refresh. (It was a `tokio` mutex: under 50 concurrent batch requests its hand-offs left a
/// quarter of the CPU idle, and a signer in front of a remote store served 35 % fewer batches than
/// the embedded one; see BENCHMARKS.md.) Refreshes take their own async lock, so only one asks
/// the provider at a time.
#[derive(Debug, Clone)]
pub(super) struct RefreshingCredentials {
    inner: SharedCredentialsProvider,
    cached: Arc<RwLock<Option<Credentials>>>,
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

impl RefreshingCredentials {
    pub(super) fn new(inner: SharedCredentialsProvider) -> Self {
        Self {
            inner,
            cached: Arc::default(),
            refreshing: Arc::default(),
        }
    }

    /// The cached credentials, unless they are due for a refresh.
    fn fresh(&self) -> Option<Credentials> {
        let cached = self.cached.read().unwrap_or_else(PoisonError::into_inner);
        cached
            .as_ref()
            .filter(|c| {
                c.expiry()
                    .is_none_or(|e| e > SystemTime::now() + REFRESH_BEFORE)
            })
            .cloned()
    }

    pub(super) async fn current(&self) -> Result<Credentials, CredentialsError> {
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let _refreshing = self.refreshing.lock().await;
        // Refreshed by another request while this one waited.
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let c = self.inner.provide_credentials().await?;
        if let Some(e) = c.expiry() {
            let left = e.duration_since(SystemTime::now()).unwrap_or_default();
            tracing::info!(
                "signing credentials refreshed; they expire in {} s",
                left.as_secs()
            );
        }
        *self.cached.write().unwrap_or_else(PoisonError::into_inner) = Some(c.clone());
        Ok(c)
    }

    /// How long the current credentials live (`None`: they do not expire, or cannot be read).
    pub(super) async fn remaining(&self) -> Option<Duration> {
        match self.current().await {
            Ok(c) => c
                .expiry()
                .map(|e| e.duration_since(SystemTime::now()).unwrap_or_default()),
            Err(e) => {
                // Signing will fail the same way and report it; keep the configured lifetime.
                tracing::warn!("cannot read the signing credentials: {e}");
                None
            }
        }
    }
}

impl ProvideCredentials for RefreshingCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider that counts its calls and hands out credentials `lifetime` from expiry, named
    /// after the call that made them.
    #[derive(Debug)]
    struct CountingProvider {
        calls: Arc<std::sync::atomic::AtomicUsize>,
        lifetime: Duration,
    }

    impl ProvideCredentials for CountingProvider {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            future::ProvideCredentials::new(async move {
                let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                // Let the other callers run into the refresh meanwhile.
                tokio::task::yield_now().await;
                Ok(Credentials::new(
                    format!("AKID{n}"),
                    "secret",
                    None,
                    Some(SystemTime::now() + self.lifetime),
                    "test",
                ))
            })
        }
    }

    fn counting(
        lifetime: Duration,
    ) -> (RefreshingCredentials, Arc<std::sync::atomic::AtomicUsize>) {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let provider = CountingProvider {
            calls: calls.clone(),
            lifetime,
        };
        (
            RefreshingCredentials::new(SharedCredentialsProvider::new(provider)),
            calls,
        )
    }

    #[tokio::test]
    async fn credentials_are_fetched_once_for_concurrent_callers_and_again_when_due() {
        let (creds, calls) = counting(Duration::from_secs(3600));
        let all = futures::future::join_all((0..20).map(|_| creds.current())).await;
        for c in all {
            assert_eq!(c.unwrap().access_key_id(), "AKID1");
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Credentials closer to their expiry than REFRESH_BEFORE are fetched again, once per
        // caller that finds them due (they are due again as soon as they arrive).
        let (creds, calls) = counting(REFRESH_BEFORE / 2);
        assert_eq!(creds.current().await.unwrap().access_key_id(), "AKID1");
        assert_eq!(creds.current().await.unwrap().access_key_id(), "AKID2");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
