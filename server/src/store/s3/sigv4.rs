//! SigV4 query-string presigning of `UploadPart`, done directly instead of through the SDK's
//! request pipeline.
//!
//! Signing a part is the server's hot path (a 1 GiB upload in 8 MiB parts is 128 URLs; a batch
//! call asks for up to 1,000). The SDK builds, serialises, intercepts and signs a whole request
//! per URL — about 150 µs of CPU each, measured with perf (benches/, BENCHMARKS.md) — while the
//! signature itself is one SHA-256 of a ~500 byte canonical request and one HMAC. This module
//! writes exactly the canonical request the SDK writes (the tests compare signatures with the
//! SDK's for the same inputs) and caches the derived signing key for the day.
//!
//! The format follows the AWS Signature Version 4 documentation for query-parameter
//! authentication: `UNSIGNED-PAYLOAD`, URI-encoding of every byte except the unreserved
//! characters (and `/` in the path), parameters sorted by their encoded names.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::config::Credentials;
use hmac::{Hmac, KeyInit, Mac};
use s3_direct_protocol::wire::ChecksumAlgorithm;
use sha2::{Digest, Sha256};

use super::super::Presigned;

type HmacSha256 = Hmac<Sha256>;

/// Longest presigned URL lifetime SigV4 allows (7 days).
pub(super) const MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Where signed URLs point: fixed per store, parsed once.
#[derive(Debug)]
pub(super) struct PartSigner {
    /// `scheme://host[:port]` as configured (the bucket prepended for virtual-hosted
    /// addressing).
    origin: String,
    /// The `Host` header browsers send for `origin` (default ports omitted, as browsers do).
    host: String,
    /// URI-encoded path before the key: `/bucket` (path style) or nothing.
    path_prefix: String,
    region: String,
    /// The derived signing key of the last day and credentials used.
    key_cache: Mutex<Option<SigningKey>>,
}

#[derive(Debug)]
struct SigningKey {
    date: String,
    access_key: String,
    secret_key: String,
    key: [u8; 32],
}

/// One part to sign.
#[derive(Debug)]
pub(super) struct PartRequest<'a> {
    pub key: &'a str,
    pub upload_id: &'a str,
    pub part_number: u32,
    pub content_length: Option<u64>,
    pub checksum: Option<&'a (ChecksumAlgorithm, String)>,
}

impl PartSigner {
    /// `endpoint` is the public endpoint URL (`http://host:port[/path]`); `None` if it cannot be
    /// parsed, in which case the caller keeps using the SDK.
    pub(super) fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        path_style: bool,
    ) -> Option<Self> {
        let (scheme, rest) = endpoint.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') || path.contains(['?', '#']) {
            return None;
        }
        let authority = authority.to_ascii_lowercase();
        let default_port = if scheme == "http" { ":80" } else { ":443" };
        let host = authority
            .strip_suffix(default_port)
            .unwrap_or(&authority)
            .to_owned();
        // An endpoint with a path of its own (a store behind a path on a proxy) is rare, and
        // the SDK's handling of it has quirks this signer does not copy: the SDK signs those.
        if !path.trim_end_matches('/').is_empty() {
            return None;
        }
        let endpoint_path = "";
        // Like the SDK's endpoint rules: an IP address cannot carry the bucket as a subdomain,
        // so it is addressed path-style whatever the setting; buckets that are not a plain DNS
        // label are left to the SDK.
        let host_name = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
        let is_ip = host.starts_with('[') || host_name.parse::<std::net::Ipv4Addr>().is_ok();
        let path_style = path_style || is_ip;
        if !path_style && !is_dns_label(bucket) {
            return None;
        }
        // The URL keeps the port as configured; the signed Host omits a default one, as the
        // browser's Host header does.
        let (origin, host, path_prefix) = if path_style {
            let mut prefix = endpoint_path.to_owned();
            prefix.push('/');
            encode_into(&mut prefix, bucket, false);
            (format!("{scheme}://{authority}"), host, prefix)
        } else {
            (
                format!("{scheme}://{bucket}.{authority}"),
                format!("{bucket}.{host}"),
                endpoint_path.to_owned(),
            )
        };
        Some(Self {
            origin,
            host,
            path_prefix,
            region: region.to_owned(),
            key_cache: Mutex::new(None),
        })
    }

    /// A presigned `PUT` URL for one part, valid from `start` for `lifetime`, and the headers the
    /// browser must send with it (those signed besides `host`).
    pub(super) fn presign_part(
        &self,
        creds: &Credentials,
        start: SystemTime,
        lifetime: Duration,
        part: &PartRequest<'_>,
    ) -> Presigned {
        let (amz_date, date) = amz_dates(start);
        let scope = format!("{date}/{}/s3/aws4_request", self.region);

        let mut path = String::with_capacity(self.path_prefix.len() + part.key.len() * 3 + 1);
        path.push_str(&self.path_prefix);
        path.push('/');
        encode_into(&mut path, part.key, false);

        // Signed headers, sorted by name: content-length < content-md5 < host < x-amz-*.
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        if let Some(n) = part.content_length {
            headers.insert("content-length".to_owned(), n.to_string());
        }
        if let Some((algorithm, value)) = part.checksum {
            headers.insert(
                checksum_header(*algorithm).to_owned(),
                value.trim().to_owned(),
            );
        }
        let mut signed_headers = String::with_capacity(96);
        let mut canonical_headers = String::with_capacity(256);
        let host = ("host", self.host.as_str());
        let all = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(std::iter::once(host))
            .collect::<BTreeMap<_, _>>();
        for (name, value) in &all {
            if !signed_headers.is_empty() {
                signed_headers.push(';');
            }
            signed_headers.push_str(name);
            canonical_headers.push_str(name);
            canonical_headers.push(':');
            canonical_headers.push_str(value);
            canonical_headers.push('\n');
        }

        // Query parameters in the order of their encoded names (all fixed names here sort as
        // written: uppercase X-Amz-* first, then partNumber, uploadId, x-id).
        let mut query = String::with_capacity(512);
        query.push_str("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=");
        encode_into(&mut query, creds.access_key_id(), true);
        query.push_str("%2F");
        encode_into(&mut query, &scope, true);
        query.push_str("&X-Amz-Date=");
        query.push_str(&amz_date);
        let _ = write!(query, "&X-Amz-Expires={}", lifetime.as_secs());
        if let Some(token) = creds.session_token() {
            query.push_str("&X-Amz-Security-Token=");
            encode_into(&mut query, token, true);
        }
        query.push_str("&X-Amz-SignedHeaders=");
        encode_into(&mut query, &signed_headers, true);
        let _ = write!(query, "&partNumber={}&uploadId=", part.part_number);
        encode_into(&mut query, part.upload_id, true);
        query.push_str("&x-id=UploadPart");

        let canonical_request = format!(
            "PUT\n{path}\n{query}\n{canonical_headers}\n{signed_headers}\nUNSIGNED-PAYLOAD"
        );
        let mut string_to_sign = String::with_capacity(160);
        string_to_sign.push_str("AWS4-HMAC-SHA256\n");
        string_to_sign.push_str(&amz_date);
        string_to_sign.push('\n');
        string_to_sign.push_str(&scope);
        string_to_sign.push('\n');
        hex_into(
            &mut string_to_sign,
            &Sha256::digest(canonical_request.as_bytes()),
        );

        let key = self.signing_key(creds, &date);
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&key).expect("any key length");
        mac.update(string_to_sign.as_bytes());
        let signature = mac.finalize().into_bytes();

        let mut url = String::with_capacity(self.origin.len() + path.len() + query.len() + 96);
        url.push_str(&self.origin);
        url.push_str(&path);
        url.push('?');
        url.push_str(&query);
        url.push_str("&X-Amz-Signature=");
        hex_into(&mut url, &signature);
        Presigned { url, headers }
    }

    /// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), "s3"), "aws4_request")`, derived once
    /// per day and credentials.
    fn signing_key(&self, creds: &Credentials, date: &str) -> [u8; 32] {
        let mut cache = self
            .key_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = cache.as_ref()
            && c.date == date
            && c.access_key == creds.access_key_id()
            && c.secret_key == creds.secret_access_key()
        {
            return c.key;
        }
        let hmac = |key: &[u8], data: &str| -> [u8; 32] {
            let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("any key length");
            mac.update(data.as_bytes());
            mac.finalize().into_bytes().into()
        };
        let k_date = hmac(
            format!("AWS4{}", creds.secret_access_key()).as_bytes(),
            date,
        );
        let k_region = hmac(&k_date, &self.region);
        let k_service = hmac(&k_region, "s3");
        let key = hmac(&k_service, "aws4_request");
        *cache = Some(SigningKey {
            date: date.to_owned(),
            access_key: creds.access_key_id().to_owned(),
            secret_key: creds.secret_access_key().to_owned(),
            key,
        });
        key
    }
}

fn checksum_header(algorithm: ChecksumAlgorithm) -> &'static str {
    match algorithm {
        ChecksumAlgorithm::Md5 => "content-md5",
        ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
        ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
        ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
    }
}

/// A bucket name usable as a host name label: 3–63 lowercase letters, digits and inner hyphens.
fn is_dns_label(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-')
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Appends `s` URI-encoded: every byte but the unreserved ones as `%XX` (uppercase), and `/`
/// too unless it is a path (`encode_slash == false`).
fn encode_into(out: &mut String, s: &str, encode_slash: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if is_unreserved(b) || (b == b'/' && !encode_slash) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

fn hex_into(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
}

/// `("YYYYMMDDTHHMMSSZ", "YYYYMMDD")` of `t` in UTC.
fn amz_dates(t: SystemTime) -> (String, String) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX));
    let date = format!("{y:04}{m:02}{d:02}");
    let time = format!(
        "{date}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    (time, date)
}

/// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        let at = |s: u64| amz_dates(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), ("19700101T000000Z".into(), "19700101".into()));
        // 2000-02-29 (a leap day in a century leap year), 23:59:59.
        assert_eq!(
            at(951_868_799),
            ("20000229T235959Z".into(), "20000229".into())
        );
        assert_eq!(
            at(1_795_921_552),
            ("20261129T030552Z".into(), "20261129".into())
        );
        // 2100 is not a leap year: 2100-02-28 is followed by 2100-03-01.
        assert_eq!(at(4_107_542_400).1, "21000301");
        assert_eq!(at(4_107_542_400 - 1).1, "21000228");
    }

    #[test]
    fn encodes_like_sigv4() {
        let mut s = String::new();
        encode_into(&mut s, "a b/ü~*+=&%.-_", false);
        assert_eq!(s, "a%20b/%C3%BC~%2A%2B%3D%26%25.-_");
        s.clear();
        encode_into(&mut s, "k/20261122/r/s3/aws4_request", true);
        assert_eq!(s, "k%2F20261122%2Fr%2Fs3%2Faws4_request");
    }

    #[test]
    fn parses_endpoints() {
        let s = PartSigner::new("http://127.0.0.1:80", "b", "r", true).unwrap();
        assert_eq!(
            (s.origin.as_str(), s.host.as_str(), s.path_prefix.as_str()),
            ("http://127.0.0.1:80", "127.0.0.1", "/b")
        );
        let s = PartSigner::new("https://S3.example.com:443/", "bkt", "r", false).unwrap();
        assert_eq!(
            (s.origin.as_str(), s.host.as_str(), s.path_prefix.as_str()),
            ("https://bkt.s3.example.com:443", "bkt.s3.example.com", "")
        );
        assert!(PartSigner::new("https://proxy.example.com/s3", "bkt", "r", true).is_none());
        let s = PartSigner::new("http://h:9000", "b", "r", true).unwrap();
        assert_eq!((s.host.as_str(), s.path_prefix.as_str()), ("h:9000", "/b"));
        // An IP address is always addressed path-style.
        let s = PartSigner::new("http://127.0.0.1:9000", "bucket", "r", false).unwrap();
        assert_eq!(
            (s.host.as_str(), s.path_prefix.as_str()),
            ("127.0.0.1:9000", "/bucket")
        );
        assert!(PartSigner::new("http://h", "Bad.Bucket", "r", false).is_none());
        assert!(PartSigner::new("http://h", "Bad.Bucket", "r", true).is_some());
        assert!(PartSigner::new("ftp://h", "b", "r", true).is_none());
        assert!(PartSigner::new("http://user@h", "b", "r", true).is_none());
        assert!(PartSigner::new("http://h/a?b", "b", "r", true).is_none());
        assert!(PartSigner::new("h:9000", "b", "r", true).is_none());
    }

    /// Whole URLs are compared with the SDK's in the store's tests; here only the cache.
    #[test]
    fn signing_key_is_cached_per_day_and_credentials() {
        let s = PartSigner::new("http://h:1", "b", "us-east-1", true).unwrap();
        let a = Credentials::new("AK", "secret-1", None, None, "t");
        let b = Credentials::new("AK", "secret-2", None, None, "t");
        let k1 = s.signing_key(&a, "20260101");
        assert_eq!(s.signing_key(&a, "20260101"), k1);
        assert_ne!(s.signing_key(&a, "20260102"), k1);
        assert_ne!(s.signing_key(&b, "20260101"), k1);
        assert_eq!(s.signing_key(&a, "20260101"), k1);
    }
}
