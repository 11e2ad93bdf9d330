//! [`Cluster`]: this server's replica (a `kimberlite-raft` `Node`) and how it reaches the
//! others; the headers and the log position form the cluster routes share.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kimberlite_raft::openraft::{BasicNode, LogId, ServerState};
use kimberlite_raft::{Node, NodeConfig, NodeId, StartError};

use super::transport::HttpTransport;

/// The header naming the log position a read or write answer reflects.
pub const LOG_POSITION_HEADER: &str = "kimberlite-log-position";
/// The header carrying a write's request id (`<client id, hex>-<sequence>`).
pub const REQUEST_ID_HEADER: &str = "kimberlite-request-id";

/// How this server takes part in a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This node's id.
    pub node_id: NodeId,
    /// Every voter's base URL (this node's included), used to bootstrap and to find leaders
    /// before the membership names them.
    pub peers: BTreeMap<NodeId, String>,
    /// The secret the Raft routes require (`Authorization: Bearer <secret>`).
    pub secret: String,
    /// Initialise the cluster with `peers` as its voters (ignored when the Raft log already
    /// holds a membership).
    pub bootstrap: bool,
    /// The node's configuration (its directory is the server's).
    pub node: NodeConfig,
    /// PEM CA certificates the other nodes' TLS certificates are checked against, beside
    /// the system's roots.
    pub ca_pems: Vec<Vec<u8>>,
}

impl ClusterConfig {
    /// Node `node_id` in `dir`, with `peers` and `secret`, the defaults otherwise.
    #[must_use]
    pub fn new(
        node_id: NodeId,
        dir: &Path,
        peers: BTreeMap<NodeId, String>,
        secret: impl Into<String>,
    ) -> Self {
        Self {
            node_id,
            peers,
            secret: secret.into(),
            bootstrap: false,
            node: NodeConfig::new(node_id, dir),
            ca_pems: Vec::new(),
        }
    }
}

/// Why cluster mode did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The node did not start (its Raft log or store did not open).
    #[error(transparent)]
    Start(#[from] StartError),
    /// The configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// The node's access store (`DIR/access/`) did not open.
    #[error("the node's access store: {0}")]
    AccessStore(#[from] kimberlite::Error),
    /// Bootstrapping failed.
    #[error("bootstrap failed: {0}")]
    Bootstrap(String),
}

/// This server's replica and how it reaches the others.
#[derive(Debug)]
pub struct Cluster {
    node: Arc<Node>,
    peers: BTreeMap<NodeId, String>,
    secret: Arc<str>,
}

impl Cluster {
    /// Starts the node of `config`; with `bootstrap`, initialises the cluster with the peers
    /// as voters unless its log already holds a membership (then says so in the log).
    pub async fn start(config: ClusterConfig) -> Result<Arc<Self>, ClusterError> {
        if config.secret.trim().is_empty() {
            return Err(ClusterError::Config(
                "the cluster secret is empty: the Raft routes would be open to anyone".into(),
            ));
        }
        for (id, url) in &config.peers {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ClusterError::Config(format!(
                    "peer {id}: {url:?} is not an http:// or https:// URL"
                )));
            }
        }
        let no_certificate = |pem: &Vec<u8>| {
            reqwest::Certificate::from_pem_bundle(pem).map_or(true, |certs| certs.is_empty())
        };
        if config.ca_pems.iter().any(no_certificate) {
            return Err(ClusterError::Config(
                "a cluster CA file holds no PEM certificate".into(),
            ));
        }
        let secret: Arc<str> = Arc::from(config.secret.trim());
        let transport = HttpTransport::new(Arc::clone(&secret), &config.ca_pems)
            .map_err(|error| ClusterError::Config(error.to_string()))?;
        let node = Node::start(config.node.clone(), transport).await?;
        if config.bootstrap {
            if !config.peers.contains_key(&config.node_id) {
                return Err(ClusterError::Config(format!(
                    "--bootstrap: node {} is not among the --peers voters",
                    config.node_id
                )));
            }
            let members: BTreeMap<NodeId, BasicNode> = config
                .peers
                .iter()
                .map(|(&id, url)| (id, BasicNode::new(url.trim_end_matches('/'))))
                .collect();
            let initialized = node
                .raft()
                .is_initialized()
                .await
                .map_err(|error| ClusterError::Bootstrap(error.to_string()))?;
            if initialized {
                tracing::info!("--bootstrap ignored: the Raft log already holds a membership");
            } else {
                node.raft()
                    .initialize(members)
                    .await
                    .map_err(|error| ClusterError::Bootstrap(error.to_string()))?;
            }
        }
        Ok(Arc::new(Self {
            node,
            peers: config.peers,
            secret,
        }))
    }

    /// The replica.
    #[must_use]
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The secret the Raft routes require.
    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }

    /// The leader this node knows of, if any.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.node.raft().metrics().borrow().current_leader
    }

    /// Whether this node leads now (as far as it knows).
    #[must_use]
    pub fn is_leader(&self) -> bool {
        let metrics = self.node.raft().metrics();
        let metrics = metrics.borrow();
        metrics.state == ServerState::Leader && metrics.current_leader == Some(self.node.id())
    }

    /// The base URL of node `id`: from the membership, else from `--peers`.
    #[must_use]
    pub fn url_of(&self, id: NodeId) -> Option<String> {
        let metrics = self.node.raft().metrics();
        let from_membership = metrics
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .map(|node| node.addr.clone());
        from_membership
            .or_else(|| self.peers.get(&id).cloned())
            .map(|url| url.trim_end_matches('/').to_owned())
    }

    /// The log position this replica's store reflects now.
    #[must_use]
    pub fn applied(&self) -> Option<LogId<NodeId>> {
        self.node.state_machine().last_applied()
    }

    /// Stops the node: nothing more is written to its directory.
    pub async fn shutdown(&self) {
        self.node.shutdown().await;
    }

    /// Waits, at most `bound`, until some node leads; its id.
    pub async fn wait_for_leader(&self, bound: Duration) -> Option<NodeId> {
        let mut metrics = self.node.raft().metrics();
        let waited = tokio::time::timeout(bound, async {
            loop {
                if let Some(leader) = metrics.borrow().current_leader {
                    return Some(leader);
                }
                if metrics.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        waited.ok().flatten()
    }
}

/// A log position as the API writes it: `<term>-<leader node>-<index>` (`0-0-0` before any
/// entry), one form in every header and body.
#[must_use]
pub fn log_position(log_id: Option<LogId<NodeId>>) -> String {
    match log_id {
        Some(log_id) => format!(
            "{}-{}-{}",
            log_id.leader_id.term, log_id.leader_id.node_id, log_id.index
        ),
        None => "0-0-0".to_owned(),
    }
}
