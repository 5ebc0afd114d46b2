//! The `s3-direct` binary: parse the configuration, start logging, bind, and hand over to the
//! library. Everything else lives in `s3_direct_server` so tests can run it without a process.
//!
//! The lines printed to stdout are read by scripts and tests; keep their format stable.

use std::io::IsTerminal;
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
        None | Some(Command::Serve) => runtime.block_on(run_server(cli.serve)),
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

async fn run_server(config: ServeConfig) -> Result<(), String> {
    let prepared = prepare(&config).await.map_err(|e| match &config.endpoint {
        _ if e.kind() == std::io::ErrorKind::InvalidInput => e.to_string(),
        Some(_) => format!("cannot set up the store client: {e}"),
        None => format!(
            "cannot start the embedded store on {} with data in {}: {e}",
            config.embedded_listen,
            config.data_dir.display()
        ),
    })?;
    if let Some(embedded) = &prepared.embedded {
        println!(
            "embedded store: {} (bucket {}, data {})",
            embedded.endpoint(),
            config.bucket,
            config.data_dir.display()
        );
    }
    let listener = TcpListener::bind(config.listen).await.map_err(|e| {
        format!(
            "cannot listen on {}: {e}; pick another --listen",
            config.listen
        )
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
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
    served.map_err(|e| format!("server failed: {e}"))?;
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
