//! [`SnapshotImage`]: what a new or lagging replica needs to start applying where the log
//! begins, and its verified install into a fresh store (docs/REPLICATION.md, section
//! "Snapshots").
//!
//! An image is a manifest of every stream's name, id, head and Merkle root at the snapshot's
//! log position, the store's files that hold them (its segments and the signed checkpoints the
//! cluster published, `crate::snapshot_files`) and the [`Ledger`]. The receiver writes the
//! files into a directory of its own, opens them read-only (nothing repaired on disk), walks
//! every stream's chain with the store's own verification, checks every head and root against
//! the manifest and that no other stream is there, and only then opens the store for writing: a
//! damaged or forged file or manifest installs nothing.

use std::collections::BTreeMap;
use std::path::Path;

use kimberlite::{Config, Kimberlite, StreamId};
use serde::{Deserialize, Serialize};

use crate::command::Head;
use crate::node_fs::NodeFs;
use crate::replica::Ledger;
use crate::replica_checkpoint;
use crate::snapshot_error::SnapshotError;
use crate::snapshot_files;
pub use crate::snapshot_files::StoreFile;

/// A replica's state as of one log position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotImage {
    /// Every named stream, by id: the manifest the files are checked against.
    pub streams: Vec<StreamImage>,
    /// The store's files that hold them.
    pub files: Vec<StoreFile>,
    /// The ledger: request answers, streams' last changes.
    pub ledger: Ledger,
}

/// One stream in a snapshot's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamImage {
    /// Its name.
    pub name: String,
    /// Its id.
    pub id: u64,
    /// Its head.
    pub head: Head,
    /// Its Merkle tree's root over all its events (RFC 9162).
    pub root: [u8; 32],
}

impl SnapshotImage {
    /// The image of `store`, whose directory is `store_dir` on `fs`, with `ledger`; segments
    /// named by path and length only (their bytes are read by [`SnapshotImage::load`]). The
    /// store must not be written meanwhile.
    pub fn build(
        fs: &NodeFs,
        store_dir: &Path,
        store: &Kimberlite,
        ledger: &Ledger,
    ) -> Result<Self, SnapshotError> {
        Ok(Self {
            streams: manifest(store)?,
            files: snapshot_files::list(fs, store_dir)?,
            ledger: ledger.clone(),
        })
    }

    /// This image with every file's bytes, read from the store in `store_dir`: what is sent.
    pub fn load(&self, fs: &NodeFs, store_dir: &Path) -> Result<Self, SnapshotError> {
        Ok(Self {
            files: snapshot_files::load(fs, store_dir, &self.files)?,
            ..self.clone()
        })
    }

    /// This image without the segments' bytes: what is kept.
    #[must_use]
    pub fn unloaded(&self) -> Self {
        Self {
            files: snapshot_files::unloaded(&self.files),
            ..self.clone()
        }
    }

    /// Writes the image's files into `dir` (emptied first) on `fs`, verifies them against the
    /// manifest, and returns the store opened for writing only if every check passed.
    pub fn rebuild(
        &self,
        fs: NodeFs,
        dir: &Path,
        config: Config,
        sync: bool,
    ) -> Result<Kimberlite, SnapshotError> {
        fs.remove_tree(dir)?;
        snapshot_files::write(&fs, dir, &self.files, sync)?;
        // Read-only first: whatever recovery would repair stays in memory, and is caught below.
        let store = Kimberlite::open_read_only_with_fs(fs.clone(), dir, config.clone())?;
        self.check(&store)?;
        drop(store);
        let store = Kimberlite::open_with_fs(fs, dir, config)?;
        self.check_heads(&store)?;
        Ok(store)
    }

    /// Checks every record of every stream of `store`, and every stream's id, head and root,
    /// against the manifest.
    fn check(&self, store: &Kimberlite) -> Result<(), SnapshotError> {
        let report = store.verify_all()?;
        if let Some(problem) = report.problems.first() {
            return Err(SnapshotError::Mismatch {
                name: problem.name.clone().unwrap_or_default(),
                what: "verification",
                expected: "intact".into(),
                got: problem.message.clone(),
            });
        }
        self.check_heads(store)?;
        self.check_checkpoints(store)
    }

    /// Checks every signed checkpoint the image carries against the tree of its stream at its
    /// size, as a replica checks one it applies (`crate::replica_checkpoint`).
    fn check_checkpoints(&self, store: &Kimberlite) -> Result<(), SnapshotError> {
        for file in &self.files {
            let Some((stream, size)) = snapshot_files::checkpoint_of(&file.path) else {
                continue;
            };
            let id = StreamId::new(stream);
            let refuse = |got: String| SnapshotError::Mismatch {
                name: store.stream_name(id).unwrap_or_else(|| stream.to_string()),
                what: "checkpoint",
                expected: format!("{} signs the stream's tree at its size", file.path),
                got,
            };
            let note = file
                .bytes
                .as_deref()
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                .unwrap_or_default();
            let root = store
                .tree_root_at(id, size)
                .map_err(|error| refuse(error.to_string()))?;
            replica_checkpoint::states(&note, size, root.0).map_err(refuse)?;
        }
        Ok(())
    }

    fn check_heads(&self, store: &Kimberlite) -> Result<(), SnapshotError> {
        let found: BTreeMap<u64, StreamImage> = manifest(store)?
            .into_iter()
            .map(|stream| (stream.id, stream))
            .collect();
        let expected: BTreeMap<u64, &StreamImage> = self
            .streams
            .iter()
            .map(|stream| (stream.id, stream))
            .collect();
        let ids = |ids: Vec<&u64>| format!("{ids:?}");
        check(
            "(all)",
            "stream ids",
            ids(expected.keys().collect()),
            ids(found.keys().collect()),
        )?;
        for (id, stream) in expected {
            let Some(got) = found.get(&id) else {
                continue;
            };
            check(&stream.name, "name", &stream.name, &got.name)?;
            check(&stream.name, "head", stream.head, got.head)?;
            check(
                &stream.name,
                "root",
                hex::encode(stream.root),
                hex::encode(got.root),
            )?;
        }
        Ok(())
    }
}

/// Every named stream's name, id, head and root in `store`, by id.
fn manifest(store: &Kimberlite) -> Result<Vec<StreamImage>, SnapshotError> {
    let mut infos = store.list_streams();
    infos.sort_by_key(|info| info.id);
    let mut streams = Vec::with_capacity(infos.len());
    for info in infos {
        if info.damaged {
            return Err(SnapshotError::Damaged { name: info.name });
        }
        streams.push(StreamImage {
            root: store.tree_head(info.id)?.root.0,
            name: info.name,
            id: info.id.as_u64(),
            head: Head::of(info.head),
        });
    }
    Ok(streams)
}

fn check<T: PartialEq + std::fmt::Display>(
    name: &str,
    what: &'static str,
    expected: T,
    got: T,
) -> Result<(), SnapshotError> {
    if expected == got {
        return Ok(());
    }
    Err(SnapshotError::Mismatch {
        name: name.to_owned(),
        what,
        expected: expected.to_string(),
        got: got.to_string(),
    })
}
