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
//! - **checksums** (`checksums.rs`): for md5, crc32, crc32c and sha256, whether the store refuses
//!   a part whose checksum is wrong, and which one `--checksum auto` asks for. The browser upload
//!   check then uses the checksum browsers will be asked for;
//! - **lifecycle**: an enabled `AbortIncompleteMultipartUpload` rule covering the key prefix;
//! - **credential lifetime**: how long the signing credentials live against `--url-lifetime`.
//!
//! For each failure or warning it prints the configuration to paste. This module runs the checks
//! in order and builds the fixes; `report.rs` holds the verdicts and prints them; the verdicts
//! are pure functions of what the store answered (`judge.rs`, `browser.rs`, `checksums.rs`),
//! unit-tested there; the probes (`probe.rs`, `upload.rs`, `form.rs`) are tested against Garage
//! and Ceph radosgw (`server/tests/ops/bucket.rs`).

mod browser;
pub mod checksums;
mod form;
mod judge;
mod probe;
pub mod report;
mod upload;

use std::time::Duration;

use serde_json::json;

use self::probe::Probe;
use self::report::{
    BROWSER_UPLOAD, CLOCK, CREDENTIAL_LIFETIME, CREDENTIALS, LIFECYCLE, SMALL_FILE_FORM,
};
pub use self::report::{Check, Fix, Report, Status, report_json, report_text};
use super::error::OpsError;
use super::setup::{self, BucketRules, Wanted};
use crate::store::{S3Store, Store};

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

    let credentials = probe::head_bucket(store).await;
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
        report.check(CLOCK, probe::clock(&http, &endpoint).await);
    }

    let probe = Probe {
        http: &http,
        store,
        origin: options.origin.as_deref(),
        key_prefix: &options.wanted.key_prefix,
        url_lifetime: options.url_lifetime,
    };
    if reachable {
        upload_checks(&mut report, &probe, rules, options).await;
    } else {
        let not_tried = "not tried: the bucket is not reachable with these credentials";
        report.check(checksums::CHECKSUMS, (Status::Warn, not_tried.to_owned()));
        report.check(BROWSER_UPLOAD, (Status::Fail, not_tried.to_owned()));
        report.check(SMALL_FILE_FORM, (Status::Warn, not_tried.to_owned()));
    }
    lifecycle_check(&mut report, rules, options, reachable).await;

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
            judge::judge_credential_lifetime(remaining, options.url_lifetime),
        );
    }
    Ok(report)
}

/// The checks that write to the bucket: checksums, browser upload and small-file form, with the
/// CORS fix when a page could not read an answer.
async fn upload_checks(
    report: &mut Report,
    probe: &Probe<'_>,
    rules: Option<&dyn BucketRules>,
    options: &Options,
) {
    let found = checksums::probe_all(probe.store).await;
    let auto = checksums::judge_auto(&found, probe.store.verified_checksum());
    let asked = checksums::asked(options.checksum, &auto);
    report.check(
        checksums::CHECKSUMS,
        checksums::judge_checksums(&found, options.checksum, &auto),
    );
    let verdict = upload::browser_upload(probe, asked).await;
    if verdict.0 == Status::Fail && !options.embedded {
        report.fixes.push(cors_fix(rules, options).await);
    }
    report.check(BROWSER_UPLOAD, verdict);
    let (form, cors) = form::small_file_form(probe).await;
    if cors && !options.embedded && !report.fixes.iter().any(|f| f.check == BROWSER_UPLOAD) {
        let mut fix = cors_fix(rules, options).await;
        fix.check = SMALL_FILE_FORM;
        report.fixes.push(fix);
    }
    report.check(SMALL_FILE_FORM, form);
}

/// The **lifecycle** check, with the merged rules to paste when the rule is missing.
async fn lifecycle_check(
    report: &mut Report,
    rules: Option<&dyn BucketRules>,
    options: &Options,
    reachable: bool,
) {
    let rules = match (rules, options.embedded) {
        (Some(rules), false) if reachable => rules,
        (_, true) => {
            return report.check(
                LIFECYCLE,
                (
                    Status::NotApplicable,
                    "the embedded store has no lifecycle rules; `s3-direct serve \
                     --sweep-older-than 24h` removes abandoned uploads from its data dir"
                        .to_owned(),
                ),
            );
        }
        _ => {
            return report.check(
                LIFECYCLE,
                (
                    Status::Warn,
                    "not checked: the bucket is not reachable".to_owned(),
                ),
            );
        }
    };
    let found = rules.lifecycle_rules().await;
    let verdict = judge::judge_lifecycle(&found, &options.wanted.key_prefix);
    if verdict.0 != Status::Ok {
        let merged = setup::merge(
            &found.unwrap_or_default(),
            &options.wanted.lifecycle_rule(),
            setup::same_lifecycle_rule,
            setup::Place::InPlace,
        )
        .0;
        report.fixes.push(Fix {
            check: LIFECYCLE,
            title: "add the lifecycle rule (the bucket's other rules are kept)".to_owned(),
            commands: vec![
                setup::aws_lifecycle_command(&report.bucket, &report.endpoint, &merged),
                options.setup_command.clone(),
            ],
        });
    }
    report.check(LIFECYCLE, verdict);
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
