//! Quickstart: an audit trail of patient-record access events.
//!
//! Opens a store in a temporary directory, creates a stream, appends access events with
//! optimistic concurrency, reads them back, reopens the store (names and heads come back from
//! the log), and verifies every hash link.
//!
//! Run with `cargo run -p kimberlite --example quickstart`.

use kimberlite::{Error, ExpectedOffset, Kimberlite, Offset};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("hospital-audit");

    let store = Kimberlite::open(&path)?;
    let access = store.create_stream("patient-record-access")?;
    println!("opened a store in {} with stream {access}", path.display());

    // Each append is one atomic, synced batch. `NoStream` says "I expect this stream empty".
    let first = store.append(
        access,
        [
            r#"{"actor":"dr.chen","action":"view","patient":"P-1042","resource":"lab-results"}"#,
            r#"{"actor":"dr.chen","action":"view","patient":"P-1042","resource":"imaging"}"#,
        ],
        ExpectedOffset::NoStream,
    )?;
    println!(
        "appended offsets {}..{}, head {}",
        first.first_offset,
        first.next_offset.as_u64() - 1,
        first.head
    );

    // The next writer passes the offset it last saw; a stale writer is refused.
    let next = store.append(
        access,
        [r#"{"actor":"nurse.silva","action":"view","patient":"P-7731","resource":"vitals"}"#],
        ExpectedOffset::Exact(first.next_offset),
    )?;
    match store.append(
        access,
        [r#"{"late":true}"#],
        ExpectedOffset::Exact(first.next_offset),
    ) {
        Err(error @ Error::OffsetConflict { .. }) => println!("stale writer refused: {error}"),
        other => println!("unexpected: {other:?}"),
    }

    for event in store.events(access, Offset::ZERO) {
        let event = event?;
        println!(
            "  #{} {}",
            event.offset,
            String::from_utf8_lossy(&event.payload)
        );
    }
    drop(store);

    // Reopen: the stream's name and head are recovered from the log.
    let store = Kimberlite::open(&path)?;
    let access = store.stream("patient-record-access").ok_or("stream lost")?;
    let head = store.head(access)?;
    assert_eq!(head.hash, Some(next.head));
    println!("reopened: {} events, head {}", head.next_offset, next.head);

    let report = store.verify_all()?;
    println!(
        "verified {} records in {} streams (catalogue included): {}",
        report.records_checked(),
        report.streams.len(),
        if report.is_intact() {
            "intact"
        } else {
            "NOT intact"
        }
    );
    Ok(())
}
