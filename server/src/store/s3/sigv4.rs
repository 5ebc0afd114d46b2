//! SigV4 query-string presigning of `UploadPart`, done directly instead of through the SDK's
//! request pipeline, and SigV4 POST policies (which the SDK does not sign).
//!
//! Signing a part is the server's hot path (a 1 GiB upload in 8 MiB parts is 128 URLs; a batch
//! call asks for up to 1,000). The SDK builds, serialises, intercepts and signs a whole request
//! per URL — about 150 µs of CPU each, measured with perf (benches/, BENCHMARKS.md) — while the
//! signature itself is one SHA-256 of a ~500 byte canonical request and one HMAC. This module
//! writes exactly the canonical request the SDK writes (the tests compare signatures with the
//! SDK's for the same inputs) and caches the derived signing key for the day.
//!
//! A batch signs its parts in one call that does once what they share (dates, scope, path, the
//! query up to `partNumber`, the SHA-256 state of the canonical request up to there, the HMAC
//! state after the fixed lines of the string to sign), leaving about six SHA-256 blocks per part.
//! SHA-256 and HMAC come from aws-lc-rs, whose assembly did the hashing in about two thirds of the
//! time sha2's portable code took on the benchmark machine (no SHA extensions; perf under load).
//!
//! The format follows the AWS Signature Version 4 documentation for query-parameter
//! authentication: `UNSIGNED-PAYLOAD`, URI-encoding of every byte except the unreserved
//! characters (and `/` in the path), parameters sorted by their encoded names. A POST policy is
//! signed as that documentation's browser-based uploads say: the string to sign is the base64 of
//! the policy document, signed with the same derived key (its test checks the signature with the
//! `aws-sigv4` crate's own key derivation and HMAC).
//!
//! The loop over a batch's parts is this module's own; what it builds on comes from crates: the
//! endpoint is parsed by `http::Uri`, names and values are encoded by `percent-encoding`, digests
//! written in hex by `hex`, and the dates taken from `time`'s calendar.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::{digest, hmac};
use aws_sdk_s3::config::Credentials;
use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3_direct_protocol::wire::ChecksumAlgorithm;
use time::OffsetDateTime;

use super::super::{PartSigning, PostSigning, Presigned, PresignedPost};

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
    bucket: String,
    region: String,
    /// The derived signing key of the last day and credentials used.
    key_cache: Mutex<Option<SigningKey>>,
}

struct SigningKey {
    date: String,
    access_key: String,
    secret_key: String,
    /// The derived key, its HMAC blocks already hashed: cloned for each string to sign.
    mac: hmac::Key,
}

/// Names the day and access key only: the secret and the key derived from it never reach a log.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("date", &self.date)
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// Which headers a part's signature covers besides `host`: the parts of one call that share it
/// share the start of their canonical request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeaderSet {
    content_length: bool,
    checksum: Option<ChecksumAlgorithm>,
}

impl HeaderSet {
    fn of(signing: &PartSigning) -> Self {
        Self {
            content_length: signing.content_length.is_some(),
            checksum: signing.checksum.as_ref().map(|(a, _)| *a),
        }
    }

    /// The signed header names, sorted: `content-length` < `content-md5` < `host` < `x-amz-*`.
    fn names(self) -> Vec<&'static str> {
        let mut names = Vec::with_capacity(3);
        if self.content_length {
            names.push("content-length");
        }
        names.push("host");
        if let Some(a) = self.checksum {
            names.push(checksum_header(a));
        }
        names.sort_unstable();
        names
    }
}

/// What every part of one call with the same [`HeaderSet`] shares.
struct Variant {
    set: HeaderSet,
    names: Vec<&'static str>,
    /// `content-length;host`, ….
    signed_headers: String,
    /// The query up to the part number: `X-Amz-Algorithm=…&X-Amz-SignedHeaders=…&partNumber=`
    /// (the `X-Amz-*` names are uppercase and sort first, then `partNumber`, `uploadId`, `x-id`).
    query_prefix: String,
    /// SHA-256 of the canonical request up to the part number (`PUT\n{path}\n{query_prefix}`),
    /// continued for each part from where it stopped.
    hasher: digest::Context,
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
        // `Uri` drops a fragment without a word: an endpoint with one is refused like one with a
        // query.
        if endpoint.contains('#') {
            return None;
        }
        let uri: http::Uri = endpoint.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let parsed = uri.authority()?;
        if parsed.as_str().is_empty() || parsed.as_str().contains('@') || uri.query().is_some() {
            return None;
        }
        // An endpoint with a path of its own (a store behind a path on a proxy) is rare, and
        // the SDK's handling of it has quirks this signer does not copy: the SDK signs those.
        if !uri.path().trim_end_matches('/').is_empty() {
            return None;
        }
        let authority = parsed.as_str().to_ascii_lowercase();
        let default_port = if scheme == "http" { "80" } else { "443" };
        let host = if parsed.port().is_some_and(|p| p.as_str() == default_port) {
            parsed.host().to_ascii_lowercase()
        } else {
            authority.clone()
        };
        let endpoint_path = "";
        // Like the SDK's endpoint rules: an IP address cannot carry the bucket as a subdomain,
        // so it is addressed path-style whatever the setting; buckets that are not a plain DNS
        // label are left to the SDK.
        let host_name = parsed.host();
        let is_ip = host_name.starts_with('[') || host_name.parse::<std::net::Ipv4Addr>().is_ok();
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
            bucket: bucket.to_owned(),
            region: region.to_owned(),
            key_cache: Mutex::new(None),
        })
    }

    /// Presigned `PUT` URLs for parts `parts` (number and what its signature fixes) of upload
    /// `upload_id` of `key`, valid from `start` for `lifetime`, in the order given, each with the
    /// headers the browser must send (those signed besides `host`).
    ///
    /// Everything the parts share is computed once per call: the dates and scope, the encoded
    /// path and upload id, the query up to the part number and the canonical request's hash up to
    /// there, and the HMAC state after the string to sign's fixed lines. What is left per part is
    /// about 150 bytes of canonical request, 64 of string to sign, and the URL.
    pub(super) fn presign_parts<'p>(
        &self,
        creds: &Credentials,
        start: SystemTime,
        lifetime: Duration,
        key: &str,
        upload_id: &str,
        parts: impl IntoIterator<Item = (u32, &'p PartSigning)>,
    ) -> Vec<Presigned> {
        let mut batch = Batch::new(self, creds, start, lifetime, key, upload_id);
        parts
            .into_iter()
            .map(|(number, signing)| batch.sign(number, signing))
            .collect()
    }

    /// A POST policy upload of `key`, valid from `start` for `lifetime`: the bucket's URL and
    /// the form fields, among them the policy (every field must be sent with exactly its value,
    /// and the file's size must be within `signing.size`) and its signature.
    pub(super) fn presign_post(
        &self,
        creds: &Credentials,
        start: SystemTime,
        lifetime: Duration,
        key: &str,
        signing: &PostSigning,
    ) -> PresignedPost {
        let (amz_date, date) = amz_dates(start);
        let credential = format!(
            "{}/{date}/{}/s3/aws4_request",
            creds.access_key_id(),
            self.region
        );
        let mut fields = BTreeMap::from([
            ("bucket".to_owned(), self.bucket.clone()),
            ("key".to_owned(), key.to_owned()),
            ("Content-Type".to_owned(), signing.content_type.clone()),
            // An XML answer with the key and ETag, as Companion's forms ask for.
            ("success_action_status".to_owned(), "201".to_owned()),
            ("x-amz-algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
            ("x-amz-credential".to_owned(), credential),
            ("x-amz-date".to_owned(), amz_date),
        ]);
        for (name, value) in &signing.metadata {
            fields.insert(format!("x-amz-meta-{name}"), value.clone());
        }
        if let Some(token) = creds.session_token() {
            fields.insert("x-amz-security-token".to_owned(), token.to_owned());
        }
        // Every field is an exact-match condition; the size a range.
        let mut conditions: Vec<serde_json::Value> = fields
            .iter()
            .map(|(name, value)| serde_json::json!({ name: value }))
            .collect();
        conditions.push(serde_json::json!([
            "content-length-range",
            signing.size.start(),
            signing.size.end()
        ]));
        let policy = serde_json::json!({
            "expiration": iso8601(start + lifetime),
            "conditions": conditions,
        });
        let policy = base64::engine::general_purpose::STANDARD.encode(policy.to_string());
        let signature = hex::encode(hmac::sign(
            &self.signing_mac(creds, &date),
            policy.as_bytes(),
        ));
        fields.insert("policy".to_owned(), policy);
        fields.insert("x-amz-signature".to_owned(), signature);
        PresignedPost {
            url: format!("{}{}", self.origin, self.path_prefix),
            fields,
        }
    }

    /// The MAC of an empty message under the signing key of `date`: tests compare keys by it.
    #[cfg(test)]
    fn signing_key(&self, creds: &Credentials, date: &str) -> [u8; 32] {
        let tag = hmac::sign(&self.signing_mac(creds, date), b"");
        tag.as_ref().try_into().expect("32 bytes")
    }

    /// An HMAC keyed with the signing key of `date` (the key's blocks already hashed).
    fn signing_mac(&self, creds: &Credentials, date: &str) -> hmac::Key {
        self.with_key(creds, date, |k| k.mac.clone())
    }

    /// Calls `f` with the signing key of `date`:
    /// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), "s3"), "aws4_request")`, derived once
    /// per day and credentials.
    fn with_key<T>(&self, creds: &Credentials, date: &str, f: impl FnOnce(&SigningKey) -> T) -> T {
        let mut cache = self
            .key_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = cache.as_ref()
            && c.date == date
            && c.access_key == creds.access_key_id()
            && c.secret_key == creds.secret_access_key()
        {
            return f(c);
        }
        let derive = |key: &[u8], data: &str| -> hmac::Tag {
            hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
        };
        let k_date = derive(
            format!("AWS4{}", creds.secret_access_key()).as_bytes(),
            date,
        );
        let k_region = derive(k_date.as_ref(), &self.region);
        let k_service = derive(k_region.as_ref(), "s3");
        let key = derive(k_service.as_ref(), "aws4_request");
        let mac = hmac::Key::new(hmac::HMAC_SHA256, key.as_ref());
        f(cache.insert(SigningKey {
            date: date.to_owned(),
            access_key: creds.access_key_id().to_owned(),
            secret_key: creds.secret_access_key().to_owned(),
            mac,
        }))
    }
}

/// One [`PartSigner::presign_parts`] call: what its parts share, computed once, and the buffers
/// each part reuses.
struct Batch<'s> {
    signer: &'s PartSigner,
    /// The string to sign is `AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hex(SHA-256(canonical
    /// request))}`: this MAC has taken its first three lines, the same for every part.
    mac: hmac::Context,
    /// `{origin}{path}?`: every URL's start.
    base: String,
    /// Where the path starts in `base`.
    path_start: usize,
    /// `&uploadId=…&x-id=UploadPart`: the query after the part number.
    upload_id_query: String,
    /// The query up to `X-Amz-SignedHeaders=`.
    credential_query: String,
    /// One per set of signed headers seen so far (usually one).
    variants: Vec<Variant>,
    /// The part's canonical request from its part number on.
    rest: Vec<u8>,
    /// The part number in decimal.
    number: String,
}

impl<'s> Batch<'s> {
    fn new(
        signer: &'s PartSigner,
        creds: &Credentials,
        start: SystemTime,
        lifetime: Duration,
        key: &str,
        upload_id: &str,
    ) -> Self {
        let (amz_date, date) = amz_dates(start);
        let scope = format!("{date}/{}/s3/aws4_request", signer.region);

        let mut mac = hmac::Context::with_key(&signer.signing_mac(creds, &date));
        mac.update(b"AWS4-HMAC-SHA256\n");
        mac.update(amz_date.as_bytes());
        mac.update(b"\n");
        mac.update(scope.as_bytes());
        mac.update(b"\n");

        let mut base = String::with_capacity(
            signer.origin.len() + signer.path_prefix.len() + key.len() * 3 + 2,
        );
        base.push_str(&signer.origin);
        let path_start = base.len();
        base.push_str(&signer.path_prefix);
        base.push('/');
        encode_into(&mut base, key, false);
        base.push('?');

        let mut upload_id_query = String::with_capacity(10 + upload_id.len() * 3 + 16);
        upload_id_query.push_str("&uploadId=");
        encode_into(&mut upload_id_query, upload_id, true);
        upload_id_query.push_str("&x-id=UploadPart");

        let mut credential_query = String::with_capacity(256);
        credential_query.push_str("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=");
        encode_into(&mut credential_query, creds.access_key_id(), true);
        credential_query.push_str("%2F");
        encode_into(&mut credential_query, &scope, true);
        credential_query.push_str("&X-Amz-Date=");
        credential_query.push_str(&amz_date);
        let _ = write!(credential_query, "&X-Amz-Expires={}", lifetime.as_secs());
        if let Some(token) = creds.session_token() {
            credential_query.push_str("&X-Amz-Security-Token=");
            encode_into(&mut credential_query, token, true);
        }
        credential_query.push_str("&X-Amz-SignedHeaders=");

        Self {
            signer,
            mac,
            base,
            path_start,
            upload_id_query,
            credential_query,
            variants: Vec::with_capacity(1),
            rest: Vec::with_capacity(256),
            number: String::with_capacity(10),
        }
    }

    /// The URL of part `part_number` and the headers its signature fixes besides `host`.
    fn sign(&mut self, part_number: u32, signing: &PartSigning) -> Presigned {
        let set = HeaderSet::of(signing);
        let v = if let Some(i) = self.variants.iter().position(|v| v.set == set) {
            &self.variants[i]
        } else {
            let path = &self.base[self.path_start..self.base.len() - 1];
            self.variants
                .push(Variant::new(set, path, &self.credential_query));
            &self.variants[self.variants.len() - 1]
        };
        let number = &mut self.number;
        number.clear();
        let _ = write!(number, "{part_number}");

        // The canonical request from the part number on.
        let rest = &mut self.rest;
        rest.clear();
        rest.extend_from_slice(number.as_bytes());
        rest.extend_from_slice(self.upload_id_query.as_bytes());
        rest.push(b'\n');
        let mut headers = BTreeMap::new();
        for &name in &v.names {
            let value = match name {
                "host" => self.signer.host.as_str(),
                "content-length" => {
                    let n = signing.content_length.unwrap_or_default().to_string();
                    &**headers.entry(name.to_owned()).or_insert(n)
                }
                _ => {
                    let value = signing.checksum.as_ref().map_or("", |(_, v)| v.trim());
                    &**headers.entry(name.to_owned()).or_insert(value.to_owned())
                }
            };
            rest.extend_from_slice(name.as_bytes());
            rest.push(b':');
            rest.extend_from_slice(value.as_bytes());
            rest.push(b'\n');
        }
        rest.push(b'\n');
        rest.extend_from_slice(v.signed_headers.as_bytes());
        rest.extend_from_slice(b"\nUNSIGNED-PAYLOAD");
        let mut hasher = v.hasher.clone();
        hasher.update(rest);
        let mut hash_hex = [0u8; 64];
        hex_32(&mut hash_hex, hasher.finish().as_ref());

        let mut part_mac = self.mac.clone();
        part_mac.update(&hash_hex);
        let mut signature = [0u8; 64];
        hex_32(&mut signature, part_mac.sign().as_ref());

        let mut url = String::with_capacity(
            self.base.len()
                + v.query_prefix.len()
                + number.len()
                + self.upload_id_query.len()
                + 18
                + signature.len(),
        );
        url.push_str(&self.base);
        url.push_str(&v.query_prefix);
        url.push_str(number);
        url.push_str(&self.upload_id_query);
        url.push_str("&X-Amz-Signature=");
        // Hex digits are ASCII.
        url.push_str(std::str::from_utf8(&signature).unwrap_or_default());
        Presigned { url, headers }
    }
}

impl Variant {
    fn new(set: HeaderSet, path: &str, credential_query: &str) -> Self {
        let names = set.names();
        let signed_headers = names.join(";");
        let mut query_prefix = String::with_capacity(credential_query.len() + 64);
        query_prefix.push_str(credential_query);
        encode_into(&mut query_prefix, &signed_headers, true);
        query_prefix.push_str("&partNumber=");
        let mut hasher = digest::Context::new(&digest::SHA256);
        hasher.update(b"PUT\n");
        hasher.update(path.as_bytes());
        hasher.update(b"\n");
        hasher.update(query_prefix.as_bytes());
        Self {
            set,
            names,
            signed_headers,
            query_prefix,
            hasher,
        }
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

/// What SigV4 encodes: every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`).
const SIGV4_ENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// The same in a path, where `/` stays.
const SIGV4_PATH_ENCODED: &AsciiSet = &SIGV4_ENCODED.remove(b'/');

/// Appends `s` URI-encoded: every byte but the unreserved ones as `%XX` (uppercase), and `/`
/// too unless it is a path (`encode_slash == false`).
pub(crate) fn encode_into(out: &mut String, s: &str, encode_slash: bool) {
    let set = if encode_slash {
        SIGV4_ENCODED
    } else {
        SIGV4_PATH_ENCODED
    };
    out.extend(utf8_percent_encode(s, set));
}

/// Writes a 32-byte digest as 64 lowercase hex digits into `out`.
fn hex_32(out: &mut [u8; 64], digest: &[u8]) {
    // SHA-256 digests and HMAC-SHA256 tags are 32 bytes: they fill the 64 digits exactly.
    hex::encode_to_slice(digest, out).expect("a 32-byte digest is 64 hex digits");
}

/// `t` in UTC, to the second. A clock before 1970 or after 9999 reads as 1970 (the store then
/// refuses the signature as expired).
fn utc(t: SystemTime) -> OffsetDateTime {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `("YYYYMMDDTHHMMSSZ", "YYYYMMDD")` of `t` in UTC.
fn amz_dates(t: SystemTime) -> (String, String) {
    let at = utc(t);
    let date = format!("{:04}{:02}{:02}", at.year(), u8::from(at.month()), at.day());
    let time = format!(
        "{date}T{:02}{:02}{:02}Z",
        at.hour(),
        at.minute(),
        at.second()
    );
    (time, date)
}

/// `YYYY-MM-DDTHH:MM:SS.000Z`, a POST policy's `expiration`, of `t` in UTC.
fn iso8601(t: SystemTime) -> String {
    let at = utc(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
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
    fn post_policies_bind_every_field_the_size_and_the_expiry() {
        let s = PartSigner::new("http://127.0.0.1:9000", "b", "us-east-1", true).unwrap();
        let creds = Credentials::new("AK", "secret", Some("session".into()), None, "t");
        let signing = PostSigning {
            content_type: "text/plain".into(),
            metadata: BTreeMap::from([("owner".into(), "ada".into())]),
            size: 3..=10,
        };
        let start = UNIX_EPOCH + Duration::from_secs(1_795_921_552);
        let form = s.presign_post(&creds, start, Duration::from_secs(900), "k/a b", &signing);
        assert_eq!(form.url, "http://127.0.0.1:9000/b");
        let f = |name: &str| form.fields[name].as_str();
        assert_eq!(
            (
                f("bucket"),
                f("key"),
                f("Content-Type"),
                f("x-amz-meta-owner")
            ),
            ("b", "k/a b", "text/plain", "ada")
        );
        assert_eq!(
            f("x-amz-credential"),
            "AK/20261129/us-east-1/s3/aws4_request"
        );
        assert_eq!(f("x-amz-date"), "20261129T030552Z");
        assert_eq!(f("x-amz-security-token"), "session");
        let policy: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(f("policy"))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(policy["expiration"], "2026-11-29T03:20:52.000Z");
        let conditions = policy["conditions"].as_array().unwrap();
        // One exact condition per field but the policy and its signature, and the size range.
        assert_eq!(conditions.len(), form.fields.len() - 2 + 1);
        for (name, value) in &form.fields {
            if name != "policy" && name != "x-amz-signature" {
                assert!(
                    conditions.contains(&serde_json::json!({ name: value })),
                    "{name}"
                );
            }
        }
        assert!(conditions.contains(&serde_json::json!(["content-length-range", 3, 10])));
        // The signature is the HMAC of the base64 policy under the day's signing key, as the
        // `aws-sigv4` crate derives the key and signs (an oracle independent of this module).
        let key = aws_sigv4::sign::v4::generate_signing_key("secret", start, "us-east-1", "s3");
        let expected = aws_sigv4::sign::v4::calculate_signature(key, f("policy").as_bytes());
        assert_eq!(f("x-amz-signature"), expected);
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
        assert!(PartSigner::new("http://h/#f", "b", "r", true).is_none());
        assert!(PartSigner::new("http://h?x", "b", "r", true).is_none());
        assert!(PartSigner::new("http:///b", "b", "r", true).is_none());
        // Scheme and host in any case; a default port only leaves the signed host.
        let s = PartSigner::new("HTTPS://H.Example:443", "b", "r", true).unwrap();
        assert_eq!(
            (s.origin.as_str(), s.host.as_str()),
            ("https://h.example:443", "h.example")
        );
        let s = PartSigner::new("http://[::1]:9000", "bucket", "r", false).unwrap();
        assert_eq!(
            (s.host.as_str(), s.path_prefix.as_str()),
            ("[::1]:9000", "/bucket")
        );
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

    #[test]
    fn debug_output_never_shows_the_secret() {
        let s = PartSigner::new("http://127.0.0.1:9000", "b", "us-east-1", true).unwrap();
        let creds = Credentials::new("AKIDEXAMPLE", "very-secret-key", None, None, "t");
        s.signing_key(&creds, "20260101");
        let shown = format!("{s:?}");
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(!shown.contains("very-secret-key"), "{shown}");
    }
}
