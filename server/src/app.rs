//! The whole HTTP surface as a function of the state: [`app`] (the signing API under the route
//! prefix, the probes, `/metrics`, the receipts' JWK Set, the static pages) and [`serve`], which
//! runs it on a listener behind the `Host` check until a shutdown future resolves.
//!
//! Every request gets an `x-request-id`: a caller's is kept only when it is 1..=128 visible ASCII
//! characters ([`usable_request_id`]), otherwise a UUID is made; it is echoed on the answer and
//! named on the request's log span, which names the route pattern, never the path. A panicking
//! handler answers the `internal` JSON error.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::error::Error;
use crate::state::{AppState, Settings};
use crate::{guard, receipt, routes};

/// The whole HTTP surface: the signing API under the route prefix, `/healthz`, `/readyz`,
/// `/metrics`, the WASM package at `/pkg/` and the demo page at `/`.
pub fn app(state: AppState) -> Router {
    let settings = state.settings();
    let api = routes::api_router();
    let api = match cors(settings) {
        Some(layer) => api.layer(layer),
        None => api,
    };
    // The pages and the package, gzipped for browsers that take it (the page's module is a third
    // of its size so: BENCHMARKS.md, "Time to ready"), revalidated on every use (`no-cache`, with
    // `Last-Modified`), so a rebuilt package is never served stale and an unchanged one costs a 304.
    let pages = Router::new()
        .nest_service("/pkg", ServeDir::new(&settings.pkg_dir))
        .fallback_service(ServeDir::new(&settings.web_dir))
        .layer(CompressionLayer::new())
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ));
    let router = if settings.route_prefix.is_empty() {
        // API at the root: unknown paths fall through to the static files.
        ops_routes(api).merge(pages)
    } else {
        // Unknown paths under the prefix get a JSON 404, not the demo page's HTML 404.
        ops_routes(Router::new())
            .nest(&settings.route_prefix, api.fallback(routes::no_route))
            .merge(pages)
    };
    router
        // Bodies the server would misread are refused before any route sees them.
        .layer(axum::middleware::from_fn(guard::check_message))
        .layer(CatchPanicLayer::custom(panic_response))
        // The span names the method and the route *pattern* only: paths carry upload tokens and
        // keys, query strings carry keys and checksums, headers carry credentials.
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let route = req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map_or("-", axum::extract::MatchedPath::as_str)
                    .to_owned();
                // The request id (given or generated) is on every log line of the request.
                let request_id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned();
                tracing::info_span!(
                    "request",
                    method = %req.method(),
                    route = %route,
                    request_id = %request_id
                )
            }),
        )
        // Give the request an `x-request-id` (a UUID when the caller sent none) and echo it on
        // the response.
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        // Outermost: a caller's id that is not short visible ASCII is dropped, so one is made.
        .layer(axum::middleware::map_request(drop_unusable_request_id))
        .with_state(state)
}

/// The request id header.
const REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// Longest caller-supplied request id kept.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A caller's request id is used only when it is 1..=128 visible ASCII characters: it goes into
/// every log line and back into the response, so it must not be able to forge log lines, carry
/// control characters or flood the logs.
pub fn usable_request_id(value: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&value.len()) && value.iter().all(|b| b.is_ascii_graphic())
}

async fn drop_unusable_request_id(
    mut req: axum::http::Request<axum::body::Body>,
) -> axum::http::Request<axum::body::Body> {
    let given = req
        .headers()
        .get_all(&REQUEST_ID)
        .iter()
        .collect::<Vec<_>>();
    // Several ids are as unusable as a bad one: which would the logs name?
    let usable = matches!(given.as_slice(), [one] if usable_request_id(one.as_bytes()));
    if !given.is_empty() && !usable {
        req.headers_mut().remove(&REQUEST_ID);
    }
    req
}

/// The operator's routes: liveness, readiness and metrics.
fn ops_routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics))
        .route(receipt::JWKS_PATH, get(jwks))
}

/// The public keys of receipts, as a JWK Set (RFC 7517). Cacheable for a while: a new key is
/// published before receipts are signed with it (`--receipt-public-key` while rotating).
async fn jwks(State(state): State<AppState>) -> Response {
    (
        [(axum::http::header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.receipts().jwks().clone()),
    )
        .into_response()
}

/// CORS for the signing API from the configured origins (the store's CORS is separate: it is the
/// bucket's rule, or the embedded store's own layer).
fn cors(settings: &Settings) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if settings.cors_origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = settings
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-requested-with"),
            ])
            .expose_headers([header::RETRY_AFTER])
            .allow_credentials(settings.cors_credentials)
            .max_age(Duration::from_secs(600)),
    )
}

/// A panicking handler is a bug: answer the documented `internal` JSON error (the panic message
/// goes to the log only) instead of dropping the connection.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("no panic message");
    Error::Internal(format!("handler panicked: {detail}")).into_response()
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then lets in-flight requests finish.
///
/// Outside [`app`], because it needs the listening port: every request must name exactly one
/// `Host` the server answers ([`guard::check_host`]; an open server, only its loopback names on
/// this port, against DNS rebinding).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hosts = Arc::new(guard::HostPolicy::new(
        state.authorizer().is_open(),
        &state.settings().allowed_hosts,
        listener.local_addr()?,
    ));
    let app = app(state).layer(axum::middleware::from_fn_with_state(
        hosts,
        guard::check_host,
    ));
    // Connection info gives open mode's rate limit the client address.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FakeStore;
    use axum::http::StatusCode;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    /// The `x-request-id` the server answers a request carrying `given` with.
    async fn answered_id(given: &[&[u8]]) -> String {
        let app = app(AppState::new(
            Arc::new(FakeStore::new()),
            Settings::default(),
        ));
        let mut req = axum::http::Request::get("/healthz");
        for g in given {
            req = req.header(
                "x-request-id",
                axum::http::HeaderValue::from_bytes(g).unwrap(),
            );
        }
        let res = app
            .oneshot(req.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let ids: Vec<_> = res.headers().get_all("x-request-id").iter().collect();
        assert_eq!(ids.len(), 1, "{ids:?}");
        ids[0].to_str().unwrap().to_owned()
    }

    fn is_uuid(s: &str) -> bool {
        uuid::Uuid::parse_str(s).is_ok()
    }

    #[tokio::test]
    async fn a_short_visible_ascii_request_id_is_kept() {
        assert_eq!(answered_id(&[b"req-42"]).await, "req-42");
        let longest = "a".repeat(MAX_REQUEST_ID_LEN);
        assert_eq!(answered_id(&[longest.as_bytes()]).await, longest);
        let punctuation = "!#$%&'()*+,-./:;<=>?@[]^_`{|}~\\\"";
        assert_eq!(answered_id(&[punctuation.as_bytes()]).await, punctuation);
    }

    #[tokio::test]
    async fn any_other_request_id_is_replaced_by_a_fresh_one() {
        let too_long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        for bad in [
            too_long.as_bytes(),
            b"",
            b"two words",
            b"tab\there",
            "caf\u{e9}".as_bytes(),
            b"\xff\xfe",
        ] {
            let id = answered_id(&[bad]).await;
            assert!(is_uuid(&id), "{bad:?} gave {id:?}");
        }
        // Two ids: neither is trusted.
        let id = answered_id(&[b"one", b"two"]).await;
        assert!(is_uuid(&id), "{id}");
        // None: one is made.
        assert!(is_uuid(&answered_id(&[]).await));
        // DEL and NUL cannot even travel in a header value; the check refuses them anyway.
        assert!(!usable_request_id(b"fake\x7f") && !usable_request_id(b"a\0b"));
        assert!(usable_request_id(b"~") && !usable_request_id(b" "));
    }

    #[tokio::test]
    async fn a_panic_becomes_an_internal_json_error_without_details() {
        let res = panic_response(Box::new("secret state at line 42".to_owned()));
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let body: s3_direct_protocol::wire::ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(body.error, s3_direct_protocol::ErrorCode::Internal);
        assert!(!body.message.contains("secret"), "{}", body.message);
    }
}
