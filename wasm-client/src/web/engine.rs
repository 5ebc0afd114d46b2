//! The engine as the browser runs it: the one place where `Uploader` (`api.rs`) and
//! `UploadQueue` (`queue.rs`) build an [`Engine`] with the browser's ports and what their uploads
//! share (the checksum worker, the server's last checksum, the stall detector, a queue's slots).
//!
//! It also keeps the one rule for resume records: a file resumes exactly when it goes as a
//! multipart upload (`UploadOptions::goes_as_one_put` is false) and `resume` is on. Only such a
//! file is fingerprinted, which reads samples of it, because a file sent as one PUT has no upload
//! to resume (the engine keeps no record for it either: `tests/engine/resume.rs`). An `Uploader`
//! sends every file in parts, so it fingerprints every file; a queue sends small files as one
//! PUT, so it fingerprints only the others.

use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;

use web_sys::Blob;

use super::checksum::{SharedHasher, WorkerChecksummer};
use super::resume::{IdbResumeStore, fingerprint};
use super::signer::HttpSigner;
use super::stream::Body;
use super::xhr::XhrSink;
use super::{BrowserClock, BrowserNetwork};
use crate::engine::{Engine, Fingerprint, ServerChecksum, Slots, StallDetector, UploadOptions};

/// What every upload of one `Uploader` (or `UploadQueue`) shares.
#[derive(Debug)]
pub(super) struct Config {
    pub(super) endpoint: String,
    pub(super) headers: BTreeMap<String, String>,
    pub(super) options: UploadOptions,
    pub(super) resume: bool,
    /// The checksum worker, started by the first upload that needs it.
    pub(super) hasher: Rc<SharedHasher>,
    /// The checksum the server asked for last, which the next upload starts hashing with.
    pub(super) server_checksum: Rc<ServerChecksum>,
    /// What every upload's PUTs have shown of the link, to judge stalls by.
    pub(super) stall: Rc<StallDetector>,
}

/// The engine an upload of the browser runs.
pub(super) type BrowserEngine = Engine<HttpSigner, XhrSink>;

/// An engine uploading `body` with `config`'s options and shared state, taking a PUT slot from
/// `slots` for every request when given (a queue's).
pub(super) fn browser_engine(config: &Config, body: Body, slots: Option<Slots>) -> BrowserEngine {
    let engine = Engine::new(
        HttpSigner::new(&config.endpoint, config.headers.clone()),
        XhrSink::new(body.clone()),
        Rc::new(BrowserClock),
        config.options.clone(),
    )
    .with_network(Rc::new(BrowserNetwork::new()))
    .with_resume(Rc::new(IdbResumeStore))
    .with_checksummer(Rc::new(WorkerChecksummer {
        body,
        hasher: config.hasher.clone(),
    }))
    .with_server_checksum(config.server_checksum.clone())
    .with_stall_detector(config.stall.clone());
    match slots {
        Some(slots) => engine.with_slots(slots),
        None => engine,
    }
}

/// The fingerprint of the file `blob` of `size` bytes, to be awaited, when it may resume (see
/// the module's doc). A file whose samples cannot be read (deleted since it was chosen) only
/// loses resuming; the upload itself then reports the real error. A plain function, not an
/// `async fn`: one state machine less in the page's module.
pub(super) fn resume_fingerprint<'a>(
    config: &Config,
    blob: &'a Blob,
    filename: &'a str,
    size: u64,
) -> Option<impl Future<Output = Option<Fingerprint>> + 'a> {
    if !config.resume || config.options.goes_as_one_put(size) {
        return None;
    }
    IdbResumeStore::open();
    Some(async move { fingerprint(blob, filename).await.ok() })
}
