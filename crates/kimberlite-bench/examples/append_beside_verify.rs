//! How long a single append waits while another thread verifies the stream: a store of
//! 300,000 events of 256 B (`Durability::Unsynced`, so the wait is the lock, not the
//! device), one thread verifying it over and over, this one appending single events; prints
//! the median and the slowest appends, and the same without the verifying thread.
//!
//! Run: `cargo run --release -p kimberlite-bench --example append_beside_verify`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kimberlite::{Config, Durability, ExpectedOffset, Kimberlite};
use kimberlite_bench::{event, events, median};

const EVENTS: u64 = 300_000;
const APPENDS: u64 = 2_000;

fn appends(store: &Kimberlite, id: kimberlite::StreamId, first: u64) -> Vec<Duration> {
    (first..first + APPENDS)
        .map(|i| {
            let started = Instant::now();
            store
                .append(id, [event(i)], ExpectedOffset::Any)
                .expect("append");
            std::thread::sleep(Duration::from_micros(200));
            started.elapsed().saturating_sub(Duration::from_micros(200))
        })
        .collect()
}

fn summary(label: &str, mut times: Vec<Duration>) {
    times.sort();
    let max = times.last().copied().unwrap_or_default();
    let p99 = times[times.len() * 99 / 100];
    println!(
        "append_beside_verify: {label}: median {:.2?}, p99 {p99:.2?}, slowest {max:.2?}",
        median(times)
    );
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Kimberlite::open_with(
        dir.path(),
        Config::default().durability(Durability::Unsynced),
    )
    .expect("open");
    let id = store.create_stream("audit").expect("create");
    for first in (0..EVENTS).step_by(1_000) {
        store
            .append(id, events(first, 1_000), ExpectedOffset::Any)
            .expect("fill");
    }
    store.sync().expect("sync");
    summary("alone", appends(&store, id, EVENTS));
    let done = AtomicBool::new(false);
    let (times, verifications) = std::thread::scope(|scope| {
        let verifier = scope.spawn(|| {
            let mut verifications = 0u32;
            while !done.load(Ordering::SeqCst) {
                assert!(store.verify(id).expect("verify").is_intact());
                verifications += 1;
            }
            verifications
        });
        let times = appends(&store, id, EVENTS + APPENDS);
        done.store(true, Ordering::SeqCst);
        (times, verifier.join().expect("verifier"))
    });
    summary(&format!("beside {verifications} verifications"), times);
}
