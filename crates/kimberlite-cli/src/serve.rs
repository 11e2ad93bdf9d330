//! `kimberlite serve`: run the HTTP service over a store (crate `kimberlite-server`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use kimberlite::proof::SignerKey;
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
    /// Sign checkpoints (`GET /v1/streams/{stream}/checkpoint`) with this private key, from
    /// `kimberlite keygen`; without it the server signs none.
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// The store name in origins (default: the directory's name), as `checkpoint`, `prove`
    /// and `audit --store-name` take it.
    #[arg(long, value_name = "NAME")]
    pub store_name: Option<String>,
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn serve(args: &ServeArgs) -> Result<ExitCode, CliError> {
    let key = match &args.signing_key {
        Some(path) => Some(
            SignerKey::parse(&crate::proofs::read_text(path, "private key")?)
                .map_err(|error| CliError::usage(format!("{}: {error}", path.display())))?,
        ),
        None => None,
    };
    let store = Kimberlite::open_with(
        &args.dir,
        Config::default().durability(Durability::GroupCommit),
    )?;
    let store_name = crate::proofs::store_name(&args.dir, args.store_name.as_deref())?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|error| CliError::usage(format!("cannot start the server runtime: {error}")))?;
    let config = ServerConfig::new(args.listen);
    let mut state = AppState::new(store, KeyRing::default(), Limits::default())
        .with_store_name(&store_name)
        .map_err(|error| CliError::usage(error.to_string()))?;
    if let Some(key) = key {
        state = state.with_signing_key(key);
    }
    let followers = state.clone();
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
            .run(async move {
                shutdown_signal().await;
                // Tails never end on their own: end them, or graceful shutdown waits forever.
                followers.close_followers();
            })
            .await
            .map_err(|error| CliError::usage(error.to_string()))
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
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
