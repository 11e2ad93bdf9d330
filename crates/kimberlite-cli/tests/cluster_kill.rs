//! Issue 20's kill loop on real processes: three `kimberlite serve` nodes on loopback, a
//! client appending events (each answered once durable on a majority) with request ids and
//! retries, while the leader is killed with SIGKILL and restarted, round after round. Then
//! every acknowledged event is on every node exactly once, at the offset acknowledged, and
//! the stores are the same (heads, roots) and intact.
//!
//! `KIMBERLITE_CLUSTER_ROUNDS` sets the rounds (default 3; the long run is 100).

mod processes;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader(&[]);
    cluster.create_stream(leader, STREAM);
    let urls = cluster
        .ids()
        .into_iter()
        .map(|id| cluster.direct_url(id))
        .collect();
    let counting = Arc::new(Counting::new(
        urls,
        STREAM,
        &cluster.token,
        Duration::from_secs(2),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let client = spawn(Arc::clone(&counting), Arc::clone(&stop), u64::MAX);

    for round in 0..rounds {
        let leader = cluster.wait_leader(&[]);
        let before = counting.progress.load(Ordering::SeqCst);
        assert!(
            counting.wait_progress(before, EVENTS_PER_LEADER, PROGRESS_TIMEOUT),
            "round {round}: no progress under leader {leader}\n{}",
            cluster.logs()
        );
        cluster.kill(leader);
        let killed_at = counting.progress.load(Ordering::SeqCst);
        let next = cluster.wait_leader(&[leader]);
        assert!(
            counting.wait_progress(killed_at, 1, PROGRESS_TIMEOUT),
            "round {round}: leader {next} acknowledged nothing after {leader} was killed\n{}",
            cluster.logs()
        );
        cluster.spawn(leader, false);
    }
    stop.store(true, Ordering::SeqCst);
    let tally = client.join().expect("the counting client");

    cluster.wait_converged(STREAM);
    let events = cluster.same_events_everywhere(STREAM);
    let counted = count(&tally, &counting.prefix(), &events);
    eprintln!(
        "{rounds} rounds: acknowledged {}, found {}, lost {}, duplicated {}, found but not \
         acknowledged {}, given up {}, retries {}",
        counted.acknowledged,
        counted.found,
        counted.lost.len(),
        counted.duplicated.len(),
        counted.found_unacknowledged,
        tally.unknown.len(),
        tally.retries
    );
    assert!(counted.lost.is_empty(), "lost: {:?}", counted.lost);
    assert!(
        counted.duplicated.is_empty(),
        "duplicated: {:?}",
        counted.duplicated
    );
    assert!(
        counted.misplaced.is_empty(),
        "misplaced: {:?}",
        counted.misplaced
    );
    assert!(counted.acknowledged as u64 >= rounds * EVENTS_PER_LEADER);
    assert_eq!(
        events.len(),
        counted.found,
        "only this client's events are in {STREAM}"
    );
    cluster.stop_and_compare_stores(&cluster.ids());
}
