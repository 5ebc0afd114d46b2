//! The default stall timeout adapts to the link (`engine/stall.rs`): a part that stops on a fast
//! link is sent again within seconds, while sparse but regular progress, and a part waiting for
//! its connection behind others, are left alone. An explicit timeout keeps its fixed meaning.

use std::collections::BTreeMap;

use s3_direct::engine::stall::{GAP_FACTOR, STALL_FLOOR_MS};
use s3_direct::engine::{
    Clock, DEFAULT_STALL_TIMEOUT_MS, RetryPolicy, StallDetector, StallTimeout, UploadOptions,
};
use s3_direct_protocol::limits::MIB;

use super::fakes::{Harness, Script};
use super::{options, size_of};

/// The first retry's delay with the harness's jitter: 3/4 of the default 1 s.
const FIRST_RETRY_MS: f64 = 750.0;

/// Bytes each part has sent in its current attempt, as the tests report them.
#[derive(Default)]
struct Sent(BTreeMap<u32, u64>);

impl Sent {
    /// `events` progress events `every` ms apart on each of `parts`, `step` bytes each.
    fn moving(&mut self, h: &mut Harness, parts: &[u32], every: f64, events: u32, step: u64) {
        for _ in 0..events {
            h.advance(every);
            for &part in parts {
                let sent = self.0.entry(part).or_default();
                *sent += step;
                h.sent(part, *sent);
            }
        }
    }
}

fn puts_of(h: &Harness, part: u32) -> usize {
    h.sink.log().iter().filter(|p| p.part == part).count()
}

/// Advances the clock to `t` (ms on the harness's clock).
fn advance_to(h: &mut Harness, t: f64) {
    let now = h.clock.now_ms();
    assert!(t >= now, "{t} is in the past ({now})");
    h.advance(t - now);
}

#[test]
fn a_part_that_stops_midway_on_a_fast_link_is_sent_again_within_the_floor() {
    let mut h = Harness::start(size_of(3), options(2), Script::default());
    h.run();
    assert_eq!(h.pending(), [1, 2]);
    let mut sent = Sent::default();
    // A fast link: an event every 50 ms on each part.
    sent.moving(&mut h, &[1, 2], 50.0, 20, 64 << 10);
    // Part 1 stops; part 2 goes on and is stored.
    let stall = h.clock.now_ms();
    sent.moving(&mut h, &[2], 50.0, 40, 64 << 10);
    h.store(2);
    advance_to(&mut h, stall + STALL_FLOOR_MS - 1.0);
    assert!(
        h.pending().contains(&1),
        "part 1 was silent for less than the floor"
    );
    assert!(h.sink.dropped().is_empty());
    h.advance(1.0);
    assert_eq!(h.sink.dropped(), [1], "part 1 was aborted after the floor");
    h.advance(FIRST_RETRY_MS);
    assert_eq!(puts_of(&h, 1), 2, "and sent again");
    assert!(
        h.clock.now_ms() - stall <= 5_000.0,
        "within 5 s of the stall"
    );
    h.finish(|pending| pending[0]).unwrap();
}

#[test]
fn sparse_but_regular_progress_is_not_a_stall() {
    // About 1 MB/s shared by two parts: an event every 6 s per part (longer than the floor),
    // 3 MiB at a time, the two parts' events interleaved.
    let mut h = Harness::start(size_of(4), options(2), Script::default());
    h.run();
    let mut sent = Sent::default();
    for round in 0..2u32 {
        let parts = [2 * round + 1, 2 * round + 2];
        for _ in 0..2 {
            h.advance(3_000.0);
            let first = sent.0.entry(parts[0]).or_default();
            *first += 3 * MIB / 2;
            h.sent(parts[0], *first);
            h.advance(3_000.0);
            let second = sent.0.entry(parts[1]).or_default();
            *second += 3 * MIB / 2;
            h.sent(parts[1], *second);
        }
        h.advance(6_000.0);
        for part in parts {
            h.sent(part, 5 * MIB);
            h.store(part);
        }
    }
    h.result().unwrap().unwrap();
    assert!(h.sink.dropped().is_empty(), "no part was aborted");
    assert_eq!(h.sink.log().len(), 4, "each part was sent once");
}

#[test]
fn gaps_a_slow_link_showed_keep_a_later_quiet_spell_from_counting_as_a_stall() {
    // Gaps of 5 s seen, then both parts are quiet: a stall only after several times 5 s.
    let mut h = Harness::start(size_of(2), options(2), Script::default());
    h.run();
    let mut sent = Sent::default();
    sent.moving(&mut h, &[1, 2], 5_000.0, 6, MIB / 2);
    let quiet = 5_000.0 * GAP_FACTOR;
    assert!(quiet > 3.0 * STALL_FLOOR_MS);
    h.advance(quiet - 1.0);
    assert_eq!(h.pending(), [1, 2]);
    assert!(h.sink.dropped().is_empty());
    h.advance(1.0);
    assert_eq!(
        h.sink.dropped(),
        [1, 2],
        "a silence that long is a stall here"
    );
}

#[test]
fn a_part_queued_behind_others_is_not_a_stall_while_they_move() {
    // The browser holds part 3's request behind its six connections to the store, which parts
    // 1 and 2 keep busy (one connection each, the others taken by other uploads).
    let mut h = Harness::start(size_of(3), options(3), Script::default());
    h.run();
    assert_eq!(h.pending(), [1, 2, 3]);
    let mut sent = Sent::default();
    // A minute of steady progress on parts 1 and 2, nothing on part 3.
    sent.moving(&mut h, &[1, 2], 500.0, 120, 16 << 10);
    assert_eq!(h.pending(), [1, 2, 3]);
    assert!(
        h.sink.dropped().is_empty(),
        "part 3 is waiting, not stalled"
    );
    // Once the link is silent, a part that never sent a byte is stalled like any other.
    let silent = h.clock.now_ms();
    advance_to(&mut h, silent + STALL_FLOOR_MS);
    assert_eq!(h.sink.dropped(), [1, 2, 3]);
}

#[test]
fn a_part_with_nothing_sent_and_no_one_moving_waits_the_ceiling() {
    let mut h = Harness::start(size_of(1), options(1), Script::default());
    h.run();
    h.advance(DEFAULT_STALL_TIMEOUT_MS - 1.0);
    assert_eq!(h.pending(), [1], "setting up a connection may take a while");
    h.advance(1.0);
    assert_eq!(h.sink.dropped(), [1]);
}

#[test]
fn an_explicit_stall_timeout_is_fixed_whatever_the_link() {
    let fixed = |ms| UploadOptions {
        stall_timeout: StallTimeout::Fixed(ms),
        ..options(2)
    };
    let mut h = Harness::start(size_of(2), fixed(10_000.0), Script::default());
    h.run();
    let mut sent = Sent::default();
    sent.moving(&mut h, &[1, 2], 50.0, 20, 64 << 10);
    let stall = h.clock.now_ms();
    advance_to(&mut h, stall + 9_999.0);
    assert_eq!(h.pending(), [1, 2], "a fast link does not shorten it");
    h.advance(1.0);
    assert_eq!(h.sink.dropped(), [1, 2]);
    h.advance(FIRST_RETRY_MS);
    let e = h.finish(|pending| pending[0]);
    assert!(e.is_ok(), "{e:?}");

    // 0: never, even after an hour of silence.
    let mut h = Harness::start(size_of(1), fixed(0.0), Script::default());
    h.run();
    h.sent(1, MIB);
    h.advance(3_600_000.0);
    assert_eq!(h.pending(), [1]);
    assert!(h.clock.timers().is_empty(), "no watchdog timer");
}

#[test]
fn a_stalled_part_that_gives_up_names_how_long_it_was_silent() {
    let options = UploadOptions {
        retry: RetryPolicy {
            retries: 0,
            ..Default::default()
        },
        ..options(1)
    };
    let mut h = Harness::start(size_of(1), options, Script::default());
    h.run();
    let mut sent = Sent::default();
    sent.moving(&mut h, &[1], 50.0, 10, 64 << 10);
    h.advance(STALL_FLOOR_MS);
    let e = h.error();
    assert_eq!((e.code(), e.part()), ("stalled", Some(1)));
    assert_eq!(e.to_string(), "part 1 of 1: no bytes moved for 4 s");
}

#[test]
fn a_part_waiting_behind_another_uploads_requests_is_not_a_stall() {
    // Two uploads of one queue share what they see of the link: upload A's part moves for a
    // minute while upload B's part, queued by the browser behind A's requests, sends nothing.
    let detector = StallDetector::new();
    let mut a = Harness::sharing_stalls(size_of(1), options(1), detector.clone());
    let mut b = Harness::sharing_stalls(size_of(1), options(1), detector);
    // An upload judging stalls on its own knows nothing of A.
    let mut alone = Harness::start(size_of(1), options(1), Script::default());
    for h in [&mut a, &mut b, &mut alone] {
        h.run();
    }
    let mut sent = 0;
    for _ in 0..120 {
        for h in [&mut a, &mut b, &mut alone] {
            h.advance(500.0);
        }
        sent += 16 << 10;
        a.sent(1, sent);
    }
    assert_eq!(b.pending(), [1], "waiting behind A, not stalled");
    assert!(b.sink.dropped().is_empty());
    assert_eq!(alone.sink.dropped(), [1], "stalled after 30 s");
}
