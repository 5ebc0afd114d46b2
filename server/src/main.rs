//! The `s3-direct` binary: parse the configuration, start logging, bind, and hand over to the
//! library. Everything else lives in `s3_direct_server` so tests can run it without a process.
//!
//! The lines printed to stdout are read by scripts and tests; keep their format stable.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use s3_direct_server::{Cli, Command, ServeConfig, prepare, serve};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr so stdout carries only the start-up lines.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // No colour codes in log files and journal output.
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    // One TLS crypto provider (aws-lc-rs) for every HTTPS client in the process.
    s3_direct_server::install_tls_provider();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        None | Some(Command::Serve) => runtime
            .block_on(run_server(cli.serve))
            .map_err(|e| e.to_string()),
        Some(Command::Uploads(command)) => {
            runtime.block_on(s3_direct_server::ops::run(&command, &cli.serve))
        }
        Some(Command::Bucket(command)) => {
            runtime.block_on(s3_direct_server::ops::run_bucket(&command, &cli.serve))
        }
        Some(Command::Doctor(args)) => {
            runtime.block_on(s3_direct_server::ops::run_doctor(&args, &cli.serve))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Why the server could not start or stopped; printed as `error: {message}`.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    /// A configuration that cannot work (`InvalidInput`): its message says why.
    #[error("{0}")]
    Config(std::io::Error),
    #[error("cannot set up the store client: {0}")]
    StoreClient(std::io::Error),
    #[error("cannot start the embedded store on {listen} with data in {}: {source}", data_dir.display())]
    EmbeddedStore {
        listen: SocketAddr,
        data_dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {listen}: {source}; pick another --listen")]
    Listen {
        listen: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read the listening address: {0}")]
    LocalAddr(std::io::Error),
    #[error("server failed: {0}")]
    Served(std::io::Error),
}

async fn run_server(config: ServeConfig) -> Result<(), ServeError> {
    let prepared = prepare(&config).await.map_err(|e| match &config.endpoint {
        _ if e.kind() == std::io::ErrorKind::InvalidInput => ServeError::Config(e),
        Some(_) => ServeError::StoreClient(e),
        None => ServeError::EmbeddedStore {
            listen: config.embedded_listen,
            data_dir: config.data_dir.clone(),
            source: e,
        },
    })?;
    if let Some(embedded) = &prepared.embedded {
        println!(
            "embedded store: {} (bucket {}, data {})",
            embedded.endpoint(),
            config.bucket,
            config.data_dir.display()
        );
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            listen: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(ServeError::LocalAddr)?;
    println!("listening on http://{addr}");
    println!("demo page: http://{addr}/");
    // The sweeper stops with the server; a sweep cut short is safe (aborts are idempotent).
    let sweeping = prepared
        .sweeper
        .map(|sweeper| tokio::spawn(sweeper.run(std::future::pending())));
    // The deliverer stops with the server too: pending events stay in the store for the next
    // start or another replica.
    let delivering = prepared
        .notifier
        .map(|notifier| tokio::spawn(notifier.run(std::future::pending())));
    let served = serve(listener, prepared.state, shutdown_signal()).await;
    for task in [sweeping, delivering].into_iter().flatten() {
        task.abort();
    }
    served.map_err(ServeError::Served)?;
    tracing::info!("shut down");
    Ok(())
}

/// Resolves on ctrl-c or, on Unix, SIGTERM (what service managers and containers send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for ctrl-c: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
