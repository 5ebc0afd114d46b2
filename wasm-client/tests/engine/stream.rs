//! Streams of unknown size: parts cut as the producer hands bytes over, every part but the last
//! of the part size, at most `concurrency` held plus the one being filled, a short stream as one
//! PUT, and what a failing, oversized or cancelled stream leaves behind (nothing).

use std::collections::BTreeMap;
use std::rc::Rc;

use s3_direct::engine::{Error, StallTimeout, UploadOptions};
use s3_direct_protocol::limits::{DEFAULT_PART_SIZE, MAX_PART_NUMBER, MIB};
use s3_direct_protocol::plan::default_part_size;
use s3_direct_protocol::wire::ChecksumAlgorithm;

use crate::fakes::{Call, FakeSource, Gate, Harness, MemoryResumeStore, Script};
use crate::{PART, options};

fn stream(total: Option<u64>, options: UploadOptions) -> (Harness, Rc<FakeSource>) {
    let source = Rc::new(FakeSource::default());
    let h = Harness::streaming(source.clone(), total, None, options, Script::default());
    (h, source)
}

/// Stores every part in flight, lowest first, until none is.
fn store_all(h: &mut Harness) {
    while let Some(&part) = h.pending().first() {
        h.store(part);
    }
}

#[test]
fn a_stream_is_cut_into_equal_parts_as_it_arrives_and_completed() {
    let total = 3 * PART + 1234;
    let (mut h, source) = stream(Some(total), options(3));
    h.run();
    assert!(
        h.signer.calls().is_empty(),
        "nothing is created before a part is cut"
    );
    source.push(PART - 1);
    h.run();
    assert!(
        h.signer.calls().is_empty(),
        "a part is cut only once it is whole"
    );
    source.push(1);
    h.run();
    let Some(Call::Create(create)) = h.signer.calls().first().cloned() else {
        panic!(
            "the first whole part creates the upload: {:?}",
            h.signer.calls()
        );
    };
    assert_eq!((create.size, create.part_size), (None, Some(PART)));
    assert_eq!(
        create.presign_parts, None,
        "no URL can be signed before its length is known"
    );
    assert_eq!(h.pending(), vec![1], "a part is sent as soon as it is cut");

    source.push(2 * PART + 1234);
    source.end();
    h.run();
    assert_eq!(h.pending(), vec![1, 2, 3]);
    store_all(&mut h);
    let result = h.result().expect("done").unwrap();
    assert_eq!(result.size, total);
    assert_eq!(
        source.cuts(),
        vec![(1, PART), (2, PART), (3, PART), (4, 1234)],
        "every part but the last holds the part size"
    );
    let signed = h.signer.sign_lengths();
    let ahead: BTreeMap<u32, u64> = (1..=6).map(|p| (p, PART)).collect();
    assert_eq!(
        signed,
        vec![ahead, BTreeMap::from([(4, 1234)])],
        "parts not yet cut are signed ahead at the part size; the short last part again"
    );
    let completed: Vec<u32> = h
        .signer
        .completed()
        .unwrap()
        .iter()
        .map(|p| p.part_number)
        .collect();
    assert_eq!(completed, vec![1, 2, 3, 4]);
    assert_eq!(
        source.released(),
        vec![1, 2, 3, 4],
        "every stored part is let go"
    );
    assert!(!source.cancelled());
}

#[test]
fn with_checksums_each_part_is_signed_once_cut_and_hashed() {
    let script = Script {
        checksum: Some(ChecksumAlgorithm::Crc32c),
        ..Script::default()
    };
    let source = Rc::new(FakeSource::default());
    let total = 2 * PART + 9;
    let mut h = Harness::streaming(source.clone(), Some(total), None, options(2), script);
    source.push(total);
    source.end();
    h.run();
    store_all(&mut h);
    assert_eq!(h.result().expect("done").unwrap().size, total);
    let signed: Vec<(u32, u64)> = h.signer.sign_lengths().into_iter().flatten().collect();
    assert_eq!(signed, vec![(1, PART), (2, PART), (3, 9)]);
    let with_sums: Vec<u32> = h
        .signer
        .sign_checksums()
        .into_iter()
        .flat_map(|batch| batch.into_keys())
        .collect();
    assert_eq!(
        with_sums,
        vec![1, 2, 3],
        "every part's URL signs its checksum"
    );
}

#[test]
fn a_stream_part_that_cannot_be_hashed_fails_the_stream_and_aborts_its_upload() {
    // In a browser: the checksum worker that held the part's bytes stopped answering.
    let script = Script {
        checksum: Some(ChecksumAlgorithm::Crc32c),
        unreadable: Some(2),
        ..Script::default()
    };
    let source = Rc::new(FakeSource::default());
    let total = 3 * PART;
    let mut h = Harness::streaming(source.clone(), Some(total), None, options(2), script);
    source.push(total);
    source.end();
    h.run();
    let e = h.error();
    assert_eq!((e.code(), e.part()), ("stream_failed", Some(2)));
    assert!(
        matches!(
            e,
            Error::StreamFailed {
                kept: false,
                cleanup: None,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "the stream failed while part 2 was being read (NotReadableError); the upload was aborted"
    );
    assert_eq!(h.signer.aborts(), 1);
}

#[test]
fn progress_has_no_total_until_the_stream_ends_and_reaches_it_only_when_complete() {
    let total = 2 * PART + 10;
    let (mut h, source) = stream(Some(total), options(2));
    source.push(2 * PART);
    h.run();
    h.store(1);
    h.store(2);
    let before_end = h.progress();
    assert!(
        before_end
            .iter()
            .all(|p| p.bytes_total.is_none() && p.parts_total.is_none())
    );
    let last = before_end.last().unwrap();
    assert_eq!(
        last.parts_done, 1,
        "held one short while the total is unknown"
    );
    assert!(last.bytes_sent < 2 * PART);
    assert_eq!(last.eta, None);

    source.push(10);
    source.end();
    h.run();
    let ended = h.progress().last().copied().unwrap();
    assert_eq!(
        (ended.bytes_total, ended.parts_total),
        (Some(total), Some(3))
    );
    assert!(ended.bytes_sent < total);
    h.store(3);
    let done = h.progress().last().copied().unwrap();
    assert_eq!((done.bytes_sent, done.bytes_total), (total, Some(total)));
    let sent: Vec<u64> = h.progress().iter().map(|p| p.bytes_sent).collect();
    assert!(sent.is_sorted(), "progress never goes back: {sent:?}");
}

#[test]
fn a_fast_producer_waits_at_concurrency_parts_held() {
    for concurrency in [1, 3, 6] {
        let (mut h, source) = stream(None, options(concurrency));
        source.endless();
        h.run();
        assert_eq!(h.pending().len(), concurrency);
        assert_eq!(
            source.asked(),
            concurrency as u32,
            "no part is cut beyond the ones in flight until one is stored"
        );
        for _ in 0..20 {
            let part = h.pending()[0];
            h.store(part);
            assert!(source.held().len() <= concurrency);
        }
        assert_eq!(source.max_held(), concurrency);
        h.cancel();
    }
}

#[test]
fn parts_waiting_for_a_url_count_as_held() {
    let script = Script {
        hold: vec![Gate::Sign],
        ..Script::default()
    };
    let source = Rc::new(FakeSource::default());
    let mut h = Harness::streaming(source.clone(), None, None, options(4), script);
    source.endless();
    h.run();
    assert!(h.pending().is_empty(), "the URLs are held");
    assert_eq!(
        source.asked(),
        4,
        "the producer waits while no part can leave"
    );
    h.cancel();
}

#[test]
fn a_stream_shorter_than_a_part_goes_as_one_put() {
    for len in [0, 1, PART - 1] {
        let (mut h, source) = stream(Some(len), options(6));
        source.push(len);
        source.end();
        h.run();
        assert!(
            !h.signer
                .calls()
                .iter()
                .any(|c| matches!(c, Call::Create(_))),
            "{len} bytes create no multipart upload"
        );
        let Some(Call::SinglePut(put)) = h.signer.calls().first().cloned() else {
            panic!("{len} bytes: {:?}", h.signer.calls());
        };
        assert_eq!(put.size, len);
        h.store(1);
        let result = h.result().expect("done").unwrap();
        assert_eq!(result.size, len);
        let last = h.progress().last().copied().unwrap();
        assert_eq!((last.bytes_sent, last.bytes_total), (len, Some(len)));
    }
}

#[test]
fn a_stream_of_exactly_one_part_is_one_part() {
    let (mut h, source) = stream(Some(PART), options(6));
    source.push(PART);
    h.run();
    source.end();
    h.run();
    h.store(1);
    assert_eq!(h.result().expect("done").unwrap().size, PART);
    assert_eq!(source.cuts(), vec![(1, PART), (2, 0)]);
    assert_eq!(h.signer.completed().unwrap().len(), 1);
}

#[test]
fn a_stream_that_fails_aborts_its_upload_and_says_where() {
    let (mut h, source) = stream(None, options(2));
    source.push(2 * PART + 100);
    h.run();
    assert_eq!(h.pending(), vec![1, 2]);
    source.fail("camera unplugged");
    h.run();
    assert!(
        h.result().is_none(),
        "the stream is not read while two parts are held"
    );
    h.store(1);
    let e = h.error();
    assert_eq!(e.code(), "stream_failed");
    assert!(
        matches!(
            e,
            Error::StreamFailed {
                part: 3,
                kept: false,
                cleanup: None,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "the stream failed while part 3 was being read (camera unplugged); the upload was aborted"
    );
    assert_eq!(
        h.signer.aborts(),
        1,
        "a stream cannot be resumed: nothing is kept"
    );
    assert_eq!(
        h.sink.dropped(),
        vec![2],
        "the PUT in flight was dropped first"
    );
    assert!(source.cancelled());
}

#[test]
fn a_stream_failing_in_its_first_part_creates_nothing() {
    let (mut h, source) = stream(None, options(2));
    source.push(100);
    source.fail("NotReadableError");
    h.run();
    assert!(matches!(h.error(), Error::StreamFailed { part: 1, .. }));
    assert!(h.signer.calls().is_empty());
    assert!(source.cancelled());
}

#[test]
fn a_failed_part_is_sent_again_from_the_bytes_held_for_it() {
    let options = UploadOptions {
        stall_timeout: StallTimeout::Fixed(0.0),
        ..options(2)
    };
    let (mut h, source) = stream(Some(2 * PART), options);
    source.push(2 * PART);
    source.end();
    h.run();
    h.refuse(2, 503, "SlowDown");
    assert!(
        source.held().contains(&2),
        "a part is held until the store has it"
    );
    h.advance(5_000.0);
    assert_eq!(h.pending(), vec![1, 2]);
    store_all(&mut h);
    assert_eq!(h.result().expect("done").unwrap().size, 2 * PART);
    assert_eq!(h.sink.log().iter().filter(|p| p.part == 2).count(), 2);
}

#[test]
fn a_part_given_up_on_aborts_a_stream_upload() {
    let (mut h, source) = stream(None, options(1));
    source.endless();
    h.run();
    h.refuse(1, 400, "InvalidRequest");
    assert_eq!(h.error().code(), "http_error");
    assert_eq!(h.signer.aborts(), 1);
    assert!(source.cancelled());
}

#[test]
fn cancel_mid_stream_cancels_the_stream_and_aborts_the_upload() {
    let (mut h, source) = stream(None, options(3));
    source.endless();
    h.run();
    h.store(1);
    h.cancel();
    assert_eq!(h.error().code(), "aborted");
    assert_eq!(h.signer.aborts(), 1);
    assert!(source.cancelled());
    assert!(h.signer.completed().is_none());
}

#[test]
fn cancel_before_the_first_part_creates_nothing() {
    let (mut h, source) = stream(None, options(3));
    source.push(10);
    h.run();
    h.cancel();
    assert_eq!(h.error().code(), "aborted");
    assert!(h.signer.calls().is_empty());
    assert!(source.cancelled());
}

#[test]
fn a_paused_stream_upload_goes_on_from_the_part_being_cut() {
    let (mut h, source) = stream(Some(3 * PART), options(2));
    source.push(PART);
    h.run();
    h.pause();
    assert!(h.pending().is_empty(), "pausing drops the PUTs in flight");
    source.push(2 * PART);
    source.end();
    h.resume();
    store_all(&mut h);
    assert_eq!(h.result().expect("done").unwrap().size, 3 * PART);
    assert_eq!(source.cuts(), vec![(1, PART), (2, PART), (3, PART), (4, 0)]);
}

#[test]
fn the_expected_size_chooses_the_part_size_and_may_be_passed() {
    let expected = 300 * MIB;
    let options = UploadOptions {
        part_size: None,
        ..options(6)
    };
    let part = default_part_size(expected);
    assert_eq!(part, 16 * MIB);
    let total = 3 * expected + 5;
    let source = Rc::new(FakeSource::default());
    let mut h = Harness::streaming(
        source.clone(),
        Some(total),
        Some(expected),
        options.clone(),
        Script::default(),
    );
    source.push(total);
    source.end();
    h.run();
    store_all(&mut h);
    assert_eq!(h.result().expect("done").unwrap().size, total);
    assert_eq!(source.cuts()[0], (1, part));

    let source = Rc::new(FakeSource::default());
    let mut h = Harness::streaming(source.clone(), None, None, options, Script::default());
    source.endless();
    h.run();
    assert_eq!(
        source.cuts()[0],
        (1, DEFAULT_PART_SIZE),
        "8 MiB parts without a hint"
    );
    h.cancel();
}

#[test]
fn a_stream_past_ten_thousand_parts_fails_before_sending_more() {
    let (mut h, source) = stream(None, options(6));
    source.endless();
    h.run();
    while h.result().is_none() {
        let part = h.pending()[0];
        h.store(part);
    }
    let e = h.error();
    assert_eq!(e.code(), "stream_too_large");
    assert_eq!(
        e.to_string(),
        "the stream is larger than 52428800000 bytes, the most 10,000 parts of 5242880 bytes \
         hold; give the stream's expected size (or a larger part size) so that larger parts are \
         cut; the upload was aborted"
    );
    let highest = h.sink.log().iter().map(|p| p.part).max();
    assert_eq!(
        highest,
        Some(MAX_PART_NUMBER),
        "no PUT beyond S3's last part number"
    );
    assert_eq!(h.signer.aborts(), 1);
    assert!(source.cancelled());
}

#[test]
fn a_spooled_stream_keeps_its_upload_and_record_when_it_fails() {
    let records = Rc::new(MemoryResumeStore::default());
    let source = Rc::new(FakeSource::default());
    let mut h = Harness::streaming_resumable(
        source.clone(),
        None,
        options(2),
        Script::default(),
        records.clone(),
    );
    source.push(2 * PART + 7);
    h.run();
    h.store(1);
    source.fail("tab crashed");
    h.run();
    let e = h.error();
    assert!(matches!(e, Error::StreamFailed { kept: true, .. }), "{e:?}");
    assert_eq!(h.signer.aborts(), 0, "the spool can finish it");
    let record = records.only().expect("a record is kept");
    assert_eq!(record.part_size, PART);
    assert_eq!(record.parts.keys().collect::<Vec<_>>(), vec![1]);
}

#[test]
fn a_spooled_stream_forgets_its_record_when_cancelled_or_complete() {
    for cancel in [true, false] {
        let records = Rc::new(MemoryResumeStore::default());
        let source = Rc::new(FakeSource::default());
        let mut h = Harness::streaming_resumable(
            source.clone(),
            Some(2 * PART),
            options(2),
            Script::default(),
            records.clone(),
        );
        source.push(2 * PART);
        h.run();
        if cancel {
            h.cancel();
            assert_eq!(h.signer.aborts(), 1);
        } else {
            source.end();
            h.run();
            store_all(&mut h);
            assert!(h.result().unwrap().is_ok());
        }
        assert!(records.only().is_none());
    }
}

#[test]
fn options_that_cannot_work_refuse_the_stream_and_let_it_go() {
    let source = Rc::new(FakeSource::default());
    let too_large = 6 * 1024 * 1024 * MIB;
    let mut h = Harness::streaming(
        source.clone(),
        None,
        Some(too_large),
        options(2),
        Script::default(),
    );
    h.run();
    assert_eq!(h.error().code(), "file_too_large");
    assert!(h.signer.calls().is_empty());
    assert_eq!(source.asked(), 0, "nothing is read");
    assert!(
        source.cancelled(),
        "the stream is cancelled, its reader let go"
    );
}
