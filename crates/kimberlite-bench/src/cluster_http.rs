//! Three servers in cluster mode in this process (`kimberlite serve --node-id N --peers ...`
//! as `Server`s on 127.0.0.1, their Raft messages over loopback HTTP), for the cluster benches'
//! HTTP side; clients connect to the leader (`crate::http_client`, which follows no redirect).

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use kimberlite_raft::RequestId;
use kimberlite_server::{node_state, AppState, ClusterConfig, Limits, Server, ServerConfig};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::cluster::STREAM;
use crate::server::{bench_keys, store_config};

/// The cluster secret of the bench's nodes.
const SECRET: &str = "kimberlite-bench-cluster-secret";

/// One node: its configuration, its state, and how to stop its server.
struct RunningNode {
    config: ClusterConfig,
    /// `None` once stopped: dropped, so that a restart can open its stores again.
    state: Option<AppState>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Servers in cluster mode on loopback, stopped on drop, with the stream [`STREAM`].
pub struct HttpCluster {
    nodes: Vec<RunningNode>,
    leader: SocketAddr,
    runtime: Runtime,
}

impl HttpCluster {
    /// Starts `nodes` servers in `dir/node-<id>` (synced Raft logs, stores opened as the
    /// server opens its own), the first bootstrapping the cluster; waits for a leader and
    /// creates [`STREAM`] through it.
    ///
    /// # Panics
    ///
    /// Panics if a node does not start, no leader is elected or the stream is not created.
    #[must_use]
    pub fn start(dir: &Path, nodes: u64) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("start the bench runtime");
        let listeners: Vec<(u64, TcpListener)> = (1..=nodes)
            .map(|id| (id, TcpListener::bind("127.0.0.1:0").expect("bind a node")))
            .collect();
        let peers: BTreeMap<u64, String> = listeners
            .iter()
            .map(|(id, listener)| {
                let addr = listener.local_addr().expect("a node's address");
                (*id, format!("http://{addr}"))
            })
            .collect();
        let mut running = Vec::new();
        for (index, (id, listener)) in listeners.into_iter().enumerate() {
            let mut config =
                ClusterConfig::new(id, &dir.join(format!("node-{id}")), peers.clone(), SECRET);
            config.bootstrap = index == 0;
            config.node.store = store_config();
            running.push(runtime.block_on(start_node(config, listener)));
        }
        let leader = runtime.block_on(create_stream(&running));
        Self {
            nodes: running,
            leader,
            runtime,
        }
    }

    /// The leader's address.
    #[must_use]
    pub fn leader(&self) -> SocketAddr {
        self.leader
    }

    /// The runtime the servers (and the bench's clients) run on.
    #[must_use]
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The last log index of the node that leads now (0 when none leads), to count the
    /// entries a round proposed.
    #[must_use]
    pub fn leader_log_index(&self) -> u64 {
        let leading = self.nodes.iter().find_map(|node| {
            let cluster = node.state.as_ref()?.cluster()?;
            cluster.is_leader().then_some(cluster)
        });
        leading.map_or(0, |cluster| {
            let metrics = cluster.node().raft().metrics().borrow().clone();
            metrics.last_log_index.unwrap_or(0)
        })
    }

    /// Every node's base URL.
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        let urls = self
            .nodes
            .iter()
            .map(|node| format!("http://{}", node.addr));
        urls.collect()
    }

    /// Stops the server of the node that leads now (its Raft with it), as a crash of its
    /// process would stop it from answering; returns which node it was.
    ///
    /// # Panics
    ///
    /// Panics if no running node leads.
    pub fn stop_leader(&mut self) -> usize {
        let index = self
            .nodes
            .iter()
            .position(|node| {
                let cluster = node.state.as_ref().and_then(AppState::cluster);
                cluster.is_some_and(|cluster| cluster.is_leader())
            })
            .expect("a leader");
        if let Some(node) = self.nodes.get_mut(index) {
            if let Some(stop) = node.stop.take() {
                let _ = stop.send(());
            }
            if let Some(task) = node.task.take() {
                let _ = self.runtime.block_on(task);
            }
            if let Some(cluster) = node.state.take().and_then(|state| state.cluster()) {
                self.runtime.block_on(cluster.shutdown());
            }
        }
        index
    }

    /// Starts the stopped node `index` again from its directory, on its address.
    ///
    /// # Panics
    ///
    /// Panics if its address cannot be bound again or it does not start.
    pub fn restart(&mut self, index: usize) {
        let Some(node) = self.nodes.get_mut(index) else {
            return;
        };
        let mut config = node.config.clone();
        config.bootstrap = false;
        let listener = TcpListener::bind(node.addr).expect("bind the node's address again");
        *node = self.runtime.block_on(start_node(config, listener));
    }
}

async fn start_node(config: ClusterConfig, listener: TcpListener) -> RunningNode {
    let addr = listener.local_addr().expect("a node's address");
    let state = node_state(config.clone(), bench_keys(), Limits::default())
        .await
        .expect("a node starts");
    let server = Server::with_listener(&ServerConfig::new(addr), state.clone(), listener)
        .expect("a node's server");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run(async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
    });
    RunningNode {
        config,
        state: Some(state),
        addr,
        stop: Some(stop),
        task: Some(task),
    }
}

/// Waits for a leader, creates [`STREAM`] through it; its address.
async fn create_stream(nodes: &[RunningNode]) -> SocketAddr {
    for _ in 0..1_000 {
        let leader = nodes.iter().find_map(|node| {
            let cluster = node.state.as_ref()?.cluster()?;
            cluster.is_leader().then_some((cluster, node.addr))
        });
        if let Some((cluster, addr)) = leader {
            let request = RequestId { client: 0, seq: 0 };
            if cluster.node().create_stream(request, STREAM).await.is_ok() {
                return addr;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no leader created the bench stream");
}

impl Drop for HttpCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(stop) = node.stop.take() {
                let _ = stop.send(());
            }
        }
        for node in &mut self.nodes {
            if let Some(task) = node.task.take() {
                let _ = self.runtime.block_on(task);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::concurrent::single_appends;
    use crate::http_client::connect_all;

    #[test]
    fn the_leader_acknowledges_appends_every_node_applies() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = HttpCluster::start(dir.path(), 3);
        let mut clients = connect_all(cluster.runtime(), cluster.leader(), STREAM, 4);
        let round = single_appends(cluster.runtime(), &mut clients, 3);
        assert_eq!(round.latencies.len(), 12);
        drop(clients);
        // Every node applies the 12 events (the followers soon after the leader).
        for node in &cluster.nodes {
            let state = node.state.as_ref().expect("running");
            let node_cluster = state.cluster().expect("cluster mode");
            let events = cluster.runtime().block_on(async {
                for _ in 0..500 {
                    let (count, _) = node_cluster.node().with_store(|store| {
                        let id = store.stream(STREAM).expect("the stream");
                        store.head(id).expect("head").next_offset.as_u64()
                    });
                    if count == 12 {
                        return count;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                0
            });
            assert_eq!(events, 12, "node at {}", node.addr);
        }
    }
}
