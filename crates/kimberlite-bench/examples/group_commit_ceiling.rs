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
//! - `condvar`: leader/follower over a condition variable: the first waiter with no sync
//!   running syncs everything written so far, the others wait and are all woken
//!   (`notify_all`) when it ends;
//! - `parked`: the same, but each waiter parks its own thread and the leader unparks exactly
//!   the waiters its sync covered plus one to lead the next (as the store's writer queue does);
//! - `combining`: waiters queue their event instead of writing it; the leader writes all
//!   queued events with one `write`, syncs, and unparks them (no write per thread);
//! - `store`: the `kimberlite` store itself, `Durability::GroupCommit`, default config.
//!
//! Every figure is a ratio against T1 measured in the same round (a virtual disk's flush
//! latency can move within seconds). The `group_commit` bench prints the three bounds itself
//! (`kimberlite_bench::ceiling`); why they cap the target: `docs/PERFORMANCE.md`, section "Why
//! the unmet targets are not met".
//!
//! Run: `cargo run --release -p kimberlite-bench --example group_commit_ceiling [rounds]
//! [design]` (rounds: 10 by default; design: one of the four, to run only it).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use kimberlite::{Config, Durability, ExpectedOffset, Kimberlite};
use kimberlite_bench::ceiling::{append_file, arrival_times, synced_writes, Parts};
use kimberlite_bench::{event, median};

const THREADS: usize = 16;
const PER_THREAD: usize = 40;
const SINGLES: usize = 150;
/// One framed 256-byte event.
const EVENT_BYTES: usize = kimberlite_bench::ceiling::FRAMED_EVENT_BYTES;

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
    let arrivals = arrival_times(&path("gather"), THREADS, 300);
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
        let parts = Parts {
            one: synced_writes(&path("single"), SINGLES, EVENT_BYTES),
            all: synced_writes(&path("sixteen"), SINGLES / 2, EVENT_BYTES * THREADS),
            arrivals: arrivals.clone(),
        };
        let (one, sixteen, bounds) = (parts.one, parts.all, parts.bounds());
        let mut per_event: Vec<Duration> = [bounds.device, bounds.pipelined, bounds.best_wait]
            .into_iter()
            .map(|ratio| one.div_f64(ratio))
            .collect();
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
