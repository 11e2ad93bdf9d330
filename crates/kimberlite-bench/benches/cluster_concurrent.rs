//! `cluster_concurrent`: single-event synced appends from 64 concurrent clients of a 3-node
//! cluster, against a single node with 64 threads, in the same process.
//!
//! - **Cluster**: three `kimberlite-raft` nodes in this process (`kimberlite_bench::cluster`:
//!   synced Raft logs, stores opened as the server opens its own, messages passed in memory
//!   over a network without faults); 64 clients, each a task with one request in flight,
//!   appending single events to one stream through the leader. An event counts once
//!   acknowledged (committed on a majority's synced logs, applied on the leader's store).
//! - **Baseline**: 64 threads each calling `Kimberlite::append` with single events on one
//!   stream of a store opened as the server opens its own (`Durability::GroupCommit`): the
//!   single node.
//!
//! Criterion measures throughput (one iteration = one event per client or thread). The
//! `RESULT` line is the median per-round ratio of short alternating rounds; the latency of
//! each append (p50, p99, slowest) over every round is printed for both sides.
//!
//! Target (issue 20): the cluster >= 0.4x the single node. Run: `cargo bench -p
//! kimberlite-bench --bench cluster_concurrent`.

use criterion::{Criterion, Throughput};
use kimberlite_bench::cluster::{BenchCluster, ClusterClient, Embedded};
use kimberlite_bench::concurrent::{single_appends, Round};
use kimberlite_bench::latency::Percentiles;
use kimberlite_bench::{median_f64, report, scaled, thousands, Target};

const CLIENTS: u64 = 64;

/// A 3-node cluster and its 64 clients.
struct Three {
    clients: Vec<ClusterClient>,
    cluster: BenchCluster,
}

impl Three {
    fn new(dir: &std::path::Path) -> Self {
        let mut cluster = BenchCluster::start(dir, 3);
        let clients = cluster.clients(CLIENTS as usize);
        Self { clients, cluster }
    }

    fn round(&mut self, per_client: u64) -> Round {
        single_appends(self.cluster.runtime(), &mut self.clients, per_client)
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut three = Three::new(&dir.path().join("three"));
    let embedded = Embedded::new(&dir.path().join("embedded"));
    let mut group = c.benchmark_group("cluster_concurrent");
    group.throughput(Throughput::Elements(CLIENTS));
    group.bench_function("three_nodes_64_clients_x1_event", |b| {
        b.iter_custom(|iters| three.round(iters).elapsed)
    });
    group.bench_function("single_node_64_threads_x1_event", |b| {
        b.iter_custom(|iters| embedded.single_appends(CLIENTS, iters).elapsed)
    });
    group.finish();
    three.cluster.shutdown();
}

fn print_ratio() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut three = Three::new(&dir.path().join("three"));
    let embedded = Embedded::new(&dir.path().join("embedded"));
    let per_client = scaled(40, 3);
    // Short alternating rounds: a virtual disk's flush latency can change several-fold within
    // seconds, so each round's ratio compares the two sides in the same period.
    three.round(per_client);
    let _ = embedded.single_appends(CLIENTS, per_client);
    let (mut cluster_latencies, mut embedded_latencies) = (Vec::new(), Vec::new());
    let (mut cluster_rates, mut embedded_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..scaled(15, 2) {
        let cluster = three.round(per_client);
        let base = embedded.single_appends(CLIENTS, per_client);
        cluster_rates.push(cluster.rate());
        embedded_rates.push(base.rate());
        ratios.push(cluster.rate() / base.rate());
        cluster_latencies.extend(cluster.latencies);
        embedded_latencies.extend(base.latencies);
    }
    let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let high = ratios.iter().copied().fold(0.0, f64::max);
    println!(
        "cluster_concurrent: latency per synced single-event append: 3 nodes, 64 clients: {}; \
         single node, 64 threads: {}",
        Percentiles::of(cluster_latencies),
        Percentiles::of(embedded_latencies)
    );
    println!("cluster_concurrent: per-round ratios from {low:.2} to {high:.2}");
    report(
        "cluster_concurrent",
        &format!(
            "3 nodes 64 clients {} events/s",
            thousands(median_f64(cluster_rates))
        ),
        &format!(
            "single node 64 threads {} events/s",
            thousands(median_f64(embedded_rates))
        ),
        median_f64(ratios),
        Target::AtLeast(0.4),
    );
    three.cluster.shutdown();
}

fn main() {
    kimberlite_bench::run(bench, print_ratio);
}
