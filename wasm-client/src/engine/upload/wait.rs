//! Waiting on the world: calls to the signing server retried while they fail in a way that may
//! pass, and holding while the caller pauses or the device is offline.

use std::future::Future;
use std::pin::pin;

use futures::FutureExt;
use futures::future::{self, Either, LocalBoxFuture};

use super::Engine;
use crate::engine::control::{Control, RunState};
use crate::engine::error::{ApiCall, ApiError, Error};
use crate::engine::ports::{PartSink, Signer};
use crate::engine::progress::{Phase, Reporter};
use crate::engine::retry::CallFailures;

impl<S: Signer, P: PartSink> Engine<S, P> {
    /// One call to the signing server, retried with backoff while it fails in a way that may
    /// pass; waits while offline (or paused, when `control` is given). Fails with
    /// [`Error::Aborted`] (nothing to clean up) if cancelled while waiting.
    pub(super) async fn call<T, Fut>(
        &self,
        call: ApiCall,
        control: Option<&Control>,
        reporter: &Reporter,
        phase: Phase,
        mut attempt: impl FnMut() -> Fut,
    ) -> Result<T, Error>
    where
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut failures = CallFailures::default();
        loop {
            self.hold(control, reporter, phase).await?;
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(source) => {
                    self.before_retry(call, control, &mut failures, source)
                        .await?;
                }
            }
        }
    }

    /// After a call failed with `source`: waits out its backoff when it may be sent again, or
    /// gives the error that ends it. Apart from [`Engine::call`], which is instantiated per
    /// answer type, so that its copies share this part.
    async fn before_retry(
        &self,
        call: ApiCall,
        control: Option<&Control>,
        failures: &mut CallFailures,
        source: ApiError,
    ) -> Result<(), Error> {
        if !source.is_retryable() {
            return Err(Error::Api { call, source });
        }
        if !self.network.is_online() {
            return Ok(());
        }
        let retry_after = source.retry_after_ms();
        let Some(delay) = failures.next_delay(&self.options.retry, &*self.random, retry_after)
        else {
            return Err(Error::Api { call, source });
        };
        let sleep = self.clock.sleep(delay);
        match control {
            None => sleep.await,
            Some(control) => {
                if let Either::Right(_) = future::select(sleep, pin!(cancelled(control))).await {
                    return Err(Error::Aborted { cleanup: None });
                }
            }
        }
        Ok(())
    }

    /// Waits until the upload may send: running and online. Reports the phase it waits in.
    pub(super) async fn hold(
        &self,
        control: Option<&Control>,
        reporter: &Reporter,
        running: Phase,
    ) -> Result<(), Error> {
        loop {
            let state = control.map_or(RunState::Running, Control::state);
            let waiting = match state {
                RunState::Cancelled => return Err(Error::Aborted { cleanup: None }),
                RunState::Paused => Phase::Paused,
                RunState::Running if !self.network.is_online() => Phase::Offline,
                RunState::Running => {
                    reporter.set_phase(running);
                    return Ok(());
                }
            };
            reporter.set_phase(waiting);
            self.changed(control).await;
        }
    }

    /// Resolves when the caller's wishes or the network status change.
    pub(super) fn changed(
        &self,
        control: Option<&Control>,
    ) -> impl Future<Output = ()> + Unpin + 'static {
        let control: LocalBoxFuture<'static, ()> = match control {
            Some(c) => Box::pin(c.changed()),
            None => Box::pin(future::pending()),
        };
        future::select(control, self.network.changed()).map(|_| ())
    }
}

/// Resolves once `control` is cancelled.
pub(super) async fn cancelled(control: &Control) {
    while !control.is_cancelled() {
        control.changed().await;
    }
}
