//! The C2SP tlog-tiles view of a tree (`c2sp.org/tlog-tiles`): tile coordinates and paths,
//! which tiles a tree of a given size has, a tile's bytes, entry bundles, and the check that a
//! tile's hashes belong to a tree root.
//!
//! # Tiles
//!
//! Tile `N` of level `L` holds the complete nodes `256 * N .. 256 * N + W` of tree level `8 * L`
//! (in [`crate::tree`]'s addresses), each 32 bytes, back to back: `W` is 256 for a full tile,
//! 1..=255 for a partial one (the rightmost tile of a level whose node count is not a multiple
//! of 256). Level 0 holds leaf hashes. A tile never changes once it exists: a partial tile of
//! width `W` stays valid in every larger tree, beside the wider tiles that follow it.
//!
//! ```text
//! tile/<L>/<N>[.p/<W>]          hashes: W * 32 bytes
//! tile/entries/<N>[.p/<W>]      the W entries under level-0 tile N, each as
//!                               [len: u16 big-endian][entry bytes]
//! ```
//!
//! `<L>` is decimal (0..=63, no leading zero), `<N>` is split in groups of three digits, every
//! group but the last prefixed with `x` (1234067 is `x001/x234/067`), `<W>` decimal 1..=255
//! without leading zero. Each tile has exactly one path: [`parse_tile_path`] refuses any other
//! spelling (`x000/005` for 5, `01` for level 1, `.p/256`) with a [`TilePathError`].
//!
//! # Entries
//!
//! An entry is what a level-0 hash is the leaf hash of: for a Kimberlite stream, the event's
//! leaf bytes ([`crate::event_leaf_bytes`]). A bundle prefixes each entry with its length as a
//! big-endian `u16`, so an entry over 65,535 bytes cannot be bundled:
//! [`entry_bundle`] refuses the whole bundle with [`TileError::EntryTooLarge`] naming the
//! offset and size (its tile and proofs are still served; only the bundle is not).
//!
//! Kept from the spec: paths, widths, byte layouts, SHA-256 as RFC 9162. Dropped: pruning
//! (a stream keeps every event).

use crate::hash::{node_hash, Hash, HASH_LEN};
use crate::tree::{subtree_root, NodeSource, RangeError};

/// Tree levels one tile spans: tile level `L` holds nodes of tree level `8 * L`.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes in a full tile (and entries in a full bundle).
pub const TILE_WIDTH: u16 = 1 << TILE_HEIGHT;
/// Largest tile level a path may name.
pub const MAX_TILE_LEVEL: u8 = 63;
/// Largest entry an entry bundle can hold, in bytes (its length prefix is a `u16`).
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;
/// Longest tile path [`parse_tile_path`] reads: `tile/entries/`, the 7 groups of
/// `u64::MAX` and `.p/255` take 53 bytes.
const MAX_PATH_BYTES: usize = 64;
/// Digits per group of a path's `<N>`.
const GROUP: u64 = 1000;

/// A tile: level, index within the level, width in hashes (256 when full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    level: u8,
    index: u64,
    width: u16,
}

/// Why a tile or a bundle cannot be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    /// A level above [`MAX_TILE_LEVEL`].
    #[error("tile level {level} is not in 0..=63")]
    Level {
        /// The level asked for.
        level: u8,
    },
    /// A width of 0 or above 256.
    #[error("tile width {width} is not in 1..=256")]
    Width {
        /// The width asked for.
        width: u16,
    },
    /// The tile's hashes are not all complete nodes of the tree of that size.
    #[error("tile {} is not in the tree of {tree_size} entries", tile.path())]
    NotInTree {
        /// The tile asked for.
        tile: TileId,
        /// The tree size.
        tree_size: u64,
    },
    /// An entry too large for a bundle's 16-bit length prefix.
    #[error(
        "the entry at offset {offset} is {entry_bytes} bytes, over the 65,535 bytes an entry \
         bundle can hold: its bundle cannot be served (its tiles and proofs can)"
    )]
    EntryTooLarge {
        /// The entry's offset (leaf index).
        offset: u64,
        /// The entry's size in bytes.
        entry_bytes: u64,
    },
    /// Tile bytes that are not `width` hashes, or hashes not `width` long.
    #[error("tile {} needs {} bytes, got {got_bytes}", tile.path(), u64::from(tile.width) * 32)]
    Length {
        /// The tile.
        tile: TileId,
        /// The bytes given.
        got_bytes: u64,
    },
    /// An entry bundle that is not length-prefixed entries.
    #[error("malformed entry bundle: {reason}")]
    Bundle {
        /// What is wrong.
        reason: &'static str,
    },
}

/// Why a path is not a tile path; each tile has exactly one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TilePathError {
    /// Longer than any tile path.
    #[error("not a tile path: too long")]
    TooLong,
    /// Not `tile/<L>/...` or `tile/entries/...`.
    #[error("not a tile path: it must start with tile/<level>/ or tile/entries/")]
    Prefix,
    /// `<L>` not decimal 0..=63 without leading zero.
    #[error("not a tile path: the level must be 0..=63 in decimal, without leading zero")]
    Level,
    /// `<N>` not groups of three digits, `x` before all but the last, without a leading
    /// `x000` group.
    #[error("not a tile path: the index must be groups of three digits, x before all but the last, no leading x000")]
    Index,
    /// `<N>` above `u64::MAX`.
    #[error("not a tile path: the index is above 2^64 - 1")]
    IndexTooLarge,
    /// `.p/<W>` with `<W>` not decimal 1..=255 without leading zero, or anything after it.
    #[error("not a tile path: a partial width must be 1..=255 in decimal, without leading zero, at the end")]
    Width,
}

/// What a tile path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TilePath {
    /// `tile/<L>/<N>[.p/<W>]`: hashes.
    Hashes(TileId),
    /// `tile/entries/<N>[.p/<W>]`: the entry bundle under level-0 tile `N` (level 0 here).
    Entries(TileId),
}

impl TileId {
    /// Tile `index` of `level`, `width` hashes wide.
    ///
    /// Errors: [`TileError::Level`] above 63, [`TileError::Width`] outside 1..=256.
    pub fn new(level: u8, index: u64, width: u16) -> Result<Self, TileError> {
        if level > MAX_TILE_LEVEL {
            return Err(TileError::Level { level });
        }
        if width == 0 || width > TILE_WIDTH {
            return Err(TileError::Width { width });
        }
        Ok(Self {
            level,
            index,
            width,
        })
    }

    /// The tile's level.
    #[must_use]
    pub fn level(&self) -> u8 {
        self.level
    }

    /// The tile's index within its level.
    #[must_use]
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The tile's width in hashes: 256 when full.
    #[must_use]
    pub fn width(&self) -> u16 {
        self.width
    }

    /// True for a full tile (256 hashes).
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The tree level of the tile's hashes (`8 * level`); `None` above 63, where no tree of
    /// `u64` leaves has a node.
    #[must_use]
    pub fn node_level(&self) -> Option<u8> {
        let level = self.level.checked_mul(TILE_HEIGHT)?;
        (level <= crate::tree::MAX_LEVEL).then_some(level)
    }

    /// The index, in its tree level, of the tile's first hash (`256 * index`).
    #[must_use]
    pub fn first_node(&self) -> Option<u64> {
        self.index.checked_mul(u64::from(TILE_WIDTH))
    }

    /// The leaves `[start, end)` the tile's hashes cover; `None` when they do not fit in `u64`.
    #[must_use]
    pub fn leaf_range(&self) -> Option<(u64, u64)> {
        let level = self.node_level()?;
        let first = u128::from(self.first_node()?);
        let start = first << level;
        let end = (first + u128::from(self.width)) << level;
        Some((u64::try_from(start).ok()?, u64::try_from(end).ok()?))
    }

    /// True when every hash of the tile is a complete node of the tree of `tree_size` leaves.
    /// A partial tile fits every tree at least as large as the one it was cut from.
    #[must_use]
    pub fn fits(&self, tree_size: u64) -> bool {
        self.leaf_range().is_some_and(|(_, end)| end <= tree_size)
    }

    /// The tile's path: `tile/<L>/<N>[.p/<W>]`.
    #[must_use]
    pub fn path(&self) -> String {
        format!("tile/{}/{}", self.level, self.index_path())
    }

    /// The path of the entry bundle under this tile's leaves: `tile/entries/<N>[.p/<W>]`;
    /// `None` above level 0.
    #[must_use]
    pub fn entries_path(&self) -> Option<String> {
        (self.level == 0).then(|| format!("tile/entries/{}", self.index_path()))
    }

    /// `<N>[.p/<W>]`.
    fn index_path(&self) -> String {
        let mut groups = vec![format!("{:03}", self.index % GROUP)];
        let mut rest = self.index / GROUP;
        while rest > 0 {
            groups.push(format!("x{:03}", rest % GROUP));
            rest /= GROUP;
        }
        groups.reverse();
        let mut path = groups.join("/");
        if !self.is_full() {
            path.push_str(&format!(".p/{}", self.width));
        }
        path
    }
}

impl std::fmt::Display for TileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path())
    }
}

/// Parses `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]` (relative to the log's prefix),
/// refusing every other spelling.
pub fn parse_tile_path(path: &str) -> Result<TilePath, TilePathError> {
    if path.len() > MAX_PATH_BYTES {
        return Err(TilePathError::TooLong);
    }
    let mut parts = path.split('/');
    if parts.next() != Some("tile") {
        return Err(TilePathError::Prefix);
    }
    let level = match parts.next() {
        Some("entries") => None,
        Some(level) => Some(parse_decimal(level, 0..=63).ok_or(TilePathError::Level)?),
        None => return Err(TilePathError::Prefix),
    };
    let (index, width) = parse_index(parts)?;
    let make = |level: u64| {
        TileId::new(u8::try_from(level).unwrap_or(u8::MAX), index, width)
            .map_err(|_| TilePathError::Width)
    };
    match level {
        None => make(0).map(TilePath::Entries),
        Some(level) => make(level).map(TilePath::Hashes),
    }
}

/// `<N>[.p/<W>]` from the path's elements after the level.
fn parse_index<'a>(parts: impl Iterator<Item = &'a str>) -> Result<(u64, u16), TilePathError> {
    let parts: Vec<&str> = parts.collect();
    let (groups, width) = match parts.iter().position(|part| part.ends_with(".p")) {
        Some(at) => {
            let (Some(last), Some(width), true) =
                (parts.get(at), parts.get(at + 1), at + 2 == parts.len())
            else {
                return Err(TilePathError::Width);
            };
            let width = parse_decimal(width, 1..=255).ok_or(TilePathError::Width)?;
            let mut groups = parts.get(..at).unwrap_or_default().to_vec();
            groups.push(last.strip_suffix(".p").unwrap_or(last));
            (
                groups,
                u16::try_from(width).map_err(|_| TilePathError::Width)?,
            )
        }
        None => (parts, TILE_WIDTH),
    };
    let Some((last, leading)) = groups.split_last() else {
        return Err(TilePathError::Index);
    };
    if leading.first().is_some_and(|first| *first == "x000") {
        return Err(TilePathError::Index);
    }
    let mut index = 0u64;
    for group in leading
        .iter()
        .map(|g| g.strip_prefix('x'))
        .chain([Some(*last)])
    {
        let digits = group.ok_or(TilePathError::Index)?;
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TilePathError::Index);
        }
        let value: u64 = digits.parse().map_err(|_| TilePathError::Index)?;
        index = index
            .checked_mul(GROUP)
            .and_then(|i| i.checked_add(value))
            .ok_or(TilePathError::IndexTooLarge)?;
    }
    Ok((index, width))
}

/// A decimal number in `range` without sign or leading zero; `None` otherwise.
fn parse_decimal(text: &str, range: std::ops::RangeInclusive<u64>) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.len() <= 3
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    let value: u64 = text.parse().ok().filter(|_| canonical)?;
    range.contains(&value).then_some(value)
}

/// The tile `index` of `level` in the tree of `tree_size` leaves, with its width there:
/// `None` when that tile is empty (not served).
#[must_use]
pub fn tile_in_tree(level: u8, index: u64, tree_size: u64) -> Option<TileId> {
    let node_level = level.checked_mul(TILE_HEIGHT)?;
    let nodes = tree_size.checked_shr(u32::from(node_level)).unwrap_or(0);
    let first = index.checked_mul(u64::from(TILE_WIDTH))?;
    let width = nodes.checked_sub(first)?.min(u64::from(TILE_WIDTH));
    TileId::new(level, index, u16::try_from(width).ok()?).ok()
}

/// Every tile of the tree of `tree_size` leaves, level 0 first, left to right: the full tiles
/// and the partial tile of each level (the spec's tiles of a checkpoint of that size).
pub fn tiles_of(tree_size: u64) -> impl Iterator<Item = TileId> {
    (0..=MAX_TILE_LEVEL).flat_map(move |level| {
        (0u64..)
            .map(move |index| tile_in_tree(level, index, tree_size))
            .take_while(Option::is_some)
            .flatten()
    })
}

/// The tile's hashes read from `source`: nodes `256 * N ..` of tree level `8 * L`.
pub fn read_tile<S: NodeSource>(source: &S, tile: TileId) -> Result<Vec<Hash>, S::Error> {
    let (level, first, end) = tile_nodes(tile, source.leaf_count())?;
    (first..end)
        .map(|index| source.node(level, index))
        .collect()
}

/// Tree level and node range `[first, end)` of `tile`, if it fits the tree of `tree_size`.
fn tile_nodes(tile: TileId, tree_size: u64) -> Result<(u8, u64, u64), RangeError> {
    let not_in_tree = RangeError::TooLarge {
        tree_size: tile.leaf_range().map_or(u64::MAX, |(_, end)| end),
        available: tree_size,
    };
    match (tile.node_level(), tile.first_node()) {
        (Some(level), Some(first)) if tile.fits(tree_size) => {
            Ok((level, first, first + u64::from(tile.width)))
        }
        _ => Err(not_in_tree),
    }
}

/// A tile's bytes: its hashes back to back.
#[must_use]
pub fn tile_bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|hash| hash.0).collect()
}

/// The hashes of `tile` from its bytes, which must be exactly `width * 32`.
pub fn parse_tile(tile: TileId, bytes: &[u8]) -> Result<Vec<Hash>, TileError> {
    if bytes.len() != usize::from(tile.width) * HASH_LEN {
        return Err(TileError::Length {
            tile,
            got_bytes: bytes.len() as u64,
        });
    }
    Ok(bytes
        .chunks_exact(HASH_LEN)
        .filter_map(Hash::from_slice)
        .collect())
}

/// An entry bundle from `(offset, entry)` pairs, in order: each entry prefixed with its
/// length as a big-endian `u16`.
///
/// Errors: [`TileError::EntryTooLarge`] for the first entry over 65,535 bytes.
pub fn entry_bundle<'a>(
    entries: impl IntoIterator<Item = (u64, &'a [u8])>,
) -> Result<Vec<u8>, TileError> {
    let mut bundle = Vec::new();
    for (offset, entry) in entries {
        let length = u16::try_from(entry.len()).map_err(|_| TileError::EntryTooLarge {
            offset,
            entry_bytes: entry.len() as u64,
        })?;
        bundle.extend_from_slice(&length.to_be_bytes());
        bundle.extend_from_slice(entry);
    }
    Ok(bundle)
}

/// The entries of a bundle, in order.
///
/// Errors: [`TileError::Bundle`] when a length prefix or an entry is cut short.
pub fn parse_entry_bundle(bundle: &[u8]) -> Result<Vec<&[u8]>, TileError> {
    let mut entries = Vec::new();
    let mut rest = bundle;
    while !rest.is_empty() {
        let (Some(&high), Some(&low)) = (rest.first(), rest.get(1)) else {
            return Err(TileError::Bundle {
                reason: "a length prefix is cut short",
            });
        };
        let length = usize::from(u16::from_be_bytes([high, low]));
        let entry = rest.get(2..2 + length).ok_or(TileError::Bundle {
            reason: "an entry is shorter than its length prefix",
        })?;
        entries.push(entry);
        rest = rest.get(2 + length..).unwrap_or_default();
    }
    Ok(entries)
}

/// Why a tile was not shown to belong to a tree root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileCheckError<E> {
    /// The tile does not fit the tree, or the hashes are not `width` long.
    #[error(transparent)]
    Tile(#[from] TileError),
    /// Reading the other nodes failed.
    #[error("reading the tree's nodes: {0}")]
    Source(E),
    /// The tile's hashes, with the other nodes, lead to another root.
    #[error(
        "tile {tile} does not belong to the tree of {tree_size} entries: with it the root is \
         {computed}, not {expected}"
    )]
    Mismatch {
        /// The tile.
        tile: TileId,
        /// The tree size.
        tree_size: u64,
        /// The root computed through the tile.
        computed: Hash,
        /// The root it was checked against.
        expected: Hash,
    },
}

/// Checks that `hashes`, as tile `tile`, belong to the tree of `tree_size` leaves with `root`:
/// the root is recomputed with the tile's hashes in their place and every other node read
/// from `source` (O(width + log n) hashes). Equal roots authenticate every hash of the tile
/// (and each node read), as an inclusion proof does its path.
pub fn check_tile<S: NodeSource>(
    source: &S,
    tile: TileId,
    hashes: &[Hash],
    tree_size: u64,
    root: &Hash,
) -> Result<(), TileCheckError<S::Error>> {
    let computed = root_through_tile(source, tile, hashes, tree_size)?;
    if computed != *root {
        return Err(TileCheckError::Mismatch {
            tile,
            tree_size,
            computed,
            expected: *root,
        });
    }
    Ok(())
}

/// The root of the tree of `tree_size` leaves with `hashes` as tile `tile`'s nodes and every
/// other node from `source`.
pub fn root_through_tile<S: NodeSource>(
    source: &S,
    tile: TileId,
    hashes: &[Hash],
    tree_size: u64,
) -> Result<Hash, TileCheckError<S::Error>> {
    let (Some(level), Some((start, end)), true) =
        (tile.node_level(), tile.leaf_range(), tile.fits(tree_size))
    else {
        return Err(TileError::NotInTree { tile, tree_size }.into());
    };
    if hashes.len() != usize::from(tile.width) {
        return Err(TileError::Length {
            tile,
            got_bytes: hashes.len() as u64 * HASH_LEN as u64,
        }
        .into());
    }
    let through = Through {
        source,
        tile,
        hashes,
        level,
        start,
        end,
    };
    through.root(0, tree_size)
}

/// A tree whose nodes in `[start, end)` at tree level `level` are `hashes`.
struct Through<'a, S> {
    source: &'a S,
    tile: TileId,
    hashes: &'a [Hash],
    level: u8,
    start: u64,
    end: u64,
}

impl<S: NodeSource> Through<'_, S> {
    /// RFC 9162's `MTH(D[lo:hi])` (`lo < hi`): from `source` where the range misses the tile,
    /// from the tile where it is one of its subtrees, split as RFC 9162 splits otherwise
    /// (depth at most 64, since each split halves a power of two).
    fn root(&self, lo: u64, hi: u64) -> Result<Hash, TileCheckError<S::Error>> {
        if hi <= self.start || lo >= self.end {
            return subtree_root(self.source, lo, hi).map_err(TileCheckError::Source);
        }
        let size = hi - lo;
        let unit = 1u64 << self.level;
        if lo >= self.start && hi <= self.end && size.is_power_of_two() && size >= unit {
            return Ok(self.fold((lo - self.start) >> self.level, size >> self.level));
        }
        if size < 2 {
            // A tile's bounds are multiples of 2^level, so RFC 9162's splits never cut one
            // of its nodes; no panic if that reasoning is ever wrong.
            return Err(TileError::NotInTree {
                tile: self.tile,
                tree_size: hi,
            }
            .into());
        }
        let split = 1u64 << (63 - (size - 1).leading_zeros());
        let left = self.root(lo, lo + split)?;
        let right = self.root(lo + split, hi)?;
        Ok(node_hash(&left, &right))
    }

    /// The root of the perfect subtree over `count` (a power of two) tile hashes from `first`.
    fn fold(&self, first: u64, count: u64) -> Hash {
        let range = usize::try_from(first)
            .ok()
            .zip(usize::try_from(count).ok())
            .and_then(|(first, count)| self.hashes.get(first..first + count));
        fold_perfect(range.unwrap_or_default())
    }
}

/// The root of the perfect subtree over `hashes` (a power of two of them); tiles and the
/// monitor's tile reader (`tile_nodes`) both fold stored hashes up this way.
pub(crate) fn fold_perfect(hashes: &[Hash]) -> Hash {
    let mut layer = hashes.to_vec();
    while layer.len() > 1 {
        layer = layer
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => node_hash(left, right),
                [single] => *single,
                _ => Hash::default(),
            })
            .collect();
    }
    layer.first().copied().unwrap_or_default()
}
