//! The JS API: `new Uploader(options).upload(file, options)`.
//!
//! Only wiring: options are read into the engine's types, the engine runs with the browser's
//! ports, and its result or error is converted back. Types the generated `.d.ts` cannot derive
//! from Rust are declared in the TypeScript section below and referenced by name.

use std::collections::BTreeMap;
use std::rc::Rc;

use futures::channel::oneshot;
use futures::future;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;
use web_sys::{AbortSignal, Blob, File};

use super::BrowserClock;
use super::convert::{JsOptions, error_to_js, progress_to_js, result_to_js};
use super::signer::HttpSigner;
use super::xhr::XhrSink;
use crate::engine::{Engine, Error, FileInfo, UploadOptions};

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** Options of an {@link Uploader}. */
export interface UploaderOptions {
  /** Base URL of the s3-direct signing API. Default `"/s3"` (same origin). */
  endpoint?: string;
  /** Most part uploads in flight at once, 1 to 64. Default 6. */
  concurrency?: number;
  /**
   * Preferred part size in bytes, 5 MiB to 5 GiB. Default 8 MiB. Grown automatically when a
   * file would otherwise need more than 10,000 parts.
   */
  partSize?: number;
  /** Extra headers sent with every call to the signing API, e.g. `Authorization`. */
  headers?: Record<string, string>;
}

/** Options of one {@link Uploader.upload} call. */
export interface UploadOptions {
  /** Called as bytes go out, throttled to about 10 calls a second, and when a part is stored. */
  onProgress?: (progress: UploadProgress) => void;
  /** Aborting it cancels the upload and deletes its stored parts. */
  signal?: AbortSignal;
  /** Name sent to the server. Default: the `File`'s name; required for a plain `Blob`. */
  filename?: string;
  /** MIME type of the object. Default: the Blob's `type`. */
  contentType?: string;
  /** S3 user metadata (`x-amz-meta-*`). */
  metadata?: Record<string, string>;
}

/**
 * Progress of an upload. Numbers never decrease, and `bytesSent === bytesTotal` is reported only
 * once the object is complete.
 */
export interface UploadProgress {
  /** Bytes handed to the network: stored parts plus what in-flight parts have sent. */
  bytesSent: number;
  /** Bytes of parts the store has acknowledged. */
  bytesConfirmed: number;
  bytesTotal: number;
  partsDone: number;
  partsTotal: number;
  /** Bytes per second over the last few seconds; 0 while unknown. */
  speed: number;
  /** Seconds left at the current speed; `null` while unknown. */
  eta: number | null;
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
}

/** Stable codes of {@link S3DirectError}; codes sent by the signing server pass through. */
export type S3DirectErrorCode =
  | "aborted"
  | "missing_etag"
  | "http_error"
  | "network_error"
  | "create_failed"
  | "sign_failed"
  | "complete_failed"
  | "invalid_options"
  | "file_too_large"
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

/// What every upload of one `Uploader` shares.
#[derive(Debug)]
struct Config {
    endpoint: String,
    headers: BTreeMap<String, String>,
    options: UploadOptions,
}

#[wasm_bindgen]
impl Uploader {
    /// Throws an `S3DirectError` with code `invalid_options` when an option cannot work.
    #[wasm_bindgen(constructor)]
    pub fn new(options: Option<UploaderOptionsArg>) -> Result<Uploader, JsValue> {
        super::install_panic_hook();
        let options = options.map_or(JsValue::UNDEFINED, JsValue::from);
        read_config(&options)
            .map(|config| Uploader {
                config: Rc::new(config),
            })
            .map_err(|e| error_to_js(&e))
    }

    /// Uploads `file` (a `File`, or a `Blob` with `options.filename`). Resolves when the object
    /// is complete; rejects with an `S3DirectError`.
    #[wasm_bindgen(unchecked_return_type = "Promise<UploadResult>")]
    pub fn upload(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Blob")] file: JsValue,
        options: Option<UploadOptionsArg>,
    ) -> js_sys::Promise {
        let config = self.config.clone();
        let options = options.map_or(JsValue::UNDEFINED, JsValue::from);
        wasm_bindgen_futures::future_to_promise(async move {
            upload(&config, file, &options)
                .await
                .map(|r| result_to_js(&r))
                .map_err(|e| error_to_js(&e))
        })
    }
}

fn read_config(options: &JsValue) -> Result<Config, Error> {
    let o = JsOptions::new(options, "options")?;
    let defaults = UploadOptions::default();
    let concurrency = match o.whole_number("concurrency")? {
        // Out-of-range values saturate and are then refused by `validate`, which names the range.
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => defaults.concurrency,
    };
    let options = UploadOptions {
        part_size: o.whole_number("partSize")?.unwrap_or(defaults.part_size),
        concurrency,
        ..defaults
    };
    options.validate()?;
    Ok(Config {
        endpoint: o.string("endpoint")?.unwrap_or_else(|| "/s3".into()),
        headers: o.string_map("headers")?,
        options,
    })
}

async fn upload(
    config: &Config,
    file: JsValue,
    options: &JsValue,
) -> Result<crate::engine::UploadResult, Error> {
    let blob: Blob = file
        .dyn_into()
        .map_err(|_| Error::InvalidOptions("the file to upload must be a File or a Blob".into()))?;
    let o = JsOptions::new(options, "upload options")?;
    let on_progress = o.function("onProgress")?;
    let signal: Option<AbortSignal> = o.instance("signal", "AbortSignal")?;
    let filename = match (o.string("filename")?, blob.dyn_ref::<File>()) {
        (Some(name), _) => name,
        (None, Some(file)) => file.name(),
        (None, None) => {
            return Err(Error::InvalidOptions(
                "a Blob has no name; pass upload options.filename".into(),
            ));
        }
    };
    let info = FileInfo {
        filename,
        content_type: o.string("contentType")?.unwrap_or_else(|| blob.type_()),
        metadata: o.string_map("metadata")?,
        // Blob sizes are whole numbers of bytes below 2^53.
        size: blob.size() as u64,
    };

    let (cancelled, _listener) = cancel_on(signal);
    let engine = Engine::new(
        HttpSigner::new(&config.endpoint, config.headers.clone()),
        XhrSink::new(blob),
        Rc::new(BrowserClock),
        config.options.clone(),
    );
    let report = Box::new(move |p: &crate::engine::Progress| {
        if let Some(f) = &on_progress
            && let Err(e) = f.call1(&JsValue::UNDEFINED, &progress_to_js(p))
        {
            // A failing progress handler is the page's bug; it must not fail the upload.
            web_sys::console::error_2(&"s3-direct: onProgress threw".into(), &e);
        }
    });
    engine.upload(&info, report, cancelled).await
}

/// A future that resolves when `signal` aborts (at once if it already has), and the listener
/// that must stay alive meanwhile; dropping the listener detaches it.
fn cancel_on(signal: Option<AbortSignal>) -> (impl Future<Output = ()>, Option<AbortListener>) {
    let (tx, rx) = oneshot::channel::<()>();
    let listener = match signal {
        Some(signal) if signal.aborted() => {
            let _ = tx.send(());
            None
        }
        Some(signal) => {
            let mut tx = Some(tx);
            let closure = Closure::<dyn FnMut()>::new(move || {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            });
            let added =
                signal.add_event_listener_with_callback("abort", closure.as_ref().unchecked_ref());
            added.is_ok().then_some(AbortListener { signal, closure })
        }
        None => None,
    };
    let cancelled = async move {
        // A dropped sender means no signal, or the upload is over: never a cancel.
        if rx.await.is_err() {
            future::pending::<()>().await;
        }
    };
    (cancelled, listener)
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
