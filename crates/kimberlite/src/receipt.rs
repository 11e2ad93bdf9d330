//! Receipts for events (docs/PROOFS.md, "For auditors"): a C2SP tlog proof of an event
//! against the largest checkpoint witnesses cosigned that covers it, or, when none does, a
//! checkpoint signed now and marked unwitnessed. The CLI's `prove --receipt` and the server's
//! receipt route both build them here.
//!
//! A receipt is evidence, so it gets a proof's checks: the event is read from the log
//! (chain-checked) and its leaf hash must be the tree's; the proof must lead to the
//! checkpoint's root, or the tree disagrees with what was signed and nothing is handed out.

use kimberlite_proof::{event_leaf_hash, Receipt, SignerKey, WitnessPolicy};
use kimberlite_types::{Offset, StreamId};

use crate::error::{Error, Result, TreeEvidence};
use crate::signed_checkpoint::SignedCheckpoint;
use crate::store::Kimberlite;

/// A receipt and what its checkpoint is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventReceipt {
    /// The receipt (`Receipt::to_text` gives the `.tlog-proof` file).
    pub receipt: Receipt,
    /// The checkpoint's tree size.
    pub tree_size: u64,
    /// True when the checkpoint is one kept with witnesses' cosignatures
    /// ([`Kimberlite::latest_cosigned_checkpoint`]) that meet the policy given, if any;
    /// false when it was signed for this receipt and is not witnessed yet.
    pub witnessed: bool,
}

impl Kimberlite {
    /// A receipt for the event at `offset` of stream `id`: against the largest cosigned
    /// checkpoint (whose cosignatures meet `policy`'s quorum, when a policy is given: a
    /// checkpoint only some witnesses answered for is not witnessed) if it covers the event, else against a checkpoint of the current durable
    /// head signed now with `key` under `origin` ([`Kimberlite::sign_checkpoint`], kept as
    /// usual). `Ok(None)` when no checkpoint covers the event: no cosigned one does and there
    /// is no `key`, or the event is not durable (past the stream's end).
    ///
    /// Errors: as [`Kimberlite::sign_checkpoint`] and [`Kimberlite::inclusion_proof`];
    /// [`Error::TreeDamaged`] when the log's event, the tree and the checkpoint's root do not
    /// agree.
    pub fn event_receipt(
        &self,
        id: StreamId,
        offset: u64,
        origin: &str,
        key: Option<&SignerKey>,
        policy: Option<&WitnessPolicy>,
    ) -> Result<Option<EventReceipt>> {
        let covers = |checkpoint: &SignedCheckpoint| checkpoint.tree_size > offset;
        let meets_policy =
            |kept: &SignedCheckpoint| policy.is_none_or(|policy| policy.check(&kept.note).is_ok());
        let (checkpoint, witnessed) =
            match self.latest_cosigned_checkpoint_where(id, meets_policy)? {
                Some(cosigned) if covers(&cosigned) => (cosigned, true),
                _ => match key {
                    Some(key) => (self.sign_checkpoint(id, origin, key)?, false),
                    None => return Ok(None),
                },
            };
        if !covers(&checkpoint) {
            return Ok(None);
        }
        let tree_size = checkpoint.tree_size;
        let proof = self.inclusion_proof(id, Offset::new(offset), tree_size)?;
        let damaged = |reason: String| Error::TreeDamaged {
            name: self.stream_name(id).unwrap_or_default(),
            stream: id,
            evidence: TreeEvidence::Inclusion {
                offset: Offset::new(offset),
                tree_size,
            },
            reason,
        };
        let event = self
            .read(id, Offset::new(offset), 1)?
            .into_iter()
            .next()
            .filter(|event| event.offset.as_u64() == offset)
            .ok_or_else(|| damaged(format!("no event at offset {offset} to hash")))?;
        if event_leaf_hash(offset, &event.payload) != proof.leaf_hash {
            return Err(damaged(
                "the stored leaf is not the hash of the log's event".into(),
            ));
        }
        if proof.root != checkpoint.root {
            return Err(damaged(format!(
                "the tree's root at size {tree_size} is {}, the checkpoint's {}",
                proof.root, checkpoint.root
            )));
        }
        Ok(Some(EventReceipt {
            receipt: Receipt::new(offset, proof.leaf_hash, proof.hashes, &checkpoint.note),
            tree_size,
            witnessed,
        }))
    }
}

#[cfg(test)]
mod tests {
    use kimberlite_proof::{
        add_cosignatures, split_note, stream_origin, verify_receipt, WitnessPolicy, WitnessSigner,
    };

    use super::*;
    use crate::head::ExpectedOffset;

    #[test]
    fn receipts_prefer_a_covering_cosigned_checkpoint_and_say_when_unwitnessed() {
        let dir = tempfile::tempdir().unwrap();
        let key = SignerKey::from_seed("server", [9; 32]).unwrap();
        let origin = stream_origin("ehr", "billing").unwrap();
        let witness = WitnessSigner::from_seed("w1", [3; 32]).unwrap();
        let policy = WitnessPolicy::new(vec![witness.verifier()], 1).unwrap();
        let store = Kimberlite::open(dir.path()).unwrap();
        let id = store.create_stream("billing").unwrap();
        store.append(id, ["a", "b"], ExpectedOffset::Any).unwrap();
        // Nothing covers an event without a key or a cosigned checkpoint.
        assert_eq!(
            store.event_receipt(id, 0, &origin, None, None).unwrap(),
            None
        );
        let two = store.sign_checkpoint(id, &origin, &key).unwrap();
        let line = witness
            .cosign(split_note(&two.note).unwrap().0, 1_700_000_000)
            .unwrap();
        store
            .keep_cosigned_checkpoint(id, &add_cosignatures(&two.note, &line).unwrap())
            .unwrap();
        store.append(id, ["c"], ExpectedOffset::Any).unwrap();

        let witnessed = store
            .event_receipt(id, 1, &origin, None, None)
            .unwrap()
            .unwrap();
        assert!(witnessed.witnessed);
        assert_eq!(witnessed.tree_size, 2);
        let text = witnessed.receipt.to_text();
        let verified =
            verify_receipt(&text, &key.verifier(), Some(&policy), Some(b"b".as_slice())).unwrap();
        assert_eq!(verified.cosigned.len(), 1);
        // Below a policy's quorum, a cosigned checkpoint is not witnessed: one is signed now.
        let other = WitnessSigner::from_seed("w2", [4; 32]).unwrap();
        let strict = WitnessPolicy::new(vec![witness.verifier(), other.verifier()], 2).unwrap();
        let unmet = store
            .event_receipt(id, 1, &origin, Some(&key), Some(&strict))
            .unwrap()
            .unwrap();
        assert!(!unmet.witnessed);
        assert_eq!(unmet.tree_size, 3);
        assert_eq!(
            store
                .event_receipt(id, 1, &origin, None, Some(&policy))
                .unwrap()
                .map(|r| r.witnessed),
            Some(true)
        );
        // Event 2 is past the cosigned checkpoint: signed now, unwitnessed, and only with a key.
        assert_eq!(
            store.event_receipt(id, 2, &origin, None, None).unwrap(),
            None
        );
        let fresh = store
            .event_receipt(id, 2, &origin, Some(&key), None)
            .unwrap()
            .unwrap();
        assert!(!fresh.witnessed);
        assert_eq!(fresh.tree_size, 3);
        let text = fresh.receipt.to_text();
        assert!(verify_receipt(&text, &key.verifier(), None, Some(b"c".as_slice())).is_ok());
        assert!(verify_receipt(&text, &key.verifier(), Some(&policy), None).is_err());
        // Past the durable end: no checkpoint can cover it.
        assert_eq!(
            store
                .event_receipt(id, 3, &origin, Some(&key), None)
                .unwrap(),
            None
        );
    }
}
