//! [`Checksummer`] in a Web Worker: part checksums are computed in a module worker with the
//! package's checksum module (`s3_direct_checksum.js`, built from `src/worker.rs`: the hashers
//! alone), so hashing gigabytes never blocks the page, and the page's own module carries no
//! hashing code: a page that uploads without checksums never downloads it.
//!
//! The worker's script is `checksum-worker.js` (`wasm-client/js/`), started as
//! `new Worker(new URL('../../checksum-worker.js', import.meta.url), { type: 'module', name })`:
//! the pattern bundlers (Vite, webpack 5) recognise, so a bundled app gets a worker bundle with the
//! script, the checksum module's glue and its `.wasm`, and an unbundled page loads the files as
//! they are. Each part of a file arrives as a `Blob` slice (no copy: the worker reads it from
//! disk), a stream's part as a copy of its chunks (`stream.rs` says why not as a Blob), and the
//! upload's composite checksum is asked of the worker too. Where a worker cannot be started or its
//! script cannot load (no `Worker`, a strict CSP, a bundler that leaves the URL pointing nowhere),
//! the page imports the same script and hashes on the calling thread instead, which is correct but
//! can make the page stutter; a console warning says so.
//!
//! Memory stays flat whatever the file size: a part is read through a BYOB reader into one reused
//! 1 MiB buffer and fed to the incremental `ChecksumStream`, so no part-sized buffer exists and WASM memory never
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

use super::signer::js_text;
use super::stream::Body;
use crate::engine::{ChecksumError, Checksummer};

#[wasm_bindgen(inline_js = r#"
// The worker's script (relative to this snippet, snippets/<crate>/ in the package), imported on
// this thread where no worker starts: hashing here with the worker's own code and module. A
// literal path, so bundlers include it.
const workerScript = () => import('../../checksum-worker.js');

export async function hash_here(blob, start, end, algorithm) {
  return (await workerScript()).hashPart(blob, start, end, algorithm);
}

export async function composite_here(algorithm, sums) {
  return (await workerScript()).composite(algorithm, sums);
}

export function start_hasher() {
  const pending = new Map();
  let next = 0;
  let worker;
  // Until a worker has answered once, a failure means its script did not load: hash here.
  let answered = false;
  let failed = false;
  const here = ({ args, resolve, reject }) =>
    (args.sums ? composite_here(args.algorithm, args.sums)
      : hash_here(args.blob, args.start, args.end, args.algorithm)).then(resolve, reject);
  const send = (id, p) => worker.postMessage({ id, ...p.args });
  const spawn = () => {
    // Bundlers recognise this literal form and give the worker a bundle of its own.
    worker = new Worker(new URL('../../checksum-worker.js', import.meta.url), {
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
  const ask = (args) => new Promise((resolve, reject) => {
    const p = { resolve, reject, args };
    if (failed) return here(p);
    const id = next++;
    pending.set(id, p);
    send(id, p);
  });
  return {
    hash(blob, start, end, algorithm) {
      return ask({ blob, start, end, algorithm });
    },
    composite(algorithm, sums) {
      return ask({ algorithm, sums });
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
    fn hash(
        this: &Hasher,
        blob: &JsValue,
        start: f64,
        end: f64,
        algorithm: &str,
    ) -> js_sys::Promise;

    #[wasm_bindgen(method)]
    fn composite(this: &Hasher, algorithm: &str, sums: Vec<String>) -> js_sys::Promise;

    #[wasm_bindgen(method)]
    fn restart(this: &Hasher);

    #[wasm_bindgen(method)]
    fn terminate(this: &Hasher);

    /// Hashes on this thread (no worker): the same code the worker runs.
    fn hash_here(blob: &JsValue, start: f64, end: f64, algorithm: &str) -> js_sys::Promise;

    fn composite_here(algorithm: &str, sums: Vec<String>) -> js_sys::Promise;
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

/// Checksums parts of one file or stream.
#[derive(Debug)]
pub(crate) struct WorkerChecksummer {
    pub(crate) body: Body,
    pub(crate) hasher: std::rc::Rc<SharedHasher>,
}

impl Checksummer for WorkerChecksummer {
    fn checksum(
        &self,
        algorithm: ChecksumAlgorithm,
        range: Range<u64>,
    ) -> LocalBoxFuture<'static, Result<String, ChecksumError>> {
        let (blob, start, end) = match self.body.locate(&range) {
            Ok(at) => at,
            Err(e) => return Box::pin(futures::future::err(ChecksumError::new(e))),
        };
        // Asked now, not when first polled: the engine asks for the first parts' checksums while
        // it creates the upload, and awaits them only after.
        let (answer, what) = match self.hasher.get() {
            Some(h) => (
                h.hash(&blob, start, end, algorithm.as_str()),
                "the checksum worker",
            ),
            None => (hash_here(&blob, start, end, algorithm.as_str()), "hashing"),
        };
        Box::pin(text_of(answer, what))
    }

    fn composite(
        &self,
        algorithm: ChecksumAlgorithm,
        sums: Vec<String>,
    ) -> LocalBoxFuture<'static, Result<String, ChecksumError>> {
        let answer = match self.hasher.get() {
            Some(h) => h.composite(algorithm.as_str(), sums),
            None => composite_here(algorithm.as_str(), sums),
        };
        Box::pin(text_of(answer, "the checksummer"))
    }

    /// A new worker takes over the checksums still awaited; hashing on this thread (no worker)
    /// has nothing to restart, and the engine's new request reads the part afresh.
    fn restart(&self) {
        if let Some(h) = self.hasher.get() {
            h.restart();
        }
    }
}

/// The text a checksum promise resolves with, or why there is none.
async fn text_of(answer: js_sys::Promise, what: &'static str) -> Result<String, ChecksumError> {
    JsFuture::from(answer)
        .await
        .map_err(|e| ChecksumError::new(js_text(&e)))?
        .as_string()
        .ok_or_else(|| ChecksumError::new(format!("{what} answered no text")))
}
