//! Upper bounds for group commit on this machine, from measured parts only: what no design
//! can beat when `threads` threads each have one synced event in flight. The derivation is in
//! `examples/group_commit_ceiling.rs` (which also runs real designs against them) and in
//! `docs/PERFORMANCE.md`, section "Why the unmet targets are not met"; the `group_commit` bench
//! prints them beside its `RESULT`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::{median, SyncedFile};

/// One framed 256-byte event, in bytes.
pub const FRAMED_EVENT_BYTES: usize = 312;

/// A file opened for appending.
///
/// # Panics
///
/// Panics if the file cannot be opened (a bench setup failure).
#[must_use]
pub fn append_file(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the probe file")
}

/// One thread, `count` times: `write` of `bytes` bytes and `fdatasync`, appended to `path`.
/// Returns the time per sync.
///
/// # Panics
///
/// Panics on an I/O error (a bench failure) or a `count` of zero.
#[must_use]
pub fn synced_writes(path: &Path, count: usize, bytes: usize) -> Duration {
    let mut file = SyncedFile {
        file: append_file(path),
        bytes: vec![7u8; bytes],
    };
    let started = Instant::now();
    (0..count).for_each(|_| file.append());
    started.elapsed() / u32::try_from(count).expect("a small count")
}

/// `threads` parked threads are unparked at once and each writes one framed event to a shared
/// file (under its lock), `rounds` times; returns the median time from the unpark until the
/// i-th write, for i = 1..=threads: how long a sync that waited for i of them would leave the
/// device idle. The waker sleeps meanwhile (a spinning waker would take one of the cores the
/// threads need), and the last writer wakes it.
///
/// # Panics
///
/// Panics on an I/O error (a bench failure).
#[must_use]
pub fn arrival_times(path: &Path, threads: usize, rounds: usize) -> Vec<Duration> {
    let file = Mutex::new(append_file(path));
    let buffer = vec![7u8; FRAMED_EVENT_BYTES];
    let (generation, arrived) = (AtomicU64::new(0), AtomicU64::new(0));
    let arrival_ns: Vec<AtomicU64> = (0..threads).map(|_| AtomicU64::new(0)).collect();
    let started = Mutex::new(Instant::now());
    let mut by_rank: Vec<Vec<Duration>> = (0..threads).map(|_| Vec::new()).collect();
    let waker = thread::current();
    let total = threads as u64;
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    for round in 1..=rounds as u64 {
                        while generation.load(Ordering::Acquire) < round {
                            thread::park();
                        }
                        file.lock()
                            .expect("lock")
                            .write_all(&buffer)
                            .expect("write");
                        let elapsed = started.lock().expect("lock").elapsed();
                        let rank = arrived.fetch_add(1, Ordering::AcqRel) % total;
                        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
                        if let Some(slot) = usize::try_from(rank)
                            .ok()
                            .and_then(|rank| arrival_ns.get(rank))
                        {
                            slot.store(nanos, Ordering::Release);
                        }
                        if rank + 1 == total {
                            waker.unpark();
                        }
                    }
                })
            })
            .collect();
        for round in 1..=rounds as u64 {
            // Let every worker get back to sleep first.
            thread::sleep(Duration::from_micros(300));
            *started.lock().expect("lock") = Instant::now();
            generation.store(round, Ordering::Release);
            workers.iter().for_each(|worker| worker.thread().unpark());
            while arrived.load(Ordering::Acquire) < round * total {
                thread::park();
            }
            for (times, nanos) in by_rank.iter_mut().zip(&arrival_ns) {
                times.push(Duration::from_nanos(nanos.load(Ordering::Acquire)));
            }
        }
    });
    by_rank.into_iter().map(median).collect()
}

/// The parts the bounds are built from.
#[derive(Debug, Clone)]
pub struct Parts {
    /// One thread's `write` + `fdatasync` of one framed event (the baseline's cost).
    pub one: Duration,
    /// The same of `arrivals.len()` events at once: a sync covering every thread.
    pub all: Duration,
    /// [`arrival_times`] for that many threads.
    pub arrivals: Vec<Duration>,
}

/// The three bounds, as ratios to one thread syncing each event (what the bench's target is
/// stated in).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Every sync covers every thread's event, and waking and writing cost nothing.
    pub device: f64,
    /// Syncs back to back: a thread woken by one sync writes during the next and is covered
    /// by the one after, so every event waits two syncs.
    pub pipelined: f64,
    /// The best of: each sync waits until the first i woken threads have written (the device
    /// idle meanwhile); those are covered by it, the rest by the next, so an event takes
    /// (2 - i/n) cycles of (sync + wait). i = 0 is `pipelined`.
    pub best_wait: f64,
}

impl Parts {
    /// Measures the parts for `threads` threads in `dir` (a few hundred milliseconds).
    #[must_use]
    pub fn measure(dir: &Path, threads: usize) -> Self {
        Self {
            arrivals: arrival_times(&dir.join("arrivals"), threads, 300),
            one: synced_writes(&dir.join("one"), 150, FRAMED_EVENT_BYTES),
            all: synced_writes(&dir.join("all"), 75, FRAMED_EVENT_BYTES * threads),
        }
    }

    /// The bounds these parts allow.
    #[must_use]
    pub fn bounds(&self) -> Bounds {
        let threads = self.arrivals.len().max(1) as f64;
        let ratio = |per_event: f64| self.one.as_secs_f64() / per_event;
        let all = self.all.as_secs_f64();
        let best_wait = (0..=self.arrivals.len())
            .map(|gathered| {
                let wait = gathered
                    .checked_sub(1)
                    .and_then(|rank| self.arrivals.get(rank))
                    .map_or(0.0, Duration::as_secs_f64);
                let cycles = 2.0 - gathered as f64 / threads;
                ratio((all + wait) * cycles / threads)
            })
            .fold(0.0, f64::max);
        Bounds {
            device: ratio(all / threads),
            pipelined: ratio(2.0 * all / threads),
            best_wait,
        }
    }
}
