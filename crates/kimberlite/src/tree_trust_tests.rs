//! Side files forged so that they are self-consistent (a leaf or a node replaced and every
//! parent recomputed): the store never signs, proves or reports their root (module
//! `tree_trust`).

use kimberlite_proof::{event_leaf_hash, node_hash, Hash};

use crate::merkle::level_name;
use crate::merkle_tests::{filled_store, proofs_given_are_true, tree_dir, true_tree};
use crate::{Config, Error, Kimberlite, Offset, TreeEvidence};

/// Events in the stream: 1,203 = 1,024 + 128 + 32 + 16 + 2 + 1, a frontier at six levels.
pub(crate) const EVENTS: u64 = 1203;

/// Every level of the tree over `leaves`: level `k` holds its complete nodes.
pub(crate) fn levels_of(leaves: Vec<Hash>) -> Vec<Vec<Hash>> {
    let mut levels = vec![leaves];
    while let Some(below) = levels.last().filter(|level| level.len() >= 2) {
        let above = below
            .chunks_exact(2)
            .map(|pair| node_hash(&pair[0], &pair[1]))
            .collect();
        levels.push(above);
    }
    levels
}

/// Replaces node `(level, index)` with `hash` and recomputes every node above it, so the
/// forged tree is consistent all the way up.
fn forge_node(levels: &mut [Vec<Hash>], level: usize, index: usize, hash: Hash) {
    levels[level][index] = hash;
    let mut index = index;
    for above in level + 1..levels.len() {
        index /= 2;
        let below = &levels[above - 1];
        if 2 * index + 1 >= below.len() || index >= levels[above].len() {
            break;
        }
        let parent = node_hash(&below[2 * index], &below[2 * index + 1]);
        levels[above][index] = parent;
    }
}

/// Writes `levels` as the side files of the store in `dir` (replacing them all).
fn write_levels(dir: &std::path::Path, levels: &[Vec<Hash>]) {
    let tree = tree_dir(dir);
    for (level, nodes) in (0u8..).zip(levels) {
        let bytes: Vec<u8> = nodes.iter().flat_map(|hash| hash.0).collect();
        std::fs::write(tree.join(level_name(level)), bytes).unwrap();
    }
}

/// The log's true leaves, `EVENTS` of them (as `filled_store` writes them).
fn true_leaves() -> Vec<Hash> {
    (0..EVENTS)
        .map(|i| event_leaf_hash(i, format!("event {i}").as_bytes()))
        .collect()
}

/// A store of `EVENTS` events whose side files are then replaced by `forge`'s levels.
pub(crate) fn forged_store(
    forge: impl FnOnce(&mut Vec<Hash>) -> Vec<Vec<Hash>>,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    drop(filled_store(dir.path(), Config::default(), EVENTS));
    let mut leaves = true_leaves();
    let levels = forge(&mut leaves);
    write_levels(dir.path(), &levels);
    dir
}

/// Opens the forged store: no head and no proof it hands out is from the forged tree, its
/// head is refused naming the stream and a node of the tree, and the log's own root is what
/// `check_tree` recomputes (the intact log is not blamed).
fn forged_tree_is_refused(dir: &std::path::Path, forged_offset: u64) {
    let store = Kimberlite::open(dir).unwrap();
    let id = store.stream("audit").unwrap();
    let truth = true_tree(EVENTS);
    let head = store.tree_head(id);
    let Err(Error::TreeDamaged {
        ref name,
        stream,
        evidence: TreeEvidence::Head { tree_size: EVENTS },
        ref reason,
    }) = head
    else {
        panic!("the forged root was reported: {head:?}");
    };
    assert_eq!((name.as_str(), stream), ("audit", id));
    assert!(reason.contains("level-"), "{reason}");
    assert!(reason.contains("is not the hash of"), "{reason}");
    let proof = store.inclusion_proof(id, Offset::new(forged_offset), EVENTS);
    assert!(matches!(proof, Err(Error::TreeDamaged { .. })), "{proof:?}");
    let refused = proofs_given_are_true(&store, id, EVENTS, &truth);
    assert!(!refused.is_empty());
    let check = store.check_tree(id, &[EVENTS]).unwrap();
    assert_eq!(check.log_root, kimberlite_proof::MemoryTree::root(&truth));
    assert!(!check.tree_matches_log());
}

/// The attack of issue 22: a leaf replaced and every parent recomputed. The store signed the
/// forged root, and proved the forged event.
#[test]
fn a_forged_leaf_with_recomputed_parents_is_never_signed_or_proven() {
    for offset in [0u64, 37, 1100, EVENTS - 1] {
        let dir = forged_store(|leaves| {
            leaves[offset as usize] = event_leaf_hash(offset, b"forged");
            levels_of(leaves.clone())
        });
        forged_tree_is_refused(dir.path(), offset);
    }
}

/// An interior node replaced and its ancestors recomputed, every leaf intact.
#[test]
fn a_forged_interior_node_with_recomputed_parents_is_refused() {
    for (level, index) in [(1usize, 18usize), (3, 2), (7, 8), (10, 0)] {
        let dir = forged_store(|leaves| {
            let mut levels = levels_of(leaves.clone());
            forge_node(&mut levels, level, index, Hash([7; 32]));
            levels
        });
        forged_tree_is_refused(dir.path(), (index << level) as u64);
    }
}

/// Side files longer than the log, forged inside or not: more leaves than the log holds are
/// evidence of lost events (`lost.rs`), so the stream's tree is rebuilt from the log in memory.
/// No head or proof comes from the files, the head is the log's own root, and verify reports
/// the events the files claim.
#[test]
fn forged_side_files_longer_than_the_log_are_refused() {
    for forged_inside in [true, false] {
        let dir = forged_store(|leaves| {
            if forged_inside {
                leaves[5] = event_leaf_hash(5, b"forged");
            }
            leaves.extend((EVENTS..EVENTS + 300).map(|i| event_leaf_hash(i, b"more")));
            levels_of(leaves.clone())
        });
        let store = Kimberlite::open(dir.path()).unwrap();
        let id = store.stream("audit").unwrap();
        let truth = true_tree(EVENTS);
        let head = store.tree_head(id).unwrap();
        assert_eq!(head.tree_size, EVENTS);
        assert_eq!(head.root, kimberlite_proof::MemoryTree::root(&truth));
        assert!(proofs_given_are_true(&store, id, EVENTS, &truth).is_empty());
        assert!(!store.verify(id).unwrap().is_intact(), "{forged_inside}");
    }
}
