//! [`Kimberlite`]: opening a store, recovering its state from the log, and naming streams.
//!
//! # State
//!
//! A store's whole state is derived from its log: the stream catalogue is replayed from the
//! system stream ([`crate::catalog`]) and each stream's head (next offset, chain hash) is read
//! back from storage. The only other file the store writes is the marker
//! ([`MARKER_FILE`]), which says "this directory is a Kimberlite store" so that read-only tools
//! can refuse a wrong path instead of creating a store there.
//!
//! # Locking
//!
//! [`Kimberlite`] is an `Arc` around `Inner`: clones share one store. The mutable state (the
//! backend, the catalogue, the heads: `State`) sits behind one `RwLock`. Name lookups, `head`,
//! `list_streams`, reads of event data and verification take the read lock (the storage
//! contract's reads take `&self`), so readers run side by side; appends and syncs take the
//! write lock, each for one backend call. Under group commit an append holds it only to write
//! its batch, unsynced; the device flush that covers many batches runs outside the lock
//! between two short holds (`StoreBackend::sync_begin` and `sync_finished`), run by one leader
//! while the other appenders keep writing ([`crate::commit`]).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kimberlite_storage::{
    FileSystem, MemoryStorage, OsFileSystem, ReadOnlyFs, RecoveryAction, RecoveryReport, Storage,
    StorageConfig, StorageError, StoreBackend,
};
use kimberlite_types::{Offset, StreamId};

use crate::catalog::{Catalog, CATALOG_STREAM};
use crate::commit::SyncCoordinator;
use crate::config::Config;
use crate::durable_watch::DurableWatch;
use crate::error::{Error, Result};
use crate::head::StreamHead;
use crate::lost::{self, Loss};
use crate::marker::prepare_dir;
use crate::merkle::{recover_trees, Trees};
use crate::merkle_worker::TreeWorker;
use crate::state::{Heads, State, TreeBacklog};
use crate::store_fs::{file_len, Files};

/// A named stream, as listed by [`Kimberlite::list_streams`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream's name.
    pub name: String,
    /// The stream's id.
    pub id: StreamId,
    /// Its durable head; meaningless when `damaged` (then the stored records could not be
    /// read at open: the offset and hash shown are not the stream's).
    pub head: StreamHead,
    /// Open found the stream's stored records damaged or its files unreadable: its head is
    /// unknown, appends are refused, and `verify` says where the damage is.
    pub damaged: bool,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) state: RwLock<State>,
    pub(crate) commit: SyncCoordinator,
    pub(crate) writers: crate::writers::WriterQueue,
    pub(crate) config: Config,
    /// The store's directory and file system; `None` for an in-memory store.
    pub(crate) files: Option<Files>,
    /// Streams whose log holds less than the store's own files say it held, found at open.
    pub(crate) lost: Vec<Loss>,
    /// Wakes readers that wait for new durable events.
    pub(crate) durable_watch: DurableWatch,
    /// Durability syncs finished: what [`Kimberlite::syncs_completed`] reports.
    pub(crate) syncs: std::sync::atomic::AtomicU64,
    /// Runs a group commit's syncs of several files at once (`crate::sync_helper`).
    pub(crate) sync_helper: crate::sync_helper::SyncHelper,
}

impl Drop for Inner {
    /// A clean close makes what was written durable and lets its batches reach the trees
    /// (written by the tree worker as `State` drops); after a failed sync nothing more is
    /// written (fail-stop).
    fn drop(&mut self) {
        if self.commit.failed() {
            return;
        }
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(Err(_)) = state.record_writeback(true) {
            self.commit.poison();
            return;
        }
        if state.tree_backlog.is_empty() {
            return;
        }
        if state.backend.sync().is_ok() {
            let State {
                tree_backlog,
                merkle,
                ..
            } = state;
            tree_backlog.submit_to(merkle);
        }
    }
}

/// An embeddable Kimberlite store: named, append-only, hash-chained streams.
///
/// `Send + Sync` and cheap to clone: clones share one store, so hand one to each thread.
///
/// # Examples
///
/// ```
/// use kimberlite::{ExpectedOffset, Kimberlite};
///
/// let store = Kimberlite::in_memory();
/// let access = store.create_stream("patient-access")?;
/// let appended = store.append(access, ["viewed P-1", "viewed P-2"], ExpectedOffset::NoStream)?;
/// assert_eq!(appended.next_offset.as_u64(), 2);
/// let events = store.read(access, 0.into(), u64::MAX)?;
/// assert_eq!(&events[1].payload[..], b"viewed P-2");
/// assert!(store.verify_all()?.is_intact());
/// # Ok::<(), kimberlite::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Kimberlite {
    pub(crate) inner: Arc<Inner>,
}

impl Kimberlite {
    /// Opens the store in `dir`, creating the directory and the store if there is none, with
    /// the default [`Config`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, Config::default())
    }

    /// Opens the store in `dir` with `config`.
    ///
    /// A missing directory is created (unless `config.create_if_missing(false)`, then
    /// [`Error::StoreNotFound`]). A directory without the marker file is refused with
    /// [`Error::NotAStore`] unless it is empty and creating is allowed, so a store is never
    /// scattered into an unrelated directory.
    pub fn open_with(dir: impl AsRef<Path>, config: Config) -> Result<Self> {
        Self::open_with_fs(OsFileSystem, dir, config)
    }

    /// Opens the existing store in `dir` to look, not to change: nothing is written, created,
    /// locked or cut (SPEC.md section 7). Every change the open would make (recovery's cuts,
    /// rebuilt indexes and manifests, the Merkle levels) is made in memory only
    /// ([`ReadOnlyFs`]), so [`Kimberlite::recovery_report`] tells what recovery *would* do;
    /// no lock is taken, so it opens beside a live writer, seeing what is on disk now. Works
    /// on a read-only copy. Appends and new streams are refused ([`Error::ReadOnly`]).
    pub fn open_read_only(dir: impl AsRef<Path>, config: Config) -> Result<Self> {
        Self::open_read_only_with_fs(OsFileSystem, dir, config)
    }

    /// [`Kimberlite::open_read_only`] on the file system `fs` (a simulated one, a read-only
    /// mount): every change stays in memory ([`ReadOnlyFs`]), `fs` sees reads only.
    pub fn open_read_only_with_fs<F: FileSystem + Clone>(
        fs: F,
        dir: impl AsRef<Path>,
        config: Config,
    ) -> Result<Self> {
        let config = Config {
            read_only: true,
            ..config.create_if_missing(false)
        };
        Self::open_with_fs(ReadOnlyFs::new(fs), dir, config)
    }

    /// Whether the store was opened with [`Kimberlite::open_read_only`]: its recovery report
    /// tells what recovery would do, and nothing it does reaches the disk.
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        self.inner.config.read_only
    }

    /// Whether the store has stopped taking writes after a failed write or sync (fail-stop,
    /// [`Error::Poisoned`] from then on until it is reopened). A service reports itself not
    /// ready while this is true.
    #[must_use]
    pub fn has_failed(&self) -> bool {
        self.inner.commit.failed()
    }

    /// How many durability syncs the store has finished since it was opened: one per group
    /// commit sync (however many appends and files it covered), one per synced append under
    /// [`crate::Durability::SyncEachAppend`], one per [`Kimberlite::sync`] that flushed, one
    /// per background sync under [`crate::Durability::Unsynced`]. For metrics.
    #[must_use]
    pub fn syncs_completed(&self) -> u64 {
        self.inner.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn count_sync(&self) {
        self.inner
            .syncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Opens the store in `dir` of the file system `fs`, as [`Kimberlite::open_with`] does on
    /// the real one. Every file of the store goes through `fs`: the segments, the marker and
    /// the Merkle trees, so a simulated file system (`kimberlite-sim`) can crash and fault the
    /// whole store.
    pub fn open_with_fs<F: FileSystem + Clone>(
        fs: F,
        dir: impl AsRef<Path>,
        config: Config,
    ) -> Result<Self> {
        let named = dir.as_ref();
        // The user's links, up to and at the directory they name, are theirs; below it,
        // nothing is followed (`FileSystem::resolve`).
        let dir = fs
            .resolve(named)
            .map_err(|e| Error::io(format!("resolving {}", named.display()), e))?;
        prepare_dir(&fs, &dir, config.create_if_missing)?;
        let backend = open_disk(fs.clone(), &dir, &config)?;
        let refused = lost::refused_entries(&fs, &dir);
        let files = Files {
            fs: Arc::new(fs),
            dir,
            refused,
        };
        Self::recover(Box::new(backend), config, Some(files))
    }

    /// A new, empty store held in memory; nothing survives the process.
    #[must_use]
    pub fn in_memory() -> Self {
        Self::in_memory_with(Config::default())
    }

    /// A new, empty in-memory store with `config` (its durability policy is kept, so tests
    /// exercise the same code paths; syncs are no-ops).
    #[must_use]
    pub fn in_memory_with(config: Config) -> Self {
        let memory = match config.max_segment_size_bytes {
            Some(bytes) => MemoryStorage::with_max_segment_size(bytes),
            None => MemoryStorage::new(),
        };
        Self::over_memory(Box::new(memory), config)
    }

    /// A new store over `backend`, an empty backend that keeps nothing past the process.
    pub(crate) fn over_memory(backend: Box<dyn StoreBackend>, config: Config) -> Self {
        let state = State {
            backend,
            catalog: Catalog::new(),
            catalog_head: None,
            heads: HashMap::new(),
            written_seq: 0,
            pending: VecDeque::new(),
            merkle: TreeWorker::start(Trees::in_memory(&config)),
            tree_backlog: TreeBacklog::default(),
            writeback: Default::default(),
        };
        Self::from_state(state, config, None, Vec::new())
    }

    fn from_state(state: State, config: Config, files: Option<Files>, lost: Vec<Loss>) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: RwLock::new(state),
                commit: SyncCoordinator::default(),
                writers: crate::writers::WriterQueue::default(),
                config,
                files,
                lost,
                durable_watch: DurableWatch::default(),
                syncs: std::sync::atomic::AtomicU64::new(0),
                sync_helper: crate::sync_helper::SyncHelper::default(),
            }),
        }
    }

    /// Rebuilds the catalogue and every stream's head from the log.
    fn recover(
        backend: Box<dyn StoreBackend>,
        config: Config,
        files: Option<Files>,
    ) -> Result<Self> {
        let (catalog, catalog_head) = replay_catalog(&*backend, &config)?;
        let mut heads = HashMap::new();
        for (name, id) in catalog.iter() {
            heads.insert(id, recover_head(&*backend, name, id)?);
        }
        // Read before the trees are reconciled with the log, which cuts them to its length.
        let lost = files.as_ref().map_or_else(Vec::new, |files| {
            lost::losses(
                lost::gather(&*files.fs, &files.dir),
                |id| backend.next_offset(id).map_or(0, Offset::as_u64),
                |id| catalog.name(id).is_some(),
            )
        });
        // A stream open already found damaged is reported as such (where the damage is).
        let lost: Vec<Loss> = lost
            .into_iter()
            .filter(|loss| !heads.get(&loss.stream).is_some_and(|heads| heads.damaged))
            .collect();
        let sizes: Vec<(StreamId, u64)> = catalog
            .iter()
            .map(|(_, id)| {
                let written = heads
                    .get(&id)
                    .map_or(Offset::ZERO, |h| h.written.next_offset);
                (id, written.as_u64())
            })
            .collect();
        let lost_ids: Vec<StreamId> = lost.iter().map(|loss| loss.stream).collect();
        let trees = recover_trees(&*backend, &sizes, &lost_ids, &config, files.as_ref())?;
        let merkle = TreeWorker::start(trees);
        let state = State {
            backend,
            catalog,
            catalog_head,
            heads,
            written_seq: 0,
            pending: VecDeque::new(),
            merkle,
            tree_backlog: TreeBacklog::default(),
            writeback: Default::default(),
        };
        Ok(Self::from_state(state, config, files, lost))
    }

    /// The store's directory; `None` for an in-memory store.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.inner.files.as_ref().map(|files| files.dir.as_path())
    }

    /// What the storage layer repaired or found when this store was opened: torn tails cut
    /// after a crash, indexes rebuilt, manifests repaired, corruption found. Empty for a clean
    /// open and for in-memory stores. A cut tail is normal after a crash, and also what
    /// deleting a stream's last events looks like: tools show these to the operator.
    #[must_use]
    pub fn recovery_report(&self) -> RecoveryReport {
        let mut report = self.read_state().backend.recovery_report().clone();
        let refused = self.inner.files.iter().flat_map(|files| &files.refused);
        report
            .actions
            .extend(refused.map(|path| RecoveryAction::UnexpectedEntry { path: path.clone() }));
        report
    }

    /// The torn tails recovery has cut off this store's streams, on this open or any earlier
    /// one, kept as they were (`streams/<id>/torn/<segment>-<position>.bin`), with their sizes
    /// in bytes, in path order; empty for an in-memory store. They are not part of the log
    /// (bytes of writes that never finished), but an audit should know they exist: `verify`
    /// lists them.
    #[must_use]
    pub fn kept_torn_tails(&self) -> Vec<(PathBuf, u64)> {
        let Some(files) = &self.inner.files else {
            return Vec::new();
        };
        let fs = &*files.fs;
        // A read-only open keeps the tails it would cut in memory only: they are not on disk.
        let would_keep: Vec<PathBuf> = if self.is_read_only() {
            let report = self.recovery_report();
            report
                .truncations()
                .filter_map(|action| match action {
                    RecoveryAction::TornTailTruncated { kept_in, .. } => Some(kept_in.clone()),
                    _ => None,
                })
                .collect()
        } else {
            Vec::new()
        };
        let streams_dir = files.dir.join(kimberlite_storage::disk::STREAMS_DIR);
        let Ok(streams) = fs.list_dir(&streams_dir) else {
            return Vec::new();
        };
        let mut kept: Vec<(PathBuf, u64)> = streams
            .iter()
            .map(|stream| {
                streams_dir
                    .join(stream)
                    .join(kimberlite_storage::disk::TORN_DIR)
            })
            .filter_map(|torn| Some((fs.list_dir(&torn).ok()?, torn)))
            .flat_map(|(tails, torn)| tails.into_iter().map(move |tail| torn.join(tail)))
            .filter(|tail| !would_keep.contains(tail))
            .filter_map(|tail| {
                let len = file_len(fs, &tail).ok()??;
                Some((tail, len))
            })
            .collect();
        kept.sort();
        kept
    }

    /// The configuration the store was opened with.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn read_state(&self) -> RwLockReadGuard<'_, State> {
        // A panic while the lock was held (a bug, or an out-of-memory abort) may have left the
        // state half-updated; appends refuse to go on (the coordinator is poisoned below), but
        // reads and verification stay possible so the damage can be inspected.
        self.inner.state.read().unwrap_or_else(|poisoned| {
            self.inner.commit.poison();
            poisoned.into_inner()
        })
    }

    pub(crate) fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.inner.state.write().unwrap_or_else(|poisoned| {
            self.inner.commit.poison();
            poisoned.into_inner()
        })
    }

    /// Creates a stream named `name`; returns its id.
    ///
    /// The name is registered in the system stream and synced before this returns, under
    /// every durability policy: a stream's events must never outlive its name at a crash. Errors: [`Error::InvalidStreamName`],
    /// [`Error::StreamExists`], [`Error::UnnamedStreamInTheWay`] (the catalogue lost entries
    /// and the next id already holds records).
    pub fn create_stream(&self, name: &str) -> Result<StreamId> {
        if self.inner.config.read_only {
            return Err(Error::ReadOnly);
        }
        let mut state = self.write_state();
        if self.inner.commit.failed() {
            return Err(Error::Poisoned);
        }
        let (id, event) = state.catalog.registration(name)?;
        // A stream whose log is gone keeps its id: a new stream there would cut its tree files,
        // the evidence of the loss.
        if state.backend.holds(id) || self.inner.lost.iter().any(|loss| loss.stream == id) {
            return Err(Error::UnnamedStreamInTheWay {
                name: name.to_owned(),
                stream: id,
            });
        }
        let offset = Offset::new(state.catalog.len());
        let prev = state.catalog_head;
        let (_, hash) = state
            .backend
            .append_batch(CATALOG_STREAM, vec![event.clone()], offset, prev, true)
            .map_err(|source| {
                self.inner.commit.poison();
                Error::storage(Some("(catalogue)"), source)
            })?;
        let applied = state.catalog.apply(offset, &event)?;
        debug_assert_eq!(applied, id);
        state.catalog_head = Some(hash);
        state.heads.insert(id, Heads::default());
        state.merkle.submit(id, 0, Vec::new());
        Ok(id)
    }

    /// The id of the stream named `name`, if there is one.
    #[must_use]
    pub fn stream(&self, name: &str) -> Option<StreamId> {
        self.read_state().catalog.id(name)
    }

    /// The name of stream `id`, if it is a named stream.
    #[must_use]
    pub fn stream_name(&self, id: StreamId) -> Option<String> {
        self.read_state().catalog.name(id).map(str::to_owned)
    }

    /// Every named stream with its durable head, in name order.
    #[must_use]
    pub fn list_streams(&self) -> Vec<StreamInfo> {
        let state = self.read_state();
        state
            .catalog
            .iter()
            .map(|(name, id)| {
                let heads = state.heads.get(&id).copied().unwrap_or_default();
                StreamInfo {
                    name: name.to_owned(),
                    id,
                    head: heads.durable,
                    damaged: heads.damaged,
                }
            })
            .collect()
    }

    /// The durable head of stream `id`: what readers see and appends have acknowledged.
    ///
    /// Errors: [`Error::UnknownStream`]; [`Error::StreamDamaged`] when open found the stream's
    /// records damaged or its files unreadable, so its head is unknown (never a made-up one:
    /// an empty-looking head would read as "no events").
    pub fn head(&self, id: StreamId) -> Result<StreamHead> {
        let state = self.read_state();
        let name = state.name_of(id)?;
        let heads = state.heads.get(&id).copied().unwrap_or_default();
        if heads.damaged {
            return Err(Error::StreamDamaged {
                name: name.to_owned(),
            });
        }
        Ok(heads.durable)
    }
}

/// The catalogue replayed from the system stream, and its head hash. Damage in the system
/// stream does not keep the store from opening: the names read before it are kept, the
/// catalogue's head is unknown (so no stream can be created), the streams it no longer names
/// are verified as unnamed, and `verify` reports the damage with its file.
fn replay_catalog(
    backend: &dyn StoreBackend,
    config: &Config,
) -> Result<(Catalog, Option<kimberlite_crypto::ChainHash>)> {
    let storage_error = |source| Error::storage(Some("(catalogue)"), source);
    let mut catalog = Catalog::new();
    loop {
        let from = Offset::new(catalog.len());
        let page = match backend.read_from(CATALOG_STREAM, from, config.read_page_bytes) {
            Ok(page) => page,
            Err(error) if error.is_corruption() => return Ok((catalog, None)),
            Err(error) => return Err(storage_error(error)),
        };
        if page.is_empty() {
            break;
        }
        for payload in &page {
            catalog.apply(Offset::new(catalog.len()), payload)?;
        }
    }
    match backend.latest_chain_hash(CATALOG_STREAM) {
        Ok(head) => Ok((catalog, head)),
        Err(error) if error.is_corruption() => Ok((catalog, None)),
        Err(error) => Err(storage_error(error)),
    }
}

/// A named stream's head as stored. Damage is not an error here: the store must open so that
/// `verify` can report it; the stream is marked damaged and refuses appends.
fn recover_head(backend: &dyn StoreBackend, name: &str, id: StreamId) -> Result<Heads> {
    let storage_error = |source| Error::storage(Some(name), source);
    let next_offset = backend.next_offset(id).map_err(storage_error)?;
    let (hash, damaged) = match backend.latest_chain_hash(id) {
        Ok(hash) => (hash, false),
        Err(error) if error.is_corruption() => (None, true),
        Err(error) => return Err(storage_error(error)),
    };
    let head = StreamHead { next_offset, hash };
    Ok(Heads {
        written: head,
        durable: head,
        damaged,
    })
}

/// Opens the on-disk backend in `dir` of `fs` (already checked by [`prepare_dir`]).
fn open_disk<F: FileSystem>(fs: F, dir: &Path, config: &Config) -> Result<Storage<F>> {
    let mut storage_config = StorageConfig {
        compression: config.compression,
        ..StorageConfig::default()
    };
    if let Some(bytes) = config.max_segment_size_bytes {
        storage_config.max_segment_size = bytes;
    }
    match Storage::open_on(fs, dir, storage_config) {
        Ok(storage) => Ok(storage),
        Err(StorageError::Locked { .. }) => Err(Error::Locked {
            path: dir.to_path_buf(),
        }),
        Err(source) => Err(Error::storage(None, source)),
    }
}
