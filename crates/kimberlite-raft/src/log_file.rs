//! The Raft log's file: a [`JournalFile`] (append-only, checksummed records replayed at open;
//! its format and recovery are there), `raft-log` in the node's directory.
//!
//! A record is an entry, a truncation ("entries from index i on are gone"), a purge ("entries
//! up to this log id are gone"), the vote or the committed log id; replay applies them in
//! order, so a truncation is one small record, not a rewrite. When purged entries make up most
//! of the file, [`JournalFile::rewrite`] writes the live state to a new file and renames it
//! over the old one (docs/REPLICATION.md, section "The Raft log").

use std::collections::BTreeMap;

use kimberlite_storage::OsFileSystem;
use openraft::{Entry, EntryPayload, LogId, Vote};
use serde::{Deserialize, Serialize};

pub use crate::journal_file::LogFileError;
use crate::journal_file::{Journal, JournalFile};
use crate::types::{NodeId, TypeConfig};

/// The log file's name in a node's directory.
pub const LOG_FILE: &str = "raft-log";

/// The Raft log's file over the file system `F`.
pub(crate) type LogFile<F = OsFileSystem> = JournalFile<F, LogState>;

/// One record of the log file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum LogRecord {
    /// A log entry.
    Entry(Entry<TypeConfig>),
    /// Every entry from this index on is gone (an uncommitted suffix replaced by a leader).
    Truncate(u64),
    /// Every entry up to this log id is gone (applied and covered by a snapshot).
    Purge(LogId<NodeId>),
    /// The node's vote.
    Vote(Vote<NodeId>),
    /// The last log id known committed.
    Committed(Option<LogId<NodeId>>),
}

/// What replaying the log file found.
#[derive(Debug, Default)]
pub(crate) struct LogState {
    /// The live entries by index.
    pub(crate) entries: BTreeMap<u64, Entry<TypeConfig>>,
    /// The last purged log id.
    pub(crate) purged: Option<LogId<NodeId>>,
    /// The vote.
    pub(crate) vote: Option<Vote<NodeId>>,
    /// The last committed log id saved.
    pub(crate) committed: Option<LogId<NodeId>>,
    /// The bytes of events the live entries carry ([`entry_bytes`]).
    pub(crate) entry_bytes: u64,
}

/// The bytes of events `entry` carries: what it holds in memory and in the file beyond a few
/// hundred bytes.
pub(crate) fn entry_bytes(entry: &Entry<TypeConfig>) -> u64 {
    match &entry.payload {
        EntryPayload::Normal(command) => command.event_bytes(),
        EntryPayload::Blank | EntryPayload::Membership(_) => 0,
    }
}

/// The bytes of events `entries` carry.
fn entries_bytes(entries: &BTreeMap<u64, Entry<TypeConfig>>) -> u64 {
    entries.values().map(entry_bytes).sum()
}

impl Journal for LogState {
    type Record = LogRecord;
    const FILE: &'static str = LOG_FILE;

    fn apply(&mut self, record: LogRecord) {
        match record {
            LogRecord::Entry(entry) => {
                self.entry_bytes += entry_bytes(&entry);
                if let Some(replaced) = self.entries.insert(entry.log_id.index, entry) {
                    self.entry_bytes -= entry_bytes(&replaced);
                }
            }
            LogRecord::Truncate(index) => {
                self.entry_bytes -= entries_bytes(&self.entries.split_off(&index));
            }
            LogRecord::Purge(log_id) => {
                let kept = self.entries.split_off(&(log_id.index + 1));
                self.entry_bytes -= entries_bytes(&self.entries);
                self.entries = kept;
                self.purged = Some(log_id);
            }
            LogRecord::Vote(vote) => self.vote = Some(vote),
            LogRecord::Committed(committed) => self.committed = committed,
        }
    }

    fn records(&self) -> Vec<LogRecord> {
        let mut records = Vec::with_capacity(self.entries.len() + 3);
        records.extend(self.vote.map(LogRecord::Vote));
        records.push(LogRecord::Committed(self.committed));
        records.extend(self.purged.map(LogRecord::Purge));
        records.extend(self.entries.values().cloned().map(LogRecord::Entry));
        records
    }

    fn wants_rewrite(&self, record_count: u64, _len_bytes: u64, _base_len_bytes: u64) -> bool {
        let live = self.entries.len() as u64 + 3;
        record_count > 64 && record_count > 2 * live
    }
}
