//! Nodes that lack the purged part of the log catch up from a snapshot: a new learner, and a
//! node whose disk was wiped. A log of large entries is snapshotted and purged by its bytes.

use bytes::Bytes;
use kimberlite_raft::{Cluster, ClusterOptions};
use openraft::SnapshotPolicy;

use crate::common::{
    assert_replicas_equal, event, eventually, options, request, stream_texts, WAIT,
};

const APPENDS: u64 = 30;

/// Snapshots every 10 entries, the log purged behind them at once.
fn snapshot_often(seed: u64) -> ClusterOptions {
    let mut options = options(seed);
    options.raft.snapshot_policy = SnapshotPolicy::LogsSinceLast(10);
    options.raft.max_in_snapshot_log_to_keep = 0;
    options.raft.purge_batch_size = 1;
    options
}

/// A cluster of 1, 2, 3 with APPENDS events in stream "s", the leader's log purged.
async fn purged_cluster(dir: &std::path::Path, seed: u64) -> (Cluster, u64) {
    let cluster = Cluster::start(dir, &[1, 2, 3], snapshot_often(seed))
        .await
        .unwrap();
    let stream = cluster.create_stream(request(0, 0), "s").await.unwrap();
    for seq in 1..=APPENDS {
        cluster
            .append(request(0, seq), stream, vec![event(format!("e{seq}"))])
            .await
            .unwrap();
    }
    let leader = cluster.node(cluster.leader(WAIT).await.unwrap()).unwrap();
    eventually("the leader's log to be purged", || {
        leader.log().first_index().is_none_or(|first| first > 10)
    })
    .await;
    (cluster, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_learner_catches_up_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, stream) = purged_cluster(dir.path(), 21).await;
    cluster.add_learner(4).await.unwrap();
    let learner = cluster.node(4).unwrap();
    eventually("a snapshot installed", || {
        learner.raft().metrics().borrow().snapshot.is_some()
    })
    .await;
    let last = cluster
        .append(request(0, 99), stream, vec![event("last".into())])
        .await
        .unwrap();
    assert_replicas_equal(&cluster, last.log_id.index).await;
    assert_eq!(stream_texts(&cluster, 4, stream).len() as u64, APPENDS + 1);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_is_rebuilt_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, stream) = purged_cluster(dir.path(), 22).await;
    let leader = cluster.leader(WAIT).await.unwrap();
    let wiped = *cluster.running().iter().find(|&&id| id != leader).unwrap();
    cluster.wipe(wiped).await.unwrap();
    cluster.start_node(wiped).await.unwrap();
    let last = cluster
        .append(request(0, 99), stream, vec![event("last".into())])
        .await
        .unwrap();
    assert_replicas_equal(&cluster, last.log_id.index).await;
    let node = cluster.node(wiped).unwrap();
    assert!(
        node.raft().metrics().borrow().snapshot.is_some(),
        "no snapshot installed"
    );
    assert_eq!(
        stream_texts(&cluster, wiped, stream).len() as u64,
        APPENDS + 1
    );
    cluster.shutdown().await;
}

/// Every node snapshots and purges its log once its entries hold `snapshot_bytes` of events,
/// long before openraft's count of entries (10,000) would: batches of 64 KiB against a mark
/// of 256 KiB; the entries each node holds stay under the mark and one batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_of_large_entries_is_snapshotted_and_purged_by_its_bytes() {
    const MARK: u64 = 256 << 10;
    const BATCH: u64 = 64 << 10;
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(1);
    options.snapshot_bytes = MARK;
    options.raft.max_in_snapshot_log_to_keep = 0;
    let cluster = Cluster::start(dir.path(), &[1, 2, 3], options)
        .await
        .unwrap();
    let stream = cluster.create_stream(request(0, 0), "s").await.unwrap();
    let batch: Vec<Bytes> = (0..64u8)
        .map(|byte| Bytes::from(vec![byte; (BATCH / 64) as usize]))
        .collect();
    let mut last = 0;
    for seq in 1..=40 {
        let appended = cluster
            .append(request(0, seq), stream, batch.clone())
            .await
            .unwrap();
        last = appended.log_id.index;
    }
    for id in [1, 2, 3] {
        let node = cluster.node(id).unwrap();
        eventually("each node's log to be purged behind a snapshot", || {
            node.log().first_index().is_some_and(|first| first > 20)
                && node.log().entry_bytes() < MARK + BATCH
        })
        .await;
    }
    assert_replicas_equal(&cluster, last).await;
    for id in [1, 2, 3] {
        assert_eq!(
            stream_texts(&cluster, id, stream).len(),
            40 * 64,
            "node {id}"
        );
    }
}
