//! One level of a stream's Merkle tree: the complete nodes in its file, then the ones not
//! yet written (see the parent module for the layout and what is trusted).

use std::path::PathBuf;

use kimberlite_proof::{Hash, RangeError};
use kimberlite_storage::FileHandle;

/// Bytes of one node.
pub(super) const HASH_BYTES: u64 = 32;

/// Why a tree cannot answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TreeError {
    #[error(transparent)]
    Range(#[from] RangeError),
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the tree's side files failed earlier ({0}); reopen the store to rebuild them")]
    Failed(String),
}

/// One level: the nodes in its file, then those not yet written.
#[derive(Default)]
pub(super) struct Level {
    /// The level's file; `None` for a tree kept in memory only.
    pub(super) file: Option<Box<dyn FileHandle>>,
    pub(super) path: PathBuf,
    /// Nodes in the file.
    pub(super) written: u64,
    /// Nodes after those, not yet written.
    pub(super) pending: Vec<Hash>,
}

impl Level {
    pub(super) fn len(&self) -> u64 {
        self.written + self.pending.len() as u64
    }

    pub(super) fn get(&self, index: u64) -> Result<Hash, TreeError> {
        if index >= self.written {
            let i = usize::try_from(index - self.written).unwrap_or(usize::MAX);
            return self
                .pending
                .get(i)
                .copied()
                .ok_or(TreeError::Range(RangeError::TooLarge {
                    tree_size: index + 1,
                    available: self.len(),
                }));
        }
        let Some(file) = &self.file else {
            return Err(TreeError::Failed("no file".into()));
        };
        let mut bytes = [0u8; 32];
        file.read_exact_at(&mut bytes, index * HASH_BYTES)
            .map_err(|source| TreeError::Io {
                path: self.path.display().to_string(),
                source,
            })?;
        Ok(Hash(bytes))
    }

    /// Nodes `first..first + count` (fewer past the level's end), the written ones with one
    /// read.
    pub(super) fn get_range(&self, first: u64, count: u64) -> Result<Vec<Hash>, TreeError> {
        let end = first.saturating_add(count).min(self.len());
        let mut out = Vec::with_capacity(usize::try_from(end.saturating_sub(first)).unwrap_or(0));
        let written_end = end.min(self.written);
        if first < written_end {
            let Some(file) = &self.file else {
                return Err(TreeError::Failed("no file".into()));
            };
            let len = usize::try_from((written_end - first) * HASH_BYTES).unwrap_or(usize::MAX);
            let mut bytes = vec![0u8; len];
            file.read_exact_at(&mut bytes, first * HASH_BYTES)
                .map_err(|source| TreeError::Io {
                    path: self.path.display().to_string(),
                    source,
                })?;
            out.extend(bytes.chunks_exact(32).map(|chunk| {
                let mut hash = [0u8; 32];
                hash.copy_from_slice(chunk);
                Hash(hash)
            }));
        }
        for index in first.max(self.written)..end {
            out.push(self.get(index)?);
        }
        Ok(out)
    }

    pub(super) fn flush(&mut self) -> std::io::Result<()> {
        if let Some(file) = &mut self.file {
            if !self.pending.is_empty() {
                let mut bytes = Vec::with_capacity(self.pending.len() * 32);
                for hash in &self.pending {
                    bytes.extend_from_slice(&hash.0);
                }
                file.write_all_at(&bytes, self.written * HASH_BYTES)?;
                self.written += self.pending.len() as u64;
                self.pending.clear();
            }
        }
        Ok(())
    }
}
