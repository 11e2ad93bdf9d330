//! Appends an audit trail to an in-memory Kimberlite store, reads it back page by page,
//! verifies the whole hash chain and shows that a wrong `expected_offset` is refused.
//!
//! Run with `cargo run --release -p kimberlite-storage --example memory_storage`.

use bytes::Bytes;
use kimberlite_storage::{MemoryStorage, StorageBackend};
use kimberlite_types::{Offset, StreamId};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut storage = MemoryStorage::with_max_segment_size(64 * 1024);
    let stream = StreamId::new(1);

    let mut next = Offset::ZERO;
    let mut head = None;
    for batch in 0..10u64 {
        let events: Vec<Bytes> = (0..100u64)
            .map(|i| {
                let n = batch * 100 + i;
                Bytes::from(format!(
                    r#"{{"event":"record_viewed","patient":"P-{:05}","clinician":"C-{:03}","seq":{n}}}"#,
                    n % 997,
                    n % 31
                ))
            })
            .collect();
        let (new_next, new_head) = storage.append_batch(stream, events, next, head, true)?;
        next = new_next;
        head = Some(new_head);
    }
    println!(
        "appended {} events to stream {stream} in 10 batches",
        next.as_u64()
    );
    println!(
        "  segments: {} ({} completed)",
        storage.segment_count(stream),
        storage.completed_segments(stream).len()
    );
    println!(
        "  head chain hash: {}",
        head.map(|h| h.to_string()).unwrap_or_default()
    );

    let mut from = Offset::ZERO;
    let mut pages = 0;
    let mut events_read = 0u64;
    loop {
        let page = storage.read_from(stream, from, 4096)?;
        if page.is_empty() {
            break;
        }
        pages += 1;
        events_read += page.len() as u64;
        from = Offset::new(from.as_u64() + page.len() as u64);
    }
    println!("read {events_read} verified events back in {pages} pages of about 4 KiB");
    let last = storage.read_from(stream, Offset::new(next.as_u64() - 1), 0)?;
    if let Some(event) = last.first() {
        println!("  last event: {}", String::from_utf8_lossy(event));
    }

    let report = storage.verify_stream(stream)?;
    println!(
        "verified {} records ({} bytes) from the first: chain intact, head {}",
        report.records_checked,
        report.bytes_checked,
        report.head.map(|h| h.to_string()).unwrap_or_default()
    );
    assert_eq!(
        report.head, head,
        "verification must end at the head we appended"
    );

    match storage.append_batch(
        stream,
        vec![Bytes::from_static(b"late")],
        Offset::new(3),
        head,
        true,
    ) {
        Err(error) => println!("a stale writer is refused: {error}"),
        Ok(_) => return Err("a stale append was accepted".into()),
    }
    Ok(())
}
