//! `kimberlite serve --node-id N`: the flags of cluster mode and the node they start
//! (docs/SERVER.md, section "Cluster mode").

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use kimberlite_server::kimberlite_raft::openraft::SnapshotPolicy;
use kimberlite_server::{AppState, ClusterConfig, KeyRing, Limits};

use crate::error::CliError;

/// The cluster-mode flags of `kimberlite serve`.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Run as node N of a replicated cluster (Raft): writes go through the leader, reads
    /// name the log position they reflect. Without it, the single-node server.
    #[arg(long, value_name = "N", requires = "cluster_token_file")]
    pub node_id: Option<u64>,
    /// Every voter as ID=URL, comma-separated (this node's included), e.g.
    /// 1=http://127.0.0.1:7101,2=http://127.0.0.1:7102,3=http://127.0.0.1:7103. A node not
    /// among them waits to be added (`kimberlite cluster add-learner`).
    #[arg(long, value_name = "ID=URL,...", requires = "node_id")]
    pub peers: Option<String>,
    /// The cluster's shared secret (the Raft routes between nodes require it).
    #[arg(long, value_name = "FILE", requires = "node_id")]
    pub cluster_token_file: Option<PathBuf>,
    /// First start of the cluster only, on one node: make the --peers voters the cluster.
    /// Ignored (and said so) when this node's Raft log already holds a membership.
    #[arg(long, requires = "peers")]
    pub bootstrap: bool,
    /// Snapshot the replica every N applied Raft log entries, then purge the log up to the
    /// snapshot: a smaller N keeps less log and sends lagging or new nodes a snapshot sooner.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..),
        requires = "node_id"
    )]
    pub snapshot_logs: u64,
    /// Also snapshot the replica (and purge the log) once the log's entries hold N MiB of
    /// events: the log stays in memory until purged, and large batches make few entries.
    #[arg(
        long,
        value_name = "N",
        default_value_t = kimberlite_server::kimberlite_raft::SNAPSHOT_BYTES >> 20,
        value_parser = clap::value_parser!(u64).range(1..=1 << 20),
        requires = "node_id"
    )]
    pub snapshot_mib: u64,
    /// Check the other nodes' TLS certificates against the CA certificate(s) in FILE (PEM),
    /// beside the system's roots (for peers at https:// URLs).
    #[arg(long, value_name = "FILE", requires = "node_id")]
    pub cluster_ca: Option<PathBuf>,
}

/// `1=http://a,2=http://b` as a map; every entry an id and an http(s) URL, no id twice.
pub fn parse_peers(text: &str) -> Result<BTreeMap<u64, String>, CliError> {
    let mut peers = BTreeMap::new();
    for entry in text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let bad = |why: &str| CliError::usage(format!("--peers: {entry:?}: {why}"));
        let (id, url) = entry
            .split_once('=')
            .ok_or_else(|| bad("expected ID=URL"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| bad("the id is not a number"))?;
        let url = url.trim().trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(bad("the URL must start with http:// or https://"));
        }
        if peers.insert(id, url.to_owned()).is_some() {
            return Err(bad("this id is given twice"));
        }
    }
    if peers.is_empty() {
        return Err(CliError::usage("--peers: no voter given"));
    }
    Ok(peers)
}

/// Starts node `id` in `dir` and the state the server serves in cluster mode.
pub async fn start(
    args: &ClusterArgs,
    id: u64,
    dir: &std::path::Path,
    keys: KeyRing,
    limits: Limits,
) -> Result<AppState, CliError> {
    let peers = match &args.peers {
        Some(text) => parse_peers(text)?,
        None => BTreeMap::new(),
    };
    let Some(path) = &args.cluster_token_file else {
        return Err(CliError::usage(
            "--node-id needs --cluster-token-file: the Raft routes would be open to anyone",
        ));
    };
    let secret = crate::proofs::read_text(path, "cluster token")?;
    if secret.trim().is_empty() {
        return Err(CliError::usage(format!(
            "the cluster token file {} is empty",
            path.display()
        )));
    }
    if !peers.contains_key(&id) {
        eprintln!(
            "kimberlite: node {id} is not among the --peers voters: it waits to be added \
             (kimberlite cluster add-learner {id} URL)"
        );
    }
    let mut config = ClusterConfig::new(id, dir, peers, secret.trim());
    config.bootstrap = args.bootstrap;
    config.node.raft.snapshot_policy = SnapshotPolicy::LogsSinceLast(args.snapshot_logs);
    config.node.snapshot_bytes = args.snapshot_mib << 20;
    if let Some(path) = &args.cluster_ca {
        let pem = std::fs::read(path).map_err(|error| {
            CliError::usage(format!("--cluster-ca {}: {error}", path.display()))
        })?;
        config.ca_pems.push(pem);
    }
    kimberlite_server::node_state(config, keys, limits)
        .await
        .map_err(|error| CliError::usage(format!("cluster mode: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_bad_lists_are_refused() {
        let peers = parse_peers("1=http://127.0.0.1:7101, 2=https://b:7443/").unwrap();
        assert_eq!(peers[&1], "http://127.0.0.1:7101");
        assert_eq!(peers[&2], "https://b:7443");
        for bad in ["", "1", "x=http://a", "1=ftp://a", "1=http://a,1=http://b"] {
            assert!(parse_peers(bad).is_err(), "{bad}");
        }
    }
}
