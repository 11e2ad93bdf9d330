//! Complete nodes read from a log's tiles (C2SP tlog-tiles), fetched on demand: a
//! [`NodeSource`] over a tiled log, so that a monitor or a client computes inclusion and
//! consistency proofs of a remote log from its tiles alone.
//!
//! Node `(level, index)` lies in tile level `level / 8`: at a tile level it is one hash of a
//! tile, above it the root of `2^(level % 8)` neighbouring hashes of one tile (never two:
//! the spans are aligned and divide 256). Each tile is fetched once, at the width the tree of
//! [`TileNodes::tree_size`] gives it. Fetched bytes are not trusted: a proof computed from
//! them means something only once verified against signed roots ([`crate::verify`]).

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::hash::Hash;
use crate::tiles::{
    fold_perfect, parse_tile, tile_in_tree, TileError, TileId, TILE_HEIGHT, TILE_WIDTH,
};
use crate::tree::{NodeSource, RangeError};

/// Why a node could not be read from the tiles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileNodesError<E> {
    /// The node is not in the tree.
    #[error(transparent)]
    Range(#[from] RangeError),
    /// Fetching a tile failed.
    #[error("fetching tile {tile}: {source}")]
    Fetch {
        /// The tile.
        tile: TileId,
        /// The fetcher's error.
        source: E,
    },
    /// A fetched tile has the wrong length.
    #[error(transparent)]
    Tile(#[from] TileError),
}

/// The complete nodes of the tree of `tree_size` leaves, from tiles `fetch` returns (the
/// bytes of a tile, `width * 32`).
pub struct TileNodes<F> {
    tree_size: u64,
    fetch: F,
    tiles: RefCell<BTreeMap<TileId, Vec<Hash>>>,
}

impl<F, E> TileNodes<F>
where
    F: Fn(TileId) -> Result<Vec<u8>, E>,
{
    /// The nodes of the tree of `tree_size` leaves, fetching tiles with `fetch`.
    pub fn new(tree_size: u64, fetch: F) -> Self {
        Self {
            tree_size,
            fetch,
            tiles: RefCell::new(BTreeMap::new()),
        }
    }

    /// The tree size the tiles are read at.
    #[must_use]
    pub fn tree_size(&self) -> u64 {
        self.tree_size
    }

    /// Tiles fetched so far.
    #[must_use]
    pub fn fetched(&self) -> usize {
        self.tiles.borrow().len()
    }

    /// The hashes of `tile`, fetched once.
    fn hashes(&self, tile: TileId) -> Result<Vec<Hash>, TileNodesError<E>> {
        if let Some(hashes) = self.tiles.borrow().get(&tile) {
            return Ok(hashes.clone());
        }
        let bytes = (self.fetch)(tile).map_err(|source| TileNodesError::Fetch { tile, source })?;
        let hashes = parse_tile(tile, &bytes)?;
        self.tiles.borrow_mut().insert(tile, hashes.clone());
        Ok(hashes)
    }
}

impl<F, E> NodeSource for TileNodes<F>
where
    F: Fn(TileId) -> Result<Vec<u8>, E>,
{
    type Error = TileNodesError<E>;

    fn leaf_count(&self) -> u64 {
        self.tree_size
    }

    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
        let outside = RangeError::TooLarge {
            tree_size: index
                .saturating_add(1)
                .checked_shl(u32::from(level))
                .unwrap_or(u64::MAX),
            available: self.tree_size,
        };
        let rise = level % TILE_HEIGHT;
        let span = 1u64 << rise;
        let first = index.checked_mul(span).ok_or(outside)?;
        let width = u64::from(TILE_WIDTH);
        let tile =
            tile_in_tree(level / TILE_HEIGHT, first / width, self.tree_size).ok_or(outside)?;
        let hashes = self.hashes(tile)?;
        let start = usize::try_from(first % width).map_err(|_| outside)?;
        let end = start + usize::try_from(span).map_err(|_| outside)?;
        let part = hashes.get(start..end).ok_or(outside)?;
        Ok(fold_perfect(part))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::tiles::read_tile;
    use crate::tree::{consistency_proof, inclusion_proof, MemoryTree};

    #[test]
    fn proofs_from_tiles_are_the_proofs_of_the_tree() {
        let leaves: Vec<Hash> = (0u32..70_000)
            .map(|i| leaf_hash(&i.to_be_bytes()))
            .collect();
        let tree = MemoryTree::from_leaves(leaves.iter().copied());
        for (old, new) in [
            (1, 2),
            (3, 7),
            (255, 256),
            (256, 257),
            (300, 65_537),
            (1000, 70_000),
        ] {
            let small = MemoryTree::from_leaves(leaves[..new as usize].iter().copied());
            let fetch = |tile: TileId| -> Result<Vec<u8>, RangeError> {
                Ok(crate::tiles::tile_bytes(&read_tile(&small, tile)?))
            };
            let nodes = TileNodes::new(new, fetch);
            assert_eq!(
                consistency_proof(&nodes, old, new).unwrap(),
                consistency_proof(&tree, old, new).unwrap(),
                "{old} -> {new}"
            );
            assert_eq!(
                inclusion_proof(&nodes, old - 1, new).unwrap(),
                inclusion_proof(&tree, old - 1, new).unwrap()
            );
            // O(log n) tiles: at most two per tile level and side.
            assert!(nodes.fetched() <= 12, "{old} -> {new}: {}", nodes.fetched());
        }
    }

    #[test]
    fn fetch_failures_and_short_tiles_are_errors() {
        let failing = TileNodes::new(10, |_| Err::<Vec<u8>, _>("down"));
        assert!(matches!(
            failing.node(0, 3),
            Err(TileNodesError::Fetch { source: "down", .. })
        ));
        let short = TileNodes::new(10, |_| Ok::<_, ()>(vec![0; 31]));
        assert!(matches!(short.node(0, 3), Err(TileNodesError::Tile(_))));
        let empty = TileNodes::new(10, |_| Ok::<_, ()>(vec![0; 320]));
        assert!(matches!(empty.node(0, 10), Err(TileNodesError::Range(_))));
        assert!(empty.node(1, 4).is_ok());
    }
}
