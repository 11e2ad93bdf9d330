//! A certain append is answered once its entry is committed, while the leader's apply is held
//! back; an uncertain one (a retry of an answered request) still waits for the apply's answer
//! (`crate::certain`, `crate::commit_watch`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kimberlite::ExpectedOffset;

use crate::{Cluster, ClusterOptions, Node, RequestId};

const WAIT: Duration = Duration::from_secs(10);

fn request(seq: u64) -> RequestId {
    RequestId { client: 21, seq }
}

fn events(text: &str) -> Vec<Bytes> {
    vec![Bytes::from(text.to_owned())]
}

/// Three nodes, stream "s"; the leader and the stream's id.
async fn started(dir: &std::path::Path) -> (Cluster, Arc<Node>, u64) {
    let mut options = ClusterOptions::new(24);
    options.sync = false;
    let cluster = Cluster::start(dir, &[1, 2, 3], options).await.unwrap();
    let leader = cluster.leader(WAIT).await.unwrap();
    let stream = cluster.create_stream(request(1), "s").await.unwrap();
    let leader = cluster.node(leader).unwrap();
    (cluster, leader, stream)
}

fn applied(node: &Node) -> u64 {
    node.state_machine()
        .last_applied()
        .map_or(0, |log_id| log_id.index)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certain_append_is_answered_while_the_leaders_apply_is_held_back() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, leader, stream) = started(dir.path()).await;
    let held = leader.state_machine().hold_apply().await;
    let answer = leader.append(request(2), stream, events("e"), ExpectedOffset::NoStream);
    let appended = tokio::time::timeout(WAIT, answer)
        .await
        .expect("answered while the apply is held back")
        .unwrap();
    assert_eq!(appended.first_offset, 0);
    assert_eq!(appended.head.next_offset, 1);
    assert!(applied(&leader) < appended.log_id.index, "not applied yet");
    // A linearizable read waits for the apply, then sees the event.
    let read = tokio::spawn({
        let leader = Arc::clone(&leader);
        async move { leader.read_linearizable(stream, 0, u64::MAX).await }
    });
    drop(held);
    let (read, _) = read.await.unwrap().unwrap();
    assert_eq!(read.len(), 1);
    let (head, _) = leader.with_store(|store| store.head(kimberlite::StreamId::new(stream)));
    assert_eq!(crate::Head::of(head.unwrap()), appended.head);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_of_an_answered_request_waits_for_the_apply_and_gets_the_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, leader, stream) = started(dir.path()).await;
    let first = leader
        .append(request(2), stream, events("e"), ExpectedOffset::Any)
        .await
        .unwrap();
    let second = leader
        .append(request(3), stream, events("f"), ExpectedOffset::Any)
        .await
        .unwrap();
    cluster
        .wait_applied(second.log_id.index, WAIT)
        .await
        .unwrap();
    let held = leader.state_machine().hold_apply().await;
    let retry = tokio::spawn({
        let leader = Arc::clone(&leader);
        async move {
            let answer = leader.append(request(2), stream, events("e"), ExpectedOffset::Any);
            answer.await
        }
    });
    // Its entry commits, but the answer is the apply's.
    let raft = leader.raft().clone();
    raft.wait(Some(WAIT))
        .metrics(
            |metrics| metrics.last_log_index > Some(second.log_id.index),
            "the retry's entry",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!retry.is_finished(), "answered before the apply");
    drop(held);
    let again = tokio::time::timeout(WAIT, retry)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.first_offset, again.head),
        (first.first_offset, first.head)
    );
    cluster.shutdown().await;
}
