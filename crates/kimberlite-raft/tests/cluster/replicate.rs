//! Three voters elect a leader and replicate appends: every replica ends with the same heads
//! and Merkle roots, and reads name the log position they reflect.

use kimberlite::ExpectedOffset;
use kimberlite_raft::{Cluster, Rejection, WriteError};

use crate::common::{assert_replicas_equal, event, options, request, seeds, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_replicate_appends() {
    for seed in seeds() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = Cluster::start(dir.path(), &[1, 2, 3], options(seed))
            .await
            .unwrap();
        let leader = cluster.leader(WAIT).await.unwrap();
        let stream = cluster.create_stream(request(9, 0), "audit").await.unwrap();
        let mut last = None;
        for seq in 1..=20u64 {
            let events = vec![event(format!("e{seq}a")), event(format!("e{seq}b"))];
            let appended = cluster
                .append(request(9, seq), stream, events)
                .await
                .unwrap();
            assert_eq!(appended.first_offset, (seq - 1) * 2, "seed {seed}");
            last = Some(appended);
        }
        let last = last.unwrap();
        let state = assert_replicas_equal(&cluster, last.log_id.index).await;
        let audit = state.iter().find(|(name, ..)| name == "audit").unwrap();
        assert_eq!(audit.1, last.head, "seed {seed}");
        assert_eq!(audit.1.next_offset, 40);

        let node = cluster.node(leader).unwrap();
        let (events, position) = node.read_linearizable(stream, 0, u64::MAX).await.unwrap();
        assert_eq!(events.len(), 40);
        assert_eq!(&events[39].payload[..], b"e20b");
        assert!(position.unwrap().index >= last.log_id.index);
        cluster.shutdown().await;
    }
}

/// A plain event that starts with the sealed-event marker is refused by the leader before it
/// costs an entry (every replica's store would refuse it), and the cluster goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_refuses_an_event_that_looks_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), &[1, 2, 3], options(0))
        .await
        .unwrap();
    let leader = cluster.leader(WAIT).await.unwrap();
    let stream = cluster.create_stream(request(9, 0), "audit").await.unwrap();
    let node = cluster.node(leader).unwrap();
    let last_index = || node.raft().metrics().borrow().last_log_index;
    let before = last_index();
    let forged = vec![event("ok".into()), event("\0KBSEALforged".into())];
    let refused = node
        .append(request(9, 1), stream, forged, ExpectedOffset::Any)
        .await;
    assert!(
        matches!(
            refused,
            Err(WriteError::Rejected(Rejection::Invalid { ref reason }))
                if reason.contains("event 1")
        ),
        "{refused:?}"
    );
    assert_eq!(last_index(), before, "no entry for a refused batch");
    assert!(node.halted().is_none());
    let appended = cluster
        .append(request(9, 2), stream, vec![event("next".into())])
        .await
        .unwrap();
    assert_eq!(appended.first_offset, 0);
    let state = assert_replicas_equal(&cluster, appended.log_id.index).await;
    let audit = state.iter().find(|(name, ..)| name == "audit").unwrap();
    assert_eq!(audit.1.next_offset, 1);
    cluster.shutdown().await;
}
