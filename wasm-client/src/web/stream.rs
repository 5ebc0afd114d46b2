//! [`PartSource`] over a `ReadableStream<Uint8Array>`, and [`Body`]: where a part's bytes are,
//! in a file or in a stream's parts.
//!
//! One reader reads the stream. Each cut reads in a task of its own (`spawn_local`), so reading
//! goes on while the engine does not poll the cut (paused), and what it read is kept when the
//! cut is dropped. Nothing is read ahead of the part being cut beyond the rest of its last chunk:
//! the engine's backpressure (at most `concurrency` parts held) is the stream's.
//!
//! A cut part is copied into a buffer of the part's size, and the stream's chunks are dropped as
//! soon as they are copied. The part is then written to a file of the upload's part store
//! (`part-store.js`: the origin-private file system, written by a worker of its own), and its
//! PUTs and its checksum read that file, a disk-backed `File`; its buffer is reused for the next
//! part at once. Where there is no part store (no OPFS, as in WebKitGTK under automation, or its
//! worker cannot write), the part stays in its buffer: each PUT sends a Blob of it, the checksum
//! worker gets the buffer itself, transferred and transferred back (no copy), so the part is lent
//! out while it is hashed ([`StreamSource::hash`]), and a released part's buffer is reused, so
//! the upload allocates at most its `concurrency` + 1 buffers whatever the stream's length.
//!
//! Why files: a Blob's bytes live in the browser's blob storage until every handle to it is
//! garbage-collected, which a page cannot hasten and whose size does not hasten it. With a Blob of
//! its buffer per PUT, a 1 GiB stream grew Chromium's browser process by 179–225 MiB, whatever the
//! stream's length; with the parts in files, by about 30 MiB, and the whole browser by no more
//! than making the stream alone does. BENCHMARKS.md, "Memory of a stream", has the numbers. A
//! part is not kept as one Blob for all its PUTs and hashing either: handed to the checksum
//! worker (whose heap hardly grows, so it seldom collects), every part's Blob stayed alive, and a
//! 1 GiB stream uploaded with checksums failed at part 63, the worker's reads refused (blob storage
//! full).
//!
//! The part store's files go when the stream has ended and every part is stored, when the upload
//! stops, or, after a crash, when a later page opens a part store.

use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;

use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::LocalBoxFuture;
use js_sys::{Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, ReadableStream, ReadableStreamDefaultReader};

use super::signer::{js_text, part_store};
use crate::engine::{PartSource, SourceError};

/// The bytes an upload sends: a file (sliced lazily from disk) or a stream's cut parts.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    File(Blob),
    Stream(Rc<StreamSource>),
}

impl Body {
    /// What holds the object's bytes `range` and where they are within it: the file (a `Blob`)
    /// and `range` itself, or the bytes (a `Uint8Array`) of the stream's part that starts at
    /// `range.start`, all of them.
    pub(crate) fn locate(&self, range: &Range<u64>) -> Result<(JsValue, f64, f64), String> {
        // f64 holds every offset up to 2^53 exactly, far above S3's 5 TiB object limit.
        match self {
            Body::File(file) => Ok((file.into(), range.start as f64, range.end as f64)),
            Body::Stream(source) => {
                let reading = source.0.borrow();
                let held = reading.held(range.start)?;
                let len = (range.end - range.start) as f64;
                if let Some((file, _)) = &held.file {
                    return Ok((file.into(), 0.0, len));
                }
                let bytes = held.bytes.clone();
                let bytes = bytes.ok_or("the stream's part is with the checksum worker")?;
                Ok((bytes.into(), 0.0, len))
            }
        }
    }
}

/// A stream being cut into parts.
#[derive(Debug)]
pub(crate) struct StreamSource(Rc<RefCell<Reading>>);

#[derive(Debug)]
struct Reading {
    reader: ReadableStreamDefaultReader,
    /// The rest of the last chunk read, which starts the next part.
    rest: Option<Uint8Array>,
    /// The stream said it is done, or failed.
    ended: bool,
    /// The upload stopped: read nothing more, hold nothing.
    cancelled: bool,
    /// Where the next part starts within the object.
    next: u64,
    /// Parts cut and not yet released.
    held: Vec<Held>,
    /// Buffers of released parts (each a whole part's size), reused by the next cuts.
    spare: Vec<Uint8Array>,
    /// Where cut parts are written (`part-store.js`).
    store: Store,
    /// Parts being written to the store.
    storing: u32,
}

/// The part store of an upload: made at the first part, closed once every part is stored.
#[derive(Debug)]
enum Store {
    Unmade,
    Open(PartStore),
    Closed,
}

#[derive(Debug)]
struct Held {
    part: u32,
    start: u64,
    /// The part's bytes (a view of its buffer), `None` while lent to the checksum worker or
    /// when they are in `file`.
    bytes: Option<Uint8Array>,
    /// The part's file in the part store, and its slot there.
    file: Option<(Blob, u32)>,
    /// Their checksum's answer while they are lent.
    hashing: Option<Promise>,
}

impl Reading {
    fn held(&self, start: u64) -> Result<&Held, &'static str> {
        (self.held.iter().find(|p| p.start == start)).ok_or("the stream's part was released")
    }

    /// Keeps `bytes`' buffer for the next part.
    fn spare(&mut self, bytes: &Uint8Array) {
        if !self.cancelled {
            self.spare.push(Uint8Array::new(&bytes.buffer()));
        }
    }

    /// The part store, made at the first part; `None` once it is closed.
    fn store(&mut self) -> Option<PartStore> {
        if let Store::Unmade = self.store {
            self.store = Store::Open(part_store());
        }
        match &self.store {
            Store::Open(store) if !self.cancelled => Some(store.clone()),
            _ => None,
        }
    }

    /// Removes the part store's files; parts cut later are kept in memory.
    fn close_store(&mut self) {
        if let Store::Open(store) = std::mem::replace(&mut self.store, Store::Closed) {
            store.close();
        }
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.close_store();
    }
}

impl StreamSource {
    /// Takes `stream`'s reader; `None` when another reader has it (the stream is locked).
    pub(crate) fn new(stream: &ReadableStream) -> Option<Self> {
        // `getReader` throws on a locked stream, so that is asked first.
        (!stream.locked()).then(|| {
            Self(Rc::new(RefCell::new(Reading {
                reader: stream.get_reader().unchecked_into(),
                rest: None,
                ended: false,
                cancelled: false,
                next: 0,
                held: Vec::new(),
                spare: Vec::new(),
                store: Store::Unmade,
                storing: 0,
            })))
        })
    }

    /// Hashes the part that starts at `start` with `ask(bytes)`, whose promise answers
    /// `{ sum, bytes }` (or fails with the bytes as a field): the bytes are lent to it (the
    /// checksum worker gets them transferred) and taken back when it settles, whether or not
    /// anyone still awaits the answer. While a part is lent, asking again answers the same
    /// promise: the engine asks again after a `restart`, and the new worker answers it.
    pub(crate) fn hash(
        self: &Rc<Self>,
        start: u64,
        ask: impl FnOnce(&JsValue) -> Promise,
    ) -> Result<Promise, &'static str> {
        let mut r = self.0.borrow_mut();
        let held = r.held.iter_mut().find(|p| p.start == start);
        let held = held.ok_or("the stream's part was released")?;
        if let Some(hashing) = &held.hashing {
            return Ok(hashing.clone());
        }
        if let Some((file, _)) = &held.file {
            return Ok(ask(file));
        }
        // Lent and never given back: a checksum worker that stopped answering took it with it.
        let lost = "the stream's part was lost with a checksum worker that stopped answering";
        let bytes = held.bytes.take().ok_or(lost)?;
        let answer = ask(&bytes);
        held.hashing = Some(answer.clone());
        let source = self.clone();
        let settled = JsFuture::from(answer.clone());
        wasm_bindgen_futures::spawn_local(async move {
            let outcome = settled.await.unwrap_or_else(|e| e);
            let bytes = Reflect::get(&outcome, &"bytes".into()).ok();
            source.give_back(start, bytes.and_then(|b| b.dyn_into().ok()));
        });
        Ok(answer)
    }

    /// Takes back the bytes lent for the part that starts at `start` (`None`: they were lost),
    /// or keeps their buffer for the next part when that part was released meanwhile.
    fn give_back(&self, start: u64, bytes: Option<Uint8Array>) {
        let mut r = self.0.borrow_mut();
        match r.held.iter_mut().find(|p| p.start == start) {
            Some(held) => {
                held.hashing = None;
                held.bytes = bytes;
            }
            None => {
                if let Some(bytes) = bytes {
                    r.spare(&bytes);
                }
            }
        }
    }
}

impl PartSource for StreamSource {
    fn cut(&self, part: u32, len: u64) -> LocalBoxFuture<'static, Result<u64, SourceError>> {
        let (tx, rx) = oneshot::channel();
        let reading = self.0.clone();
        wasm_bindgen_futures::spawn_local(async move {
            // The cut was dropped only if the upload stopped; its part stays held till `cancel`.
            let kept = match fill(&reading, len).await {
                Ok(bytes) => keep(&reading, bytes).await,
                Err(e) => Err(e),
            };
            let _ = tx.send(kept.map(|(got, bytes, file)| {
                let mut r = reading.borrow_mut();
                let start = r.next;
                r.next += got;
                r.held.push(Held {
                    part,
                    start,
                    bytes,
                    file,
                    hashing: None,
                });
                got
            }));
        });
        Box::pin(rx.map(|r| r.unwrap_or_else(|_| Err(SourceError::new("the read was lost")))))
    }

    fn release(&self, part: u32) {
        let mut r = self.0.borrow_mut();
        if let Some(at) = r.held.iter().position(|p| p.part == part) {
            let held = r.held.swap_remove(at);
            if let Some(bytes) = held.bytes {
                r.spare(&bytes);
            }
            if let (Some((_, slot)), Store::Open(store)) = (held.file, &r.store) {
                store.release(slot);
            }
        }
        // The stream is done and the store has every part: its files can go.
        if r.ended && r.held.is_empty() && r.storing == 0 {
            r.close_store();
        }
    }

    fn cancel(&self) {
        let mut r = self.0.borrow_mut();
        r.cancelled = true;
        r.rest = None;
        r.held.clear();
        r.spare.clear();
        r.close_store();
        if !r.ended {
            // Ends a pending read (it answers `done`) and runs the stream's `cancel`. The promise
            // rejects only when that callback throws, which is the producer's business.
            let _ = r.reader.cancel();
        }
    }
}

/// Reads the next `len` bytes (fewer at the stream's end) into a part buffer: a spare one, or a
/// new one. Answers a view of the bytes read.
async fn fill(reading: &RefCell<Reading>, len: u64) -> Result<Uint8Array, SourceError> {
    let buffer = {
        let mut r = reading.borrow_mut();
        let spare = r.spare.pop().filter(|b| u64::from(b.length()) == len);
        match spare {
            Some(buffer) => buffer,
            None => new_buffer(len)?,
        }
    };
    // At most `len`, which `new_buffer` or the spare's length bounds to u32.
    let len = len as u32;
    let mut got = 0;
    while got < len {
        let rest = {
            let mut r = reading.borrow_mut();
            if r.cancelled {
                return Err(SourceError::new("the upload stopped"));
            }
            match r.rest.take() {
                Some(rest) => Some(rest),
                None if r.ended => break,
                None => None,
            }
        };
        let chunk = match rest {
            Some(rest) => rest,
            None => {
                let read = reading.borrow().reader.read();
                match read_chunk(JsFuture::from(read).await) {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => {
                        reading.borrow_mut().ended = true;
                        continue;
                    }
                    Err(e) => {
                        reading.borrow_mut().ended = true;
                        return Err(e);
                    }
                }
            }
        };
        let take = (len - got).min(chunk.length());
        buffer.set(&chunk.subarray(0, take), got);
        got += take;
        if take < chunk.length() {
            // The rest of the split chunk starts the next part.
            reading.borrow_mut().rest = Some(chunk.subarray(take, chunk.length()));
        }
    }
    Ok(buffer.subarray(0, got))
}

/// Where a cut part's `bytes` are kept: written to the part store where it can (their buffer is
/// then spare at once), else in memory. Answers the part's length and its bytes or file.
async fn keep(
    reading: &RefCell<Reading>,
    bytes: Uint8Array,
) -> Result<(u64, Option<Uint8Array>, Option<(Blob, u32)>), SourceError> {
    let got = u64::from(bytes.length());
    // The empty cut at a stream's end is no part.
    let store = match got {
        0 => None,
        _ => reading.borrow_mut().store(),
    };
    let Some(store) = store else {
        return Ok((got, Some(bytes), None));
    };
    reading.borrow_mut().storing += 1;
    let kept = JsFuture::from(store.put(&bytes)).await.unwrap_or_default();
    let mut r = reading.borrow_mut();
    r.storing -= 1;
    let field = |name: &str| Reflect::get(&kept, &name.into()).unwrap_or_default();
    let back = field("bytes").dyn_into::<Uint8Array>().ok();
    let back = back.filter(|b| u64::from(b.length()) == got);
    match (field("file").dyn_into::<Blob>(), back) {
        (Ok(file), back) => {
            if let Some(back) = back {
                r.spare(&back);
            }
            let slot = field("slot").as_f64().unwrap_or_default() as u32;
            Ok((got, None, Some((file, slot))))
        }
        (Err(_), Some(back)) => Ok((got, Some(back), None)),
        (Err(_), None) => Err(SourceError::new(
            "the part was lost with the part store's worker",
        )),
    }
}

#[wasm_bindgen]
extern "C" {
    /// One upload's part store (`part-store.js`): each part in a file of the origin-private file
    /// system, so that its PUTs send a disk-backed `File`.
    #[derive(Debug, Clone)]
    pub(crate) type PartStore;

    /// Writes the bytes to a free slot: `{ file, slot, bytes }`, the bytes given back, or
    /// `{ bytes }` where the part stays in memory (emptied if a failing worker took them).
    #[wasm_bindgen(method)]
    fn put(this: &PartStore, bytes: &Uint8Array) -> Promise;

    /// The part in `slot` is stored: its file may be rewritten.
    #[wasm_bindgen(method)]
    fn release(this: &PartStore, slot: u32);

    /// Removes the upload's files.
    #[wasm_bindgen(method)]
    fn close(this: &PartStore);
}

/// A part buffer of `len` bytes, or why the browser has none.
fn new_buffer(len: u64) -> Result<Uint8Array, SourceError> {
    // `new Uint8Array(len)` throws (a RangeError) where the browser cannot allocate it.
    u32::try_from(len)
        .map_err(|_| JsValue::from("larger than an array can be"))
        .and_then(PartBuffer::new)
        .map(JsCast::unchecked_into)
        .map_err(|e| {
            SourceError::new(format!(
                "no memory for a part of {len} bytes: {}",
                js_text(&e)
            ))
        })
}

#[wasm_bindgen]
extern "C" {
    /// `Uint8Array`, with a constructor that answers the browser's refusal as an error.
    #[wasm_bindgen(js_name = Uint8Array)]
    type PartBuffer;

    #[wasm_bindgen(constructor, catch, js_class = "Uint8Array")]
    fn new(len: u32) -> Result<PartBuffer, JsValue>;
}

/// The chunk a read answered (`None` once the stream is done), or why there is none.
fn read_chunk(result: Result<JsValue, JsValue>) -> Result<Option<Uint8Array>, SourceError> {
    let result = result.map_err(|e| SourceError::new(format!("it errored: {}", js_text(&e))))?;
    let field = |name: &str| Reflect::get(&result, &name.into()).unwrap_or(JsValue::UNDEFINED);
    if field("done").is_truthy() {
        return Ok(None);
    }
    field("value")
        .dyn_into::<Uint8Array>()
        .map(Some)
        .map_err(|chunk| {
            SourceError::new(format!(
                "it gave a chunk that is not a Uint8Array: {}",
                js_text(&chunk)
            ))
        })
}
