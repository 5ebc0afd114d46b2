//! HTTP edge cases written byte for byte to a real socket of `serve`: no `Host`, two, a target
//! naming another host, `Content-Length` with `Transfer-Encoding`, a `Content-Encoding` or a
//! JSON charset the server does not decode. Each gets a JSON 400 or 415 with a stable code and
//! reaches no store; the same request done right is served. What hyper refuses before the
//! router (and answers with its own bare 400) is pinned here too, so a change there shows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::wire::ErrorBody;
use s3_direct_server::store::FakeCall;
use s3_direct_server::{AppState, FakeStore, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An answer read off the socket.
#[derive(Debug)]
pub(crate) struct RawReply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

impl RawReply {
    /// The JSON error code of a 4xx answer, checking it is JSON with a message.
    pub(crate) fn error(&self, status: u16, code: ErrorCode) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/json"),
            "{self:?}"
        );
        let body: ErrorBody = serde_json::from_str(&self.body).unwrap();
        assert_eq!(body.error, code, "{self:?}");
        assert!(body.message.len() > 20, "{self:?}");
    }
}

/// Serves `state` with [`s3_direct_server::serve`] on a random loopback port.
pub(crate) async fn serve(state: AppState) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        s3_direct_server::serve(listener, state, std::future::pending())
            .await
            .unwrap();
    });
    addr
}

/// Writes `request` as is and reads the answer until the server closes the connection (send
/// `connection: close`, or HTTP/1.0).
pub(crate) async fn raw(addr: SocketAddr, request: &str) -> RawReply {
    let exchange = async {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer).await.unwrap();
        String::from_utf8(answer).unwrap()
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer within 10 s to {request:?}"));
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let content_type = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.trim().to_owned());
    RawReply {
        status,
        content_type,
        body: body.to_owned(),
    }
}

/// A create body the server accepts.
const BODY: &str = r#"{"filename":"a.bin"}"#;

/// A create request: `head` lines (each ending in CRLF) after the request line, then the body.
fn create(request_line: &str, head: &str, body: &str) -> String {
    format!("{request_line}\r\n{head}connection: close\r\n\r\n{body}")
}

fn creates(store: &FakeStore) -> usize {
    store
        .calls()
        .iter()
        .filter(|c| matches!(c, FakeCall::CreateMultipart(_)))
        .count()
}

/// Requests the guards refuse: what each is, the request, and the status and code it gets.
fn refused_cases(addr: SocketAddr) -> Vec<(&'static str, String, u16, ErrorCode)> {
    let host = format!("host: {addr}\r\n");
    let json = "content-type: application/json\r\n";
    let len = format!("content-length: {}\r\n", BODY.len());
    let post = "POST /s3/multipart HTTP/1.1";
    let chunked = format!("{:x}\r\n{BODY}\r\n0\r\n\r\n", BODY.len());
    vec![
        (
            "no Host",
            create(post, &format!("{json}{len}"), BODY),
            400,
            ErrorCode::InvalidHost,
        ),
        (
            "no Host, HTTP/1.0",
            create("POST /s3/multipart HTTP/1.0", &format!("{json}{len}"), BODY),
            400,
            ErrorCode::InvalidHost,
        ),
        (
            "two Host headers",
            create(post, &format!("{host}{host}{json}{len}"), BODY),
            400,
            ErrorCode::InvalidHost,
        ),
        (
            "an empty Host",
            create(post, &format!("host: \r\n{json}{len}"), BODY),
            400,
            ErrorCode::InvalidHost,
        ),
        (
            "a target naming another host than Host",
            create(
                "POST http://localhost:1/s3/multipart HTTP/1.1",
                &format!("{host}{json}{len}"),
                BODY,
            ),
            400,
            ErrorCode::InvalidHost,
        ),
        (
            "Content-Length then Transfer-Encoding",
            create(
                post,
                &format!("{host}{json}{len}transfer-encoding: chunked\r\n"),
                &chunked,
            ),
            400,
            ErrorCode::InvalidFraming,
        ),
        (
            "Transfer-Encoding then Content-Length",
            create(
                post,
                &format!("{host}{json}transfer-encoding: chunked\r\n{len}"),
                &chunked,
            ),
            400,
            ErrorCode::InvalidFraming,
        ),
        (
            "a chunked body",
            create(
                post,
                &format!("{host}{json}transfer-encoding: chunked\r\n"),
                &chunked,
            ),
            400,
            ErrorCode::InvalidFraming,
        ),
        (
            "Content-Encoding: gzip",
            create(
                post,
                &format!("{host}{json}{len}content-encoding: gzip\r\n"),
                BODY,
            ),
            415,
            ErrorCode::UnsupportedMediaType,
        ),
        (
            "Content-Encoding: identity, br",
            create(
                post,
                &format!("{host}{json}{len}content-encoding: identity, br\r\n"),
                BODY,
            ),
            415,
            ErrorCode::UnsupportedMediaType,
        ),
        (
            "a latin1 JSON body",
            create(
                post,
                &format!("{host}content-type: application/json; charset=latin1\r\n{len}"),
                BODY,
            ),
            415,
            ErrorCode::UnsupportedMediaType,
        ),
        (
            "a UTF-16 JSON body",
            create(
                post,
                &format!("{host}content-type: application/json;charset=\"utf-16\"\r\n{len}"),
                BODY,
            ),
            415,
            ErrorCode::UnsupportedMediaType,
        ),
    ]
}

#[tokio::test]
async fn http_edge_cases_get_json_errors_and_reach_no_store() {
    let store = Arc::new(FakeStore::new());
    let addr = serve(AppState::new(store.clone(), Settings::default())).await;
    for (what, request, status, code) in &refused_cases(addr) {
        let reply = raw(addr, request).await;
        assert_eq!(reply.status, *status, "{what}: {reply:?}");
        reply.error(*status, *code);
    }
    assert_eq!(creates(&store), 0, "{:?}", store.calls());

    // Done right, each is served.
    let host = format!("host: {addr}\r\n");
    let json = "content-type: application/json\r\n";
    let len = format!("content-length: {}\r\n", BODY.len());
    let post = "POST /s3/multipart HTTP/1.1";
    let accepted = [
        create(post, &format!("{host}{json}{len}"), BODY),
        create(
            &format!("POST http://{addr}/s3/multipart HTTP/1.1"),
            &format!("{host}{json}{len}"),
            BODY,
        ),
        create(
            post,
            &format!("{host}{json}{len}content-encoding: identity\r\n"),
            BODY,
        ),
        create(
            post,
            &format!("{host}content-type: application/json; charset=UTF-8\r\n{len}"),
            BODY,
        ),
        create(
            "POST /s3/multipart HTTP/1.0",
            &format!("{host}{json}{len}"),
            BODY,
        ),
    ];
    for request in &accepted {
        let reply = raw(addr, request).await;
        assert_eq!(reply.status, 200, "{request:?}: {reply:?}");
    }
    assert_eq!(creates(&store), accepted.len());
}

/// Requests hyper refuses while parsing, before any router: it answers a bare `400` with no
/// body, and nothing of ours runs, so these answers cannot be JSON. Pinned so that a hyper that
/// starts passing them on is noticed (the guards would then have to refuse them).
#[tokio::test]
async fn what_hyper_refuses_itself_never_reaches_the_router() {
    let store = Arc::new(FakeStore::new());
    let addr = serve(AppState::new(store.clone(), Settings::default())).await;
    let host = format!("host: {addr}\r\n");
    let post = "POST /s3/multipart HTTP/1.1";
    for (what, request) in [
        (
            "a Transfer-Encoding that does not end in chunked",
            create(
                post,
                &format!("{host}transfer-encoding: gzip\r\ncontent-length: 20\r\n"),
                BODY,
            ),
        ),
        (
            "Transfer-Encoding on HTTP/1.0",
            create(
                "POST /s3/multipart HTTP/1.0",
                &format!("{host}transfer-encoding: chunked\r\n"),
                "0\r\n\r\n",
            ),
        ),
        (
            "two different Content-Lengths",
            create(
                post,
                &format!("{host}content-length: 20\r\ncontent-length: 21\r\n"),
                BODY,
            ),
        ),
    ] {
        let reply = raw(addr, &request).await;
        assert_eq!(reply.status, 400, "{what}: {reply:?}");
        assert!(reply.body.is_empty(), "{what}: {reply:?}");
    }
    assert!(store.calls().is_empty(), "{:?}", store.calls());
}
