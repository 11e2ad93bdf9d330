//! Tests of the stores' Merkle trees: proofs verify, side files are rebuilt from the log.

use kimberlite_proof::{verify_consistency, verify_inclusion, Hash};

use crate::merkle::MERKLE_DIR;
use crate::{
    Config, Durability, Error, ExpectedOffset, Kimberlite, Offset, StreamId, TreeEvidence, TreeNode,
};

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
pub(crate) fn filled_store(
    dir: &std::path::Path,
    config: Config,
    events: u64,
) -> (Kimberlite, StreamId) {
    let store = Kimberlite::open_with(dir, config.durability(Durability::Unsynced)).unwrap();
    let id = store.create_stream("audit").unwrap();
    fill(&store, id, events);
    (store, id)
}

/// The side files of the tree of the first stream created in the store in `dir`.
pub(crate) fn tree_dir(dir: &std::path::Path) -> std::path::PathBuf {
    crate::merkle::tree_dir(dir, StreamId::new(1))
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
    stale_node_is_found(events, 0, stale);
}

fn stale_node_is_found(events: u64, level: u8, index: u64) {
    let dir = tempfile::tempdir().unwrap();
    drop(filled_store(dir.path(), Config::default(), events));
    flip_node(dir.path(), level, index);
    let store = Kimberlite::open(dir.path()).unwrap();
    let id = store.stream("audit").unwrap();
    let check = store.check_tree(id, &[]).unwrap();
    let node = TreeNode { level, index };
    assert_eq!(check.first_stale_node, Some(node));
    assert_eq!(check.first_stale_leaf, (level == 0).then_some(index));
    assert!(!check.tree_matches_log());
    let report = store.verify_all().unwrap();
    let problem = report
        .first_problem()
        .expect("verify reports the stale tree");
    assert_eq!(problem.offset.as_u64(), node.first_offset());
    assert_eq!(problem.position, Some(node.file_position()));
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

/// Events of the tree the damage tests flip bits in: levels 0 to 10, and an odd size, so that
/// the frontier (the nodes the root is made of) holds a node at levels 10, 7, 5, 4, 1 and a
/// leaf: 1,203 = 1,024 + 128 + 32 + 16 + 2 + 1.
const DAMAGE_EVENTS: u64 = 1203;

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Flips one bit of node `index` of `level` in the tree of the first stream of the store.
fn flip_node(dir: &std::path::Path, level: u8, index: u64) {
    let path = tree_dir(dir).join(crate::merkle::level_name(level));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[32 * index as usize + 5] ^= 1;
    std::fs::write(&path, bytes).unwrap();
}

/// The first, a middle and the last node of every level of a tree of `events` leaves.
fn nodes_to_damage(events: u64) -> Vec<(u8, u64)> {
    let mut nodes = Vec::new();
    for level in 0..=(63 - events.leading_zeros()) as u8 {
        let count = events >> level;
        let mut indexes = vec![0, count / 2, count - 1];
        indexes.dedup();
        nodes.extend(indexes.into_iter().map(|index| (level, index)));
    }
    nodes
}

/// The tree the log of `filled_store` holds, computed without any store.
pub(crate) fn true_tree(events: u64) -> kimberlite_proof::MemoryTree {
    kimberlite_proof::MemoryTree::from_leaves(
        (0..events).map(|i| kimberlite_proof::event_leaf_hash(i, format!("event {i}").as_bytes())),
    )
}

/// Asks `store` for its tree head and every inclusion and consistency proof of a stream of
/// `events` events (inclusion proofs at the full size, and of each size's last event at that
/// size): every answer given must be the truth (verify against the roots of `truth`), every
/// refusal must be a corruption error. Returns the refusals.
pub(crate) fn proofs_given_are_true(
    store: &Kimberlite,
    id: StreamId,
    events: u64,
    truth: &kimberlite_proof::MemoryTree,
) -> Vec<Error> {
    let root = |size| kimberlite_proof::root_at(truth, size).unwrap();
    let leaf = |i: u64| kimberlite_proof::event_leaf_hash(i, format!("event {i}").as_bytes());
    let mut refused = Vec::new();
    match store.tree_head(id) {
        Ok(head) => assert_eq!((head.tree_size, head.root), (events, truth.root())),
        Err(error) => refused.push(error),
    }
    let mut inclusion =
        |offset: u64, size: u64| match store.inclusion_proof(id, offset.into(), size) {
            Ok(proof) => {
                assert_eq!(proof.root, root(size), "offset {offset} at size {size}");
                verify_inclusion(&leaf(offset), offset, size, &proof.hashes, &root(size)).unwrap();
            }
            Err(error) => refused.push(error),
        };
    for offset in 0..events {
        inclusion(offset, events);
    }
    for size in 1..events {
        inclusion(size - 1, size);
    }
    for old in 1..=events {
        match store.consistency_proof(id, old, events) {
            Ok(proof) => {
                assert_eq!((proof.old_root, proof.new_root), (root(old), root(events)));
                verify_consistency(old, events, &root(old), &root(events), &proof.hashes).unwrap();
            }
            Err(error) => refused.push(error),
        }
    }
    for error in &refused {
        assert!(error.is_corruption(), "{error}");
    }
    refused
}

/// A flipped bit in the first, a middle or the last node of any level of the stored tree:
/// `verify` reports it (it compared only the leaves and the root, so interior nodes went
/// unseen), and no tree head or proof read from it is handed out, while those that do not
/// read it still are.
#[test]
fn a_flipped_bit_in_any_stored_node_is_reported_and_never_handed_out() {
    let base = tempfile::tempdir().unwrap();
    drop(filled_store(base.path(), Config::default(), DAMAGE_EVENTS));
    let truth = true_tree(DAMAGE_EVENTS);
    for (level, index) in nodes_to_damage(DAMAGE_EVENTS) {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        flip_node(dir.path(), level, index);
        let store = Kimberlite::open(dir.path()).unwrap();
        let id = store.stream("audit").unwrap();
        let report = store.verify_all().unwrap();
        let problem = report
            .first_problem()
            .unwrap_or_else(|| panic!("node {index} of level {level}: verify says intact"));
        assert_eq!(
            (problem.stream, problem.offset.as_u64()),
            (id, index << level),
            "node {index} of level {level}: {}",
            problem.reason
        );
        let file = format!("level-{level:02}.hashes");
        assert_eq!(
            (problem.file.as_deref(), problem.position),
            (
                Some(tree_dir(dir.path()).join(&file).as_path()),
                Some(32 * index)
            ),
            "{}",
            problem.reason
        );
        let named = if level == 0 {
            format!("leaf {index} is not the hash of the event")
        } else {
            format!("node {index} of level {level} (over offsets")
        };
        assert!(problem.reason.contains(&named), "{}", problem.reason);
        let check = store.check_tree(id, &[]).unwrap();
        assert!(!check.tree_matches_log());
        assert_eq!(check.first_stale_node, Some(TreeNode { level, index }));
        assert_eq!(check.first_stale_leaf, (level == 0).then_some(index));
        let refused = proofs_given_are_true(&store, id, DAMAGE_EVENTS, &truth);
        assert!(
            !refused.is_empty(),
            "node {index} of level {level}: every proof was handed out"
        );
        if checked_at_open(DAMAGE_EVENTS, level, index) {
            assert!(
                matches!(
                    refused.first(),
                    Some(Error::TreeDamaged {
                        evidence: TreeEvidence::Head { .. },
                        ..
                    })
                ),
                "node {index} of level {level} spoils the root: the head must be refused"
            );
        }
        for error in refused {
            let Error::TreeDamaged {
                stream, evidence, ..
            } = error
            else {
                panic!("not TreeDamaged: {error}");
            };
            assert_eq!(stream, id);
            // Open checks the frontier against the nodes below it: damage there spoils every
            // root, and only there is the head refused.
            if !checked_at_open(DAMAGE_EVENTS, level, index) {
                assert!(
                    !matches!(evidence, TreeEvidence::Head { .. }),
                    "node {index} of level {level} is not in the root"
                );
            }
        }
    }
}

/// True for the nodes of a tree of `size` leaves that open checks: the frontier's nodes and
/// the two below each.
fn checked_at_open(size: u64, level: u8, index: u64) -> bool {
    let mut start = 0;
    for top in (0..64u8).rev().filter(|top| size & (1 << top) != 0) {
        let node = start >> top;
        start += 1 << top;
        if (top, node) == (level, index) || (top == level + 1 && node == index / 2) {
            return true;
        }
    }
    false
}

/// Damage to the side files while the store is open: the root in memory was hashed from
/// the log, so the tree head stays true, and proofs that read the damaged node are refused.
#[test]
fn damage_while_the_store_is_open_is_refused_by_the_proof_check() {
    let dir = tempfile::tempdir().unwrap();
    drop(filled_store(dir.path(), Config::default(), DAMAGE_EVENTS));
    let truth = true_tree(DAMAGE_EVENTS);
    let store = Kimberlite::open(dir.path()).unwrap();
    let id = store.stream("audit").unwrap();
    // Node 0 of level 3 (offsets 0..=7), then the frontier's node of level 10 (0..=1023).
    for (level, index, offset) in [(3, 0, 10), (10, 0, 1100)] {
        flip_node(dir.path(), level, index);
        assert_eq!(store.tree_head(id).unwrap().root, truth.root());
        let refusal = store
            .inclusion_proof(id, Offset::new(offset), DAMAGE_EVENTS)
            .unwrap_err();
        assert!(
            matches!(
                refusal,
                Error::TreeDamaged {
                    evidence: TreeEvidence::Inclusion { offset: at, tree_size: DAMAGE_EVENTS },
                    ..
                } if at == Offset::new(offset)
            ),
            "{refusal}"
        );
        let message = refusal.to_string();
        assert!(
            message.contains(&format!(
                "the stored Merkle tree of stream \"audit\" (id {id}) is damaged at offset \
                 {offset}"
            )),
            "{message}"
        );
        let refused = proofs_given_are_true(&store, id, DAMAGE_EVENTS, &truth);
        assert!(
            refused.iter().all(|error| matches!(
                error,
                Error::TreeDamaged {
                    evidence: TreeEvidence::Inclusion { .. } | TreeEvidence::Consistency { .. },
                    ..
                }
            )),
            "{refused:?}"
        );
    }
}

/// Interior nodes of a stream large enough that `verify` hashes its tree on a thread beside
/// the walk, in the first chunk, a later one, and above a chunk's height.
#[test]
fn stale_interior_nodes_are_found_in_a_large_stream() {
    for (level, index) in [(1, 0), (5, 300), (12, 3), (14, 0)] {
        stale_node_is_found(20_000, level, index);
    }
}

#[test]
fn tree_nodes_cover_their_offsets_and_order_by_completion() {
    let leaf = TreeNode { level: 0, index: 7 };
    let node = TreeNode { level: 3, index: 0 };
    assert_eq!((node.first_offset(), node.last_offset()), (0, 7));
    assert_eq!((leaf.first_offset(), leaf.last_offset()), (7, 7));
    assert_eq!(TreeNode { level: 2, index: 5 }.file_position(), 160);
    // Node (3, 0) is completed by the same event as leaf 7, after it.
    assert!(leaf.completes_before(&node));
    assert!(!node.completes_before(&leaf));
    assert!(TreeNode { level: 0, index: 6 }.completes_before(&leaf));
    let top = TreeNode {
        level: 63,
        index: 1,
    };
    assert_eq!(top.last_offset(), u64::MAX);
}
