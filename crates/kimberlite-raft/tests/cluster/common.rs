//! What the scenarios share: seeds, options, a client's request ids, replica comparison.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kimberlite_raft::{Cluster, ClusterOptions, Faults, Head, NodeFs, NodeId, RequestId};
use kimberlite_storage::FileSystem;
use tokio::task::JoinHandle;

/// Which seeds a scenario runs: a few by default, `KIMBERLITE_RAFT_SEEDS=n` runs seeds 0..n.
pub fn seeds() -> Vec<u64> {
    match std::env::var("KIMBERLITE_RAFT_SEEDS") {
        Ok(count) => (0..count
            .parse::<u64>()
            .expect("KIMBERLITE_RAFT_SEEDS is a count"))
            .collect(),
        Err(_) => vec![1, 2],
    }
}

/// Fast timings for a cluster in one process.
pub fn options(seed: u64) -> ClusterOptions {
    let mut options = ClusterOptions::new(seed);
    options.raft.heartbeat_interval = 50;
    options.raft.election_timeout_min = 150;
    options.raft.election_timeout_max = 300;
    options.attempt_timeout_ms = 1_000;
    options
}

/// The voters `disks` names in `dir` with `options`, each node over its own file system of
/// `disks` (a simulated disk, a wrapper that counts or holds syncs).
pub async fn start_over<F>(
    dir: &Path,
    disks: &BTreeMap<NodeId, F>,
    mut options: ClusterOptions,
) -> Cluster
where
    F: FileSystem + Clone,
    F::Lock: 'static,
{
    options.file_systems = disks
        .iter()
        .map(|(&id, disk)| (id, NodeFs::new(disk.clone())))
        .collect();
    let voters: Vec<NodeId> = disks.keys().copied().collect();
    Cluster::start(dir, &voters, options).await.unwrap()
}

/// Voters 1 to 3 in `dir` with [`options`] of `seed`, over a network with `faults`, shared
/// with the client tasks of a scenario.
pub async fn start_faulty(dir: &Path, seed: u64, faults: Faults) -> Arc<Cluster> {
    let cluster = Cluster::start(dir, &[1, 2, 3], options(seed))
        .await
        .unwrap();
    cluster.network().set_faults(faults);
    Arc::new(cluster)
}

/// Every event of `stream` on node `id`, as text, once the node has applied the entries of
/// its log (waited for at most [`APPLY_WAIT`]): an append is answered at commit, before the
/// leader's apply, so a read right after an answer could miss it. A node whose log ends in
/// entries that never commit (cut off from the majority) is read after the wait, as it is.
pub fn stream_texts(cluster: &Cluster, id: NodeId, stream: u64) -> Vec<String> {
    let node = cluster.node(id).expect("node running");
    // Not `Cluster::wait_applied`: that one is async (callers here are not, e.g.
    // `Recorder::assert_linearizable`), waits for one index on every node and fails at its
    // timeout, where this waits for this node's own last index and reads on at the deadline.
    let deadline = Instant::now() + APPLY_WAIT;
    loop {
        let (applied, last) = {
            let metrics = node.raft().metrics();
            let metrics = metrics.borrow();
            (
                metrics.last_applied.map(|log_id| log_id.index),
                metrics.last_log_index,
            )
        };
        if applied >= last || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let (events, _) = node.read(stream, 0, u64::MAX);
    events
        .expect("read")
        .iter()
        .map(|event| String::from_utf8(event.payload.to_vec()).expect("text"))
        .collect()
}

/// Every running node holds every event of `acked` in `stream`, and no event twice (the
/// no-loss and no-duplicate invariants of the scenarios).
pub fn assert_each_once_everywhere(
    cluster: &Cluster,
    stream: u64,
    acked: &BTreeSet<String>,
    seed: u64,
) {
    for id in cluster.running() {
        let texts = stream_texts(cluster, id, stream);
        let unique: HashSet<&String> = texts.iter().collect();
        assert_eq!(
            unique.len(),
            texts.len(),
            "seed {seed}: duplicates on node {id}"
        );
        for text in acked {
            assert!(unique.contains(text), "seed {seed}: node {id} lost {text}");
        }
    }
}

/// Waits until `check` holds, polling; panics after [`WAIT`].
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A failover under load: once `acknowledged` reaches `count` (a panic naming `seed` after
/// [`WAIT`]), stops the leader, waits `down` and starts it again from its disk.
pub async fn restart_leader_at(
    cluster: &Cluster,
    acknowledged: &AtomicU64,
    count: u64,
    down: Duration,
    seed: u64,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while acknowledged.load(Ordering::Relaxed) < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "seed {seed}: no progress"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let old = cluster.leader(WAIT).await.unwrap();
    cluster.stop(old).await;
    tokio::time::sleep(down).await;
    cluster.start_node(old).await.unwrap();
}

/// Every text the `clients` tasks acknowledged, once they are all done.
pub async fn join_acked(clients: Vec<JoinHandle<Vec<String>>>) -> BTreeSet<String> {
    let mut acked = BTreeSet::new();
    for client in clients {
        acked.extend(client.await.unwrap());
    }
    acked
}

pub const WAIT: Duration = Duration::from_secs(20);
/// How long [`stream_texts`] waits for a node to apply its log.
pub const APPLY_WAIT: Duration = Duration::from_secs(5);

pub fn request(client: u64, seq: u64) -> RequestId {
    RequestId { client, seq }
}

pub fn event(text: String) -> Bytes {
    Bytes::from(text)
}

/// Every stream's name, head and Merkle root on node `id`.
pub fn replica_state(cluster: &Cluster, id: NodeId) -> Vec<(String, Head, [u8; 32])> {
    let node = cluster.node(id).expect("node running");
    let (state, _) = node.with_store(|store| {
        store
            .list_streams()
            .into_iter()
            .map(|info| {
                let root = store.tree_head(info.id).expect("tree head").root.0;
                (info.name, Head::of(info.head), root)
            })
            .collect::<Vec<_>>()
    });
    state
}

/// Waits until every running node applied `index`, then checks they hold the same heads and
/// roots; returns that state.
pub async fn assert_replicas_equal(cluster: &Cluster, index: u64) -> Vec<(String, Head, [u8; 32])> {
    cluster
        .wait_applied(index, WAIT)
        .await
        .expect("replicas catch up");
    let running = cluster.running();
    let first = replica_state(cluster, running[0]);
    for &id in &running[1..] {
        assert_eq!(
            replica_state(cluster, id),
            first,
            "node {id} differs from node {}",
            running[0]
        );
    }
    first
}
