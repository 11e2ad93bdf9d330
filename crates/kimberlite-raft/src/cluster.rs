//! [`Cluster`]: nodes in one process over a [`SimNetwork`], each in its own directory, and a
//! client that finds the leader and retries (the tests' harness; the server runs one [`Node`]
//! per process over HTTP instead).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use kimberlite::ExpectedOffset;
use openraft::{BasicNode, ServerState};
use tokio::time::Instant;

use crate::command::{Rejection, RequestId};
use crate::node::{Node, NodeConfig, StartError};
use crate::node_fs::NodeFs;
use crate::sim_network::SimNetwork;
use crate::types::NodeId;
use crate::write::{Appended, WriteError};

/// How an in-process cluster runs.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Seeds the network's faults.
    pub seed: u64,
    /// Whether nodes sync their Raft logs and saved state ([`NodeConfig::sync`]).
    pub sync: bool,
    /// openraft's configuration of every node.
    pub raft: openraft::Config,
    /// The configuration of every node's store.
    pub store: kimberlite::Config,
    /// How long the client waits for one node's answer, in milliseconds. Default = 2,000.
    pub attempt_timeout_ms: u64,
    /// How long the client keeps retrying one write, in milliseconds. Default = 20,000.
    pub write_timeout_ms: u64,
    /// Each node's file system ([`NodeConfig::fs`]); a node not listed uses the real one.
    /// A simulated one per node lets a test cut one node's power. Default = none listed.
    pub file_systems: BTreeMap<NodeId, NodeFs>,
    /// Every node's [`NodeConfig::proposal_timeout`].
    pub proposal_timeout: Duration,
    /// Every node's [`NodeConfig::snapshot_bytes`].
    pub snapshot_bytes: u64,
}

impl ClusterOptions {
    /// The defaults, with faults drawn from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            sync: true,
            raft: NodeConfig::raft_defaults(),
            store: kimberlite::Config::default(),
            attempt_timeout_ms: 2_000,
            write_timeout_ms: 20_000,
            file_systems: BTreeMap::new(),
            proposal_timeout: crate::node::PROPOSAL_TIMEOUT,
            snapshot_bytes: crate::node::SNAPSHOT_BYTES,
        }
    }
}

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A node did not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Every replica refused the write; nothing was written.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// No node acknowledged in time; the write may or may not have happened.
    #[error("no answer in time (last: {last})")]
    Timeout {
        /// The last error seen.
        last: String,
    },
    /// openraft refused a membership change or failed.
    #[error("raft: {0}")]
    Raft(String),
}

/// Nodes in one process and a client of them.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    network: SimNetwork,
    options: ClusterOptions,
    nodes: Mutex<BTreeMap<NodeId, Arc<Node>>>,
    leader_hint: Mutex<Option<NodeId>>,
}

fn address(id: NodeId) -> BasicNode {
    BasicNode::new(format!("sim://{id}"))
}

impl Cluster {
    /// Starts `voters`, each in `dir/node-<id>`, and makes them one cluster.
    pub async fn start(
        dir: &Path,
        voters: &[NodeId],
        options: ClusterOptions,
    ) -> Result<Self, ClusterError> {
        let cluster = Self {
            dir: dir.to_owned(),
            network: SimNetwork::new(options.seed),
            options,
            nodes: Mutex::new(BTreeMap::new()),
            leader_hint: Mutex::new(None),
        };
        for &id in voters {
            cluster.start_node(id).await?;
        }
        let members: BTreeMap<NodeId, BasicNode> =
            voters.iter().map(|&id| (id, address(id))).collect();
        if let Some(first) = voters.first().and_then(|&id| cluster.node(id)) {
            first
                .raft()
                .initialize(members)
                .await
                .map_err(|error| ClusterError::Raft(error.to_string()))?;
        }
        Ok(cluster)
    }

    fn nodes(&self) -> MutexGuard<'_, BTreeMap<NodeId, Arc<Node>>> {
        self.nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn hint(&self) -> MutexGuard<'_, Option<NodeId>> {
        self.leader_hint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The directory of node `id`.
    #[must_use]
    pub fn node_dir(&self, id: NodeId) -> PathBuf {
        self.dir.join(format!("node-{id}"))
    }

    /// Starts node `id` from its directory (new, or as it was left) and attaches it.
    pub async fn start_node(&self, id: NodeId) -> Result<Arc<Node>, ClusterError> {
        let config = NodeConfig {
            store: self.options.store.clone(),
            sync: self.options.sync,
            raft: self.options.raft.clone(),
            fs: self
                .options
                .file_systems
                .get(&id)
                .cloned()
                .unwrap_or_default(),
            proposal_timeout: self.options.proposal_timeout,
            snapshot_bytes: self.options.snapshot_bytes,
            ..NodeConfig::new(id, self.node_dir(id))
        };
        let node = Node::start(config, self.network.transport(id)).await?;
        self.network.attach(id, node.raft().clone());
        self.nodes().insert(id, node.clone());
        Ok(node)
    }

    /// Stops node `id` at once (as a crash of its process would: nothing more is written or
    /// sent; what it synced stays).
    pub async fn stop(&self, id: NodeId) {
        self.network.detach(id);
        let node = self.nodes().remove(&id);
        if let Some(node) = node {
            node.shutdown().await;
        }
    }

    /// Removes the directory of node `id` (stopped first): a lost disk. On the real file
    /// system only.
    pub async fn wipe(&self, id: NodeId) -> std::io::Result<()> {
        self.stop(id).await;
        std::fs::remove_dir_all(self.node_dir(id))
    }

    /// The running node `id`.
    #[must_use]
    pub fn node(&self, id: NodeId) -> Option<Arc<Node>> {
        self.nodes().get(&id).cloned()
    }

    /// The running nodes' ids.
    #[must_use]
    pub fn running(&self) -> Vec<NodeId> {
        self.nodes().keys().copied().collect()
    }

    /// The network, to inject faults.
    #[must_use]
    pub fn network(&self) -> &SimNetwork {
        &self.network
    }

    /// Waits for a running node to lead (the one of the highest term if several think so).
    pub async fn leader(&self, timeout: Duration) -> Result<NodeId, ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            let leader = self
                .nodes()
                .values()
                .filter_map(|node| {
                    let metrics = node.raft().metrics().borrow().clone();
                    (metrics.state == ServerState::Leader)
                        .then_some((metrics.current_term, node.id()))
                })
                .max();
            if let Some((_, id)) = leader {
                return Ok(id);
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Timeout {
                    last: "no leader".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts node `id` if it is not running and adds it as a learner; returns once it has
    /// caught up with the leader's log (or a snapshot of it).
    pub async fn add_learner(&self, id: NodeId) -> Result<(), ClusterError> {
        if self.node(id).is_none() {
            self.start_node(id).await?;
        }
        let leader = self.leader_node().await?;
        leader
            .raft()
            .add_learner(id, address(id), true)
            .await
            .map(|_| ())
            .map_err(|error| ClusterError::Raft(error.to_string()))
    }

    /// Makes `voters` the cluster's voters (learners among them promoted).
    pub async fn change_voters(&self, voters: BTreeSet<NodeId>) -> Result<(), ClusterError> {
        let leader = self.leader_node().await?;
        leader
            .raft()
            .change_membership(voters, false)
            .await
            .map(|_| ())
            .map_err(|error| ClusterError::Raft(error.to_string()))
    }

    async fn leader_node(&self) -> Result<Arc<Node>, ClusterError> {
        let timeout = Duration::from_millis(self.options.write_timeout_ms);
        let id = self.leader(timeout).await?;
        self.node(id).ok_or(ClusterError::Timeout {
            last: format!("leader {id} stopped"),
        })
    }

    /// Creates the stream `name` if there is none; its id.
    pub async fn create_stream(&self, request: RequestId, name: &str) -> Result<u64, ClusterError> {
        self.write(|node| async move { node.create_stream(request, name).await })
            .await
    }

    /// Appends `events` to `stream`, retrying on whichever node leads until one acknowledges
    /// or the write timeout passes.
    pub async fn append(
        &self,
        request: RequestId,
        stream: u64,
        events: Vec<Bytes>,
    ) -> Result<Appended, ClusterError> {
        self.write(|node| {
            let events = events.clone();
            async move {
                node.append(request, stream, events, ExpectedOffset::Any)
                    .await
            }
        })
        .await
    }

    async fn write<T, F, Fut>(&self, attempt: F) -> Result<T, ClusterError>
    where
        F: Fn(Arc<Node>) -> Fut,
        Fut: Future<Output = Result<T, WriteError>>,
    {
        let deadline = Instant::now() + Duration::from_millis(self.options.write_timeout_ms);
        let attempt_timeout = Duration::from_millis(self.options.attempt_timeout_ms);
        let mut last = String::from("no node running");
        for round in 0usize.. {
            if Instant::now() >= deadline {
                break;
            }
            let target = self.target(round);
            let Some(node) = target.and_then(|id| self.node(id)) else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            match tokio::time::timeout(attempt_timeout, attempt(node.clone())).await {
                Ok(Ok(value)) => {
                    *self.hint() = Some(node.id());
                    return Ok(value);
                }
                Ok(Err(WriteError::Rejected(rejection))) => return Err(rejection.into()),
                Ok(Err(WriteError::NotLeader { leader })) => {
                    last = format!("node {} is not the leader", node.id());
                    // A leader that is not running is an old one: wait for the election
                    // (an answer that needs no wait must not spin without yielding).
                    let known =
                        leader.filter(|&leader| leader != node.id() && self.node(leader).is_some());
                    *self.hint() = known;
                    if known.is_none() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    tokio::task::yield_now().await;
                }
                Ok(Err(error)) => {
                    last = error.to_string();
                    *self.hint() = None;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(_) => {
                    last = format!("node {} did not answer in time", node.id());
                    *self.hint() = None;
                }
            }
        }
        Err(ClusterError::Timeout { last })
    }

    /// The node to try: the known leader, or the running nodes in turn.
    fn target(&self, round: usize) -> Option<NodeId> {
        let hint = *self.hint();
        hint.filter(|id| self.nodes().contains_key(id)).or_else(|| {
            let running = self.running();
            running.get(round % running.len().max(1)).copied()
        })
    }

    /// Waits until every running node has applied log index `index`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), ClusterError> {
        let nodes: Vec<Arc<Node>> = self.nodes().values().cloned().collect();
        for node in nodes {
            node.raft()
                .wait(Some(timeout))
                .applied_index_at_least(Some(index), "cluster catches up")
                .await
                .map_err(|error| ClusterError::Timeout {
                    last: format!("node {}: {error}", node.id()),
                })?;
        }
        Ok(())
    }

    /// Stops every node.
    pub async fn shutdown(&self) {
        for id in self.running() {
            self.stop(id).await;
        }
    }
}
