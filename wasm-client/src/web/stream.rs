//! [`PartSource`] over a `ReadableStream<Uint8Array>`, and [`Body`]: where a part's bytes are,
//! in a file or in a stream's parts.
//!
//! One reader reads the stream. Each cut reads in a task of its own (`spawn_local`), so reading
//! goes on while the engine does not poll the cut (paused), and what it read is kept when the
//! cut is dropped. Nothing is read ahead of the part being cut beyond the rest of its last chunk:
//! the engine's backpressure (at most `concurrency` parts held) is the stream's.
//!
//! A cut part is copied into a buffer of the part's size, and a released part's buffer is reused
//! for the next part, so the upload allocates at most its `concurrency` + 1 buffers whatever the
//! stream's length, and the stream's chunks are dropped as soon as they are copied. Each PUT
//! sends a Blob of the buffer; the checksum worker gets the buffer itself, transferred and
//! transferred back (no copy), so the part is lent out while it is hashed ([`StreamSource::hash`]).
//! What waits for a garbage collector is then only one Blob per PUT (its bytes in the browser
//! process's blob storage) and the stream's own chunks. With a 1 GiB stream in Chromium, the page
//! grows no more than making the stream alone does, the browser process by about 200 MiB of Blob
//! bytes whatever the stream's length; parts held as their chunks, with a copy for the worker,
//! grew the browser by 100–200 MiB more. BENCHMARKS.md, "Memory of a stream", has the numbers.
//!
//! A part is not kept as one Blob for all its PUTs and hashing: a Blob's bytes live in the
//! browser's blob storage until every handle to it is garbage-collected, and nothing tells the
//! collector how large it is. Handed to the checksum worker (whose heap hardly grows, so it
//! seldom collects), every part's Blob stayed alive: a 1 GiB stream uploaded with checksums failed
//! at part 63, the worker's reads refused (blob storage full).

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

use super::signer::js_text;
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
                let bytes = reading.held(range.start)?.bytes.clone();
                let bytes = bytes.ok_or("the stream's part is with the checksum worker")?;
                Ok((bytes.into(), 0.0, (range.end - range.start) as f64))
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
}

#[derive(Debug)]
struct Held {
    part: u32,
    start: u64,
    /// The part's bytes (a view of its buffer), `None` while lent to the checksum worker.
    bytes: Option<Uint8Array>,
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
            let _ = tx.send(fill(&reading, len).await.map(|bytes| {
                let got = u64::from(bytes.length());
                let mut r = reading.borrow_mut();
                let start = r.next;
                r.next += got;
                let (bytes, hashing) = (Some(bytes), None);
                r.held.push(Held {
                    part,
                    start,
                    bytes,
                    hashing,
                });
                got
            }));
        });
        Box::pin(rx.map(|r| r.unwrap_or_else(|_| Err(SourceError::new("the read was lost")))))
    }

    fn release(&self, part: u32) {
        let mut r = self.0.borrow_mut();
        if let Some(at) = r.held.iter().position(|p| p.part == part)
            && let Some(bytes) = r.held.swap_remove(at).bytes
        {
            r.spare(&bytes);
        }
    }

    fn cancel(&self) {
        let mut r = self.0.borrow_mut();
        r.cancelled = true;
        r.rest = None;
        r.held.clear();
        r.spare.clear();
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
