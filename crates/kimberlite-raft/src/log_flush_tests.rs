//! The leader's own entries synced beside replication (`crate::log_flush`): while its
//! background sync is held, an entry reaches the followers but nothing that depends on its
//! commit happens (the leader's apply, the answer at commit, the followers' apply, the saved
//! committed id); a failed sync stops the log; a sync overtaken by a truncation publishes
//! nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kimberlite::ExpectedOffset;
use kimberlite_sim::fs::{FaultConfig, SimFileSystem};
use openraft::storage::RaftLogStorage;
use openraft::Vote;
use tokio::task::JoinHandle;

use crate::log_file::LogRecord;
use crate::log_file_tests::{entry, log_id};
use crate::log_flush::Flushed;
use crate::write::{Appended, WriteError};
use crate::{Cluster, ClusterOptions, LogStore, Node, NodeFs, NodeId, RequestId};

const WAIT: Duration = Duration::from_secs(10);

fn request(seq: u64) -> RequestId {
    RequestId { client: 22, seq }
}

fn applied(node: &Node) -> u64 {
    node.state_machine()
        .last_applied()
        .map_or(0, |log_id| log_id.index)
}

fn last_log_index(node: &Node) -> u64 {
    node.raft().metrics().borrow().last_log_index.unwrap_or(0)
}

/// A three-node cluster whose leader's background sync is held while one append's entry
/// reaches both followers (and a few heartbeats pass): the cluster, the leader, the
/// followers, the entry's index and the append's task.
struct Held {
    cluster: Cluster,
    leader: Arc<Node>,
    followers: Vec<Arc<Node>>,
    index: u64,
    append: JoinHandle<Result<Appended, WriteError>>,
}

async fn held(dir: &Path) -> Held {
    let mut options = ClusterOptions::new(25);
    options.sync = false;
    options.raft.heartbeat_interval = 50;
    let cluster = Cluster::start(dir, &[1, 2, 3], options).await.unwrap();
    let leader = cluster.leader(WAIT).await.unwrap();
    let stream = cluster.create_stream(request(1), "s").await.unwrap();
    let leader = cluster.node(leader).unwrap();
    let followers: Vec<Arc<Node>> = (1..=3)
        .filter(|id: &NodeId| *id != leader.id())
        .map(|id| cluster.node(id).unwrap())
        .collect();
    let index = last_log_index(&leader) + 1;
    cluster.wait_applied(index - 1, WAIT).await.unwrap();
    leader.log().hold_flush(true);
    let append = tokio::spawn({
        let leader = Arc::clone(&leader);
        let events = vec![Bytes::from_static(b"e")];
        async move {
            leader
                .append(request(2), stream, events, ExpectedOffset::Any)
                .await
        }
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    while followers.iter().any(|node| last_log_index(node) < index) {
        assert!(tokio::time::Instant::now() < deadline, "not replicated");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Heartbeats carry the leader's commit.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Held {
        cluster,
        leader,
        followers,
        index,
        append,
    }
}

/// Releases the sync: the append is answered and every node applies the entry.
async fn released(held: Held) {
    held.leader.log().hold_flush(false);
    let appended = tokio::time::timeout(WAIT, held.append)
        .await
        .expect("answered once the leader's log is durable")
        .unwrap()
        .unwrap();
    assert_eq!(appended.log_id.index, held.index);
    held.cluster.wait_applied(held.index, WAIT).await.unwrap();
    held.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_applies_nothing_its_log_does_not_hold_durably() {
    let dir = tempfile::tempdir().unwrap();
    let held = held(dir.path()).await;
    assert!(
        applied(&held.leader) < held.index,
        "applied before its sync"
    );
    released(held).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_at_commit_before_the_leaders_log_holds_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let held = held(dir.path()).await;
    assert!(
        !held.append.is_finished(),
        "answered before the leader's sync"
    );
    released(held).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_hear_no_commit_past_the_leaders_durable_log() {
    let dir = tempfile::tempdir().unwrap();
    let held = held(dir.path()).await;
    for follower in &held.followers {
        assert!(applied(follower) < held.index, "node {}", follower.id());
    }
    released(held).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saved_committed_id_never_passes_the_durable_log() {
    let dir = tempfile::tempdir().unwrap();
    let held = held(dir.path()).await;
    let saved = held.leader.log().saved_committed().map_or(0, |id| id.index);
    assert!(saved < held.index, "saved {saved}");
    released(held).await;
}

#[test]
fn a_sync_overtaken_by_a_synced_write_publishes_nothing() {
    let flushed = Flushed::new(Some(log_id(4)));
    let job = flushed.job(log_id(6), None);
    // A truncation from index 5 (synced): entries 5 and 6 are gone.
    flushed.synced(Some(log_id(4)));
    assert!(!flushed.advanced_for_tests(job));
    assert_eq!(flushed.now().log_id, Some(log_id(4)));
    let job = flushed.job(log_id(5), None);
    assert!(flushed.advanced_for_tests(job));
    assert_eq!(flushed.now().log_id, Some(log_id(5)));
}

#[test]
fn clamp_takes_the_lower_of_the_commit_and_the_durable_log() {
    let flushed = Flushed::new(Some(log_id(4)));
    assert_eq!(flushed.clamp(Some(log_id(6))), Some(log_id(4)));
    assert_eq!(flushed.clamp(Some(log_id(3))), Some(log_id(3)));
    assert_eq!(flushed.clamp(None), None);
    assert_eq!(Flushed::new(None).clamp(Some(log_id(1))), None);
}

/// The leader's log over a simulated disk whose syncs fail once faults are on.
async fn leading_log(fs: &SimFileSystem) -> LogStore {
    let mut log = LogStore::open_with(NodeFs::new(fs.clone()), Path::new("/node"), true)
        .unwrap()
        .of_node(1);
    log.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
    log
}

fn entries(indexes: std::ops::RangeInclusive<u64>) -> Vec<LogRecord> {
    indexes.map(entry).collect()
}

#[tokio::test]
async fn a_failed_background_sync_stops_the_log() {
    let fs = SimFileSystem::new(
        3,
        FaultConfig {
            sync_fail_probability: 1.0,
            ..FaultConfig::NONE
        },
    );
    fs.set_faults_enabled(false);
    let mut log = leading_log(&fs).await;
    fs.set_faults_enabled(true);
    // Written, told done at once; its sync fails in the background.
    log.write_entries(&entries(1..=1)).unwrap();
    let waited = tokio::time::timeout(WAIT, log.flushed().wait_for(1)).await;
    assert!(matches!(waited, Ok(Err(_))), "{waited:?}");
    fs.set_faults_enabled(false);
    assert!(
        log.write_entries(&entries(2..=2)).is_err(),
        "a write after it"
    );
    assert!(log.save_vote(&Vote::new_committed(2, 1)).await.is_err());
}

#[tokio::test]
async fn the_leaders_own_entries_are_synced_in_the_background_others_at_once() {
    let fs = SimFileSystem::new(4, FaultConfig::NONE);
    let log = leading_log(&fs).await;
    log.hold_flush(true);
    log.write_entries(&entries(1..=2)).unwrap();
    assert_eq!(
        log.flushed().now().log_id,
        None,
        "entries of the leader's term"
    );
    // An entry of another leader's term (this node's vote is its own) is synced at once.
    log.hold_flush(false);
    tokio::time::timeout(WAIT, log.flushed().wait_for(2))
        .await
        .unwrap()
        .unwrap();
    let follower = LogStore::open_with(NodeFs::new(fs.clone()), Path::new("/other"), true)
        .unwrap()
        .of_node(2);
    follower.hold_flush(true);
    follower.write_entries(&entries(1..=1)).unwrap();
    assert_eq!(follower.flushed().now().log_id, Some(log_id(1)));
}
