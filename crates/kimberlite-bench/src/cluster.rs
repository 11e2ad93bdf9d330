//! The cluster benches' sides: a Kimberlite cluster of `kimberlite-raft` nodes in this process
//! over a network without faults (`SimNetwork`: messages go from node to node in memory,
//! not over sockets), its clients, and the embedded store with 64 threads as the single
//! node they are compared with.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kimberlite::{ExpectedOffset, Kimberlite, StreamId};
use kimberlite_raft::{Cluster, ClusterOptions, NodeId, RequestId};
use tokio::runtime::Runtime;

use crate::concurrent::{Round, SingleAppender};
use crate::server::{open_store, store_config};

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

    /// `count` clients.
    pub fn clients(&mut self, count: usize) -> Vec<ClusterClient> {
        (0..count).map(|_| self.client()).collect()
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
    /// a majority's synced logs, applied on the leader).
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

impl SingleAppender for ClusterClient {
    async fn append_one(&mut self, event: Bytes) {
        self.append(vec![event]).await;
    }
}

/// The single node of the comparison: the embedded store, opened as the server opens its
/// own (`Durability::GroupCommit`), with the stream [`STREAM`].
pub struct Embedded {
    store: Kimberlite,
    id: StreamId,
}

impl Embedded {
    /// Opens it in `dir`.
    ///
    /// # Panics
    ///
    /// Panics if the store does not open.
    #[must_use]
    pub fn new(dir: &Path) -> Self {
        let store = open_store(dir, &[STREAM.to_string()]);
        let id = store.stream(STREAM).expect("the bench stream");
        Self { store, id }
    }

    /// Appends `batch` (synced).
    ///
    /// # Panics
    ///
    /// Panics if the append fails.
    pub fn append(&self, batch: Vec<Bytes>) {
        self.store
            .append(self.id, batch, ExpectedOffset::Any)
            .expect("append");
    }

    /// `threads` threads each append `per_thread` single events, the events the cluster's
    /// clients send (`crate::concurrent::single_appends`).
    ///
    /// # Panics
    ///
    /// Panics if an append fails.
    #[must_use]
    pub fn single_appends(&self, threads: u64, per_thread: u64) -> Round {
        let started = Instant::now();
        let latencies: Vec<Duration> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|thread| {
                    scope.spawn(move || {
                        let mut latencies = Vec::with_capacity(per_thread as usize);
                        for i in 0..per_thread {
                            let payload = crate::event(thread * 1_000_000 + i);
                            let sent = Instant::now();
                            self.append(vec![payload]);
                            latencies.push(sent.elapsed());
                        }
                        latencies
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|handle| handle.join().expect("an appending thread"))
                .collect()
        });
        Round {
            elapsed: started.elapsed(),
            latencies,
        }
    }
}
