//! The Raft log's file: one append-only file of checksummed records, replayed at open.
//!
//! # Format (docs/REPLICATION.md, section "The Raft log")
//!
//! ```text
//! +---------------+-----------------+---------------+--------------------------+
//! | body_len: u32 | len_crc: u32    | body_crc: u32 | body: body_len bytes     |
//! |               | crc32c of the   | crc32c of the | JSON of one `LogRecord`  |
//! |               | body_len bytes  | body          |                          |
//! +---------------+-----------------+---------------+--------------------------+
//! all little-endian
//! ```
//!
//! A record is an entry, a truncation ("entries from index i on are gone"), a purge ("entries
//! up to this log id are gone"), the vote or the committed log id; replay applies them in
//! order, so a truncation is one small record, not a rewrite. When purged entries make up most
//! of the file, [`LogFile::rewrite`] writes the live state to a new file and renames it over
//! the old one.
//!
//! Recovery: a record cut short at the end of the file, a bad body checksum on the file's last
//! record, or a bad length check followed by nothing but zeros, is a write that never finished
//! (never acknowledged: every write is synced before it is): the tail is cut. Any other bad
//! record is damage: open fails with [`LogFileError::Corrupt`] rather than dropping the
//! acknowledged entries after it. The length has its own check so that a damaged length is
//! never taken for a record running past the end.
//!
//! Every file access goes through the storage crate's [`FileSystem`] (the real one by
//! default), so a simulated file system can fail a write or a sync, or lose what was not
//! synced (docs/TESTING.md, section "Replication").

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use kimberlite_storage::{FileHandle, FileSystem, OsFileSystem};
use openraft::{Entry, LogId, Vote};
use serde::{Deserialize, Serialize};

use crate::types::{NodeId, TypeConfig};

/// The log file's name in a node's directory.
pub const LOG_FILE: &str = "raft-log";
/// Bytes before a record's body: its length and checksum.
const RECORD_HEADER_BYTES: u64 = (size_of::<u32>() * 3) as u64;
/// Largest body accepted at replay: a larger length field is damage, not a record.
const RECORD_BODY_BYTES_MAX: u64 = 256 * 1024 * 1024;

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
}

impl LogState {
    /// Applies one record, as replay does.
    pub(crate) fn apply(&mut self, record: LogRecord) {
        match record {
            LogRecord::Entry(entry) => {
                self.entries.insert(entry.log_id.index, entry);
            }
            LogRecord::Truncate(index) => {
                self.entries.split_off(&index);
            }
            LogRecord::Purge(log_id) => {
                self.entries = self.entries.split_off(&(log_id.index + 1));
                self.purged = Some(log_id);
            }
            LogRecord::Vote(vote) => self.vote = Some(vote),
            LogRecord::Committed(committed) => self.committed = committed,
        }
    }

    /// The records that rebuild this state in a new file.
    fn records(&self) -> Vec<LogRecord> {
        let mut records = Vec::with_capacity(self.entries.len() + 3);
        records.extend(self.vote.map(LogRecord::Vote));
        records.push(LogRecord::Committed(self.committed));
        records.extend(self.purged.map(LogRecord::Purge));
        records.extend(self.entries.values().cloned().map(LogRecord::Entry));
        records
    }
}

/// Errors opening or writing the log file.
#[derive(Debug, thiserror::Error)]
pub enum LogFileError {
    /// The file system failed.
    #[error("raft log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A damaged record with intact records after it.
    #[error("raft log {path}: damaged record at byte {position} ({reason})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The record's position in the file.
        position: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// The open log file, over the file system `F`.
pub(crate) struct LogFile<F: FileSystem = OsFileSystem> {
    fs: F,
    dir: PathBuf,
    file: F::File,
    /// Where the next record goes: the end of the intact records.
    len: u64,
    /// Records in the file (live or not): when most are dead, the file is rewritten.
    record_count: u64,
    /// Whether writes are synced before they return (off only for tests that do not crash).
    sync: bool,
    /// A write, sync or rewrite failed: the tail (or which file the handle is) is unknown
    /// until the file is replayed (fail-stop).
    failed: bool,
}

impl<F: FileSystem> std::fmt::Debug for LogFile<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFile")
            .field("dir", &self.dir)
            .field("len", &self.len)
            .field("record_count", &self.record_count)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl LogFile {
    /// Opens (or creates) the log file in `dir` on the real file system and replays it.
    pub(crate) fn open(dir: &Path, sync: bool) -> Result<(Self, LogState), LogFileError> {
        LogFile::open_with(OsFileSystem, dir, sync)
    }
}

impl<F: FileSystem> LogFile<F> {
    /// Opens (or creates) the log file in `dir` over `fs` and replays it; cuts an unfinished
    /// last record.
    pub(crate) fn open_with(
        fs: F,
        dir: &Path,
        sync: bool,
    ) -> Result<(Self, LogState), LogFileError> {
        let path = dir.join(LOG_FILE);
        let io_error = |source| LogFileError::Io {
            path: path.clone(),
            source,
        };
        fs.create_dir_all(dir).map_err(io_error)?;
        let (bytes, existed) = match fs.read(&path) {
            Ok(bytes) => (bytes, true),
            Err(error) if error.kind() == io::ErrorKind::NotFound => (Vec::new(), false),
            Err(error) => return Err(io_error(error)),
        };
        let (records, good_len) = decode_all(&bytes, &path)?;
        let mut state = LogState::default();
        let record_count = records.len() as u64;
        for record in records {
            state.apply(record);
        }
        let mut file = if existed {
            fs.open(&path).map_err(io_error)?
        } else {
            // The entry must be durable before the records synced into the file count.
            let file = fs.create(&path).map_err(io_error)?;
            fs.sync_dir(dir).map_err(io_error)?;
            file
        };
        if good_len < bytes.len() as u64 {
            file.set_len(good_len).map_err(io_error)?;
            file.sync_data().map_err(io_error)?;
        }
        let log = Self {
            fs,
            dir: dir.to_owned(),
            file,
            len: good_len,
            record_count,
            sync,
            failed: false,
        };
        Ok((log, state))
    }

    fn path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Appends `records` and syncs them before returning. After a failed write or sync the
    /// file's tail is unknown: every later append fails until the file is opened again.
    pub(crate) fn append(&mut self, records: &[LogRecord]) -> Result<(), LogFileError> {
        let path = self.path();
        let io_error = |source| LogFileError::Io {
            path: path.clone(),
            source,
        };
        self.refuse_after_failure().map_err(io_error)?;
        let mut buffer = Vec::new();
        for record in records {
            encode(record, &mut buffer).map_err(io_error)?;
        }
        self.failed = true;
        let written = self.file.write_all_at(&buffer, self.len);
        let synced = written.and_then(|()| {
            if self.sync {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        synced.map_err(io_error)?;
        self.failed = false;
        self.len += buffer.len() as u64;
        self.record_count += records.len() as u64;
        Ok(())
    }

    /// The fail-stop latch: an error once a write, sync or rewrite has failed.
    fn refuse_after_failure(&self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("an earlier write failed; reopen the log"));
        }
        Ok(())
    }

    /// Whether the file holds many more records than `state` needs.
    pub(crate) fn wants_rewrite(&self, state: &LogState) -> bool {
        let live = state.entries.len() as u64 + 3;
        self.record_count > 64 && self.record_count > 2 * live
    }

    /// Replaces the file by one holding only `state` (written beside it, synced, renamed over
    /// it, the directory synced), so a crash leaves the old file or the new one.
    pub(crate) fn rewrite(&mut self, state: &LogState) -> Result<(), LogFileError> {
        let records = state.records();
        let temporary = self.dir.join(format!("{LOG_FILE}.tmp"));
        let io_error = |source| LogFileError::Io {
            path: temporary.clone(),
            source,
        };
        self.refuse_after_failure().map_err(io_error)?;
        let mut buffer = Vec::new();
        for record in &records {
            encode(record, &mut buffer).map_err(io_error)?;
        }
        // Past the rename, the handle may name the unlinked old file: appends through it
        // would be lost, so any failure latches.
        self.failed = true;
        let mut file = self.fs.create(&temporary).map_err(io_error)?;
        file.write_all_at(&buffer, 0).map_err(io_error)?;
        file.sync_data().map_err(io_error)?;
        self.fs.rename(&temporary, &self.path()).map_err(io_error)?;
        self.fs.sync_dir(&self.dir).map_err(io_error)?;
        self.file = self.fs.open(&self.path()).map_err(io_error)?;
        self.failed = false;
        self.len = buffer.len() as u64;
        self.record_count = records.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) fn encode_for_tests(record: &LogRecord, buffer: &mut Vec<u8>) -> io::Result<()> {
    encode(record, buffer)
}

/// Appends `record`'s frame to `buffer`; a body larger than replay accepts is refused here.
fn encode(record: &LogRecord, buffer: &mut Vec<u8>) -> io::Result<()> {
    let body = serde_json::to_vec(record).map_err(io::Error::other)?;
    if body.len() as u64 > RECORD_BODY_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a log record of {} bytes (at most {RECORD_BODY_BYTES_MAX})",
                body.len()
            ),
        ));
    }
    let body_len = u32::try_from(body.len())
        .map_err(io::Error::other)?
        .to_le_bytes();
    buffer.extend_from_slice(&body_len);
    buffer.extend_from_slice(&crc32c::crc32c(&body_len).to_le_bytes());
    buffer.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    buffer.extend_from_slice(&body);
    Ok(())
}

/// Decodes every record; returns them and the length of the intact prefix (a damaged last
/// record is cut, a damaged record with more after it is [`LogFileError::Corrupt`]).
fn decode_all(bytes: &[u8], path: &Path) -> Result<(Vec<LogRecord>, u64), LogFileError> {
    let mut records = Vec::new();
    let mut position = 0usize;
    while position < bytes.len() {
        match decode_one(bytes.get(position..).unwrap_or_default()) {
            Ok((record, used)) => {
                records.push(record);
                position += used;
            }
            Err(Damage::Torn) => break,
            Err(Damage::Bad { reason, used }) => {
                if used > 0 && position + used >= bytes.len() {
                    break;
                }
                return Err(LogFileError::Corrupt {
                    path: path.to_owned(),
                    position: position as u64,
                    reason,
                });
            }
        }
    }
    Ok((records, position as u64))
}

enum Damage {
    /// The record runs past the end of the file.
    Torn,
    /// The record is wrong; `used` bytes long (0 when its length cannot be trusted).
    Bad { reason: String, used: usize },
}

fn decode_one(bytes: &[u8]) -> Result<(LogRecord, usize), Damage> {
    let word = |at: usize| -> Result<u32, Damage> {
        let field = bytes.get(at..at + size_of::<u32>()).ok_or(Damage::Torn)?;
        Ok(u32::from_le_bytes(
            field.try_into().map_err(|_| Damage::Torn)?,
        ))
    };
    let body_len = word(0)?;
    let len_crc = word(size_of::<u32>())?;
    let body_crc = word(2 * size_of::<u32>())?;
    if crc32c::crc32c(&body_len.to_le_bytes()) != len_crc {
        // Zeros to the end: blocks allocated but never written. Anything else is damage.
        if bytes.iter().all(|&byte| byte == 0) {
            return Err(Damage::Torn);
        }
        return Err(Damage::Bad {
            reason: format!("length field {body_len} fails its check"),
            used: 0,
        });
    }
    if u64::from(body_len) > RECORD_BODY_BYTES_MAX {
        return Err(Damage::Bad {
            reason: format!("length {body_len} too large"),
            used: 0,
        });
    }
    let used = RECORD_HEADER_BYTES as usize + body_len as usize;
    let body = bytes
        .get(RECORD_HEADER_BYTES as usize..used)
        .ok_or(Damage::Torn)?;
    let actual = crc32c::crc32c(body);
    if actual != body_crc {
        return Err(Damage::Bad {
            reason: format!("checksum {actual:08x}, expected {body_crc:08x}"),
            used,
        });
    }
    let record = serde_json::from_slice(body).map_err(|error| Damage::Bad {
        reason: error.to_string(),
        used,
    })?;
    Ok((record, used))
}
