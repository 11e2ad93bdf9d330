//! Failover time of three servers in cluster mode in this process
//! (`kimberlite_bench::cluster_http`, Raft messages over loopback HTTP, openraft's timings of
//! `NodeConfig::raft_defaults`): each round stops the leader's server (its Raft with it) and
//! times from then to the next append `kimberlite-client` gets acknowledged (it knows every
//! node, follows redirects to the leader and retries with its default policy, whose pauses
//! are part of the time); then starts the stopped node again from its directory. Prints p50
//! and max.
//!
//! Run: `cargo run -p kimberlite-bench --example cluster_failover_http [rounds]` (default 20).

use std::time::{Duration, Instant};

use kimberlite_bench::cluster::STREAM;
use kimberlite_bench::cluster_http::HttpCluster;
use kimberlite_bench::latency::Percentiles;
use kimberlite_bench::server::TOKEN;
use kimberlite_client::Client;

fn main() {
    let rounds: u64 = std::env::args()
        .nth(1)
        .map_or(20, |text| text.parse().expect("rounds: a number"));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = HttpCluster::start(dir.path(), 3);
    let urls = cluster.urls();
    let mut builder = Client::builder(&urls[0]).token(TOKEN);
    for url in &urls[1..] {
        builder = builder.other_node(url);
    }
    let client = builder.build().expect("a client");
    let mut times = Vec::new();
    for round in 0..rounds {
        let event = kimberlite_bench::event(2 * round);
        client.append(STREAM, &[event], None).expect("an append");
        let stopped_at = Instant::now();
        let stopped = cluster.stop_leader();
        let event = kimberlite_bench::event(2 * round + 1);
        client
            .append(STREAM, &[event], None)
            .expect("an append after the failover");
        let took = stopped_at.elapsed();
        println!("round {round}: leader stopped; next append acknowledged after {took:.2?}");
        times.push(took);
        cluster.restart(stopped);
        // Let the restarted node catch up before the next round stops a leader.
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "RESULT cluster_failover_http: leader stopped to next acknowledged append over {rounds} \
         rounds: {}",
        Percentiles::of(times)
    );
}
