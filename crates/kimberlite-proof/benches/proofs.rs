//! Merkle tree costs, measured through the real store (`kimberlite`, on disk):
//!
//! - `append_*`: appending 256-byte events with the tree (default) and without it
//!   (`Config::merkle_trees(false)`), `Durability::Unsynced` (the worst case for the ratio:
//!   no fsync per append hides the tree's cost; each round of 2,000 events ends with one
//!   `sync`, where unsynced batches reach the tree), batches of 1 and of 100 events.
//!   Target: <= 1.25x.
//! - `inclusion_*` on a 1,000,000-event stream: producing a proof (O(log n) node reads from
//!   the side files) and verifying it (pure). Target: < 100 us each.
//!
//! Besides criterion's report, prints `RESULT` lines with the ratios and per-proof times from
//! interleaved samples. Run: `cargo bench -p kimberlite-proof --bench proofs`.

// `criterion_group!` generates undocumented public items.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use kimberlite::{Config, Durability, ExpectedOffset, Kimberlite, StreamId};
use kimberlite_proof::verify_inclusion;

const EVENT_BYTES: usize = 256;
const BIG_STREAM_EVENTS: u64 = 1_000_000;

fn event(i: u64) -> Vec<u8> {
    let mut bytes = format!("{{\"n\":{i},\"event\":\"record_viewed\"}}").into_bytes();
    bytes.resize(EVENT_BYTES, b' ');
    bytes
}

fn store(dir: &std::path::Path, trees: bool) -> (Kimberlite, StreamId) {
    store_with(dir, trees, Durability::Unsynced)
}

fn store_with(
    dir: &std::path::Path,
    trees: bool,
    durability: Durability,
) -> (Kimberlite, StreamId) {
    let config = Config::default().durability(durability).merkle_trees(trees);
    let store = Kimberlite::open_with(dir, config).expect("open");
    let id = store.create_stream("bench").expect("create");
    (store, id)
}

fn append_batch(store: &Kimberlite, id: StreamId, next: &mut u64, batch: u64) {
    let events: Vec<Vec<u8>> = (*next..*next + batch).map(event).collect();
    store
        .append(id, events, ExpectedOffset::Any)
        .expect("append");
    *next += batch;
}

fn big_stream() -> (tempfile::TempDir, Kimberlite, StreamId) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, id) = store(dir.path(), true);
    let mut next = 0;
    while next < BIG_STREAM_EVENTS {
        append_batch(&store, id, &mut next, 10_000);
    }
    store.sync().expect("sync");
    (dir, store, id)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("merkle_append");
    for batch in [1u64, 100] {
        for trees in [false, true] {
            let dir = tempfile::tempdir().expect("tempdir");
            let (store, id) = store(dir.path(), trees);
            let mut next = 0;
            let label = format!(
                "append_{batch}x256B_{}",
                if trees { "tree" } else { "no_tree" }
            );
            group.bench_function(label, |b| {
                b.iter(|| append_batch(&store, id, &mut next, batch))
            });
        }
    }
    group.finish();

    let (_dir, store, id) = big_stream();
    let head = store.tree_head(id).expect("head");
    let mut group = c.benchmark_group("merkle_1m");
    let mut offset = 0u64;
    group.bench_function("inclusion_proof_produce", |b| {
        b.iter(|| {
            offset = (offset + 7919) % head.tree_size;
            store
                .inclusion_proof(id, offset.into(), head.tree_size)
                .expect("proof")
        })
    });
    let proof = store
        .inclusion_proof(id, 123_457.into(), head.tree_size)
        .expect("proof");
    group.bench_function("inclusion_proof_verify", |b| {
        b.iter(|| {
            verify_inclusion(
                &proof.leaf_hash,
                123_457,
                head.tree_size,
                &proof.hashes,
                &head.root,
            )
            .expect("valid")
        })
    });
    group.finish();
}

/// Interleaved samples of appends with and without the tree; prints the ratio.
fn print_append_ratio(batch: u64, durability: Durability) {
    let synced = durability != Durability::Unsynced;
    let rounds = 20;
    let per_round = if synced { 20 } else { 2_000 / batch.max(1) + 1 };
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let (with, with_id) = store_with(dir_a.path(), true, durability);
    let (without, without_id) = store_with(dir_b.path(), false, durability);
    let (mut next_with, mut next_without) = (0, 0);
    let (mut time_with, mut time_without) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        // Each round ends with a sync: under `Unsynced` batches reach the tree only once
        // synced, so the tree's work falls inside the round.
        let start = Instant::now();
        for _ in 0..per_round {
            append_batch(&without, without_id, &mut next_without, batch);
        }
        without.sync().expect("sync");
        time_without += start.elapsed();
        let start = Instant::now();
        for _ in 0..per_round {
            append_batch(&with, with_id, &mut next_with, batch);
        }
        with.sync().expect("sync");
        time_with += start.elapsed();
    }
    let events = (rounds * per_round * batch) as f64;
    println!(
        "RESULT append batch={batch}x{EVENT_BYTES}B {durability:?}: without tree {:.2} us/event, \
         with tree {:.2} us/event, ratio {:.3}x (target <= 1.25x)",
        time_without.as_secs_f64() * 1e6 / events,
        time_with.as_secs_f64() * 1e6 / events,
        time_with.as_secs_f64() / time_without.as_secs_f64()
    );
}

/// The tree's own work per event, without any store: leaf hash + frontier push (in-memory
/// levels), and the leaf hash alone. The floor of what the tree can add to an append.
fn print_tree_work() {
    let events: Vec<Vec<u8>> = (0..100_000).map(event).collect();
    let start = Instant::now();
    let mut leaves = Vec::with_capacity(events.len());
    for (offset, payload) in (0u64..).zip(&events) {
        leaves.push(kimberlite_proof::event_leaf_hash(offset, payload));
    }
    let hash_only = start.elapsed();
    let start = Instant::now();
    let tree = kimberlite_proof::MemoryTree::from_leaves(leaves);
    let push = start.elapsed();
    std::hint::black_box(tree.root());
    let n = events.len() as f64;
    println!(
        "RESULT tree work per {EVENT_BYTES}B event: leaf hash {:.3} us, frontier push with node \
         hashes {:.3} us",
        hash_only.as_secs_f64() * 1e6 / n,
        push.as_secs_f64() * 1e6 / n
    );
}

fn print_proof_times() {
    let started = Instant::now();
    let (_dir, store, id) = big_stream();
    let built = started.elapsed();
    let head = store.tree_head(id).expect("head");
    let samples = 10_000u64;
    let start = Instant::now();
    let mut proofs = Vec::new();
    for i in 0..samples {
        let offset = (i * 104_729) % head.tree_size;
        proofs.push(
            store
                .inclusion_proof(id, offset.into(), head.tree_size)
                .expect("proof"),
        );
    }
    let produce = start.elapsed().as_secs_f64() * 1e6 / samples as f64;
    let start = Instant::now();
    for proof in &proofs {
        verify_inclusion(
            &proof.leaf_hash,
            proof.offset,
            proof.tree_size,
            &proof.hashes,
            &head.root,
        )
        .expect("valid");
    }
    let verify = start.elapsed().as_secs_f64() * 1e6 / samples as f64;
    println!(
        "RESULT inclusion proof on {} events (stream built in {:.1} s): produce {produce:.2} us, \
         verify {verify:.2} us, {} hashes (target < 100 us each)",
        head.tree_size,
        built.as_secs_f64(),
        proofs.first().map_or(0, |p| p.hashes.len())
    );
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}

fn main() {
    benches();
    print_tree_work();
    print_append_ratio(1, Durability::Unsynced);
    print_append_ratio(100, Durability::Unsynced);
    print_append_ratio(1, Durability::SyncEachAppend);
    print_proof_times();
    Criterion::default().configure_from_args().final_summary();
}
