//! Small files as one presigned PUT, and the queue: one limit of PUTs across all files, fair
//! turns between big and small files, per-item states, and the queue's progress.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use futures::FutureExt;
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use s3_direct::engine::{
    ApiError, ChecksumChoice, Engine, Error, ItemId, ItemState, Queue, QueueEvent, QueueOptions,
    QueueProgress, ServerChecksum, SinglePutRequest, StallTimeout, UploadOptions, UploadResult,
    hash_deadline_ms,
};
use s3_direct_protocol::PartPlan;
use s3_direct_protocol::wire::ChecksumAlgorithm;

use crate::fakes::{
    BUCKET, Call, FakeClock, FakeSigner, FakeSink, FakeSource, Harness, KEY, RECEIPT,
    SINGLE_PUT_OBJECT, Script, SourceHandle, VERIFIED_ETAG, etag, fake_sum, file, single_put_url,
    verified_crc,
};
use crate::{PART, options, size_of};

const SMALL: u64 = 1000;

/// What a queue item uploads: a file of a size, or a stream from a source.
type Input = Result<u64, Rc<FakeSource>>;

fn single_put_options() -> UploadOptions {
    UploadOptions {
        single_put_threshold: 5 * 1024 * 1024,
        ..options(6)
    }
}

#[test]
fn a_small_file_goes_as_one_put_with_its_name_type_and_metadata() {
    let mut h = Harness::start(SMALL, single_put_options(), Script::default());
    h.run();
    let file = file(SMALL);
    assert_eq!(
        h.signer.calls(),
        [Call::SinglePut(SinglePutRequest {
            filename: file.filename,
            relative_path: None,
            content_type: file.content_type.clone(),
            size: SMALL,
            metadata: file.metadata,
            checksum: None,
        })],
        "no multipart upload is created"
    );
    assert_eq!(h.pending(), [1]);
    let put = &h.sink.log()[0];
    assert_eq!(put.url, single_put_url(0));
    assert_eq!(put.headers["content-type"], file.content_type);

    h.sent(1, 400);
    assert_eq!(h.progress().last().unwrap().bytes_sent, 400);
    h.store(1);
    assert_eq!(
        h.result().unwrap().unwrap(),
        UploadResult {
            key: KEY.into(),
            bucket: BUCKET.into(),
            location: SINGLE_PUT_OBJECT.into(),
            // What the server read back, and its receipt (`small.rs` has more).
            etag: VERIFIED_ETAG.into(),
            size: SMALL,
            checksum: None,
            whole_file: verified_crc(),
            receipt: Some(RECEIPT.into()),
        }
    );
    let progress = h.progress();
    let full: Vec<_> = progress.iter().filter(|p| p.bytes_sent == SMALL).collect();
    assert_eq!(
        full.len(),
        1,
        "100 % is reported once, at the end: {progress:?}"
    );
    assert_eq!((full[0].parts_done, full[0].parts_total), (1, Some(1)));
}

#[test]
fn the_threshold_is_inclusive() {
    let threshold = 3 * PART;
    let at = UploadOptions {
        single_put_threshold: threshold,
        ..options(6)
    };
    let mut h = Harness::start(threshold, at.clone(), Script::default());
    h.run();
    assert!(matches!(h.signer.calls()[..], [Call::SinglePut(_)]));
    let mut h = Harness::start(threshold + 1, at, Script::default());
    h.run();
    assert!(matches!(h.signer.calls()[0], Call::Create(_)));
}

#[test]
fn a_single_put_is_retried_and_re_signed_like_a_part() {
    let options = UploadOptions {
        stall_timeout: StallTimeout::Fixed(0.0),
        ..single_put_options()
    };
    let mut h = Harness::start(SMALL, options, Script::default());
    h.run();
    h.refuse(1, 503, "SlowDown");
    assert!(h.pending().is_empty(), "it waits before trying again");
    h.advance(h.clock.timers()[0]);
    assert_eq!(h.pending(), [1]);
    assert_eq!(
        h.sink.log()[1].url,
        single_put_url(0),
        "the URL is still good"
    );

    // The URL (900 s) expires while the PUT runs: the refusal is answered by signing again.
    h.advance(901_000.0);
    h.refuse(1, 403, "AccessDenied");
    assert_eq!(h.pending(), [1]);
    assert_eq!(h.sink.log()[2].url, single_put_url(1));
    let singles = h
        .signer
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::SinglePut(_)))
        .count();
    assert_eq!(singles, 2);
    h.store(1);
    assert_eq!(h.result().unwrap().unwrap().size, SMALL);
}

#[test]
fn a_single_put_refused_for_good_fails_with_the_status() {
    let mut h = Harness::start(SMALL, single_put_options(), Script::default());
    h.run();
    h.refuse(1, 400, "InvalidArgument");
    let e = h.error();
    // No part and no multipart upload to speak of: the file went as one PUT.
    assert_eq!(
        (e.code(), e.status(), e.part()),
        ("http_error", Some(400), None)
    );
    let message = e.to_string();
    assert!(
        message.starts_with("the file's single PUT: PUT returned 400"),
        "{message}"
    );
    assert!(!message.contains("multipart"), "{message}");
    assert_eq!(h.sink.log().len(), 1, "not worth a retry");
}

#[test]
fn a_failing_single_put_signing_call_fails_with_the_servers_code() {
    let script = Script {
        single_put_errors: vec![ApiError::Status {
            status: 403,
            code: Some("content_type_not_allowed".into()),
            message: "no".into(),
            retry_after_ms: None,
        }],
        ..Script::default()
    };
    let mut h = Harness::start(SMALL, single_put_options(), script);
    h.run();
    assert_eq!(h.error().code(), "content_type_not_allowed");
    assert!(h.sink.log().is_empty());
}

#[test]
fn cancelling_a_single_put_aborts_it_and_leaves_nothing_to_clean_up() {
    let mut h = Harness::start(SMALL, single_put_options(), Script::default());
    h.run();
    h.cancel();
    assert_eq!(h.sink.dropped(), [1]);
    assert_eq!(h.error(), Error::Aborted { cleanup: None });
    assert_eq!(h.signer.aborts(), 0);
}

#[test]
fn pausing_a_single_put_aborts_it_and_resuming_sends_it_again() {
    let mut h = Harness::start(SMALL, single_put_options(), Script::default());
    h.run();
    h.sent(1, 500);
    h.pause();
    assert_eq!(h.sink.dropped(), [1]);
    assert_eq!(h.progress().last().unwrap().phase.as_str(), "paused");
    h.resume();
    assert_eq!(h.pending(), [1]);
    assert_eq!(h.sink.log()[1].url, single_put_url(0));
    h.store(1);
    h.result().unwrap().unwrap();
    let sent: Vec<u64> = h.progress().iter().map(|p| p.bytes_sent).collect();
    assert!(sent.is_sorted(), "progress went back: {sent:?}");
}

#[test]
fn an_explicit_checksum_is_signed_into_the_single_put() {
    for (algorithm, header) in [
        (ChecksumAlgorithm::Sha256, "x-amz-checksum-sha256"),
        // Not signed by the server: sent as a plain Content-MD5, which S3 checks all the same.
        (ChecksumAlgorithm::Md5, "content-md5"),
    ] {
        let options = UploadOptions {
            checksum: ChecksumChoice::Use(algorithm),
            ..single_put_options()
        };
        let mut h = Harness::start(SMALL, options, Script::default());
        h.run();
        let Call::SinglePut(request) = &h.signer.calls()[0] else {
            panic!("a single PUT");
        };
        assert_eq!(
            request.checksum.as_deref(),
            Some(format!("{algorithm}:{}", fake_sum(0)).as_str())
        );
        assert_eq!(h.sink.log()[0].headers[header], fake_sum(0));
        h.store(1);
        assert_eq!(
            h.result().unwrap().unwrap().checksum,
            Some(format!("{algorithm}:{}", fake_sum(0))),
            "the file's own checksum"
        );
    }
}

#[test]
fn a_single_put_checksum_that_never_answers_is_asked_again_after_a_restart() {
    let options = UploadOptions {
        checksum: ChecksumChoice::Use(ChecksumAlgorithm::Sha256),
        ..single_put_options()
    };
    let script = Script {
        silent: Some((1, 1)),
        ..Script::default()
    };
    let mut h = Harness::start(SMALL, options, script);
    h.run();
    let deadline = hash_deadline_ms(30_000.0, SMALL).unwrap();
    h.advance(deadline - 1.0);
    assert!(
        h.signer.calls().is_empty(),
        "nothing is signed without the sum"
    );
    assert_eq!(h.checksummer.restarts.get(), 0, "not before the deadline");
    h.advance(1.0);
    assert_eq!(h.checksummer.restarts.get(), 1);
    assert_eq!(*h.checksummer.computed.borrow(), [0, 0], "asked again");
    let Call::SinglePut(request) = &h.signer.calls()[0] else {
        panic!("a single PUT");
    };
    assert_eq!(
        request.checksum.as_deref(),
        Some(format!("sha256:{}", fake_sum(0)).as_str())
    );
    h.store(1);
    h.result().unwrap().unwrap();
}

#[test]
fn a_single_put_checksum_that_never_answers_fails_after_the_retries() {
    let options = UploadOptions {
        checksum: ChecksumChoice::Use(ChecksumAlgorithm::Crc32c),
        ..single_put_options()
    };
    let retries = options.retry.retries;
    let script = Script {
        silent: Some((1, u32::MAX)),
        ..Script::default()
    };
    let mut h = Harness::start(SMALL, options, script);
    h.run();
    let deadline = hash_deadline_ms(30_000.0, SMALL).unwrap();
    for _ in 0..=retries {
        h.advance(deadline);
    }
    let e = h.error();
    assert_eq!((e.code(), e.part()), ("file_unreadable", Some(1)));
    assert!(
        e.to_string()
            .contains(&format!("gave no answer in time, {} times", retries + 1)),
        "{e}"
    );
    assert_eq!(h.checksummer.restarts.get(), retries);
    assert!(h.signer.calls().is_empty(), "nothing was signed");
    assert!(h.sink.log().is_empty(), "nothing was sent");
}

#[test]
fn by_default_a_single_put_reads_nothing_when_the_server_wants_no_checksum() {
    let mut h = Harness::start(SMALL, single_put_options(), Script::default());
    h.run();
    assert!(h.checksummer.computed.borrow().is_empty());
    assert_eq!(h.signer.calls().len(), 1);
    h.store(1);
    assert_eq!(h.result().unwrap().unwrap().checksum, None);
}

/// With `auto`, the server's answer names the checksum it wants, which the URL was not signed
/// for: the file is hashed and the URL asked for again with the sum, and the PUT carries it.
#[test]
fn by_default_a_single_put_follows_the_checksum_the_server_asks_for() {
    let script = Script {
        checksum: Some(ChecksumAlgorithm::Crc32c),
        ..Script::default()
    };
    let mut h = Harness::start(SMALL, single_put_options(), script);
    h.run();
    assert_eq!(*h.checksummer.computed.borrow(), [0], "hashed once");
    let requests: Vec<Option<String>> = h
        .signer
        .calls()
        .iter()
        .map(|c| match c {
            Call::SinglePut(r) => r.checksum.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    let sum = format!("crc32c:{}", fake_sum(0));
    assert_eq!(requests, [None, Some(sum.clone())]);
    let put = &h.sink.log()[0];
    assert_eq!(put.url, single_put_url(1), "the URL signed with the sum");
    assert_eq!(put.headers["x-amz-checksum-crc32c"], fake_sum(0));
    h.store(1);
    assert_eq!(h.result().unwrap().unwrap().checksum, Some(sum));
}

/// Once the server has named its checksum, the next small file is hashed first and signed with
/// its sum at once: one round trip.
#[test]
fn a_single_put_after_the_server_named_its_checksum_needs_one_signing_call() {
    let memo = Rc::new(ServerChecksum::default());
    let script = || Script {
        checksum: Some(ChecksumAlgorithm::Sha256),
        ..Script::default()
    };
    let mut first = Harness::remembering(SMALL, single_put_options(), script(), memo.clone());
    first.run();
    assert_eq!(first.signer.calls().len(), 2);
    assert_eq!(memo.get(), Some(ChecksumAlgorithm::Sha256));

    let mut next = Harness::remembering(SMALL, single_put_options(), script(), memo);
    next.run();
    let calls = next.signer.calls();
    let [Call::SinglePut(request)] = calls.as_slice() else {
        panic!("one signing call: {calls:?}");
    };
    let sum = format!("sha256:{}", fake_sum(0));
    assert_eq!(request.checksum.as_deref(), Some(sum.as_str()));
    next.store(1);
    assert_eq!(next.result().unwrap().unwrap().checksum, Some(sum));
}

#[test]
fn a_single_put_with_checksums_off_ignores_the_server() {
    let options = UploadOptions {
        checksum: ChecksumChoice::Off,
        ..single_put_options()
    };
    let script = Script {
        checksum: Some(ChecksumAlgorithm::Sha256),
        ..Script::default()
    };
    let mut h = Harness::start(SMALL, options, script);
    h.run();
    assert!(h.checksummer.computed.borrow().is_empty());
    assert_eq!(h.signer.calls().len(), 1);
    let put = &h.sink.log()[0];
    assert!(!put.headers.contains_key("x-amz-checksum-sha256"));
}

/// A queue over scripted fakes: every item gets its own fake signing server and store, all share
/// one clock and one pool.
struct QueueHarness {
    pool: LocalPool,
    queue: Queue,
    clock: Rc<FakeClock>,
    files: Rc<RefCell<BTreeMap<ItemId, (FakeSigner, FakeSink)>>>,
    /// Each item's size, or the source of a stream.
    sizes: Rc<RefCell<BTreeMap<ItemId, Input>>>,
    /// Scripts for the next attempts of an item (default: everything succeeds).
    scripts: Rc<RefCell<BTreeMap<ItemId, VecDeque<Script>>>>,
    events: Rc<RefCell<Vec<QueueEvent>>>,
    /// PUTs in the order they started: (item, part, index in that item's PUT log).
    started: Vec<(ItemId, u32)>,
    seen: BTreeMap<ItemId, usize>,
    /// Most PUTs in flight at once, over all items, as the stores saw them.
    max_in_flight: usize,
}

impl QueueHarness {
    fn new(concurrency: usize, upload: UploadOptions) -> Self {
        let pool = LocalPool::new();
        let clock = Rc::new(FakeClock::default());
        let files: Rc<RefCell<BTreeMap<ItemId, (FakeSigner, FakeSink)>>> = Rc::default();
        let sizes: Rc<RefCell<BTreeMap<ItemId, Input>>> = Rc::default();
        let scripts: Rc<RefCell<BTreeMap<ItemId, VecDeque<Script>>>> = Rc::default();
        let launch = {
            let (clock, files, sizes, scripts) =
                (clock.clone(), files.clone(), sizes.clone(), scripts.clone());
            Box::new(move |id, control: Rc<_>, on_progress, slots| {
                let size = sizes.borrow()[&id].clone();
                let script = scripts
                    .borrow_mut()
                    .get_mut(&id)
                    .and_then(VecDeque::pop_front)
                    .unwrap_or_default();
                let signer = FakeSigner::new(script);
                let plan = size
                    .as_ref()
                    .ok()
                    .and_then(|&s| PartPlan::new(s, PART).ok());
                let sink = FakeSink::new(plan);
                files
                    .borrow_mut()
                    .insert(id, (signer.clone(), sink.clone()));
                let engine = Engine::new(signer, sink, clock.clone(), upload.clone())
                    .with_random(Rc::new(|| 0.5))
                    .with_slots(slots);
                Box::pin(async move {
                    match size {
                        Ok(size) => engine.upload(&file(size), on_progress, &control).await,
                        Err(source) => {
                            let source = Rc::new(SourceHandle(source));
                            let info = file(0);
                            engine
                                .upload_stream(&info, None, source, on_progress, &control)
                                .await
                        }
                    }
                }) as futures::future::LocalBoxFuture<'static, _>
            })
        };
        let spawner = pool.spawner();
        let queue = Queue::new(
            QueueOptions {
                concurrency,
                progress_interval_ms: 100.0,
            },
            clock.clone(),
            launch,
            Box::new(move |task| spawner.spawn_local(task).expect("the pool is alive")),
        )
        .unwrap();
        let events: Rc<RefCell<Vec<QueueEvent>>> = Rc::default();
        let sink = events.clone();
        queue.set_listener(Box::new(move |e| sink.borrow_mut().push(e.clone())));
        Self {
            pool,
            queue,
            clock,
            files,
            sizes,
            scripts,
            events,
            started: Vec::new(),
            seen: BTreeMap::new(),
            max_in_flight: 0,
        }
    }

    fn add(&mut self, size: u64) -> ItemId {
        let id = self.queue.ids().len() as ItemId + 1;
        self.sizes.borrow_mut().insert(id, Ok(size));
        assert_eq!(self.queue.add(Some(size)), id);
        self.run();
        id
    }

    fn add_stream(&mut self, source: Rc<FakeSource>) -> ItemId {
        let id = self.queue.ids().len() as ItemId + 1;
        self.sizes.borrow_mut().insert(id, Err(source));
        assert_eq!(self.queue.add(None), id);
        self.run();
        id
    }

    fn run(&mut self) {
        self.pool.run_until_stalled();
        let files = self.files.borrow();
        let mut in_flight = 0;
        for (&id, (_, sink)) in files.iter() {
            let log = sink.log();
            let seen = self.seen.entry(id).or_default();
            for put in &log[*seen..] {
                self.started.push((id, put.part));
            }
            *seen = log.len();
            in_flight += sink.pending().len();
        }
        self.max_in_flight = self.max_in_flight.max(in_flight);
    }

    fn pending(&self) -> Vec<(ItemId, u32)> {
        let files = self.files.borrow();
        let mut all = Vec::new();
        for (&id, (_, sink)) in files.iter() {
            all.extend(sink.pending().into_iter().map(|p| (id, p)));
        }
        all
    }

    fn sink(&self, id: ItemId) -> FakeSink {
        self.files.borrow()[&id].1.clone()
    }

    fn signer(&self, id: ItemId) -> FakeSigner {
        self.files.borrow()[&id].0.clone()
    }

    fn store(&mut self, (id, part): (ItemId, u32)) {
        self.sink(id).reply(part, Ok(Some(etag(part))));
        self.run();
    }

    /// Stores the PUT in flight that started first (the network serves requests in order).
    fn store_oldest(&mut self) -> (ItemId, u32) {
        let pending = self.pending();
        let oldest = *self
            .started
            .iter()
            .find(|p| pending.contains(p))
            .expect("a PUT is in flight");
        self.started.retain(|p| *p != oldest);
        self.store(oldest);
        oldest
    }

    fn state(&self, id: ItemId) -> ItemState {
        self.queue.item(id).unwrap().state
    }

    fn progress_events(&self) -> Vec<QueueProgress> {
        self.events
            .borrow()
            .iter()
            .filter_map(|e| match e {
                QueueEvent::Progress(p) => Some(*p),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn small_files_added_after_a_big_one_finish_long_before_it() {
    // Ten one-part files, sent as one PUT each or as one-part multipart uploads.
    for threshold in [5 * 1024 * 1024, 0] {
        let upload = UploadOptions {
            single_put_threshold: threshold,
            ..options(6)
        };
        let mut h = QueueHarness::new(6, upload);
        let big = h.add(size_of(200));
        assert_eq!(h.pending().len(), 6, "alone, the big file uses every slot");
        let small: Vec<ItemId> = (0..10).map(|_| h.add(SMALL)).collect();

        let mut big_parts_when_small_done = None;
        while h.state(big) != ItemState::Done {
            let (id, _) = h.store_oldest();
            if id != big
                && big_parts_when_small_done.is_none()
                && small.iter().all(|&s| h.state(s) == ItemState::Done)
            {
                big_parts_when_small_done = Some(h.sink(big).stored().len());
            }
        }
        let big_parts = big_parts_when_small_done.expect("every small file finished");
        // Taking turns, ten one-PUT files need about ten of the big file's PUTs to finish;
        // without turns they would wait for all 200.
        assert!(
            big_parts <= 20,
            "threshold {threshold}: the big file stored {big_parts} parts before the small ones finished"
        );
        assert_eq!(h.max_in_flight, 6, "one limit across all files");
        assert_eq!(h.queue.slots().peak(), 6);
        assert_eq!(h.queue.slots().used(), 0, "every slot came back");
        for &s in &small {
            let calls = h.signer(s).calls();
            let single = calls.iter().any(|c| matches!(c, Call::SinglePut(_)));
            let multipart = calls.iter().any(|c| matches!(c, Call::Create(_)));
            assert_eq!(
                (single, multipart),
                (threshold > 0, threshold == 0),
                "{calls:?}"
            );
        }
        assert!(h.queue.is_idle());
    }
}

#[test]
fn the_limit_holds_across_many_multipart_files_and_progress_reaches_one_once() {
    let mut h = QueueHarness::new(4, options(4));
    let ids: Vec<ItemId> = (1..=6).map(|n| h.add(size_of(n))).collect();
    assert_eq!(
        ids.iter().map(|&id| h.state(id)).collect::<Vec<_>>(),
        [
            ItemState::Uploading,
            ItemState::Uploading,
            ItemState::Uploading,
            ItemState::Uploading,
            ItemState::Queued,
            ItemState::Queued,
        ],
        "at most `concurrency` files start at once"
    );
    let mut step = 0;
    while !h.queue.is_idle() {
        // Bytes move on every PUT in flight, as time passes.
        h.clock.advance(50.0);
        for p in h.pending() {
            h.sink(p.0).progress(p.1).sent(step * 1000 % PART);
        }
        h.run();
        let pending = h.pending();
        h.store(pending[step as usize % pending.len()]);
        step += 1;
    }
    assert_eq!(h.max_in_flight, 4);
    assert!(ids.iter().all(|&id| h.state(id) == ItemState::Done));

    let progress = h.progress_events();
    let total: u64 = (1..=6).map(size_of).sum();
    let ones = progress.iter().filter(|p| p.fraction == 1.0).count();
    assert_eq!(ones, 1, "the queue reaches 1 exactly once");
    let last = progress.last().unwrap();
    assert_eq!(
        (last.fraction, last.bytes_sent, last.bytes_total),
        (1.0, total, Some(total))
    );
    assert_eq!(last.files.done, 6);
    for pair in progress.windows(2) {
        assert!(pair[1].bytes_sent >= pair[0].bytes_sent, "{pair:?}");
    }
    assert!(progress.iter().any(|p| p.speed > 0.0 && p.eta.is_some()));
    let events = h.events.borrow();
    assert_eq!(
        events.iter().filter(|e| **e == QueueEvent::Idle).count(),
        1,
        "idle once, at the end"
    );
    assert_eq!(events.last(), Some(&QueueEvent::Idle));
    let completes = events
        .iter()
        .filter(|e| matches!(e, QueueEvent::ItemComplete { result, .. } if result.key == KEY))
        .count();
    assert_eq!(completes, 6);
}

#[test]
fn paused_items_make_room_and_resume_where_they_were() {
    let mut h = QueueHarness::new(2, options(2));
    let a = h.add(size_of(3));
    let b = h.add(size_of(3));
    let c = h.add(size_of(3));
    assert_eq!(h.state(c), ItemState::Queued);
    h.store((a, 1));

    h.queue.pause(a);
    h.run();
    assert_eq!(h.state(a), ItemState::Paused);
    // Part 1's slot went to the second file; part 2 was in flight.
    assert_eq!(h.sink(a).dropped(), [2], "its PUTs in flight are aborted");
    assert_eq!(
        h.state(c),
        ItemState::Uploading,
        "a paused file does not hold its turn"
    );

    h.queue.resume(a);
    h.run();
    assert_eq!(h.state(a), ItemState::Uploading);
    while !h.queue.is_idle() {
        h.store_oldest();
    }
    let stored = h.sink(a).stored();
    assert_eq!(
        stored.iter().filter(|&&p| p == 1).count(),
        1,
        "part 1 is not sent again"
    );
    assert!([a, b, c].iter().all(|&id| h.state(id) == ItemState::Done));
    assert!(h.queue.slots().peak() <= 2);
}

#[test]
fn a_queued_item_can_be_paused_and_cancelled_before_it_starts() {
    let mut h = QueueHarness::new(1, options(1));
    let a = h.add(size_of(2));
    let b = h.add(size_of(2));
    let c = h.add(size_of(2));
    h.queue.pause(b);
    h.queue.cancel(c);
    h.run();
    assert_eq!(h.state(b), ItemState::Paused);
    assert_eq!(h.state(c), ItemState::Cancelled);
    assert_eq!(
        h.queue.item(c).unwrap().error,
        Some(Error::Aborted { cleanup: None })
    );
    while h.state(a) != ItemState::Done {
        h.store_oldest();
    }
    assert!(
        h.queue.is_idle(),
        "a paused item does not keep the queue busy"
    );
    assert!(
        !h.files.borrow().contains_key(&b),
        "the paused item never started"
    );
    let mut idle = Box::pin(h.queue.idle());
    assert!((&mut idle).now_or_never().is_some());

    h.queue.resume(b);
    h.run();
    assert_eq!(h.state(b), ItemState::Uploading);
    let mut idle = Box::pin(h.queue.idle());
    assert!((&mut idle).now_or_never().is_none());
    h.store_oldest();
    h.store_oldest();
    assert_eq!(h.state(b), ItemState::Done);
    assert!(idle.now_or_never().is_some());
    let last = *h.progress_events().last().unwrap();
    assert_eq!(last.fraction, 1.0, "a cancelled item does not count");
    assert_eq!((last.files.done, last.files.cancelled), (2, 1));
}

#[test]
fn cancelling_a_started_item_aborts_its_upload() {
    let mut h = QueueHarness::new(2, options(2));
    let a = h.add(size_of(3));
    h.store((a, 1));
    h.queue.cancel(a);
    h.run();
    assert_eq!(h.state(a), ItemState::Cancelled);
    assert_eq!(h.signer(a).aborts(), 1, "the stored part is deleted");
    assert!(
        !h.events
            .borrow()
            .iter()
            .any(|e| matches!(e, QueueEvent::ItemError { .. })),
        "cancelling is not a failure"
    );
    assert_eq!(h.queue.slots().used(), 0);
}

#[test]
fn a_failed_item_reports_its_error_and_can_be_retried() {
    let mut h = QueueHarness::new(2, single_put_options());
    h.scripts.borrow_mut().insert(
        1,
        VecDeque::from([Script {
            single_put_errors: vec![ApiError::Status {
                status: 400,
                code: Some("invalid_filename".into()),
                message: "bad name".into(),
                retry_after_ms: None,
            }],
            ..Script::default()
        }]),
    );
    let a = h.add(SMALL);
    assert_eq!(h.state(a), ItemState::Error);
    assert_eq!(
        h.queue.item(a).unwrap().error.unwrap().code(),
        "invalid_filename"
    );
    assert!(h.events.borrow().iter().any(
        |e| matches!(e, QueueEvent::ItemError { id, error } if *id == a && error.code() == "invalid_filename")
    ));
    assert!(h.queue.is_idle(), "a failed item leaves the queue idle");
    let failed = h.progress_events().last().unwrap().files.failed;
    assert_eq!(failed, 1);

    h.queue.retry(a);
    h.run();
    assert_eq!(h.state(a), ItemState::Uploading);
    h.store_oldest();
    let item = h.queue.item(a).unwrap();
    assert_eq!((item.state, item.error), (ItemState::Done, None));
    assert_eq!(item.result.unwrap().key, KEY);
}

#[test]
fn pause_all_resume_all_and_cancel_all() {
    let mut h = QueueHarness::new(2, options(2));
    let ids: Vec<ItemId> = (0..3).map(|_| h.add(size_of(2))).collect();
    h.queue.pause_all();
    h.run();
    assert!(ids.iter().all(|&id| h.state(id) == ItemState::Paused));
    assert!(h.pending().is_empty());
    assert!(h.queue.is_idle());
    h.queue.resume_all();
    h.run();
    let states: Vec<_> = ids.iter().map(|&id| h.state(id)).collect();
    assert_eq!(
        states,
        [
            ItemState::Uploading,
            ItemState::Uploading,
            ItemState::Queued
        ]
    );
    h.queue.cancel_all();
    h.run();
    assert!(ids.iter().all(|&id| h.state(id) == ItemState::Cancelled));
    assert!(h.queue.is_idle());
    assert_eq!(h.queue.slots().used(), 0);
}

#[test]
fn listeners_may_call_back_into_the_queue() {
    let mut h = QueueHarness::new(1, single_put_options());
    let queue = h.queue.clone();
    let seen = h.events.clone();
    let sizes = h.sizes.clone();
    let added = Rc::new(RefCell::new(false));
    h.queue.set_listener(Box::new(move |e| {
        seen.borrow_mut().push(e.clone());
        if matches!(e, QueueEvent::ItemComplete { .. }) && !added.replace(true) {
            // Add the next file from inside the event, as a page might.
            sizes.borrow_mut().insert(2, Ok(SMALL));
            queue.add(Some(SMALL));
        }
    }));
    h.add(SMALL);
    h.store_oldest();
    assert_eq!(h.state(2), ItemState::Uploading);
    h.store_oldest();
    assert_eq!(h.state(2), ItemState::Done);
}

#[test]
fn queue_options_are_checked() {
    let clock = Rc::new(FakeClock::default());
    let e = Queue::new(
        QueueOptions {
            concurrency: 0,
            ..QueueOptions::default()
        },
        clock,
        Box::new(|_, _, _, _| Box::pin(async { unreachable!() })),
        Box::new(|_| {}),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "concurrency 0 is outside 1..=64");
    let e = UploadOptions {
        single_put_threshold: 6 << 30,
        ..UploadOptions::default()
    }
    .validate()
    .unwrap_err();
    assert_eq!(e.code(), "invalid_options");
}

#[test]
fn a_stream_in_the_queue_has_no_size_until_it_ends() {
    let mut h = QueueHarness::new(4, options(4));
    let file = h.add(size_of(2));
    let source = Rc::new(FakeSource::default());
    let stream = h.add_stream(source.clone());
    source.push(2 * PART);
    h.run();
    h.store((stream, 1));
    let open = *h.progress_events().last().unwrap();
    assert_eq!(
        open.bytes_total, None,
        "the queue's total is unknown while a stream is read"
    );
    assert_eq!(open.eta, None);
    assert!(open.fraction < 1.0);
    assert_eq!(h.queue.item(stream).unwrap().size, None);

    source.push(10);
    source.end();
    h.run();
    while !h.pending().is_empty() {
        h.store_oldest();
    }
    assert_eq!(h.state(file), ItemState::Done);
    assert_eq!(h.state(stream), ItemState::Done);
    let stream_size = 2 * PART + 10;
    assert_eq!(h.queue.item(stream).unwrap().size, Some(stream_size));
    let last = *h.progress_events().last().unwrap();
    let total = size_of(2) + stream_size;
    assert_eq!(
        (last.fraction, last.bytes_sent, last.bytes_total),
        (1.0, total, Some(total))
    );
}

#[test]
fn a_failed_stream_cannot_be_retried() {
    let mut h = QueueHarness::new(2, options(2));
    let source = Rc::new(FakeSource::default());
    let stream = h.add_stream(source.clone());
    source.push(PART);
    h.run();
    source.fail("recorder stopped");
    h.store((stream, 1));
    assert_eq!(h.state(stream), ItemState::Error);
    h.queue.retry(stream);
    h.run();
    assert_eq!(h.state(stream), ItemState::Error, "a stream is read once");
}
