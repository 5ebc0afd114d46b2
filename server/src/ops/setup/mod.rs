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
//!
//! This module reads, merges and writes; `rules.rs` holds our rules and the merge, `report.rs`
//! what was done and how it prints.

mod report;
mod rules;

pub use report::{
    Section, SetupReport, aws_cors_command, aws_lifecycle_command, report_json, report_text,
    setup_command,
};
pub use rules::{
    ALLOWED_HEADERS, ALLOWED_METHODS, CORS_RULE_ID, Change, EXPOSE_HEADERS, LIFECYCLE_RULE_ID,
    MAX_AGE_SECONDS, Place, Wanted, abort_days, covering_abort_rule, lifecycle_prefix, merge,
    same_cors_rule, same_lifecycle_rule,
};

use async_trait::async_trait;
use serde_json::Value;

use self::rules::rule_id;
use super::error::OpsError;

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

    use serde_json::json;

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
