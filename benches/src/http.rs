//! A minimal HTTP/1.1 client connection over a tokio `TcpStream`: one request at a time on a
//! keep-alive connection, the request head written as prepared bytes, and only the response fields
//! the benchmarks need parsed (status, `ETag`, body length, `Connection: close`).
//!
//! Deliberately small: the load generator shares two cores with the server it measures, so every
//! cycle it spends parsing is a cycle the server does not get. Plain `http://` only (everything
//! runs on loopback).

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `http://host:port/path?query` split into the address to connect to and the request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port` (the `Host` header and the address to connect to).
    pub authority: String,
    /// Path and query, as sent on the request line.
    pub path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        let authority = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            authority,
            path: path.to_owned(),
        })
    }

    /// The request head for `method` with the extra `headers` (`Name: value` lines without the
    /// line end) and a body of `body_len` bytes.
    pub fn head(&self, method: &str, headers: &[String], body_len: Option<u64>) -> Vec<u8> {
        let mut head = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\n",
            self.path, self.authority
        );
        for h in headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        if let Some(n) = body_len {
            head.push_str(&format!("Content-Length: {n}\r\n"));
        }
        head.push_str("\r\n");
        head.into_bytes()
    }
}

/// What the benchmarks read from a response.
#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    pub etag: Option<String>,
    pub body: Vec<u8>,
    /// The server closes the connection after this response.
    pub close: bool,
}

/// One keep-alive connection.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    pos: usize,
}

impl Conn {
    pub async fn connect(authority: &str) -> io::Result<Self> {
        let stream = TcpStream::connect(authority).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            pos: 0,
        })
    }

    /// Sends one request (`head` from [`Target::head`], then `body`) and reads its response.
    pub async fn request(&mut self, head: &[u8], body: &[u8]) -> io::Result<Response> {
        if body.is_empty() {
            self.stream.write_all(head).await?;
        } else if head.len() + body.len() <= 64 * 1024 {
            let mut whole = Vec::with_capacity(head.len() + body.len());
            whole.extend_from_slice(head);
            whole.extend_from_slice(body);
            self.stream.write_all(&whole).await?;
        } else {
            self.stream.write_all(head).await?;
            self.stream.write_all(body).await?;
        }
        self.read_response().await
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        if self.buf.capacity() - self.buf.len() < 8 * 1024 {
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            self.buf.reserve(16 * 1024);
        }
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed mid-response",
            ));
        }
        Ok(())
    }

    async fn read_response(&mut self) -> io::Result<Response> {
        let head_end = loop {
            if let Some(i) = find(&self.buf[self.pos..], b"\r\n\r\n") {
                break self.pos + i + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[self.pos..head_end])
            .map_err(|_| bad("response head is not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no status code"))?;
        let mut response = Response {
            status,
            ..Response::default()
        };
        let mut length = None;
        let mut chunked = false;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| bad("bad Content-Length"))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                response.close = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("etag") {
                response.etag = Some(value.to_owned());
            }
        }
        self.pos = head_end;
        if chunked {
            response.body = self.read_chunked().await?;
        } else if let Some(n) = length {
            response.body = self.read_exact(n).await?;
        } else if !(status == 204 || status == 304 || (100..200).contains(&status)) {
            // No length: the body runs to the end of the connection.
            loop {
                match self.fill().await {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
            }
            response.body = self.buf[self.pos..].to_vec();
            self.pos = self.buf.len();
            response.close = true;
        }
        Ok(response)
    }

    async fn read_exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() - self.pos < n {
            self.fill().await?;
        }
        let body = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(body)
    }

    async fn read_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = find(&self.buf[self.pos..], b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[self.pos..self.pos + i]).into_owned();
                self.pos += i + 2;
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    async fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.read_line().await?.is_empty() {}
                return Ok(body);
            }
            body.extend_from_slice(&self.read_exact(size).await?);
            if !self.read_line().await?.is_empty() {
                return Err(bad("chunk not followed by CRLF"));
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn parses_targets() {
        let t = Target::parse("http://127.0.0.1:9000/b/k?partNumber=1&x=%2F").unwrap();
        assert_eq!(t.authority, "127.0.0.1:9000");
        assert_eq!(t.path, "/b/k?partNumber=1&x=%2F");
        assert_eq!(Target::parse("http://localhost").unwrap().path, "/");
        assert_eq!(
            Target::parse("http://localhost").unwrap().authority,
            "localhost:80"
        );
        assert!(Target::parse("https://example.com/").is_err());
        assert!(Target::parse("http:///x").is_err());
    }

    #[test]
    fn writes_request_heads() {
        let t = Target::parse("http://127.0.0.1:1/a?b").unwrap();
        let head = t.head("PUT", &["X-A: 1".to_owned()], Some(5));
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "PUT /a?b HTTP/1.1\r\nHost: 127.0.0.1:1\r\nX-A: 1\r\nContent-Length: 5\r\n\r\n"
        );
    }

    /// A server that answers each request with the next canned response, written in small
    /// pieces so that the parser has to join reads.
    async fn serve(responses: Vec<&'static str>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for r in responses {
                let mut seen = Vec::new();
                while find(&seen, b"\r\n\r\n").is_none() {
                    let n = s.read(&mut buf).await.unwrap();
                    seen.extend_from_slice(&buf[..n]);
                }
                for piece in r.as_bytes().chunks(7) {
                    s.write_all(piece).await.unwrap();
                    s.flush().await.unwrap();
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn reads_length_chunked_and_empty_bodies_on_one_connection() {
        let addr = serve(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"abc\"\r\n\r\nhello",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nfoo\r\n4;x=y\r\nbarz\r\n0\r\n\r\n",
            "HTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno",
        ])
        .await;
        let t = Target::parse(&format!("http://{addr}/")).unwrap();
        let head = t.head("GET", &[], None);
        let mut c = Conn::connect(&t.authority).await.unwrap();
        let r = c.request(&head, &[]).await.unwrap();
        assert_eq!(
            (r.status, r.etag.as_deref(), &r.body[..]),
            (200, Some("\"abc\""), &b"hello"[..])
        );
        let r = c.request(&head, &[]).await.unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"foobarz"[..]));
        let r = c.request(&head, &[]).await.unwrap();
        assert_eq!((r.status, r.body.len(), r.close), (204, 0, false));
        let r = c.request(&head, b"body").await.unwrap();
        assert_eq!((r.status, &r.body[..], r.close), (403, &b"no"[..], true));
    }

    #[tokio::test]
    async fn a_connection_closed_mid_response_is_an_error() {
        let addr = serve(vec!["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhal"]).await;
        let t = Target::parse(&format!("http://{addr}/")).unwrap();
        let mut c = Conn::connect(&t.authority).await.unwrap();
        let err = c.request(&t.head("GET", &[], None), &[]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
