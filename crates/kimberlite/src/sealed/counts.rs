//! How many events are sealed under each data key, right after a crash too: what an erasure
//! record reports (`docs/INTERNALS.md`, "Erasure"; `docs/FORMAT.md`, "Key store").
//!
//! Each key file keeps its count as last saved, and `keys/counted.json` says which part of
//! the log those counts cover: every stream's events below `through` (its durable next
//! offset when the counts were saved). A save (on [`SubjectKeys::save_counts`] and when the
//! key store is dropped) syncs the store, then writes the counted file with the new heads as
//! `pending`, the changed key files (each marked with the pending generation), and the counted
//! file again with the new heads in force and nothing pending. A crash (or an I/O error)
//! anywhere in it leaves each key file counted through the heads of its own generation: a save
//! stopped by an error stays pending until a later one finishes.
//!
//! Events sealed after the last save are counted in memory; a crash loses that. So a writable
//! open counts the envelopes past `through` in every stream (each under the heads of its key
//! file's generation), adds them and saves: an erasure's count is then every event the store
//! holds under the key. That reads only what was appended since the last save: nothing after
//! a clean close.
//!
//! [`SubjectKeys::save_counts`]: crate::sealed::SubjectKeys::save_counts

use std::collections::{BTreeMap, HashMap};

use kimberlite_types::{Offset, StreamId};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::sealed::envelope::{self, KeyId};
use crate::store::Kimberlite;

/// Every stream's durable next offset, by stream id.
pub(crate) type Heads = BTreeMap<u64, u64>;

/// `keys/counted.json`: what part of the log the key files' counts cover.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Counted {
    /// The generation of the last finished save.
    pub(crate) generation: u64,
    /// The heads every key file not of the pending generation is counted through.
    pub(crate) through: Heads,
    /// Saves under way or stopped by an error: key files of one of their generations are
    /// counted through its heads.
    #[serde(default)]
    pub(crate) pending: Vec<Pending>,
}

/// A save under way (a crash may have stopped it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Pending {
    pub(crate) generation: u64,
    pub(crate) through: Heads,
}

impl Counted {
    /// The heads a key file of `generation` is counted through.
    pub(crate) fn through_of(&self, generation: u64) -> &Heads {
        self.pending
            .iter()
            .find(|pending| pending.generation == generation)
            .map_or(&self.through, |pending| &pending.through)
    }

    /// The generation a new save writes.
    pub(crate) fn next_generation(&self) -> u64 {
        let pending = self.pending.iter().map(|p| p.generation).max();
        self.generation.max(pending.unwrap_or(0)) + 1
    }
}

/// Every stream's durable next offset (damaged streams, whose head is unknown, left out).
pub(crate) fn durable_heads(store: &Kimberlite) -> Heads {
    store
        .list_streams()
        .into_iter()
        .filter(|stream| !stream.damaged)
        .map(|stream| (stream.id.as_u64(), stream.head.next_offset.as_u64()))
        .collect()
}

/// Where the sealed events past `from` are: each key id's (stream, offset) pairs, read from
/// every stream between its offset in `from` (0 for a stream it does not name: created since)
/// and its head in `to`. Events pruned by retention are not there to count.
pub(crate) fn envelopes_past(
    store: &Kimberlite,
    from: &Heads,
    to: &Heads,
) -> Result<HashMap<KeyId, Vec<(u64, u64)>>> {
    let mut found: HashMap<KeyId, Vec<(u64, u64)>> = HashMap::new();
    for (&stream, &head) in to {
        let id = StreamId::new(stream);
        let start = from
            .get(&stream)
            .copied()
            .unwrap_or(0)
            .max(store.first_offset(id)?.as_u64());
        if start >= head {
            continue;
        }
        for event in store.events(id, Offset::new(start)) {
            let event = event?;
            if event.offset.as_u64() >= head {
                break;
            }
            if let Some(Ok(key_id)) = envelope::key_id_of(&event.payload) {
                found
                    .entry(key_id)
                    .or_default()
                    .push((stream, event.offset.as_u64()));
            }
        }
    }
    Ok(found)
}

/// How many of `places` lie at or past `through` (0 for a stream it does not name).
pub(crate) fn count_past(places: &[(u64, u64)], through: &Heads) -> u64 {
    places
        .iter()
        .filter(|(stream, offset)| *offset >= through.get(stream).copied().unwrap_or(0))
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_of_the_pending_generation_use_its_heads() {
        let old: Heads = [(1, 10)].into();
        let new: Heads = [(1, 20), (2, 5)].into();
        let counted = Counted {
            generation: 3,
            through: old.clone(),
            pending: vec![
                Pending {
                    generation: 4,
                    through: new.clone(),
                },
                Pending {
                    generation: 5,
                    through: [(1, 30)].into(),
                },
            ],
        };
        assert_eq!(counted.through_of(4), &new);
        assert_eq!(counted.through_of(5), &[(1, 30)].into());
        assert_eq!(counted.through_of(3), &old);
        assert_eq!(counted.through_of(0), &old);
        assert_eq!(counted.next_generation(), 6);
        let places = [(1, 9), (1, 10), (1, 19), (1, 20), (2, 4), (2, 5), (3, 0)];
        assert_eq!(count_past(&places, &old), 6);
        assert_eq!(count_past(&places, &new), 3);
    }
}
