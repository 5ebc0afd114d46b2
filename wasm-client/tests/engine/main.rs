//! The upload engine's policies, run natively against scripted fakes of the signing server and
//! the store (see `fakes.rs`). No sleeps: time is a fake clock and every answer is given by hand.

mod checksums;
mod fakes;
mod queue;
mod resilience;
mod resume;
mod small;
mod stall;
mod stream;

use std::collections::BTreeMap;

use fakes::{
    BUCKET, Call, FILENAME, FINAL_ETAG, Gate, Harness, KEY, LOCATION, RECEIPT, Script, created_url,
    etag,
};
use s3_direct::engine::{ApiError, ChecksumChoice, PutError, UploadOptions, UploadResult};
use s3_direct_protocol::PartPlan;
use s3_direct_protocol::limits::{GIB, MIB, TIB};
use s3_direct_protocol::wire::{ChecksumAlgorithm, CompletedPart};

pub(crate) const PART: u64 = 5 * MIB;

pub(crate) fn options(concurrency: usize) -> UploadOptions {
    UploadOptions {
        part_size: Some(PART),
        concurrency,
        progress_interval_ms: 0.0,
        ..UploadOptions::default()
    }
}

/// A file of `parts` parts, the last one shorter than the others.
pub(crate) fn size_of(parts: u32) -> u64 {
    PART * u64::from(parts) - 1234
}

fn sorted_parts(n: u32) -> Vec<CompletedPart> {
    (1..=n)
        .map(|p| CompletedPart {
            part_number: p,
            etag: etag(p),
            ..Default::default()
        })
        .collect()
}

/// Picks in-flight parts in a fixed scrambled order, so completion order differs from part order.
fn scrambled() -> impl FnMut(&[u32]) -> u32 {
    let mut step = 0usize;
    move |pending| {
        step += 1;
        pending[(step * 7) % pending.len()]
    }
}

#[test]
fn concurrency_is_never_exceeded() {
    for concurrency in [1, 4, 6] {
        let mut h = Harness::start(size_of(40), options(concurrency), Script::default());
        h.run();
        assert_eq!(h.pending().len(), concurrency, "the pipeline fills at once");
        h.finish(scrambled()).unwrap();
        assert_eq!(h.sink.max_in_flight(), concurrency);
        assert_eq!(h.sink.log().len(), 40, "every part is PUT exactly once");
    }
}

#[test]
fn parts_finish_out_of_order_and_complete_sorted() {
    let mut h = Harness::start(size_of(10), options(3), Script::default());
    let result = h.finish(|pending| *pending.last().unwrap()).unwrap();

    let stored = h.sink.stored();
    assert!(
        !stored.is_sorted(),
        "the store acknowledged {stored:?} in order"
    );
    assert_eq!(h.signer.completed().unwrap(), sorted_parts(10));
    assert_eq!(
        result,
        UploadResult {
            key: KEY.into(),
            bucket: BUCKET.into(),
            location: LOCATION.into(),
            etag: FINAL_ETAG.into(),
            size: size_of(10),
            checksum: None,
            whole_file: Default::default(),
            receipt: Some(RECEIPT.into()),
        }
    );
    let Call::Create(create) = &h.signer.calls()[0] else {
        panic!("the first call creates the upload");
    };
    assert_eq!(create.filename, FILENAME);
    assert_eq!(create.content_type, "video/mp4");
    assert_eq!(create.metadata["origin"], "test");
    assert_eq!(create.size, Some(size_of(10)));
    assert_eq!(create.part_size, Some(PART), "the plan is declared");
    assert_eq!(h.signer.aborts(), 0);
}

#[test]
fn urls_are_signed_in_batches_of_two_rounds() {
    let mut h = Harness::start(size_of(40), options(4), Script::default());
    h.run();
    let mut left = 40;
    while let Some(&part) = h.pending().first() {
        assert_eq!(
            h.pending().len(),
            left.min(4),
            "a PUT slot waited for a URL"
        );
        h.store(part);
        left -= 1;
    }
    h.result().unwrap().unwrap();
    let batches: Vec<Vec<u32>> = (0..5).map(|b| (b * 8 + 1..=b * 8 + 8).collect()).collect();
    assert_eq!(h.signer.sign_calls(), batches);
}

#[test]
fn every_signing_request_names_each_parts_length_from_the_plan() {
    // The server signs each part's exact length into its URL; the plan knows it (the last part
    // is shorter).
    let mut h = Harness::start(size_of(10), options(4), Script::default());
    h.finish(|pending| pending[0]).unwrap();
    let calls = h.signer.sign_calls();
    let lengths = h.signer.sign_lengths();
    assert_eq!(calls.len(), lengths.len());
    for (parts, lengths) in calls.iter().zip(&lengths) {
        let expected: BTreeMap<u32, u64> = parts
            .iter()
            .map(|&p| (p, if p == 10 { PART - 1234 } else { PART }))
            .collect();
        assert_eq!(lengths, &expected, "batch {parts:?}");
    }
    assert_eq!(calls.concat(), (1..=10).collect::<Vec<_>>());
}

#[test]
fn the_first_batch_comes_with_the_create_answer_when_the_server_signs_it() {
    let script = Script {
        presign: true,
        ..Script::default()
    };
    let mut h = Harness::start(size_of(20), options(4), script);
    h.run();
    let Call::Create(create) = &h.signer.calls()[0] else {
        panic!("the first call creates the upload");
    };
    assert_eq!(
        create.presign_parts,
        Some(8),
        "two rounds of URLs are asked for"
    );
    assert_eq!(
        h.pending(),
        vec![1, 2, 3, 4],
        "PUTs start without a signing request"
    );
    assert!(h.signer.sign_calls().is_empty());
    assert!(
        h.sink
            .log()
            .iter()
            .all(|put| put.url == created_url(put.part)),
        "the PUTs use the create answer's URLs"
    );
    h.finish(|pending| pending[0]).unwrap();
    // The rest is signed as usual, once the stock runs low.
    assert_eq!(
        h.signer.sign_calls(),
        vec![(9..=16).collect::<Vec<_>>(), (17..=20).collect()]
    );
    assert_eq!(h.signer.completed().unwrap(), sorted_parts(20));
}

#[test]
fn a_checksum_of_our_own_asks_for_no_urls_with_the_create() {
    let script = Script {
        presign: true,
        ..Script::default()
    };
    let options = UploadOptions {
        checksum: ChecksumChoice::Use(ChecksumAlgorithm::Crc32c),
        ..options(4)
    };
    let mut h = Harness::start(size_of(6), options, script);
    h.finish(|pending| pending[0]).unwrap();
    let Call::Create(create) = &h.signer.calls()[0] else {
        panic!("the first call creates the upload");
    };
    assert_eq!(create.presign_parts, None);
    let signed: Vec<u32> = h.signer.sign_calls().concat();
    assert_eq!(
        signed,
        (1..=6).collect::<Vec<_>>(),
        "every part signed with its checksum"
    );
}

#[test]
fn signing_stays_a_batch_ahead_with_one_request_in_flight() {
    let script = Script {
        hold: vec![Gate::Sign],
        ..Script::default()
    };
    let mut h = Harness::start(size_of(40), options(4), script);
    h.run();
    assert_eq!(h.signer.sign_calls(), [Vec::from_iter(1..=8)]);
    assert!(h.pending().is_empty());

    h.release(Gate::Sign);
    assert_eq!(h.pending(), [1, 2, 3, 4]);
    assert_eq!(h.signer.sign_calls().len(), 1, "four URLs left in stock");

    // Using a fifth URL leaves three, below one round: the next batch is requested now, while
    // PUTs keep going on the URLs in stock.
    h.store(1);
    assert_eq!(h.pending(), [2, 3, 4, 5]);
    assert_eq!(h.signer.sign_calls()[1], Vec::from_iter(9..=16));
    for part in 2..=4 {
        h.store(part);
    }
    assert_eq!(h.pending(), [5, 6, 7, 8]);
    assert_eq!(
        h.signer.sign_calls().len(),
        2,
        "one signing request at a time"
    );

    // Only a slow signing server makes a PUT slot wait.
    h.store(5);
    assert_eq!(h.pending(), [6, 7, 8]);
    h.release(Gate::Sign);
    assert_eq!(h.pending(), [6, 7, 8, 9]);
    assert_eq!(h.signer.max_signs_in_flight(), 1);
}

#[test]
fn cancel_drops_in_flight_puts_then_aborts_the_upload() {
    let mut h = Harness::start(size_of(20), options(4), Script::default());
    h.run();
    h.store(1);
    h.store(2);
    h.sent(3, MIB);
    h.cancel();

    let e = h.error();
    assert_eq!(e.code(), "aborted");
    assert_eq!(e.to_string(), "the upload was aborted");
    assert_eq!(h.sink.dropped(), [3, 4, 5, 6]);
    assert_eq!(h.sink.log().len(), 6, "nothing was launched after cancel");
    assert_eq!(h.signer.calls().last(), Some(&Call::Abort));
    assert_eq!(h.signer.aborts(), 1);
    assert_eq!(h.signer.completed(), None);
    let last = *h.progress().last().unwrap();
    assert!(Some(last.bytes_sent) < last.bytes_total);
}

#[test]
fn cancel_while_signing_drops_the_request_and_aborts() {
    let script = Script {
        hold: vec![Gate::Sign],
        ..Script::default()
    };
    let mut h = Harness::start(size_of(20), options(4), script);
    h.run();
    h.cancel();
    assert_eq!(h.error().code(), "aborted");
    assert_eq!(h.signer.max_signs_in_flight(), 1);
    assert_eq!(h.signer.aborts(), 1);
    assert!(h.sink.log().is_empty());
}

#[test]
fn an_abort_that_fails_still_reports_aborted_and_says_so() {
    let script = Script {
        abort_error: Some(ApiError::Network("offline".into())),
        ..Script::default()
    };
    let mut h = Harness::start(size_of(3), options(2), script);
    h.run();
    h.cancel();
    let e = h.error();
    assert_eq!(e.code(), "aborted");
    assert!(
        e.to_string()
            .contains("removing its stored parts failed (the signing server could not be reached"),
        "{e}"
    );
}

#[test]
fn an_already_cancelled_upload_sends_nothing() {
    let mut h = Harness::start(size_of(3), options(2), Script::default());
    h.signal_cancel();
    h.run();
    assert_eq!(h.error().code(), "aborted");
    assert!(h.signer.calls().is_empty());
    assert!(h.progress().is_empty());
}

#[test]
fn cancel_during_create_aborts_the_upload_once_it_exists() {
    let script = Script {
        hold: vec![Gate::Create],
        ..Script::default()
    };
    let mut h = Harness::start(size_of(3), options(2), script);
    h.run();
    h.cancel();
    assert!(h.result().is_none(), "waits for create's answer");
    h.release(Gate::Create);
    assert_eq!(h.error().code(), "aborted");
    let calls = h.signer.calls();
    assert!(
        matches!(calls.as_slice(), [Call::Create(_), Call::Abort]),
        "{calls:?}"
    );
}

#[test]
fn cancel_after_completion_was_requested_is_too_late() {
    let script = Script {
        hold: vec![Gate::Complete],
        ..Script::default()
    };
    let mut h = Harness::start(size_of(2), options(2), script);
    h.run();
    h.store(1);
    h.store(2);
    h.cancel();
    assert!(h.result().is_none());
    h.release(Gate::Complete);
    assert!(h.result().unwrap().is_ok());
    assert_eq!(h.signer.aborts(), 0);
}

#[test]
fn a_missing_etag_fails_fast_naming_the_cors_fix() {
    for reply in [None, Some(String::new()), Some("  ".into())] {
        let mut h = Harness::start(size_of(10), options(4), Script::default());
        h.run();
        h.reply(2, Ok(reply));
        let e = h.error();
        assert_eq!((e.code(), e.part()), ("missing_etag", Some(2)));
        assert_eq!(
            e.to_string(),
            "part 2 of 10: the store did not expose the ETag header; \
             add ExposeHeaders: ETag to the bucket's CORS rule"
        );
        assert_eq!(h.sink.dropped(), [1, 3, 4], "the other PUTs are stopped");
        assert_eq!(h.signer.aborts(), 0, "kept for a later resume");
        assert_eq!(h.signer.completed(), None);
    }
}

#[test]
fn other_4xx_fail_fast_naming_the_part_and_status_and_keep_the_upload() {
    let mut h = Harness::start(size_of(10), options(4), Script::default());
    h.run();
    for part in 1..=6 {
        h.store(part);
    }
    assert_eq!(h.pending(), [7, 8, 9, 10]);
    let body = "<?xml version=\"1.0\"?><Error><Code>EntityTooLarge</Code>\
                <Message>Your proposed upload exceeds the maximum allowed size</Message></Error>";
    h.reply(7, Err(PutError::status(400, body)));
    let e = h.error();
    assert_eq!(
        (e.code(), e.status(), e.part()),
        ("http_error", Some(400), Some(7))
    );
    assert_eq!(
        e.to_string(),
        "part 7 of 10: PUT returned 400 (EntityTooLarge: Your proposed upload exceeds the \
         maximum allowed size)"
    );
    assert_eq!(h.sink.dropped(), [8, 9, 10]);
    assert_eq!(h.signer.aborts(), 0);
    assert_eq!(h.signer.completed(), None);
    assert!(h.clock.timers().is_empty(), "no retry is scheduled");
}

#[test]
fn the_servers_error_code_passes_through() {
    let script = Script {
        create_errors: vec![ApiError::Status {
            status: 400,
            code: Some("invalid_filename".into()),
            message: "file name \"\" is empty".into(),
            retry_after_ms: None,
        }],
        ..Script::default()
    };
    let mut h = Harness::start(size_of(5), options(2), script);
    h.run();
    let e = h.error();
    assert_eq!((e.code(), e.status()), ("invalid_filename", Some(400)));
    assert!(
        e.to_string()
            .starts_with("creating the upload failed: the signing server answered 400")
    );
    assert_eq!(h.signer.calls().len(), 1);
}

#[test]
fn a_failed_sign_request_fails_the_upload_without_aborting() {
    let script = Script {
        sign_errors: vec![(
            1,
            ApiError::Status {
                status: 400,
                code: None,
                message: String::new(),
                retry_after_ms: None,
            },
        )],
        ..Script::default()
    };
    let mut h = Harness::start(size_of(40), options(4), script);
    h.finish(|pending| pending[0]).unwrap_err();
    let e = h.error();
    assert_eq!(
        (e.code(), e.status(), e.part()),
        ("sign_failed", Some(400), None)
    );
    assert_eq!(
        e.to_string(),
        "signing parts 9 to 16 failed: the signing server answered 400"
    );
    assert_eq!(h.signer.aborts(), 0);
    assert_eq!(h.signer.completed(), None);
}

#[test]
fn a_batch_without_a_url_for_a_part_fails_naming_it() {
    let script = Script {
        omit_url: Some(3),
        ..Script::default()
    };
    let mut h = Harness::start(size_of(5), options(2), script);
    h.run();
    let e = h.error();
    assert_eq!(e.code(), "sign_failed");
    assert_eq!(
        e.to_string(),
        "signing parts 1 to 4 failed: the signing server's answer is not usable \
         (the batch has no URL for part 3)"
    );
}

#[test]
fn a_failed_complete_keeps_the_upload_and_progress_short_of_100() {
    let script = Script {
        complete_errors: vec![ApiError::Status {
            status: 400,
            code: Some("invalid_part".into()),
            message: "part 2 is missing".into(),
            retry_after_ms: None,
        }],
        // The store lists every part as sent: nothing to send again, so the refusal stands.
        listed: Ok((1..=3)
            .map(|p| fakes::listed(p, if p < 3 { PART } else { PART - 1234 }))
            .collect()),
        ..Script::default()
    };
    let mut h = Harness::start(size_of(3), options(3), script);
    h.finish(scrambled()).unwrap_err();
    let e = h.error();
    assert_eq!((e.code(), e.status()), ("invalid_part", Some(400)));
    assert_eq!(h.signer.aborts(), 0);
    assert!(
        h.progress()
            .iter()
            .all(|p| Some(p.bytes_sent) < p.bytes_total)
    );
}

#[test]
fn batch_headers_are_sent_with_every_put() {
    let headers = BTreeMap::from([("x-amz-checksum-algorithm".to_string(), "CRC32".to_string())]);
    let script = Script {
        batch_headers: headers.clone(),
        ..Script::default()
    };
    let mut h = Harness::start(size_of(9), options(2), script);
    h.finish(scrambled()).unwrap();
    let log = h.sink.log();
    assert_eq!(log.len(), 9);
    assert!(log.iter().all(|put| put.headers == headers));
}

#[test]
fn an_empty_file_is_one_empty_part() {
    let mut h = Harness::start(0, options(6), Script::default());
    h.run();
    // The fake store checks the range against the plan: part 1 is 0..0.
    assert_eq!(h.pending(), [1]);
    assert_eq!(h.signer.sign_calls(), [vec![1]]);
    h.store(1);
    let result = h.result().unwrap().unwrap();
    assert_eq!(result.size, 0);
    assert_eq!(h.signer.completed().unwrap(), sorted_parts(1));
    let progress = h.progress();
    let last = progress.last().unwrap();
    assert_eq!((last.bytes_sent, last.bytes_total), (0, Some(0)));
    assert_eq!((last.parts_done, last.parts_total), (1, Some(1)));
    assert!(
        progress[..progress.len() - 1]
            .iter()
            .all(|p| p.parts_done == 0),
        "not done before complete"
    );
}

#[test]
fn progress_never_decreases_and_reaches_100_only_after_complete() {
    let script = Script {
        hold: vec![Gate::Complete],
        ..Script::default()
    };
    let size = size_of(6);
    let mut h = Harness::start(size, options(3), script);
    h.run();
    h.clock.advance(1000.0);
    h.sent(1, MIB);
    h.clock.advance(1000.0);
    h.sent(2, 3 * MIB);
    h.sent(1, 1000); // an older running total arriving late
    h.sent(3, 100 * MIB); // more than the part holds
    h.clock.advance(1000.0);
    h.store(2);
    h.sent(4, 2 * MIB);
    h.store(1);
    h.clock.advance(1000.0);
    h.store(3);
    h.store(5);
    h.store(4);
    // The last part's bytes all reported sent, and the part stored: still not 100 %.
    h.sent(6, PART);
    h.store(6);
    assert!(h.result().is_none(), "complete is held");

    let before = h.progress();
    assert!(before.len() > 10, "{} reports", before.len());
    for p in &before {
        assert!(p.bytes_sent < size && p.bytes_confirmed < size, "{p:?}");
        assert!(p.parts_done < 6, "{p:?}");
        assert!(p.bytes_confirmed <= p.bytes_sent, "{p:?}");
        assert_eq!((p.bytes_total, p.parts_total), (Some(size), Some(6)));
    }
    assert!(before.iter().any(|p| p.speed > 0.0 && p.eta.is_some()));

    h.release(Gate::Complete);
    h.result().unwrap().unwrap();
    let all = h.progress();
    for pair in all.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(b.bytes_sent >= a.bytes_sent, "{a:?} -> {b:?}");
        assert!(b.bytes_confirmed >= a.bytes_confirmed, "{a:?} -> {b:?}");
        assert!(b.parts_done >= a.parts_done, "{a:?} -> {b:?}");
    }
    let last = *all.last().unwrap();
    assert_eq!(
        (
            last.bytes_sent,
            last.bytes_confirmed,
            last.parts_done,
            last.eta
        ),
        (size, size, 6, Some(0.0))
    );
    assert_eq!(
        all.len(),
        before.len() + 1,
        "100 % is reported once, after complete"
    );
}

#[test]
fn invalid_options_are_refused_before_any_request() {
    let cases = [
        (
            size_of(2),
            UploadOptions {
                concurrency: 0,
                ..options(1)
            },
            "invalid_options",
            "concurrency 0 is outside 1..=64",
        ),
        (
            size_of(2),
            UploadOptions {
                concurrency: 65,
                ..options(1)
            },
            "invalid_options",
            "concurrency 65 is outside 1..=64",
        ),
        (
            size_of(2),
            UploadOptions {
                part_size: Some(4 * MIB),
                ..options(1)
            },
            "invalid_options",
            "part size 4194304 is outside S3's limits (5242880..=5368709120 bytes)",
        ),
        (
            size_of(2),
            UploadOptions {
                progress_interval_ms: f64::NAN,
                ..options(1)
            },
            "invalid_options",
            "progress interval NaN ms is not a number of milliseconds >= 0",
        ),
        (
            5 * TIB + 1,
            options(1),
            "file_too_large",
            "file size 5497558138881 exceeds S3's 5 TiB (5497558138880 bytes) object limit",
        ),
    ];
    for (size, options, code, message) in cases {
        let mut h = Harness::start(size, options, Script::default());
        h.run();
        let e = h.error();
        assert_eq!((e.code(), e.to_string().as_str()), (code, message));
        assert!(h.signer.calls().is_empty());
    }
}

#[test]
fn without_a_part_size_the_file_size_picks_one() {
    // 8 MiB parts up to 128 MiB, 16 MiB from 256 MiB; the plan is declared and followed.
    for (size, part_size, parts) in [
        (100 * MIB, 8 * MIB, 13),
        (200 * MIB + 5, 13 * MIB, 16),
        (GIB, 16 * MIB, 64),
    ] {
        let defaults = UploadOptions {
            part_size: None,
            ..options(6)
        };
        let mut h = Harness::start(size, defaults, Script::default());
        h.finish(|pending| pending[0]).unwrap();
        let Call::Create(create) = &h.signer.calls()[0] else {
            panic!("the first call creates the upload");
        };
        assert_eq!(create.part_size, Some(part_size), "{size} bytes");
        assert_eq!(h.sink.log().len(), parts, "{size} bytes");
        assert_eq!(h.signer.completed().unwrap().len(), parts);
    }
}

#[test]
fn a_file_too_big_for_5_mib_parts_gets_bigger_parts() {
    // 10,015 parts of 5 MiB would be over S3's 10,000; the fake store checks every range against
    // the grown plan.
    let size = 489 * GIB / 10;
    let plan = PartPlan::new(size, PART).unwrap();
    assert!(plan.part_size > PART);
    let mut h = Harness::start(size, options(64), Script::default());
    h.finish(|pending| pending[0]).unwrap();
    assert_eq!(
        h.signer.completed().unwrap().len(),
        plan.part_count as usize
    );
    assert!(h.signer.sign_calls().iter().all(|b| b.len() <= 128));
}
