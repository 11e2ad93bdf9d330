//! Interop: a stream's tlog-tiles view (checkpoint, tiles, entry bundles) read by
//! independent C2SP implementations, `signed_note` and `tlog_tiles` (a port of Go's
//! sumdb/tlog), as an unmodified client would follow it (issue 18).
//!
//! `tlog_tiles`' `TileHashReader` was seen answering with a hash from a tile it never
//! authenticated, so nothing here trusts it: the test authenticates every tile itself (the
//! root recomputed from the level-0 tiles must be the signed one, each higher tile must hash
//! the full tiles below it), and every proof built from the tiles is checked against the
//! signed root. Altered tiles must fail that.

use std::cell::RefCell;
use std::collections::HashMap;

use kimberlite::proof::{
    event_leaf_hash, parse_entry_bundle, tiles_of, verify_consistency, verify_inclusion,
    Checkpoint, Hash, SignerKey, TileId,
};
use kimberlite::{ExpectedOffset, Kimberlite, StreamId};
use signed_note::{Note, StandardVerifier, VerifierList};
use tlog_tiles::{Tile, TileHashReader, TileReader};

/// The origin of the checkpoints, and the name of the key that signs them.
const ORIGIN: &str = "example.org/kimberlite/audit";
/// Tile height in `tlog_tiles` (which also reads Go sumdb tiles of other heights).
const HEIGHT: u8 = 8;

fn payload(offset: u64) -> String {
    format!("event {offset}")
}

/// A store with stream `audit` of `sizes.last()` events; a checkpoint signed at each size.
fn store_with_checkpoints(
    dir: &std::path::Path,
    sizes: &[u64],
    signer: &SignerKey,
) -> (Kimberlite, StreamId, Vec<String>) {
    let store = Kimberlite::open(dir).unwrap();
    let id = store.create_stream("audit").unwrap();
    let mut notes = Vec::new();
    let mut next = 0u64;
    for &size in sizes {
        while next < size {
            let end = (next + 5_000).min(size);
            store
                .append(id, (next..end).map(payload), ExpectedOffset::Any)
                .unwrap();
            next = end;
        }
        let head = store.tree_head(id).unwrap();
        assert_eq!(head.tree_size, size);
        let checkpoint = Checkpoint {
            origin: ORIGIN.into(),
            tree_size: size,
            root: head.root,
            extensions: vec![],
        };
        notes.push(signer.sign(&checkpoint.to_text()).unwrap());
    }
    (store, id, notes)
}

/// The checkpoint as `signed_note` and `tlog_tiles` read it: signature by the key whose name
/// is the origin, then size and root.
fn open_checkpoint(note: &str, vkey: &str) -> tlog_tiles::Checkpoint {
    let verifier = StandardVerifier::new(vkey).unwrap();
    let known = VerifierList::new(vec![Box::new(verifier)]);
    let note = Note::from_bytes(note.as_bytes()).unwrap();
    let (verified, _) = note.verify(&known).unwrap();
    assert_eq!(verified.len(), 1);
    assert_eq!(verified[0].name(), ORIGIN);
    let checkpoint = tlog_tiles::Checkpoint::from_bytes(note.text()).unwrap();
    assert_eq!(checkpoint.origin(), ORIGIN);
    checkpoint
}

/// Serves the store's tiles to `tlog_tiles`, optionally altering the tile at one path, and
/// counts what it served.
struct StoreTiles<'a> {
    store: &'a Kimberlite,
    id: StreamId,
    tree_size: u64,
    altered: Option<String>,
    served: RefCell<HashMap<String, Vec<u8>>>,
}

impl StoreTiles<'_> {
    /// The bytes at a C2SP path, as a tiles server gives them.
    fn get(&self, tile: TileId) -> Vec<u8> {
        let mut bytes = self.store.tile(self.id, self.tree_size, tile).unwrap();
        if self.altered.as_deref() == Some(tile.path().as_str()) {
            bytes[0] ^= 1;
        }
        self.served.borrow_mut().insert(tile.path(), bytes.clone());
        bytes
    }
}

impl TileReader for StoreTiles<'_> {
    fn height(&self) -> u8 {
        HEIGHT
    }

    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|tile| {
                let ours = TileId::new(tile.level(), tile.level_index(), tile.width() as u16)
                    .map_err(|_| tlog_tiles::Error::InvalidTile)?;
                // The same resource: the sumdb path has the height as its second element.
                assert_eq!(tile.path().replacen("tile/8/", "tile/", 1), ours.path());
                Ok(self.get(ours))
            })
            .collect()
    }

    fn save_tiles(&self, _tiles: &[Tile], _data: &[Vec<u8>]) {}
}

/// RFC 9162's `MTH` over `leaves`, with `tlog_tiles`' node hash.
fn mth(leaves: &[tlog_tiles::Hash]) -> tlog_tiles::Hash {
    match leaves.len() {
        0 => tlog_tiles::Hash(kimberlite::proof::empty_root().0),
        1 => leaves[0],
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            tlog_tiles::node_hash(mth(&leaves[..k]), mth(&leaves[k..]))
        }
    }
}

/// Authenticates every tile of the tree of `tree_size` as fetched from `tiles`, by the test's
/// own hashing: the leaves of the level-0 tiles hash to `root`, and each hash of a higher
/// tile is `tlog_tiles`' subtree hash of the full tile below it. Errs naming the first tile
/// that fails.
fn authenticate_tiles(tiles: &StoreTiles, tree_size: u64, root: Hash) -> Result<(), String> {
    let all: Vec<TileId> = tiles_of(tree_size).collect();
    let mut leaves = Vec::new();
    for tile in all.iter().filter(|t| t.level() == 0) {
        let bytes = tiles.get(*tile);
        leaves.extend(
            bytes
                .chunks(32)
                .map(|h| tlog_tiles::Hash(h.try_into().unwrap())),
        );
    }
    if mth(&leaves).0 != root.0 {
        return Err("the level-0 tiles do not hash to the signed root".into());
    }
    for tile in all.iter().filter(|t| t.level() > 0) {
        let bytes = tiles.get(*tile);
        for (i, hash) in (0u64..).zip(bytes.chunks(32)) {
            let below = TileId::new(tile.level() - 1, tile.index() * 256 + i, 256).unwrap();
            let subtree = Tile::subtree_hash(&tiles.get(below));
            if subtree.0 != hash {
                return Err(format!("hash {i} of {tile} is not the hash of {below}"));
            }
        }
    }
    Ok(())
}

/// The C2SP paths of every tile are the ones `tlog_tiles` computes (less the height), and the
/// tiles of a tree size are the ones it says a log publishes.
fn paths_agree(tree_size: u64) {
    let mut theirs: Vec<String> = Tile::new_tiles(HEIGHT, 0, tree_size)
        .iter()
        .map(|t| t.path().replacen("tile/8/", "tile/", 1))
        .collect();
    let mut ours: Vec<String> = tiles_of(tree_size).map(|t| t.path()).collect();
    theirs.sort();
    ours.sort();
    assert_eq!(ours, theirs, "tiles of {tree_size}");
    for tile in tiles_of(tree_size).filter(|t| t.level() == 0) {
        let mut data = Tile::new(HEIGHT, 0, tile.index(), u32::from(tile.width()), false);
        data.set_is_data();
        let theirs = data.path().replacen("tile/8/data/", "tile/entries/", 1);
        assert_eq!(tile.entries_path().unwrap(), theirs);
        let parsed = Tile::from_path(&tile.path().replacen("tile/", "tile/8/", 1)).unwrap();
        assert_eq!(
            (parsed.level_index(), parsed.width()),
            (tile.index(), u32::from(tile.width()))
        );
    }
}

#[test]
fn an_independent_c2sp_client_follows_a_stream() {
    let dir = tempfile::tempdir().unwrap();
    let signer = SignerKey::from_seed(ORIGIN, [42; 32]).unwrap();
    let vkey = signer.verifier().to_text();
    let sizes = [1_000u64, 70_000];
    let (store, id, notes) = store_with_checkpoints(dir.path(), &sizes, &signer);
    let mut roots = Vec::new();
    for (&size, note) in sizes.iter().zip(&notes) {
        let checkpoint = open_checkpoint(note, &vkey);
        assert_eq!(checkpoint.size(), size);
        let root = Hash(checkpoint.hash().0);
        roots.push(root);
        paths_agree(size);
        let tiles = StoreTiles {
            store: &store,
            id,
            tree_size: size,
            altered: None,
            served: RefCell::default(),
        };
        authenticate_tiles(&tiles, size, root).unwrap();

        // Entries: each hashes, with tlog_tiles' record hash, to its level-0 tile hash.
        for tile in tiles_of(size).filter(|t| t.level() == 0) {
            let bundle = store.entry_bundle(id, tile.index(), tile.width()).unwrap();
            let entries = parse_entry_bundle(&bundle).unwrap();
            let hashes = tiles.get(tile);
            for (entry, hash) in entries.iter().zip(hashes.chunks(32)) {
                assert_eq!(tlog_tiles::record_hash(entry).0, hash);
            }
            assert_eq!(entries.len(), usize::from(tile.width()));
        }

        // Inclusion proofs built by tlog_tiles from our tiles, checked by us against the
        // signed root, with the leaf recomputed from the event.
        let reader = TileHashReader::new(size, *checkpoint.hash(), &tiles);
        for offset in [0, 1, 255, 256, size / 2, size - 2, size - 1] {
            let proof = tlog_tiles::prove_record(size, offset, &reader).unwrap();
            let proof: Vec<Hash> = proof.iter().map(|h| Hash(h.0)).collect();
            let leaf = event_leaf_hash(offset, payload(offset).as_bytes());
            verify_inclusion(&leaf, offset, size, &proof, &root).unwrap();
        }
    }
    // A consistency proof built by tlog_tiles, checked by us between the two signed roots.
    let tiles = StoreTiles {
        store: &store,
        id,
        tree_size: sizes[1],
        altered: None,
        served: RefCell::default(),
    };
    let reader = TileHashReader::new(sizes[1], tlog_tiles::Hash(roots[1].0), &tiles);
    let proof = tlog_tiles::prove_tree(sizes[1], sizes[0], &reader).unwrap();
    let proof: Vec<Hash> = proof.iter().map(|h| Hash(h.0)).collect();
    verify_consistency(sizes[0], sizes[1], &roots[0], &roots[1], &proof).unwrap();
}

#[test]
fn altered_tiles_and_checkpoints_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let signer = SignerKey::from_seed(ORIGIN, [42; 32]).unwrap();
    let vkey = signer.verifier().to_text();
    let size = 70_000u64;
    let (store, id, notes) = store_with_checkpoints(dir.path(), &[size], &signer);
    let root = Hash(open_checkpoint(&notes[0], &vkey).hash().0);

    // A checkpoint changed after signing fails signed_note's verification.
    let forged = notes[0].replacen("70000", "70001", 1);
    let note = Note::from_bytes(forged.as_bytes()).unwrap();
    let known = VerifierList::new(vec![Box::new(StandardVerifier::new(&vkey).unwrap())]);
    assert!(note.verify(&known).is_err());

    for altered in [
        "tile/0/000",
        "tile/0/100",
        "tile/0/273.p/112",
        "tile/1/000",
        "tile/1/001.p/17",
        "tile/2/000.p/1",
    ] {
        let tiles = StoreTiles {
            store: &store,
            id,
            tree_size: size,
            altered: Some(altered.into()),
            served: RefCell::default(),
        };
        let refused = authenticate_tiles(&tiles, size, root);
        assert!(refused.is_err(), "{altered} accepted");
        assert!(tiles.served.borrow().contains_key(altered));
        // A proof tlog_tiles builds through the altered tile (its first hash is on the path
        // of the leaf beside it) never verifies against the signed root.
        let tile = match kimberlite::proof::parse_tile_path(altered).unwrap() {
            kimberlite::proof::TilePath::Hashes(tile) => tile,
            other => panic!("{other:?}"),
        };
        let (start, _) = tile.leaf_range().unwrap();
        let span = 1u64 << (8 * tile.level());
        let offset = start + span;
        let reader = TileHashReader::new(size, tlog_tiles::Hash(root.0), &tiles);
        if let Ok(proof) = tlog_tiles::prove_record(size, offset, &reader) {
            let proof: Vec<Hash> = proof.iter().map(|h| Hash(h.0)).collect();
            let leaf = event_leaf_hash(offset, payload(offset).as_bytes());
            assert!(
                verify_inclusion(&leaf, offset, size, &proof, &root).is_err(),
                "a proof through altered {altered} verified"
            );
        }
    }
}
