//! [`ResumeStore`] over IndexedDB, and the file fingerprint.
//!
//! Records are JSON strings in one object store, keyed by the fingerprint's key, with their
//! last-update time beside them for expiry. The IndexedDB calls are a few lines of JS (callback
//! APIs read better there than through web-sys); every decision stays in the engine. Where
//! IndexedDB is missing or refuses (private modes, storage disabled), loads find nothing and
//! saves are dropped: the upload works, it just cannot resume.

use futures::future::LocalBoxFuture;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, File};

use crate::engine::resume::{sample_hash, sample_ranges};
use crate::engine::{Fingerprint, ResumeRecord, ResumeStore};
use crate::json::wire::{FromJson, ToJson};

#[wasm_bindgen(inline_js = r#"
const DB = 's3-direct', STORE = 'resume';
let opened;
function db() {
  if (!opened) {
    opened = new Promise((resolve, reject) => {
      if (typeof indexedDB === 'undefined') return reject(new Error('no IndexedDB'));
      const req = indexedDB.open(DB, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    opened.catch(() => { opened = undefined; });
  }
  return opened;
}
function run(mode, body) {
  return db().then((d) => new Promise((resolve, reject) => {
    const tx = d.transaction(STORE, mode);
    const out = body(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(out && 'result' in out ? out.result : undefined);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  }));
}
export function idb_open() {
  db().catch(() => {});
}
export function idb_load(key) {
  return run('readonly', (s) => s.get(key)).then((v) => (v ? v.json : undefined), () => undefined);
}
export function idb_save(key, json, updated) {
  run('readwrite', (s) => { s.put({ json, updated }, key); }).catch(() => {});
}
export function idb_remove(key) {
  run('readwrite', (s) => { s.delete(key); }).catch(() => {});
}
export function idb_remove_older_than(ms) {
  run('readwrite', (s) => {
    s.openCursor().onsuccess = (e) => {
      const c = e.target.result;
      if (!c) return;
      if (!(c.value && c.value.updated >= ms)) c.delete();
      c.continue();
    };
  }).catch(() => {});
}
export function sample_bytes(buffer) {
  return new Uint8Array(buffer);
}
"#)]
extern "C" {
    fn idb_open();
    fn idb_load(key: &str) -> js_sys::Promise;
    fn idb_save(key: &str, json: &str, updated: f64);
    fn idb_remove(key: &str);
    fn idb_remove_older_than(ms: f64);
    /// An `ArrayBuffer`'s bytes, copied by the glue: `Uint8Array::to_vec` would bring its
    /// length assertion and what that formats into the page.
    fn sample_bytes(buffer: &JsValue) -> Vec<u8>;
}

/// Resume records in the origin's IndexedDB database `s3-direct`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdbResumeStore;

impl IdbResumeStore {
    /// Starts opening the database (once per page), so the first lookup does not wait for it.
    pub(crate) fn open() {
        idb_open();
    }
}

impl ResumeStore for IdbResumeStore {
    fn load(&self, key: &str) -> LocalBoxFuture<'static, Option<ResumeRecord>> {
        let promise = idb_load(key);
        Box::pin(async move {
            let json = JsFuture::from(promise).await.ok()?.as_string()?;
            // A record from an older, incompatible client is as good as none.
            ResumeRecord::from_text(&json).ok()
        })
    }

    fn save(&self, record: &ResumeRecord) {
        let json = record.to_json().to_text();
        idb_save(&record.fingerprint.key(), &json, record.updated_ms);
    }

    fn remove(&self, key: &str) {
        idb_remove(key);
    }

    fn remove_older_than(&self, ms: f64) {
        idb_remove_older_than(ms);
    }
}

/// Name, size, modification time and a hash of sampled bytes of `blob`.
pub(crate) async fn fingerprint(blob: &Blob, name: &str) -> Result<Fingerprint, JsValue> {
    // Blob sizes are whole numbers of bytes below 2^53.
    let size = blob.size() as u64;
    // Read at once rather than one after another: each read is a round trip to the browser's
    // file reader. Awaited as one `Promise.all` (which fails with the first read that fails):
    // `try_join_all` would bring its own set of futures into the page for this one call.
    let reads = js_sys::Array::new();
    for range in sample_ranges(size) {
        let slice = blob.slice_with_f64_and_f64(range.start as f64, range.end as f64)?;
        reads.push(&slice.array_buffer());
    }
    let buffers: js_sys::Array = JsFuture::from(js_sys::Promise::all(&reads)).await?.into();
    let samples: Vec<Vec<u8>> = buffers.iter().map(|buffer| sample_bytes(&buffer)).collect();
    let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
    Ok(Fingerprint {
        name: name.to_owned(),
        size,
        last_modified: blob
            .dyn_ref::<File>()
            .map_or(0, |f| f.last_modified().max(0.0) as u64),
        sample_hash: sample_hash(&refs),
    })
}
