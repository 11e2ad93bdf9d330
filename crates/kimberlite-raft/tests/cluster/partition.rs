//! A leader cut off from the majority cannot acknowledge a write or serve a linearizable
//! read; the majority elects another leader and goes on. The history of appends and reads is
//! linearizable.

use std::time::Duration;

use kimberlite::ExpectedOffset;
use kimberlite_raft::linearizability::{AppendOutcome, Operation};
use kimberlite_raft::{Cluster, WriteError};

use crate::common::{assert_replicas_equal, event, options, request, seeds, stream_texts, WAIT};
use crate::history::Recorder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_old_leader_cannot_acknowledge() {
    for seed in seeds() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = Cluster::start(dir.path(), &[1, 2, 3], options(seed))
            .await
            .unwrap();
        let stream = cluster.create_stream(request(0, 0), "split").await.unwrap();
        let recorder = Recorder::default();
        recorder
            .append(&cluster, request(0, 1), stream, "before")
            .await
            .unwrap();
        recorder.read(&cluster, stream).await;

        let old = cluster.leader(WAIT).await.unwrap();
        cluster.network().partition(&[old], &[1, 2, 3]);
        let old_node = cluster.node(old).unwrap();
        let invoked = recorder.now();
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
        let events = vec!["cut off".to_owned()];
        let outcome = AppendOutcome::Unknown;
        recorder.record(Operation::Append { events, outcome }, invoked, None);
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
        recorder
            .append(&cluster, request(0, 2), stream, "after")
            .await
            .unwrap();
        recorder.read(&cluster, stream).await;

        cluster.network().heal();
        let last = recorder
            .append(&cluster, request(0, 3), stream, "healed")
            .await
            .unwrap();
        recorder.read(&cluster, stream).await;
        assert_replicas_equal(&cluster, last.log_id.index).await;
        recorder.assert_linearizable(&cluster, old, stream, &format!("seed {seed}"));
        assert_eq!(
            stream_texts(&cluster, old, stream),
            ["before", "after", "healed"],
            "seed {seed}"
        );
        cluster.shutdown().await;
    }
}

/// A leader that cannot commit answers each append within its proposal bound, its outcome
/// unknown, instead of holding it and every append queued behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leader_answers_within_its_proposal_bound() {
    for seed in seeds() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = options(seed);
        options.proposal_timeout = Duration::from_millis(1_000);
        let cluster = Cluster::start(dir.path(), &[1, 2, 3], options)
            .await
            .unwrap();
        let stream = cluster.create_stream(request(0, 0), "bound").await.unwrap();
        cluster
            .append(request(0, 1), stream, vec![event("before".into())])
            .await
            .unwrap();
        let old = cluster.leader(WAIT).await.unwrap();
        cluster.network().partition(&[old], &[1, 2, 3]);
        let old_node = cluster.node(old).unwrap();
        for seq in 1..=2 {
            let write = old_node.append(
                request(6, seq),
                stream,
                vec![event(format!("cut off {seq}"))],
                ExpectedOffset::Any,
            );
            match tokio::time::timeout(WAIT, write).await {
                Ok(Err(WriteError::Raft(_))) => {}
                Ok(other) => panic!("seed {seed}: append {seq} answered {other:?}"),
                Err(_) => panic!("seed {seed}: append {seq} never answered"),
            }
        }
        cluster.network().heal();
        cluster
            .append(request(0, 2), stream, vec![event("healed".into())])
            .await
            .unwrap();
        cluster.shutdown().await;
    }
}
