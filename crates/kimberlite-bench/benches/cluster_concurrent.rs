//! `cluster_concurrent`: single-event synced appends over HTTP from 64 concurrent clients of a
//! 3-node cluster, against one single-node server with the same clients, in the same process.
//!
//! - **Cluster**: three servers in cluster mode on 127.0.0.1 in this process
//!   (`kimberlite_bench::cluster_http`: synced Raft logs, their messages over loopback HTTP);
//!   64 clients, each a task with its own keep-alive connection to the leader and one request
//!   in flight, posting single events to one stream. An event counts once answered 200:
//!   committed on a majority's synced logs (answered then, before the leader applies it).
//! - **Baseline**: one single-node server (`kimberlite_bench::server`, as in
//!   `server_concurrent`), the same 64 clients.
//!
//! Criterion measures throughput (one iteration = one event per client). The `RESULT` line
//! is the median per-round ratio of short alternating rounds; the latency of each append
//! (p50, p99, slowest) over every round is printed for both sides.
//!
//! Target (issue 20): the cluster >= 0.4x the single node. Run: `cargo bench -p
//! kimberlite-bench --bench cluster_concurrent`.

use std::path::Path;

use criterion::{Criterion, Throughput};
use kimberlite_bench::cluster_http::HttpCluster;
use kimberlite_bench::http_client::Connected;
use kimberlite_bench::latency::Percentiles;
use kimberlite_bench::server::{open_store, BenchServer};
use kimberlite_bench::{median_f64, report, scaled, thousands, Target};

const CLIENTS: u64 = 64;
const STREAM: &str = kimberlite_bench::cluster::STREAM;

/// The 3-node cluster over HTTP and its 64 clients, connected to the leader.
fn cluster(dir: &Path) -> Connected<HttpCluster> {
    let cluster = HttpCluster::start(dir, 3);
    let leader = cluster.leader();
    Connected::new(
        cluster,
        HttpCluster::runtime,
        leader,
        STREAM,
        CLIENTS as usize,
    )
}

/// The single-node server and its 64 clients.
fn single(dir: &Path) -> Connected<BenchServer> {
    let server = BenchServer::start(open_store(dir, &[STREAM.to_string()]));
    let addr = server.addr();
    Connected::new(server, BenchServer::runtime, addr, STREAM, CLIENTS as usize)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = cluster(&dir.path().join("cluster"));
    let mut single = single(&dir.path().join("single"));
    let mut group = c.benchmark_group("cluster_concurrent");
    group.throughput(Throughput::Elements(CLIENTS));
    group.bench_function("three_nodes_http_64_clients_x1_event", |b| {
        b.iter_custom(|iters| cluster.round(iters).elapsed)
    });
    group.bench_function("single_node_http_64_clients_x1_event", |b| {
        b.iter_custom(|iters| single.round(iters).elapsed)
    });
    group.finish();
}

fn print_ratio() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = cluster(&dir.path().join("cluster"));
    let mut single = single(&dir.path().join("single"));
    let per_client = scaled(40, 3);
    // Short alternating rounds: a virtual disk's flush latency can change several-fold within
    // seconds, so each round's ratio compares the two sides in the same period.
    cluster.round(per_client);
    single.round(per_client);
    let (mut cluster_latencies, mut single_latencies) = (Vec::new(), Vec::new());
    let (mut cluster_rates, mut single_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..scaled(15, 2) {
        let three = cluster.round(per_client);
        let base = single.round(per_client);
        cluster_rates.push(three.rate());
        single_rates.push(base.rate());
        ratios.push(three.rate() / base.rate());
        cluster_latencies.extend(three.latencies);
        single_latencies.extend(base.latencies);
    }
    let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let high = ratios.iter().copied().fold(0.0, f64::max);
    println!(
        "cluster_concurrent: latency per synced single-event append, 64 HTTP clients: 3 nodes: \
         {}; single node: {}",
        Percentiles::of(cluster_latencies),
        Percentiles::of(single_latencies)
    );
    println!("cluster_concurrent: per-round ratios from {low:.2} to {high:.2}");
    report(
        "cluster_concurrent",
        &format!(
            "3 nodes 64 clients {} events/s",
            thousands(median_f64(cluster_rates))
        ),
        &format!(
            "single node 64 clients {} events/s",
            thousands(median_f64(single_rates))
        ),
        median_f64(ratios),
        Target::AtLeast(0.4),
    );
}

fn main() {
    kimberlite_bench::run(bench, print_ratio);
}
