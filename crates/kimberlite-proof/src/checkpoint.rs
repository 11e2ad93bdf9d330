//! C2SP tlog checkpoints (`c2sp.org/tlog-checkpoint`) and the JSON proof bundles that the
//! `kimberlite` program prints, with their offline verification.
//!
//! A checkpoint is the text of a signed note ([`crate::note`]):
//!
//! ```text
//! <origin>\n                 kimberlite: "<store name>/<stream name>"
//! <tree size>\n              decimal, no leading zeros
//! <base64 root hash>\n       standard base64 of the 32-byte RFC 9162 root
//! [extension lines]\n        kept as they are, not interpreted
//! ```
//!
//! Kept from the spec: the three lines, their order and encodings, extension lines. Dropped:
//! nothing; we never write extension lines. A bundle carries a proof and what it proves; its
//! verification recomputes every hash from the event itself and trusts nothing else in it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::hash::{event_leaf_hash, Hash};
use crate::note::{NoteError, VerifierKey};
use crate::verify::{verify_consistency, verify_inclusion, ProofError};

/// The `format` of an inclusion bundle.
pub const INCLUSION_FORMAT: &str = "kimberlite-inclusion-proof/v1";
/// The `format` of a consistency bundle.
pub const CONSISTENCY_FORMAT: &str = "kimberlite-consistency-proof/v1";

/// Why a checkpoint or a bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The signed note failed (signature, key, syntax).
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The checkpoint text is malformed.
    #[error("malformed checkpoint: {reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// The bundle is not valid JSON of the expected shape.
    #[error("malformed proof: {reason}")]
    MalformedBundle {
        /// What is wrong (the JSON parser's message).
        reason: String,
    },
    /// The bundle is for another log than the checkpoint.
    #[error(
        "the proof is for {proof:?}, the checkpoint for {checkpoint:?}: a proof of another {}",
        origin_difference(checkpoint, proof)
    )]
    OriginMismatch {
        /// The checkpoint's origin.
        checkpoint: String,
        /// The bundle's origin.
        proof: String,
    },
    /// The bundle proves against another tree size than the checkpoint's.
    #[error("the proof is for tree size {proof}, the checkpoint for tree size {checkpoint}; ask for a proof at size {checkpoint}")]
    SizeMismatch {
        /// The checkpoint's tree size.
        checkpoint: u64,
        /// The bundle's tree size.
        proof: u64,
    },
    /// The bundle's leaf hash is not the hash of its event.
    #[error("the proof's leaf hash {claimed} is not the hash {computed} of its event")]
    LeafMismatch {
        /// The leaf hash the bundle claims.
        claimed: Hash,
        /// The hash of the bundle's offset and payload.
        computed: Hash,
    },
    /// The proof itself failed.
    #[error("the proof does not verify: {0}")]
    Proof(#[from] ProofError),
}

/// A checkpoint: a log's origin, its tree size and root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Names the log: for Kimberlite, `<store name>/<stream name>`.
    pub origin: String,
    /// Number of leaves (events).
    pub tree_size: u64,
    /// The RFC 9162 root of the first `tree_size` leaves.
    pub root: Hash,
    /// Extension lines, each without its newline.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The checkpoint's note text.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.tree_size,
            BASE64.encode(self.root.0)
        );
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Parses a checkpoint text (not a signed note: see [`Checkpoint::open`]).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let malformed = |reason| CheckpointError::Malformed { reason };
        let body = text
            .strip_suffix('\n')
            .ok_or(malformed("the text must end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(malformed("the origin line is empty"));
        }
        let size = lines.next().ok_or(malformed("no tree size line"))?;
        let canonical = size == "0" || (!size.starts_with('0') && !size.starts_with('+'));
        let tree_size = size
            .parse::<u64>()
            .ok()
            .filter(|_| canonical)
            .ok_or(malformed("the tree size is not a decimal number"))?;
        let root = lines.next().ok_or(malformed("no root hash line"))?;
        let root = BASE64
            .decode(root)
            .ok()
            .and_then(|bytes| Hash::from_slice(&bytes))
            .ok_or(malformed("the root is not 32 bytes of base64"))?;
        let extensions = lines.map(str::to_owned).collect::<Vec<_>>();
        if extensions.iter().any(String::is_empty) {
            return Err(malformed("an extension line is empty"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            tree_size,
            root,
            extensions,
        })
    }

    /// Checks the signed note `note` with `verifier` and parses its checkpoint.
    pub fn open(note: &str, verifier: &VerifierKey) -> Result<Self, CheckpointError> {
        Self::parse(verifier.open(note)?)
    }
}

/// An event and its inclusion proof, as `kimberlite prove` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionBundle {
    /// [`INCLUSION_FORMAT`].
    pub format: String,
    /// The log's origin (as in its checkpoints).
    pub origin: String,
    /// The event's offset (its leaf index).
    pub offset: u64,
    /// The event's payload, standard base64.
    pub payload_base64: String,
    /// The event's leaf hash (recomputed by the verifier, never trusted).
    pub leaf_hash: Hash,
    /// The tree size the proof is for.
    pub tree_size: u64,
    /// The root of that tree (checked against the checkpoint's).
    pub root: Hash,
    /// The RFC 9162 inclusion path, leaf to root.
    pub proof: Vec<Hash>,
}

impl InclusionBundle {
    /// A bundle for the event at `offset` with `payload` (encoded here, so callers need no
    /// base64 of their own).
    #[must_use]
    pub fn new(
        origin: &str,
        offset: u64,
        payload: &[u8],
        tree_size: u64,
        root: Hash,
        proof: Vec<Hash>,
    ) -> Self {
        Self {
            format: INCLUSION_FORMAT.to_owned(),
            origin: origin.to_owned(),
            offset,
            payload_base64: BASE64.encode(payload),
            leaf_hash: event_leaf_hash(offset, payload),
            tree_size,
            root,
            proof,
        }
    }
}

/// A consistency proof between two tree sizes, as `kimberlite prove-consistency` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyBundle {
    /// [`CONSISTENCY_FORMAT`].
    pub format: String,
    /// The log's origin.
    pub origin: String,
    /// The old tree size.
    pub old_size: u64,
    /// The old tree's root.
    pub old_root: Hash,
    /// The new tree size.
    pub new_size: u64,
    /// The new tree's root.
    pub new_root: Hash,
    /// The RFC 9162 consistency proof.
    pub proof: Vec<Hash>,
}

/// What a verified bundle proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The event at `offset` with this payload is in the checkpointed tree.
    Inclusion {
        /// The event's offset.
        offset: u64,
        /// The event's payload.
        payload: Vec<u8>,
        /// The checkpoint's tree size.
        tree_size: u64,
    },
    /// The tree of `new_size` extends the tree of `old_size`; `signed_side` says which side
    /// the checkpoint vouched for (the other root is the bundle's claim, now tied to it).
    Consistency {
        /// The old tree size.
        old_size: u64,
        /// The new tree size.
        new_size: u64,
        /// `old` or `new`.
        signed_side: &'static str,
    },
}

/// Verifies a JSON bundle (inclusion or consistency) against a signed checkpoint (opened
/// with [`Checkpoint::open_by_log`]): the whole offline check of `kimberlite verify-proof`.
/// Pure: no I/O.
pub fn verify_bundle(
    verifier: &VerifierKey,
    checkpoint_note: &str,
    bundle_json: &str,
) -> Result<Verified, CheckpointError> {
    let checkpoint = Checkpoint::open_by_log(checkpoint_note, verifier)?;
    let value: serde_json::Value =
        serde_json::from_str(bundle_json).map_err(|e| CheckpointError::MalformedBundle {
            reason: e.to_string(),
        })?;
    let format = value.get("format").and_then(serde_json::Value::as_str);
    let bad = |e: serde_json::Error| CheckpointError::MalformedBundle {
        reason: e.to_string(),
    };
    match format {
        Some(INCLUSION_FORMAT) => {
            verify_inclusion_bundle(&checkpoint, &serde_json::from_value(value).map_err(bad)?)
        }
        Some(CONSISTENCY_FORMAT) => {
            verify_consistency_bundle(&checkpoint, &serde_json::from_value(value).map_err(bad)?)
        }
        _ => Err(CheckpointError::MalformedBundle {
            reason: format!("\"format\" must be {INCLUSION_FORMAT:?} or {CONSISTENCY_FORMAT:?}"),
        }),
    }
}

/// How two Kimberlite origins (`<store name>/<stream name>`) differ: `"store"`, `"stream"`
/// or `"store and stream"` (also for equal ones, which nobody asks about).
#[must_use]
pub fn origin_difference(a: &str, b: &str) -> &'static str {
    fn parts(origin: &str) -> (&str, &str) {
        origin.split_once('/').unwrap_or((origin, ""))
    }
    let ((store_a, stream_a), (store_b, stream_b)) = (parts(a), parts(b));
    match (store_a == store_b, stream_a == stream_b) {
        (false, true) => "store",
        (true, false) => "stream",
        _ => "store and stream",
    }
}

fn check_origin(checkpoint: &Checkpoint, origin: &str) -> Result<(), CheckpointError> {
    if checkpoint.origin != origin {
        return Err(CheckpointError::OriginMismatch {
            checkpoint: checkpoint.origin.clone(),
            proof: origin.to_owned(),
        });
    }
    Ok(())
}

/// Verifies an inclusion bundle against an opened checkpoint.
pub fn verify_inclusion_bundle(
    checkpoint: &Checkpoint,
    bundle: &InclusionBundle,
) -> Result<Verified, CheckpointError> {
    check_origin(checkpoint, &bundle.origin)?;
    if bundle.tree_size != checkpoint.tree_size {
        return Err(CheckpointError::SizeMismatch {
            checkpoint: checkpoint.tree_size,
            proof: bundle.tree_size,
        });
    }
    let payload =
        BASE64
            .decode(&bundle.payload_base64)
            .map_err(|e| CheckpointError::MalformedBundle {
                reason: format!("payload_base64: {e}"),
            })?;
    let computed = event_leaf_hash(bundle.offset, &payload);
    if computed != bundle.leaf_hash {
        return Err(CheckpointError::LeafMismatch {
            claimed: bundle.leaf_hash,
            computed,
        });
    }
    verify_inclusion(
        &computed,
        bundle.offset,
        checkpoint.tree_size,
        &bundle.proof,
        &checkpoint.root,
    )?;
    Ok(Verified::Inclusion {
        offset: bundle.offset,
        payload,
        tree_size: checkpoint.tree_size,
    })
}

/// Verifies a consistency bundle against an opened checkpoint, which must be one of its two
/// sides (size and root).
pub fn verify_consistency_bundle(
    checkpoint: &Checkpoint,
    bundle: &ConsistencyBundle,
) -> Result<Verified, CheckpointError> {
    check_origin(checkpoint, &bundle.origin)?;
    let signed_side = if checkpoint.tree_size == bundle.old_size {
        (checkpoint.root, bundle.new_root, "old")
    } else if checkpoint.tree_size == bundle.new_size {
        (bundle.old_root, checkpoint.root, "new")
    } else {
        return Err(CheckpointError::SizeMismatch {
            checkpoint: checkpoint.tree_size,
            proof: bundle.old_size,
        });
    };
    let (old_root, new_root, side) = signed_side;
    verify_consistency(
        bundle.old_size,
        bundle.new_size,
        &old_root,
        &new_root,
        &bundle.proof,
    )?;
    Ok(Verified::Consistency {
        old_size: bundle.old_size,
        new_size: bundle.new_size,
        signed_side: side,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_text_roundtrips() {
        let checkpoint = Checkpoint {
            origin: "store/audit log".into(),
            tree_size: 42,
            root: Hash([9; 32]),
            extensions: vec![],
        };
        let text = checkpoint.to_text();
        assert_eq!(Checkpoint::parse(&text).unwrap(), checkpoint);
    }

    #[test]
    fn malformed_checkpoints_are_errors() {
        for text in [
            "",
            "origin\n",
            "origin\n01\nAAAA\n",
            "origin\n-1\nAAAA\n",
            "origin\n1\nAAAA\n",
            "origin\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        ] {
            assert!(Checkpoint::parse(text).is_err(), "{text:?}");
        }
    }
}
