//! A learner receives every entry and applies it, without voting; promoted, it votes.

use std::collections::BTreeSet;

use kimberlite_raft::Cluster;

use crate::common::{assert_replicas_equal, event, options, request, stream_texts, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_replicates_and_can_be_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), &[1, 2, 3], options(31))
        .await
        .unwrap();
    let stream = cluster.create_stream(request(0, 0), "s").await.unwrap();
    cluster
        .append(request(0, 1), stream, vec![event("a".into())])
        .await
        .unwrap();
    cluster.add_learner(4).await.unwrap();
    let last = cluster
        .append(request(0, 2), stream, vec![event("b".into())])
        .await
        .unwrap();
    assert_replicas_equal(&cluster, last.log_id.index).await;
    assert_eq!(stream_texts(&cluster, 4, stream), ["a", "b"]);
    let learner = cluster.node(4).unwrap();
    let membership = learner.raft().metrics().borrow().membership_config.clone();
    assert!(membership.membership().learner_ids().any(|id| id == 4));
    assert!(!membership.membership().voter_ids().any(|id| id == 4));

    cluster
        .change_voters(BTreeSet::from([1, 2, 3, 4]))
        .await
        .unwrap();
    let leader = cluster.node(cluster.leader(WAIT).await.unwrap()).unwrap();
    let membership = leader.raft().metrics().borrow().membership_config.clone();
    assert!(membership.membership().voter_ids().any(|id| id == 4));
    cluster.shutdown().await;
}
