//! [`Checksummer`] in a Web Worker: part checksums are computed by this same WASM module, loaded
//! a second time in a module worker, so hashing gigabytes never blocks the page.
//!
//! The worker is started from a Blob URL whose code imports the package's JS glue by its URL
//! (`../../s3_direct.js` from this snippet, the layout `wasm-bindgen --target web` writes), and
//! receives each part as a `Blob` slice (no copy: the worker reads it from disk). Where a worker
//! cannot be started (no `Worker`, a strict CSP), parts are hashed on the calling thread instead,
//! which is correct but can make the page stutter; a console warning says so.

use std::ops::Range;

use futures::future::LocalBoxFuture;
use s3_direct_protocol::wire::ChecksumAlgorithm;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::Blob;

use super::signer::js_text;
use crate::engine::Checksummer;
use crate::engine::digest::checksum;

#[wasm_bindgen(inline_js = r#"
export function start_hasher() {
  const glue = new URL('../../s3_direct.js', import.meta.url).href;
  const code = `import init, { checksum_bytes } from ${JSON.stringify(glue)};
const ready = init();
self.onmessage = async (e) => {
  const { id, blob, start, end, algorithm } = e.data;
  try {
    await ready;
    const bytes = new Uint8Array(await blob.slice(start, end).arrayBuffer());
    self.postMessage({ id, sum: checksum_bytes(algorithm, bytes) });
  } catch (err) {
    self.postMessage({ id, error: String((err && err.message) || err) });
  }
};`;
  const url = URL.createObjectURL(new Blob([code], { type: 'text/javascript' }));
  const worker = new Worker(url, { type: 'module' });
  URL.revokeObjectURL(url);
  const pending = new Map();
  let next = 0;
  worker.onmessage = (e) => {
    const p = pending.get(e.data.id);
    if (!p) return;
    pending.delete(e.data.id);
    if (e.data.error !== undefined) p.reject(new Error(e.data.error));
    else p.resolve(e.data.sum);
  };
  worker.onerror = (e) => {
    for (const p of pending.values()) p.reject(new Error(`checksum worker failed: ${e.message ?? ''}`));
    pending.clear();
  };
  return {
    hash(blob, start, end, algorithm) {
      return new Promise((resolve, reject) => {
        const id = next++;
        pending.set(id, { resolve, reject });
        worker.postMessage({ id, blob, start, end, algorithm });
      });
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
    fn terminate(this: &Hasher);
}

/// The checksum of `bytes` as base64, for the worker. Not part of the documented API.
#[wasm_bindgen(js_name = checksum_bytes, skip_typescript)]
pub fn checksum_bytes(algorithm: &str, bytes: &[u8]) -> Result<String, JsError> {
    let algorithm = ChecksumAlgorithm::ALL
        .into_iter()
        .find(|a| a.as_str() == algorithm)
        .ok_or_else(|| JsError::new(&format!("unknown checksum algorithm {algorithm:?}")))?;
    Ok(checksum(algorithm, bytes))
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
        let file = self.file.clone();
        let hasher = self.hasher.get();
        Box::pin(async move {
            // f64 holds every offset up to 2^53 exactly, far above S3's 5 TiB object limit.
            let (start, end) = (range.start as f64, range.end as f64);
            match hasher {
                Some(h) => JsFuture::from(h.hash(&file, start, end, algorithm.as_str()))
                    .await
                    .map_err(|e| js_text(&e))?
                    .as_string()
                    .ok_or_else(|| "the checksum worker answered no text".to_owned()),
                None => {
                    let slice = file
                        .slice_with_f64_and_f64(start, end)
                        .map_err(|e| js_text(&e))?;
                    let buffer = JsFuture::from(slice.array_buffer())
                        .await
                        .map_err(|e| js_text(&e))?;
                    Ok(checksum(
                        algorithm,
                        &js_sys::Uint8Array::new(&buffer).to_vec(),
                    ))
                }
            }
        })
    }
}
