//! On-disk append throughput: 256-byte events in batches of 1,000, with and without fsync.
//!
//! Prints events/s and MB/s (payload bytes) for each mode, and the ratio of our time to a
//! baseline measured in the same process on the same payloads:
//!
//! - `fsync = false` against raw SHA-256 over the payloads (the chain hash is the floor: every
//!   event must be hashed);
//! - `fsync = true` against a plain `write` + `fdatasync` of the same payload bytes appended to
//!   a file in the same directory (the device is the floor).
//!
//! Run: `cargo bench -p kimberlite-storage --bench disk_append`.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, Criterion, Throughput};
use kimberlite_crypto::ChainHash;
use kimberlite_storage::{Storage, StorageBackend, StorageConfig};
use kimberlite_types::{Offset, RecordKind, StreamId};

const EVENT_BYTES: usize = 256;
const BATCH: usize = 1_000;
const STREAM: StreamId = StreamId::new(1);

fn batch_events() -> Vec<Bytes> {
    (0..BATCH)
        .map(|seq| {
            let mut event = format!(
                "{{\"seq\":{seq},\"action\":\"viewed\",\"by\":\"dr-{}\"}}",
                seq % 31
            );
            event.extend(std::iter::repeat_n('.', EVENT_BYTES - event.len()));
            Bytes::from(event)
        })
        .collect()
}

/// A stream being appended to, one batch per call.
struct Appender {
    storage: Storage,
    next: Offset,
    head: Option<ChainHash>,
    events: Vec<Bytes>,
}

impl Appender {
    fn new(dir: &std::path::Path) -> Self {
        let config = StorageConfig {
            max_segment_size: 64 * 1024 * 1024,
            ..StorageConfig::default()
        };
        Self {
            storage: Storage::open_with(dir, config).expect("open"),
            next: Offset::ZERO,
            head: None,
            events: batch_events(),
        }
    }

    fn append(&mut self, fsync: bool) {
        let (next, head) = self
            .storage
            .append_batch(STREAM, self.events.clone(), self.next, self.head, fsync)
            .expect("append");
        self.next = next;
        self.head = Some(head);
    }
}

fn time_batches(batches: usize, mut one: impl FnMut()) -> Duration {
    one();
    let started = Instant::now();
    for _ in 0..batches {
        one();
    }
    started.elapsed() / batches as u32
}

fn report(name: &str, per_batch: Duration, baseline: Duration, baseline_name: &str) {
    let seconds = per_batch.as_secs_f64();
    let events_per_second = BATCH as f64 / seconds;
    let mb_per_second = (BATCH * EVENT_BYTES) as f64 / seconds / 1e6;
    println!(
        "disk_append {name}: {per_batch:.2?} per batch of {BATCH}: {events_per_second:.0} events/s, \
         {mb_per_second:.1} MB/s; {baseline_name} {baseline:.2?}; ratio {:.2}",
        seconds / baseline.as_secs_f64()
    );
}

fn print_figures() {
    let events = batch_events();
    let dir = tempfile::tempdir().expect("temp dir");

    // No fsync, against hashing the payloads.
    let sha = time_batches(200, || {
        let mut prev = None;
        for (i, event) in events.iter().enumerate() {
            prev = Some(ChainHash::compute(
                prev.as_ref(),
                Offset::new(i as u64),
                RecordKind::Data,
                event,
            ));
        }
        std::hint::black_box(prev);
    });
    let mut appender = Appender::new(&dir.path().join("nosync"));
    let ours = time_batches(200, || appender.append(false));
    report("fsync=false", ours, sha, "SHA-256 chain of the payloads");

    // fsync, against write + fdatasync of the same bytes.
    let payload: Vec<u8> = events
        .iter()
        .flat_map(|event| event.iter().copied())
        .collect();
    let mut file = std::fs::File::create(dir.path().join("baseline.bin")).expect("create");
    let raw = time_batches(50, || {
        file.write_all(&payload).expect("write");
        file.sync_data().expect("fdatasync");
    });
    let mut appender = Appender::new(&dir.path().join("sync"));
    let ours = time_batches(50, || appender.append(true));
    report("fsync=true", ours, raw, "write+fdatasync of the payloads");
}

fn bench_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("disk_append");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    let mut nosync = Appender::new(&dir.path().join("criterion-nosync"));
    group.bench_function("batch_1000x256B_nosync", |b| {
        b.iter(|| nosync.append(false))
    });
    let mut sync = Appender::new(&dir.path().join("criterion-sync"));
    group.bench_function("batch_1000x256B_fsync", |b| b.iter(|| sync.append(true)));
    group.finish();
}

criterion_group!(benches, bench_append);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_figures();
}
