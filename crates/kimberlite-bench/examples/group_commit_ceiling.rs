//! How far can group commit go on this machine? The `group_commit` bench's target is 16
//! threads appending single events with durability at >= 10x one thread syncing each event.
//! This probe measures the same shape with no log at all, over a plain file (312-byte writes,
//! the size of one framed 256-byte event), so what it reaches is a ceiling for any store.
//!
//! Each of the 16 threads has one event in flight, so a sync covers at most 16 events, and an
//! event is acknowledged only by a sync that *started* after it was written. Three bounds
//! follow, from measured parts only (`T1`: one thread's `write` + `fdatasync` of one event;
//! `T16`: the same of 16 events at once; `G_i`: the time until the i-th of 16 parked threads,
//! woken at once, has written its event):
//!
//! - `device bound` = 16 x T1 / T16: every sync covers all 16 and nothing else costs time;
//! - `pipelined bound` = 8 x T1 / T16: syncs run back to back, so a thread woken by one sync
//!   writes while the next runs and is covered by the one after: two syncs per event;
//! - `best-wait bound`: each sync waits until the first i of the 16 woken threads have written
//!   again (the device idle meanwhile, for G_i), the others are covered by the sync after;
//!   an event then takes (2 - i/16) cycles of T16 + G_i, and the bound is the best i
//!   (i = 0 is pipelined; i = 16, 16 x T1 / (T16 + G_16), waits for all).
//!
//! And four designs, run for real:
//! - `condvar`: leader/follower over a condition variable (the `kimberlite` store's
//!   coordinator until 2026-11-26): the first waiter with no sync running syncs everything
//!   written so far, the others wait and are all woken (`notify_all`) when it ends;
//! - `parked`: the same, but each waiter parks its own thread and the leader unparks exactly
//!   the waiters its sync covered plus one to lead the next (the store's coordinator now);
//! - `combining`: waiters queue their event instead of writing it; the leader writes all
//!   queued events with one `write`, syncs, and unparks them (no write per thread);
//! - `store`: the `kimberlite` store itself, `Durability::GroupCommit`, default config.
//!
//! Every figure is a ratio against T1 measured in the same round (the VM's flush latency moves
//! within seconds). Results: `docs/PERFORMANCE.md`, "`group_commit`: the ceiling".
//!
//! Run: `cargo run --release -p kimberlite-bench --example group_commit_ceiling [rounds]
//! [design]` (rounds: 10 by default; design: one of the four, to run only it).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use kimberlite::{Config, Durability, ExpectedOffset, Kimberlite};
use kimberlite_bench::{event, median};

const THREADS: usize = 16;
const PER_THREAD: usize = 40;
const SINGLES: usize = 150;
/// One framed 256-byte event.
const EVENT_BYTES: usize = 312;

fn append_file(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the probe file")
}

/// One thread: `count` times, `write` `bytes` bytes and `fdatasync`. Returns time per sync.
fn single(path: &Path, count: usize, bytes: usize) -> Duration {
    let mut file = append_file(path);
    let buffer = vec![7u8; bytes];
    let started = Instant::now();
    for _ in 0..count {
        file.write_all(&buffer).expect("write");
        file.sync_data().expect("fdatasync");
    }
    started.elapsed() / u32::try_from(count).expect("small count")
}

/// Runs `THREADS` threads of `PER_THREAD` calls of `append_durably`; returns time per event.
fn concurrent(append_durably: impl Fn() + Sync) -> Duration {
    let started = Instant::now();
    thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| (0..PER_THREAD).for_each(|_| append_durably()));
        }
    });
    started.elapsed() / u32::try_from(THREADS * PER_THREAD).expect("small count")
}

/// The file and the number of events written to it.
struct Written {
    file: File,
    count: u64,
}

impl Written {
    fn new(path: &Path) -> Mutex<Self> {
        Mutex::new(Self {
            file: append_file(path),
            count: 0,
        })
    }
}

/// Writes one event; returns its write number.
fn write_one(written: &Mutex<Written>, buffer: &[u8]) -> u64 {
    let mut written = written.lock().expect("lock");
    written.file.write_all(buffer).expect("write");
    written.count += 1;
    written.count
}

/// Syncs everything written so far; returns the highest write number it covered.
fn sync_written(written: &Mutex<Written>, file: &File) -> u64 {
    let covered = written.lock().expect("lock").count;
    file.sync_data().expect("fdatasync");
    covered
}

#[derive(Default)]
struct Progress {
    durable: u64,
    leader_active: bool,
    parked: Vec<(u64, Thread)>,
}

fn condvar(path: &Path) -> Duration {
    let written = Written::new(path);
    let file = append_file(path);
    let (progress, synced) = (Mutex::new(Progress::default()), Condvar::new());
    let buffer = vec![7u8; EVENT_BYTES];
    concurrent(|| {
        let seq = write_one(&written, &buffer);
        let mut state = progress.lock().expect("lock");
        while state.durable < seq {
            if state.leader_active {
                state = synced.wait(state).expect("lock");
                continue;
            }
            state.leader_active = true;
            drop(state);
            let covered = sync_written(&written, &file);
            state = progress.lock().expect("lock");
            state.leader_active = false;
            state.durable = state.durable.max(covered);
            synced.notify_all();
        }
    })
}

fn parked(path: &Path) -> Duration {
    let written = Written::new(path);
    let file = append_file(path);
    let progress = Mutex::new(Progress::default());
    // Also kept outside the lock, so that a woken waiter the sync covered returns without
    // queueing for the mutex behind the others.
    let durable = AtomicU64::new(0);
    let buffer = vec![7u8; EVENT_BYTES];
    concurrent(|| {
        let seq = write_one(&written, &buffer);
        loop {
            if durable.load(Ordering::Acquire) >= seq {
                return;
            }
            let mut state = progress.lock().expect("lock");
            if state.durable >= seq {
                return;
            }
            if state.leader_active {
                let me = thread::current();
                state.parked.retain(|(_, other)| other.id() != me.id());
                state.parked.push((seq, me));
                drop(state);
                thread::park();
                continue;
            }
            state.leader_active = true;
            drop(state);
            let covered = sync_written(&written, &file);
            let mut state = progress.lock().expect("lock");
            state.leader_active = false;
            state.durable = state.durable.max(covered);
            durable.store(state.durable, Ordering::Release);
            let mut next_leader_woken = false;
            state.parked.retain(|(waiting_for, waiter)| {
                let covered = *waiting_for <= covered;
                if covered || !next_leader_woken {
                    waiter.unpark();
                    next_leader_woken |= !covered;
                }
                !covered
            });
        }
    })
}

/// A queued event's completion flag and its thread.
type Queued = (Arc<AtomicBool>, Thread);

fn combining(path: &Path) -> Duration {
    let file = Mutex::new(append_file(path));
    let queue: Mutex<(Vec<Queued>, bool)> = Mutex::new((Vec::new(), false));
    concurrent(|| {
        let done = Arc::new(AtomicBool::new(false));
        let mut state = queue.lock().expect("lock");
        state.0.push((Arc::clone(&done), thread::current()));
        while !done.load(Ordering::Acquire) {
            if state.1 {
                drop(state);
                thread::park();
                state = queue.lock().expect("lock");
                continue;
            }
            state.1 = true;
            let batch: Vec<Queued> = state.0.drain(..).collect();
            drop(state);
            {
                let mut file = file.lock().expect("lock");
                file.write_all(&vec![7u8; EVENT_BYTES * batch.len()])
                    .expect("write");
                file.sync_data().expect("fdatasync");
            }
            for (done, waiter) in &batch {
                done.store(true, Ordering::Release);
                waiter.unpark();
            }
            state = queue.lock().expect("lock");
            state.1 = false;
            if let Some((_, next_leader)) = state.0.first() {
                next_leader.unpark();
            }
        }
    })
}

fn store(store: &Kimberlite, id: kimberlite::StreamId) -> Duration {
    let next = AtomicU64::new(0);
    concurrent(|| {
        let payload = event(next.fetch_add(1, Ordering::Relaxed));
        store
            .append(id, [payload], ExpectedOffset::Any)
            .expect("append");
    })
}

/// Median time from `unpark` until the parked thread runs again, over `count` hand-offs
/// between two threads (each parks, the other wakes it): the floor of every wake-up.
fn wake_latency(count: usize) -> Duration {
    let woken_at = Mutex::new(Vec::with_capacity(count));
    let turn = AtomicU64::new(0);
    let epoch = Instant::now();
    let elapsed_ns = || u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let unparked_at = AtomicU64::new(0);
    let (first, second) = (std::sync::OnceLock::new(), std::sync::OnceLock::new());
    thread::scope(|scope| {
        let player = |me: u64, other: &std::sync::OnceLock<Thread>| {
            for round in 0..count as u64 {
                while turn.load(Ordering::Acquire) % 2 != me {
                    thread::park();
                }
                if round > 0 || me == 1 {
                    let woke = elapsed_ns().saturating_sub(unparked_at.load(Ordering::Acquire));
                    woken_at
                        .lock()
                        .expect("lock")
                        .push(Duration::from_nanos(woke));
                }
                unparked_at.store(elapsed_ns(), Ordering::Release);
                turn.fetch_add(1, Ordering::AcqRel);
                other.wait().unpark();
            }
        };
        let (first, second) = (&first, &second);
        let a = scope.spawn(move || player(0, second));
        let b = scope.spawn(move || player(1, first));
        let _ = first.set(a.thread().clone());
        let _ = second.set(b.thread().clone());
    });
    median(woken_at.into_inner().expect("lock"))
}

/// 16 parked threads are unparked at once and each writes one event to a shared file (under
/// its lock), `count` times; returns the median time from the unpark until the i-th write,
/// for i = 1..=16: how long a sync that waited for i of them would leave the device idle.
/// The waker sleeps meanwhile (a spinning waker would take one of the cores the threads
/// need), and the last writer wakes it.
fn arrival_times(path: &Path, count: usize) -> Vec<Duration> {
    let written = Written::new(path);
    let buffer = vec![7u8; EVENT_BYTES];
    let (generation, arrived) = (AtomicU64::new(0), AtomicU64::new(0));
    let arrival_ns: Vec<AtomicU64> = (0..THREADS).map(|_| AtomicU64::new(0)).collect();
    let started = Mutex::new(Instant::now());
    let mut by_rank: Vec<Vec<Duration>> = (0..THREADS).map(|_| Vec::with_capacity(count)).collect();
    let waker = thread::current();
    thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    for round in 1..=count as u64 {
                        while generation.load(Ordering::Acquire) < round {
                            thread::park();
                        }
                        write_one(&written, &buffer);
                        let elapsed = started.lock().expect("lock").elapsed();
                        let rank = arrived.fetch_add(1, Ordering::AcqRel) % THREADS as u64;
                        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
                        arrival_ns[usize::try_from(rank).expect("small")]
                            .store(nanos, Ordering::Release);
                        if rank + 1 == THREADS as u64 {
                            waker.unpark();
                        }
                    }
                })
            })
            .collect();
        for round in 1..=count as u64 {
            // Let every worker get back to sleep first.
            thread::sleep(Duration::from_micros(300));
            *started.lock().expect("lock") = Instant::now();
            generation.store(round, Ordering::Release);
            workers.iter().for_each(|worker| worker.thread().unpark());
            while arrived.load(Ordering::Acquire) < round * THREADS as u64 {
                thread::park();
            }
            for (rank, nanos) in arrival_ns.iter().enumerate() {
                by_rank[rank].push(Duration::from_nanos(nanos.load(Ordering::Acquire)));
            }
        }
    });
    by_rank.into_iter().map(median).collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args
        .next()
        .map_or(10, |rounds| rounds.parse().expect("rounds: a number"));
    let only = args.next();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| dir.path().join(name);
    let kimberlite = Kimberlite::open_with(
        path("store"),
        Config::default().durability(Durability::GroupCommit),
    )
    .expect("open the store");
    let id = kimberlite
        .create_stream("probe")
        .expect("create the stream");
    let wake = wake_latency(2_000);
    let arrivals = arrival_times(&path("gather"), 300);
    println!("wake-up latency (unpark until the parked thread runs), median of 2,000: {wake:.1?}");
    let shown: Vec<String> = arrivals.iter().map(|at| format!("{at:.0?}")).collect();
    println!(
        "16 parked threads woken at once, each writing one event: the 1st to 16th write after \
         {} (medians of 300)",
        shown.join(", ")
    );
    let bounds = ["device bound", "pipelined bound", "best-wait bound"];
    let designs: [(&str, &dyn Fn() -> Duration); 4] = [
        ("condvar", &|| condvar(&path("condvar"))),
        ("parked", &|| parked(&path("parked"))),
        ("combining", &|| combining(&path("combining"))),
        ("store", &|| store(&kimberlite, id)),
    ];
    let designs: Vec<_> = designs
        .into_iter()
        .filter(|(name, _)| only.as_deref().is_none_or(|only| only == *name))
        .collect();
    let names: Vec<&str> = bounds
        .into_iter()
        .chain(designs.iter().map(|(name, _)| *name))
        .collect();
    let mut ratios: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    println!("per round, each a ratio to one thread's write + fdatasync of single events:");
    for _ in 0..rounds {
        let one = single(&path("single"), SINGLES, EVENT_BYTES);
        let sixteen = single(&path("sixteen"), SINGLES / 2, EVENT_BYTES * THREADS);
        let threads = u32::try_from(THREADS).expect("small");
        // Per event: a sync covers at most the 16 events in flight; syncing back to back, a
        // thread woken by one sync writes during the next and is covered by the one after;
        // waiting to gather all 16 leaves the device idle while they wake and write.
        // Waiting for the first i writers: those i are covered by the next sync, the rest
        // by the one after (they write while it runs), so an event takes (2 - i/16) cycles
        // of (sync + wait) on average. i = 0 is pipelined, i = 16 gathering.
        let best_wait = (0..=THREADS)
            .map(|gathered| {
                let wait = gathered
                    .checked_sub(1)
                    .map_or(Duration::ZERO, |rank| arrivals[rank]);
                let cycles = 2.0 - gathered as f64 / THREADS as f64;
                (sixteen + wait).mul_f64(cycles) / threads
            })
            .min()
            .unwrap_or_default();
        let mut per_event = vec![sixteen / threads, sixteen * 2 / threads, best_wait];
        per_event.extend(designs.iter().map(|(_, run)| run()));
        let mut line = format!("1 thread {one:.0?}/event, 16 events {sixteen:.0?}/sync |");
        for ((name, time), all) in names.iter().zip(per_event).zip(&mut ratios) {
            let ratio = one.as_secs_f64() / time.as_secs_f64();
            all.push(Duration::from_secs_f64(ratio));
            line.push_str(&format!(" {name} {ratio:.2}"));
        }
        println!("{line}");
    }
    let medians: Vec<String> = names
        .iter()
        .zip(ratios)
        .map(|(name, all)| format!("{name} {:.2}", median(all).as_secs_f64()))
        .collect();
    println!("median ratios over {rounds} rounds: {}", medians.join(", "));
}
