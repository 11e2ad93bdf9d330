//! The erasure log: every erasure is an event of the stream [`ERASURE_STREAM`], so it is
//! hash-chained, proven and checkpointed like any event, and is what says a key was erased.
//!
//! One JSON event per erasure (`docs/FORMAT.md`, "Erasure events"):
//!
//! ```json
//! {"op":"erase","key_id":"<32 hex>","subject_tag":"<64 hex>","by":"dpo@example",
//!  "erased_at_unix_s":1700000000,"events":10000,"mac":"<64 hex>"}
//! ```
//!
//! It names the subject by its tag (a MAC under the master key), never in clear: whoever holds
//! the master key can check that a given subject was erased, nobody else can tell who it was.
//! `mac` authenticates the other fields under the master key, so only records made with the
//! master key count when the key store completes an interrupted erasure (`subject_keys.rs`);
//! a reader without the key takes every record at its word (it can read no sealed event
//! anyway).

use std::collections::HashMap;

use kimberlite_types::Offset;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::sealed::envelope::KeyId;
use crate::sealed::key_store::Tag;
use crate::sealed::master::KeyWrapper;
use crate::store::Kimberlite;

/// The stream that records erasures.
pub const ERASURE_STREAM: &str = "_erasure";

/// One erasure event, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErasureEntry {
    /// Always `erase`: other operations may come, which this version refuses to guess at.
    pub(crate) op: String,
    pub(crate) key_id: String,
    pub(crate) subject_tag: String,
    pub(crate) by: String,
    pub(crate) erased_at_unix_s: u64,
    pub(crate) events: u64,
    pub(crate) mac: String,
}

impl ErasureEntry {
    /// The record of erasing `key_id` (subject `tag`), authenticated with `master`.
    pub(crate) fn new(
        master: &dyn KeyWrapper,
        key_id: KeyId,
        tag: &Tag,
        by: &str,
        erased_at_unix_s: u64,
        events: u64,
    ) -> Self {
        let mut entry = Self {
            op: "erase".to_owned(),
            key_id: key_id.to_hex(),
            subject_tag: hex::encode(tag),
            by: by.to_owned(),
            erased_at_unix_s,
            events,
            mac: String::new(),
        };
        entry.mac = hex::encode(master.mac("erasure-record", &entry.mac_input()));
        entry
    }

    fn mac_input(&self) -> Vec<u8> {
        let by = self.by.as_bytes();
        [
            self.key_id.as_bytes(),
            self.subject_tag.as_bytes(),
            &(by.len() as u64).to_le_bytes(),
            by,
            &self.erased_at_unix_s.to_le_bytes(),
            &self.events.to_le_bytes(),
        ]
        .concat()
    }

    /// Whether `master` made this record.
    pub(crate) fn authentic(&self, master: &dyn KeyWrapper) -> bool {
        hex::encode(master.mac("erasure-record", &self.mac_input())) == self.mac
    }
}

/// One erasure, as read back from [`ERASURE_STREAM`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    /// The erased data key.
    pub key_id: KeyId,
    /// The erasure event's offset in [`ERASURE_STREAM`].
    pub offset: Offset,
    /// Who asked for it (as given to `erase`).
    pub by: String,
    /// When, in seconds since the Unix epoch.
    pub erased_at_unix_s: u64,
    /// How many events were sealed under the key, as counted by the key store.
    pub events: u64,
    pub(crate) entry: ErasureEntry,
}

/// Every erasure recorded in a store, by key id and by subject tag.
#[derive(Debug, Clone, Default)]
pub struct Erasures {
    by_key: HashMap<KeyId, Erasure>,
    by_tag: HashMap<String, KeyId>,
    /// Offsets of events of the erasure stream that are not erasure records.
    unreadable: Vec<Offset>,
}

impl Erasures {
    /// The erasures recorded in `store` (none when it has no [`ERASURE_STREAM`]).
    pub fn load(store: &Kimberlite) -> Result<Self> {
        let mut erasures = Self::default();
        let Some(id) = store.stream(ERASURE_STREAM) else {
            return Ok(erasures);
        };
        for event in store.events(id, Offset::ZERO) {
            let event = event?;
            erasures.apply(event.offset, &event.payload);
        }
        Ok(erasures)
    }

    pub(crate) fn apply(&mut self, offset: Offset, payload: &[u8]) {
        let parsed = serde_json::from_slice::<ErasureEntry>(payload)
            .ok()
            .filter(|entry| entry.op == "erase")
            .and_then(|entry| Some((KeyId::from_hex(&entry.key_id)?, entry)));
        let Some((key_id, entry)) = parsed else {
            self.unreadable.push(offset);
            return;
        };
        // The first record of a key is the erasure; a later one changes nothing.
        if self.by_key.contains_key(&key_id) {
            return;
        }
        self.by_tag.insert(entry.subject_tag.clone(), key_id);
        self.by_key.insert(
            key_id,
            Erasure {
                key_id,
                offset,
                by: entry.by.clone(),
                erased_at_unix_s: entry.erased_at_unix_s,
                events: entry.events,
                entry,
            },
        );
    }

    /// The erasure of `key_id`, if it was erased.
    #[must_use]
    pub fn of_key(&self, key_id: &KeyId) -> Option<&Erasure> {
        self.by_key.get(key_id)
    }

    pub(crate) fn of_tag(&self, tag: &Tag) -> Option<&Erasure> {
        self.by_tag
            .get(&hex::encode(tag))
            .and_then(|key_id| self.by_key.get(key_id))
    }

    /// Every erasure, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Erasure> {
        self.by_key.values()
    }

    /// Offsets of events in [`ERASURE_STREAM`] that are not erasure records (appended there
    /// by something other than `erase`): ignored.
    #[must_use]
    pub fn unreadable(&self) -> &[Offset] {
        &self.unreadable
    }
}
