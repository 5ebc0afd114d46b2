//! The signing load generator: N keep-alive connections, each sending the same GET back to back
//! for a fixed time (after a warm-up whose requests are not counted).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::Flags;
use crate::http::{Conn, Target};

pub fn run(args: &[String]) -> Result<String, String> {
    let flags = Flags::parse(
        args,
        &[
            "url",
            "connections",
            "seconds",
            "warmup",
            "threads",
            "header",
        ],
    )?;
    let target = Target::parse(flags.get("url").ok_or("load needs --url")?)?;
    let connections: usize = flags.number("connections", 50)?;
    let seconds: f64 = flags.number("seconds", 10.0)?;
    let warmup: f64 = flags.number("warmup", 1.0)?;
    let threads: usize = flags.number("threads", 1)?;
    let valid_times = seconds.is_finite() && seconds > 0.0 && warmup.is_finite() && warmup >= 0.0;
    if connections == 0 || threads == 0 || !valid_times {
        return Err("--connections and --threads must be > 0, --seconds > 0".to_owned());
    }
    let head = target.head("GET", &flags.all("header"), None);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let report = runtime.block_on(drive(
        target,
        head,
        connections,
        Duration::from_secs_f64(warmup),
        Duration::from_secs_f64(seconds),
    ))?;
    Ok(report.to_string())
}

#[derive(Debug, Default)]
struct Tally {
    /// Latencies in microseconds of the counted requests.
    latencies: Vec<u32>,
    non_2xx: u64,
    errors: u64,
    bytes: u64,
    sample: Option<String>,
}

async fn drive(
    target: Target,
    head: Vec<u8>,
    connections: usize,
    warmup: Duration,
    seconds: Duration,
) -> Result<serde_json::Value, String> {
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + warmup;
    let end = measure_from + seconds;
    let head: std::sync::Arc<[u8]> = head.into();
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let authority = target.authority.clone();
        let head = head.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            tokio::time::sleep_until(start.into()).await;
            let mut conn = None;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                if conn.is_none() {
                    match Conn::connect(&authority).await {
                        Ok(c) => conn = Some(c),
                        Err(_) => {
                            tally.errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                let sent = Instant::now();
                let result = c.request(&head, &[]).await;
                let done = Instant::now();
                // Like wrk: every answer that arrives inside the window counts, however long
                // it took, so a server slower than the window still gets a throughput.
                let counted = done >= measure_from && done <= end;
                match result {
                    Ok(r) => {
                        if r.close {
                            conn = None;
                        }
                        if counted {
                            let micros = (done - sent).as_micros();
                            tally
                                .latencies
                                .push(u32::try_from(micros).unwrap_or(u32::MAX));
                            tally.bytes += r.body.len() as u64;
                            let failed = !(200..300).contains(&r.status);
                            if failed {
                                tally.non_2xx += 1;
                            }
                            // Keep one answer to show: the first failure, else the first success.
                            if tally.sample.is_none() || (failed && tally.non_2xx == 1) {
                                let body = &r.body[..r.body.len().min(300)];
                                tally.sample =
                                    Some(format!("{} {}", r.status, String::from_utf8_lossy(body)));
                            }
                        }
                    }
                    Err(_) => {
                        conn = None;
                        if counted {
                            tally.errors += 1;
                        }
                    }
                }
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await.map_err(|e| e.to_string())?;
        all.latencies.extend(t.latencies);
        all.non_2xx += t.non_2xx;
        all.errors += t.errors;
        all.bytes += t.bytes;
        if all.sample.is_none() || (t.non_2xx > 0 && all.non_2xx == t.non_2xx) {
            all.sample = t.sample.or(all.sample.take());
        }
    }
    all.latencies.sort_unstable();
    let secs = seconds.as_secs_f64();
    let ok = all.latencies.len() as u64 - all.non_2xx;
    Ok(json!({
        "connections": connections,
        "seconds": secs,
        "requests": all.latencies.len(),
        "ok": ok,
        "non_2xx": all.non_2xx,
        "errors": all.errors,
        "requests_per_sec": ok as f64 / secs,
        "bytes_per_sec": all.bytes as f64 / secs,
        "latency_ms": {
            "p50": percentile(&all.latencies, 0.50),
            "p90": percentile(&all.latencies, 0.90),
            "p99": percentile(&all.latencies, 0.99),
            "max": percentile(&all.latencies, 1.0),
        },
        "sample_response": all.sample,
        "cpu_seconds": crate::own_cpu_seconds(),
    }))
}

/// The `q` quantile (nearest rank) of sorted microsecond values, in milliseconds.
fn percentile(sorted: &[u32], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(f64::from(sorted[rank - 1]) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&v, 1.0), Some(100.0));
        assert_eq!(percentile(&[7000], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    /// Every connection keeps going until the end, and the tally counts what the server saw.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counts_requests_over_keep_alive_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = served.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    loop {
                        let Ok(n) = s.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..i + 4);
                            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let r = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                            if s.write_all(r).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        let target = Target::parse(&format!("http://{addr}/x")).unwrap();
        let head = target.head("GET", &[], None);
        let report = drive(
            target,
            head,
            4,
            Duration::from_millis(50),
            Duration::from_millis(300),
        )
        .await
        .unwrap();
        let requests = report["requests"].as_u64().unwrap();
        assert!(requests > 0);
        assert_eq!(report["ok"].as_u64(), Some(requests));
        assert_eq!(report["errors"].as_u64(), Some(0));
        // Warm-up requests reach the server but are not counted.
        assert!(served.load(std::sync::atomic::Ordering::Relaxed) >= requests);
        assert!(report["latency_ms"]["p99"].as_f64().unwrap() >= 0.0);
    }
}
