//! Three servers in cluster mode in this process (`kimberlite_bench::cluster_http`), 64 HTTP
//! clients each posting single synced events to the leader, one request in flight each:
//! `cluster_concurrent`'s cluster side alone, for `perf record -g` and to see how entries
//! are filled. Prints each round's events/s, the appends per Raft entry (events over the
//! leader's log entries in the round), the latencies, and the process's CPU per event.
//!
//! Run: `cargo run --profile bench -p kimberlite-bench --example cluster_concurrent_loop --
//! [rounds] [events per client per round]`.

use kimberlite_bench::cluster::STREAM;
use kimberlite_bench::cluster_http::HttpCluster;
use kimberlite_bench::concurrent::single_appends;
use kimberlite_bench::http_client::connect_all;
use kimberlite_bench::latency::Percentiles;
use kimberlite_bench::own_cpu_seconds;

const CLIENTS: usize = 64;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut number = |default: u64| {
        args.next()
            .map_or(default, |text| text.parse().expect("a number"))
    };
    let (rounds, per_client) = (number(5), number(100));
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = HttpCluster::start(dir.path(), 3);
    let mut clients = connect_all(cluster.runtime(), cluster.leader(), STREAM, CLIENTS);
    single_appends(cluster.runtime(), &mut clients, 10);
    for _ in 0..rounds {
        let (entries_before, cpu_before) = (cluster.leader_log_index(), own_cpu_seconds());
        let round = single_appends(cluster.runtime(), &mut clients, per_client);
        let entries = cluster.leader_log_index() - entries_before;
        let events = round.latencies.len() as f64;
        let cpu = own_cpu_seconds() - cpu_before;
        println!(
            "cluster_concurrent_loop: {:.0} events/s, {:.1} appends per entry, CPU {:.0} µs per \
             event; latency {}",
            round.rate(),
            events / entries.max(1) as f64,
            cpu / events * 1e6,
            Percentiles::of(round.latencies)
        );
    }
    drop(clients);
}
