//! Three voters elect a leader and replicate appends: every replica ends with the same heads
//! and Merkle roots, and reads name the log position they reflect.

use kimberlite_raft::Cluster;

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
