//! Receipts: C2SP tlog proofs (`c2sp.org/tlog-proof`), an offline-checkable proof that an
//! event is in a stream's log, in the checkpoint the log signed and witnesses cosigned.
//!
//! ```text
//! c2sp.org/tlog-proof@v1\n      the header line, exactly
//! [extra <base64>\n]            optional opaque data; Kimberlite writes the event's leaf
//!                               hash (32 bytes), never trusted: the proof authenticates it
//! index <decimal>\n             the event's offset (leaf index), no leading zeros
//! <base64 hash>\n               0 to 64 lines: the RFC 6962 inclusion path, leaf to root
//! \n                            an empty line
//! <signed checkpoint note>      verbatim: checkpoint text, blank line, the log's signature
//!                               and any witnesses' cosignature lines
//! ```
//!
//! Kept from the spec: every line above, byte for byte, and the `extra` line (read as opaque
//! bytes; written as the leaf hash). A receipt is checked ([`verify_receipt`]) against the log's
//! verifier key and, optionally, a [`WitnessPolicy`]; with the event's bytes, the leaf hash
//! is recomputed from them ([`crate::event_leaf_hash`] of index and payload). Without them,
//! the receipt shows only that a leaf with the hash in `extra` is at the index. An `extra`
//! that is not 32 bytes is refused: it cannot come from a Kimberlite log. Dropped:
//! nothing of the spec; receipts over [`MAX_RECEIPT_BYTES`] are refused.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::cosignature::{CosignatureError, Cosigned};
use crate::hash::{event_leaf_hash, Hash, HASH_LEN};
use crate::note::{split_note, VerifierKey, MAX_NOTE_BYTES};
use crate::verify::{verify_inclusion, ProofError};
use crate::witness_policy::WitnessPolicy;

/// The first line of every receipt.
pub const RECEIPT_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// Largest receipt read: a note of [`MAX_NOTE_BYTES`] and room for the lines before it.
pub const MAX_RECEIPT_BYTES: usize = MAX_NOTE_BYTES + (64 << 10);
/// Most inclusion proof lines: a tree of at most 2^64 leaves has paths of at most 64 hashes.
pub const MAX_RECEIPT_PROOF_LINES: usize = 64;

/// Why a receipt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The receipt does not have the tlog-proof shape (`line` is 1-based).
    #[error("malformed receipt, line {line}: {reason}")]
    Malformed {
        /// The line at fault (0: the receipt as a whole).
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The checkpoint is not one the log signed (signature, key, syntax).
    #[error("log signature: {0}")]
    Checkpoint(#[source] CheckpointError),
    /// The inclusion proof does not lead to the checkpoint's root.
    #[error(
        "inclusion of the event at index {index} in the checkpoint of size {tree_size}: {source}"
    )]
    Inclusion {
        /// The receipt's index.
        index: u64,
        /// The checkpoint's tree size.
        tree_size: u64,
        /// Why the proof failed.
        #[source]
        source: ProofError,
    },
    /// The event given is not the one the receipt names.
    #[error("the event's leaf hash at index {index} is {event}, the receipt's is {receipt}: another event")]
    LeafMismatch {
        /// The receipt's index.
        index: u64,
        /// The leaf hash of the event given.
        event: Hash,
        /// The leaf hash the receipt carries in `extra`.
        receipt: Hash,
    },
    /// The `extra` line is not a leaf hash: Kimberlite's events are hashed from their offset
    /// and payload alone, so any other extra data is not from a Kimberlite log.
    #[error("the receipt's extra data is {bytes} bytes, not a 32-byte leaf hash")]
    BadExtra {
        /// Its length.
        bytes: usize,
    },
    /// Neither the event nor a leaf hash to check the inclusion of.
    #[error("the receipt carries no 32-byte leaf hash in its `extra` line: give the event to check it against")]
    NoLeaf,
    /// The witness policy's quorum of valid cosignatures is not met.
    #[error("witnesses: {0}")]
    Witnesses(#[source] CosignatureError),
}

/// A parsed receipt. [`Receipt::parse`] checks only its shape; [`verify_receipt`] checks
/// what it claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The `extra` line's bytes, if any (for Kimberlite: the event's leaf hash).
    pub extra: Option<Vec<u8>>,
    /// The event's offset in its stream (the leaf index).
    pub index: u64,
    /// The RFC 6962 inclusion path, from the leaf's sibling up.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim (cosignature lines included).
    pub checkpoint: String,
}

/// What a receipt was shown to prove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReceipt {
    /// The checkpoint the log signed.
    pub checkpoint: Checkpoint,
    /// The event's offset.
    pub index: u64,
    /// The leaf hash proven at `index`.
    pub leaf_hash: Hash,
    /// True when the leaf hash was recomputed from the event's bytes.
    pub event_checked: bool,
    /// The policy's witnesses whose cosignature verified (empty without a policy).
    pub cosigned: Vec<Cosigned>,
}

impl Receipt {
    /// A receipt for the event at `index` with leaf hash `leaf_hash` (written as `extra`),
    /// its inclusion `proof` and the signed (maybe cosigned) checkpoint `note`.
    #[must_use]
    pub fn new(index: u64, leaf_hash: Hash, proof: Vec<Hash>, note: &str) -> Self {
        Self {
            extra: Some(leaf_hash.0.to_vec()),
            index,
            proof,
            checkpoint: note.to_owned(),
        }
    }

    /// The receipt's text (module docs).
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut text = format!("{RECEIPT_HEADER}\n");
        if let Some(extra) = &self.extra {
            text.push_str("extra ");
            text.push_str(&BASE64.encode(extra));
            text.push('\n');
        }
        text.push_str(&format!("index {}\n", self.index));
        for hash in &self.proof {
            text.push_str(&BASE64.encode(hash.0));
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&self.checkpoint);
        text
    }

    /// Parses a receipt's text; the checkpoint note is taken verbatim (checked by
    /// [`verify_receipt`]).
    pub fn parse(text: &str) -> Result<Self, ReceiptError> {
        let malformed = |line, reason| ReceiptError::Malformed { line, reason };
        if text.len() > MAX_RECEIPT_BYTES {
            return Err(malformed(0, "the receipt is larger than its bound"));
        }
        let mut lines = Lines {
            rest: text,
            number: 0,
        };
        let header = lines.next_or("no header line")?;
        if header != RECEIPT_HEADER {
            return Err(malformed(
                1,
                "the first line must be c2sp.org/tlog-proof@v1",
            ));
        }
        let mut current = lines.next_or("no index line")?;
        let mut extra = None;
        if let Some(encoded) = current.strip_prefix("extra ") {
            let bytes = BASE64
                .decode(encoded)
                .map_err(|_| malformed(lines.number, "the extra data is not base64"))?;
            extra = Some(bytes);
            current = lines.next_or("no index line")?;
        }
        let index = current
            .strip_prefix("index ")
            .and_then(parse_decimal)
            .ok_or(malformed(
                lines.number,
                "expected `index <decimal>`, without leading zeros",
            ))?;
        let mut proof = Vec::new();
        loop {
            let hash = lines.next_or("no empty line after the inclusion proof")?;
            if hash.is_empty() {
                break;
            }
            if proof.len() == MAX_RECEIPT_PROOF_LINES {
                return Err(malformed(
                    lines.number,
                    "more than 64 inclusion proof lines",
                ));
            }
            let hash = BASE64
                .decode(hash)
                .ok()
                .and_then(|bytes| Hash::from_slice(&bytes))
                .ok_or(malformed(
                    lines.number,
                    "a proof line is not 32 bytes of base64",
                ))?;
            proof.push(hash);
        }
        if lines.rest.is_empty() {
            return Err(malformed(
                lines.number + 1,
                "no checkpoint after the empty line",
            ));
        }
        Ok(Self {
            extra,
            index,
            proof,
            checkpoint: lines.rest.to_owned(),
        })
    }

    /// The leaf hash in `extra`, when it is 32 bytes.
    #[must_use]
    pub fn leaf_hash(&self) -> Option<Hash> {
        self.extra.as_deref().and_then(Hash::from_slice)
    }
}

/// The lines of a receipt before its checkpoint, each ending in a newline.
struct Lines<'a> {
    rest: &'a str,
    /// The number of the last line taken, 1-based.
    number: usize,
}

impl<'a> Lines<'a> {
    /// The next line without its newline; `missing` when there is no complete line.
    fn next_or(&mut self, missing: &'static str) -> Result<&'a str, ReceiptError> {
        self.number += 1;
        let (line, after) = self.rest.split_once('\n').ok_or(ReceiptError::Malformed {
            line: self.number,
            reason: missing,
        })?;
        self.rest = after;
        Ok(line)
    }
}

/// A decimal `u64` without sign or leading zeros (`0` itself allowed).
fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = text == "0" || (!text.starts_with('0') && !text.is_empty());
    (canonical && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// The whole offline check of a receipt's text: the log's signature on the checkpoint by
/// `log` (under its own name or the origin, as [`Checkpoint::open_by_log`]), the inclusion
/// of the leaf at the index, and with `policy`, its quorum of valid cosignatures. With
/// `event` (the event's payload), the leaf hash is recomputed from it; without, the `extra`
/// line's leaf hash is what is proven. Pure: no I/O.
pub fn verify_receipt(
    text: &str,
    log: &VerifierKey,
    policy: Option<&WitnessPolicy>,
    event: Option<&[u8]>,
) -> Result<VerifiedReceipt, ReceiptError> {
    let receipt = Receipt::parse(text)?;
    let checkpoint =
        Checkpoint::open_by_log(&receipt.checkpoint, log).map_err(ReceiptError::Checkpoint)?;
    let index = receipt.index;
    if let Some(extra) = receipt
        .extra
        .as_ref()
        .filter(|extra| extra.len() != HASH_LEN)
    {
        return Err(ReceiptError::BadExtra { bytes: extra.len() });
    }
    let leaf_hash = match (event, receipt.leaf_hash()) {
        (Some(payload), claimed) => {
            let computed = event_leaf_hash(index, payload);
            match claimed {
                Some(claimed) if claimed != computed => {
                    return Err(ReceiptError::LeafMismatch {
                        index,
                        event: computed,
                        receipt: claimed,
                    })
                }
                _ => computed,
            }
        }
        (None, Some(claimed)) => claimed,
        (None, None) => return Err(ReceiptError::NoLeaf),
    };
    let tree_size = checkpoint.tree_size;
    verify_inclusion(
        &leaf_hash,
        index,
        tree_size,
        &receipt.proof,
        &checkpoint.root,
    )
    .map_err(|source| ReceiptError::Inclusion {
        index,
        tree_size,
        source,
    })?;
    let cosigned = match policy {
        Some(policy) => policy
            .check(&receipt.checkpoint)
            .map_err(ReceiptError::Witnesses)?,
        None => Vec::new(),
    };
    Ok(VerifiedReceipt {
        checkpoint,
        index,
        leaf_hash,
        event_checked: event.is_some(),
        cosigned,
    })
}

/// The names on a note's signature lines other than `log`'s key (its own name and the
/// origin): the cosignatures a reader without a policy can list but not check.
#[must_use]
pub fn other_signers(note: &str, log: &VerifierKey) -> Vec<String> {
    let Ok((text, lines)) = split_note(note) else {
        return Vec::new();
    };
    let origin = text.split('\n').next().unwrap_or_default();
    lines
        .into_iter()
        .filter(|line| line.name != log.name() && line.name != origin)
        .map(|line| line.name.to_owned())
        .collect()
}

#[cfg(test)]
#[path = "receipt_tests.rs"]
mod tests;
