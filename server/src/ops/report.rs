//! How the operator commands print: a table for people, JSON for scripts.
//!
//! The JSON shape is part of the interface (scripts parse it); the table is not.

use std::time::SystemTime;

use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use serde_json::{Value, json};

use super::units::{format_age, human_bytes};
use super::uploads::{PurgeReport, UploadUsage};

/// RFC 3339 in UTC to the second, e.g. `2026-11-22T00:38:49Z`; `-` when unknown.
fn timestamp(t: Option<SystemTime>) -> String {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .and_then(|secs| DateTime::from_secs(secs).fmt(DateTimeFormat::DateTime).ok())
        .unwrap_or_else(|| "-".to_owned())
}

fn age(t: Option<SystemTime>, now: SystemTime) -> String {
    t.and_then(|t| now.duration_since(t).ok())
        .map_or_else(|| "-".to_owned(), format_age)
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn totals(uploads: &[UploadUsage]) -> (u64, u64) {
    uploads.iter().fold((0u64, 0u64), |(p, b), u| {
        (p + u.parts, b.saturating_add(u.bytes))
    })
}

/// The table of `uploads list`, ending with the bucket's total.
pub fn list_text(bucket: &str, uploads: &[UploadUsage], now: SystemTime) -> String {
    let mut out = String::new();
    if !uploads.is_empty() {
        out.push_str(&format!(
            "{:<20}  {:>7}  {:>6}  {:>10}  {}  {}\n",
            "INITIATED", "AGE", "PARTS", "STORED", "KEY", "UPLOAD ID"
        ));
    }
    for u in uploads {
        out.push_str(&format!(
            "{:<20}  {:>7}  {:>6}  {:>10}  {}  {}\n",
            timestamp(u.upload.initiated),
            age(u.upload.initiated, now),
            u.parts,
            human_bytes(u.bytes),
            u.upload.key,
            u.upload.upload_id,
        ));
    }
    let (parts, bytes) = totals(uploads);
    out.push_str(&format!(
        "bucket {bucket}: {}, {}, {} stored\n",
        plural(
            uploads.len() as u64,
            "incomplete upload",
            "incomplete uploads"
        ),
        plural(parts, "part", "parts"),
        human_bytes(bytes),
    ));
    out
}

fn upload_json(u: &UploadUsage, now: SystemTime) -> Value {
    json!({
        "key": u.upload.key,
        "upload_id": u.upload.upload_id,
        "initiated": u.upload.initiated.map(|t| timestamp(Some(t))),
        "age_seconds": u.upload.initiated.and_then(|t| now.duration_since(t).ok()).map(|d| d.as_secs()),
        "parts": u.parts,
        "bytes": u.bytes,
    })
}

/// `uploads list --json`: `{bucket, uploads: [{key, upload_id, initiated, age_seconds, parts,
/// bytes}], total: {uploads, parts, bytes}}`.
pub fn list_json(bucket: &str, uploads: &[UploadUsage], now: SystemTime) -> Value {
    let (parts, bytes) = totals(uploads);
    json!({
        "bucket": bucket,
        "uploads": uploads.iter().map(|u| upload_json(u, now)).collect::<Vec<_>>(),
        "total": {"uploads": uploads.len(), "parts": parts, "bytes": bytes},
    })
}

/// What `uploads purge` says it did (or would do, dry).
pub fn purge_text(bucket: &str, report: &PurgeReport, now: SystemTime) -> String {
    let mut out = String::new();
    let verb = if report.dry_run {
        "would abort"
    } else {
        "aborted"
    };
    for u in &report.aborted {
        out.push_str(&format!(
            "{verb} {} {} ({}, {}, {} old)\n",
            u.upload.key,
            u.upload.upload_id,
            plural(u.parts, "part", "parts"),
            human_bytes(u.bytes),
            age(u.upload.initiated, now),
        ));
    }
    out.push_str(&format!(
        "bucket {bucket}: {verb} {}, freeing {} in {}",
        plural(report.aborted.len() as u64, "upload", "uploads"),
        human_bytes(report.bytes()),
        plural(report.parts(), "part", "parts"),
    ));
    if report.already_gone > 0 {
        out.push_str(&format!(
            "; {} already gone",
            plural(report.already_gone, "upload was", "uploads were")
        ));
    }
    if report.dry_run {
        out.push_str(" (dry run: nothing was changed)");
    }
    out.push('\n');
    out
}

/// `uploads purge --json`: `{bucket, dry_run, aborted: [...], already_gone, freed: {uploads,
/// parts, bytes}}`.
pub fn purge_json(bucket: &str, report: &PurgeReport, now: SystemTime) -> Value {
    json!({
        "bucket": bucket,
        "dry_run": report.dry_run,
        "aborted": report.aborted.iter().map(|u| upload_json(u, now)).collect::<Vec<_>>(),
        "already_gone": report.already_gone,
        "freed": {"uploads": report.aborted.len(), "parts": report.parts(), "bytes": report.bytes()},
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ops::uploads::PendingUpload;

    fn usage(key: &str, age_secs: u64, parts: u64, bytes: u64, now: SystemTime) -> UploadUsage {
        UploadUsage {
            upload: PendingUpload {
                key: key.to_owned(),
                upload_id: format!("id-{key}"),
                initiated: Some(now - Duration::from_secs(age_secs)),
            },
            parts,
            bytes,
        }
    }

    fn now() -> SystemTime {
        // 2026-11-22T12:00:00Z
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_348_800)
    }

    #[test]
    fn the_list_table_names_each_upload_and_the_bucket_total() {
        let now = now();
        let uploads = [
            usage("uploads/a.bin", 26 * 3600, 12, 60 * 1024 * 1024, now),
            usage("uploads/b.bin", 90, 1, 5, now),
        ];
        let text = list_text("media", &uploads, now);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("INITIATED"), "{text}");
        assert_eq!(
            lines[1],
            "2026-11-21T10:00:00Z    1d 2h      12    60.0 MiB  uploads/a.bin  id-uploads/a.bin"
        );
        assert!(
            lines[2].contains("    1m       1         5 B  uploads/b.bin"),
            "{text}"
        );
        assert_eq!(
            lines[3],
            "bucket media: 2 incomplete uploads, 13 parts, 60.0 MiB stored"
        );
        assert_eq!(
            list_text("media", &[], now),
            "bucket media: 0 incomplete uploads, 0 parts, 0 B stored\n"
        );
    }

    #[test]
    fn list_json_has_exact_numbers() {
        let now = now();
        let mut uploads = [usage("k", 3600, 2000, 2_048_000, now)];
        // Stores give milliseconds; we print seconds.
        uploads[0].upload.initiated = Some(now - Duration::from_millis(3_599_750));
        let v = list_json("media", &uploads, now);
        assert_eq!(v["bucket"], "media");
        assert_eq!(v["uploads"][0]["key"], "k");
        assert_eq!(v["uploads"][0]["upload_id"], "id-k");
        assert_eq!(v["uploads"][0]["initiated"], "2026-11-22T11:00:00Z");
        assert_eq!(v["uploads"][0]["age_seconds"], 3599);
        assert_eq!(v["uploads"][0]["parts"], 2000);
        assert_eq!(
            v["total"],
            json!({"uploads": 1, "parts": 2000, "bytes": 2_048_000})
        );
    }

    #[test]
    fn purge_says_what_it_freed_and_what_was_already_gone() {
        let now = now();
        let report = PurgeReport {
            dry_run: false,
            aborted: vec![usage("a", 2 * 86400, 3, 3 * 1024 * 1024, now)],
            already_gone: 2,
        };
        let text = purge_text("media", &report, now);
        assert_eq!(
            text,
            "aborted a id-a (3 parts, 3.0 MiB, 2d 0h old)\n\
             bucket media: aborted 1 upload, freeing 3.0 MiB in 3 parts; 2 uploads were already gone\n"
        );
        let dry = PurgeReport {
            dry_run: true,
            ..report.clone()
        };
        assert!(
            purge_text("media", &dry, now)
                .ends_with("would abort 1 upload, freeing 3.0 MiB in 3 parts; 2 uploads were already gone (dry run: nothing was changed)\n")
        );
        let v = purge_json("media", &report, now);
        assert_eq!(
            v["freed"],
            json!({"uploads": 1, "parts": 3, "bytes": 3 * 1024 * 1024})
        );
        assert_eq!(v["already_gone"], 2);
        assert_eq!(v["dry_run"], false);
    }
}
