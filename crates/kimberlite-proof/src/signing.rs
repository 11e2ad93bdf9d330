//! A log's checkpoints as C2SP signs them: the signature's key name is the checkpoint's
//! origin (`c2sp.org/tlog-checkpoint`), so a C2SP client configured with the verifier key
//! `<origin>+<key id>+<key>` checks them unmodified.
//!
//! A Kimberlite store is many logs, one per stream, each with the origin
//! `<store name>/<stream name>`; one Ed25519 key (from `kimberlite keygen`, whatever name it
//! was given) signs them all, each under its own origin. The key id commits to the name, so
//! the verifier key of a stream is the keygen key renamed to the stream's origin
//! ([`crate::VerifierKey::renamed`]); [`Checkpoint::open_by_log`] accepts a checkpoint signed
//! by the key under its own name or under the checkpoint's origin. An origin that cannot be a
//! key name (a stream name with a space or `+`) is signed under the key's own name.

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::note::{NoteError, SignerKey, VerifierKey};

/// A store name that cannot start an origin: empty, or holding `/` or a control character.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid store name {0:?}: it must be non-empty, without '/' or control characters")]
pub struct InvalidStoreName(pub String);

/// Checks that `store_name` can start an origin.
pub fn check_store_name(store_name: &str) -> Result<(), InvalidStoreName> {
    if store_name.is_empty() || store_name.contains('/') || store_name.chars().any(char::is_control)
    {
        return Err(InvalidStoreName(store_name.to_owned()));
    }
    Ok(())
}

/// The origin of `stream` in the store named `store_name`: `<store name>/<stream name>`.
pub fn stream_origin(store_name: &str, stream: &str) -> Result<String, InvalidStoreName> {
    check_store_name(store_name)?;
    Ok(format!("{store_name}/{stream}"))
}

/// Signs `checkpoint` with `key` under the checkpoint's origin as key name, or under the
/// key's own name when the origin cannot be one (see the module docs); returns the note.
pub fn sign_checkpoint(key: &SignerKey, checkpoint: &Checkpoint) -> Result<String, NoteError> {
    let text = checkpoint.to_text();
    match key.renamed(&checkpoint.origin) {
        Ok(named) => named.sign(&text),
        Err(_) => key.sign(&text),
    }
}

impl Checkpoint {
    /// Checks the signed note `note` as the log's checkpoint: a valid signature by
    /// `verifier`'s key, under the key's own name or under the checkpoint's origin (as
    /// [`sign_checkpoint`] signs); parses its checkpoint. The error is the one for the key's
    /// own name when neither signature is there.
    pub fn open_by_log(note: &str, verifier: &VerifierKey) -> Result<Self, CheckpointError> {
        let own_name = match Self::open(note, verifier) {
            Ok(checkpoint) => return Ok(checkpoint),
            Err(error) => error,
        };
        // The origin is read from the unverified text only to name the key to check with:
        // the signature under that name must still verify over the whole text.
        let Some(origin) = note.split('\n').next() else {
            return Err(own_name);
        };
        if origin == verifier.name() {
            return Err(own_name);
        }
        let Ok(named) = verifier.renamed(origin) else {
            return Err(own_name);
        };
        match Self::open(note, &named) {
            Ok(checkpoint) => Ok(checkpoint),
            Err(CheckpointError::Note(NoteError::NoSignature { .. })) => Err(own_name),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash;

    fn checkpoint(origin: &str) -> Checkpoint {
        Checkpoint {
            origin: origin.into(),
            tree_size: 3,
            root: Hash([5; 32]),
            extensions: vec![],
        }
    }

    #[test]
    fn a_checkpoint_is_signed_under_its_origin_and_opens_with_the_keygen_key() {
        let key = SignerKey::from_seed("auditor", [3; 32]).unwrap();
        let signed = checkpoint("store/billing");
        let note = sign_checkpoint(&key, &signed).unwrap();
        assert!(note.contains("\n\u{2014} store/billing "), "{note}");
        let origin_key = key.verifier().renamed("store/billing").unwrap();
        assert_eq!(Checkpoint::open(&note, &origin_key).unwrap(), signed);
        assert_eq!(
            Checkpoint::open_by_log(&note, &key.verifier()).unwrap(),
            signed
        );
        // Another key under the same names is refused.
        let other = SignerKey::from_seed("auditor", [4; 32]).unwrap().verifier();
        assert!(matches!(
            Checkpoint::open_by_log(&note, &other),
            Err(CheckpointError::Note(NoteError::NoSignature { .. }))
        ));
        // A changed text is refused under the origin's name too.
        let forged = note.replacen("\n3\n", "\n4\n", 1);
        assert!(matches!(
            Checkpoint::open_by_log(&forged, &key.verifier()),
            Err(CheckpointError::Note(NoteError::BadSignature { .. }))
        ));
    }

    #[test]
    fn an_origin_that_cannot_be_a_key_name_is_signed_under_the_key_name() {
        let key = SignerKey::from_seed("auditor", [3; 32]).unwrap();
        let signed = checkpoint("store/audit log");
        let note = sign_checkpoint(&key, &signed).unwrap();
        assert!(note.contains("\n\u{2014} auditor "), "{note}");
        assert_eq!(
            Checkpoint::open_by_log(&note, &key.verifier()).unwrap(),
            signed
        );
    }

    #[test]
    fn store_names_that_cannot_start_an_origin_are_refused() {
        assert_eq!(stream_origin("ehr", "billing").unwrap(), "ehr/billing");
        for name in ["", "a/b", "a\nb", "a\u{7}"] {
            assert!(stream_origin(name, "billing").is_err(), "{name:?}");
        }
    }
}
