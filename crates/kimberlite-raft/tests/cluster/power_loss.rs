//! The whole cluster over simulated disks, one `SimFileSystem` per node, and the faulty
//! simulated network: nodes lose power (what they had not synced is lost or torn) and start
//! again from what survived; a follower is cut off and rejoins; snapshots are taken often, so
//! a node behind catches up from one. Meanwhile two clients append and a reader reads. At the
//! end: no acknowledged event lost, none twice, every replica's heads and Merkle roots equal
//! at the same log position, and the history of appends and reads linearizable.
//!
//! `KIMBERLITE_RAFT_SIM_SEEDS=n` runs seeds 0..n (20 by default; docs/TESTING.md, section
//! "Replication").

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kimberlite_raft::{Cluster, Faults, NodeId};
use kimberlite_sim::fs::{FaultConfig, SimFileSystem};
use openraft::SnapshotPolicy;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::{options, request, start_over, WAIT};
use crate::history::Recorder;

const VOTERS: [NodeId; 3] = [1, 2, 3];
/// Each round: one fault (a power loss or a partition) while the clients append.
const ROUNDS: u64 = 2;
const APPENDS_PER_CLIENT_PER_ROUND: u64 = 3;
const SEEDS_DEFAULT: u64 = 20;

fn sim_seeds() -> Vec<u64> {
    let count = match std::env::var("KIMBERLITE_RAFT_SIM_SEEDS") {
        Ok(count) => count.parse().expect("KIMBERLITE_RAFT_SIM_SEEDS is a count"),
        Err(_) => SEEDS_DEFAULT,
    };
    (0..count).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_lose_power_lose_nothing_acknowledged() {
    for seed in sim_seeds() {
        run(seed).await;
    }
}

/// Two clients append `APPENDS_PER_CLIENT_PER_ROUND` events each, at the same time; a read
/// after. Returns the events acknowledged.
async fn appends(
    cluster: &Cluster,
    recorder: &Recorder,
    stream: u64,
    round: u64,
) -> BTreeSet<String> {
    let client = |client: u64| async move {
        let mut acked = BTreeSet::new();
        for n in 0..APPENDS_PER_CLIENT_PER_ROUND {
            let seq = round * APPENDS_PER_CLIENT_PER_ROUND + n;
            let text = format!("c{client}-{seq}");
            let result = recorder
                .append(cluster, request(client, seq), stream, &text)
                .await;
            if result.is_ok() {
                acked.insert(text);
            }
        }
        acked
    };
    let (first, second) = tokio::join!(client(1), client(2));
    recorder.read(cluster, stream).await;
    first.into_iter().chain(second).collect()
}

async fn run(seed: u64) {
    let disks: BTreeMap<NodeId, SimFileSystem> = VOTERS
        .iter()
        .map(|&id| (id, SimFileSystem::new(seed * 16 + id, FaultConfig::NONE)))
        .collect();
    let mut options = options(seed);
    options.raft.snapshot_policy = SnapshotPolicy::LogsSinceLast(5);
    options.raft.max_in_snapshot_log_to_keep = 0;
    options.raft.purge_batch_size = 1;
    // A node that cannot answer (cut off, stopped) is given up on sooner: a short scenario.
    options.attempt_timeout_ms = 300;
    let cluster = start_over(Path::new("/cluster"), &disks, options).await;
    cluster.network().set_faults(Faults {
        drop_per_mille: 20,
        delay_ms_max: 5,
        duplicate_per_mille: 20,
    });
    let stream = cluster.create_stream(request(0, 0), "s").await.unwrap();
    let recorder = Recorder::default();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut acked = BTreeSet::new();
    for round in 0..ROUNDS {
        let leader = cluster.leader(WAIT).await.unwrap();
        let victim = if round == 0 {
            leader
        } else {
            VOTERS[rng.random_range(0..VOTERS.len())]
        };
        if rng.random_bool(0.25) {
            // Cut off while the others go on; it catches up once healed.
            cluster.network().partition(&[victim], &VOTERS);
            acked.extend(appends(&cluster, &recorder, stream, round).await);
            cluster.network().heal();
        } else {
            // Power lost: the node's unsynced writes go; it is down while the others go on.
            cluster.stop(victim).await;
            disks[&victim].crash();
            acked.extend(appends(&cluster, &recorder, stream, round).await);
            cluster.start_node(victim).await.unwrap();
        }
    }
    let last = recorder.append_end(&cluster, stream).await;
    acked.insert("end".to_owned());
    recorder.read(&cluster, stream).await;
    recorder
        .assert_settled(&cluster, stream, last, &acked, seed)
        .await;
    let crashes: u64 = disks.values().map(|disk| disk.counts().crashes).sum();
    assert!(recorder.reads() > 0, "seed {seed}: no read answered");
    assert!(
        acked.len() as u64 > ROUNDS * APPENDS_PER_CLIENT_PER_ROUND,
        "seed {seed}: {acked:?} ({crashes} power losses)"
    );
    cluster.shutdown().await;
}
