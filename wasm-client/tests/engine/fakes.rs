//! Scripted fakes of the engine's ports, and a harness that drives one upload step by step.
//!
//! Nothing here sleeps or spawns threads: the upload runs on a `LocalPool` until it stalls, the
//! test looks at what it asked for, answers exactly the requests it chooses, and runs it again.
//! Every fake checks the requests it gets (the upload id and key it issued, the URL it signed for
//! that part, the byte range the plan gives the part) and panics on a wrong one.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use futures::channel::oneshot;
use futures::executor::LocalPool;
use futures::future::LocalBoxFuture;
use futures::task::LocalSpawnExt;
use s3_direct::engine::{
    ApiError, ChecksumError, Checksummer, Clock, Control, CreatedUpload, Engine, Error, FileInfo,
    Fingerprint, Network, PartMap, PartProgress, PartPut, PartSink, PartSource, Progress, PutError,
    ResumeRecord, ResumeStore, ServerChecksum, SignedBatch, Signer, SinglePutRequest, SourceError,
    StallDetector, UploadOptions, UploadResult, Watch,
};
use s3_direct_protocol::PartPlan;
use s3_direct_protocol::limits::{DEFAULT_PART_SIZE, MAX_BATCH_PARTS};
use s3_direct_protocol::wire::{
    ChecksumAlgorithm, CompleteRequest, CompleteResponse, CompletedPart, CreateMultipartRequest,
    CreateMultipartResponse, ListedPart, ObjectCompleteRequest, SignBatchResponse, SinglePutParams,
};

pub const UPLOAD_ID: &str = "upload+1/=";
pub const KEY: &str = "uploads/2026/video.mp4";
pub const BUCKET: &str = "media";
pub const LOCATION: &str = "https://store.test/media/uploads/2026/video.mp4";
pub const FINAL_ETAG: &str = "\"3858f62230ac3c915f300c664312c11f-2\"";
/// The receipt the scripted signing server answers a completion with (opaque to the engine).
pub const RECEIPT: &str = "eyJhbGciOiJFZERTQSJ9.e30.c2ln";
pub const FILENAME: &str = "video.mp4";
/// The ETag the scripted server reports for a small file it read back.
pub const VERIFIED_ETAG: &str = "\"5d41402abc4b2a76b9719d911017c592\"";

/// The token the scripted server answers with the `index`th single PUT's URL.
pub fn single_put_token(index: usize) -> String {
    format!("small-file-token-{index}")
}

/// The start of every URL the fake signer issues for `part`.
pub fn url_for(part: u32) -> String {
    format!("https://store.test/{BUCKET}/{KEY}?partNumber={part}&uploadId=u1")
}

/// The URL the fake signer issues for `part` in its `call`-th signing answer (0-based).
pub fn signed_url(part: u32, call: usize, expires: Option<u64>) -> String {
    let expires = expires.map_or(String::new(), |s| format!("&X-Amz-Expires={s}"));
    format!("{}{expires}&X-Amz-Signature=s{call}", url_for(part))
}

/// The URL the fake signer issues for `part` with the create answer.
pub fn created_url(part: u32) -> String {
    format!("{}&X-Amz-Signature=create", url_for(part))
}

/// The object URL (without its query) the fake signer issues for a single PUT.
pub const SINGLE_PUT_OBJECT: &str = "https://store.test/media/uploads/2026/video.mp4";

/// The presigned single-PUT URL of the fake signer's `call`-th answer (0-based).
pub fn single_put_url(call: usize) -> String {
    format!("{SINGLE_PUT_OBJECT}?x-id=PutObject&X-Amz-Expires=900&X-Amz-Signature=p{call}")
}

/// The ETag the harness answers `part` with.
/// The whole-file CRC32C the fake server reads back after a single PUT.
pub fn verified_crc() -> s3_direct_protocol::wire::WholeFileChecksum {
    s3_direct_protocol::wire::WholeFileChecksum {
        crc32c: Some("yZRlqg==".into()),
        crc32: None,
    }
}

pub fn etag(part: u32) -> String {
    format!("\"etag-{part}\"")
}

/// Part `part` as the store lists it after the fake sink stored it, `size` bytes long.
pub fn listed(part: u32, size: u64) -> s3_direct_protocol::wire::ListedPart {
    s3_direct_protocol::wire::ListedPart {
        part_number: part,
        etag: etag(part),
        size,
        ..Default::default()
    }
}

/// A call the signing server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Create(CreateMultipartRequest),
    Sign(Vec<u32>),
    Complete(Vec<CompletedPart>),
    Abort,
    List,
    SinglePut(SinglePutRequest),
    CompleteSingle(ObjectCompleteRequest),
}

/// Which held request to let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Create,
    Sign,
    Complete,
}

/// How the fake signing server behaves. The default answers everything at once, successfully.
#[derive(Debug)]
pub struct Script {
    /// Requests of these kinds wait until the test calls [`Harness::release`].
    pub hold: Vec<Gate>,
    /// Errors answered to the first create calls, in order.
    pub create_errors: Vec<ApiError>,
    /// Fail the sign calls with these 0-based indexes.
    pub sign_errors: Vec<(usize, ApiError)>,
    /// Lifetime written into every URL as `X-Amz-Expires`.
    pub url_expires: Option<u64>,
    /// Leave this part out of its batch's answer.
    pub omit_url: Option<u32>,
    /// Headers every batch answer carries.
    pub batch_headers: BTreeMap<String, String>,
    /// Errors answered to the first complete calls, in order.
    pub complete_errors: Vec<ApiError>,
    pub abort_error: Option<ApiError>,
    /// What listing the parts answers.
    pub listed: Result<Vec<ListedPart>, ApiError>,
    /// The checksum the server asks for when it creates the upload.
    pub checksum: Option<ChecksumAlgorithm>,
    /// The checksummer fails for this part.
    pub unreadable: Option<u32>,
    /// The checksum of this part gives no answer, ever, the first so many times it is asked for.
    pub silent: Option<(u32, u32)>,
    /// Behave like a server that ignores `checksums=` (no per-part headers).
    pub unsigned_checksums: bool,
    /// Errors answered to the first single-PUT signing calls, in order.
    pub single_put_errors: Vec<ApiError>,
    /// Sign the parts a create asks for (`presignParts`) with its answer, as s3-direct does when
    /// it wants no checksum.
    pub presign: bool,
    /// Behave like a server older than `POST /params/complete`: no token with a single PUT's URL.
    pub no_single_token: bool,
    /// Errors answered to the first completions of a single PUT, in order.
    pub complete_single_errors: Vec<ApiError>,
}

#[derive(Debug, Default)]
struct SignerState {
    script: RefCell<Script>,
    calls: RefCell<Vec<Call>>,
    held: RefCell<Vec<(Gate, oneshot::Sender<()>)>>,
    signs_in_flight: Cell<usize>,
    sign_checksums: RefCell<Vec<BTreeMap<u32, String>>>,
    sign_lengths: RefCell<Vec<BTreeMap<u32, u64>>>,
    completed_with_checksums: RefCell<Option<Vec<CompletedPart>>>,
    max_signs_in_flight: Cell<usize>,
}

/// The signing server.
#[derive(Debug, Clone, Default)]
pub struct FakeSigner(Rc<SignerState>);

impl FakeSigner {
    pub fn new(script: Script) -> Self {
        let s = Self::default();
        *s.0.script.borrow_mut() = script;
        s
    }

    pub fn calls(&self) -> Vec<Call> {
        self.0.calls.borrow().clone()
    }

    pub fn sign_calls(&self) -> Vec<Vec<u32>> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Sign(parts) => Some(parts),
                _ => None,
            })
            .collect()
    }

    /// The completion request with its checksum fields.
    pub fn completed_with_checksums(&self) -> Option<Vec<CompletedPart>> {
        self.0.completed_with_checksums.borrow().clone()
    }

    /// The checksums sent with each signing call.
    pub fn sign_checksums(&self) -> Vec<BTreeMap<u32, String>> {
        self.0.sign_checksums.borrow().clone()
    }

    /// The part lengths each sign call named, in order.
    pub fn sign_lengths(&self) -> Vec<BTreeMap<u32, u64>> {
        self.0.sign_lengths.borrow().clone()
    }

    pub fn completed(&self) -> Option<Vec<CompletedPart>> {
        self.calls().into_iter().find_map(|c| match c {
            Call::Complete(parts) => Some(parts),
            _ => None,
        })
    }

    pub fn aborts(&self) -> usize {
        self.calls().iter().filter(|c| **c == Call::Abort).count()
    }

    pub fn max_signs_in_flight(&self) -> usize {
        self.0.max_signs_in_flight.get()
    }

    fn release(&self, gate: Gate) -> bool {
        let mut held = self.0.held.borrow_mut();
        let Some(i) = held.iter().position(|(g, _)| *g == gate) else {
            return false;
        };
        let (_, tx) = held.remove(i);
        tx.send(()).is_ok()
    }

    async fn gate(&self, gate: Gate) {
        if !self.0.script.borrow().hold.contains(&gate) {
            return;
        }
        let (tx, rx) = oneshot::channel();
        self.0.held.borrow_mut().push((gate, tx));
        rx.await
            .expect("the harness never drops a held request's sender");
    }

    fn check_upload(upload: &CreateMultipartResponse) {
        assert_eq!(
            (
                upload.upload_id.as_str(),
                upload.key.as_str(),
                upload.bucket.as_str()
            ),
            (UPLOAD_ID, KEY, BUCKET),
            "the engine must pass back the upload that create returned"
        );
    }
}

/// Counts a sign request as in flight until its future finishes or is dropped.
struct SignInFlight(Rc<SignerState>);

impl SignInFlight {
    fn new(state: &Rc<SignerState>) -> Self {
        let n = state.signs_in_flight.get() + 1;
        state.signs_in_flight.set(n);
        state
            .max_signs_in_flight
            .set(state.max_signs_in_flight.get().max(n));
        Self(state.clone())
    }
}

impl Drop for SignInFlight {
    fn drop(&mut self) {
        self.0.signs_in_flight.set(self.0.signs_in_flight.get() - 1);
    }
}

impl Signer for FakeSigner {
    async fn create(&self, request: &CreateMultipartRequest) -> Result<CreatedUpload, ApiError> {
        self.0
            .calls
            .borrow_mut()
            .push(Call::Create(request.clone()));
        self.gate(Gate::Create).await;
        let mut script = self.0.script.borrow_mut();
        if !script.create_errors.is_empty() {
            return Err(script.create_errors.remove(0));
        }
        let presigned = request
            .presign_parts
            .filter(|_| script.presign && script.checksum.is_none())
            .map(|n| SignBatchResponse {
                presigned_urls: (1..=n).map(|p| (p, created_url(p))).collect(),
                expires: Some(900),
                headers: script.batch_headers.clone(),
                part_headers: BTreeMap::new(),
            });
        Ok(CreateMultipartResponse {
            key: KEY.into(),
            upload_id: UPLOAD_ID.into(),
            bucket: BUCKET.into(),
            part_size: None,
            checksum: script.checksum,
            presigned,
        }
        .into())
    }

    async fn sign_parts(
        &self,
        upload: &CreateMultipartResponse,
        parts: &[u32],
        checksums: &PartMap<String>,
        lengths: &PartMap<u64>,
    ) -> Result<SignedBatch, ApiError> {
        Self::check_upload(upload);
        assert!(
            !parts.is_empty() && parts.len() <= MAX_BATCH_PARTS,
            "batch of {} parts",
            parts.len()
        );
        assert!(parts.is_sorted(), "batch {parts:?} is not ascending");
        let index = self.sign_calls().len();
        self.0.calls.borrow_mut().push(Call::Sign(parts.to_vec()));
        let sums = checksums.iter().map(|(n, s)| (n, s.clone())).collect();
        self.0.sign_checksums.borrow_mut().push(sums);
        let lengths = lengths.iter().map(|(n, &len)| (n, len)).collect();
        self.0.sign_lengths.borrow_mut().push(lengths);
        let _in_flight = SignInFlight::new(&self.0);
        self.gate(Gate::Sign).await;
        let script = self.0.script.borrow();
        if let Some((_, e)) = script.sign_errors.iter().find(|(i, _)| *i == index) {
            return Err(e.clone());
        }
        Ok(SignBatchResponse {
            presigned_urls: parts
                .iter()
                .filter(|&&p| Some(p) != script.omit_url)
                .map(|&p| (p, signed_url(p, index, script.url_expires)))
                .collect(),
            expires: Some(900),
            headers: script.batch_headers.clone(),
            // What a server that signs checksums answers: the header each PUT must carry.
            part_headers: checksums
                .iter()
                .filter(|_| !script.unsigned_checksums)
                .map(|(p, sum)| {
                    let (algorithm, value) = sum.split_once(':').expect("ALGO:BASE64");
                    let name = match algorithm {
                        "md5" => "content-md5".to_string(),
                        other => format!("x-amz-checksum-{other}"),
                    };
                    (p, BTreeMap::from([(name, value.to_string())]))
                })
                .collect(),
        }
        .into())
    }

    async fn complete(
        &self,
        upload: &CreateMultipartResponse,
        request: &CompleteRequest,
    ) -> Result<CompleteResponse, ApiError> {
        Self::check_upload(upload);
        *self.0.completed_with_checksums.borrow_mut() = Some(request.parts.clone());
        let parts = request
            .parts
            .iter()
            .map(|p| CompletedPart {
                part_number: p.part_number,
                etag: p.etag.clone(),
                ..Default::default()
            })
            .collect();
        self.0.calls.borrow_mut().push(Call::Complete(parts));
        self.gate(Gate::Complete).await;
        let mut script = self.0.script.borrow_mut();
        if !script.complete_errors.is_empty() {
            return Err(script.complete_errors.remove(0));
        }
        Ok(CompleteResponse {
            location: LOCATION.into(),
            key: KEY.into(),
            bucket: BUCKET.into(),
            etag: FINAL_ETAG.into(),
            size: 0,
            checksum: None,
            whole_file: Default::default(),
            receipt: Some(RECEIPT.into()),
        })
    }

    async fn list_parts(
        &self,
        upload: &CreateMultipartResponse,
    ) -> Result<Vec<ListedPart>, ApiError> {
        Self::check_upload(upload);
        self.0.calls.borrow_mut().push(Call::List);
        self.0.script.borrow().listed.clone()
    }

    async fn single_put(&self, request: &SinglePutRequest) -> Result<SinglePutParams, ApiError> {
        let index = self
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::SinglePut(_)))
            .count();
        self.0
            .calls
            .borrow_mut()
            .push(Call::SinglePut(request.clone()));
        self.gate(Gate::Sign).await;
        let mut script = self.0.script.borrow_mut();
        if !script.single_put_errors.is_empty() {
            return Err(script.single_put_errors.remove(0));
        }
        let mut headers =
            BTreeMap::from([("content-type".to_string(), request.content_type.clone())]);
        // What a server that signs checksums answers (MD5 is left out, like a server that does
        // not sign it: the engine then adds Content-MD5 itself).
        if let Some((algorithm, value)) =
            request.checksum.as_deref().and_then(|c| c.split_once(':'))
            && algorithm != "md5"
            && !script.unsigned_checksums
        {
            headers.insert(format!("x-amz-checksum-{algorithm}"), value.to_string());
        }
        Ok(SinglePutParams {
            method: "PUT".into(),
            url: single_put_url(index),
            fields: BTreeMap::new(),
            headers,
            key: KEY.into(),
            bucket: BUCKET.into(),
            checksum: script.checksum,
            token: (!script.no_single_token).then(|| single_put_token(index)),
        })
    }

    async fn complete_single(
        &self,
        request: &ObjectCompleteRequest,
    ) -> Result<CompleteResponse, ApiError> {
        let size = self
            .calls()
            .iter()
            .rev()
            .find_map(|c| match c {
                Call::SinglePut(r) => Some(r.size),
                _ => None,
            })
            .expect("a single PUT's completion follows its signing");
        assert_eq!(request.key, KEY, "the key the params answer named");
        self.0
            .calls
            .borrow_mut()
            .push(Call::CompleteSingle(request.clone()));
        self.gate(Gate::Complete).await;
        let mut script = self.0.script.borrow_mut();
        if !script.complete_single_errors.is_empty() {
            return Err(script.complete_single_errors.remove(0));
        }
        Ok(CompleteResponse {
            location: LOCATION.into(),
            key: KEY.into(),
            bucket: BUCKET.into(),
            etag: VERIFIED_ETAG.into(),
            size,
            checksum: None,
            whole_file: verified_crc(),
            receipt: Some(RECEIPT.into()),
        })
    }

    async fn abort(&self, upload: &CreateMultipartResponse) -> Result<(), ApiError> {
        Self::check_upload(upload);
        self.0.calls.borrow_mut().push(Call::Abort);
        match self.0.script.borrow_mut().abort_error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

pub type Reply = Result<Option<String>, PutError>;

/// A PUT the test has not answered yet.
#[derive(Debug)]
struct PendingPut {
    reply: oneshot::Sender<Reply>,
    progress: PartProgress,
}

/// A PUT as the store received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutLog {
    pub part: u32,
    pub url: String,
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct SinkState {
    plan: Option<PartPlan>,
    pending: RefCell<BTreeMap<u32, PendingPut>>,
    log: RefCell<Vec<PutLog>>,
    /// Parts in the order the store acknowledged them.
    stored: RefCell<Vec<u32>>,
    /// Parts whose PUT future was dropped before it was answered (the request was aborted).
    dropped: RefCell<Vec<u32>>,
    in_flight: Cell<usize>,
    max_in_flight: Cell<usize>,
}

/// The store.
#[derive(Debug, Clone, Default)]
pub struct FakeSink(Rc<SinkState>);

impl FakeSink {
    pub fn new(plan: Option<PartPlan>) -> Self {
        Self(Rc::new(SinkState {
            plan,
            ..SinkState::default()
        }))
    }

    pub fn pending(&self) -> Vec<u32> {
        self.0.pending.borrow().keys().copied().collect()
    }

    pub fn log(&self) -> Vec<PutLog> {
        self.0.log.borrow().clone()
    }

    pub fn stored(&self) -> Vec<u32> {
        self.0.stored.borrow().clone()
    }

    pub fn dropped(&self) -> Vec<u32> {
        let mut d = self.0.dropped.borrow().clone();
        d.sort_unstable();
        d
    }

    pub fn max_in_flight(&self) -> usize {
        self.0.max_in_flight.get()
    }

    pub fn reply(&self, part: u32, reply: Reply) {
        let pending = self
            .0
            .pending
            .borrow_mut()
            .remove(&part)
            .unwrap_or_else(|| panic!("part {part} is not in flight"));
        if matches!(reply, Ok(Some(_))) {
            self.0.stored.borrow_mut().push(part);
        }
        pending
            .reply
            .send(reply)
            .expect("a pending PUT's future is alive");
    }

    pub fn progress(&self, part: u32) -> PartProgress {
        self.0.pending.borrow()[&part].progress.clone()
    }
}

/// Tracks one PUT future: counts it in flight and notices when it is dropped unanswered.
struct PutInFlight {
    state: Rc<SinkState>,
    part: u32,
    answered: bool,
}

impl Drop for PutInFlight {
    fn drop(&mut self) {
        self.state.in_flight.set(self.state.in_flight.get() - 1);
        if !self.answered {
            self.state.pending.borrow_mut().remove(&self.part);
            self.state.dropped.borrow_mut().push(self.part);
        }
    }
}

impl PartSink for FakeSink {
    async fn put_part(&self, put: PartPut<'_>, progress: PartProgress) -> Reply {
        let state = &self.0;
        assert!(
            put.url.starts_with(&format!("{}&", url_for(put.part)))
                || (put.part == 1
                    && put
                        .url
                        .starts_with(&format!("{SINGLE_PUT_OBJECT}?x-id=PutObject&"))),
            "part {} got another part's URL {}",
            put.part,
            put.url
        );
        assert_eq!(progress.part(), put.part);
        let single = put
            .url
            .starts_with(&format!("{SINGLE_PUT_OBJECT}?x-id=PutObject&"));
        if let Some(plan) = state.plan.as_ref().filter(|_| single) {
            assert_eq!(put.range, 0..plan.size, "a single PUT sends the whole file");
        } else if let Some(plan) = &state.plan {
            assert_eq!(
                put.range,
                plan.range(put.part),
                "byte range of part {}",
                put.part
            );
        }
        assert!(
            !state.pending.borrow().contains_key(&put.part),
            "two PUTs of part {} in flight at once",
            put.part
        );
        let (tx, rx) = oneshot::channel();
        state.pending.borrow_mut().insert(
            put.part,
            PendingPut {
                reply: tx,
                progress,
            },
        );
        state.log.borrow_mut().push(PutLog {
            part: put.part,
            url: put.url.to_owned(),
            headers: put.headers.clone(),
        });
        let n = state.in_flight.get() + 1;
        state.in_flight.set(n);
        state.max_in_flight.set(state.max_in_flight.get().max(n));
        let mut guard = PutInFlight {
            state: state.clone(),
            part: put.part,
            answered: false,
        };
        let reply = rx.await.expect("the harness answers or drops every PUT");
        guard.answered = true;
        reply
    }
}

/// Time that moves only when the test says so; timers fire when it passes their deadline.
#[derive(Debug, Default)]
pub struct FakeClock {
    now: Cell<f64>,
    timers: RefCell<Vec<(f64, oneshot::Sender<()>)>>,
}

impl FakeClock {
    /// Moves time forward and fires every timer now due (without running the upload).
    pub fn advance(&self, ms: f64) {
        self.now.set(self.now.get() + ms);
        let now = self.now.get();
        let mut timers = self.timers.borrow_mut();
        let (due, later): (Vec<_>, Vec<_>) = timers.drain(..).partition(|(t, _)| *t <= now);
        *timers = later;
        drop(timers);
        for (_, tx) in due {
            let _ = tx.send(());
        }
    }

    /// Milliseconds from now until each live timer fires, soonest first.
    pub fn timers(&self) -> Vec<f64> {
        let now = self.now.get();
        let mut t: Vec<f64> = self
            .timers
            .borrow()
            .iter()
            .filter(|(_, tx)| !tx.is_canceled())
            .map(|(t, _)| t - now)
            .collect();
        t.sort_by(f64::total_cmp);
        t
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> f64 {
        self.now.get()
    }

    fn sleep(&self, ms: f64) -> LocalBoxFuture<'static, ()> {
        let (tx, rx) = oneshot::channel();
        if ms <= 0.0 {
            let _ = tx.send(());
        } else {
            self.timers.borrow_mut().push((self.now.get() + ms, tx));
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// A network status the test switches.
#[derive(Debug)]
pub struct FakeNetwork {
    online: Cell<bool>,
    watch: Watch,
}

impl Default for FakeNetwork {
    fn default() -> Self {
        Self {
            online: Cell::new(true),
            watch: Watch::default(),
        }
    }
}

impl FakeNetwork {
    pub fn set_online(&self, online: bool) {
        self.online.set(online);
        self.watch.notify();
    }
}

impl Network for FakeNetwork {
    fn is_online(&self) -> bool {
        self.online.get()
    }

    fn changed(&self) -> LocalBoxFuture<'static, ()> {
        Box::pin(self.watch.changed())
    }
}

/// The file every test uploads, with `size` bytes.
pub fn file(size: u64) -> FileInfo {
    FileInfo {
        filename: FILENAME.into(),
        relative_path: None,
        content_type: "video/mp4".into(),
        metadata: BTreeMap::from([("origin".into(), "test".into())]),
        size,
        fingerprint: Some(fingerprint(size)),
    }
}

impl Default for Script {
    fn default() -> Self {
        Self {
            hold: Vec::new(),
            create_errors: Vec::new(),
            sign_errors: Vec::new(),
            url_expires: None,
            omit_url: None,
            batch_headers: BTreeMap::new(),
            complete_errors: Vec::new(),
            abort_error: None,
            listed: Ok(Vec::new()),
            checksum: None,
            unreadable: None,
            silent: None,
            unsigned_checksums: false,
            single_put_errors: Vec::new(),
            presign: false,
            no_single_token: false,
            complete_single_errors: Vec::new(),
        }
    }
}

/// Checksums without reading anything: the "checksum" of a part is the base64 of its range's
/// start, so tests can tell parts apart and check what was sent where.
#[derive(Debug, Default)]
pub struct FakeChecksummer {
    pub unreadable: Option<u64>,
    pub computed: RefCell<Vec<u64>>,
    /// The checksum of the part starting here gives no answer, ever, this many more times.
    pub silent: RefCell<Option<(u64, u32)>>,
    /// Calls of `restart`.
    pub restarts: std::cell::Cell<u32>,
}

/// What [`FakeChecksummer`] answers for a part starting at `start`.
pub fn fake_sum(start: u64) -> String {
    s3_direct::engine::digest::base64(&start.to_be_bytes())
}

impl Checksummer for FakeChecksummer {
    fn checksum(
        &self,
        _algorithm: ChecksumAlgorithm,
        range: std::ops::Range<u64>,
    ) -> LocalBoxFuture<'static, Result<String, ChecksumError>> {
        self.computed.borrow_mut().push(range.start);
        if let Some((start, times)) = self.silent.borrow_mut().as_mut()
            && *start == range.start
            && *times > 0
        {
            *times -= 1;
            return Box::pin(futures::future::pending());
        }
        let answer = if self.unreadable == Some(range.start) {
            Err(ChecksumError::new("NotReadableError"))
        } else {
            Ok(fake_sum(range.start))
        };
        Box::pin(async move { answer })
    }

    fn composite(
        &self,
        algorithm: ChecksumAlgorithm,
        sums: Vec<String>,
    ) -> LocalBoxFuture<'static, Result<String, ChecksumError>> {
        let answer = s3_direct::engine::digest::composite(algorithm, &sums)
            .ok_or_else(|| ChecksumError::new("a part checksum is not base64"));
        Box::pin(async move { answer })
    }

    fn restart(&self) {
        self.restarts.set(self.restarts.get() + 1);
    }
}

/// Resume records in memory.
#[derive(Debug, Default)]
pub struct MemoryResumeStore {
    pub records: RefCell<BTreeMap<String, ResumeRecord>>,
}

impl MemoryResumeStore {
    /// The one record kept, if any; panics if there are more.
    pub fn only(&self) -> Option<ResumeRecord> {
        let records = self.records.borrow();
        assert!(records.len() <= 1, "{} records", records.len());
        records.values().next().cloned()
    }
}

impl ResumeStore for MemoryResumeStore {
    fn load(&self, key: &str) -> LocalBoxFuture<'static, Option<ResumeRecord>> {
        let record = self.records.borrow().get(key).cloned();
        Box::pin(async move { record })
    }

    fn save(&self, record: &ResumeRecord) {
        self.records
            .borrow_mut()
            .insert(record.fingerprint.key(), record.clone());
    }

    fn remove(&self, key: &str) {
        self.records.borrow_mut().remove(key);
    }

    fn remove_older_than(&self, ms: f64) {
        self.records.borrow_mut().retain(|_, r| r.updated_ms >= ms);
    }
}

/// The fingerprint of the test file of `size` bytes.
pub fn fingerprint(size: u64) -> Fingerprint {
    Fingerprint {
        name: FILENAME.into(),
        size,
        last_modified: 1_700_000_000_000,
        sample_hash: "00ff".into(),
    }
}

/// A stream's producer, driven by the test: bytes are pushed (only their count matters), the
/// stream ended or failed; the engine's cuts take what was pushed.
#[derive(Debug, Default)]
pub struct FakeSource {
    /// Bytes pushed and not yet cut.
    available: Cell<u64>,
    /// The producer never waits: every cut is answered in full at once.
    endless: Cell<bool>,
    ended: Cell<bool>,
    failed: RefCell<Option<String>>,
    waker: RefCell<Option<Waker>>,
    /// Every cut answered: part and length.
    cuts: RefCell<Vec<(u32, u64)>>,
    /// Parts cut and not released.
    held: RefCell<BTreeSet<u32>>,
    max_held: Cell<usize>,
    released: RefCell<Vec<u32>>,
    /// Cuts asked for (answered or not).
    asked: Cell<u32>,
    cancelled: Cell<bool>,
}

impl FakeSource {
    /// The producer hands over `bytes` more.
    pub fn push(&self, bytes: u64) {
        self.available.set(self.available.get() + bytes);
        self.wake();
    }

    /// The producer hands over as much as is asked for, at once, forever.
    pub fn endless(&self) {
        self.endless.set(true);
        self.wake();
    }

    pub fn end(&self) {
        self.ended.set(true);
        self.wake();
    }

    pub fn fail(&self, message: &str) {
        *self.failed.borrow_mut() = Some(message.into());
        self.wake();
    }

    fn wake(&self) {
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    pub fn cuts(&self) -> Vec<(u32, u64)> {
        self.cuts.borrow().clone()
    }

    pub fn held(&self) -> Vec<u32> {
        self.held.borrow().iter().copied().collect()
    }

    pub fn max_held(&self) -> usize {
        self.max_held.get()
    }

    pub fn released(&self) -> Vec<u32> {
        self.released.borrow().clone()
    }

    /// Cuts asked for, answered or not.
    pub fn asked(&self) -> u32 {
        self.asked.get()
    }

    pub fn cancelled(&self) -> bool {
        self.cancelled.get()
    }
}

/// The engine's handle on a [`FakeSource`].
#[derive(Debug, Clone)]
pub struct SourceHandle(pub Rc<FakeSource>);

impl PartSource for SourceHandle {
    fn cut(&self, part: u32, len: u64) -> LocalBoxFuture<'static, Result<u64, SourceError>> {
        let source = self.0.clone();
        let expected = source.cuts.borrow().last().map_or(1, |&(p, _)| p + 1);
        assert_eq!(part, expected, "parts are cut in order, one at a time");
        source.asked.set(source.asked.get() + 1);
        Box::pin(poll_fn(move |cx| {
            if let Some(message) = source.failed.borrow().clone() {
                return Poll::Ready(Err(SourceError::new(message)));
            }
            let available = source.available.get();
            let got = if source.endless.get() {
                len
            } else if available >= len || source.ended.get() {
                available.min(len)
            } else {
                *source.waker.borrow_mut() = Some(cx.waker().clone());
                return Poll::Pending;
            };
            source.available.set(available.saturating_sub(got));
            source.cuts.borrow_mut().push((part, got));
            if got > 0 {
                let mut held = source.held.borrow_mut();
                held.insert(part);
                source.max_held.set(source.max_held.get().max(held.len()));
            }
            Poll::Ready(Ok(got))
        }))
    }

    fn release(&self, part: u32) {
        assert!(
            self.0.held.borrow_mut().remove(&part),
            "part {part} released but not held"
        );
        self.0.released.borrow_mut().push(part);
    }

    fn cancel(&self) {
        self.0.cancelled.set(true);
        self.0.held.borrow_mut().clear();
    }
}

/// What a harness uploads.
enum Input {
    File(u64),
    /// A stream that will hold `total` bytes (when the test knows: the store checks the parts'
    /// ranges against it), with the size the caller expects.
    Stream {
        source: Rc<FakeSource>,
        expected: Option<u64>,
        total: Option<u64>,
    },
}

/// One upload, driven step by step.
pub struct Harness {
    pool: LocalPool,
    pub signer: FakeSigner,
    pub sink: FakeSink,
    pub clock: Rc<FakeClock>,
    pub network: Rc<FakeNetwork>,
    pub control: Rc<Control>,
    pub checksummer: Rc<FakeChecksummer>,
    progress: Rc<RefCell<Vec<Progress>>>,
    result: Rc<RefCell<Option<Result<UploadResult, Error>>>>,
}

impl Harness {
    /// Sets up an upload of `size` bytes; nothing runs until [`run`](Self::run).
    pub fn start(size: u64, options: UploadOptions, script: Script) -> Self {
        Self::start_with(Input::File(size), options, script, None, None, None)
    }

    /// Sets up an upload of a stream from `source`, which will hold `total` bytes when given
    /// (the fake store then checks each part's range), expected to hold `expected`.
    pub fn streaming(
        source: Rc<FakeSource>,
        total: Option<u64>,
        expected: Option<u64>,
        options: UploadOptions,
        script: Script,
    ) -> Self {
        let input = Input::Stream {
            source,
            expected,
            total,
        };
        Self::start_with(input, options, script, None, None, None)
    }

    /// [`streaming`](Self::streaming) a spooled stream: the engine keeps resume records in
    /// `records`, and the stream has a fingerprint.
    pub fn streaming_resumable(
        source: Rc<FakeSource>,
        total: Option<u64>,
        options: UploadOptions,
        script: Script,
        records: Rc<MemoryResumeStore>,
    ) -> Self {
        let input = Input::Stream {
            source,
            expected: None,
            total,
        };
        Self::start_with(input, options, script, Some((records, 0.0)), None, None)
    }

    /// [`start`](Self::start) judging stalls with `detector`, as the uploads of one browser
    /// `Uploader` or `UploadQueue` do.
    pub fn sharing_stalls(size: u64, options: UploadOptions, detector: Rc<StallDetector>) -> Self {
        Self::start_with(
            Input::File(size),
            options,
            Script::default(),
            None,
            None,
            Some(detector),
        )
    }

    /// [`start`](Self::start) remembering the server's checksum in `memo`, as the uploads of one
    /// browser `Uploader` do.
    pub fn remembering(
        size: u64,
        options: UploadOptions,
        script: Script,
        memo: Rc<ServerChecksum>,
    ) -> Self {
        Self::start_with(Input::File(size), options, script, None, Some(memo), None)
    }

    /// [`start`](Self::start) keeping resume records in `records`, starting at clock time `now`.
    pub fn resuming(
        size: u64,
        options: UploadOptions,
        script: Script,
        records: Rc<MemoryResumeStore>,
        now: f64,
    ) -> Self {
        let resume = Some((records, now));
        Self::start_with(Input::File(size), options, script, resume, None, None)
    }

    fn start_with(
        input: Input,
        options: UploadOptions,
        script: Script,
        resume: Option<(Rc<MemoryResumeStore>, f64)>,
        memo: Option<Rc<ServerChecksum>>,
        stalls: Option<Rc<StallDetector>>,
    ) -> Self {
        let (size, part_size) = match &input {
            Input::File(size) => (
                Some(*size),
                options
                    .part_size
                    .unwrap_or_else(|| s3_direct_protocol::plan::default_part_size(*size)),
            ),
            Input::Stream {
                expected, total, ..
            } => (
                *total,
                options.part_size.unwrap_or_else(|| {
                    expected.map_or(
                        DEFAULT_PART_SIZE,
                        s3_direct_protocol::plan::default_part_size,
                    )
                }),
            ),
        };
        let plan = size.and_then(|size| PartPlan::new(size, part_size).ok());
        let checksummer = Rc::new(FakeChecksummer {
            unreadable: script
                .unreadable
                .and_then(|p| Some(plan.as_ref()?.range(p).start)),
            silent: RefCell::new(
                script
                    .silent
                    .and_then(|(p, times)| Some((plan.as_ref()?.range(p).start, times))),
            ),
            ..FakeChecksummer::default()
        });
        let signer = FakeSigner::new(script);
        let sink = FakeSink::new(plan);
        let clock = Rc::new(FakeClock::default());
        let network = Rc::new(FakeNetwork::default());
        let control = Control::new();
        let progress = Rc::new(RefCell::new(Vec::new()));
        let result = Rc::new(RefCell::new(None));

        // Jitter is always the middle of its range: delays are 3/4 of the nominal backoff.
        let mut engine = Engine::new(signer.clone(), sink.clone(), clock.clone(), options)
            .with_network(network.clone())
            .with_random(Rc::new(|| 0.5))
            .with_checksummer(checksummer.clone());
        if let Some((records, now)) = resume {
            clock.advance(now);
            engine = engine.with_resume(records);
        }
        if let Some(memo) = memo {
            engine = engine.with_server_checksum(memo);
        }
        if let Some(detector) = stalls {
            engine = engine.with_stall_detector(detector);
        }
        let on_progress = {
            let progress = progress.clone();
            Box::new(move |p: &Progress| progress.borrow_mut().push(*p))
        };
        let out = result.clone();
        let pool = LocalPool::new();
        let upload_control = control.clone();
        pool.spawner()
            .spawn_local(async move {
                let r = match input {
                    Input::File(size) => {
                        engine
                            .upload(&file(size), on_progress, &upload_control)
                            .await
                    }
                    Input::Stream {
                        source, expected, ..
                    } => {
                        let source = Rc::new(SourceHandle(source));
                        engine
                            .upload_stream(&file(0), expected, source, on_progress, &upload_control)
                            .await
                    }
                };
                *out.borrow_mut() = Some(r);
            })
            .expect("the pool is alive");
        Self {
            pool,
            signer,
            sink,
            clock,
            network,
            control,
            checksummer,
            progress,
            result,
        }
    }

    /// Moves the clock forward (firing due timers) and runs.
    pub fn advance(&mut self, ms: f64) {
        self.clock.advance(ms);
        self.run();
    }

    /// The store answers the PUT of `part` with `status` and an S3 error `code`.
    pub fn refuse(&mut self, part: u32, status: u16, code: &str) {
        let body = format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code></Error>");
        self.reply(part, Err(PutError::status(status, body)));
    }

    pub fn pause(&mut self) {
        self.control.pause();
        self.run();
    }

    pub fn resume(&mut self) {
        self.control.resume();
        self.run();
    }

    pub fn set_online(&mut self, online: bool) {
        self.network.set_online(online);
        self.run();
    }

    /// Runs the upload until it waits for something the test controls.
    pub fn run(&mut self) {
        self.pool.run_until_stalled();
    }

    /// Part numbers whose PUT is in flight.
    pub fn pending(&self) -> Vec<u32> {
        self.sink.pending()
    }

    /// Answers the PUT of `part` and runs.
    pub fn reply(&mut self, part: u32, reply: Reply) {
        self.sink.reply(part, reply);
        self.run();
    }

    /// The store acknowledges `part` with its ETag.
    pub fn store(&mut self, part: u32) {
        self.reply(part, Ok(Some(etag(part))));
    }

    /// The PUT of `part` reports `bytes` sent.
    pub fn sent(&mut self, part: u32, bytes: u64) {
        self.sink.progress(part).sent(bytes);
        self.run();
    }

    /// Lets one held request of kind `gate` through, and runs.
    pub fn release(&mut self, gate: Gate) {
        assert!(self.signer.release(gate), "no {gate:?} request is held");
        self.run();
    }

    /// Fires the cancel signal without running.
    pub fn signal_cancel(&mut self) {
        self.control.cancel();
    }

    /// Fires the cancel signal and runs.
    pub fn cancel(&mut self) {
        self.signal_cancel();
        self.run();
    }

    pub fn result(&self) -> Option<Result<UploadResult, Error>> {
        self.result.borrow().clone()
    }

    /// The upload's error; panics if it has not failed.
    pub fn error(&self) -> Error {
        match self.result() {
            Some(Err(e)) => e,
            other => panic!("expected the upload to have failed, got {other:?}"),
        }
    }

    pub fn progress(&self) -> Vec<Progress> {
        self.progress.borrow().clone()
    }

    /// Runs, then stores whichever in-flight part `pick` chooses, until the upload ends.
    pub fn finish(&mut self, mut pick: impl FnMut(&[u32]) -> u32) -> Result<UploadResult, Error> {
        self.run();
        loop {
            if let Some(r) = self.result() {
                return r;
            }
            let pending = self.pending();
            assert!(!pending.is_empty(), "the upload waits, but not for a PUT");
            let part = pick(&pending);
            self.store(part);
        }
    }
}
