//! Byte-level progress: what the caller's `onProgress` sees, and the bookkeeping behind it.
//!
//! Two promises peers break and we keep: progress never goes backwards, and it reaches 100 % only
//! once the store has assembled the object (the last part being stored is not the end: complete
//! can still fail). Until then bytes and parts are held one short of the total.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::{Rc, Weak};

use super::parts::PartMap;
use super::ports::Clock;
use super::stall::PartWatch;

/// Speed is measured over this much recent history, so it follows changes in bandwidth within
/// seconds but does not jitter with every progress event.
pub const SPEED_WINDOW_MS: f64 = 5_000.0;
/// Below this much history speed is reported as 0 (unknown): the first events of a PUT measure
/// the browser's buffers, not the network.
pub const MIN_SPEED_SPAN_MS: f64 = 500.0;

/// A snapshot of an upload's progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Bytes handed to the network: stored parts plus what in-flight PUTs have sent so far.
    pub bytes_sent: u64,
    /// Bytes of parts the store has acknowledged with an ETag.
    pub bytes_confirmed: u64,
    /// Size of the file; `None` while a stream is still being read (its size is not known yet).
    pub bytes_total: Option<u64>,
    /// Parts stored.
    pub parts_done: u32,
    /// Parts in the plan; `None` while a stream is still being read.
    pub parts_total: Option<u32>,
    /// Bytes per second over the last few seconds; 0 while unknown.
    pub speed: f64,
    /// Seconds left at the current speed; `None` while the speed is unknown.
    pub eta: Option<f64>,
    /// What the upload is doing.
    pub phase: Phase,
}

/// What an upload is doing, for the page to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Creating the upload or sending parts.
    #[default]
    Uploading,
    /// Paused by the caller; nothing is being sent.
    Paused,
    /// The device is offline; the upload continues when it is back.
    Offline,
    /// Every part is stored; the store is assembling the object.
    Completing,
    /// The object exists.
    Done,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uploading => "uploading",
            Self::Paused => "paused",
            Self::Offline => "offline",
            Self::Completing => "completing",
            Self::Done => "done",
        }
    }
}

/// Handed to a [`PartSink`](super::PartSink) with each PUT, to report how many bytes of that part
/// have been sent. Cheap to clone, and `'static`, so it can live in a browser event handler.
#[derive(Debug, Clone)]
pub struct PartProgress {
    // Weak: a late event from a PUT's handler must not keep a finished upload's state (and the
    // caller's callback) alive.
    reporter: Weak<Reporter>,
    part: u32,
    /// The attempt's stall watch: fed here, read by the stall watchdog.
    watch: Rc<PartWatch>,
}

impl PartProgress {
    /// Reports that `bytes` of this part have been sent so far (a running total, not a delta).
    /// Values above the part's size are clamped; values below an earlier report are ignored.
    pub fn sent(&self, bytes: u64) {
        if let Some(reporter) = self.reporter.upgrade()
            && let Some(now) = reporter.part_sent(self.part, bytes)
        {
            self.watch.progress(bytes, now);
        }
    }

    /// The part this handle reports for.
    pub fn part(&self) -> u32 {
        self.part
    }
}

/// Callback receiving progress snapshots.
pub type ProgressCallback = Box<dyn FnMut(&Progress)>;

/// Owns the progress state of one upload and calls the caller's callback.
pub(crate) struct Reporter {
    clock: Rc<dyn Clock>,
    /// Minimum time between two reports caused by bytes sent; a part finishing always reports.
    interval_ms: f64,
    tracker: RefCell<Tracker>,
    callback: RefCell<ProgressCallback>,
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter")
            .field("interval_ms", &self.interval_ms)
            .field("tracker", &self.tracker)
            .finish_non_exhaustive()
    }
}

impl Reporter {
    /// A reporter of an upload of `total` bytes in `parts_total` parts: a file's, or, with
    /// `None`, a stream's, whose parts are counted in as they are cut ([`Reporter::cut`]) until
    /// its end is known ([`Reporter::ended`]).
    pub(crate) fn new(
        total: Option<(u64, u32)>,
        clock: Rc<dyn Clock>,
        interval_ms: f64,
        callback: ProgressCallback,
    ) -> Rc<Self> {
        Rc::new(Self {
            clock,
            interval_ms,
            tracker: RefCell::new(Tracker::new(total)),
            callback: RefCell::new(callback),
        })
    }

    /// A handle for the PUT of `part`, which starts now, reporting to `watch` too.
    pub(crate) fn start_part(self: &Rc<Self>, part: u32, watch: Rc<PartWatch>) -> PartProgress {
        self.tracker.borrow_mut().start(part, watch.size());
        PartProgress {
            reporter: Rc::downgrade(self),
            part,
            watch,
        }
    }

    /// Records bytes sent; returns the time if the part moved.
    fn part_sent(&self, part: u32, bytes: u64) -> Option<f64> {
        let now = self.clock.now_ms();
        let moved = self.tracker.borrow_mut().sent(part, bytes, now);
        if moved {
            self.emit(false);
        }
        moved.then_some(now)
    }

    /// The PUT of `part` was abandoned (failed, stalled or paused): its bytes no longer count as
    /// sent, though what was reported stays reported (progress never goes back).
    pub(crate) fn abandon_part(&self, part: u32) {
        self.tracker.borrow_mut().abandon(part);
    }

    /// `part` (`len` bytes), counted as stored, must be sent again: it no longer counts as
    /// confirmed, though what was reported stays reported.
    pub(crate) fn redo_part(&self, part: u32, len: u64) {
        let mut tracker = self.tracker.borrow_mut();
        tracker.abandon(part);
        tracker.confirmed = tracker.confirmed.saturating_sub(len);
        tracker.parts_done = tracker.parts_done.saturating_sub(1);
    }

    /// Parts stored before this run (a resumed upload): `bytes` in `parts` parts.
    pub(crate) fn already_stored(&self, bytes: u64, parts: u32) {
        let now = self.clock.now_ms();
        let mut tracker = self.tracker.borrow_mut();
        tracker.confirmed += bytes;
        tracker.parts_done += parts;
        // Not sent by this run: the speed window starts above them.
        let raw = tracker.raw_sent();
        tracker.high = tracker.high.max(raw);
        let high = tracker.high;
        tracker.window.record(now, high);
        drop(tracker);
        self.emit(true);
    }

    /// A stream's next part was cut: `bytes` more of the total, one part more.
    pub(crate) fn cut(&self, bytes: u64) {
        let mut tracker = self.tracker.borrow_mut();
        tracker.total += bytes;
        tracker.parts_total += 1;
    }

    /// A stream ended: its total is what was cut. Reports at once.
    pub(crate) fn ended(&self) {
        self.tracker.borrow_mut().total_known = true;
        self.emit(true);
    }

    /// The upload's phase changed; reports at once if it did.
    pub(crate) fn set_phase(&self, phase: Phase) {
        let changed = {
            let mut tracker = self.tracker.borrow_mut();
            let changed = tracker.phase != phase;
            tracker.phase = phase;
            changed
        };
        if changed {
            self.emit(true);
        }
    }

    /// `part` is stored.
    pub(crate) fn part_done(&self, part: u32) {
        let now = self.clock.now_ms();
        self.tracker.borrow_mut().confirm(part, now);
        self.emit(true);
    }

    /// The object is complete: report 100 %.
    pub(crate) fn finish(&self) {
        let mut tracker = self.tracker.borrow_mut();
        tracker.finished = true;
        tracker.phase = Phase::Done;
        drop(tracker);
        self.emit(true);
    }

    /// Reports the current state unconditionally (the initial 0 %).
    pub(crate) fn report(&self) {
        let now = self.clock.now_ms();
        let mut tracker = self.tracker.borrow_mut();
        let high = tracker.high;
        tracker.window.record(now, high);
        drop(tracker);
        self.emit(true);
    }

    fn emit(&self, force: bool) {
        let now = self.clock.now_ms();
        let snapshot = {
            let mut tracker = self.tracker.borrow_mut();
            if !force
                && tracker
                    .last_emit_ms
                    .is_some_and(|t| now - t < self.interval_ms)
            {
                return;
            }
            let snapshot = tracker.snapshot();
            if !force
                && tracker
                    .last
                    .is_some_and(|last| same_position(&last, &snapshot))
            {
                return;
            }
            tracker.last = Some(snapshot);
            tracker.last_emit_ms = Some(now);
            snapshot
        };
        // The tracker borrow is released before calling out. A callback that somehow re-enters
        // (a progress event fired from inside it) is skipped rather than panicking on the borrow.
        if let Ok(mut callback) = self.callback.try_borrow_mut() {
            callback(&snapshot);
        }
    }
}

fn same_position(a: &Progress, b: &Progress) -> bool {
    a.bytes_sent == b.bytes_sent
        && a.bytes_confirmed == b.bytes_confirmed
        && a.parts_done == b.parts_done
        && a.bytes_total == b.bytes_total
        && a.phase == b.phase
}

/// The numbers behind [`Progress`].
#[derive(Debug)]
struct Tracker {
    /// The file's size; a stream's bytes cut so far until it ends.
    total: u64,
    parts_total: u32,
    /// Whether `total` and `parts_total` are final (always, but for a stream still being read).
    total_known: bool,
    confirmed: u64,
    parts_done: u32,
    /// Per in-flight part: bytes sent so far and the part's size.
    in_flight: PartMap<(u64, u64)>,
    /// Sum of the sent bytes in `in_flight`.
    in_flight_sent: u64,
    /// The most `raw_sent` has ever been: what the speed window measures, so a retried part's
    /// bytes count once.
    high: u64,
    phase: Phase,
    window: SpeedWindow,
    /// What was last reported; every later report is at least this.
    last: Option<Progress>,
    last_emit_ms: Option<f64>,
    finished: bool,
}

impl Tracker {
    fn new(total: Option<(u64, u32)>) -> Self {
        let (total_known, (total, parts_total)) = (total.is_some(), total.unwrap_or_default());
        Self {
            total,
            parts_total,
            total_known,
            confirmed: 0,
            parts_done: 0,
            in_flight: PartMap::new(),
            in_flight_sent: 0,
            high: 0,
            phase: Phase::Uploading,
            window: SpeedWindow::default(),
            last: None,
            last_emit_ms: None,
            finished: false,
        }
    }

    fn raw_sent(&self) -> u64 {
        self.confirmed + self.in_flight_sent
    }

    fn start(&mut self, part: u32, len: u64) {
        if let Some((sent, _)) = self.in_flight.insert(part, (0, len)) {
            self.in_flight_sent -= sent;
        }
    }

    /// Returns whether anything changed.
    fn sent(&mut self, part: u32, bytes: u64, now: f64) -> bool {
        // A part that is not in flight (finished, or dropped on cancel) may still have a late
        // event queued in the browser; it must not count twice.
        let Some((sent, len)) = self.in_flight.get_mut(part) else {
            return false;
        };
        let bytes = bytes.min(*len);
        if bytes <= *sent {
            return false;
        }
        self.in_flight_sent += bytes - *sent;
        *sent = bytes;
        self.high = self.high.max(self.raw_sent());
        self.window.record(now, self.high);
        true
    }

    fn abandon(&mut self, part: u32) {
        if let Some((sent, _)) = self.in_flight.remove(part) {
            self.in_flight_sent -= sent;
        }
    }

    fn confirm(&mut self, part: u32, now: f64) {
        let Some((sent, len)) = self.in_flight.remove(part) else {
            return;
        };
        self.in_flight_sent -= sent;
        self.confirmed += len;
        self.parts_done += 1;
        self.high = self.high.max(self.raw_sent());
        self.window.record(now, self.high);
    }

    fn snapshot(&self) -> Progress {
        let (sent, confirmed, parts_done) = if self.finished {
            (self.total, self.total, self.parts_total)
        } else {
            let byte_cap = self.total.saturating_sub(1);
            (
                self.raw_sent().min(byte_cap),
                self.confirmed.min(byte_cap),
                self.parts_done.min(self.parts_total.saturating_sub(1)),
            )
        };
        let (last_sent, last_confirmed, last_parts) = self.last.map_or((0, 0, 0), |l| {
            (l.bytes_sent, l.bytes_confirmed, l.parts_done)
        });
        let bytes_sent = sent.max(last_sent);
        let speed = self.window.speed();
        let eta = if self.finished {
            Some(0.0)
        } else if speed > 0.0 && self.total_known {
            Some(self.total.saturating_sub(bytes_sent) as f64 / speed)
        } else {
            None
        };
        let known = self.total_known || self.finished;
        Progress {
            bytes_sent,
            bytes_confirmed: confirmed.max(last_confirmed),
            bytes_total: known.then_some(self.total),
            parts_done: parts_done.max(last_parts),
            parts_total: known.then_some(self.parts_total),
            speed,
            eta,
            phase: self.phase,
        }
    }
}

/// (time, bytes sent) samples covering the last [`SPEED_WINDOW_MS`], plus the one sample just
/// before it so the window's start is known.
#[derive(Debug, Default)]
pub(crate) struct SpeedWindow {
    samples: VecDeque<(f64, u64)>,
}

impl SpeedWindow {
    pub(crate) fn record(&mut self, now: f64, bytes: u64) {
        // A clock that stepped back is treated as standing still.
        let now = self.samples.back().map_or(now, |&(t, _)| now.max(t));
        self.samples.push_back((now, bytes));
        while self.samples.len() > 2 && self.samples[1].0 <= now - SPEED_WINDOW_MS {
            self.samples.pop_front();
        }
    }

    pub(crate) fn speed(&self) -> f64 {
        let (Some(&(t0, b0)), Some(&(t1, b1))) = (self.samples.front(), self.samples.back()) else {
            return 0.0;
        };
        let span = t1 - t0;
        if span < MIN_SPEED_SPAN_MS {
            return 0.0;
        }
        b1.saturating_sub(b0) as f64 * 1000.0 / span
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::engine::stall::{StallDetector, StallTimeout};

    #[derive(Default)]
    struct TestClock(Cell<f64>);
    impl Clock for TestClock {
        fn now_ms(&self) -> f64 {
            self.0.get()
        }
        fn sleep(&self, _ms: f64) -> futures::future::LocalBoxFuture<'static, ()> {
            Box::pin(futures::future::pending())
        }
    }

    /// A watch for a PUT of `len` bytes, started at 0.
    fn watch(len: u64) -> Rc<PartWatch> {
        StallDetector::new().watch(StallTimeout::Adaptive, len, 0.0)
    }

    fn reporter(
        total: u64,
        parts: u32,
        interval: f64,
    ) -> (Rc<Reporter>, Rc<TestClock>, Rc<RefCell<Vec<Progress>>>) {
        let clock = Rc::new(TestClock::default());
        let seen = Rc::new(RefCell::new(Vec::new()));
        let sink = seen.clone();
        let r = Reporter::new(
            Some((total, parts)),
            clock.clone(),
            interval,
            Box::new(move |p| sink.borrow_mut().push(*p)),
        );
        (r, clock, seen)
    }

    #[test]
    fn speed_is_measured_over_the_last_five_seconds() {
        let mut w = SpeedWindow::default();
        w.record(0.0, 0);
        w.record(200.0, 100);
        assert_eq!(w.speed(), 0.0, "too little history to tell");
        // 1,000 bytes/s for 10 s, then 4,000 bytes/s for 5 s.
        for s in 1..=10u64 {
            w.record(s as f64 * 1000.0, s * 1000);
        }
        assert_eq!(w.speed(), 1000.0);
        for s in 1..=5u64 {
            w.record(10_000.0 + s as f64 * 1000.0, 10_000 + s * 4000);
        }
        assert_eq!(w.speed(), 4000.0, "old samples left the window");
        assert!(w.samples.len() <= 7);
    }

    #[test]
    fn a_stall_lowers_the_speed_at_the_next_sample() {
        let mut w = SpeedWindow::default();
        w.record(0.0, 0);
        w.record(1000.0, 1000);
        w.record(21_000.0, 1001);
        // The window now starts at the last sample before t = 16 s.
        assert!(w.speed() < 1.0);
    }

    #[test]
    fn a_clock_stepping_back_does_not_make_speed_negative_or_infinite() {
        let mut w = SpeedWindow::default();
        w.record(1000.0, 0);
        w.record(2000.0, 1000);
        w.record(500.0, 2000);
        assert_eq!(w.speed(), 2000.0);
    }

    #[test]
    fn bytes_sent_is_clamped_per_part_and_never_goes_back() {
        let (r, clock, seen) = reporter(100, 2, 0.0);
        let p1 = r.start_part(1, watch(60));
        p1.sent(10);
        clock.0.set(1.0);
        p1.sent(5);
        p1.sent(500);
        let sent: Vec<u64> = seen.borrow().iter().map(|p| p.bytes_sent).collect();
        assert_eq!(sent, [10, 60]);
    }

    #[test]
    fn nothing_reaches_the_total_before_finish() {
        let (r, _clock, seen) = reporter(100, 2, 0.0);
        let p1 = r.start_part(1, watch(60));
        let p2 = r.start_part(2, watch(40));
        p1.sent(60);
        p2.sent(40);
        r.part_done(2);
        r.part_done(1);
        let last = *seen.borrow().last().unwrap();
        assert_eq!((last.bytes_sent, last.bytes_confirmed), (99, 99));
        assert_eq!(last.parts_done, 1);
        r.finish();
        let last = *seen.borrow().last().unwrap();
        assert_eq!((last.bytes_sent, last.bytes_confirmed), (100, 100));
        assert_eq!((last.parts_done, last.eta), (2, Some(0.0)));
    }

    #[test]
    fn byte_reports_are_throttled_but_stored_parts_always_report() {
        let (r, clock, seen) = reporter(1000, 2, 100.0);
        let p1 = r.start_part(1, watch(500));
        p1.sent(1);
        p1.sent(2);
        clock.0.set(50.0);
        p1.sent(3);
        assert_eq!(seen.borrow().len(), 1);
        clock.0.set(100.0);
        p1.sent(4);
        assert_eq!(seen.borrow().len(), 2);
        r.part_done(1);
        assert_eq!(seen.borrow().len(), 3);
        assert_eq!(seen.borrow()[2].bytes_confirmed, 500);
    }

    #[test]
    fn late_reports_for_a_finished_part_are_ignored() {
        let (r, _clock, seen) = reporter(100, 2, 0.0);
        let p1 = r.start_part(1, watch(60));
        r.part_done(1);
        p1.sent(30);
        assert_eq!(seen.borrow().len(), 1);
        assert_eq!(seen.borrow()[0].bytes_sent, 60);
    }

    #[test]
    fn eta_follows_speed() {
        let (r, clock, seen) = reporter(10_000, 1, 0.0);
        r.report();
        let p1 = r.start_part(1, watch(10_000));
        clock.0.set(1000.0);
        p1.sent(2000);
        let last = *seen.borrow().last().unwrap();
        assert_eq!(last.speed, 2000.0);
        assert_eq!(last.eta, Some(4.0));
        assert_eq!(seen.borrow()[0].eta, None);
    }

    #[test]
    fn a_retried_part_never_takes_progress_or_speed_back() {
        let (r, clock, seen) = reporter(1000, 2, 0.0);
        r.report();
        let first = watch(500);
        let p1 = r.start_part(1, first.clone());
        clock.0.set(1000.0);
        p1.sent(400);
        assert_eq!((first.sent(), first.last_ms()), (400, 1000.0));
        r.abandon_part(1);
        let p1 = r.start_part(1, watch(500));
        clock.0.set(2000.0);
        p1.sent(100);
        clock.0.set(3000.0);
        p1.sent(500);
        let seen = seen.borrow();
        for pair in seen.windows(2) {
            assert!(pair[1].bytes_sent >= pair[0].bytes_sent, "{pair:?}");
        }
        let last = seen.last().unwrap();
        assert_eq!(last.bytes_sent, 500);
        // 500 useful bytes in 3 s, not 900.
        assert!((last.speed - 500.0 / 3.0).abs() < 0.01, "{}", last.speed);
    }

    #[test]
    fn a_dropped_upload_ignores_its_handles() {
        let (r, _clock, seen) = reporter(100, 1, 0.0);
        let p1 = r.start_part(1, watch(100));
        drop(r);
        p1.sent(50);
        assert!(seen.borrow().is_empty());
    }
}
