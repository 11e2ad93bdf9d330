//! Many writes in flight on the leader: concurrent appends share log entries, each is
//! answered once at its own offset, expected offsets are checked against the head the
//! appends before them leave, and a leader change with appends waiting loses and
//! duplicates nothing (docs/REPLICATION.md, section "Many writes in flight").

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kimberlite::ExpectedOffset;
use kimberlite_raft::{Cluster, ClusterError, Faults, Rejection, WriteError};

use crate::common::{
    assert_replicas_equal, event, join_acked, options, request, restart_leader_at, seeds,
    start_faulty, stream_texts, WAIT,
};
use crate::history::Recorder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_appends_share_entries_at_contiguous_offsets() {
    const CLIENTS: u64 = 64;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Arc::new(
        Cluster::start(dir.path(), &[1, 2, 3], options(3))
            .await
            .unwrap(),
    );
    let stream = cluster.create_stream(request(0, 0), "many").await.unwrap();
    let appends: Vec<_> = (1..=CLIENTS)
        .map(|client| {
            let cluster = cluster.clone();
            tokio::spawn(async move {
                let text = format!("c{client}");
                cluster
                    .append(request(client, 1), stream, vec![event(text)])
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut acked = Vec::new();
    for append in appends {
        acked.push(append.await.unwrap());
    }
    let offsets: BTreeSet<u64> = acked.iter().map(|appended| appended.first_offset).collect();
    assert_eq!(offsets, (0..CLIENTS).collect::<BTreeSet<u64>>());
    // Appends that waited while an entry was in flight went together in the next one.
    let entries: BTreeSet<u64> = acked.iter().map(|appended| appended.log_id.index).collect();
    assert!(
        (entries.len() as u64) < CLIENTS,
        "one log entry per append: {entries:?}"
    );
    let last = acked.iter().map(|appended| appended.log_id.index).max();
    assert_replicas_equal(&cluster, last.unwrap()).await;
    // Every replica syncs its store once per applied batch of entries, not once per append.
    for id in cluster.running() {
        let (syncs, _) = cluster
            .node(id)
            .unwrap()
            .with_store(|store| store.syncs_completed());
        assert!(syncs < CLIENTS, "node {id}: {syncs} store syncs");
    }
    let leader = cluster.leader(WAIT).await.unwrap();
    let texts = stream_texts(&cluster, leader, stream);
    assert_eq!(texts.len() as u64, CLIENTS);
    assert_eq!(texts.iter().collect::<HashSet<_>>().len() as u64, CLIENTS);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_answered_together_send_their_next_appends_in_one_entry() {
    // Each client sends its next append once answered: the leader waits for those it just
    // answered, so the clients stay in one group, about one entry per round, instead of
    // splitting into groups that take turns (two entries or more per round).
    const CLIENTS: u64 = 16;
    const ROUNDS: u64 = 30;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Arc::new(
        Cluster::start(dir.path(), &[1, 2, 3], options(5))
            .await
            .unwrap(),
    );
    let stream = cluster
        .create_stream(request(0, 0), "rounds")
        .await
        .unwrap();
    let clients: Vec<_> = (1..=CLIENTS)
        .map(|client| {
            let cluster = cluster.clone();
            tokio::spawn(async move {
                let mut entries = Vec::new();
                for seq in 0..ROUNDS {
                    let text = format!("c{client}-{seq}");
                    let appended = cluster
                        .append(request(client, seq), stream, vec![event(text)])
                        .await
                        .unwrap();
                    entries.push(appended.log_id.index);
                }
                entries
            })
        })
        .collect();
    let mut entries = BTreeSet::new();
    for client in clients {
        entries.extend(client.await.unwrap());
    }
    assert!(
        (entries.len() as u64) < ROUNDS * 3 / 2,
        "{} entries for {ROUNDS} rounds of {CLIENTS} clients",
        entries.len()
    );
    let leader = cluster.leader(WAIT).await.unwrap();
    assert_eq!(
        stream_texts(&cluster, leader, stream).len() as u64,
        CLIENTS * ROUNDS
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_expected_offsets_are_checked_against_the_projected_head() {
    const APPENDS: u64 = 48;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), &[1, 2, 3], options(4))
        .await
        .unwrap();
    let stream = cluster.create_stream(request(0, 0), "exact").await.unwrap();
    let leader = cluster.node(cluster.leader(WAIT).await.unwrap()).unwrap();
    let recorder = Arc::new(Recorder::default());
    // Every third append expects no offset; the others expect one of the first offsets.
    let appends: Vec<_> = (0..APPENDS)
        .map(|seq| {
            let (leader, recorder) = (leader.clone(), recorder.clone());
            tokio::spawn(async move {
                let text = format!("e{seq}");
                let expected = match seq % 3 {
                    0 => ExpectedOffset::Any,
                    _ => ExpectedOffset::Exact((seq / 3).into()),
                };
                let invoked = recorder.now();
                let result = leader
                    .append(request(1, seq), stream, vec![event(text.clone())], expected)
                    .await;
                let recorded = result.clone().map_err(|error| match error {
                    WriteError::Rejected(rejection) => ClusterError::Rejected(rejection),
                    other => panic!("{text}: {other}"),
                });
                recorder.record_append(&text, invoked, &recorded);
                (expected, result)
            })
        })
        .collect();
    let mut acked = 0;
    for append in appends {
        match append.await.unwrap() {
            (ExpectedOffset::Exact(offset), Ok(appended)) => {
                assert_eq!(appended.first_offset, offset.as_u64());
                acked += 1;
            }
            (_, Ok(_)) => acked += 1,
            (
                ExpectedOffset::Exact(offset),
                Err(WriteError::Rejected(Rejection::OffsetConflict { next_offset, .. })),
            ) => assert_ne!(next_offset, offset.as_u64()),
            (expected, other) => panic!("{expected:?}: {other:?}"),
        }
    }
    assert!(acked >= APPENDS / 3, "{acked} acknowledged");
    let texts = stream_texts(&cluster, leader.id(), stream);
    assert_eq!(texts.len(), acked as usize);
    recorder.assert_linearizable(&cluster, leader.id(), stream, "expected offsets");
    // Sequential: the head is the applied one; the same expectation twice conflicts.
    let next = texts.len() as u64;
    let exact = ExpectedOffset::Exact(next.into());
    let ok = leader
        .append(request(2, 0), stream, vec![event("n".into())], exact)
        .await
        .unwrap();
    assert_eq!(ok.first_offset, next);
    let conflict = leader
        .append(request(2, 1), stream, vec![event("m".into())], exact)
        .await
        .unwrap_err();
    assert!(
        matches!(
            conflict,
            WriteError::Rejected(Rejection::OffsetConflict { next_offset, .. })
                if next_offset == next + 1
        ),
        "{conflict}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_change_with_appends_in_flight_loses_and_duplicates_nothing() {
    const CLIENTS: u64 = 16;
    const REQUESTS_PER_CLIENT: u64 = 8;
    for seed in seeds() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Faults {
            drop_per_mille: 10,
            delay_ms_max: 3,
            duplicate_per_mille: 10,
        };
        let cluster = start_faulty(dir.path(), seed, faults).await;
        let stream = cluster
            .create_stream(request(0, 0), "flight")
            .await
            .unwrap();
        let recorder = Arc::new(Recorder::default());
        let acknowledged = Arc::new(AtomicU64::new(0));
        let clients: Vec<_> = (1..=CLIENTS)
            .map(|client| {
                let (cluster, recorder) = (cluster.clone(), recorder.clone());
                let acknowledged = acknowledged.clone();
                tokio::spawn(async move {
                    let mut acked = Vec::new();
                    for seq in 0..REQUESTS_PER_CLIENT {
                        let text = format!("c{client}-{seq}");
                        // The cluster's client retries with the same request id.
                        let result = recorder
                            .append(&cluster, request(client, seq), stream, &text)
                            .await;
                        if result.is_ok() {
                            acked.push(text);
                            acknowledged.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    acked
                })
            })
            .collect();
        let target = CLIENTS * REQUESTS_PER_CLIENT / 4;
        let down = Duration::from_millis(300);
        restart_leader_at(&cluster, &acknowledged, target, down, seed).await;
        let acked = join_acked(clients).await;
        let last = recorder.append_end(&cluster, stream).await;
        recorder
            .assert_settled(&cluster, stream, last, &acked, seed)
            .await;
        assert!(
            acked.len() as u64 >= CLIENTS * REQUESTS_PER_CLIENT / 2,
            "seed {seed}: {} acknowledged",
            acked.len()
        );
        cluster.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_does_not_answer_a_conflict_from_its_stale_head() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), &[1, 2, 3], options(5))
        .await
        .unwrap();
    let stream = cluster.create_stream(request(0, 0), "stale").await.unwrap();
    cluster
        .append(request(0, 1), stream, vec![event("one".into())])
        .await
        .unwrap();
    let old = cluster.leader(WAIT).await.unwrap();
    cluster.network().partition(&[old], &[1, 2, 3]);
    let deadline = tokio::time::Instant::now() + WAIT;
    let new = loop {
        let leader = cluster.leader(WAIT).await.unwrap();
        if leader != old {
            break leader;
        }
        assert!(tokio::time::Instant::now() < deadline, "no new leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let new_node = cluster.node(new).unwrap();
    let two = new_node
        .append(
            request(0, 2),
            stream,
            vec![event("two".into())],
            ExpectedOffset::Any,
        )
        .await
        .unwrap();
    assert_eq!(two.first_offset, 1);
    // The stream's next offset is 2; the cut-off leader still holds 1.
    let old_node = cluster.node(old).unwrap();
    let exact = ExpectedOffset::Exact(2.into());
    let answer = tokio::time::timeout(
        Duration::from_millis(1_500),
        old_node.append(request(7, 1), stream, vec![event("three".into())], exact),
    )
    .await;
    assert!(
        !matches!(
            answer,
            Ok(Err(WriteError::Rejected(Rejection::OffsetConflict { .. })))
        ),
        "the cut-off leader answered a conflict from its stale head: {answer:?}"
    );
    cluster.network().heal();
    cluster.shutdown().await;
}
