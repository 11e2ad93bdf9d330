//! [`JournalFile`]: an append-only file of checksummed records, replayed into a state at
//! open, rewritten with the live state when most of its records are dead. The Raft log
//! (`crate::log_file`) and the applied state (`crate::applied_file`) are two.
//!
//! # Format (docs/REPLICATION.md, section "The Raft log")
//!
//! ```text
//! +---------------+-----------------+---------------+--------------------------------+
//! | body_len: u32 | len_crc: u32    | body_crc: u32 | body: body_len bytes           |
//! |               | crc32c of the   | crc32c of the |                                |
//! |               | body_len bytes  | body          |                                |
//! +---------------+-----------------+---------------+--------------------------------+
//! all little-endian
//!
//! body, as written:              body, as still read (the JSON encoding):
//! +-----------+----------------+ +----------------------------------------+
//! | 0xB1: u8  | the record in  | | the record as a JSON object: its first |
//! | (binary)  | postcard       | | byte is `{` (0x7B), events in hex      |
//! +-----------+----------------+ +----------------------------------------+
//! ```
//!
//! The body's first byte names its encoding, so a file of JSON records (or one that mixes
//! both, as after an upgrade) replays as written. A whole body (its checksum good) whose first
//! byte is neither was written by another version: open fails with
//! [`LogFileError::UnknownEncoding`], whatever its position, rather than cut or misread it.
//!
//! Recovery: a record cut short at the end of the file, a bad body checksum on the file's last
//! record, or a bad length check followed by nothing but zeros, is a write that never finished
//! (never acknowledged: every write is synced before it is): the tail is cut. Any other bad
//! record is damage: open fails with [`LogFileError::Corrupt`] rather than dropping the
//! acknowledged records after it. The length has its own check so that a damaged length is
//! never taken for a record running past the end.
//!
//! Every file access goes through the storage crate's [`FileSystem`] (the real one by
//! default), so a simulated file system can fail a write or a sync, or lose what was not
//! synced (docs/TESTING.md, section "Replication").

use std::io;
use std::path::{Path, PathBuf};

use kimberlite_storage::{FileHandle, FileSystem};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Bytes before a record's body: its length and checksum.
const RECORD_HEADER_BYTES: u64 = (size_of::<u32>() * 3) as u64;
/// Largest body accepted at replay: a larger length field is damage, not a record.
const RECORD_BODY_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// The first byte of a body this code writes: the record follows in postcard, events as raw
/// bytes (in JSON each is hex, twice its size, and the hex a quarter of a cluster's CPU:
/// docs/PERFORMANCE.md, section "Design decisions").
const BODY_BINARY: u8 = 0xB1;
/// The first byte of every body of the JSON encoding (a JSON object), still read.
const BODY_JSON: u8 = b'{';

/// The state a journal file's records build, and how it is written again.
pub(crate) trait Journal: Default {
    /// One record of the file.
    type Record: Serialize + DeserializeOwned;
    /// The file's name in its directory, unless opened under another
    /// ([`JournalFile::open_named`]).
    const FILE: &'static str;
    /// Applies one record, as replay does.
    fn apply(&mut self, record: Self::Record);
    /// The records that rebuild this state in a new file.
    fn records(&self) -> Vec<Self::Record>;
    /// Whether a file of `record_count` records and `len_bytes` bytes, of which the last
    /// rewrite (or open) left `base_len_bytes`, holds much more than this state needs.
    fn wants_rewrite(&self, record_count: u64, len_bytes: u64, base_len_bytes: u64) -> bool;
}

/// Errors opening or writing a journal file (the Raft log, the applied state).
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
    /// A whole record in an encoding this version does not know (written by another one).
    #[error(
        "raft log {path}: record at byte {position} is in an unknown encoding \
         (first byte {first_byte:#04x}); written by another version of kimberlite?"
    )]
    UnknownEncoding {
        /// The file.
        path: PathBuf,
        /// The record's position in the file.
        position: u64,
        /// Its body's first byte.
        first_byte: u8,
    },
}

/// An open journal file of state `S`, over the file system `F`.
pub(crate) struct JournalFile<F: FileSystem, S> {
    fs: F,
    dir: PathBuf,
    name: String,
    file: F::File,
    /// Where the next record goes: the end of the intact records.
    len: u64,
    /// Records in the file (live or not): when most are dead, the file is rewritten.
    record_count: u64,
    /// The file's length after its last rewrite (or at open).
    base_len: u64,
    /// Whether writes are synced before they return (off only for tests that do not crash).
    sync: bool,
    /// A write, sync or rewrite failed: the tail (or which file the handle is) is unknown
    /// until the file is replayed (fail-stop).
    failed: bool,
    /// The last write's encoding buffer, kept for the next (up to [`SCRATCH_KEEP_MAX`]): a
    /// fresh one per write of a batch's events faulted in fresh pages each time.
    scratch: Vec<u8>,
    state: std::marker::PhantomData<fn() -> S>,
}

/// The largest encoding buffer kept between writes (an entry carries at most 4 MiB of events).
const SCRATCH_KEEP_MAX: usize = 8 << 20;

impl<F: FileSystem, S> std::fmt::Debug for JournalFile<F, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalFile")
            .field("dir", &self.dir)
            .field("len", &self.len)
            .field("record_count", &self.record_count)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
impl<S: Journal> JournalFile<kimberlite_storage::OsFileSystem, S> {
    /// Opens (or creates) the file in `dir` on the real file system and replays it.
    pub(crate) fn open(dir: &Path, sync: bool) -> Result<(Self, S), LogFileError> {
        Self::open_with(kimberlite_storage::OsFileSystem, dir, sync)
    }

    /// Where the encoding buffer kept for the next write starts, and its capacity.
    pub(crate) fn scratch(&self) -> (*const u8, usize) {
        (self.scratch.as_ptr(), self.scratch.capacity())
    }
}

impl<F: FileSystem, S: Journal> JournalFile<F, S> {
    /// Opens (or creates) the file in `dir` over `fs` and replays it; cuts an unfinished
    /// last record.
    pub(crate) fn open_with(fs: F, dir: &Path, sync: bool) -> Result<(Self, S), LogFileError> {
        Self::open_named(fs, dir, S::FILE, sync)
    }

    /// [`Self::open_with`] on the file `name` of `dir`.
    pub(crate) fn open_named(
        fs: F,
        dir: &Path,
        name: &str,
        sync: bool,
    ) -> Result<(Self, S), LogFileError> {
        let path = dir.join(name);
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
        let (records, good_len) = decode_all::<S::Record>(&bytes, &path)?;
        let mut state = S::default();
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
            name: name.to_owned(),
            file,
            len: good_len,
            record_count,
            base_len: good_len,
            sync,
            failed: false,
            scratch: Vec::new(),
            state: std::marker::PhantomData,
        };
        Ok((log, state))
    }

    fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// Appends `records` and syncs them before returning. After a failed write or sync the
    /// file's tail is unknown: every later append fails until the file is opened again.
    pub(crate) fn append(&mut self, records: &[S::Record]) -> Result<(), LogFileError> {
        self.write(records, self.sync)
    }

    /// [`Self::append`] without the sync: for records a crash may lose (the next synced
    /// append makes them durable too; a torn one at the end is cut at open).
    pub(crate) fn append_unsynced(&mut self, records: &[S::Record]) -> Result<(), LogFileError> {
        self.write(records, false)
    }

    fn write(&mut self, records: &[S::Record], sync: bool) -> Result<(), LogFileError> {
        let path = self.path();
        let io_error = |source| LogFileError::Io {
            path: path.clone(),
            source,
        };
        self.refuse_after_failure().map_err(io_error)?;
        let mut buffer = std::mem::take(&mut self.scratch);
        buffer.clear();
        let written = self.write_encoded(records, sync, &mut buffer);
        if buffer.capacity() <= SCRATCH_KEEP_MAX {
            self.scratch = buffer;
        }
        written.map_err(io_error)
    }

    /// Encodes `records` into `buffer` (empty), writes them at the end, syncs if `sync`.
    fn write_encoded(
        &mut self,
        records: &[S::Record],
        sync: bool,
        buffer: &mut Vec<u8>,
    ) -> io::Result<()> {
        for record in records {
            encode(record, buffer)?;
        }
        self.failed = true;
        self.file.write_all_at(buffer, self.len)?;
        if sync {
            self.file.sync_data()?;
        }
        self.failed = false;
        self.len += buffer.len() as u64;
        self.record_count += records.len() as u64;
        Ok(())
    }

    /// A handle that syncs this file outside the caller's lock (the leader's Raft log,
    /// `crate::log_flush`): the same open file where the file system shares one, else the
    /// path opened again; `None` when writes are not synced.
    pub(crate) fn sync_handle(&self) -> Result<Option<Box<dyn FileHandle>>, LogFileError>
    where
        F::File: 'static,
    {
        if !self.sync {
            return Ok(None);
        }
        if let Some(shared) = self.file.share() {
            return Ok(Some(shared));
        }
        let path = self.path();
        match self.fs.open(&path) {
            Ok(file) => Ok(Some(Box::new(file))),
            Err(source) => Err(LogFileError::Io { path, source }),
        }
    }

    /// Syncs what was written unsynced (nothing when writes are not synced).
    pub(crate) fn sync(&mut self) -> Result<(), LogFileError> {
        if !self.sync {
            return Ok(());
        }
        let path = self.path();
        self.refuse_after_failure()
            .and_then(|()| self.file.sync_data())
            .map_err(|source| {
                self.failed = true;
                LogFileError::Io { path, source }
            })
    }

    /// The fail-stop latch: an error once a write, sync or rewrite has failed.
    fn refuse_after_failure(&self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("an earlier write failed; reopen the file"));
        }
        Ok(())
    }

    /// Whether the file holds many more records than `state` needs.
    pub(crate) fn wants_rewrite(&self, state: &S) -> bool {
        state.wants_rewrite(self.record_count, self.len, self.base_len)
    }

    /// Replaces the file by one holding only `state` (written beside it, synced, renamed over
    /// it, the directory synced), so a crash leaves the old file or the new one.
    pub(crate) fn rewrite(&mut self, state: &S) -> Result<(), LogFileError> {
        let records = state.records();
        let temporary = self.dir.join(format!("{}.tmp", self.name));
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
        let reopened = self.fs.open(&self.path()).map_err(io_error)?;
        close_elsewhere(std::mem::replace(&mut self.file, reopened));
        self.failed = false;
        self.len = buffer.len() as u64;
        self.base_len = self.len;
        self.record_count = records.len() as u64;
        Ok(())
    }
}

/// Closes `file`, the handle on the replaced file, on a thread of its own: the old file's last
/// handle, so the close frees all of it, which for a Raft log of hundreds of MiB takes as long
/// as many appends, and would hold up the caller (the log's purge, which openraft waits for).
fn close_elsewhere<H: Send + 'static>(file: H) {
    // If no thread starts, the closure, and the handle it holds, is dropped here.
    let _ = std::thread::Builder::new()
        .name("kimberlite-close".into())
        .spawn(move || drop(file));
}

#[cfg(test)]
pub(crate) fn encode_for_tests<R: Serialize>(record: &R, buffer: &mut Vec<u8>) -> io::Result<()> {
    encode(record, buffer)
}

/// Appends a record whose body is `body` as given (the JSON encoding, an unknown one).
#[cfg(test)]
pub(crate) fn frame_for_tests(body: &[u8], buffer: &mut Vec<u8>) -> io::Result<()> {
    let start = buffer.len();
    buffer.extend_from_slice(&[0; RECORD_HEADER_BYTES as usize]);
    buffer.extend_from_slice(body);
    frame(buffer, start)
}

/// Appends `record`'s frame to `buffer`; a body larger than replay accepts is refused here.
fn encode<R: Serialize>(record: &R, buffer: &mut Vec<u8>) -> io::Result<()> {
    // Room for the whole record first: a batch's events grown into by doubling would be
    // copied again at each step, into fresh pages.
    let body_len = postcard::serialize_with_flavor(record, postcard::ser_flavors::Size::default())
        .map_err(io::Error::other)?;
    buffer.reserve(RECORD_HEADER_BYTES as usize + 1 + body_len);
    let start = buffer.len();
    buffer.extend_from_slice(&[0; RECORD_HEADER_BYTES as usize]);
    buffer.push(BODY_BINARY);
    // Serialized in place after the header's room: a batch's events are copied once.
    let framed = postcard::serialize_with_flavor(record, AppendTo(buffer))
        .map_err(io::Error::other)
        .and_then(|()| frame(buffer, start));
    framed.inspect_err(|_| buffer.truncate(start))
}

/// postcard's output appended to a `Vec` a slice at a time (its `to_extend` pushes a byte
/// at a time: a batch's events are most of a record).
struct AppendTo<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendTo<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Fills in the header at `start` for the body after it, to the end of `buffer`.
fn frame(buffer: &mut [u8], start: usize) -> io::Result<()> {
    let (head, body) = buffer
        .get_mut(start..)
        .and_then(|record| record.split_at_mut_checked(RECORD_HEADER_BYTES as usize))
        .ok_or_else(|| io::Error::other("no room for a record header"))?;
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
    let mut header = Vec::with_capacity(RECORD_HEADER_BYTES as usize);
    header.extend_from_slice(&body_len);
    header.extend_from_slice(&crc32c::crc32c(&body_len).to_le_bytes());
    header.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    head.copy_from_slice(&header);
    Ok(())
}

/// Decodes every record; returns them and the length of the intact prefix (a damaged last
/// record is cut, a damaged record with more after it is [`LogFileError::Corrupt`]).
fn decode_all<R: DeserializeOwned>(
    bytes: &[u8],
    path: &Path,
) -> Result<(Vec<R>, u64), LogFileError> {
    let mut records = Vec::new();
    let mut position = 0usize;
    while position < bytes.len() {
        match decode_one(bytes.get(position..).unwrap_or_default()) {
            Ok((record, used)) => {
                records.push(record);
                position += used;
            }
            Err(Damage::Torn) => break,
            Err(Damage::UnknownEncoding(first_byte)) => {
                return Err(LogFileError::UnknownEncoding {
                    path: path.to_owned(),
                    position: position as u64,
                    first_byte,
                })
            }
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
    /// The record is whole (its checksum is good) but its body starts with this byte, which
    /// names no encoding this version reads.
    UnknownEncoding(u8),
}

fn decode_one<R: DeserializeOwned>(bytes: &[u8]) -> Result<(R, usize), Damage> {
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
    let record = decode_body(body).map_err(|damage| match damage {
        Damage::Bad { reason, .. } => Damage::Bad { reason, used },
        other => other,
    })?;
    Ok((record, used))
}

/// Decodes a whole body (its checksum already checked) by the encoding its first byte names.
fn decode_body<R: DeserializeOwned>(body: &[u8]) -> Result<R, Damage> {
    let bad = |reason: String| Damage::Bad { reason, used: 0 };
    match body.first() {
        Some(&BODY_BINARY) => {
            let (record, rest) = postcard::take_from_bytes(body.get(1..).unwrap_or_default())
                .map_err(|error| bad(error.to_string()))?;
            if !rest.is_empty() {
                return Err(bad(format!("{} bytes after the record", rest.len())));
            }
            Ok(record)
        }
        Some(&BODY_JSON) => serde_json::from_slice(body).map_err(|error| bad(error.to_string())),
        Some(&other) => Err(Damage::UnknownEncoding(other)),
        None => Err(bad("an empty body".to_string())),
    }
}
