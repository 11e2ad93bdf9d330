//! Signed checkpoints of a stream, kept where the store reads them back as evidence.
//!
//! [`Kimberlite::sign_checkpoint`] signs the stream's checked tree head ([`Kimberlite::
//! tree_head`]) as a C2SP checkpoint under its origin (`kimberlite_proof::signing`), and keeps
//! it in `checkpoints/<id>/<size>.checkpoint`, synced, before handing it out: at the next
//! open those files say how long each stream was (module `lost`), and `kimberlite audit`
//! takes them as evidence. The CLI's `checkpoint` and the server's checkpoint route both
//! sign through here.

use std::path::PathBuf;

use kimberlite_proof::{sign_checkpoint, split_note, Checkpoint, Hash, SignatureLine, SignerKey};
use kimberlite_types::StreamId;

use crate::error::{Error, Result};
use crate::lost::CHECKPOINT_DIR;
use crate::store::Kimberlite;
use crate::store_fs::StoreFs;

/// A checkpoint signed by [`Kimberlite::sign_checkpoint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// Events the checkpoint covers.
    pub tree_size: u64,
    /// The tree's root.
    pub root: Hash,
    /// The signed note (C2SP checkpoint text, a blank line, the signature line).
    pub note: String,
    /// Where the store keeps it; `None` for an in-memory store.
    pub path: Option<PathBuf>,
}

/// A checkpoint the store kept: what a new one must extend.
pub(crate) struct KeptCheckpoint {
    pub(crate) size: u64,
    root: Hash,
    pub(crate) path: PathBuf,
}

impl Kimberlite {
    /// Signs the current durable tree head of stream `id` as the checkpoint of `origin`
    /// (`<store name>/<stream name>`) with `key`, keeps it under the store's
    /// `checkpoints/<id>/` (synced, following no link inside the store: SPEC.md section 7),
    /// and returns it. Nothing is signed that the store's checks of its tree refuse.
    ///
    /// Errors: as [`Kimberlite::tree_head`]; [`Error::ReadOnly`] on a read-only store;
    /// [`Error::Io`] when the file cannot be written; [`Error::Signing`] when `origin` cannot
    /// start a checkpoint (a control character); [`Error::CheckpointConflict`] when the
    /// stream does not extend the largest checkpoint kept for it (rolled back, rewritten, or
    /// that file unreadable): nothing is signed.
    pub fn sign_checkpoint(
        &self,
        id: StreamId,
        origin: &str,
        key: &SignerKey,
    ) -> Result<SignedCheckpoint> {
        if self.inner.config.read_only {
            return Err(Error::ReadOnly);
        }
        let head = self.tree_head(id)?;
        self.check_extends_last_kept(id, head.tree_size, head.root)?;
        let checkpoint = Checkpoint {
            origin: origin.to_owned(),
            tree_size: head.tree_size,
            root: head.root,
            extensions: Vec::new(),
        };
        let note = sign_checkpoint(key, &checkpoint).map_err(|source| Error::Signing {
            name: self.stream_name(id).unwrap_or_default(),
            source,
        })?;
        let path = self.keep_checkpoint(id, head.tree_size, &note)?;
        Ok(SignedCheckpoint {
            tree_size: head.tree_size,
            root: head.root,
            note,
            path,
        })
    }

    /// Refuses to sign a tree of `size` and `root` that does not extend the largest
    /// checkpoint kept for `id` (a store rolled back or rewritten after it was signed): the
    /// log never signs two histories. The kept root is compared with the log's own root at
    /// that size, proven consistent with the checked head (`consistency_proof`).
    pub(crate) fn check_extends_last_kept(
        &self,
        id: StreamId,
        size: u64,
        root: Hash,
    ) -> Result<()> {
        let Some(kept) = self.last_kept_checkpoint(id)? else {
            return Ok(());
        };
        let name = self.stream_name(id).unwrap_or_default();
        let refuse = |reason: String| Error::CheckpointConflict {
            name: name.clone(),
            size,
            signed_size: kept.size,
            path: kept.path.clone(),
            reason,
        };
        let log_root = if kept.size > size {
            return Err(refuse(
                "the stream is now shorter than what was signed".into(),
            ));
        } else if kept.size == size {
            root
        } else {
            self.consistency_proof(id, kept.size, size)?.old_root
        };
        if log_root != kept.root {
            return Err(refuse(format!(
                "the log's root at size {} is {log_root}, the signed one {}",
                kept.size, kept.root
            )));
        }
        Ok(())
    }

    /// The largest checkpoint kept for `id` (by the size its file is named for), parsed.
    pub(crate) fn last_kept_checkpoint(&self, id: StreamId) -> Result<Option<KeptCheckpoint>> {
        let Some((fs, dir)) = self.checkpoint_dir(id) else {
            return Ok(None);
        };
        let Some((named, path)) = fs
            .list_dir(&dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|name| {
                let size = name.strip_suffix(".checkpoint")?.parse::<u64>().ok()?;
                Some((size, dir.join(name)))
            })
            .max()
        else {
            return Ok(None);
        };
        let damaged = |reason: String| Error::CheckpointConflict {
            name: self.stream_name(id).unwrap_or_default(),
            size: named,
            signed_size: named,
            path: path.clone(),
            reason,
        };
        let body = fs
            .read(&path)
            .map_err(|error| Error::io(format!("reading {}", path.display()), error))?;
        let (_, checkpoint) = parse_kept_note(body, named).map_err(damaged)?;
        Ok(Some(KeptCheckpoint {
            size: named,
            root: checkpoint.root,
            path,
        }))
    }

    /// The root signed in the checkpoint of `size` events kept for `id`, if that file is
    /// there and parses.
    pub(crate) fn kept_checkpoint_root(&self, id: StreamId, size: u64) -> Option<Hash> {
        let (fs, dir) = self.checkpoint_dir(id)?;
        let body = fs.read(&dir.join(format!("{size:020}.checkpoint"))).ok()?;
        parse_kept_note(body, size)
            .ok()
            .map(|(_, checkpoint)| checkpoint.root)
    }

    /// The file system and the directory `checkpoints/<id>/` where stream `id`'s signed and
    /// cosigned checkpoints are kept; `None` for an in-memory store.
    pub(crate) fn checkpoint_dir(&self, id: StreamId) -> Option<(&dyn StoreFs, PathBuf)> {
        let files = self.inner.files.as_ref()?;
        let dir = files
            .dir
            .join(CHECKPOINT_DIR)
            .join(format!("{:020}", id.as_u64()));
        Some((&*files.fs, dir))
    }

    /// Writes `note` to `checkpoints/<id>/<size>.checkpoint` and syncs it.
    fn keep_checkpoint(&self, id: StreamId, size: u64, note: &str) -> Result<Option<PathBuf>> {
        let Some((fs, dir)) = self.checkpoint_dir(id) else {
            return Ok(None);
        };
        let path = dir.join(format!("{size:020}.checkpoint"));
        // Signatures are deterministic: a checkpoint of a size already kept is the same note,
        // and a follower asking again costs no write.
        if fs.read(&path).is_ok_and(|kept| kept == note.as_bytes()) {
            return Ok(Some(path));
        }
        fs.create_dir_all(&dir)
            .and_then(|()| fs.create(&path))
            .and_then(|mut file| {
                file.write_all_at(note.as_bytes(), 0)?;
                file.sync_data()
            })
            .and_then(|()| fs.sync_dir(&dir))
            .map_err(|error| Error::io(format!("storing {}", path.display()), error))?;
        Ok(Some(path))
    }
}

/// A note offered to the store for keeping (signed by a cluster's leader, or cosigned by
/// witnesses), split and parsed, with the stream's name for the refusals that follow.
pub(crate) struct OfferedNote<'a> {
    /// The stream's name, for [`Error::UnknownCheckpoint`].
    name: String,
    /// The checkpoint text (before the blank line).
    pub(crate) text: &'a str,
    /// The signature lines.
    pub(crate) signatures: Vec<SignatureLine<'a>>,
    /// The checkpoint the text states.
    pub(crate) checkpoint: Checkpoint,
}

impl<'a> OfferedNote<'a> {
    /// Refuses the store being read-only, then splits and parses `note` of stream `id`; a
    /// note that does not split or parse is [`Error::UnknownCheckpoint`] of size 0.
    pub(crate) fn parse(store: &Kimberlite, id: StreamId, note: &'a str) -> Result<Self> {
        if store.inner.config.read_only {
            return Err(Error::ReadOnly);
        }
        let name = store.stream_name(id).unwrap_or_default();
        let unknown = |reason: String| Error::UnknownCheckpoint {
            name: name.clone(),
            size: 0,
            reason,
        };
        let (text, signatures) = split_note(note).map_err(|error| unknown(error.to_string()))?;
        let checkpoint = Checkpoint::parse(text).map_err(|error| unknown(error.to_string()))?;
        Ok(Self {
            name,
            text,
            signatures,
            checkpoint,
        })
    }

    /// The refusal of this note at its size, saying `reason`; nothing is kept.
    pub(crate) fn refused(&self, reason: String) -> Error {
        Error::UnknownCheckpoint {
            name: self.name.clone(),
            size: self.checkpoint.tree_size,
            reason,
        }
    }
}

/// A kept checkpoint file's bytes, parsed: its note and checkpoint, or why it is not a
/// checkpoint of the `size` its name states.
pub(crate) fn parse_kept_note(
    body: Vec<u8>,
    size: u64,
) -> std::result::Result<(String, Checkpoint), String> {
    let note = String::from_utf8(body).map_err(|_| "it is not UTF-8".to_owned())?;
    let (text, _) = split_note(&note).map_err(|error| error.to_string())?;
    let checkpoint = Checkpoint::parse(text).map_err(|error| error.to_string())?;
    if checkpoint.tree_size != size {
        return Err(format!(
            "it states size {} under the name of size {size}",
            checkpoint.tree_size
        ));
    }
    Ok((note, checkpoint))
}

#[cfg(test)]
mod tests {
    use kimberlite_proof::{stream_origin, Checkpoint};

    use super::*;
    use crate::config::Config;
    use crate::head::ExpectedOffset;

    #[test]
    fn a_signed_checkpoint_is_kept_where_open_reads_it_and_verifies_under_its_origin() {
        let dir = tempfile::tempdir().unwrap();
        let key = SignerKey::from_seed("server", [9; 32]).unwrap();
        let origin = stream_origin("ehr", "billing").unwrap();
        let kept = {
            let store = Kimberlite::open(dir.path()).unwrap();
            let id = store.create_stream("billing").unwrap();
            store
                .append(id, ["a", "b", "c"], ExpectedOffset::Any)
                .unwrap();
            let signed = store.sign_checkpoint(id, &origin, &key).unwrap();
            assert_eq!(signed.tree_size, 3);
            assert_eq!(signed.root, store.tree_head(id).unwrap().root);
            let opened = Checkpoint::open_by_log(&signed.note, &key.verifier()).unwrap();
            assert_eq!(
                (opened.origin.as_str(), opened.tree_size),
                ("ehr/billing", 3)
            );
            // Asked again at the same size: the same note, the same file.
            assert_eq!(store.sign_checkpoint(id, &origin, &key).unwrap(), signed);
            signed
        };
        let path = kept.path.clone().unwrap();
        assert!(path.ends_with("checkpoints/00000000000000000001/00000000000000000003.checkpoint"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), kept.note);
        // A read-only store signs nothing.
        let read_only = Kimberlite::open_read_only(dir.path(), Config::default()).unwrap();
        let id = read_only.stream("billing").unwrap();
        assert!(matches!(
            read_only.sign_checkpoint(id, &origin, &key),
            Err(Error::ReadOnly)
        ));
    }

    /// A store with stream "billing" holding `events`, and its id.
    fn store_with(dir: &std::path::Path, events: &[&'static str]) -> (Kimberlite, StreamId) {
        let store = Kimberlite::open(dir).unwrap();
        let id = store.create_stream("billing").unwrap();
        store
            .append(id, events.iter().copied(), ExpectedOffset::Any)
            .unwrap();
        (store, id)
    }

    #[test]
    fn a_checkpoint_that_does_not_extend_the_last_one_signed_is_refused() {
        let key = SignerKey::from_seed("server", [9; 32]).unwrap();
        let origin = stream_origin("ehr", "billing").unwrap();
        // Another history signed under the same key and origin: what a restore from another
        // copy, or a rewrite, leaves in the store's checkpoints.
        let other = tempfile::tempdir().unwrap();
        let forked = {
            let (store, id) = store_with(other.path(), &["a", "B", "c"]);
            store.sign_checkpoint(id, &origin, &key).unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let (store, id) = store_with(dir.path(), &["a", "b", "c"]);
        let signed = store.sign_checkpoint(id, &origin, &key).unwrap();
        store.append(id, ["d"], ExpectedOffset::Any).unwrap();
        // Extending what was signed: signed.
        assert_eq!(
            store.sign_checkpoint(id, &origin, &key).unwrap().tree_size,
            4
        );
        std::fs::remove_file(
            dir.path()
                .join("checkpoints/00000000000000000001/00000000000000000004.checkpoint"),
        )
        .unwrap();
        let kept = signed.path.unwrap();
        std::fs::write(&kept, &forked.note).unwrap();
        for _ in 0..2 {
            match store.sign_checkpoint(id, &origin, &key) {
                Err(Error::CheckpointConflict {
                    size,
                    signed_size,
                    path,
                    reason,
                    ..
                }) => {
                    assert_eq!((size, signed_size), (4, 3));
                    assert_eq!(path, kept);
                    assert!(reason.contains("root at size 3"), "{reason}");
                }
                other => panic!("a fork was signed: {other:?}"),
            }
        }
        // Nothing new kept.
        assert!(!dir
            .path()
            .join("checkpoints/00000000000000000001/00000000000000000004.checkpoint")
            .exists());
        // A kept checkpoint that cannot be read is refused too, naming the file.
        std::fs::write(&kept, "garbage").unwrap();
        assert!(matches!(
            store.sign_checkpoint(id, &origin, &key),
            Err(Error::CheckpointConflict { signed_size: 3, .. })
        ));
    }
}
