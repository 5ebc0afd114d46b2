//! The store ceiling: the same presigned part PUTs a browser makes, from a native client. Each of
//! `concurrency` workers keeps one connection to the store and takes the next part number from a
//! shared counter, reads that part of the file and PUTs it.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::Deserialize;
use serde_json::json;

use crate::Flags;
use crate::http::{Conn, Target};

#[derive(Debug, Deserialize)]
struct Job {
    file: String,
    concurrency: usize,
    parts: Vec<Part>,
}

#[derive(Debug, Deserialize)]
struct Part {
    number: u32,
    url: String,
    offset: u64,
    length: u64,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

pub fn run(args: &[String]) -> Result<String, String> {
    let flags = Flags::parse(args, &["job"])?;
    let path = flags.get("job").ok_or("put needs --job FILE")?;
    let job: Job =
        serde_json::from_slice(&std::fs::read(path).map_err(|e| format!("{path}: {e}"))?)
            .map_err(|e| format!("{path}: {e}"))?;
    if job.concurrency == 0 || job.parts.is_empty() {
        return Err("the job needs concurrency > 0 and at least one part".to_owned());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(put_all(job)).map(|v| v.to_string())
}

async fn put_all(job: Job) -> Result<serde_json::Value, String> {
    let file = Arc::new(File::open(&job.file).map_err(|e| format!("{}: {e}", job.file))?);
    let parts: Arc<Vec<(Part, Target)>> = Arc::new(
        job.parts
            .into_iter()
            .map(|p| {
                let t = Target::parse(&p.url)?;
                Ok((p, t))
            })
            .collect::<Result<_, String>>()?,
    );
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..job.concurrency.min(parts.len()) {
        let (file, parts, next) = (file.clone(), parts.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut conn: Option<(String, Conn)> = None;
            let mut etags = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((part, target)) = parts.get(i) else {
                    return Ok::<_, String>(etags);
                };
                let (offset, length) = (part.offset, part.length);
                let file = file.clone();
                let body = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; usize::try_from(length).unwrap_or(usize::MAX)];
                    file.read_exact_at(&mut buf, offset).map(|()| buf)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("reading part {}: {e}", part.number))?;
                if conn.as_ref().is_none_or(|(a, _)| *a != target.authority) {
                    let c = Conn::connect(&target.authority)
                        .await
                        .map_err(|e| format!("{}: {e}", target.authority))?;
                    conn = Some((target.authority.clone(), c));
                }
                let Some((_, c)) = conn.as_mut() else {
                    unreachable!("connected above")
                };
                let headers: Vec<String> = part
                    .headers
                    .iter()
                    .filter(|(k, _)| {
                        !k.eq_ignore_ascii_case("content-length") && !k.eq_ignore_ascii_case("host")
                    })
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                let head = target.head("PUT", &headers, Some(length));
                let r = c
                    .request(&head, &body)
                    .await
                    .map_err(|e| format!("part {}: {e}", part.number))?;
                if !(200..300).contains(&r.status) {
                    return Err(format!(
                        "part {}: {} {}",
                        part.number,
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    ));
                }
                let etag = r
                    .etag
                    .ok_or_else(|| format!("part {}: no ETag in the answer", part.number))?;
                etags.push((part.number, etag));
                if r.close {
                    conn = None;
                }
            }
        }));
    }
    let mut etags = BTreeMap::new();
    let mut bytes = 0u64;
    for w in workers {
        for (n, e) in w.await.map_err(|e| e.to_string())?? {
            etags.insert(n.to_string(), e);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    for (p, _) in parts.iter() {
        bytes += p.length;
    }
    Ok(json!({
        "seconds": seconds,
        "bytes": bytes,
        "etags": etags,
        "cpu_seconds": crate::own_cpu_seconds(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A store that reads `Content-Length` bytes per request and answers with an ETag naming the
    /// request path and the body's first byte.
    async fn fake_store() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = vec![0u8; 65536];
                    loop {
                        let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                            let Ok(n) = s.read(&mut buf).await else {
                                return;
                            };
                            if n == 0 {
                                return;
                            }
                            seen.extend_from_slice(&buf[..n]);
                            continue;
                        };
                        let head = String::from_utf8_lossy(&seen[..i]).into_owned();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .unwrap()
                            .parse()
                            .unwrap();
                        while seen.len() < i + 4 + len {
                            let n = s.read(&mut buf).await.unwrap();
                            seen.extend_from_slice(&buf[..n]);
                        }
                        let path = head.split(' ').nth(1).unwrap().to_owned();
                        let first = seen[i + 4];
                        let has_header = head.contains("\r\nx-amz-checksum-crc32: abc");
                        seen.drain(..i + 4 + len);
                        let r = format!(
                            "HTTP/1.1 200 OK\r\nETag: \"{path}-{first}-{has_header}\"\r\ncontent-length: 0\r\n\r\n"
                        );
                        s.write_all(r.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        addr
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn puts_every_part_with_its_bytes_and_headers() {
        let addr = fake_store().await;
        let dir = std::env::temp_dir().join(format!("s3-direct-bench-put-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("file");
        let mut f = File::create(&path).unwrap();
        for b in 0u8..5 {
            f.write_all(&[b; 1000]).unwrap();
        }
        drop(f);
        let parts = (0..5)
            .map(|i| Part {
                number: i + 1,
                url: format!("http://{addr}/b/k?partNumber={}", i + 1),
                offset: u64::from(i) * 1000,
                length: 1000,
                headers: if i == 2 {
                    [("x-amz-checksum-crc32".to_owned(), "abc".to_owned())].into()
                } else {
                    BTreeMap::new()
                },
            })
            .collect();
        let out = put_all(Job {
            file: path.to_string_lossy().into_owned(),
            concurrency: 3,
            parts,
        })
        .await
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(out["bytes"], 5000);
        for n in 1..=5u32 {
            let with_header = n == 3;
            assert_eq!(
                out["etags"][n.to_string()],
                format!("\"/b/k?partNumber={n}-{}-{with_header}\"", n - 1)
            );
        }
    }
}
