//! Uploads that survive the real world: the retry policy, re-signing expired URLs, the stall
//! watchdog, offline/online, pause/resume, and a signing server that restarts. Time is the fake
//! clock: a backoff is a timer the test sees in `clock.timers()` and fires with `advance`.

use s3_direct::engine::{ApiError, Phase, PutError, RetryPolicy, StallTimeout, UploadOptions};
use s3_direct_protocol::limits::MIB;

use super::fakes::{Call, Gate, Harness, Script, signed_url};
use super::{PART, options, size_of};

/// Options with `retries` retries, 1 s base delay, 8 s cap and no stall watchdog (so the only
/// timers are backoffs).
fn retrying(concurrency: usize, retries: u32) -> UploadOptions {
    UploadOptions {
        retry: RetryPolicy {
            retries,
            base_delay_ms: 1000.0,
            max_delay_ms: 8000.0,
        },
        stall_timeout: StallTimeout::Fixed(0.0),
        ..options(concurrency)
    }
}

/// [`retrying`] with a 10 s stall timeout.
fn watched(concurrency: usize, retries: u32) -> UploadOptions {
    UploadOptions {
        stall_timeout: StallTimeout::Fixed(10_000.0),
        ..retrying(concurrency, retries)
    }
}

fn puts_of(h: &Harness, part: u32) -> Vec<String> {
    h.sink
        .log()
        .into_iter()
        .filter(|p| p.part == part)
        .map(|p| p.url)
        .collect()
}

fn assert_progress_never_decreases(h: &Harness) {
    let all = h.progress();
    for pair in all.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(b.bytes_sent >= a.bytes_sent, "{a:?} -> {b:?}");
        assert!(b.bytes_confirmed >= a.bytes_confirmed, "{a:?} -> {b:?}");
        assert!(b.parts_done >= a.parts_done, "{a:?} -> {b:?}");
    }
}

#[test]
fn every_retry_class_waits_a_backoff_then_puts_the_same_url_again() {
    let body = |code: &str| format!("<Error><Code>{code}</Code></Error>");
    let failures = [
        PutError::Network("connection reset".into()),
        PutError::status(500, body("InternalError")),
        PutError::status(503, body("SlowDown")),
        PutError::status(502, ""),
        PutError::status(408, ""),
        PutError::status(429, ""),
        PutError::status(400, body("RequestTimeout")),
    ];
    for failure in failures {
        let mut h = Harness::start(size_of(3), retrying(3, 3), Script::default());
        h.run();
        h.reply(2, Err(failure.clone()));
        assert_eq!(h.pending(), [1, 3], "{failure:?}: part 2 waits");
        // Middle jitter: 3/4 of the 1 s base.
        assert_eq!(h.clock.timers(), [750.0], "{failure:?}");
        h.advance(749.0);
        assert_eq!(h.pending(), [1, 3]);
        h.advance(1.0);
        assert_eq!(h.pending(), [1, 2, 3], "{failure:?}: retried");
        assert_eq!(puts_of(&h, 2), vec![signed_url(2, 0, None); 2], "same URL");
        h.finish(|p| p[0]).unwrap();
        assert_eq!(h.signer.sign_calls().len(), 1, "{failure:?}: no re-sign");
        assert_eq!(h.signer.aborts(), 0);
    }
}

#[test]
fn delays_grow_honour_retry_after_and_reset_once_the_part_makes_progress() {
    let mut h = Harness::start(size_of(1), retrying(1, 10), Script::default());
    h.run();
    h.reply(1, Err(PutError::Network("reset".into())));
    assert_eq!(h.clock.timers(), [750.0]);
    h.advance(750.0);
    h.reply(1, Err(PutError::Network("reset".into())));
    assert_eq!(h.clock.timers(), [1500.0], "doubled");
    h.advance(1500.0);
    h.reply(
        1,
        Err(PutError::Status {
            status: 503,
            body: "<Error><Code>SlowDown</Code></Error>".into(),
            retry_after_ms: Some(20_000),
        }),
    );
    assert_eq!(h.clock.timers(), [20_000.0], "Retry-After is a floor");
    h.advance(20_000.0);
    // This attempt gets further into the part than any before: the count starts over.
    h.sent(1, MIB);
    h.reply(1, Err(PutError::Network("reset".into())));
    assert_eq!(h.clock.timers(), [750.0], "reset by progress");
    h.advance(750.0);
    // The same bytes again are not progress.
    h.sent(1, MIB);
    h.reply(1, Err(PutError::Network("reset".into())));
    assert_eq!(h.clock.timers(), [1500.0]);
    h.advance(1500.0);
    h.finish(|p| p[0]).unwrap();
    assert_progress_never_decreases(&h);
}

#[test]
fn an_exhausted_budget_names_the_part_and_cause_and_keeps_the_upload() {
    let mut h = Harness::start(size_of(3), retrying(3, 2), Script::default());
    h.run();
    h.store(1);
    for _ in 0..2 {
        h.refuse(3, 503, "SlowDown");
        let wait = h.clock.timers()[0];
        h.advance(wait);
    }
    assert!(h.result().is_none(), "two retries are allowed");
    h.refuse(3, 503, "SlowDown");
    let e = h.error();
    assert_eq!(
        (e.code(), e.status(), e.part()),
        ("http_error", Some(503), Some(3))
    );
    assert_eq!(
        e.to_string(),
        "part 3 of 3: PUT returned 503 (SlowDown); gave up after 3 attempts, the multipart \
         upload is kept so it can be resumed"
    );
    assert_eq!(h.signer.aborts(), 0);
    assert_eq!(h.signer.completed(), None);
    assert!(h.pending().is_empty(), "the other PUTs are stopped");
}

#[test]
fn network_errors_exhaust_the_budget_too() {
    let mut h = Harness::start(size_of(2), retrying(2, 0), Script::default());
    h.run();
    h.reply(2, Err(PutError::Network("connection reset".into())));
    let e = h.error();
    assert_eq!((e.code(), e.part()), ("network_error", Some(2)));
    assert!(
        e.to_string()
            .starts_with("part 2 of 2: PUT failed before the store answered (connection reset)"),
        "{e}"
    );
}

#[test]
fn a_file_changed_since_it_was_chosen_fails_at_once_and_keeps_the_upload() {
    // A budget of 8 retries: none may be spent, no attempt can read the file again.
    let mut h = Harness::start(size_of(3), retrying(2, 8), Script::default());
    h.run();
    h.store(1);
    h.reply(
        2,
        Err(PutError::Unreadable(
            "NotReadableError: the file could not be read".into(),
        )),
    );
    let e = h.error();
    assert_eq!((e.code(), e.part()), ("file_unreadable", Some(2)));
    assert!(
        e.to_string()
            .contains("changed, moved or deleted since it was chosen"),
        "{e}"
    );
    assert_eq!(puts_of(&h, 2).len(), 1, "not retried");
    assert!(h.clock.timers().is_empty(), "no backoff");
    assert_eq!(
        h.signer.aborts(),
        0,
        "kept for a resume once the file is chosen again"
    );
    assert_eq!(h.signer.completed(), None);
}

#[test]
fn an_expired_url_is_re_signed_at_once_without_counting_as_a_failure() {
    // No retries allowed at all: re-signing must not use any.
    let mut h = Harness::start(size_of(4), retrying(2, 0), Script::default());
    h.run();
    assert_eq!(h.pending(), [1, 2]);
    h.refuse(2, 403, "AccessDenied");
    assert!(h.clock.timers().is_empty(), "no backoff");
    assert_eq!(h.signer.sign_calls(), [vec![1, 2, 3, 4], vec![2]]);
    assert_eq!(
        h.pending(),
        [1, 3],
        "the free slot went to a part with a URL"
    );
    h.finish(|p| p[0]).unwrap();
    assert_eq!(
        puts_of(&h, 2),
        [signed_url(2, 0, None), signed_url(2, 1, None)]
    );
    assert_eq!(h.signer.aborts(), 0);
}

#[test]
fn a_store_refusing_fresh_urls_too_fails_after_a_few_re_signs() {
    let mut h = Harness::start(size_of(1), retrying(1, 5), Script::default());
    h.run();
    for _ in 0..=3 {
        h.refuse(1, 403, "AccessDenied");
    }
    let e = h.error();
    assert_eq!(
        (e.code(), e.status(), e.part()),
        ("http_error", Some(403), Some(1))
    );
    assert!(e.to_string().contains("gave up after 4 attempts"), "{e}");
    assert_eq!(h.signer.sign_calls().len(), 4);
}

#[test]
fn any_refusal_of_a_url_past_its_lifetime_is_expiry() {
    // Garage answers expiry with 400, not 403; the URL's own lifetime decides.
    let script = Script {
        url_expires: Some(300),
        ..Script::default()
    };
    let mut h = Harness::start(size_of(2), retrying(1, 0), script);
    h.run();
    h.clock.advance(301_000.0);
    h.refuse(1, 400, "AuthorizationQueryParametersError");
    assert_eq!(h.signer.sign_calls(), [vec![1, 2], vec![1, 2]]);
    assert_eq!(puts_of(&h, 1)[1], signed_url(1, 1, Some(300)));
    h.finish(|p| p[0]).unwrap();
}

#[test]
fn a_url_near_its_expiry_is_re_signed_before_it_is_used() {
    let script = Script {
        url_expires: Some(900),
        ..Script::default()
    };
    let mut h = Harness::start(size_of(3), retrying(1, 0), script);
    h.run();
    assert_eq!(h.signer.sign_calls(), [vec![1, 2]]);
    // Part 1 takes 14 minutes; part 2's URL then has under the 60 s margin left.
    h.clock.advance(841_000.0);
    h.store(1);
    assert_eq!(h.signer.sign_calls(), [vec![1, 2], vec![2, 3]]);
    assert_eq!(puts_of(&h, 2), [signed_url(2, 1, Some(900))]);
    h.finish(|p| p[0]).unwrap();
}

#[test]
fn a_network_error_on_an_expired_url_retries_with_a_fresh_one() {
    // Stores that send no CORS headers with errors make an expiry look like a network error.
    let script = Script {
        url_expires: Some(300),
        ..Script::default()
    };
    let mut h = Harness::start(size_of(1), retrying(1, 3), script);
    h.run();
    h.clock.advance(300_000.0);
    h.reply(
        1,
        Err(PutError::Network(
            "the request failed or CORS refused it".into(),
        )),
    );
    h.advance(h.clock.timers()[0]);
    assert_eq!(h.signer.sign_calls(), [vec![1], vec![1]]);
    assert_eq!(puts_of(&h, 1)[1], signed_url(1, 1, Some(300)));
    h.finish(|p| p[0]).unwrap();
}

#[test]
fn a_restarting_signing_server_does_not_fail_the_upload() {
    let down = || ApiError::Network("connection refused".into());
    let bad_gateway = ApiError::Status {
        status: 502,
        code: None,
        message: String::new(),
        retry_after_ms: None,
    };
    let script = Script {
        create_errors: vec![down(), bad_gateway.clone()],
        sign_errors: vec![(0, down()), (2, bad_gateway.clone()), (3, down())],
        complete_errors: vec![down()],
        ..Script::default()
    };
    let mut h = Harness::start(size_of(6), retrying(2, 2), script);
    h.run();
    assert_eq!(h.clock.timers(), [750.0], "create is retried");
    h.advance(750.0);
    assert_eq!(h.clock.timers(), [1500.0]);
    h.advance(1500.0);
    assert_eq!(h.clock.timers(), [750.0], "sign is retried");
    h.advance(750.0);
    assert_eq!(h.pending(), [1, 2]);
    h.store(1);
    h.store(2);
    h.store(3);
    // Signing 5..6 fails twice, then works.
    h.advance(750.0);
    h.advance(1500.0);
    h.store(4);
    h.store(5);
    h.store(6);
    assert!(h.result().is_none(), "complete is retried");
    h.advance(750.0);
    h.result().unwrap().unwrap();
    let signs = h.signer.sign_calls();
    assert_eq!(signs.len(), 5, "{signs:?}");
    assert_eq!(h.signer.aborts(), 0);
}

#[test]
fn a_signing_server_that_stays_down_fails_naming_the_call() {
    let down = || ApiError::Network("connection refused".into());
    let script = Script {
        sign_errors: vec![(0, down()), (1, down()), (2, down())],
        ..Script::default()
    };
    let mut h = Harness::start(size_of(2), retrying(2, 2), script);
    h.run();
    h.advance(750.0);
    h.advance(1500.0);
    let e = h.error();
    assert_eq!(e.code(), "sign_failed");
    assert_eq!(
        e.to_string(),
        "signing parts 1 to 2 failed: the signing server could not be reached (connection refused)"
    );
    assert_eq!(h.signer.aborts(), 0);
}

#[test]
fn a_part_whose_bytes_stop_moving_is_aborted_and_retried() {
    let mut h = Harness::start(size_of(2), watched(2, 3), Script::default());
    h.run();
    h.store(2);
    h.advance(6000.0);
    h.sent(1, MIB);
    h.advance(9999.0);
    assert_eq!(h.pending(), [1], "part 1 moved 9.999 s ago");
    h.advance(1.0);
    assert!(h.pending().is_empty(), "part 1 stalled for 10 s");
    assert_eq!(h.sink.dropped(), [1], "its request was aborted");
    assert_eq!(h.clock.timers(), [750.0]);
    h.advance(750.0);
    assert_eq!(h.pending(), [1]);
    let last = *h.progress().last().unwrap();
    assert!(last.bytes_sent >= MIB + PART - 1234, "{last:?}");
    h.store(1);
    h.result().unwrap().unwrap();
    assert_progress_never_decreases(&h);
}

#[test]
fn a_late_timer_after_sleep_still_catches_the_stall() {
    let mut h = Harness::start(size_of(1), watched(1, 3), Script::default());
    h.run();
    // The laptop sleeps for an hour; the watchdog's timer fires once, late.
    h.advance(3_600_000.0);
    assert!(h.pending().is_empty());
    assert_eq!(h.sink.dropped(), [1]);
    h.advance(750.0);
    h.store(1);
    h.result().unwrap().unwrap();
}

#[test]
fn a_stall_that_never_ends_fails_naming_it() {
    let mut h = Harness::start(size_of(1), watched(1, 1), Script::default());
    h.run();
    h.advance(10_000.0);
    h.advance(750.0);
    h.advance(10_000.0);
    let e = h.error();
    assert_eq!((e.code(), e.part()), ("stalled", Some(1)));
    assert_eq!(
        e.to_string(),
        "part 1 of 1: no bytes moved for 10 s; gave up after 2 attempts, the multipart upload \
         is kept so it can be resumed"
    );
}

#[test]
fn going_offline_pauses_without_spending_retries_and_online_resumes() {
    let mut h = Harness::start(size_of(6), retrying(2, 0), Script::default());
    h.run();
    h.store(1);
    h.sent(2, MIB);
    // The PUTs fail as the network goes; with no retries allowed, only offline can save them.
    h.network.set_online(false);
    h.reply(3, Err(PutError::Network("offline".into())));
    assert!(h.pending().is_empty(), "in-flight PUTs are aborted");
    assert_eq!(h.sink.dropped(), [2]);
    assert_eq!(h.progress().last().unwrap().phase, Phase::Offline);
    let puts = h.sink.log().len();
    h.advance(60_000.0);
    assert_eq!(h.sink.log().len(), puts, "nothing is sent while offline");
    assert!(h.result().is_none());

    h.set_online(true);
    assert_eq!(h.pending(), [2, 3]);
    assert_eq!(h.progress().last().unwrap().phase, Phase::Uploading);
    h.finish(|p| p[0]).unwrap();
    assert_eq!(h.sink.stored(), [1, 2, 3, 4, 5, 6]);
    assert_progress_never_decreases(&h);
}

#[test]
fn a_signing_call_failing_while_offline_waits_for_the_network() {
    let script = Script {
        hold: vec![Gate::Sign],
        sign_errors: vec![(0, ApiError::Network("offline".into()))],
        ..Script::default()
    };
    let mut h = Harness::start(size_of(2), retrying(2, 0), script);
    h.network.set_online(false);
    h.run();
    assert!(h.signer.calls().is_empty(), "create waits for the network");
    h.set_online(true);
    h.network.set_online(false);
    h.release(Gate::Sign);
    assert!(
        h.result().is_none(),
        "a failure while offline does not count"
    );
    h.set_online(true);
    h.release(Gate::Sign);
    h.finish(|p| p[0]).unwrap();
    assert_eq!(h.signer.sign_calls(), [vec![1, 2], vec![1, 2]]);
}

#[test]
fn pause_aborts_in_flight_parts_and_resume_continues_from_the_stored_ones() {
    let mut h = Harness::start(size_of(8), retrying(3, 3), Script::default());
    h.run();
    h.store(1);
    h.store(2);
    h.sent(3, MIB);
    h.pause();
    assert!(h.pending().is_empty());
    assert_eq!(h.sink.dropped(), [3, 4, 5]);
    assert_eq!(h.progress().last().unwrap().phase, Phase::Paused);
    let puts = h.sink.log().len();
    h.advance(600_000.0);
    assert_eq!(h.sink.log().len(), puts, "paused");

    h.resume();
    assert_eq!(h.pending(), [3, 4, 5]);
    h.finish(|p| p[0]).unwrap();
    let mut counts = [0usize; 9];
    for put in h.sink.log() {
        counts[put.part as usize] += 1;
    }
    assert_eq!(
        counts[1..],
        [1, 1, 2, 2, 2, 1, 1, 1],
        "stored parts are not sent again"
    );
    assert_progress_never_decreases(&h);
    assert_eq!(h.signer.aborts(), 0);
}

#[test]
fn cancel_while_paused_aborts_the_upload() {
    let mut h = Harness::start(size_of(4), options(2), Script::default());
    h.run();
    h.store(1);
    h.pause();
    h.cancel();
    assert_eq!(h.error().code(), "aborted");
    assert_eq!(h.signer.aborts(), 1);
}

#[test]
fn pausing_before_create_waits() {
    let mut h = Harness::start(size_of(2), options(2), Script::default());
    h.control.pause();
    h.run();
    assert!(h.signer.calls().is_empty());
    h.resume();
    assert!(matches!(h.signer.calls()[0], Call::Create(_)));
    h.finish(|p| p[0]).unwrap();
}

#[test]
fn a_rate_limited_signing_call_waits_as_long_as_the_server_asks() {
    let limited = ApiError::Status {
        status: 429,
        code: Some("rate_limited".into()),
        message: String::new(),
        retry_after_ms: Some(5000),
    };
    let script = Script {
        create_errors: vec![limited.clone()],
        sign_errors: vec![(0, limited)],
        ..Script::default()
    };
    let mut h = Harness::start(size_of(2), retrying(2, 2), script);
    h.run();
    assert_eq!(h.clock.timers(), [5000.0], "create waits for Retry-After");
    h.advance(5000.0);
    assert_eq!(h.clock.timers(), [5000.0], "so does signing");
    h.advance(5000.0);
    h.finish(|p| p[0]).unwrap();
}

fn invalid_part() -> ApiError {
    ApiError::Status {
        status: 400,
        code: Some("invalid_part".into()),
        message: "one or more of the specified parts could not be found".into(),
        retry_after_ms: None,
    }
}

#[test]
fn a_completion_refused_for_a_replaced_part_re_sends_it_and_completes_again() {
    // Garage can let a late, interrupted attempt replace a good part; completion then fails
    // with InvalidPart although every PUT returned 200.
    let size = size_of(3);
    let listed = vec![
        super::fakes::listed(1, PART),
        s3_direct_protocol::wire::ListedPart {
            part_number: 2,
            etag: "\"replaced\"".into(),
            size: PART,
            ..Default::default()
        },
        super::fakes::listed(3, PART - 1234),
    ];
    let script = Script {
        complete_errors: vec![invalid_part()],
        listed: Ok(listed),
        ..Script::default()
    };
    let mut h = Harness::start(size, retrying(3, 2), script);
    let result = h.finish(|p| p[0]);
    result.unwrap();
    let puts: Vec<u32> = h.sink.log().iter().map(|p| p.part).collect();
    assert_eq!(puts, [1, 2, 3, 2], "only part 2 is sent again");
    let completes = h
        .signer
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Complete(_)))
        .count();
    assert_eq!(completes, 2);
    assert_progress_never_decreases(&h);
    let last = *h.progress().last().unwrap();
    assert_eq!(last.bytes_sent, size);
}

#[test]
fn completion_is_retried_a_bounded_number_of_rounds() {
    let script = Script {
        complete_errors: vec![invalid_part(), invalid_part(), invalid_part()],
        ..Script::default()
    };
    let mut h = Harness::start(size_of(2), retrying(2, 2), script);
    let e = h.finish(|p| p[0]).unwrap_err();
    assert_eq!(e.code(), "invalid_part");
    let completes = h
        .signer
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Complete(_)))
        .count();
    assert_eq!(completes, 3, "the first try and two rounds of re-sending");
    assert_eq!(h.signer.aborts(), 0);
}
