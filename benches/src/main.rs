//! Native tools of the s3-direct benchmark suite (`scripts/bench.sh` runs them; they print one
//! JSON object on stdout):
//!
//! ```text
//! s3-direct-bench load --url URL [--connections 50] [--seconds 10] [--warmup 1] [--threads 1]
//!                      [--header 'Name: value']...
//!     GETs URL over N keep-alive HTTP/1.1 connections for a fixed time: requests/s and latency
//!     percentiles (a minimal wrk, so the suite needs nothing outside the repository).
//! s3-direct-bench put --job FILE
//!     PUTs presigned parts of a file in parallel (the store ceiling): FILE is JSON
//!     {"file", "concurrency", "parts": [{"number", "url", "offset", "length", "headers"?}]};
//!     prints the seconds taken and every part's ETag.
//! ```

mod http;
mod load;
mod put;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("load") => load::run(&args[1..]),
        Some("put") => put::run(&args[1..]),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("s3-direct-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// CPU seconds (user + system) this process has used so far, from `/proc/self/stat`; `None`
/// where there is no procfs.
pub(crate) fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    // fields[0] is field 3 of stat(5); utime and stime are fields 14 and 15, in clock ticks,
    // which are 100 a second on every Linux that matters here.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

const USAGE: &str = "usage: s3-direct-bench load --url URL [--connections N] [--seconds S] \
[--warmup S] [--threads N] [--header 'Name: value']... | s3-direct-bench put --job FILE";

/// `--name value` pairs; a name may repeat.
pub(crate) struct Flags(Vec<(String, String)>);

impl Flags {
    pub(crate) fn parse(args: &[String], known: &[&str]) -> Result<Self, String> {
        let mut out = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let name = a
                .strip_prefix("--")
                .filter(|n| known.contains(n))
                .ok_or_else(|| format!("unknown argument {a:?}\n{USAGE}"))?;
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            out.push((name.to_owned(), value.clone()));
        }
        Ok(Self(out))
    }

    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: {v:?} is not a number")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn flags_repeat_and_default() {
        let f = Flags::parse(
            &args(&[
                "--url",
                "u",
                "--header",
                "A: 1",
                "--header",
                "B: 2",
                "--seconds",
                "3",
            ]),
            &["url", "header", "seconds", "threads"],
        )
        .unwrap();
        assert_eq!(f.get("url"), Some("u"));
        assert_eq!(f.all("header"), ["A: 1", "B: 2"]);
        assert_eq!(f.number("seconds", 10.0).unwrap(), 3.0);
        assert_eq!(f.number("threads", 1usize).unwrap(), 1);
    }

    #[test]
    fn reads_its_own_cpu_time() {
        let spent = own_cpu_seconds().unwrap();
        assert!(spent >= 0.0);
    }

    #[test]
    fn flags_refuse_unknown_names_and_missing_values() {
        assert!(Flags::parse(&args(&["--nope", "1"]), &["url"]).is_err());
        assert!(Flags::parse(&args(&["--url"]), &["url"]).is_err());
        assert!(Flags::parse(&args(&["url"]), &["url"]).is_err());
        let f = Flags::parse(&args(&["--seconds", "x"]), &["seconds"]).unwrap();
        assert!(f.number("seconds", 1.0).is_err());
    }
}
