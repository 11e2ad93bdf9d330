//! A node's disk wiped and rebuilt, on real processes (issue 20): three `kimberlite serve`
//! nodes snapshot often, so the leader's Raft log no longer starts at the beginning; a
//! follower is killed and its directory wiped; a new node (a new id, in the wiped directory)
//! is added as a learner with `kimberlite cluster add-learner`, catches up from a snapshot,
//! is promoted, and the old id is removed. Then the three voters hold the same events and the
//! same stores (heads, roots), intact.

mod processes;

use std::time::Duration;

use processes::{kimberlite, text, Cluster};
use serde_json::json;

const STREAM: &str = "rejoin";
/// Raft log entries between snapshots: small, so the leader purges its log in the test.
const SNAPSHOT_LOGS: &str = "8";
const EVENTS_BEFORE: usize = 30;

fn append(cluster: &Cluster, id: u64, text: &str) {
    let url = format!("{}/v1/streams/{STREAM}/events", cluster.direct_url(id));
    let answer = cluster
        .http
        .post(&url, &json!([text]), None)
        .expect("append");
    assert_eq!(answer.status, 200, "append {text}: {}", answer.body);
}

/// `kimberlite cluster ARGS --server <node id> --token-file token`.
fn cluster_command(cluster: &Cluster, id: u64, args: &[&str]) -> String {
    let server = cluster.direct_url(id);
    let mut all: Vec<&str> = vec!["cluster"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "--server",
        &server,
        "--token-file",
        text(&cluster.token_file),
    ]);
    kimberlite(&all)
}

/// The index in a log position `<term>-<node>-<index>`.
fn index_of(position: &str) -> u64 {
    position
        .rsplit('-')
        .next()
        .and_then(|i| i.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_wiped_node_rejoins_under_a_new_id_from_a_snapshot() {
    let mut cluster = Cluster::start_with(3, &["--snapshot-logs", SNAPSHOT_LOGS]);
    let leader = cluster.wait_leader(&[]);
    cluster.create_stream(leader, STREAM);
    for n in 0..EVENTS_BEFORE {
        append(&cluster, leader, &format!("before {n}"));
    }
    cluster.wait_converged(STREAM);
    let status = cluster.status(leader).expect("the leader's status");
    let purged = status["purged"].as_str().map_or(0, index_of);
    assert!(
        purged > 0,
        "the leader's log is purged up to a snapshot: {status}"
    );

    let wiped = cluster
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("a follower");
    cluster.kill(wiped);
    let dir = cluster.dir(wiped);
    std::fs::remove_dir_all(&dir).expect("wipe the node's directory");
    append(&cluster, leader, "while a node is down");

    cluster.spawn_newcomer(4, dir);
    let url = cluster.url(4);
    cluster_command(&cluster, leader, &["add-learner", "4", &url]);
    cluster.wait_converged(STREAM);
    let newcomer = cluster.status(4).expect("node 4's status");
    let snapshot = newcomer["snapshot"].as_str().map_or(0, index_of);
    assert!(
        snapshot >= purged,
        "node 4 holds a snapshot past {purged}: {newcomer}"
    );
    cluster_command(&cluster, leader, &["promote", "4"]);
    cluster_command(&cluster, leader, &["remove", &wiped.to_string()]);
    let voters: Vec<u64> = cluster.status(leader).expect("status")["voters"]
        .as_array()
        .expect("voters")
        .iter()
        .map(|member| member["id"].as_u64().expect("an id"))
        .collect();
    let mut expected: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|&id| id != wiped)
        .collect();
    expected.sort_unstable();
    assert_eq!(voters, expected);

    append(&cluster, leader, "after the new node joined");
    cluster.wait_converged(STREAM);
    let events = cluster.same_events_everywhere(STREAM);
    assert_eq!(events.len(), EVENTS_BEFORE + 2);
    // The new voter counts: with the wiped node gone, two of {leader, other, 4} are a majority.
    let other = expected
        .iter()
        .copied()
        .find(|&id| id != leader && id != 4)
        .expect("one more");
    cluster.kill(other);
    std::thread::sleep(Duration::from_millis(100));
    append(
        &cluster,
        cluster.wait_leader(&[other]),
        "with node 4 in the majority",
    );
    cluster.spawn(other, false);
    cluster.wait_converged(STREAM);
    cluster.stop_and_compare_stores(&expected);
}
