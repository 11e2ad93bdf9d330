//! Appends single events through the `kimberlite` store, unsynced, one thread, and nothing
//! else: the per-append cost that group commit pays for every event, for a profiler.
//!
//! Run: `cargo run --release -p kimberlite-bench --example single_append_loop -- [events]`;
//! with `TREES=0` in the environment the store keeps no Merkle trees (to see what the tree
//! worker costs the appending thread).

use std::time::Instant;

use kimberlite::{Config, Durability, ExpectedOffset, Kimberlite};
use kimberlite_bench::event;

fn main() {
    let count: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let trees = std::env::var("TREES").map_or(true, |v| v != "0");
    let config = Config::default()
        .durability(Durability::Unsynced)
        .merkle_trees(trees);
    let store = Kimberlite::open_with(dir.path(), config).expect("open");
    let id = store.create_stream("single").expect("stream");
    let started = Instant::now();
    for seq in 0..count {
        store
            .append(id, [event(seq)], ExpectedOffset::Any)
            .expect("append");
    }
    let elapsed = started.elapsed();
    println!(
        "single_append_loop: {count} single-event appends, unsynced: {:.2} us each",
        elapsed.as_secs_f64() * 1e6 / count as f64
    );
}
