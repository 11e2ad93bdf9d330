//! Tests of the stores' Merkle trees: proofs verify, side files are rebuilt from the log.

use kimberlite_proof::{verify_consistency, verify_inclusion, Hash};

use crate::merkle::MERKLE_DIR;
use crate::{Config, Durability, Error, ExpectedOffset, Kimberlite, StreamId};

fn fill(store: &Kimberlite, id: StreamId, count: u64) {
    for batch in (0..count).collect::<Vec<_>>().chunks(7) {
        let events: Vec<Vec<u8>> = batch
            .iter()
            .map(|i| format!("event {i}").into_bytes())
            .collect();
        store.append(id, events, ExpectedOffset::Any).unwrap();
    }
}

/// A store in `dir` (unsynced appends, `config` otherwise) with stream "audit" holding
/// `events` events.
fn filled_store(dir: &std::path::Path, config: Config, events: u64) -> (Kimberlite, StreamId) {
    let store = Kimberlite::open_with(dir, config.durability(Durability::Unsynced)).unwrap();
    let id = store.create_stream("audit").unwrap();
    fill(&store, id, events);
    (store, id)
}

/// The side files of the tree of the first stream created in the store in `dir`.
fn tree_dir(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join(MERKLE_DIR).join(format!("{:020}", 1))
}

fn check_all_proofs(store: &Kimberlite, id: StreamId) {
    let head = store.tree_head(id).unwrap();
    for offset in 0..head.tree_size {
        let proof = store
            .inclusion_proof(id, offset.into(), head.tree_size)
            .unwrap();
        let leaf = kimberlite_proof::event_leaf_hash(offset, format!("event {offset}").as_bytes());
        assert_eq!(proof.leaf_hash, leaf);
        verify_inclusion(&leaf, offset, head.tree_size, &proof.hashes, &head.root).unwrap();
    }
    for old in 1..=head.tree_size {
        let proof = store.consistency_proof(id, old, head.tree_size).unwrap();
        assert_eq!(proof.new_root, head.root);
        verify_consistency(
            old,
            head.tree_size,
            &proof.old_root,
            &head.root,
            &proof.hashes,
        )
        .unwrap();
    }
}

#[test]
fn in_memory_proofs_verify() {
    let store = Kimberlite::in_memory();
    let id = store.create_stream("audit").unwrap();
    assert_eq!(
        store.tree_head(id).unwrap().root,
        kimberlite_proof::empty_root()
    );
    fill(&store, id, 45);
    check_all_proofs(&store, id);
    let check = store.check_tree(id, &[10, 45, 46]).unwrap();
    assert!(check.tree_matches_log());
    assert_eq!(check.roots_at.len(), 2, "size 46 is past the log");
    assert_eq!(check.roots_at[1], (45, store.tree_head(id).unwrap().root));
    assert_eq!(
        check.roots_at[0].1,
        store.consistency_proof(id, 10, 45).unwrap().old_root
    );
}

#[test]
fn proofs_out_of_range_are_typed_errors() {
    let store = Kimberlite::in_memory();
    let id = store.create_stream("audit").unwrap();
    fill(&store, id, 5);
    assert!(matches!(
        store.inclusion_proof(id, 5.into(), 5),
        Err(Error::TreeRange { .. })
    ));
    assert!(matches!(
        store.inclusion_proof(id, 0.into(), 6),
        Err(Error::TreeRange { .. })
    ));
    assert!(matches!(
        store.consistency_proof(id, 0, 5),
        Err(Error::TreeRange { .. })
    ));
    assert!(matches!(
        store.consistency_proof(id, 4, 3),
        Err(Error::TreeRange { .. })
    ));
}

fn disk_root(dir: &std::path::Path) -> (u64, Hash) {
    let store = Kimberlite::open(dir).unwrap();
    let id = store.stream("audit").unwrap();
    let head = store.tree_head(id).unwrap();
    check_all_proofs(&store, id);
    assert!(store.check_tree(id, &[]).unwrap().tree_matches_log());
    (head.tree_size, head.root)
}

#[test]
fn disk_tree_survives_reopen_and_is_rebuilt_when_missing_or_torn() {
    let dir = tempfile::tempdir().unwrap();
    let expected = {
        let store = Kimberlite::open_with(
            dir.path(),
            Config::default().durability(Durability::Unsynced),
        )
        .unwrap();
        let id = store.create_stream("audit").unwrap();
        fill(&store, id, 300);
        let memory = Kimberlite::in_memory();
        let mid = memory.create_stream("audit").unwrap();
        fill(&memory, mid, 300);
        assert_eq!(store.tree_head(id).unwrap(), memory.tree_head(mid).unwrap());
        let head = store.tree_head(id).unwrap();
        (head.tree_size, head.root)
    };
    assert_eq!(disk_root(dir.path()), expected);
    let tree_dir = tree_dir(dir.path());
    // A torn level file, a lost level file, then the whole directory lost.
    let level0 = tree_dir.join("level-00.hashes");
    let len = std::fs::metadata(&level0).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&level0)
        .unwrap()
        .set_len(len - 45)
        .unwrap();
    std::fs::remove_file(tree_dir.join("level-03.hashes")).unwrap();
    assert_eq!(disk_root(dir.path()), expected);
    std::fs::remove_dir_all(dir.path().join(MERKLE_DIR)).unwrap();
    assert_eq!(disk_root(dir.path()), expected);
    // Appending after a rebuild keeps the tree right.
    {
        let store = Kimberlite::open(dir.path()).unwrap();
        let id = store.stream("audit").unwrap();
        store
            .append(
                id,
                [b"event 300".to_vec()],
                ExpectedOffset::Exact(300.into()),
            )
            .unwrap();
    }
    assert_eq!(disk_root(dir.path()).0, 301);
}

#[test]
fn stale_side_file_is_found_by_check_tree() {
    stale_leaf_is_found(20, 3);
    stale_leaf_is_found(9000, 8500); // past the first chunks check_tree compares
}

/// Streams large enough that `verify` recomputes the tree on a thread beside the walk.
#[test]
fn stale_side_file_is_found_in_a_large_stream() {
    for stale in [0, 4_095, 4_096, 17_777, 19_999] {
        stale_leaf_is_found(20_000, stale);
    }
}

/// A record damaged deep in a large stream: the walk stops there while the tree is being
/// hashed beside it; verify reports the record, neither hangs nor blames the tree.
#[test]
fn a_damaged_record_in_a_large_stream_is_reported_while_the_tree_is_hashed_beside() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default().compression(kimberlite_types::CompressionKind::None);
    drop(filled_store(dir.path(), config, 20_000));
    let segment = dir
        .path()
        .join("streams")
        .join(format!("{:020}", 1))
        .join("00000000.seg");
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes.len() * 9 / 10;
    bytes[at] ^= 0x01;
    std::fs::write(&segment, bytes).unwrap();
    let store = Kimberlite::open(dir.path()).unwrap();
    let report = store.verify_all().unwrap();
    let problem = report
        .first_problem()
        .expect("the damaged record is reported");
    assert!(
        (17_000..20_000).contains(&problem.offset.as_u64()),
        "{problem:?}"
    );
    assert!(!problem.reason.contains("Merkle"), "{}", problem.reason);
    assert!(problem.file.is_some(), "{problem:?}");
}

#[test]
fn a_large_intact_stream_verifies_with_its_tree() {
    let dir = tempfile::tempdir().unwrap();
    let (store, id) = filled_store(dir.path(), Config::default(), 20_000);
    store.sync().unwrap();
    let report = store.verify_all().unwrap();
    assert!(report.first_problem().is_none(), "{report:?}");
    let audit = report
        .streams
        .iter()
        .find(|stream| stream.stream == id)
        .unwrap();
    assert_eq!(audit.records_checked, 20_000);
    let head = store.tree_head(id).unwrap();
    // A side file cut short is rebuilt from the log at open, and verifies again.
    drop(store);
    let level0 = tree_dir(dir.path()).join("level-00.hashes");
    let bytes = std::fs::read(&level0).unwrap();
    std::fs::write(&level0, &bytes[..32 * 18_000]).unwrap();
    let store = Kimberlite::open(dir.path()).unwrap();
    assert_eq!(store.tree_head(id).unwrap(), head);
    let report = store.verify_all().unwrap();
    assert!(report.first_problem().is_none(), "{report:?}");
}

fn stale_leaf_is_found(events: u64, stale: u64) {
    let dir = tempfile::tempdir().unwrap();
    drop(filled_store(dir.path(), Config::default(), events));
    let level0 = tree_dir(dir.path()).join("level-00.hashes");
    let mut bytes = std::fs::read(&level0).unwrap();
    bytes[32 * stale as usize] ^= 1;
    std::fs::write(&level0, bytes).unwrap();
    let store = Kimberlite::open(dir.path()).unwrap();
    let id = store.stream("audit").unwrap();
    let check = store.check_tree(id, &[]).unwrap();
    assert_eq!(check.first_stale_leaf, Some(stale));
    assert!(!check.tree_matches_log());
    let report = store.verify_all().unwrap();
    let problem = report
        .first_problem()
        .expect("verify reports the stale tree");
    assert_eq!(problem.offset.as_u64(), stale);
    assert!(problem.reason.contains("Merkle tree"), "{}", problem.reason);
}

#[test]
fn disabled_trees_refuse_proofs_and_keep_the_log_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default().merkle_trees(false);
    let head = {
        let store = Kimberlite::open_with(dir.path(), config.clone()).unwrap();
        let id = store.create_stream("audit").unwrap();
        fill(&store, id, 10);
        assert!(matches!(
            store.tree_head(id),
            Err(Error::TreeUnavailable { .. })
        ));
        assert!(matches!(
            store.inclusion_proof(id, 0.into(), 10),
            Err(Error::TreeUnavailable { .. })
        ));
        store.head(id).unwrap()
    };
    assert!(!dir.path().join(MERKLE_DIR).exists());
    let memory = Kimberlite::in_memory_with(config);
    let id = memory.create_stream("audit").unwrap();
    fill(&memory, id, 10);
    assert_eq!(memory.head(id).unwrap(), head);
    // Reopened with trees, the store builds them from the log.
    assert_eq!(disk_root(dir.path()).0, 10);
}

#[test]
fn concurrent_appends_and_proofs() {
    let store = Kimberlite::in_memory_with(Config::default().durability(Durability::GroupCommit));
    let ids: Vec<StreamId> = (0..3)
        .map(|i| store.create_stream(&format!("s{i}")).unwrap())
        .collect();
    std::thread::scope(|scope| {
        for &id in &ids {
            let store = store.clone();
            scope.spawn(move || fill(&store, id, 200));
        }
        let store = store.clone();
        let ids = ids.clone();
        scope.spawn(move || {
            for round in 0..200u64 {
                let id = ids[(round % 3) as usize];
                let head = store.tree_head(id).unwrap();
                if head.tree_size > 0 {
                    let offset = round % head.tree_size;
                    let proof = store
                        .inclusion_proof(id, offset.into(), head.tree_size)
                        .unwrap();
                    verify_inclusion(
                        &proof.leaf_hash,
                        offset,
                        head.tree_size,
                        &proof.hashes,
                        &head.root,
                    )
                    .unwrap();
                }
            }
        });
    });
    for id in ids {
        check_all_proofs(&store, id);
    }
}

#[test]
fn closing_the_store_writes_every_node() {
    let dir = tempfile::tempdir().unwrap();
    // More than one chunk and one flush, less than two.
    drop(filled_store(dir.path(), Config::default(), 5000));
    let tree_dir = tree_dir(dir.path());
    for level in 0..=12u32 {
        let path = tree_dir.join(format!("level-{level:02}.hashes"));
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, 32 * (5000u64 >> level), "{}", path.display());
    }
}
