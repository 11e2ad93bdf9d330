//! [`Config`]: how a store is opened and how durable an acknowledged append is.

use kimberlite_types::CompressionKind;

/// When an acknowledged append is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every `append` call syncs its own batch before returning. Default: the simplest
    /// guarantee, one sync per call.
    #[default]
    SyncEachAppend,
    /// Concurrent appenders share syncs. Callers queue their batches; the first with no group
    /// running leads one: it writes every queued batch (each checked and answered as a lone
    /// append would be) under one hold of the write lock, syncs them all while the next group
    /// queues, and every caller returns only once a sync that covers its own batch has
    /// finished. The guarantee is the same as [`Durability::SyncEachAppend`].
    ///
    /// A group sync is one `fdatasync` per stream written since the last one (segment data
    /// only, as a synced append; recovery finds those bytes without the manifests and
    /// indexes), run outside the store's write lock so appenders keep writing meanwhile.
    /// With several threads appending it is the faster policy: `examples/concurrent.rs`
    /// measures both, and `docs/PERFORMANCE.md` the 16-thread case and what limits it.
    GroupCommit,
    /// Do not sync before acknowledging: an acknowledged append has reached the operating
    /// system, not the disk, and a machine crash may lose it. The store still syncs in the
    /// background once 16 MiB of events wait (so that their leaves reach the Merkle trees, and
    /// no append waits for the device to write out a large backlog), and at
    /// [`crate::Kimberlite::sync`] and close. For benchmarks and data that can be rebuilt.
    Unsynced,
}

/// How [`crate::Kimberlite::open_with`] opens a store.
///
/// # Examples
///
/// ```
/// use kimberlite::{Config, Durability};
/// let config = Config::default().durability(Durability::GroupCommit).create_if_missing(false);
/// assert_eq!(config.durability_policy(), Durability::GroupCommit);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub(crate) durability: Durability,
    pub(crate) create_if_missing: bool,
    pub(crate) read_page_bytes: u64,
    pub(crate) max_segment_size_bytes: Option<u64>,
    pub(crate) compression: CompressionKind,
    pub(crate) merkle_trees: bool,
    /// Set by [`crate::Kimberlite::open_read_only`].
    pub(crate) read_only: bool,
}

/// Default page size of [`crate::Events`], in payload bytes: 1 MiB.
pub const DEFAULT_READ_PAGE_BYTES: u64 = 1024 * 1024;

impl Default for Config {
    fn default() -> Self {
        Self {
            durability: Durability::default(),
            create_if_missing: true,
            read_page_bytes: DEFAULT_READ_PAGE_BYTES,
            max_segment_size_bytes: None,
            compression: CompressionKind::Lz4,
            merkle_trees: true,
            read_only: false,
        }
    }
}

impl Config {
    /// Sets the durability policy. Default: [`Durability::SyncEachAppend`].
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Whether `open_with` creates the directory and a new store when there is none.
    /// Default: `true`. With `false`, a missing directory is [`crate::Error::StoreNotFound`]
    /// and a directory without a store is [`crate::Error::NotAStore`]: tools that only read
    /// use this so that a typo never creates an empty store.
    #[must_use]
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// Payload bytes fetched per page by [`crate::Kimberlite::events`]. Default: 1 MiB
    /// ([`DEFAULT_READ_PAGE_BYTES`]). A page always holds at least one event.
    #[must_use]
    pub fn read_page_bytes(mut self, bytes: u64) -> Self {
        self.read_page_bytes = bytes;
        self
    }

    /// Segment size in bytes at which a stream's active segment rotates. Default: the storage
    /// layer's default (256 MiB). Small values exercise rotation in tests and demos.
    #[must_use]
    pub fn max_segment_size(mut self, bytes: u64) -> Self {
        self.max_segment_size_bytes = Some(bytes);
        self
    }

    /// Codec for stored events, used per event only when it makes the stored record smaller
    /// (and tried on fewer events where it keeps failing, as on encrypted payloads); hashes
    /// always cover the original bytes. Default: [`CompressionKind::Lz4`].
    #[must_use]
    pub fn compression(mut self, compression: CompressionKind) -> Self {
        self.compression = compression;
        self
    }

    /// Whether the store keeps each stream's Merkle tree (RFC 9162, kept beside the log) for
    /// proofs. Default: `true`. With `false` appends skip the tree (benchmarks compare the two) and
    /// proof calls return [`crate::Error::TreeUnavailable`]; the log is the same either way.
    #[must_use]
    pub fn merkle_trees(mut self, enabled: bool) -> Self {
        self.merkle_trees = enabled;
        self
    }

    /// The durability policy set.
    #[must_use]
    pub fn durability_policy(&self) -> Durability {
        self.durability
    }
}
