//! [`StateMachine`]: openraft's state machine over a [`Replica`], with its applied position,
//! membership and request table saved beside the store, and snapshots built and installed
//! (docs/REPLICATION.md, sections "Applying a command" and "Snapshots").
//!
//! # Files in a node's directory
//!
//! - `store/`: the Kimberlite store;
//! - `state-machine.json`: the last applied log id, the membership and the [`Ledger`],
//!   replaced atomically after each batch of entries applied. The store may be ahead of it
//!   after a crash; the entries in between are applied again, and [`Replica::apply`] answers
//!   them as the first time;
//! - `snapshot.json`: the last snapshot built or installed, sent to replicas that need it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use kimberlite::{Config, Kimberlite};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use crate::command::Response;
use crate::replica::{ApplyError, Divergence, Ledger, Replica};
use crate::snapshot::{SnapshotError, SnapshotImage};
use crate::types::{Node, NodeId, TypeConfig};

/// The store's directory in a node's directory.
pub const STORE_DIR: &str = "store";
/// Where a snapshot is rebuilt before it replaces the store.
const INSTALLING_DIR: &str = "store.installing";
/// Where the replaced store goes until it is removed.
const REPLACED_DIR: &str = "store.replaced";
const APPLIED_FILE: &str = "state-machine.json";
const SNAPSHOT_FILE: &str = "snapshot.json";

/// What is saved beside the store after each applied batch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Applied {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    ledger: Ledger,
}

/// A snapshot as kept in `snapshot.json`.
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
    dir: PathBuf,
    config: Config,
    sync: bool,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    replica: Replica,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    halted: Option<Divergence>,
    snapshot: Option<StoredSnapshot>,
    snapshots_built: u64,
    /// Set by [`StateMachine::close`]: nothing more is written to the node's directory.
    closed: bool,
}

/// Errors opening a state machine.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The store failed to open.
    #[error("store: {0}")]
    Store(#[from] kimberlite::Error),
    /// A file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A saved file does not parse.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The error.
        source: serde_json::Error,
    },
}

impl StateMachine {
    /// Opens the state machine in `dir`: its store (created if missing) and its saved files.
    /// With `sync` false, the saved files are not synced (tests that never crash).
    pub fn open(dir: &Path, config: Config, sync: bool) -> Result<Self, OpenError> {
        finish_replacing(dir)?;
        let store = Kimberlite::open_with(dir.join(STORE_DIR), config.clone())?;
        let applied: Applied = read_json(&dir.join(APPLIED_FILE))?.unwrap_or_default();
        let snapshot: Option<StoredSnapshot> = read_json(&dir.join(SNAPSHOT_FILE))?;
        let state = State {
            replica: Replica::new(store, applied.ledger),
            last_applied: applied.last_applied,
            membership: applied.membership,
            halted: None,
            snapshot,
            snapshots_built: 0,
            closed: false,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                dir: dir.to_owned(),
                config,
                sync,
                state: Mutex::new(state),
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
        let state = self.lock();
        (read(state.replica.store()), state.last_applied)
    }

    /// The answer this replica keeps for `request`, if it applied it: a retry of that request
    /// gets this answer, not a second effect.
    #[must_use]
    pub fn answered(&self, request: crate::command::RequestId) -> Option<crate::command::Response> {
        self.lock().replica.ledger().requests.get(request).cloned()
    }

    /// The divergence that stopped this replica, if one did.
    #[must_use]
    pub fn halted(&self) -> Option<Divergence> {
        self.lock().halted.clone()
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
        state
            .replica
            .replace(Kimberlite::in_memory(), Ledger::default());
    }

    fn save_applied(&self, state: &State) -> Result<(), StorageError<NodeId>> {
        let applied = Applied {
            last_applied: state.last_applied,
            membership: state.membership.clone(),
            ledger: state.replica.ledger().clone(),
        };
        write_json(&self.shared.dir, APPLIED_FILE, &applied, self.shared.sync)
            .map_err(|error| storage_error(ErrorSubject::StateMachine, &error))
    }

    fn apply_one(
        &self,
        state: &mut State,
        entry: &Entry<TypeConfig>,
    ) -> Result<Response, ApplyError> {
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

    fn install(
        &self,
        meta: &SnapshotMeta<NodeId, Node>,
        image: SnapshotImage,
    ) -> Result<(), SnapshotError> {
        let dir = &self.shared.dir;
        // Held while rebuilding too, so that a close waits for the rebuild to end.
        let mut state = self.lock();
        check_open(&state)?;
        let store = image.rebuild(&dir.join(INSTALLING_DIR), self.shared.config.clone())?;
        drop(store);
        // The old store must be closed before its directory moves.
        state
            .replica
            .replace(Kimberlite::in_memory(), Ledger::default());
        fs::rename(dir.join(STORE_DIR), dir.join(REPLACED_DIR))?;
        fs::rename(dir.join(INSTALLING_DIR), dir.join(STORE_DIR))?;
        fs::remove_dir_all(dir.join(REPLACED_DIR))?;
        let store = Kimberlite::open_with(dir.join(STORE_DIR), self.shared.config.clone())?;
        state.replica.replace(store, image.ledger.clone());
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        state.halted = None;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            image,
        };
        write_json(dir, SNAPSHOT_FILE, &stored, self.shared.sync)?;
        state.snapshot = Some(stored);
        self.save_applied(&state)
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        Ok(())
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
        let mut state = self.lock();
        check_open(&state).map_err(|error| storage_error(ErrorSubject::StateMachine, &error))?;
        let mut responses = Vec::new();
        let mut failure = None;
        for entry in entries {
            if let Some(divergence) = &state.halted {
                failure = Some(storage_error(ErrorSubject::Apply(entry.log_id), divergence));
                break;
            }
            match self.apply_one(&mut state, &entry) {
                Ok(response) => responses.push(response),
                Err(error) => {
                    if let ApplyError::Diverged(divergence) = &error {
                        state.halted = Some(divergence.clone());
                    }
                    failure = Some(storage_error(ErrorSubject::Apply(entry.log_id), &error));
                    break;
                }
            }
        }
        self.save_applied(&state)?;
        match failure {
            Some(error) => Err(error),
            None => Ok(responses),
        }
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
        self.install(meta, *snapshot)
            .map_err(|error| storage_error(ErrorSubject::Snapshot(Some(meta.signature())), &error))
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.lock().snapshot.clone().map(|stored| Snapshot {
            meta: stored.meta,
            snapshot: Box::new(stored.image),
        }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let mut state = self.lock();
        check_open(&state).map_err(|error| storage_error(ErrorSubject::Snapshot(None), &error))?;
        let image = SnapshotImage::build(state.replica.store(), state.replica.ledger())
            .map_err(|error| storage_error(ErrorSubject::Snapshot(None), &error))?;
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
        write_json(&self.shared.dir, SNAPSHOT_FILE, &stored, self.shared.sync)
            .map_err(|error| storage_error(ErrorSubject::Snapshot(None), &error))?;
        state.snapshot = Some(stored.clone());
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(stored.image),
        })
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

/// Completes a snapshot install a crash interrupted: the new store was renamed into place
/// and the old one not yet removed, or the old one moved away and the new one not yet in.
fn finish_replacing(dir: &Path) -> Result<(), OpenError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| OpenError::Io { path, source }
    };
    let store = dir.join(STORE_DIR);
    let replaced = dir.join(REPLACED_DIR);
    let installing = dir.join(INSTALLING_DIR);
    if !store.exists() && installing.exists() && replaced.exists() {
        fs::rename(&installing, &store).map_err(io(&installing))?;
    }
    if replaced.exists() && store.exists() {
        fs::remove_dir_all(&replaced).map_err(io(&replaced))?;
    }
    if installing.exists() {
        fs::remove_dir_all(&installing).map_err(io(&installing))?;
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, OpenError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| OpenError::Parse {
                path: path.to_owned(),
                source,
            }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(OpenError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Replaces `dir/name` by `value` as JSON: written beside it, synced, renamed over it.
fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T, sync: bool) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let temporary = dir.join(format!("{name}.tmp"));
    let mut file = fs::File::create(&temporary)?;
    file.write_all(&bytes)?;
    if sync {
        file.sync_all()?;
    }
    fs::rename(&temporary, dir.join(name))?;
    if sync {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftStateMachine;
    use openraft::RaftSnapshotBuilder;

    use super::*;

    #[tokio::test]
    async fn a_closed_state_machine_releases_its_store_and_writes_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let mut state_machine = StateMachine::open(dir.path(), Config::default(), false).unwrap();
        state_machine.apply(Vec::new()).await.unwrap();
        state_machine.close();
        // A new incarnation of the node opens the store while the old one's tasks run.
        let reopened = Kimberlite::open_with(dir.path().join(STORE_DIR), Config::default());
        assert!(reopened.is_ok(), "{:?}", reopened.err());
        fs::remove_file(dir.path().join(APPLIED_FILE)).unwrap();
        assert!(state_machine.apply(Vec::new()).await.is_err());
        assert!(state_machine.build_snapshot().await.is_err());
        assert!(!dir.path().join(APPLIED_FILE).exists());
        assert!(!dir.path().join(SNAPSHOT_FILE).exists());
    }
}
