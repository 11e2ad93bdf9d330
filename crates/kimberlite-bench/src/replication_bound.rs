//! The replication bound of a synced batch (`cluster_batch`): what no design of issue 20's
//! replication can beat on this machine, from parts measured in one sequence, interleaved with
//! the baseline (the single-node server's batch).
//!
//! Under the design every replica applies every batch to its own store, computing the
//! chain hashes and Merkle leaves from the committed bytes, and an append is acknowledged once
//! its entry is committed in a majority's synced logs. So, for each batch, each of the
//! replicas cannot avoid:
//!
//! - writing the batch's bytes (at least its payloads) into its log, [`ReplicaParts::log_write`];
//! - the chain hash of each event, unlinked then linked in order, [`ReplicaParts::chain`];
//! - the CRC32C of each frame of the record format, [`ReplicaParts::crc`];
//! - the Merkle leaf hash of each event, [`ReplicaParts::leaves`];
//! - writing the frames into its store, [`ReplicaParts::store_write`].
//!
//! All replicas share this machine's cores, and in a sustained run none can fall behind for
//! good, so a batch takes at least `replicas x that CPU / cores`. And one batch's
//! acknowledgement waits, at least, for the leader's chain hashes (the entry carries the head
//! they lead to), spread over the cores, then for a majority's logs written and synced (two
//! replicas' logs at once, [`ReplicaParts::majority_log`]). The bound is the larger of the two.
//!
//! Taken as free: HTTP, openraft, every encoding and copy, the Raft log's own framing and
//! checksums, the Merkle tree's interior nodes (a design may compute them lazily), writing the
//! tree, the stores' and the third log's syncs (off the acknowledgement's path, and may be
//! grouped across batches), the apply on the leader before the answer (the answer's offsets
//! are known from the head the leader proposed against), hand-offs, wake-ups and any imbalance
//! between the cores. `docs/PERFORMANCE.md`, section "Why the unmet targets are not met".

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kimberlite_storage::RECORD_OVERHEAD;

use crate::median;
use crate::work_bound::{our_format_work, AlignedFile};

/// Voters of the cluster the bound is for (the benches' cluster).
pub const REPLICAS: u32 = 3;

/// Voters whose synced logs commit an entry.
const MAJORITY: usize = (REPLICAS as usize) / 2 + 1;

/// Median time of each part, per batch and per replica, and of the baseline beside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplicaParts {
    /// The chain hash of each event: the unlinked hashes, then the links in order.
    pub chain: Duration,
    /// CRC32C of each frame.
    pub crc: Duration,
    /// The Merkle leaf hash of each event.
    pub leaves: Duration,
    /// `write`s of the frames into the store's file (page cache).
    pub store_write: Duration,
    /// The `write` of the payload bytes into the log's file (page cache).
    pub log_write: Duration,
    /// A majority's logs written and synced at once: the slower of that many threads, each
    /// writing the payload bytes to a file of its own and `fdatasync`ing it.
    pub majority_log: Duration,
    /// The machine's cores.
    pub cores: u32,
    /// The baseline in the same rounds.
    pub baseline: Duration,
}

impl ReplicaParts {
    /// One replica's CPU work for a batch.
    #[must_use]
    pub fn replica_cpu(&self) -> Duration {
        self.chain + self.crc + self.leaves + self.store_write + self.log_write
    }

    /// Every replica's CPU work for a batch, spread perfectly over the cores.
    #[must_use]
    pub fn cpu_bound(&self) -> Duration {
        self.replica_cpu() * REPLICAS / self.cores.max(1)
    }

    /// One batch's path to its acknowledgement: the leader's chain hashes spread perfectly over
    /// the cores, then a majority's logs written and synced at once.
    #[must_use]
    pub fn path_bound(&self) -> Duration {
        self.chain / self.cores.max(1) + self.majority_log
    }

    /// The least time a batch can take: the larger of the two.
    #[must_use]
    pub fn bound(&self) -> Duration {
        self.cpu_bound().max(self.path_bound())
    }

    /// The best ratio to the baseline any replication design can reach (baseline / bound).
    #[must_use]
    pub fn best_ratio(&self) -> f64 {
        self.baseline.as_secs_f64() / self.bound().as_secs_f64().max(1e-12)
    }
}

/// The logs of a majority, each a file of its own, written and synced at once.
struct Logs {
    files: Vec<AlignedFile>,
    bytes: Vec<u8>,
}

impl Logs {
    fn create(dir: &Path, batch: &[Bytes]) -> Self {
        Self {
            files: (0..MAJORITY)
                .map(|i| AlignedFile::create(&dir.join(format!("log-{i}.bin"))))
                .collect(),
            bytes: batch.iter().flat_map(|e| e.iter().copied()).collect(),
        }
    }

    /// Every log written and synced, each on a thread of its own; returns the first log's
    /// `write` time and the slowest thread's whole time.
    fn append(&mut self) -> (Duration, Duration) {
        let bytes = &self.bytes;
        let times: Vec<(Duration, Duration)> = std::thread::scope(|scope| {
            let threads: Vec<_> = self
                .files
                .iter_mut()
                .map(|file| {
                    scope.spawn(move || {
                        let started = Instant::now();
                        file.write(bytes);
                        let write = started.elapsed();
                        file.flush();
                        (write, started.elapsed())
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|thread| thread.join().expect("a log thread"))
                .collect()
        });
        let write = times.first().map_or(Duration::ZERO, |(write, _)| *write);
        let slowest = times.iter().map(|(_, whole)| *whole).max();
        (write, slowest.unwrap_or_default())
    }
}

/// Measures the parts for `batch` over `rounds` rounds in `dir`, each round interleaved with
/// one call of `baseline` (the bench's single-node batch); returns the medians.
///
/// # Panics
///
/// On an I/O error (a bench failure).
#[must_use]
pub fn measure(
    dir: &Path,
    batch: &[Bytes],
    rounds: usize,
    mut baseline: impl FnMut(),
) -> ReplicaParts {
    let frames = vec![0x5a; batch.iter().map(|e| e.len() + RECORD_OVERHEAD).sum()];
    let mut store = AlignedFile::create(&dir.join("store.bin"));
    let mut logs = Logs::create(dir, batch);
    let mut samples: [Vec<Duration>; 7] = Default::default();
    let mut offset = 0;
    for round in 0..=rounds {
        let started = Instant::now();
        baseline();
        let base = started.elapsed();
        let (head, crcs, [unlinked, link, crc]) = our_format_work(batch, offset, &frames);
        std::hint::black_box((head, crcs));
        let started = Instant::now();
        let leaves: Vec<_> = (offset..)
            .zip(batch)
            .map(|(offset, event)| kimberlite_proof::event_leaf_hash(offset, event))
            .collect();
        std::hint::black_box(leaves);
        let leaves = started.elapsed();
        offset += batch.len() as u64;
        let started = Instant::now();
        store.write(&frames);
        let store_write = started.elapsed();
        let (log_write, majority_log) = logs.append();
        // Round 0 warms the files and the code up.
        if round > 0 {
            let times = [
                unlinked + link,
                crc,
                leaves,
                store_write,
                log_write,
                majority_log,
                base,
            ];
            for (part, time) in samples.iter_mut().zip(times) {
                part.push(time);
            }
        }
    }
    let [chain, crc, leaves, store_write, log_write, majority_log, baseline] = samples.map(median);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    ReplicaParts {
        chain,
        crc,
        leaves,
        store_write,
        log_write,
        majority_log,
        cores: u32::try_from(cores).unwrap_or(u32::MAX),
        baseline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events;

    fn parts(majority_log: Duration) -> ReplicaParts {
        let micros = Duration::from_micros;
        ReplicaParts {
            chain: micros(200),
            crc: micros(20),
            leaves: micros(180),
            store_write: micros(60),
            log_write: micros(40),
            majority_log,
            cores: 2,
            baseline: micros(1_200),
        }
    }

    #[test]
    fn the_bound_is_every_replicas_cpu_on_the_cores_or_the_acknowledgement_path() {
        let micros = Duration::from_micros;
        let cpu_bound = parts(micros(300));
        assert_eq!(cpu_bound.replica_cpu(), micros(500));
        assert_eq!(cpu_bound.cpu_bound(), micros(750));
        assert_eq!(cpu_bound.path_bound(), micros(400));
        assert_eq!(cpu_bound.bound(), micros(750));
        assert!((cpu_bound.best_ratio() - 1.6).abs() < 1e-9);
        let path_bound = parts(micros(900));
        assert_eq!(path_bound.bound(), micros(1_000));
        assert!((path_bound.best_ratio() - 1.2).abs() < 1e-9);
    }

    #[test]
    fn measure_reports_every_part_and_writes_a_majority_of_logs() {
        let dir = tempfile::tempdir().unwrap();
        let batch = events(0, 50);
        let mut calls = 0;
        let parts = measure(dir.path(), &batch, 3, || calls += 1);
        assert_eq!(calls, 4);
        for part in [
            parts.chain,
            parts.crc,
            parts.leaves,
            parts.store_write,
            parts.log_write,
            parts.majority_log,
        ] {
            assert!(part > Duration::ZERO, "{parts:?}");
        }
        assert!(parts.majority_log >= parts.log_write, "{parts:?}");
        assert!(parts.cores >= 1);
        for i in 0..MAJORITY {
            let log = std::fs::metadata(dir.path().join(format!("log-{i}.bin"))).unwrap();
            assert_eq!(log.len(), 4 * 50 * 256);
        }
        let store = std::fs::metadata(dir.path().join("store.bin")).unwrap();
        assert_eq!(store.len(), 4 * 50 * (256 + RECORD_OVERHEAD as u64));
    }
}
