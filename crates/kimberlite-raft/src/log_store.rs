//! [`LogStore`]: openraft's log storage over [`crate::log_file`]. Entries stay in memory too:
//! the log is purged after each snapshot, and a snapshot is wanted
//! ([`LogStore::snapshot_wanted`]) once its entries hold [`LogStore::with_snapshot_bytes`]
//! bytes of events, so that neither memory nor the file holds much more, whatever openraft's
//! count of entries. Every change is written and synced to the file before openraft is told it
//! is done, except the leader's own normal entries, synced beside replication by
//! [`crate::log_flush`] (docs/REPLICATION.md, section "The Raft log").

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use openraft::storage::{LogFlushed, LogState as RaftLogState, RaftLogStorage};
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError,
    Vote,
};
use tokio::sync::Notify;

use crate::commit_watch::CommitWatch;
use crate::journal_file::Journal;
use crate::log_file::{LogFile, LogFileError, LogRecord, LogState};
use crate::log_flush::{Flushed, LogFlusher};
use crate::node_fs::NodeFs;
use crate::types::{NodeId, TypeConfig};

/// The durable Raft log of one node. Cheap to clone: clones (the readers openraft asks for)
/// share the file and the entries.
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
    /// How far the log is durable.
    flushed: Flushed,
    /// openraft's committed log id, published clamped to `flushed`.
    committed: Arc<Committed>,
    /// Syncs the leader's own normal entries in the background.
    flusher: Arc<LogFlusher>,
    /// The node this log belongs to, once known ([`LogStore::of_node`]): its own normal
    /// entries, while it leads, are synced in the background.
    own: Option<NodeId>,
    /// Bytes of events in the live entries past which a snapshot is wanted.
    snapshot_bytes: u64,
    /// Told when a snapshot is wanted.
    snapshot_wanted: Arc<Notify>,
}

#[derive(Debug)]
struct Inner {
    file: LogFile<NodeFs>,
    state: LogState,
}

/// openraft's committed log id and what the proposer hears of it: that log id clamped to
/// the durable log, published under one lock so that a later value never loses to an older.
#[derive(Debug)]
struct Committed {
    /// Tells the proposer its entry's log id and the committed log ids, before the apply.
    commits: CommitWatch,
    flushed: Flushed,
    raft: Mutex<Option<LogId<NodeId>>>,
}

impl Committed {
    /// Publishes openraft's committed log id (`Some`) or the last one again (`None`: the
    /// durable log moved), clamped to the durable log.
    fn publish(&self, raft: Option<Option<LogId<NodeId>>>) {
        let mut last = self.raft.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(raft) = raft {
            *last = raft;
        }
        self.commits.committed(self.flushed.clamp(*last));
    }
}

fn last_log_id(state: &LogState) -> Option<LogId<NodeId>> {
    state
        .entries
        .values()
        .next_back()
        .map(|entry| entry.log_id)
        .or(state.purged)
}

impl LogStore {
    /// Opens the log in `dir` (created if missing), replaying its file. With `sync` false,
    /// writes are not synced (tests that never crash the machine).
    pub fn open(dir: &Path, sync: bool) -> Result<Self, LogFileError> {
        Self::open_with(NodeFs::os(), dir, sync)
    }

    /// [`LogStore::open`] over the file system `fs`.
    pub fn open_with(fs: NodeFs, dir: &Path, sync: bool) -> Result<Self, LogFileError> {
        let (mut file, state) = LogFile::open_with(fs, dir, sync)?;
        // What was replayed counts as durable: a background sync a crash of the process
        // (not of the machine) cut short left its writes in the page cache only.
        file.sync()?;
        let flushed = Flushed::new(last_log_id(&state));
        let committed = Arc::new(Committed {
            commits: CommitWatch::default(),
            flushed: flushed.clone(),
            raft: Mutex::new(None),
        });
        let flusher = {
            let committed = Arc::clone(&committed);
            LogFlusher::start(flushed.clone(), move || committed.publish(None)).map_err(
                |source| LogFileError::Io {
                    path: dir.to_owned(),
                    source,
                },
            )?
        };
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner { file, state })),
            flushed,
            committed,
            flusher: Arc::new(flusher),
            own: None,
            snapshot_bytes: u64::MAX,
            snapshot_wanted: Arc::new(Notify::new()),
        })
    }

    /// This log, wanting a snapshot whenever its live entries come to hold `bytes` bytes of
    /// events or more ([`LogStore::snapshot_wanted`]), and at once if they already do (a log
    /// reopened after a crash before its purge); by default never.
    #[must_use]
    pub fn with_snapshot_bytes(mut self, bytes: u64) -> Self {
        self.snapshot_bytes = bytes;
        if self.entry_bytes() >= bytes {
            self.snapshot_wanted.notify_one();
        }
        self
    }

    /// Told (one permit, however many times) when the live entries come to hold the bytes of
    /// [`LogStore::with_snapshot_bytes`], and again after a purge that leaves them above it;
    /// the node then asks openraft for a snapshot, after which openraft purges the log.
    #[must_use]
    pub fn snapshot_wanted(&self) -> Arc<Notify> {
        Arc::clone(&self.snapshot_wanted)
    }

    /// The bytes of events the live entries hold.
    #[must_use]
    pub fn entry_bytes(&self) -> u64 {
        self.lock().state.entry_bytes
    }

    /// This log as node `id`'s: while it leads, its own normal entries are synced in the
    /// background, replicated meanwhile.
    #[must_use]
    pub(crate) fn of_node(mut self, id: NodeId) -> Self {
        self.own = Some(id);
        self
    }

    /// What the proposer registers its entries with ([`CommitWatch`]).
    pub(crate) fn commits(&self) -> &CommitWatch {
        &self.committed.commits
    }

    /// How far the log is durable: what the leader's commit is clamped to.
    pub(crate) fn flushed(&self) -> &Flushed {
        &self.flushed
    }

    /// Holds (or releases) the background sync of the leader's entries.
    #[cfg(test)]
    pub(crate) fn hold_flush(&self, held: bool) {
        self.flusher.hold(held);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
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
        self.write_locked(&mut self.lock(), records, verb, true)
    }

    /// Writes `records`, synced or not, and applies them to the entries in memory. A synced
    /// write makes the whole file durable, the background sync's writes with it.
    fn write_locked(
        &self,
        inner: &mut Inner,
        records: &[LogRecord],
        verb: ErrorSubject<NodeId>,
        sync: bool,
    ) -> Result<(), StorageError<NodeId>> {
        if let Some(failure) = self.flushed.now().failure {
            return Err(io_error(verb, std::io::Error::other(failure)));
        }
        let written = if sync {
            inner.file.append(records)
        } else {
            inner.file.append_unsynced(records)
        };
        written.map_err(|error| log_file_error(verb, error))?;
        for record in records.iter().cloned() {
            inner.state.apply(record);
        }
        if sync {
            self.flushed.synced(last_log_id(&inner.state));
        }
        Ok(())
    }

    /// Whether `entries` are this node's own normal entries of the term it leads (its saved
    /// vote is its own, committed): they are synced in the background. Anything else (a
    /// blank or membership entry, a follower's append, this node's entries of an earlier
    /// term sent back by another leader) is synced before openraft hears of it.
    fn deferred(&self, inner: &Inner, entries: &[LogRecord]) -> bool {
        let Some(own) = self.own else {
            return false;
        };
        let Some(vote) = inner.state.vote.filter(Vote::is_committed) else {
            return false;
        };
        let leading = vote.leader_id().node_id == own;
        leading
            && !entries.is_empty()
            && entries.iter().all(|record| match record {
                LogRecord::Entry(entry) => {
                    entry.log_id.leader_id == *vote.leader_id()
                        && matches!(entry.payload, EntryPayload::Normal(_))
                }
                _ => false,
            })
    }

    /// Writes the leader's own entries unsynced and queues their sync.
    fn append_deferred(
        &self,
        inner: &mut Inner,
        records: &[LogRecord],
    ) -> Result<(), StorageError<NodeId>> {
        self.write_locked(inner, records, ErrorSubject::Logs, false)?;
        let handle = inner.file.sync_handle().map_err(|error| {
            self.flushed.failed(error.to_string());
            log_file_error(ErrorSubject::Logs, error)
        })?;
        if let Some(log_id) = last_log_id(&inner.state) {
            self.flusher.queue(self.flushed.job(log_id, handle));
        }
        Ok(())
    }
}

impl LogStore {
    /// Writes entries (`records`), synced unless they are the leader's own normal entries,
    /// and notes the proposer's; openraft hears of them next.
    pub(crate) fn write_entries(&self, records: &[LogRecord]) -> Result<(), StorageError<NodeId>> {
        let result = {
            let mut inner = self.lock();
            let before = inner.state.entry_bytes;
            let written = if self.deferred(&inner, records) {
                // openraft counts this node's log as holding them once told: every use of
                // the commit waits for `flushed` instead (crate::log_flush).
                self.append_deferred(&mut inner, records)
            } else {
                // Synced before openraft hears of it: it may count this node's vote for them.
                self.write_locked(&mut inner, records, ErrorSubject::Logs, true)
            };
            // Once, as the entries cross the mark: the purge after the snapshot asks again
            // if it leaves them above.
            if before < self.snapshot_bytes && inner.state.entry_bytes >= self.snapshot_bytes {
                self.snapshot_wanted.notify_one();
            }
            written
        };
        // Before openraft hears of the write, so before the entry can be committed.
        if result.is_ok() {
            self.committed
                .commits
                .appended(records.iter().filter_map(|record| match record {
                    LogRecord::Entry(entry) => Some(entry),
                    _ => None,
                }));
        }
        result
    }

    /// The committed log id last saved.
    #[cfg(test)]
    pub(crate) fn saved_committed(&self) -> Option<LogId<NodeId>> {
        self.lock().state.committed
    }
}

fn log_file_error(subject: ErrorSubject<NodeId>, error: LogFileError) -> StorageError<NodeId> {
    let error = match error {
        LogFileError::Io { source, .. } => source,
        other @ (LogFileError::Corrupt { .. } | LogFileError::UnknownEncoding { .. }) => {
            std::io::Error::other(other.to_string())
        }
    };
    io_error(subject, error)
}

fn io_error(subject: ErrorSubject<NodeId>, error: std::io::Error) -> StorageError<NodeId> {
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
        Ok(RaftLogState {
            last_purged_log_id: inner.state.purged,
            last_log_id: last_log_id(&inner.state),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write(&[LogRecord::Vote(*vote)], ErrorSubject::Vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        // Read at start only. openraft resumes leading at once when the vote is this node's
        // own and committed; but a crash may have lost its entries synced in the background,
        // and leading the same term again it would write another entry at an index the
        // followers hold. Uncommitted, the vote still refuses every other candidate of its
        // term, and the node asks again in a later one.
        let vote = self.lock().state.vote;
        Ok(vote.map(|vote| match self.own {
            Some(own) if vote.leader_id().node_id == own && vote.is_committed() => {
                Vote::new(vote.leader_id().term, own)
            }
            _ => vote,
        }))
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        // Not synced: openraft needs no durable committed id when the state machine saves
        // what it applied before `apply` returns, as ours does (docs/REPLICATION.md, section
        // "The Raft log"); after a crash it is only a hint, and a lost one costs nothing.
        // Clamped to the durable log: after a crash it never points past the log.
        let durable = self.flushed.clamp(committed);
        let record = LogRecord::Committed(durable);
        self.write_locked(&mut self.lock(), &[record], ErrorSubject::Store, false)?;
        // openraft applies up to `committed` next: a certain append is answered now, once
        // the leader's log holds it durably too.
        self.committed.publish(Some(committed));
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
        // Only picks the thread: `write_entries` decides again under the lock it writes
        // under (a vote saved in between changes the answer), and that decision is the one
        // that says whether the entries are synced before openraft hears of them.
        let deferred = self.deferred(&self.lock(), &records);
        let result = if deferred {
            self.write_entries(&records)
        } else {
            // A synced write (a follower's entries): its `fdatasync` runs on a blocking
            // thread, so the runtime's worker goes on with other tasks meanwhile (with three
            // nodes in one process, the leader's answer at commit waited behind it).
            let this = self.clone();
            tokio::task::spawn_blocking(move || this.write_entries(&records))
                .await
                .unwrap_or_else(|error| {
                    Err(io_error(ErrorSubject::Logs, std::io::Error::other(error)))
                })
        };
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
        let mut inner = self.lock();
        let before = inner.state.entry_bytes;
        self.write_locked(
            &mut inner,
            &[LogRecord::Purge(log_id)],
            ErrorSubject::Logs,
            true,
        )?;
        if inner.file.wants_rewrite(&inner.state) {
            // Under the same lock, and a synced write: a background sync queued before it
            // (its handle may name the old file) publishes nothing.
            let Inner { file, state } = &mut *inner;
            file.rewrite(state)
                .map_err(|error| log_file_error(ErrorSubject::Logs, error))?;
            self.flushed.synced(last_log_id(state));
        }
        // Still above the mark (entries were applied since the snapshot): another. Not when
        // this purge freed nothing, so that a replica that stopped applying is not snapshotted
        // over and over.
        let after = inner.state.entry_bytes;
        if after < before && after >= self.snapshot_bytes {
            self.snapshot_wanted.notify_one();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::log_file_tests::{append_entry, log_id};

    /// Whether the log wants a snapshot now (a permit is waiting), taking the permit.
    async fn wanted(log: &LogStore) -> bool {
        let wanted = log.snapshot_wanted();
        tokio::time::timeout(Duration::from_millis(20), wanted.notified())
            .await
            .is_ok()
    }

    /// Entry `index`: 4 events of 10 bytes.
    fn forty_bytes(index: u64) -> LogRecord {
        LogRecord::Entry(append_entry(index, 4, 10))
    }

    #[tokio::test]
    async fn a_snapshot_is_wanted_as_the_entries_cross_the_mark_and_after_purges_above_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogStore::open(dir.path(), false)
            .unwrap()
            .with_snapshot_bytes(100);
        log.write_entries(&[forty_bytes(1), forty_bytes(2)])
            .unwrap();
        assert_eq!(log.entry_bytes(), 80);
        assert!(!wanted(&log).await, "under the mark");
        log.write_entries(&[forty_bytes(3)]).unwrap();
        assert!(wanted(&log).await, "crossed the mark");
        log.write_entries(&[forty_bytes(4)]).unwrap();
        assert!(
            !wanted(&log).await,
            "once per crossing, not per write above it"
        );

        log.purge(log_id(1)).await.unwrap();
        assert_eq!(log.entry_bytes(), 120);
        assert!(
            wanted(&log).await,
            "a purge that leaves the entries above the mark"
        );
        log.purge(log_id(1)).await.unwrap();
        assert!(!wanted(&log).await, "a purge that freed nothing");
        log.purge(log_id(3)).await.unwrap();
        assert_eq!(log.entry_bytes(), 40);
        assert!(!wanted(&log).await, "under the mark again");
        log.write_entries(&[forty_bytes(5), forty_bytes(6)])
            .unwrap();
        assert!(wanted(&log).await, "crossed it again");
    }

    #[tokio::test]
    async fn a_log_reopened_above_the_mark_wants_a_snapshot_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path(), false).unwrap();
        log.write_entries(&[forty_bytes(1), forty_bytes(2), forty_bytes(3)])
            .unwrap();
        drop(log);
        let reopened = LogStore::open(dir.path(), false).unwrap();
        assert_eq!(reopened.entry_bytes(), 120);
        assert!(wanted(&reopened.clone().with_snapshot_bytes(100)).await);
        assert!(!wanted(&reopened.with_snapshot_bytes(200)).await);
    }

    #[tokio::test]
    async fn by_default_no_snapshot_is_ever_wanted() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path(), false).unwrap();
        let big = LogRecord::Entry(append_entry(1, 1_000, 1_000));
        log.write_entries(&[big]).unwrap();
        assert_eq!(log.entry_bytes(), 1_000_000);
        assert!(!wanted(&log).await);
    }
}
