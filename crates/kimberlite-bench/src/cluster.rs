//! A Kimberlite cluster of `kimberlite-raft` nodes in this process over a network without
//! faults (`SimNetwork`: messages go from node to node in memory, not over sockets), and its
//! clients: `cluster_batch`'s figure without HTTP and the `cluster_failover` example.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use kimberlite_raft::{Cluster, ClusterOptions, NodeId, RequestId};
use tokio::runtime::Runtime;

use crate::server::store_config;

/// The name of every cluster bench's stream.
pub const STREAM: &str = "bench";

/// A cluster of `nodes` voters (ids 1..=nodes) in this process, synced Raft logs and stores
/// opened as the server opens its own, with openraft's timings of a deployment
/// (`NodeConfig::raft_defaults`), and the stream [`STREAM`].
pub struct BenchCluster {
    cluster: Arc<Cluster>,
    stream: u64,
    runtime: Runtime,
    next_client: u64,
}

impl BenchCluster {
    /// Starts the cluster in `dir` and waits for a leader.
    ///
    /// # Panics
    ///
    /// Panics if a node does not start or no leader is elected.
    #[must_use]
    pub fn start(dir: &Path, nodes: u64) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let voters: Vec<NodeId> = (1..=nodes).collect();
        let mut options = ClusterOptions::new(0);
        options.store = store_config();
        let (cluster, stream) = runtime.block_on(async {
            let cluster = Cluster::start(dir, &voters, options)
                .await
                .expect("start the bench cluster");
            let create = RequestId { client: 0, seq: 0 };
            let stream = cluster
                .create_stream(create, STREAM)
                .await
                .expect("create the bench stream");
            (Arc::new(cluster), stream)
        });
        Self {
            cluster,
            stream,
            runtime,
            next_client: 1,
        }
    }

    /// The runtime the cluster runs on.
    #[must_use]
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The cluster.
    #[must_use]
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// A client of its own request ids.
    pub fn client(&mut self) -> ClusterClient {
        let client = self.next_client;
        self.next_client += 1;
        ClusterClient {
            cluster: self.cluster.clone(),
            stream: self.stream,
            client,
            seq: 0,
        }
    }

    /// Stops every node.
    pub fn shutdown(self) {
        self.runtime.block_on(self.cluster.shutdown());
    }
}

/// A client of a [`BenchCluster`]: appends through whichever node leads (`Cluster::append`),
/// each request with its own id.
pub struct ClusterClient {
    cluster: Arc<Cluster>,
    stream: u64,
    client: u64,
    seq: u64,
}

impl ClusterClient {
    /// Appends `events` as one batch; returns once the cluster acknowledged it (committed on
    /// a majority's synced logs; docs/REPLICATION.md, "Acknowledgements and reads").
    ///
    /// # Panics
    ///
    /// Panics if the cluster does not acknowledge it.
    pub async fn append(&mut self, events: Vec<Bytes>) {
        self.seq += 1;
        let request = RequestId {
            client: self.client,
            seq: self.seq,
        };
        self.cluster
            .append(request, self.stream, events)
            .await
            .expect("the cluster acknowledges");
    }
}
