//! `kimberlite serve`: run the HTTP service over a store (crate `kimberlite-server`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use kimberlite::proof::{SignerKey, WitnessPolicy};
use kimberlite::{Config, Durability, Kimberlite};
use kimberlite_server::{
    AppState, KeyRing, Limits, Server, ServerConfig, TlsConfig, WitnessPolicies, WitnessingConfig,
};

use crate::error::CliError;

/// Arguments of `kimberlite serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The store directory (created if missing).
    pub dir: PathBuf,
    /// Address to listen on. Plain HTTP is refused on a non-loopback address unless
    /// --insecure-plaintext.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// The key file (`kimberlite key add|list|revoke`); default DIR/server-keys.json. The
    /// server rereads it when it changes.
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (leaf first).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Verify client certificates against these PEM CA certificates (mutual TLS); a
    /// verified certificate authenticates as the active key named as its subject common name.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (only behind something that terminates
    /// TLS): tokens cross the network as sent.
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// Sign checkpoints (`GET /v1/streams/{stream}/checkpoint` and the tiles view's) with
    /// this private key, from `kimberlite keygen`; without it the server signs none. In
    /// cluster mode give every node the same key file and the same --store-name.
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// The store name in origins (default: the directory's name), as `checkpoint`, `prove`
    /// and `audit --store-name` take it.
    #[arg(long, value_name = "NAME")]
    pub store_name: Option<String>,
    /// Have each new checkpoint of the streams PATTERN matches (default: every stream)
    /// cosigned by the witnesses of the policy in FILE (`witness <key> <url>` lines and a
    /// `quorum <k>` line). Repeatable: the first matching rule applies.
    #[arg(long, value_name = "[PATTERN=]FILE", requires = "signing_key")]
    pub witness_policy: Vec<String>,
    /// With --witness-policy: every MS milliseconds, sign a checkpoint of each witnessed
    /// stream that grew and have it witnessed; 0 witnesses only the checkpoints clients ask for.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 60_000,
        requires = "witness_policy"
    )]
    pub checkpoint_interval_ms: u64,
    /// The master key file (from `kimberlite master-keygen`): appends may then name a data
    /// subject (`?subject=`), reads open sealed events, and `POST /v1/erasures` erases.
    #[arg(long, value_name = "FILE")]
    pub master_key: Option<PathBuf>,
    /// Cluster mode (`--node-id`, `--peers`, `--cluster-token-file`, `--bootstrap`).
    #[command(flatten)]
    pub cluster: crate::serve_cluster::ClusterArgs,
}

fn usage(error: impl ToString) -> CliError {
    CliError::usage(error.to_string())
}

/// The server configuration `args` ask for, TLS files read and checked.
fn server_config(args: &ServeArgs) -> Result<ServerConfig, CliError> {
    let mut config = ServerConfig::new(args.listen);
    config.insecure_plaintext = args.insecure_plaintext;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls =
            Some(TlsConfig::from_files(cert, key, args.client_ca.as_deref()).map_err(usage)?);
    }
    config.check().map_err(usage)?;
    Ok(config)
}

/// The witnessing `args` ask for: each `--witness-policy [PATTERN=]FILE` read and checked.
fn witnessing_config(args: &ServeArgs) -> Result<WitnessingConfig, CliError> {
    let mut policies = WitnessPolicies::new();
    for rule in &args.witness_policy {
        let (pattern, path) = split_rule(rule);
        let path = Path::new(path);
        let text = crate::proofs::read_text(path, "witness policy")?;
        let policy = WitnessPolicy::parse(&text)
            .map_err(|error| CliError::usage(format!("{}: {error}", path.display())))?;
        policies
            .add(pattern, policy)
            .map_err(|error| CliError::usage(format!("{}: {error}", path.display())))?;
    }
    let mut config = WitnessingConfig::new(policies);
    config.checkpoint_interval = (args.checkpoint_interval_ms > 0)
        .then(|| Duration::from_millis(args.checkpoint_interval_ms));
    Ok(config)
}

/// `[PATTERN=]FILE`: the stream pattern (`*` without one) and the file.
fn split_rule(rule: &str) -> (&str, &str) {
    rule.split_once('=').unwrap_or(("*", rule))
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn serve(args: &ServeArgs) -> Result<ExitCode, CliError> {
    crate::serve_log::install();
    let config = server_config(args)?;
    let key_path = args
        .keys
        .clone()
        .unwrap_or_else(|| KeyRing::default_path(&args.dir));
    let keys = KeyRing::open(&key_path).map_err(usage)?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|error| CliError::usage(format!("cannot start the server runtime: {error}")))?;
    let active = keys
        .list()
        .map_err(usage)?
        .iter()
        .filter(|key| !key.revoked)
        .count();
    if active == 0 {
        eprintln!(
            "kimberlite: no keys in {}: every request is refused until one is added, e.g.\n  \
             kimberlite key add {} --name admin --allow admin:'*' --allow append:'*'",
            key_path.display(),
            args.dir.display()
        );
    }
    if args.cluster.node_id.is_some()
        && (!args.witness_policy.is_empty() || args.master_key.is_some())
    {
        return Err(CliError::usage(
            "--witness-policy and --master-key are not available in cluster mode yet: they \
             would write to one replica's store outside the Raft log, and the replicas would \
             diverge",
        ));
    }
    // Whichever node leads signs: every node must name the log alike in its origins.
    if args.cluster.node_id.is_some() && args.signing_key.is_some() && args.store_name.is_none() {
        return Err(CliError::usage(
            "in cluster mode --signing-key needs --store-name NAME, the same on every node \
             (the default, the directory's name, may differ between nodes, and the origin in \
             each checkpoint would change with the leader)",
        ));
    }
    let store_name = crate::proofs::store_name(&args.dir, args.store_name.as_deref())?;
    let mut state = match args.cluster.node_id {
        // The replica's store is DIR/store/, the node's access log DIR/access/.
        Some(id) => runtime.block_on(crate::serve_cluster::start(
            &args.cluster,
            id,
            &args.dir,
            keys,
            Limits::default(),
        ))?,
        None => {
            let store = Kimberlite::open_with(
                &args.dir,
                Config::default().durability(Durability::GroupCommit),
            )?;
            AppState::new(store, keys, Limits::default())
        }
    }
    .with_store_name(&store_name)
    .map_err(usage)?;
    if let Some(path) = &args.signing_key {
        let key = SignerKey::parse(&crate::proofs::read_text(path, "private key")?)
            .map_err(|error| CliError::usage(format!("{}: {error}", path.display())))?;
        state = state.with_signing_key(key);
    }
    if !args.witness_policy.is_empty() {
        state = state
            .with_witnessing(witnessing_config(args)?)
            .map_err(usage)?;
    }
    if let Some(path) = &args.master_key {
        state = state.with_master_key(crate::erase::load_master(path)?)?;
    }
    runtime.block_on(async {
        let server = Server::bind(&config, state).await.map_err(usage)?;
        let addr = server.local_addr().map_err(usage)?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mutual = match &args.client_ca {
            Some(ca) => format!(", client certificates checked against {}", ca.display()),
            None => String::new(),
        };
        eprintln!(
            "kimberlite: serving {} on {scheme}://{addr} ({active} active keys in {}{mutual})",
            args.dir.display(),
            key_path.display()
        );
        if let Some(id) = args.cluster.node_id {
            eprintln!(
                "kimberlite: cluster node {id}: the replica in {}, this node's access log in {}",
                args.dir.join("store").display(),
                args.dir.join("access").display()
            );
        }
        if !args.witness_policy.is_empty() {
            let background = match args.checkpoint_interval_ms {
                0 => "only checkpoints clients ask for".to_owned(),
                ms => format!("a checkpoint of each stream that grew every {ms} ms"),
            };
            eprintln!(
                "kimberlite: witnessing checkpoints per {} --witness-policy rule(s): {background}",
                args.witness_policy.len()
            );
        }
        server.run(shutdown_signal()).await.map_err(usage)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_without_a_pattern_covers_every_stream() {
        assert_eq!(split_rule("policy.txt"), ("*", "policy.txt"));
        assert_eq!(split_rule("ehr-*=/etc/w.txt"), ("ehr-*", "/etc/w.txt"));
    }
}
