//! Issue 20's kill loop on real processes: three `kimberlite serve` nodes on loopback, two
//! clients appending events (each answered once durable on a majority) with request ids and
//! retries, the test's own and `kimberlite-client`, while the leader is killed with SIGKILL
//! and restarted, round after round; the nodes snapshot often, so a restarted node may need
//! a snapshot. Then every acknowledged event is on every node exactly once, at the offset
//! acknowledged, and the stores are the same (heads, roots) and intact.
//!
//! `KIMBERLITE_CLUSTER_ROUNDS` sets the rounds (default 3; the long run is 100).

mod processes;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use processes::counting::{count, spawn, Counting};
use processes::Cluster;

const STREAM: &str = "kill-loop";
/// Acknowledged events each round waits for under a leader before killing it.
const EVENTS_PER_LEADER: u64 = 5;
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(60);

fn rounds() -> u64 {
    std::env::var("KIMBERLITE_CLUSTER_ROUNDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(3)
}

#[test]
fn killing_the_leader_loses_and_duplicates_no_acknowledged_event() {
    let rounds = rounds();
    let mut cluster = Cluster::start_with(3, &["--snapshot-logs", "50"]);
    let leader = cluster.wait_leader(&[]);
    cluster.create_stream(leader, STREAM);
    let urls: Vec<String> = cluster
        .ids()
        .into_iter()
        .map(|id| cluster.direct_url(id))
        .collect();
    let token = cluster.token.clone();
    let attempt_timeout = Duration::from_secs(2);
    let clients = [
        Arc::new(Counting::raw(urls.clone(), STREAM, &token, attempt_timeout)),
        Arc::new(Counting::client(&urls, STREAM, &token, attempt_timeout)),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let running: Vec<_> = clients
        .iter()
        .map(|client| spawn(Arc::clone(client), Arc::clone(&stop), u64::MAX))
        .collect();
    let progress = || -> u64 {
        clients
            .iter()
            .map(|client| client.progress.load(Ordering::SeqCst))
            .sum()
    };
    let wait_progress = |since: u64, more: u64| {
        let deadline = Instant::now() + PROGRESS_TIMEOUT;
        while progress() < since + more {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    };

    for round in 0..rounds {
        let leader = cluster.wait_leader(&[]);
        assert!(
            wait_progress(progress(), EVENTS_PER_LEADER),
            "round {round}: no progress under leader {leader}\n{}",
            cluster.logs()
        );
        cluster.kill(leader);
        let killed_at = progress();
        let next = cluster.wait_leader(&[leader]);
        assert!(
            wait_progress(killed_at, 1),
            "round {round}: leader {next} acknowledged nothing after {leader} was killed\n{}",
            cluster.logs()
        );
        cluster.spawn(leader, false);
    }
    stop.store(true, Ordering::SeqCst);
    let tallies: Vec<_> = running
        .into_iter()
        .map(|client| client.join().expect("a counting client"))
        .collect();

    cluster.wait_converged(STREAM);
    let events = cluster.same_events_everywhere(STREAM);
    let mut found = 0;
    for (client, (name, tally)) in clients
        .iter()
        .zip(["own", "kimberlite-client"].iter().zip(&tallies))
    {
        let counted = count(tally, &client.prefix(), &events);
        eprintln!(
            "{rounds} rounds, {name}: acknowledged {}, found {}, lost {}, duplicated {}, \
             found but not acknowledged {}, given up {}, retries {}",
            counted.acknowledged,
            counted.found,
            counted.lost.len(),
            counted.duplicated.len(),
            counted.found_unacknowledged,
            tally.unknown.len(),
            tally.retries
        );
        assert!(counted.lost.is_empty(), "{name}: lost {:?}", counted.lost);
        assert!(
            counted.duplicated.is_empty(),
            "{name}: duplicated {:?}",
            counted.duplicated
        );
        assert!(
            counted.misplaced.is_empty(),
            "{name}: misplaced {:?}",
            counted.misplaced
        );
        found += counted.found;
    }
    let acknowledged: usize = tallies.iter().map(|tally| tally.acknowledged.len()).sum();
    assert!(acknowledged as u64 >= rounds * EVENTS_PER_LEADER);
    assert_eq!(
        events.len(),
        found,
        "only the clients' events are in {STREAM}"
    );
    cluster.stop_and_compare_stores(&cluster.ids());
}
