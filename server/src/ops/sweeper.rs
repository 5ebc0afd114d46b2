//! The background sweeper of `serve`: every `--sweep-every` it aborts the incomplete uploads
//! under the server's key prefix that are older than `--sweep-older-than`, with the same code
//! as `s3-direct uploads purge` (paged listings, idempotent aborts).
//!
//! Several replicas may sweep the same bucket at once: an upload another replica aborted first
//! counts as already gone, never as an error. Within one process two sweeps never overlap (a
//! sweep still running when the next is due makes that one skip). Time comes from tokio (an
//! `interval`, so tests run it under paused time) and from an injected wall clock (upload ages).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;
use tokio::time::MissedTickBehavior;

use super::error::OpsError;
use super::units::human_bytes;
use super::uploads::{self, Filter, MultipartAdmin, PurgeReport};
use crate::Metrics;

/// A period as the operator wrote it: `1h`, `30m`, `7d` (`90s` when not whole minutes).
fn period(d: Duration) -> String {
    match d.as_secs() {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The wall clock the sweeper judges upload ages by.
pub type WallClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// What and how often to sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepConfig {
    /// Abort uploads started at least this long ago.
    pub older_than: Duration,
    /// Time between the starts of two sweeps.
    pub every: Duration,
    /// Only uploads whose key starts with this (the server's `--key-prefix`).
    pub prefix: String,
}

/// Why the serve options cannot sweep, if they cannot: `--sweep-older-than` sweeps under
/// `--key-prefix`, which must then be non-empty and end with `/`
/// ([`uploads::check_sweeping_prefix`]), so a shared bucket keeps other applications' uploads.
pub fn check_config(
    sweep_older_than: Option<Duration>,
    key_prefix: &str,
) -> Result<(), SweepConfigError> {
    if sweep_older_than.is_none() {
        return Ok(());
    }
    uploads::check_sweeping_prefix(key_prefix).map_err(SweepConfigError)
}

/// Serve options that cannot sweep: the `--key-prefix` it would sweep under is unsafe.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to sweep: --sweep-older-than aborts old uploads under --key-prefix, and {0}. Give \
     --key-prefix a prefix of its own ending in '/' (like uploads/), or leave sweeping to a \
     lifecycle rule (s3-direct bucket setup)"
)]
pub struct SweepConfigError(pub uploads::UnsafePrefix);

/// What one call of [`Sweeper::sweep_once`] did.
#[derive(Debug)]
pub enum SweepOutcome {
    /// The sweep ran and aborted what the report says.
    Swept(PurgeReport),
    /// Another sweep of this process was still running, so this one did nothing.
    Skipped,
    /// The sweep failed; the next one will try again (unless the store cannot list uploads).
    Failed(OpsError),
}

/// The sweeper: a store to sweep, what to sweep, and where to count it.
pub struct Sweeper {
    admin: Arc<dyn MultipartAdmin>,
    config: SweepConfig,
    metrics: Arc<Metrics>,
    clock: WallClock,
    /// Held while a sweep runs.
    running: Mutex<()>,
}

impl std::fmt::Debug for Sweeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sweeper")
            .field("bucket", &self.admin.bucket())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Sweeper {
    /// A sweeper of `admin` using the system clock.
    pub fn new(admin: Arc<dyn MultipartAdmin>, config: SweepConfig, metrics: Arc<Metrics>) -> Self {
        Self::with_clock(admin, config, metrics, Arc::new(SystemTime::now))
    }

    /// A sweeper judging ages by `clock` (tests use a clock that follows tokio's paused time).
    pub fn with_clock(
        admin: Arc<dyn MultipartAdmin>,
        config: SweepConfig,
        metrics: Arc<Metrics>,
        clock: WallClock,
    ) -> Self {
        Self {
            admin,
            config,
            metrics,
            clock,
            running: Mutex::new(()),
        }
    }

    /// What the sweeper is set to do, for the start-up log line.
    pub fn describe(&self) -> String {
        format!(
            "every {} aborting incomplete uploads under {:?} in bucket {} older than {}",
            period(self.config.every),
            self.config.prefix,
            self.admin.bucket(),
            period(self.config.older_than)
        )
    }

    /// One sweep now, unless one is already running in this process.
    pub async fn sweep_once(&self) -> SweepOutcome {
        let Ok(_running) = self.running.try_lock() else {
            self.metrics.sweeps_skipped.inc();
            tracing::warn!("sweep skipped: the previous sweep is still running");
            return SweepOutcome::Skipped;
        };
        let filter = Filter {
            prefix: Some(self.config.prefix.clone()),
            older_than: Some(self.config.older_than),
        };
        // Not `all`: a prefix that would reach other applications' uploads is refused here too,
        // should a sweeper be built without `check_config`.
        match uploads::purge(self.admin.as_ref(), &filter, (self.clock)(), false, false).await {
            Ok(report) => {
                self.metrics
                    .sweep_uploads_aborted
                    .inc_by(report.aborted.len() as u64);
                self.metrics.sweep_parts_freed.inc_by(report.parts());
                self.metrics.sweep_bytes_freed.inc_by(report.bytes());
                // Last, so whoever sees the sweep counted also sees what it freed.
                self.metrics.sweeps.inc();
                for u in &report.aborted {
                    tracing::info!(
                        key = %u.upload.key,
                        upload_id = %u.upload.upload_id,
                        parts = u.parts,
                        bytes = u.bytes,
                        "sweeper aborted an abandoned upload"
                    );
                }
                tracing::info!(
                    aborted = report.aborted.len(),
                    parts = report.parts(),
                    bytes = report.bytes(),
                    already_gone = report.already_gone,
                    "sweep done: freed {} in {} upload(s)",
                    human_bytes(report.bytes()),
                    report.aborted.len()
                );
                SweepOutcome::Swept(report)
            }
            Err(e) => {
                self.metrics.sweep_errors.inc();
                SweepOutcome::Failed(e)
            }
        }
    }

    /// Sweeps every `every` (the first sweep at once) until `shutdown` resolves. Stops for good
    /// when the store cannot list multipart uploads, saying so once.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let mut ticks = tokio::time::interval(self.config.every);
        // A sweep that overran its period is followed by one full period of rest, not a burst.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticks.tick() => {}
            }
            let sweep = self.sweep_once();
            tokio::pin!(sweep);
            let outcome = tokio::select! {
                () = &mut shutdown => return,
                outcome = &mut sweep => outcome,
            };
            match outcome {
                SweepOutcome::Failed(OpsError::Unsupported { operation }) => {
                    tracing::error!(
                        "the sweeper stops: the store does not implement {operation}, so it \
                         cannot find abandoned uploads; add a lifecycle rule \
                         AbortIncompleteMultipartUpload to the bucket instead \
                         (`s3-direct bucket setup`)"
                    );
                    return;
                }
                SweepOutcome::Failed(e) => {
                    tracing::warn!(
                        "sweep failed, trying again in {}: {e}",
                        period(self.config.every)
                    );
                }
                SweepOutcome::Swept(_) | SweepOutcome::Skipped => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::fake::FakeAdmin;
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn base() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_348_800)
    }

    /// A wall clock that moves with tokio's (paused) clock from `base()`.
    fn paused_clock() -> WallClock {
        let start = tokio::time::Instant::now();
        Arc::new(move || base() + start.elapsed())
    }

    fn config() -> SweepConfig {
        SweepConfig {
            older_than: 24 * HOUR,
            every: HOUR,
            prefix: "uploads/".into(),
        }
    }

    fn metric(metrics: &Metrics, name: &str) -> u64 {
        let text = metrics.render();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
            .parse()
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn sweeps_on_schedule_and_only_old_uploads_under_the_prefix() {
        let fake = Arc::new(FakeAdmin::default());
        // Started 23 h 30 m before the sweeper: old enough at the sweep one hour in.
        fake.add("uploads/a", "ua", base() - 23 * HOUR - HOUR / 2, &[10, 20]);
        // Started at base: old enough only after 24 h.
        fake.add("uploads/b", "ub", base(), &[5]);
        // Old, but not ours.
        fake.add("other/c", "uc", base() - 100 * HOUR, &[7]);
        let metrics = Arc::new(Metrics::new());
        let sweeper = Arc::new(Sweeper::with_clock(
            fake.clone(),
            config(),
            metrics.clone(),
            paused_clock(),
        ));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(sweeper.clone().run(async {
            let _ = stopped.await;
        }));
        // The first sweep runs at once and finds nothing old enough.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(fake.len(), 3);
        assert_eq!(metric(&metrics, "s3direct_sweeps_total"), 1);
        // One hour later "uploads/a" is 24 h old.
        tokio::time::sleep(HOUR).await;
        assert!(!fake.contains("uploads/a", "ua"));
        assert!(fake.contains("uploads/b", "ub") && fake.contains("other/c", "uc"));
        assert_eq!(metric(&metrics, "s3direct_sweeps_total"), 2);
        assert_eq!(metric(&metrics, "s3direct_sweep_uploads_aborted_total"), 1);
        assert_eq!(metric(&metrics, "s3direct_sweep_parts_freed_total"), 2);
        assert_eq!(metric(&metrics, "s3direct_sweep_bytes_freed_total"), 30);
        // 24 h after start "uploads/b" goes too; "other/c" never does.
        tokio::time::sleep(23 * HOUR).await;
        assert!(!fake.contains("uploads/b", "ub"));
        assert!(fake.contains("other/c", "uc"));
        assert_eq!(metric(&metrics, "s3direct_sweeps_total"), 25);
        assert_eq!(metric(&metrics, "s3direct_sweep_bytes_freed_total"), 35);
        stop.send(()).unwrap();
        task.await.unwrap();
    }

    #[test]
    fn a_sweeping_prefix_must_be_non_empty_and_end_with_a_slash() {
        let day = Some(24 * HOUR);
        assert!(check_config(day, "uploads/").is_ok());
        assert!(check_config(day, "a/b/").is_ok());
        // Not sweeping: any prefix serves.
        assert!(check_config(None, "").is_ok());
        let empty = check_config(day, "").unwrap_err().to_string();
        assert!(
            empty.starts_with("refusing to sweep:") && empty.contains("whole bucket"),
            "{empty}"
        );
        assert!(empty.contains("--key-prefix"), "{empty}");
        let open = check_config(day, "uploads").unwrap_err().to_string();
        assert!(open.contains(r#"use "uploads/""#), "{open}");
    }

    #[tokio::test]
    async fn a_sweeper_built_with_an_empty_prefix_aborts_nothing() {
        let fake = Arc::new(FakeAdmin::default());
        fake.add("other-app/c", "uc", base() - 100 * HOUR, &[7]);
        let metrics = Arc::new(Metrics::new());
        let sweeper = Sweeper::with_clock(
            fake.clone(),
            SweepConfig {
                prefix: String::new(),
                ..config()
            },
            metrics.clone(),
            Arc::new(base),
        );
        let outcome = sweeper.sweep_once().await;
        assert!(
            matches!(outcome, SweepOutcome::Failed(OpsError::Refused(ref m)) if m.contains("whole bucket")),
            "{outcome:?}"
        );
        assert!(fake.contains("other-app/c", "uc"));
        assert_eq!(metric(&metrics, "s3direct_sweep_errors_total"), 1);
    }

    #[test]
    fn periods_print_as_typed() {
        assert_eq!(period(Duration::from_secs(3600)), "1h");
        assert_eq!(period(Duration::from_secs(86_400 * 7)), "7d");
        assert_eq!(period(Duration::from_secs(90 * 60)), "90m");
        assert_eq!(period(Duration::from_secs(61)), "61s");
        assert_eq!(period(Duration::ZERO), "0s");
    }

    #[tokio::test(start_paused = true)]
    async fn two_sweeps_never_run_at_once_in_one_process() {
        let fake = Arc::new(FakeAdmin::default());
        for i in 0..50 {
            fake.add(
                &format!("uploads/{i:02}"),
                &format!("u{i}"),
                base() - 48 * HOUR,
                &[1],
            );
        }
        let metrics = Arc::new(Metrics::new());
        let sweeper = Sweeper::with_clock(fake.clone(), config(), metrics.clone(), paused_clock());
        // The fake yields at every call, so the first sweep is mid-way when the second starts.
        let (a, b) = tokio::join!(sweeper.sweep_once(), sweeper.sweep_once());
        let (report, skipped) = match (a, b) {
            (SweepOutcome::Swept(r), SweepOutcome::Skipped) => (r, true),
            other => panic!("expected one sweep and one skip, got {other:?}"),
        };
        assert!(skipped);
        assert_eq!(report.aborted.len(), 50);
        assert_eq!(fake.len(), 0);
        assert_eq!(fake.aborts.load(Ordering::SeqCst), 50);
        assert_eq!(metric(&metrics, "s3direct_sweeps_skipped_total"), 1);
        // Once the first is over, the next runs.
        assert!(
            matches!(sweeper.sweep_once().await, SweepOutcome::Swept(r) if r.aborted.is_empty())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn replicas_sweeping_the_same_bucket_both_succeed() {
        let fake = Arc::new(FakeAdmin::default());
        for i in 0..300 {
            fake.add(
                &format!("uploads/{i:03}"),
                &format!("u{i}"),
                base() - 48 * HOUR,
                &[2],
            );
        }
        let replica = || {
            Sweeper::with_clock(
                fake.clone(),
                config(),
                Arc::new(Metrics::new()),
                paused_clock(),
            )
        };
        let (one, two) = (replica(), replica());
        let (a, b) = tokio::join!(one.sweep_once(), two.sweep_once());
        let (SweepOutcome::Swept(a), SweepOutcome::Swept(b)) = (a, b) else {
            panic!("both replicas must sweep");
        };
        assert_eq!(fake.len(), 0);
        assert_eq!(a.aborted.len() + b.aborted.len(), 300);
        assert!(
            a.already_gone + b.already_gone > 0,
            "the race was not exercised"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_that_cannot_list_stops_the_sweeper() {
        let fake = Arc::new(FakeAdmin {
            unsupported: true,
            ..FakeAdmin::default()
        });
        let metrics = Arc::new(Metrics::new());
        let sweeper = Arc::new(Sweeper::with_clock(
            fake,
            config(),
            metrics.clone(),
            paused_clock(),
        ));
        // `run` returns by itself (the shutdown future never resolves).
        tokio::time::timeout(Duration::from_secs(10), sweeper.run(std::future::pending()))
            .await
            .expect("the sweeper should stop when the store cannot list uploads");
        assert_eq!(metric(&metrics, "s3direct_sweep_errors_total"), 1);
        assert_eq!(metric(&metrics, "s3direct_sweeps_total"), 0);
    }
}
