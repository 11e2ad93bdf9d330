//! `cluster_batch`: batches of 1,000 x 256 B appended to a 3-node cluster, synced, against a
//! single node on the same workload, in the same process.
//!
//! - **Cluster**: three `kimberlite-raft` nodes in this process (`kimberlite_bench::cluster`:
//!   synced Raft logs, stores opened as the server opens its own, messages passed in memory
//!   over a network without faults); one client appends each batch through the leader. A
//!   batch counts once acknowledged: committed on a majority's synced logs and applied on the
//!   leader's store, synced.
//! - **Baseline**: the same batch given to `Kimberlite::append` of a store opened as the
//!   server opens its own (`Durability::GroupCommit`), from one thread: the single node.
//! - Also printed: a 1-node cluster on the same workload (Raft's own cost without replicas).
//!
//! Target (issue 20): the cluster >= 0.5x the single node. Run: `cargo bench -p
//! kimberlite-bench --bench cluster_batch`.

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput};
use kimberlite_bench::cluster::{BenchCluster, ClusterClient, Embedded};
use kimberlite_bench::{
    events, interleaved, rate, report, scaled, thousands, Batches, Target, BATCH_EVENTS,
};

/// A cluster of `nodes` and its one client.
struct Side {
    client: ClusterClient,
    cluster: BenchCluster,
}

impl Side {
    fn new(dir: &std::path::Path, nodes: u64) -> Self {
        let mut cluster = BenchCluster::start(dir, nodes);
        let client = cluster.client();
        Self { client, cluster }
    }

    fn append(&mut self, batch: Vec<Bytes>) {
        let Self { client, cluster } = self;
        cluster.runtime().block_on(client.append(batch));
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let batch = events(0, BATCH_EVENTS);
    let mut three = Side::new(&dir.path().join("three"), 3);
    let embedded = Embedded::new(&dir.path().join("embedded"));
    let mut group = c.benchmark_group("cluster_batch");
    group.throughput(Throughput::Elements(BATCH_EVENTS as u64));
    group.bench_function("three_nodes_synced_1000x256B", |b| {
        b.iter_batched(
            || batch.clone(),
            |events| three.append(events),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("single_node_group_commit_1000x256B", |b| {
        b.iter_batched(
            || batch.clone(),
            |events| embedded.append(events),
            BatchSize::SmallInput,
        )
    });
    group.finish();
    three.cluster.shutdown();
}

fn print_ratio() {
    let dir = tempfile::tempdir().expect("temp dir");
    let batch = events(0, BATCH_EVENTS);
    let mut three = Side::new(&dir.path().join("three"), 3);
    let mut one = Side::new(&dir.path().join("one"), 1);
    let embedded = Embedded::new(&dir.path().join("embedded"));
    let rounds = scaled(60, 5) as usize;
    // Batches copied before the timing, for every side alike.
    let mut for_three = Batches::new(&batch, rounds + 1);
    let mut for_embedded = Batches::new(&batch, rounds + 1);
    let mut for_one = Batches::new(&batch, rounds + 1);
    let (cluster, base) = interleaved(
        rounds,
        || three.append(for_three.take()),
        || embedded.append(for_embedded.take()),
    );
    let (one_node, _) = interleaved(rounds, || one.append(for_one.take()), || {});
    let n = BATCH_EVENTS as u64;
    println!(
        "cluster_batch: per synced batch of 1,000 x 256 B: 3 nodes {cluster:.2?}, 1-node \
         cluster {one_node:.2?}, single node (embedded store) {base:.2?}"
    );
    report(
        "cluster_batch",
        &format!("3 nodes {} events/s", thousands(rate(n, cluster))),
        &format!("single node {} events/s", thousands(rate(n, base))),
        rate(n, cluster) / rate(n, base),
        Target::AtLeast(0.5),
    );
    three.cluster.shutdown();
    one.cluster.shutdown();
}

fn main() {
    kimberlite_bench::run(bench, print_ratio);
}
