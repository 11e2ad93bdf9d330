//! [`LogStore`]: openraft's log storage over [`crate::log_file`]. Entries stay in memory too
//! (the log is purged after each snapshot, so it stays short); every change is written and
//! synced to the file before openraft is told it is done.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState as RaftLogState, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError, Vote,
};

use crate::commit_watch::CommitWatch;
use crate::journal_file::Journal;
use crate::log_file::{LogFile, LogFileError, LogRecord, LogState};
use crate::node_fs::NodeFs;
use crate::types::{NodeId, TypeConfig};

/// The durable Raft log of one node. Cheap to clone: clones (the readers openraft asks for)
/// share the file and the entries.
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
    /// Tells the proposer its entry's log id and the committed log ids, before the apply.
    commits: CommitWatch,
}

#[derive(Debug)]
struct Inner {
    file: LogFile<NodeFs>,
    state: LogState,
}

impl LogStore {
    /// Opens the log in `dir` (created if missing), replaying its file. With `sync` false,
    /// writes are not synced (tests that never crash the machine).
    pub fn open(dir: &Path, sync: bool) -> Result<Self, LogFileError> {
        Self::open_with(NodeFs::os(), dir, sync)
    }

    /// [`LogStore::open`] over the file system `fs`.
    pub fn open_with(fs: NodeFs, dir: &Path, sync: bool) -> Result<Self, LogFileError> {
        let (file, state) = LogFile::open_with(fs, dir, sync)?;
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner { file, state })),
            commits: CommitWatch::default(),
        })
    }

    /// What the proposer registers its entries with ([`CommitWatch`]).
    pub(crate) fn commits(&self) -> &CommitWatch {
        &self.commits
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The index of the first entry kept, if any: tests check the log is purged.
    #[must_use]
    pub fn first_index(&self) -> Option<u64> {
        self.lock().state.entries.keys().next().copied()
    }

    fn write(
        &self,
        records: &[LogRecord],
        verb: ErrorSubject<NodeId>,
    ) -> Result<(), StorageError<NodeId>> {
        self.write_with(records, verb, true)
    }

    /// Writes `records`, synced or not, and applies them to the entries in memory.
    fn write_with(
        &self,
        records: &[LogRecord],
        verb: ErrorSubject<NodeId>,
        sync: bool,
    ) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.lock();
        let written = if sync {
            inner.file.append(records)
        } else {
            inner.file.append_unsynced(records)
        };
        written.map_err(|error| io_error(verb, error))?;
        for record in records.iter().cloned() {
            inner.state.apply(record);
        }
        Ok(())
    }
}

fn io_error(subject: ErrorSubject<NodeId>, error: LogFileError) -> StorageError<NodeId> {
    let error = match error {
        LogFileError::Io { source, .. } => source,
        other @ (LogFileError::Corrupt { .. } | LogFileError::UnknownEncoding { .. }) => {
            std::io::Error::other(other.to_string())
        }
    };
    StorageError::from_io_error(subject, ErrorVerb::Write, error)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let inner = self.lock();
        Ok(inner
            .state
            .entries
            .range(range)
            .map(|(_, entry)| entry.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<RaftLogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.lock();
        let last_purged_log_id = inner.state.purged;
        let last_log_id = inner
            .state
            .entries
            .values()
            .next_back()
            .map(|entry| entry.log_id)
            .or(last_purged_log_id);
        Ok(RaftLogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write(&[LogRecord::Vote(*vote)], ErrorSubject::Vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().state.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        // Not synced: openraft needs no durable committed id when the state machine saves
        // what it applied before `apply` returns, as ours does (docs/REPLICATION.md, section
        // "The Raft log"); after a crash it is only a hint, and a lost one costs nothing.
        self.write_with(
            &[LogRecord::Committed(committed)],
            ErrorSubject::Store,
            false,
        )?;
        // openraft applies up to `committed` next: a certain append is answered now.
        self.commits.committed(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().state.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let records: Vec<LogRecord> = entries.into_iter().map(LogRecord::Entry).collect();
        // Synced before openraft hears of it: it may count this node's vote for the entries.
        let result = self.write(&records, ErrorSubject::Logs);
        // Before openraft hears of the flush, so before the entry can be committed.
        if result.is_ok() {
            self.commits
                .appended(records.iter().filter_map(|record| match record {
                    LogRecord::Entry(entry) => Some(entry),
                    _ => None,
                }));
        }
        callback.log_io_completed(
            result
                .as_ref()
                .map(|_| ())
                .map_err(|error| std::io::Error::other(error.to_string())),
        );
        result
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write(&[LogRecord::Truncate(log_id.index)], ErrorSubject::Logs)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write(&[LogRecord::Purge(log_id)], ErrorSubject::Logs)?;
        let mut inner = self.lock();
        if inner.file.wants_rewrite(&inner.state) {
            let Inner { file, state } = &mut *inner;
            file.rewrite(state)
                .map_err(|error| io_error(ErrorSubject::Logs, error))?;
        }
        Ok(())
    }
}
