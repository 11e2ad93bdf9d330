//! Group commit's writer queue: appenders that arrive together are written by one of them.
//!
//! Under [`crate::Durability::GroupCommit`] an append does not take the store's lock itself: it
//! queues its request and parks. The first caller to find no *leader* becomes one: it takes
//! every queued request (its own included), makes the appends under one hold of the write lock,
//! in queue order (each with its own `ExpectedOffset` check and its own result), waits for a
//! sync that covers them all ([`crate::commit`]), hands each caller its result and unparks it,
//! then unparks the first caller that queued meanwhile, to lead the next group.
//!
//! Why: if each appending thread took the write lock in turn, every hand-off of that lock
//! would be a wake-up on the critical path between two syncs. A writer queue (LevelDB's
//! design) pays one lock hold per group, and a caller only queues and parks
//! (`docs/PERFORMANCE.md`, group commit).
//!
//! Within a group, consecutive small appends to one stream that accept any offset (and whose
//! events the backend cannot refuse for their size) are written with one backend call, as one
//! batch: one `write` instead of one per caller, as LevelDB merges a group into one log record.
//! Each caller still gets the offsets of its own events, and the chain head after its own last
//! event, computed from the head before the run (`ChainHash::compute`, one hash per event);
//! the last of those is the backend's own head (checked in debug builds). Appends with an
//! expected offset keep their own call, so each check sees the appends queued before it. What
//! merging gains is in `docs/PERFORMANCE.md` (group commit).
//!
//! Kept: what each caller sees is what a lone `append` would return, in the order the queue
//! holds; an append returns only once a sync covers it; a failed append (a conflict, an empty
//! batch) fails that caller only, and a failed write or sync fails the rest of the group with
//! [`Error::Poisoned`] (the leader gets the error itself). A leader that panics poisons the
//! store and releases every caller of its group with `Poisoned`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::Thread;

use bytes::Bytes;
use kimberlite_types::StreamId;

use crate::error::Result;
use crate::head::MAX_EVENT_BYTES;
use crate::head::{AppendResult, ExpectedOffset};

/// One caller's append, waiting to be made by a leader.
pub(crate) struct Request {
    pub(crate) id: StreamId,
    pub(crate) events: Vec<Bytes>,
    pub(crate) expected: ExpectedOffset,
}

/// The most events an append may hold to be written in one call with its neighbours: each
/// caller's head is computed again from the events (a hash per event) to save its own
/// backend call (a `write` system call), which only pays for small appends. A large append
/// is one batch anyway.
const RUN_EVENTS_MAX: usize = 8;

impl Request {
    /// Whether this request can be written in one backend call with its neighbours for the
    /// same stream: it accepts any offset, holds a few events ([`RUN_EVENTS_MAX`] at most), and
    /// none is too large (so the only refusals left are the stream's own, which would refuse
    /// each request alike).
    pub(crate) fn joins_a_run(&self) -> bool {
        self.expected == ExpectedOffset::Any
            && (1..=RUN_EVENTS_MAX).contains(&self.events.len())
            && self
                .events
                .iter()
                .all(|event| event.len() <= MAX_EVENT_BYTES)
    }
}

/// A queued caller: where its leader puts its result, and whom to unpark then.
pub(crate) struct Slot {
    pub(crate) result: Mutex<Option<Result<AppendResult>>>,
    pub(crate) thread: Thread,
}

impl Slot {
    pub(crate) fn finish(&self, result: Result<AppendResult>) {
        *lock(&self.result) = Some(result);
        self.thread.unpark();
    }
}

#[derive(Default)]
pub(crate) struct Queue {
    /// Requests no leader has taken yet, with their callers' slots, in arrival order.
    pub(crate) waiting: VecDeque<(Request, Arc<Slot>)>,
    pub(crate) leader_active: bool,
}

impl Queue {
    /// Unparks the first waiting caller, to lead the next group.
    pub(crate) fn wake_next_leader(&self) {
        if let Some((_, next)) = self.waiting.front() {
            next.thread.unpark();
        }
    }
}

/// The queue of appends waiting for a leader. See the module docs.
#[derive(Default)]
pub(crate) struct WriterQueue {
    pub(crate) queue: Mutex<Queue>,
}

impl std::fmt::Debug for WriterQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriterQueue(..)")
    }
}

/// Locks one of the queue's mutexes.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here only moves values in or out: nothing is left half-done.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
