//! [`OpenedEvent`]: an event read back with what it holds said plainly: plain bytes, a sealed
//! event opened, sealed and no key given, or erased. A sealed event is never handed out as if
//! its envelope were the event.

use bytes::Bytes;
use kimberlite_proof::Hash;
use kimberlite_types::Offset;

use crate::read::Event;
use crate::sealed::envelope::{self, KeyId};
use crate::sealed::erasures::{Erasure, Erasures};

/// What a stored event holds, for the reader at hand.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Content {
    /// A plain event: its bytes, as appended.
    Plain(Bytes),
    /// A sealed event, opened with its subject's data key: the bytes as appended.
    Opened {
        /// The event's bytes.
        payload: Bytes,
        /// The data key it was sealed under.
        key_id: KeyId,
    },
    /// A sealed event the reader has no key for (read without the master key).
    Sealed {
        /// The data key it is sealed under.
        key_id: KeyId,
    },
    /// A sealed event whose key was erased: its bytes can no longer be read by anyone.
    Erased {
        /// The erased key.
        key_id: KeyId,
        /// The erasure, as recorded in `_erasure`.
        erasure: Box<Erasure>,
    },
    /// A sealed event under a key that neither the key store holds nor any erasure names (the
    /// key store is not this store's, or lost a file), or that does not open with its key
    /// (changed bytes would fail verification first). Never shown as data.
    Unreadable {
        /// The key id, when the envelope names one.
        key_id: Option<KeyId>,
        /// Why it cannot be read.
        reason: String,
    },
}

/// One event read back through the key store or the erasure log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedEvent {
    /// The event's offset.
    pub offset: Offset,
    /// The event's Merkle leaf hash (RFC 9162, over the stored bytes): what its inclusion
    /// proofs prove, the same before and after an erasure.
    pub leaf_hash: Hash,
    /// What it holds.
    pub content: Content,
}

impl OpenedEvent {
    /// The event's bytes as appended, when the reader can have them.
    #[must_use]
    pub fn payload(&self) -> Option<&Bytes> {
        match &self.content {
            Content::Plain(payload) | Content::Opened { payload, .. } => Some(payload),
            _ => None,
        }
    }
}

/// How a keyed reader opens a sealed event whose key is not erased.
pub(crate) type Opener<'a> = &'a dyn Fn(KeyId, &[u8]) -> Content;

/// `event` of stream `stream` as a reader sees it: `open` opens a sealed event whose key is
/// not erased (`None` for a reader without the master key).
pub(crate) fn open_event(
    event: Event,
    erasures: &Erasures,
    open: Option<Opener<'_>>,
) -> OpenedEvent {
    let leaf_hash = kimberlite_proof::event_leaf_hash(event.offset.as_u64(), &event.payload);
    let content = match envelope::key_id_of(&event.payload) {
        None => Content::Plain(event.payload),
        Some(Err(reason)) => Content::Unreadable {
            key_id: None,
            reason: reason.to_owned(),
        },
        Some(Ok(key_id)) => match (erasures.of_key(&key_id), open) {
            (Some(erasure), _) => Content::Erased {
                key_id,
                erasure: Box::new(erasure.clone()),
            },
            (None, None) => Content::Sealed { key_id },
            (None, Some(open)) => open(key_id, &event.payload),
        },
    };
    OpenedEvent {
        offset: event.offset,
        leaf_hash,
        content,
    }
}

impl Erasures {
    /// `event` as a reader without the master key sees it: plain, sealed or erased.
    #[must_use]
    pub fn open_event(&self, event: Event) -> OpenedEvent {
        open_event(event, self, None)
    }
}
