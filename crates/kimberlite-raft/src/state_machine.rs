//! [`StateMachine`]: openraft's state machine over a [`Replica`], with its applied position,
//! membership and request table saved beside the store, and snapshots built and installed
//! (docs/REPLICATION.md, sections "Applying a command", "State beside the store" and
//! "Snapshots").
//!
//! # Files in a node's directory (one generation of them, `crate::generation`)
//!
//! - `store/`: the Kimberlite store;
//! - `state-machine.log`: the last applied log id, the membership and the [`Ledger`], one
//!   record of changes appended for each batch of entries applied (`crate::applied_file`),
//!   in the background after the store is synced (`crate::applied_saver`). The store may be
//!   ahead of it after a crash; the entries in between are applied again, and
//!   [`Replica::apply`] answers them as the first time;
//! - `snapshot.json`: the last snapshot built or installed, sent to replicas that need it.
//!
//! Every file goes through the node's [`NodeFs`]. The file work of apply, build and install
//! runs on tokio's blocking threads (`spawn_blocking`), so that a slow disk does not stall
//! the Raft task's heartbeats and elections.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use kimberlite::{Config, Durability, Kimberlite};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use crate::applied_file::{AppliedFile, AppliedRecord, AppliedState};
use crate::applied_saver::AppliedSaver;
use crate::command::Response;
use crate::generation::Generation;
use crate::halt::Halt;
use crate::log_flush::Flushed;
use crate::node_fs::NodeFs;
use crate::open_error::OpenError;
use crate::replica::{ApplyError, Ledger, Replica};
use crate::saved_json::{read_json, write_json};
use crate::snapshot::SnapshotImage;
use crate::snapshot_error::SnapshotError;
use crate::types::{Node, NodeId, TypeConfig};

pub use crate::generation::STORE_DIR;

/// A snapshot as kept in its file: its segments named by path and length, read from the live
/// store when it is sent (`crate::snapshot_files`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, Node>,
    image: SnapshotImage,
}

/// The replicated state of one node. Cheap to clone: clones share it (openraft owns one, the
/// node reads through another).
#[derive(Debug, Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    fs: NodeFs,
    dir: PathBuf,
    config: Config,
    sync: bool,
    state: Mutex<State>,
    /// Saves the applied batches' records, after syncing the store, in the background.
    saver: AppliedSaver,
    /// How far the node's log is durable: an apply waits for its entries (`crate::log_flush`).
    log: OnceLock<Flushed>,
    /// Held by a test to hold back the apply (answers before it: `crate::commit_watch`).
    #[cfg(test)]
    apply_gate: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct State {
    replica: Replica,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    halted: Option<Halt>,
    snapshot: Option<StoredSnapshot>,
    snapshots_built: u64,
    /// The live generation of files (its applied state file is the saver's).
    generation: Generation,
    /// Set by [`StateMachine::close`]: nothing more is written to the node's directory.
    closed: bool,
}

impl StateMachine {
    /// Opens the state machine in `dir` on the real file system: its store (created if
    /// missing) and its saved files. With `sync` false, the saved files are not synced
    /// (tests that never crash).
    pub fn open(dir: &Path, config: Config, sync: bool) -> Result<Self, OpenError> {
        Self::open_with(NodeFs::os(), dir, config, sync)
    }

    /// [`StateMachine::open`] over the file system `fs`.
    pub fn open_with(
        fs: NodeFs,
        dir: &Path,
        config: Config,
        sync: bool,
    ) -> Result<Self, OpenError> {
        let (config, sync_store) = synced_per_batch(config);
        let io = |source| OpenError::Io {
            path: dir.to_owned(),
            source,
        };
        kimberlite_storage::FileSystem::create_dir_all(&fs, dir).map_err(io)?;
        let generation = Generation::current(&fs, dir).map_err(io)?;
        generation.remove_others(&fs, dir).map_err(io)?;
        let store =
            Kimberlite::open_with_fs(fs.clone(), generation.store_dir(dir), config.clone())?;
        let (file, applied) =
            AppliedFile::open_named(fs.clone(), dir, &generation.applied_name(), sync)?;
        let snapshot: Option<StoredSnapshot> =
            read_json(&fs, &dir.join(generation.snapshot_name()))?;
        let saver = AppliedSaver::start(store.clone(), file, sync_store, applied.last_applied)
            .map_err(io)?;
        let state = State {
            replica: Replica::new(store, applied.ledger),
            last_applied: applied.last_applied,
            membership: applied.membership,
            halted: None,
            snapshot,
            snapshots_built: 0,
            generation,
            closed: false,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                fs,
                dir: dir.to_owned(),
                config,
                sync,
                state: Mutex::new(state),
                saver,
                log: OnceLock::new(),
                #[cfg(test)]
                apply_gate: tokio::sync::Mutex::new(()),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `read` on the store as of the returned applied log id.
    pub fn read<T>(&self, read: impl FnOnce(&Kimberlite) -> T) -> (T, Option<LogId<NodeId>>) {
        self.read_replica(|replica| read(replica.store()))
    }

    /// Runs `read` on the replica (its store and its ledger) as of the returned applied log id.
    pub(crate) fn read_replica<T>(
        &self,
        read: impl FnOnce(&Replica) -> T,
    ) -> (T, Option<LogId<NodeId>>) {
        let state = self.lock();
        (read(&state.replica), state.last_applied)
    }

    /// Has every apply wait until `flushed` says the node's log holds its entries durably:
    /// the leader's own are synced beside replication (`crate::log_flush`).
    pub(crate) fn apply_once_durable(&self, flushed: Flushed) {
        let _ = self.shared.log.set(flushed);
    }

    /// Holds back every apply until the guard is dropped.
    #[cfg(test)]
    pub(crate) async fn hold_apply(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.shared.apply_gate.lock().await
    }

    /// The answer this replica keeps for `request`, if it applied it: a retry of that request
    /// gets this answer, not a second effect.
    #[must_use]
    pub fn answered(&self, request: crate::command::RequestId) -> Option<crate::command::Response> {
        self.lock().replica.ledger().requests.get(request).cloned()
    }

    /// Why this replica stopped applying, if it did: a divergence, or a failed save of
    /// what it applied.
    #[must_use]
    pub fn halted(&self) -> Option<Halt> {
        let halted = self.lock().halted.clone();
        halted.or_else(|| {
            self.shared
                .saver
                .failure()
                .map(|reason| Halt::SaveFailed { reason })
        })
    }

    /// The last applied log id the applied state file holds durably (with the store's
    /// events it says are applied): [`Self::last_applied`] once the background save of what
    /// was applied has ended.
    #[must_use]
    pub fn saved(&self) -> Option<LogId<NodeId>> {
        self.shared.saver.saved()
    }

    /// The ledger as of the last applied log id.
    #[must_use]
    pub fn ledger(&self) -> Ledger {
        self.lock().replica.ledger().clone()
    }

    /// The last applied log id.
    #[must_use]
    pub fn last_applied(&self) -> Option<LogId<NodeId>> {
        self.lock().last_applied
    }

    /// Closes the store and stops every later write to the node's directory. openraft's
    /// state machine task may still run after `Raft::shutdown` returns; a new incarnation of
    /// the node (its directory wiped and recreated) must not get its late writes.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        self.shared.saver.close();
        state
            .replica
            .replace(Kimberlite::in_memory(), Ledger::default());
    }

    /// Queues what the last batch changed for the background save; when the file has grown
    /// enough, saves now, rewriting it as the whole state (rare: the file grows fourfold
    /// between rewrites).
    fn save_batch(&self, state: &mut State, membership_changed: bool) -> Result<(), String> {
        let record = AppliedRecord::Batch {
            last_applied: state.last_applied,
            membership: membership_changed.then(|| state.membership.clone()),
            changes: state.replica.take_changes(),
        };
        let saver = &self.shared.saver;
        saver.queue(record);
        if saver.rewrite_wanted() {
            saver.flush(Some(full_state(state)))?;
        }
        Ok(())
    }

    /// Saves what was applied now, as the background saver soon would (tests that read the
    /// files).
    #[cfg(test)]
    pub(crate) fn save_now(&self) -> Result<(), String> {
        let _state = self.lock();
        self.shared.saver.flush(None)
    }

    /// Makes everything applied durable before something that relies on it: a snapshot
    /// (openraft purges the log it covers), an install, a rewrite.
    fn flush(&self) -> Result<(), SnapshotError> {
        self.shared
            .saver
            .flush(None)
            .map_err(|reason| SnapshotError::Io(std::io::Error::other(reason)))
    }

    fn apply_one(state: &mut State, entry: &Entry<TypeConfig>) -> Result<Response, ApplyError> {
        let response = match &entry.payload {
            EntryPayload::Blank => Response::None,
            EntryPayload::Normal(command) => state.replica.apply(entry.log_id.index, command)?,
            EntryPayload::Membership(membership) => {
                state.membership = StoredMembership::new(Some(entry.log_id), membership.clone());
                Response::None
            }
        };
        state.last_applied = Some(entry.log_id);
        Ok(response)
    }

    /// Applies `entries` in order; stops at the first that fails (and, on a divergence, for
    /// good). What was applied is saved either way.
    fn apply_batch(
        &self,
        entries: Vec<Entry<TypeConfig>>,
    ) -> Result<Vec<Response>, StorageError<NodeId>> {
        let mut state = self.lock();
        check_open(&state).map_err(|error| storage_error(ErrorSubject::StateMachine, &error))?;
        if let Some(reason) = self.shared.saver.failure() {
            // Fail-stop: what the disk holds is unknown until the node is reopened.
            state.halted.get_or_insert(Halt::SaveFailed { reason });
        }
        let applied_before = state.last_applied;
        let mut responses = Vec::with_capacity(entries.len());
        let mut failure = None;
        let mut membership_changed = false;
        for entry in &entries {
            if let Some(halt) = &state.halted {
                failure = Some(storage_error(ErrorSubject::Apply(entry.log_id), halt));
                break;
            }
            membership_changed |= matches!(entry.payload, EntryPayload::Membership(_));
            match Self::apply_one(&mut state, entry) {
                Ok(response) => responses.push(response),
                Err(error) => {
                    if let ApplyError::Diverged(divergence) = &error {
                        state.halted = Some(Halt::Diverged(divergence.clone()));
                    }
                    failure = Some(storage_error(ErrorSubject::Apply(entry.log_id), &error));
                    break;
                }
            }
        }
        // What was applied is saved either way; the store is synced before its record, in
        // the background (`crate::applied_saver`): the answer does not wait for either.
        if state.last_applied != applied_before || membership_changed {
            self.save_batch(&mut state, membership_changed)
                .map_err(|error| storage_error(ErrorSubject::StateMachine, &error))?;
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(responses),
        }
    }

    fn build(&self) -> Result<Snapshot<TypeConfig>, SnapshotError> {
        let mut state = self.lock();
        check_open(&state)?;
        self.build_locked(&mut state)
    }

    /// Builds a snapshot of the state now and keeps it; returned as kept: the segments named
    /// by path and length, not read.
    fn build_locked(&self, state: &mut State) -> Result<Snapshot<TypeConfig>, SnapshotError> {
        // openraft purges the log up to the snapshot once it is built: everything it covers
        // must be durable in the store and the applied state first.
        self.flush()?;
        let store_dir = state.generation.store_dir(&self.shared.dir);
        let image = SnapshotImage::build(
            &self.shared.fs,
            &store_dir,
            state.replica.store(),
            state.replica.ledger(),
        )?;
        state.snapshots_built += 1;
        let snapshot_id = match state.last_applied {
            Some(log_id) => format!(
                "{}-{}-{}",
                log_id.leader_id, log_id.index, state.snapshots_built
            ),
            None => format!("empty-{}", state.snapshots_built),
        };
        let meta = SnapshotMeta {
            last_log_id: state.last_applied,
            last_membership: state.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot { meta, image };
        let shared = &self.shared;
        let name = state.generation.snapshot_name();
        write_json(&shared.fs, &shared.dir, &name, &stored, shared.sync)?;
        // Not loaded: openraft keeps only a built snapshot's meta, and asks for the current
        // one (`current`, loaded) when it sends one. Loading read the whole store into memory
        // at every build.
        let image = stored.image.clone();
        let meta = stored.meta.clone();
        state.snapshot = Some(stored);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(image),
        })
    }

    /// The kept snapshot with its segments' bytes read from the live store; a new snapshot
    /// when a segment it names is no longer there as it was (retention dropped it, or a
    /// crash under an unsynced durability policy cut it).
    fn current(&self) -> Result<Option<Snapshot<TypeConfig>>, SnapshotError> {
        let mut state = self.lock();
        check_open(&state)?;
        let Some(stored) = &state.snapshot else {
            return Ok(None);
        };
        let store_dir = state.generation.store_dir(&self.shared.dir);
        let (meta, image) = match stored.image.load(&self.shared.fs, &store_dir) {
            Ok(image) => (stored.meta.clone(), image),
            Err(_) => {
                let built = self.build_locked(&mut state)?;
                let image = built.snapshot.load(&self.shared.fs, &store_dir)?;
                (built.meta, image)
            }
        };
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(image),
        }))
    }

    /// Installs `image` as a new generation (store, applied state, snapshot), verified first,
    /// committed by one rename; the old generation is removed after.
    fn install(
        &self,
        meta: &SnapshotMeta<NodeId, Node>,
        image: SnapshotImage,
    ) -> Result<(), SnapshotError> {
        let Shared {
            fs,
            dir,
            config,
            sync,
            ..
        } = &*self.shared;
        // Held while rebuilding too, so that a close waits for the rebuild to end.
        let mut state = self.lock();
        check_open(&state)?;
        // The old generation's records first: an install that fails leaves it live.
        self.flush()?;
        let next = state.generation.fresh(fs, dir)?;
        let store = image.rebuild(fs.clone(), &next.store_dir(dir), config.clone(), *sync)?;
        store.sync()?;
        let installed = AppliedState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            ledger: image.ledger.clone(),
        };
        let (mut file, _) = AppliedFile::open_named(fs.clone(), dir, &next.applied_name(), *sync)?;
        file.append(&[AppliedRecord::Full(installed)])?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            image: image.unloaded(),
        };
        write_json(fs, dir, &next.snapshot_name(), &stored, *sync)?;
        if let Err(error) = next.commit(fs, dir, *sync) {
            // Which generation is live is unknown until the node is reopened (fail-stop);
            // the old store serves follower reads meanwhile.
            state.closed = true;
            return Err(error.into());
        }
        // The old store is closed (dropped) before its files go.
        self.shared
            .saver
            .replace(store.clone(), file, meta.last_log_id);
        state.replica.replace(store, stored.image.ledger.clone());
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        state.halted = None;
        state.snapshot = Some(stored);
        state.generation = next;
        next.remove_others(fs, dir)?;
        Ok(())
    }

    /// Runs `work` on a blocking thread with a clone of this state machine.
    async fn blocking<T: Send + 'static>(
        &self,
        subject: ErrorSubject<NodeId>,
        work: impl FnOnce(&Self) -> Result<T, StorageError<NodeId>> + Send + 'static,
    ) -> Result<T, StorageError<NodeId>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || work(&this))
            .await
            .map_err(|error| storage_error(subject, &error))?
    }
}

/// The whole applied state of `state`, as a rewrite of its file holds it.
fn full_state(state: &State) -> AppliedState {
    AppliedState {
        last_applied: state.last_applied,
        membership: state.membership.clone(),
        ledger: state.replica.ledger().clone(),
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>), StorageError<NodeId>> {
        let state = self.lock();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        #[cfg(test)]
        drop(self.shared.apply_gate.lock().await);
        if let (Some(flushed), Some(last)) = (self.shared.log.get(), entries.last()) {
            let durable = flushed.wait_for(last.log_id.index).await;
            durable.map_err(|error| storage_error(ErrorSubject::Logs, error))?;
        }
        self.blocking(ErrorSubject::StateMachine, move |this| {
            this.apply_batch(entries)
        })
        .await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<SnapshotImage>, StorageError<NodeId>> {
        Ok(Box::default())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<SnapshotImage>,
    ) -> Result<(), StorageError<NodeId>> {
        let meta = meta.clone();
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        self.blocking(subject.clone(), move |this| {
            this.install(&meta, *snapshot)
                .map_err(|error| storage_error(subject, &error))
        })
        .await
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        self.blocking(ErrorSubject::Snapshot(None), |this| {
            this.current()
                .map_err(|error| storage_error(ErrorSubject::Snapshot(None), &error))
        })
        .await
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        self.blocking(ErrorSubject::Snapshot(None), |this| {
            this.build()
                .map_err(|error| storage_error(ErrorSubject::Snapshot(None), &error))
        })
        .await
    }
}

/// Refuses work on a closed state machine (its node stopped).
fn check_open(state: &State) -> Result<(), std::io::Error> {
    if state.closed {
        return Err(std::io::Error::other(
            "the state machine is closed (node stopped)",
        ));
    }
    Ok(())
}

/// openraft's error for a failure of this state machine: the node stops.
fn storage_error(
    subject: ErrorSubject<NodeId>,
    error: impl std::fmt::Display,
) -> StorageError<NodeId> {
    StorageError::from_io_error(
        subject,
        ErrorVerb::Write,
        std::io::Error::other(error.to_string()),
    )
}

/// The store's configuration in a replica: unless its policy is to never sync, appends are
/// unsynced and the whole applied batch is synced once before the applied state that says it
/// is applied is saved (one sync per batch, not per append; docs/REPLICATION.md, section
/// "State beside the store"). Returns it and whether to sync per batch.
fn synced_per_batch(config: Config) -> (Config, bool) {
    match config.durability_policy() {
        Durability::Unsynced => (config, false),
        Durability::SyncEachAppend | Durability::GroupCommit => {
            (config.durability(Durability::Unsynced), true)
        }
    }
}
