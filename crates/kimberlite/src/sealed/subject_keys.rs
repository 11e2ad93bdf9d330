//! [`SubjectKeys`]: a store's data subjects' keys, opened with the master key. Appends seal
//! events for a subject, reads open them, [`SubjectKeys::erase`] destroys a subject's key and
//! records it.
//!
//! # Erasure, step by step (`docs/INTERNALS.md`, "Erasure")
//!
//! 1. Append the erasure event to `_erasure` and sync it: the commit point. From then on
//!    every reader sees the subject's events as erased, whether the key file is gone yet or
//!    not.
//! 2. Drop the key from memory; remove its key file (and any temporary copy) and sync the
//!    directory.
//!
//! A crash before step 1 is durable leaves the subject not erased (the key is untouched); a
//! crash after it leaves it erased and recorded, with the key file removed by the next open of
//! the key store ([`SubjectKeys::open`], which completes every recorded erasure whose key
//! file is still there). Appends for a subject and its erasure exclude each other, so no
//! event is sealed under a key after its erasure was recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::OsRng;
use kimberlite_crypto::ChainHash;
use kimberlite_proof::Hash;
use kimberlite_storage::crash_point::crash_point;
use kimberlite_types::{Offset, StreamId};

use crate::error::{Error, Result};
use crate::head::{AppendResult, ExpectedOffset};
use crate::read::Event;
use crate::sealed::batch::SealTransform;
use crate::sealed::counts::{count_past, durable_heads, envelopes_past, Counted, Heads, Pending};
use crate::sealed::envelope::{self, KeyId, SubjectCipher};
use crate::sealed::erasures::{ErasureEntry, Erasures, ERASURE_STREAM};
use crate::sealed::error::SealError;
use crate::sealed::key_store::{KeyEntry, KeyStore, Tag, KEYS_DIR};
use crate::sealed::master::{DataKey, KeyWrapper};
use crate::sealed::opened::{open_event, Content, OpenedEvent};
use crate::store::Kimberlite;

/// What [`SubjectKeys::erase`] returns: where the erasure is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureReceipt {
    /// The erased data key.
    pub key_id: KeyId,
    /// The stream that records erasures (`_erasure`).
    pub stream: StreamId,
    /// The erasure event's offset in it.
    pub offset: Offset,
    /// The erasure event's chain hash (the stream's head right after it).
    pub chain_hash: ChainHash,
    /// The erasure event's Merkle leaf hash: what its inclusion proof proves.
    pub leaf_hash: Hash,
    /// When, in seconds since the Unix epoch.
    pub erased_at_unix_s: u64,
    /// How many events were sealed under the key, as counted by the key store.
    pub events: u64,
}

/// A data key in memory, and the events sealed under it since it was last saved.
struct Live {
    tag: Tag,
    cipher: Arc<SubjectCipher>,
    saved_events: u64,
    new_events: u64,
}

#[derive(Default)]
struct Keys {
    /// Every key file's key id, by subject tag (names listed at open).
    by_tag: HashMap<Tag, KeyId>,
    /// The same, by key id.
    tag_of: HashMap<KeyId, Tag>,
    /// Keys unwrapped so far.
    live: HashMap<KeyId, Live>,
    /// Erasures made with this master key.
    erasures: Erasures,
    /// What part of the log the saved counts cover (`counts.rs`).
    counted: Counted,
}

/// The data subjects' keys of one store, opened with its master key.
#[derive(Debug)]
pub struct SubjectKeys {
    store: Kimberlite,
    master: Arc<dyn KeyWrapper>,
    files: KeyStore,
    keys: Mutex<Keys>,
    /// Held shared by sealed appends and exclusively by an erasure.
    gate: RwLock<()>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("subjects", &self.by_tag.len())
            .field("unwrapped", &self.live.len())
            .finish_non_exhaustive()
    }
}

/// `events` as `Bytes` for the store, copied into one buffer: one allocation per batch, not one
/// per event. The store seals them as it encodes them and keeps only the envelopes.
fn contiguous<I>(events: I) -> Vec<Bytes>
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let events: Vec<I::Item> = events.into_iter().collect();
    let total = events.iter().map(|event| event.as_ref().len()).sum();
    let mut buffer = Vec::with_capacity(total);
    for event in &events {
        buffer.extend_from_slice(event.as_ref());
    }
    let buffer = Bytes::from(buffer);
    let mut start = 0;
    events
        .iter()
        .map(|event| {
            let end = start + event.as_ref().len();
            let slice = buffer.slice(start..end);
            start = end;
            slice
        })
        .collect()
}

fn now_unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl SubjectKeys {
    /// Opens the key store of `store` with `master`. A wrong master key is
    /// [`SealError::WrongMasterKey`] and nothing is read. A writable store's key store is
    /// created if missing, and every recorded erasure whose key file a crash left is completed.
    pub fn open(store: &Kimberlite, master: Arc<dyn KeyWrapper>) -> Result<Self> {
        let writable = !store.is_read_only();
        let files = KeyStore::open(store.inner.files.as_ref(), &*master, writable)?;
        let mut erasures = Erasures::default();
        for erasure in Erasures::load(store)?.iter() {
            if erasure.entry.authentic(&*master) {
                erasures.apply(
                    erasure.offset,
                    &serde_json::to_vec(&erasure.entry).unwrap_or_default(),
                );
            }
        }
        let mut by_tag = HashMap::new();
        for (tag, key_id) in files.list()? {
            if erasures.of_key(&key_id).is_some() {
                // Recorded but not removed: a crash between the two steps of an erasure.
                if writable {
                    files.remove(&tag, key_id)?;
                }
                continue;
            }
            by_tag.insert(tag, key_id);
        }
        let tag_of: HashMap<KeyId, Tag> =
            by_tag.iter().map(|(tag, key_id)| (*key_id, *tag)).collect();
        let counted = if writable {
            recount(store, &files, &tag_of)?
        } else {
            Counted::default()
        };
        Ok(Self {
            store: store.clone(),
            master,
            files,
            keys: Mutex::new(Keys {
                by_tag,
                tag_of,
                live: HashMap::new(),
                erasures,
                counted,
            }),
            gate: RwLock::new(()),
        })
    }

    fn keys(&self) -> MutexGuard<'_, Keys> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn tag(&self, subject: &str) -> Result<Tag> {
        if subject.is_empty() {
            return Err(Error::Sealed(SealError::EmptySubject));
        }
        Ok(self.master.mac("subject", subject.as_bytes()))
    }

    /// Unwraps the key of `key_id` (subject `tag`) into memory, if its file is there.
    fn load(&self, keys: &mut Keys, tag: Tag, key_id: KeyId) -> Result<bool> {
        if keys.live.contains_key(&key_id) {
            return Ok(true);
        }
        let Some(entry) = self.files.get(&tag, key_id)? else {
            return Ok(false);
        };
        let wrapped = hex::decode(&entry.wrapped).unwrap_or_default();
        let data_key = self.master.unwrap(key_id, &wrapped).map_err(|error| {
            Error::Sealed(SealError::WrongMasterKey {
                path: self
                    .store
                    .path()
                    .map(|p| p.join(KEYS_DIR))
                    .unwrap_or_default(),
                reason: error.0,
            })
        })?;
        keys.live.insert(
            key_id,
            Live {
                tag,
                cipher: Arc::new(data_key.cipher()),
                saved_events: entry.events,
                new_events: 0,
            },
        );
        Ok(true)
    }

    /// The cipher of `subject`'s key, made (and its key file written, durably) if it has none.
    fn cipher_for(&self, subject: &str) -> Result<(KeyId, Arc<SubjectCipher>)> {
        let tag = self.tag(subject)?;
        let mut keys = self.keys();
        if let Some(&key_id) = keys.by_tag.get(&tag) {
            if self.load(&mut keys, tag, key_id)? {
                if let Some(live) = keys.live.get(&key_id) {
                    return Ok((key_id, live.cipher.clone()));
                }
            }
        }
        let mut id_bytes = [0u8; envelope::KEY_ID_LEN];
        OsRng.fill_bytes(&mut id_bytes);
        let key_id = KeyId(id_bytes);
        let data_key = DataKey::generate();
        let wrapped = self
            .master
            .wrap(key_id, &data_key)
            .map_err(|error| Error::Sealed(SealError::MasterKey(error.0)))?;
        // No event of a new key lies below the heads the last finished save counted through.
        let entry = KeyEntry {
            wrapped: hex::encode(wrapped),
            events: 0,
            generation: keys.counted.generation,
        };
        // Durable before any event sealed under it can be.
        self.files.put(&tag, key_id, &entry)?;
        let cipher = Arc::new(data_key.cipher());
        keys.by_tag.insert(tag, key_id);
        keys.tag_of.insert(key_id, tag);
        keys.live.insert(
            key_id,
            Live {
                tag,
                cipher: cipher.clone(),
                saved_events: 0,
                new_events: 0,
            },
        );
        Ok((key_id, cipher))
    }

    /// Appends `events` to stream `id` as one batch, each sealed with `subject`'s data key
    /// (made on the subject's first append), as [`Kimberlite::append`] does otherwise. The
    /// store keeps only the envelopes (`docs/FORMAT.md`, "Sealed events").
    pub fn append<I>(
        &self,
        id: StreamId,
        subject: &str,
        events: I,
        expected: ExpectedOffset,
    ) -> Result<AppendResult>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.append_bytes(id, subject, contiguous(events), expected)
    }

    /// [`Self::append`] of events already held as [`Bytes`]: the store seals them where they
    /// are, without copying them first.
    pub fn append_bytes(
        &self,
        id: StreamId,
        subject: &str,
        events: Vec<Bytes>,
        expected: ExpectedOffset,
    ) -> Result<AppendResult> {
        let _gate = self
            .gate
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (key_id, cipher) = self.cipher_for(subject)?;
        let count = events.len() as u64;
        let transform = Arc::new(SealTransform::new(cipher, key_id, id));
        let appended = self
            .store
            .append_transformed(id, events, transform, expected)?;
        if let Some(live) = self.keys().live.get_mut(&key_id) {
            live.new_events += count;
        }
        Ok(appended)
    }

    /// Reads events of stream `id` as [`Kimberlite::read`] does, sealed ones opened.
    pub fn read(&self, id: StreamId, from: Offset, max_bytes: u64) -> Result<Vec<OpenedEvent>> {
        let events = self.store.read(id, from, max_bytes)?;
        events
            .into_iter()
            .map(|event| self.open_event(id, event))
            .collect()
    }

    /// `event`, read from stream `id` (by [`Kimberlite::read`] or [`Kimberlite::events`]),
    /// opened if it is sealed and its key is not erased.
    pub fn open_event(&self, id: StreamId, event: Event) -> Result<OpenedEvent> {
        let mut keys = self.keys();
        if let Some(Ok(key_id)) = envelope::key_id_of(&event.payload) {
            if let Some(&tag) = keys.tag_of.get(&key_id) {
                self.load(&mut keys, tag, key_id)?;
            }
        }
        let live = &keys.live;
        let open = |key_id: KeyId, payload: &[u8]| match live.get(&key_id) {
            Some(live) => match envelope::open(&live.cipher, id, payload) {
                Ok(plain) => Content::Opened {
                    payload: Bytes::from(plain),
                    key_id,
                },
                Err(reason) => Content::Unreadable {
                    key_id: Some(key_id),
                    reason: reason.to_owned(),
                },
            },
            None => Content::Unreadable {
                key_id: Some(key_id),
                reason: "no key in the key store and no erasure of it recorded".to_owned(),
            },
        };
        Ok(open_event(event, &keys.erasures, Some(&open)))
    }

    /// Erases `subject`: records the erasure in `_erasure` (`by` says who asked), then destroys
    /// its data key, so that its events can never be read again, while every chain hash, proof
    /// and checkpoint stays valid. Errors: [`SealError::UnknownSubject`],
    /// [`SealError::AlreadyErased`].
    pub fn erase(&self, subject: &str, by: &str) -> Result<ErasureReceipt> {
        let _gate = self
            .gate
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tag = self.tag(subject)?;
        let (key_id, events) = {
            let mut keys = self.keys();
            let Some(&key_id) = keys.by_tag.get(&tag) else {
                return Err(Error::Sealed(match keys.erasures.of_tag(&tag) {
                    Some(erasure) => SealError::AlreadyErased {
                        subject: subject.to_owned(),
                        offset: erasure.offset,
                        erased_at_unix_s: erasure.erased_at_unix_s,
                    },
                    None => SealError::UnknownSubject {
                        subject: subject.to_owned(),
                    },
                }));
            };
            self.load(&mut keys, tag, key_id)?;
            let events = keys
                .live
                .get(&key_id)
                .map_or(0, |live| live.saved_events + live.new_events);
            (key_id, events)
        };
        let erased_at_unix_s = now_unix_s();
        let entry = ErasureEntry::new(&*self.master, key_id, &tag, by, erased_at_unix_s, events);
        let payload = serde_json::to_vec(&entry).unwrap_or_default();
        let stream = match self.store.stream(ERASURE_STREAM) {
            Some(stream) => stream,
            None => self.store.create_stream(ERASURE_STREAM)?,
        };
        // Step 1, the commit point: the record, durable.
        crash_point("erase:counted");
        let appended = self.store.append_unchecked(
            stream,
            vec![Bytes::from(payload.clone())],
            ExpectedOffset::Any,
        )?;
        crash_point("erase:record-appended");
        self.store.sync()?;
        crash_point("erase:record-synced");
        let mut keys = self.keys();
        keys.erasures.apply(appended.first_offset, &payload);
        // Step 2: the key, from memory and from the store directory.
        keys.live.remove(&key_id);
        keys.by_tag.remove(&tag);
        keys.tag_of.remove(&key_id);
        self.files.remove(&tag, key_id)?;
        crash_point("erase:key-removed");
        Ok(ErasureReceipt {
            key_id,
            stream,
            offset: appended.first_offset,
            chain_hash: appended.head,
            leaf_hash: kimberlite_proof::event_leaf_hash(appended.first_offset.as_u64(), &payload),
            erased_at_unix_s,
            events,
        })
    }

    /// Saves each key's count of sealed events (done on drop too), after syncing the store,
    /// so that the next open counts only what is appended after this (`counts.rs`). Counts are
    /// what erasure records report; the events themselves are durable without this.
    pub fn save_counts(&self) -> Result<()> {
        if self.store.is_read_only() {
            return Ok(());
        }
        // No sealed append may land between the heads read and the counts taken.
        let _gate = self
            .gate
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.store.sync()?;
        let heads = durable_heads(&self.store);
        let mut keys = self.keys();
        let mut changed = Vec::new();
        for (key_id, live) in &keys.live {
            if live.new_events == 0 {
                continue;
            }
            let Some(mut entry) = self.files.get(&live.tag, *key_id)? else {
                continue;
            };
            entry.events = live.saved_events + live.new_events;
            changed.push((live.tag, *key_id, entry));
        }
        save(&self.files, &mut keys.counted, heads, &changed)?;
        for (_, key_id, entry) in changed {
            if let Some(live) = keys.live.get_mut(&key_id) {
                live.saved_events = entry.events;
                live.new_events = 0;
            }
        }
        Ok(())
    }

    /// The cipher of `key_id`, when it is in memory.
    #[cfg(test)]
    pub(super) fn cipher_of(&self, key_id: KeyId) -> Option<Arc<SubjectCipher>> {
        self.keys()
            .live
            .get(&key_id)
            .map(|live| live.cipher.clone())
    }

    /// The erasures made with this master key.
    #[must_use]
    pub fn erasures(&self) -> Erasures {
        self.keys().erasures.clone()
    }
}

/// Counts the events sealed since the last save that a crash left uncounted, adds them to
/// their key files and saves (`counts.rs`); the counted state in force after it.
fn recount(store: &Kimberlite, files: &KeyStore, tag_of: &HashMap<KeyId, Tag>) -> Result<Counted> {
    let heads = durable_heads(store);
    let Some(mut counted) = files.get_counted()? else {
        // A new key store, or one whose counts were saved without heads: they stand as saved.
        let fresh = Counted {
            generation: 0,
            through: heads,
            pending: Vec::new(),
        };
        files.put_counted(&fresh)?;
        return Ok(fresh);
    };
    let found = envelopes_past(store, &counted.through, &heads)?;
    let mut changed = Vec::new();
    for (key_id, places) in found {
        // An erased key's file is gone; an unknown one is not this key store's.
        let Some(tag) = tag_of.get(&key_id) else {
            continue;
        };
        let Some(mut entry) = files.get(tag, key_id)? else {
            continue;
        };
        let added = count_past(&places, counted.through_of(entry.generation));
        if added > 0 {
            entry.events += added;
            changed.push((*tag, key_id, entry));
        }
    }
    if !changed.is_empty() || !counted.pending.is_empty() || counted.through != heads {
        save(files, &mut counted, heads, &changed)?;
    }
    Ok(counted)
}

/// Writes `changed` key files counted through `heads`, with the counted file before and after
/// (`counts.rs`): a crash anywhere leaves every key file counted through the heads of its
/// generation.
fn save(
    files: &KeyStore,
    counted: &mut Counted,
    heads: Heads,
    changed: &[(Tag, KeyId, KeyEntry)],
) -> Result<()> {
    let generation = counted.next_generation();
    if !changed.is_empty() {
        counted.pending.push(Pending {
            generation,
            through: heads.clone(),
        });
        files.put_counted(counted)?;
        crash_point("counts:pending");
        for (tag, key_id, entry) in changed {
            let mut entry = entry.clone();
            entry.generation = generation;
            files.put(tag, *key_id, &entry)?;
            crash_point("counts:key-saved");
        }
    }
    let done = Counted {
        generation,
        through: heads,
        pending: Vec::new(),
    };
    files.put_counted(&done)?;
    *counted = done;
    Ok(())
}

impl Drop for SubjectKeys {
    fn drop(&mut self) {
        if !self.store.is_read_only() {
            let _ = self.save_counts();
        }
    }
}

impl Kimberlite {
    /// Reads events of stream `id` as [`Kimberlite::read`] does, for a reader without the
    /// master key: plain events as they are, sealed ones as [`Content::Sealed`] or, once their
    /// key is erased, [`Content::Erased`]; never an envelope as if it were the event.
    pub fn read_opened(
        &self,
        id: StreamId,
        from: Offset,
        max_bytes: u64,
    ) -> Result<Vec<OpenedEvent>> {
        let erasures = Erasures::load(self)?;
        let events = self.read(id, from, max_bytes)?;
        Ok(events
            .into_iter()
            .map(|event| erasures.open_event(event))
            .collect())
    }
}
