//! Request-level guards, run before any route: which `Host` the server answers, and how a
//! request may be framed and encoded. Each refusal is a JSON error with a stable code and reaches
//! no handler, so no store.
//!
//! - [`check_host`] (layered by [`crate::serve`], which knows the listening port): exactly one
//!   `Host` (or HTTP/2 `:authority`), of the form `host[:port]`, and one the server answers
//!   ([`HostPolicy`]). An open server answers only its loopback names on its own port, so a web
//!   page cannot reach it through DNS rebinding (its requests name the attacker's host).
//!   `/healthz` and `/readyz` skip the check: they read nothing from the caller and change
//!   nothing, and load balancers probe them by address, some without a `Host` at all.
//! - [`check_message`] (layered by [`crate::app`]): no `Transfer-Encoding` (hyper drops the
//!   `Content-Length` of a request that has both and decodes the chunks, so the two cannot be
//!   told apart here; the signing API's bodies are small JSON documents, which every client sends
//!   with a `Content-Length`), no `Content-Encoding` but `identity` (nothing is decoded), and no
//!   JSON body declared in a charset other than UTF-8.
//!
//! What hyper itself refuses never reaches these guards and gets hyper's bare `400` without a
//! body: a `Transfer-Encoding` whose last coding is not `chunked`, `Transfer-Encoding` on
//! HTTP/1.0, two different `Content-Length`s, and header blocks that do not parse.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use s3_direct_protocol::ErrorCode;

use crate::error::Error;
use crate::keys::truncate_for_message;
use crate::media_type::MediaType;

/// Paths answered whatever the `Host`: the probes.
const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// A value of `--allowed-host` that is not `HOST` or `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a host; use HOST or HOST:PORT, like app.example.com or 127.0.0.1:8080 \
     ([::1]:8080 for IPv6)"
)]
pub struct NotAHost(pub String);

/// A host the server answers: a name or address, and a port unless any port will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// Lowercase; an IPv6 address in brackets, as in a `Host` header.
    host: String,
    /// `None`: any port.
    port: Option<u16>,
}

impl AllowedHost {
    /// Parses `HOST` or `HOST:PORT` (`[::1]:8080` for IPv6), as `--allowed-host` takes it.
    pub fn parse(raw: &str) -> Result<Self, NotAHost> {
        let (host, port) = split_host(raw.trim()).ok_or_else(|| NotAHost(raw.to_owned()))?;
        Ok(Self { host, port })
    }

    fn new(host: &str, port: u16) -> Self {
        Self {
            host: host.to_owned(),
            port: Some(port),
        }
    }

    /// Whether a request for `host` on `port` (`None`: no port named, so HTTP's default 80, as
    /// browsers send it) is for this one.
    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        self.host == host && self.port.is_none_or(|p| p == port.unwrap_or(80))
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// `host[:port]` split into a lowercase host and its port, or `None` when it is not one.
fn split_host(raw: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(v6) = raw.strip_prefix('[') {
        let (addr, rest) = v6.split_once(']')?;
        addr.parse::<Ipv6Addr>().ok()?;
        (
            &raw[..addr.len() + 2],
            rest.strip_prefix(':')
                .or_else(|| rest.is_empty().then_some(""))?,
        )
    } else {
        match raw.rsplit_once(':') {
            Some((host, port)) => (host, port),
            None => (raw, ""),
        }
    };
    let name_ok = host.starts_with('[')
        || (!host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
    if !name_ok {
        return None;
    }
    let port = match port {
        "" if !raw.ends_with(':') => None,
        digits if (1..=5).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Some(digits.parse().ok()?)
        }
        _ => return None,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// Which `Host`s the server answers.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    /// `None`: any.
    allowed: Option<Vec<AllowedHost>>,
}

impl HostPolicy {
    /// The policy of a server listening on `listen`: open (`--auth open`) answers `localhost`,
    /// `127.0.0.1`, `[::1]` and its own address on its own port, and `extra`; the other modes
    /// answer only `extra` when it names any, and any host when it does not.
    pub fn new(open: bool, extra: &[AllowedHost], listen: SocketAddr) -> Self {
        if !open {
            return Self {
                allowed: (!extra.is_empty()).then(|| extra.to_vec()),
            };
        }
        let port = listen.port();
        let own = match listen.ip() {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        let mut allowed: Vec<AllowedHost> = Vec::new();
        let defaults = ["localhost", "127.0.0.1", "[::1]", own.as_str()];
        for host in defaults.into_iter().map(|h| AllowedHost::new(h, port)) {
            if !allowed.contains(&host) {
                allowed.push(host);
            }
        }
        allowed.extend(extra.iter().cloned());
        Self {
            allowed: Some(allowed),
        }
    }

    /// A policy answering any host.
    pub fn any() -> Self {
        Self { allowed: None }
    }

    /// Checks the host a request names (`host` lowercase).
    fn check(&self, host: &str, port: Option<u16>) -> Result<(), Error> {
        let Some(allowed) = &self.allowed else {
            return Ok(());
        };
        if allowed.iter().any(|a| a.matches(host, port)) {
            return Ok(());
        }
        let named = match port {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let list = allowed.iter().map(ToString::to_string).collect::<Vec<_>>();
        Err(Error::Misdirected(format!(
            "this server does not answer host {:?}; it answers {} (a name of your own, or a \
             proxy's, can be added with --allowed-host)",
            truncate_for_message(&named),
            list.join(", ")
        )))
    }
}

/// The `host[:port]` a request is for: its one `Host` header, or its URI's authority (HTTP/2's
/// `:authority`, an absolute-form target), which must agree when both are there.
fn requested_host(req: &Request) -> Result<(String, Option<u16>), Error> {
    let invalid = |message: String| Error::bad_request(ErrorCode::InvalidHost, message);
    let parse = |raw: &[u8]| {
        std::str::from_utf8(raw)
            .ok()
            .and_then(split_host)
            .ok_or_else(|| {
                invalid(format!(
                    "host {:?} is not host[:port]",
                    truncate_for_message(&String::from_utf8_lossy(raw))
                ))
            })
    };
    let headers: Vec<_> = req.headers().get_all(header::HOST).iter().collect();
    let from_header = match headers.as_slice() {
        [] => None,
        [one] => Some(parse(one.as_bytes())?),
        _ => {
            return Err(invalid(format!(
                "the request has {} Host headers; send exactly one",
                headers.len()
            )));
        }
    };
    let from_uri = req
        .uri()
        .authority()
        .map(|a| parse(a.as_str().as_bytes()))
        .transpose()?;
    match (from_uri, from_header) {
        (None, None) => Err(invalid(
            "the request has no Host header; send the host and port it is for".to_owned(),
        )),
        (Some(uri), Some(header)) if uri != header => Err(invalid(
            "the request's target and its Host header name different hosts".to_owned(),
        )),
        (Some(one), _) | (None, Some(one)) => Ok(one),
    }
}

/// Refuses a request without exactly one valid `Host`, or for a host `policy` does not answer.
pub async fn check_host(
    State(policy): State<Arc<HostPolicy>>,
    req: Request,
    next: Next,
) -> Response {
    if PROBES.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let checked = requested_host(&req).and_then(|(host, port)| policy.check(&host, port));
    match checked {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Refuses bodies framed or encoded in ways the server does not read.
pub async fn check_message(req: Request, next: Next) -> Response {
    match message_problem(&req) {
        None => next.run(req).await,
        Some(e) => e.into_response(),
    }
}

fn message_problem(req: &Request) -> Option<Error> {
    let headers = req.headers();
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Some(Error::bad_request(
            ErrorCode::InvalidFraming,
            "the request body is sent with Transfer-Encoding (chunked, or together with \
             Content-Length, which is ambiguous); send it with a Content-Length only",
        ));
    }
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let value = String::from_utf8_lossy(value.as_bytes());
        let foreign = value
            .split(',')
            .map(str::trim)
            .find(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"));
        if let Some(coding) = foreign {
            return Some(Error::UnsupportedMediaType(format!(
                "content-encoding {:?} is not decoded by this server; send the body \
                 uncompressed",
                truncate_for_message(coding)
            )));
        }
    }
    let declared = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media = MediaType::parse(declared.trim()).ok()?;
    let json = media.essence() == "application/json" || media.subtype.ends_with("+json");
    let charset = media.params.iter().find(|(name, _)| name == "charset");
    match charset {
        Some((_, value)) if json && !value.eq_ignore_ascii_case("utf-8") => {
            Some(Error::UnsupportedMediaType(format!(
                "the JSON body is declared as charset {:?}; send it as UTF-8 (charset=utf-8, \
                 or no charset)",
                truncate_for_message(value)
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_as_host_and_port() {
        let ok = |raw: &str| split_host(raw).unwrap();
        assert_eq!(ok("LocalHost:8080"), ("localhost".into(), Some(8080)));
        assert_eq!(ok("127.0.0.1"), ("127.0.0.1".into(), None));
        assert_eq!(ok("[::1]:80"), ("[::1]".into(), Some(80)));
        assert_eq!(ok("[::1]"), ("[::1]".into(), None));
        assert_eq!(ok("app.example.com"), ("app.example.com".into(), None));
        for bad in [
            "",
            ":80",
            "host:",
            "host:0x50",
            "host:123456",
            "host:99999",
            "a b",
            "user@host",
            "[::1",
            "[nope]:80",
            "[::1]x",
            "host/path",
            "h\u{e9}te",
            "a:b:c",
        ] {
            assert!(split_host(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn open_mode_answers_its_loopback_names_on_its_port() {
        let listen: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let p = HostPolicy::new(true, &[], listen);
        for (host, port) in [("localhost", 8080), ("127.0.0.1", 8080), ("[::1]", 8080)] {
            assert!(p.check(host, Some(port)).is_ok(), "{host}:{port}");
        }
        for (host, port) in [
            ("evil.example", Some(8080)),
            ("localhost", Some(8081)),
            ("localhost", None),
            ("127.0.0.2", Some(8080)),
        ] {
            let e = p.check(host, port).unwrap_err();
            assert_eq!(e.code(), ErrorCode::MisdirectedRequest, "{host}:{port:?}");
        }
        // On port 80, browsers name no port.
        let p80 = HostPolicy::new(true, &[], "127.0.0.1:80".parse().unwrap());
        assert!(p80.check("localhost", None).is_ok());
        // Its own address, when it is another loopback one; each named once when refusing.
        let other = HostPolicy::new(true, &[], "127.0.0.5:9000".parse().unwrap());
        assert!(other.check("127.0.0.5", Some(9000)).is_ok());
        let m = p.check("evil.example", None).unwrap_err().to_string();
        assert_eq!(m.matches("127.0.0.1:8080").count(), 1, "{m}");
        // --allowed-host adds names; one without a port matches any.
        let extra = [AllowedHost::parse("dev.example").unwrap()];
        let p = HostPolicy::new(true, &extra, listen);
        assert!(p.check("dev.example", Some(5173)).is_ok());
        assert!(p.check("localhost", Some(8080)).is_ok());
    }

    #[test]
    fn other_modes_answer_any_host_unless_told() {
        let listen: SocketAddr = "10.0.0.7:8080".parse().unwrap();
        assert!(
            HostPolicy::new(false, &[], listen)
                .check("any.example", None)
                .is_ok()
        );
        let extra = [AllowedHost::parse("upload.example.com:443").unwrap()];
        let p = HostPolicy::new(false, &extra, listen);
        assert!(p.check("upload.example.com", Some(443)).is_ok());
        assert!(p.check("upload.example.com", Some(8080)).is_err());
        assert!(p.check("localhost", Some(8080)).is_err());
    }
}
