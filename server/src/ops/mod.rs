//! Operator commands: housekeeping of the bucket the server writes to.
//!
//! - `s3-direct uploads list|abort|purge` find and remove incomplete multipart uploads, whose
//!   parts a store keeps (and bills) until they are completed or aborted. The logic ([`uploads`])
//!   runs over the [`MultipartAdmin`] trait; [`S3Store`](crate::S3Store) implements it, a fake in
//!   the unit tests pages like S3 does, and [`embedded::EmbeddedAdmin`] reads the embedded
//!   store's data dir (which cannot answer ListMultipartUploads).
//! - [`sweeper`]: the same purge on a schedule inside `serve` (`--sweep-older-than`).
//! - `s3-direct bucket setup` ([`setup`]): the CORS and lifecycle rules browsers need, merged by
//!   rule id into the bucket's, over the [`setup::BucketRules`] trait.
//! - `s3-direct doctor` ([`doctor`]): credentials, clock, a browser-style part PUT with its
//!   CORS preflight, which part checksums the store verifies ([`doctor::checksums`]), the
//!   lifecycle rule and the credential lifetime, with the fix to paste.
//!
//! `s3.rs` implements both traits over aws-sdk-s3 (the bucket rules converted to and from the
//! `aws s3api` JSON shape in `sdk_rules.rs`); [`OpsError`] (`error.rs`) is every command's error;
//! `cli.rs` holds the clap subcommands and their runners, `report.rs` and `units.rs` the output
//! and its units.

pub mod cli;
pub mod doctor;
pub mod embedded;
mod error;
#[cfg(test)]
mod fake;
pub mod report;
mod s3;
mod sdk_rules;
pub mod setup;
pub mod sweeper;
pub mod units;
pub mod uploads;

pub use cli::{BucketCommand, DoctorArgs, UploadsCommand, run, run_bucket, run_doctor};
pub use error::OpsError;
pub use uploads::{Aborted, Filter, MultipartAdmin, PurgeReport, UploadUsage};

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, SystemTime};

    use super::fake::FakeAdmin;
    use super::uploads::{self, Filter};
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_348_800)
    }

    /// `n` uploads `k/00000`.. with one part of `i` bytes each, uploads with even `i` 48 h old,
    /// odd ones 1 h old.
    fn many(n: usize) -> FakeAdmin {
        let fake = FakeAdmin::default();
        for i in 0..n {
            let age = if i % 2 == 0 { 48 * HOUR } else { HOUR };
            fake.add(
                &format!("k/{i:05}"),
                &format!("u{i}"),
                now() - age,
                &[i as u64],
            );
        }
        fake
    }

    /// The uploads of [`many`] at least `d` old.
    fn older_than(d: Duration) -> Filter {
        Filter {
            prefix: Some("k/".into()),
            older_than: Some(d),
        }
    }

    #[tokio::test]
    async fn list_pages_through_more_than_a_thousand_uploads() {
        let fake = many(2500);
        let found = uploads::list(&fake, &Filter::default(), now())
            .await
            .unwrap();
        assert_eq!(found.len(), 2500);
        assert_eq!(fake.upload_pages.load(Ordering::SeqCst), 3);
        assert_eq!(
            found.iter().map(|u| u.bytes).sum::<u64>(),
            (0..2500).sum::<u64>()
        );
        assert!(found.iter().all(|u| u.parts == 1));
        // Each upload once, in the store's order.
        assert_eq!(found[1000].upload.key, "k/01000");
        assert_eq!(found[2499].upload.key, "k/02499");
    }

    #[tokio::test]
    async fn list_counts_every_page_of_parts() {
        let fake = FakeAdmin::default();
        let sizes: Vec<u64> = (1..=2345).collect();
        fake.add("big", "u1", now() - HOUR, &sizes);
        fake.add("full", "u2", now() - HOUR, &[7; 10_000]);
        let found = uploads::list(&fake, &Filter::default(), now())
            .await
            .unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].parts, found[0].bytes), (2345, 2345 * 2346 / 2));
        assert_eq!((found[1].parts, found[1].bytes), (10_000, 70_000));
        assert_eq!(fake.part_pages.load(Ordering::SeqCst), 3 + 10);
    }

    #[tokio::test]
    async fn filters_by_age_and_prefix() {
        let fake = many(10);
        fake.add("other/x", "ux", now() - 72 * HOUR, &[5]);
        let anywhere = |d| Filter {
            prefix: None,
            older_than: Some(d),
        };
        let old = uploads::list(&fake, &anywhere(24 * HOUR), now())
            .await
            .unwrap();
        assert_eq!(old.len(), 6, "{old:?}");
        assert!(
            old.iter()
                .all(|u| u.upload.initiated.unwrap() <= now() - 48 * HOUR)
        );
        let prefixed = Filter {
            prefix: Some("k/".into()),
            older_than: Some(24 * HOUR),
        };
        let old_k = uploads::list(&fake, &prefixed, now()).await.unwrap();
        assert_eq!(old_k.len(), 5);
        // Exactly the threshold counts as old enough.
        assert_eq!(
            uploads::list(&fake, &anywhere(HOUR), now())
                .await
                .unwrap()
                .len(),
            11
        );
    }

    #[tokio::test]
    async fn a_dry_run_changes_nothing() {
        let fake = many(1200);
        let report = uploads::purge(&fake, &older_than(24 * HOUR), now(), true, false)
            .await
            .unwrap();
        assert!(report.dry_run);
        assert_eq!(report.aborted.len(), 600);
        assert_eq!(fake.len(), 1200);
        assert_eq!(fake.aborts.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn purge_aborts_only_what_matches_and_reports_the_bytes() {
        let fake = many(1200);
        let report = uploads::purge(&fake, &older_than(24 * HOUR), now(), false, false)
            .await
            .unwrap();
        assert_eq!(report.aborted.len(), 600);
        assert_eq!(report.parts(), 600);
        assert_eq!(report.bytes(), (0..1200u64).step_by(2).sum::<u64>());
        assert_eq!(report.already_gone, 0);
        assert_eq!(fake.len(), 600);
        assert!(fake.contains("k/00001", "u1") && !fake.contains("k/00000", "u0"));
        // Twice is fine: nothing left to do.
        let again = uploads::purge(&fake, &older_than(24 * HOUR), now(), false, false)
            .await
            .unwrap();
        assert_eq!((again.aborted.len(), again.already_gone), (0, 0));
    }

    #[tokio::test]
    async fn concurrent_purges_both_succeed_and_free_each_upload_once() {
        let fake = many(1500);
        let filter = older_than(Duration::ZERO);
        let (a, b) = tokio::join!(
            uploads::purge(&fake, &filter, now(), false, false),
            uploads::purge(&fake, &filter, now(), false, false),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(fake.len(), 0);
        assert_eq!(a.aborted.len() + b.aborted.len(), 1500);
        assert_eq!(a.bytes() + b.bytes(), (0..1500u64).sum::<u64>());
        // Both saw the other's work as "already gone" (not as an error) somewhere.
        assert!(
            a.already_gone + b.already_gone > 0,
            "{} {}",
            a.already_gone,
            b.already_gone
        );
    }

    #[tokio::test]
    async fn an_unbounded_purge_needs_yes() {
        let fake = many(3);
        let err = uploads::purge(&fake, &Filter::default(), now(), false, false)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("--older-than"), "{err}");
        assert_eq!(fake.len(), 3);
        let empty_prefix = Filter {
            prefix: Some(String::new()),
            older_than: None,
        };
        assert!(
            uploads::purge(&fake, &empty_prefix, now(), true, false)
                .await
                .is_err()
        );
        let all = uploads::purge(&fake, &Filter::default(), now(), false, true)
            .await
            .unwrap();
        assert_eq!((all.aborted.len(), fake.len()), (3, 0));
    }

    #[tokio::test]
    async fn a_purge_prefix_must_be_non_empty_and_end_with_a_slash() {
        let fake = many(4);
        fake.add("k-other-app/x", "ux", now() - 48 * HOUR, &[9]);
        let day = |prefix: Option<&str>| Filter {
            prefix: prefix.map(str::to_owned),
            older_than: Some(24 * HOUR),
        };
        for (prefix, why) in [
            (None, "whole bucket"),
            (Some(""), "whole bucket"),
            (Some("k"), "does not end with '/'"),
        ] {
            let err = uploads::purge(&fake, &day(prefix), now(), false, false)
                .await
                .unwrap_err();
            let m = err.to_string();
            assert!(
                m.starts_with("refusing to purge: ") && m.contains(why),
                "{m}"
            );
            assert!(
                m.contains("--prefix uploads/") && m.contains("--yes"),
                "{m}"
            );
        }
        assert_eq!(fake.len(), 5);
        let ours = uploads::purge(&fake, &day(Some("k/")), now(), false, false)
            .await
            .unwrap();
        assert_eq!(ours.aborted.len(), 2);
        assert!(fake.contains("k-other-app/x", "ux"));
        // --yes: the operator asked for everything the prefix matches.
        let all = uploads::purge(&fake, &day(Some("k")), now(), false, true)
            .await
            .unwrap();
        assert_eq!(all.aborted.len(), 1);
    }

    #[test]
    fn a_purge_without_a_prefix_stays_under_the_key_prefix() {
        let purge =
            |prefix: Option<&str>, older_than: Option<Duration>, yes: bool| UploadsCommand::Purge {
                filter: cli::FilterArgs {
                    prefix: prefix.map(str::to_owned),
                    older_than,
                },
                dry_run: false,
                yes,
                json: false,
            };
        let prefix_of = |c: UploadsCommand| match c {
            UploadsCommand::Purge { filter, .. } => filter.prefix,
            _ => unreachable!(),
        };
        let day = Some(24 * HOUR);
        let resolved = |c| prefix_of(cli::purging_under_key_prefix(&c, "uploads/"));
        assert_eq!(
            resolved(purge(None, day, false)).as_deref(),
            Some("uploads/")
        );
        assert_eq!(
            resolved(purge(None, None, true)).as_deref(),
            Some("uploads/")
        );
        assert_eq!(
            resolved(purge(Some("x/"), day, false)).as_deref(),
            Some("x/")
        );
        assert_eq!(resolved(purge(Some(""), day, true)).as_deref(), Some(""));
        // Neither age nor prefix nor --yes: left unbounded, so purge refuses it.
        assert_eq!(resolved(purge(None, None, false)), None);
    }

    #[tokio::test]
    async fn abort_one_reports_a_missing_upload() {
        let fake = many(2);
        let freed = uploads::abort_one(&fake, "k/00001", "u1").await.unwrap();
        assert_eq!(freed, Some((1, 1)));
        let err = uploads::abort_one(&fake, "k/00001", "u1")
            .await
            .unwrap_err();
        assert!(matches!(err, OpsError::NoSuchUpload { .. }), "{err}");
        assert!(cli::explain(&err, false).contains("completed or aborted already"));
    }

    #[tokio::test]
    async fn a_store_without_listing_is_named_clearly() {
        let fake = FakeAdmin {
            unsupported: true,
            ..FakeAdmin::default()
        };
        let cmd = UploadsCommand::List {
            filter: cli::FilterArgs {
                prefix: None,
                older_than: None,
            },
            json: false,
        };
        let mut out = Vec::new();
        let err = cli::execute(&cmd, &fake, now(), &mut out)
            .await
            .unwrap_err();
        let msg = cli::explain(&err, true);
        assert!(
            msg.starts_with("the embedded store cannot list multipart uploads;"),
            "{msg}"
        );
        assert!(msg.contains("--endpoint"), "{msg}");
        assert!(cli::explain(&err, false).contains("does not implement ListMultipartUploads"));
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn commands_print_tables_and_json() {
        let fake = many(4);
        let mut out = Vec::new();
        let list = UploadsCommand::List {
            filter: cli::FilterArgs {
                prefix: None,
                older_than: None,
            },
            json: true,
        };
        cli::execute(&list, &fake, now(), &mut out).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["total"]["uploads"], 4);
        assert_eq!(v["total"]["bytes"], 6);
        let purge = UploadsCommand::Purge {
            filter: cli::FilterArgs {
                prefix: Some("k/".into()),
                older_than: Some(24 * HOUR),
            },
            dry_run: false,
            yes: false,
            json: false,
        };
        let mut out = Vec::new();
        cli::execute(&purge, &fake, now(), &mut out).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with("bucket fake-bucket: aborted 2 uploads, freeing 2 B in 2 parts\n"),
            "{text}"
        );
    }
}
