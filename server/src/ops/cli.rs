//! The operator commands, with the same store options as `serve` (`--endpoint`, `--bucket`,
//! `--region`, `--path-style`, AWS credential chain): `s3-direct uploads …` for incomplete
//! uploads, `s3-direct bucket setup` and `s3-direct doctor`.

use std::io::Write;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};

use super::error::OpsError;
use super::setup::{self, Wanted};
use super::units::parse_age;
use super::uploads::{self, Filter, MultipartAdmin};
use super::{doctor, report};
use crate::{S3Store, S3StoreConfig, ServeConfig};

/// `s3-direct bucket <command>`.
#[derive(Debug, Clone, Subcommand)]
pub enum BucketCommand {
    /// Apply the CORS rule browsers need (the --cors-origin origins may PUT, GET and HEAD and
    /// read ETag) and a lifecycle rule aborting incomplete uploads under --key-prefix, keeping
    /// the bucket's other rules. Idempotent.
    Setup(SetupArgs),
}

/// Options of `s3-direct bucket setup`.
#[derive(Debug, Clone, Args)]
pub struct SetupArgs {
    /// Days after which the store aborts incomplete uploads under --key-prefix, like 1d or 7d.
    #[arg(
        long,
        env = "S3_DIRECT_ABORT_INCOMPLETE_AFTER",
        default_value = "1d",
        value_parser = parse_days
    )]
    pub abort_incomplete_after: u32,
    /// Change nothing: say what would change and print the exact configurations.
    #[arg(long)]
    pub dry_run: bool,
    /// Also print the exact configurations applied, as `aws s3api` commands.
    #[arg(long)]
    pub print: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Options of `s3-direct doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Origin of the page that uploads, for the browser check (default: the first
    /// --cors-origin; with the embedded store, the --listen address).
    #[arg(long, value_parser = crate::config::parse_origin)]
    pub origin: Option<String>,
    /// Days the lifecycle rule in the printed fixes waits, as for `bucket setup`.
    #[arg(
        long,
        env = "S3_DIRECT_ABORT_INCOMPLETE_AFTER",
        default_value = "1d",
        value_parser = parse_days
    )]
    pub abort_incomplete_after: u32,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Parses a number of whole days: `1d`, `7d` (or a bare `3`).
fn parse_days(s: &str) -> Result<u32, String> {
    let with_unit = if s.trim().bytes().all(|b| b.is_ascii_digit()) {
        format!("{}d", s.trim())
    } else {
        s.to_owned()
    };
    let age = parse_age(&with_unit).map_err(|e| e.to_string())?;
    let days = age.as_secs() / 86_400;
    if age.as_secs() % 86_400 != 0 || days == 0 {
        return Err(format!(
            "{s:?} is not a whole number of days; lifecycle rules count in days: 1d, 7d"
        ));
    }
    u32::try_from(days).map_err(|_| format!("{s:?} is too many days"))
}

/// `s3-direct uploads <command>`.
#[derive(Debug, Clone, Subcommand)]
pub enum UploadsCommand {
    /// List incomplete multipart uploads with their parts and stored bytes.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Abort one incomplete upload (its parts are deleted).
    Abort {
        /// Object key of the upload.
        key: String,
        /// Upload id as `uploads list` shows it.
        upload_id: String,
    },
    /// Abort every incomplete upload matching the filter and report what was freed.
    ///
    /// Only under --prefix, or else under --key-prefix (the server's own keys); the prefix must
    /// be non-empty and end with '/' unless --yes is given, so a shared bucket keeps other
    /// applications' uploads. Safe to run twice or from several machines at once: an upload
    /// someone else removed first counts as already gone.
    Purge {
        #[command(flatten)]
        filter: FilterArgs,
        /// Only report what would be aborted.
        #[arg(long)]
        dry_run: bool,
        /// Allow a purge without --older-than or --prefix (it also aborts uploads in progress),
        /// and a --prefix that is empty (the whole bucket) or does not end with '/'.
        #[arg(long)]
        yes: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Which uploads a command is about.
#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// Only uploads whose key starts with this (purge: --key-prefix when absent).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Only uploads started at least this long ago: 30m, 24h, 7d.
    #[arg(long, value_parser = parse_age)]
    pub older_than: Option<Duration>,
}

impl From<&FilterArgs> for Filter {
    fn from(a: &FilterArgs) -> Self {
        Filter {
            prefix: a.prefix.clone(),
            older_than: a.older_than,
        }
    }
}

/// Runs `command` against `admin`, printing to `out`. Errors are messages for the operator.
pub async fn execute(
    command: &UploadsCommand,
    admin: &dyn MultipartAdmin,
    now: SystemTime,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let bucket = admin.bucket().to_owned();
    let text = match command {
        UploadsCommand::List { filter, json } => {
            let found = uploads::list(admin, &filter.into(), now).await?;
            if *json {
                format!("{}\n", report::list_json(&bucket, &found, now))
            } else {
                report::list_text(&bucket, &found, now)
            }
        }
        UploadsCommand::Abort { key, upload_id } => {
            let freed = uploads::abort_one(admin, key, upload_id).await?;
            match freed {
                Some((parts, bytes)) => format!(
                    "aborted {key} {upload_id}: freed {} in {parts} part(s)\n",
                    super::units::human_bytes(bytes)
                ),
                None => format!("aborted {key} {upload_id}\n"),
            }
        }
        UploadsCommand::Purge {
            filter,
            dry_run,
            yes,
            json,
        } => {
            let report = uploads::purge(admin, &filter.into(), now, *dry_run, *yes).await?;
            if *json {
                format!("{}\n", report::purge_json(&bucket, &report, now))
            } else {
                report::purge_text(&bucket, &report, now)
            }
        }
    };
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| OpsError::Refused(format!("cannot write the output: {e}")))
}

/// What the operator reads when `execute` fails, given which store it ran against.
pub fn explain(err: &OpsError, embedded: bool) -> String {
    match err {
        OpsError::Unsupported { operation } if embedded => format!(
            "the embedded store cannot list multipart uploads; it answers NotImplemented to \
             {operation} (its unfinished uploads are files under --data-dir). Run the command with \
             --endpoint against a store that can (AWS S3, Garage, Ceph radosgw, MinIO)"
        ),
        OpsError::Unsupported { operation } => format!(
            "the store at --endpoint does not implement {operation}, so it cannot list or purge \
             multipart uploads; use the store's own tools or a lifecycle rule \
             (AbortIncompleteMultipartUpload) instead"
        ),
        OpsError::NoSuchUpload { key, upload_id } => format!(
            "upload {upload_id:?} of {key:?} does not exist: it was completed or aborted already, \
             or the key or id is wrong (see `s3-direct uploads list`)"
        ),
        other => other.to_string(),
    }
}

/// The S3 store `--endpoint` names, with the AWS credential chain.
async fn real_store(endpoint: &str, config: &ServeConfig) -> S3Store {
    S3Store::from_env(S3StoreConfig {
        endpoint: endpoint.to_owned(),
        public_endpoint: config.public_endpoint.clone(),
        bucket: config.bucket.clone(),
        region: config.region.clone(),
        path_style: config.path_style,
    })
    .await
}

/// What `bucket setup` applies for this configuration.
fn wanted(config: &ServeConfig, abort_after_days: u32) -> Wanted {
    Wanted {
        origins: config.cors_origins.clone(),
        abort_after_days,
        key_prefix: config.key_prefix.clone(),
    }
}

/// The `s3-direct bucket setup` command for this configuration.
fn setup_command(endpoint: &str, config: &ServeConfig, wanted: &Wanted) -> String {
    let mut cmd = setup::setup_command(&config.bucket, endpoint, wanted);
    if config.region != "us-east-1" {
        cmd.push_str(&format!(" --region {}", config.region));
    }
    if config.path_style {
        cmd.push_str(" --path-style");
    }
    cmd
}

fn print(text: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write the output: {e}"))
}

/// `s3-direct bucket …`.
pub async fn run_bucket(command: &BucketCommand, config: &ServeConfig) -> Result<(), String> {
    let BucketCommand::Setup(args) = command;
    let Some(endpoint) = &config.endpoint else {
        return print(
            "the embedded store needs no setup: it lets every origin PUT and exposes ETag \
             itself, and it has no lifecycle rules (`s3-direct serve --sweep-older-than 24h` \
             removes abandoned uploads from its data dir); give --endpoint to set up a real \
             store's bucket\n",
        );
    };
    let store = real_store(endpoint, config).await;
    let wanted = wanted(config, args.abort_incomplete_after);
    let report = setup::setup(&store, &wanted, args.dry_run)
        .await
        .map_err(|e| explain(&e, false))?;
    if args.json {
        print(&format!("{}\n", setup::report_json(&report)))?;
    } else {
        print(&setup::report_text(&report, args.print))?;
    }
    if report.complete() {
        Ok(())
    } else {
        Err(
            "the bucket is only partly set up: the store does not implement one of the \
             configurations (see above); set it with the store's own tools"
                .to_owned(),
        )
    }
}

/// `s3-direct doctor`.
pub async fn run_doctor(args: &DoctorArgs, config: &ServeConfig) -> Result<(), String> {
    let wanted = wanted(config, args.abort_incomplete_after);
    let report = match &config.endpoint {
        Some(endpoint) => {
            let store = real_store(endpoint, config).await;
            let options = doctor::Options {
                origin: args
                    .origin
                    .clone()
                    .or_else(|| wanted.origins.first().cloned()),
                setup_command: setup_command(endpoint, config, &wanted),
                wanted,
                url_lifetime: config.url_lifetime(),
                checksum: config.checksum,
                embedded: false,
            };
            doctor::run(&store, Some(&store), &options).await
        }
        None => {
            let (embedded, store) = start_embedded(config).await?;
            let options = doctor::Options {
                origin: args
                    .origin
                    .clone()
                    .or_else(|| wanted.origins.first().cloned())
                    .or_else(|| Some(format!("http://{}", config.listen))),
                setup_command: String::new(),
                wanted,
                url_lifetime: config.url_lifetime(),
                checksum: config.checksum,
                embedded: true,
            };
            let report = doctor::run(&store, None, &options).await;
            drop(embedded);
            report
        }
    }
    .map_err(|e| explain(&e, config.endpoint.is_none()))?;
    if args.json {
        print(&format!("{}\n", doctor::report_json(&report)))?;
    } else {
        print(&doctor::report_text(&report))?;
    }
    if report.passed() {
        Ok(())
    } else {
        let failed = report
            .checks
            .iter()
            .filter(|c| c.status == doctor::Status::Fail)
            .map(|c| c.name)
            .collect::<Vec<_>>();
        Err(format!("doctor found failures: {}", failed.join(", ")))
    }
}

/// The embedded store on the data dir, on a free loopback port, for a command.
async fn start_embedded(config: &ServeConfig) -> Result<(crate::EmbeddedStore, S3Store), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot start the embedded store: {e}"))?;
    let embedded = crate::EmbeddedStore::start(
        listener,
        &config.data_dir,
        &config.bucket,
        crate::EmbeddedCredentials::random(),
    )
    .await
    .map_err(|e| {
        format!(
            "cannot open the embedded store in {}: {e}",
            config.data_dir.display()
        )
    })?;
    let store = embedded.s3_store(&config.bucket, &config.region, None);
    Ok((embedded, store))
}

/// `command` with a purge's prefix defaulting to `key_prefix`, the server's own keys, so a purge
/// never reaches another application's uploads unless asked to. A purge with neither a prefix
/// nor an age (nor `--yes`) is left as it is, to be refused.
pub fn purging_under_key_prefix(command: &UploadsCommand, key_prefix: &str) -> UploadsCommand {
    let mut command = command.clone();
    if let UploadsCommand::Purge { filter, yes, .. } = &mut command
        && filter.prefix.is_none()
        && (filter.older_than.is_some() || *yes)
    {
        filter.prefix = Some(key_prefix.to_owned());
    }
    command
}

/// `s3-direct uploads …` with the serve options: against `--endpoint` with the AWS credential
/// chain, or without it from the embedded store's data dir (`--data-dir`).
pub async fn run(command: &UploadsCommand, config: &ServeConfig) -> Result<(), String> {
    let command = &purging_under_key_prefix(command, &config.key_prefix);
    let mut stdout = std::io::stdout().lock();
    let now = SystemTime::now();
    match &config.endpoint {
        Some(endpoint) => {
            let store = S3Store::from_env(S3StoreConfig {
                endpoint: endpoint.clone(),
                public_endpoint: None,
                bucket: config.bucket.clone(),
                region: config.region.clone(),
                path_style: config.path_style,
            })
            .await;
            execute(command, &store, now, &mut stdout)
                .await
                .map_err(|e| explain(&e, false))
        }
        None => {
            // s3s-fs answers NotImplemented to ListMultipartUploads; its data dir names every
            // open upload, so read that instead (as the sweeper does).
            let data_dir = &config.data_dir;
            eprintln!(
                "note: the embedded store cannot list multipart uploads (ListMultipartUploads); \
                 reading its data dir {} instead",
                data_dir.display()
            );
            let admin = super::embedded::EmbeddedAdmin::new(data_dir, &config.bucket);
            execute(command, &admin, now, &mut stdout)
                .await
                .map_err(|e| explain(&e, true))
        }
    }
}
