//! [`PartSource`] over a `ReadableStream<Uint8Array>`, and [`Body`]: where a part's bytes are,
//! in a file or in a stream's parts.
//!
//! One reader reads the stream. Each cut reads in a task of its own (`spawn_local`), so reading
//! goes on while the engine does not poll the cut (paused), and what it read is kept when the
//! cut is dropped. Chunks are split at part boundaries with `subarray` (a view, no copy); a cut
//! part is the array of its chunks, held until the engine releases it. Nothing is read ahead of
//! the part being cut beyond the rest of its last chunk: the engine's backpressure (at most
//! `concurrency` parts held) is the stream's.
//!
//! A part is held as its chunks and not as one `Blob` of them: a Blob's bytes live in the
//! browser's blob storage until every handle to it is garbage-collected, and nothing tells the
//! garbage collector how large it is. Handed to the checksum worker (whose heap hardly grows, so
//! it seldom collects), every part's Blob stayed alive: a 1 GiB stream uploaded with checksums
//! failed at part 63, the worker's reads refused (blob storage full); the same steps in plain JS
//! grew Chromium by 663 MiB before failing at part 62. Chunks are `ArrayBuffer`s, whose size the
//! collector counts: the worker gets a copy of them, and each PUT a Blob of its own, collected
//! with the page's garbage.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ops::Range;
use std::rc::Rc;

use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::LocalBoxFuture;
use js_sys::{Array, Reflect, Uint8Array};
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
    /// and `range` itself, or the chunks (an `Array` of `Uint8Array`) of the stream's part that
    /// starts at `range.start`, all of them.
    pub(crate) fn locate(&self, range: &Range<u64>) -> Result<(JsValue, f64, f64), String> {
        // f64 holds every offset up to 2^53 exactly, far above S3's 5 TiB object limit.
        match self {
            Body::File(file) => Ok((file.into(), range.start as f64, range.end as f64)),
            Body::Stream(source) => {
                let reading = source.0.borrow();
                let held = (reading.held.iter().find(|p| p.start == range.start))
                    .ok_or("the stream's part was released")?;
                Ok((
                    held.chunks.clone().into(),
                    0.0,
                    (range.end - range.start) as f64,
                ))
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
    /// Chunks read and not yet cut into a part, oldest first.
    chunks: VecDeque<Uint8Array>,
    /// Their bytes.
    buffered: u64,
    /// The stream said it is done, or failed.
    ended: bool,
    /// The upload stopped: read nothing more, hold nothing.
    cancelled: bool,
    /// Where the next part starts within the object.
    next: u64,
    /// Parts cut and not yet released.
    held: Vec<Held>,
}

#[derive(Debug)]
struct Held {
    part: u32,
    start: u64,
    chunks: Array,
}

impl StreamSource {
    /// Takes `stream`'s reader; `None` when another reader has it (the stream is locked).
    pub(crate) fn new(stream: &ReadableStream) -> Option<Self> {
        // `getReader` throws on a locked stream, so that is asked first.
        (!stream.locked()).then(|| {
            Self(Rc::new(RefCell::new(Reading {
                reader: stream.get_reader().unchecked_into(),
                chunks: VecDeque::new(),
                buffered: 0,
                ended: false,
                cancelled: false,
                next: 0,
                held: Vec::new(),
            })))
        })
    }
}

impl PartSource for StreamSource {
    fn cut(&self, part: u32, len: u64) -> LocalBoxFuture<'static, Result<u64, SourceError>> {
        let (tx, rx) = oneshot::channel();
        let reading = self.0.clone();
        wasm_bindgen_futures::spawn_local(async move {
            // The cut was dropped only if the upload stopped; its part stays held till `cancel`.
            let _ = tx.send(
                fill(&reading, len)
                    .await
                    .map(|()| take(&reading, part, len)),
            );
        });
        Box::pin(rx.map(|r| r.unwrap_or_else(|_| Err(SourceError::new("the read was lost")))))
    }

    fn release(&self, part: u32) {
        self.0.borrow_mut().held.retain(|p| p.part != part);
    }

    fn cancel(&self) {
        let mut r = self.0.borrow_mut();
        r.cancelled = true;
        r.chunks.clear();
        r.held.clear();
        if !r.ended {
            // Ends a pending read (it answers `done`) and runs the stream's `cancel`. The promise
            // rejects only when that callback throws, which is the producer's business.
            let _ = r.reader.cancel();
        }
    }
}

/// Reads until `len` bytes are buffered or the stream ends.
async fn fill(reading: &RefCell<Reading>, len: u64) -> Result<(), SourceError> {
    loop {
        let read = {
            let r = reading.borrow();
            if r.cancelled {
                return Err(SourceError::new("the upload stopped"));
            }
            if r.ended || r.buffered >= len {
                return Ok(());
            }
            r.reader.read()
        };
        let result = JsFuture::from(read).await;
        let mut r = reading.borrow_mut();
        let chunk = result.and_then(|result| {
            if Reflect::get(&result, &"done".into())?.is_truthy() {
                return Ok(None);
            }
            Reflect::get(&result, &"value".into()).map(Some)
        });
        match chunk {
            Ok(None) => r.ended = true,
            Ok(Some(chunk)) => match chunk.dyn_into::<Uint8Array>() {
                Ok(chunk) => {
                    r.buffered += u64::from(chunk.length());
                    r.chunks.push_back(chunk);
                }
                Err(chunk) => {
                    return Err(SourceError::new(format!(
                        "it gave a chunk that is not a Uint8Array: {}",
                        js_text(&chunk)
                    )));
                }
            },
            Err(e) => {
                r.ended = true;
                return Err(SourceError::new(format!("it errored: {}", js_text(&e))));
            }
        }
    }
}

/// Cuts part `part`: the next `len` bytes buffered (fewer at the stream's end), held; answers
/// its length.
fn take(reading: &RefCell<Reading>, part: u32, len: u64) -> u64 {
    let mut r = reading.borrow_mut();
    let chunks = Array::new();
    let mut got = 0;
    // A producer may hand over thousands of small chunks per part: taken from the front in O(1).
    while got < len {
        let Some(chunk) = r.chunks.pop_front() else {
            break;
        };
        // At most the chunk's length, so within u32.
        let take = (len - got).min(u64::from(chunk.length())) as u32;
        if take < chunk.length() {
            // The rest of the split chunk starts the next part.
            r.chunks.push_front(chunk.subarray(take, chunk.length()));
        }
        chunks.push(&chunk.subarray(0, take));
        got += u64::from(take);
    }
    r.buffered -= got;
    let start = r.next;
    r.next += got;
    r.held.push(Held {
        part,
        start,
        chunks,
    });
    got
}
