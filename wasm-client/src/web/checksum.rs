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
//! disk), a stream's part as its file in the part store, or where it has none as its bytes,
//! transferred to the worker and back with the answer (`stream.rs` says why not as a Blob; bytes
//! sent before the worker first answers are copied, in case its script does not load), and the
//! upload's composite checksum is asked of the worker too. A stream's part lent to a worker that
//! stops answering is lost with it when `restart` ends that worker: that part's checksum then
//! fails. Where a worker cannot be started or its script cannot load (no `Worker`, a strict CSP,
//! a bundler that leaves the URL pointing nowhere), the page imports the same script and hashes on
//! the calling thread instead, which is correct but can make the page stutter; a console warning
//! says so.
//!
//! Memory stays flat whatever the file size: a part is read through a BYOB reader into one reused
//! 1 MiB buffer and fed to the incremental `ChecksumStream`, so no part-sized buffer exists and
//! WASM memory never grows with the part. (Reading each part with `arrayBuffer()` made the browser grow with the
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

use futures::FutureExt;
use futures::future::LocalBoxFuture;
use js_sys::Reflect;
use s3_direct_protocol::wire::ChecksumAlgorithm;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::signer::js_text;
use super::stream::Body;
use crate::engine::{ChecksumError, Checksummer};

// The hasher's JavaScript, shipped as it is written (so its comments are here, not in it):
// - `workerScript` imports the worker's script (relative to this snippet, snippets/<crate>/ in the
//   package) on this thread where no worker starts, to hash here with the worker's own code and
//   module; the literal paths (here and in `new Worker(new URL(…, import.meta.url))`) are the
//   forms bundlers recognise and give the worker a bundle of its own.
// - Every answer is `{ sum, bytes }`: `bytes` is a stream part's bytes (a `Uint8Array`) handed
//   back, by the worker with its answer or its failure, or by `hash_here`, which never lent them.
// - Until a worker has answered once, a failure means its script did not load: then parts are
//   hashed here. So a stream part's bytes are transferred (not copied) only once the worker has
//   answered; before, they must stay here to be hashed on this thread.
// - `restart` (a checksum gave no answer in time): a new worker takes over every checksum still
//   awaited (the one given up on too; its answer then goes unused), except a stream part's bytes
//   transferred to the worker that is ended (their array is then empty): those are lost, and
//   their checksums fail.
#[wasm_bindgen(inline_js = r#"
const workerScript = () => import('../../checksum-worker.js');

export async function hash_here(blob, start, end, algorithm) {
  const sum = await (await workerScript()).hashPart(blob, start, end, algorithm);
  return { sum, bytes: blob instanceof Uint8Array ? blob : undefined };
}

export async function composite_here(algorithm, sums) {
  return { sum: await (await workerScript()).composite(algorithm, sums) };
}

export function start_hasher() {
  const pending = new Map();
  let next = 0;
  let worker;
  let answered = false;
  let failed = false;
  const here = ({ args, resolve, reject }) =>
    (args.sums ? composite_here(args.algorithm, args.sums)
      : hash_here(args.blob, args.start, args.end, args.algorithm)).then(resolve, reject);
  const send = (id, p) => {
    const bytes = p.args.blob instanceof Uint8Array && answered ? [p.args.blob.buffer] : [];
    worker.postMessage({ id, ...p.args }, bytes);
  };
  const lost = ({ blob }) => blob instanceof Uint8Array && blob.byteLength === 0;
  const spawn = () => {
    worker = new Worker(new URL('../../checksum-worker.js', import.meta.url), {
      type: 'module',
      name: 's3-direct-checksum',
    });
    worker.onmessage = (e) => {
      answered = true;
      const { id, sum, bytes, error } = e.data;
      const p = pending.get(id);
      if (!p) return;
      pending.delete(id);
      if (error === undefined) return p.resolve({ sum, bytes });
      p.reject(Object.assign(new Error(error), { bytes }));
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
    restart() {
      if (failed) return;
      console.warn('s3-direct: a part checksum gave no answer in time; starting a new checksum worker');
      worker.terminate();
      spawn();
      for (const [id, p] of pending) {
        if (!lost(p.args)) send(id, p);
        else {
          pending.delete(id);
          p.reject(new Error('the part was lost with a checksum worker that stopped answering'));
        }
      }
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
        // Asked now, not when first polled: the engine asks for the first parts' checksums while
        // it creates the upload, and awaits them only after.
        let hasher = self.hasher.get();
        let what = if hasher.is_some() {
            "the checksum worker"
        } else {
            "hashing"
        };
        let ask = |blob: &JsValue, start, end| match &hasher {
            Some(h) => h.hash(blob, start, end, algorithm.as_str()),
            None => hash_here(blob, start, end, algorithm.as_str()),
        };
        // A stream's part is lent to the hasher (transferred to the worker), a file's sliced.
        let answer = match &self.body {
            Body::Stream(source) => {
                let len = (range.end - range.start) as f64;
                source.hash(range.start, |bytes| ask(bytes, 0.0, len))
            }
            Body::File(file) => Ok(ask(file, range.start as f64, range.end as f64)),
        };
        match answer {
            Ok(answer) => Box::pin(JsFuture::from(answer).map(move |a| sum_of(a, what))),
            Err(e) => Box::pin(futures::future::err(ChecksumError::new(e))),
        }
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
        Box::pin(JsFuture::from(answer).map(|answer| sum_of(answer, "the checksummer")))
    }

    /// A new worker takes over the checksums still awaited; hashing on this thread (no worker)
    /// has nothing to restart, and the engine's new request reads the part afresh.
    fn restart(&self) {
        if let Some(h) = self.hasher.get() {
            h.restart();
        }
    }
}

/// The sum (text) a checksum promise's answer `{ sum }` holds, or why there is none.
fn sum_of(answer: Result<JsValue, JsValue>, what: &str) -> Result<String, ChecksumError> {
    let answer = answer.map_err(|e| ChecksumError::new(js_text(&e)))?;
    let sum = Reflect::get(&answer, &"sum".into())
        .ok()
        .and_then(|s| s.as_string());
    sum.ok_or_else(|| ChecksumError::new(format!("{what} answered no text")))
}
