//! Reads a 300,000-event stream of the `kimberlite` store back through `Kimberlite::events`
//! (pages of `Config::read_page_bytes`) and through `Kimberlite::read` with 1,000-event pages,
//! and verifies it (`Kimberlite::verify`: chain and Merkle tree; `check_tree`: the tree alone,
//! as `audit` does), and prints the time per event of each: the store's read paths without the
//! CLI around them.
//!
//! Run: `cargo run --release -p kimberlite-bench --example store_read_loop`.

use std::time::Instant;

use kimberlite::{Config, ExpectedOffset, Kimberlite};
use kimberlite_bench::{events, BATCH_EVENTS, EVENT_BYTES};
use kimberlite_types::Offset;

const COUNT: usize = 300_000;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Kimberlite::open_with(dir.path(), Config::default()).expect("open");
    let id = store.create_stream("bench").expect("stream");
    for first in (0..COUNT).step_by(BATCH_EVENTS) {
        store
            .append(id, events(first as u64, BATCH_EVENTS), ExpectedOffset::Any)
            .expect("append");
    }
    store.sync().expect("sync");
    for round in 0..3 {
        let started = Instant::now();
        let mut count = 0;
        for event in store.events(id, Offset::ZERO) {
            event.expect("read");
            count += 1;
        }
        let iter_ns = started.elapsed().as_nanos() as f64 / count as f64;
        let started = Instant::now();
        let mut from = 0;
        while from < COUNT as u64 {
            let page = store
                .read(id, Offset::new(from), (BATCH_EVENTS * EVENT_BYTES) as u64)
                .expect("read");
            from += page.len() as u64;
        }
        let page_ns = started.elapsed().as_nanos() as f64 / COUNT as f64;
        let started = Instant::now();
        store.verify(id).expect("verify");
        let verify_ns = started.elapsed().as_nanos() as f64 / COUNT as f64;
        let started = Instant::now();
        let check = store.check_tree(id, &[]).expect("check_tree");
        assert!(check.tree_matches_log());
        let check_ns = started.elapsed().as_nanos() as f64 / COUNT as f64;
        println!(
            "store_read_loop round {round}: events() {iter_ns:.0} ns/event, read() of 1,000 \
             {page_ns:.0} ns/event, verify() {verify_ns:.0} ns/event, check_tree() \
             {check_ns:.0} ns/event"
        );
    }
}
