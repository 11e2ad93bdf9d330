//! Cosigned checkpoints: a checkpoint this store signed, with the witnesses' cosignature
//! lines added, kept beside it as `checkpoints/<id>/<size>.cosigned`.
//!
//! The witness client (in the server) adds cosignatures as witnesses answer; receipts and the
//! tiles view hand out the largest cosigned checkpoint. Only a note whose checkpoint text and
//! log signature are exactly those of the kept `<size>.checkpoint` is taken: the store never
//! keeps a cosigned checkpoint it did not sign. Replacing a file writes a temporary file,
//! syncs it and renames it over the old one, so a crash leaves the old or the new note.

use kimberlite_proof::split_note;
use kimberlite_types::StreamId;

use crate::error::{Error, Result};
use crate::signed_checkpoint::{parse_kept_note, OfferedNote, SignedCheckpoint};
use crate::store::Kimberlite;
use crate::store_fs::replace_file;

/// The file name suffix of cosigned checkpoints.
const COSIGNED_SUFFIX: &str = ".cosigned";

impl Kimberlite {
    /// Keeps `note`, a checkpoint of stream `id` this store signed (its text and log signature
    /// as kept in `<size>.checkpoint`) with cosignature lines added, as `<size>.cosigned`,
    /// replacing the previous cosigned note of that size. Returns it as kept.
    ///
    /// Errors: [`Error::ReadOnly`]; [`Error::UnknownCheckpoint`] when the note is not a
    /// checkpoint this store kept for the stream (another text, another log signature, or
    /// no checkpoint of its size); [`Error::Io`] when a file cannot be read or written.
    pub fn keep_cosigned_checkpoint(&self, id: StreamId, note: &str) -> Result<SignedCheckpoint> {
        let offered = OfferedNote::parse(self, id, note)?;
        let (text, signatures, checkpoint) =
            (offered.text, &offered.signatures, &offered.checkpoint);
        let size = checkpoint.tree_size;
        let Some((fs, dir)) = self.checkpoint_dir(id) else {
            return Err(offered.refused("an in-memory store keeps no checkpoints".into()));
        };
        let signed_path = dir.join(format!("{size:020}.checkpoint"));
        let signed = fs
            .read(&signed_path)
            .map_err(|_| offered.refused("no checkpoint of this size was signed".into()))?;
        let signed = String::from_utf8(signed)
            .map_err(|_| offered.refused("the kept checkpoint is not UTF-8".into()))?;
        let (signed_text, signed_lines) =
            split_note(&signed).map_err(|error| offered.refused(error.to_string()))?;
        if signed_text != text {
            return Err(offered.refused("its text differs from the checkpoint signed".into()));
        }
        if !signed_lines.iter().all(|line| signatures.contains(line)) {
            return Err(offered.refused("it lacks the log's signature".into()));
        }
        let path = dir.join(format!("{size:020}{COSIGNED_SUFFIX}"));
        let temporary = dir.join(format!("{size:020}{COSIGNED_SUFFIX}.tmp"));
        replace_file(fs, &dir, &temporary, &path, note.as_bytes())
            .map_err(|error| Error::io(format!("storing {}", path.display()), error))?;
        Ok(SignedCheckpoint {
            tree_size: size,
            root: checkpoint.root,
            note: note.to_owned(),
            path: Some(path),
        })
    }

    /// The cosigned checkpoint of the largest size kept for stream `id`, if any. A file that
    /// does not parse as a checkpoint of the size it is named for is an error, not skipped.
    pub fn latest_cosigned_checkpoint(&self, id: StreamId) -> Result<Option<SignedCheckpoint>> {
        self.latest_cosigned_checkpoint_where(id, |_| true)
    }

    /// The cosigned checkpoint of the largest size kept for stream `id` that `accept`
    /// accepts (for example: whose cosignatures meet a witness policy's quorum), looking from
    /// the largest size down. A damaged file met on the way is an error, as for
    /// [`Kimberlite::latest_cosigned_checkpoint`].
    pub fn latest_cosigned_checkpoint_where(
        &self,
        id: StreamId,
        mut accept: impl FnMut(&SignedCheckpoint) -> bool,
    ) -> Result<Option<SignedCheckpoint>> {
        let Some((fs, dir)) = self.checkpoint_dir(id) else {
            return Ok(None);
        };
        let mut sizes: Vec<u64> = fs
            .list_dir(&dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|name| name.strip_suffix(COSIGNED_SUFFIX)?.parse::<u64>().ok())
            .collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        for size in sizes {
            let path = dir.join(format!("{size:020}{COSIGNED_SUFFIX}"));
            let damaged = |reason: String| Error::UnknownCheckpoint {
                name: self.stream_name(id).unwrap_or_default(),
                size,
                reason: format!("{}: {reason}", path.display()),
            };
            let body = fs
                .read(&path)
                .map_err(|error| Error::io(format!("reading {}", path.display()), error))?;
            let (note, checkpoint) = parse_kept_note(body, size).map_err(damaged)?;
            let kept = SignedCheckpoint {
                tree_size: size,
                root: checkpoint.root,
                note,
                path: Some(path),
            };
            if accept(&kept) {
                return Ok(Some(kept));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use kimberlite_proof::{add_cosignatures, stream_origin, Checkpoint, SignerKey, WitnessSigner};

    use super::*;
    use crate::head::ExpectedOffset;

    #[test]
    fn only_a_checkpoint_this_store_signed_is_kept_cosigned_and_the_largest_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let key = SignerKey::from_seed("server", [9; 32]).unwrap();
        let origin = stream_origin("ehr", "billing").unwrap();
        let witness = WitnessSigner::from_seed("w1", [3; 32]).unwrap();
        let store = Kimberlite::open(dir.path()).unwrap();
        let id = store.create_stream("billing").unwrap();
        assert_eq!(store.latest_cosigned_checkpoint(id).unwrap(), None);
        store.append(id, ["a", "b"], ExpectedOffset::Any).unwrap();
        let two = store.sign_checkpoint(id, &origin, &key).unwrap();
        store.append(id, ["c"], ExpectedOffset::Any).unwrap();
        let three = store.sign_checkpoint(id, &origin, &key).unwrap();
        let cosign = |note: &str| {
            let (text, _) = split_note(note).unwrap();
            let line = witness.cosign(text, 1_700_000_000).unwrap();
            add_cosignatures(note, &line).unwrap()
        };
        let kept = store
            .keep_cosigned_checkpoint(id, &cosign(&three.note))
            .unwrap();
        assert_eq!(kept.tree_size, 3);
        store
            .keep_cosigned_checkpoint(id, &cosign(&two.note))
            .unwrap();
        // The largest size wins, whatever the order of arrival.
        assert_eq!(
            store.latest_cosigned_checkpoint(id).unwrap(),
            Some(kept.clone())
        );
        assert!(witness.verifier().verify(&kept.note).is_ok());
        // Not signed by this store: another log key, or a size never signed.
        let other = SignerKey::from_seed("server", [8; 32]).unwrap();
        let forged = kimberlite_proof::sign_checkpoint(
            &other,
            &Checkpoint::parse(split_note(&three.note).unwrap().0).unwrap(),
        )
        .unwrap();
        for note in [
            cosign(&forged),
            three.note.replace("\n3\n", "\n4\n"),
            "garbage".into(),
        ] {
            assert!(
                matches!(
                    store.keep_cosigned_checkpoint(id, &note),
                    Err(Error::UnknownCheckpoint { .. })
                ),
                "{note}"
            );
        }
        assert_eq!(
            store.latest_cosigned_checkpoint(id).unwrap(),
            Some(kept.clone())
        );
        // The largest one a predicate accepts, looking down from the largest.
        let smaller = store
            .latest_cosigned_checkpoint_where(id, |kept| kept.tree_size < 3)
            .unwrap()
            .unwrap();
        assert_eq!(smaller.tree_size, 2);
        assert!(witness.verifier().verify(&smaller.note).is_ok());
        assert_eq!(
            store
                .latest_cosigned_checkpoint_where(id, |_| false)
                .unwrap(),
            None
        );
        // A damaged file is reported, not skipped.
        std::fs::write(
            dir.path()
                .join("checkpoints/00000000000000000001/00000000000000000009.cosigned"),
            "garbage",
        )
        .unwrap();
        assert!(matches!(
            store.latest_cosigned_checkpoint(id),
            Err(Error::UnknownCheckpoint { size: 9, .. })
        ));
    }
}
