//! Shared helpers for Kimberlite's benchmark suite (`benches/`).
//!
//! Every benchmark of the suite measures Kimberlite and a *baseline* in the same process, on
//! the same payloads, and prints one `RESULT` line with both figures and their ratio, because
//! the machines we measure on are shared and noisy: absolute figures move from run to run,
//! ratios much less. `docs/PERFORMANCE.md`, section "Running the benches", says what each
//! line compares.
//!
//! Set `KIMBERLITE_BENCH_SMOKE=1` for a quick run (smaller stores, fewer samples) that checks
//! every bench works end to end; its figures are not the ones to report.

pub mod ceiling;
pub mod cluster;
pub mod cluster_http;
pub mod concurrent;
pub mod http_client;
pub mod http_floor;
pub mod latency;
pub mod replication_bound;
pub mod server;
pub mod store_floor;
pub mod work_bound;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kimberlite_crypto::{ChainHash, UnlinkedHash};
use kimberlite_storage::{Storage, StorageBackend, StorageConfig, StoreBackend, RECORD_OVERHEAD};
use kimberlite_types::{Offset, RecordKind, StreamId};
use sha2::{Digest, Sha256};

/// Payload size of every benchmark event, in bytes.
pub const EVENT_BYTES: usize = 256;
/// Events per batch in the batched benchmarks.
pub const BATCH_EVENTS: usize = 1_000;
/// The stream the storage-level benchmarks write.
pub const STREAM: StreamId = StreamId::new(1);
/// Events in the "large store" benchmarks (`read_verified`, `open`, `memory`).
pub const LARGE_STORE_EVENTS: u64 = 1_000_000;

/// True when `KIMBERLITE_BENCH_SMOKE` is set (to anything but `0`): benches shrink their
/// workloads so that the whole suite runs in well under a minute.
#[must_use]
pub fn smoke() -> bool {
    std::env::var("KIMBERLITE_BENCH_SMOKE").is_ok_and(|value| value != "0")
}

/// `full` normally, `small` in smoke mode.
#[must_use]
pub fn scaled(full: u64, small: u64) -> u64 {
    if smoke() {
        small
    } else {
        full
    }
}

/// The `main` of every bench here: runs its criterion groups with [`criterion_config`], prints
/// criterion's summary, then the bench's same-process ratio line; each after [`settle`].
pub fn run(groups: impl FnOnce(&mut criterion::Criterion), ratio: impl FnOnce()) {
    let mut criterion = criterion_config();
    settle();
    groups(&mut criterion);
    criterion.final_summary();
    settle();
    ratio();
}

/// Writes back the page cache's dirty data (the `sync` command) before a measurement, so that
/// the gigabytes an earlier bench or the criterion phase left dirty are not written back by
/// the kernel in the middle of it, on one of the two cores one side of the ratio is using.
/// Best effort: where `sync` cannot run, the measurement just goes on.
pub fn settle() {
    let _ = std::process::Command::new("sync").status();
}

/// Criterion settings for the suite: few samples and a short measurement, so that a full
/// `cargo bench -p kimberlite-bench` takes minutes, not hours; the `RESULT` lines come from
/// the interleaved phase after it.
#[must_use]
pub fn criterion_config() -> criterion::Criterion {
    let (samples, measure_ms, warm_ms) = if smoke() {
        (10, 300, 100)
    } else {
        (10, 2_000, 500)
    };
    criterion::Criterion::default()
        .sample_size(samples)
        .measurement_time(Duration::from_millis(measure_ms))
        .warm_up_time(Duration::from_millis(warm_ms))
        .configure_from_args()
}

/// Event number `seq`: a JSON audit event padded to [`EVENT_BYTES`] with pseudo-random hex
/// (like the CLI's `bench` payloads), so events differ and do not compress to nothing.
#[must_use]
pub fn event(seq: u64) -> Bytes {
    let mut state = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut text = format!(
        r#"{{"seq":{seq},"event":"record.viewed","actor":"user-{:04}","patient":"P-{:06}","note":""#,
        next() % 5_000,
        next() % 1_000_000
    );
    while text.len() < EVENT_BYTES {
        text.push_str(&format!("{:016x}", next()));
    }
    let mut bytes = text.into_bytes();
    bytes.truncate(EVENT_BYTES);
    Bytes::from(bytes)
}

/// Events `first..first + count`.
#[must_use]
pub fn events(first: u64, count: usize) -> Vec<Bytes> {
    (first..first + count as u64).map(event).collect()
}

/// The no-fsync baseline: plain SHA-256 of each payload, one thread, nothing else.
pub fn sha256_each(payloads: &[Bytes]) {
    for payload in payloads {
        black_box(Sha256::digest(payload));
    }
}

/// Median time of [`sha256_each`] over `payloads`, `rounds` times.
#[must_use]
pub fn sha256_time(payloads: &[Bytes], rounds: usize) -> Duration {
    median(
        (0..rounds.max(1))
            .map(|_| {
                let started = Instant::now();
                sha256_each(payloads);
                started.elapsed()
            })
            .collect(),
    )
}

/// The hashing share of the floor of a synced batch (`peers`, against SQLite): the SHA-256
/// of its events spread perfectly over two cores. A synced append must hash its events
/// before it writes the frames that hold the hashes, so at least this much comes before its
/// `write` + `fdatasync`; everything else (encoding, CRC, copies, hand-offs) is taken as
/// free, so a floor built on it is low.
#[must_use]
pub fn hashing_on_two_cores(batch: &[Bytes], rounds: usize) -> Duration {
    sha256_time(batch, rounds) / 2
}

/// A plain file that the same bytes are appended to, with one `write` and an `fdatasync` per
/// call: the device's side of the synced benchmarks.
pub struct SyncedFile {
    file: std::fs::File,
    bytes: Vec<u8>,
}

impl SyncedFile {
    /// Appends the payload bytes of `batch` (what `append_fsync`'s baseline writes).
    #[must_use]
    pub fn payloads(path: &Path, batch: &[Bytes]) -> Self {
        Self::with_bytes(path, batch.iter().flat_map(|e| e.iter().copied()).collect())
    }

    /// Appends as many bytes as `batch`'s frames take: `RECORD_OVERHEAD` more per event
    /// (the batch's few restart records left out, so floors built on it are low).
    #[must_use]
    pub fn frame_sized(path: &Path, batch: &[Bytes]) -> Self {
        let frame_bytes = batch.iter().map(|e| e.len() + RECORD_OVERHEAD).sum();
        Self::with_bytes(path, vec![0x5a; frame_bytes])
    }

    fn with_bytes(path: &Path, bytes: Vec<u8>) -> Self {
        Self {
            file: std::fs::File::create(path).expect("create the bench file"),
            bytes,
        }
    }

    /// Bytes appended per call.
    #[must_use]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether a call appends nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// One `write` of the bytes and an `fdatasync`.
    pub fn append(&mut self) {
        use std::io::Write;
        self.file.write_all(&self.bytes).expect("write");
        self.file.sync_data().expect("fdatasync");
    }
}

/// Kimberlite's chain hash of each payload in turn (the hashing an append must do), for
/// reference next to [`sha256_each`]; returns the last hash.
pub fn chain_hash_each(payloads: &[Bytes], first_offset: u64) -> Option<ChainHash> {
    let mut prev = None;
    for (i, payload) in payloads.iter().enumerate() {
        prev = Some(ChainHash::compute(
            prev.as_ref(),
            Offset::new(first_offset + i as u64),
            RecordKind::Data,
            payload,
        ));
    }
    black_box(prev)
}

/// Each record's chain hash but its link, for `payloads` from offset `first` on: the part of
/// the chain any thread can compute.
#[must_use]
pub fn unlinked_hashes(payloads: &[Bytes], first: u64) -> Vec<UnlinkedHash> {
    (first..)
        .zip(payloads)
        .map(|(offset, payload)| UnlinkedHash::new(Offset::new(offset), RecordKind::Data, payload))
        .collect()
}

/// Links `unlinked` in order after `head` (the part of the chain that must run in order);
/// returns the new head.
#[must_use]
pub fn link_all(unlinked: Vec<UnlinkedHash>, mut head: Option<ChainHash>) -> Option<ChainHash> {
    for hash in unlinked {
        head = Some(hash.link(head.as_ref()));
    }
    head
}

/// Copies of one batch, made before a measurement: `Storage::append_batch` takes its events
/// by value, and cloning 1,000 `Bytes` (a vector and 1,000 reference-count increments) is the
/// caller building its batch, not the append: the baselines get their bytes ready-made too.
pub struct Batches {
    batch: Vec<Bytes>,
    ready: Vec<Vec<Bytes>>,
}

impl Batches {
    /// `count` copies of `batch`, made now.
    #[must_use]
    pub fn new(batch: &[Bytes], count: usize) -> Self {
        Self {
            batch: batch.to_vec(),
            ready: (0..count).map(|_| batch.to_vec()).collect(),
        }
    }

    /// The next copy (made on the spot once the ready ones are used up).
    pub fn take(&mut self) -> Vec<Bytes> {
        self.ready.pop().unwrap_or_else(|| self.batch.clone())
    }
}

/// Median of `samples` (zero when empty).
#[must_use]
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// Median of `values` (zero when empty; NaNs sort last).
#[must_use]
pub fn median_f64(mut values: Vec<f64>) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Runs `a` and `b` alternately `rounds` times after one warm-up call each; returns the median
/// time of each. Interleaving makes machine noise hit both sides alike.
pub fn interleaved(
    rounds: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (Duration, Duration) {
    a();
    b();
    let (mut times_a, mut times_b) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        let started = Instant::now();
        a();
        times_a.push(started.elapsed());
        let started = Instant::now();
        b();
        times_b.push(started.elapsed());
    }
    (median(times_a), median(times_b))
}

/// Runs `a` and `b` in alternating phases until each has `rounds` timed calls; returns the
/// median time of each. A phase is one untimed call, then `phase` timed ones (the last phase
/// may be shorter). For a side that leaves work running after it returns (a cluster answers a
/// batch at commit, then applies it on every replica): strict alternation would time the other
/// side beside that work; here it runs out during the untimed call.
pub fn in_phases(
    rounds: usize,
    phase: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (Duration, Duration) {
    let phase = phase.max(1);
    let (mut times_a, mut times_b) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    while times_a.len() < rounds {
        let calls = phase.min(rounds - times_a.len());
        for (side, times) in [
            (&mut a as &mut dyn FnMut(), &mut times_a),
            (&mut b, &mut times_b),
        ] {
            side();
            for _ in 0..calls {
                let started = Instant::now();
                side();
                times.push(started.elapsed());
            }
        }
    }
    (median(times_a), median(times_b))
}

/// Direction of a target: the ratio must be at least, or at most, the target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Ratio >= the value.
    AtLeast(f64),
    /// Ratio <= the value.
    AtMost(f64),
}

impl Target {
    /// Whether `ratio` meets the target.
    #[must_use]
    pub fn met(self, ratio: f64) -> bool {
        match self {
            Target::AtLeast(value) => ratio >= value,
            Target::AtMost(value) => ratio <= value,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::AtLeast(value) => write!(f, ">= {value}"),
            Target::AtMost(value) => write!(f, "<= {value}"),
        }
    }
}

/// Prints the bench's `RESULT` line: our figure, the baseline's, the ratio and the target.
pub fn report(bench: &str, ours: &str, baseline: &str, ratio: f64, target: Target) {
    let verdict = if target.met(ratio) { "met" } else { "NOT met" };
    println!(
        "RESULT {bench}: kimberlite {ours} | baseline {baseline} | ratio {ratio:.3} \
         (target {target}: {verdict})"
    );
}

/// Events per second for `events` events in `elapsed`.
#[must_use]
pub fn rate(events: u64, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64().max(1e-12)
}

/// `value` with thousands separators, rounded.
#[must_use]
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// One stream of a [`Storage`] being appended to, a batch per call.
pub struct Appender {
    /// The store.
    pub storage: Storage,
    next: Offset,
    head: Option<ChainHash>,
}

impl Appender {
    /// Opens (creating) the store in `dir` with `config`.
    ///
    /// # Panics
    ///
    /// Panics if the store cannot be opened.
    #[must_use]
    pub fn open(dir: &Path, config: StorageConfig) -> Self {
        let storage = Storage::open_with(dir, config).expect("open the bench store");
        let mut appender = Self {
            storage,
            next: Offset::ZERO,
            head: None,
        };
        appender.next = Offset::new(
            appender
                .storage
                .stream_stats(STREAM)
                .map_or(0, |stats| stats.next_offset.as_u64()),
        );
        appender.head = appender
            .storage
            .latest_chain_hash(STREAM)
            .expect("head of the bench stream");
        appender
    }

    /// The stream's next offset.
    #[must_use]
    pub fn next_offset(&self) -> u64 {
        self.next.as_u64()
    }

    /// Appends `events` as one batch.
    ///
    /// # Panics
    ///
    /// Panics if the append fails.
    pub fn append(&mut self, events: Vec<Bytes>, fsync: bool) {
        let (next, head) = self
            .storage
            .append_batch(STREAM, events, self.next, self.head, fsync)
            .expect("append to the bench stream");
        self.next = next;
        self.head = Some(head);
    }
}

/// Fills `dir` with a store of one stream of `count` events (batches of [`BATCH_EVENTS`],
/// unsynced, then one flush) with `config`; returns how long that took.
///
/// # Panics
///
/// Panics on any storage error.
pub fn build_store(dir: &Path, count: u64, config: StorageConfig) -> Duration {
    let started = Instant::now();
    let mut appender = Appender::open(dir, config);
    let mut written = 0u64;
    while written < count {
        let n = (count - written).min(BATCH_EVENTS as u64) as usize;
        appender.append(events(written, n), false);
        written += n as u64;
    }
    appender.storage.flush().expect("flush the bench store");
    started.elapsed()
}

/// This process's resident set size in bytes (`/proc/self/statm`, second field × page size);
/// `None` where that file does not exist.
#[must_use]
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// User and system CPU seconds of process `pid` (`"self"` for this one): all its threads, ended
/// ones included (`/proc/<pid>/stat`, fields 14 and 15, in clock ticks of 1/100 s on Linux);
/// `None` where that file does not exist or does not parse.
#[must_use]
pub fn cpu_seconds(pid: &str) -> Option<(f64, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: count fields after it.
    let after_name = &text[text.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let mut ticks = || Some(fields.next()?.parse::<f64>().ok()? / 100.0);
    Some((ticks()?, ticks()?))
}

/// This process's user plus system CPU seconds ([`cpu_seconds`] of `"self"`), 0 where there is
/// no `/proc`.
#[must_use]
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds("self").map_or(0.0, |(user, system)| user + system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_the_size_and_differ() {
        let batch = events(0, 10);
        assert!(batch.iter().all(|event| event.len() == EVENT_BYTES));
        assert_ne!(batch[0], batch[1]);
        assert_eq!(event(7), event(7));
    }

    #[test]
    fn cpu_seconds_grow_with_work() {
        let (user, system) = cpu_seconds("self").expect("/proc/self/stat");
        // Work until the tick count moves (a tick is 10 ms; bounded by the clock).
        let started = std::time::Instant::now();
        let mut sum = 0u64;
        while cpu_seconds("self").map(|(u, s)| u + s) == Some(user + system)
            && started.elapsed() < std::time::Duration::from_secs(10)
        {
            sum = sum.wrapping_add(std::hint::black_box(sum) ^ 0x9e37);
        }
        let (later_user, later_system) = cpu_seconds("self").expect("/proc/self/stat");
        assert!(later_user + later_system > user + system);
        assert_eq!(cpu_seconds("0"), None, "no process 0 in /proc");
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_234_567.4), "1,234,567");
    }

    #[test]
    fn median_of_figures() {
        assert_eq!(median_f64(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_f64(Vec::new()), 0.0);
    }

    #[test]
    fn phases_alternate_each_after_an_untimed_call() {
        let calls = std::cell::RefCell::new(String::new());
        in_phases(
            25,
            10,
            || calls.borrow_mut().push('a'),
            || calls.borrow_mut().push('b'),
        );
        let expected: String = [11, 11, 6]
            .iter()
            .flat_map(|&n| ["a".repeat(n), "b".repeat(n)])
            .collect();
        assert_eq!(*calls.borrow(), expected);
    }

    #[test]
    fn phases_time_only_the_calls_after_the_untimed_one() {
        // Phases of one: every other call is the untimed one, and it is slow; the others return
        // at once. Were the slow calls timed, half the samples would be slow and so the median.
        let slow = Duration::from_millis(30);
        let side = || {
            let mut call = 0usize;
            move || {
                if call.is_multiple_of(2) {
                    std::thread::sleep(slow);
                }
                call += 1;
            }
        };
        let (a, b) = in_phases(9, 1, side(), side());
        assert!(a < slow / 2 && b < slow / 2, "{a:?} {b:?}");
    }

    #[test]
    fn targets() {
        assert!(Target::AtLeast(0.7).met(0.7));
        assert!(!Target::AtLeast(0.7).met(0.69));
        assert!(Target::AtMost(1.5).met(1.2));
    }

    #[test]
    fn a_built_store_reopens_with_its_events() {
        let dir = tempfile::tempdir().unwrap();
        build_store(dir.path(), 2_500, StorageConfig::default());
        let appender = Appender::open(dir.path(), StorageConfig::default());
        assert_eq!(appender.next_offset(), 2_500);
    }
}
