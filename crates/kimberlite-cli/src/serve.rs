//! `kimberlite serve`: run the HTTP service over a store (crate `kimberlite-server`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use kimberlite::{Config, Durability, Kimberlite};
use kimberlite_server::{AppState, KeyRing, Limits, Server, ServerConfig};

use crate::error::CliError;

/// Arguments of `kimberlite serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The store directory (created if missing).
    pub dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn serve(args: &ServeArgs) -> Result<ExitCode, CliError> {
    let store = Kimberlite::open_with(
        &args.dir,
        Config::default().durability(Durability::GroupCommit),
    )?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|error| CliError::usage(format!("cannot start the server runtime: {error}")))?;
    let config = ServerConfig::new(args.listen);
    let state = AppState::new(store, KeyRing::default(), Limits::default());
    runtime.block_on(async {
        let server = Server::bind(&config, state)
            .await
            .map_err(|error| CliError::usage(error.to_string()))?;
        let addr = server
            .local_addr()
            .map_err(|error| CliError::usage(error.to_string()))?;
        eprintln!(
            "kimberlite: serving {} on http://{addr}",
            args.dir.display()
        );
        server
            .run(shutdown_signal())
            .await
            .map_err(|error| CliError::usage(error.to_string()))
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
