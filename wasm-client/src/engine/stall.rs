//! Stall detection: when a part PUT whose bytes stopped moving is given up and sent again.
//!
//! A fixed timeout has to be long enough for the slowest link it may meet, so on a fast one a
//! frozen part is noticed late (30 s while the rest of a 256 MiB upload takes 3 s). By default the
//! timeout adapts instead: a [`StallDetector`], shared by every part of an upload (and of a queue,
//! when it is handed to each of its uploads), remembers the last [`GAP_WINDOW`] gaps between
//! consecutive progress events of its PUTs; a part that has sent some but not all of its bytes is
//! stalled once it has been silent [`GAP_FACTOR`] times the longest of them, at least
//! [`STALL_FLOOR_MS`] and at most [`DEFAULT_STALL_TIMEOUT_MS`]. A link with sparse but regular
//! events (a slow one) has long gaps, so its parts get long timeouts; a fast link's parts get the
//! floor.
//!
//! An attempt's first gap does not count: its first events come as fast as the operating
//! system's buffers fill, whatever the link, and the first gap on a slow link is where those
//! buffers start to drain. Counting it, a clean 64 MiB upload through the test proxy throttled
//! to 170 KB/s per PUT once sent 22 PUTs for 8 parts (fresh attempts can judge the link by their
//! own 0.1 s gaps, then abort at the first 8.6 s drain gap); without, 8. For the same reason the
//! timeout adapts
//! only once [`MIN_GAPS`] gaps were seen, and the window is a number of gaps, not a time: a slow
//! link's gaps are few, and must not be forgotten while its parts' bytes drain.
//!
//! Parts that were answered say something too: the detector remembers how long the latest
//! [`DONE_WINDOW`] answered PUTs took per byte, from their first progress event to their answer.
//! Once [`MIN_DONE`] were answered, a part is also judged by them: it may take [`DONE_FACTOR`]
//! times as long as the slowest of them would for its size (at least [`STALL_FLOOR_MS`]). This
//! is what catches a stall where progress events say little: Firefox fires one to three upload
//! progress events per 8 MiB part on loopback, so an upload may see too few gaps to adapt; WebKit
//! reports a part's bytes as sent once the operating system's socket buffers took them, several
//! MiB on loopback, so a part whose receiver stopped reading can look wholly sent, awaiting its
//! answer (README, "Browser engines").
//!
//! Where neither gaps nor answered parts say anything about the part, the ceiling applies:
//! - before its first byte moves, a PUT is setting up its connection or queued by the browser
//!   behind other requests to the same host (six per host over HTTP/1.1), which shows no progress
//!   without being stalled: it is stalled only once it has waited the ceiling (or, once parts
//!   were answered, the time they allow for one of its size, if shorter) *and* no part watched by
//!   the same detector has moved for the adaptive timeout (the requests it queues behind would be
//!   moving);
//! - once every byte is handed over, only the store's answer is awaited, which progress events
//!   do not measure (the store checks the body; and the operating system's buffers drain, which
//!   on a slow link can take as long as handing the bytes over did: seen through the test proxy
//!   throttled to 1 MB/s across six PUTs, a part's answer came 30 s after its last byte was
//!   reported sent, 20 s into the PUT): the ceiling plus the time the PUT took so far, or the
//!   time answered parts allow for one of its size if that is shorter (on that slow link it is
//!   not: they took minutes);
//! - while fewer than [`MIN_GAPS`] gaps were seen (the first events of an upload) and fewer than
//!   [`MIN_DONE`] parts were answered.
//!
//! Gaps are measured within one attempt only: the wait before a PUT's first event is set-up, and
//! time paused or offline belongs to no attempt. The limit of the adaptive timeout: the first gap
//! longer than the floor on a link that so far showed only short ones aborts that part once. The
//! silence it was given up after is then remembered ([`PartWatch::gave_up`]): every part may be
//! silent [`GAP_FACTOR`] times as long until [`DONE_WINDOW`] more parts were answered, so a link
//! whose progress comes in bursts costs a re-sent part or two, never an endless round of them
//! (the window of gaps would forget it within the next burst). WebKit on a slow link is
//! such a link: it reports a part's bytes as they enter several MiB of socket buffers, then
//! nothing for seconds while they drain (through the test proxy at 170 KB/s per PUT: a burst of
//! 4 MiB, then silences of 2 to 7 s), and it was given up after every such silence, 41 times
//! for a 32 MiB upload, until the upload failed.
//!
//! An explicit timeout ([`StallTimeout::Fixed`]) ignores the link: a part silent that long is
//! stalled, whatever it has sent; 0 never.
//!
//! Plain data fed with times, not a clock: the engine's watchdog asks [`PartWatch::is_stalled`]
//! and sleeps until [`PartWatch::next_look`], so everything here is tested with numbers.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

/// The longest a part may be silent before it is aborted and sent again: the ceiling of the
/// adaptive timeout.
pub const DEFAULT_STALL_TIMEOUT_MS: f64 = 30_000.0;
/// The shortest adaptive timeout. Chromium fires an upload progress event about every 100 ms
/// while bytes move; seconds of silence on a link that showed only short gaps is a stall, and
/// this floor (plus the first retry's delay, 0.5–1 s) keeps the re-sent part's request within
/// about 5 s of the stall.
pub const STALL_FLOOR_MS: f64 = 4_000.0;
/// How many times the link's longest recent gap a part must be silent to be stalled. Regular
/// gaps vary little (through the test proxy throttled to 170 KB/s per PUT: median 8.4 s, longest
/// 9.5 s); on a fast link the longest gap is the page's worst hiccup (0.3–0.7 s on loopback,
/// more on a loaded machine), and four times it should stay near the floor.
pub const GAP_FACTOR: f64 = 4.0;
/// How many of the latest gaps count: a few seconds of a fast link's six PUTs (an event every
/// 100 ms each), a whole upload's worth on a slow one.
pub const GAP_WINDOW: u64 = 64;
/// Gaps to see before the timeout adapts; until then it is the ceiling.
pub const MIN_GAPS: u64 = 8;
/// How many times as long as the slowest recently answered part (per byte) a part may take.
/// Parts sent side by side share the link, so their times differ little; four times is a
/// stall, not a slow part.
pub const DONE_FACTOR: f64 = 4.0;
/// How many of the latest answered parts count.
pub const DONE_WINDOW: u64 = 16;
/// Answered parts to see before they count: one round of the default concurrency.
pub const MIN_DONE: u64 = 4;
/// The smallest part whose answer counts: a small file's PUT or a file's short last part takes
/// as long as the round trip, whatever its size, and scaled up to a part of many MiB would
/// allow it minutes.
pub const MIN_RATED_LEN: u64 = 1 << 20;

/// How long a part may send nothing before it is aborted and sent again.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum StallTimeout {
    /// Adapts to the link (see the module documentation).
    #[default]
    Adaptive,
    /// This many milliseconds without bytes moving, whatever the link; 0 never.
    Fixed(f64),
}

impl StallTimeout {
    /// The longest a part may be silent under this setting (0: no stall detection).
    pub fn ceiling_ms(self) -> f64 {
        match self {
            Self::Adaptive => DEFAULT_STALL_TIMEOUT_MS,
            Self::Fixed(ms) => ms,
        }
    }
}

/// The largest of the latest `window` values pushed, and how many were pushed.
#[derive(Debug)]
struct WindowMax {
    /// `(its number, value)`, oldest first, each value larger than every later one: the front is
    /// the largest in the window (a monotonic queue, so the window costs a few entries).
    entries: VecDeque<(u64, f64)>,
    /// Values pushed so far; the next one's number.
    seen: u64,
    window: u64,
}

impl WindowMax {
    const fn new(window: u64) -> Self {
        Self {
            entries: VecDeque::new(),
            seen: 0,
            window,
        }
    }

    fn push(&mut self, value: f64) {
        let number = self.seen;
        self.seen += 1;
        while self.entries.back().is_some_and(|&(_, v)| v <= value) {
            self.entries.pop_back();
        }
        self.entries.push_back((number, value));
        while self
            .entries
            .front()
            .is_some_and(|&(n, _)| n + self.window <= number)
        {
            self.entries.pop_front();
        }
    }

    /// The largest value of the window, once at least `min` values were pushed.
    fn max_after(&self, min: u64) -> Option<f64> {
        let &(_, value) = self.entries.front()?;
        (self.seen >= min).then_some(value)
    }
}

/// What the parts of a link have shown of it: the latest gaps between progress events, how long
/// the latest answered parts took per byte, and when bytes last moved. Shared (`Rc`) by every
/// PUT it watches.
#[derive(Debug)]
pub struct StallDetector {
    gaps: RefCell<WindowMax>,
    /// Milliseconds per byte of answered parts, from their first progress event to the answer.
    done: RefCell<WindowMax>,
    /// When any watched part last moved.
    last_moved: Cell<Option<f64>>,
    /// The longest silence a part was given up after lately ([`PartWatch::gave_up`]).
    given_up: Cell<Option<GivenUp>>,
}

/// A silence a part was given up after: how long, when, and how many parts had been answered then
/// (remembered until [`DONE_WINDOW`] more are).
#[derive(Debug, Clone, Copy)]
struct GivenUp {
    silence_ms: f64,
    at_ms: f64,
    answered: u64,
}

impl Default for StallDetector {
    fn default() -> Self {
        Self {
            gaps: RefCell::new(WindowMax::new(GAP_WINDOW)),
            done: RefCell::new(WindowMax::new(DONE_WINDOW)),
            last_moved: Cell::new(None),
            given_up: Cell::new(None),
        }
    }
}

impl StallDetector {
    pub fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    /// Watches one PUT attempt of `len` bytes starting at `now`, under `timeout`.
    pub fn watch(self: &Rc<Self>, timeout: StallTimeout, len: u64, now: f64) -> Rc<PartWatch> {
        Rc::new(PartWatch {
            link: self.clone(),
            timeout,
            len,
            started_ms: now,
            first_ms: Cell::new(None),
            last_ms: Cell::new(now),
            sent: Cell::new(0),
            events: Cell::new(0),
        })
    }

    /// How long a part of `len` bytes may be silent: [`GAP_FACTOR`] times the longest gap of the
    /// window once [`MIN_GAPS`] were seen, else what answered parts allow for `len` bytes once
    /// [`MIN_DONE`] were; within the floor and the ceiling, the ceiling without either.
    ///
    /// A silence that began after a part was given up (see the module documentation) may also
    /// last [`GAP_FACTOR`] times the one it was given up after; one that began before (the whole
    /// link went quiet at once) is judged as it would have been.
    pub fn timeout_ms(&self, len: u64, silent_since: f64) -> f64 {
        let adaptive = match self.gaps.borrow().max_after(MIN_GAPS) {
            Some(gap) => Some(gap * GAP_FACTOR),
            None => self.answer_within_ms(len),
        };
        let remembered = self
            .remembered()
            .filter(|g| silent_since >= g.at_ms)
            .map(|g| g.silence_ms * GAP_FACTOR);
        adaptive.map_or(DEFAULT_STALL_TIMEOUT_MS, |ms| {
            ms.max(remembered.unwrap_or(0.0))
                .clamp(STALL_FLOOR_MS, DEFAULT_STALL_TIMEOUT_MS)
        })
    }

    /// The silence a part was given up after, while it is remembered.
    fn remembered(&self) -> Option<GivenUp> {
        let answered = self.done.borrow().seen;
        self.given_up
            .get()
            .filter(|g| answered < g.answered + DONE_WINDOW)
    }

    /// How long a part of `len` bytes may take from its first progress event to its answer,
    /// judged by the answered parts (at least the floor; no ceiling): `None` before [`MIN_DONE`]
    /// were answered.
    pub fn answer_within_ms(&self, len: u64) -> Option<f64> {
        let per_byte = self.done.borrow().max_after(MIN_DONE)?;
        Some((per_byte * len as f64 * DONE_FACTOR).max(STALL_FLOOR_MS))
    }

    fn moved(&self, now: f64, gap: Option<f64>) {
        self.last_moved
            .set(Some(self.last_moved.get().map_or(now, |t| t.max(now))));
        if let Some(gap) = gap {
            self.gaps.borrow_mut().push(gap);
        }
    }
}

/// One PUT attempt under watch: fed with its progress, asked when it counts as stalled.
pub struct PartWatch {
    link: Rc<StallDetector>,
    timeout: StallTimeout,
    len: u64,
    started_ms: f64,
    /// When the attempt first moved.
    first_ms: Cell<Option<f64>>,
    last_ms: Cell<f64>,
    sent: Cell<u64>,
    /// Progress events that moved bytes.
    events: Cell<u32>,
}

impl fmt::Debug for PartWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartWatch")
            .field("timeout", &self.timeout)
            .field("len", &self.len)
            .field("started_ms", &self.started_ms)
            .field("last_ms", &self.last_ms.get())
            .field("sent", &self.sent.get())
            .finish()
    }
}

impl PartWatch {
    /// The PUT has sent `sent` bytes in all, as of `now`; only growth counts as moving.
    pub fn progress(&self, sent: u64, now: f64) {
        let before = self.sent.get();
        if sent <= before {
            return;
        }
        // The wait for the first event is the connection's set-up (or the browser's queue), and
        // the gap after it the buffers filling: neither is a gap of the link.
        let events = self.events.get() + 1;
        self.events.set(events);
        let gap = (events > 2).then(|| (now - self.last_ms.get()).max(0.0));
        if self.first_ms.get().is_none() {
            self.first_ms.set(Some(now));
        }
        self.sent.set(sent);
        self.last_ms.set(now);
        self.link.moved(now, gap);
    }

    /// The store answered the PUT at `now` (it stored the part): how long it took per byte, from
    /// its first progress event (its start, when it reported none), counts for the link, if the
    /// part has at least [`MIN_RATED_LEN`] bytes.
    pub fn answered(&self, now: f64) {
        if self.len < MIN_RATED_LEN {
            return;
        }
        let from = self.first_ms.get().unwrap_or(self.started_ms);
        let per_byte = (now - from).max(0.0) / self.len as f64;
        self.link.done.borrow_mut().push(per_byte);
    }

    /// The watchdog gave the PUT up as stalled at `now`: its silence counts as a gap of the link,
    /// so a link whose progress merely comes in bursts is given that much longer from now on.
    pub fn gave_up(&self, now: f64) {
        if self.timeout != StallTimeout::Adaptive {
            return;
        }
        let silence = (now - self.last_ms.get()).max(0.0);
        let before = self.link.remembered().map_or(0.0, |g| g.silence_ms);
        self.link.given_up.set(Some(GivenUp {
            silence_ms: silence.max(before),
            at_ms: now,
            answered: self.link.done.borrow().seen,
        }));
    }

    /// The part's size.
    pub fn size(&self) -> u64 {
        self.len
    }

    /// Bytes this attempt has sent.
    pub fn sent(&self) -> u64 {
        self.sent.get()
    }

    /// When this attempt last moved (its start, before it has).
    pub fn last_ms(&self) -> f64 {
        self.last_ms.get()
    }

    /// When the part counts as stalled if nothing moves before, as things stand; `None` when it
    /// never does (stall detection off).
    pub fn deadline(&self) -> Option<f64> {
        let last = self.last_ms.get();
        match self.timeout {
            StallTimeout::Fixed(ms) if ms > 0.0 => Some(last + ms),
            StallTimeout::Fixed(_) => None,
            StallTimeout::Adaptive => {
                let sent = self.sent.get();
                let ceiling = DEFAULT_STALL_TIMEOUT_MS;
                let answer_within = self.link.answer_within_ms(self.len);
                Some(if sent == 0 {
                    let waited =
                        self.started_ms + answer_within.map_or(ceiling, |ms| ms.min(ceiling));
                    match self.link.last_moved.get() {
                        Some(moved) => waited.max(moved + self.link.timeout_ms(self.len, moved)),
                        None => waited,
                    }
                } else if sent >= self.len {
                    let waited = last + ceiling + (last - self.started_ms);
                    let first = self.first_ms.get().unwrap_or(self.started_ms);
                    answer_within.map_or(waited, |ms| waited.min(first + ms))
                } else {
                    last + self.link.timeout_ms(self.len, last)
                })
            }
        }
    }

    /// When to look at the part again, at the latest, if nothing moves: its [`deadline`], or
    /// sooner under the adaptive timeout, whose deadline can come closer (a part's first byte
    /// moves it from the ceiling to the link's timeout; other parts' gaps and the window's
    /// forgetting change that timeout): at least every [`STALL_FLOOR_MS`], so a deadline is met
    /// at most that late, and in practice on time.
    ///
    /// [`deadline`]: Self::deadline
    pub fn next_look(&self, now: f64) -> Option<f64> {
        let deadline = self.deadline()?;
        Some(match self.timeout {
            StallTimeout::Adaptive => deadline.min(now + STALL_FLOOR_MS),
            StallTimeout::Fixed(_) => deadline,
        })
    }

    /// Whether the part is stalled at `now`.
    pub fn is_stalled(&self, now: f64) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEN: u64 = 16 << 20;

    /// Feeds `watch` `count` events `every` ms apart from `from`, `step` bytes each; returns the
    /// time of the last.
    fn events(watch: &PartWatch, from: f64, every: f64, count: u32, step: u64) -> f64 {
        let mut t = from;
        for _ in 0..count {
            t += every;
            watch.progress(watch.sent() + step, t);
        }
        t
    }

    #[test]
    fn a_fast_link_gets_the_floor() {
        let link = StallDetector::new();
        let part = link.watch(StallTimeout::Adaptive, LEN, 0.0);
        let last = events(&part, 0.0, 50.0, 40, 64 << 10);
        assert_eq!(part.deadline(), Some(last + STALL_FLOOR_MS));
        assert!(!part.is_stalled(last + STALL_FLOOR_MS - 1.0));
        assert!(part.is_stalled(last + STALL_FLOOR_MS));
    }

    #[test]
    fn sparse_regular_gaps_lengthen_the_timeout() {
        let link = StallDetector::new();
        let part = link.watch(StallTimeout::Adaptive, LEN, 0.0);
        let last = events(&part, 0.0, 1_500.0, 10, 1 << 20);
        assert_eq!(part.deadline(), Some(last + 1_500.0 * GAP_FACTOR));
        // Gaps of 8 s hit the ceiling.
        let slow = StallDetector::new();
        let part = slow.watch(StallTimeout::Adaptive, LEN, 0.0);
        let last = events(&part, 0.0, 8_000.0, 3, 1 << 20);
        assert_eq!(part.deadline(), Some(last + DEFAULT_STALL_TIMEOUT_MS));
    }

    #[test]
    fn gaps_of_every_part_count_for_every_part() {
        let link = StallDetector::new();
        let slow = link.watch(StallTimeout::Adaptive, LEN, 0.0);
        let fast = link.watch(StallTimeout::Adaptive, LEN, 0.0);
        events(&slow, 0.0, 2_000.0, 4, 1);
        let last = events(&fast, 0.0, 50.0, 40, 1);
        assert_eq!(fast.deadline(), Some(last + 2_000.0 * GAP_FACTOR));
    }

    #[test]
    fn the_window_holds_the_latest_gaps_however_old() {
        let link = StallDetector::new();
        let part = link.watch(StallTimeout::Adaptive, LEN, 0.0);
        let last = events(&part, 0.0, 3_000.0, 10, 1); // gaps of 3 s
        assert_eq!(part.deadline(), Some(last + 3_000.0 * GAP_FACTOR));
        // An hour later, they still say what the link is.
        let other = link.watch(StallTimeout::Adaptive, LEN, last + 3_600_000.0);
        let t = events(&other, last + 3_600_000.0, 100.0, 3, 1);
        assert_eq!(other.deadline(), Some(t + 3_000.0 * GAP_FACTOR));
        // Until as many shorter ones came after them as the window holds.
        let t = events(&other, t, 100.0, GAP_WINDOW as u32 - 2, 1);
        assert_eq!(other.deadline(), Some(t + 3_000.0 * GAP_FACTOR));
        let t = events(&other, t, 100.0, 1, 1);
        assert_eq!(other.deadline(), Some(t + STALL_FLOOR_MS));
    }

    #[test]
    fn the_waits_for_the_first_and_second_events_are_not_gaps_nor_a_few_gaps_evidence() {
        let link = StallDetector::new();
        let part = link.watch(StallTimeout::Adaptive, LEN, 0.0);
        part.progress(1, 20_000.0); // set-up
        part.progress(2, 20_050.0); // the buffers filling
        assert_eq!(link.gaps.borrow().seen, 0);
        let t = events(&part, 20_050.0, 50.0, MIN_GAPS as u32 - 1, 1);
        assert_eq!(
            link.timeout_ms(LEN, f64::MAX),
            DEFAULT_STALL_TIMEOUT_MS,
            "too few gaps"
        );
        assert_eq!(part.deadline(), Some(t + DEFAULT_STALL_TIMEOUT_MS));
        events(&part, t, 50.0, 1, 1);
        assert_eq!(link.timeout_ms(LEN, f64::MAX), STALL_FLOOR_MS);
    }

    #[test]
    fn a_part_that_has_not_started_waits_while_the_link_moves() {
        let link = StallDetector::new();
        let busy = link.watch(StallTimeout::Adaptive, LEN, 0.0);
        let queued = link.watch(StallTimeout::Adaptive, LEN, 0.0);
        let last = events(&busy, 0.0, 100.0, 600, 1); // a minute of progress
        assert!(!queued.is_stalled(last));
        assert!(!queued.is_stalled(last + STALL_FLOOR_MS - 1.0));
        // The link went silent: what it waits behind is not moving either.
        assert!(queued.is_stalled(last + STALL_FLOOR_MS));
        // Alone, it gets the ceiling.
        let alone = StallDetector::new().watch(StallTimeout::Adaptive, LEN, 0.0);
        assert_eq!(alone.deadline(), Some(DEFAULT_STALL_TIMEOUT_MS));
    }

    #[test]
    fn a_part_with_every_byte_sent_waits_the_ceiling_and_its_sending_time_for_its_answer() {
        let link = StallDetector::new();
        let part = link.watch(StallTimeout::Adaptive, 1_000, 1_000.0);
        let last = events(&part, 1_000.0, 2_000.0, 11, 50);
        assert_eq!(last, 23_000.0);
        assert_eq!(part.deadline(), Some(last + 2_000.0 * GAP_FACTOR));
        part.progress(1_000, 25_000.0);
        // Sending took 24 s: the answer may take 30 s more than that.
        assert_eq!(part.deadline(), Some(25_000.0 + 30_000.0 + 24_000.0));
    }

    #[test]
    fn a_part_is_looked_at_again_before_its_first_byte_could_make_it_stall() {
        let link = StallDetector::new();
        let busy = link.watch(StallTimeout::Adaptive, LEN, 0.0);
        events(&busy, 0.0, 50.0, 10, 1);
        let part = link.watch(StallTimeout::Adaptive, LEN, 500.0);
        assert_eq!(part.deadline(), Some(30_500.0));
        assert_eq!(part.next_look(500.0), Some(500.0 + STALL_FLOOR_MS));
        part.progress(1, 600.0);
        assert_eq!(part.deadline(), Some(600.0 + STALL_FLOOR_MS));
        let fixed = link.watch(StallTimeout::Fixed(10_000.0), LEN, 0.0);
        assert_eq!(fixed.next_look(0.0), Some(10_000.0));
    }

    #[test]
    fn a_fixed_timeout_ignores_the_link_and_zero_never_stalls() {
        let link = StallDetector::new();
        let fixed = link.watch(StallTimeout::Fixed(10_000.0), LEN, 0.0);
        assert_eq!(
            fixed.deadline(),
            Some(10_000.0),
            "before the first byte too"
        );
        let last = events(&fixed, 0.0, 50.0, 40, 1);
        assert_eq!(fixed.deadline(), Some(last + 10_000.0));
        let off = link.watch(StallTimeout::Fixed(0.0), LEN, 0.0);
        assert_eq!(off.deadline(), None);
        assert!(!off.is_stalled(1e12));
    }

    #[test]
    fn the_window_keeps_only_what_can_be_the_longest() {
        let link = StallDetector::new();
        let part = link.watch(StallTimeout::Adaptive, LEN, 0.0);
        events(&part, 0.0, 50.0, 1_000, 1);
        assert_eq!(
            link.gaps.borrow().entries.len(),
            1,
            "equal gaps replace each other"
        );
        part.progress(part.sent() + 1, 50_000.0 + 2_000.0);
        part.progress(part.sent() + 1, 52_000.0 + 1_000.0);
        let gaps: Vec<f64> = link.gaps.borrow().entries.iter().map(|g| g.1).collect();
        assert_eq!(gaps, [2_000.0, 1_000.0]);
    }

    /// Answers `count` parts of `len` bytes, each taking `took` ms from its first event.
    fn answer_parts(link: &Rc<StallDetector>, count: u32, len: u64, took: f64) {
        for _ in 0..count {
            let part = link.watch(StallTimeout::Adaptive, len, 0.0);
            part.progress(len, 0.0);
            part.answered(took);
        }
    }

    #[test]
    fn a_part_wholly_sent_awaits_its_answer_as_long_as_answered_parts_allow() {
        // WebKit on loopback: the socket buffers take the part, so it looks wholly sent.
        let link = StallDetector::new();
        answer_parts(&link, MIN_DONE as u32, LEN, 2_000.0);
        let part = link.watch(StallTimeout::Adaptive, LEN, 10_000.0);
        part.progress(1 << 20, 10_100.0);
        part.progress(LEN, 10_200.0);
        assert_eq!(part.deadline(), Some(10_100.0 + 2_000.0 * DONE_FACTOR));
        // A part half the size gets half the time, but never less than the floor.
        let half = link.watch(StallTimeout::Adaptive, LEN / 2, 0.0);
        half.progress(LEN / 2, 100.0);
        assert_eq!(half.deadline(), Some(100.0 + 1_000.0 * DONE_FACTOR));
        let small = link.watch(StallTimeout::Adaptive, LEN / 64, 0.0);
        small.progress(LEN / 64, 100.0);
        assert_eq!(small.deadline(), Some(100.0 + STALL_FLOOR_MS));
    }

    #[test]
    fn on_a_slow_link_answered_parts_allow_more_than_the_rule_for_a_wholly_sent_part() {
        // 1 MB/s shared by six PUTs: parts of 16 MiB take minutes.
        let link = StallDetector::new();
        answer_parts(&link, MIN_DONE as u32, LEN, 100_000.0);
        let part = link.watch(StallTimeout::Adaptive, LEN, 0.0);
        part.progress(1, 100.0);
        part.progress(LEN, 20_000.0);
        assert_eq!(part.deadline(), Some(20_000.0 + 30_000.0 + 20_000.0));
    }

    #[test]
    fn with_too_few_gaps_answered_parts_set_the_silence_a_part_may_keep() {
        // Firefox on loopback: one or two progress events per part, so gaps are few.
        let link = StallDetector::new();
        answer_parts(&link, MIN_DONE as u32 - 1, LEN, 300.0);
        let part = link.watch(StallTimeout::Adaptive, LEN, 0.0);
        part.progress(1 << 20, 50.0);
        assert_eq!(
            part.deadline(),
            Some(50.0 + DEFAULT_STALL_TIMEOUT_MS),
            "too few answers"
        );
        answer_parts(&link, 1, LEN, 300.0);
        assert_eq!(part.deadline(), Some(50.0 + STALL_FLOOR_MS));
        // Slow answers: four times the slowest, up to the ceiling.
        answer_parts(&link, 1, LEN, 5_000.0);
        assert_eq!(part.deadline(), Some(50.0 + 5_000.0 * DONE_FACTOR));
        answer_parts(&link, 1, LEN, 60_000.0);
        assert_eq!(part.deadline(), Some(50.0 + DEFAULT_STALL_TIMEOUT_MS));
        // Once there are enough gaps, they decide.
        let t = events(&part, 50.0, 50.0, MIN_GAPS as u32 + 2, 1);
        assert_eq!(part.deadline(), Some(t + STALL_FLOOR_MS));
    }

    #[test]
    fn a_part_that_never_moved_waits_what_answered_parts_allow_while_the_link_is_silent() {
        let link = StallDetector::new();
        answer_parts(&link, MIN_DONE as u32, LEN, 500.0);
        let held = link.watch(StallTimeout::Adaptive, LEN, 1_000.0);
        assert_eq!(held.deadline(), Some(1_000.0 + STALL_FLOOR_MS));
        // While other parts move, it may be queued behind them: it waits for them.
        let busy = link.watch(StallTimeout::Adaptive, LEN, 1_000.0);
        let last = events(&busy, 1_000.0, 100.0, 100, 1);
        assert_eq!(held.deadline(), Some(last + STALL_FLOOR_MS));
    }

    #[test]
    fn answers_of_parts_under_a_mib_do_not_count() {
        let link = StallDetector::new();
        answer_parts(&link, MIN_DONE as u32, MIN_RATED_LEN - 1, 200.0);
        assert_eq!(link.answer_within_ms(LEN), None);
        answer_parts(&link, MIN_DONE as u32, MIN_RATED_LEN, 200.0);
        assert!(link.answer_within_ms(LEN).is_some());
    }

    #[test]
    fn the_answer_window_forgets_slow_parts_after_as_many_quick_ones() {
        let link = StallDetector::new();
        answer_parts(&link, 1, LEN, 6_000.0);
        answer_parts(&link, DONE_WINDOW as u32 - 1, LEN, 100.0);
        assert_eq!(link.answer_within_ms(LEN), Some(6_000.0 * DONE_FACTOR));
        answer_parts(&link, 1, LEN, 100.0);
        assert_eq!(link.answer_within_ms(LEN), Some(STALL_FLOOR_MS));
    }

    #[test]
    fn a_silence_given_up_after_lengthens_every_part_s_timeout() {
        // WebKit on a slow link: a burst of events as the socket buffers fill, then silence.
        let link = StallDetector::new();
        let part = link.watch(StallTimeout::Adaptive, LEN, 0.0);
        let last = events(&part, 0.0, 5.0, 500, 8 << 10);
        let stalled_at = last + STALL_FLOOR_MS;
        assert!(part.is_stalled(stalled_at));
        part.gave_up(stalled_at);
        // The same silence no longer stalls the part sent again.
        let again = link.watch(StallTimeout::Adaptive, LEN, stalled_at);
        let last = events(&again, stalled_at, 5.0, 500, 8 << 10);
        assert_eq!(again.deadline(), Some(last + STALL_FLOOR_MS * GAP_FACTOR));
        // A fixed timeout teaches the link nothing.
        let fixed = link.watch(StallTimeout::Fixed(1_000.0), LEN, 0.0);
        fixed.gave_up(1e9);
        assert_eq!(link.timeout_ms(LEN, f64::MAX), STALL_FLOOR_MS * GAP_FACTOR);
        // Remembered until as many parts as the answer window holds were answered since.
        answer_parts(&link, DONE_WINDOW as u32 - 1, LEN, 100.0);
        assert_eq!(link.timeout_ms(LEN, f64::MAX), STALL_FLOOR_MS * GAP_FACTOR);
        answer_parts(&link, 1, LEN, 100.0);
        assert_eq!(link.timeout_ms(LEN, f64::MAX), STALL_FLOOR_MS);
    }
}
