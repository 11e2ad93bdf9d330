//! [`SnapshotImage`]: what a new or lagging replica needs to start applying where the log
//! begins, and its verified install into a fresh store (docs/REPLICATION.md, section
//! "Snapshots").
//!
//! This image carries every stream's events whole, with the head and Merkle root the sender
//! computed; the receiver rebuilds a store from it in a directory of its own and installs it
//! only once every stream's head and root match. The full design ships sealed segments and a
//! manifest instead of events.

use std::path::Path;

use bytes::Bytes;
use kimberlite::{Config, ExpectedOffset, Kimberlite, StreamId};
use serde::{Deserialize, Serialize};

use crate::command::Head;
use crate::node_fs::NodeFs;
use crate::replica::Ledger;

/// Events appended per batch while a snapshot is installed.
const INSTALL_BATCH_EVENTS_MAX: usize = 4096;

/// A replica's state as of one log position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotImage {
    /// Every named stream, by id.
    pub streams: Vec<StreamImage>,
    /// The ledger: request answers, streams' last changes.
    pub ledger: Ledger,
}

/// One stream in a snapshot.
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
    /// Its events, in order.
    #[serde(with = "crate::command::hex_events")]
    pub events: Vec<Bytes>,
}

/// Why a snapshot could not be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The store failed.
    #[error("snapshot: {0}")]
    Store(#[from] kimberlite::Error),
    /// The file system failed.
    #[error("snapshot: {0}")]
    Io(#[from] std::io::Error),
    /// The installed applied state file failed.
    #[error("snapshot: {0}")]
    Applied(#[from] crate::journal_file::LogFileError),
    /// A stream damaged on disk cannot be put in a snapshot.
    #[error("snapshot: stream {name:?} is damaged")]
    Damaged {
        /// The stream.
        name: String,
    },
    /// The rebuilt store does not match what the sender said it holds: nothing installed.
    #[error("snapshot: stream {name:?}: {what} is {got}, the snapshot says {expected}")]
    Mismatch {
        /// The stream.
        name: String,
        /// Which value differs.
        what: &'static str,
        /// The value the snapshot carries.
        expected: String,
        /// The value rebuilt.
        got: String,
    },
}

impl SnapshotImage {
    /// The image of `store` with `ledger`.
    pub fn build(store: &Kimberlite, ledger: &Ledger) -> Result<Self, SnapshotError> {
        let mut infos = store.list_streams();
        infos.sort_by_key(|info| info.id);
        let mut streams = Vec::with_capacity(infos.len());
        for info in infos {
            if info.damaged {
                return Err(SnapshotError::Damaged { name: info.name });
            }
            let events = store
                .events(info.id, 0.into())
                .map(|event| event.map(|event| event.payload))
                .collect::<Result<Vec<_>, _>>()?;
            streams.push(StreamImage {
                root: store.tree_head(info.id)?.root.0,
                name: info.name,
                id: info.id.as_u64(),
                head: Head::of(info.head),
                events,
            });
        }
        Ok(Self {
            streams,
            ledger: ledger.clone(),
        })
    }

    /// Rebuilds the image into a new store in `dir` (emptied first) and checks every stream's
    /// id, head and root against the image; returns the store only if all match.
    pub fn rebuild(
        &self,
        fs: NodeFs,
        dir: &Path,
        config: Config,
    ) -> Result<Kimberlite, SnapshotError> {
        fs.remove_tree(dir)?;
        let store = Kimberlite::open_with_fs(fs, dir, config)?;
        for stream in &self.streams {
            let id = store.create_stream(&stream.name)?;
            check(&stream.name, "id", stream.id, id.as_u64())?;
            let mut offset = 0u64;
            for chunk in stream.events.chunks(INSTALL_BATCH_EVENTS_MAX) {
                let appended = store.append(
                    id,
                    chunk.iter().cloned(),
                    ExpectedOffset::Exact(offset.into()),
                )?;
                offset = appended.next_offset.as_u64();
            }
            let id = StreamId::new(stream.id);
            check(&stream.name, "head", stream.head, Head::of(store.head(id)?))?;
            let root = store.tree_head(id)?.root.0;
            check(
                &stream.name,
                "root",
                hex::encode(stream.root),
                hex::encode(root),
            )?;
        }
        Ok(store)
    }
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

#[cfg(test)]
mod tests {
    use kimberlite::{ExpectedOffset, Kimberlite};

    use super::*;

    fn image() -> SnapshotImage {
        let store = Kimberlite::in_memory();
        let a = store.create_stream("a").unwrap();
        store.create_stream("b").unwrap();
        store.append(a, ["x", "y"], ExpectedOffset::Any).unwrap();
        SnapshotImage::build(&store, &Ledger::default()).unwrap()
    }

    #[test]
    fn an_image_rebuilds_the_same_heads_and_roots() {
        let dir = tempfile::tempdir().unwrap();
        let image = image();
        let store = image
            .rebuild(NodeFs::os(), &dir.path().join("store"), Config::default())
            .unwrap();
        assert_eq!(
            SnapshotImage::build(&store, &Ledger::default()).unwrap(),
            image
        );
    }

    #[test]
    fn an_image_whose_events_do_not_match_its_heads_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut image = image();
        image.streams[0].events[1] = Bytes::from_static(b"z");
        let error = image
            .rebuild(NodeFs::os(), &dir.path().join("store"), Config::default())
            .unwrap_err();
        assert!(
            matches!(error, SnapshotError::Mismatch { what: "head", .. }),
            "{error}"
        );
        let mut image = super::tests::image();
        image.streams[1].root[0] ^= 1;
        let error = image
            .rebuild(NodeFs::os(), &dir.path().join("store"), Config::default())
            .unwrap_err();
        assert!(
            matches!(error, SnapshotError::Mismatch { what: "root", .. }),
            "{error}"
        );
    }
}
