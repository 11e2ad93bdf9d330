//! The end state of a test: every node's copy of the stream the same, event for event, and
//! every node's store the same, stream for stream (id, head, Merkle root), `verify` intact.

use std::path::Path;
use std::time::{Duration, Instant};

use kimberlite::{Config, Kimberlite};

use super::{kimberlite, text, Cluster, SETTLE_TIMEOUT};

/// One stream of a store as the comparison sees it: name, id, next offset, head, root.
pub type StreamState = (String, u64, u64, String, String);

/// The live store of the node in `dir`: `store/`, or `store-N/` once the node installed a
/// snapshot (N in `store.current`; docs/REPLICATION.md, section "Snapshots").
pub fn live_store(dir: &Path) -> std::path::PathBuf {
    match std::fs::read_to_string(dir.join("store.current")) {
        Ok(text) if text.trim() != "0" => dir.join(format!("store-{}", text.trim())),
        _ => dir.join("store"),
    }
}

/// Every stream of the store in `dir` (opened read-only: the node is stopped or not).
pub fn store_state(dir: &Path) -> Vec<StreamState> {
    let store = Kimberlite::open_read_only(dir, Config::default())
        .unwrap_or_else(|error| panic!("open {}: {error}", dir.display()));
    let mut streams: Vec<StreamState> = store
        .list_streams()
        .into_iter()
        .map(|info| {
            assert!(
                !info.damaged,
                "{}: stream {} damaged",
                dir.display(),
                info.name
            );
            let root = store.tree_head(info.id).expect("the tree head").root;
            (
                info.name,
                info.id.as_u64(),
                info.head.next_offset.as_u64(),
                format!("{:?}", info.head.hash),
                format!("{root:?}"),
            )
        })
        .collect();
    streams.sort();
    streams
}

/// `kimberlite verify DIR` finds the store intact (it exits 0 only then).
pub fn verify_intact(dir: &Path) {
    let report = kimberlite(&["verify", "--json", text(dir)]);
    let report: serde_json::Value = serde_json::from_str(&report).expect("verify --json");
    assert_eq!(report["intact"], true, "{}: {report}", dir.display());
}

impl Cluster {
    /// The stream's end offset on node `id` as the node holds it, None if it does not answer.
    pub fn end_offset(&self, id: u64, stream: &str) -> Option<u64> {
        let url = format!(
            "{}/v1/streams/{stream}/events?from=0&limit=1&consistency=follower",
            self.direct_url(id)
        );
        let answer = self.http.get(&url).ok()?;
        (answer.status == 200).then(|| answer.json()["end_offset"].as_u64())?
    }

    /// Waits until every running node holds `stream` as far as the leader does.
    pub fn wait_converged(&self, stream: &str) {
        let leader = self.wait_leader(&[]);
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        let running: Vec<u64> = self
            .ids()
            .into_iter()
            .filter(|&id| self.is_running(id))
            .collect();
        while Instant::now() < deadline {
            let ends: Vec<Option<u64>> = running
                .iter()
                .map(|&id| self.end_offset(id, stream))
                .collect();
            let leader_end = self.end_offset(leader, stream);
            if leader_end.is_some() && ends.iter().all(|end| *end == leader_end) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the nodes did not converge on {stream}\n{}", self.logs());
    }

    /// Every running node's copy of `stream`, checked equal; returns it.
    pub fn same_events_everywhere(&self, stream: &str) -> Vec<(u64, String)> {
        let mut copies = self
            .ids()
            .into_iter()
            .filter(|&id| self.is_running(id))
            .map(|id| {
                (
                    id,
                    self.http
                        .events(&self.direct_url(id), stream)
                        .expect("read"),
                )
            });
        let (first_id, first) = copies.next().expect("a running node");
        for (id, copy) in copies {
            assert!(
                copy == first,
                "node {id} holds {} events of {stream}, node {first_id} {}",
                copy.len(),
                first.len()
            );
        }
        first
    }

    /// Stops every node (their shutdown path), then checks that the stores of nodes `ids`
    /// hold the same streams with the same heads and roots, and that `verify` finds each
    /// intact.
    pub fn stop_and_compare_stores(&mut self, ids: &[u64]) {
        for id in self.ids() {
            self.stop(id);
        }
        let states: Vec<(u64, Vec<StreamState>)> = ids
            .iter()
            .map(|&id| (id, store_state(&live_store(&self.dir(id)))))
            .collect();
        for (id, state) in &states {
            assert_eq!(
                state, &states[0].1,
                "node {id}'s store differs from node {}'s",
                states[0].0
            );
        }
        for &id in ids {
            verify_intact(&live_store(&self.dir(id)));
        }
    }
}
