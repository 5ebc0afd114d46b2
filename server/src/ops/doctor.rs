//! `s3-direct doctor`: checks that browsers can upload to the bucket, the way a browser does.
//!
//! Checks, each `ok`, `warn`, `FAIL` or `n/a` with a one-line reason:
//!
//! - **credentials**: `HeadBucket` with the server's credentials;
//! - **clock**: the store's `Date` header against this machine's clock (SigV4 and URL expiry
//!   depend on both agreeing);
//! - **browser upload**: a real multipart upload, one part presigned as the server presigns it,
//!   sent as a browser sends it: a CORS preflight `OPTIONS` with `Origin`,
//!   `Access-Control-Request-Method: PUT` and the request headers, then the `PUT` with `Origin`;
//!   the `ETag` must be readable by the page (`Access-Control-Allow-Origin`,
//!   `Access-Control-Expose-Headers`). With `--checksum`, the upload is created and the part
//!   signed and sent as the browser client does it (created for a CRC or SHA-256 algorithm, the
//!   part carrying its checksum), and a second PUT with one byte changed must be refused: a store
//!   that stores it does not verify that checksum. The upload is aborted afterwards, whatever
//!   happened;
//! - **small-file form**: a small file sent as Companion clients (Uppy) send it: a POST policy
//!   form as `GET /s3/params` answers them, POSTed with `Origin` (a form needs no preflight); the
//!   store must take it and let the page read the answer (`Access-Control-Allow-Origin`, which
//!   S3 sends only when the CORS rule allows `POST`). The file's name is not ASCII: a store that
//!   refuses it but takes the same form with an ASCII name drops non-ASCII form fields (Garage
//!   2.5.0 built without `--locked`), and the check says so with the remedy. A warning, not a
//!   failure: s3-direct's own client sends PUTs. The objects are deleted afterwards;
//! - **checksums** (`integrity.rs`): for md5, crc32, crc32c and sha256, whether the store refuses
//!   a part whose checksum is wrong, and which one `--checksum auto` asks for. The browser upload
//!   check then uses the checksum browsers will be asked for;
//! - **lifecycle**: an enabled `AbortIncompleteMultipartUpload` rule covering the key prefix;
//! - **credential lifetime**: how long the signing credentials live against `--url-lifetime`.
//!
//! For each failure or warning it prints the configuration to paste. The verdicts are pure
//! functions of what the store answered (`judge_*`), unit-tested here; the probing itself is
//! tested against Garage and Ceph radosgw.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use s3_direct_protocol::wire::ChecksumAlgorithm;
use serde_json::{Value, json};

use super::setup::{self, BucketRules, Wanted};
use super::units::format_age;
use super::uploads::OpsError;
use crate::store::integrity::{checksum_of, s3_error_code};
use crate::store::{PartSigning, PostSigning, S3Store, Store};

/// Result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    /// Does not apply to this store.
    #[serde(rename = "n/a")]
    NotApplicable,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::NotApplicable => "n/a",
        }
    }
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub message: String,
}

/// What to paste to fix a failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    /// The check it fixes.
    pub check: &'static str,
    /// What the commands do.
    pub title: String,
    /// Commands, each complete.
    pub commands: Vec<String>,
}

/// Everything `doctor` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub bucket: String,
    pub endpoint: String,
    pub origin: Option<String>,
    pub checks: Vec<Check>,
    pub fixes: Vec<Fix>,
}

impl Report {
    /// True when no check failed (warnings allowed).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    fn check(&mut self, name: &'static str, (status, message): (Status, String)) {
        self.checks.push(Check {
            name,
            status,
            message,
        });
    }
}

pub const CREDENTIALS: &str = "credentials";
pub const CLOCK: &str = "clock";
pub const BROWSER_UPLOAD: &str = "browser upload";
pub const SMALL_FILE_FORM: &str = "small-file form";
pub const LIFECYCLE: &str = "lifecycle";
pub const CREDENTIAL_LIFETIME: &str = "credential lifetime";

/// Clock skew S3 tolerates before it refuses signed requests (`RequestTimeTooSkewed`).
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// Skew worth a warning: URLs expire that much early or late.
const WARN_SKEW: Duration = Duration::from_secs(30);

/// The verdict on the store's clock: `skew_secs` is the store's time minus ours.
pub fn judge_clock(skew_secs: f64) -> (Status, String) {
    let off = Duration::from_secs_f64(skew_secs.abs());
    let direction = if skew_secs >= 0.0 {
        "ahead of"
    } else {
        "behind"
    };
    let what = format!(
        "the store's clock is {} s {direction} this machine's",
        skew_secs.abs().round()
    );
    if off >= MAX_SKEW {
        (
            Status::Fail,
            format!(
                "{what}; S3 refuses signed requests more than 15 minutes off: synchronise the \
                 clocks (NTP)"
            ),
        )
    } else if off >= WARN_SKEW {
        (
            Status::Warn,
            format!(
                "{what}; presigned URLs expire that much early or late: synchronise the clocks"
            ),
        )
    } else {
        (Status::Ok, what)
    }
}

/// The verdict on the signing credentials' remaining life against the URL lifetime.
pub fn judge_credential_lifetime(
    remaining: Option<Duration>,
    url_lifetime: Duration,
) -> (Status, String) {
    match remaining {
        None => (
            Status::Ok,
            format!(
                "the signing credentials do not expire; URLs live {}",
                format_age(url_lifetime)
            ),
        ),
        Some(left) if left.is_zero() => (
            Status::Fail,
            "the signing credentials have expired and could not be refreshed".to_owned(),
        ),
        Some(left) if left < url_lifetime => (
            Status::Warn,
            format!(
                "the signing credentials expire in {}, before the --url-lifetime of {}: URLs \
                 are cut to the credentials' life (they are refreshed 5 minutes before expiry), \
                 so clients re-sign more often; lower --url-lifetime or use longer-lived \
                 credentials",
                format_age(left),
                format_age(url_lifetime)
            ),
        ),
        Some(left) => (
            Status::Ok,
            format!(
                "the signing credentials live {} more, longer than the URL lifetime of {}",
                format_age(left),
                format_age(url_lifetime)
            ),
        ),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// True when a comma-separated CORS header lists `item` (case-insensitively) or `*`.
fn lists(value: Option<&str>, item: &str) -> bool {
    value.is_some_and(|v| {
        v.split(',')
            .map(str::trim)
            .any(|x| x == "*" || x.eq_ignore_ascii_case(item))
    })
}

fn allows_origin(headers: &HeaderMap, origin: &str) -> bool {
    matches!(header(headers, "access-control-allow-origin"), Some(o) if o == "*" || o == origin)
}

/// The verdict on the preflight answer: `Err` says why a browser would not send the PUT.
pub fn judge_preflight(
    origin: &str,
    request_headers: &[&str],
    status: u16,
    headers: &HeaderMap,
) -> Result<(), String> {
    if !(200..300).contains(&status) || !allows_origin(headers, origin) {
        return Err(format!(
            "the store refused the CORS preflight from {origin} (status {status}, \
             Access-Control-Allow-Origin {:?}); the bucket's CORS rule must allow this origin \
             to PUT",
            header(headers, "access-control-allow-origin").unwrap_or("absent")
        ));
    }
    if !lists(header(headers, "access-control-allow-methods"), "PUT") {
        return Err(format!(
            "the CORS preflight does not allow PUT from {origin} (Access-Control-Allow-Methods \
             {:?})",
            header(headers, "access-control-allow-methods").unwrap_or("absent")
        ));
    }
    let allowed = header(headers, "access-control-allow-headers");
    let missing: Vec<&str> = request_headers
        .iter()
        .copied()
        .filter(|h| !lists(allowed, h))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the CORS preflight does not allow the request header(s) {} that the client sends \
             (Access-Control-Allow-Headers {:?})",
            missing.join(", "),
            allowed.unwrap_or("absent")
        ));
    }
    Ok(())
}

/// The verdict on the part PUT's answer: `Ok` with the ETag the page can read.
pub fn judge_put(
    origin: &str,
    status: u16,
    headers: &HeaderMap,
    body: &str,
) -> Result<String, String> {
    if !(200..300).contains(&status) {
        let code = s3_error_code(body).unwrap_or("no S3 error code");
        return Err(format!(
            "the presigned part PUT was refused: status {status} ({code}); check the \
             credentials, --region and that the store is reached at the public endpoint"
        ));
    }
    if !allows_origin(headers, origin) {
        return Err(format!(
            "the PUT worked but its answer lacks Access-Control-Allow-Origin for {origin}, so \
             the browser hides the whole response; the bucket's CORS rule must allow this origin"
        ));
    }
    let Some(etag) = header(headers, "etag").filter(|e| !e.is_empty()) else {
        return Err("the PUT worked but the store sent no ETag".to_owned());
    };
    if !lists(header(headers, "access-control-expose-headers"), "etag") {
        return Err(format!(
            "the PUT worked but the page cannot read its ETag (Access-Control-Expose-Headers \
             {:?}); add ExposeHeaders: ETag to the bucket's CORS rule",
            header(headers, "access-control-expose-headers").unwrap_or("absent")
        ));
    }
    Ok(etag.to_owned())
}

/// The verdict on the bucket's lifecycle rules for `key_prefix`.
pub fn judge_lifecycle(rules: &Result<Vec<Value>, OpsError>, key_prefix: &str) -> (Status, String) {
    match rules {
        Ok(rules) => match setup::covering_abort_rule(rules, key_prefix) {
            Some((id, days)) => (
                Status::Ok,
                format!(
                    "rule {id:?} aborts incomplete uploads under {key_prefix:?} after {days} \
                     day(s)"
                ),
            ),
            None => (
                Status::Warn,
                format!(
                    "no enabled AbortIncompleteMultipartUpload rule covers {key_prefix:?}: parts \
                     of uploads nobody completes stay stored (and billed) until purged"
                ),
            ),
        },
        Err(OpsError::Unsupported { operation }) => (
            Status::Warn,
            format!(
                "the store does not implement {operation}: run `s3-direct serve \
                 --sweep-older-than 24h` or `s3-direct uploads purge --older-than 24h` on a \
                 schedule instead"
            ),
        ),
        Err(e) => (
            Status::Warn,
            format!("cannot read the lifecycle rules: {e}"),
        ),
    }
}

/// What doctor needs to know about the deployment.
#[derive(Debug, Clone)]
pub struct Options {
    /// Origin of the page that uploads (`--origin`, else the first `--cors-origin`).
    pub origin: Option<String>,
    /// The rules `bucket setup` would apply (origins, key prefix, abort days).
    pub wanted: Wanted,
    /// `--url-lifetime`.
    pub url_lifetime: Duration,
    /// `--checksum`: the header of the checksum it asks for is among those the client sends.
    pub checksum: crate::store::ChecksumSetting,
    /// The `s3-direct bucket setup …` command for this deployment.
    pub setup_command: String,
    /// The embedded store: no clock, lifecycle or credential checks apply.
    pub embedded: bool,
}

/// Runs every check against `store` (and, for a real store, its bucket rules through `rules`).
pub async fn run(
    store: &S3Store,
    rules: Option<&dyn BucketRules>,
    options: &Options,
) -> Result<Report, OpsError> {
    let http = crate::http_client()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| OpsError::Refused(format!("cannot build an HTTP client: {e}")))?;
    let endpoint = store.config().public_endpoint().to_owned();
    let mut report = Report {
        bucket: store.config().bucket.clone(),
        endpoint: endpoint.clone(),
        origin: options.origin.clone(),
        checks: Vec::new(),
        fixes: Vec::new(),
    };

    let credentials = head_bucket(store).await;
    let reachable = credentials.0 == Status::Ok;
    report.check(CREDENTIALS, credentials);

    if options.embedded {
        report.check(
            CLOCK,
            (
                Status::NotApplicable,
                "the embedded store runs in this process, on this machine's clock".to_owned(),
            ),
        );
    } else {
        report.check(CLOCK, clock(&http, &endpoint).await);
    }

    if reachable {
        let found = super::integrity::probe_all(store).await;
        let auto = super::integrity::judge_auto(&found, store.verified_checksum());
        let asked = super::integrity::asked(options.checksum, &auto);
        report.check(
            super::integrity::CHECKSUMS,
            super::integrity::judge_checksums(&found, options.checksum, &auto),
        );
        let verdict = browser_upload(&http, store, options, asked).await;
        if verdict.0 == Status::Fail && !options.embedded {
            report.fixes.push(cors_fix(rules, options).await);
        }
        report.check(BROWSER_UPLOAD, verdict);
        let (form, cors) = small_file_form(&http, store, options).await;
        if cors && !options.embedded && !report.fixes.iter().any(|f| f.check == BROWSER_UPLOAD) {
            let mut fix = cors_fix(rules, options).await;
            fix.check = SMALL_FILE_FORM;
            report.fixes.push(fix);
        }
        report.check(SMALL_FILE_FORM, form);
    } else {
        let not_tried = "not tried: the bucket is not reachable with these credentials";
        report.check(
            super::integrity::CHECKSUMS,
            (Status::Warn, not_tried.to_owned()),
        );
        report.check(BROWSER_UPLOAD, (Status::Fail, not_tried.to_owned()));
        report.check(SMALL_FILE_FORM, (Status::Warn, not_tried.to_owned()));
    }

    match (rules, options.embedded) {
        (Some(rules), false) if reachable => {
            let found = rules.lifecycle_rules().await;
            let verdict = judge_lifecycle(&found, &options.wanted.key_prefix);
            if verdict.0 != Status::Ok {
                let mut merged = found.unwrap_or_default();
                merged = setup::merge(
                    &merged,
                    &options.wanted.lifecycle_rule(),
                    setup::same_lifecycle_rule,
                    setup::Place::InPlace,
                )
                .0;
                report.fixes.push(Fix {
                    check: LIFECYCLE,
                    title: "add the lifecycle rule (the bucket's other rules are kept)".to_owned(),
                    commands: vec![
                        setup::aws_lifecycle_command(&report.bucket, &endpoint, &merged),
                        options.setup_command.clone(),
                    ],
                });
            }
            report.check(LIFECYCLE, verdict);
        }
        (_, true) => report.check(
            LIFECYCLE,
            (
                Status::NotApplicable,
                "the embedded store has no lifecycle rules; `s3-direct serve \
                 --sweep-older-than 24h` removes abandoned uploads from its data dir"
                    .to_owned(),
            ),
        ),
        _ => report.check(
            LIFECYCLE,
            (
                Status::Warn,
                "not checked: the bucket is not reachable".to_owned(),
            ),
        ),
    }

    if options.embedded {
        report.check(
            CREDENTIAL_LIFETIME,
            (
                Status::NotApplicable,
                "the embedded store's credentials are fixed for the process".to_owned(),
            ),
        );
    } else {
        let remaining = store.credentials_remaining().await;
        report.check(
            CREDENTIAL_LIFETIME,
            judge_credential_lifetime(remaining, options.url_lifetime),
        );
    }
    Ok(report)
}

/// `HeadBucket` with the signing credentials, its failure named by status.
async fn head_bucket(store: &S3Store) -> (Status, String) {
    let bucket = &store.config().bucket;
    let endpoint = &store.config().endpoint;
    let err = match store.client().head_bucket().bucket(bucket).send().await {
        Ok(_) => {
            return (
                Status::Ok,
                format!("HeadBucket answered: bucket {bucket} is reachable with these credentials"),
            );
        }
        Err(e) => e,
    };
    let message = match err.raw_response().map(|r| r.status().as_u16()) {
        Some(404) => format!("bucket {bucket} does not exist at {endpoint}; check --bucket"),
        Some(403) => format!(
            "the store refused the credentials for bucket {bucket} (403): check \
             AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile), their rights on the \
             bucket, and --region"
        ),
        Some(301 | 400) => format!(
            "HeadBucket of {bucket} answered {}: usually --region is not the bucket's region, \
             or the store needs --path-style",
            err.raw_response().map_or(0, |r| r.status().as_u16())
        ),
        Some(status) => format!("HeadBucket of {bucket} answered {status}"),
        None => format!("cannot reach the store at {endpoint}: {}", causes(&err)),
    };
    (Status::Fail, message)
}

/// An error and its causes on one line, without repeating the same text.
fn causes(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// The rustls error somewhere in `err`'s causes: the TLS handshake failed (for instance, a
/// certificate this machine does not trust).
fn tls_failure<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // tokio-rustls wraps it in an io::Error (reqwest wraps that in another), whose `source`
        // skips the wrapped error: look inside instead.
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// Why a request to `url` was not answered, as a verdict: a TLS failure (an untrusted or invalid
/// certificate) fails, since browsers refuse that store too; anything else gets `otherwise`.
fn unanswered(err: &reqwest::Error, url: &str, what: &str, otherwise: Status) -> (Status, String) {
    // Not the query: a presigned URL's signature stays out of the report.
    let target = url.split('?').next().unwrap_or(url);
    match tls_failure(err) {
        Some(tls) => (
            Status::Fail,
            format!(
                "{what}: the TLS handshake with {target} failed ({tls}); browsers refuse such a \
                 certificate too unless they trust its CA — give the store a certificate from a CA \
                 browsers trust, or add its CA to this machine's trust store (or SSL_CERT_FILE)"
            ),
        ),
        None => (otherwise, format!("{what}: {}", causes(err))),
    }
}

/// The store's clock against ours, from the `Date` header of any answer.
async fn clock(http: &reqwest::Client, endpoint: &str) -> (Status, String) {
    let before = SystemTime::now();
    let answer = http.head(endpoint).send().await;
    let after = SystemTime::now();
    let response = match answer {
        Ok(r) => r,
        Err(e) => {
            return unanswered(
                &e,
                endpoint,
                &format!("cannot reach {endpoint} to read its clock"),
                Status::Warn,
            );
        }
    };
    let Some(date) = header(response.headers(), "date").and_then(|d| {
        aws_sdk_s3::primitives::DateTime::from_str(
            d,
            aws_sdk_s3::primitives::DateTimeFormat::HttpDate,
        )
        .ok()
    }) else {
        return (
            Status::Warn,
            "the store sent no Date header, so its clock cannot be compared".to_owned(),
        );
    };
    let middle = before + after.duration_since(before).unwrap_or_default() / 2;
    let ours = middle
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    // `Date` has whole seconds: half a second of the difference is rounding.
    let skew = date.as_secs_f64() + 0.5 - ours;
    judge_clock(if skew.abs() < 1.0 { 0.0 } else { skew })
}

/// The part PUT a browser would make, and the cleanup after it.
async fn browser_upload(
    http: &reqwest::Client,
    store: &S3Store,
    options: &Options,
    asked: Option<ChecksumAlgorithm>,
) -> (Status, String) {
    let Some(origin) = options.origin.as_deref() else {
        return (
            Status::Fail,
            "no page origin to test with: give --cors-origin https://app.example.com (the \
             origin of the page that uploads) or --origin"
                .to_owned(),
        );
    };
    let key = format!(
        "{}.s3-direct-doctor/{}",
        options.wanted.key_prefix,
        uuid::Uuid::new_v4().simple()
    );
    // As the browser client creates it: for the part checksums `--checksum` asks for (MD5 needs
    // no declaring).
    let declared = asked.filter(|c| *c != ChecksumAlgorithm::Md5);
    let upload_id = match store
        .create_multipart(crate::store::NewUpload {
            key: key.clone(),
            content_type: "application/octet-stream".to_owned(),
            metadata: Default::default(),
            checksum: declared,
        })
        .await
    {
        Ok(id) => id,
        Err(e) => {
            let detail =
                std::error::Error::source(&e).map_or_else(String::new, |s| format!(": {s}"));
            let hint = match declared {
                Some(c) => format!(
                    "; the credentials need write access, and the store must take uploads \
                     created for {c} part checksums (x-amz-checksum-algorithm), as --checksum \
                     {c} asks: with a store that cannot, use --checksum md5"
                ),
                None => "; the credentials need write access".to_owned(),
            };
            return (
                Status::Fail,
                format!("CreateMultipartUpload failed{detail}{hint}"),
            );
        }
    };
    let verdict = put_part(http, store, options, asked, origin, &key, &upload_id).await;
    // Leave nothing behind, whatever happened.
    match store.abort(&key, &upload_id).await {
        Ok(()) => verdict,
        Err(e) => {
            let status = if verdict.0 == Status::Fail {
                Status::Fail
            } else {
                Status::Warn
            };
            (
                status,
                format!(
                    "{}; and aborting the test upload {upload_id} of {key} failed ({e}): remove \
                     it with `s3-direct uploads abort`",
                    verdict.1
                ),
            )
        }
    }
}

async fn put_part(
    http: &reqwest::Client,
    store: &S3Store,
    options: &Options,
    asked: Option<ChecksumAlgorithm>,
    origin: &str,
    key: &str,
    upload_id: &str,
) -> (Status, String) {
    const BODY: &[u8] = b"s3-direct doctor: a test part, aborted right after this request\n";
    let signing = PartSigning {
        content_length: Some(BODY.len() as u64),
        checksum: asked.map(|c| (c, checksum_of(c, BODY))),
    };
    let presigned = match store
        .presign_part(key, upload_id, 1, options.url_lifetime, &signing)
        .await
    {
        Ok(p) => p,
        Err(e) => return (Status::Fail, format!("cannot presign a part URL: {e}")),
    };
    // What the page sets itself: the signed headers a script may set, and the checksum the
    // server asks for.
    let sent: Vec<(String, String)> = presigned
        .headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "content-length" | "host"))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    // The checksum header, when there is one, is among them: it is signed.
    let requested: Vec<&str> = sent.iter().map(|(n, _)| n.as_str()).collect();
    let mut preflight = http
        .request(reqwest::Method::OPTIONS, &presigned.url)
        .header("origin", origin)
        .header("access-control-request-method", "PUT");
    if !requested.is_empty() {
        preflight = preflight.header("access-control-request-headers", requested.join(","));
    }
    let answer = match preflight.send().await {
        Ok(r) => r,
        Err(e) => {
            return unanswered(
                &e,
                &presigned.url,
                "the CORS preflight could not be sent to the store",
                Status::Fail,
            );
        }
    };
    if let Err(why) = judge_preflight(
        origin,
        &requested,
        answer.status().as_u16(),
        answer.headers(),
    ) {
        return (Status::Fail, why);
    }
    let put = |body: Vec<u8>| {
        let mut put = http.put(&presigned.url).header("origin", origin).body(body);
        for (name, value) in &sent {
            put = put.header(name, value);
        }
        put.send()
    };
    let answer = match put(BODY.to_vec()).await {
        Ok(r) => r,
        Err(e) => return unanswered(&e, &presigned.url, "the part PUT failed", Status::Fail),
    };
    let (status, headers) = (answer.status().as_u16(), answer.headers().clone());
    let body = answer.text().await.unwrap_or_default();
    let etag = match judge_put(origin, status, &headers, &body) {
        Ok(etag) => etag,
        Err(why) => {
            let hint = match asked {
                Some(c) if !(200..300).contains(&status) => format!(
                    "{why}; the part carried its {c} checksum ({}), as --checksum {c} asks: a \
                     store that does not take it needs --checksum md5 or off",
                    c.header()
                ),
                _ => why,
            };
            return (Status::Fail, hint);
        }
    };
    let stored = format!(
        "a part PUT from {origin} passed the CORS preflight, was stored and its ETag {etag} is \
         readable by the page"
    );
    let Some(c) = asked else {
        return (Status::Ok, stored);
    };
    // The same signed request with one byte changed: the store must find that the checksum no
    // longer matches.
    let mut damaged = BODY.to_vec();
    damaged[0] ^= 1;
    match put(damaged).await {
        Ok(answer) => {
            let status = answer.status().as_u16();
            let body = answer.text().await.unwrap_or_default();
            judge_checksum_check(c, status, &body, &stored)
        }
        Err(e) => unanswered(
            &e,
            &presigned.url,
            "the PUT of a damaged part failed",
            Status::Warn,
        ),
    }
}

/// Name of doctor's small-file test object. Not ASCII on purpose: real file names often are not,
/// and a store built against `http` 1.6 (Garage 2.5.0 built without `--locked`) silently drops
/// every POST-form field that is not visible ASCII, the key among them (docs/stores.md,
/// "Small-file POST forms").
const FORM_TEST_NAME: &str = "doctor-prüfung-größe.txt";
/// The same test with an ASCII name, sent only when the first form is refused, to tell a store
/// that drops non-ASCII form fields from one that refuses forms altogether.
const FORM_TEST_NAME_ASCII: &str = "doctor-test.txt";

/// What the store answered a form POST: status, headers and body; or why no answer came.
type FormAnswer = Result<(u16, HeaderMap, String), reqwest::Error>;

/// POSTs a small file in the form `GET /s3/params` answers Companion clients, with `Origin`, and
/// deletes it again. The file's name holds non-ASCII characters; if the store refuses it, the
/// same form with an ASCII name is tried to name the cause.
async fn small_file_form(
    http: &reqwest::Client,
    store: &S3Store,
    options: &Options,
) -> ((Status, String), bool) {
    let Some(origin) = options.origin.as_deref() else {
        return (
            (
                Status::Warn,
                "no page origin to test with: give --cors-origin or --origin".to_owned(),
            ),
            false,
        );
    };
    let folder = format!(
        "{}.s3-direct-doctor/{}/",
        options.wanted.key_prefix,
        uuid::Uuid::new_v4().simple()
    );
    let key = format!("{folder}{FORM_TEST_NAME}");
    let answer = match post_test_form(http, store, options, origin, &key).await {
        Ok(answer) => answer,
        Err(why) => return (why, false),
    };
    let mut keys = vec![key];
    let ((status, message), cors) = match answer {
        Ok((status, headers, _)) if (200..300).contains(&status) => {
            let (status, message, cors) = judge_form(origin, &headers);
            ((status, message), cors)
        }
        Ok((status, _, body)) => {
            // Refused: is it the name? The same form with an ASCII key tells.
            let ascii_key = format!("{folder}{FORM_TEST_NAME_ASCII}");
            let ascii = post_test_form(http, store, options, origin, &ascii_key).await;
            keys.push(ascii_key);
            let ascii_status = match &ascii {
                Ok(Ok((status, _, _))) => Some(*status),
                _ => None,
            };
            let (status, message) = judge_non_ascii_form(status, &body, ascii_status);
            ((status, message), false)
        }
        Err(e) => (
            unanswered(
                &e,
                store.config().public_endpoint(),
                "the form POST failed",
                Status::Warn,
            ),
            false,
        ),
    };
    // Leave nothing behind (deleting an object that was not stored succeeds).
    for key in keys {
        if let Err(e) = store
            .client()
            .delete_object()
            .bucket(&store.config().bucket)
            .key(&key)
            .send()
            .await
        {
            return (
                (
                    Status::Warn,
                    format!(
                        "{message}; and deleting the test object {key} failed ({}): delete it by \
                         hand",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    ),
                ),
                cors,
            );
        }
    }
    ((status, message), cors)
}

/// Signs a POST form for `key` as `GET /s3/params` signs one and POSTs the test file with it;
/// `Err` is the verdict when no form can be signed.
async fn post_test_form(
    http: &reqwest::Client,
    store: &S3Store,
    options: &Options,
    origin: &str,
    key: &str,
) -> Result<FormAnswer, (Status, String)> {
    const BODY: &[u8] = b"s3-direct doctor: a test file, deleted right after this request\n";
    let signing = PostSigning {
        content_type: "text/plain".to_owned(),
        metadata: Default::default(),
        size: 0..=BODY.len() as u64,
    };
    let form = match store
        .presign_post(key, &signing, options.url_lifetime)
        .await
    {
        Ok(Some(form)) => form,
        Ok(None) => {
            return Err((
                Status::NotApplicable,
                "the server signs no POST forms for this endpoint (an endpoint with a path, or \
                 a bucket that is no DNS name with virtual-hosted addressing): Companion \
                 clients get presigned PUTs, which Uppy 5 follows and Uppy 6 cannot"
                    .to_owned(),
            ));
        }
        Err(e) => return Err((Status::Warn, format!("cannot sign a POST form: {e}"))),
    };
    let mut body = reqwest::multipart::Form::new();
    for (name, value) in form.fields {
        body = body.text(name, value);
    }
    body = body.part("file", reqwest::multipart::Part::bytes(BODY));
    let answer = http
        .post(&form.url)
        .header("origin", origin)
        .multipart(body)
        .send()
        .await;
    Ok(match answer {
        Ok(answer) => {
            let (status, headers) = (answer.status().as_u16(), answer.headers().clone());
            Ok((status, headers, answer.text().await.unwrap_or_default()))
        }
        Err(e) => Err(e),
    })
}

/// The verdict on a small-file form whose key holds non-ASCII characters and that the store
/// refused with `status` and `body`, given what it answered (`ascii_status`) the same form with
/// an ASCII key.
pub fn judge_non_ascii_form(
    status: u16,
    body: &str,
    ascii_status: Option<u16>,
) -> (Status, String) {
    let code = s3_error_code(body).unwrap_or("no S3 error code");
    match ascii_status {
        Some(ascii) if (200..300).contains(&ascii) => (
            Status::Warn,
            format!(
                "the store refused a small file's POST form whose name is not ASCII (status \
                 {status}, {code}) and took the same form with an ASCII name: it drops form \
                 fields that are not ASCII, so every small file Companion clients (Uppy) send \
                 with such a name fails. Garage 2.5.0 built from source without --locked does \
                 this (it resolves http 1.6); rebuild it with `cargo install --locked garage \
                 --version 2.5.0`. Until then, for Uppy 5 run s3-direct with \
                 --small-file-method put (Uppy 6 sends small files only as forms)"
            ),
        ),
        _ => (
            Status::Warn,
            format!(
                "the store refused a small file's POST form: status {status} ({code}); Companion \
                 clients (Uppy) cannot upload files they send in one request (Uppy 5: give it \
                 shouldUseMultipart: true, or run s3-direct with --small-file-method put)"
            ),
        ),
    }
}

/// The verdict on the answer (its headers) to a small-file form POSTed from `origin` that the
/// store took, and whether the bucket's CORS rule is what needs fixing.
pub fn judge_form(origin: &str, headers: &HeaderMap) -> (Status, String, bool) {
    if !allows_origin(headers, origin) {
        return (
            Status::Warn,
            format!(
                "a small file's POST form from {origin} was stored, but the answer has no \
                 Access-Control-Allow-Origin for it, so the page sees a failed upload: allow POST \
                 in the bucket's CORS rule (Companion clients such as Uppy send small files so)"
            ),
            true,
        );
    }
    if header(headers, "etag").is_none()
        || !lists(header(headers, "access-control-expose-headers"), "etag")
    {
        return (
            Status::Warn,
            format!(
                "a small file's POST form from {origin} was stored and the page can read the \
                 answer, but not an ETag header in it (ETag {:?}, Access-Control-Expose-Headers \
                 {:?}): Uppy 6 does not need it, Uppy 5 waits for it forever; for Uppy 5, run \
                 s3-direct with --small-file-method put",
                header(headers, "etag").unwrap_or("absent"),
                header(headers, "access-control-expose-headers").unwrap_or("absent")
            ),
            header(headers, "etag").is_some(),
        );
    }
    (
        Status::Ok,
        format!(
            "a small file's POST form from {origin}, as Companion clients (Uppy) send it, with a \
             name that is not ASCII, was stored and the page can read the answer and its ETag"
        ),
        false,
    )
}

/// The verdict on the PUT of a part whose body no longer matches the checksum signed into it.
pub fn judge_checksum_check(
    c: ChecksumAlgorithm,
    status: u16,
    body: &str,
    stored: &str,
) -> (Status, String) {
    let code = s3_error_code(body).unwrap_or("");
    if status == 400
        && matches!(
            code,
            "BadDigest" | "InvalidDigest" | "XAmzContentChecksumMismatch"
        )
    {
        return (
            Status::Ok,
            format!("{stored}; with its {c} checksum, and a damaged copy was refused ({code})"),
        );
    }
    if (200..300).contains(&status) {
        return (
            Status::Warn,
            format!(
                "{stored}, but a damaged copy with the same {c} checksum was stored too: this \
                 store does not verify {} — use --checksum md5, which every S3-compatible store \
                 checks",
                c.header()
            ),
        );
    }
    (
        Status::Warn,
        format!(
            "{stored}; a damaged copy with the same {c} checksum got status {status} ({}) \
             instead of BadDigest, so whether the store verifies {c} is unknown",
            if code.is_empty() {
                "no S3 error code"
            } else {
                code
            }
        ),
    )
}

/// The CORS configuration to paste: the bucket's rules with ours merged in.
async fn cors_fix(rules: Option<&dyn BucketRules>, options: &Options) -> Fix {
    let wanted = &options.wanted;
    let (bucket, endpoint, existing) = match rules {
        Some(r) => (
            r.bucket().to_owned(),
            r.endpoint().to_owned(),
            r.cors_rules().await.unwrap_or_default(),
        ),
        None => (String::new(), String::new(), Vec::new()),
    };
    let mut rule = wanted.cors_rule();
    if wanted.origins.is_empty() {
        rule["AllowedOrigins"] = json!(["https://app.example.com"]);
    }
    let merged = setup::merge(&existing, &rule, setup::same_cors_rule, setup::Place::First).0;
    Fix {
        check: BROWSER_UPLOAD,
        title: "set the bucket's CORS rule (this replaces its CORS configuration; the rules it \
                has are included)"
            .to_owned(),
        commands: vec![
            setup::aws_cors_command(&bucket, &endpoint, &merged),
            options.setup_command.clone(),
        ],
    }
}

/// The report for people.
pub fn report_text(report: &Report) -> String {
    let mut out = format!(
        "s3-direct doctor: bucket {} at {}{}\n",
        report.bucket,
        report.endpoint,
        report
            .origin
            .as_deref()
            .map_or_else(String::new, |o| format!(", page origin {o}"))
    );
    for c in &report.checks {
        out.push_str(&format!(
            "{:<5} {:<20} {}\n",
            c.status.label(),
            c.name,
            c.message
        ));
    }
    for fix in &report.fixes {
        out.push_str(&format!("\nto fix {}: {}:\n", fix.check, fix.title));
        for (i, cmd) in fix.commands.iter().enumerate() {
            if i > 0 {
                out.push_str("or:\n");
            }
            out.push_str(cmd);
            out.push('\n');
        }
    }
    let count = |s: Status| report.checks.iter().filter(|c| c.status == s).count();
    out.push_str(&format!(
        "\n{}: {} ok, {} warning(s), {} failed\n",
        if report.passed() { "passed" } else { "FAILED" },
        count(Status::Ok),
        count(Status::Warn),
        count(Status::Fail)
    ));
    out
}

/// `doctor --json`: `{bucket, endpoint, origin, passed, checks: [{name, status, message}],
/// fixes: [{check, title, commands}]}`; `status` is `ok`, `warn`, `fail` or `n/a`.
pub fn report_json(report: &Report) -> Value {
    json!({
        "bucket": report.bucket,
        "endpoint": report.endpoint,
        "origin": report.origin,
        "passed": report.passed(),
        "checks": report.checks.iter().map(|c| json!({
            "name": c.name, "status": c.status, "message": c.message,
        })).collect::<Vec<_>>(),
        "fixes": report.fixes.iter().map(|f| json!({
            "check": f.check, "title": f.title, "commands": f.commands,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderName, HeaderValue};

    use super::*;

    const ORIGIN: &str = "https://app.example.com";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[tokio::test]
    async fn the_clock_check_goes_over_tls_and_fails_on_an_untrusted_certificate() {
        let server = crate::test_tls::start().await;
        // This machine's root certificates do not include the test's self-signed one.
        let http = crate::http_client().build().unwrap();
        let (status, message) = clock(&http, &server.url).await;
        assert_eq!(status, Status::Fail, "{message}");
        assert!(
            message.contains("TLS handshake") && message.contains("invalid peer certificate"),
            "{message}"
        );
        assert!(!message.contains("not checked"), "{message}");
        // The same listener with its certificate trusted: the handshake completes and the
        // store's clock is read from the answer.
        let trusting = crate::http_client()
            .add_root_certificate(reqwest::Certificate::from_der(&server.cert).unwrap())
            .build()
            .unwrap();
        let (status, message) = clock(&trusting, &server.url).await;
        assert_eq!(status, Status::Ok, "{message}");
    }

    #[test]
    fn a_preflight_must_allow_the_origin_put_and_every_header_sent() {
        let good = headers(&[
            ("access-control-allow-origin", ORIGIN),
            ("access-control-allow-methods", "GET, PUT, HEAD"),
            (
                "access-control-allow-headers",
                "content-type,x-amz-checksum-crc32c",
            ),
        ]);
        assert_eq!(
            judge_preflight(ORIGIN, &["x-amz-checksum-crc32c"], 200, &good),
            Ok(())
        );
        let star = headers(&[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "PUT"),
            ("access-control-allow-headers", "*"),
        ]);
        assert_eq!(
            judge_preflight(ORIGIN, &["content-md5"], 204, &star),
            Ok(())
        );
        // Garage and radosgw answer 403 with no CORS headers to an origin no rule allows.
        let err = judge_preflight(ORIGIN, &[], 403, &HeaderMap::new()).unwrap_err();
        assert!(
            err.contains("refused the CORS preflight from https://app.example.com (status 403"),
            "{err}"
        );
        let other = headers(&[
            ("access-control-allow-origin", "https://other.example.com"),
            ("access-control-allow-methods", "PUT"),
        ]);
        assert!(judge_preflight(ORIGIN, &[], 200, &other).is_err());
        let get_only = headers(&[
            ("access-control-allow-origin", ORIGIN),
            ("access-control-allow-methods", "GET"),
        ]);
        assert!(
            judge_preflight(ORIGIN, &[], 200, &get_only)
                .unwrap_err()
                .contains("does not allow PUT")
        );
        let err = judge_preflight(ORIGIN, &["content-md5"], 200, &good).unwrap_err();
        assert!(err.contains("request header(s) content-md5"), "{err}");
    }

    #[test]
    fn a_small_file_form_must_be_stored_and_its_answer_readable() {
        let readable = |origin: &str| {
            headers(&[
                ("access-control-allow-origin", origin),
                ("access-control-expose-headers", "ETag, Location"),
                ("etag", "\"abc\""),
            ])
        };
        assert_eq!(judge_form(ORIGIN, &readable(ORIGIN)).0, Status::Ok);
        assert_eq!(judge_form(ORIGIN, &readable("*")).0, Status::Ok);
        // Ceph 16 answers a form with the ETag in the XML body only.
        let allowed = headers(&[
            ("access-control-allow-origin", ORIGIN),
            ("access-control-expose-headers", "ETag"),
        ]);
        let (s, m, cors) = judge_form(ORIGIN, &allowed);
        assert!(!cors);
        assert_eq!(s, Status::Warn);
        assert!(m.contains("--small-file-method put"), "{m}");
        let (s, m, cors) = judge_form(ORIGIN, &headers(&[]));
        assert!(cors);
        assert_eq!(s, Status::Warn);
        assert!(m.contains("allow POST"), "{m}");
    }

    #[test]
    fn a_refused_form_is_told_apart_from_one_that_lost_its_non_ascii_fields() {
        let denied = "<Error><Code>AccessDenied</Code></Error>";
        let (s, m) = judge_non_ascii_form(403, denied, Some(403));
        assert_eq!(s, Status::Warn);
        assert!(m.contains("403 (AccessDenied)"), "{m}");
        assert!(!m.contains("not ASCII"), "{m}");
        let (_, m) = judge_non_ascii_form(403, denied, None);
        assert!(m.contains("403 (AccessDenied)"), "{m}");
        // Garage 2.5.0 built without --locked: the key field is dropped, the ASCII form is taken.
        let no_key = "<Error><Code>InvalidRequest</Code><Message>Bad request: No key was \
                      provided</Message></Error>";
        let (s, m) = judge_non_ascii_form(400, no_key, Some(204));
        assert_eq!(s, Status::Warn);
        for hint in [
            "not ASCII",
            "400, InvalidRequest",
            "cargo install --locked garage --version 2.5.0",
            "--small-file-method put",
        ] {
            assert!(m.contains(hint), "{hint:?} missing from {m}");
        }
    }

    #[test]
    fn a_put_must_expose_its_etag_to_the_origin() {
        let ok = headers(&[
            ("etag", "\"abc\""),
            ("access-control-allow-origin", ORIGIN),
            (
                "access-control-expose-headers",
                "ETag, x-amz-checksum-crc32",
            ),
        ]);
        assert_eq!(judge_put(ORIGIN, 200, &ok, ""), Ok("\"abc\"".to_owned()));
        let hidden = headers(&[("etag", "\"abc\""), ("access-control-allow-origin", ORIGIN)]);
        let err = judge_put(ORIGIN, 200, &hidden, "").unwrap_err();
        assert!(
            err.contains("add ExposeHeaders: ETag to the bucket's CORS rule"),
            "{err}"
        );
        assert!(
            err.contains("Access-Control-Expose-Headers \"absent\""),
            "{err}"
        );
        let no_origin = headers(&[
            ("etag", "\"abc\""),
            ("access-control-expose-headers", "ETag"),
        ]);
        assert!(
            judge_put(ORIGIN, 200, &no_origin, "")
                .unwrap_err()
                .contains("Access-Control-Allow-Origin")
        );
        let denied = judge_put(
            ORIGIN,
            403,
            &HeaderMap::new(),
            "<Error><Code>SignatureDoesNotMatch</Code></Error>",
        )
        .unwrap_err();
        assert!(
            denied.contains("status 403 (SignatureDoesNotMatch)"),
            "{denied}"
        );
    }

    #[test]
    fn a_damaged_copy_of_a_checksummed_part_must_be_refused() {
        let c = ChecksumAlgorithm::Crc32c;
        for code in ["BadDigest", "InvalidDigest"] {
            let body = format!("<Error><Code>{code}</Code></Error>");
            let (status, message) = judge_checksum_check(c, 400, &body, "stored");
            assert_eq!(status, Status::Ok, "{message}");
            assert!(message.ends_with(&format!("refused ({code})")), "{message}");
        }
        let (status, message) = judge_checksum_check(c, 200, "", "stored");
        assert_eq!(status, Status::Warn);
        assert!(
            message.contains("does not verify x-amz-checksum-crc32c — use --checksum md5"),
            "{message}"
        );
        let (status, message) =
            judge_checksum_check(c, 403, "<Error><Code>AccessDenied</Code></Error>", "stored");
        assert_eq!(status, Status::Warn);
        assert!(message.contains("status 403 (AccessDenied)"), "{message}");
    }

    #[test]
    fn clock_skew_thresholds() {
        assert_eq!(judge_clock(0.0).0, Status::Ok);
        assert_eq!(judge_clock(-29.0).0, Status::Ok);
        let (s, m) = judge_clock(-45.0);
        assert_eq!(s, Status::Warn);
        assert!(m.contains("45 s behind"), "{m}");
        let (s, m) = judge_clock(16.0 * 60.0);
        assert_eq!(s, Status::Fail);
        assert!(m.contains("960 s ahead of") && m.contains("NTP"), "{m}");
    }

    #[test]
    fn credentials_must_outlive_the_urls() {
        let url = Duration::from_secs(900);
        assert_eq!(judge_credential_lifetime(None, url).0, Status::Ok);
        assert_eq!(
            judge_credential_lifetime(Some(Duration::from_secs(3600)), url).0,
            Status::Ok
        );
        let (s, m) = judge_credential_lifetime(Some(Duration::from_secs(600)), url);
        assert_eq!(s, Status::Warn);
        assert!(
            m.contains("expire in 10m, before the --url-lifetime of 15m"),
            "{m}"
        );
        assert_eq!(
            judge_credential_lifetime(Some(Duration::ZERO), url).0,
            Status::Fail
        );
    }

    #[test]
    fn the_lifecycle_rule_is_looked_for_and_its_absence_explained() {
        let w = Wanted {
            origins: vec![ORIGIN.into()],
            abort_after_days: 2,
            key_prefix: "uploads/".into(),
        };
        let (s, m) = judge_lifecycle(&Ok(vec![w.lifecycle_rule()]), "uploads/");
        assert_eq!(s, Status::Ok);
        assert!(m.contains("after 2 day(s)"), "{m}");
        let (s, m) = judge_lifecycle(&Ok(vec![]), "uploads/");
        assert_eq!(s, Status::Warn);
        assert!(
            m.contains("no enabled AbortIncompleteMultipartUpload rule"),
            "{m}"
        );
        let (s, m) = judge_lifecycle(
            &Err(OpsError::Unsupported {
                operation: "GetBucketLifecycleConfiguration",
            }),
            "uploads/",
        );
        assert_eq!(s, Status::Warn);
        assert!(m.contains("--sweep-older-than"), "{m}");
    }

    #[test]
    fn the_report_prints_verdicts_fixes_and_a_summary() {
        let report = Report {
            bucket: "media".into(),
            endpoint: "http://s3:9000".into(),
            origin: Some(ORIGIN.into()),
            checks: vec![
                Check {
                    name: CREDENTIALS,
                    status: Status::Ok,
                    message: "fine".into(),
                },
                Check {
                    name: BROWSER_UPLOAD,
                    status: Status::Fail,
                    message: "hidden ETag".into(),
                },
                Check {
                    name: CLOCK,
                    status: Status::NotApplicable,
                    message: "same clock".into(),
                },
            ],
            fixes: vec![Fix {
                check: BROWSER_UPLOAD,
                title: "set CORS".into(),
                commands: vec![
                    "aws s3api put-bucket-cors …".into(),
                    "s3-direct bucket setup …".into(),
                ],
            }],
        };
        assert!(!report.passed());
        let text = report_text(&report);
        assert!(
            text.contains("\nFAIL  browser upload       hidden ETag\n"),
            "{text}"
        );
        assert!(
            text.contains("\nn/a   clock                same clock\n"),
            "{text}"
        );
        assert!(text.contains("to fix browser upload: set CORS:\naws s3api put-bucket-cors …\nor:\ns3-direct bucket setup …\n"), "{text}");
        assert!(
            text.ends_with("FAILED: 1 ok, 0 warning(s), 1 failed\n"),
            "{text}"
        );
        let v = report_json(&report);
        assert_eq!(v["passed"], false);
        assert_eq!(v["checks"][1]["status"], "fail");
        assert_eq!(v["checks"][2]["status"], "n/a");
    }
}
