//! Failover time of a 3-node cluster in this process (`kimberlite_bench::cluster`, openraft's
//! timings of a deployment: heartbeats every 100 ms, elections after 300 to 600 ms of
//! silence): each round stops the leader (as a crash would) and times from then to the next
//! append the cluster acknowledges, through its client that retries on whichever node leads;
//! then restarts the stopped node from its directory and lets it catch up. Prints p50 and max,
//! and the same for the time to a new leader. openraft's followers refuse to vote for
//! `election_timeout_max` after they last heard from the leader (its lease), so an election
//! takes about that plus a candidate's election timeout.
//!
//! Run: `cargo run -p kimberlite-bench --example cluster_failover [rounds]` (default 20).

use std::time::{Duration, Instant};

use kimberlite_bench::cluster::BenchCluster;
use kimberlite_bench::latency::Percentiles;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(20, |text| text.parse().expect("rounds: a number"));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut bench = BenchCluster::start(dir.path(), 3);
    let mut client = bench.client();
    let cluster = bench.cluster().clone();
    let (mut elections, mut times) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    let mut seq = 0;
    for round in 0..rounds {
        bench.runtime().block_on(async {
            seq += 1;
            client.append(vec![kimberlite_bench::event(seq)]).await;
            let leader = cluster
                .leader(Duration::from_secs(10))
                .await
                .expect("a leader");
            let stopped = Instant::now();
            cluster.stop(leader).await;
            let elected = cluster
                .leader(Duration::from_secs(10))
                .await
                .expect("a leader");
            let election = stopped.elapsed();
            seq += 1;
            client.append(vec![kimberlite_bench::event(seq)]).await;
            let took = stopped.elapsed();
            println!(
                "round {round}: node {leader} stopped; node {elected} leads after \
                 {election:.2?}; next append acknowledged after {took:.2?}"
            );
            elections.push(election);
            times.push(took);
            cluster.start_node(leader).await.expect("restart the node");
            let last = cluster
                .node(
                    cluster
                        .leader(Duration::from_secs(10))
                        .await
                        .expect("a leader"),
                )
                .and_then(|node| node.raft().metrics().borrow().last_applied)
                .map_or(0, |log_id| log_id.index);
            cluster
                .wait_applied(last, Duration::from_secs(10))
                .await
                .expect("the restarted node catches up");
        });
    }
    println!(
        "cluster_failover: leader stopped to a new leader over {rounds} rounds: {}",
        Percentiles::of(elections)
    );
    println!(
        "RESULT cluster_failover: leader stopped to next acknowledged append over {rounds} \
         rounds: {}",
        Percentiles::of(times)
    );
    bench.shutdown();
}
