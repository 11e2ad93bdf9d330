//! Attack rounds: the store is synced and closed, its directory attacked at rest as the
//! attacker of SPEC.md section 7 would (a link pointing outside the store or an entry of the
//! wrong type, a derived file forged with valid checksums, a whole directory removed), opened
//! again and checked, and the attack undone (a snapshot of the file system) before the run
//! goes on. Read-only mounts are `read_only.rs`; the forgeries `forge.rs`.
//!
//! Every attacked open must keep (`check_attacked`): no panic; an open that fails, fails with
//! a typed damage error; nothing outside the store changes; a read returns the acknowledged
//! bytes at their offsets or an error, never other bytes; tree heads and inclusion proofs
//! equal the recomputation from the acknowledged events, or are refused; a stream `verify`
//! does not name (nor the catalogue) reads, heads and tree heads exactly as acknowledged. And
//! what the attack demands ([`Demand`]): the link or entry named as damage, or the streams
//! whose data the store has evidence of named by `verify`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kimberlite::proof::{event_leaf_hash, verify_inclusion, MemoryTree};
use kimberlite::{Kimberlite, Offset, StreamId, CATALOG_STREAM};
use kimberlite_storage::EntryKind;
use rand::seq::IndexedRandom;
use rand::Rng;

use super::forge::{self, Forged};
use super::state::{Check, StoreRun, STORE_DIR};

/// Files and a directory outside the store that links point at: they must never change.
pub(super) const OUTSIDE_DIR: &str = "/outside";

/// What an attacked open must show besides the checks every one makes.
#[derive(Debug)]
pub(super) enum Demand {
    /// The path named as damage: by the open's error, the recovery report, `verify_all` or a
    /// refused call.
    Named(PathBuf),
    /// `verify_all` not intact, naming each of these streams (its tree is forged).
    Reported(Vec<StreamId>),
    /// `verify_all` not intact, naming each of these streams and the events missing, up to
    /// the count the store has evidence of (its Merkle leaves).
    Lost(Vec<(StreamId, u64)>),
    /// Nothing more (derived data the store may rebuild from the log).
    Nothing,
}

impl StoreRun {
    /// One attack round (the store must be open and not poisoned).
    pub(super) fn attack_round(&mut self) -> Check {
        if self.rng.random_bool(0.25) {
            return self.read_only_round();
        }
        let Some(ids) = self.quiesce()? else {
            return Ok(());
        };
        self.plant_outside();
        self.keep_checkpoint(&ids);
        let before = self.fs.snapshot();
        let demand = match self.rng.random_range(0..3) {
            0 => self.attack_entry(),
            1 => self.attack_forgery(&ids),
            _ => self.attack_removal(&ids),
        };
        if let Some(demand) = demand {
            if std::env::var_os("KIMBERLITE_SIM_TRACE").is_some() {
                eprintln!("step {}: attack, demanding {demand:?}", self.step);
            }
            if self.options.unseen_attacks {
                self.fs.restore(&before);
            }
            self.fs.set_follow_links(self.options.follow_links);
            let result = self.open_attacked(&ids, &demand, &before);
            self.fs.set_follow_links(false);
            result?;
        }
        self.fs.restore(&before);
        self.reopen(false)
    }

    /// Syncs and closes the store, faults off from then on; the stream ids by name, or `None`
    /// when the sync failed (the store is then poisoned and reopened by the next round).
    pub(super) fn quiesce(&mut self) -> Result<Option<BTreeMap<String, StreamId>>, String> {
        self.sync()?;
        if self.poisoned {
            return Ok(None);
        }
        let store = self.store()?;
        let ids = self
            .models
            .keys()
            .filter_map(|name| Some((name.clone(), store.stream(name)?)))
            .collect();
        self.fs.set_faults_enabled(false);
        drop(self.store.take());
        Ok(Some(ids))
    }

    /// The files outside the store that links point at.
    fn plant_outside(&self) {
        let outside = Path::new(OUTSIDE_DIR);
        self.fs
            .write_raw(&outside.join("victim"), b"not the store's");
        self.fs
            .write_raw(&outside.join("dir/victim"), b"not the store's either");
    }

    /// Keeps a checkpoint of a random stream at its durable size under `checkpoints/`, as the
    /// CLI does (evidence of its length, and entries for the attacks to replace).
    fn keep_checkpoint(&mut self, ids: &BTreeMap<String, StreamId>) {
        let names: Vec<&String> = ids.keys().collect();
        let Some(name) = names.choose(&mut self.rng).map(|name| (*name).clone()) else {
            return;
        };
        let size = self.models.get(&name).map_or(0, |model| model.durable);
        let Some(id) = ids.get(&name) else { return };
        let path = Path::new(STORE_DIR)
            .join(kimberlite::CHECKPOINT_DIR)
            .join(format!("{:020}", id.as_u64()))
            .join(format!("{size:020}.checkpoint"));
        let body = format!("kimberlite-sim/{name}\n{size}\nroot\n\n— signature\n");
        self.fs.write_raw(&path, body.as_bytes());
    }

    /// A link (pointing outside), a fifo, a directory where a file belongs or a file where a
    /// directory belongs, in place of a random entry of the store.
    fn attack_entry(&mut self) -> Option<Demand> {
        let store = Path::new(STORE_DIR);
        let files: Vec<PathBuf> = self.fs.files();
        let dirs: Vec<PathBuf> = self.fs.dirs();
        let is_dir = self.rng.random_bool(0.4);
        let pool = if is_dir { dirs } else { files };
        let pool: Vec<&PathBuf> = pool
            .iter()
            .filter(|path| path.starts_with(store) && path.as_path() != store)
            .collect();
        let path = (*pool.choose(&mut self.rng)?).clone();
        let outside = Path::new(OUTSIDE_DIR);
        match (self.rng.random_range(0..3), is_dir) {
            (0, false) => self.fs.place_link(&path, &outside.join("victim")),
            (0, true) => self.fs.place_link(&path, &outside.join("dir")),
            (1, _) => self.fs.place(&path, EntryKind::Other),
            (_, false) => self.fs.place(&path, EntryKind::Dir),
            (_, true) => self.fs.place(&path, EntryKind::File),
        }
        if self.fs.entry_is_link(&path) {
            self.stats.attacks.links += 1;
        } else {
            self.stats.attacks.wrong_types += 1;
        }
        // A kept torn tail is never opened again, only listed: nothing names an entry in its
        // place (it must still never be followed).
        if path
            .parent()
            .is_some_and(|dir| dir.ends_with(kimberlite_storage::disk::TORN_DIR))
        {
            return Some(Demand::Nothing);
        }
        Some(Demand::Named(path))
    }

    /// Forges a derived file ([`StoreRun::forge`]) of a named stream or of the catalogue.
    fn attack_forgery(&mut self, ids: &BTreeMap<String, StreamId>) -> Option<Demand> {
        let mut streams: Vec<StreamId> = ids.values().copied().collect();
        streams.push(CATALOG_STREAM);
        Some(match self.forge(&streams)? {
            Forged::Evidence(id) => Demand::Reported(vec![id]),
            Forged::Derived => Demand::Nothing,
        })
    }

    /// Removes a stream's directory, `streams/`, `merkle/` or one of its directories,
    /// `checkpoints/` or a `torn/` directory: where the store holds evidence of the removed events (their Merkle
    /// leaves), `verify` must report them.
    fn attack_removal(&mut self, ids: &BTreeMap<String, StreamId>) -> Option<Demand> {
        let store = Path::new(STORE_DIR);
        let mut pool: Vec<PathBuf> = vec![
            store.join("streams"),
            store.join("merkle"),
            store.join(kimberlite::CHECKPOINT_DIR),
        ];
        pool.extend(self.fs.dirs().into_iter().filter(|dir| {
            let parent = dir.parent();
            parent == Some(&store.join("streams"))
                || parent == Some(&store.join("merkle"))
                || dir.ends_with(kimberlite_storage::disk::TORN_DIR)
        }));
        let path = pool.choose(&mut self.rng)?.clone();
        if !self.fs.remove_dir_all(&path) {
            return None;
        }
        self.stats.attacks.dirs_removed += 1;
        let lost: Vec<(StreamId, u64)> = ids
            .values()
            .map(|id| (*id, forge::leaves(&self.fs, *id)))
            .filter(|(id, leaves)| {
                let removed = path == store.join("streams") || path == forge::stream_dir(*id);
                removed && *leaves > 0
            })
            .collect();
        Some(if lost.is_empty() {
            Demand::Nothing
        } else {
            Demand::Lost(lost)
        })
    }

    /// Opens the attacked store (writable, or read-only one time in four) and checks it.
    fn open_attacked(
        &mut self,
        ids: &BTreeMap<String, StreamId>,
        demand: &Demand,
        before: &crate::fs::Snapshot,
    ) -> Check {
        let read_only = self.rng.random_bool(0.25);
        let opened = if read_only {
            Kimberlite::open_read_only_with_fs(self.fs.clone(), STORE_DIR, self.config.clone())
        } else {
            Kimberlite::open_with_fs(self.fs.clone(), STORE_DIR, self.config.clone())
        };
        let mut said = String::new();
        let checked = match &opened {
            Ok(store) => self.check_attacked(store, ids, demand, &mut said),
            Err(error) if error.is_corruption() => {
                said = error.to_string();
                Ok(())
            }
            Err(error) => Err(format!(
                "the attacked store failed to open untyped: {error}"
            )),
        };
        drop(opened);
        checked?;
        self.check_outside(before)?;
        match demand {
            Demand::Named(path) if !said.contains(&path.display().to_string()) => Err(format!(
                "{} was placed in the store and never named as damage: {said}",
                path.display()
            )),
            Demand::Named(_) => {
                self.stats.attacks.reported += 1;
                Ok(())
            }
            Demand::Reported(_) | Demand::Lost(_) => {
                self.stats.attacks.reported += 1;
                Ok(())
            }
            Demand::Nothing => Ok(()),
        }
    }

    /// Nothing outside the store changed.
    fn check_outside(&self, before: &crate::fs::Snapshot) -> Check {
        let outside = Path::new(OUTSIDE_DIR);
        let now = self.fs.snapshot();
        if now.under(outside) != before.under(outside) {
            return Err(format!(
                "a file outside the store changed (a link was followed): {:?}",
                now.under(outside)
            ));
        }
        Ok(())
    }

    /// The checks every attacked open makes (see the module docs); `said` collects every
    /// report and error, for [`Demand::Named`].
    fn check_attacked(
        &mut self,
        store: &Kimberlite,
        ids: &BTreeMap<String, StreamId>,
        demand: &Demand,
        said: &mut String,
    ) -> Check {
        said.push_str(&format!("{}\n", store.recovery_report()));
        let verified = store.verify_all();
        let named: Option<BTreeSet<StreamId>> = match &verified {
            Ok(report) => {
                said.push_str(&format!("{:?}\n", report.problems));
                Some(report.problems.iter().map(|p| p.stream).collect())
            }
            Err(error) => {
                said.push_str(&format!("{error}\n"));
                None
            }
        };
        if let Demand::Reported(streams) = demand {
            if let Some(named) = &named {
                if let Some(missing) = streams.iter().find(|id| !named.contains(id)) {
                    return Err(format!(
                        "stream {missing}: its tree was forged, and verify_all does not name \
                         it: {verified:?}"
                    ));
                }
            }
        }
        if let (Demand::Lost(streams), Ok(report)) = (demand, &verified) {
            for (id, evidence) in streams {
                let says = |p: &kimberlite::Problem| {
                    p.stream == *id && p.reason.contains(&format!("..{evidence}"))
                };
                if !report.problems.iter().any(says) {
                    return Err(format!(
                        "stream {id} lost events the store holds {evidence} leaves of, and \
                         verify_all does not say which: {:?}",
                        report.problems
                    ));
                }
            }
        }
        let catalogue_ok = named
            .as_ref()
            .is_some_and(|named| !named.contains(&CATALOG_STREAM));
        for (name, id) in ids {
            let claimed = catalogue_ok && named.as_ref().is_some_and(|n| !n.contains(id));
            self.check_stream(store, name, *id, claimed, said)?;
        }
        Ok(())
    }

    /// One stream of an attacked store: never other bytes, never a tree over other events;
    /// exactly the acknowledged events when `claimed` (verify says it is intact).
    fn check_stream(
        &mut self,
        store: &Kimberlite,
        name: &str,
        id: StreamId,
        claimed: bool,
        said: &mut String,
    ) -> Check {
        let events = self
            .models
            .get(name)
            .map(|model| model.events.clone())
            .unwrap_or_default();
        if store.stream(name) != Some(id) {
            // A stream without events whose catalogue entry went with the catalogue leaves
            // nothing behind: only an anchor or a signed checkpoint can tell.
            return match claimed && !events.is_empty() {
                true => Err(format!(
                    "{name}: gone with its {} events, and verify_all says it is intact",
                    events.len()
                )),
                false => Ok(()),
            };
        }
        match store.read(id, Offset::ZERO, u64::MAX) {
            Ok(read) => {
                let same = read.iter().zip(&events).all(|(a, b)| a.payload == b);
                if !same || read.len() > events.len() {
                    return Err(format!("{name}: a read of the attacked store returned other bytes than were acknowledged ({} events read, {} acknowledged)", read.len(), events.len()));
                }
                if claimed && read.len() != events.len() {
                    return Err(format!(
                        "{name}: {} of {} events read, and verify_all says it is intact",
                        read.len(),
                        events.len()
                    ));
                }
            }
            Err(error) if claimed => {
                return Err(format!(
                    "{name}: read failed, verify_all says intact: {error}"
                ))
            }
            Err(error) => said.push_str(&format!("{error}\n")),
        }
        self.check_reads_from(store, name, id, &events, claimed, said)?;
        match store.tree_head(id) {
            Ok(head) => {
                let size = usize::try_from(head.tree_size).unwrap_or(usize::MAX);
                let leaves = events.get(..size).unwrap_or_default();
                if leaves.len() != size || head.root != root_of(leaves) {
                    return Err(format!(
                        "{name}: tree head of size {} is not the root of the acknowledged \
                         events",
                        head.tree_size
                    ));
                }
                if claimed && size != events.len() {
                    return Err(format!(
                        "{name}: tree head of size {size}, {} acknowledged, verify_all says \
                         intact",
                        events.len()
                    ));
                }
                self.check_proof(store, name, id, &events, head.tree_size, said)?;
            }
            Err(error) => said.push_str(&format!("{error}\n")),
        }
        Ok(())
    }

    /// Reads from random offsets (where a forged index would send them) return the
    /// acknowledged events from there, or fail; when `claimed`, at least one.
    fn check_reads_from(
        &mut self,
        store: &Kimberlite,
        name: &str,
        id: StreamId,
        events: &[bytes::Bytes],
        claimed: bool,
        said: &mut String,
    ) -> Check {
        for _ in 0..3 {
            let from = self.rng.random_range(0..=events.len());
            let max_bytes = self.rng.random_range(1..4_096);
            let read = match store.read(id, Offset::new(from as u64), max_bytes) {
                Ok(read) => read,
                Err(error) if !claimed => {
                    said.push_str(&format!("{error}\n"));
                    continue;
                }
                Err(error) => return Err(format!("{name}: read from {from}: {error}")),
            };
            let expected = events.get(from..).unwrap_or_default();
            let same = read.iter().zip(expected).all(|(a, b)| a.payload == b);
            let short = claimed && read.is_empty() && !expected.is_empty();
            if !same || read.len() > expected.len() || short {
                return Err(format!(
                    "{name}: a read from {from} of the attacked store returned {} events, not \
                     the acknowledged ones from there",
                    read.len()
                ));
            }
        }
        Ok(())
    }

    /// An inclusion proof of a random event is refused or proves that event's leaf against
    /// the root of the acknowledged events.
    fn check_proof(
        &mut self,
        store: &Kimberlite,
        name: &str,
        id: StreamId,
        events: &[bytes::Bytes],
        tree_size: u64,
        said: &mut String,
    ) -> Check {
        if tree_size == 0 {
            return Ok(());
        }
        let offset = self.rng.random_range(0..tree_size);
        let proof = match store.inclusion_proof(id, Offset::new(offset), tree_size) {
            Ok(proof) => proof,
            Err(error) => {
                said.push_str(&format!("{error}\n"));
                return Ok(());
            }
        };
        let size = usize::try_from(tree_size).unwrap_or(usize::MAX);
        let root = root_of(events.get(..size).unwrap_or_default());
        let event = events
            .get(usize::try_from(offset).unwrap_or(usize::MAX))
            .cloned()
            .unwrap_or_default();
        let leaf = event_leaf_hash(offset, &event);
        let proved = verify_inclusion(&leaf, offset, tree_size, &proof.hashes, &root);
        if proof.leaf_hash != leaf || proof.root != root || proved.is_err() {
            return Err(format!(
                "{name}: an inclusion proof of offset {offset} in a tree of {tree_size} does \
                 not prove the acknowledged event against the root of the acknowledged events"
            ));
        }
        Ok(())
    }
}

/// The RFC 9162 root of `events`, each at its offset.
pub(super) fn root_of(events: &[bytes::Bytes]) -> kimberlite::proof::Hash {
    let leaves = (0u64..)
        .zip(events)
        .map(|(offset, event)| event_leaf_hash(offset, event));
    MemoryTree::from_leaves(leaves).root()
}
