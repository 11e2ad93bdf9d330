//! `peers`: the same workload through what users would pick instead of Kimberlite.
//!
//! Workload: 256-byte events in batches of 1,000, each event's chain hash computed exactly as
//! Kimberlite computes it (`ChainHash::compute` over offset, previous hash, kind and payload)
//! and stored with it.
//!
//! - **SQLite** (`rusqlite`, bundled SQLite, WAL mode): a table `events(stream, offset,
//!   payload, hash)` with primary key `(stream, offset)`; one transaction per batch with a
//!   cached prepared insert. `synchronous=FULL` against our `fsync = true`, `synchronous=OFF`
//!   against our `fsync = false`. Target: Kimberlite >= 3x SQLite in both modes.
//! - **okaywal** (crates.io, a write-ahead log: checksummed entries of chunks, durable
//!   commits shared between threads): one entry per batch, one chunk per event (payload then
//!   hash), `commit` (which always fsyncs) against our `fsync = true`. Its default config
//!   (768 KiB checkpoints, recycled segment files; a `LogVoid` manager that keeps nothing).
//!   okaywal has no unsynced commit, so it has no no-fsync figure. Target: Kimberlite ahead.
//!
//! Run: `cargo bench -p kimberlite-bench --bench peers`.

use std::path::Path;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput};
use kimberlite_bench::{
    events, hashing_on_two_cores, interleaved, rate, report, scaled, thousands, Appender, Batches,
    SyncedFile, Target, BATCH_EVENTS,
};
use kimberlite_crypto::ChainHash;
use kimberlite_storage::StorageConfig;
use kimberlite_types::{Offset, RecordKind};

/// A SQLite database holding the events table.
struct Sqlite {
    connection: rusqlite::Connection,
    next: u64,
    head: Option<ChainHash>,
}

impl Sqlite {
    fn open(path: &Path, synchronous: &str) -> Self {
        let connection = rusqlite::Connection::open(path).expect("open sqlite");
        let mode: String = connection
            .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
            .expect("WAL mode");
        assert_eq!(mode, "wal");
        connection
            .execute_batch(&format!(
                "PRAGMA synchronous={synchronous};
                 CREATE TABLE events (stream INTEGER NOT NULL, offset INTEGER NOT NULL,
                     payload BLOB NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (stream, offset));"
            ))
            .expect("create the table");
        Self {
            connection,
            next: 0,
            head: None,
        }
    }

    fn append(&mut self, batch: &[Bytes]) {
        let transaction = self.connection.transaction().expect("begin");
        {
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO events (stream, offset, payload, hash) VALUES (1, ?1, ?2, ?3)",
                )
                .expect("prepare");
            for payload in batch {
                let hash = ChainHash::compute(
                    self.head.as_ref(),
                    Offset::new(self.next),
                    RecordKind::Data,
                    payload,
                );
                insert
                    .execute(rusqlite::params![
                        self.next as i64,
                        &payload[..],
                        &hash.as_bytes()[..]
                    ])
                    .expect("insert");
                self.head = Some(hash);
                self.next += 1;
            }
        }
        transaction.commit().expect("commit");
    }
}

/// An okaywal log: one entry per batch.
struct OkayWal {
    log: okaywal::WriteAheadLog,
    next: u64,
    head: Option<ChainHash>,
}

impl OkayWal {
    fn open(path: &Path) -> Self {
        Self {
            log: okaywal::WriteAheadLog::recover(path, okaywal::LogVoid).expect("open okaywal"),
            next: 0,
            head: None,
        }
    }

    fn append(&mut self, batch: &[Bytes]) {
        let mut entry = self.log.begin_entry().expect("begin entry");
        for payload in batch {
            let hash = ChainHash::compute(
                self.head.as_ref(),
                Offset::new(self.next),
                RecordKind::Data,
                payload,
            );
            entry.write_chunk(payload).expect("write payload");
            entry.write_chunk(hash.as_bytes()).expect("write hash");
            self.head = Some(hash);
            self.next += 1;
        }
        entry.commit().expect("commit");
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let batch = events(0, BATCH_EVENTS);
    let mut group = c.benchmark_group("peers");
    group.throughput(Throughput::Elements(BATCH_EVENTS as u64));
    let mut ours = Appender::open(&dir.path().join("k-sync"), StorageConfig::default());
    group.bench_function("kimberlite_fsync", |b| {
        b.iter_batched(
            || batch.clone(),
            |events| ours.append(events, true),
            BatchSize::SmallInput,
        )
    });
    let mut sqlite = Sqlite::open(&dir.path().join("full.sqlite"), "FULL");
    group.bench_function("sqlite_wal_synchronous_full", |b| {
        b.iter(|| sqlite.append(&batch))
    });
    let mut wal = OkayWal::open(&dir.path().join("okaywal"));
    group.bench_function("okaywal_commit", |b| b.iter(|| wal.append(&batch)));
    let mut ours = Appender::open(&dir.path().join("k-nosync"), StorageConfig::default());
    group.bench_function("kimberlite_nosync", |b| {
        b.iter_batched(
            || batch.clone(),
            |events| ours.append(events, false),
            BatchSize::SmallInput,
        )
    });
    let mut sqlite = Sqlite::open(&dir.path().join("off.sqlite"), "OFF");
    group.bench_function("sqlite_wal_synchronous_off", |b| {
        b.iter(|| sqlite.append(&batch))
    });
    group.finish();
}

fn pair(name: &str, peer: &str, target: f64, ours: impl FnMut(), theirs: impl FnMut()) {
    let (ours, theirs) = interleaved(scaled(100, 10) as usize, ours, theirs);
    let n = BATCH_EVENTS as u64;
    println!("peers {name}: per batch of 1,000: kimberlite {ours:.2?}, {peer} {theirs:.2?}");
    report(
        &format!("peers {name}"),
        &format!("{} events/s", thousands(rate(n, ours))),
        &format!("{peer} {} events/s", thousands(rate(n, theirs))),
        rate(n, ours) / rate(n, theirs),
        Target::AtLeast(target),
    );
}

/// Whether 3x SQLite with `synchronous=FULL` fits above this machine's floor for a synced
/// batch (see `append_fsync`'s): the `write` + `fdatasync` of the batch's frame bytes plus the
/// SHA-256 of its events spread over two cores, everything else free. Measured now, in the
/// same process, interleaved with SQLite.
fn print_sqlite_floor(path: &Path, batch: &[Bytes], sqlite: &mut Sqlite) {
    let mut frames = SyncedFile::frame_sized(path, batch);
    let rounds = scaled(100, 10) as usize;
    let (theirs, frame_sync) = interleaved(rounds, || sqlite.append(batch), || frames.append());
    let floor = frame_sync + hashing_on_two_cores(batch, rounds);
    let needed = theirs / 3;
    println!(
        "peers fsync vs SQLite synchronous=FULL: floor: SQLite {theirs:.2?} per batch, so 3x \
         needs <= {needed:.2?}; a synced batch costs at least {floor:.2?} here (write+fdatasync \
         of the frame bytes {frame_sync:.2?} + SHA-256 on two cores): best possible {:.2}x",
        theirs.as_secs_f64() / floor.as_secs_f64()
    );
}

fn print_ratios() {
    let dir = tempfile::tempdir().expect("temp dir");
    let batch = events(0, BATCH_EVENTS);

    // Our side takes batches copied before the timing (`Batches`), as the peers take `&batch`.
    let ready = || Batches::new(&batch, scaled(100, 10) as usize + 1);
    let mut ours = Appender::open(&dir.path().join("k-sync"), StorageConfig::default());
    let mut sqlite = Sqlite::open(&dir.path().join("full.sqlite"), "FULL");
    let mut batches = ready();
    pair(
        "fsync vs SQLite synchronous=FULL",
        "SQLite",
        3.0,
        || ours.append(batches.take(), true),
        || sqlite.append(&batch),
    );
    print_sqlite_floor(&dir.path().join("floor.bin"), &batch, &mut sqlite);
    let mut wal = OkayWal::open(&dir.path().join("okaywal"));
    let mut batches = ready();
    pair(
        "fsync vs okaywal",
        "okaywal",
        1.0,
        || ours.append(batches.take(), true),
        || wal.append(&batch),
    );
    let mut ours = Appender::open(&dir.path().join("k-nosync"), StorageConfig::default());
    let mut sqlite = Sqlite::open(&dir.path().join("off.sqlite"), "OFF");
    let mut batches = ready();
    pair(
        "no-fsync vs SQLite synchronous=OFF",
        "SQLite",
        3.0,
        || ours.append(batches.take(), false),
        || sqlite.append(&batch),
    );
}

fn main() {
    kimberlite_bench::run(bench, print_ratios);
}
