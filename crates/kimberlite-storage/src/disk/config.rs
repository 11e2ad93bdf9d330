//! [`StorageConfig`]: how a store lays out and writes its files; [`StreamStats`]: what one
//! stream holds.

use kimberlite_types::CompressionKind;

/// Default `max_segment_size`: 256 MiB, the same as `MemoryStorage`'s.
pub const DEFAULT_MAX_SEGMENT_SIZE: u64 = crate::memory::DEFAULT_MAX_SEGMENT_SIZE;
/// Default `restart_interval`: a restart record every 64 data records. A verified read starting
/// inside a segment re-checks the records between the restart record before it and its first
/// offset (at most 63 here); a restart record costs one frame and one index entry.
pub const DEFAULT_RESTART_INTERVAL: u64 = 64;
/// Default `index_interval`: a sparse index entry every 64 data records.
pub const DEFAULT_INDEX_INTERVAL: u64 = 64;

/// How a [`Storage`](crate::Storage) lays out and writes its files. Plain data; see each
/// field's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageConfig {
    /// Logical bytes after which a stream's active segment rotates (the rotation rule,
    /// `docs/FORMAT.md`, "Segment rotation"). Default: [`DEFAULT_MAX_SEGMENT_SIZE`] (256 MiB).
    pub max_segment_size: u64,
    /// Data records between restart records; 0 writes none, so that verified reads start
    /// at the stream's first record. Default: [`DEFAULT_RESTART_INTERVAL`] (64).
    pub restart_interval: u64,
    /// Codec for data payloads, used per record only when it makes the record smaller (and
    /// tried on fewer records where it keeps failing).
    /// Default: [`CompressionKind::None`].
    pub compression: CompressionKind,
    /// Data records between sparse index entries (restart records are always indexed); 0 indexes
    /// restart records only. Default: [`DEFAULT_INDEX_INTERVAL`] (64).
    pub index_interval: u64,
    /// Threads that verify a read (`read_from`) or a whole stream (`verify_stream`): each
    /// frame's CRC check, decode and chain-hash recomputation are independent of the other
    /// frames (a frame carries its predecessor's hash), so a run of at least
    /// 128 frames is split across up to this many threads (the calling one and helpers the
    /// store starts at its first long read and joins when it is dropped), then linked in
    /// order on the calling thread.
    /// Results and errors do not depend on it, only speed does. The helpers serve one read
    /// at a time: a read that runs beside another (reads take `&self`) while they are
    /// busy verifies on its own thread. `1` (or `0`) verifies on the calling thread only, for
    /// callers who want no extra threads. Default: the machine's available parallelism capped
    /// at 4.
    pub verify_threads: usize,
    /// Whether a batch of [`HASH_AHEAD_MIN_EVENTS`](crate::HASH_AHEAD_MIN_EVENTS) events or
    /// more is hashed and encoded on a helper thread too, beside the appending thread, which
    /// links the chunks to the chain and writes them. One helper thread is shared by the
    /// stores that use it and joined when the last of them is dropped. Frames, writes and
    /// results do not depend on it, only speed does. Default: true when the machine has more
    /// than one core.
    pub hash_ahead: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            max_segment_size: DEFAULT_MAX_SEGMENT_SIZE,
            restart_interval: DEFAULT_RESTART_INTERVAL,
            compression: CompressionKind::None,
            index_interval: DEFAULT_INDEX_INTERVAL,
            verify_threads: crate::parallel::default_verify_threads(),
            hash_ahead: crate::parallel::default_verify_threads() > 1,
        }
    }
}
