//! C2SP tlog cosignatures (`c2sp.org/tlog-cosignature`), the Ed25519 type: a witness's
//! timestamped statement that a checkpoint is the largest consistent tree it has seen of
//! that log.
//!
//! A cosignature is a note signature line, `— <witness name> base64(blob)`, where
//!
//! ```text
//! blob    = key id (4 bytes, big-endian) || timestamp (8 bytes, big-endian) || Ed25519 signature (64)
//! key id  = SHA-256(<name> || "\n" || 0x04 || 32-byte public key)[:4]
//! message = "cosignature/v1\n" || "time <timestamp>\n" || <checkpoint text, final newline included>
//! ```
//!
//! The timestamp is POSIX seconds, at most 2^63 - 1. Keys have the text forms of
//! [`crate::note`] with the algorithm byte 0x04: `<name>+<key id>+base64(0x04 || public key)`
//! and `PRIVATE+KEY+<name>+<key id>+base64(0x04 || seed)`. A witness key is not a log key:
//! the message does not commit to the witness's name, so one key serves one witness only.
//!
//! Kept from the spec: the Ed25519 type exactly. Dropped: the ML-DSA-44 type (its lines are
//! ignored as unknown keys) and any check of timestamps against a clock (the caller has one).

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

use crate::checkpoint::CheckpointError;
use crate::note::{
    check_key_id, check_name, check_text, decode_key_bytes_of, encode_key_bytes_of, key_id_for,
    random_seed, signature_line, split_key_text, split_note, split_private_key_text, NoteError,
};

/// The signature type byte of Ed25519 cosignatures, in key ids and key texts.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// The first line of every cosigned message: domain separation.
pub const COSIGNATURE_HEADER: &str = "cosignature/v1";
/// The largest timestamp a cosignature may carry (2^63 - 1).
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;
/// Bytes of a cosignature after its key id: timestamp and Ed25519 signature.
const COSIGNATURE_BYTES: usize = 8 + 64;

/// Why a cosignature, a witness key or a witness policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    /// The note or a key text is malformed.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The checkpoint (its log signature or its text) was refused.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A timestamp above 2^63 - 1.
    #[error("cosignature timestamp {timestamp} is above 2^63 - 1")]
    TimestampTooLarge {
        /// The timestamp.
        timestamp: u64,
    },
    /// No cosignature by this witness (name and key id) is on the note.
    #[error("the note has no cosignature by witness {name} ({key_id:08x})")]
    NoCosignature {
        /// The witness key's name.
        name: String,
        /// The witness key's id.
        key_id: u32,
    },
    /// A cosignature by this witness is on the note but does not verify.
    #[error("the cosignature by witness {name} ({key_id:08x}) does not verify: the checkpoint was changed or the cosignature forged")]
    BadCosignature {
        /// The witness key's name.
        name: String,
        /// The witness key's id.
        key_id: u32,
    },
    /// A policy's threshold is 0 or above its number of witnesses.
    #[error("a witness policy needs 1 <= threshold <= witnesses; got {threshold} of {witnesses}")]
    BadThreshold {
        /// The threshold asked for.
        threshold: usize,
        /// The number of distinct witnesses.
        witnesses: usize,
    },
    /// A witness policy's text form is malformed (`line` 0: the policy as a whole).
    #[error("witness policy line {line}: {reason}")]
    BadPolicy {
        /// The line, 1-based; 0 when the fault is the policy as a whole.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Fewer valid cosignatures than the policy's threshold.
    #[error("the checkpoint has {valid} valid cosignature(s) of the {threshold} its witness policy requires (witnesses: {names})")]
    BelowThreshold {
        /// Distinct witnesses of the policy whose cosignature verified.
        valid: usize,
        /// The policy's threshold.
        threshold: usize,
        /// The policy's witness names, comma separated.
        names: String,
    },
}

/// The message a cosignature signs: header line, time line, then the checkpoint text.
#[must_use]
pub fn cosigned_message(checkpoint_text: &str, timestamp: u64) -> String {
    format!("{COSIGNATURE_HEADER}\ntime {timestamp}\n{checkpoint_text}")
}

/// A witness's signing key (Ed25519, signature type 0x04) with its name.
#[derive(Clone)]
pub struct WitnessSigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for WitnessSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WitnessSigner({}, {:08x})", self.name, self.key_id())
    }
}

impl WitnessSigner {
    /// A new random key named `name`, from the operating system's random source.
    pub fn generate(name: &str) -> Result<Self, CosignatureError> {
        Self::from_seed(name, random_seed("witness signer")?)
    }

    /// The key named `name` from a 32-byte seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, CosignatureError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<key id>+base64(0x04 || seed)`; checks the key id.
    pub fn parse(text: &str) -> Result<Self, CosignatureError> {
        let (name, id, key) = split_private_key_text(text, "witness signer")?;
        let seed = decode_key_bytes_of(key, "witness signer", ALG_COSIGNATURE_V1)?;
        let signer = Self::from_seed(name, seed)?;
        check_key_id(id, signer.key_id(), "witness signer")?;
        Ok(signer)
    }

    /// The text form (`PRIVATE+KEY+...`). Keep it secret.
    #[must_use]
    pub fn to_text(&self) -> String {
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id(),
            encode_key_bytes_of(&self.key.to_bytes(), ALG_COSIGNATURE_V1)
        )
    }

    /// The witness's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id (with the cosignature type byte 0x04).
    #[must_use]
    pub fn key_id(&self) -> u32 {
        key_id_for(&self.name, ALG_COSIGNATURE_V1, &self.key.verifying_key())
    }

    /// The matching public key.
    #[must_use]
    pub fn verifier(&self) -> WitnessKey {
        WitnessKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// Cosigns the checkpoint text `checkpoint_text` (a note text: no signature lines) at
    /// `timestamp`: returns the signature line, newline included, to append to the note.
    pub fn cosign(
        &self,
        checkpoint_text: &str,
        timestamp: u64,
    ) -> Result<String, CosignatureError> {
        check_text(checkpoint_text)?;
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::TimestampTooLarge { timestamp });
        }
        let signature = self
            .key
            .sign(cosigned_message(checkpoint_text, timestamp).as_bytes());
        let mut blob = Vec::with_capacity(COSIGNATURE_BYTES);
        blob.extend_from_slice(&timestamp.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        Ok(signature_line(&self.name, self.key_id(), &blob))
    }
}

/// A witness's public key (Ed25519, signature type 0x04) with its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessKey {
    name: String,
    key: VerifyingKey,
}

/// A cosignature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    /// The witness's name.
    pub witness: String,
    /// When the witness cosigned, POSIX seconds.
    pub timestamp: u64,
}

impl WitnessKey {
    /// Parses `<name>+<key id>+base64(0x04 || public key)`; checks the key id.
    pub fn parse(text: &str) -> Result<Self, CosignatureError> {
        let malformed = |reason| NoteError::MalformedKey {
            what: "witness verifier",
            reason,
        };
        let (name, id, key) =
            split_key_text(text.trim()).ok_or(malformed("expected <name>+<key id>+<key>"))?;
        check_name(name)?;
        let bytes = decode_key_bytes_of(key, "witness verifier", ALG_COSIGNATURE_V1)?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| malformed("not a valid Ed25519 public key"))?;
        let witness = Self {
            name: name.to_owned(),
            key,
        };
        check_key_id(id, witness.key_id(), "witness verifier")?;
        Ok(witness)
    }

    /// The text form.
    #[must_use]
    pub fn to_text(&self) -> String {
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_id(),
            encode_key_bytes_of(self.key.as_bytes(), ALG_COSIGNATURE_V1)
        )
    }

    /// The witness's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id (with the cosignature type byte 0x04).
    #[must_use]
    pub fn key_id(&self) -> u32 {
        key_id_for(&self.name, ALG_COSIGNATURE_V1, &self.key)
    }

    /// Checks that the signed note `note` carries a valid cosignature by this witness;
    /// returns it. Lines of other keys are ignored; a line of this key that does not
    /// verify is an error unless another line of it verifies.
    pub fn verify(&self, note: &str) -> Result<Cosigned, CosignatureError> {
        let (text, lines) = split_note(note)?;
        let mut found = false;
        for line in lines {
            if line.name != self.name || line.key_id != self.key_id() {
                continue;
            }
            found = true;
            if let Some(timestamp) = self.check(text, &line.signature) {
                return Ok(Cosigned {
                    witness: self.name.clone(),
                    timestamp,
                });
            }
        }
        let (name, key_id) = (self.name.clone(), self.key_id());
        Err(if found {
            CosignatureError::BadCosignature { name, key_id }
        } else {
            CosignatureError::NoCosignature { name, key_id }
        })
    }

    /// The timestamp of `blob` (timestamp || signature) if it is this key's cosignature of
    /// `text`.
    fn check(&self, text: &str, blob: &[u8]) -> Option<u64> {
        if blob.len() != COSIGNATURE_BYTES {
            return None;
        }
        let (timestamp, signature) = blob.split_first_chunk::<8>()?;
        let timestamp = u64::from_be_bytes(*timestamp);
        let signature = Signature::from_slice(signature).ok()?;
        let message = cosigned_message(text, timestamp);
        (timestamp <= MAX_TIMESTAMP && self.key.verify(message.as_bytes(), &signature).is_ok())
            .then_some(timestamp)
    }
}

#[cfg(test)]
#[path = "cosignature_tests.rs"]
mod tests;
