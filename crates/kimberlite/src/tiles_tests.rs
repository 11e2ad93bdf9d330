//! The store's tiles and entry bundles: equal to a tree recomputed from the events, refused
//! when the side files are forged or damaged, bundles only from the durable log.

use kimberlite_proof::{
    event_leaf_bytes, leaf_hash, parse_entry_bundle, parse_tile, read_tile, root_at, tile_in_tree,
    tiles_of, Hash, TileError, TileId,
};

use crate::merkle_tests::{filled_store, true_tree};
use crate::tree_trust_tests::{forged_store, levels_of, EVENTS};
use crate::{Config, Error, ExpectedOffset, Kimberlite, TreeEvidence};

fn tile(level: u8, index: u64, width: u16) -> TileId {
    TileId::new(level, index, width).unwrap()
}

/// Every tile of the trees of `sizes` events, as the store gives them, is the tile of the
/// tree recomputed from the events.
fn tiles_are_true(store: &Kimberlite, sizes: &[u64]) {
    let id = store.stream("audit").unwrap();
    let truth = true_tree(EVENTS);
    for &size in sizes {
        for t in tiles_of(size) {
            let bytes = store.tile(id, size, t).unwrap();
            assert_eq!(
                parse_tile(t, &bytes).unwrap(),
                read_tile(&truth, t).unwrap()
            );
        }
    }
}

#[test]
fn every_tile_is_the_tree_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = filled_store(dir.path(), Config::default(), EVENTS);
    tiles_are_true(&store, &[1, 255, 256, 257, 1000, EVENTS]);
    drop(store);
    // Reopened: the tiles now come from the files.
    let store = Kimberlite::open(dir.path()).unwrap();
    tiles_are_true(&store, &[EVENTS, 512]);
    // A partial tile of an older size is still given from the larger tree.
    let id = store.stream("audit").unwrap();
    let old = tile(0, 4, 3);
    let bytes = store.tile(id, EVENTS, old).unwrap();
    let truth = true_tree(EVENTS);
    assert_eq!(
        parse_tile(old, &bytes).unwrap(),
        read_tile(&truth, old).unwrap()
    );
}

#[test]
fn tiles_outside_the_tree_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (store, id) = filled_store(dir.path(), Config::default(), EVENTS);
    for (size, t) in [
        (EVENTS, tile(0, 4, 180)),
        (EVENTS, tile(0, 5, 1)),
        (EVENTS, tile(1, 0, 5)),
        (EVENTS, tile(2, 0, 1)),
        (EVENTS, tile(8, 0, 1)),
        (255, tile(0, 0, 256)),
        (0, tile(0, 0, 1)),
    ] {
        let refused = store.tile(id, size, t);
        assert!(
            matches!(&refused, Err(Error::Tile { source: TileError::NotInTree { tile, tree_size }, .. })
                if *tile == t && *tree_size == size),
            "{t} at {size}: {refused:?}"
        );
    }
    let past = store.tile(id, EVENTS + 1, tile(0, 0, 1));
    assert!(matches!(past, Err(Error::TreeRange { .. })), "{past:?}");
}

/// A leaf replaced and every parent recomputed: the side files are self-consistent, their
/// root is another, and no tile of them is given.
#[test]
fn no_tile_of_a_forged_tree_is_given() {
    for offset in [5usize, 700, EVENTS as usize - 1] {
        let dir = forged_store(|leaves| {
            leaves[offset] = kimberlite_proof::event_leaf_hash(offset as u64, b"forged");
            levels_of(leaves.clone())
        });
        let store = Kimberlite::open(dir.path()).unwrap();
        let id = store.stream("audit").unwrap();
        for size in [EVENTS, 1000, 256] {
            for t in tiles_of(size) {
                let refused = store.tile(id, size, t);
                let Err(Error::TreeDamaged { evidence, .. }) = &refused else {
                    panic!("{t} at {size} from a forged tree: {refused:?}");
                };
                assert_eq!(
                    *evidence,
                    TreeEvidence::Tile {
                        tile: t,
                        tree_size: size
                    }
                );
            }
        }
    }
}

/// One stored node changed, nothing recomputed (the frontier is intact, so heads are still
/// given): every tile that holds or reads the node is refused, the others are true.
#[test]
fn a_tile_holding_a_damaged_node_is_refused_and_the_others_are_true() {
    let truth = true_tree(EVENTS);
    for (level, index) in [(0usize, 37usize), (0, 1100), (8, 2)] {
        let dir = forged_store(|leaves| {
            let mut levels = levels_of(leaves.clone());
            levels[level][index] = Hash([9; 32]);
            levels
        });
        let store = Kimberlite::open(dir.path()).unwrap();
        let id = store.stream("audit").unwrap();
        store.tree_head(id).unwrap();
        let damaged = tile(level as u8 / 8, index as u64 / 256, 256);
        let mut given = 0;
        for t in tiles_of(EVENTS) {
            match store.tile(id, EVENTS, t) {
                Ok(bytes) => {
                    assert_eq!(
                        parse_tile(t, &bytes).unwrap(),
                        read_tile(&truth, t).unwrap()
                    );
                    given += 1;
                }
                Err(Error::TreeDamaged { .. }) => {}
                Err(other) => panic!("{t}: {other}"),
            }
        }
        let refused = store.tile(
            id,
            EVENTS,
            tile_in_tree(damaged.level(), damaged.index(), EVENTS).unwrap(),
        );
        assert!(
            matches!(refused, Err(Error::TreeDamaged { .. })),
            "{damaged}: {refused:?}"
        );
        assert!(given > 0, "every tile refused for ({level}, {index})");
    }
}

#[test]
fn entry_bundles_are_the_events_leaf_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, id) = filled_store(dir.path(), Config::default(), EVENTS);
    let truth = true_tree(EVENTS);
    for t in tiles_of(EVENTS).filter(|t| t.level() == 0) {
        let bundle = store.entry_bundle(id, t.index(), t.width()).unwrap();
        let entries = parse_entry_bundle(&bundle).unwrap();
        assert_eq!(entries.len(), usize::from(t.width()));
        let first = t.index() * 256;
        for (offset, entry) in (first..).zip(&entries) {
            let event = format!("event {offset}");
            assert_eq!(*entry, event_leaf_bytes(offset, event.as_bytes()));
        }
        let hashes: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
        assert_eq!(hashes, read_tile(&truth, t).unwrap());
    }
    for (index, width) in [(4u64, 180u16), (5, 1), (0, 0), (0, 257), (u64::MAX, 256)] {
        let refused = store.entry_bundle(id, index, width);
        assert!(
            matches!(refused, Err(Error::Tile { .. })),
            "{index}/{width}: {refused:?}"
        );
    }
}

/// An event whose leaf bytes are over 65,535 bytes: its bundle is refused naming the
/// offset and size, its tile and inclusion proof are still given.
#[test]
fn an_event_too_large_for_a_bundle_refuses_its_bundle_only() {
    let store = Kimberlite::in_memory();
    let id = store.create_stream("audit").unwrap();
    let fits = vec![b'a'; 65_535 - 17];
    let over = vec![b'b'; 65_535 - 16];
    store
        .append(
            id,
            [b"small".to_vec(), fits.clone(), over.clone()],
            ExpectedOffset::NoStream,
        )
        .unwrap();
    let refused = store.entry_bundle(id, 0, 3);
    let Err(Error::Tile {
        name,
        source:
            TileError::EntryTooLarge {
                offset: 2,
                entry_bytes: 65_536,
            },
    }) = &refused
    else {
        panic!("{refused:?}");
    };
    assert_eq!(name, "audit");
    let bundle = store.entry_bundle(id, 0, 2).unwrap();
    assert_eq!(parse_entry_bundle(&bundle).unwrap()[1].len(), 65_535);
    let head = store.tree_head(id).unwrap();
    let bytes = store.tile(id, 3, tile(0, 0, 3)).unwrap();
    let hashes = parse_tile(tile(0, 0, 3), &bytes).unwrap();
    assert_eq!(hashes[2], kimberlite_proof::event_leaf_hash(2, &over));
    let truth = kimberlite_proof::MemoryTree::from_leaves(hashes);
    assert_eq!(root_at(&truth, 3).unwrap(), head.root);
    store.inclusion_proof(id, 2.into(), 3).unwrap();
}
