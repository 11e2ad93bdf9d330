//! A stream's C2SP tlog-tiles view (docs/PROOFS.md, "The tiles view"): its tiles, read from
//! the tree's side files and checked before they are handed out, and its entry bundles, from
//! verified reads of the log.
//!
//! A tile is evidence like a proof, so it gets a proof's checks (module `proofs`): the
//! tree's root at the size asked for is the trusted one (the log's), and the tile's hashes,
//! with the other nodes of the side files, must lead to it
//! ([`kimberlite_proof::check_tile`]); otherwise [`Error::TreeDamaged`]. An entry bundle is
//! made from the events themselves (durable, chain-checked), never from the side files.

use kimberlite_proof::{
    check_tile, entry_bundle, event_leaf_bytes, tile_bytes, Hash, TileCheckError, TileError,
    TileId, MAX_ENTRY_BYTES,
};
use kimberlite_types::{Offset, StreamId};

use crate::error::{Error, Result, TreeEvidence};
use crate::proofs::{refused, stream_tree, trusted_root, Refusal};
use crate::store::Kimberlite;

impl Kimberlite {
    /// The bytes of `tile` of stream `id`'s tree (its hashes, 32 bytes each, as tlog-tiles
    /// serves them), checked against the trusted root of the tree of `tree_size` events: O(W)
    /// node reads and O(W + log n) hashes. Any tile made of complete nodes of that tree is
    /// given, a partial tile of an older tree size too.
    ///
    /// Errors: [`Error::Tile`] when the tile is not in the tree of `tree_size`;
    /// [`Error::TreeRange`] when `tree_size` is past the stream's durable end;
    /// [`Error::TreeDamaged`] when the stored hashes do not lead to the trusted root;
    /// [`Error::TreeUnavailable`] when the side files failed or trees are disabled.
    ///
    /// # Examples
    ///
    /// ```
    /// use kimberlite::{proof, ExpectedOffset, Kimberlite};
    /// let store = Kimberlite::in_memory();
    /// let id = store.create_stream("audit")?;
    /// store.append(id, ["a", "b", "c"], ExpectedOffset::NoStream)?;
    /// let head = store.tree_head(id)?;
    /// let tile = proof::tile_in_tree(0, 0, head.tree_size).expect("a partial tile of width 3");
    /// assert_eq!(tile.path(), "tile/0/000.p/3");
    /// let bytes = store.tile(id, head.tree_size, tile)?;
    /// assert_eq!(&bytes[32..64], proof::event_leaf_hash(1, b"b").as_bytes());
    /// # Ok::<(), kimberlite::Error>(())
    /// ```
    pub fn tile(&self, id: StreamId, tree_size: u64, tile: TileId) -> Result<Vec<u8>> {
        self.trust_tree(id)?;
        let state = self.read_state();
        let name = state.name_of(id)?;
        let trees = Self::trees(&state, id, name, tree_size)?;
        let tree = stream_tree(&trees, id, name, tree_size)?;
        let (Some(level), Some(first), true) =
            (tile.node_level(), tile.first_node(), tile.fits(tree_size))
        else {
            return Err(Error::Tile {
                name: name.to_owned(),
                source: TileError::NotInTree { tile, tree_size },
            });
        };
        let hashes = || -> Result<Vec<Hash>, Refusal> {
            let hashes = tree.nodes(level, first, u64::from(tile.width()))?;
            let root = trusted_root(tree, tree_size)?;
            check_tile(tree, tile, &hashes, tree_size, &root).map_err(|error| match error {
                TileCheckError::Source(error) => Refusal::Tree(error),
                other => Refusal::Damaged(format!(
                    "the stored tile does not lead to the tree's root ({other})"
                )),
            })?;
            Ok(hashes)
        };
        let evidence = TreeEvidence::Tile { tile, tree_size };
        let hashes = hashes().map_err(|refusal| refused(name, id, evidence, refusal))?;
        Ok(tile_bytes(&hashes))
    }

    /// The entry bundle `index` of stream `id`, `width` entries (256 when full): each event's
    /// leaf bytes ([`kimberlite_proof::event_leaf_bytes`], the entry its leaf hash is the hash
    /// of) with a big-endian `u16` length before it, from a verified read of the durable log.
    ///
    /// Errors: [`Error::Tile`] for a width outside 1..=256, a bundle past the stream's
    /// durable end, or an event whose leaf bytes are over 65,535 bytes
    /// ([`TileError::EntryTooLarge`], naming its offset and size: such a bundle is never
    /// served, the event's tile and proofs are); [`Error::Storage`] when the log is damaged.
    pub fn entry_bundle(&self, id: StreamId, index: u64, width: u16) -> Result<Vec<u8>> {
        let (name, durable) = {
            let state = self.read_state();
            (state.name_of(id)?.to_owned(), state.durable_size(id))
        };
        let tile_error = |source| Error::Tile {
            name: name.clone(),
            source,
        };
        let bundle = TileId::new(0, index, width).map_err(tile_error)?;
        let not_in_tree = || {
            tile_error(TileError::NotInTree {
                tile: bundle,
                tree_size: durable,
            })
        };
        let start = match bundle.leaf_range() {
            Some((start, end)) if end <= durable => start,
            _ => return Err(not_in_tree()),
        };
        let width_entries = usize::from(width);
        let mut entries = Vec::with_capacity(width_entries);
        let (mut next, mut read_bytes) = (start, 0u64);
        while entries.len() < width_entries {
            // A verified read goes on until its byte budget is spent: a budget of the entries
            // left times the mean payload read so far (1 byte at first) keeps a bundle from
            // reading and checking far past its last event.
            let left = (width_entries - entries.len()) as u64;
            let mean = (read_bytes / (next - start).max(1)).max(1);
            let page = self.read(id, Offset::new(next), left.saturating_mul(mean))?;
            let pushed_before = entries.len();
            for event in page {
                if event.offset.as_u64() != next || entries.len() == width_entries {
                    break;
                }
                let entry = event_leaf_bytes(next, &event.payload);
                if entry.len() > MAX_ENTRY_BYTES {
                    // Refused as soon as seen: a bundle never holds more than 256 entries
                    // of at most 65,535 bytes.
                    return Err(tile_error(TileError::EntryTooLarge {
                        offset: next,
                        entry_bytes: entry.len() as u64,
                    }));
                }
                read_bytes += event.payload.len() as u64;
                entries.push((next, entry));
                next += 1;
            }
            if entries.len() == pushed_before {
                break;
            }
        }
        if entries.len() != usize::from(width) {
            return Err(not_in_tree());
        }
        entry_bundle(
            entries
                .iter()
                .map(|(offset, entry)| (*offset, entry.as_slice())),
        )
        .map_err(tile_error)
    }
}
