//! `s3-direct uploads …`: the operator commands for incomplete uploads, with the same store
//! options as `serve` (`--endpoint`, `--bucket`, `--region`, `--path-style`, AWS credential
//! chain).

use std::io::Write;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};

use super::report;
use super::units::parse_age;
use super::uploads::{self, Filter, MultipartAdmin, OpsError};
use crate::{S3Store, S3StoreConfig, ServeConfig};

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
    /// Safe to run twice or from several machines at once: an upload someone else removed first
    /// counts as already gone.
    Purge {
        #[command(flatten)]
        filter: FilterArgs,
        /// Only report what would be aborted.
        #[arg(long)]
        dry_run: bool,
        /// Allow a purge without --older-than or --prefix (it also aborts uploads in progress).
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
    /// Only uploads whose key starts with this.
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

/// `s3-direct uploads …` with the serve options: against `--endpoint` with the AWS credential
/// chain, or without it against the embedded store's data dir.
pub async fn run(command: &UploadsCommand, config: &ServeConfig) -> Result<(), String> {
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
            execute(command, &store, now, &mut stdout)
                .await
                .map_err(|e| explain(&e, true))
        }
    }
}
