//! The tree worker: a thread per store that hashes appended events into their streams'
//! Merkle trees, off the append path.
//!
//! An append adds its batch (cheap `Bytes` clones) to a pending chunk while it holds the
//! store's write lock, so events queue in append order. Once [`CHUNK_EVENTS`] events or
//! [`CHUNK_BYTES`] bytes are pending, the chunk goes to the worker through a bounded channel;
//! the worker hashes the leaves and the new interior nodes and extends the trees
//! ([`crate::merkle`]) under the trees' own mutex. The append itself pays a clone and a
//! vector push, not the hashing, and one thread wake-up per chunk rather than per batch
//! (handing each small batch over cost more than hashing it). On a machine with a spare
//! core, appending with trees costs about what appending without them does (figures in
//! `docs/PERFORMANCE.md`). The channel holds at most [`QUEUE_CHUNKS`] chunks: a worker that
//! falls behind slows appenders down instead of queueing without bound.
//!
//! A proof call first sends the pending chunk and waits until the worker has caught up with
//! every batch submitted for its stream ([`TreeWorker::wait`]), so proofs always see the tree
//! of every durable event. Kept: the trees' contents and files are exactly those of a
//! synchronous update. Dropped: nothing; a worker that died (a bug) makes proof calls fail
//! with `TreeUnavailable` instead of waiting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use kimberlite_types::StreamId;

use crate::merkle::{leaf_hashes, TreeError, Trees};

/// Events pending before they are handed to the worker.
pub(crate) const CHUNK_EVENTS: usize = 4096;
/// Payload bytes pending before they are handed to the worker.
pub(crate) const CHUNK_BYTES: usize = 4 << 20;
/// Chunks the channel holds before an appender waits for the worker.
pub(crate) const QUEUE_CHUNKS: usize = 16;
/// How often a waiting proof call checks that the worker is still alive.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// Batches for the worker, in append order: (stream, first offset, events).
type Chunk = Vec<(StreamId, u64, Vec<Bytes>)>;

/// Batches not yet handed to the worker.
#[derive(Debug, Default)]
struct Pending {
    batches: Chunk,
    events: usize,
    bytes: usize,
}

#[derive(Debug)]
struct Shared {
    trees: Mutex<Trees>,
    grown: Condvar,
    alive: AtomicBool,
}

/// Owns the worker thread and what has been submitted to it.
#[derive(Debug)]
pub(crate) struct TreeWorker {
    shared: Arc<Shared>,
    sender: Option<SyncSender<Chunk>>,
    handle: Option<JoinHandle<()>>,
    /// Per stream, the tree size once every submitted batch is hashed.
    submitted: HashMap<StreamId, u64>,
    /// Batches submitted but not yet sent (a mutex so that proof calls, which hold only the
    /// store's read lock, can send them).
    pending: Mutex<Pending>,
}

/// Marks the worker dead when its thread ends, normally or by a panic.
struct AliveGuard(Arc<Shared>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::SeqCst);
        self.0.grown.notify_all();
    }
}

impl TreeWorker {
    /// Starts a worker for `trees` (no thread when they are disabled).
    pub(crate) fn start(trees: Trees) -> Self {
        let submitted = trees.sizes();
        let enabled = trees.enabled();
        let shared = Arc::new(Shared {
            trees: Mutex::new(trees),
            grown: Condvar::new(),
            alive: AtomicBool::new(enabled),
        });
        let (sender, handle) = if enabled {
            let (sender, receiver) = sync_channel(QUEUE_CHUNKS);
            let worker = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name("kimberlite-merkle".into())
                .spawn(move || run(&worker, &receiver))
                .ok();
            if handle.is_none() {
                shared.alive.store(false, Ordering::SeqCst);
            }
            (Some(sender), handle)
        } else {
            (None, None)
        };
        Self {
            shared,
            sender,
            handle,
            submitted,
            pending: Mutex::new(Pending::default()),
        }
    }

    /// False when the store's configuration disables trees.
    pub(crate) fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Queues `events`, the batch appended at `first_offset` of `stream` (an empty batch
    /// creates the stream's tree). Called under the store's write lock, in append order.
    pub(crate) fn submit(&mut self, stream: StreamId, first_offset: u64, events: Vec<Bytes>) {
        if self.sender.is_none() {
            return;
        }
        self.submitted
            .insert(stream, first_offset + events.len() as u64);
        let full = {
            let pending = self
                .pending
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner);
            pending.events += events.len();
            pending.bytes += events.iter().map(Bytes::len).sum::<usize>();
            pending.batches.push((stream, first_offset, events));
            pending.events >= CHUNK_EVENTS || pending.bytes >= CHUNK_BYTES
        };
        if full {
            self.send_pending();
        }
    }

    /// Hands the pending chunk to the worker.
    fn send_pending(&self) {
        let Some(sender) = &self.sender else { return };
        let chunk = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::take(&mut *pending).batches
        };
        if !chunk.is_empty() && sender.send(chunk).is_err() {
            self.shared.alive.store(false, Ordering::SeqCst);
        }
    }

    /// Waits until the worker has hashed every batch submitted for `stream`; returns the
    /// trees, locked.
    pub(crate) fn wait(&self, stream: StreamId) -> Result<MutexGuard<'_, Trees>, TreeError> {
        let target = self.submitted.get(&stream).copied().unwrap_or(0);
        self.send_pending();
        let mut trees = self.lock()?;
        while trees.size(stream) < target {
            if !self.shared.alive.load(Ordering::SeqCst) {
                return Err(TreeError::Failed("the tree worker thread stopped".into()));
            }
            trees = match self.shared.grown.wait_timeout(trees, WAIT_POLL) {
                Ok((trees, _)) => trees,
                Err(_) => return Err(poisoned()),
            };
        }
        Ok(trees)
    }

    /// The trees as they are, without waiting for the batches submitted since: all that a
    /// comparison of nodes the trees already held needs (a tree check compares the nodes below
    /// the size it started at). Unlike [`Self::wait`], it works after the worker has stopped.
    pub(crate) fn trees_now(&self) -> Result<MutexGuard<'_, Trees>, TreeError> {
        self.lock()
    }

    /// Poisons the trees' mutex, as a panic in the middle of a tree update would.
    #[cfg(test)]
    pub(crate) fn poison_for_tests(&self) {
        let shared = Arc::clone(&self.shared);
        let _ = std::thread::spawn(move || {
            let _trees = shared.trees.lock();
            panic!("a tree update panics (test)");
        })
        .join();
    }

    fn lock(&self) -> Result<MutexGuard<'_, Trees>, TreeError> {
        self.shared.trees.lock().map_err(|_| poisoned())
    }

    /// Waits for every stream's submitted batches, then writes all buffered nodes.
    pub(crate) fn flush(&self) {
        let streams: Vec<StreamId> = self.submitted.keys().copied().collect();
        for stream in streams {
            if self.wait(stream).is_err() {
                return;
            }
        }
        if let Ok(mut trees) = self.lock() {
            trees.flush();
        }
    }
}

fn poisoned() -> TreeError {
    TreeError::Failed("a panic interrupted a tree update".into())
}

fn run(shared: &Arc<Shared>, receiver: &Receiver<Chunk>) {
    let _alive = AliveGuard(Arc::clone(shared));
    for chunk in receiver {
        let hashed: Vec<_> = chunk
            .iter()
            .map(|(stream, first, events)| (*stream, leaf_hashes(*first, events)))
            .collect();
        let Ok(mut trees) = shared.trees.lock() else {
            return;
        };
        for (stream, leaves) in &hashed {
            trees.push(*stream, leaves);
        }
        drop(trees);
        shared.grown.notify_all();
    }
    if let Ok(mut trees) = shared.trees.lock() {
        trees.flush();
    }
}

impl TreeWorker {
    /// Lets the worker finish the queued batches and write its buffers, then joins it.
    /// Proof calls fail afterwards. Idempotent.
    pub(crate) fn shutdown(&mut self) {
        self.send_pending();
        self.sender = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for TreeWorker {
    fn drop(&mut self) {
        self.shutdown();
    }
}
