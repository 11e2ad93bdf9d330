//! Checkpoints signed elsewhere and kept here: what a cluster's replicas do with the
//! checkpoint their leader signed (docs/REPLICATION.md, section "Checkpoints").
//!
//! [`Kimberlite::keep_signed_checkpoint`] keeps a note as [`Kimberlite::sign_checkpoint`]
//! keeps its own (`checkpoints/<id>/<size>.checkpoint`), once the root it states is the
//! root of this store's tree at its size: a store never keeps a checkpoint of another
//! history. The file is written beside and renamed over, so a crash leaves it whole or
//! absent, and keeping the same note again writes nothing.

use std::path::Path;

use kimberlite_proof::Hash;
use kimberlite_types::StreamId;

use crate::error::{Error, Result, TreeEvidence};
use crate::proofs::{refused, stream_tree, trusted_root};
use crate::signed_checkpoint::{parse_kept_note, OfferedNote, SignedCheckpoint};
use crate::store::Kimberlite;
use crate::store_fs::{replace_file, StoreFs};

impl Kimberlite {
    /// The root of the tree of stream `id`'s first `size` events, checked against the
    /// store's trusted root (as [`Kimberlite::tree_head`] checks its own).
    ///
    /// Errors: as [`Kimberlite::consistency_proof`]; [`Error::TreeRange`] when `size` is past
    /// the stream's durable end.
    pub fn tree_root_at(&self, id: StreamId, size: u64) -> Result<Hash> {
        if size == 0 {
            self.read_state().name_of(id)?;
            return Ok(kimberlite_proof::empty_root());
        }
        self.trust_tree(id)?;
        let state = self.read_state();
        let name = state.name_of(id)?;
        let trees = Self::trees(&state, id, name, size)?;
        let tree = stream_tree(&trees, id, name, size)?;
        trusted_root(tree, size)
            .map_err(|refusal| refused(name, id, TreeEvidence::Head { tree_size: size }, refusal))
    }

    /// Keeps `note`, a signed checkpoint of stream `id` (signed by another node holding the
    /// same key: a cluster's leader), under `checkpoints/<id>/<size>.checkpoint`, synced.
    /// Returns it as kept.
    ///
    /// Errors: [`Error::ReadOnly`]; [`Error::UnknownCheckpoint`] when the note does not parse
    /// or this store's tree at its size has another root (nothing kept);
    /// [`Error::CheckpointConflict`] when the stream does not extend the largest checkpoint
    /// already kept; tree errors as [`Kimberlite::tree_root_at`]; [`Error::Io`].
    pub fn keep_signed_checkpoint(&self, id: StreamId, note: &str) -> Result<SignedCheckpoint> {
        let offered = OfferedNote::parse(self, id, note)?;
        let checkpoint = &offered.checkpoint;
        let size = checkpoint.tree_size;
        let head = self.tree_head(id)?;
        if size > head.tree_size {
            return Err(offered.refused(format!("the stream holds {} events", head.tree_size)));
        }
        let root = self.tree_root_at(id, size)?;
        if root != checkpoint.root {
            return Err(offered.refused(format!(
                "the log's root at this size is {root}, the note's {}",
                checkpoint.root
            )));
        }
        self.check_extends_last_kept(id, head.tree_size, head.root)?;
        let Some((fs, dir)) = self.checkpoint_dir(id) else {
            return Ok(SignedCheckpoint {
                tree_size: size,
                root,
                note: note.to_owned(),
                path: None,
            });
        };
        let path = dir.join(format!("{size:020}.checkpoint"));
        if fs
            .read(&path)
            .ok()
            .is_none_or(|kept| kept != note.as_bytes())
        {
            let temporary = dir.join(format!("{size:020}.checkpoint.tmp"));
            make_dir_durably(fs, &dir)
                .and_then(|()| replace_file(fs, &dir, &temporary, &path, note.as_bytes()))
                .map_err(|error| Error::io(format!("storing {}", path.display()), error))?;
        }
        Ok(SignedCheckpoint {
            tree_size: size,
            root,
            note: note.to_owned(),
            path: Some(path),
        })
    }

    /// The checkpoint of the largest size kept for stream `id` (signed here or kept by
    /// [`Kimberlite::keep_signed_checkpoint`]), if any. A file that does not parse as a
    /// checkpoint of the size it is named for is an error.
    pub fn latest_signed_checkpoint(&self, id: StreamId) -> Result<Option<SignedCheckpoint>> {
        self.read_state().name_of(id)?;
        let (Some((fs, _)), Some(kept)) = (self.checkpoint_dir(id), self.last_kept_checkpoint(id)?)
        else {
            return Ok(None);
        };
        let body = fs
            .read(&kept.path)
            .map_err(|error| Error::io(format!("reading {}", kept.path.display()), error))?;
        let (note, checkpoint) =
            parse_kept_note(body, kept.size).map_err(|reason| Error::UnknownCheckpoint {
                name: self.stream_name(id).unwrap_or_default(),
                size: kept.size,
                reason,
            })?;
        Ok(Some(SignedCheckpoint {
            tree_size: kept.size,
            root: checkpoint.root,
            note,
            path: Some(kept.path),
        }))
    }
}

/// Creates `dir` (`checkpoints/<id>/`) if missing, its new entries synced in their parents:
/// a replica keeps the note once, when it applies the entry, so a crash must not take the
/// directory holding it.
fn make_dir_durably(fs: &dyn StoreFs, dir: &Path) -> std::io::Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take(2)
        .filter(|path| fs.entry_kind(path).ok().flatten().is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    fs.create_dir_all(dir)?;
    for path in missing.iter().rev() {
        if let Some(parent) = path.parent() {
            fs.sync_dir(parent)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kimberlite_proof::{sign_checkpoint, stream_origin, Checkpoint, SignerKey};

    use super::*;
    use crate::head::ExpectedOffset;

    fn note_of(size: u64, root: Hash) -> String {
        let key = SignerKey::from_seed("server", [9; 32]).unwrap();
        let checkpoint = Checkpoint {
            origin: stream_origin("ehr", "billing").unwrap(),
            tree_size: size,
            root,
            extensions: Vec::new(),
        };
        sign_checkpoint(&key, &checkpoint).unwrap()
    }

    #[test]
    fn a_note_of_this_history_is_kept_once_and_another_history_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Kimberlite::open(dir.path()).unwrap();
        let id = store.create_stream("billing").unwrap();
        assert_eq!(store.latest_signed_checkpoint(id).unwrap(), None);
        store
            .append(id, ["a", "b", "c"], ExpectedOffset::Any)
            .unwrap();
        let two = store.tree_root_at(id, 2).unwrap();
        assert_eq!(two, store.consistency_proof(id, 2, 3).unwrap().old_root);
        assert_eq!(
            store.tree_root_at(id, 3).unwrap(),
            store.tree_head(id).unwrap().root
        );
        assert!(matches!(
            store.tree_root_at(id, 4),
            Err(Error::TreeRange { .. })
        ));
        // A checkpoint of a size below the stream's: its root is the tree's at that size.
        let note = note_of(2, two);
        let kept = store.keep_signed_checkpoint(id, &note).unwrap();
        assert_eq!((kept.tree_size, kept.root), (2, two));
        let path = kept.path.clone().unwrap();
        assert!(path.ends_with("checkpoints/00000000000000000001/00000000000000000002.checkpoint"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), note);
        assert_eq!(store.keep_signed_checkpoint(id, &note).unwrap(), kept);
        assert_eq!(store.latest_signed_checkpoint(id).unwrap(), Some(kept));
        // Another root at a size the stream holds, a size past its end, garbage: refused,
        // nothing kept.
        let three = store.tree_head(id).unwrap().root;
        for bad in [note_of(3, two), note_of(4, three), "garbage".to_owned()] {
            assert!(
                matches!(
                    store.keep_signed_checkpoint(id, &bad),
                    Err(Error::UnknownCheckpoint { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(
            store
                .latest_signed_checkpoint(id)
                .unwrap()
                .unwrap()
                .tree_size,
            2
        );
        // What the store's own signing keeps reads back the same way.
        let key = SignerKey::from_seed("server", [9; 32]).unwrap();
        let origin = stream_origin("ehr", "billing").unwrap();
        let signed = store.sign_checkpoint(id, &origin, &key).unwrap();
        assert_eq!(signed.note, note_of(3, three));
        assert_eq!(store.latest_signed_checkpoint(id).unwrap(), Some(signed));
    }
}
