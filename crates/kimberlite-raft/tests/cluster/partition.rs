//! A leader cut off from the majority cannot acknowledge a write or serve a linearizable
//! read; the majority elects another leader and goes on.

use std::time::Duration;

use kimberlite::ExpectedOffset;
use kimberlite_raft::Cluster;

use crate::common::{assert_replicas_equal, event, options, request, seeds, stream_texts, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_old_leader_cannot_acknowledge() {
    for seed in seeds() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = Cluster::start(dir.path(), &[1, 2, 3], options(seed))
            .await
            .unwrap();
        let stream = cluster.create_stream(request(0, 0), "split").await.unwrap();
        cluster
            .append(request(0, 1), stream, vec![event("before".into())])
            .await
            .unwrap();

        let old = cluster.leader(WAIT).await.unwrap();
        cluster.network().partition(&[old], &[1, 2, 3]);
        let old_node = cluster.node(old).unwrap();
        let write = old_node.append(
            request(6, 1),
            stream,
            vec![event("cut off".into())],
            ExpectedOffset::Any,
        );
        let write = tokio::time::timeout(Duration::from_millis(1_500), write).await;
        assert!(
            !matches!(write, Ok(Ok(_))),
            "seed {seed}: the cut-off leader acknowledged"
        );
        let read = tokio::time::timeout(
            Duration::from_millis(500),
            old_node.read_linearizable(stream, 0, u64::MAX),
        )
        .await;
        assert!(
            !matches!(read, Ok(Ok(_))),
            "seed {seed}: the cut-off leader served a read"
        );

        // The majority side elects a leader of a later term and acknowledges.
        let deadline = tokio::time::Instant::now() + WAIT;
        while cluster.leader(WAIT).await.unwrap() == old {
            assert!(
                tokio::time::Instant::now() < deadline,
                "seed {seed}: no new leader"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cluster
            .append(request(0, 2), stream, vec![event("after".into())])
            .await
            .unwrap();

        cluster.network().heal();
        let last = cluster
            .append(request(0, 3), stream, vec![event("healed".into())])
            .await
            .unwrap();
        assert_replicas_equal(&cluster, last.log_id.index).await;
        assert_eq!(
            stream_texts(&cluster, old, stream),
            ["before", "after", "healed"],
            "seed {seed}"
        );
        cluster.shutdown().await;
    }
}
