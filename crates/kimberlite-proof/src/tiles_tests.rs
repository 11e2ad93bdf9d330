//! Tiles against a naive tree: paths (every tile one path, garbage refused with its reason),
//! which tiles a tree has, tile hashes, entry bundles, and the check of a tile against a root.

use std::sync::OnceLock;

use proptest::prelude::*;

use crate::hash::{event_leaf_bytes, leaf_hash, node_hash, Hash};
use crate::tiles::*;
use crate::tree::{root_at, MemoryTree};

/// RFC 9162's `MTH(D[lo:hi])`, recursively, straight from the definition.
fn naive_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => crate::hash::empty_root(),
        1 => leaves[0],
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
        }
    }
}

/// Tile `(level, index, width)` as the spec defines it: hash `i` is
/// `MTH(D[(n * 256 + i) * 256^l : (n * 256 + i + 1) * 256^l])`.
fn naive_tile(leaves: &[Hash], tile: TileId) -> Vec<Hash> {
    let span = 256usize.pow(u32::from(tile.level()));
    let first = tile.index() as usize * 256;
    (first..first + usize::from(tile.width()))
        .map(|i| naive_root(&leaves[i * span..(i + 1) * span]))
        .collect()
}

fn entry(offset: u64) -> Vec<u8> {
    event_leaf_bytes(offset, format!("event {offset}").as_bytes())
}

const BIG: u64 = 70_000;

/// Leaves and tree of the spec's example size, built once.
fn big() -> &'static (Vec<Hash>, MemoryTree) {
    static BIG_TREE: OnceLock<(Vec<Hash>, MemoryTree)> = OnceLock::new();
    BIG_TREE.get_or_init(|| {
        let leaves: Vec<Hash> = (0..BIG).map(|o| leaf_hash(&entry(o))).collect();
        let tree = MemoryTree::from_leaves(leaves.iter().copied());
        (leaves, tree)
    })
}

fn tile(level: u8, index: u64, width: u16) -> TileId {
    TileId::new(level, index, width).unwrap()
}

#[test]
fn paths_are_the_specs() {
    let cases = [
        (tile(0, 0, 256), "tile/0/000"),
        (tile(0, 1234067, 256), "tile/0/x001/x234/067"),
        (tile(0, 1234067, 8), "tile/0/x001/x234/067.p/8"),
        (tile(1, 1000, 1), "tile/1/x001/000.p/1"),
        (tile(63, 999, 255), "tile/63/999.p/255"),
        (
            tile(0, u64::MAX, 256),
            "tile/0/x018/x446/x744/x073/x709/x551/615",
        ),
    ];
    for (tile, path) in cases {
        assert_eq!(tile.path(), path);
        assert_eq!(parse_tile_path(path), Ok(TilePath::Hashes(tile)));
    }
    let bundle = tile(0, 1234067, 8);
    assert_eq!(
        bundle.entries_path().unwrap(),
        "tile/entries/x001/x234/067.p/8"
    );
    assert_eq!(
        parse_tile_path("tile/entries/x001/x234/067.p/8"),
        Ok(TilePath::Entries(bundle))
    );
    assert_eq!(tile(1, 0, 256).entries_path(), None);
}

#[test]
fn garbage_paths_are_refused_with_their_reason() {
    use TilePathError::*;
    let long = format!("tile/0/{}000", "x001/".repeat(12));
    let cases: &[(&str, TilePathError)] = &[
        ("", Prefix),
        ("tile", Prefix),
        ("tiles/0/000", Prefix),
        ("/tile/0/000", Prefix),
        ("checkpoint", Prefix),
        ("tile//000", Level),
        ("tile/00/000", Level),
        ("tile/01/000", Level),
        ("tile/+1/000", Level),
        ("tile/-0/000", Level),
        ("tile/64/000", Level),
        ("tile/1000/000", Level),
        ("tile/data/000", Level),
        ("tile/0", Index),
        ("tile/0/", Index),
        ("tile/0/00", Index),
        ("tile/0/0000", Index),
        ("tile/0/+12", Index),
        ("tile/0/x000/005", Index),
        ("tile/0/x1/005", Index),
        ("tile/0/001/005", Index),
        ("tile/0/005/x001", Index),
        ("tile/0/x001", Index),
        ("tile/0/000/", Index),
        ("tile/0/x001/x234/067/", Index),
        ("tile/0/x018/x446/x744/x073/x709/x551/616", IndexTooLarge),
        ("tile/0/x999/x999/x999/x999/x999/x999/999", IndexTooLarge),
        ("tile/0/000.p", Width),
        ("tile/0/000.p/", Width),
        ("tile/0/000.p/0", Width),
        ("tile/0/000.p/256", Width),
        ("tile/0/000.p/08", Width),
        ("tile/0/000.p/8/", Width),
        ("tile/0/000.p/8/9", Width),
        ("tile/0/000.p/x8", Width),
        ("tile/entries/000.p/-1", Width),
        ("tile/0/x001.p/005/3", Width),
        (long.as_str(), TooLong),
    ];
    for (path, expected) in cases {
        assert_eq!(parse_tile_path(path), Err(*expected), "{path:?}");
    }
}

#[test]
fn coordinates_outside_the_spec_are_refused() {
    assert_eq!(TileId::new(64, 0, 1), Err(TileError::Level { level: 64 }));
    assert_eq!(TileId::new(0, 0, 0), Err(TileError::Width { width: 0 }));
    assert_eq!(TileId::new(0, 0, 257), Err(TileError::Width { width: 257 }));
    // A level whose nodes no tree of u64 leaves has: never in a tree, no overflow.
    for level in [8u8, 31, 32, 63] {
        let high = tile(level, u64::MAX, 256);
        assert_eq!(high.node_level(), None);
        assert!(!high.fits(u64::MAX));
        assert_eq!(tile_in_tree(level, 0, u64::MAX), None);
    }
    assert!(!tile(0, u64::MAX, 256).fits(u64::MAX));
    assert_eq!(tile_in_tree(7, 0, u64::MAX), Some(tile(7, 0, 255)));
    assert_eq!(tile_in_tree(0, u64::MAX, u64::MAX), None);
}

#[test]
fn tiles_of_the_specs_examples() {
    // "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level
    // 0 tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and one
    // partial level 2 tile of width 1"
    let tiles: Vec<TileId> = tiles_of(70_000).collect();
    let mut expected: Vec<TileId> = (0..273).map(|n| tile(0, n, 256)).collect();
    expected.extend([
        tile(0, 273, 112),
        tile(1, 0, 256),
        tile(1, 1, 17),
        tile(2, 0, 1),
    ]);
    assert_eq!(tiles, expected);
    // "a tree of size 256 will be represented by a full level 0 tile and a partial level 1
    // tile of width 1"
    let tiles: Vec<TileId> = tiles_of(256).collect();
    assert_eq!(tiles, [tile(0, 0, 256), tile(1, 0, 1)]);
    assert_eq!(tiles_of(0).count(), 0);
    let top: Vec<TileId> = (0..8).filter_map(|l| tile_in_tree(l, 0, 1 << 56)).collect();
    assert_eq!(top.last(), Some(&tile(7, 0, 1)));
}

#[test]
fn tiles_of_every_small_size_match_the_formula() {
    for size in 0..=1_200u64 {
        let tiles: Vec<TileId> = tiles_of(size).collect();
        let mut expected = Vec::new();
        for level in 0..8u32 {
            let nodes = size / 256u64.pow(level);
            expected.extend((0..nodes / 256).map(|n| tile(level as u8, n, 256)));
            if nodes % 256 != 0 {
                expected.push(tile(level as u8, nodes / 256, (nodes % 256) as u16));
            }
        }
        assert_eq!(tiles, expected, "size {size}");
        for t in &tiles {
            assert!(t.fits(size));
            let wider = TileId::new(t.level(), t.index(), t.width() + 1);
            assert!(wider.map_or(true, |w| !w.fits(size)), "{t} at {size}");
        }
    }
}

#[test]
fn tile_hashes_are_the_naive_trees() {
    let (leaves, tree) = big();
    for t in tiles_of(BIG) {
        let hashes = read_tile(tree, t).unwrap();
        if t.level() > 0 || t.index() % 50 == 0 || !t.is_full() {
            assert_eq!(hashes, naive_tile(leaves, t), "{t}");
        }
        let bytes = tile_bytes(&hashes);
        assert_eq!(bytes.len(), usize::from(t.width()) * 32);
        assert_eq!(parse_tile(t, &bytes).unwrap(), hashes);
        assert!(parse_tile(t, &bytes[1..]).is_err());
    }
    assert!(read_tile(tree, tile(0, 273, 113)).is_err());
    assert!(read_tile(tree, tile(3, 0, 1)).is_err());
}

#[test]
fn every_tile_of_every_small_tree_checks_and_any_changed_hash_is_refused() {
    let leaves: Vec<Hash> = (0..600).map(|o| leaf_hash(&entry(o))).collect();
    let tree = MemoryTree::from_leaves(leaves.iter().copied());
    for size in 1..=600u64 {
        let root = root_at(&tree, size).unwrap();
        assert_eq!(root, naive_root(&leaves[..size as usize]));
        // The tree's own tiles, and every older partial tile it still holds.
        let older = (1..=255u16).filter_map(|w| TileId::new(0, size / 256, w).ok());
        for t in tiles_of(size).chain(older).filter(|t| t.fits(size)) {
            let hashes = naive_tile(&leaves, t);
            check_tile(&tree, t, &hashes, size, &root).unwrap();
            if size % 7 != 0 && t.width() > 1 {
                continue;
            }
            let w = usize::from(t.width());
            for at in [0, w / 2, w - 1] {
                let mut forged = hashes.clone();
                forged[at].0[at % 32] ^= 1;
                let refused = check_tile(&tree, t, &forged, size, &root);
                assert!(
                    matches!(refused, Err(TileCheckError::Mismatch { .. })),
                    "{t} at {size}, hash {at}"
                );
            }
        }
    }
}

#[test]
fn a_tile_outside_the_tree_or_of_the_wrong_length_is_refused() {
    let (_, tree) = big();
    let root = root_at(tree, 300).unwrap();
    let t = tile(0, 1, 45);
    let hashes = read_tile(tree, t).unwrap();
    assert_eq!(
        check_tile(tree, t, &hashes, 300, &root),
        Err(TileCheckError::Tile(TileError::NotInTree {
            tile: t,
            tree_size: 300
        }))
    );
    let t = tile(0, 1, 44);
    assert!(matches!(
        check_tile(tree, t, &hashes, 300, &root),
        Err(TileCheckError::Tile(TileError::Length { .. }))
    ));
    check_tile(tree, t, &hashes[..44], 300, &root).unwrap();
    let other_root = root_at(tree, 301).unwrap();
    assert!(matches!(
        check_tile(tree, t, &hashes[..44], 300, &other_root),
        Err(TileCheckError::Mismatch { .. })
    ));
}

#[test]
fn entry_bundles_hold_their_entries_and_hash_to_the_level_0_tile() {
    let (_, tree) = big();
    let t = tile(0, 3, 200);
    let entries: Vec<Vec<u8>> = (768..968).map(entry).collect();
    let bundle = entry_bundle((768..).zip(entries.iter().map(Vec::as_slice))).unwrap();
    let parsed = parse_entry_bundle(&bundle).unwrap();
    assert_eq!(parsed, entries);
    let hashes: Vec<Hash> = parsed.iter().map(|e| leaf_hash(e)).collect();
    assert_eq!(hashes, read_tile(tree, t).unwrap());
    // Layout: a big-endian u16 length, then the entry.
    let first = &entries[0];
    assert_eq!(&bundle[..2], &(first.len() as u16).to_be_bytes());
    assert_eq!(&bundle[2..2 + first.len()], first.as_slice());
}

#[test]
fn an_entry_over_65535_bytes_cannot_be_bundled() {
    let fits = vec![7u8; MAX_ENTRY_BYTES];
    let bundle = entry_bundle([(0, fits.as_slice())]).unwrap();
    assert_eq!(&bundle[..2], &[0xff, 0xff]);
    assert_eq!(parse_entry_bundle(&bundle).unwrap(), [fits.as_slice()]);
    let over = vec![7u8; MAX_ENTRY_BYTES + 1];
    let small = entry(5);
    let refused = entry_bundle([(5, small.as_slice()), (6, over.as_slice())]);
    assert_eq!(
        refused,
        Err(TileError::EntryTooLarge {
            offset: 6,
            entry_bytes: 65_536
        })
    );
    let message = refused.unwrap_err().to_string();
    assert!(
        message.contains("offset 6") && message.contains("65536 bytes"),
        "{message}"
    );
}

#[test]
fn cut_bundles_are_refused() {
    assert!(parse_entry_bundle(&[]).unwrap().is_empty());
    for bad in [&[0u8][..], &[0, 5, 1, 2], &[0, 1, 9, 0]] {
        assert!(matches!(
            parse_entry_bundle(bad),
            Err(TileError::Bundle { .. })
        ));
    }
}

fn path_like() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("tile/".to_owned()),
            Just("entries/".to_owned()),
            Just("x".to_owned()),
            Just(".p/".to_owned()),
            Just("/".to_owned()),
            "[0-9]{1,4}",
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_tile_has_one_path(level in 0u8..=63, index: u64, width in 1u16..=256) {
        let t = TileId::new(level, index, width).unwrap();
        prop_assert_eq!(parse_tile_path(&t.path()), Ok(TilePath::Hashes(t)));
        let bundle = TileId::new(0, index, width).unwrap();
        let entries = bundle.entries_path().unwrap();
        prop_assert_eq!(parse_tile_path(&entries), Ok(TilePath::Entries(bundle)));
    }

    #[test]
    fn a_path_accepted_is_the_tiles_own(text in prop_oneof![path_like(), ".{0,80}"]) {
        match parse_tile_path(&text) {
            Ok(TilePath::Hashes(t)) => prop_assert_eq!(t.path(), text),
            Ok(TilePath::Entries(t)) => prop_assert_eq!(t.entries_path(), Some(text)),
            Err(_) => {}
        }
    }

    #[test]
    fn garbage_bundles_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(entries) = parse_entry_bundle(&bytes) {
            let again = entry_bundle((0..).zip(entries.iter().copied())).unwrap();
            prop_assert_eq!(again, bytes);
        }
    }

}

proptest! {
    // Each case may hash a level-1 tile naively (65,536 leaves).
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn tiles_of_large_trees_check_against_their_root(
        size in 1u64..=BIG,
        pick: u64,
        flip: usize,
    ) {
        let (leaves, tree) = big();
        let root = root_at(tree, size).unwrap();
        let tiles: Vec<TileId> = tiles_of(size).collect();
        let t = tiles[(pick % tiles.len() as u64) as usize];
        let hashes = read_tile(tree, t).unwrap();
        if t.level() > 0 || !t.is_full() {
            prop_assert_eq!(&hashes, &naive_tile(leaves, t));
        }
        prop_assert!(check_tile(tree, t, &hashes, size, &root).is_ok());
        let mut forged = hashes.clone();
        forged[flip % hashes.len()].0[flip % 32] ^= 0x80;
        let refused = check_tile(tree, t, &forged, size, &root);
        let mismatch = matches!(refused, Err(TileCheckError::Mismatch { .. }));
        prop_assert!(mismatch, "{} at {}: {:?}", t, size, refused);
    }
}
