//! The leader is stopped under load, over a network that loses, delays and duplicates
//! messages: no acknowledged event is lost, none is duplicated, and a retry with the same
//! request id gets the first answer. The history of appends and reads is linearizable.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kimberlite_raft::{Cluster, Faults};

use crate::common::{
    event, join_acked, options, request, restart_leader_at, seeds, start_faulty, stream_texts, WAIT,
};
use crate::history::Recorder;

const CLIENTS: u64 = 4;
const REQUESTS_PER_CLIENT: u64 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_leader_under_load_loses_and_duplicates_nothing() {
    for seed in seeds() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Faults {
            drop_per_mille: 20,
            delay_ms_max: 5,
            duplicate_per_mille: 20,
        };
        let cluster = start_faulty(dir.path(), seed, faults).await;
        let stream = cluster.create_stream(request(0, 0), "load").await.unwrap();
        let recorder = Arc::new(Recorder::default());
        let acknowledged = Arc::new(AtomicU64::new(0));
        let mut clients = Vec::new();
        for client in 1..=CLIENTS {
            let (cluster, acknowledged) = (cluster.clone(), acknowledged.clone());
            let recorder = recorder.clone();
            clients.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for seq in 0..REQUESTS_PER_CLIENT {
                    let text = format!("c{client}-{seq}");
                    // The same request id on every retry, whoever leads: one operation.
                    let invoked = recorder.now();
                    let mut result = Err(kimberlite_raft::ClusterError::Timeout {
                        last: "not tried".into(),
                    });
                    for _ in 0..3 {
                        let events = vec![event(text.clone())];
                        result = cluster.append(request(client, seq), stream, events).await;
                        if result.is_ok() {
                            acked.push(text.clone());
                            acknowledged.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                    recorder.record_append(&text, invoked, &result);
                }
                acked
            }));
        }
        // A reader beside the writers, through the leaders, over the failover.
        let reading = Arc::new(AtomicBool::new(true));
        let reader = {
            let (cluster, recorder, reading) = (cluster.clone(), recorder.clone(), reading.clone());
            tokio::spawn(async move {
                while reading.load(Ordering::Relaxed) {
                    recorder.read(&cluster, stream).await;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        // Stop the leader once some appends are acknowledged; bring it back from its disk.
        let target = CLIENTS * REQUESTS_PER_CLIENT / 4;
        let down = Duration::from_millis(400);
        restart_leader_at(&cluster, &acknowledged, target, down, seed).await;

        let acked = join_acked(clients).await;
        reading.store(false, Ordering::Relaxed);
        reader.await.unwrap();
        let last = recorder.append_end(&cluster, stream).await;
        recorder.read(&cluster, stream).await;
        recorder
            .assert_settled(&cluster, stream, last, &acked, seed)
            .await;
        assert!(recorder.reads() > 0, "seed {seed}: no read answered");
        assert!(
            acked.len() as u64 >= CLIENTS * REQUESTS_PER_CLIENT / 2,
            "seed {seed}: {acked:?}"
        );
        cluster.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_leader_change_gets_the_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), &[1, 2, 3], options(7))
        .await
        .unwrap();
    let stream = cluster.create_stream(request(0, 0), "retry").await.unwrap();
    let first = cluster
        .append(request(4, 1), stream, vec![event("once".into())])
        .await
        .unwrap();
    // The answer was lost with the leader; the client asks the next one.
    cluster.stop(cluster.leader(WAIT).await.unwrap()).await;
    let again = cluster
        .append(request(4, 1), stream, vec![event("once".into())])
        .await
        .unwrap();
    assert_eq!(
        (again.first_offset, again.head),
        (first.first_offset, first.head)
    );
    let leader = cluster.leader(WAIT).await.unwrap();
    assert_eq!(stream_texts(&cluster, leader, stream), ["once"]);
    cluster.shutdown().await;
}
