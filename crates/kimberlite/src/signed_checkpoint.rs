//! Signed checkpoints of a stream, kept where the store reads them back as evidence.
//!
//! [`Kimberlite::sign_checkpoint`] signs the stream's checked tree head ([`Kimberlite::
//! tree_head`]) as a C2SP checkpoint under its origin (`kimberlite_proof::signing`), and keeps
//! it in `checkpoints/<id>/<size>.checkpoint`, synced, before handing it out: at the next
//! open those files say how long each stream was (module `lost`), and `kimberlite audit`
//! takes them as evidence. The CLI's `checkpoint` and the server's checkpoint route both
//! sign through here.

use std::path::PathBuf;

use kimberlite_proof::{sign_checkpoint, Checkpoint, Hash, SignerKey};
use kimberlite_types::StreamId;

use crate::error::{Error, Result};
use crate::lost::CHECKPOINT_DIR;
use crate::store::Kimberlite;

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

impl Kimberlite {
    /// Signs the current durable tree head of stream `id` as the checkpoint of `origin`
    /// (`<store name>/<stream name>`) with `key`, keeps it under the store's
    /// `checkpoints/<id>/` (synced, following no link inside the store: SPEC.md section 7),
    /// and returns it. Nothing is signed that the store's checks of its tree refuse.
    ///
    /// Errors: as [`Kimberlite::tree_head`]; [`Error::ReadOnly`] on a read-only store;
    /// [`Error::Io`] when the file cannot be written; [`Error::Signing`] when `origin` cannot
    /// start a checkpoint (a control character).
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

    /// Writes `note` to `checkpoints/<id>/<size>.checkpoint` and syncs it.
    fn keep_checkpoint(&self, id: StreamId, size: u64, note: &str) -> Result<Option<PathBuf>> {
        let Some(files) = &self.inner.files else {
            return Ok(None);
        };
        let dir = files
            .dir
            .join(CHECKPOINT_DIR)
            .join(format!("{:020}", id.as_u64()));
        let path = dir.join(format!("{size:020}.checkpoint"));
        let fs = &*files.fs;
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
}
