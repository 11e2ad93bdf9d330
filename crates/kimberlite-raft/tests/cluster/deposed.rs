//! A leader deposed while an entry of its was in flight, which then catches up from a
//! snapshot that covers that entry's index (so openraft neither applies nor truncates it, and
//! never answers the proposal), answers that append (outcome unknown) and, elected again,
//! acknowledges appends: its proposer does not wait for the lost proposal
//! (docs/REPLICATION.md, section "Many writes in flight").

use std::time::Duration;

use kimberlite::ExpectedOffset;
use kimberlite_raft::{Cluster, ClusterOptions, WriteError};
use openraft::SnapshotPolicy;

use crate::common::{
    assert_each_once_everywhere, assert_replicas_equal, event, eventually, options, request, seeds,
    WAIT,
};

/// Appends the majority makes while the old leader is cut off: several snapshots' worth.
const APPENDS: u64 = 25;

/// Snapshots every 10 entries, the log purged behind them at once (as `--snapshot-logs`
/// does); proposals never time out within the test, so only the step down can answer one.
fn snapshot_often(seed: u64) -> ClusterOptions {
    let mut options = options(seed);
    options.raft.snapshot_policy = SnapshotPolicy::LogsSinceLast(10);
    options.raft.max_in_snapshot_log_to_keep = 0;
    options.raft.purge_batch_size = 1;
    options.proposal_timeout = Duration::from_secs(600);
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_answers_its_lost_proposal_and_leads_again() {
    for seed in seeds() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = Cluster::start(dir.path(), &[1, 2, 3], snapshot_often(seed))
            .await
            .unwrap();
        let stream = cluster.create_stream(request(0, 0), "s").await.unwrap();
        let mut acked = std::collections::BTreeSet::new();
        cluster
            .append(request(0, 1), stream, vec![event("before".into())])
            .await
            .unwrap();
        acked.insert("before".to_owned());

        // The leader, cut off, logs an entry it cannot commit.
        let old = cluster.leader(WAIT).await.unwrap();
        let old_node = cluster.node(old).unwrap();
        let logged = old_node.raft().metrics().borrow().last_log_index;
        cluster.network().partition(&[old], &[1, 2, 3]);
        let in_flight = tokio::spawn({
            let node = old_node.clone();
            async move {
                let events = vec![event("in flight".into())];
                node.append(request(7, 1), stream, events, ExpectedOffset::Any)
                    .await
            }
        });
        eventually("the cut-off leader to log its entry", || {
            old_node.raft().metrics().borrow().last_log_index > logged
        })
        .await;

        // The majority elects another leader and goes on past snapshots of its log.
        eventually("a leader on the majority side", || {
            cluster.running().into_iter().any(|id| {
                let metrics = cluster.node(id).unwrap().raft().metrics().borrow().clone();
                id != old && metrics.current_leader == Some(id)
            })
        })
        .await;
        for seq in 2..2 + APPENDS {
            let text = format!("e{seq}");
            cluster
                .append(request(0, seq), stream, vec![event(text.clone())])
                .await
                .unwrap();
            acked.insert(text);
        }
        let new = cluster.leader(WAIT).await.unwrap();
        assert_ne!(new, old, "seed {seed}");
        let new_node = cluster.node(new).unwrap();
        let old_entry = logged.unwrap_or(0) + 1;
        eventually(
            "the new leader's log purged past the old leader's entry",
            || {
                let purged = new_node.raft().metrics().borrow().purged;
                purged.is_some_and(|purged| purged.index > old_entry)
            },
        )
        .await;

        // Healed, the old leader steps down and catches up from a snapshot.
        cluster.network().heal();
        eventually("the old leader to install a snapshot", || {
            old_node.raft().metrics().borrow().snapshot.is_some()
        })
        .await;
        let answered = tokio::time::timeout(WAIT, in_flight).await;
        match answered {
            Ok(Ok(Err(WriteError::Raft(_) | WriteError::NotLeader { .. }))) | Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(other))) => panic!("seed {seed}: the lost proposal answered {other:?}"),
            Ok(Err(join)) => panic!("seed {seed}: {join}"),
            Err(_) => panic!("seed {seed}: the deposed leader never answered its proposal"),
        }

        // Elected again, it acknowledges (the third node votes for it; the other is stopped).
        cluster.stop(new).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        while old_node.raft().metrics().borrow().current_leader != Some(old) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "seed {seed}: the old leader was not elected again"
            );
            old_node.raft().trigger().elect().await.unwrap();
            let _ = old_node
                .raft()
                .wait(Some(Duration::from_secs(1)))
                .current_leader(old, "elected again")
                .await;
        }
        let again = tokio::time::timeout(
            WAIT,
            old_node.append(
                request(7, 2),
                stream,
                vec![event("after".into())],
                ExpectedOffset::Any,
            ),
        )
        .await;
        let appended = match again {
            Ok(Ok(appended)) => appended,
            Ok(Err(error)) => panic!("seed {seed}: the leader refused: {error}"),
            Err(_) => panic!("seed {seed}: the leader acknowledged nothing"),
        };
        acked.insert("after".to_owned());
        assert_replicas_equal(&cluster, appended.log_id.index).await;
        assert_each_once_everywhere(&cluster, stream, &acked, seed);
        cluster.shutdown().await;
    }
}
