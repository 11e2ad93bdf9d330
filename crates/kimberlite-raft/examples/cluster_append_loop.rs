//! Three nodes in this process (messages passed in memory, synced Raft logs and stores), one
//! client appending synced batches of 1,000 x 256 B through the leader and nothing else, so a
//! profiler (`perf record -g`, `strace -f -c`) sees only the Raft path; prints the median
//! batch time. The `cluster_batch` bench's "3 nodes without HTTP" figure, without its other
//! dependencies (docs/PERFORMANCE.md, section "Why the unmet targets are not met").
//!
//! Run: `cargo run --profile bench -p kimberlite-raft --example cluster_append_loop -- [batches]`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kimberlite_raft::{Cluster, ClusterOptions, RequestId};

const BATCH_EVENTS: usize = 1_000;
const EVENT_BYTES: usize = 256;

fn main() {
    let batches: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut options = ClusterOptions::new(0);
    options.store = kimberlite::Config::default().durability(kimberlite::Durability::GroupCommit);
    let mut times: Vec<Duration> = runtime.block_on(async {
        let cluster = Cluster::start(dir.path(), &[1, 2, 3], options)
            .await
            .expect("start the cluster");
        let stream = cluster
            .create_stream(RequestId { client: 0, seq: 0 }, "bench")
            .await
            .expect("create the stream");
        let mut times = Vec::new();
        for seq in 1..=batches {
            let events: Vec<Bytes> = (0..BATCH_EVENTS)
                .map(|i| Bytes::from(vec![(seq as usize + i) as u8; EVENT_BYTES]))
                .collect();
            let start = Instant::now();
            cluster
                .append(RequestId { client: 1, seq }, stream, events)
                .await
                .expect("the cluster acknowledges");
            times.push(start.elapsed());
        }
        cluster.shutdown().await;
        times
    });
    times.sort();
    println!(
        "cluster_append_loop: {batches} synced batches of {BATCH_EVENTS} x {EVENT_BYTES} B on 3 nodes: median {:.2?}, p90 {:.2?}",
        times[times.len() / 2],
        times[times.len() * 9 / 10]
    );
}
