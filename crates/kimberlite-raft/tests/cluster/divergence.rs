//! A replica that computes another head than the leader stops applying and says why; the
//! others go on (or, when the command itself is wrong, every replica stops).

use std::time::Duration;

use kimberlite::{ExpectedOffset, StreamId};
use kimberlite_raft::{Cluster, Command, DivergencePoint, Head};

use crate::common::{assert_replicas_equal, event, eventually, options, request, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_store_differs_stops_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), &[1, 2, 3], options(11))
        .await
        .unwrap();
    let stream = cluster.create_stream(request(0, 0), "audit").await.unwrap();
    let first = cluster
        .append(request(0, 1), stream, vec![event("a".into())])
        .await
        .unwrap();
    cluster
        .wait_applied(first.log_id.index, WAIT)
        .await
        .unwrap();

    // One follower's store gets an event around Raft (a bug, a hand edit, a bad restore).
    let leader = cluster.leader(WAIT).await.unwrap();
    let follower = *cluster.running().iter().find(|&&id| id != leader).unwrap();
    let bad = cluster.node(follower).unwrap();
    let (written, _) = bad
        .with_store(|store| store.append(StreamId::new(stream), ["intruder"], ExpectedOffset::Any));
    written.unwrap();

    let second = cluster
        .append(request(0, 2), stream, vec![event("b".into())])
        .await
        .unwrap();
    eventually("the follower to stop", || bad.halted().is_some()).await;
    let divergence = bad.halted().unwrap().divergence().cloned().unwrap();
    assert_eq!(divergence.point, DivergencePoint::Before);
    assert_eq!(
        (divergence.index, divergence.stream),
        (second.log_id.index, stream)
    );
    assert_eq!(divergence.expected, first.head);
    assert_eq!(divergence.computed.next_offset, 2);
    assert!(bad
        .raft()
        .wait(Some(Duration::from_secs(5)))
        .state(openraft::ServerState::Shutdown, "a stopped replica")
        .await
        .is_ok());

    // The two others acknowledge and agree.
    cluster.stop(follower).await;
    let third = cluster
        .append(request(0, 3), stream, vec![event("c".into())])
        .await
        .unwrap();
    assert_replicas_equal(&cluster, third.log_id.index).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_with_a_wrong_expected_head_stops_every_replica_that_applies_it() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), &[1, 2, 3], options(12))
        .await
        .unwrap();
    let stream = cluster.create_stream(request(0, 0), "audit").await.unwrap();
    let leader = cluster.node(cluster.leader(WAIT).await.unwrap()).unwrap();
    let events = vec![event("a".into())];
    let mut expected = Head::default().after(&events);
    expected.hash.as_mut().unwrap()[31] ^= 0x80;
    let corrupted = Command::Append {
        request: request(0, 1),
        stream,
        prev: Head::default(),
        read_at: leader.state_machine().last_applied().unwrap().index,
        expected,
        events,
    };
    let write = tokio::time::timeout(
        Duration::from_secs(3),
        leader.raft().client_write(corrupted),
    )
    .await;
    assert!(
        !matches!(write, Ok(Ok(_))),
        "a diverging write was acknowledged"
    );
    // The leader applies the entry and stops. A follower applies it, and stops, only if it
    // learns the entry is committed (from the leader before it stopped, or from a leader
    // elected later, which applies it and stops too): none applies past it.
    eventually("the leader to stop", || leader.halted().is_some()).await;
    let divergence = leader.halted().unwrap().divergence().cloned().unwrap();
    assert_eq!(divergence.point, DivergencePoint::After);
    assert_eq!(divergence.expected, expected);
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in cluster.running() {
        let node = cluster.node(id).unwrap();
        match node.halted() {
            Some(halted) => assert_eq!(halted.divergence(), Some(&divergence), "node {id}"),
            None => {
                let applied = node.state_machine().last_applied().unwrap().index;
                assert!(
                    applied < divergence.index,
                    "node {id} applied past the entry"
                );
            }
        }
    }
    cluster.shutdown().await;
}
