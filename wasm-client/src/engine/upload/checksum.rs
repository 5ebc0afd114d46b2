//! Which checksum protects the parts, and asking the [`Checksummer`] for them: the choice
//! ([`ChecksumChoice`], [`ServerChecksum`]), each part's and the whole file's checksum under a
//! deadline ([`hash_deadline_ms`]), and the composite checksum the result reports.

use std::rc::Rc;

use futures::future::{self, Either, LocalBoxFuture};
use s3_direct_protocol::PartPlan;
use s3_direct_protocol::wire::{ChecksumAlgorithm, CompletedPart, PartChecksums};

use super::Engine;
use crate::engine::control::Control;
use crate::engine::digest;
use crate::engine::error::{ChecksumError, Error};
use crate::engine::ports::{Checksummer, PartSink, Signer};
use crate::engine::progress::{Phase, Reporter};

/// How long a checksum of `bytes` may take before it is given up and asked for again (after
/// [`Checksummer::restart`]), or `None` when `stall_timeout_ms` is 0 (no stall watchdog). Pass
/// [`StallTimeout::ceiling_ms`](crate::engine::StallTimeout::ceiling_ms): hashing is not
/// measured by the link's gaps, so an adaptive stall timeout gives its ceiling (30 s) here.
///
/// A checksum that never answers would otherwise hold the upload for ever: the uploads it
/// protects cannot start without it. It was seen once in a benchmark run, a 4 GiB upload whose
/// 221st part never got its SHA-256 while the other 255 were stored (BENCHMARKS.md). The
/// deadline is the stall timeout plus the bytes read at 1 MB/s, about 200× below the slowest
/// algorithm here (SHA-256, 190 MB/s in WASM), so that a slow but working hash is not cut short.
pub fn hash_deadline_ms(stall_timeout_ms: f64, bytes: u64) -> Option<f64> {
    (stall_timeout_ms > 0.0).then(|| stall_timeout_ms + bytes as f64 / 1_000.0)
}

/// Part checksums asked for at once: the browser's one worker hashes on one thread, so more would
/// not go faster (two workers measured slower), and two let one part's reads overlap the other's
/// hashing. A part being hashed holds a 1 MiB buffer (`web/checksum.rs`).
pub(super) const HASHES_AT_ONCE: usize = 2;

/// Which checksum protects each part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumChoice {
    /// The one the signing server asks for when it creates the upload, or signs a single PUT
    /// (it knows what its store verifies), or none.
    #[default]
    Auto,
    /// None: parts are not read before they are sent.
    Off,
    /// This one, whatever the server says; it signs it if it can.
    Use(ChecksumAlgorithm),
}

/// The checksum the signing server asked for in its last answer (create, or a single PUT's
/// params) to any upload sharing this: the next upload with [`ChecksumChoice::Auto`] takes it as
/// its guess and starts hashing before the server answers again (the server's `--checksum` is a
/// setting, which seldom changes). A wrong guess costs only the reads: sums of an algorithm the
/// server did not ask for are dropped, or, for a single PUT, kept (they are signed and checked all
/// the same).
#[derive(Debug, Default)]
pub struct ServerChecksum(std::cell::Cell<Option<ChecksumAlgorithm>>);

impl ServerChecksum {
    /// Starts from `known` (`None`: nothing heard yet, or the server asked for none).
    pub fn new(known: Option<ChecksumAlgorithm>) -> Self {
        Self(std::cell::Cell::new(known))
    }

    pub fn get(&self) -> Option<ChecksumAlgorithm> {
        self.0.get()
    }

    pub(super) fn set(&self, asked: Option<ChecksumAlgorithm>) {
        self.0.set(asked);
    }
}

/// A part's checksum, or `None` when it gave no answer by its deadline.
pub(super) type Hashed = (u32, Option<Result<String, ChecksumError>>);

impl<S: Signer, P: PartSink> Engine<S, P> {
    /// The checksum this upload will likely use, before the server says: the options' own, or
    /// with `Auto` what the server asked for last time.
    pub(super) fn guess(&self) -> Option<ChecksumAlgorithm> {
        self.checksummer.as_ref()?;
        match self.options.checksum {
            ChecksumChoice::Auto => self.server_checksum.as_ref()?.get(),
            ChecksumChoice::Off => None,
            ChecksumChoice::Use(algorithm) => Some(algorithm),
        }
    }

    /// The part checksums to declare at create: what [`Self::algorithm`] will pick once the
    /// server answers, so that the store is created for them.
    pub(super) fn declared(&self) -> Option<PartChecksums> {
        self.checksummer.as_ref()?;
        match self.options.checksum {
            ChecksumChoice::Auto => Some(PartChecksums::Auto),
            ChecksumChoice::Off => None,
            ChecksumChoice::Use(algorithm) => Some(PartChecksums::Use(algorithm)),
        }
    }

    /// Notes what the server asked for.
    pub(super) fn heard(&self, asked: Option<ChecksumAlgorithm>) {
        if let Some(memo) = &self.server_checksum {
            memo.set(asked);
        }
    }

    /// The checksum to use given what the server asked for.
    pub(super) fn algorithm(&self, asked: Option<ChecksumAlgorithm>) -> Option<ChecksumAlgorithm> {
        self.checksummer.as_ref()?;
        match self.options.checksum {
            ChecksumChoice::Auto => asked,
            ChecksumChoice::Off => None,
            ChecksumChoice::Use(algorithm) => Some(algorithm),
        }
    }

    /// Asks for `part`'s checksum, with its deadline ([`hash_deadline_ms`]) running from now.
    pub(super) fn hash(
        &self,
        summer: &Rc<dyn Checksummer>,
        algorithm: ChecksumAlgorithm,
        plan: &PartPlan,
        part: u32,
    ) -> LocalBoxFuture<'static, Hashed> {
        let sum = summer.checksum(algorithm, plan.range(part));
        let deadline =
            hash_deadline_ms(self.options.stall_timeout.ceiling_ms(), plan.part_len(part));
        let timer = deadline.map(|ms| self.clock.sleep(ms));
        Box::pin(async move { (part, within(sum, timer).await) })
    }

    /// The whole file's checksum as `algo:base64`, for a single PUT: waits while paused or
    /// offline first, and asks again (after a restart) when no answer comes by the deadline.
    pub(super) async fn whole_file_sum(
        &self,
        summer: &Rc<dyn Checksummer>,
        algorithm: ChecksumAlgorithm,
        size: u64,
        control: &Control,
        reporter: &Reporter,
    ) -> Result<String, Error> {
        self.hold(Some(control), reporter, Phase::Uploading).await?;
        let mut tries = 0;
        loop {
            let deadline = hash_deadline_ms(self.options.stall_timeout.ceiling_ms(), size);
            let timer = deadline.map(|ms| self.clock.sleep(ms));
            match within(summer.checksum(algorithm, 0..size), timer).await {
                Some(answer) => {
                    let sum = answer.map_err(|e| Error::FileUnreadable {
                        part: 1,
                        message: e.message,
                    })?;
                    return Ok(digest::tagged(algorithm, &sum));
                }
                None => {
                    tries += 1;
                    if tries > self.options.retry.retries {
                        return Err(hash_gave_up(1, tries));
                    }
                    summer.restart();
                }
            }
        }
    }

    /// `algo:BASE64-N`: the checksum of the parts' checksums, when every part has one. `None`
    /// too when the checksummer gives no answer in time: the store has checked every part by
    /// then, and the completion does not wait on a number only the result reports.
    pub(super) async fn composite_checksum(
        &self,
        algorithm: Option<ChecksumAlgorithm>,
        parts: &[(CompletedPart, Option<String>)],
    ) -> Option<String> {
        let algorithm = algorithm?;
        let summer = self.checksummer.as_ref()?;
        let sums = digest::composite_inputs(algorithm, parts.iter().map(|(_, s)| s.as_deref()))?;
        let bytes = sums.iter().map(|s| s.len() as u64).sum();
        let deadline = hash_deadline_ms(self.options.stall_timeout.ceiling_ms(), bytes);
        let timer = deadline.map(|ms| self.clock.sleep(ms));
        let sum = within(summer.composite(algorithm, sums), timer)
            .await?
            .ok()?;
        Some(digest::composite_tagged(algorithm, &sum, parts.len()))
    }
}

/// `answer`'s output, or `None` if `timer` (when there is one) goes off first.
pub(super) async fn within<T>(
    answer: LocalBoxFuture<'static, T>,
    timer: Option<LocalBoxFuture<'static, ()>>,
) -> Option<T> {
    match timer {
        None => Some(answer.await),
        Some(timer) => match future::select(answer, timer).await {
            Either::Left((value, _)) => Some(value),
            Either::Right(_) => None,
        },
    }
}

/// The error once a part's checksum gave no answer in time `tries` times in a row.
pub(super) fn hash_gave_up(part: u32, tries: u32) -> Error {
    Error::FileUnreadable {
        part,
        message: format!("its checksum gave no answer in time, {tries} times"),
    }
}

/// A completion entry carrying the part's checksum where S3 takes one (`algo:base64`; MD5 has no
/// completion field: the store checked it on the PUT).
pub(super) fn with_checksum(mut part: CompletedPart, sum: Option<String>) -> CompletedPart {
    if let Some((algorithm, value)) = sum.as_deref().and_then(digest::untag) {
        part.checksums.set(algorithm, value.to_owned());
    }
    part
}
