//! What `bucket setup` did (or, dry, would do), and how it prints: a table for people with the
//! `aws s3api` commands that apply the same rules, JSON for scripts.

use serde_json::{Value, json};

use super::rules::{ALLOWED_METHODS, CORS_RULE_ID, Change, LIFECYCLE_RULE_ID, Wanted};

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
