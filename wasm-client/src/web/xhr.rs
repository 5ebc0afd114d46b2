//! [`PartSink`] over `XMLHttpRequest`: one PUT per part, body `Blob.slice(start, end)` of the file,
//! or of a stream's part's file in its part store, or a Blob of the part's bytes ([`Body`]).
//!
//! XHR and not `fetch`, because only XHR reports upload progress (`upload.onprogress`). A sliced
//! Blob is lazy, so the browser streams the part from disk and the file is never read into memory.
//! Dropping the future aborts the request (the engine relies on it for cancel and on failure).
//!
//! A file changed on disk after it was chosen is found before each attempt and after a failed
//! one ([`still_readable`]): each engine fails differently when it sends such a file (Chromium a
//! network error, WebKit a request whose body never comes, Firefox a short body), but all three
//! refuse to read it or read it short (README, "Browser engines").

use std::cell::RefCell;
use std::rc::Rc;

use futures::channel::oneshot;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, ProgressEvent, XmlHttpRequest, XmlHttpRequestUpload};

use super::signer::js_text;
use super::stream::Body;
use crate::engine::error::truncate;
use crate::engine::{PartProgress, PartPut, PartSink, PutError};

/// How much of an error answer is kept for the message (S3's XML errors are far smaller).
const MAX_ERROR_BODY: usize = 4096;

/// Sends parts of one file or stream.
#[derive(Debug, Clone)]
pub(crate) struct XhrSink {
    body: Body,
}

impl XhrSink {
    pub(crate) fn new(body: Body) -> Self {
        Self { body }
    }

    /// A file changed since it was chosen fails its PUT (see the module's doc); a stream's part
    /// is in the browser's blob storage and cannot change.
    async fn still_readable(&self, range: &std::ops::Range<u64>) -> Result<(), PutError> {
        match &self.body {
            Body::File(file) => still_readable(file, range).await,
            Body::Stream(_) => Ok(()),
        }
    }
}

/// How an XHR ended, as its event handlers saw it.
#[derive(Debug)]
enum Ended {
    /// `load`: an HTTP answer arrived (any status).
    Loaded,
    /// `error`, `timeout` or `abort` before an answer.
    Failed(&'static str),
}

impl PartSink for XhrSink {
    async fn put_part(
        &self,
        put: PartPut<'_>,
        progress: PartProgress,
    ) -> Result<Option<String>, PutError> {
        let js_err = |e: wasm_bindgen::JsValue| PutError::Network(js_text(&e));
        self.still_readable(&put.range).await?;
        let (blob, start, end) = self.body.locate(&put.range).map_err(PutError::Unreadable)?;
        let xhr = XmlHttpRequest::new().map_err(js_err)?;
        xhr.open_with_async("PUT", put.url, true).map_err(js_err)?;
        for (name, value) in put.headers {
            // The browser sets these itself (Content-Length from the body, which is exactly the
            // part) and throws on an attempt to set them; a server may still list them because
            // it signed them.
            if is_forbidden_header(name) {
                continue;
            }
            xhr.set_request_header(name, value).map_err(js_err)?;
        }
        // A file, or a stream's part's file, is sliced (lazily: the browser streams the part from
        // disk); a stream's part kept in memory is a Blob of its bytes, made for this PUT (see
        // `stream.rs` on why it is not kept).
        let body = match blob.dyn_into::<Blob>() {
            Ok(file) => file.slice_with_f64_and_f64(start, end),
            Err(bytes) => Blob::new_with_u8_array_sequence(&js_sys::Array::of1(&bytes)),
        }
        .map_err(js_err)?;

        let (tx, rx) = oneshot::channel();
        let tx = Rc::new(RefCell::new(Some(tx)));
        let ending = |outcome: fn() -> Ended| {
            let tx = tx.clone();
            Closure::<dyn FnMut()>::new(move || {
                if let Some(tx) = tx.borrow_mut().take() {
                    // The receiver is gone only if the PUT was dropped, and then nobody cares.
                    let _ = tx.send(outcome());
                }
            })
        };
        let handlers = Handlers {
            load: ending(|| Ended::Loaded),
            error: ending(|| Ended::Failed("the request failed or CORS refused it")),
            timeout: ending(|| Ended::Failed("the request timed out")),
            abort: ending(|| Ended::Failed("the request was aborted")),
            progress: Closure::new(move |e: ProgressEvent| progress.sent(e.loaded() as u64)),
        };
        let upload = xhr.upload().map_err(js_err)?;
        let guard = InFlight {
            xhr: xhr.clone(),
            upload,
            handlers,
            done: false,
        };
        guard.attach();
        xhr.send_with_opt_blob(Some(&body)).map_err(js_err)?;

        let ended = rx.await;
        let mut guard = guard;
        guard.done = true;
        drop(guard);
        match ended {
            Ok(Ended::Loaded) => {}
            Ok(Ended::Failed(why)) => {
                // Chromium fails the request of a file changed while it was being sent.
                self.still_readable(&put.range).await?;
                return Err(PutError::Network(why.into()));
            }
            Err(_) => return Err(PutError::Network("the request vanished".into())),
        }
        let status = xhr.status().map_err(js_err)?;
        if status == 0 {
            return Err(PutError::Network("no HTTP status".into()));
        }
        // Read from the full list because `getResponseHeader` on a header CORS hides logs
        // "Refused to get unsafe header" in Chromium's console for every part.
        let headers = xhr.get_all_response_headers().unwrap_or_default();
        if !(200..300).contains(&status) {
            let text = xhr.response_text().ok().flatten().unwrap_or_default();
            return Err(PutError::Status {
                status,
                body: truncate(&text, MAX_ERROR_BODY).to_owned(),
                retry_after_ms: header(&headers, "retry-after").and_then(|v| retry_after_ms(&v)),
            });
        }
        // `None` both when the store sent no ETag and when CORS hides it; the engine says which
        // setting to fix.
        Ok(header(&headers, "etag"))
    }
}

/// Whether the last byte of `range` can still be read from `file`: a read of a file changed,
/// moved or deleted since it was chosen is refused (`NotReadableError` in Chromium,
/// `NotFoundError` in WebKit) or comes back short (Firefox, for a file cut shorter). One byte
/// from disk, so it costs next to nothing beside the part's PUT.
async fn still_readable(file: &Blob, range: &std::ops::Range<u64>) -> Result<(), PutError> {
    if range.is_empty() {
        return Ok(());
    }
    let last = file
        .slice_with_f64_and_f64((range.end - 1) as f64, range.end as f64)
        .map_err(|e| PutError::Unreadable(js_text(&e)))?;
    let bytes = JsFuture::from(last.array_buffer())
        .await
        .map_err(|e| PutError::Unreadable(js_text(&e)))?;
    if js_sys::ArrayBuffer::from(bytes).byte_length() == 1 {
        Ok(())
    } else {
        Err(PutError::Unreadable(format!(
            "byte {} is no longer in the file",
            range.end - 1
        )))
    }
}

/// Request headers a page may not set (the Fetch standard's forbidden names that a signing
/// server could plausibly return).
fn is_forbidden_header(name: &str) -> bool {
    const FORBIDDEN: [&str; 8] = [
        "content-length",
        "host",
        "connection",
        "expect",
        "keep-alive",
        "te",
        "transfer-encoding",
        "date",
    ];
    FORBIDDEN
        .iter()
        .any(|f| name.trim().eq_ignore_ascii_case(f))
}

/// `Retry-After` as milliseconds from now: delay-seconds or an HTTP date.
fn retry_after_ms(value: &str) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }
    let at = js_sys::Date::parse(value);
    (!at.is_nan()).then(|| (at - js_sys::Date::now()).max(0.0) as u64)
}

/// The value of header `name` (lowercase) in a `getAllResponseHeaders()` list.
fn header(all: &str, name: &str) -> Option<String> {
    all.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// The XHR's event handlers, kept alive while they are attached.
struct Handlers {
    load: Closure<dyn FnMut()>,
    error: Closure<dyn FnMut()>,
    timeout: Closure<dyn FnMut()>,
    abort: Closure<dyn FnMut()>,
    progress: Closure<dyn FnMut(ProgressEvent)>,
}

/// One XHR in flight. Dropped early, it aborts the request; either way it detaches the handlers
/// first, so no event can reach a freed closure.
struct InFlight {
    xhr: XmlHttpRequest,
    upload: XmlHttpRequestUpload,
    handlers: Handlers,
    done: bool,
}

impl InFlight {
    fn attach(&self) {
        let h = &self.handlers;
        self.xhr.set_onload(Some(h.load.as_ref().unchecked_ref()));
        self.xhr.set_onerror(Some(h.error.as_ref().unchecked_ref()));
        self.xhr
            .set_ontimeout(Some(h.timeout.as_ref().unchecked_ref()));
        self.xhr.set_onabort(Some(h.abort.as_ref().unchecked_ref()));
        self.upload
            .set_onprogress(Some(h.progress.as_ref().unchecked_ref()));
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.xhr.set_onload(None);
        self.xhr.set_onerror(None);
        self.xhr.set_ontimeout(None);
        self.xhr.set_onabort(None);
        self.upload.set_onprogress(None);
        if !self.done {
            // Errors only if the XHR is already finished, which is the state we want anyway.
            let _ = self.xhr.abort();
        }
    }
}
