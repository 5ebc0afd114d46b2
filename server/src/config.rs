//! Command line and environment configuration of the `s3-direct` binary.
//!
//! Every option can also be given as an environment variable `S3_DIRECT_<NAME>` so that the same
//! binary runs unchanged from a shell, a container or a service manager. With no subcommand the
//! binary serves; operator subcommands hang off [`Command`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Longest lifetime SigV4 allows for a presigned URL (7 days).
pub const MAX_URL_LIFETIME_SECS: u64 = 7 * 24 * 60 * 60;

/// Signing server for browser-direct multipart uploads to S3-compatible storage.
///
/// Without --endpoint it starts an embedded S3-compatible store on loopback, so the demo page works
/// on a fresh machine with no configuration.
#[derive(Debug, Clone, Parser)]
#[command(name = "s3-direct", version, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub serve: ServeConfig,

    /// What to do; serving is the default.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Operator subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the signing server (the same as giving no subcommand).
    Serve,
}

/// Everything the signing server needs to start. The options are global so that
/// `s3-direct serve --listen ...` and future operator subcommands accept them too.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address the signing API and demo page listen on.
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,

    /// Folder the embedded store keeps its buckets and objects in (only used without --endpoint).
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_DATA_DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,

    /// URL of the S3-compatible store the server talks to, e.g. http://127.0.0.1:3900.
    /// Absent: start the embedded store and use it.
    #[arg(long, global = true, env = "S3_DIRECT_ENDPOINT", value_parser = parse_url)]
    pub endpoint: Option<String>,

    /// URL browsers should see in presigned URLs, when they reach the store on another address
    /// than the server does (a proxy, a container network). Defaults to --endpoint.
    #[arg(long, global = true, env = "S3_DIRECT_PUBLIC_ENDPOINT", value_parser = parse_url)]
    pub public_endpoint: Option<String>,

    /// Bucket that uploads go to.
    #[arg(long, global = true, env = "S3_DIRECT_BUCKET", default_value = "s3-direct", value_parser = parse_bucket)]
    pub bucket: String,

    /// Region used both to sign URLs and to talk to the store (they must agree or signatures fail).
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_REGION",
        default_value = "us-east-1"
    )]
    pub region: String,

    /// Force path-style addressing (http://host/bucket/key) instead of virtual-hosted style.
    /// Most self-hosted stores need it; the embedded store always uses it.
    #[arg(long, global = true, env = "S3_DIRECT_PATH_STYLE")]
    pub path_style: bool,

    /// Lifetime of presigned URLs in seconds (at most 604800, 7 days, the SigV4 limit).
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_URL_LIFETIME",
        default_value_t = 900,
        value_parser = clap::value_parser!(u64).range(1..=MAX_URL_LIFETIME_SECS)
    )]
    pub url_lifetime: u64,

    /// Prefix of every object key the server issues; keys outside it are refused.
    #[arg(long, global = true, env = "S3_DIRECT_KEY_PREFIX", default_value = "uploads/", value_parser = parse_key_prefix)]
    pub key_prefix: String,

    /// Path prefix of the signing API routes (Uppy Companion uses /s3).
    #[arg(long, global = true, env = "S3_DIRECT_ROUTE_PREFIX", default_value = "/s3", value_parser = parse_route_prefix)]
    pub route_prefix: String,

    /// Folder served at / (the demo page).
    #[arg(long, global = true, env = "S3_DIRECT_WEB_DIR", default_value = "web")]
    pub web_dir: PathBuf,

    /// Folder served at /pkg/ (the WASM client package).
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_PKG_DIR",
        default_value = "wasm-client/pkg"
    )]
    pub pkg_dir: PathBuf,

    /// Address the embedded store listens on (port 0 picks a free one).
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_EMBEDDED_LISTEN",
        default_value = "127.0.0.1:0"
    )]
    pub embedded_listen: SocketAddr,
}

impl ServeConfig {
    /// Lifetime of presigned URLs.
    pub fn url_lifetime(&self) -> Duration {
        Duration::from_secs(self.url_lifetime)
    }
}

fn parse_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| format!("{s:?} is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{s:?} has no host"));
    }
    // A trailing slash would produce `//bucket` paths in presigned URLs.
    Ok(s.trim_end_matches('/').to_owned())
}

/// Bucket names as S3 defines them today (3..=63 of `[a-z0-9.-]`, starting and ending with a letter
/// or digit). Checking here also keeps the embedded store's bucket folder inside the data dir.
pub fn parse_bucket(s: &str) -> Result<String, String> {
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let ok_ends = s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if (3..=63).contains(&s.len()) && ok_chars && ok_ends && !s.contains("..") {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a valid bucket name; use 3 to 63 lowercase letters, digits, '.' or '-', \
             starting and ending with a letter or digit"
        ))
    }
}

fn parse_key_prefix(s: &str) -> Result<String, String> {
    let bad_segment = s.split('/').any(|seg| seg == "." || seg == "..");
    if s.starts_with('/') || bad_segment || s.chars().any(char::is_control) {
        return Err(format!(
            "{s:?} is not a usable key prefix; use something like \"uploads/\" (no leading '/', \
             no '.' or '..' segments)"
        ));
    }
    Ok(s.to_owned())
}

fn parse_route_prefix(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!("{s:?} must start with '/', like \"/s3\""));
    }
    // "/" and "" both mean: the API routes sit at the root.
    Ok(s.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["s3-direct"]).unwrap();
        let c = cli.serve;
        assert!(cli.command.is_none());
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.bucket, "s3-direct");
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.url_lifetime(), Duration::from_secs(900));
        assert_eq!(c.key_prefix, "uploads/");
        assert_eq!(c.route_prefix, "/s3");
        assert_eq!(c.embedded_listen.port(), 0);
        assert!(c.endpoint.is_none() && !c.path_style);
    }

    #[test]
    fn lifetime_above_seven_days_is_refused() {
        assert!(Cli::try_parse_from(["s3-direct", "--url-lifetime", "604800"]).is_ok());
        assert!(Cli::try_parse_from(["s3-direct", "--url-lifetime", "604801"]).is_err());
        assert!(Cli::try_parse_from(["s3-direct", "--url-lifetime", "0"]).is_err());
    }

    #[test]
    fn urls_and_prefixes_are_normalised() {
        let cli = Cli::try_parse_from([
            "s3-direct",
            "--endpoint",
            "http://127.0.0.1:3900/",
            "serve",
            "--route-prefix",
            "/",
        ])
        .unwrap();
        assert_eq!(cli.serve.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(cli.serve.route_prefix, "");
        assert!(matches!(cli.command, Some(Command::Serve)));
        assert!(Cli::try_parse_from(["s3-direct", "--endpoint", "ftp://x"]).is_err());
        assert!(Cli::try_parse_from(["s3-direct", "--route-prefix", "s3"]).is_err());
        assert!(Cli::try_parse_from(["s3-direct", "--key-prefix", "a/../b/"]).is_err());
    }

    #[test]
    fn bucket_names() {
        for ok in ["s3-direct", "abc", "my.bucket-1"] {
            assert!(parse_bucket(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "Upper", "../x", "a..b", "-ab", "ab-", "a/b"] {
            assert!(parse_bucket(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_option_documents_its_environment_variable() {
        let help = Cli::command().render_long_help().to_string();
        for name in [
            "LISTEN",
            "DATA_DIR",
            "ENDPOINT",
            "PUBLIC_ENDPOINT",
            "BUCKET",
            "REGION",
            "PATH_STYLE",
            "URL_LIFETIME",
            "KEY_PREFIX",
            "ROUTE_PREFIX",
            "WEB_DIR",
            "PKG_DIR",
            "EMBEDDED_LISTEN",
        ] {
            assert!(
                help.contains(&format!("S3_DIRECT_{name}")),
                "missing S3_DIRECT_{name}"
            );
        }
    }
}
