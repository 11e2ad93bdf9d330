//! The leader's Raft log is synced beside replication (docs/REPLICATION.md, section "The
//! Raft log"): while the leader's log sync is held, its entry reaches the followers, but no
//! node applies it and the client has no answer; once released, all proceeds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kimberlite::ExpectedOffset;
use kimberlite_raft::{Node, NodeId};

use crate::common::{event, options, request, start_over, WAIT};
use crate::syncs::SyncCounting;

fn applied(node: &Node) -> u64 {
    node.state_machine()
        .last_applied()
        .map_or(0, |log_id| log_id.index)
}

fn last_log_index(node: &Node) -> u64 {
    node.raft().metrics().borrow().last_log_index.unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_waits_for_the_leaders_log_sync_though_the_followers_hold_it() {
    let dir = tempfile::tempdir().unwrap();
    let systems: BTreeMap<NodeId, SyncCounting> =
        (1..=3).map(|id| (id, SyncCounting::default())).collect();
    let cluster = start_over(dir.path(), &systems, options(5)).await;
    let leader = cluster.leader(WAIT).await.unwrap();
    let stream = cluster.create_stream(request(1, 0), "audit").await.unwrap();
    let node = cluster.node(leader).unwrap();
    let index = last_log_index(&node) + 1;
    cluster.wait_applied(index - 1, WAIT).await.unwrap();

    systems[&leader].hold_log(true);
    let append = tokio::spawn({
        let node = Arc::clone(&node);
        async move {
            let events = vec![event("held".into())];
            node.append(request(1, 1), stream, events, ExpectedOffset::Any)
                .await
        }
    });
    let nodes: Vec<Arc<Node>> = (1..=3).map(|id| cluster.node(id).unwrap()).collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    while nodes.iter().any(|node| last_log_index(node) < index) {
        assert!(tokio::time::Instant::now() < deadline, "not replicated");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Heartbeats carry the leader's commit meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let finished = append.is_finished();
    let applied_while_held: Vec<u64> = nodes.iter().map(|node| applied(node)).collect();
    systems[&leader].hold_log(false);
    assert!(!finished, "answered before the leader's log sync");
    assert!(
        applied_while_held.iter().all(|&at| at < index),
        "applied before the leader's log sync: {applied_while_held:?}, entry {index}"
    );

    let appended = tokio::time::timeout(WAIT, append)
        .await
        .expect("answered once released")
        .unwrap()
        .unwrap();
    assert_eq!(appended.log_id.index, index);
    cluster.wait_applied(index, WAIT).await.unwrap();
    cluster.shutdown().await;
}
