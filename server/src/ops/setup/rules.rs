//! The two rules `bucket setup` manages, as `aws s3api` JSON: the CORS rule browsers need and the
//! lifecycle rule that aborts incomplete uploads ([`Wanted`]); merging ours into a bucket's
//! rules by id ([`merge`]), comparing rules as stores hand them back (case and order folded), and
//! finding the rule that covers the key prefix.

use serde_json::{Value, json};

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

/// A rule's `ID`, if it has one.
pub(super) fn rule_id(rule: &Value) -> Option<&str> {
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
