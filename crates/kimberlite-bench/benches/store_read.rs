//! `store_read`: reading a whole stream back through the `kimberlite` store, the way an
//! application or an auditor does, against plain SHA-256 of the same payloads on one thread.
//!
//! The store: 300,000 events of 256 bytes in one stream, default `Config` (LZ4 tried per
//! record, a Merkle tree per stream), appended in batches of 1,000 and synced. Two figures:
//!
//! - `events()`: the lazy iterator over the whole stream (pages of `read_page_bytes`, 1 MiB;
//!   every record checksum-checked, re-hashed and linked). Held to the target the issue sets
//!   for a storage read (`read_verified`): payload throughput >= 0.7x SHA-256 on one core.
//! - `verify()`: the store's full verification of the stream: the chain walk and the Merkle
//!   tree recomputed from the log and compared with its side files. It hashes every payload
//!   twice (chain, leaf), so its ratio to one SHA-256 pass is printed, with no target.
//!
//! Run: `cargo bench -p kimberlite-bench --bench store_read`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use kimberlite::{Config, Durability, ExpectedOffset, Kimberlite, StreamId};
use kimberlite_bench::{
    events, interleaved, rate, report, scaled, sha256_each, thousands, Target, BATCH_EVENTS,
    EVENT_BYTES,
};
use kimberlite_types::Offset;

/// Builds the store (in a temp dir); returns it, its stream and the payloads appended.
fn build() -> (tempfile::TempDir, Kimberlite, StreamId, Vec<Bytes>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let count = scaled(300_000, 30_000) as usize;
    let config = Config::default().durability(Durability::Unsynced);
    let store = Kimberlite::open_with(dir.path(), config).expect("open the bench store");
    let id = store.create_stream("bench").expect("create the stream");
    let payloads = events(0, count);
    for batch in payloads.chunks(BATCH_EVENTS) {
        store
            .append(id, batch.to_vec(), ExpectedOffset::Any)
            .expect("append");
    }
    store.sync().expect("sync");
    (dir, store, id, payloads)
}

fn read_all(store: &Kimberlite, id: StreamId) -> usize {
    let mut count = 0;
    for event in store.events(id, Offset::ZERO) {
        black_box(event.expect("an intact stream"));
        count += 1;
    }
    count
}

fn verify(store: &Kimberlite, id: StreamId) {
    let report = store.verify(id).expect("verify");
    assert!(report.first_problem().is_none(), "the bench store verifies");
}

fn bench(c: &mut Criterion, store: &Kimberlite, id: StreamId, payloads: &[Bytes]) {
    let mut group = c.benchmark_group("store_read");
    group.throughput(Throughput::Bytes((payloads.len() * EVENT_BYTES) as u64));
    group.bench_function("kimberlite_events_all", |b| b.iter(|| read_all(store, id)));
    group.bench_function("kimberlite_verify", |b| b.iter(|| verify(store, id)));
    group.bench_function("baseline_sha256_all", |b| b.iter(|| sha256_each(payloads)));
    group.finish();
}

fn print_ratio(store: &Kimberlite, id: StreamId, payloads: &[Bytes]) {
    let rounds = scaled(15, 3) as usize;
    let count = payloads.len();
    assert_eq!(read_all(store, id), count);
    let (read, sha) = interleaved(
        rounds,
        || {
            black_box(read_all(store, id));
        },
        || sha256_each(payloads),
    );
    let (verified, sha_again) = interleaved(rounds, || verify(store, id), || sha256_each(payloads));
    let mb = |elapsed| rate((count * EVENT_BYTES) as u64, elapsed) / 1e6;
    let per_event = |elapsed: std::time::Duration| elapsed.as_nanos() as f64 / count as f64;
    println!(
        "store_read: {count} events: events() {read:.2?} ({:.0} ns/event), verify() \
         {verified:.2?} ({:.0} ns/event); SHA-256 of the payloads {sha:.2?}, {sha_again:.2?}; \
         verify's ratio to one SHA-256 pass {:.3} (it hashes each payload twice; no target)",
        per_event(read),
        per_event(verified),
        mb(verified) / mb(sha_again),
    );
    report(
        "store_read events()",
        &format!("{} MB/s of payload", thousands(mb(read))),
        &format!("SHA-256 {} MB/s", thousands(mb(sha))),
        mb(read) / mb(sha),
        Target::AtLeast(0.7),
    );
}

fn main() {
    let (_dir, store, id, payloads) = build();
    kimberlite_bench::run(
        |c| bench(c, &store, id, &payloads),
        || print_ratio(&store, id, &payloads),
    );
}
