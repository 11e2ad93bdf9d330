//! Concurrent appenders with group commit.
//!
//! Eight threads share one store (a `Kimberlite` clone each) and append to four streams with
//! `ExpectedOffset::Any`. Under `Durability::GroupCommit` every append returns only once it is
//! synced, but batches written while a sync runs share the next one, so there are far fewer
//! syncs than appends. The example then checks that every event is there once and verifies.
//!
//! Run with `cargo run --release -p kimberlite --example concurrent`.

use std::time::Instant;

use kimberlite::{Config, Durability, ExpectedOffset, Kimberlite, Offset};

const THREADS: usize = 8;
const STREAMS: usize = 4;
const APPENDS_PER_THREAD: usize = 250;
const EVENTS_PER_APPEND: usize = 4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    for durability in [Durability::SyncEachAppend, Durability::GroupCommit] {
        let path = dir.path().join(format!("{durability:?}"));
        let store = Kimberlite::open_with(&path, Config::default().durability(durability))?;
        let ids = (0..STREAMS)
            .map(|s| store.create_stream(&format!("ward-{s}")))
            .collect::<Result<Vec<_>, _>>()?;

        let started = Instant::now();
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (store, ids) = (store.clone(), ids.clone());
                std::thread::spawn(move || -> Result<(), kimberlite::Error> {
                    for a in 0..APPENDS_PER_THREAD {
                        let id = ids[(t + a) % STREAMS];
                        let batch: Vec<String> = (0..EVENTS_PER_APPEND)
                            .map(|e| format!(r#"{{"thread":{t},"append":{a},"event":{e}}}"#))
                            .collect();
                        store.append(id, batch, ExpectedOffset::Any)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for thread in threads {
            thread.join().map_err(|_| "appender panicked")??;
        }
        let elapsed = started.elapsed().as_secs_f64();

        let mut total = 0;
        for id in &ids {
            for (expected, event) in store.events(*id, Offset::ZERO).enumerate() {
                assert_eq!(event?.offset.as_u64(), expected as u64, "offsets are dense");
                total += 1;
            }
        }
        assert_eq!(total, THREADS * APPENDS_PER_THREAD * EVENTS_PER_APPEND);
        let report = store.verify_all()?;
        println!(
            "{durability:?}: {} appends from {THREADS} threads in {elapsed:.2} s \
             ({:.0} appends/s); {total} events, chains {}",
            THREADS * APPENDS_PER_THREAD,
            (THREADS * APPENDS_PER_THREAD) as f64 / elapsed,
            if report.is_intact() {
                "intact"
            } else {
                "BROKEN"
            }
        );
    }
    Ok(())
}
