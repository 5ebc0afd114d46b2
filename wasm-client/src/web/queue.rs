//! The JS queue API: `new UploadQueue(options)`, `queue.add(file)` → `QueueItem`, events.
//!
//! Only wiring around [`crate::engine::Queue`]: each item runs the browser's engine
//! (`engine.rs`) with the queue's shared PUT slots; the queue's events are turned into JS objects and
//! handed to the listeners registered with `on`. Every `QueueItem` is one JS object for its
//! whole life (the one `add` returned is the one events carry), so pages can compare them.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};

use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;
use web_sys::{Blob, File, ReadableStream};

use super::BrowserClock;
use super::api::read_config;
use super::convert::{JsOptions, error_to_js, progress_to_js, relative_path, result_to_js};
use super::engine::Config;
use super::engine::{browser_engine, resume_fingerprint};
use super::resume::IdbResumeStore;
use super::stream::{Body, StreamSource};
use crate::engine::error::Quoted;
use crate::engine::{
    Control, DEFAULT_SINGLE_PUT_THRESHOLD, Error, FileInfo, ItemId, ItemState, Launch, PartMap,
    PartSource, ProgressCallback, Queue, QueueEvent, QueueOptions, QueueProgress, Slots,
    UploadResult,
};

#[wasm_bindgen(typescript_custom_section)]
const TS_QUEUE_TYPES: &str = r#"
/** Options of an {@link UploadQueue}: those of an {@link Uploader}, and two of its own. */
export interface QueueOptions extends UploaderOptions {
  /**
   * Most PUTs (parts, or whole small files) in flight at once across all files of the queue,
   * 1 to 64; also the most files started at once. Default 6.
   */
  concurrency?: number;
  /**
   * Files of at most this many bytes are sent as one presigned PUT (the signing API's
   * `GET /s3/params`) instead of a multipart upload; 0 sends every file in parts.
   * At most 5 GiB. Default 5 MiB.
   */
  singlePutThreshold?: number;
}

/** Options of one file (or stream) added to a queue. */
export interface QueueItemOptions {
  /** Name sent to the server. Default: the `File`'s name; required for a plain `Blob` and a stream. */
  filename?: string;
  /** For a stream: about how many bytes it will hold, a hint for the part size (as for {@link Uploader.upload}). */
  expectedSize?: number;
  /**
   * For a file of a folder the user chose: its path within that folder, `/`-separated and ending
   * with the file's name (`photos/2024/a.jpg`); the object key keeps the folders. Default: the
   * `File`'s `webkitRelativePath` (set by `<input webkitdirectory>` and dropped folders), if any.
   */
  relativePath?: string;
  /** MIME type of the object. Default: the Blob's `type`. */
  contentType?: string;
  /** S3 user metadata (`x-amz-meta-*`). */
  metadata?: Record<string, string>;
}

/**
 * Where a queue item is: waiting for its turn, sending, paused (before or after it started),
 * assembling the object, or finished one way or another.
 */
export type QueueItemState =
  | "queued"
  | "uploading"
  | "paused"
  | "completing"
  | "done"
  | "error"
  | "cancelled";

/** How many of a queue's items are in which state. */
export interface QueueFileCounts {
  total: number;
  queued: number;
  /** Uploading or completing. */
  active: number;
  paused: number;
  done: number;
  failed: number;
  cancelled: number;
}

/** Progress of a whole queue. Cancelled items count in neither byte figure. */
export interface QueueProgress {
  /** Bytes sent by the items not cancelled (finished ones count whole). */
  bytesSent: number;
  /** Size of the items not cancelled; `null` while a stream among them has not ended. */
  bytesTotal: number | null;
  /** From 0 to 1; exactly 1 only once every item not cancelled is done. */
  fraction: number;
  /** Bytes per second over the last few seconds, all items together; 0 while unknown. */
  speed: number;
  /** Seconds left at the current speed; `null` while unknown. */
  eta: number | null;
  files: QueueFileCounts;
}

/** What each queue event hands its listeners. */
export interface QueueEventMap {
  /** The queue's progress: about 10 times a second while bytes move, and at every state change. */
  progress: QueueProgress;
  /** An item changed state. */
  "item-state": { item: QueueItem; state: QueueItemState };
  /** An item's progress, about 10 times a second while it sends, and at every stored part. */
  "item-progress": { item: QueueItem; progress: UploadProgress };
  /** An item is done; `result.key` is the object's key. */
  "item-complete": { item: QueueItem; result: UploadResult };
  /** An item failed (cancelling is not a failure; see `item-state`). `item.retry()` tries again. */
  "item-error": { item: QueueItem; error: S3DirectError };
  /** Nothing is queued, uploading or completing any more (paused items may remain). */
  idle: undefined;
}

/** The names of the queue's events. */
export type QueueEvent = keyof QueueEventMap;

export interface UploadQueue {
  /**
   * Calls `listener` with each `event`'s detail until the returned function is called. A
   * listener that throws is reported on the console and does not disturb the queue.
   */
  on<K extends QueueEvent>(event: K, listener: (detail: QueueEventMap[K]) => void): () => void;
}
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "QueueOptions")]
    pub type QueueOptionsArg;
    #[wasm_bindgen(typescript_type = "QueueItemOptions")]
    pub type QueueItemOptionsArg;
}

/// The file (or stream) of an item and what to tell the server about it.
#[derive(Clone)]
struct Source {
    body: Body,
    /// For a stream: the size it is expected to hold.
    expected: Option<u64>,
    filename: String,
    relative_path: Option<String>,
    content_type: String,
    metadata: BTreeMap<String, String>,
}

/// The JS side of one item.
struct ItemJs {
    /// The `QueueItem` object `add` returned.
    object: JsValue,
    promise: Promise,
    /// `resolve` and `reject` of `promise`, until it is settled.
    settle: Option<(Function, Function)>,
}

/// What an `UploadQueue` and its items share.
struct Inner {
    queue: Queue,
    items: RefCell<PartMap<ItemJs>>,
    sources: Rc<RefCell<PartMap<Source>>>,
    listeners: RefCell<Vec<(u32, String, Function)>>,
    next_listener: Cell<u32>,
    /// Attached to every item's promise, so that one nobody awaits does not report an unhandled
    /// rejection: pages using events need not await each item.
    ignore: Closure<dyn FnMut(JsValue)>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadQueue")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// The events `on` takes, as its error names them: one string rather than a list joined when
/// the error is written (`join` is a kilobyte of code), split at its commas (a `char`: no
/// substring searcher, which splitting at `", "` would bring, 611 gzipped bytes).
const EVENTS: &str = "progress, item-state, item-progress, item-complete, item-error, idle";

/// Uploads many files with one limit of PUTs in flight across all of them.
#[wasm_bindgen]
#[derive(Debug)]
pub struct UploadQueue {
    inner: Rc<Inner>,
}

#[wasm_bindgen]
impl UploadQueue {
    /// Throws an `S3DirectError` with code `invalid_options` when an option cannot work.
    #[wasm_bindgen(constructor)]
    pub fn new(options: Option<QueueOptionsArg>) -> Result<UploadQueue, JsValue> {
        super::install_panic_hook();
        let options = options.map_or(JsValue::UNDEFINED, JsValue::from);
        Self::build(&options).map_err(|e| error_to_js(&e))
    }

    /// Adds `file` (a `File`, or a `Blob` or `ReadableStream<Uint8Array>` with
    /// `options.filename`) to the queue and returns its
    /// item; it starts when its turn comes. Throws an `S3DirectError` with code
    /// `invalid_options` for a file or options that cannot work.
    #[wasm_bindgen(unchecked_return_type = "QueueItem")]
    pub fn add(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Blob | ReadableStream<Uint8Array>")] file: JsValue,
        options: Option<QueueItemOptionsArg>,
    ) -> Result<JsValue, JsValue> {
        let options = options.map_or(JsValue::UNDEFINED, JsValue::from);
        let source = read_source(file, &options).map_err(|e| error_to_js(&e))?;
        let inner = &self.inner;
        // Blob sizes are whole numbers of bytes below 2^53; a stream's is not known yet.
        let size = match &source.body {
            Body::File(blob) => Some(blob.size() as u64),
            Body::Stream(_) => None,
        };
        let id = inner.queue.ids().len() as ItemId + 1;
        let object = JsValue::from(QueueItem {
            id,
            name: source.filename.clone(),
            queue: Rc::downgrade(inner),
        });
        inner.sources.borrow_mut().insert(id, source);
        let (promise, settle) = inner.promise();
        inner.items.borrow_mut().insert(
            id,
            ItemJs {
                object: object.clone(),
                promise,
                settle: Some(settle),
            },
        );
        let added = inner.queue.add(size);
        debug_assert_eq!(added, id);
        Ok(object)
    }

    /// Every item, in the order added.
    #[wasm_bindgen(getter, unchecked_return_type = "QueueItem[]")]
    pub fn items(&self) -> Array {
        self.inner
            .items
            .borrow()
            .iter()
            .map(|(_, i)| i.object.clone())
            .collect()
    }

    /// The queue's progress now.
    #[wasm_bindgen(getter, unchecked_return_type = "QueueProgress")]
    pub fn progress(&self) -> JsValue {
        queue_progress_to_js(&self.inner.queue.progress())
    }

    /// Pauses every item that is queued or uploading.
    #[wasm_bindgen(js_name = pauseAll)]
    pub fn pause_all(&self) {
        self.inner.queue.pause_all();
    }

    /// Resumes every paused item.
    #[wasm_bindgen(js_name = resumeAll)]
    pub fn resume_all(&self) {
        self.inner.queue.resume_all();
    }

    /// Cancels every item not finished; started uploads are aborted and their parts deleted.
    #[wasm_bindgen(js_name = cancelAll)]
    pub fn cancel_all(&self) {
        self.inner.queue.cancel_all();
    }

    /// Typed in the TypeScript section (`on<K extends QueueEvent>`).
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, event: String, listener: Function) -> Result<Function, JsValue> {
        if !EVENTS
            .split(',')
            .any(|name| name.trim_start_matches(' ') == event)
        {
            return Err(error_to_js(&Error::InvalidOptions(format!(
                "unknown queue event {}; use one of {EVENTS}",
                Quoted(&event)
            ))));
        }
        let inner = &self.inner;
        let n = inner.next_listener.get();
        inner.next_listener.set(n + 1);
        inner.listeners.borrow_mut().push((n, event, listener));
        let weak = Rc::downgrade(inner);
        let off = Closure::once_into_js(move || {
            if let Some(inner) = weak.upgrade() {
                inner.listeners.borrow_mut().retain(|(id, _, _)| *id != n);
            }
        });
        Ok(off.unchecked_into())
    }

    /// Resolves when nothing is queued, uploading or completing (at once if so). Paused items
    /// do not keep it waiting.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn idle(&self) -> Promise {
        let idle = self.inner.queue.idle();
        wasm_bindgen_futures::future_to_promise(async move {
            idle.await;
            Ok(JsValue::UNDEFINED)
        })
    }
}

impl UploadQueue {
    fn build(options: &JsValue) -> Result<UploadQueue, Error> {
        let mut config = read_config(options)?;
        let o = JsOptions::new(options, "options")?;
        config.options.single_put_threshold = o
            .whole_number("singlePutThreshold")?
            .unwrap_or(DEFAULT_SINGLE_PUT_THRESHOLD);
        config.options.validate()?;
        if config.resume {
            // As `Uploader` does: begun now, the first multipart item's resume lookup does not
            // wait for the database to open.
            IdbResumeStore::open();
        }
        let config = Rc::new(config);
        let sources: Rc<RefCell<PartMap<Source>>> = Rc::default();
        let launch: Launch = {
            let sources = sources.clone();
            Box::new(move |id, control, on_progress, slots| {
                let config = config.clone();
                let source = sources.borrow().get(id).cloned();
                Box::pin(async move {
                    // Sources are removed only from finished items, which do not start.
                    let source = source.ok_or_else(|| {
                        Error::InvalidOptions(format!("queue item {id} has no file"))
                    })?;
                    run_item(&config, source, &control, on_progress, slots).await
                })
            })
        };
        let queue = Queue::new(
            QueueOptions {
                concurrency: config_concurrency(options)?,
                ..QueueOptions::default()
            },
            Rc::new(BrowserClock),
            launch,
            Box::new(wasm_bindgen_futures::spawn_local),
        )?;
        let inner = Rc::new(Inner {
            queue,
            items: RefCell::default(),
            sources,
            listeners: RefCell::default(),
            next_listener: Cell::new(0),
            ignore: Closure::new(|_| {}),
        });
        let weak = Rc::downgrade(&inner);
        inner.queue.set_listener(Box::new(move |event| {
            if let Some(inner) = weak.upgrade() {
                inner.dispatch(event);
            }
        }));
        Ok(UploadQueue { inner })
    }
}

/// The queue's concurrency: the same option (and default) as an `Uploader`'s.
fn config_concurrency(options: &JsValue) -> Result<usize, Error> {
    let o = JsOptions::new(options, "options")?;
    Ok(match o.whole_number("concurrency")? {
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => QueueOptions::default().concurrency,
    })
}

fn read_source(file: JsValue, options: &JsValue) -> Result<Source, Error> {
    let o = JsOptions::new(options, "item options")?;
    let blob = file.dyn_ref::<Blob>();
    let filename = match (o.string("filename")?, file.dyn_ref::<File>()) {
        (Some(name), _) => name,
        (None, Some(file)) => file.name(),
        (None, None) => {
            return Err(Error::InvalidOptions(
                "a Blob or stream has no name; pass item options.filename".into(),
            ));
        }
    };
    let body = match (blob, file.dyn_ref::<ReadableStream>()) {
        (Some(blob), _) => Body::File(blob.clone()),
        (None, Some(stream)) => {
            Body::Stream(Rc::new(StreamSource::new(stream).ok_or_else(|| {
                Error::InvalidOptions("the stream is locked: another reader is reading it".into())
            })?))
        }
        (None, None) => {
            return Err(Error::InvalidOptions(
                "the file to add must be a File, a Blob or a ReadableStream".into(),
            ));
        }
    };
    Ok(Source {
        content_type: o
            .string("contentType")?
            .or_else(|| blob.map(Blob::type_))
            .unwrap_or_default(),
        metadata: o.string_map("metadata")?,
        relative_path: relative_path(&o, &file, &filename)?,
        expected: o.whole_number("expectedSize")?,
        filename,
        body,
    })
}

async fn run_item(
    config: &Config,
    source: Source,
    control: &Control,
    on_progress: ProgressCallback,
    slots: Slots,
) -> Result<UploadResult, Error> {
    let mut info = FileInfo {
        filename: source.filename,
        relative_path: source.relative_path,
        content_type: source.content_type,
        metadata: source.metadata,
        size: 0,
        fingerprint: None,
    };
    let engine = browser_engine(config, source.body.clone(), Some(slots));
    let blob = match source.body {
        Body::File(blob) => blob,
        Body::Stream(stream) => {
            return engine
                .upload_stream(&info, source.expected, stream, on_progress, control)
                .await;
        }
    };
    info.size = blob.size() as u64;
    if let Some(fingerprint) = resume_fingerprint(config, &blob, &info.filename, info.size) {
        info.fingerprint = fingerprint.await;
    }
    engine.upload(&info, on_progress, control).await
}

impl Inner {
    /// A new promise for an item, marked handled, with its settle functions.
    fn promise(&self) -> (Promise, (Function, Function)) {
        let mut settle = None;
        let promise = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
        let _ = promise.catch(&self.ignore);
        // The executor runs synchronously inside `new Promise`.
        (promise, settle.expect("the promise executor ran"))
    }

    fn item_object(&self, id: ItemId) -> JsValue {
        self.items
            .borrow()
            .get(id)
            .map_or(JsValue::UNDEFINED, |i| i.object.clone())
    }

    /// Settles item `id`'s promise (once) with `value`, resolving when `ok`.
    fn settle(&self, id: ItemId, ok: bool, value: &JsValue) {
        let settle = self
            .items
            .borrow_mut()
            .get_mut(id)
            .and_then(|i| i.settle.take());
        if let Some((resolve, reject)) = settle {
            let f = if ok { resolve } else { reject };
            let _ = f.call1(&JsValue::UNDEFINED, value);
        }
    }

    fn dispatch(&self, event: &QueueEvent) {
        let (name, detail) = match event {
            QueueEvent::ItemState { id, state } => {
                // Done or cancelled: the file is no longer needed (an error keeps it for
                // `retry`); a stream, which cannot be retried, is let go in every final state
                // (cancelled before it started, its reader is released and its `cancel` runs).
                let stream = matches!(
                    self.sources.borrow().get(*id).map(|s| &s.body),
                    Some(Body::Stream(_))
                );
                if state.is_final() && (*state != ItemState::Error || stream) {
                    let source = self.sources.borrow_mut().remove(*id);
                    if let Some(Source {
                        body: Body::Stream(stream),
                        ..
                    }) = source
                        && *state != ItemState::Done
                    {
                        stream.cancel();
                    }
                }
                if *state == ItemState::Cancelled {
                    let error = Error::Aborted { cleanup: None };
                    let error = self.queue.item(*id).and_then(|i| i.error).unwrap_or(error);
                    self.settle(*id, false, &error_to_js(&error));
                }
                let detail = object(&[
                    ("item", self.item_object(*id)),
                    ("state", state.as_str().into()),
                ]);
                ("item-state", detail)
            }
            QueueEvent::ItemProgress { id, progress } => (
                "item-progress",
                object(&[
                    ("item", self.item_object(*id)),
                    ("progress", progress_to_js(progress)),
                ]),
            ),
            QueueEvent::ItemComplete { id, result } => {
                let result = result_to_js(result);
                self.settle(*id, true, &result);
                (
                    "item-complete",
                    object(&[("item", self.item_object(*id)), ("result", result)]),
                )
            }
            QueueEvent::ItemError { id, error } => {
                let error = error_to_js(error);
                self.settle(*id, false, &error);
                (
                    "item-error",
                    object(&[("item", self.item_object(*id)), ("error", error)]),
                )
            }
            QueueEvent::Progress(p) => ("progress", queue_progress_to_js(p)),
            QueueEvent::Idle => ("idle", JsValue::UNDEFINED),
        };
        // A copy: a listener may subscribe or unsubscribe while being called.
        let listeners: Vec<Function> = self
            .listeners
            .borrow()
            .iter()
            .filter(|(_, e, _)| e == name)
            .map(|(_, _, f)| f.clone())
            .collect();
        for listener in listeners {
            if let Err(e) = listener.call1(&JsValue::UNDEFINED, &detail) {
                web_sys::console::error_2(
                    &format!("s3-direct: a queue {} listener threw", Quoted(name)).into(),
                    &e,
                );
            }
        }
    }
}

/// One file of an `UploadQueue`.
#[wasm_bindgen]
#[derive(Debug)]
pub struct QueueItem {
    id: ItemId,
    name: String,
    queue: Weak<Inner>,
}

#[wasm_bindgen]
impl QueueItem {
    /// 1, 2, 3… in the order the items were added to their queue.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The file name sent to the server.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// Size in bytes; `null` for a stream until it ends.
    #[wasm_bindgen(getter, unchecked_return_type = "number | null")]
    pub fn size(&self) -> JsValue {
        let size = self.with(|q| q.queue.item(self.id)?.size);
        size.map_or(JsValue::NULL, |s| JsValue::from_f64(s as f64))
    }

    #[wasm_bindgen(getter, unchecked_return_type = "QueueItemState")]
    pub fn state(&self) -> String {
        self.with(|q| q.queue.item(self.id).map(|i| i.state.as_str()))
            .unwrap_or("cancelled")
            .to_owned()
    }

    /// The item's last progress (zeros until it starts).
    #[wasm_bindgen(getter, unchecked_return_type = "UploadProgress")]
    pub fn progress(&self) -> JsValue {
        self.with(|q| q.queue.item(self.id))
            .map_or(JsValue::UNDEFINED, |i| progress_to_js(&i.progress))
    }

    /// The upload's result once the item is done.
    #[wasm_bindgen(getter, unchecked_return_type = "UploadResult | undefined")]
    pub fn result(&self) -> JsValue {
        self.with(|q| q.queue.item(self.id)?.result)
            .map_or(JsValue::UNDEFINED, |r| result_to_js(&r))
    }

    /// Why the item failed or that it was cancelled (code `aborted`).
    #[wasm_bindgen(getter, unchecked_return_type = "S3DirectError | undefined")]
    pub fn error(&self) -> JsValue {
        self.with(|q| q.queue.item(self.id)?.error)
            .map_or(JsValue::UNDEFINED, |e| error_to_js(&e))
    }

    /// Resolves with the `UploadResult`; rejects with an `S3DirectError` when the item fails or
    /// is cancelled (code `aborted`). `retry()` replaces it with a new promise.
    #[wasm_bindgen(getter, unchecked_return_type = "Promise<UploadResult>")]
    pub fn promise(&self) -> Promise {
        self.with(|q| q.items.borrow().get(self.id).map(|i| i.promise.clone()))
            .unwrap_or_else(|| Promise::reject(&error_to_js(&Error::Aborted { cleanup: None })))
    }

    /// Pauses the item: a queued one waits, a started one stops sending (stored parts stay).
    pub fn pause(&self) {
        if let Some(q) = self.queue.upgrade() {
            q.queue.pause(self.id);
        }
    }

    /// Continues a paused item, or puts it back in line if it had not started.
    pub fn resume(&self) {
        if let Some(q) = self.queue.upgrade() {
            q.queue.resume(self.id);
        }
    }

    /// Cancels the item; a started multipart upload is aborted and its parts deleted.
    pub fn cancel(&self) {
        if let Some(q) = self.queue.upgrade() {
            q.queue.cancel(self.id);
        }
    }

    /// Queues a failed item again (a multipart upload continues with the parts already stored).
    /// No effect unless the item's state is `"error"`.
    pub fn retry(&self) {
        self.with(|q| {
            if q.queue.item(self.id)?.state != ItemState::Error {
                return None;
            }
            let (promise, settle) = q.promise();
            if let Some(item) = q.items.borrow_mut().get_mut(self.id) {
                item.promise = promise;
                item.settle = Some(settle);
            }
            q.queue.retry(self.id);
            Some(())
        });
    }
}

impl QueueItem {
    /// Runs `f` with the queue, if it still exists.
    fn with<T>(&self, f: impl FnOnce(&Inner) -> Option<T>) -> Option<T> {
        f(&*self.queue.upgrade()?)
    }
}

/// A plain JS object with `fields`.
fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (name, value) in fields {
        // Setting a plain property on a fresh object cannot fail.
        let _ = Reflect::set(&o, &JsValue::from_str(name), value);
    }
    o.into()
}

/// `QueueProgress` for JS.
fn queue_progress_to_js(p: &QueueProgress) -> JsValue {
    let f = &p.files;
    let files = object(&[
        ("total", f.total.into()),
        ("queued", f.queued.into()),
        ("active", f.active.into()),
        ("paused", f.paused.into()),
        ("done", f.done.into()),
        ("failed", f.failed.into()),
        ("cancelled", f.cancelled.into()),
    ]);
    object(&[
        ("bytesSent", (p.bytes_sent as f64).into()),
        (
            "bytesTotal",
            p.bytes_total.map_or(JsValue::NULL, |t| (t as f64).into()),
        ),
        ("fraction", p.fraction.into()),
        ("speed", p.speed.into()),
        ("eta", p.eta.map_or(JsValue::NULL, JsValue::from_f64)),
        ("files", files),
    ])
}
