//! How far can group commit go on this machine? The `group_commit` bench's target is 16
//! threads appending single events with durability at >= 10x one thread syncing each event.
//! This probe measures the same shape with no log at all, over a plain file (312-byte writes,
//! the size of one framed 256-byte event), so what it reaches is a ceiling for any store:
//!
//! - `device bound`: 16 x (one thread's `write` + `fdatasync` of one event) / (one thread's
//!   `write` + `fdatasync` of 16 events at once). Each of the 16 threads has one event in
//!   flight, so a sync covers at most 16 events and each event waits at least one sync: the
//!   ratio group commit could reach if waking and scheduling threads cost nothing;
//! - `condvar`: leader/follower over a condition variable (the `kimberlite` store's
//!   coordinator until 2026-11-26): the first waiter with no sync running syncs everything
//!   written so far, the others wait and are all woken (`notify_all`) when it ends;
//! - `parked`: the same, but each waiter parks its own thread and the leader unparks exactly
//!   the waiters its sync covered plus one to lead the next (the store's coordinator now);
//! - `combining`: waiters queue their event instead of writing it; the leader writes all
//!   queued events with one `write`, syncs, and unparks them (no write per thread);
//! - `store`: the `kimberlite` store itself, `Durability::GroupCommit`, default config.
//!
//! Every figure is a ratio against one thread's `write` + `fdatasync` of single events,
//! measured in the same round (the VM's flush latency moves within seconds).
//!
//! Run: `cargo run --release -p kimberlite-bench --example group_commit_ceiling [rounds]`.

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

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(10, |rounds| rounds.parse().expect("rounds: a number"));
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
    let names = ["device bound", "condvar", "parked", "combining", "store"];
    let mut ratios: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    println!("per round, each against one thread's write + fdatasync of single events:");
    for _ in 0..rounds {
        let one = single(&path("single"), SINGLES, EVENT_BYTES);
        let sixteen = single(&path("sixteen"), SINGLES / 2, EVENT_BYTES * THREADS);
        let only = std::env::args().nth(2);
        let wanted = |name: &str| only.as_deref().is_none_or(|only| only == name);
        let skip = Duration::from_secs(1);
        let per_event = [
            sixteen / u32::try_from(THREADS).expect("small"),
            if wanted("condvar") {
                condvar(&path("condvar"))
            } else {
                skip
            },
            if wanted("parked") {
                parked(&path("parked"))
            } else {
                skip
            },
            if wanted("combining") {
                combining(&path("combining"))
            } else {
                skip
            },
            if wanted("store") {
                store(&kimberlite, id)
            } else {
                skip
            },
        ];
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
