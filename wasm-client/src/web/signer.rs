//! [`Signer`] over HTTP: JSON calls to the signing API with gloo-net (`fetch`), the bodies read
//! and written by `crate::json`.
//!
//! Each call carries the caller's extra headers (typically `Authorization`) and an
//! `AbortController`, aborted when the call's future is dropped: gloo-net alone lets a dropped
//! `fetch` run to its end, and a cancelled upload should not keep talking to the server.

use std::collections::BTreeMap;

use futures::future::LocalBoxFuture;
use gloo_net::http::{Request, RequestBuilder};
use s3_direct_protocol::wire::{
    CompleteRequest, CompleteResponse, CreateMultipartRequest, CreateMultipartResponse, ListedPart,
    ObjectCompleteRequest, SinglePutParams,
};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::AbortController;

use crate::engine::error::{Quoted, truncate, xml_field};
use crate::engine::{ApiError, CreatedUpload, PartMap, SignedBatch, Signer, SinglePutRequest};
use crate::json::wire::{FromJson, ToJson, error_body};
use crate::routes::Routes;

/// The signing server at one endpoint.
#[derive(Debug, Clone)]
pub(crate) struct HttpSigner {
    routes: Routes,
    headers: BTreeMap<String, String>,
}

impl HttpSigner {
    pub(crate) fn new(endpoint: &str, headers: BTreeMap<String, String>) -> Self {
        Self {
            routes: Routes::new(endpoint),
            headers,
        }
    }

    /// Sends one call and reads its JSON answer.
    async fn call<T: FromJson>(
        &self,
        builder: RequestBuilder,
        body: Option<&dyn ToJson>,
    ) -> Result<T, ApiError> {
        let body = body.map(|b| b.to_json().to_text());
        let (status, text) = self.send(builder, body).await?;
        let json = if text.trim().is_empty() {
            "null"
        } else {
            &text
        };
        T::from_text(json).map_err(|e| {
            ApiError::InvalidResponse(format!(
                "status {}, body {}: {e}",
                u32::from(status),
                Quoted(truncate(text.trim(), 200))
            ))
        })
    }

    /// Sends one call: the status and the body of a 2xx answer. Boxed, so that the module holds
    /// this code once rather than inlined into each call's future: 7,348 bytes of the page
    /// (1,856 gzipped) for the seven calls.
    fn send(
        &self,
        builder: RequestBuilder,
        body: Option<String>,
    ) -> LocalBoxFuture<'_, Result<(u16, String), ApiError>> {
        Box::pin(async move {
            let controller = AbortController::new().map_err(|e| ApiError::Network(js_text(&e)))?;
            let abort = AbortOnDrop(Some(controller.clone()));
            let mut builder = builder
                .header("Accept", "application/json")
                .abort_signal(Some(&controller.signal()));
            for (name, value) in &self.headers {
                builder = builder.header(name, value);
            }
            let request: Request = match body {
                Some(body) => builder
                    .header("Content-Type", "application/json")
                    .body(body),
                None => builder.build(),
            }
            .map_err(|e| ApiError::InvalidResponse(format!("cannot build the request: {e}")))?;

            let response = request
                .send()
                .await
                .map_err(|e| ApiError::Network(e.to_string()))?;
            let status = response.status();
            let text = response
                .text()
                .await
                .map_err(|e| ApiError::Network(e.to_string()))?;
            abort.disarm();
            if !response.ok() {
                // Delay-seconds only: the server sends those, and dates need a clock we trust
                // less.
                let retry_after_ms = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| s.saturating_mul(1000));
                return Err(status_error(status, &text, retry_after_ms));
            }
            Ok((status, text))
        })
    }
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

/// A JS exception as text.
pub(crate) fn js_text(value: &JsValue) -> String {
    if let Some(e) = value.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}

impl Signer for HttpSigner {
    async fn create(&self, request: &CreateMultipartRequest) -> Result<CreatedUpload, ApiError> {
        self.call(
            Request::post(&self.routes.create()),
            Some(request as &dyn ToJson),
        )
        .await
    }

    async fn sign_parts(
        &self,
        upload: &CreateMultipartResponse,
        parts: &[u32],
        checksums: &PartMap<String>,
        lengths: &PartMap<u64>,
    ) -> Result<SignedBatch, ApiError> {
        let url =
            self.routes
                .sign_batch_with(&upload.upload_id, &upload.key, parts, checksums, lengths);
        self.call(Request::get(&url), None).await
    }

    async fn complete(
        &self,
        upload: &CreateMultipartResponse,
        request: &CompleteRequest,
    ) -> Result<CompleteResponse, ApiError> {
        let url = self.routes.complete(&upload.upload_id, &upload.key);
        self.call(Request::post(&url), Some(request as &dyn ToJson))
            .await
    }

    async fn list_parts(
        &self,
        upload: &CreateMultipartResponse,
    ) -> Result<Vec<ListedPart>, ApiError> {
        let url = self.routes.list_parts(&upload.upload_id, &upload.key);
        self.call(Request::get(&url), None).await
    }

    async fn single_put(&self, request: &SinglePutRequest) -> Result<SinglePutParams, ApiError> {
        let url = self.routes.single_put(request);
        self.call(Request::get(&url), None).await
    }

    async fn complete_single(
        &self,
        request: &ObjectCompleteRequest,
    ) -> Result<CompleteResponse, ApiError> {
        let url = self.routes.complete_single();
        self.call(Request::post(&url), Some(request as &dyn ToJson))
            .await
    }

    async fn abort(&self, upload: &CreateMultipartResponse) -> Result<(), ApiError> {
        let url = self.routes.abort(&upload.upload_id, &upload.key);
        // The answer is `{}`, and nothing in it is needed (an empty body reads as `null`).
        self.call(Request::delete(&url), None).await
    }
}
