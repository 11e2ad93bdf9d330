//! The store on disk: what survives a reopen, and how a wrong directory is refused.

use kimberlite::{Config, Durability, Error, ExpectedOffset, Kimberlite, Offset, MARKER_FILE};

#[test]
fn names_heads_and_events_survive_reopen() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let (access, head) = {
        let store = Kimberlite::open(&dir).unwrap();
        let access = store.create_stream("patient-access").unwrap();
        let billing = store.create_stream("billing").unwrap();
        store
            .append(billing, ["b0"], ExpectedOffset::NoStream)
            .unwrap();
        let result = store
            .append(access, ["a0", "a1", "a2"], ExpectedOffset::NoStream)
            .unwrap();
        (access, result.head)
    };
    let store = Kimberlite::open_with(&dir, Config::default().create_if_missing(false)).unwrap();
    assert_eq!(store.stream("patient-access"), Some(access));
    let names: Vec<_> = store.list_streams().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["billing", "patient-access"]);
    let recovered = store.head(access).unwrap();
    assert_eq!(recovered.next_offset, Offset::new(3));
    assert_eq!(recovered.hash, Some(head));
    // Appends continue the recovered chain.
    let stale = store.append(access, ["x"], ExpectedOffset::Exact(Offset::new(2)));
    assert!(matches!(stale, Err(Error::OffsetConflict { .. })));
    store
        .append(access, ["a3"], ExpectedOffset::Exact(Offset::new(3)))
        .unwrap();
    let third = store.create_stream("third").unwrap();
    assert_eq!(
        third.as_u64(),
        3,
        "ids continue after the recovered catalogue"
    );
    let report = store.verify_all().unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.records_checked(), 3 + 4 + 1);
    let payloads: Vec<_> = store
        .events(access, Offset::ZERO)
        .map(|e| e.unwrap().payload)
        .collect();
    assert_eq!(payloads, ["a0", "a1", "a2", "a3"]);
}

#[test]
fn wrong_directories_are_refused() {
    let temp = tempfile::tempdir().unwrap();
    let missing = temp.path().join("missing");
    let strict = Config::default().create_if_missing(false);
    assert!(matches!(
        Kimberlite::open_with(&missing, strict.clone()),
        Err(Error::StoreNotFound { .. })
    ));
    assert!(!missing.exists());
    let empty = temp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(matches!(
        Kimberlite::open_with(&empty, strict),
        Err(Error::NotAStore { .. })
    ));
    let busy = temp.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "not a store").unwrap();
    let error = Kimberlite::open(&busy).unwrap_err();
    assert!(matches!(error, Error::NotAStore { .. }), "{error}");
    let file = temp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    assert!(matches!(
        Kimberlite::open(&file),
        Err(Error::NotAStore { .. })
    ));
    // A new store gets its marker; a marker from another format version is refused.
    let fresh = temp.path().join("fresh");
    drop(Kimberlite::open(&fresh).unwrap());
    assert!(fresh.join(MARKER_FILE).is_file());
    std::fs::write(fresh.join(MARKER_FILE), "{\"kimberlite_store\":2}").unwrap();
    let error = Kimberlite::open(&fresh).unwrap_err();
    assert!(
        matches!(error, Error::UnsupportedStore { version: 2, .. }),
        "{error}"
    );
    // A garbage marker in a store is damage to that store, named as such (issue 22).
    std::fs::write(fresh.join(MARKER_FILE), "garbage").unwrap();
    assert!(matches!(
        Kimberlite::open(&fresh),
        Err(Error::MarkerDamaged { .. })
    ));
    // A directory holding only the temporary marker of a creation in progress (or of one cut
    // short before its rename) is still free to become a store, and the temporary is not in
    // anyone's way; with anything else beside it, it is not.
    let half = temp.path().join("half-created");
    std::fs::create_dir(&half).unwrap();
    std::fs::write(half.join(format!("{MARKER_FILE}.4242.tmp")), "{").unwrap();
    drop(Kimberlite::open(&half).unwrap());
    assert!(half.join(MARKER_FILE).is_file());
    let other = temp.path().join("half-and-more");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join(format!("{MARKER_FILE}.4242.tmp")), "{").unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    assert!(matches!(
        Kimberlite::open(&other),
        Err(Error::NotAStore { .. })
    ));
}

#[test]
fn a_second_open_is_locked_out() {
    let temp = tempfile::tempdir().unwrap();
    let store = Kimberlite::open(temp.path().join("store")).unwrap();
    let error = Kimberlite::open(temp.path().join("store")).unwrap_err();
    assert!(matches!(error, Error::Locked { .. }), "{error}");
    assert!(error.to_string().contains("in use"), "{error}");
    drop(store);
    Kimberlite::open(temp.path().join("store")).unwrap();
}

#[test]
fn every_durability_policy_persists() {
    for durability in [
        Durability::SyncEachAppend,
        Durability::GroupCommit,
        Durability::Unsynced,
    ] {
        let temp = tempfile::tempdir().unwrap();
        let config = Config::default()
            .durability(durability)
            .max_segment_size(4096);
        {
            let store = Kimberlite::open_with(temp.path(), config.clone()).unwrap();
            let id = store.create_stream("s").unwrap();
            for i in 0..50 {
                let event = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(100));
                store.append(id, [event], ExpectedOffset::Any).unwrap();
            }
            store.sync().unwrap();
        }
        let store = Kimberlite::open_with(temp.path(), config).unwrap();
        let id = store.stream("s").unwrap();
        assert_eq!(
            store.head(id).unwrap().next_offset,
            Offset::new(50),
            "{durability:?}"
        );
        let report = store.verify(id).unwrap();
        assert!(report.is_intact());
        assert!(
            report.segments_checked() > 1,
            "{durability:?}: segments rotate at 4 KiB"
        );
        let stats = store.stats();
        let stream = stats.iter().find(|s| s.stream == id).unwrap();
        assert!(stream.storage.logical_bytes.unwrap() > 5000);
        assert!(
            stream.storage.stored_bytes.unwrap() < stream.storage.logical_bytes.unwrap(),
            "repetitive events are stored compressed"
        );
    }
}

#[test]
fn corruption_on_disk_is_reported_with_its_location() {
    let temp = tempfile::tempdir().unwrap();
    {
        let store = Kimberlite::open(temp.path()).unwrap();
        let id = store.create_stream("audit").unwrap();
        let events: Vec<String> = (0..100).map(|i| format!("event number {i:04}")).collect();
        store.append(id, events, ExpectedOffset::Any).unwrap();
    }
    let segment = find_segments(temp.path())
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&segment, bytes).unwrap();

    let store = Kimberlite::open(temp.path()).unwrap();
    let report = store.verify_all().unwrap();
    assert!(!report.is_intact());
    let problem = report.first_problem().unwrap();
    assert_eq!(problem.name.as_deref(), Some("audit"));
    assert!((40..=60).contains(&problem.offset.as_u64()), "{problem:?}");
    assert_eq!(problem.file.as_deref(), Some(segment.as_path()));
    assert!(problem.position.unwrap() <= middle as u64);
    let id = store.stream("audit").unwrap();
    let refused = store.append(id, ["more"], ExpectedOffset::Any).unwrap_err();
    assert!(refused.is_corruption(), "{refused}");
    let error = store
        .events(id, Offset::ZERO)
        .find_map(Result::err)
        .expect("reading past the damage fails");
    assert!(error.is_corruption(), "{error}");
    // Past the end of a damaged stream: an error or nothing, never a panic or an event.
    match store.read(id, Offset::new(1_000), u64::MAX) {
        Ok(events) => assert!(events.is_empty()),
        Err(error) => assert!(error.is_corruption(), "{error}"),
    }
}

fn find_segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(find_segments(&path));
        } else if path.extension().is_some_and(|e| e == "seg") {
            out.push(path);
        }
    }
    out
}

/// One stream whose files cannot be reconciled (a listed segment removed) no longer keeps the
/// store from opening: the others are read and verified, and that stream is reported.
#[test]
fn a_stream_whose_files_cannot_be_opened_is_reported_and_the_rest_stays_usable() {
    let temp = tempfile::tempdir().unwrap();
    let config = Config::default().max_segment_size(4_096);
    let (audit, billing, anchor) = {
        let store = Kimberlite::open_with(temp.path(), config.clone()).unwrap();
        let audit = store.create_stream("audit").unwrap();
        let billing = store.create_stream("billing").unwrap();
        for i in 0..200 {
            store
                .append(audit, [format!("audit event {i:04}")], ExpectedOffset::Any)
                .unwrap();
        }
        store
            .append(billing, ["invoice 1", "invoice 2"], ExpectedOffset::Any)
            .unwrap();
        let head = store.head(audit).unwrap();
        let anchor = kimberlite::Anchor {
            stream: "audit".to_owned(),
            events: head.next_offset.as_u64(),
            hash: head.hash.unwrap(),
        };
        (audit, billing, anchor)
    };
    let audit_dir = temp
        .path()
        .join("streams")
        .join(format!("{:020}", audit.as_u64()));
    let removed = audit_dir.join(format!("{:08}.seg", 1));
    std::fs::remove_file(&removed).unwrap();

    let store = Kimberlite::open_with(temp.path(), config).unwrap();
    let billing_events: Vec<_> = store
        .events(billing, Offset::ZERO)
        .map(|event| event.unwrap().payload)
        .collect();
    assert_eq!(billing_events, ["invoice 1", "invoice 2"]);
    let report = store.verify_all().unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let problem = report.first_problem().unwrap();
    assert_eq!(problem.name.as_deref(), Some("audit"));
    let file = problem.file.as_deref().unwrap();
    assert!(file.starts_with(&audit_dir), "{}", file.display());
    assert!(
        problem.reason.contains("cannot be opened"),
        "{}",
        problem.reason
    );
    assert!(report
        .streams
        .iter()
        .any(|stream| stream.name.as_deref() == Some("billing")));
    let refused = store
        .append(audit, ["more"], ExpectedOffset::Any)
        .unwrap_err();
    assert!(refused.is_corruption(), "{refused}");
    for from in [0, 150, 10_000] {
        let error = store.read(audit, Offset::new(from), u64::MAX).unwrap_err();
        assert!(error.is_corruption(), "{error}");
    }
    // Its head is unknown, and never shown as an empty stream's.
    let head = store.head(audit).unwrap_err();
    assert!(
        matches!(&head, kimberlite::Error::StreamDamaged { name } if name == "audit"),
        "{head}"
    );
    assert!(head.is_corruption());
    assert_eq!(store.head(billing).unwrap().next_offset, Offset::new(2));
    // An anchor on it cannot be checked: that is a problem to report, not an error.
    let anchored = store.check_anchor(&anchor).unwrap().expect("a problem");
    assert!(
        anchored.reason.contains("could not be read"),
        "{anchored:?}"
    );
    let listed: Vec<(String, bool)> = store
        .list_streams()
        .into_iter()
        .map(|info| (info.name, info.damaged))
        .collect();
    assert_eq!(
        listed,
        [("audit".to_owned(), true), ("billing".to_owned(), false)]
    );
    let damaged: Vec<_> = store
        .stats()
        .into_iter()
        .filter(|stats| stats.damaged)
        .map(|stats| stats.stream)
        .collect();
    assert_eq!(damaged, [audit]);
    store
        .append(billing, ["invoice 3"], ExpectedOffset::Any)
        .unwrap();
    assert!(
        !removed.exists(),
        "nothing was recreated over the damaged stream"
    );
}

/// `verify_all_with` tells progress piece by piece, and a walk that stops at damage past its
/// first piece still adds up to the records the store held.
#[test]
fn verify_progress_moves_within_a_stream_and_adds_up_past_damage() {
    let temp = tempfile::tempdir().unwrap();
    let config = Config::default().durability(Durability::Unsynced);
    let big = {
        let store = Kimberlite::open_with(temp.path(), config.clone()).unwrap();
        let big = store.create_stream("big").unwrap();
        for first in (0..40_000).step_by(4_000) {
            let batch: Vec<String> = (first..first + 4_000).map(|i| format!("e{i:05}")).collect();
            store.append(big, batch, ExpectedOffset::Any).unwrap();
        }
        store.sync().unwrap();
        big
    };
    let segment = temp
        .path()
        .join("streams")
        .join(format!("{:020}", big.as_u64()))
        .join(format!("{:08}.seg", 0));
    let mut bytes = std::fs::read(&segment).unwrap();
    let near_the_end = bytes.len() - 200;
    bytes[near_the_end] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();

    let store = Kimberlite::open_with(temp.path(), config).unwrap();
    let total = store.total_events();
    let mut calls = Vec::new();
    let report = store
        .verify_all_with(|records| calls.push(records))
        .unwrap();
    let problem = report.first_problem().expect("the flipped byte is found");
    assert_eq!(problem.name.as_deref(), Some("big"));
    assert!(problem.offset.as_u64() > 16_384, "{problem:?}");
    assert_eq!(calls.iter().sum::<u64>(), total, "{calls:?}");
    assert!(
        calls.contains(&16_384),
        "the first piece is told: {calls:?}"
    );
}

/// The catalogue's last entry (naming stream 2) is cut short, as a torn write would leave it,
/// and recovery cuts it off, so stream 2's records have no name: `verify` reports them. Creating a new stream must not give its name to those records
/// (the next id is 2): it is refused, and nothing is written to the catalogue. (A failed
/// `kimberlite append --create` used to name the orphaned stream, after which the store
/// verified intact.)
#[test]
fn a_new_stream_never_takes_over_an_unnamed_streams_records() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Kimberlite::open(dir.path()).unwrap();
        let a = store.create_stream("a").unwrap();
        let b = store.create_stream("b").unwrap();
        store.append(a, ["one"], ExpectedOffset::Any).unwrap();
        store
            .append(b, ["two", "three"], ExpectedOffset::Any)
            .unwrap();
    }
    let catalogue = first_segment(dir.path(), 0);
    let bytes = std::fs::read(&catalogue).unwrap();
    let last = *frame_starts(&bytes).last().unwrap();
    std::fs::write(&catalogue, &bytes[..last + 10]).unwrap();

    let store = Kimberlite::open(dir.path()).unwrap();
    assert_eq!(store.stream("b"), None, "the entry naming b was cut");
    assert!(store.verify_all().unwrap().first_problem().is_some());
    let error = store.create_stream("c").unwrap_err();
    assert!(
        matches!(error, Error::UnnamedStreamInTheWay { ref name, stream } if name == "c" && stream.as_u64() == 2),
        "{error}"
    );
    assert!(error.is_corruption());
    assert_eq!(store.stream("c"), None);
    drop(store);
    assert_eq!(
        std::fs::read(&catalogue).unwrap(),
        bytes[..last],
        "nothing written"
    );
    let store = Kimberlite::open(dir.path()).unwrap();
    assert_eq!(store.stream("c"), None);
    assert!(store.verify_all().unwrap().first_problem().is_some());
}

/// A segment cut on a record boundary below the length the store had synced (records lost
/// whole, not torn): `verify_all` reports it as a problem of that stream, at the first missing
/// offset, and goes on to the other streams, instead of stopping with an error. (`kimberlite
/// verify` printed only that error, with no report and the other streams unchecked.)
#[test]
fn records_lost_below_the_synced_length_are_a_problem_not_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Kimberlite::open(dir.path()).unwrap();
        let a = store.create_stream("a").unwrap();
        let b = store.create_stream("b").unwrap();
        store
            .append(a, ["1", "2", "3"], ExpectedOffset::Any)
            .unwrap();
        store.append(b, ["x"], ExpectedOffset::Any).unwrap();
        // A full flush: the manifests record how far each segment was synced.
        store.sync().unwrap();
    }
    let segment = first_segment(dir.path(), 1);
    let bytes = std::fs::read(&segment).unwrap();
    let last = *frame_starts(&bytes).last().unwrap();
    std::fs::write(&segment, &bytes[..last]).unwrap();

    let store = Kimberlite::open(dir.path()).unwrap();
    let report = store.verify_all().unwrap();
    let problem = report.first_problem().expect("the lost record is reported");
    assert_eq!(problem.stream.as_u64(), 1);
    assert_eq!(problem.offset, Offset::new(2));
    assert!(
        problem.reason.contains("records missing"),
        "{}",
        problem.reason
    );
    assert!(
        report
            .streams
            .iter()
            .any(|s| s.name.as_deref() == Some("b")),
        "the other streams were verified: {report:?}"
    );
}

/// A stream damaged at offset 5 of 10: the iterator yields the intact events before the damage
/// (each verified; all but event 4, which a read vouches for by its successor's link, and that
/// successor is the damaged record), then the error naming offset 5, then ends. (A page of
/// events that reached the damage failed whole, so none of the intact ones could be read.)
#[test]
fn events_before_damage_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<String> = (0..10).map(|i| format!("event number {i:02}")).collect();
    {
        let store = Kimberlite::open(dir.path()).unwrap();
        let id = store.create_stream("audit").unwrap();
        store
            .append(id, payloads.clone(), ExpectedOffset::Any)
            .unwrap();
    }
    let segment = first_segment(dir.path(), 1);
    let mut bytes = std::fs::read(&segment).unwrap();
    // A frame: length (4), version, kind (0 = data), codec, flags, offset (8), ...
    let target = frame_starts(&bytes)
        .into_iter()
        .find(|&at| {
            bytes[at + 5] == 0
                && u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap()) == 5
        })
        .unwrap();
    bytes[target + 24] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();

    let store = Kimberlite::open(dir.path()).unwrap();
    let id = store.stream("audit").unwrap();
    let mut events = store.events(id, Offset::ZERO);
    for (i, expected) in payloads.iter().take(4).enumerate() {
        let event = events.next().unwrap().unwrap();
        assert_eq!(event.offset, Offset::new(i as u64));
        assert_eq!(event.payload, expected.as_bytes());
    }
    let error = events.next().unwrap().unwrap_err();
    assert!(error.is_corruption(), "{error}");
    assert!(error.to_string().contains("offset 5"), "{error}");
    assert!(events.next().is_none(), "it ends after the error");
    // From inside the intact part too, and not past the damage.
    let from_two: Vec<_> = store.events(id, Offset::new(2)).collect();
    assert_eq!(from_two.len(), 3);
    assert!(from_two[..2].iter().all(Result::is_ok));
    assert!(from_two[2].is_err());
}

/// The first segment file of stream `id` in the store in `dir`.
fn first_segment(dir: &std::path::Path, id: u64) -> std::path::PathBuf {
    dir.join("streams")
        .join(format!("{id:020}"))
        .join("00000000.seg")
}

/// Where each frame of a segment file starts: frames follow the 40-byte segment header, each
/// starting with its length (`docs/FORMAT.md`).
fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut position = 40;
    while position + 4 <= bytes.len() {
        starts.push(position);
        position += u32::from_le_bytes(bytes[position..position + 4].try_into().unwrap()) as usize;
    }
    starts
}

/// `flush_indexes` lets the next open skip what it covers, even when the store was dropped
/// without any close step (as a killed process is); without it the whole active segment is
/// scanned again.
#[test]
fn flushed_indexes_spare_the_next_open_a_rescan() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let events: Vec<String> = (0..500).map(|i| format!("event {i}")).collect();
    let scanned_after = |flush: bool| {
        {
            let store = Kimberlite::open(&dir).unwrap();
            let id = match store.stream("s") {
                Some(id) => id,
                None => store.create_stream("s").unwrap(),
            };
            store
                .append(id, events.iter().cloned(), ExpectedOffset::Any)
                .unwrap();
            if flush {
                store.flush_indexes().unwrap();
            }
        }
        let store = Kimberlite::open(&dir).unwrap();
        assert!(store.recovery_report().is_clean());
        store.recovery_report().records_scanned
    };
    assert!(scanned_after(false) >= 500, "without a flush, a rescan");
    assert_eq!(scanned_after(true), 0);
}

/// `sync_segments` flushes outside the write lock and hands the trees only the batches written
/// before it began; every batch reaches its tree, in order, whichever sync covers it.
#[test]
fn batches_synced_by_sync_segments_reach_the_trees_while_appends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default().durability(Durability::Unsynced);
    let store = Kimberlite::open_with(dir.path(), config.clone()).unwrap();
    let id = store.create_stream("s").unwrap();
    let syncer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for _ in 0..50 {
                store.sync_segments().unwrap();
            }
        })
    };
    for n in 0..200u32 {
        store
            .append(id, [format!("e{n}")], ExpectedOffset::Any)
            .unwrap();
    }
    syncer.join().unwrap();
    store.sync_segments().unwrap();
    let head = store.tree_head(id).unwrap();
    assert_eq!(head.tree_size, 200);
    drop(store);
    let reopened = Kimberlite::open_with(dir.path(), config).unwrap();
    assert_eq!(reopened.tree_head(id).unwrap(), head);
}
