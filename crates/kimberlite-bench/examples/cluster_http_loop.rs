//! Three servers in cluster mode in this process (`kimberlite_bench::cluster_http`, Raft
//! messages over loopback HTTP), one client posting synced batches of 1,000 x 256 B to the
//! leader and nothing else, so a profiler (`perf record -g`) sees only the cluster's HTTP
//! path; prints the median batch time and the process's CPU per batch (all three nodes and the
//! client, from `/proc/self/stat`: a figure a busy machine moves far less than times). `cluster_batch`'s "3 nodes over HTTP"
//! side, without the single node beside it.
//!
//! Run: `cargo run --profile bench -p kimberlite-bench --example cluster_http_loop -- [batches]`.

use std::time::{Duration, Instant};

use kimberlite_bench::cluster::STREAM;
use kimberlite_bench::cluster_http::HttpCluster;
use kimberlite_bench::http_client::{connect_all, length_prefixed};
use kimberlite_bench::{events, median, own_cpu_seconds, BATCH_EVENTS};

fn main() {
    let batches: usize = std::env::args()
        .nth(1)
        .map_or(200, |text| text.parse().expect("batches: a number"));
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = HttpCluster::start(dir.path(), 3);
    let mut client = connect_all(cluster.runtime(), cluster.leader(), STREAM, 1)
        .pop()
        .expect("one client");
    let body = length_prefixed(&events(0, BATCH_EVENTS));
    let cpu_before = own_cpu_seconds();
    let times: Vec<Duration> = (0..batches)
        .map(|_| {
            let started = Instant::now();
            cluster
                .runtime()
                .block_on(client.append_batch(body.clone()));
            started.elapsed()
        })
        .collect();
    let cpu = (own_cpu_seconds() - cpu_before) / batches.max(1) as f64;
    drop(client);
    println!(
        "cluster_http_loop: {batches} synced batches of {BATCH_EVENTS} x 256 B over HTTP on 3 \
         nodes: median {:.2?}, CPU {:.2} ms per batch",
        median(times),
        cpu * 1e3
    );
}
