//! [`Signer`] over HTTP: JSON calls to the signing API with `fetch`, the bodies read and written
//! by `crate::json`.
//!
//! Each call carries the caller's extra headers (typically `Authorization`) and an
//! `AbortController`, aborted when the call's future is dropped: a dropped `fetch` would
//! otherwise run to its end, and a cancelled upload should not keep talking to the server.
//! The request is built and sent by a few lines of JS rather than through gloo-net's builder
//! (its builder, the `http` crate's methods and its errors' formatting: 2,266 gzipped bytes
//! of the page).

use std::collections::BTreeMap;
use std::future::Future;

use futures::future::LocalBoxFuture;
use js_sys::{Array, Promise};
use s3_direct_protocol::wire::{
    CompleteRequest, CompleteResponse, CreateMultipartRequest, CreateMultipartResponse, ListedPart,
    ObjectCompleteRequest, SinglePutParams,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, AbortSignal};

use crate::engine::error::{Quoted, truncate, xml_field};
use crate::engine::{ApiError, CreatedUpload, PartMap, SignedBatch, Signer, SinglePutRequest};
use crate::json::Json;
use crate::json::wire::{FromJson, ToJson, error_body};
use crate::routes::Routes;

// Headers are set in order, each replacing one of the same name: `Accept`, the caller's, then
// the body's `Content-Type`. Errors reach Rust as their `toString()` ("TypeError: ...").
// `part_store` (for `stream.rs`) is here too, so that the page loads no snippet file more: a
// stream's part store, whose calls wait for the package's `part-store.js` (imported at the
// stream's first part, by the literal path bundlers recognise); without that file or OPFS, `put`
// answers the bytes alone.
#[wasm_bindgen(inline_js = r#"
export function signer_request(method, url, headers, body, signal) {
  try {
    const h = new Headers({ Accept: 'application/json' });
    for (let i = 0; i < headers.length; i += 2) h.set(headers[i], headers[i + 1]);
    if (body !== undefined) h.set('Content-Type', 'application/json');
    return new Request(url, { method, headers: h, body, signal });
  } catch (e) {
    throw String(e);
  }
}
export function js_text(value) {
  if (value instanceof Error) return String(value.message);
  if (typeof value === 'string') return value;
  if (typeof value === 'function') return `Function(${value.name})`;
  if (value !== null && typeof value === 'object') {
    const name = Object.prototype.toString.call(value).slice(8, -1);
    if (name !== 'Object' && name !== 'Array') return name;
  }
  try {
    const json = JSON.stringify(value);
    if (json !== undefined) return json;
  } catch (_) {}
  return String(value);
}
export function part_store() {
  const store = import('../../part-store.js').then((m) => m.open()).catch((e) => {
    console.warn('s3-direct: no part store, keeping stream parts in memory:', e);
  });
  return {
    put: (bytes) => store.then((s) => (s ? s.put(bytes) : { bytes })),
    release: (slot) => store.then((s) => s?.release(slot)),
    close: () => store.then((s) => s?.close()),
  };
}
export function signer_send(request) {
  return fetch(request)
    .then((r) => r.text().then((text) => [r.status, text, r.headers.get('retry-after')]))
    .catch((e) => {
      throw String(e);
    });
}
"#)]
extern "C" {
    /// A `Request`; `headers` are names and values, one after the other.
    #[wasm_bindgen(catch)]
    fn signer_request(
        method: &str,
        url: &str,
        headers: &Array,
        body: Option<String>,
        signal: &AbortSignal,
    ) -> Result<JsValue, JsValue>;
    /// `fetch(request)`, resolving with `[status, body text, Retry-After or null]`.
    fn signer_send(request: &JsValue) -> Promise;
    /// A JS exception (or any value) as text: an `Error`'s message, a string itself, an object
    /// of a class other than `Object` and `Array` its class's name (`ArrayBuffer`), anything
    /// else as JSON or `String(value)`. Written in JS rather than with `JsValue`'s `Debug`,
    /// which brings wasm-bindgen's `debugString` into the glue.
    pub(crate) fn js_text(value: &JsValue) -> String;
    /// The part store of one stream's upload (`stream.rs`).
    pub(crate) fn part_store() -> super::stream::PartStore;
}

/// The signing server at one endpoint.
#[derive(Debug, Clone)]
pub(crate) struct HttpSigner {
    routes: Routes,
    /// The caller's extra headers: names and values, one after the other.
    headers: Array,
}

impl HttpSigner {
    pub(crate) fn new(endpoint: &str, headers: BTreeMap<String, String>) -> Self {
        let list = Array::new();
        for (name, value) in &headers {
            list.push(&JsValue::from_str(name));
            list.push(&JsValue::from_str(value));
        }
        Self {
            routes: Routes::new(endpoint),
            headers: list,
        }
    }

    /// Sends one call and reads its JSON answer. Only the reading is typed by the answer: the
    /// request, the parse and the messages are in `send`, once for the seven calls.
    async fn call<T: FromJson>(
        &self,
        method: &'static str,
        url: String,
        body: Option<&dyn ToJson>,
    ) -> Result<T, ApiError> {
        let body = body.map(|b| b.to_json().to_text());
        let answer = self.send(method, url, body).await?;
        T::from_json(&answer.json).map_err(|e| invalid_answer(answer.status, &answer.text, &e))
    }

    /// Sends one call: a 2xx answer, its body parsed. Boxed, so that the module holds this code
    /// once rather than inlined into each call's future: 7,348 bytes of the page (1,856
    /// gzipped) for the seven calls.
    fn send(
        &self,
        method: &'static str,
        url: String,
        body: Option<String>,
    ) -> LocalBoxFuture<'_, Result<Answer, ApiError>> {
        Box::pin(async move {
            let controller = AbortController::new().map_err(|e| ApiError::Network(js_text(&e)))?;
            let abort = AbortOnDrop(Some(controller.clone()));
            let request = signer_request(method, &url, &self.headers, body, &controller.signal())
                .map_err(|e| {
                ApiError::InvalidResponse(format!("cannot build the request: {}", js_text(&e)))
            })?;
            let answer: Array = JsFuture::from(signer_send(&request))
                .await
                .map_err(|e| ApiError::Network(js_text(&e)))?
                .into();
            abort.disarm();
            // An HTTP status is a whole number from 200 to 599.
            let status = answer.get(0).as_f64().unwrap_or_default() as u16;
            let text = answer.get(1).as_string().unwrap_or_default();
            if !(200..300).contains(&status) {
                // Delay-seconds only: the server sends those, and dates need a clock we trust
                // less.
                let retry_after_ms = answer
                    .get(2)
                    .as_string()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| s.saturating_mul(1000));
                return Err(status_error(status, &text, retry_after_ms));
            }
            let json = if text.trim().is_empty() {
                Ok(Json::Null)
            } else {
                Json::parse(&text)
            };
            match json {
                Ok(json) => Ok(Answer { status, text, json }),
                Err(e) => Err(invalid_answer(status, &text, &e)),
            }
        })
    }
}

/// A 2xx answer of the signing server.
struct Answer {
    status: u16,
    text: String,
    /// `text` parsed; an empty body reads as `null`.
    json: Json,
}

/// A 2xx answer that is not JSON, or not what the call expects: `e` says why.
fn invalid_answer(status: u16, text: &str, e: &str) -> ApiError {
    ApiError::InvalidResponse(format!(
        "status {}, body {}: {e}",
        u32::from(status),
        Quoted(truncate(text.trim(), 200))
    ))
}

fn status_error(status: u16, text: &str, retry_after_ms: Option<u64>) -> ApiError {
    let (code, message) = error_body(text);
    let message = if !message.is_empty() {
        message
    } else if let Some(message) = xml_field(text, "Message") {
        message.to_owned()
    } else {
        // A proxy's plain-text answer says something; its HTML page does not.
        let line = text.trim().lines().next().unwrap_or("").trim();
        if line.starts_with('<') {
            String::new()
        } else {
            truncate(line, 200).to_owned()
        }
    };
    ApiError::Status {
        status,
        code: (!code.is_empty()).then_some(code),
        message,
        retry_after_ms,
    }
}

/// Aborts a request unless disarmed once it has finished.
struct AbortOnDrop(Option<AbortController>);

impl AbortOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(controller) = self.0.take() {
            controller.abort();
        }
    }
}

impl Signer for HttpSigner {
    fn create(
        &self,
        request: &CreateMultipartRequest,
    ) -> impl Future<Output = Result<CreatedUpload, ApiError>> {
        self.call("POST", self.routes.create(), Some(request as &dyn ToJson))
    }

    fn sign_parts(
        &self,
        upload: &CreateMultipartResponse,
        parts: &[u32],
        checksums: &PartMap<String>,
        lengths: &PartMap<u64>,
    ) -> impl Future<Output = Result<SignedBatch, ApiError>> {
        let url =
            self.routes
                .sign_batch_with(&upload.upload_id, &upload.key, parts, checksums, lengths);
        self.call("GET", url, None)
    }

    fn complete(
        &self,
        upload: &CreateMultipartResponse,
        request: &CompleteRequest,
    ) -> impl Future<Output = Result<CompleteResponse, ApiError>> {
        let url = self.routes.complete(&upload.upload_id, &upload.key);
        self.call("POST", url, Some(request as &dyn ToJson))
    }

    fn list_parts(
        &self,
        upload: &CreateMultipartResponse,
    ) -> impl Future<Output = Result<Vec<ListedPart>, ApiError>> {
        let url = self.routes.list_parts(&upload.upload_id, &upload.key);
        self.call("GET", url, None)
    }

    fn single_put(
        &self,
        request: &SinglePutRequest,
    ) -> impl Future<Output = Result<SinglePutParams, ApiError>> {
        let url = self.routes.single_put(request);
        self.call("GET", url, None)
    }

    fn complete_single(
        &self,
        request: &ObjectCompleteRequest,
    ) -> impl Future<Output = Result<CompleteResponse, ApiError>> {
        let url = self.routes.complete_single();
        self.call("POST", url, Some(request as &dyn ToJson))
    }

    fn abort(
        &self,
        upload: &CreateMultipartResponse,
    ) -> impl Future<Output = Result<(), ApiError>> {
        let url = self.routes.abort(&upload.upload_id, &upload.key);
        // The answer is `{}`, and nothing in it is needed (an empty body reads as `null`).
        self.call("DELETE", url, None)
    }
}
