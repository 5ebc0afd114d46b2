//! Resuming from a record: what is kept while uploading, what is reconciled with the store's list
//! of parts, and what is sent again.

use std::rc::Rc;

use s3_direct::engine::{ApiError, PutError, RecordedPart, ResumeRecord, UploadOptions};
use s3_direct_protocol::PartPlan;
use s3_direct_protocol::wire::{CompletedPart, ListedPart};

use super::fakes::{
    BUCKET, Call, Harness, KEY, MemoryResumeStore, Script, UPLOAD_ID, etag, fingerprint,
};
use super::{PART, options, size_of};

const DAY_MS: f64 = 24.0 * 3600.0 * 1000.0;
/// When the resumed tests run: ten days after the clock's origin.
const NOW: f64 = 10.0 * DAY_MS;

fn part_len(size: u64, part: u32) -> u64 {
    let r = PartPlan::new(size, PART).unwrap().range(part);
    r.end - r.start
}

/// A record of an upload of `size` bytes with `parts` stored, last touched at `updated_ms`.
fn record(size: u64, parts: &[u32], updated_ms: f64) -> ResumeRecord {
    ResumeRecord {
        fingerprint: fingerprint(size),
        upload_id: UPLOAD_ID.into(),
        key: KEY.into(),
        bucket: BUCKET.into(),
        part_size: PART,
        parts: parts
            .iter()
            .map(|&p| {
                (
                    p,
                    RecordedPart {
                        size: part_len(size, p),
                        etag: etag(p),
                        checksum: None,
                    },
                )
            })
            .collect(),
        updated_ms,
        checksum: None,
    }
}

fn store_with(records: &[ResumeRecord]) -> Rc<MemoryResumeStore> {
    let store = Rc::new(MemoryResumeStore::default());
    for r in records {
        store
            .records
            .borrow_mut()
            .insert(r.fingerprint.key(), r.clone());
    }
    store
}

fn listed(size: u64, parts: &[(u32, &str)]) -> Vec<ListedPart> {
    parts
        .iter()
        .map(|&(p, etag)| ListedPart {
            part_number: p,
            etag: etag.into(),
            size: part_len(size, p),
            ..Default::default()
        })
        .collect()
}

fn put_parts(h: &Harness) -> Vec<u32> {
    let mut parts: Vec<u32> = h.sink.log().iter().map(|p| p.part).collect();
    parts.sort_unstable();
    parts
}

#[test]
fn the_record_follows_the_upload_and_is_removed_when_it_completes() {
    let size = size_of(4);
    let store = store_with(&[]);
    let mut h = Harness::resuming(size, options(2), Script::default(), store.clone(), NOW);
    h.run();
    let key = fingerprint(size).key();
    let saved = store.records.borrow()[&key].clone();
    assert_eq!(
        (
            saved.upload_id.as_str(),
            saved.key.as_str(),
            saved.part_size
        ),
        (UPLOAD_ID, KEY, PART)
    );
    assert!(saved.parts.is_empty());
    // The record is written at most once a second: a part stored sooner waits for the timer.
    h.store(2);
    assert!(store.records.borrow()[&key].parts.is_empty());
    h.advance(1000.0);
    let saved = store.records.borrow()[&key].clone();
    assert_eq!(saved.parts.keys().collect::<Vec<_>>(), [2]);
    assert_eq!(saved.parts[2].etag, etag(2));
    assert_eq!(saved.parts[2].size, PART);
    // A second later, the next part is written at once.
    h.advance(1000.0);
    h.store(1);
    assert_eq!(store.records.borrow()[&key].parts.len(), 2);
    h.finish(|p| p[0]).unwrap();
    assert!(
        store.records.borrow().is_empty(),
        "a finished upload leaves no record"
    );
}

#[test]
fn a_failed_upload_keeps_its_record_and_a_cancelled_one_does_not() {
    let size = size_of(4);
    let store = store_with(&[]);
    let mut h = Harness::resuming(size, options(2), Script::default(), store.clone(), NOW);
    h.run();
    h.store(1);
    h.reply(
        2,
        Err(PutError::status(
            400,
            "<Error><Code>InvalidArgument</Code></Error>",
        )),
    );
    h.error();
    let saved = store.records.borrow()[&fingerprint(size).key()].clone();
    assert_eq!(saved.parts.keys().collect::<Vec<_>>(), [1]);

    let store = store_with(&[]);
    let mut h = Harness::resuming(size, options(2), Script::default(), store.clone(), NOW);
    h.run();
    h.store(1);
    h.cancel();
    assert_eq!(h.error().code(), "aborted");
    assert!(store.records.borrow().is_empty());
}

#[test]
fn resuming_sends_only_the_missing_parts_and_one_whose_etag_the_store_lost() {
    let size = size_of(6);
    // Parts 1, 2 and 3 were stored before the reload; the store no longer lists part 2 with
    // its ETag (it was overwritten by an interrupted attempt), and it lists part 4, which
    // finished as the page died.
    let script = Script {
        listed: Ok(listed(
            size,
            &[
                (1, &etag(1)),
                (2, "\"something-else\""),
                (3, &etag(3)),
                (4, &etag(4)),
            ],
        )),
        ..Script::default()
    };
    let store = store_with(&[record(size, &[1, 2, 3], NOW - DAY_MS)]);
    let mut h = Harness::resuming(size, options(2), script, store.clone(), NOW);
    h.run();
    let first = h.progress()[1];
    assert_eq!(first.parts_done, 3, "{first:?}");
    assert_eq!(first.bytes_confirmed, 3 * PART);
    h.finish(|p| p[0]).unwrap();

    assert_eq!(
        put_parts(&h),
        [2, 5, 6],
        "only what the store lacks is sent"
    );
    let calls = h.signer.calls();
    assert!(
        !calls.iter().any(|c| matches!(c, Call::Create(_))),
        "no new upload: {calls:?}"
    );
    assert_eq!(calls[0], Call::List);
    let completed: Vec<CompletedPart> = (1..=6)
        .map(|p| CompletedPart {
            part_number: p,
            etag: etag(p),
            ..Default::default()
        })
        .collect();
    assert_eq!(h.signer.completed().unwrap(), completed);
    assert!(store.records.borrow().is_empty());
    let progress = h.progress();
    for pair in progress.windows(2) {
        assert!(pair[1].bytes_sent >= pair[0].bytes_sent);
    }
}

#[test]
fn a_store_that_lists_no_etags_is_trusted_on_size() {
    // The embedded store lists parts with empty ETags.
    let size = size_of(3);
    let script = Script {
        listed: Ok(listed(size, &[(1, ""), (2, "")])),
        ..Script::default()
    };
    let store = store_with(&[record(size, &[1, 2], NOW - DAY_MS)]);
    let mut h = Harness::resuming(size, options(2), script, store, NOW);
    h.finish(|p| p[0]).unwrap();
    assert_eq!(put_parts(&h), [3]);
    assert_eq!(h.signer.completed().unwrap()[0].etag, etag(1));
}

#[test]
fn an_upload_the_store_no_longer_has_starts_over() {
    let size = size_of(3);
    let script = Script {
        listed: Err(ApiError::Status {
            status: 404,
            code: Some("no_such_upload".into()),
            message: String::new(),
            retry_after_ms: None,
        }),
        ..Script::default()
    };
    let store = store_with(&[record(size, &[1, 2], NOW - DAY_MS)]);
    let mut h = Harness::resuming(size, options(2), script, store.clone(), NOW);
    h.run();
    let calls = h.signer.calls();
    assert!(
        matches!(calls[..2], [Call::List, Call::Create(_)]),
        "{calls:?}"
    );
    assert!(
        store.records.borrow()[&fingerprint(size).key()]
            .parts
            .is_empty()
    );
    h.finish(|p| p[0]).unwrap();
    assert_eq!(put_parts(&h), [1, 2, 3]);
}

#[test]
fn a_different_file_with_the_same_name_is_never_mixed_in() {
    let size = size_of(3);
    let mut other = record(size, &[1, 2], NOW - DAY_MS);
    other.fingerprint.sample_hash = "beef".into();
    let store = store_with(&[other.clone()]);
    let mut h = Harness::resuming(size, options(2), Script::default(), store.clone(), NOW);
    h.finish(|p| p[0]).unwrap();
    assert!(!h.signer.calls().contains(&Call::List));
    assert_eq!(put_parts(&h), [1, 2, 3]);
    assert_eq!(
        store.records.borrow().values().cloned().collect::<Vec<_>>(),
        [other],
        "the other file's record is left alone"
    );
}

#[test]
fn stale_records_expire() {
    let size = size_of(3);
    let mut unrelated = record(size_of(9), &[1], NOW - 8.0 * DAY_MS);
    unrelated.fingerprint.name = "old.bin".into();
    let store = store_with(&[record(size, &[1, 2], NOW - 8.0 * DAY_MS), unrelated]);
    let mut h = Harness::resuming(size, options(2), Script::default(), store.clone(), NOW);
    h.run();
    assert!(!h.signer.calls().contains(&Call::List));
    let keys: Vec<String> = store.records.borrow().keys().cloned().collect();
    assert_eq!(
        keys,
        [fingerprint(size).key()],
        "both stale records are gone"
    );
    h.finish(|p| p[0]).unwrap();
    assert_eq!(put_parts(&h), [1, 2, 3]);
}

/// One rule, which the browser facade follows too (`web/engine.rs`): a file resumes exactly when
/// it goes as a multipart upload. One that goes as a single PUT
/// ([`UploadOptions::goes_as_one_put`]) has nothing to resume, so it keeps no record even when it
/// has a fingerprint, and the facade reads none for it; the same failure one byte above the
/// threshold keeps its record.
#[test]
fn only_a_file_sent_in_parts_keeps_a_resume_record() {
    let threshold = size_of(1);
    let options = UploadOptions {
        single_put_threshold: threshold,
        ..options(2)
    };
    assert!(options.goes_as_one_put(1) && options.goes_as_one_put(threshold));
    assert!(!options.goes_as_one_put(threshold + 1));
    let every_file_in_parts = UploadOptions {
        single_put_threshold: 0,
        ..options.clone()
    };
    assert!(!every_file_in_parts.goes_as_one_put(0) && !every_file_in_parts.goes_as_one_put(1));

    let refused = || {
        Err(PutError::status(
            400,
            "<Error><Code>InvalidArgument</Code></Error>",
        ))
    };
    let store = store_with(&[]);
    let mut h = Harness::resuming(
        threshold,
        options.clone(),
        Script::default(),
        store.clone(),
        NOW,
    );
    h.run();
    h.reply(1, refused());
    assert_eq!(h.error().code(), "http_error");
    assert!(matches!(h.signer.calls()[..], [Call::SinglePut(_)]));
    assert!(store.records.borrow().is_empty());

    let size = threshold + 1;
    let store = store_with(&[]);
    let mut h = Harness::resuming(size, options, Script::default(), store.clone(), NOW);
    h.run();
    h.reply(1, refused());
    assert_eq!(h.error().code(), "http_error");
    assert!(
        store
            .records
            .borrow()
            .contains_key(&fingerprint(size).key())
    );
}
