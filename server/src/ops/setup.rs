//! `s3-direct bucket setup`: the bucket configuration browser uploads need.
//!
//! Two rules, each merged into what the bucket already has by rule id (other rules are kept
//! as they are, so the command is safe on a shared bucket and idempotent):
//!
//! - a CORS rule letting the page origins `PUT` / `GET` / `HEAD` with the headers the client
//!   sends, and exposing `ETag` (without it a browser cannot read a part's ETag and no upload
//!   can complete);
//! - a lifecycle rule `AbortIncompleteMultipartUpload` after N days for the server's key prefix,
//!   so uploads nobody completes stop being billed.
//!
//! Rules travel as JSON in the shape `aws s3api put-bucket-cors` / `put-bucket-lifecycle-
//! configuration` take, over the [`BucketRules`] trait ([`S3Store`](crate::S3Store) implements
//! it; the unit tests use a fake), so what `--dry-run` prints is exactly what is applied.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::uploads::OpsError;

/// Id of the CORS rule s3-direct manages.
pub const CORS_RULE_ID: &str = "s3-direct-browser-uploads";
/// Id of the lifecycle rule s3-direct manages.
pub const LIFECYCLE_RULE_ID: &str = "s3-direct-abort-incomplete-uploads";
/// Methods the browser uses on the store: part and small-file PUTs, small-file POST forms
/// (Companion clients), reading objects back.
pub const ALLOWED_METHODS: [&str; 4] = ["PUT", "POST", "GET", "HEAD"];
/// Request headers the client may send with a PUT (the signing server returns them).
pub const ALLOWED_HEADERS: [&str; 5] = [
    "content-type",
    "content-md5",
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-sha256",
];
/// Response headers a page must be able to read: the part's ETag (the client needs it to
/// complete), a POST form's `Location` (Uppy reads it) and the checksums a store echoes.
pub const EXPOSE_HEADERS: [&str; 5] = [
    "ETag",
    "Location",
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-sha256",
];
/// How long browsers may cache a preflight answer.
pub const MAX_AGE_SECONDS: u64 = 3600;

/// Reading and replacing a bucket's CORS and lifecycle rules.
#[async_trait]
pub trait BucketRules: Send + Sync {
    /// The bucket.
    fn bucket(&self) -> &str;
    /// The endpoint the calls go to (printed in the commands to paste).
    fn endpoint(&self) -> &str;
    /// The bucket's CORS rules (`CORSRules` entries); empty when it has none.
    async fn cors_rules(&self) -> Result<Vec<Value>, OpsError>;
    /// Replaces the bucket's CORS configuration with `rules`.
    async fn put_cors_rules(&self, rules: &[Value]) -> Result<(), OpsError>;
    /// The bucket's lifecycle rules (`Rules` entries); empty when it has none.
    async fn lifecycle_rules(&self) -> Result<Vec<Value>, OpsError>;
    /// Replaces the bucket's lifecycle configuration with `rules`.
    async fn put_lifecycle_rules(&self, rules: &[Value]) -> Result<(), OpsError>;
}

/// What the bucket should allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Origins of the pages that upload (`--cors-origin`).
    pub origins: Vec<String>,
    /// Days after which incomplete uploads are aborted by the store.
    pub abort_after_days: u32,
    /// Key prefix the lifecycle rule applies to (`--key-prefix`).
    pub key_prefix: String,
}

impl Wanted {
    /// The CORS rule browsers need.
    pub fn cors_rule(&self) -> Value {
        json!({
            "ID": CORS_RULE_ID,
            "AllowedOrigins": self.origins,
            "AllowedMethods": ALLOWED_METHODS,
            "AllowedHeaders": ALLOWED_HEADERS,
            "ExposeHeaders": EXPOSE_HEADERS,
            "MaxAgeSeconds": MAX_AGE_SECONDS,
        })
    }

    /// The lifecycle rule that aborts incomplete uploads under the key prefix.
    pub fn lifecycle_rule(&self) -> Value {
        json!({
            "ID": LIFECYCLE_RULE_ID,
            "Status": "Enabled",
            "Filter": {"Prefix": self.key_prefix},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": self.abort_after_days},
        })
    }
}

/// What a merge does to a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Our rule was missing and is appended.
    Added,
    /// A rule with our id differed and is replaced in place.
    Replaced,
    /// Our rule is there as wanted: nothing to do.
    Unchanged,
}

fn rule_id(rule: &Value) -> Option<&str> {
    rule.get("ID").and_then(Value::as_str)
}

/// Where a merged rule goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// First: stores apply the first CORS rule that matches a request, so a rule of another
    /// tool for the same origin (without `ExposeHeaders: ETag`, say) must not shadow ours.
    First,
    /// Where a rule with the same id was, else last (lifecycle rules all apply).
    InPlace,
}

/// `rules` with `ours` in them: a rule with the same id is replaced (unless it is already the
/// same by `same`, and first when `place` says so), otherwise `ours` is added. Every other rule
/// stays, in its order.
pub fn merge(
    rules: &[Value],
    ours: &Value,
    same: fn(&Value, &Value) -> bool,
    place: Place,
) -> (Vec<Value>, Change) {
    let id = rule_id(ours);
    let mut out = rules.to_vec();
    let found = out.iter().position(|r| rule_id(r) == id);
    if let Some(i) = found
        && same(&out[i], ours)
        && (place == Place::InPlace || i == 0)
    {
        return (out, Change::Unchanged);
    }
    let change = if found.is_some() {
        Change::Replaced
    } else {
        Change::Added
    };
    match (found, place) {
        (Some(i), Place::InPlace) => out[i] = ours.clone(),
        (Some(i), Place::First) => {
            out.remove(i);
            out.insert(0, ours.clone());
        }
        (None, Place::First) => out.insert(0, ours.clone()),
        (None, Place::InPlace) => out.push(ours.clone()),
    }
    (out, change)
}

/// A string list field as a set, folded with `fold` (stores may change case or order).
fn set(rule: &Value, field: &str, fold: fn(&str) -> String) -> std::collections::BTreeSet<String> {
    rule.get(field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(fold).collect())
        .unwrap_or_default()
}

/// Two CORS rules allow the same (origins exactly; methods and headers case-insensitively, in
/// any order).
pub fn same_cors_rule(a: &Value, b: &Value) -> bool {
    let lower = |s: &str| s.to_ascii_lowercase();
    let exact = |s: &str| s.to_owned();
    set(a, "AllowedOrigins", exact) == set(b, "AllowedOrigins", exact)
        && set(a, "AllowedMethods", lower) == set(b, "AllowedMethods", lower)
        && set(a, "AllowedHeaders", lower) == set(b, "AllowedHeaders", lower)
        && set(a, "ExposeHeaders", lower) == set(b, "ExposeHeaders", lower)
        && a.get("MaxAgeSeconds").and_then(Value::as_u64)
            == b.get("MaxAgeSeconds").and_then(Value::as_u64)
}

/// The key prefix a lifecycle rule applies to: `Filter.Prefix`, the legacy top-level `Prefix`,
/// or `""` (the whole bucket) when it has neither. `None` when the filter narrows further
/// (tags, sizes).
pub fn lifecycle_prefix(rule: &Value) -> Option<&str> {
    match rule.get("Filter") {
        Some(Value::Object(filter)) => {
            let narrower = filter.keys().any(|k| k != "Prefix");
            if narrower {
                return None;
            }
            Some(filter.get("Prefix").and_then(Value::as_str).unwrap_or(""))
        }
        _ => Some(rule.get("Prefix").and_then(Value::as_str).unwrap_or("")),
    }
}

/// Days after which `rule` aborts incomplete uploads, if it is enabled and does.
pub fn abort_days(rule: &Value) -> Option<u64> {
    if rule.get("Status").and_then(Value::as_str) != Some("Enabled") {
        return None;
    }
    rule.get("AbortIncompleteMultipartUpload")?
        .get("DaysAfterInitiation")?
        .as_u64()
}

/// Two lifecycle rules do the same: same status, prefix and abort days, and no other action.
pub fn same_lifecycle_rule(a: &Value, b: &Value) -> bool {
    let actions = |r: &Value| {
        r.as_object().map_or(0, |o| {
            o.keys()
                .filter(|k| {
                    matches!(
                        k.as_str(),
                        "Expiration"
                            | "Transitions"
                            | "NoncurrentVersionTransitions"
                            | "NoncurrentVersionExpiration"
                    )
                })
                .count()
        })
    };
    a.get("Status") == b.get("Status")
        && lifecycle_prefix(a) == lifecycle_prefix(b)
        && a.get("AbortIncompleteMultipartUpload") == b.get("AbortIncompleteMultipartUpload")
        && actions(a) == actions(b)
}

/// The enabled lifecycle rule that aborts incomplete uploads under `key_prefix`, if any: its id
/// and days.
pub fn covering_abort_rule<'a>(rules: &'a [Value], key_prefix: &str) -> Option<(&'a str, u64)> {
    rules.iter().find_map(|r| {
        let days = abort_days(r)?;
        let prefix = lifecycle_prefix(r)?;
        key_prefix
            .starts_with(prefix)
            .then(|| (rule_id(r).unwrap_or("(no id)"), days))
    })
}

/// One of the two configurations.
#[derive(Debug, Clone, PartialEq)]
pub enum Section {
    /// The merged rules and what merging changed; `applied` when they were written.
    Planned {
        rules: Vec<Value>,
        change: Change,
        applied: bool,
        /// Rules the bucket had that are not ours (kept).
        others: usize,
    },
    /// The store answered `NotImplemented` to `operation`.
    Unsupported { operation: &'static str },
}

impl Section {
    /// The configuration this section applies (or would), as its `aws s3api` JSON.
    pub fn rules(&self) -> Option<&[Value]> {
        match self {
            Section::Planned { rules, .. } => Some(rules),
            Section::Unsupported { .. } => None,
        }
    }
}

/// What `bucket setup` did (or, dry, would do).
#[derive(Debug, Clone, PartialEq)]
pub struct SetupReport {
    pub bucket: String,
    pub endpoint: String,
    pub dry_run: bool,
    pub wanted: Wanted,
    pub cors: Section,
    pub lifecycle: Section,
}

impl SetupReport {
    /// True when both rules are in place (or, dry, would be).
    pub fn complete(&self) -> bool {
        matches!(self.cors, Section::Planned { .. })
            && matches!(self.lifecycle, Section::Planned { .. })
    }
}

/// Reads, merges and (unless `dry_run`) writes one configuration.
async fn plan_section<'a>(
    ours: Value,
    same: fn(&Value, &Value) -> bool,
    place: Place,
    read: impl std::future::Future<Output = Result<Vec<Value>, OpsError>> + 'a,
    write: impl FnOnce(Vec<Value>) -> futures::future::BoxFuture<'a, Result<(), OpsError>>,
    dry_run: bool,
) -> Result<Section, OpsError> {
    let existing = match read.await {
        Ok(rules) => rules,
        Err(OpsError::Unsupported { operation }) => return Ok(Section::Unsupported { operation }),
        Err(e) => return Err(e),
    };
    let others = existing
        .iter()
        .filter(|r| rule_id(r) != rule_id(&ours))
        .count();
    let (rules, change) = merge(&existing, &ours, same, place);
    let mut applied = false;
    if change != Change::Unchanged && !dry_run {
        match write(rules.clone()).await {
            Ok(()) => applied = true,
            Err(OpsError::Unsupported { operation }) => {
                return Ok(Section::Unsupported { operation });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Section::Planned {
        rules,
        change,
        applied,
        others,
    })
}

/// Merges the wanted rules into the bucket's and, unless `dry_run`, applies what changed.
pub async fn setup(
    target: &dyn BucketRules,
    wanted: &Wanted,
    dry_run: bool,
) -> Result<SetupReport, OpsError> {
    if wanted.origins.is_empty() {
        return Err(OpsError::Refused(
            "bucket setup needs the origins of the pages that upload, to allow them in the \
             bucket's CORS rule: give --cors-origin https://app.example.com (repeatable)"
                .to_owned(),
        ));
    }
    if wanted.abort_after_days == 0 {
        return Err(OpsError::Refused(
            "--abort-incomplete-after must be at least 1 day (S3's smallest)".to_owned(),
        ));
    }
    let cors = plan_section(
        wanted.cors_rule(),
        same_cors_rule,
        Place::First,
        target.cors_rules(),
        |rules| Box::pin(async move { target.put_cors_rules(&rules).await }),
        dry_run,
    )
    .await?;
    let lifecycle = plan_section(
        wanted.lifecycle_rule(),
        same_lifecycle_rule,
        Place::InPlace,
        target.lifecycle_rules(),
        |rules| Box::pin(async move { target.put_lifecycle_rules(&rules).await }),
        dry_run,
    )
    .await?;
    Ok(SetupReport {
        bucket: target.bucket().to_owned(),
        endpoint: target.endpoint().to_owned(),
        dry_run,
        wanted: wanted.clone(),
        cors,
        lifecycle,
    })
}

/// Quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `aws s3api put-bucket-cors` command applying `rules`.
pub fn aws_cors_command(bucket: &str, endpoint: &str, rules: &[Value]) -> String {
    let config = serde_json::to_string_pretty(&json!({ "CORSRules": rules })).unwrap_or_default();
    format!(
        "aws s3api put-bucket-cors --endpoint-url {endpoint} --bucket {bucket} \
         --cors-configuration {}",
        shell_quote(&config)
    )
}

/// The `aws s3api put-bucket-lifecycle-configuration` command applying `rules`.
pub fn aws_lifecycle_command(bucket: &str, endpoint: &str, rules: &[Value]) -> String {
    let config = serde_json::to_string_pretty(&json!({ "Rules": rules })).unwrap_or_default();
    format!(
        "aws s3api put-bucket-lifecycle-configuration --endpoint-url {endpoint} --bucket \
         {bucket} --lifecycle-configuration {}",
        shell_quote(&config)
    )
}

/// The `s3-direct bucket setup` command that applies `wanted` to the bucket.
pub fn setup_command(bucket: &str, endpoint: &str, wanted: &Wanted) -> String {
    let mut cmd = format!("s3-direct bucket setup --endpoint {endpoint} --bucket {bucket}");
    if wanted.origins.is_empty() {
        cmd.push_str(" --cors-origin https://app.example.com");
    }
    for origin in &wanted.origins {
        cmd.push_str(&format!(" --cors-origin {origin}"));
    }
    if wanted.key_prefix != "uploads/" {
        cmd.push_str(&format!(
            " --key-prefix {}",
            shell_quote(&wanted.key_prefix)
        ));
    }
    if wanted.abort_after_days != 1 {
        cmd.push_str(&format!(
            " --abort-incomplete-after {}d",
            wanted.abort_after_days
        ));
    }
    cmd
}

fn days(n: u32) -> String {
    if n == 1 {
        "1 day".to_owned()
    } else {
        format!("{n} days")
    }
}

fn section_text(name: &str, section: &Section, what: &str, dry_run: bool) -> String {
    match section {
        Section::Unsupported { operation } => format!(
            "{name}: not set: the store does not implement {operation}; configure it with the \
             store's own tools (the rule to set is printed below with --print)\n"
        ),
        Section::Planned {
            change,
            applied,
            others,
            ..
        } => {
            let kept = match others {
                0 => String::new(),
                1 => ", kept 1 other rule".to_owned(),
                n => format!(", kept {n} other rules"),
            };
            let verb = match (change, dry_run || !applied) {
                (Change::Unchanged, _) => "already in place:",
                (Change::Added, false) => "added",
                (Change::Replaced, false) => "replaced",
                (Change::Added, true) => "would add",
                (Change::Replaced, true) => "would replace",
            };
            format!("{name}: {verb} {what}{kept}\n")
        }
    }
}

/// What `bucket setup` prints for people; with `print`, the exact configurations too.
pub fn report_text(report: &SetupReport, print: bool) -> String {
    let w = &report.wanted;
    let mut out = format!("bucket {} at {}\n", report.bucket, report.endpoint);
    out.push_str(&section_text(
        "CORS",
        &report.cors,
        &format!(
            "rule {CORS_RULE_ID:?}: {} may {} and read ETag",
            w.origins.join(", "),
            ALLOWED_METHODS.join("/")
        ),
        report.dry_run,
    ));
    out.push_str(&section_text(
        "lifecycle",
        &report.lifecycle,
        &format!(
            "rule {LIFECYCLE_RULE_ID:?}: incomplete uploads under {:?} are aborted after {}",
            w.key_prefix,
            days(w.abort_after_days)
        ),
        report.dry_run,
    ));
    if print || report.dry_run {
        let cors = report
            .cors
            .rules()
            .map_or_else(|| vec![w.cors_rule()], <[Value]>::to_vec);
        let lifecycle = report
            .lifecycle
            .rules()
            .map_or_else(|| vec![w.lifecycle_rule()], <[Value]>::to_vec);
        out.push_str(&format!(
            "\n{}\n\n{}\n",
            aws_cors_command(&report.bucket, &report.endpoint, &cors),
            aws_lifecycle_command(&report.bucket, &report.endpoint, &lifecycle)
        ));
    }
    if report.dry_run {
        out.push_str("(dry run: nothing was changed)\n");
    }
    out
}

fn section_json(section: &Section, ours: Value) -> Value {
    match section {
        Section::Unsupported { operation } => json!({
            "status": "unsupported",
            "operation": operation,
            "applied": false,
            "rule": ours,
        }),
        Section::Planned {
            rules,
            change,
            applied,
            others,
        } => json!({
            "status": change,
            "applied": applied,
            "other_rules": others,
            "rules": rules,
        }),
    }
}

/// `bucket setup --json`: `{bucket, endpoint, dry_run, cors: {status, applied, other_rules,
/// rules}, lifecycle: {…}}`; `status` is `added`, `replaced`, `unchanged` or `unsupported`.
pub fn report_json(report: &SetupReport) -> Value {
    json!({
        "bucket": report.bucket,
        "endpoint": report.endpoint,
        "dry_run": report.dry_run,
        "cors": section_json(&report.cors, report.wanted.cors_rule()),
        "lifecycle": section_json(&report.lifecycle, report.wanted.lifecycle_rule()),
    })
}

#[cfg(test)]
pub(crate) mod fake {
    //! An in-memory bucket with CORS and lifecycle rules, counting writes.

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Debug, Default)]
    pub struct FakeBucket {
        pub cors: Mutex<Vec<Value>>,
        pub lifecycle: Mutex<Vec<Value>>,
        pub writes: AtomicUsize,
        /// Answer lifecycle calls with NotImplemented.
        pub no_lifecycle: bool,
    }

    #[async_trait]
    impl BucketRules for FakeBucket {
        fn bucket(&self) -> &str {
            "media"
        }
        fn endpoint(&self) -> &str {
            "http://127.0.0.1:3900"
        }
        async fn cors_rules(&self) -> Result<Vec<Value>, OpsError> {
            Ok(self.cors.lock().unwrap().clone())
        }
        async fn put_cors_rules(&self, rules: &[Value]) -> Result<(), OpsError> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            *self.cors.lock().unwrap() = rules.to_vec();
            Ok(())
        }
        async fn lifecycle_rules(&self) -> Result<Vec<Value>, OpsError> {
            if self.no_lifecycle {
                return Err(OpsError::Unsupported {
                    operation: "GetBucketLifecycleConfiguration",
                });
            }
            Ok(self.lifecycle.lock().unwrap().clone())
        }
        async fn put_lifecycle_rules(&self, rules: &[Value]) -> Result<(), OpsError> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            *self.lifecycle.lock().unwrap() = rules.to_vec();
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::fake::FakeBucket;
    use super::*;

    fn wanted() -> Wanted {
        Wanted {
            origins: vec!["https://app.example.com".into()],
            abort_after_days: 1,
            key_prefix: "uploads/".into(),
        }
    }

    fn foreign_cors() -> Value {
        json!({"ID": "website", "AllowedOrigins": ["*"], "AllowedMethods": ["GET"]})
    }

    fn foreign_lifecycle() -> Value {
        json!({"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"},
               "Expiration": {"Days": 30}})
    }

    #[tokio::test]
    async fn setup_adds_both_rules_keeps_foreign_ones_and_is_idempotent() {
        let bucket = FakeBucket::default();
        bucket.cors.lock().unwrap().push(foreign_cors());
        bucket.lifecycle.lock().unwrap().push(foreign_lifecycle());
        let first = setup(&bucket, &wanted(), false).await.unwrap();
        assert!(first.complete());
        assert!(matches!(
            first.cors,
            Section::Planned {
                change: Change::Added,
                applied: true,
                others: 1,
                ..
            }
        ));
        assert_eq!(bucket.writes.load(Ordering::SeqCst), 2);
        // Ours first (the first matching CORS rule applies); lifecycle rules keep their order.
        let cors = bucket.cors.lock().unwrap().clone();
        assert_eq!(cors, vec![wanted().cors_rule(), foreign_cors()]);
        let lifecycle = bucket.lifecycle.lock().unwrap().clone();
        assert_eq!(
            lifecycle,
            vec![foreign_lifecycle(), wanted().lifecycle_rule()]
        );

        // Twice: nothing to write.
        let second = setup(&bucket, &wanted(), false).await.unwrap();
        assert!(matches!(
            second.cors,
            Section::Planned {
                change: Change::Unchanged,
                applied: false,
                ..
            }
        ));
        assert!(matches!(
            second.lifecycle,
            Section::Planned {
                change: Change::Unchanged,
                ..
            }
        ));
        assert_eq!(bucket.writes.load(Ordering::SeqCst), 2);
        assert!(report_text(&second, false).contains("CORS: already in place:"));
    }

    #[tokio::test]
    async fn a_changed_rule_is_replaced_in_place_and_a_dry_run_writes_nothing() {
        let bucket = FakeBucket::default();
        let mut stale = wanted().cors_rule();
        stale["ExposeHeaders"] = json!([]);
        *bucket.cors.lock().unwrap() = vec![stale, foreign_cors()];
        let dry = setup(&bucket, &wanted(), true).await.unwrap();
        assert!(matches!(
            dry.cors,
            Section::Planned {
                change: Change::Replaced,
                applied: false,
                ..
            }
        ));
        assert_eq!(bucket.writes.load(Ordering::SeqCst), 0);
        let text = report_text(&dry, false);
        assert!(text.contains("CORS: would replace rule"), "{text}");
        assert!(text.contains("aws s3api put-bucket-cors --endpoint-url http://127.0.0.1:3900 --bucket media --cors-configuration '{"), "{text}");
        assert!(text.ends_with("(dry run: nothing was changed)\n"), "{text}");
        // The printed JSON is exactly what a real run applies.
        let printed = text.split("--cors-configuration '").nth(1).unwrap();
        let printed: Value = serde_json::from_str(printed.split("'\n").next().unwrap()).unwrap();
        setup(&bucket, &wanted(), false).await.unwrap();
        assert_eq!(printed["CORSRules"], json!(*bucket.cors.lock().unwrap()));
        assert_eq!(
            *bucket.cors.lock().unwrap(),
            vec![wanted().cors_rule(), foreign_cors()]
        );
    }

    #[test]
    fn our_cors_rule_moves_ahead_of_a_rule_that_would_shadow_it() {
        let shadowing = json!({"ID": "old-uploads", "AllowedOrigins": ["https://app.example.com"],
            "AllowedMethods": ["PUT"]});
        let ours = wanted().cors_rule();
        let (rules, change) = merge(
            &[shadowing.clone(), ours.clone()],
            &ours,
            same_cors_rule,
            Place::First,
        );
        assert_eq!(change, Change::Replaced);
        assert_eq!(rules, vec![ours.clone(), shadowing.clone()]);
        let (again, change) = merge(&rules, &ours, same_cors_rule, Place::First);
        assert_eq!((again, change), (rules, Change::Unchanged));
        // Lifecycle rules are replaced where they are.
        let a = json!({"ID": "a", "Status": "Enabled"});
        let (rules, change) = merge(
            &[wanted().lifecycle_rule(), a.clone()],
            &wanted().lifecycle_rule(),
            same_lifecycle_rule,
            Place::InPlace,
        );
        assert_eq!(change, Change::Unchanged);
        assert_eq!(rules[1], a);
    }

    #[test]
    fn stores_that_normalise_rules_still_match() {
        let ours = wanted().cors_rule();
        let mut normalised = ours.clone();
        normalised["AllowedMethods"] = json!(["HEAD", "GET", "post", "PUT"]);
        normalised["ExposeHeaders"] = json!([
            "location",
            "etag",
            "x-amz-checksum-sha256",
            "x-amz-checksum-crc32c",
            "x-amz-checksum-crc32"
        ]);
        assert!(same_cors_rule(&ours, &normalised));
        let mut other_origin = ours.clone();
        other_origin["AllowedOrigins"] = json!(["https://APP.example.com"]);
        assert!(!same_cors_rule(&ours, &other_origin));

        let rule = wanted().lifecycle_rule();
        let mut legacy = json!({"ID": LIFECYCLE_RULE_ID, "Status": "Enabled", "Prefix": "uploads/",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}});
        assert!(same_lifecycle_rule(&rule, &legacy));
        legacy["Expiration"] = json!({"Days": 3});
        assert!(!same_lifecycle_rule(&rule, &legacy));
    }

    #[test]
    fn the_covering_abort_rule_must_be_enabled_and_include_the_prefix() {
        let w = wanted();
        assert_eq!(
            covering_abort_rule(&[w.lifecycle_rule()], "uploads/"),
            Some((LIFECYCLE_RULE_ID, 1))
        );
        let whole_bucket = json!({"ID": "all", "Status": "Enabled", "Filter": {},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}});
        assert_eq!(
            covering_abort_rule(&[whole_bucket], "uploads/"),
            Some(("all", 7))
        );
        let mut disabled = w.lifecycle_rule();
        disabled["Status"] = json!("Disabled");
        let elsewhere = json!({"ID": "x", "Status": "Enabled", "Filter": {"Prefix": "other/"},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}});
        let tagged = json!({"ID": "t", "Status": "Enabled",
            "Filter": {"Tag": {"Key": "k", "Value": "v"}},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}});
        assert_eq!(
            covering_abort_rule(
                &[disabled, elsewhere, tagged, foreign_lifecycle()],
                "uploads/"
            ),
            None
        );
    }

    #[tokio::test]
    async fn an_unsupported_configuration_is_reported_not_hidden() {
        let bucket = FakeBucket {
            no_lifecycle: true,
            ..FakeBucket::default()
        };
        let report = setup(&bucket, &wanted(), false).await.unwrap();
        assert!(!report.complete());
        assert_eq!(
            report.lifecycle,
            Section::Unsupported {
                operation: "GetBucketLifecycleConfiguration"
            }
        );
        let text = report_text(&report, true);
        assert!(
            text.contains(
                "lifecycle: not set: the store does not implement GetBucketLifecycleConfiguration"
            ),
            "{text}"
        );
        // The rule to set by other means is still printed.
        assert!(text.contains("\"DaysAfterInitiation\": 1"), "{text}");
        let v = report_json(&report);
        assert_eq!(v["lifecycle"]["status"], "unsupported");
        assert_eq!(v["cors"]["status"], "added");
    }

    #[tokio::test]
    async fn setup_refuses_to_guess_origins() {
        let bucket = FakeBucket::default();
        let mut w = wanted();
        w.origins.clear();
        let err = setup(&bucket, &w, false).await.unwrap_err();
        assert!(err.to_string().contains("--cors-origin"), "{err}");
        assert_eq!(bucket.writes.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn commands_to_paste_are_quoted_for_the_shell() {
        let w = Wanted {
            key_prefix: "it's/".into(),
            abort_after_days: 3,
            ..wanted()
        };
        let cmd = setup_command("media", "http://s3:9000", &w);
        assert_eq!(
            cmd,
            "s3-direct bucket setup --endpoint http://s3:9000 --bucket media --cors-origin \
             https://app.example.com --key-prefix 'it'\\''s/' --abort-incomplete-after 3d"
        );
    }
}
