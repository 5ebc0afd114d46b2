//! The JS API: `new Uploader(options).upload(file, options)`, and `start(file, options)` for an
//! [`UploadHandle`] that can pause, resume and cancel.
//!
//! Only wiring: options are read into the engine's types, the engine runs with the browser's
//! ports, and its result or error is converted back. Types the generated `.d.ts` cannot derive
//! from Rust are declared in the TypeScript section below and referenced by name.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;
use web_sys::{AbortSignal, Blob, File, ReadableStream};

use super::convert::{JsOptions, error_to_js, progress_to_js, relative_path, result_to_js};
use super::engine::{Config, browser_engine, resume_fingerprint};
use super::resume::IdbResumeStore;
use super::stream::{Body, StreamSource};
use crate::engine::error::Quoted;
use crate::engine::{
    ChecksumChoice, Control, Error, FileInfo, Fingerprint, Progress, RetryPolicy, RunState,
    StallDetector, StallTimeout, UploadOptions,
};
use s3_direct_protocol::wire::ChecksumAlgorithm;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** Options of an {@link Uploader}. */
export interface UploaderOptions {
  /** Base URL of the s3-direct signing API. Default `"/s3"` (same origin). */
  endpoint?: string;
  /** Most part uploads in flight at once, 1 to 64. Default 6. */
  concurrency?: number;
  /**
   * Preferred part size in bytes, 5 MiB to 5 GiB. Default: by the file's size, about 16 parts
   * of 8 to 16 MiB (8 MiB up to 128 MiB, 16 MiB from 256 MiB). Grown automatically when a
   * file would otherwise need more than 10,000 parts.
   */
  partSize?: number;
  /** Extra headers sent with every call to the signing API, e.g. `Authorization`. */
  headers?: Record<string, string>;
  /**
   * Failed attempts of one part (or failed calls to the signing API in a row) tolerated before
   * the upload fails; the count restarts whenever the part gets further than before. Default 6.
   * Network errors, stalls, 5xx, 408, 429, `SlowDown` and `RequestTimeout` are retried; an
   * expired URL is re-signed without counting; other 4xx fail at once.
   */
  retries?: number;
  /** Milliseconds before the first retry; doubles with each further one, with jitter. Default 1000. */
  retryDelay?: number;
  /** Longest wait between two attempts in milliseconds (a `Retry-After` may be longer). Default 30000. */
  maxRetryDelay?: number;
  /**
   * Milliseconds without bytes moving after which a part is aborted and retried, whatever the
   * link; 0 never. Default: adapted to the link, four times the longest of the latest 64 gaps
   * between progress events the uploads saw, at least 4 s and at most 30 s (30 s for a part
   * still waiting for its connection; for the store's answer after its last byte, 30 s plus
   * the time it took to send).
   */
  stallTimeout?: number;
  /**
   * Keep a resume record in IndexedDB and, when the same file (same name, size, modification
   * time and sampled bytes) is uploaded again after a reload or crash, send only the parts the
   * store lacks. Default true.
   */
  resume?: boolean;
  /**
   * Checksum each part in a Web Worker and sign it into the part's URL, so the store refuses a
   * body damaged on the way: `"auto"` (default) uses what the signing server asks for (it knows
   * what its store verifies), `"off"` reads nothing, or name one of `"md5"` (Content-MD5, checked
   * by every S3-compatible store), `"crc32"`, `"crc32c"`, `"sha256"` (x-amz-checksum-*).
   */
  checksum?: "auto" | "off" | "md5" | "crc32" | "crc32c" | "sha256";
}

/** Options of one {@link Uploader.upload} call. */
export interface UploadOptions {
  /** Called as bytes go out, throttled to about 10 calls a second, and when a part is stored. */
  onProgress?: (progress: UploadProgress) => void;
  /** Aborting it cancels the upload and deletes its stored parts (and cancels a stream). */
  signal?: AbortSignal;
  /** Name sent to the server. Default: the `File`'s name; required for a plain `Blob` and a stream. */
  filename?: string;
  /**
   * For a file of a folder the user chose: its path within that folder, `/`-separated and ending
   * with the file's name (`photos/2024/a.jpg`); the object key keeps the folders. Default: the
   * `File`'s `webkitRelativePath` (set by `<input webkitdirectory>` and dropped folders), if any.
   */
  relativePath?: string;
  /** MIME type of the object. Default: the Blob's `type`; for a stream, the server's default. */
  contentType?: string;
  /**
   * For a stream: about how many bytes it will hold, a hint for the part size (a stream may end
   * before it or go past it). Without it (or `partSize`), a stream's parts are 8 MiB, so it may
   * hold at most 10,000 × 8 MiB = 80 GiB; past that the upload fails with `stream_too_large`.
   * Ignored for a `Blob`, whose size is known.
   */
  expectedSize?: number;
  /** S3 user metadata (`x-amz-meta-*`). */
  metadata?: Record<string, string>;
  /**
   * For bytes the caller keeps itself (a stream it spools, see `s3-direct/spool`): the name of
   * the upload's resume record in place of the file's fingerprint. A stream uploaded with it
   * keeps its record and, when it fails (not cancelled), its multipart upload; a `File` of the
   * same bytes uploaded later with the same key resumes it, sending only the parts the store
   * lacks. Ignored with `resume: false`.
   */
  resumeKey?: string;
}

/**
 * Progress of an upload. Numbers never decrease, and `bytesSent === bytesTotal` is reported only
 * once the object is complete. For a stream, `bytesTotal` and `partsTotal` are `null` until the
 * stream ends.
 */
export interface UploadProgress {
  /** Bytes handed to the network: stored parts plus what in-flight parts have sent. */
  bytesSent: number;
  /** Bytes of parts the store has acknowledged. */
  bytesConfirmed: number;
  /** The object's size; `null` while a stream has not ended. */
  bytesTotal: number | null;
  partsDone: number;
  /** `null` while a stream has not ended. */
  partsTotal: number | null;
  /** Bytes per second over the last few seconds; 0 while unknown. */
  speed: number;
  /** Seconds left at the current speed; `null` while unknown. */
  eta: number | null;
  /** What the upload is doing. */
  phase: "uploading" | "paused" | "offline" | "completing" | "done";
}

/** A completed upload. */
export interface UploadResult {
  key: string;
  bucket: string;
  /** URL of the object. */
  location: string;
  /** The object's ETag (for multipart objects not an MD5 of the content). */
  etag: string;
  size: number;
  /**
   * `ALGO:BASE64-N`: the checksum of the parts' checksums (S3's composite form), when parts were
   * checksummed; for a file sent as one PUT, the store's `ALGO:BASE64` when it reports one, else
   * the file's own when it was checksummed; otherwise `null`.
   */
  checksum: string | null;
  /**
   * The CRC32C of the whole object, base64 of its 4 big-endian bytes (S3's form), whatever the
   * part size: the server combines it from the part CRCs the store verified. Set for an upload
   * with `checksum: "crc32c"` on a store that verifies CRC checksums; otherwise `null`.
   */
  crc32c: string | null;
  /** The same for CRC32 parts (`checksum: "crc32"`). */
  crc32: string | null;
  /**
   * The signing server's receipt of the stored object: a compact JWS (`alg: EdDSA`) naming its
   * bucket, key, size, ETag, content type and checksum and the caller, which a backend verifies
   * with the keys at `/.well-known/jwks.json`. A file sent as one PUT gets one too (the server
   * reads it back first); `null` only from a server older than that (it answers no token).
   */
  receipt: string | null;
}

/** Stable codes of {@link S3DirectError}; codes sent by the signing server pass through. */
export type S3DirectErrorCode =
  | "aborted"
  | "missing_etag"
  | "http_error"
  | "network_error"
  | "stalled"
  | "file_unreadable"
  | "list_failed"
  | "create_failed"
  | "sign_failed"
  | "complete_failed"
  | "invalid_options"
  | "file_too_large"
  | "stream_failed"
  | "stream_too_large"
  | (string & {});

/** What an upload rejects with: an `Error` whose `name` is `"S3DirectError"`. */
export interface S3DirectError extends Error {
  name: "S3DirectError";
  code: S3DirectErrorCode;
  /** HTTP status, when an answer caused the failure. */
  status?: number;
  /** Part number, when the failure belongs to one part. */
  part?: number;
}
"#;

// The option objects as opaque JS values typed by the section above. Unlike
// `unchecked_param_type`, an `Option` of an imported type keeps the parameter optional (`?`) in
// the generated `.d.ts`.
#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "UploaderOptions")]
    pub type UploaderOptionsArg;
    #[wasm_bindgen(typescript_type = "UploadOptions")]
    pub type UploadOptionsArg;
}

/// Uploads files to S3-compatible storage through an s3-direct signing server.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Uploader {
    config: Rc<Config>,
}

#[wasm_bindgen]
impl Uploader {
    /// Throws an `S3DirectError` with code `invalid_options` when an option cannot work.
    #[wasm_bindgen(constructor)]
    pub fn new(options: Option<UploaderOptionsArg>) -> Result<Uploader, JsValue> {
        super::install_panic_hook();
        let options = options.map_or(JsValue::UNDEFINED, JsValue::from);
        let config = read_config(&options).map_err(|e| error_to_js(&e))?;
        if config.resume {
            // Opening the database takes tens of milliseconds the first time in a page; begun
            // now, the first upload's resume lookup does not wait for it.
            IdbResumeStore::open();
        }
        Ok(Uploader {
            config: Rc::new(config),
        })
    }

    /// Uploads `file`: a `File`, a `Blob` with `options.filename`, or a `ReadableStream` of
    /// `Uint8Array` chunks with `options.filename`, sent as it is read (about concurrency + 1
    /// parts held in memory; a stream that errors aborts the upload with `stream_failed`; see the
    /// README's "Streams"). Resolves when the object is complete; rejects with an
    /// `S3DirectError`. Same as `start(file, options).promise`.
    #[wasm_bindgen(unchecked_return_type = "Promise<UploadResult>")]
    pub fn upload(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Blob | ReadableStream<Uint8Array>")] file: JsValue,
        options: Option<UploadOptionsArg>,
    ) -> js_sys::Promise {
        self.start(file, options).promise
    }

    /// Starts uploading `file` (as in `upload`) and returns a handle to pause, resume or cancel
    /// it. The upload's outcome is `handle.promise`.
    pub fn start(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Blob | ReadableStream<Uint8Array>")] file: JsValue,
        options: Option<UploadOptionsArg>,
    ) -> UploadHandle {
        let config = self.config.clone();
        let options = options.map_or(JsValue::UNDEFINED, JsValue::from);
        let control = Control::new();
        let last = Rc::new(RefCell::new(None));
        let promise = {
            let control = control.clone();
            let last = last.clone();
            wasm_bindgen_futures::future_to_promise(async move {
                upload(&config, file, &options, &control, last)
                    .await
                    .map(|r| result_to_js(&r))
                    .map_err(|e| error_to_js(&e))
            })
        };
        UploadHandle {
            control,
            promise,
            last,
        }
    }
}

/// One running upload.
#[wasm_bindgen]
#[derive(Debug)]
pub struct UploadHandle {
    control: Rc<Control>,
    promise: js_sys::Promise,
    last: Rc<RefCell<Option<Progress>>>,
}

#[wasm_bindgen]
impl UploadHandle {
    /// Resolves with the `UploadResult`; rejects with an `S3DirectError`.
    #[wasm_bindgen(getter, unchecked_return_type = "Promise<UploadResult>")]
    pub fn promise(&self) -> js_sys::Promise {
        self.promise.clone()
    }

    /// Stops starting parts and aborts those in flight; what is stored stays stored.
    pub fn pause(&self) {
        self.control.pause();
    }

    /// Continues a paused upload with the parts not yet stored.
    pub fn resume(&self) {
        self.control.resume();
    }

    /// Aborts the upload and deletes its stored parts (and cancels a stream being uploaded); the
    /// promise rejects with code `aborted`.
    pub fn cancel(&self) {
        self.control.cancel();
    }

    /// `"running"`, `"paused"` or `"cancelled"`: what was asked, not what the upload is doing
    /// (see `progress.phase`).
    #[wasm_bindgen(
        getter,
        unchecked_return_type = "\"running\" | \"paused\" | \"cancelled\""
    )]
    pub fn state(&self) -> String {
        match self.control.state() {
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Cancelled => "cancelled",
        }
        .into()
    }

    /// The last progress reported, or `null` before the first.
    #[wasm_bindgen(getter, unchecked_return_type = "UploadProgress | null")]
    pub fn progress(&self) -> JsValue {
        self.last
            .borrow()
            .as_ref()
            .map_or(JsValue::NULL, progress_to_js)
    }
}

pub(super) fn read_config(options: &JsValue) -> Result<Config, Error> {
    let o = JsOptions::new(options, "options")?;
    let defaults = UploadOptions::default();
    let concurrency = match o.whole_number("concurrency")? {
        // Out-of-range values saturate and are then refused by `validate`, which names the range.
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => defaults.concurrency,
    };
    let retries = match o.whole_number("retries")? {
        Some(n) => u32::try_from(n).unwrap_or(u32::MAX),
        None => defaults.retry.retries,
    };
    let options = UploadOptions {
        part_size: o.whole_number("partSize")?,
        concurrency,
        retry: RetryPolicy {
            retries,
            base_delay_ms: o
                .millis("retryDelay")?
                .unwrap_or(defaults.retry.base_delay_ms),
            max_delay_ms: o
                .millis("maxRetryDelay")?
                .unwrap_or(defaults.retry.max_delay_ms),
        },
        stall_timeout: o
            .millis("stallTimeout")?
            .map_or(defaults.stall_timeout, StallTimeout::Fixed),
        checksum: match o.string("checksum")?.as_deref() {
            None | Some("auto") => ChecksumChoice::Auto,
            Some("off") => ChecksumChoice::Off,
            Some(name) => ChecksumChoice::Use(
                ChecksumAlgorithm::ALL
                    .into_iter()
                    .find(|a| a.as_str() == name)
                    .ok_or_else(|| {
                        Error::InvalidOptions(format!(
                            "options.checksum must be \"auto\", \"off\", \"md5\", \"crc32\", \
                             \"crc32c\" or \"sha256\", got {}",
                            Quoted(name)
                        ))
                    })?,
            ),
        },
        ..defaults
    };
    options.validate()?;
    Ok(Config {
        endpoint: o.string("endpoint")?.unwrap_or_else(|| "/s3".into()),
        headers: o.string_map("headers")?,
        options,
        resume: o.boolean("resume")?.unwrap_or(true),
        hasher: Rc::default(),
        server_checksum: Rc::default(),
        stall: StallDetector::new(),
    })
}

async fn upload(
    config: &Config,
    input: JsValue,
    options: &JsValue,
    control: &Rc<Control>,
    last: Rc<RefCell<Option<Progress>>>,
) -> Result<crate::engine::UploadResult, Error> {
    let o = JsOptions::new(options, "upload options")?;
    let on_progress = o.function("onProgress")?;
    let signal: Option<AbortSignal> = o.instance("signal", "AbortSignal")?;
    let blob = input.dyn_ref::<Blob>();
    if blob.is_none() && !input.is_instance_of::<ReadableStream>() {
        return Err(Error::InvalidOptions(
            "the file to upload must be a File, a Blob or a ReadableStream".into(),
        ));
    }
    let filename = match (o.string("filename")?, input.dyn_ref::<File>()) {
        (Some(name), _) => name,
        (None, Some(file)) => file.name(),
        (None, None) => {
            return Err(Error::InvalidOptions(
                "a Blob or stream has no name; pass upload options.filename".into(),
            ));
        }
    };
    let mut info = FileInfo {
        relative_path: relative_path(&o, &input, &filename)?,
        filename,
        content_type: o
            .string("contentType")?
            .or_else(|| blob.map(Blob::type_))
            .unwrap_or_default(),
        metadata: o.string_map("metadata")?,
        // Blob sizes are whole numbers of bytes below 2^53.
        size: blob.map_or(0, |b| b.size() as u64),
        fingerprint: None,
    };
    let report = Box::new(move |p: &Progress| {
        *last.borrow_mut() = Some(*p);
        if let Some(f) = &on_progress
            && let Err(e) = f.call1(&JsValue::UNDEFINED, &progress_to_js(p))
        {
            // A failing progress handler is the page's bug; it must not fail the upload.
            web_sys::console::error_2(&"s3-direct: onProgress threw".into(), &e);
        }
    });
    // A caller that keeps the bytes itself (a spool) names them: one fixed fingerprint for the
    // stream and for the file read back later, so the file resumes the stream's upload.
    let resume_key = o
        .string("resumeKey")?
        .filter(|_| config.resume)
        .map(|name| Fingerprint {
            name,
            size: 0,
            last_modified: 0,
            sample_hash: String::new(),
        });
    let Some(blob) = blob else {
        info.fingerprint = resume_key;
        let expected = o.whole_number("expectedSize")?;
        // Checked above: what is not a Blob is a stream. Its reader is taken last, so that a
        // wrong option leaves the stream as it was.
        let stream = input.unchecked_ref::<ReadableStream>();
        let source = Rc::new(StreamSource::new(stream).ok_or_else(|| {
            Error::InvalidOptions("the stream is locked: another reader is reading it".into())
        })?);
        let _listener = cancel_on(signal, control);
        let engine = browser_engine(config, Body::Stream(source.clone()), None);
        return engine
            .upload_stream(&info, expected, source, report, control)
            .await;
    };
    if resume_key.is_some() {
        info.fingerprint = resume_key;
    } else if let Some(fingerprint) = resume_fingerprint(config, blob, &info.filename, info.size) {
        info.fingerprint = fingerprint.await;
    }

    let _listener = cancel_on(signal, control);
    let engine = browser_engine(config, Body::File(blob.clone()), None);
    engine.upload(&info, report, control).await
}

/// Cancels `control` when `signal` aborts (at once if it already has). Returns the listener that
/// must stay alive meanwhile; dropping it detaches it.
fn cancel_on(signal: Option<AbortSignal>, control: &Rc<Control>) -> Option<AbortListener> {
    match signal {
        Some(signal) if signal.aborted() => {
            control.cancel();
            None
        }
        Some(signal) => {
            let control = control.clone();
            let closure = Closure::<dyn FnMut()>::new(move || control.cancel());
            let added =
                signal.add_event_listener_with_callback("abort", closure.as_ref().unchecked_ref());
            added.is_ok().then_some(AbortListener { signal, closure })
        }
        None => None,
    }
}

/// An `abort` listener on the caller's `AbortSignal`, removed when dropped so a long-lived
/// signal does not keep every finished upload's closure alive.
struct AbortListener {
    signal: AbortSignal,
    closure: Closure<dyn FnMut()>,
}

impl Drop for AbortListener {
    fn drop(&mut self) {
        let _ = self
            .signal
            .remove_event_listener_with_callback("abort", self.closure.as_ref().unchecked_ref());
    }
}
