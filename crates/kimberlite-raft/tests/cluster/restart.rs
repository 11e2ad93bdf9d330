//! Every node stopped and started again from its directory: the Raft log, the vote and the
//! saved state come back, the stores agree, acknowledged events are all there, and the
//! cluster elects a leader and goes on.

use kimberlite_raft::Cluster;

use crate::common::{assert_replicas_equal, event, options, request, seeds, stream_texts, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_cluster_restarts_from_its_disks() {
    for seed in seeds() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = Cluster::start(dir.path(), &[1, 2, 3], options(seed))
            .await
            .unwrap();
        let stream = cluster.create_stream(request(0, 0), "kept").await.unwrap();
        for seq in 1..=10u64 {
            let events = vec![event(format!("e{seq}"))];
            cluster
                .append(request(0, seq), stream, events)
                .await
                .unwrap();
        }
        let before = cluster.running();
        cluster.shutdown().await;
        for &id in &before {
            cluster.start_node(id).await.unwrap();
        }
        cluster.leader(WAIT).await.unwrap();
        // A retry of an acknowledged request is still answered from the saved table.
        let again = cluster
            .append(request(0, 10), stream, vec![event("e10".into())])
            .await
            .unwrap();
        assert_eq!(again.first_offset, 9, "seed {seed}");
        let last = cluster
            .append(request(0, 11), stream, vec![event("e11".into())])
            .await
            .unwrap();
        assert_replicas_equal(&cluster, last.log_id.index).await;
        let expected: Vec<String> = (1..=11).map(|seq| format!("e{seq}")).collect();
        for id in cluster.running() {
            assert_eq!(
                stream_texts(&cluster, id, stream),
                expected,
                "seed {seed}, node {id}"
            );
        }
        cluster.shutdown().await;
    }
}
