//! Which files of a store a snapshot carries, and moving them (docs/REPLICATION.md, section
//! "Snapshots").
//!
//! A snapshot carries the store's marker (`kimberlite.json`), every stream's segment files
//! (`streams/<id>/<n>.seg`), any cut record (`streams/<id>/pruned.json`) and the signed
//! checkpoints the cluster published (`checkpoints/<id>/<size>.checkpoint`, replicated state
//! since every replica keeps them at apply: `crate::replica_checkpoint`). Segments are
//! append-only: the bytes a segment held when the snapshot was built never change after, so
//! the kept snapshot names a segment by its path and length only, and its bytes are read
//! from the live store when the snapshot is sent. The small files are kept whole. Everything
//! else is rebuilt by the receiving store's open (manifests, indexes, Merkle levels) or is
//! node-local (the lock, cut-off torn tails).

use std::path::{Component, Path};

use bytes::Bytes;
use kimberlite_storage::{EntryKind, FileHandle, FileSystem};
use serde::{Deserialize, Serialize};

use crate::node_fs::NodeFs;
use crate::snapshot_error::SnapshotError;

/// The store's marker file.
const MARKER_FILE: &str = "kimberlite.json";
/// The streams' directory in a store.
const STREAMS_DIR: &str = "streams";
/// A stream's cut record.
const PRUNED_FILE: &str = "pruned.json";
/// The signed checkpoints' directory in a store.
const CHECKPOINTS_DIR: &str = kimberlite::CHECKPOINT_DIR;
/// The suffix of a signed checkpoint's file.
const CHECKPOINT_SUFFIX: &str = ".checkpoint";
/// Digits of a stream directory's name.
const STREAM_DIGITS: usize = 20;
/// Digits of a segment file's number.
const SEGMENT_DIGITS: usize = 8;

/// One file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreFile {
    /// Its path in the store directory, `/`-separated.
    pub path: String,
    /// Its length in bytes.
    pub len_bytes: u64,
    /// Its bytes: always when sent; in the kept snapshot only for small files (a segment's are
    /// read from the live store, `len_bytes` of them).
    #[serde(default, with = "hex_bytes")]
    pub bytes: Option<Bytes>,
}

/// What kind of file `path` is, when a snapshot may carry it: `Some(true)` for a segment,
/// `Some(false)` for a small file kept whole, `None` for anything else (refused on receipt: a
/// forged path never reaches the file system).
fn kind(path: &str) -> Option<bool> {
    let parts: Vec<&str> = path.split('/').collect();
    let digits = |text: &str, count: usize| {
        text.len() == count && text.bytes().all(|byte| byte.is_ascii_digit())
    };
    match parts.as_slice() {
        [MARKER_FILE] => Some(false),
        [STREAMS_DIR, stream, PRUNED_FILE] if digits(stream, STREAM_DIGITS) => Some(false),
        [STREAMS_DIR, stream, file] if digits(stream, STREAM_DIGITS) => file
            .strip_suffix(".seg")
            .filter(|number| digits(number, SEGMENT_DIGITS))
            .map(|_| true),
        [CHECKPOINTS_DIR, stream, file] if digits(stream, STREAM_DIGITS) => file
            .strip_suffix(CHECKPOINT_SUFFIX)
            .filter(|size| digits(size, STREAM_DIGITS))
            .map(|_| false),
        _ => None,
    }
}

/// The files of the store in `store_dir` a snapshot carries, as they are now (the store is
/// not written meanwhile: the caller holds the state machine's lock).
pub(crate) fn list(fs: &NodeFs, store_dir: &Path) -> Result<Vec<StoreFile>, SnapshotError> {
    let mut files = vec![small(fs, store_dir, MARKER_FILE)?];
    let streams = store_dir.join(STREAMS_DIR);
    let mut names = fs.list_dir(&streams)?;
    names.sort();
    for stream in names {
        let mut entries = fs.list_dir(&streams.join(&stream))?;
        entries.sort();
        for entry in entries {
            let path = format!("{STREAMS_DIR}/{stream}/{entry}");
            match kind(&path) {
                Some(true) => {
                    let len_bytes = fs.open_readonly(&store_dir.join(&path))?.len_bytes()?;
                    files.push(StoreFile {
                        path,
                        len_bytes,
                        bytes: None,
                    });
                }
                Some(false) => files.push(small(fs, store_dir, &path)?),
                None => {}
            }
        }
    }
    files.extend(checkpoints(fs, store_dir)?);
    Ok(files)
}

/// The signed checkpoints kept in the store in `store_dir`, whole (none when it keeps none).
fn checkpoints(fs: &NodeFs, store_dir: &Path) -> Result<Vec<StoreFile>, SnapshotError> {
    let dir = store_dir.join(CHECKPOINTS_DIR);
    if fs.entry_kind(&dir)? != Some(EntryKind::Dir) {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    let mut streams = fs.list_dir(&dir)?;
    streams.sort();
    for stream in streams {
        if fs.entry_kind(&dir.join(&stream))? != Some(EntryKind::Dir) {
            continue;
        }
        let mut names = fs.list_dir(&dir.join(&stream))?;
        names.sort();
        for name in names {
            let path = format!("{CHECKPOINTS_DIR}/{stream}/{name}");
            if kind(&path) == Some(false) {
                files.push(small(fs, store_dir, &path)?);
            }
        }
    }
    Ok(files)
}

/// The stream id and tree size of a signed checkpoint's file `path` in a snapshot, if it is
/// one.
pub(crate) fn checkpoint_of(path: &str) -> Option<(u64, u64)> {
    let rest = path.strip_prefix(CHECKPOINTS_DIR)?.strip_prefix('/')?;
    let (stream, file) = rest.split_once('/')?;
    kind(path)?;
    let size = file.strip_suffix(CHECKPOINT_SUFFIX)?;
    Some((stream.parse().ok()?, size.parse().ok()?))
}

fn small(fs: &NodeFs, store_dir: &Path, path: &str) -> Result<StoreFile, SnapshotError> {
    let bytes = Bytes::from(fs.read(&store_dir.join(path))?);
    Ok(StoreFile {
        path: path.to_owned(),
        len_bytes: bytes.len() as u64,
        bytes: Some(bytes),
    })
}

/// `files` with every segment's bytes read from the store in `store_dir`: the snapshot to send.
pub(crate) fn load(
    fs: &NodeFs,
    store_dir: &Path,
    files: &[StoreFile],
) -> Result<Vec<StoreFile>, SnapshotError> {
    files
        .iter()
        .map(|file| {
            if file.bytes.is_some() {
                return Ok(file.clone());
            }
            let len = usize::try_from(file.len_bytes).map_err(std::io::Error::other)?;
            let mut bytes = vec![0; len];
            fs.open_readonly(&store_dir.join(&file.path))?
                .read_exact_at(&mut bytes, 0)?;
            Ok(StoreFile {
                bytes: Some(Bytes::from(bytes)),
                ..file.clone()
            })
        })
        .collect()
}

/// `files` as the kept snapshot names them: segments without their bytes.
pub(crate) fn unloaded(files: &[StoreFile]) -> Vec<StoreFile> {
    files
        .iter()
        .map(|file| StoreFile {
            bytes: if kind(&file.path) == Some(true) {
                None
            } else {
                file.bytes.clone()
            },
            ..file.clone()
        })
        .collect()
}

/// Writes `files` into the new store directory `store_dir` (synced with `sync`); refuses any
/// path a snapshot never carries, and a file whose bytes are missing or not its length.
pub(crate) fn write(
    fs: &NodeFs,
    store_dir: &Path,
    files: &[StoreFile],
    sync: bool,
) -> Result<(), SnapshotError> {
    let mut dirs = vec![store_dir.to_owned()];
    for file in files {
        let forged = |reason: &str| SnapshotError::Forged {
            path: file.path.clone(),
            reason: reason.to_owned(),
        };
        let relative = Path::new(&file.path);
        if kind(&file.path).is_none()
            || !relative
                .components()
                .all(|part| matches!(part, Component::Normal(_)))
        {
            return Err(forged("not a file a snapshot carries"));
        }
        let bytes = file.bytes.as_ref().ok_or_else(|| forged("no bytes"))?;
        if bytes.len() as u64 != file.len_bytes {
            return Err(forged("bytes not of the stated length"));
        }
        let path = store_dir.join(relative);
        if let Some(parent) = path.parent() {
            if fs.entry_kind(parent)? != Some(EntryKind::Dir) {
                fs.create_dir_all(parent)?;
                dirs.push(parent.to_owned());
            }
        }
        let mut handle = fs.create(&path)?;
        handle.write_all_at(bytes, 0)?;
        if sync {
            handle.sync_data()?;
        }
    }
    if sync {
        for dir in dirs.iter().rev() {
            fs.sync_dir(dir)?;
        }
        fs.sync_dir(&store_dir.join(STREAMS_DIR))?;
        let checkpoints = store_dir.join(CHECKPOINTS_DIR);
        if fs.entry_kind(&checkpoints)? == Some(EntryKind::Dir) {
            fs.sync_dir(&checkpoints)?;
        }
    }
    Ok(())
}

/// Optional bytes as hex text (the snapshot is JSON where it is kept).
mod hex_bytes {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        bytes: &Option<Bytes>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        bytes.as_ref().map(hex::encode).serialize(serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Bytes>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| {
                hex::decode(text)
                    .map(Bytes::from)
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_files_a_snapshot_carries_are_taken() {
        let stream = "00000000000000000001";
        assert_eq!(kind("kimberlite.json"), Some(false));
        assert_eq!(kind(&format!("streams/{stream}/00000003.seg")), Some(true));
        assert_eq!(kind(&format!("streams/{stream}/pruned.json")), Some(false));
        let checkpoint = format!("checkpoints/{stream}/00000000000000000007.checkpoint");
        assert_eq!(kind(&checkpoint), Some(false));
        assert_eq!(checkpoint_of(&checkpoint), Some((1, 7)));
        assert_eq!(
            checkpoint_of(&format!("streams/{stream}/pruned.json")),
            None
        );
        for other in [
            "LOCK".to_owned(),
            format!("streams/{stream}/00000003.idx"),
            format!("streams/{stream}/manifest.json"),
            format!("streams/{stream}/../../../etc/00000003.seg"),
            "streams/1/00000003.seg".to_owned(),
            format!("/streams/{stream}/00000003.seg"),
            format!("merkle/{stream}/level-00.hashes"),
            format!("checkpoints/{stream}/00000000000000000007.cosigned"),
            format!("checkpoints/{stream}/00000000000000000007.checkpoint.tmp"),
            format!("checkpoints/{stream}/7.checkpoint"),
            "checkpoints/1/00000000000000000007.checkpoint".to_owned(),
        ] {
            assert_eq!(kind(&other), None, "{other}");
        }
    }
}
