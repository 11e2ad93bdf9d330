//! Retention by verified pruning through the store (`Kimberlite::retain`): what a cut keeps
//! proving (chain, tree, proofs against checkpoints signed before and after it), what it
//! refuses, and a forged cut record caught by `verify`.

use kimberlite::proof::SignerKey;
use kimberlite::proof::{event_leaf_hash, stream_origin, verify_consistency, verify_inclusion};
use kimberlite::{Config, Error, ExpectedOffset, Kimberlite, Offset, StreamId};

const EVENTS: u64 = 400;

fn config() -> Config {
    Config::default().max_segment_size(2048)
}

fn key() -> SignerKey {
    SignerKey::from_seed("server", [7; 32]).unwrap()
}

fn payload(i: u64) -> String {
    format!("{{\"event\":\"visit\",\"patient\":\"P-{i:05}\"}}")
}

/// A store with stream "audit" of `EVENTS` events, signed at its head; returns the store,
/// the stream and the checkpoint's root.
fn signed_store(dir: &std::path::Path) -> (Kimberlite, StreamId, kimberlite::proof::Hash) {
    let store = Kimberlite::open_with(dir, config()).unwrap();
    let id = store.create_stream("audit").unwrap();
    for batch in 0..EVENTS / 10 {
        let events: Vec<String> = (batch * 10..batch * 10 + 10).map(payload).collect();
        store.append(id, events, ExpectedOffset::Any).unwrap();
    }
    let origin = stream_origin("clinic", "audit").unwrap();
    let signed = store.sign_checkpoint(id, &origin, &key()).unwrap();
    assert_eq!(signed.tree_size, EVENTS);
    (store, id, signed.root)
}

#[test]
fn a_retained_stream_verifies_proves_and_reads_from_its_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (store, id, old_root) = signed_store(dir.path());
    let retained = store.retain(id, Offset::new(EVENTS / 2)).unwrap();
    let cut = retained.first_offset;
    assert!(
        cut.as_u64() > 0 && cut.as_u64() <= EVENTS / 2,
        "{retained:?}"
    );
    assert_eq!(retained.events_dropped(), cut.as_u64());
    assert_eq!(store.first_offset(id).unwrap(), cut);
    check(&store, id, cut, old_root);

    // More events and a new checkpoint after the cut.
    store
        .append(id, (EVENTS..EVENTS + 30).map(payload), ExpectedOffset::Any)
        .unwrap();
    let origin = stream_origin("clinic", "audit").unwrap();
    let new = store.sign_checkpoint(id, &origin, &key()).unwrap();
    let consistency = store.consistency_proof(id, EVENTS, new.tree_size).unwrap();
    verify_consistency(
        EVENTS,
        new.tree_size,
        &old_root,
        &new.root,
        &consistency.hashes,
    )
    .unwrap();
    let at_cut = store
        .consistency_proof(id, cut.as_u64(), new.tree_size)
        .unwrap();
    verify_consistency(
        cut.as_u64(),
        new.tree_size,
        &at_cut.old_root,
        &new.root,
        &at_cut.hashes,
    )
    .unwrap();
    for offset in [cut.as_u64(), EVENTS + 29] {
        let proof = store
            .inclusion_proof(id, Offset::new(offset), new.tree_size)
            .unwrap();
        let leaf = event_leaf_hash(offset, payload(offset).as_bytes());
        verify_inclusion(&leaf, offset, new.tree_size, &proof.hashes, &new.root).unwrap();
    }
    drop(store);

    // Reopened: the trust check, verify and check_tree start from the cut.
    let store = Kimberlite::open_with(dir.path(), config()).unwrap();
    assert!(store.recovery_report().is_clean());
    assert_eq!(store.tree_head(id).unwrap().root, new.root);
    check(&store, id, cut, old_root);
    let check = store.check_tree(id, &[EVENTS]).unwrap();
    assert!(check.tree_matches_log());
    assert_eq!(check.roots_at, vec![(EVENTS, old_root)]);
    drop(store);
    let read_only = Kimberlite::open_read_only(dir.path(), Config::default()).unwrap();
    assert!(read_only.verify_all().unwrap().is_intact());
    assert!(matches!(
        read_only.retain(id, Offset::new(EVENTS)),
        Err(Error::ReadOnly)
    ));
}

/// Reads, verification and proofs of a stream cut at `cut` and signed at `EVENTS`.
fn check(store: &Kimberlite, id: StreamId, cut: Offset, signed_root: kimberlite::proof::Hash) {
    let below = store.read(id, Offset::new(cut.as_u64() - 1), u64::MAX);
    assert!(
        matches!(&below, Err(Error::Pruned { first_offset, .. }) if *first_offset == cut),
        "{below:?}"
    );
    let message = below.unwrap_err().to_string();
    assert!(
        message.contains(&format!("pruned before offset {cut}")),
        "{message}"
    );
    let events = store.read(id, cut, u64::MAX).unwrap();
    assert_eq!(events.first().unwrap().offset, cut);
    assert_eq!(events.first().unwrap().payload, payload(cut.as_u64()));
    let report = store.verify_all().unwrap();
    assert!(report.is_intact(), "{report:?}");
    for offset in [cut.as_u64(), cut.as_u64() + 1, EVENTS - 1] {
        let proof = store
            .inclusion_proof(id, Offset::new(offset), EVENTS)
            .unwrap();
        assert_eq!(proof.root, signed_root);
        let leaf = event_leaf_hash(offset, payload(offset).as_bytes());
        verify_inclusion(&leaf, offset, EVENTS, &proof.hashes, &signed_root).unwrap();
    }
    // Tiles: entry bundles starting below the cut are gone, hash tiles are all kept.
    let bundle = store.entry_bundle(id, 0, 256);
    assert!(matches!(bundle, Err(Error::Pruned { .. })), "{bundle:?}");
    store.entry_bundle(id, 1, (EVENTS - 256) as u16).unwrap();
    let tile = kimberlite::proof::tile_in_tree(0, 0, EVENTS).unwrap();
    assert_eq!(store.tile(id, EVENTS, tile).unwrap().len(), 256 * 32);
    let anchor_hash = store.prefix_hash(id, EVENTS).unwrap();
    assert!(anchor_hash.is_some());
}

#[test]
fn retain_refuses_what_it_cannot_cover_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Kimberlite::open_with(dir.path(), config()).unwrap();
    let id = store.create_stream("audit").unwrap();
    store
        .append(id, (0..EVENTS).map(payload), ExpectedOffset::Any)
        .unwrap();
    let no_checkpoint = store.retain(id, Offset::new(10));
    assert!(
        matches!(no_checkpoint, Err(Error::RetainRefused { .. })),
        "{no_checkpoint:?}"
    );
    let origin = stream_origin("clinic", "audit").unwrap();
    store.sign_checkpoint(id, &origin, &key()).unwrap();
    store
        .append(id, (EVENTS..EVENTS + 100).map(payload), ExpectedOffset::Any)
        .unwrap();
    let past_checkpoint = store.retain(id, Offset::new(EVENTS + 1));
    assert!(
        matches!(past_checkpoint, Err(Error::RetainRefused { ref reason, .. })
        if reason.contains("last kept checkpoint")),
        "{past_checkpoint:?}"
    );
    let past_head = store.retain(id, Offset::new(EVENTS + 101));
    assert!(
        matches!(past_head, Err(Error::RetainRefused { ref reason, .. })
        if reason.contains("head")),
        "{past_head:?}"
    );
    let unknown = store.retain(StreamId::new(77), Offset::new(1));
    assert!(
        matches!(unknown, Err(Error::UnknownStream { .. })),
        "{unknown:?}"
    );
    assert_eq!(store.first_offset(id).unwrap(), Offset::ZERO);
    // Below the first segment's end nothing whole is dropped: a no-op, not an error.
    let nothing = store.retain(id, Offset::new(1)).unwrap();
    assert_eq!(nothing.events_dropped(), 0);
    assert_eq!(store.read(id, Offset::ZERO, 1).unwrap().len(), 1);
}

#[test]
fn a_forged_frontier_in_the_cut_record_is_caught_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (store, id, _) = signed_store(dir.path());
    store.retain(id, Offset::new(EVENTS / 2)).unwrap();
    drop(store);
    let record = dir
        .path()
        .join("streams")
        .join(format!("{:020}", id.as_u64()))
        .join("pruned.json");
    let text = std::fs::read_to_string(&record).unwrap();
    let mut value: Vec<String> = text.lines().map(str::to_owned).collect();
    let first_node = value
        .iter()
        .position(|line| line.contains("\"tree_frontier\""))
        .unwrap()
        + 1;
    value[first_node] = format!("    \"{}\",", "cd".repeat(32));
    let forged = reseal(&value.join("\n"));
    std::fs::write(&record, forged).unwrap();
    let store = Kimberlite::open_with(dir.path(), config()).unwrap();
    let report = store.verify_all().unwrap();
    assert!(!report.is_intact(), "{report:?}");
    assert!(
        store.tree_head(id).is_err(),
        "a forged frontier is never signed over"
    );
}

/// The cut record with its checksum recomputed over the compact encoding (the pretty text
/// without whitespace; no value of the record holds any), as an attacker would.
fn reseal(text: &str) -> String {
    let crc_line = text
        .lines()
        .find(|line| line.contains("\"crc32c\""))
        .unwrap();
    let zeroed = text.replace(crc_line, "  \"crc32c\": 0");
    let compact: String = zeroed.chars().filter(|c| !c.is_whitespace()).collect();
    let crc = crc32c::crc32c(compact.as_bytes());
    zeroed.replace("\"crc32c\": 0", &format!("\"crc32c\": {crc}"))
}

#[test]
fn a_pruned_streams_lost_tree_is_reported_not_rebuilt_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (store, id, _) = signed_store(dir.path());
    store.retain(id, Offset::new(EVENTS / 2)).unwrap();
    drop(store);
    std::fs::remove_dir_all(dir.path().join("merkle")).unwrap();
    let store = Kimberlite::open_with(dir.path(), config()).unwrap();
    let verified = store.verify_all();
    assert!(
        !verified.as_ref().is_ok_and(|report| report.is_intact()),
        "{verified:?}"
    );
    assert!(store.tree_head(id).is_err());
    assert!(store
        .inclusion_proof(id, Offset::new(EVENTS - 1), EVENTS)
        .is_err());
}

#[test]
fn a_cut_at_the_head_of_an_odd_size_reopens_with_its_tree_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Kimberlite::open_with(dir.path(), config()).unwrap();
    let id = store.create_stream("audit").unwrap();
    let segments = |store: &Kimberlite| {
        let stats = store.stats();
        let stream = stats.iter().find(|s| s.stream == id).unwrap();
        stream.storage.segments
    };
    // One event per batch until a rotation leaves an empty active segment at an odd size.
    let mut next = 0u64;
    loop {
        let before = segments(&store);
        store
            .append(id, [payload(next)], ExpectedOffset::Any)
            .unwrap();
        next += 1;
        if segments(&store) > before && next % 2 == 1 && before > 1 {
            break;
        }
        assert!(next < 10_000, "no odd rotation");
    }
    let origin = stream_origin("clinic", "audit").unwrap();
    store.sign_checkpoint(id, &origin, &key()).unwrap();
    let retained = store.retain(id, Offset::new(next)).unwrap();
    assert_eq!(retained.first_offset, Offset::new(next));
    let root = store.tree_head(id).unwrap().root;
    drop(store);
    let store = Kimberlite::open_with(dir.path(), config()).unwrap();
    assert_eq!(store.tree_head(id).unwrap().root, root);
    assert!(store.verify_all().unwrap().is_intact());
    store
        .append(id, [payload(next)], ExpectedOffset::Any)
        .unwrap();
    let proof = store
        .inclusion_proof(id, Offset::new(next), next + 1)
        .unwrap();
    let leaf = event_leaf_hash(next, payload(next).as_bytes());
    verify_inclusion(&leaf, next, next + 1, &proof.hashes, &proof.root).unwrap();
}

#[test]
fn verify_checks_the_cut_against_the_checkpoint_that_covered_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, id, _) = signed_store(dir.path());
    store.retain(id, Offset::new(EVENTS / 2)).unwrap();
    drop(store);
    // The signed root at the cut's checkpoint is what the rebuilt tree must reach: with that
    // checkpoint gone (or changed) the cut can no longer be vouched for.
    let kept = dir
        .path()
        .join("checkpoints")
        .join(format!("{:020}", id.as_u64()))
        .join(format!("{EVENTS:020}.checkpoint"));
    let note = std::fs::read_to_string(&kept).unwrap();
    std::fs::remove_file(&kept).unwrap();
    let store = Kimberlite::open_with(dir.path(), config()).unwrap();
    let report = store.verify_all().unwrap();
    assert!(!report.is_intact(), "{report:?}");
    assert!(
        report.problems[0]
            .reason
            .contains("kept checkpoint of size"),
        "{report:?}"
    );
    drop(store);
    std::fs::write(&kept, note).unwrap();
    let store = Kimberlite::open_with(dir.path(), config()).unwrap();
    assert!(store.verify_all().unwrap().is_intact());
}

#[test]
fn the_erasure_log_is_never_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let store = Kimberlite::open_with(dir.path(), config()).unwrap();
    let id = store.create_stream("_erasure").unwrap();
    for batch in 0..EVENTS / 10 {
        let events: Vec<String> = (batch * 10..batch * 10 + 10).map(payload).collect();
        store.append(id, events, ExpectedOffset::Any).unwrap();
    }
    let origin = stream_origin("clinic", "_erasure").unwrap();
    store.sign_checkpoint(id, &origin, &key()).unwrap();
    match store.retain(id, Offset::new(EVENTS / 2)) {
        Err(Error::RetainRefused { name, reason }) => {
            assert_eq!(name, "_erasure");
            assert!(reason.contains("erasure log"), "{reason}");
        }
        other => panic!("the erasure log was pruned: {other:?}"),
    }
    assert_eq!(store.first_offset(id).unwrap(), Offset::new(0));
}
