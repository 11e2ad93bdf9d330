//! `sealed`: erasure by crypto-shredding (`docs/COMPLIANCE.md`, "Erasure").
//!
//! - Sealed appends against plain appends, in one run: batches of 1,000 events of 256 bytes
//!   into two streams of one store, unsynced (`Durability::Unsynced`: the CPU work is what
//!   differs, a device flush would hide it), one sealed for a data subject (AES-256-GCM per
//!   event, the envelope's 52 bytes more to hash and write), one plain.
//!   Target: sealed >= 0.8x plain events/s.
//! - `erase` of a subject holding 10,000 events, in a store that also holds a larger plain
//!   stream; then in a store ten times larger, to show that the cost does not grow with it
//!   (erase never reads the log). Target: under 100 ms.
//!
//! Run: `cargo bench -p kimberlite-bench --bench sealed`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput};
use kimberlite::sealed::{MasterKey, SubjectKeys};
use kimberlite::{Config, Durability, ExpectedOffset, Kimberlite, StreamId};
use kimberlite_bench::{
    events, interleaved, median, rate, report, scaled, thousands, Target, BATCH_EVENTS,
};

/// Events of the subject an erasure erases.
const SUBJECT_EVENTS: usize = 10_000;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Kimberlite,
    keys: SubjectKeys,
    plain: StreamId,
    sealed: StreamId,
}

/// A store with a plain and a sealed stream and `background` plain events besides.
fn fixture(background: u64) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = Config::default().durability(Durability::Unsynced);
    let store = Kimberlite::open_with(dir.path(), config).expect("open the bench store");
    let (master, _) = MasterKey::generate();
    let keys = SubjectKeys::open(&store, Arc::new(master)).expect("open the key store");
    let plain = store.create_stream("plain").expect("create");
    let sealed = store.create_stream("sealed").expect("create");
    let other = store.create_stream("background").expect("create");
    let mut first = 0;
    while first < background {
        let count = BATCH_EVENTS.min((background - first) as usize);
        store
            .append(other, events(first, count), ExpectedOffset::Any)
            .expect("append");
        first += count as u64;
    }
    store.sync().expect("sync");
    Fixture {
        _dir: dir,
        store,
        keys,
        plain,
        sealed,
    }
}

fn append_plain(f: &Fixture, batch: &[Bytes]) {
    f.store
        .append(f.plain, batch.iter().cloned(), ExpectedOffset::Any)
        .expect("plain append");
}

/// The batch as `Bytes`, as the plain side hands it over (`SubjectKeys::append` of slices
/// copies them into one buffer first).
fn append_sealed(f: &Fixture, batch: &[Bytes]) {
    f.keys
        .append_bytes(f.sealed, "subject-0", batch.to_vec(), ExpectedOffset::Any)
        .expect("sealed append");
}

/// Appends [`SUBJECT_EVENTS`] events for `subject`, synced.
fn fill_subject(f: &Fixture, subject: &str) {
    let batch = events(0, BATCH_EVENTS);
    for _ in 0..SUBJECT_EVENTS / BATCH_EVENTS {
        f.keys
            .append(f.sealed, subject, &batch, ExpectedOffset::Any)
            .expect("sealed append");
    }
    f.store.sync().expect("sync");
}

/// The median time of `rounds` erasures of a subject of [`SUBJECT_EVENTS`] events each.
fn erase_time(f: &Fixture, rounds: usize, tag: &str) -> Duration {
    let mut times = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let subject = format!("{tag}-{round}");
        fill_subject(f, &subject);
        let started = Instant::now();
        let receipt = f.keys.erase(&subject, "bench").expect("erase");
        times.push(started.elapsed());
        assert_eq!(receipt.events, SUBJECT_EVENTS as u64);
    }
    median(times)
}

fn bench(c: &mut Criterion, f: &Fixture) {
    let batch = events(0, BATCH_EVENTS);
    let mut group = c.benchmark_group("sealed");
    group.throughput(Throughput::Elements(BATCH_EVENTS as u64));
    group.bench_function("append_sealed_1000x256B", |b| {
        b.iter(|| append_sealed(f, &batch))
    });
    group.bench_function("append_plain_1000x256B", |b| {
        b.iter(|| append_plain(f, &batch))
    });
    group.finish();
    let mut group = c.benchmark_group("sealed_erase");
    group.sample_size(10);
    let mut round = 0u64;
    group.bench_function("erase_subject_of_10000_events", |b| {
        b.iter_batched(
            || {
                round += 1;
                let subject = format!("criterion-{round}");
                fill_subject(f, &subject);
                subject
            },
            |subject| f.keys.erase(&subject, "bench").expect("erase"),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn print_ratio(f: &Fixture) {
    let batch = events(0, BATCH_EVENTS);
    let rounds = scaled(200, 20) as usize;
    let (sealed, plain) = interleaved(
        rounds,
        || append_sealed(f, &batch),
        || append_plain(f, &batch),
    );
    let n = BATCH_EVENTS as u64;
    report(
        "sealed appends",
        &format!("{} events/s sealed", thousands(rate(n, sealed))),
        &format!("plain {} events/s", thousands(rate(n, plain))),
        rate(n, sealed) / rate(n, plain),
        Target::AtLeast(0.8),
    );
    let rounds = scaled(10, 3) as usize;
    let small = erase_time(f, rounds, "small");
    let large_store = fixture(scaled(1_000_000, 100_000));
    let large = erase_time(&large_store, rounds, "large");
    println!(
        "sealed: erase of a subject of {SUBJECT_EVENTS} events: {small:.2?} beside {} plain \
         events, {large:.2?} beside {} (erase reads no log)",
        thousands(scaled(100_000, 10_000) as f64),
        thousands(scaled(1_000_000, 100_000) as f64),
    );
    report(
        "sealed erase",
        &format!("{:.2} ms", small.as_secs_f64() * 1e3),
        "100 ms",
        small.as_secs_f64() / 0.1,
        Target::AtMost(1.0),
    );
}

fn main() {
    let f = fixture(scaled(100_000, 10_000));
    kimberlite_bench::run(|c| bench(c, &f), || print_ratio(&f));
}
