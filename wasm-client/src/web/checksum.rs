//! [`Checksummer`] in a Web Worker: part checksums are computed by this same WASM module, loaded
//! a second time in a module worker, so hashing gigabytes never blocks the page.
//!
//! The worker's script is the package's own JS glue, started as
//! `new Worker(new URL('../../s3_direct.js', import.meta.url), { type: 'module', name })`: the
//! pattern bundlers (Vite, webpack 5) recognise, so a bundled app gets a worker bundle with the glue,
//! this snippet and the `.wasm`, and an unbundled page loads the files as they are. The glue imports
//! this snippet, whose top-level code sees the worker's `name` and serves checksum requests there
//! (elsewhere it does nothing). Each part arrives as a `Blob` slice (no copy: the worker reads it
//! from disk). Where a worker cannot be started or its script cannot load (no `Worker`, a strict
//! CSP, a bundler that leaves the URL pointing nowhere), parts are hashed on the calling thread
//! instead, which is correct but can make the page stutter; a console warning says so.
//!
//! Memory stays flat whatever the file size: a part is read through a BYOB reader into one reused
//! 1 MiB buffer and fed to [`ChecksumStream`], so no part-sized buffer exists and WASM memory never
//! grows with the part. (Reading each part with `arrayBuffer()` made the browser grow with the
//! file, 544 MiB for a 4 GiB upload: every read allocates a fresh `ArrayBuffer`, and these were
//! collected far later than they were dropped — a plain stream reader, with 1–2 MiB chunks, grew
//! just as much; only reusing one buffer kept it flat. See BENCHMARKS.md.)
//!
//! SHA-256 streams through WASM too, although WebCrypto's `crypto.subtle.digest` is native and
//! faster (≈ 1.2–1.5× in Chromium here): it is one-shot, so it needs the whole part in one buffer,
//! and `digest()` copies that buffer again. Through WebCrypto, a 4 GiB upload grew the browser by
//! 95–123 MiB against the memory bound of 112 (streamed: 65–82), and three benchmark uploads on
//! that path stopped for good, a hang whose cause was not found. See BENCHMARKS.md. The same hang
//! was then seen once on this streaming path (one part's SHA-256 never answered), so the engine
//! gives every checksum a deadline and, when one passes, calls `restart`: a new worker takes over
//! the checksums still awaited.

use std::ops::Range;

use futures::future::LocalBoxFuture;
use s3_direct_protocol::wire::ChecksumAlgorithm;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::Blob;

use super::signer::js_text;
use crate::engine::Checksummer;
use crate::engine::digest::{Digest, base64};

#[wasm_bindgen(inline_js = r#"
// Bundlers need the Worker's options as a literal, so the name is spelled out again below.
const WORKER_NAME = 's3-direct-checksum';
// Bytes read from the file at a time, into a buffer reused from part to part.
const CHUNK_BYTES = 1 << 20;

// Imported lazily: in the page the glue is what imports this module, so it is always loaded by then.
let glue;
function loadGlue() {
  glue ??= import('../../s3_direct.js').then(async (m) => {
    if (typeof WorkerGlobalScope !== 'undefined' && self instanceof WorkerGlobalScope) await m.default();
    return m;
  });
  return glue;
}

// Buffers not in use, kept so that hashing allocates nothing per part.
const spareChunks = [];

// A BYOB reader (reads land in our buffer), or null where blob streams are not byte streams.
function byobReader(stream) {
  try {
    return stream.getReader({ mode: 'byob' });
  } catch {
    return null;
  }
}

// Calls use(bytes) for each piece of blob[start, end) in order; bytes are valid only during the
// call (they are the reused buffer).
async function readChunks(blob, start, end, use) {
  const stream = blob.slice(start, end).stream();
  const reader = byobReader(stream);
  if (!reader) {
    const plain = stream.getReader();
    for (;;) {
      const { done, value } = await plain.read();
      if (done) return;
      use(value);
    }
  }
  let buffer = spareChunks.pop() ?? new ArrayBuffer(CHUNK_BYTES);
  try {
    for (;;) {
      // A read transfers the buffer; the answer's view is on the same memory.
      const { done, value } = await reader.read(new Uint8Array(buffer));
      if (value) buffer = value.buffer;
      if (done) return;
      use(value);
    }
  } finally {
    // A failed read leaves it detached (byteLength 0): then it is simply dropped.
    if (buffer.byteLength === CHUNK_BYTES) spareChunks.push(buffer);
  }
}

// The part through this module's incremental hasher, chunk by chunk.
export async function hash_here(blob, start, end, algorithm) {
  const { ChecksumStream } = await loadGlue();
  const hasher = new ChecksumStream(algorithm);
  try {
    await readChunks(blob, start, end, (bytes) => hasher.update(bytes));
  } catch (err) {
    hasher.free();
    throw err;
  }
  return hasher.finish();
}

if (typeof WorkerGlobalScope !== 'undefined' && self instanceof WorkerGlobalScope
    && self.name === WORKER_NAME) {
  self.onmessage = async (e) => {
    const { id, blob, start, end, algorithm } = e.data;
    try {
      self.postMessage({ id, sum: await hash_here(blob, start, end, algorithm) });
    } catch (err) {
      self.postMessage({ id, error: String((err && err.message) || err) });
    }
  };
}

export function start_hasher() {
  const pending = new Map();
  let next = 0;
  let worker;
  // Until a worker has answered once, a failure means its script did not load: hash here.
  let answered = false;
  let failed = false;
  const here = (p) => hash_here(...p.args).then(p.resolve, p.reject);
  const send = (id, p) => {
    const [blob, start, end, algorithm] = p.args;
    worker.postMessage({ id, blob, start, end, algorithm });
  };
  const spawn = () => {
    worker = new Worker(new URL('../../s3_direct.js', import.meta.url), {
      type: 'module',
      name: 's3-direct-checksum',
    });
    worker.onmessage = (e) => {
      answered = true;
      const p = pending.get(e.data.id);
      if (!p) return;
      pending.delete(e.data.id);
      if (e.data.error !== undefined) p.reject(new Error(e.data.error));
      else p.resolve(e.data.sum);
    };
    worker.onerror = (e) => {
      if (!answered && !failed) {
        failed = true;
        e.preventDefault();
        console.warn('s3-direct: the checksum worker did not start, hashing parts on this thread:',
          e.message ?? e);
        worker.terminate();
        for (const p of pending.values()) here(p);
      } else {
        for (const p of pending.values()) p.reject(new Error(`checksum worker failed: ${e.message ?? ''}`));
      }
      pending.clear();
    };
  };
  spawn();
  return {
    hash(blob, start, end, algorithm) {
      return new Promise((resolve, reject) => {
        const p = { resolve, reject, args: [blob, start, end, algorithm] };
        if (failed) return here(p);
        const id = next++;
        pending.set(id, p);
        send(id, p);
      });
    },
    // A checksum gave no answer in time: a new worker takes over every checksum still awaited
    // (the one given up on too; its answer then goes unused).
    restart() {
      if (failed) return;
      console.warn('s3-direct: a part checksum gave no answer in time; starting a new checksum worker');
      worker.terminate();
      spawn();
      for (const [id, p] of pending) send(id, p);
    },
    terminate() { worker.terminate(); },
  };
}
"#)]
extern "C" {
    #[derive(Debug, Clone)]
    pub(crate) type Hasher;

    #[wasm_bindgen(catch)]
    fn start_hasher() -> Result<Hasher, JsValue>;

    #[wasm_bindgen(method)]
    fn hash(this: &Hasher, blob: &Blob, start: f64, end: f64, algorithm: &str) -> js_sys::Promise;

    #[wasm_bindgen(method)]
    fn restart(this: &Hasher);

    #[wasm_bindgen(method)]
    fn terminate(this: &Hasher);

    /// Hashes on this thread (no worker): the same code the worker runs.
    fn hash_here(blob: &Blob, start: f64, end: f64, algorithm: &str) -> js_sys::Promise;
}

/// An incremental part checksum for the worker, fed the part chunk by chunk so that neither the
/// worker nor WASM memory ever holds a whole part. Not part of the documented API.
#[wasm_bindgen(js_name = ChecksumStream, skip_typescript)]
#[derive(Debug)]
pub struct ChecksumStream(Digest);

#[wasm_bindgen(js_class = ChecksumStream)]
impl ChecksumStream {
    #[wasm_bindgen(constructor)]
    pub fn new(algorithm: &str) -> Result<ChecksumStream, JsError> {
        ChecksumAlgorithm::parse(algorithm)
            .map(|a| Self(Digest::new(a)))
            .ok_or_else(|| JsError::new(&format!("unknown checksum algorithm {algorithm:?}")))
    }

    /// Adds the next bytes of the part (copied into WASM memory for the call, then freed).
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The part's checksum as base64; the hasher is consumed.
    pub fn finish(self) -> String {
        base64(&self.0.finish())
    }
}

/// A worker shared by the uploads of one `Uploader`, started on first use.
#[derive(Debug, Default)]
pub(crate) struct SharedHasher(std::cell::RefCell<Option<Option<Hasher>>>);

impl SharedHasher {
    fn get(&self) -> Option<Hasher> {
        self.0
            .borrow_mut()
            .get_or_insert_with(|| match start_hasher() {
                Ok(h) => Some(h),
                Err(e) => {
                    web_sys::console::warn_2(
                        &"s3-direct: no checksum worker, hashing parts on this thread:".into(),
                        &e,
                    );
                    None
                }
            })
            .clone()
    }
}

impl Drop for SharedHasher {
    fn drop(&mut self) {
        if let Some(Some(h)) = self.0.borrow_mut().take() {
            h.terminate();
        }
    }
}

/// Checksums parts of one file.
#[derive(Debug)]
pub(crate) struct WorkerChecksummer {
    pub(crate) file: Blob,
    pub(crate) hasher: std::rc::Rc<SharedHasher>,
}

impl Checksummer for WorkerChecksummer {
    fn checksum(
        &self,
        algorithm: ChecksumAlgorithm,
        range: Range<u64>,
    ) -> LocalBoxFuture<'static, Result<String, String>> {
        // f64 holds every offset up to 2^53 exactly, far above S3's 5 TiB object limit.
        let (start, end) = (range.start as f64, range.end as f64);
        // Asked now, not when first polled: the engine asks for the first parts' checksums while
        // it creates the upload, and awaits them only after.
        let (answer, what) = match self.hasher.get() {
            Some(h) => (
                h.hash(&self.file, start, end, algorithm.as_str()),
                "the checksum worker",
            ),
            None => (
                hash_here(&self.file, start, end, algorithm.as_str()),
                "hashing",
            ),
        };
        Box::pin(async move {
            JsFuture::from(answer)
                .await
                .map_err(|e| js_text(&e))?
                .as_string()
                .ok_or_else(|| format!("{what} answered no text"))
        })
    }

    /// A new worker takes over the checksums still awaited; hashing on this thread (no worker)
    /// has nothing to restart, and the engine's new request reads the part afresh.
    fn restart(&self) {
        if let Some(h) = self.hasher.get() {
            h.restart();
        }
    }
}
