//! doctor's report: each check's verdict (`ok`, `warn`, `FAIL`, `n/a`), the fixes to paste, and
//! how the report prints, as a table for people and as JSON for scripts (`--json`, whose shape is
//! part of the interface).

use serde_json::{Value, json};

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

    pub(super) fn check(&mut self, name: &'static str, (status, message): (Status, String)) {
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
    use super::*;

    const ORIGIN: &str = "https://app.example.com";

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
