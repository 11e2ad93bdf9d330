//! Derived files forged as a capable attacker would: self-consistent (valid checksums, every
//! Merkle ancestor recomputed) but disagreeing with the log. Layouts: `docs/FORMAT.md`.

use std::path::{Path, PathBuf};

use kimberlite::proof::{event_leaf_hash, node_hash, Hash};
use kimberlite::StreamId;
use kimberlite_storage::disk::{Manifest, SegmentIndex, MANIFEST_FILE};
use rand::seq::IndexedRandom;
use rand::Rng;

use super::state::{StoreRun, STORE_DIR};
use crate::fs::SimFileSystem;

/// What a forgery leaves for the attacked open to show.
pub(super) enum Forged {
    /// The stream's tree disagrees with its log, or claims events the log lacks: `verify`
    /// must name the stream.
    Evidence(StreamId),
    /// Derived data the store may rebuild from the log (an index, a manifest it can repair).
    Derived,
}

/// A stream's directory of segments.
pub(super) fn stream_dir(id: StreamId) -> PathBuf {
    Path::new(STORE_DIR)
        .join("streams")
        .join(format!("{:020}", id.as_u64()))
}

fn level_path(id: StreamId, level: usize) -> PathBuf {
    Path::new(STORE_DIR)
        .join("merkle")
        .join(format!("{:020}", id.as_u64()))
        .join(format!("level-{level:02}.hashes"))
}

/// How many leaves the stream's stored tree holds: the events the store has evidence of.
pub(super) fn leaves(fs: &SimFileSystem, id: StreamId) -> u64 {
    fs.read_raw(&level_path(id, 0))
        .map_or(0, |bytes| bytes.len() as u64 / 32)
}

/// The stream's stored tree, level by level.
fn read_levels(fs: &SimFileSystem, id: StreamId) -> Vec<Vec<Hash>> {
    (0..64)
        .map_while(|level| fs.read_raw(&level_path(id, level)))
        .map(|bytes| {
            bytes
                .chunks_exact(32)
                .filter_map(|node| <[u8; 32]>::try_from(node).ok().map(Hash))
                .collect()
        })
        .collect()
}

fn write_levels(fs: &SimFileSystem, id: StreamId, levels: &[Vec<Hash>]) {
    for (level, nodes) in levels.iter().enumerate() {
        let bytes: Vec<u8> = nodes.iter().flat_map(|node| node.0).collect();
        fs.write_raw(&level_path(id, level), &bytes);
    }
}

/// Recomputes every stored node above `level` over `index` (the node changed there).
fn recompute_above(levels: &mut [Vec<Hash>], level: usize, index: usize) {
    let mut index = index;
    for upper in level + 1..levels.len() {
        index /= 2;
        let (below, above) = levels.split_at_mut(upper);
        let Some(children) = below.last() else { return };
        let (Some(left), Some(right)) = (children.get(2 * index), children.get(2 * index + 1))
        else {
            return;
        };
        let parent = node_hash(left, right);
        match above.first_mut().and_then(|nodes| nodes.get_mut(index)) {
            Some(node) => *node = parent,
            None => return,
        }
    }
}

/// Adds the complete nodes the levels lack over their children (after leaves were added).
fn complete_upper_levels(levels: &mut Vec<Vec<Hash>>) {
    let mut level = 1;
    while levels.get(level - 1).is_some_and(|below| below.len() >= 2) {
        if levels.len() == level {
            levels.push(Vec::new());
        }
        let (below, above) = levels.split_at_mut(level);
        let (Some(children), Some(nodes)) = (below.last(), above.first_mut()) else {
            return;
        };
        while let (Some(left), Some(right)) = (
            children.get(2 * nodes.len()),
            children.get(2 * nodes.len() + 1),
        ) {
            nodes.push(node_hash(left, right));
        }
        level += 1;
    }
}

impl StoreRun {
    /// Forges a random derived file of a random stream; `None` when there is none to forge.
    pub(super) fn forge(&mut self, ids: &[StreamId]) -> Option<Forged> {
        let id = *ids.choose(&mut self.rng)?;
        match self.rng.random_range(0..3) {
            0 => self.forge_tree(id),
            1 => self.forge_index(),
            _ => self.forge_manifest(id),
        }
    }

    /// A leaf or an interior node replaced and every ancestor recomputed, or leaves added past
    /// the log with their ancestors: a self-consistent tree of other events.
    fn forge_tree(&mut self, id: StreamId) -> Option<Forged> {
        let mut levels = read_levels(&self.fs, id);
        let leaf_count = levels.first().map_or(0, Vec::len);
        if leaf_count == 0 {
            return None;
        }
        match self.rng.random_range(0..3) {
            0 => {
                let index = self.rng.random_range(0..leaf_count);
                let forged = event_leaf_hash(index as u64, b"forged by the simulator");
                *levels.first_mut()?.get_mut(index)? = forged;
                recompute_above(&mut levels, 0, index);
            }
            1 if levels.get(1).is_some_and(|nodes| !nodes.is_empty()) => {
                let level = self.rng.random_range(1..levels.len());
                let count = levels.get(level)?.len();
                if count == 0 {
                    return None;
                }
                let index = self.rng.random_range(0..count);
                *levels.get_mut(level)?.get_mut(index)? = event_leaf_hash(0, b"forged node");
                recompute_above(&mut levels, level, index);
            }
            _ => {
                let added = self.rng.random_range(1..=3u64);
                let leaves = levels.first_mut()?;
                for offset in leaf_count as u64..leaf_count as u64 + added {
                    leaves.push(event_leaf_hash(offset, b"never appended"));
                }
                complete_upper_levels(&mut levels);
            }
        }
        write_levels(&self.fs, id, &levels);
        self.stats.attacks.forged_trees += 1;
        Some(Forged::Evidence(id))
    }

    /// An index of some segment rewritten with a valid checksum: its entries pointing at
    /// other records, its offsets shifted, or its summary claiming one event more.
    fn forge_index(&mut self) -> Option<Forged> {
        let streams = Path::new(STORE_DIR).join("streams");
        let files: Vec<PathBuf> = self
            .fs
            .files()
            .into_iter()
            .filter(|f| f.starts_with(&streams) && f.extension().is_some_and(|e| e == "idx"))
            .collect();
        let path = files.choose(&mut self.rng)?.clone();
        let id: u64 = path.parent()?.file_name()?.to_str()?.parse().ok()?;
        let segment: u32 = path.file_stem()?.to_str()?.parse().ok()?;
        let bytes = self.fs.read_raw(&path)?;
        let stored = SegmentIndex::decode_stored(&bytes, StreamId::new(id), segment).ok()?;
        let mut index = stored.index;
        let entries = index.restart_records.len() + index.data.len();
        match self.rng.random_range(0..3) {
            0 if entries >= 2 => {
                let mut positions: Vec<u64> = index
                    .restart_records
                    .iter()
                    .chain(&index.data)
                    .map(|entry| entry.position)
                    .collect();
                positions.rotate_left(1);
                let all = index.restart_records.iter_mut().chain(&mut index.data);
                for (entry, position) in all.zip(positions) {
                    entry.position = position;
                }
            }
            1 if entries >= 1 => {
                let all = index.restart_records.iter_mut().chain(&mut index.data);
                for entry in all {
                    entry.offset += 1;
                }
            }
            _ => index.summary.next_offset += 1,
        }
        let forged = index.encode(StreamId::new(id), segment, stored.head);
        self.fs.write_raw(&path, &forged);
        self.stats.attacks.forged_indexes += 1;
        Some(Forged::Derived)
    }

    /// A manifest rewritten with a valid checksum: its watermark raised past the active
    /// segment's end (durable data that is not there: must be reported), a boundary between
    /// segments moved, or its last segment dropped.
    fn forge_manifest(&mut self, id: StreamId) -> Option<Forged> {
        let path = stream_dir(id).join(MANIFEST_FILE);
        let mut manifest = Manifest::decode(&self.fs.read_raw(&path)?, id).ok()?;
        let count = manifest.segments.len();
        let forged = match self.rng.random_range(0..3) {
            1 if count >= 2 => {
                let at = self.rng.random_range(0..count - 1);
                let (left, right) = manifest.segments.split_at_mut(at + 1);
                let (left, right) = (left.last_mut()?, right.first_mut()?);
                left.next_offset += 1;
                right.first_offset += 1;
                right.next_offset = right.next_offset.max(right.first_offset);
                Forged::Derived
            }
            2 if count >= 2 => {
                manifest.segments.pop();
                manifest.segments.last_mut()?.completed = false;
                Forged::Derived
            }
            _ => {
                let last = manifest.segments.last_mut()?;
                let segment = stream_dir(id).join(format!("{:08}.seg", last.segment_num));
                let len = self.fs.read_raw(&segment).map_or(0, |b| b.len() as u64);
                last.file_size_bytes = len + 64;
                last.logical_size_bytes += 64;
                last.next_offset += 1;
                Forged::Evidence(id)
            }
        };
        self.fs.write_raw(&path, &manifest.encode());
        self.stats.attacks.forged_manifests += 1;
        Some(forged)
    }
}
